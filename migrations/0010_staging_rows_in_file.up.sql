-- How many rows the file being staged holds, noted once it is opened, so that the status
-- request can show a sync's progress (rows read of rows in the file) and estimate what is
-- left. NULL until noted (and for passes begun before this column existed).
ALTER TABLE upsell_signal_staging_progress
  ADD COLUMN IF NOT EXISTS rows_in_file INT UNSIGNED NULL COMMENT 'rows in the staged file, once it is opened' AFTER rows_read;
