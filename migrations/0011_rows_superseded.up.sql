-- Rows of a date's file that a newer date already carries, and so left as the newer date wrote
-- them: the newest file wins per company, whatever order the dates arrive in. NULL for runs
-- from before this column existed.
ALTER TABLE upsell_signal_sync_metadata
  ADD COLUMN IF NOT EXISTS rows_superseded INT UNSIGNED NULL COMMENT 'rows a newer date carries, left as it wrote them' AFTER rows_deleted;
ALTER TABLE upsell_signal_sync_runs
  ADD COLUMN IF NOT EXISTS rows_superseded INT UNSIGNED NULL COMMENT 'rows a newer date carries, left as it wrote them' AFTER rows_deleted;
