-- Each row's fingerprint, which the server computes on every write (the ingest's or a
-- person's), and an index that holds every fingerprint in a compact, sequential form: a
-- day-two sync compares the file with the table through it and stages only the rows that
-- differ (functions/ingest/row_fingerprints.py writes the same expression; a test checks
-- the two agree). A virtual column, so adding it is instant and the table is not rebuilt;
-- the index stores the values, and is built online (reads and writes go on meanwhile).
ALTER TABLE company_upsell_signals
  ADD COLUMN IF NOT EXISTS row_fingerprint BINARY(16) AS (
  UNHEX(MD5(CONCAT_WS(0x1f,
      IFNULL(CONCAT(OCTET_LENGTH(cdms_canonical_company_id), ':', cdms_canonical_company_id), ''),
      IFNULL(CONCAT(OCTET_LENGTH(legacy_company_id), ':', legacy_company_id), ''),
      IFNULL(CONCAT(OCTET_LENGTH(core_product), ':', core_product), ''),
      IFNULL(CONCAT(OCTET_LENGTH(debut_product_tier), ':', debut_product_tier), ''),
      IFNULL(CONCAT(OCTET_LENGTH(current_product_tier), ':', current_product_tier), ''),
      IFNULL(is_active_customer, ''),
      IFNULL(initial_billed_ee_count, ''),
      IFNULL(most_recent_paid_ee_count, ''),
      IFNULL(ee_growth, ''),
      IFNULL(ee_growth_rate, ''),
      IFNULL(count_icp_members_active, ''),
      IFNULL(count_icp_members_all_time, ''),
      IFNULL(count_eor_members_active, ''),
      IFNULL(count_eor_members_all_time, ''),
      IFNULL(count_remote_employees_active_since_premiere, ''),
      IFNULL(UNIX_TIMESTAMP(last_remote_employee_invited_at), ''),
      IFNULL(count_full_time_employees_active_since_premiere, ''),
      IFNULL(UNIX_TIMESTAMP(last_full_time_employee_invited_at), ''),
      IFNULL(UNIX_TIMESTAMP(last_hi_app_started_at), ''),
      IFNULL(num_days_since_hi_app_started, ''),
      IFNULL(has_signal_active_icp_without_eor, ''),
      IFNULL(has_signal_past_icp_without_eor, ''),
      IFNULL(has_signal_two_plus_remote_employees, ''),
      IFNULL(has_signal_payroll_growth_25_pct, ''),
      IFNULL(has_signal_peo_growth_10_pct, ''),
      IFNULL(has_signal_peo_basic_five_plus_hires, ''),
      IFNULL(has_signal_hi_app_started_not_submitted, ''),
      IFNULL(UNIX_TIMESTAMP(model_updated_at), ''))))) VIRTUAL;
ALTER TABLE company_upsell_signals ADD INDEX IF NOT EXISTS idx_row_fingerprint (row_fingerprint), ALGORITHM=INPLACE, LOCK=NONE;
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
