/* dashboard: the page `prenv serve` shows at GET / (compiled in from
 * hooks/dashboard/index.html) and the read-only API calls only it needs:
 * an env's history and the last lines of its logs. Actions (extend, sleep,
 * wake, destroy) go through serve.c's authorized API like any client's. */
#include "hooks/dashboard.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "core/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const unsigned char dashboard_html[];
extern const size_t dashboard_html_len;

#define LOG_TAIL_BYTES (64 * 1024) /* read from the end of each log file */
#define LOG_LINES_MAX 500

void dash_page(struct http_req *req)
{
    static const struct http_hdr hdrs[] = {
        /* the page loads nothing from anywhere and talks only to this server */
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
         "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
         "frame-ancestors 'none'"},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"Cache-Control", "no-cache"},
    };
    http_respond_hdrs(req, 200, "text/html; charset=utf-8", hdrs, sizeof hdrs / sizeof *hdrs,
                      (const char *)dashboard_html, dashboard_html_len);
}

/* query_int: the value of key=N in a raw query string, or def, clamped */
long long dash_query_int(const char *query, const char *key, long long def, long long lo,
                         long long hi)
{
    size_t kl = strlen(key);
    for (const char *p = query; p && *p;) {
        if (!strncmp(p, key, kl) && p[kl] == '=') {
            char *end = NULL;
            long long v = strtoll(p + kl + 1, &end, 10);
            if (end != p + kl + 1 && (*end == '&' || !*end))
                return v < lo ? lo : v > hi ? hi : v;
            return def;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return def;
}

static void json_error(struct http_req *req, int status, const char *msg)
{
    struct sb b;
    sb_init(&b);
    sb_adds(&b, "{\"error\": ");
    sb_add_json_str(&b, msg);
    sb_adds(&b, "}\n");
    http_respond(req, status, "application/json", b.buf, b.len);
    sb_release(&b);
}

void dash_history(struct http_req *req, const char *state_dir, const char *env)
{
    long long last = dash_query_int(req->query, "last", 20, 1, 1000);
    struct val *list = NULL;
    struct err e = {0};
    if (state_history_read(&list, state_dir, env, (size_t)last, &e)) {
        json_error(req, e.code == -ENOENT || e.code == PE_NOTFOUND ? 404 : 500, e.msg);
        err_release(&e);
        return;
    }
    struct sb b;
    sb_init(&b);
    val_json(&b, list, VAL_JSON_MASK);
    sb_addc(&b, '\n');
    http_respond(req, 200, "application/json", b.buf, b.len);
    sb_release(&b);
    val_free(list);
}

struct line_buf {
    char **v;
    size_t n, cap;
};

static void tail_file(struct line_buf *lb, const char *path, const char *label)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return;
    }
    off_t from = st.st_size > LOG_TAIL_BYTES ? st.st_size - LOG_TAIL_BYTES : 0;
    char *buf = xmalloc(LOG_TAIL_BYTES + 1);
    ssize_t n = pread(fd, buf, LOG_TAIL_BYTES, from);
    close(fd);
    if (n <= 0) {
        free(buf);
        return;
    }
    buf[n] = 0;
    char *p = buf;
    if (from > 0) { /* the first line is cut: skip it */
        char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : buf + n;
    }
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len) {
            if (lb->n == lb->cap) {
                lb->cap = lb->cap ? lb->cap * 2 : 64;
                lb->v = xrealloc(lb->v, lb->cap * sizeof *lb->v);
            }
            lb->v[lb->n++] = xasprintf("%s | %.*s", label, (int)len, p);
        }
        p = nl ? nl + 1 : p + len;
    }
    free(buf);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void dash_logs(struct http_req *req, const char *state_dir, const char *env)
{
    long long want = dash_query_int(req->query, "lines", 60, 1, LOG_LINES_MAX);
    char *dir = xasprintf("%s/logs/%s", state_dir, env);
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 5 || strcmp(de->d_name + l - 4, ".log"))
            continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 8;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[nn++] = xstrdup(de->d_name);
    }
    if (d)
        closedir(d);
    qsort(names, nn, sizeof *names, cmp_name);
    struct line_buf lb = {0};
    /* the last lines of each file, file by file: the page shows which is which */
    for (size_t i = 0; i < nn; i++) {
        struct line_buf one = {0};
        char *path = xasprintf("%s/%s", dir, names[i]);
        names[i][strlen(names[i]) - 4] = 0;
        tail_file(&one, path, names[i]);
        size_t skip = one.n > (size_t)want ? one.n - (size_t)want : 0;
        for (size_t k = 0; k < one.n; k++) {
            if (k < skip) {
                free(one.v[k]);
                continue;
            }
            if (lb.n == lb.cap) {
                lb.cap = lb.cap ? lb.cap * 2 : 64;
                lb.v = xrealloc(lb.v, lb.cap * sizeof *lb.v);
            }
            lb.v[lb.n++] = one.v[k];
        }
        free(one.v);
        free(path);
        free(names[i]);
    }
    free(names);
    struct sb b;
    sb_init(&b);
    sb_adds(&b, "{\"env\": ");
    sb_add_json_str(&b, env);
    sb_adds(&b, ", \"lines\": [");
    for (size_t i = 0; i < lb.n; i++) {
        if (i)
            sb_adds(&b, ", ");
        sb_add_json_str(&b, lb.v[i]);
        free(lb.v[i]);
    }
    free(lb.v);
    sb_adds(&b, "]}\n");
    http_respond(req, 200, "application/json", b.buf, b.len);
    sb_release(&b);
    free(dir);
}
