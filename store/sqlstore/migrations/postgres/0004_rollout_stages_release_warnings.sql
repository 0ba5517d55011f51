-- ESP Admin schema, version 4 (PostgreSQL): rollouts may wait between stages (a soak time, a
-- person's approval), and releases keep the warnings of their upload.

ALTER TABLE rollouts ADD COLUMN stage_soak_seconds bigint NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN require_approval boolean NOT NULL DEFAULT false;
ALTER TABLE rollouts ADD COLUMN stage_done_at timestamptz;
ALTER TABLE releases ADD COLUMN warnings text NOT NULL DEFAULT '';
