-- ESP Admin schema, version 4 (SQLite): rollouts may wait between stages (a soak time, a
-- person's approval), and releases keep the warnings of their upload.

ALTER TABLE rollouts ADD COLUMN stage_soak_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN require_approval INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN stage_done_at TEXT;
ALTER TABLE releases ADD COLUMN warnings TEXT NOT NULL DEFAULT '';
