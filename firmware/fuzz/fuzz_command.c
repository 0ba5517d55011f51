/* libFuzzer target: the command decoder, the ID peek and the uplink validators on any bytes. */
#include "espadmin/json.h"
#include "espadmin/protocol.h"
#include "espadmin/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* sized for this payload, as the agent does: ASan catches a value stored past its room */
    espadmin_command_t *cmd = espadmin_command_new(size);
    if (cmd == NULL) {
        abort();
    }
    espadmin_perr_t err;
    char id[ESPADMIN_MAX_ID_LEN + 1];
    espadmin_perr_code_t code = espadmin_command_decode((const char *)data, size, cmd, &err);
    if (code == ESPADMIN_OK) {
        /* a decoded command is internally consistent */
        if (!espadmin_valid_device_id(cmd->id) || cmd->values_len > cmd->values_cap) {
            abort();
        }
        for (size_t i = 0; cmd->name == ESPADMIN_CMD_CONFIG && i < cmd->config.count; i++) {
            const espadmin_cfg_entry_t *e = &cmd->config.entries[i];
#ifdef ESPADMIN_PROFILE_SMALL
            /* small profile: the value is a span of the payload holding one JSON value */
            ej_doc_t doc;
            if (!cmd->values_raw || cmd->value_text != (const char *)data || e->value_len == 0 ||
                (size_t)e->value_off + e->value_len > size) {
                abort();
            }
            char *wrapped = malloc((size_t)e->value_len + 8);
            memcpy(wrapped, "{\"x\":", 5);
            memcpy(wrapped + 5, data + e->value_off, e->value_len);
            wrapped[5 + e->value_len] = '}';
            if (ej_parse_partial(&doc, wrapped, (size_t)e->value_len + 6, 1, 2) != EJ_OK) {
                abort();
            }
            ej_free(&doc);
            free(wrapped);
#else
            if ((size_t)e->value_off + e->value_len >= cmd->values_len ||
                cmd->values[e->value_off + e->value_len] != '\0') {
                abort();
            }
#endif
        }
        if (!espadmin_command_peek_id((const char *)data, size, id) || strcmp(id, cmd->id) != 0) {
            abort();
        }
    } else {
        espadmin_command_peek_id((const char *)data, size, id);
    }
    espadmin_free(cmd);
    /* a tree stored to any level accepts and refuses exactly what the whole tree does (the
     * duplicate keys of what is not stored are found by rescanning the text) */
    ej_doc_t whole, part;
    ej_result_t w = ej_parse_partial(&whole, (const char *)data, size, ESPADMIN_JSON_MAX_DEPTH + 1, SIZE_MAX);
    for (int level = 0; level <= 2; level++) {
        ej_result_t p = ej_parse_partial(&part, (const char *)data, size, level, SIZE_MAX);
        ej_free(&part);
        if ((p == EJ_OK) != (w == EJ_OK)) {
            abort();
        }
    }
    ej_free(&whole);
    if (size > 0) {
        espadmin_uplink_validate((espadmin_kind_t)(data[0] % ESPADMIN_KIND_CMD), (const char *)data + 1,
                                 size - 1, &err);
    }
    return 0;
}
