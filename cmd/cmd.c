/* cmd: placeholder dispatcher (the real table lands with the engine). */
#include "cmd/cmd.h"
#include "core/lib/proc.h"
#include "core/providers/supervise.h"
#include <stdio.h>
#include <string.h>
int cmd_main(int argc, char **argv)
{
    proc_set_self_exe(argv[0]);
    if (argc > 1 && !strcmp(argv[1], "supervise"))
        return supervise_main(argc - 1, argv + 1);
    puts("prenv");
    return 0;
}
