-- Staged rows get a primary key on (sync_date, source_row). Rows are loaded in file
-- order, so the key grows at the end like the hidden row id it replaces and costs the
-- load nothing measurable; in exchange the publish can reach a staged row by its
-- source row (the list of changed rows it builds holds only ids and row numbers, not
-- whole rows), and a chunk staged twice fails on the key instead of doubling rows.
ALTER TABLE upsell_signal_staging ADD PRIMARY KEY IF NOT EXISTS (sync_date, source_row);
