/* promo: promotions — moving one env's pinned artifact, unchanged, into
 * another env — as durable records in <state dir>/promotions/<id>.json, and
 * who people are when they ask for or approve one.
 *
 * A record is a value map written atomically:
 *   {schema, id, from, to, digest, artifact, state, requested_by, requested_at,
 *    approved_by, approved_at, rejected_by, rejected_at, reason, finished_at,
 *    error}
 * state: pending (waits for `prenv approve`), approved (being applied),
 * applied, failed, rejected, superseded (a newer request for the same pair).
 * State changes that race (two approvers) are made under promo_lock.
 *
 * This module stores and reads; it does not apply anything (cmd/promote.c
 * runs the target's up through envs/op.h) and prints nothing. */
#ifndef PRENV_PROMO_H
#define PRENV_PROMO_H

#include "core/lib/err.h"
#include "core/lib/val.h"
#include "core/lock.h"

#define PROMO_SCHEMA 1
#define PROMO_ID_LEN 6

/* promo_identity: who is acting: $PRENV_USER, else the project repository's
 * git user.email, else its user.name, else the OS user. Caller frees. */
char *promo_identity(const char *project_dir);
/* promo_same_person: identities compare without regard to case. */
bool promo_same_person(const char *a, const char *b);

/* promo_check_id: id is PROMO_ID_LEN lowercase hex digits (PE_USAGE if not). */
int promo_check_id(const char *id, struct err *e);

/* promo_lock: the lock every change of a record's state is made under. */
int promo_lock(struct lock *l, const char *state_dir, const char *command, struct err *e);

/* promo_create: give rec (a map) a new unique id, write it; *id borrowed
 * from rec. Call under promo_lock. */
int promo_create(struct val *rec, const char *state_dir, const char **id, struct err *e);
/* promo_load: PE_USAGE for a malformed id, PE_NOTFOUND for an unknown one
 * (both with a hint); *out is the record, caller frees. */
int promo_load(struct val **out, const char *state_dir, const char *id, struct err *e);
/* promo_save: write rec back (atomically). */
int promo_save(const struct val *rec, const char *state_dir, struct err *e);
/* promo_list: every record, oldest request first, as a list; a file that
 * cannot be read is skipped and named in *bad (a list of messages). */
int promo_list(struct val **out, struct val **bad, const char *state_dir, struct err *e);

/* promo_set_now: rec[key] = the current time (RFC 3339). */
void promo_set_now(struct val *rec, const char *key);
/* promo_history: append a "promote" record for rec to the target env's
 * history with the given result (pending, rejected). */
int promo_history(const char *state_dir, const struct val *rec, const char *result,
                  const char *user, struct err *e);

#endif
