-- ESP Admin schema, version 1 (SQLite).
-- Times are TEXT as bun writes them: 'YYYY-MM-DD HH:MM:SS.ffffff+00:00', always in UTC, so text
-- comparison is time order. Booleans are INTEGER 0/1. Text compares bytewise (BINARY).

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    slug       TEXT NOT NULL,
    name       TEXT         NOT NULL,
    created_at TEXT  NOT NULL,
    updated_at TEXT  NOT NULL,
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);

CREATE TABLE tenant_settings (
    tenant_id              TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    broker_mode            TEXT  NOT NULL,
    broker_url             TEXT         NOT NULL,
    broker_username        TEXT         NOT NULL,
    broker_password_sealed BLOB,
    broker_ca_cert_pem     TEXT         NOT NULL,
    broker_topic_root      TEXT         NOT NULL,
    broker_client_id       TEXT         NOT NULL,
    bugsnag_api_key_sealed BLOB,
    bugsnag_notify_url     TEXT         NOT NULL,
    bugsnag_release_stage  TEXT         NOT NULL,
    version                INTEGER       NOT NULL,
    updated_at             TEXT,
    updated_by             TEXT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL,
    name           TEXT         NOT NULL,
    password_hash  TEXT         NOT NULL,
    email_verified INTEGER      NOT NULL,
    disabled       INTEGER      NOT NULL,
    last_login_at  TEXT,
    created_at     TEXT  NOT NULL,
    updated_at     TEXT  NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE memberships (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT  NOT NULL,
    created_at TEXT  NOT NULL,
    updated_at TEXT  NOT NULL,
    CONSTRAINT memberships_tenant_user_key UNIQUE (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);
CREATE INDEX memberships_tenant_id_idx ON memberships (tenant_id, id);

CREATE TABLE identities (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   TEXT  NOT NULL,
    subject    TEXT NOT NULL,
    email      TEXT         NOT NULL,
    created_at TEXT  NOT NULL,
    CONSTRAINT identities_provider_subject_key UNIQUE (provider, subject)
);
CREATE INDEX identities_user_idx ON identities (user_id);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    token_hash      BLOB        NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token      TEXT         NOT NULL,
    user_agent      TEXT         NOT NULL,
    remote_addr     TEXT         NOT NULL,
    created_at      TEXT  NOT NULL,
    last_seen_at    TEXT,
    idle_expires_at TEXT,
    expires_at      TEXT,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_idle_expires_idx ON sessions (idle_expires_at);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE, -- NULL: tenant token
    name         TEXT         NOT NULL,
    prefix       TEXT         NOT NULL,
    hash         BLOB        NOT NULL,
    scopes       TEXT         NOT NULL, -- JSON array of strings
    expires_at   TEXT,
    last_used_at TEXT,
    created_by   TEXT NOT NULL,
    created_at   TEXT  NOT NULL,
    CONSTRAINT api_tokens_hash_key UNIQUE (hash)
);
CREATE INDEX api_tokens_tenant_id_idx ON api_tokens (tenant_id, id);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT  NOT NULL,
    token_hash  BLOB        NOT NULL,
    invited_by  TEXT NOT NULL,
    expires_at  TEXT,
    accepted_at TEXT,
    accepted_by TEXT NOT NULL,
    created_at  TEXT  NOT NULL,
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX invitations_tenant_id_idx ON invitations (tenant_id, id);

CREATE TABLE one_time_tokens (
    id         TEXT PRIMARY KEY,
    kind       TEXT  NOT NULL,
    hash       BLOB        NOT NULL,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE, -- NULL: setup token
    expires_at TEXT,
    used_at    TEXT,
    created_at TEXT  NOT NULL,
    CONSTRAINT one_time_tokens_hash_key UNIQUE (hash)
);
CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, kind);

CREATE TABLE projects (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                   TEXT NOT NULL,
    description            TEXT         NOT NULL,
    repository_url         TEXT         NOT NULL,
    signing_enabled        INTEGER      NOT NULL,
    signing_public_key     BLOB,
    signing_key_sealed     BLOB,
    public_downloads       INTEGER      NOT NULL,
    version_mismatch       TEXT  NOT NULL,
    bugsnag_api_key_sealed BLOB,
    bugsnag_release_stage  TEXT         NOT NULL,
    created_at             TEXT  NOT NULL,
    updated_at             TEXT  NOT NULL,
    CONSTRAINT projects_tenant_name_key UNIQUE (tenant_id, name)
);
CREATE INDEX projects_tenant_id_idx ON projects (tenant_id, id);

