/* libFuzzer target: the fragment reassembler. The input is a script of fragments:
 * [flags][total_len:2][offset:2][len:2][bytes…]…; completed messages go through the command
 * decoder. Invariants: nothing is written out of bounds, a completed message has exactly the
 * announced length, and no buffer leaks whatever the order of fragments. */
#include "espadmin/protocol.h"
#include "espadmin/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char topic[] = "espadmin/01hzx3k9qv4m7c2d8e5f6g7h8j/down/cmd";
    espadmin_reasm_t r;
    espadmin_reasm_init(&r, ESPADMIN_MAX_COMMAND_SIZE);
    size_t i = 0;
    while (i + 7 <= size) {
        uint8_t flags = data[i];
        size_t total = (size_t)data[i + 1] << 8 | data[i + 2];
        size_t offset = (size_t)data[i + 3] << 8 | data[i + 4];
        size_t len = (size_t)data[i + 5] << 8 | data[i + 6];
        i += 7;
        if (flags & 1) {
            total *= 2; /* reach past the 16 KiB limit too */
        }
        if (len > size - i) {
            len = size - i;
        }
        const char *t = offset == 0 || (flags & 2) ? topic : NULL;
        espadmin_reasm_result_t res = espadmin_reasm_feed(&r, t, t ? strlen(t) : 0, total, offset, data + i, len);
        if (res == ESPADMIN_REASM_COMPLETE) {
            if (r.received != r.total || r.total > ESPADMIN_MAX_COMMAND_SIZE ||
                strcmp(r.topic, topic) != 0 || (r.buf != NULL && r.data != r.buf)) {
                abort();
            }
            espadmin_perr_t err;
            espadmin_command_t *cmd = espadmin_command_new(r.received);
            if (cmd == NULL) {
                abort();
            }
            espadmin_command_decode(r.data, r.received, cmd, &err);
            espadmin_free(cmd);
            if (flags & 4) {
                espadmin_free(espadmin_reasm_take(&r)); /* as the agent does */
            }
        }
        i += len;
    }
    espadmin_reasm_free(&r); /* LeakSanitizer checks that nothing stays allocated */
    return 0;
}
