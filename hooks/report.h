/* report: tells a pull request how its preview environment is doing, through
 * GitHub's REST API on a libuv loop (core/net/client). For an env of a PR it
 * keeps one transient Deployment per head sha (earlier ones are set
 * inactive when superseded and all of them on teardown), a commit status
 * (context "prenv/preview"), and one sticky comment, found again by its
 * hidden marker <!-- prenv:ENV --> and only when prenv itself wrote it, then
 * edited in place: status, URL, commit, expiry, and on teardown a receipt of
 * what was removed or left.
 *
 * Authentication: a token (the config's, else $PRENV_GITHUB_TOKEN), or a
 * GitHub App: an RS256 JWT made with the App's private key is exchanged for
 * an installation token, which is cached until a few minutes before it
 * expires. With neither, reporting is off: report_enabled() says so and
 * every operation succeeds on the next loop iteration, doing nothing.
 *
 * Delivery: operations on one env run one after another in the order they
 * were asked for (a FIFO per env), so statuses arrive in order; different
 * envs proceed concurrently under a cap on requests in flight. Failed
 * requests are retried: rate limits are waited out (x-ratelimit-reset,
 * retry-after; a secondary limit without either waits at least a minute),
 * 5xx and transport failures back off exponentially with jitter, at most
 * max_attempts tries; mutating requests are spaced (GitHub's secondary
 * limits). Other 4xx answers are permanent errors carrying GitHub's message.
 *
 * Strings from the PR (titles, branches, descriptions) are data: request
 * bodies are JSON-escaped (invalid UTF-8 replaced), descriptions are clipped
 * to 140 characters on character boundaries, and text in the comment is
 * Markdown- and HTML-escaped. Tokens, JWTs and keys never appear in error
 * messages; nothing here prints.
 *
 * What it leaves to others: deciding when to report (the daemon), retrying
 * a failed operation later (the queue), and deleting deployments. */
#ifndef PRENV_REPORT_H
#define PRENV_REPORT_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define REPORT_API_DEFAULT "https://api.github.com"
#define REPORT_CONTEXT_DEFAULT "prenv/preview"
#define REPORT_DESC_MAX 140 /* GitHub's limit for status descriptions, in characters */

/* Configuration. Strings are copied by report_start; a zero number takes
 * the default in brackets. */
struct report_config {
    const char *api_url;      /* [https://api.github.com]; Enterprise Server: https://HOST/api/v3 */
    const char *token;        /* a token; NULL: $PRENV_GITHUB_TOKEN */
    const char *app_id;       /* GitHub App: its app id or client id (the JWT's iss) */
    const char *app_key_path; /* GitHub App: its private key, PEM (PKCS#1 or PKCS#8) */
    long long installation_id;   /* GitHub App: the installation to act as */
    const char *context;         /* commit status context [prenv/preview] */
    int max_attempts;            /* tries per request, the first included [5] */
    int max_inflight;            /* requests in flight, all envs together [8] */
    long long backoff_min_ms;    /* first back-off [1000] */
    long long backoff_max_ms;    /* back-off cap [60000] */
    long long secondary_wait_ms; /* a 403/429 rate limit without reset or retry-after [60000] */
    long long mutate_gap_ms;     /* between two mutating requests [1000]; negative: none */
    long long timeout_ms;        /* per request [30000] */
    size_t max_response;         /* per response body [8 MiB] */
    long long token_margin_ms;   /* renew an installation token this long before it expires
                                  * [5 min] */
};

/* The env being reported on. Strings are copied by each operation. */
struct report_pr {
    const char *repo; /* "owner/name" */
    long long number; /* the pull request */
    const char *sha;  /* its head sha (hex); may be NULL for report_teardown */
    const char *env;  /* the environment, "pr-42" */
};

/* How a deployment ended. */
struct report_result {
    bool ok;
    const char *url;         /* the environment's URL (when ok); may be NULL */
    const char *log_url;     /* may be NULL */
    const char *description; /* may be NULL for a default */
    long long expires_ms;    /* epoch ms when it will be reaped; 0 = never */
};

