-- ESP Admin schema, version 6 (PostgreSQL): alerts. Rules and channels per tenant, the alert
-- history, and the delivery outbox that doubles as the delivery log (leased rows, so several
-- replicas can share it).

CREATE TABLE alert_channels (
    id            varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id     varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          varchar(128) COLLATE "C" NOT NULL,
    target        TEXT NOT NULL,
    options       TEXT NOT NULL,
    secret_sealed bytea,
    enabled       boolean NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX alert_channels_tenant_idx ON alert_channels (tenant_id, id);

CREATE TABLE alert_rules (
    id               varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id        varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             varchar(128) COLLATE "C" NOT NULL,
    project_id       varchar(128) COLLATE "C" NOT NULL,
    tag              varchar(128) COLLATE "C" NOT NULL,
    device_id        varchar(128) COLLATE "C" NOT NULL,
    params           TEXT NOT NULL,
    channel_ids      TEXT NOT NULL,
    cooldown_seconds INTEGER NOT NULL,
    enabled          boolean NOT NULL,
    created_by       varchar(128) COLLATE "C" NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX alert_rules_tenant_idx ON alert_rules (tenant_id, id);

CREATE TABLE alerts (
    id              varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id       varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rule_id         varchar(128) COLLATE "C" NOT NULL,
    rule_name       TEXT NOT NULL,
    kind            varchar(128) COLLATE "C" NOT NULL,
    state           varchar(128) COLLATE "C" NOT NULL,
    summary         TEXT NOT NULL,
    subjects        TEXT NOT NULL,
    fired_at        timestamptz NOT NULL,
    resolved_at     timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by varchar(128) COLLATE "C" NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX alerts_tenant_idx ON alerts (tenant_id, id);
CREATE INDEX alerts_tenant_state_idx ON alerts (tenant_id, state, id);

CREATE TABLE alert_deliveries (
    id               varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id        varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_id       varchar(128) COLLATE "C" NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    alert_id         varchar(128) COLLATE "C" NOT NULL,
    message_id       varchar(128) COLLATE "C" NOT NULL,
    payload          TEXT NOT NULL,
    state            varchar(128) COLLATE "C" NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    lease_owner      varchar(128) COLLATE "C" NOT NULL,
    lease_until      timestamptz,
    last_status      INTEGER NOT NULL,
    last_latency_ms  bigint NOT NULL,
    last_error       TEXT NOT NULL,
    response_excerpt TEXT NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    delivered_at     timestamptz
);
CREATE INDEX alert_deliveries_tenant_idx ON alert_deliveries (tenant_id, id);
CREATE INDEX alert_deliveries_channel_idx ON alert_deliveries (tenant_id, channel_id, id);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (state, next_attempt_at);

CREATE TABLE push_subscriptions (
    id         varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id  varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    varchar(128) COLLATE "C" NOT NULL,
    endpoint   varchar(1024) COLLATE "C" NOT NULL,
    p256dh     text NOT NULL,
    auth       text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint_idx ON push_subscriptions (tenant_id, endpoint);

CREATE TABLE server_secrets (
    name       varchar(64) COLLATE "C" PRIMARY KEY,
    sealed     bytea NOT NULL,
    created_at timestamptz NOT NULL
);
