/* queue: the daemon's durable intents. Every accepted webhook becomes a job
 * written to SQLite (WAL, synchronous=FULL) before it is acknowledged, so a
 * restart loses nothing. Per environment at most one job runs at a time and
 * a newer intent supersedes the ones still waiting (the newest sha wins; a
 * close cancels a pending up; a reopen after a close queues a fresh up). A
 * job that keeps failing is parked. Also kept here: which deliveries were
 * seen (for de-duplication, at least 7 days) and the newest event per pull
 * request (so an event delivered out of order never undoes a newer one).
 *
 * Thread-safety: one struct queue per thread (SQLite handles are not shared);
 * several processes or threads may open the same file. */
#ifndef PRENV_QUEUE_H
#define PRENV_QUEUE_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stdint.h>

struct queue;

/* up and destroy are what a PR or a person asks for; sleep, wake and warn
 * come from the reaper and never replace them */
/* refresh is the daemon's drift check of a stage: it only reads, and replaces
 * only a waiting refresh */
enum job_kind { JOB_UP, JOB_DESTROY, JOB_SLEEP, JOB_WAKE, JOB_WARN, JOB_EXTEND, JOB_REFRESH };
#define JOB_KINDS 7
enum job_state {
    JOB_QUEUED,     /* waiting for its turn */
    JOB_RUNNING,    /* claimed by a worker */
    JOB_DONE,       /* finished successfully */
    JOB_FAILED,     /* failed; retried later (attempts < max) */
    JOB_PARKED,     /* failed too often; needs a person */
    JOB_SUPERSEDED, /* replaced by a newer intent before it ran */
    JOB_CANCELED,   /* stopped while running by a newer intent */
};

struct job {
    long long id;
    char *env;
    enum job_kind kind;
    enum job_state state;
    char *sha;      /* may be NULL */
    char *meta;     /* JSON: pr number, branch, author, title, repo, delivery... */
    char *delivery; /* the delivery that asked for it, may be NULL */
    int attempts;
    long long created_ms, updated_ms, not_before_ms;
    char *error;
};

int queue_open(struct queue **out, const char *path, struct err *e);
void queue_close(struct queue *q);

/* queue_seen: record delivery (hook_id, delivery_id); *dup is set when it was
 * seen before. Records older than keep_ms are pruned now and then. */
int queue_seen(struct queue *q, const char *hook_id, const char *delivery_id, long long keep_ms,
               bool *dup, struct err *e);

/* queue_pr_newer: is this event (updated_at, an RFC 3339 time from the
 * payload) at least as new as the newest one recorded for (repo, number)? If
 * so it is recorded. Older events are to be ignored. */
int queue_pr_newer(struct queue *q, const char *repo, long long number, long long updated_ms,
                   const char *state, bool *newer, struct err *e);

/* queue_push: add an intent for env, superseding what still waits for it (up
 * and destroy replace every waiting job; sleep, wake and warn only waiting
 * ones of those kinds); a running job of env gets *cancel_running set when
 * the new intent is a destroy (the caller cancels it at the next resource
 * boundary). */
int queue_push(struct queue *q, const char *env, enum job_kind kind, const char *sha,
               const char *meta, const char *delivery, long long *id, bool *cancel_running,
               struct err *e);

/* queue_claim: the oldest runnable job of an env that has nothing running,
 * marked running; *got is false when there is none. envs_running caps how many
 * envs may run at once (0 = no cap). Outside a batch the claim is committed
 * relaxed (see queue_relaxed): a claim lost to a power failure changes
 * nothing, queue_recover requeues running jobs. */
int queue_claim(struct queue *q, int envs_running, struct job *out, bool *got, struct err *e);

/* queue_finish: record the outcome. On failure, a transient one is retried
 * after backoff until max_attempts, then parked. */
int queue_finish(struct queue *q, long long id, bool ok, bool transient, const char *error,
                 int max_attempts, struct err *e);
/* queue_cancel: ask that a running job be canceled (superseded while
 * running); it stays running until queue_finish, which records it canceled. */
int queue_cancel(struct queue *q, long long id, const char *why, struct err *e);
/* queue_recover: after a restart, jobs marked running were interrupted: they
 * go back to queued (the engine settles what they left). Returns how many. */
int queue_recover(struct queue *q, int *n, struct err *e);

/* queue_list: jobs as a JSON array (newest first, at most limit). Caller frees. */
int queue_list_json(struct queue *q, int limit, char **out, struct err *e);
/* queue_counts: jobs per state. */
int queue_counts(struct queue *q, long long counts[7], struct err *e);
/* queue_active: does env have a job waiting or running? */
int queue_active(struct queue *q, const char *env, bool *active, struct err *e);
/* queue_next_due: the earliest not_before of a waiting job (0 = none). */
int queue_next_due(struct queue *q, long long *ms, struct err *e);

/* queue_relaxed: with on, the calls that follow commit without waiting for
 * the disk (and without checkpointing, which would), until
 * queue_relaxed(q, false): they become durable with the next durable commit,
 * a checkpoint or queue_close, and a power failure before that loses them.
 * Only for changes a restart undoes anyway, such as giving back a claimed job
 * (it would be requeued as running). Statements are prepared once per queue
 * and kept until queue_close. */
int queue_relaxed(struct queue *q, bool on, struct err *e);

/* Batches: the calls between begin and commit share one transaction and one
 * fsync (group commit for many deliveries at once). Each call on its own is
 * its own transaction. */
int queue_batch_begin(struct queue *q, struct err *e);
int queue_batch_commit(struct queue *q, struct err *e);
void queue_batch_rollback(struct queue *q);

void job_release(struct job *j);
const char *job_kind_name(enum job_kind k);
const char *job_state_name(enum job_state s);

#endif
