ALTER TABLE upsell_signal_staging DROP PRIMARY KEY;
