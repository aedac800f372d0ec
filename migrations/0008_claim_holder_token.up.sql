-- The claim's fencing token: one per execution of the sync, never the Lambda request
-- id (Lambda's async retries and duplicated deliveries reuse that). Renewals, the
-- completion, a failure and every staging write check it. holder_dry_run tells a real
-- sync that the date is held only by a dry run, which it may take over.
ALTER TABLE upsell_signal_sync_metadata
  ADD COLUMN IF NOT EXISTS holder_token CHAR(32) NULL COMMENT 'token of the execution that holds or last held the date' AFTER workflow_id,
  ADD COLUMN IF NOT EXISTS holder_dry_run BOOLEAN NOT NULL DEFAULT FALSE COMMENT 'the holder only counts (dry run)' AFTER holder_token;
