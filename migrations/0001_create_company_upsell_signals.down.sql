DROP TABLE company_upsell_signals;
