DROP TABLE IF EXISTS upsell_signal_staging_progress;
DROP TABLE IF EXISTS upsell_signal_staging;
