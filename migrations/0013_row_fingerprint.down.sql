ALTER TABLE upsell_signal_staging_progress DROP COLUMN IF EXISTS compared_generation;
DROP TABLE IF EXISTS upsell_signal_table_generation;
ALTER TABLE company_upsell_signals DROP INDEX IF EXISTS idx_row_fingerprint, DROP COLUMN IF EXISTS row_fingerprint;
