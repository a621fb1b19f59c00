/* supervise: the hidden `prenv supervise SPEC` mode that keeps one replica of
 * a process.service running (restart with backoff, log rotation, graceful
 * stop), and the format of the files it shares with the provider.
 *
 * The provider writes the spec file and starts `prenv supervise SPEC` with the
 * application's whole environment (PORT included) as the supervisor's own
 * environment, so nothing secret from `env` is written to disk. The spec is a
 * JSON object:
 *
 *   argv            list of strings, argv[0] looked up in PATH
 *   dir             absolute working directory of the application
 *   log             absolute path of the replica's log (rotations .1 .. .N)
 *   pidfile         absolute path of the pid file the supervisor maintains
 *   port, replica   for the log and the pid file
 *   restart         "always", "on-failure" or "never"
 *   stop_timeout_ms SIGTERM to SIGKILL delay on stop
 *   log_max_size    rotate the log before it would grow beyond this (bytes)
 *   log_keep        rotated files kept
 *   redact          true: mask emails and IP addresses (core/lib/redact.h) in
 *                   the output before it reaches the log
 *   other members (digests the provider compares) are ignored.
 *
 * The supervisor double-forks: the process the provider spawns exits 0 once
 * the detached supervisor has written its pid file (1 if it could not), so
 * the provider's waitpid() both reaps it and learns that the pid file is
 * there. The pid file is rewritten atomically after every (re)start; the
 * supervisor never removes it or the spec: that is the provider's job. */
#ifndef PRENV_SUPERVISE_H
#define PRENV_SUPERVISE_H

#include "core/lib/err.h"

#include <sys/types.h>

/* What a pid file says. A pid is only trusted together with its start time
 * (proc_alive(pid, start)); pid 0 means "no application process right now". */
struct supervise_pids {
    pid_t sup_pid;
    unsigned long long sup_start;
    pid_t pid; /* the application, leader of its own process group */
    unsigned long long start;
    int port;
    int replica;
    int restarts;
    char *state;       /* "running", "backoff", "stopping", "exited", "stopped"; never NULL */
    char *start_error; /* the last start failed for good (e.g. command not found); or NULL */
};

/* supervise_pids_read: parse a pid file into *out (release with
 * supervise_pids_release). Returns -ENOENT without touching e when there is no
 * such file, PE_STATE when it is not a pid file. */
int supervise_pids_read(struct supervise_pids *out, const char *path, struct err *e);
void supervise_pids_release(struct supervise_pids *p);

/* supervise_main: argv[0] is "supervise", argv[1] the spec file; returns the
 * process exit code. Only `prenv supervise` calls this. */
int supervise_main(int argc, char **argv);

#endif
