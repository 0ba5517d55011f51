-- ESP Admin schema, version 3 (MySQL 8 / MariaDB 10.6+): the master key check. One row per
-- key purpose ('master'): the ID of the key that sealed a known value, and that sealed value.
-- A server whose key does not open it refuses to start instead of sealing new secrets under a
-- key that cannot open the old ones.

CREATE TABLE key_checks (
    name       VARCHAR(32) PRIMARY KEY,
    key_id     VARCHAR(16) NOT NULL,
    sealed     BLOB        NOT NULL,
    created_at DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
