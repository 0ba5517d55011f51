/* host model of ESP8266_RTOS_SDK v3.4: see hostmodel.h */
#include "../hostmodel.h"
