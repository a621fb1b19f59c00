/* supervise: the hidden `prenv supervise SPEC` mode that keeps one replica of a
 * process.service running (restart with backoff, log rotation, graceful stop). */
#ifndef PRENV_SUPERVISE_H
#define PRENV_SUPERVISE_H
/* supervise_main: argv[0] is "supervise"; returns the process exit code. */
int supervise_main(int argc, char **argv);
#endif
