/* cmd: the command table, option parser and dispatcher. */
#ifndef PRENV_CMD_H
#define PRENV_CMD_H
int cmd_main(int argc, char **argv);
#endif
