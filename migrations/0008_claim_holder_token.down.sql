ALTER TABLE upsell_signal_sync_metadata DROP COLUMN holder_dry_run, DROP COLUMN holder_token;