CREATE TABLE releases (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id         TEXT NOT NULL,
    version            TEXT NOT NULL,
    notes              TEXT         NOT NULL,
    blob_key           TEXT         NOT NULL,
    size               INTEGER       NOT NULL,
    sha256             TEXT  NOT NULL,
    image_chip         TEXT         NOT NULL,
    image_project_name TEXT         NOT NULL,
    image_app_version  TEXT         NOT NULL,
    image_idf_version  TEXT         NOT NULL,
    image_build_date   TEXT         NOT NULL,
    image_build_time   TEXT         NOT NULL,
    image_elf_sha256   TEXT         NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         TEXT  NOT NULL,
    CONSTRAINT releases_tenant_project_version_key UNIQUE (tenant_id, project_id, version)
);
CREATE INDEX releases_tenant_project_id_idx ON releases (tenant_id, project_id, id);

CREATE TABLE devices (
    id                     TEXT PRIMARY KEY, -- unique across tenants: it is the MQTT client ID
    tenant_id              TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                   TEXT         NOT NULL,
    project_id             TEXT, -- NULL: not linked
    tags                   TEXT         NOT NULL, -- JSON array, in the caller's order; device_tags indexes it
    secret_hash            BLOB,
    key_sealed             BLOB,
    disabled               INTEGER      NOT NULL,
    credentials_rotated_at TEXT,
    online                 INTEGER      NOT NULL,
    presence_changed_at    TEXT,
    last_seen_at           TEXT,
    firmware_version       TEXT NOT NULL,
    meta_project_name      TEXT         NOT NULL,
    chip_model             TEXT         NOT NULL,
    chip_revision          INTEGER      NOT NULL,
    idf_version            TEXT         NOT NULL,
    mac                    TEXT         NOT NULL,
    ip                     TEXT         NOT NULL,
    rssi                   INTEGER      NOT NULL,
    free_heap              INTEGER       NOT NULL,
    uptime_seconds         INTEGER       NOT NULL,
    reset_reason           TEXT         NOT NULL,
    meta_config_version    INTEGER       NOT NULL,
    protocol_version       INTEGER      NOT NULL,
    metadata_updated_at    TEXT,
    config_desired_version INTEGER       NOT NULL,
    config_desired_hash    TEXT         NOT NULL,
    config_applied_version INTEGER       NOT NULL,
    config_state           TEXT  NOT NULL,
    config_error           TEXT         NOT NULL,
    config_updated_at      TEXT,
    created_at             TEXT  NOT NULL,
    updated_at             TEXT  NOT NULL
);
CREATE INDEX devices_tenant_id_idx ON devices (tenant_id, id);
CREATE INDEX devices_tenant_project_idx ON devices (tenant_id, project_id, id);
CREATE INDEX devices_tenant_online_idx ON devices (tenant_id, online, id);
CREATE INDEX devices_tenant_firmware_idx ON devices (tenant_id, firmware_version, id);

CREATE TABLE device_tags (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    tag       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, device_id, tag)
);
CREATE INDEX device_tags_tag_idx ON device_tags (tenant_id, tag, device_id);

CREATE TABLE config_entries (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    scope        TEXT  NOT NULL,
    scope_id     TEXT NOT NULL,
    config_key   TEXT NOT NULL,
    type         TEXT  NOT NULL,
    value        TEXT         NOT NULL,
    secret       INTEGER      NOT NULL,
    value_sealed BLOB,
    version      INTEGER       NOT NULL,
    updated_by   TEXT NOT NULL,
    updated_at   TEXT,
    PRIMARY KEY (tenant_id, scope, scope_id, config_key)
);

CREATE TABLE config_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id  TEXT NOT NULL,
    version    INTEGER       NOT NULL,
    hash       TEXT         NOT NULL,
    snapshot   TEXT         NOT NULL,
    reason     TEXT         NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT  NOT NULL,
    PRIMARY KEY (tenant_id, device_id, version)
);

