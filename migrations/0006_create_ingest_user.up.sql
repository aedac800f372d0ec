-- The ingest function's own account: data changes on its tables only, no DDL on the
-- signals table. ALTER and DROP on the staging table are for adding and dropping its
-- date partitions. Created locked and without a password: the migrate function sets
-- the password from the ingest secret and unlocks it, so no password lives in a file.
-- `ON *` means the current database, so the grants follow whatever database this runs in.
CREATE USER IF NOT EXISTS 'upsell_ingest'@'%' ACCOUNT LOCK;
GRANT CREATE TEMPORARY TABLES ON * TO 'upsell_ingest'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON company_upsell_signals TO 'upsell_ingest'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON upsell_signal_sync_metadata TO 'upsell_ingest'@'%';
GRANT SELECT, INSERT, UPDATE ON upsell_signal_sync_runs TO 'upsell_ingest'@'%';
GRANT SELECT, INSERT ON upsell_signal_rejected_rows TO 'upsell_ingest'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, ALTER, DROP ON upsell_signal_staging TO 'upsell_ingest'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON upsell_signal_staging_progress TO 'upsell_ingest'@'%';
