UPDATE upsell_signal_sync_runs SET status = 'failed' WHERE status = 'handed_over';
ALTER TABLE upsell_signal_sync_runs
  MODIFY status ENUM('started','completed','skipped','in_progress','dry_run','failed') NOT NULL;
