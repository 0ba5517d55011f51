-- ESP Admin schema, version 2 (MySQL 8 / MariaDB 10.6+): login rate-limit counts, shared by
-- every replica. limit_key is a kind and a SHA-256 digest ("login-account:…"), never an email
-- in clear. locked_until is NULL until the key is first locked.

CREATE TABLE login_limits (
    limit_key       VARCHAR(128) PRIMARY KEY,
    failures        INTEGER      NOT NULL,
    last_failure_at DATETIME(3)  NOT NULL,
    locked_until    DATETIME(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX login_limits_last_failure_idx ON login_limits (last_failure_at);
