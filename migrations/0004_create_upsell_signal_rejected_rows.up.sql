-- Rows of a file that were not loaded, with why and what they held. `attempt` is the
-- attempt whose staging pass found them (a resumed attempt continues that pass).
CREATE TABLE IF NOT EXISTS upsell_signal_rejected_rows (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  sync_date DATE NOT NULL,
  attempt INT UNSIGNED NOT NULL,
  source_row INT UNSIGNED NOT NULL COMMENT '0-based position of the row in the file',
  cdms_canonical_company_id VARCHAR(255) NULL COMMENT 'as found, cut to 255 characters',
  reasons VARCHAR(2048) NOT NULL,
  original_values LONGTEXT NOT NULL CHECK (JSON_VALID(original_values)),
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  KEY idx_sync_date_attempt (sync_date, attempt, source_row)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
