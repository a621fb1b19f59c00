/* provider: the contract between the engine and a resource type, and the
 * services the engine offers providers (logs, ports, cancellation).
 *
 * A provider knows nothing of environments, config or templates: it gets
 * resolved properties, the directories it may use, and what was recorded in
 * state last time; it returns an id, outputs and private data. Provider
 * functions are plain blocking calls run on worker threads, several at once
 * for different resources, so they keep no mutable global state.
 *
 * Identity rule: everything a provider creates is named from (env, resource)
 * deterministically (file names, pid files, database names), so `read` can
 * find it even when a crash lost the state write that recorded it. */
#ifndef PRENV_PROVIDER_H
#define PRENV_PROVIDER_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#include <stdbool.h>

struct sb;

enum prop_type {
    PT_ANY,      /* any value */
    PT_STR,      /* string (numbers are accepted and used as text) */
    PT_INT,      /* integer */
    PT_BOOL,     /* true / false */
    PT_ARGV,     /* non-empty list of scalars: a command, never run through a shell */
    PT_STRLIST,  /* list of scalars */
    PT_STRMAP,   /* map of scalars (environment variables) */
    PT_MAP,      /* any map */
    PT_DURATION, /* "30s", "5m", "1h30m" or an int number of seconds */
};

enum {
    PROP_REQUIRED = 1, /* must be present */
    PROP_REPLACE = 2,  /* a change forces delete + create rather than update */
};

struct prov_prop {
    const char *name;
    enum prop_type type;
    unsigned flags;
    const char *help;
};

enum {
    OUT_SECRET = 1, /* masked everywhere */
    OUT_STABLE = 2, /* an update never changes it (plans can show it before apply) */
};

struct prov_output {
    const char *name;
    unsigned flags;
    const char *help;
};

/* What the engine shares with every provider call of one run. */
struct prov_host {
    const char *state_dir;  /* absolute; ports/ leases live under it */
    int port_lo, port_hi;   /* the project's port range, inclusive */
    volatile int cancel;    /* set when the run is interrupted */
    bool env_protected;     /* the environment is protected (prod) */
    bool asleep;            /* the environment sleeps: services run no replica (scale 0) */
    bool force;             /* the user asked to act on it anyway (--force) */
    int router_port;        /* the port of prenv serve's router (router.route URLs) */
    const struct val *tags; /* the environment's tags (map), borrowed; may be NULL */
};

struct prov_call {
    const char *env;         /* environment name (a DNS-label slug) */
    const char *resource;    /* resource name in the template */
    const char *type;        /* resource type, "process.service" */
    const char *project_dir; /* absolute */
    const char *work_dir;    /* absolute, exists: the env's files (shared by its resources) */
    const char *log_dir;     /* absolute, exists: <state>/logs/<env> */
    const char *run_dir;     /* absolute, exists: <state>/run/<env>: pid files, specs */
    const struct val *props;       /* desired properties (map); NULL for read/remove */
    const struct val *old_props;   /* properties recorded in state; NULL on create */
    const struct val *old_outputs; /* outputs recorded in state; NULL on create */
    const struct val *priv;        /* provider-private data recorded in state; may be NULL */
    const char *id;                /* id recorded in state; NULL on create */
    bool rebuild;                  /* update: something this depends on was created anew;
                                    * redo the work even if the properties are the same */
    struct prov_host *host;
};

struct prov_result {
    char *id;            /* malloc'd; the engine takes it */
    struct val *outputs; /* map; the engine takes it */
    struct val *priv;    /* map of private data to get back next time; may stay NULL */
    bool exists;         /* read: false when the resource is gone */
    char *drift;         /* read: what differs from the recorded state (NULL = nothing) */
    char *note;          /* create/update: one line worth telling the user, or NULL */
};

struct provider {
    const char *type;
    const char *summary;
    const struct prov_prop *props;     /* ends with {NULL} */
    const struct prov_output *outputs; /* ends with {NULL} */
    /* check: validation beyond the property schema; pure, no I/O. Optional. */
    int (*check)(const struct prov_call *c, struct err *e);
    int (*create)(const struct prov_call *c, struct prov_result *r, struct err *e);
    /* read: observe reality for what state records (old_*, priv, id). Must
     * also find what a crashed create left (see identity rule). */
    int (*read)(const struct prov_call *c, struct prov_result *r, struct err *e);
    int (*update)(const struct prov_call *c, struct prov_result *r, struct err *e);
    /* remove: idempotent; removing what is already gone succeeds. */
    int (*remove)(const struct prov_call *c, struct err *e);
    /* scale: optional; set the replica count (0 = asleep) keeping everything else. */
    int (*scale)(const struct prov_call *c, int replicas, struct prov_result *r, struct err *e);
    /* fingerprint: optional; a digest of content the properties point at (a
     * file's bytes), so a change to it is a change to the resource. The
     * engine records it as the input "fingerprint". Called at plan time. */
    int (*fingerprint)(const struct prov_call *c, char **out, struct err *e);
};

/* Registry. */
const struct provider *prov_find(const char *type);
const struct provider *const *prov_all(void);
const struct prov_prop *prov_prop_find(const struct provider *p, const char *name);
const struct prov_output *prov_output_find(const struct provider *p, const char *name);
/* prov_check_props: schema check of props (unknown keys with did-you-mean,
 * required keys, types), then p->check. at is the resource's position. */
int prov_check_props(const struct provider *p, const struct prov_call *c, const struct pos *at,
                     struct err *e);
void prov_result_release(struct prov_result *r);

/* Property access for providers (after prov_check_props succeeded). */
const char *prov_str(const struct val *props, const char *name, const char *def);
long long prov_int(const struct val *props, const char *name, long long def);
bool prov_bool(const struct val *props, const char *name, bool def);
long long prov_duration_ms(const struct val *props, const char *name, long long def);
/* prov_argv: a NULL-terminated argv from a PT_ARGV property; free with prov_argv_free. */
char **prov_argv(const struct val *props, const char *name);
void prov_argv_free(char **argv);

/* Host services. */
/* prov_log_path: <log_dir>/<resource><suffix>.log; caller frees. */
char *prov_log_path(const struct prov_call *c, const char *suffix);
/* prov_log_open: that file opened O_APPEND|O_CLOEXEC (-1 on error). */
int prov_log_open(const struct prov_call *c, const char *suffix);
/* prov_log: append a timestamped "[prenv] ..." line to the resource's log. */
void prov_log(const struct prov_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* prov_env: environment for a child: ours minus prenv secrets, plus
 * PRENV_ENV / PRENV_RESOURCE, PRENV_TAG_<NAME> for each of the env's tags
 * (the name uppercased, other than letters and digits '_'), and extra. Free with proc_env_free. */
char **prov_env(const struct prov_call *c, const struct val *extra);
/* Port leases: <state>/ports/<port> names its owner; alloc takes n ports that
 * no other lease holds and that can be bound on 127.0.0.1 right now. */
int prov_ports_alloc(const struct prov_call *c, int n, int *ports, struct err *e);
void prov_ports_release(const struct prov_call *c, const int *ports, int n);
/* prov_ports_owned: every port leased to (env, resource); caller frees *ports. */
int prov_ports_owned(const struct prov_call *c, int **ports);
static inline bool prov_canceled(const struct prov_call *c)
{
    return c->host && c->host->cancel;
}

#endif
