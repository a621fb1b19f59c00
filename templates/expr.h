/* expr: `${...}` interpolation inside strings. A reference is a path: a root
 * name then `.name`, `[index]` or `["key"]` segments. `${A ?? B ?? "text"}`
 * takes the first operand that exists: each operand but the last is a
 * reference, the last a reference or a quoted string ("..." or '...', with
 * \\, \" and \' escapes). An operand "does not exist" only when its lookup
 * answers PE_MISSING (a missing key, an index past the end, a root with no
 * value here); any other failure is an error as before. A string that is
 * exactly one `${...}` keeps the chosen value's type; otherwise the parts are
 * joined as text. `$${` is a literal `${`. Secret and unknown values propagate
 * into whatever is built from them. What a root means is the caller's
 * business (a lookup callback); expr only parses, walks and joins. */
#ifndef PRENV_EXPR_H
#define PRENV_EXPR_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#include <stdbool.h>

struct expr_seg {
    char *key;        /* map key, or NULL for an index */
    long long index;  /* list index when key is NULL */
};

struct expr_ref {
    char *text;            /* as written between ${ and } (trimmed) */
    struct expr_seg *segs; /* segs[0].key is the root */
    size_t nsegs;
    struct pos pos;        /* where `${` is (for an operand after `??`, where it starts) */
    bool optional;         /* followed by `??`: PE_MISSING from the lookup means "try the next" */
};

/* lookup: resolve ref (all of it, using expr_walk for the tail if convenient);
 * *out is a new value the caller owns. A reference that does not exist is
 * PE_MISSING (expr_walk answers that for missing keys and indices); a root
 * that has no value here (no artifact pinned) may be answered as null, but
 * should be PE_MISSING when ref->optional so `??` can supply a default.
 * expr turns a PE_MISSING it does not use into PE_CONFIG, so the code never
 * leaves expr_eval. */
typedef int (*expr_lookup_fn)(void *ctx, const struct expr_ref *ref, struct val **out,
                              struct err *e);
/* visit: called for every reference found. */
typedef int (*expr_visit_fn)(void *ctx, const struct expr_ref *ref, struct err *e);

/* expr_eval: interpolate every string in v (recursively; keys are not
 * interpolated). *out is a new tree. */
int expr_eval(struct val **out, const struct val *v, expr_lookup_fn lookup, void *ctx,
              struct err *e);
/* expr_visit: parse every string in v and call visit for each reference;
 * syntax errors are reported with positions. */
int expr_visit(const struct val *v, expr_visit_fn visit, void *ctx, struct err *e);
/* expr_walk: follow ref's segments from index `from` starting at root value;
 * a missing key or an index past the end is PE_MISSING at ref->pos (with a
 * did-you-mean); other failures are PE_CONFIG. *out is a clone.
 * what names the root for messages ("config", "output of 'db'"). */
int expr_walk(struct val **out, const struct val *root, const struct expr_ref *ref, size_t from,
              const char *what, struct err *e);
/* expr_has_refs: does s contain a `${` that is not escaped? */
bool expr_has_refs(const char *s);
/* expr_ref_string: the canonical text of segs[from..] ("a.b[0]"). Caller frees. */
char *expr_ref_path(const struct expr_ref *ref, size_t from);

#endif
