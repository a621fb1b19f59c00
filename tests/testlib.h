/* testlib: helpers shared by the unit and end-to-end suites. */
#ifndef PRENV_TESTLIB_H
#define PRENV_TESTLIB_H
#endif
