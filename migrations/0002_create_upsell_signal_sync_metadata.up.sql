-- One row per sync date: who holds it (the claim), its state and the counts of the
-- last attempt. The UNIQUE sync_date is what makes the claim atomic.
CREATE TABLE IF NOT EXISTS upsell_signal_sync_metadata (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  sync_date DATE NOT NULL,
  s3_key VARCHAR(512) NOT NULL,
  s3_etag VARCHAR(128) NULL COMMENT 'ETag of the object the current or last attempt read',
  completed_etag VARCHAR(128) NULL COMMENT 'ETag of the object that last completed; a different one is re-synced',
  workflow_id VARCHAR(256) NOT NULL COMMENT 'the invocation (request id) that holds the date',
  status ENUM('started','completed','failed') NOT NULL,
  trigger_source VARCHAR(32) NOT NULL,
  attempt INT UNSIGNED NOT NULL DEFAULT 1,
  lease_expires_at TIMESTAMP NULL DEFAULT NULL,
  rows_processed INT UNSIGNED NULL,
  rows_inserted INT UNSIGNED NULL,
  rows_updated INT UNSIGNED NULL,
  rows_unchanged INT UNSIGNED NULL,
  rows_rejected INT UNSIGNED NULL,
  rows_deleted INT UNSIGNED NULL,
  error_message TEXT NULL,
  started_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  completed_at TIMESTAMP NULL DEFAULT NULL,
  duration_ms INT UNSIGNED NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_sync_date (sync_date),
  KEY idx_status_date (status, sync_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
