-- Staging for one date's rows before the publish. A real table (not a session's
-- temporary one) so a later attempt can resume a pass that an earlier one left.
-- One LIST partition per sync date being staged: dropping a partition clears a date
-- at once, where DELETE of a million rows would take seconds. The sentinel partition
-- exists because a partitioned table needs one; nothing is ever staged for 1970.
-- No index at all: rows are appended in file order (InnoDB's hidden row id), the
-- cheapest load there is. Keys are unique by the time rows are staged (duplicates are
-- rejected while reading); the publish drives its joins from here into the signals
-- table's unique key, and deletions use NOT IN, which MariaDB materialises with an index.
-- Progress of each date's pass lives in upsell_signal_staging_progress.
CREATE TABLE IF NOT EXISTS upsell_signal_staging (
  sync_date DATE NOT NULL,
  source_row INT UNSIGNED NOT NULL,
  cdms_canonical_company_id VARCHAR(64) NOT NULL,
  legacy_company_id VARCHAR(64) NULL,
  core_product VARCHAR(16) NULL,
  debut_product_tier VARCHAR(32) NULL,
  current_product_tier VARCHAR(32) NULL,
  is_active_customer BOOLEAN NULL,
  initial_billed_ee_count INT NULL,
  most_recent_paid_ee_count INT NULL,
  ee_growth INT NULL,
  ee_growth_rate DECIMAL(10,4) NULL,
  count_icp_members_active INT NULL,
  count_icp_members_all_time INT NULL,
  count_eor_members_active INT NULL,
  count_eor_members_all_time INT NULL,
  count_remote_employees_active_since_premiere INT NULL,
  last_remote_employee_invited_at TIMESTAMP NULL DEFAULT NULL,
  count_full_time_employees_active_since_premiere INT NULL,
  last_full_time_employee_invited_at TIMESTAMP NULL DEFAULT NULL,
  last_hi_app_started_at TIMESTAMP NULL DEFAULT NULL,
  num_days_since_hi_app_started INT NULL,
  has_signal_active_icp_without_eor BOOLEAN NULL,
  has_signal_past_icp_without_eor BOOLEAN NULL,
  has_signal_two_plus_remote_employees BOOLEAN NULL,
  has_signal_payroll_growth_25_pct BOOLEAN NULL,
  has_signal_peo_growth_10_pct BOOLEAN NULL,
  has_signal_peo_basic_five_plus_hires BOOLEAN NULL,
  has_signal_hi_app_started_not_submitted BOOLEAN NULL,
  model_updated_at TIMESTAMP NULL DEFAULT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin
PARTITION BY LIST COLUMNS (sync_date) (PARTITION p_sentinel VALUES IN ('1970-01-01'));

CREATE TABLE IF NOT EXISTS upsell_signal_staging_progress (
  sync_date DATE NOT NULL,
  s3_etag VARCHAR(128) NOT NULL,
  attempt INT UNSIGNED NOT NULL COMMENT 'the attempt that started this staging pass',
  rows_read INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'rows of the file consumed, staged or rejected',
  rows_staged INT UNSIGNED NOT NULL DEFAULT 0,
  rows_rejected INT UNSIGNED NOT NULL DEFAULT 0,
  chunks_committed INT UNSIGNED NOT NULL DEFAULT 0,
  staging_complete BOOLEAN NOT NULL DEFAULT FALSE,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (sync_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
