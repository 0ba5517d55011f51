/* newlib's <reent.h>, which the SDK's esp_newlib.h includes (and FreeRTOS's static task type
 * embeds, configUSE_NEWLIB_REENTRANT): the SDK's toolchain brings newlib, Debian's
 * xtensa-lx106-elf-gcc brings picolibc, which has none. A stand-in for check.sh only. */
#pragma once
struct _reent {
    int _errno;
    void *_stdin, *_stdout, *_stderr;
};
