/* project: prenv.yaml — the project's name, template, stages, preview and
 * sandbox policies, tags, state directory and port range — and the naming
 * rules that decide what kind an environment name is. Loading validates
 * everything and reports errors at file:line:col; nothing here changes any
 * environment. */
#ifndef PRENV_PROJECT_H
#define PRENV_PROJECT_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#include <stdbool.h>

#define PROJECT_FILE "prenv.yaml"
#define ENV_NAME_MAX 40

enum env_kind { ENV_STAGE, ENV_PREVIEW, ENV_SANDBOX };

struct stage {
    char *name;
    char *config; /* relative to the project dir */
    bool protect;
    bool approval; /* approval: required: promotions into it wait for `prenv approve` */
    const struct val *schedule; /* borrowed from the document; NULL = none */
    bool retain_set;    /* logs: {retain: N} given */
    int retain;         /* rotated log files kept per replica */
    bool pii_redact;    /* pii: redact: mask emails and IPs in service logs */
    struct pos pos;
};

struct kind_policy {
    bool enabled;
    char *pattern;      /* "pr-{number}", "sb-{name}" */
    char *prefix;       /* text before the placeholder */
    char *suffix;       /* text after it */
    bool numeric;       /* {number} rather than {name} */
    char *config;       /* relative to the project dir, may be NULL */
    long long ttl_ms;   /* 0 = none */
    long long idle_ms;  /* expire after this long without activity; 0 = none */
    long long idle_sleep_ms; /* sleep after this long without activity; 0 = never */
    long long warn_ms;  /* warn this long before expiry (default 2h) */
    long long max_ttl_ms; /* `env extend` cannot go past created + this (default 30d) */
    const struct val *schedule; /* borrowed; NULL = none */
    int max_per_owner;  /* sandboxes: 0 = unlimited */
    bool retain_set;    /* logs: {retain: N} given */
    int retain;         /* rotated log files kept per replica */
};

/* What `prenv serve` reads: previews policy for webhooks, the daemon, GitHub. */
struct preview_policy {
    bool drafts;           /* previews.drafts: deploy draft PRs */
    bool destroy_on_draft; /* previews.on_draft: destroy (default keep) */
    char *label;           /* previews.label: opt-in label, NULL = every PR */
    int forks;             /* previews.forks: 0 deny, 1 allow, 2 trusted */
    char **trusted;        /* previews.forks.trusted logins (NULL-terminated) */
    int max;               /* previews.max: concurrent previews, 0 = unlimited */
};

struct serve_conf {
    char *listen;          /* serve.listen, default 127.0.0.1:8787 */
    int concurrency;       /* serve.concurrency: envs changing at once (default 2) */
    int max_attempts;      /* serve.max_attempts before a job is parked (default 5) */
    long long shutdown_ms; /* serve.shutdown_timeout (default 30s) */
    char *api_token;       /* serve.api_token or $PRENV_API_TOKEN */
    char *public_url;      /* serve.public_url: where prenv is reachable (log links) */
    long long sweep_ms;    /* serve.sweep_interval: ask GitHub about every PR (default 10m; 0 off) */
    long long refresh_ms;  /* serve.refresh_interval: read every stage for drift (default 30m; 0 off) */
};

/* Who may pass the router to an environment of one kind: nobody is asked when
 * both are NULL. */
struct router_access {
    char *token; /* a request must carry "Authorization: Bearer <token>" */
    char *basic; /* ...or basic credentials "user:password" */
};

struct router_conf {
    char *listen;         /* router.listen, default 127.0.0.1:8080 (--router overrides) */
    int port;             /* its port: router.route URLs carry it */
    long long hold_ms;    /* router.hold: how long a request waits for a wake (default 60s) */
    long long wake_ms;    /* router.wake_for: a request's wake holds over the schedule this
                           * long (default 1h) */
    struct router_access access[3]; /* router.access.<stages|previews|sandboxes>, by env_kind */
};

struct github_conf {
    char *webhook_secret;  /* github.webhook_secret or $PRENV_GITHUB_WEBHOOK_SECRET */
    char *api_url;         /* github.api_url (default https://api.github.com) */
    char *token;           /* github.token or $PRENV_GITHUB_TOKEN */
    char *app_id;          /* github.app.id */
    char *app_key_file;    /* github.app.private_key_file (absolute) */
    long long app_installation; /* github.app.installation */
};

/* cost: the rate card (docs/cost.md). Rates are money per hour. */
struct cost_card {
    bool set;                 /* prenv.yaml has a cost: section */
    char *currency;           /* cost.currency, "" when unset */
    struct val *replica_hour; /* map of size -> number (a bare number is {default: n}) */
    double database_hour;     /* per postgres.database or sqlite.database */
};

struct project {
    char *dir;       /* absolute project root */
    char *file;      /* absolute path of prenv.yaml */
    char *name;
    char *template_file; /* relative to dir */
    char *state_dir;     /* absolute */
    int port_lo, port_hi;
    struct val *tags;    /* map of string -> string */
    struct stage *stages;
    size_t nstages;
    struct kind_policy previews, sandboxes;
    struct preview_policy pp;
    struct serve_conf serve;
    struct router_conf router;
    struct github_conf gh;
    struct cost_card cost;
    char *salt;          /* encryptionsalt: the secrets' salt state, NULL = none */
    int salt_line;       /* where prenv.yaml has it */
    struct val *doc;     /* the whole parsed file */
};

/* project_find: the nearest directory at or above start holding prenv.yaml.
 * Caller frees *dir. */
int project_find(char **dir, const char *start, struct err *e);
/* project_load: parse and validate dir/prenv.yaml. state_dir overrides the
 * file's (NULL = use the file's, or PRENV_STATE_DIR, or .prenv). */
int project_load(struct project **out, const char *dir, const char *state_dir, struct err *e);
void project_free(struct project *p);
const struct stage *project_stage(const struct project *p, const char *name);
const char *env_kind_name(enum env_kind k);
bool env_kind_parse(const char *s, enum env_kind *k);

/* An environment's identity as the project defines it. */
struct env_def {
    char *name;
    enum env_kind kind;
    char *config;      /* config file relative to project dir, may be NULL */
    bool protect;
    bool approval;     /* stages with approval: required */
    long long ttl_ms;  /* policy default, 0 = none */
    long long idle_ms, idle_sleep_ms, warn_ms, max_ttl_ms; /* stages: 0 (never expire) */
    const struct val *schedule; /* the kind's or stage's policy; borrowed from the project */
    long long number;  /* previews: the PR number */
    bool retain_set;   /* logs.retain of the kind or stage: overrides log_keep */
    int retain;
    bool pii_redact;   /* stages with pii: redact */
};

/* project_env: classify name (a stage, or matching the preview or sandbox
 * pattern); an unknown name is an error with suggestions. */
int project_env(struct env_def *out, const struct project *p, const char *name, struct err *e);
void env_def_release(struct env_def *d);
/* project_env_name: the name of preview `number` or sandbox `name`. */
char *project_preview_name(const struct project *p, long long number);
char *project_sandbox_name(const struct project *p, const char *who);

/* project_check_schedule: a `schedule:` map is well formed: a map, every spec
 * parses, every zone loads; errors point into the file. */
int project_check_schedule(const struct val *sc, struct err *e);
/* project_listen_port: the port of a "HOST:PORT" listen address, 0 if none. */
int project_listen_port(const char *listen);

#endif
