-- ESP Admin schema, version 5 (PostgreSQL): indexes for the device list's orders and the
-- dashboard's counts, so a fleet of tens of thousands of devices lists a sorted page and counts
-- itself without sorting or reading every row. Every order is (column, id), the list's own; a
-- missing project or last-seen time sorts first ascending, as on the other databases, so those
-- two indexes are NULLS FIRST (read backwards for descending).

CREATE INDEX devices_tenant_name_idx ON devices (tenant_id, name, id);
CREATE INDEX devices_tenant_last_seen_idx ON devices (tenant_id, last_seen_at NULLS FIRST, id);
CREATE INDEX devices_tenant_created_idx ON devices (tenant_id, created_at, id);
CREATE INDEX devices_tenant_project_sort_idx ON devices (tenant_id, project_id NULLS FIRST, id);
CREATE INDEX devices_tenant_counts_idx ON devices (tenant_id, firmware_version, online, disabled);
