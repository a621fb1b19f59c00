/* proxy_driver: bench/router.sh's prenv side. Starts core/net/proxy on
 * LISTEN with a decide callback that forwards every request to UPSTREAM,
 * prints "ready <port>" and runs until SIGINT or SIGTERM, then prints the
 * proxy's counters. Bench only: no configuration, no routing. */
#include "core/lib/err.h"
#include "core/net/proxy.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct proxy_upstream up;
static struct proxy *px;

static void decide(struct proxy_req *r, void *ctx)
{
    (void)ctx;
    proxy_forward(r, "bench", &up, 1);
}

static void on_closed(struct proxy *p)
{
    const struct proxy_stats *s = proxy_stats(p);
    fprintf(stderr,
            "proxy-driver: requests=%llu 2xx=%llu 5xx=%llu upstream_conns_made=%llu "
            "reuses=%llu buffered_peak=%llu\n",
            (unsigned long long)s->requests, (unsigned long long)s->responses[2],
            (unsigned long long)s->responses[5], (unsigned long long)s->upstream_conns_made,
            (unsigned long long)s->upstream_reuses, (unsigned long long)s->buffered_peak);
}

static uv_signal_t si, st;

static void on_signal(uv_signal_t *h, int sig)
{
    (void)h;
    (void)sig;
    proxy_close(px, 1000, on_closed);
    uv_close((uv_handle_t *)&si, NULL);
    uv_close((uv_handle_t *)&st, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: proxy-driver LISTEN UPSTREAM\n");
        return 2;
    }
    up.addr = argv[2];
    uv_loop_t *loop = uv_default_loop();
    struct err e = {0};
    struct proxy_opts o = {.decide = decide};
    o.lim.max_connections = 4096;
    o.lim.pool_max_idle = 64; /* as the nginx peer's keepalive 64 */
    if (proxy_start(&px, loop, argv[1], &o, &e) != 0) {
        fprintf(stderr, "proxy-driver: %s\n", e.msg);
        err_release(&e);
        return 1;
    }
    uv_signal_init(loop, &si);
    uv_signal_init(loop, &st);
    uv_signal_start(&si, on_signal, SIGINT);
    uv_signal_start(&st, on_signal, SIGTERM);
    printf("ready %d\n", proxy_port(px));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
