-- ESP Admin schema, version 1 (PostgreSQL).
-- Identifiers and keys use the "C" collation so that ordering (cursor pagination, config keys)
-- is byte order, the same as on SQLite and MySQL (utf8mb4_bin), whatever the database locale.

CREATE TABLE tenants (
    id         varchar(128) COLLATE "C" PRIMARY KEY,
    slug       varchar(100) COLLATE "C" NOT NULL,
    name       text         NOT NULL,
    created_at timestamptz  NOT NULL,
    updated_at timestamptz  NOT NULL,
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);

CREATE TABLE tenant_settings (
    tenant_id              varchar(128) COLLATE "C" PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    broker_mode            varchar(32)  NOT NULL,
    broker_url             text         NOT NULL,
    broker_username        text         NOT NULL,
    broker_password_sealed bytea,
    broker_ca_cert_pem     text         NOT NULL,
    broker_topic_root      text         NOT NULL,
    broker_client_id       text         NOT NULL,
    bugsnag_api_key_sealed bytea,
    bugsnag_notify_url     text         NOT NULL,
    bugsnag_release_stage  text         NOT NULL,
    version                bigint       NOT NULL,
    updated_at             timestamptz,
    updated_by             varchar(128) NOT NULL
);

CREATE TABLE users (
    id             varchar(128) COLLATE "C" PRIMARY KEY,
    email          varchar(320) COLLATE "C" NOT NULL,
    name           text         NOT NULL,
    password_hash  text         NOT NULL,
    email_verified boolean      NOT NULL,
    disabled       boolean      NOT NULL,
    last_login_at  timestamptz,
    created_at     timestamptz  NOT NULL,
    updated_at     timestamptz  NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE memberships (
    id         varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id  varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    varchar(128) COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       varchar(32)  NOT NULL,
    created_at timestamptz  NOT NULL,
    updated_at timestamptz  NOT NULL,
    CONSTRAINT memberships_tenant_user_key UNIQUE (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);
CREATE INDEX memberships_tenant_id_idx ON memberships (tenant_id, id);

CREATE TABLE identities (
    id         varchar(128) COLLATE "C" PRIMARY KEY,
    user_id    varchar(128) COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   varchar(64)  COLLATE "C" NOT NULL,
    subject    varchar(255) COLLATE "C" NOT NULL,
    email      text         NOT NULL,
    created_at timestamptz  NOT NULL,
    CONSTRAINT identities_provider_subject_key UNIQUE (provider, subject)
);
CREATE INDEX identities_user_idx ON identities (user_id);

CREATE TABLE sessions (
    id              varchar(128) COLLATE "C" PRIMARY KEY,
    token_hash      bytea        NOT NULL,
    user_id         varchar(128) COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token      text         NOT NULL,
    user_agent      text         NOT NULL,
    remote_addr     text         NOT NULL,
    created_at      timestamptz  NOT NULL,
    last_seen_at    timestamptz,
    idle_expires_at timestamptz,
    expires_at      timestamptz,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX sessions_idle_expires_idx ON sessions (idle_expires_at);

CREATE TABLE api_tokens (
    id           varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id    varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      varchar(128) COLLATE "C" REFERENCES users (id) ON DELETE CASCADE, -- NULL: tenant token
    name         text         NOT NULL,
    prefix       text         NOT NULL,
    hash         bytea        NOT NULL,
    scopes       text         NOT NULL, -- JSON array of strings
    expires_at   timestamptz,
    last_used_at timestamptz,
    created_by   varchar(128) NOT NULL,
    created_at   timestamptz  NOT NULL,
    CONSTRAINT api_tokens_hash_key UNIQUE (hash)
);
CREATE INDEX api_tokens_tenant_id_idx ON api_tokens (tenant_id, id);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE invitations (
    id          varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id   varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       varchar(320) NOT NULL,
    role        varchar(32)  NOT NULL,
    token_hash  bytea        NOT NULL,
    invited_by  varchar(128) NOT NULL,
    expires_at  timestamptz,
    accepted_at timestamptz,
    accepted_by varchar(128) NOT NULL,
    created_at  timestamptz  NOT NULL,
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX invitations_tenant_id_idx ON invitations (tenant_id, id);

CREATE TABLE one_time_tokens (
    id         varchar(128) COLLATE "C" PRIMARY KEY,
    kind       varchar(32)  NOT NULL,
    hash       bytea        NOT NULL,
    user_id    varchar(128) COLLATE "C" REFERENCES users (id) ON DELETE CASCADE, -- NULL: setup token
    expires_at timestamptz,
    used_at    timestamptz,
    created_at timestamptz  NOT NULL,
    CONSTRAINT one_time_tokens_hash_key UNIQUE (hash)
);
CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, kind);

CREATE TABLE projects (
    id                     varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id              varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                   varchar(255) COLLATE "C" NOT NULL,
    description            text         NOT NULL,
    repository_url         text         NOT NULL,
    signing_enabled        boolean      NOT NULL,
    signing_public_key     bytea,
    signing_key_sealed     bytea,
    public_downloads       boolean      NOT NULL,
    version_mismatch       varchar(32)  NOT NULL,
    bugsnag_api_key_sealed bytea,
    bugsnag_release_stage  text         NOT NULL,
    created_at             timestamptz  NOT NULL,
    updated_at             timestamptz  NOT NULL,
    CONSTRAINT projects_tenant_name_key UNIQUE (tenant_id, name)
);
CREATE INDEX projects_tenant_id_idx ON projects (tenant_id, id);

CREATE TABLE releases (
    id                 varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id          varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id         varchar(128) COLLATE "C" NOT NULL,
    version            varchar(100) COLLATE "C" NOT NULL,
    notes              text         NOT NULL,
    blob_key           text         NOT NULL,
    size               bigint       NOT NULL,
    sha256             varchar(64)  NOT NULL,
    image_chip         text         NOT NULL,
    image_project_name text         NOT NULL,
    image_app_version  text         NOT NULL,
    image_idf_version  text         NOT NULL,
    image_build_date   text         NOT NULL,
    image_build_time   text         NOT NULL,
    image_elf_sha256   text         NOT NULL,
    created_by         varchar(128) NOT NULL,
    created_at         timestamptz  NOT NULL,
    CONSTRAINT releases_tenant_project_version_key UNIQUE (tenant_id, project_id, version)
);
CREATE INDEX releases_tenant_project_id_idx ON releases (tenant_id, project_id, id);

CREATE TABLE devices (
    id                     varchar(128) COLLATE "C" PRIMARY KEY, -- unique across tenants: it is the MQTT client ID
    tenant_id              varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                   text         NOT NULL,
    project_id             varchar(128) COLLATE "C", -- NULL: not linked
    tags                   text         NOT NULL, -- JSON array, in the caller's order; device_tags indexes it
    secret_hash            bytea,
    key_sealed             bytea,
    disabled               boolean      NOT NULL,
    credentials_rotated_at timestamptz,
    online                 boolean      NOT NULL,
    presence_changed_at    timestamptz,
    last_seen_at           timestamptz,
    firmware_version       varchar(100) COLLATE "C" NOT NULL,
    meta_project_name      text         NOT NULL,
    chip_model             text         NOT NULL,
    chip_revision          integer      NOT NULL,
    idf_version            text         NOT NULL,
    mac                    text         NOT NULL,
    ip                     text         NOT NULL,
    rssi                   integer      NOT NULL,
    free_heap              bigint       NOT NULL,
    uptime_seconds         bigint       NOT NULL,
    reset_reason           text         NOT NULL,
    meta_config_version    bigint       NOT NULL,
    protocol_version       integer      NOT NULL,
    metadata_updated_at    timestamptz,
    config_desired_version bigint       NOT NULL,
    config_desired_hash    text         NOT NULL,
    config_applied_version bigint       NOT NULL,
    config_state           varchar(32)  NOT NULL,
    config_error           text         NOT NULL,
    config_updated_at      timestamptz,
    created_at             timestamptz  NOT NULL,
    updated_at             timestamptz  NOT NULL
);
CREATE INDEX devices_tenant_id_idx ON devices (tenant_id, id);
CREATE INDEX devices_tenant_project_idx ON devices (tenant_id, project_id, id);
CREATE INDEX devices_tenant_online_idx ON devices (tenant_id, online, id);
CREATE INDEX devices_tenant_firmware_idx ON devices (tenant_id, firmware_version, id);

CREATE TABLE device_tags (
    tenant_id varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id varchar(128) COLLATE "C" NOT NULL,
    tag       varchar(255) COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, device_id, tag)
);
CREATE INDEX device_tags_tag_idx ON device_tags (tenant_id, tag, device_id);

CREATE TABLE config_entries (
    tenant_id    varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    scope        varchar(16)  COLLATE "C" NOT NULL,
    scope_id     varchar(128) COLLATE "C" NOT NULL,
    config_key   varchar(255) COLLATE "C" NOT NULL,
    type         varchar(16)  NOT NULL,
    value        text         NOT NULL,
    secret       boolean      NOT NULL,
    value_sealed bytea,
    version      bigint       NOT NULL,
    updated_by   varchar(128) NOT NULL,
    updated_at   timestamptz,
    PRIMARY KEY (tenant_id, scope, scope_id, config_key)
);

CREATE TABLE config_versions (
    tenant_id  varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id  varchar(128) COLLATE "C" NOT NULL,
    version    bigint       NOT NULL,
    hash       text         NOT NULL,
    snapshot   text         NOT NULL,
    reason     text         NOT NULL,
    created_by varchar(128) NOT NULL,
    created_at timestamptz  NOT NULL,
    PRIMARY KEY (tenant_id, device_id, version)
);

CREATE TABLE commands (
    id           varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id    varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id    varchar(128) COLLATE "C" NOT NULL,
    name         varchar(64)  NOT NULL,
    payload      text         NOT NULL,
    state        varchar(16)  COLLATE "C" NOT NULL,
    result       text         NOT NULL,
    error        text         NOT NULL,
    rollout_id   varchar(128) COLLATE "C" NOT NULL,
    created_by   varchar(128) NOT NULL,
    created_at   timestamptz  NOT NULL,
    expires_at   timestamptz, -- NULL: never expires
    delivered_at timestamptz,
    completed_at timestamptz,
    updated_at   timestamptz  NOT NULL
);
CREATE INDEX commands_tenant_id_idx ON commands (tenant_id, id);
CREATE INDEX commands_tenant_device_idx ON commands (tenant_id, device_id, id);
CREATE INDEX commands_tenant_state_idx ON commands (tenant_id, state, expires_at);
CREATE INDEX commands_tenant_rollout_idx ON commands (tenant_id, rollout_id, id);

CREATE TABLE rollouts (
    id                 varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id          varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id         varchar(128) COLLATE "C" NOT NULL,
    release_id         varchar(128) COLLATE "C" NOT NULL,
    target_kind        varchar(16)  NOT NULL,
    target_tag         text         NOT NULL,
    target_device_ids  text         NOT NULL, -- JSON array of device IDs
    target_percent     integer      NOT NULL,
    stages             text         NOT NULL, -- JSON array of percentages
    current_stage      integer      NOT NULL,
    failure_threshold  double precision NOT NULL,
    state              varchar(16)  COLLATE "C" NOT NULL,
    pause_reason       text         NOT NULL,
    version            bigint       NOT NULL,
    created_by         varchar(128) NOT NULL,
    created_at         timestamptz  NOT NULL,
    updated_at         timestamptz  NOT NULL
);
CREATE INDEX rollouts_tenant_id_idx ON rollouts (tenant_id, id);
CREATE INDEX rollouts_tenant_project_idx ON rollouts (tenant_id, project_id, id);
CREATE INDEX rollouts_tenant_state_idx ON rollouts (tenant_id, state, id);

CREATE TABLE rollout_devices (
    tenant_id  varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rollout_id varchar(128) COLLATE "C" NOT NULL,
    device_id  varchar(128) COLLATE "C" NOT NULL,
    state      varchar(16)  COLLATE "C" NOT NULL,
    progress   integer      NOT NULL,
    reason     text         NOT NULL,
    command_id varchar(128) NOT NULL,
    updated_at timestamptz,
    PRIMARY KEY (tenant_id, rollout_id, device_id)
);
CREATE INDEX rollout_devices_device_idx ON rollout_devices (tenant_id, device_id);

CREATE TABLE error_groups (
    id               varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id        varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    project_id       varchar(128) COLLATE "C" NOT NULL,
    fingerprint      varchar(255) COLLATE "C" NOT NULL,
    type             text         NOT NULL,
    message          text         NOT NULL,
    firmware_version text         NOT NULL,
    count            bigint       NOT NULL,
    first_seen       timestamptz,
    last_seen        timestamptz,
    resolved         boolean      NOT NULL,
    resolved_at      timestamptz,
    resolved_by      varchar(128) NOT NULL,
    CONSTRAINT error_groups_tenant_fingerprint_key UNIQUE (tenant_id, fingerprint)
);
CREATE INDEX error_groups_tenant_id_idx ON error_groups (tenant_id, id);
CREATE INDEX error_groups_tenant_project_idx ON error_groups (tenant_id, project_id, id);

CREATE TABLE error_group_devices (
    tenant_id  varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id   varchar(128) COLLATE "C" NOT NULL,
    device_id  varchar(128) COLLATE "C" NOT NULL,
    count      bigint       NOT NULL,
    first_seen timestamptz,
    last_seen  timestamptz,
    PRIMARY KEY (tenant_id, group_id, device_id)
);
CREATE INDEX error_group_devices_device_idx ON error_group_devices (tenant_id, device_id, group_id);

CREATE TABLE error_reports (
    id               varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id        varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id        varchar(128) COLLATE "C" NOT NULL,
    project_id       varchar(128) COLLATE "C" NOT NULL,
    group_id         varchar(128) COLLATE "C" NOT NULL,
    fingerprint      varchar(255) NOT NULL,
    message          text         NOT NULL,
    type             text         NOT NULL,
    code             text         NOT NULL,
    severity         varchar(16)  NOT NULL,
    stack            text         NOT NULL,
    reset_reason     text         NOT NULL,
    firmware_version text         NOT NULL,
    uptime_seconds   bigint       NOT NULL,
    free_heap        bigint       NOT NULL,
    core_dump        text         NOT NULL,
    received_at      timestamptz
);
CREATE INDEX error_reports_tenant_group_idx ON error_reports (tenant_id, group_id, id);
CREATE INDEX error_reports_tenant_device_idx ON error_reports (tenant_id, device_id, id);

CREATE TABLE audit_events (
    id             varchar(128) COLLATE "C" PRIMARY KEY,
    tenant_id      varchar(128) COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor_user_id  varchar(128) COLLATE "C" NOT NULL,
    actor_token_id varchar(128) COLLATE "C" NOT NULL,
    action         varchar(100) COLLATE "C" NOT NULL,
    resource_type  varchar(64)  COLLATE "C" NOT NULL,
    resource_id    varchar(128) COLLATE "C" NOT NULL,
    remote_addr    text         NOT NULL,
    details        text         NOT NULL,
    created_at     timestamptz  NOT NULL
);
CREATE INDEX audit_events_tenant_id_idx ON audit_events (tenant_id, id);
CREATE INDEX audit_events_tenant_resource_idx ON audit_events (tenant_id, resource_type, resource_id, id);
CREATE INDEX audit_events_tenant_actor_idx ON audit_events (tenant_id, actor_user_id, id);
