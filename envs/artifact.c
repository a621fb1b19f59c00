/* artifact: pinning a build by digest, and the content-addressed store that
 * keeps its bytes. Fetching (file or HTTP) writes into a temporary file in
 * the store, the temporary copy is hashed, and only a copy with the expected
 * digest is renamed into place: the store never holds a wrong file under a
 * digest's name. */
#include "envs/artifact.h"

#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIGEST_PREFIX "sha256:"

char *artifact_store_path(const char *state_dir, const char *hex)
{
    return xasprintf("%s/artifacts/sha256/%s", state_dir, hex);
}

const char *artifact_digest(const struct val *pin)
{
    const char *d = val_map_str(pin, "digest", NULL);
    return d && *d ? d : NULL;
}

/* 64 hex digits, lowercased into out (65 bytes) */
static bool parse_hex(const char *s, size_t len, char out[65])
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return false;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[64] = 0;
    return true;
}

/* "URI@sha256:HEX" into a new uri and hex */
static int parse_spec(const char *spec, char **uri, char hex[65], struct err *e)
{
    const char *at = NULL;
    for (const char *p = spec; (p = strstr(p, "@" DIGEST_PREFIX)); p++)
        at = p;
    if (!at) {
        const char *last = strrchr(spec, '@');
        const char *colon = last ? strchr(last, ':') : NULL;
        if (last && colon && !strchr(last, '/')) {
            err_set(e, PE_USAGE, NULL, "--artifact '%s': only sha256 digests are supported, not "
                                       "'%.*s'",
                    spec, (int)(colon - last - 1), last + 1);
        } else {
            err_set(e, PE_USAGE, NULL, "--artifact '%s' has no digest: write it URI@sha256:HEX",
                    spec);
        }
        err_hint(e, "the digest is the SHA-256 of the build's bytes, as your CI recorded it "
                    "(`sha256sum FILE` prints it)");
        return PE_USAGE;
    }
    const char *h = at + 1 + strlen(DIGEST_PREFIX);
    if (!parse_hex(h, strlen(h), hex)) {
        err_set(e, PE_USAGE, NULL, "--artifact '%s': '%s' is not a SHA-256 digest (64 hex digits)",
                spec, h);
        err_hint(e, "`sha256sum FILE` prints the digest of a file");
        return PE_USAGE;
    }
    if (at == spec)
        return err_set(e, PE_USAGE, NULL, "--artifact '%s' names no file before the digest", spec);
    *uri = xstrndup(spec, (size_t)(at - spec));
    return 0;
}

static bool is_http(const char *uri)
{
    return !strncmp(uri, "http://", 7) || !strncmp(uri, "https://", 8);
}

/* the local path of a non-HTTP uri, absolute; NULL with e set when the
 * scheme is unknown */
static char *local_path(const char *uri, const char *project_dir, struct err *e)
{
    const char *p = uri;
    if (!strncmp(uri, "file://", 7))
        p = uri + 7;
    else if (strstr(uri, "://")) {
        err_set(e, PE_USAGE, NULL, "artifact '%s': unsupported scheme '%.*s'", uri,
                (int)(strstr(uri, "://") - uri), uri);
        err_hint(e, "use a path relative to the project, file:///abs/path, http:// or https://");
        return NULL;
    }
    if (!*p) {
        err_set(e, PE_USAGE, NULL, "artifact '%s' names no file", uri);
        return NULL;
    }
    return fs_abspath(project_dir, p);
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static int copy_file(int out, const char *path, const char *uri, long long *size, struct err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = err_errno(e, errno, "artifact %s: cannot read %s", uri, path);
        if (rc == -ENOENT)
            err_hint(e, "relative paths are taken from the project directory; check the path, "
                        "or build the artifact first");
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        err_set(e, PE_USAGE, NULL, "artifact %s: %s is not a regular file", uri, path);
        err_hint(e, "an artifact is one file: pack a directory with tar first");
        return PE_USAGE;
    }
    if (st.st_size > ARTIFACT_MAX_BYTES) {
        close(fd);
        return err_set(e, PE_LIMIT, NULL, "artifact %s: %lld bytes is more than the %lld allowed",
                       uri, (long long)st.st_size, ARTIFACT_MAX_BYTES);
    }
    char buf[65536];
    int rc = 0;
    *size = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_errno(e, errno, "artifact %s: reading %s", uri, path);
            break;
        }
        if (!n)
            break;
        *size += n;
        if (*size > ARTIFACT_MAX_BYTES) {
            rc = err_set(e, PE_LIMIT, NULL, "artifact %s: more than the %lld bytes allowed", uri,
                         ARTIFACT_MAX_BYTES);
            break;
        }
        int w = write_all(out, buf, (size_t)n);
        if (w) {
            rc = err_errno(e, -w, "artifact %s: writing to the store", uri);
            break;
        }
    }
    close(fd);
    return rc;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc;

