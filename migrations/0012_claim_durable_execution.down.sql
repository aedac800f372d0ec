ALTER TABLE upsell_signal_sync_metadata DROP COLUMN IF EXISTS durable_run, DROP COLUMN IF EXISTS durable_execution_arn;
