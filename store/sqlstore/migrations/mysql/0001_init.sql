-- ESP Admin schema, version 1 (MySQL 8 / MariaDB 10.6+).
-- Tables use utf8mb4_bin: comparisons and ordering are bytewise, as on SQLite and PostgreSQL
-- (a case-insensitive collation would make "A" and "a" collide in unique keys).
-- Times are DATETIME(3) holding UTC (the store converts; the session time_zone is +00:00).

CREATE TABLE tenants (
    id         VARCHAR(128) PRIMARY KEY,
    slug       VARCHAR(100) NOT NULL,
    name       TEXT         NOT NULL,
    created_at DATETIME(3)  NOT NULL,
    updated_at DATETIME(3)  NOT NULL,
    CONSTRAINT tenants_slug_key UNIQUE (slug)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE tenant_settings (
    tenant_id              VARCHAR(128) PRIMARY KEY,
    broker_mode            VARCHAR(32)  NOT NULL,
    broker_url             TEXT         NOT NULL,
    broker_username        TEXT         NOT NULL,
    broker_password_sealed BLOB,
    broker_ca_cert_pem     TEXT         NOT NULL,
    broker_topic_root      TEXT         NOT NULL,
    broker_client_id       TEXT         NOT NULL,
    bugsnag_api_key_sealed BLOB,
    bugsnag_notify_url     TEXT         NOT NULL,
    bugsnag_release_stage  TEXT         NOT NULL,
    version                BIGINT       NOT NULL,
    updated_at             DATETIME(3),
    updated_by             VARCHAR(128) NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE users (
    id             VARCHAR(128) PRIMARY KEY,
    email          VARCHAR(320) NOT NULL,
    name           TEXT         NOT NULL,
    password_hash  TEXT         NOT NULL,
    email_verified BOOLEAN      NOT NULL,
    disabled       BOOLEAN      NOT NULL,
    last_login_at  DATETIME(3),
    created_at     DATETIME(3)  NOT NULL,
    updated_at     DATETIME(3)  NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE memberships (
    id         VARCHAR(128) PRIMARY KEY,
    tenant_id  VARCHAR(128) NOT NULL,
    user_id    VARCHAR(128) NOT NULL,
    role       VARCHAR(32)  NOT NULL,
    created_at DATETIME(3)  NOT NULL,
    updated_at DATETIME(3)  NOT NULL,
    CONSTRAINT memberships_tenant_user_key UNIQUE (tenant_id, user_id),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX memberships_user_idx ON memberships (user_id);
CREATE INDEX memberships_tenant_id_idx ON memberships (tenant_id, id);

CREATE TABLE identities (
    id         VARCHAR(128) PRIMARY KEY,
    user_id    VARCHAR(128) NOT NULL,
    provider   VARCHAR(64)  NOT NULL,
    subject    VARCHAR(255) NOT NULL,
    email      TEXT         NOT NULL,
    created_at DATETIME(3)  NOT NULL,
    CONSTRAINT identities_provider_subject_key UNIQUE (provider, subject),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX identities_user_idx ON identities (user_id);

CREATE TABLE sessions (
    id              VARCHAR(128) PRIMARY KEY,
    token_hash      VARBINARY(255)        NOT NULL,
    user_id         VARCHAR(128) NOT NULL,
    csrf_token      TEXT         NOT NULL,
    user_agent      TEXT         NOT NULL,
    remote_addr     TEXT         NOT NULL,
    created_at      DATETIME(3)  NOT NULL,
    last_seen_at    DATETIME(3),
    idle_expires_at DATETIME(3),
    expires_at      DATETIME(3),
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_idle_expires_idx ON sessions (idle_expires_at);

CREATE TABLE api_tokens (
    id           VARCHAR(128) PRIMARY KEY,
    tenant_id    VARCHAR(128) NOT NULL,
    user_id      VARCHAR(128), -- NULL: tenant token
    name         TEXT         NOT NULL,
    prefix       TEXT         NOT NULL,
    hash         VARBINARY(255)        NOT NULL,
    scopes       TEXT         NOT NULL, -- JSON array of strings
    expires_at   DATETIME(3),
    last_used_at DATETIME(3),
    created_by   VARCHAR(128) NOT NULL,
    created_at   DATETIME(3)  NOT NULL,
    CONSTRAINT api_tokens_hash_key UNIQUE (hash),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX api_tokens_tenant_id_idx ON api_tokens (tenant_id, id);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE invitations (
    id          VARCHAR(128) PRIMARY KEY,
    tenant_id   VARCHAR(128) NOT NULL,
    email       VARCHAR(320) NOT NULL,
    role        VARCHAR(32)  NOT NULL,
    token_hash  VARBINARY(255)        NOT NULL,
    invited_by  VARCHAR(128) NOT NULL,
    expires_at  DATETIME(3),
    accepted_at DATETIME(3),
    accepted_by VARCHAR(128) NOT NULL,
    created_at  DATETIME(3)  NOT NULL,
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX invitations_tenant_id_idx ON invitations (tenant_id, id);

CREATE TABLE one_time_tokens (
    id         VARCHAR(128) PRIMARY KEY,
    kind       VARCHAR(32)  NOT NULL,
    hash       VARBINARY(255)        NOT NULL,
    user_id    VARCHAR(128), -- NULL: setup token
    expires_at DATETIME(3),
    used_at    DATETIME(3),
    created_at DATETIME(3)  NOT NULL,
    CONSTRAINT one_time_tokens_hash_key UNIQUE (hash),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, kind);

CREATE TABLE projects (
    id                     VARCHAR(128) PRIMARY KEY,
    tenant_id              VARCHAR(128) NOT NULL,
    name                   VARCHAR(255) NOT NULL,
    description            TEXT         NOT NULL,
    repository_url         TEXT         NOT NULL,
    signing_enabled        BOOLEAN      NOT NULL,
    signing_public_key     BLOB,
    signing_key_sealed     BLOB,
    public_downloads       BOOLEAN      NOT NULL,
    version_mismatch       VARCHAR(32)  NOT NULL,
    bugsnag_api_key_sealed BLOB,
    bugsnag_release_stage  TEXT         NOT NULL,
    created_at             DATETIME(3)  NOT NULL,
    updated_at             DATETIME(3)  NOT NULL,
    CONSTRAINT projects_tenant_name_key UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX projects_tenant_id_idx ON projects (tenant_id, id);

CREATE TABLE releases (
    id                 VARCHAR(128) PRIMARY KEY,
    tenant_id          VARCHAR(128) NOT NULL,
    project_id         VARCHAR(128) NOT NULL,
    version            VARCHAR(100) NOT NULL,
    notes              TEXT         NOT NULL,
    blob_key           TEXT         NOT NULL,
    size               BIGINT       NOT NULL,
    sha256             VARCHAR(64)  NOT NULL,
    image_chip         TEXT         NOT NULL,
    image_project_name TEXT         NOT NULL,
    image_app_version  TEXT         NOT NULL,
    image_idf_version  TEXT         NOT NULL,
    image_build_date   TEXT         NOT NULL,
    image_build_time   TEXT         NOT NULL,
    image_elf_sha256   TEXT         NOT NULL,
    created_by         VARCHAR(128) NOT NULL,
    created_at         DATETIME(3)  NOT NULL,
    CONSTRAINT releases_tenant_project_version_key UNIQUE (tenant_id, project_id, version),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX releases_tenant_project_id_idx ON releases (tenant_id, project_id, id);

CREATE TABLE devices (
    id                     VARCHAR(128) PRIMARY KEY, -- unique across tenants: it is the MQTT client ID
    tenant_id              VARCHAR(128) NOT NULL,
    name                   TEXT         NOT NULL,
    project_id             VARCHAR(128), -- NULL: not linked
    tags                   TEXT         NOT NULL, -- JSON array, in the caller's order; device_tags indexes it
    secret_hash            VARBINARY(255),
    key_sealed             BLOB,
    disabled               BOOLEAN      NOT NULL,
    credentials_rotated_at DATETIME(3),
    online                 BOOLEAN      NOT NULL,
    presence_changed_at    DATETIME(3),
    last_seen_at           DATETIME(3),
    firmware_version       VARCHAR(100) NOT NULL,
    meta_project_name      TEXT         NOT NULL,
    chip_model             TEXT         NOT NULL,
    chip_revision          INT      NOT NULL,
    idf_version            TEXT         NOT NULL,
    mac                    TEXT         NOT NULL,
    ip                     TEXT         NOT NULL,
    rssi                   INT      NOT NULL,
    free_heap              BIGINT       NOT NULL,
    uptime_seconds         BIGINT       NOT NULL,
    reset_reason           TEXT         NOT NULL,
    meta_config_version    BIGINT       NOT NULL,
    protocol_version       INT      NOT NULL,
    metadata_updated_at    DATETIME(3),
    config_desired_version BIGINT       NOT NULL,
    config_desired_hash    TEXT         NOT NULL,
    config_applied_version BIGINT       NOT NULL,
    config_state           VARCHAR(32)  NOT NULL,
    config_error           TEXT         NOT NULL,
    config_updated_at      DATETIME(3),
    created_at             DATETIME(3)  NOT NULL,
    updated_at             DATETIME(3)  NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX devices_tenant_id_idx ON devices (tenant_id, id);
CREATE INDEX devices_tenant_project_idx ON devices (tenant_id, project_id, id);
CREATE INDEX devices_tenant_online_idx ON devices (tenant_id, online, id);
CREATE INDEX devices_tenant_firmware_idx ON devices (tenant_id, firmware_version, id);

CREATE TABLE device_tags (
    tenant_id VARCHAR(128) NOT NULL,
    device_id VARCHAR(128) NOT NULL,
    tag       VARCHAR(255) NOT NULL,
    PRIMARY KEY (tenant_id, device_id, tag),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX device_tags_tag_idx ON device_tags (tenant_id, tag, device_id);

CREATE TABLE config_entries (
    tenant_id    VARCHAR(128) NOT NULL,
    scope        VARCHAR(16)  NOT NULL,
    scope_id     VARCHAR(128) NOT NULL,
    config_key   VARCHAR(255) NOT NULL,
    type         VARCHAR(16)  NOT NULL,
    value        TEXT         NOT NULL,
    secret       BOOLEAN      NOT NULL,
    value_sealed BLOB,
    version      BIGINT       NOT NULL,
    updated_by   VARCHAR(128) NOT NULL,
    updated_at   DATETIME(3),
    PRIMARY KEY (tenant_id, scope, scope_id, config_key),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE config_versions (
    tenant_id  VARCHAR(128) NOT NULL,
    device_id  VARCHAR(128) NOT NULL,
    version    BIGINT       NOT NULL,
    hash       TEXT         NOT NULL,
    snapshot   LONGTEXT         NOT NULL,
    reason     TEXT         NOT NULL,
    created_by VARCHAR(128) NOT NULL,
    created_at DATETIME(3)  NOT NULL,
    PRIMARY KEY (tenant_id, device_id, version),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE commands (
    id           VARCHAR(128) PRIMARY KEY,
    tenant_id    VARCHAR(128) NOT NULL,
    device_id    VARCHAR(128) NOT NULL,
    name         VARCHAR(64)  NOT NULL,
    payload      TEXT         NOT NULL,
    state        VARCHAR(16)  NOT NULL,
    result       TEXT         NOT NULL,
    error        TEXT         NOT NULL,
    rollout_id   VARCHAR(128) NOT NULL,
    created_by   VARCHAR(128) NOT NULL,
    created_at   DATETIME(3)  NOT NULL,
    expires_at   DATETIME(3), -- NULL: never expires
    delivered_at DATETIME(3),
    completed_at DATETIME(3),
    updated_at   DATETIME(3)  NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX commands_tenant_id_idx ON commands (tenant_id, id);
CREATE INDEX commands_tenant_device_idx ON commands (tenant_id, device_id, id);
CREATE INDEX commands_tenant_state_idx ON commands (tenant_id, state, expires_at);
CREATE INDEX commands_tenant_rollout_idx ON commands (tenant_id, rollout_id, id);

CREATE TABLE rollouts (
    id                 VARCHAR(128) PRIMARY KEY,
    tenant_id          VARCHAR(128) NOT NULL,
    project_id         VARCHAR(128) NOT NULL,
    release_id         VARCHAR(128) NOT NULL,
    target_kind        VARCHAR(16)  NOT NULL,
    target_tag         TEXT         NOT NULL,
    target_device_ids  TEXT         NOT NULL, -- JSON array of device IDs
    target_percent     INT      NOT NULL,
    stages             TEXT         NOT NULL, -- JSON array of percentages
    current_stage      INT      NOT NULL,
    failure_threshold  DOUBLE NOT NULL,
    state              VARCHAR(16)  NOT NULL,
    pause_reason       TEXT         NOT NULL,
    version            BIGINT       NOT NULL,
    created_by         VARCHAR(128) NOT NULL,
    created_at         DATETIME(3)  NOT NULL,
    updated_at         DATETIME(3)  NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rollouts_tenant_id_idx ON rollouts (tenant_id, id);
CREATE INDEX rollouts_tenant_project_idx ON rollouts (tenant_id, project_id, id);
CREATE INDEX rollouts_tenant_state_idx ON rollouts (tenant_id, state, id);

CREATE TABLE rollout_devices (
    tenant_id  VARCHAR(128) NOT NULL,
    rollout_id VARCHAR(128) NOT NULL,
    device_id  VARCHAR(128) NOT NULL,
    state      VARCHAR(16)  NOT NULL,
    progress   INT      NOT NULL,
    reason     TEXT         NOT NULL,
    command_id VARCHAR(128) NOT NULL,
    updated_at DATETIME(3),
    PRIMARY KEY (tenant_id, rollout_id, device_id),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rollout_devices_device_idx ON rollout_devices (tenant_id, device_id);

CREATE TABLE error_groups (
    id               VARCHAR(128) PRIMARY KEY,
    tenant_id        VARCHAR(128) NOT NULL,
    project_id       VARCHAR(128) NOT NULL,
    fingerprint      VARCHAR(255) NOT NULL,
    type             TEXT         NOT NULL,
    message          TEXT         NOT NULL,
    firmware_version TEXT         NOT NULL,
    count            BIGINT       NOT NULL,
    first_seen       DATETIME(3),
    last_seen        DATETIME(3),
    resolved         BOOLEAN      NOT NULL,
    resolved_at      DATETIME(3),
    resolved_by      VARCHAR(128) NOT NULL,
    CONSTRAINT error_groups_tenant_fingerprint_key UNIQUE (tenant_id, fingerprint),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX error_groups_tenant_id_idx ON error_groups (tenant_id, id);
CREATE INDEX error_groups_tenant_project_idx ON error_groups (tenant_id, project_id, id);

CREATE TABLE error_group_devices (
    tenant_id  VARCHAR(128) NOT NULL,
    group_id   VARCHAR(128) NOT NULL,
    device_id  VARCHAR(128) NOT NULL,
    count      BIGINT       NOT NULL,
    first_seen DATETIME(3),
    last_seen  DATETIME(3),
    PRIMARY KEY (tenant_id, group_id, device_id),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX error_group_devices_device_idx ON error_group_devices (tenant_id, device_id, group_id);

CREATE TABLE error_reports (
    id               VARCHAR(128) PRIMARY KEY,
    tenant_id        VARCHAR(128) NOT NULL,
    device_id        VARCHAR(128) NOT NULL,
    project_id       VARCHAR(128) NOT NULL,
    group_id         VARCHAR(128) NOT NULL,
    fingerprint      VARCHAR(255) NOT NULL,
    message          TEXT         NOT NULL,
    type             TEXT         NOT NULL,
    code             TEXT         NOT NULL,
    severity         VARCHAR(16)  NOT NULL,
    stack            TEXT         NOT NULL,
    reset_reason     TEXT         NOT NULL,
    firmware_version TEXT         NOT NULL,
    uptime_seconds   BIGINT       NOT NULL,
    free_heap        BIGINT       NOT NULL,
    core_dump        LONGTEXT         NOT NULL,
    received_at      DATETIME(3),
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX error_reports_tenant_group_idx ON error_reports (tenant_id, group_id, id);
CREATE INDEX error_reports_tenant_device_idx ON error_reports (tenant_id, device_id, id);

CREATE TABLE audit_events (
    id             VARCHAR(128) PRIMARY KEY,
    tenant_id      VARCHAR(128) NOT NULL,
    actor_user_id  VARCHAR(128) NOT NULL,
    actor_token_id VARCHAR(128) NOT NULL,
    action         VARCHAR(100) NOT NULL,
    resource_type  VARCHAR(64)  NOT NULL,
    resource_id    VARCHAR(128) NOT NULL,
    remote_addr    TEXT         NOT NULL,
    details        TEXT         NOT NULL,
    created_at     DATETIME(3)  NOT NULL,
    FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX audit_events_tenant_id_idx ON audit_events (tenant_id, id);
CREATE INDEX audit_events_tenant_resource_idx ON audit_events (tenant_id, resource_type, resource_id, id);
CREATE INDEX audit_events_tenant_actor_idx ON audit_events (tenant_id, actor_user_id, id);
