/* Unit tests for core/net/client: what an https:// request says when there
 * are no CA certificates to verify the server with. */
#include "core/lib/err.h"
#include "core/net/client.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static void on_done(struct net_resp *resp, struct err *e, void *ctx)
{
    (void)resp;
    (void)e;
    (void)ctx;
    cr_assert_fail("a refused request has no callback");
}

static void on_closed(struct net_client *c)
{
    (void)c;
}

static void assert_refused(const char *url, const char *want)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct net_client c;
    struct err e = {0};
    cr_assert_eq(net_client_start(&c, &loop, &e), 0);
    struct net_req req = {.url = url};
    cr_assert_neq(net_request(&c, &req, on_done, NULL, NULL, &e), 0);
    cr_assert(e.msg && strstr(e.msg, want), "%s", e.msg);
    cr_assert(e.hint && strstr(e.hint, "PEM bundle"), "%s", e.hint);
    err_release(&e);
    net_client_close(&c, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(client, https_with_an_unreadable_ca_file_names_the_variable)
{
    setenv("PRENV_CA_FILE", "/nonexistent/ca.pem", 1);
    assert_refused("https://127.0.0.1:1/x",
                   "GET https://127.0.0.1:1/x: cannot read the CA certificates in "
                   "PRENV_CA_FILE=/nonexistent/ca.pem");
    unsetenv("PRENV_CA_FILE");
    setenv("SSL_CERT_FILE", "/nonexistent/bundle.crt", 1);
    assert_refused("https://127.0.0.1:1/x", "SSL_CERT_FILE=/nonexistent/bundle.crt");
    unsetenv("SSL_CERT_FILE");
}
