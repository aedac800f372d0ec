ALTER TABLE upsell_signal_sync_runs DROP COLUMN IF EXISTS rows_superseded;
ALTER TABLE upsell_signal_sync_metadata DROP COLUMN IF EXISTS rows_superseded;
