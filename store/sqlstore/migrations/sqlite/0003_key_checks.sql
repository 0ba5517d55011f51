-- ESP Admin schema, version 3 (SQLite): the master key check. One row per key purpose
-- ('master'): the ID of the key that sealed a known value, and that sealed value. A server
-- whose key does not open it refuses to start instead of sealing new secrets under a key that
-- cannot open the old ones.

CREATE TABLE key_checks (
    name       TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at TEXT NOT NULL
);
