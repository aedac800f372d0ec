DROP TABLE IF EXISTS company_upsell_signals;
