-- Which durable execution, and which run of it, holds the date (functions/ingest/continuation.py):
-- a file that needs several runs is continued by one execution, and the status request names it
-- so an operator can find it (`aws lambda get-durable-execution`). NULL for a claim taken outside
-- a durable execution (./scripts/invoke without it, a test) and for claims from before this column.
ALTER TABLE upsell_signal_sync_metadata
  ADD COLUMN IF NOT EXISTS durable_execution_arn VARCHAR(1024) NULL COMMENT 'the durable execution that holds or last held the date' AFTER holder_dry_run,
  ADD COLUMN IF NOT EXISTS durable_run INT UNSIGNED NULL COMMENT 'which run of that execution claimed or resumed it last' AFTER durable_execution_arn;