static void curl_init(void)
{
    curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct dl {
    int fd;
    long long size;
    int werr;
};

static size_t dl_write(char *p, size_t sz, size_t n, void *ctx)
{
    struct dl *d = ctx;
    size_t len = sz * n;
    d->size += (long long)len;
    if (d->size > ARTIFACT_MAX_BYTES)
        return 0;
    if ((d->werr = write_all(d->fd, p, len)))
        return 0;
    return len;
}

static int download(int out, const char *uri, long long *size, struct err *e)
{
    pthread_once(&curl_once, curl_init);
    if (curl_rc != CURLE_OK)
        return err_set(e, PE_INTERNAL, NULL, "curl_global_init: %s", curl_easy_strerror(curl_rc));
    CURL *h = curl_easy_init();
    if (!h)
        return err_set(e, PE_INTERNAL, NULL, "curl_easy_init failed");
    struct dl d = {.fd = out};
    char ebuf[CURL_ERROR_SIZE] = "";
    int bad = 0;
    bad |= curl_easy_setopt(h, CURLOPT_URL, uri);
    bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    bad |= curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    bad |= curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    bad |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "prenv");
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_write);
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, &d);
    int rc = 0;
    if (bad) {
        rc = err_set(e, PE_INTERNAL, NULL, "artifact %s: cannot set up the download", uri);
    } else {
        CURLcode cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (cc == CURLE_OK) {
            *size = d.size;
        } else if (d.size > ARTIFACT_MAX_BYTES) {
            rc = err_set(e, PE_LIMIT, NULL, "artifact %s: more than the %lld bytes allowed", uri,
                         ARTIFACT_MAX_BYTES);
        } else if (d.werr) {
            rc = err_errno(e, -d.werr, "artifact %s: writing to the store", uri);
        } else if (cc == CURLE_HTTP_RETURNED_ERROR) {
            rc = err_set(e, status == 404 || status == 410 ? PE_NOTFOUND
                            : status >= 500 || status == 429 ? PE_TRANSIENT
                                                             : PE_PROVIDER,
                         NULL, "artifact %s: the server answered HTTP %ld", uri, status);
            err_hint(e, status == 401 || status == 403
                            ? "the server wants credentials prenv does not send; download the "
                              "file and pin its path instead"
                            : "check the URL; the digest stays the same wherever the file is");
        } else {
            rc = err_set(e, PE_TRANSIENT, NULL, "artifact %s: %s", uri,
                         ebuf[0] ? ebuf : curl_easy_strerror(cc));
            err_hint(e, "the download failed before the digest could be checked; try again, or "
                        "pin a local copy");
        }
    }
    curl_easy_cleanup(h);
    return rc;
}

/* fetch uri into the store under hex: a temporary file, hashed, renamed into
 * place only when its digest is hex. *got receives the actual digest. */
static int fetch(const char *uri, const char *hex, const char *project_dir, const char *state_dir,
                 long long *size, char got[65], struct err *e)
{
    char *dir = xasprintf("%s/artifacts/sha256", state_dir);
    char *tmp = xasprintf("%s/.fetch-%.12s-XXXXXX", dir, hex);
    char *path = NULL, *final = NULL;
    int fd = -1, rc = fs_mkdir_p(dir, 0700, e);
    got[0] = 0;
    if (rc)
        goto out;
    if (!is_http(uri) && !(path = local_path(uri, project_dir, e))) {
        rc = e->code;
        goto out;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = err_errno(e, errno, "artifact %s: cannot create a file in %s", uri, dir);
        goto out;
    }
    rc = path ? copy_file(fd, path, uri, size, e) : download(fd, uri, size, e);
    if (!rc && fsync(fd) < 0)
        rc = err_errno(e, errno, "artifact %s: fsync", uri);
    close(fd);
    fd = -1;
    if (!rc) {
        int hr = crypto_sha256_file(tmp, got);
        if (hr)
            rc = err_errno(e, -hr, "artifact %s: hashing the fetched copy", uri);
    }
    if (!rc && strcmp(got, hex) != 0) {
        rc = err_set(e, PE_CONFIG, NULL,
                     "artifact %s: digest mismatch: expected sha256:%s, got sha256:%s", uri, hex,
                     got);
        goto out;
    }
    if (!rc) {
        final = artifact_store_path(state_dir, hex);
        if (chmod(tmp, 0444) < 0 || rename(tmp, final) < 0)
            rc = err_errno(e, errno, "artifact %s: storing it as %s", uri, final);
        else
            fs_fsync_dir(dir);
    }
out:
    if (rc)
        unlink(tmp);
    free(final);
    free(path);
    free(tmp);
    free(dir);
    return rc;
}

/* a file name's extensions: letters and digits with at least one letter */
static bool is_ext(const char *s, size_t n)
{
    bool letter = false;
    if (!n || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]))
            return false;
        if (isalpha((unsigned char)s[i]))
            letter = true;
    }
    return letter;
}

