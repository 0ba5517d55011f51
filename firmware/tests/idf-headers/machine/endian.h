/* glibc has endian.h where newlib has machine/endian.h (for check.sh only) */
#pragma once
#include <endian.h>
