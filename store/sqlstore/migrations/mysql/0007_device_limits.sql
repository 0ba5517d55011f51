-- ESP Admin schema, version 7 (MySQL 8 / MariaDB 10.6+): the limits a device declares in its metadata (the largest
-- command and config it accepts; 0 when it declared none). The server refuses a config
-- write the device would refuse (docs/protocol.md §3.2).

ALTER TABLE devices ADD COLUMN limit_command_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN limit_config_bytes BIGINT NOT NULL DEFAULT 0;
