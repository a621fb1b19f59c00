/* err: error values, context prefixes and compiler-style rendering; the
 * registry of loaded source files used to quote lines in errors. */
#include "core/lib/err.h"

#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct src *src_list;
static pthread_mutex_t src_mu = PTHREAD_MUTEX_INITIALIZER;

int err_vset(struct err *e, int code, const struct pos *at, const char *fmt, va_list ap)
{
    if (!e || e->code)
        return code;
    e->code = code ? code : PE_INTERNAL;
    char *m = NULL;
    if (vasprintf(&m, fmt, ap) < 0)
        m = xstrdup("(error message too large)");
    e->msg = m;
    if (at) {
        e->pos = *at;
        if (at->src && at->line > 0) {
            size_t n;
            const char *l = src_line(at->src, at->line, &n);
            if (l)
                e->line = xstrndup(l, n);
        }
    }
    return code;
}

int err_set(struct err *e, int code, const struct pos *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(e, code, at, fmt, ap);
    va_end(ap);
    return code;
}

int err_errno(struct err *e, int errnum, const char *fmt, ...)
{
    struct sb b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    err_set(e, -errnum, NULL, "%s: %s", b.buf, strerror(errnum));
    sb_release(&b);
    return -errnum;
}

void err_hint(struct err *e, const char *fmt, ...)
{
    if (!e || !e->code || e->hint)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&e->hint, fmt, ap) < 0)
        e->hint = NULL;
    va_end(ap);
}

void err_prefix(struct err *e, const char *fmt, ...)
{
    if (!e || !e->code)
        return;
    struct sb b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    sb_adds(&b, e->msg ? e->msg : "");
    free(e->msg);
    e->msg = sb_steal(&b);
}

void err_move(struct err *dst, struct err *src)
{
    if (dst->code) {
        err_release(src);
        return;
    }
    *dst = *src;
    memset(src, 0, sizeof *src);
}

void err_release(struct err *e)
{
    if (!e)
        return;
    free(e->msg);
    free(e->hint);
    free(e->line);
    memset(e, 0, sizeof *e);
}

const char *err_code_name(int code)
{
    switch (code) {
#define PE_NAME(name, val, desc)                                                                  \
    case val:                                                                                     \
        return desc;
        PE_CODES(PE_NAME)
#undef PE_NAME
    }
    return code < 0 && code > -4096 ? strerror(-code) : "error";
}

void err_format(struct sb *out, const struct err *e, int color)
{
    const char *bold = color ? "\033[1m" : "", *red = color ? "\033[1;31m" : "",
               *green = color ? "\033[1;32m" : "", *cyan = color ? "\033[1;36m" : "",
               *off = color ? "\033[0m" : "";
    if (e->pos.src) {
        sb_addf(out, "%s%s", bold, e->pos.src->name);
        if (e->pos.line > 0) {
            sb_addf(out, ":%d", e->pos.line);
            if (e->pos.col > 0)
                sb_addf(out, ":%d", e->pos.col);
        }
        sb_addf(out, ":%s ", off);
    }
    sb_addf(out, "%serror:%s %s\n", red, off, e->msg ? e->msg : err_code_name(e->code));
    if (e->line) {
        sb_adds(out, "    ");
        /* tabs are shown as single spaces so the caret lines up */
        for (const char *p = e->line; *p; p++)
            sb_addc(out, *p == '\t' ? ' ' : *p);
        sb_adds(out, "\n    ");
        int col = e->pos.col > 0 ? e->pos.col : 1;
        for (int i = 1; i < col; i++)
            sb_addc(out, ' ');
        /* underline the token under the caret */
        const char *t = e->line + (size_t)col - 1;
        size_t tl = 0;
        if ((size_t)col - 1 <= strlen(e->line))
            while (t[tl] && t[tl] != ' ' && t[tl] != ',' && t[tl] != ']' && t[tl] != '}' &&
                   t[tl] != '\t')
                tl++;
        sb_addf(out, "%s^", green);
        for (size_t i = 1; i < tl && i < 60; i++)
            sb_addc(out, '~');
        sb_addf(out, "%s\n", off);
    }
    if (e->hint)
        sb_addf(out, "%shint:%s %s\n", cyan, off, e->hint);
}

const struct src *src_add(const char *name, const char *text, size_t len)
{
    struct src *s = xcalloc(1, sizeof *s);
    s->name = xstrdup(name);
    s->text = xstrndup(text, len);
    s->len = len;
    pthread_mutex_lock(&src_mu);
    s->next = src_list;
    src_list = s;
    pthread_mutex_unlock(&src_mu);
    return s;
}

int src_load(const struct src **out, const char *path, const char *display, size_t max,
             struct err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno(e, errno, "%s", display ? display : path);
    struct sb b;
    sb_init_max(&b, max);
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int er = errno;
            close(fd);
            sb_release(&b);
            return err_errno(e, er, "reading %s", display ? display : path);
        }
        if (n == 0)
            break;
        sb_add(&b, buf, (size_t)n);
        if (!sb_ok(&b)) {
            close(fd);
            sb_release(&b);
            return err_set(e, PE_LIMIT, NULL, "%s: file is larger than %zu bytes",
                           display ? display : path, max);
        }
    }
    close(fd);
    if (memchr(b.buf, 0, b.len)) {
        sb_release(&b);
        return err_set(e, PE_CONFIG, NULL, "%s: file contains NUL bytes (binary file?)",
                       display ? display : path);
    }
    *out = src_add(display ? display : path, b.buf, b.len);
    sb_release(&b);
    return 0;
}

void src_free_all(void)
{
    pthread_mutex_lock(&src_mu);
    struct src *s = src_list;
    src_list = NULL;
    pthread_mutex_unlock(&src_mu);
    while (s) {
        struct src *n = s->next;
        free(s->name);
        free(s->text);
        free(s);
        s = n;
    }
}

const char *src_line(const struct src *s, int line, size_t *len)
{
    const char *p = s->text, *end = s->text + s->len;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (n && p[n - 1] == '\r')
        n--;
    *len = n;
    return p;
}
