/* promote: what `prenv promote` and `prenv approve` share — applying a
 * promotion record to its target env. */
#ifndef PRENV_CMD_PROMOTE_H
#define PRENV_CMD_PROMOTE_H

#include "cmd/cmd.h"
#include "core/lib/val.h"

struct sb;

/* cmd_promo_apply: show the config differences between rec's envs, run the
 * target's up with rec's artifact pin (history records the promotion), then
 * record the outcome in rec (applied, failed; back to pending when approving
 * and the person said no) and save it under state_dir. Returns the exit code. */
int cmd_promo_apply(struct cmd_ctx *c, struct val *rec, const char *state_dir, bool yes,
                    bool json, bool approving);
/* cmd_promo_describe: "staging -> prod: shop 1.4.0 (sha256:...)" */
void cmd_promo_describe(struct sb *out, const struct val *rec);

struct lock;
struct project;
/* cmd_promo_open_pending: what approve and reject start with — check the ID,
 * open the project, take the promotions lock (*locked says so; the caller
 * releases it) and load the record, which must still be pending (a refusal
 * naming its state and who settled it, for `verb`: "approve", "reject").
 * The caller frees *proj and *rec whatever the result. */
int cmd_promo_open_pending(struct cmd_ctx *c, const char *id, const char *verb,
                           struct project **proj, struct lock *lk, bool *locked,
                           struct val **rec, struct err *e);

#endif
