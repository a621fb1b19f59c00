/* version: prenv's version and commit; with --verbose also how it was built
 * (static or dynamic, which libc) and the version of every library linked
 * in, as the libraries themselves report it at run time. */
#include "cmd/cmd.h"
#include "ttl/tz_embedded.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <git2.h>
#include <http_parser.h>
#include <libpq-fe.h>
#include <mbedtls/version.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <uv.h>
#include <yaml.h>
#ifdef __GLIBC__
#include <gnu/libc-version.h>
#endif

struct version_opts {
    bool verbose;
};

static const struct cmd_opt opts[] = {
    {"verbose", 'v', OPT_BOOL, offsetof(struct version_opts, verbose), NULL,
     "also print the build (static or dynamic, libc) and every library's version"},
    {NULL},
};

#ifndef PRENV_LIBC
#define PRENV_LIBC "unknown libc"
#endif

static void print_libc(void)
{
#ifdef __GLIBC__
    printf("%-12s glibc %s\n", "libc", gnu_get_libc_version());
#else
    /* musl has no run-time version call: the build names it */
    printf("%-12s %s\n", "libc", PRENV_LIBC);
#endif
}

static void print_verbose(void)
{
#ifdef PRENV_STATIC_BUILD
    printf("%-12s static\n", "build");
#else
    printf("%-12s dynamic\n", "build");
#endif
    print_libc();
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    printf("%-12s %s (%s%s%s)\n", "libcurl", cv->version,
           cv->ssl_version ? cv->ssl_version : "no TLS", cv->libz_version ? ", zlib " : "",
           cv->libz_version ? cv->libz_version : "");
    printf("%-12s %s\n", "libuv", uv_version_string());
    int maj, min, rev;
    git_libgit2_version(&maj, &min, &rev);
    int f = git_libgit2_features();
    printf("%-12s %d.%d.%d (https %s, ssh %s)\n", "libgit2", maj, min, rev,
           f & GIT_FEATURE_HTTPS ? "yes" : "no", f & GIT_FEATURE_SSH ? "yes" : "no");
    char mb[32];
    mbedtls_version_get_string(mb);
    printf("%-12s %s\n", "mbedTLS", mb);
    unsigned long hp = http_parser_version();
    printf("%-12s %lu.%lu.%lu\n", "http-parser", hp >> 16 & 255, hp >> 8 & 255, hp & 255);
    printf("%-12s %s\n", "cJSON", cJSON_Version());
    printf("%-12s %s\n", "libyaml", yaml_get_version_string());
    printf("%-12s %s\n", "sqlite3", sqlite3_libversion());
    int pq = PQlibVersion();
    printf("%-12s %d.%d\n", "libpq", pq / 10000, pq % 10000);
    printf("%-12s %zu zones of tzdata %s built in (used where the system has none)\n", "time zones",
           tz_embedded_count, tz_embedded_version);
}

static int exec_version(struct cmd_ctx *c, void *o, int argc, char **argv)
{
    (void)c;
    (void)argc;
    (void)argv;
    const struct version_opts *v = o;
    printf("prenv %s (commit %s)\n", PRENV_VERSION, PRENV_COMMIT);
    if (v->verbose)
        print_verbose();
    return EXIT_OK;
}

const struct cmd_entry cmd_version_entry = {
    .name = "version",
    .min_args = 0,
    .max_args = 0,
    .summary = "print prenv's version",
    .opts = opts,
    .opts_size = sizeof(struct version_opts),
    .exec = exec_version,
};
