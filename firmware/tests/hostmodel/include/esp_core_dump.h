/* Host model of components/espcoredump/include/esp_core_dump.h (v5.1–v6.0) with the Xtensa
 * summary port (port/xtensa/esp_core_dump_summary_port.h), as on the ESP32: the types and the
 * user-mode API the port calls. The "coredump" partition is hostmodel state that survives
 * reboots; hm_panic_core_dump writes it as the panic handler does. */
#ifndef HM_ESP_CORE_DUMP_H
#define HM_ESP_CORE_DUMP_H

#include "esp_err.h"
#include "sdkconfig.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APP_ELF_SHA256_SZ (CONFIG_APP_RETRIEVE_LEN_ELF_SHA + 1)

#if CONFIG_ESP_COREDUMP_ENABLE_TO_FLASH && CONFIG_ESP_COREDUMP_DATA_FORMAT_ELF

#define EPCx_REGISTER_COUNT 6 /* XCHAL_NUM_INTLEVELS of the ESP32 */

typedef struct {
    uint32_t bt[16];
    uint32_t depth;
    bool corrupted;
} esp_core_dump_bt_info_t;

typedef struct {
    uint32_t exc_cause;
    uint32_t exc_vaddr;
    uint32_t exc_a[16];
    uint32_t epcx[EPCx_REGISTER_COUNT];
    uint8_t epcx_reg_bits;
} esp_core_dump_summary_extra_info_t;

typedef struct {
    uint32_t exc_tcb;
    char exc_task[16];
    uint32_t exc_pc;
    esp_core_dump_bt_info_t exc_bt_info;
    uint32_t core_dump_version;
    uint8_t app_elf_sha256[APP_ELF_SHA256_SZ];
    esp_core_dump_summary_extra_info_t ex_info;
} esp_core_dump_summary_t;

esp_err_t esp_core_dump_get_panic_reason(char *reason_buffer, size_t buffer_size);
esp_err_t esp_core_dump_get_summary(esp_core_dump_summary_t *summary);

#endif

esp_err_t esp_core_dump_image_check(void);
esp_err_t esp_core_dump_image_get(size_t *out_addr, size_t *out_size);
esp_err_t esp_core_dump_image_erase(void);

#endif
