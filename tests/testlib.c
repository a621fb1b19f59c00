/* testlib: helpers shared by the unit and end-to-end suites. */
#include "tests/testlib.h"
