/* github: GitHub webhook deliveries → intents. Verifies X-Hub-Signature-256
 * (HMAC-SHA256 of the raw body, compared in constant time) before anything
 * is parsed, parses pull_request events, and decides by the project's policy
 * (drafts, opt-in label, forks) whether a delivery means "up pr-N at sha",
 * "destroy pr-N", or nothing. Strings from the payload (branch names,
 * titles, logins) are data only: they never reach a shell, SQL or a path.
 * Pure functions: no I/O, no HTTP, no queue. */
#ifndef PRENV_GITHUB_H
#define PRENV_GITHUB_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stddef.h>

enum gh_forks { GH_FORKS_DENY, GH_FORKS_ALLOW, GH_FORKS_TRUSTED };

struct gh_policy {
    bool drafts;            /* deploy draft PRs (default false) */
    bool destroy_on_draft;  /* converted_to_draft destroys (default: keep) */
    const char *label;      /* only PRs carrying this label get a preview; NULL = all */
    enum gh_forks forks;    /* deny (default), allow (without secrets), trusted logins */
    const char *const *trusted; /* logins trusted when forks = trusted; NULL-terminated */
};

struct gh_event {
    char *event;    /* X-GitHub-Event */
    char *delivery; /* X-GitHub-Delivery */
    char *hook_id;  /* X-GitHub-Hook-ID, may be NULL */
    char *action;
    char *repo;     /* base repository full name */
    long long number;
    char *sha, *branch, *author, *title, *state, *label; /* label: of labeled/unlabeled */
    char *head_repo; /* may be NULL (deleted fork) */
    char **labels;   /* names of the labels the PR carries */
    size_t nlabels;
    bool draft, merged, fork;
    long long updated_ms;
    long long installation; /* App deliveries, else 0 */
};

enum gh_verdict { GH_IGNORE, GH_PING, GH_UP, GH_DESTROY };

/* gh_verify: 0 when sig ("sha256=<64 hex>") is the HMAC of body under
 * secret; PE_USAGE with a reason otherwise (missing, malformed, wrong). */
int gh_verify(const char *secret, const char *sig, const void *body, size_t len, struct err *e);
/* gh_parse: event from the headers and the JSON body (PE_USAGE when it is not
 * a well-formed delivery). */
int gh_parse(struct gh_event *ev, const char *event, const char *delivery, const char *hook_id,
             const char *body, size_t len, struct err *e);
void gh_event_release(struct gh_event *ev);
/* gh_decide: what the delivery asks for, and why (a static string). */
enum gh_verdict gh_decide(const struct gh_event *ev, const struct gh_policy *p, const char **why);
/* gh_meta_json: the PR facts a job carries (number, sha, branch, author,
 * title, repo, delivery, fork, untrusted). Caller frees. */
char *gh_meta_json(const struct gh_event *ev, bool untrusted);

#endif
