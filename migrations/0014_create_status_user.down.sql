DROP USER IF EXISTS 'upsell_status'@'%';
