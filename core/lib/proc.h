/* proc: child processes without a shell. proc_run spawns an argv with a
 * chosen environment and working directory, captures stdout (capped) and the
 * tail of stderr, copies both to a log fd, and kills the whole process group
 * on timeout or cancel. Also: a process's start time, so a pid is never
 * trusted alone, and the path of our own executable. */
#ifndef PRENV_PROC_H
#define PRENV_PROC_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct val;

struct proc_spec {
    const char *const *argv; /* argv[0] is looked up in PATH */
    char *const *envp;       /* whole environment; NULL inherits ours */
    const char *dir;         /* working directory; NULL = ours */
    long long timeout_ms;    /* 0 = none */
    int log_fd;              /* stdout and stderr are copied here; -1 = none */
    size_t out_cap;          /* keep at most this much stdout (0 = discard) */
    const volatile int *cancel; /* when it becomes non-zero the child is killed */
};

struct proc_result {
    int exit_code;      /* valid when !signaled */
    int signo;          /* signal that ended it, 0 if none */
    bool timed_out;
    bool canceled;
    char *out;          /* captured stdout, NUL-terminated; caller frees */
    size_t out_len;
    bool out_truncated;
    char *err_tail;     /* last ~2 KiB of stderr; caller frees */
};

/* proc_run: run to completion. Returns 0 when the process ran (whatever its
 * exit status) and fills r; a negative code when it could not be started. */
int proc_run(const struct proc_spec *spec, struct proc_result *r, struct err *e);
void proc_result_release(struct proc_result *r);
/* proc_describe_exit: "exited with status 2", "killed by signal 9", "timed out after 5s" */
void proc_describe_exit(struct sb *out, const struct proc_result *r, long long timeout_ms);

/* proc_env_build: our environment minus prenv's own secrets (passphrases,
 * tokens), plus each string member of extra (a map) — NULL-terminated,
 * caller frees with proc_env_free. */
char **proc_env_build(const struct val *extra);
void proc_env_free(char **envp);

/* proc_start_time: the kernel's start time of pid in clock ticks since boot
 * (field 22 of /proc/pid/stat); 0 if no such process. */
unsigned long long proc_start_time(pid_t pid);
/* proc_alive: pid exists and started at start (0 = don't check). */
bool proc_alive(pid_t pid, unsigned long long start);
/* proc_self_exe: absolute path of the running binary (set once at start). */
const char *proc_self_exe(void);
void proc_set_self_exe(const char *argv0);

#endif
