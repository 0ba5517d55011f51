-- ESP Admin schema, version 5 (MySQL 8 / MariaDB 10.6+): indexes for the device list's orders
-- and the dashboard's counts. Every order is (column, id), the list's own; the name is a TEXT
-- column, indexed by its first 191 characters (names are at most 128).

CREATE INDEX devices_tenant_name_idx ON devices (tenant_id, name(191), id);
CREATE INDEX devices_tenant_last_seen_idx ON devices (tenant_id, last_seen_at, id);
CREATE INDEX devices_tenant_created_idx ON devices (tenant_id, created_at, id);
CREATE INDEX devices_tenant_counts_idx ON devices (tenant_id, firmware_version, online, disabled);

-- Presence and health over time: one row per presence change or metadata report of a device,
-- and one count of the tenant's fleet every few minutes. Rows older than the retention are
-- swept; reads take the newest rows of one device or tenant.
CREATE TABLE device_samples (
    tenant_id      VARCHAR(128) NOT NULL,
    device_id      VARCHAR(128) NOT NULL,
    at             DATETIME(3)  NOT NULL,
    kind           VARCHAR(16)  NOT NULL,
    online         BOOLEAN      NOT NULL,
    rssi           INT          NOT NULL,
    free_heap      BIGINT       NOT NULL,
    uptime_seconds BIGINT       NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
);
CREATE INDEX device_samples_device_idx ON device_samples (tenant_id, device_id, at);
CREATE INDEX device_samples_at_idx ON device_samples (at);

CREATE TABLE fleet_samples (
    tenant_id VARCHAR(128) NOT NULL,
    at        DATETIME(3)  NOT NULL,
    online    BIGINT       NOT NULL,
    total     BIGINT       NOT NULL,
    PRIMARY KEY (tenant_id, at),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
);
CREATE INDEX fleet_samples_at_idx ON fleet_samples (at);
