/* vcs: libgit2 set-up and teardown for the process, and libgit2 errors as
 * prenv errors. The only mutable state is the once-flag and two atomics that
 * remember whether libgit2 started and whether it was shut down; everything
 * else is per call. */
#include "core/lib/vcs.h"

#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"

#include <git2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
/* libgit2 1.5 (Debian 12) never frees its pcre2 match data when a regex does
 * not match (git_regexp_match; fixed upstream in 1.6 by bb65da7d5 "Fix memory
 * leak"), and every repository open matches config keys against one, so each
 * open leaks about 20 KiB per config entry. Nothing else in prenv uses pcre2:
 * keep that library's leak out of LeakSanitizer's reports. The leak is real in
 * a long-running process: the fix is a libgit2 with that commit. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libpcre2-8.so\n";
}

/* and do not print the table of suppressions used at every exit */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
    return "print_suppressions=0";
}
#endif

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static atomic_int init_rc; /* git_libgit2_init's result (> 0 = started) */
static atomic_bool shut;   /* vcs_shutdown ran */

static void init_libgit2(void)
{
    if (atomic_load(&shut))
        return;
    int rc = git_libgit2_init();
    atomic_store(&init_rc, rc);
    /* the CA bundle the HTTP client uses (core/net/client.h), for libgit2
     * too: built on mbedTLS (the static build) it reads no SSL_CERT_FILE */
    const char *ca = getenv("PRENV_CA_FILE");
    if (!ca || !*ca)
        ca = getenv("SSL_CERT_FILE");
    if (rc > 0 && ca && *ca)
        git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, ca, NULL);
}

int vcs_init(struct err *e)
{
    pthread_once(&init_once, init_libgit2);
    if (atomic_load(&shut))
        return err_set(e, PE_INTERNAL, NULL, "libgit2 was used after vcs_shutdown");
    if (atomic_load(&init_rc) <= 0)
        return err_set(e, PE_INTERNAL, NULL, "cannot initialise libgit2: %s", vcs_errmsg());
    return 0;
}

void vcs_shutdown(void)
{
    if (atomic_exchange(&shut, true))
        return;
    /* from here on the once-routine starts nothing; this waits for a start
     * in progress, and a later vcs_init sees "shut down" */
    pthread_once(&init_once, init_libgit2);
    if (atomic_load(&init_rc) > 0)
        git_libgit2_shutdown();
}

const char *vcs_errmsg(void)
{
    const git_error *ge = git_error_last();
    return ge && ge->message && *ge->message ? ge->message : "unknown libgit2 error";
}

static bool has(const char *msg, const char *needle)
{
    return strcasestr(msg, needle) != NULL;
}

/* the HTTP status in "unexpected http status code: 404" and the like; 0 if none */
static int http_status(const char *msg)
{
    const char *p = strcasestr(msg, "status code: ");
    if (!p)
        return 0;
    p += strlen("status code: ");
    int n = 0;
    for (int i = 0; i < 3; i++, p++) {
        if (*p < '0' || *p > '9')
            return 0;
        n = n * 10 + (*p - '0');
    }
    return n;
}

static bool looks_missing(const char *msg)
{
    return has(msg, "not found") || has(msg, "could not find repository") ||
           has(msg, "not a git repository") || has(msg, "does not appear to be a git") ||
           has(msg, "does not exist") || has(msg, "no such file");
}

static bool looks_transient(const char *msg)
{
    return has(msg, "failed to connect") || has(msg, "failed to resolve") ||
           has(msg, "timed out") || has(msg, "timeout") || has(msg, "connection reset") ||
           has(msg, "connection refused") || has(msg, "broken pipe") || has(msg, "early eof") ||
           has(msg, "unexpected eof") || has(msg, "temporar") || has(msg, "try again") ||
           has(msg, "network is unreachable") || has(msg, "no route to host");
}

int vcs_err(struct err *e, int rc, const struct pos *at, const char *fmt, ...)
{
    const git_error *ge = git_error_last();
    const char *msg = vcs_errmsg();
    int klass = ge ? ge->klass : GIT_ERROR_NONE;
    int status = http_status(msg);
    int code = PE_PROVIDER;
    const char *hint = NULL;
    static const char retry_hint[] = "the remote could not be reached or failed; prenv retries, "
                                     "and if it keeps failing check the network and that the "
                                     "server is up";

    if (rc == GIT_EUSER || has(msg, "cancelled by the user")) {
        code = PE_CANCELED;
    } else if (rc == GIT_EAUTH || status == 401 || status == 403 || has(msg, "authentication")) {
        hint = "the remote wants credentials and prenv passes none (ssh:// URLs may use a key "
               "in ssh-agent): use a URL that can be read anonymously, or a local mirror";
    } else if (rc == GIT_ECERTIFICATE || has(msg, "certificate")) {
        hint = "the server's TLS certificate was refused; fix the server's certificate, or "
               "point PRENV_CA_FILE (or SSL_CERT_FILE) at a PEM bundle of CA certificates";
    } else if (status) {
        if (status >= 500 || status == 408 || status == 429) {
            code = PE_TRANSIENT;
            hint = retry_hint;
        } else if (status == 404)
            hint = "check the URL: the server says there is no repository there";
    } else if (has(msg, "remote error")) {
        /* the server refused (no such repository, access denied) */
        if (looks_transient(msg))
            code = PE_TRANSIENT;
        else if (looks_missing(msg))
            hint = "check the URL: the server says there is no repository there";
    } else if (has(msg, "name or service not known") || has(msg, "no address associated")) {
        /* a definite answer from DNS, unlike "temporary failure in name resolution" */
        hint = "check the host name in the URL";
    } else if (looks_missing(msg) && klass != GIT_ERROR_NET) {
        hint = "check the URL and that the repository exists";
    } else if (klass == GIT_ERROR_NET || klass == GIT_ERROR_SSL || klass == GIT_ERROR_SSH ||
               (klass == GIT_ERROR_HTTP && looks_transient(msg)) ||
               (klass == GIT_ERROR_OS && looks_transient(msg))) {
        code = PE_TRANSIENT;
        hint = retry_hint;
    }

    struct sb b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    err_set(e, code, at, "%s: %s", b.buf, msg);
    if (hint)
        err_hint(e, "%s", hint);
    sb_release(&b);
    return code;
}

char *vcs_url_redact(const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep)
        return xstrdup(url); /* a path, or scp-like user@host:path with no secret */
    const char *auth = sep + 3;
    size_t hostlen = strcspn(auth, "/?#");
    const char *at = memrchr(auth, '@', hostlen);
    if (!at)
        return xstrdup(url);
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    bool web = str_prefix(url, "http://") || str_prefix(url, "https://");
    struct sb b;
    sb_init(&b);
    sb_add(&b, url, (size_t)(auth - url));
    if (colon) {
        sb_add(&b, auth, (size_t)(colon - auth));
        sb_adds(&b, ":***");
    } else if (web) {
        sb_adds(&b, "***"); /* https://TOKEN@host: the user part is the secret */
    } else {
        sb_add(&b, auth, (size_t)(at - auth));
    }
    sb_adds(&b, at);
    return sb_steal(&b);
}
