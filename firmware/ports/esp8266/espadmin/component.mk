# ESP Admin agent as an ESP8266_RTOS_SDK v3.4 component named "espadmin" (GNU Make build: make
# menuconfig, make flash; EXTRA_COMPONENT_DIRS += firmware/ports/esp8266). Same sources and
# flags as CMakeLists.txt: the portable core with the small-memory profile, ../../esp-common and
# espadmin_esp8266.c.
COMPONENT_SRCDIRS := ../../../core ../../esp-common .
COMPONENT_ADD_INCLUDEDIRS := ../../../include include
COMPONENT_PRIV_INCLUDEDIRS := ../../esp-common
# ESPADMIN_PROFILE_SMALL comes from Makefile.projbuild (the whole project)
CFLAGS += -std=gnu11
