/* lock: one exclusive lock per environment (flock on <state dir>/locks/<env>.lock)
 * with its holder — pid, process start time, host, user, command, since —
 * written into the file so whoever waits can be told who holds it. A holder
 * that died on this host is detected: the kernel drops a dead process's flock,
 * and a lock kept alive by some other process that inherited it is broken by
 * unlinking the file, with a warning. Locks are never broken by time alone. */
#ifndef PRENV_LOCK_H
#define PRENV_LOCK_H

#include "core/lib/err.h"

#include <stdbool.h>

struct lock_holder {
    long pid;
    unsigned long long start; /* the pid's start time, to tell it from a reused pid */
    char *host, *user, *command;
    long long since_ms;
};

struct lock {
    int fd;
    char *path;
};

enum lock_event {
    LOCK_WAITING,      /* someone holds it; we wait (holder filled) */
    LOCK_STALE_BROKEN, /* a dead holder's lock was broken (holder filled) */
    LOCK_RECOVERED,    /* the previous holder died without releasing (holder filled) */
};

typedef void (*lock_notify_fn)(void *ctx, enum lock_event ev, const struct lock_holder *h);

/* lock_acquire: wait_ms < 0 waits forever, 0 fails at once with PE_LOCKED. */
int lock_acquire(struct lock *l, const char *state_dir, const char *env, const char *command,
                 long long wait_ms, lock_notify_fn notify, void *ctx, struct err *e);
/* lock_release: release; with remove, also delete the lock file (env destroyed). */
void lock_release(struct lock *l, bool remove);
/* lock_inspect: is the lock held, and by whom (h filled if anything recorded). */
int lock_inspect(const char *state_dir, const char *env, bool *held, struct lock_holder *h,
                 struct err *e);
/* lock_break: force the lock free by unlinking its file. Refuses (PE_LOCKED)
 * when the holder is alive on this host unless force. */
int lock_break(const char *state_dir, const char *env, bool force, struct lock_holder *h,
               struct err *e);
void lock_holder_release(struct lock_holder *h);
/* lock_holder_describe: "pid 123 (alice@host, `prenv env up dev`) since 12:01:02Z" */
void lock_holder_describe(struct sb *out, const struct lock_holder *h);
/* lock_holder_dead: recorded on this host and no longer running */
bool lock_holder_dead(const struct lock_holder *h);

#endif
