#!/usr/bin/env bash
# Installs, from Debian's packages, every program and library the test suite uses. It is
# idempotent: packages already present are not touched, and apt is not even asked then.
set -euo pipefail

packages=(
  postgresql-15          # store conformance suite on PostgreSQL (started per test run)
  mariadb-server         # store conformance suite on MariaDB
  mosquitto              # a tenant's own broker in the bridge tests
  mosquitto-clients      # mosquitto_pub/_sub in broker tests
  # The firmware's Linux port, its unit tests (cmocka) and fuzzers (libFuzzer).
  build-essential
  libmosquitto-dev
  libcjson-dev
  libssl-dev
  libcurl4-openssl-dev
  libcmocka-dev
  clang
  libclang-rt-14-dev     # libFuzzer and the sanitizers' runtimes for clang (a Recommends, not a Depends)
  python3
  gcc-xtensa-lx106            # the firmware core compiled for the ESP8266's Xtensa lx106 (make -C firmware lx106)
  binutils-xtensa-lx106       # its size(1) and nm(1), for the footprint figures
  picolibc-xtensa-lx106-elf   # the C library (headers and specs) that compile uses
  gcc-riscv64-unknown-elf     # RISC-V (ESP32-C3/C6) ELF files for the symbolication tests (server/symbolize)
  chromium               # the web UI's browser tests (tests/browser, driven by playwright-core)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  # Services are started by the tests themselves, on loopback and in temporary folders.
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The tests start their own MariaDB and Mosquitto on free loopback ports, so system instances
# are never needed. Installing the packages starts system instances (postinst): stop only
# those this run installed. Services that ran before, the host's own, are left alone.
for svc in mariadb mosquitto; do
  pkg=$svc
  [ "$svc" = mariadb ] && pkg=mariadb-server
  case " ${missing[*]} " in
    *" $pkg "*) command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1 || true ;;
  esac
done
# playwright-core for the browser tests, exactly as locked (Node itself is not a Debian
# package here: the tests need node >= 20 on the PATH).
if command -v npm >/dev/null 2>&1; then
  (cd "$(dirname "$0")/../tests/browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
else
  echo "npm not found: the browser tests (tests/browser) cannot run" >&2
fi
echo "test dependencies present"
