/* envcfg: an environment's layered configuration. A layer file holds
 * `imports:` (other layers, applied first, in order), `values:` and an
 * optional `description:`. Maps merge deeply, later wins, lists and scalars
 * replace (Pulumi ESC's rules). `--set` values form a last layer. Every leaf
 * remembers which layer set it, for `config list` and error messages. */
#ifndef PRENV_ENVCFG_H
#define PRENV_ENVCFG_H

#include "core/lib/err.h"
#include "core/lib/val.h"

struct project;

struct cfg_layer {
    char *name;  /* as shown: "envs/base.yaml", or "--set" */
    char *description;
};

struct envcfg {
    struct val *values;       /* merged map, uninterpolated */
    struct cfg_layer *layers; /* in the order they were applied */
    size_t nlayers, layers_cap;
    struct val *origin;       /* map: dotted leaf path -> "file:line" of the value that won */
};

/* envcfg_load: file is relative to the project dir (NULL = no file); sets is
 * an optional map (from --set) applied last. */
int envcfg_load(struct envcfg **out, const struct project *p, const char *file,
                const struct val *sets, struct err *e);
void envcfg_free(struct envcfg *c);
/* envcfg_set_path: set a dotted key in map m (creating maps on the way). */
int envcfg_set_path(struct val *m, const char *key, struct val *v, struct err *e);
/* envcfg_flatten: dotted leaf path -> value (borrowed) pairs, in order. */
struct cfg_leaf {
    char *path;
    const struct val *v;
};
size_t envcfg_flatten(const struct val *m, struct cfg_leaf **out);
void envcfg_leaves_free(struct cfg_leaf *l, size_t n);

#endif