/* One line of a teardown receipt. */
struct report_item {
    const char *name; /* the resource, "db" */
    const char *type; /* "sqlite.database"; may be NULL */
    bool removed;
    const char *why; /* when not removed: what is left and why */
};

struct report_receipt {
    const struct report_item *items;
    size_t n;
    const char *description; /* may be NULL for a default */
};

struct reporter;

/* The completion callback of an operation, called exactly once on the
 * loop's thread, never from inside the call that started the operation.
 * e->code is 0 on success; otherwise the first error, prefixed with the env
 * ("report pr-42: ..."): PE_CANCELED (report_close), PE_TRANSIENT or
 * PE_LIMIT (retries or rate limits exhausted: try again later), PE_CONFIG
 * (credentials or permissions), PE_NOTFOUND, PE_USAGE (GitHub refused the
 * request, e.g. 422). e is borrowed; the callback may err_move it. */
typedef void (*report_cb)(struct err *e, void *ctx);
typedef void (*report_close_cb)(void *arg);

/* report_start: a reporter on loop. Reads the App's private key now (so a
 * bad key is a start-up error). *out is freed by report_close. */
int report_start(struct reporter **out, uv_loop_t *loop, const struct report_config *cfg,
                 struct err *e);

/* report_enabled: false when there are no credentials (reporting is off). */
bool report_enabled(const struct reporter *r);
/* report_auth_desc: how it authenticates, for one log line at start-up:
 * "token", "GitHub App 123 (installation 456)", or why reporting is off.
 * Never holds a secret. Borrowed from r. */
const char *report_auth_desc(const struct reporter *r);

/* report_deploy_start: a deployment of pr->sha to pr->env begins: creates a
 * Deployment (ref = sha, transient, not production, no auto-merge, no
 * required contexts), sets it in_progress, sets the commit status pending,
 * and sets the deployment it supersedes inactive. description may be NULL.
 * On failure (invalid arguments, closing) cb is never called. */
int report_deploy_start(struct reporter *r, const struct report_pr *pr, const char *description,
                        report_cb cb, void *ctx, struct err *e);

/* report_deploy_done: the deployment of pr->sha ended: its deployment status
 * becomes success (with environment_url, auto_inactive false) or failure,
 * the commit status success or failure (target_url: the URL, or the log URL
 * on failure), and the sticky comment is written. */
int report_deploy_done(struct reporter *r, const struct report_pr *pr,
                       const struct report_result *res, report_cb cb, void *ctx, struct err *e);

/* report_teardown: the env is gone: every deployment of it (all pages)
 * becomes inactive, and the sticky comment becomes a receipt listing every
 * resource removed, or left and why. */
int report_teardown(struct reporter *r, const struct report_pr *pr,
                    const struct report_receipt *receipt, report_cb cb, void *ctx, struct err *e);

/* report_pending: operations queued or running, all envs together. */
size_t report_pending(const struct reporter *r);
/* report_api: one authenticated call to GitHub's API with the reporter's
 * retries, rate limits and token handling; path is below the API base
 * ("/repos/o/r/pulls/42"). cb gets the status and body (or an error, and
 * then no body); a 404 is an answer when allow_404. Not ordered with the
 * reports of any env. */
typedef void (*report_api_cb)(int status, const char *body, size_t len, struct err *e, void *ctx);
int report_api(struct reporter *r, const char *method, const char *path, const char *json_body,
               bool allow_404, report_api_cb cb, void *ctx, struct err *e);

/* report_close: cancel every operation (each callback runs once, with
 * PE_CANCELED, before this returns), close the handles, free r, then
 * cb(arg) from the loop. Calling it twice is a bug. */
void report_close(struct reporter *r, report_close_cb cb, void *arg);

/* report_clip: s as valid UTF-8 (invalid bytes become U+FFFD, control
 * characters spaces) of at most max characters, cut on a character boundary
 * and ending with "…" when cut. Caller frees. */
char *report_clip(const char *s, size_t max);

#endif
