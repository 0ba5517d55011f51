/* host model: see hostmodel.h */
#include "hostmodel.h"
