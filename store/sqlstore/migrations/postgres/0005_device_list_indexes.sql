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

-- Presence and health over time: one row per presence change or metadata report of a device,
-- and one count of the tenant's fleet every few minutes. Rows older than the retention are
-- swept; reads take the newest rows of one device or tenant.
CREATE TABLE device_samples (
    tenant_id      text        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id      text        NOT NULL,
    at             timestamptz NOT NULL,
    kind           text        NOT NULL,
    online         boolean     NOT NULL,
    rssi           integer     NOT NULL,
    free_heap      bigint      NOT NULL,
    uptime_seconds bigint      NOT NULL
);
CREATE INDEX device_samples_device_idx ON device_samples (tenant_id, device_id, at);
CREATE INDEX device_samples_at_idx ON device_samples (at);

CREATE TABLE fleet_samples (
    tenant_id text        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL,
    online    bigint      NOT NULL,
    total     bigint      NOT NULL,
    PRIMARY KEY (tenant_id, at)
);
CREATE INDEX fleet_samples_at_idx ON fleet_samples (at);
