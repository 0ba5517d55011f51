-- ESP Admin schema, version 9 (PostgreSQL): an index on the received time alone, for the error
-- reports' retention sweep (errors.retention), which deletes the oldest reports of every
-- tenant in bounded batches. The (tenant_id, received_at) index of version 8 cannot serve a
-- range that spans tenants, so without this one each batch would scan the table.

CREATE INDEX error_reports_received_idx ON error_reports (received_at);
