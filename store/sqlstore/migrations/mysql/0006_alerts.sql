-- ESP Admin schema, version 6 (MySQL 8 / MariaDB 10.6+): alerts. Rules and channels per tenant, the alert
-- history, and the delivery outbox that doubles as the delivery log (leased rows, so several
-- replicas can share it).

CREATE TABLE alert_channels (
    id            VARCHAR(128) PRIMARY KEY,
    tenant_id     VARCHAR(128) NOT NULL,
    name          TEXT NOT NULL,
    kind          VARCHAR(128) NOT NULL,
    target        TEXT NOT NULL,
    options       TEXT NOT NULL,
    secret_sealed BLOB,
    enabled       BOOLEAN NOT NULL,
    created_at    DATETIME(3) NOT NULL,
    updated_at    DATETIME(3) NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX alert_channels_tenant_idx ON alert_channels (tenant_id, id);

CREATE TABLE alert_rules (
    id               VARCHAR(128) PRIMARY KEY,
    tenant_id        VARCHAR(128) NOT NULL,
    name             TEXT NOT NULL,
    kind             VARCHAR(128) NOT NULL,
    project_id       VARCHAR(128) NOT NULL,
    tag              VARCHAR(128) NOT NULL,
    device_id        VARCHAR(128) NOT NULL,
    params           TEXT NOT NULL,
    channel_ids      TEXT NOT NULL,
    cooldown_seconds INTEGER NOT NULL,
    enabled          BOOLEAN NOT NULL,
    created_by       VARCHAR(128) NOT NULL,
    created_at       DATETIME(3) NOT NULL,
    updated_at       DATETIME(3) NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX alert_rules_tenant_idx ON alert_rules (tenant_id, id);

CREATE TABLE alerts (
    id              VARCHAR(128) PRIMARY KEY,
    tenant_id       VARCHAR(128) NOT NULL,
    rule_id         VARCHAR(128) NOT NULL,
    rule_name       TEXT NOT NULL,
    kind            VARCHAR(128) NOT NULL,
    state           VARCHAR(128) NOT NULL,
    summary         TEXT NOT NULL,
    subjects        TEXT NOT NULL,
    fired_at        DATETIME(3) NOT NULL,
    resolved_at     DATETIME(3),
    acknowledged_at DATETIME(3),
    acknowledged_by VARCHAR(128) NOT NULL,
    updated_at      DATETIME(3) NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX alerts_tenant_idx ON alerts (tenant_id, id);
CREATE INDEX alerts_tenant_state_idx ON alerts (tenant_id, state, id);

CREATE TABLE alert_deliveries (
    id               VARCHAR(128) PRIMARY KEY,
    tenant_id        VARCHAR(128) NOT NULL,
    channel_id       VARCHAR(128) NOT NULL,
    alert_id         VARCHAR(128) NOT NULL,
    message_id       VARCHAR(128) NOT NULL,
    payload          MEDIUMTEXT NOT NULL,
    state            VARCHAR(128) NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  DATETIME(3) NOT NULL,
    lease_owner      VARCHAR(128) NOT NULL,
    lease_until      DATETIME(3),
    last_status      INTEGER NOT NULL,
    last_latency_ms  BIGINT NOT NULL,
    last_error       TEXT NOT NULL,
    response_excerpt TEXT NOT NULL,
    created_at       DATETIME(3) NOT NULL,
    updated_at       DATETIME(3) NOT NULL,
    delivered_at     DATETIME(3),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    FOREIGN KEY (channel_id) REFERENCES alert_channels (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX alert_deliveries_tenant_idx ON alert_deliveries (tenant_id, id);
CREATE INDEX alert_deliveries_channel_idx ON alert_deliveries (tenant_id, channel_id, id);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (state, next_attempt_at);

CREATE TABLE push_subscriptions (
    id         VARCHAR(128) PRIMARY KEY,
    tenant_id  VARCHAR(128) NOT NULL,
    user_id    VARCHAR(128) NOT NULL,
    endpoint   VARCHAR(600) NOT NULL,
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    created_at DATETIME(3) NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX push_subscriptions_endpoint_idx ON push_subscriptions (tenant_id, endpoint);

CREATE TABLE server_secrets (
    name       VARCHAR(64) PRIMARY KEY,
    sealed     BLOB NOT NULL,
    created_at DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