/* "shop-1.4.0.tar.gz" -> shop, 1.4.0; "app.py" -> app, NULL */
static void derive_names(const char *uri, char **name, char **version)
{
    const char *base = uri;
    size_t blen = strcspn(base, "?#");
    for (size_t i = 0; i < blen; i++)
        if (uri[i] == '/')
            base = uri + i + 1;
    size_t n = blen - (size_t)(base - uri);
    for (;;) {
        const char *dot = NULL;
        for (size_t i = 0; i < n; i++)
            if (base[i] == '.')
                dot = base + i;
        if (!dot || dot == base || !is_ext(dot + 1, n - (size_t)(dot + 1 - base)))
            break;
        n = (size_t)(dot - base);
    }
    *version = NULL;
    for (size_t i = 1; i + 1 < n; i++)
        if ((base[i] == '-' || base[i] == '_') && isdigit((unsigned char)base[i + 1])) {
            *version = xstrndup(base + i + 1, n - i - 1);
            n = i;
            break;
        }
    *name = n ? xstrndup(base, n) : xstrdup("artifact");
}

int artifact_pin(struct val **out, const char *spec, const char *name, const char *version,
                 const char *project_dir, const char *state_dir, struct err *e)
{
    *out = NULL;
    char *uri = NULL;
    char hex[65], got[65];
    int rc = parse_spec(spec, &uri, hex, e);
    if (rc)
        return rc;
    long long size = 0;
    if ((rc = fetch(uri, hex, project_dir, state_dir, &size, got, e))) {
        if (rc == PE_CONFIG && got[0])
            err_hint(e, "the file is not the build with that digest; if it is the build you mean, "
                        "pin --artifact %s@sha256:%s, otherwise find the build your CI recorded",
                     uri, got);
        free(uri);
        return rc;
    }
    char *dn = NULL, *dv = NULL;
    derive_names(uri, &dn, &dv);
    struct val *m = val_map(NULL);
    val_map_set(m, "name", NULL, val_str(name && *name ? name : dn, NULL));
    if (version && *version)
        val_map_set(m, "version", NULL, val_str(version, NULL));
    else if (dv)
        val_map_set(m, "version", NULL, val_str(dv, NULL));
    else
        val_map_set(m, "version", NULL, val_strn(hex, 12, NULL));
    val_map_set(m, "uri", NULL, val_str(uri, NULL));
    val_map_set(m, "digest", NULL, val_str_own(xasprintf(DIGEST_PREFIX "%s", hex), NULL));
    val_map_set(m, "size", NULL, val_int(size, NULL));
    val_map_set(m, "path", NULL, val_str_own(artifact_store_path(state_dir, hex), NULL));
    struct sb t;
    sb_init(&t);
    tm_rfc3339(&t, tm_now_ms());
    val_map_set(m, "pinned_at", NULL, val_str_own(sb_steal(&t), NULL));
    free(dn);
    free(dv);
    free(uri);
    *out = m;
    return 0;
}

int artifact_verify(struct val *pin, const char *project_dir, const char *state_dir,
                    struct err *e)
{
    const char *digest = artifact_digest(pin);
    const char *uri = val_map_str(pin, "uri", NULL);
    const char *name = val_map_str(pin, "name", "artifact");
    char hex[65], got[65];
    if (!digest || strncmp(digest, DIGEST_PREFIX, strlen(DIGEST_PREFIX)) != 0 ||
        !parse_hex(digest + strlen(DIGEST_PREFIX), strlen(digest + strlen(DIGEST_PREFIX)), hex))
        return err_set(e, PE_STATE, NULL, "the pinned artifact '%s' has no valid digest "
                                          "(sha256:<64 hex digits>)",
                       name);
    char *path = artifact_store_path(state_dir, hex);
    int hr = crypto_sha256_file(path, got);
    int rc = 0;
    if (hr == 0 && !strcmp(got, hex))
        goto ok;
    /* gone or damaged: the source must still have exactly these bytes */
    if (!uri || !*uri) {
        rc = err_set(e, PE_STATE, NULL, "the stored copy of artifact '%s' (%s) is %s and the pin "
                                        "records no URI to fetch it from",
                     name, digest, hr ? "missing" : "damaged");
        goto out;
    }
    long long size = 0;
    rc = fetch(uri, hex, project_dir, state_dir, &size, got, e);
    if (rc) {
        err_prefix(e, "the stored copy of artifact '%s' is %s, and fetching it again failed: ",
                   name, hr ? "missing" : "damaged");
        if (rc == PE_CONFIG)
            err_hint(e, "the source changed since it was pinned; pin the build you mean with "
                        "`prenv env up ENV --artifact URI@sha256:HEX`");
        goto out;
    }
ok:
    val_map_set(pin, "path", NULL, val_str(path, NULL));
out:
    free(path);
    return rc;
}
