"""The database's table names, written once: the ingest's repository and the status queries take them from here.

Pure constants (no database imports), so the status function reads them without the ingest's packages.
The migrations (migrations/*.sql) create these tables under the same names.
"""

from __future__ import annotations

TARGET = "company_upsell_signals"
STAGING = "upsell_signal_staging"
METADATA = "upsell_signal_sync_metadata"
RUNS = "upsell_signal_sync_runs"
PROGRESS = "upsell_signal_staging_progress"
GENERATION = "upsell_signal_table_generation"  # a count of the ingest's writes to TARGET
REJECTED = "upsell_signal_rejected_rows"
