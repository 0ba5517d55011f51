#!/usr/bin/env bash
# Compiles the ESP-IDF port (ports/esp-idf/espadmin_esp.c and the part it shares with the
# ESP8266 port, ports/esp-common/espadmin_common.c) and the example
# (examples/basic/main/main.c) with the host gcc against the real headers of one ESP-IDF
# release, with -Wall -Wextra -Werror -fsyntax-only: a check of every declaration, type and
# struct field the port uses. Nothing is linked or run; the FreeRTOS headers are those of
# ESP-IDF's linux target (the Xtensa/RISC-V ports need their own compilers).
#
#   check.sh IDF_DIR MQTT_INCLUDE MBEDTLS_INCLUDE [MORE_INCLUDE...]
#
# IDF_DIR holds ESP-IDF's components/ (headers are enough), MQTT_INCLUDE esp-mqtt's include/
# at the submodule commit (or espressif/mqtt for v6.0), MBEDTLS_INCLUDE Mbed TLS's include/
# (v6.0: also TF-PSA-Crypto's include/ and drivers/builtin/include/). See firmware/README.md
# "Verified against" for the exact commits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fw=$(cd "$here/../.." && pwd)
idf=$1 mqtt=$2
shift 2
c=$idf/components
inc=(-I"$here" -I"$fw/include" -I"$fw/ports/esp-idf/include" -I"$fw/ports/esp-common")
# SDK headers as system headers: the port's own code gets -Wall -Wextra -Werror, ESP-IDF's
# headers keep the warnings ESP-IDF's build itself silences (-Wno-unused-parameter, ...).
sys() { for d in "$@"; do [ -d "$d" ] && inc+=(-isystem "$d"); done; return 0; }
sys "$mqtt"
for m in "$@"; do sys "$m"; done
sys "$c/mbedtls/port/include" "$c/mbedtls/esp_crt_bundle/include" "$c/mbedtls/port/psa_driver/include"
sys "$c/freertos/config/linux/include" "$c/freertos/config/include" "$c/freertos/config/include/freertos" \
    "$c/freertos/FreeRTOS-Kernel/include" "$c/freertos/FreeRTOS-Kernel/include/freertos" \
    "$c/freertos/FreeRTOS-Kernel/portable/linux/include" "$c/freertos/FreeRTOS-Kernel/portable/linux/include/freertos" \
    "$c/freertos/esp_additions/include" "$c/freertos/esp_additions/include/freertos" \
    "$c/freertos/esp_additions/arch/linux/include"
for comp in log esp_common esp_system esp_hw_support esp_timer esp_event nvs_flash app_update esp_app_format \
            esp_partition spi_flash bootloader_support esp_http_client esp-tls esp_netif esp_wifi lwip \
            tcp_transport heap esp_rom soc hal newlib esp_libc efuse esp_security; do
  sys "$c/$comp/include"
done
# chip headers some ESP-IDF headers include whatever the target (ESP32-C3 here)
sys "$c/esp_bootloader_format/include" "$c/esp_blockdev/include" "$c/esp_hw_support/etm/include" "$c/esp_driver_etm/include" "$c/soc/esp32c3/include" "$c/soc/esp32c3/register" "$c/esp_rom/esp32c3/include" "$c/esp_rom/esp32c3" \
    "$c/esp_hw_support/include/soc" "$c/esp_hw_support/port/esp32c3/include" "$c/esp_system/port/include" \
    "$c/esp_netif/include/lwip" "$c/esp_wifi/include/local" "$c/esp_wifi/wifi_apps/include" \
    "$c/lwip/port/include" "$c/lwip/port/freertos/include" \
    "$c/esp_wifi/wifi_apps/nan_app/include"
flags=(-std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsyntax-only -DESP_PLATFORM -DIDF_VER='"check"')
status=0
for src in "$fw/ports/esp-idf/espadmin_esp.c" "$fw/ports/esp-common/espadmin_common.c" "$fw/examples/basic/main/main.c"; do
  if gcc "${flags[@]}" "${inc[@]}" "$src"; then
    echo "ok   $(basename "$src")"
  else
    echo "FAIL $(basename "$src")"
    status=1
  fi
done
exit $status
