ALTER TABLE company_upsell_signals DROP INDEX IF EXISTS idx_row_fingerprint, DROP COLUMN IF EXISTS row_fingerprint;
