/* The core's memory profile, chosen when it is compiled.
 *
 * The default profile (ESP32 family) accepts every message the protocol allows (a command up
 * to 16 KiB) and keeps the buffers that go with it. ESPADMIN_PROFILE_SMALL (ESP8266 and other
 * chips with about 40 KB of heap left once Wi-Fi and TLS are up; -DESPADMIN_PROFILE_SMALL, which
 * the ESP-IDF component adds for Kconfig CONFIG_ESPADMIN_PROFILE_SMALL; `make PROFILE=small` on
 * the host) declares smaller limits in its metadata and sizes everything by them:
 *
 *   - commands up to ESPADMIN_DEVICE_MAX_COMMAND bytes (the reassembly buffer is at most that);
 *   - a config whose stored form (keys and values) is at most ESPADMIN_DEVICE_MAX_CONFIG bytes;
 *   - commands are decoded as a stream: the JSON tree holds the top two levels only (a fixed
 *     number of values, ESPADMIN_COMMAND_JSON_NODES), config entries are checked one at a time
 *     and their values stay in the message, not in a copy of it;
 *   - one inbox slot, a 2 KiB log ring, a 2 KiB publish buffer, 4 remembered command IDs.
 *
 * The server reads the limits from the metadata ("limits") and refuses, at write time, a
 * config the device would refuse (docs/protocol.md §3.2). Both profiles must fit the core's
 * code budget on the lx106 (make lx106): each compiles only its own config decoding path. */
#ifndef ESPADMIN_PROFILE_H
#define ESPADMIN_PROFILE_H

#if defined(CONFIG_ESPADMIN_PROFILE_SMALL) && !defined(ESPADMIN_PROFILE_SMALL)
#define ESPADMIN_PROFILE_SMALL 1
#endif

#ifdef ESPADMIN_PROFILE_SMALL
#define ESPADMIN_PROFILE_NAME "small"
/* Largest command payload accepted (every vector of the protocol fits: the largest valid one,
 * a 3,999-byte string value, is 4,232 bytes). */
#define ESPADMIN_DEVICE_MAX_COMMAND 4608
/* Largest config: the sum over its entries of key length + stored value length (a string's
 * text, a secret's decrypted JSON, the compact JSON of any other value). */
#define ESPADMIN_DEVICE_MAX_CONFIG 4096
#define ESPADMIN_COMMAND_JSON_LEVELS 2
#define ESPADMIN_COMMAND_JSON_NODES 32
#define ESPADMIN_RECENT_IDS 4
#define ESPADMIN_PENDING_ERRORS 2
#define ESPADMIN_DOWNLOAD_CHUNK 1024
#define ESPADMIN_PUB_BUF 2304
#define ESPADMIN_LOG_BATCH_BYTES 1536
#define ESPADMIN_LOG_BATCH_LINES 8
#define ESPADMIN_DEFAULT_LOG_RING 2048
#define ESPADMIN_DEFAULT_INBOX_SLOTS 1
#else
#define ESPADMIN_PROFILE_NAME "default"
#define ESPADMIN_DEVICE_MAX_COMMAND 16384
#define ESPADMIN_DEVICE_MAX_CONFIG 16384
#define ESPADMIN_COMMAND_JSON_LEVELS (ESPADMIN_JSON_MAX_DEPTH + 1)
#define ESPADMIN_COMMAND_JSON_NODES ESPADMIN_JSON_MAX_NODES
#define ESPADMIN_RECENT_IDS 16
#define ESPADMIN_PENDING_ERRORS 4
#define ESPADMIN_DOWNLOAD_CHUNK 4096
#define ESPADMIN_PUB_BUF 8192
#define ESPADMIN_LOG_BATCH_BYTES 7168
#define ESPADMIN_LOG_BATCH_LINES 64
#define ESPADMIN_DEFAULT_LOG_RING 8192
#define ESPADMIN_DEFAULT_INBOX_SLOTS 2
#endif

#endif
