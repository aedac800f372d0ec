DROP USER IF EXISTS 'upsell_ingest'@'%';
