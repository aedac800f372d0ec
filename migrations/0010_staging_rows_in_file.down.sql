ALTER TABLE upsell_signal_staging_progress DROP COLUMN IF EXISTS rows_in_file;
