-- ESP Admin schema, version 5 (MySQL 8 / MariaDB 10.6+): indexes for the device list's orders
-- and the dashboard's counts. Every order is (column, id), the list's own; the name is a TEXT
-- column, indexed by its first 191 characters (names are at most 128).

CREATE INDEX devices_tenant_name_idx ON devices (tenant_id, name(191), id);
CREATE INDEX devices_tenant_last_seen_idx ON devices (tenant_id, last_seen_at, id);
CREATE INDEX devices_tenant_created_idx ON devices (tenant_id, created_at, id);
CREATE INDEX devices_tenant_counts_idx ON devices (tenant_id, firmware_version, online, disabled);
