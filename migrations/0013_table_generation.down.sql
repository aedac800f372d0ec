ALTER TABLE upsell_signal_staging_progress DROP COLUMN IF EXISTS compared_generation;
DROP TABLE IF EXISTS upsell_signal_table_generation;
