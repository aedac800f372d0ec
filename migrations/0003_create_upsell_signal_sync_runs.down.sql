DROP TABLE upsell_signal_sync_runs;
