/* sb: growable string buffers with a size cap. */
#include "core/lib/sb.h"

#include "core/lib/xalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char sb_empty[1];

void sb_init(struct sb *b)
{
    sb_init_max(b, SB_MAX_DEFAULT);
}

void sb_init_max(struct sb *b, size_t max)
{
    b->buf = sb_empty;
    b->len = b->cap = 0;
    b->max = max;
    b->overflow = false;
}

void sb_release(struct sb *b)
{
    if (b->cap)
        free(b->buf);
    sb_init_max(b, b->max);
}

void sb_reset(struct sb *b)
{
    b->len = 0;
    if (b->cap)
        b->buf[0] = 0;
    b->overflow = false;
}

char *sb_steal(struct sb *b)
{
    char *s = b->cap ? b->buf : xstrdup("");
    sb_init_max(b, b->max);
    return s;
}

static bool sb_grow(struct sb *b, size_t n)
{
    if (b->overflow)
        return false;
    if (n > b->max || b->len + n > b->max) {
        b->overflow = true;
        return false;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return true;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < need)
        nc *= 2;
    if (b->cap) {
        b->buf = xrealloc(b->buf, nc);
    } else {
        b->buf = xmalloc(nc);
        b->buf[0] = 0;
    }
    b->cap = nc;
    return true;
}

void sb_add(struct sb *b, const void *p, size_t n)
{
    if (!n || !sb_grow(b, n))
        return;
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    b->buf[b->len] = 0;
}

void sb_adds(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

void sb_addc(struct sb *b, char c)
{
    sb_add(b, &c, 1);
}

void sb_vaddf(struct sb *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_add(b, tmp, (size_t)n);
        return;
    }
    if (!sb_grow(b, (size_t)n))
        return;
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void sb_addf(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(b, fmt, ap);
    va_end(ap);
}

void sb_add_json_str(struct sb *b, const char *s)
{
    sb_addc(b, '"');
    const unsigned char *p = (const unsigned char *)s, *run = p;
    for (; *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\')
            continue;
        sb_add(b, run, (size_t)(p - run));
        switch (*p) {
        case '"': sb_adds(b, "\\\""); break;
        case '\\': sb_adds(b, "\\\\"); break;
        case '\n': sb_adds(b, "\\n"); break;
        case '\r': sb_adds(b, "\\r"); break;
        case '\t': sb_adds(b, "\\t"); break;
        default: sb_addf(b, "\\u%04x", *p);
        }
        run = p + 1;
    }
    sb_add(b, run, (size_t)(p - run));
    sb_addc(b, '"');
}

void sb_trim_right(struct sb *b)
{
    while (b->len && isspace((unsigned char)b->buf[b->len - 1]))
        b->buf[--b->len] = 0;
}
