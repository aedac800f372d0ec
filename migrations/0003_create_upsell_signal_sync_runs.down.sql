DROP TABLE IF EXISTS upsell_signal_sync_runs;
