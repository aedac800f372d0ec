-- A count of the ingest's writes to company_upsell_signals (each publish and first load adds
-- one in its own transaction), and the count a staging pass compared the file at: a run that
-- resumes a pass finds the table as that pass left it when the two agree, and compares only
-- the rows it has yet to stage.
CREATE TABLE IF NOT EXISTS upsell_signal_table_generation (
  id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
  generation BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB;
INSERT IGNORE INTO upsell_signal_table_generation (id, generation) VALUES (1, 0);
ALTER TABLE upsell_signal_staging_progress
  ADD COLUMN IF NOT EXISTS compared_generation BIGINT UNSIGNED NULL COMMENT 'the table generation this pass compared the file at';
GRANT SELECT, UPDATE ON upsell_signal_table_generation TO 'upsell_ingest'@'%';
