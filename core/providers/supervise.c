/* supervise: placeholder until the supervisor lands. */
#include "core/providers/supervise.h"
#include <stdio.h>
int supervise_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "prenv supervise: not implemented yet\n");
    return 1;
}
