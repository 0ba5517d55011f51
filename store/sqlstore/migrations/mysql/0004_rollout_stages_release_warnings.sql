-- ESP Admin schema, version 4 (MySQL 8 / MariaDB 10.6+): rollouts may wait between stages (a
-- soak time, a person's approval), and releases keep the warnings of their upload.

ALTER TABLE rollouts ADD COLUMN stage_soak_seconds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN require_approval BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE rollouts ADD COLUMN stage_done_at DATETIME(3) NULL;
ALTER TABLE releases ADD COLUMN warnings TEXT NOT NULL;
