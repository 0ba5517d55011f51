/* libFuzzer target: the command decoder, the ID peek and the uplink validators on any bytes. */
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
            if ((size_t)e->value_off + e->value_len >= cmd->values_len ||
                cmd->values[e->value_off + e->value_len] != '\0') {
                abort();
            }
        }
        if (!espadmin_command_peek_id((const char *)data, size, id) || strcmp(id, cmd->id) != 0) {
            abort();
        }
    } else {
        espadmin_command_peek_id((const char *)data, size, id);
    }
    espadmin_free(cmd);
    if (size > 0) {
        espadmin_uplink_validate((espadmin_kind_t)(data[0] % ESPADMIN_KIND_CMD), (const char *)data + 1,
                                 size - 1, &err);
    }
    return 0;
}