CREATE TABLE commands (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id    TEXT NOT NULL,
    name         TEXT  NOT NULL,
    payload      TEXT         NOT NULL,
    state        TEXT  NOT NULL,
    result       TEXT         NOT NULL,
    error        TEXT         NOT NULL,
    rollout_id   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT  NOT NULL,
    expires_at   TEXT, -- NULL: never expires
    delivered_at TEXT,
    completed_at TEXT,
    updated_at   TEXT  NOT NULL
);
CREATE INDEX commands_tenant_id_idx ON commands (tenant_id, id);
CREATE INDEX commands_tenant_device_idx ON commands (tenant_id, device_id, id);
CREATE INDEX commands_tenant_state_idx ON commands (tenant_id, state, expires_at);
CREATE INDEX commands_tenant_rollout_idx ON commands (tenant_id, rollout_id, id);

CREATE TABLE rollouts (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id         TEXT NOT NULL,
    release_id         TEXT NOT NULL,
    target_kind        TEXT  NOT NULL,
    target_tag         TEXT         NOT NULL,
    target_device_ids  TEXT         NOT NULL, -- JSON array of device IDs
    target_percent     INTEGER      NOT NULL,
    stages             TEXT         NOT NULL, -- JSON array of percentages
    current_stage      INTEGER      NOT NULL,
    failure_threshold  REAL NOT NULL,
    state              TEXT  NOT NULL,
    pause_reason       TEXT         NOT NULL,
    version            INTEGER       NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         TEXT  NOT NULL,
    updated_at         TEXT  NOT NULL
);
CREATE INDEX rollouts_tenant_id_idx ON rollouts (tenant_id, id);
CREATE INDEX rollouts_tenant_project_idx ON rollouts (tenant_id, project_id, id);
CREATE INDEX rollouts_tenant_state_idx ON rollouts (tenant_id, state, id);

CREATE TABLE rollout_devices (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rollout_id TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    state      TEXT  NOT NULL,
    progress   INTEGER      NOT NULL,
    reason     TEXT         NOT NULL,
    command_id TEXT NOT NULL,
    updated_at TEXT,
    PRIMARY KEY (tenant_id, rollout_id, device_id)
);
CREATE INDEX rollout_devices_device_idx ON rollout_devices (tenant_id, device_id);

CREATE TABLE error_groups (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id       TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    type             TEXT         NOT NULL,
    message          TEXT         NOT NULL,
    firmware_version TEXT         NOT NULL,
    count            INTEGER       NOT NULL,
    first_seen       TEXT,
    last_seen        TEXT,
    resolved         INTEGER      NOT NULL,
    resolved_at      TEXT,
    resolved_by      TEXT NOT NULL,
    CONSTRAINT error_groups_tenant_fingerprint_key UNIQUE (tenant_id, fingerprint)
);
CREATE INDEX error_groups_tenant_id_idx ON error_groups (tenant_id, id);
CREATE INDEX error_groups_tenant_project_idx ON error_groups (tenant_id, project_id, id);

CREATE TABLE error_group_devices (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id   TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    count      INTEGER       NOT NULL,
    first_seen TEXT,
    last_seen  TEXT,
    PRIMARY KEY (tenant_id, group_id, device_id)
);
CREATE INDEX error_group_devices_device_idx ON error_group_devices (tenant_id, device_id, group_id);

CREATE TABLE error_reports (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id        TEXT NOT NULL,
    project_id       TEXT NOT NULL,
    group_id         TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    message          TEXT         NOT NULL,
    type             TEXT         NOT NULL,
    code             TEXT         NOT NULL,
    severity         TEXT  NOT NULL,
    stack            TEXT         NOT NULL,
    reset_reason     TEXT         NOT NULL,
    firmware_version TEXT         NOT NULL,
    uptime_seconds   INTEGER       NOT NULL,
    free_heap        INTEGER       NOT NULL,
    core_dump        TEXT         NOT NULL,
    received_at      TEXT
);
CREATE INDEX error_reports_tenant_group_idx ON error_reports (tenant_id, group_id, id);
CREATE INDEX error_reports_tenant_device_idx ON error_reports (tenant_id, device_id, id);

CREATE TABLE audit_events (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor_user_id  TEXT NOT NULL,
    actor_token_id TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource_type  TEXT  NOT NULL,
    resource_id    TEXT NOT NULL,
    remote_addr    TEXT         NOT NULL,
    details        TEXT         NOT NULL,
    created_at     TEXT  NOT NULL
);
CREATE INDEX audit_events_tenant_id_idx ON audit_events (tenant_id, id);
CREATE INDEX audit_events_tenant_resource_idx ON audit_events (tenant_id, resource_type, resource_id, id);
CREATE INDEX audit_events_tenant_actor_idx ON audit_events (tenant_id, actor_user_id, id);
