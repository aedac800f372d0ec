-- A run that stopped at a chunk boundary before the function's timeout and let the date
-- go, its committed chunks kept for the next run of the same event to resume.
ALTER TABLE upsell_signal_sync_runs
  MODIFY status ENUM('started','completed','skipped','in_progress','dry_run','failed','handed_over') NOT NULL;
