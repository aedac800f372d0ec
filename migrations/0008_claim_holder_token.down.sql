ALTER TABLE upsell_signal_sync_metadata DROP COLUMN IF EXISTS holder_dry_run, DROP COLUMN IF EXISTS holder_token;
