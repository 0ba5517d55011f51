-- ESP Admin schema, version 2 (SQLite): login rate-limit counts, shared by every replica.
-- limit_key is a kind and a SHA-256 digest ("login-account:…"), never an email in clear.
-- locked_until is NULL until the key is first locked.

CREATE TABLE login_limits (
    limit_key       TEXT    PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at TEXT    NOT NULL,
    locked_until    TEXT
);
CREATE INDEX login_limits_last_failure_idx ON login_limits (last_failure_at);
