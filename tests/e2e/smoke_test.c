/* End-to-end: the binary starts. */
#include <criterion/criterion.h>
#include <stdlib.h>

Test(smoke, binary_runs)
{
    cr_assert_eq(system(PRENV_BIN " version >/dev/null"), 0);
}
