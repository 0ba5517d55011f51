-- ESP Admin schema, version 8 (SQLite): indexes for the error trend (reports per day over
-- a window, for a tenant or one of its groups). Each holds received_at, so the count reads
-- the window's index entries and no report rows.

CREATE INDEX error_reports_tenant_received_idx ON error_reports (tenant_id, received_at);
CREATE INDEX error_reports_tenant_group_received_idx ON error_reports (tenant_id, group_id, received_at);
