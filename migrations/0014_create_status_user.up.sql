-- The status function's own account: it reads the ledger the report is built from, and
-- nothing else (no signals rows, no writes). Created locked and without a password, as the
-- ingest's (0006): the migrate function sets the password from the status secret.
-- `ON *` means the current database, as in 0006.
CREATE USER IF NOT EXISTS 'upsell_status'@'%' ACCOUNT LOCK;
GRANT SELECT ON upsell_signal_sync_metadata TO 'upsell_status'@'%';
GRANT SELECT ON upsell_signal_sync_runs TO 'upsell_status'@'%';
GRANT SELECT ON upsell_signal_rejected_rows TO 'upsell_status'@'%';
GRANT SELECT ON upsell_signal_staging_progress TO 'upsell_status'@'%';
