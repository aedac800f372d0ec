DROP TABLE IF EXISTS upsell_signal_rejected_rows;
