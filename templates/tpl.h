/* tpl: the stack template — resources (type, properties, depends_on,
 * protect) and outputs — loaded, validated and rendered for one environment.
 *
 * Loading checks everything that does not depend on an environment: YAML,
 * known keys, resource types (did-you-mean), property names, literal property
 * types, reference syntax, that referenced resources and outputs exist, and
 * that the dependency graph has no cycle (naming every member). Rendering
 * resolves `${...}` against the environment: env.*, pr.*, config.*,
 * artifact.*, project.*, <resource>.<output> and ref.<env>.<output>. */
#ifndef PRENV_TPL_H
#define PRENV_TPL_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#include <stdbool.h>
#include <stddef.h>

struct provider;

struct tpl_res {
    char *name;
    const struct provider *prov;
    const struct val *props; /* borrowed from the document; NULL if none */
    size_t *deps;            /* indices of resources this one depends on */
    size_t ndeps, capdeps;
    bool protect;
    struct pos pos; /* the resource's key */
};

struct tpl {
    char *file; /* as shown in errors */
    struct val *doc;
    struct tpl_res *res; /* in file order */
    size_t n;
    size_t *order;               /* topological order */
    const struct val *outputs;   /* borrowed; map or NULL */
};

int tpl_load(struct tpl **out, const char *path, const char *display, struct err *e);
void tpl_free(struct tpl *t);
/* tpl_find: index of resource name, or -1. */
int tpl_find(const struct tpl *t, const char *name);

/* What a render can see. */
struct tpl_ctx {
    const struct tpl *tpl;
    const struct val *env;      /* map: name, slug, kind, owner, work_dir */
    const struct val *pr;       /* map: number, sha, branch, author (may be NULL) */
    const struct val *artifact; /* map or NULL */
    const struct val *project;  /* map: name, dir */
    const struct val *config;   /* merged config, not yet interpolated */
    const char *config_from;    /* "envs/dev.yaml", for hints */
    /* outputs: borrowed outputs of a resource, or NULL when not known yet */
    const struct val *(*outputs)(void *octx, const char *resource);
    void *octx;
    /* ref_outputs: another environment's outputs (borrowed, owned by rctx) */
    int (*ref_outputs)(void *rctx, const char *env, const struct val **out, struct err *e);
    void *rctx;
    /* internal: config keys being resolved, for cycle detection */
    const char *resolving[32];
    size_t nresolving;
};

/* tpl_render_props: properties of resource i, interpolated. Caller frees. */
int tpl_render_props(struct val **out, struct tpl_ctx *ctx, size_t i, struct err *e);
/* tpl_render_outputs: the template's outputs, interpolated. Caller frees. */
int tpl_render_outputs(struct val **out, struct tpl_ctx *ctx, struct err *e);
/* tpl_render_config: the whole config, interpolated. Caller frees. */
int tpl_render_config(struct val **out, struct tpl_ctx *ctx, struct err *e);

#endif
