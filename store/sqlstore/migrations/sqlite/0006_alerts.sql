-- ESP Admin schema, version 6 (SQLite): alerts. Rules and channels per tenant, the alert
-- history, and the delivery outbox that doubles as the delivery log (leased rows, so several
-- replicas can share it).

CREATE TABLE alert_channels (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    target        TEXT NOT NULL,
    options       TEXT NOT NULL,
    secret_sealed BLOB,
    enabled       INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX alert_channels_tenant_idx ON alert_channels (tenant_id, id);

CREATE TABLE alert_rules (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    project_id       TEXT NOT NULL,
    tag              TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    params           TEXT NOT NULL,
    channel_ids      TEXT NOT NULL,
    cooldown_seconds INTEGER NOT NULL,
    enabled          INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX alert_rules_tenant_idx ON alert_rules (tenant_id, id);

CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rule_id         TEXT NOT NULL,
    rule_name       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    summary         TEXT NOT NULL,
    subjects        TEXT NOT NULL,
    fired_at        TEXT NOT NULL,
    resolved_at     TEXT,
    acknowledged_at TEXT,
    acknowledged_by TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX alerts_tenant_idx ON alerts (tenant_id, id);
CREATE INDEX alerts_tenant_state_idx ON alerts (tenant_id, state, id);

CREATE TABLE alert_deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_id       TEXT NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    alert_id         TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    lease_owner      TEXT NOT NULL,
    lease_until      TEXT,
    last_status      INTEGER NOT NULL,
    last_latency_ms  INTEGER NOT NULL,
    last_error       TEXT NOT NULL,
    response_excerpt TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    delivered_at     TEXT
);
CREATE INDEX alert_deliveries_tenant_idx ON alert_deliveries (tenant_id, id);
CREATE INDEX alert_deliveries_channel_idx ON alert_deliveries (tenant_id, channel_id, id);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (state, next_attempt_at);

CREATE TABLE push_subscriptions (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint_idx ON push_subscriptions (tenant_id, endpoint);

CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    sealed     BLOB NOT NULL,
    created_at TEXT NOT NULL
);
