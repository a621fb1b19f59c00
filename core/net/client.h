/* client: an asynchronous HTTP(S) client on a libuv loop. It drives
 * libcurl's multi interface from the loop (curl_multi_socket_action, a
 * uv_poll_t per socket curl opens and one uv_timer_t for curl's timeout), so
 * no request ever blocks the loop. A request's method, URL, headers and body
 * are copied; its response (status, headers, body) is collected in memory
 * under caps, and over a cap is an error, never a crash. Connections are
 * kept alive and reused between requests to the same host.
 *
 * TLS: peers are verified against the system's CA bundle, or against the
 * file named by PRENV_CA_FILE (else SSL_CERT_FILE) when set. Where neither is
 * readable an https:// request fails at once with an error naming both
 * variables (a static binary in an empty container has no bundle).
 *
 * What it leaves to others: retries, rate limits, authentication and
 * redirects (a 3xx is handed back like any response), cookies, streaming,
 * proxies configured anywhere but curl's usual environment variables, and
 * logging (nothing here prints; error messages never hold bodies, header
 * values, or a URL's query or user info).
 *
 * Threads: everything runs on the loop's thread; curl_global_init happens
 * once per process (pthread_once). */
#ifndef PRENV_CLIENT_H
#define PRENV_CLIENT_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define NET_TIMEOUT_DEFAULT_MS 30000
#define NET_MAX_RESPONSE_DEFAULT ((size_t)8 << 20)
#define NET_MAX_HEADER_BYTES ((size_t)64 << 10) /* response headers, all lines together */
#define NET_MAX_HEADERS 200                     /* response header lines */

/* A request. Everything is copied by net_request: the caller may free it as
 * soon as net_request returns. */
struct net_req {
    const char *method;         /* "GET" (the default when NULL), "POST", "PATCH", ... */
    const char *url;            /* http:// or https:// only */
    const char *const *headers; /* "Name: value" lines, NULL-terminated; may be NULL */
    const void *body;           /* sent as is; may be NULL */
    size_t body_len;
    long long timeout_ms; /* the whole exchange [NET_TIMEOUT_DEFAULT_MS] */
    size_t max_response;  /* body cap [NET_MAX_RESPONSE_DEFAULT]; over it is PE_LIMIT */
};

struct net_header {
    char *name, *value; /* as received; value without surrounding blanks */
};

/* A response as the callback sees it: the final response's status line,
 * headers and body (interim 1xx responses are dropped). */
struct net_resp {
    int status;                 /* 0 when the exchange failed */
    struct net_header *headers; /* in order, duplicates kept */
    size_t nheaders;
    char *body; /* never NULL; body[body_len] == 0 */
    size_t body_len;
};

/* net_resp_header: the first header named name (ASCII case-insensitive), or
 * NULL. Borrowed from r. */
const char *net_resp_header(const struct net_resp *r, const char *name);

/* The completion callback, called exactly once per accepted request, on the
 * loop's thread. e->code is 0 when a response arrived (whatever its status),
 * else the transport failure: PE_TIMEOUT, PE_LIMIT (a cap), PE_CANCELED
 * (net_cancel or net_client_close), PE_USAGE (a URL curl refuses) or
 * PE_TRANSIENT (connection refused, reset, TLS, DNS...). resp and e are
 * borrowed for the call; the callback may take resp->body (setting it to
 * NULL) and may move e with err_move. It may start new requests, cancel
 * others, or close the client. */
typedef void (*net_done_fn)(struct net_resp *resp, struct err *e, void *ctx);

struct net_call;
struct net_client;
typedef void (*net_close_fn)(struct net_client *c);

/* The client. Embed it in its owner (or allocate it); it must stay put from
 * a successful net_client_start until close_cb has run. Fields are private. */
struct net_client {
    /* private */
    uv_loop_t *loop;
    void *multi;            /* CURLM */
    uv_timer_t timer;       /* curl's timeout */
    struct net_call *calls; /* in flight, a doubly linked list */
    struct net_sock *socks; /* polled sockets (and ones closing) */
    char *ca_file;          /* PRENV_CA_FILE or SSL_CERT_FILE, or NULL */
    uint64_t next_id;
    int handles;     /* open libuv handles (timer + polls) */
    int dispatching; /* depth of callbacks being run */
    bool started, closing, close_pending, close_cb_called;
    net_close_fn close_cb;
};

/* net_client_start: a client bound to loop. On failure nothing is left open. */
int net_client_start(struct net_client *c, uv_loop_t *loop, struct err *e);

/* net_request: start req; cb(resp, err, ctx) runs once it completes. *id
 * (when id is not NULL) names the request for net_cancel. On failure (bad
 * arguments, a closing client) cb is never called. */
int net_request(struct net_client *c, const struct net_req *req, net_done_fn cb, void *ctx,
                uint64_t *id, struct err *e);

/* net_cancel: stop request id now; its callback runs with PE_CANCELED before
 * net_cancel returns. Returns false when id is not in flight (it completed
 * already, or never was). */
bool net_cancel(struct net_client *c, uint64_t id);

/* net_inflight: requests started and not yet completed. */
size_t net_inflight(const struct net_client *c);

/* net_client_close: cancel everything in flight (each callback runs once,
 * with PE_CANCELED, before this returns, or right after the callback that
 * called it), then close the handles; close_cb(c) runs from the loop once
 * every handle is closed, and then c may be freed. Calling it again does
 * nothing. */
void net_client_close(struct net_client *c, net_close_fn close_cb);

#endif
