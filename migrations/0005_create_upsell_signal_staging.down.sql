DROP TABLE upsell_signal_staging_progress;
DROP TABLE upsell_signal_staging;
