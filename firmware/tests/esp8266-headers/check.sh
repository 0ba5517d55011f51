#!/usr/bin/env bash
# Compiles the ESP8266_RTOS_SDK v3.4 port (ports/esp8266/espadmin/*.c, with ports/esp-common)
# and the example (examples/esp8266/main/main.c) with Debian's xtensa-lx106-elf-gcc against the
# SDK's real headers, -mlongcalls -std=gnu11 -Wall -Wextra -Werror -fsyntax-only: a check of
# every declaration, type and struct field the port uses. Nothing is linked or run.
#
#   check.sh SDK_DIR MQTT_DIR MBEDTLS_DIR LWIP_DIR
#
# SDK_DIR is the ESP8266_RTOS_SDK tree (components/ is enough) without its submodules; the
# submodules at the SDK's commits: MQTT_DIR esp-mqtt, MBEDTLS_DIR the Mbed TLS fork, LWIP_DIR
# esp-lwip. The SDK's libc headers are those of its own toolchain's newlib; Debian's compiler
# brings picolibc, whose headers stand in. See firmware/README.md "Verified against" for the
# exact commits, and how they were read into a temporary folder (never committed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fw=$(cd "$here/../.." && pwd)
sdk=$1 mqtt=$2 mbedtls=$3 lwip=$4
c=$sdk/components
inc=(-I"$here" -I"$fw/include" -I"$fw/ports/esp8266/espadmin/include" -I"$fw/ports/esp-common")
# SDK headers as system headers: the port's own code gets -Wall -Wextra -Werror, the SDK's
# headers keep the warnings the SDK's own build silences.
sys() { for d in "$@"; do [ -d "$d" ] || { echo "missing $d" >&2; exit 2; }; inc+=(-isystem "$d"); done; }
sys "$mqtt/include" "$mbedtls/include" "$lwip/src/include"
sys "$c/esp8266/include" "$c/esp_common/include" "$c/freertos/include" "$c/freertos/include/freertos" \
    "$c/freertos/include/freertos/private" "$c/freertos/port/esp8266/include" \
    "$c/freertos/port/esp8266/include/freertos" "$c/heap/include" "$c/heap/port/esp8266/include" \
    "$c/log/include" "$c/nvs_flash/include" "$c/app_update/include" "$c/spi_flash/include" \
    "$c/bootloader_support/include" "$c/esp_http_client/include" "$c/http_parser/include" \
    "$c/tcpip_adapter/include" "$c/esp_event/include" "$c/lwip/include/apps" "$c/lwip/include/apps/sntp" \
    "$c/lwip/port/esp8266/include" "$c/mbedtls/port/include" "$c/libsodium/libsodium/src/libsodium/include" \
    "$c/libsodium/port_include" "$c/newlib/platform_include" "$c/vfs/include" "$c/esp_ringbuf/include" \
    "$c/esp-tls"
flags=(-mlongcalls -std=gnu11 -Wall -Wextra -Werror -fsyntax-only -DESP_PLATFORM -DESPADMIN_PROFILE_SMALL
       -DIDF_VER='"v3.4"' -DMBEDTLS_CONFIG_FILE='"mbedtls/esp_config.h"' -D__ESP_FILE__=__FILE__)
cc=${CC_LX106:-xtensa-lx106-elf-gcc}
specs=${LX106_SPECS:-/usr/lib/xtensa-lx106-elf/picolibc.specs}
[ -f "$specs" ] && flags+=(--specs="$specs")
status=0
for src in "$fw/ports/esp8266/espadmin/espadmin_esp8266.c" "$fw/ports/esp-common/espadmin_common.c" \
           "$fw/examples/esp8266/main/main.c"; do
  if "$cc" "${flags[@]}" "${inc[@]}" "$src"; then
    echo "ok   ${src#$fw/}"
  else
    echo "FAIL ${src#$fw/}"
    status=1
  fi
done
exit $status
