/* seed sink: the ready-made sinks that write generated rows to a file
 * descriptor as CSV, JSON lines or PostgreSQL COPY text, through a buffer
 * written out in 64 KiB blocks, and the COPY row encoder loaders use.
 *
 * What it leaves to others: generating rows (gen.c) and talking to
 * databases (the seed.synthetic provider). */
#include "core/seed/seed_int.h"

#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK ((size_t)64 << 10)

struct seed_fd_sink {
    int fd;
    enum seed_format f;
    char *buf;
    size_t len, cap;
    size_t tables;                /* tables begun so far */
    const struct seed_table *tab; /* the current table */
    struct sb keys;               /* JSON: {"_table":"t" then ,"col": for each column */
    size_t *koff;                 /* offset of each column's key in keys */
    unsigned char *mode;          /* per column: PLAIN, NUMBER */
};

enum { PLAIN = 1, NUMBER = 2 };

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* write out whole 64 KiB blocks */
static int drain(struct seed_fd_sink *k, struct err *e)
{
    size_t off = 0;
    while (k->len - off >= BLOCK) {
        int rc = write_all(k->fd, k->buf + off, BLOCK);
        if (rc)
            return err_errno(e, -rc, "writing generated rows");
        off += BLOCK;
    }
    if (off) {
        memmove(k->buf, k->buf + off, k->len - off);
        k->len -= off;
    }
    return 0;
}

static inline char *room(struct seed_fd_sink *k, size_t n)
{
    if (k->len + n > k->cap) {
        size_t nc = k->cap * 2;
        while (nc < k->len + n)
            nc *= 2;
        k->buf = xrealloc(k->buf, nc);
        k->cap = nc;
    }
    return k->buf + k->len;
}

static inline void add(struct seed_fd_sink *k, const char *s, size_t n)
{
    memcpy(room(k, n), s, n);
    k->len += n;
}

/* ---- CSV ---- */

/* bytes that make a CSV field need quotes (1) or a JSON string need escapes (2) */
static const unsigned char special[256] = {
    [0] = 2,  [1] = 2,  [2] = 2,    [3] = 2,    [4] = 2,   [5] = 2,   [6] = 2,
    [7] = 2,  [8] = 2,  [9] = 2,    [11] = 2,   [12] = 2,  [14] = 2,  [15] = 2,
    [16] = 2, [17] = 2, [18] = 2,   [19] = 2,   [20] = 2,  [21] = 2,  [22] = 2,
    [23] = 2, [24] = 2, [25] = 2,   [26] = 2,   [27] = 2,  [28] = 2,  [29] = 2,
    [30] = 2, [31] = 2, ['\n'] = 3, ['\r'] = 3, ['"'] = 3, [','] = 1, ['\\'] = 2,
};

static void csv_field(struct seed_fd_sink *k, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && !(special[(unsigned char)s[i]] & 1))
        i++;
    if (i == n && n) {
        add(k, s, n);
        return;
    }
    char *o = room(k, 2 * n + 2);
    size_t m = 0;
    o[m++] = '"';
    for (i = 0; i < n; i++) {
        if (s[i] == '"')
            o[m++] = '"';
        o[m++] = s[i];
    }
    o[m++] = '"';
    k->len += m;
}

/* ---- JSON ---- */

static void json_str(struct seed_fd_sink *k, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && !(special[(unsigned char)s[i]] & 2))
        i++;
    char *o = room(k, 6 * n + 2);
    size_t m = 0;
    o[m++] = '"';
    memcpy(o + 1, s, i);
    m += i;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(special[c] & 2)) {
            o[m++] = (char)c;
            continue;
        }
        o[m++] = '\\';
        switch (c) {
        case '"':
            o[m++] = '"';
            break;
        case '\\':
            o[m++] = '\\';
            break;
        case '\n':
            o[m++] = 'n';
            break;
        case '\r':
            o[m++] = 'r';
            break;
        case '\t':
            o[m++] = 't';
            break;
        case '\b':
            o[m++] = 'b';
            break;
        case '\f':
            o[m++] = 'f';
            break;
        default:
            memcpy(o + m, "u00", 3);
            o[m + 3] = "0123456789abcdef"[c >> 4];
            o[m + 4] = "0123456789abcdef"[c & 15];
            m += 5;
        }
    }
    o[m++] = '"';
    k->len += m;
}

/* ---- COPY ---- */

static size_t copy_escape(char *o, const char *s, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        switch (c) {
        case '\\':
            o[m++] = '\\';
            o[m++] = '\\';
            break;
        case '\t':
            o[m++] = '\\';
            o[m++] = 't';
            break;
        case '\n':
            o[m++] = '\\';
            o[m++] = 'n';
            break;
        case '\r':
            o[m++] = '\\';
            o[m++] = 'r';
            break;
        default:
            o[m++] = c;
        }
    }
    return m;
}

void seed_copy_row(struct sb *buf, const struct seed_value *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb_addc(buf, '\t');
        if (vals[i].null) {
            sb_add(buf, "\\N", 2);
            continue;
        }
        const char *s = vals[i].text;
        size_t start = 0;
        for (size_t j = 0; j < vals[i].len; j++) {
            char c = s[j];
            if (c != '\\' && c != '\t' && c != '\n' && c != '\r')
                continue;
            sb_add(buf, s + start, j - start);
            char esc[2];
            sb_add(buf, esc, copy_escape(esc, &c, 1));
            start = j + 1;
        }
        sb_add(buf, s + start, vals[i].len - start);
    }
    sb_addc(buf, '\n');
}

/* a double-quoted SQL identifier */
static void sql_ident(struct seed_fd_sink *k, const char *s)
{
    add(k, "\"", 1);
    for (; *s; s++) {
        if (*s == '"')
            add(k, "\"", 1);
        add(k, s, 1);
    }
    add(k, "\"", 1);
}

/* ---- the sink callbacks ---- */

static int fd_begin(void *ctx, const struct seed_schema *s, size_t t, long long rows, struct err *e)
{
    (void)rows;
    struct seed_fd_sink *k = ctx;
    const struct seed_table *tab = &s->t[t];
    k->tab = tab;
    free(k->mode);
    k->mode = xcalloc(tab->ncols + 1, 1);
    for (size_t c = 0; c < tab->ncols; c++) {
        enum seed_type ty = tab->cols[c].type;
        k->mode[c] =
            (unsigned char)((tab->cols[c].plain ? PLAIN : 0) |
                            (ty == SEED_INT || ty == SEED_FLOAT || ty == SEED_BOOL ? NUMBER : 0));
    }
    switch (k->f) {
    case SEED_CSV:
        if (k->tables) {
            add(k, "# table ", 8);
            add(k, tab->name, strlen(tab->name));
            add(k, "\n", 1);
        }
        for (size_t c = 0; c < tab->ncols; c++) {
            if (c)
                add(k, ",", 1);
            csv_field(k, tab->cols[c].name, strlen(tab->cols[c].name));
        }
        add(k, "\n", 1);
        break;
    case SEED_JSON:
        sb_reset(&k->keys);
        sb_adds(&k->keys, "{\"_table\":");
        sb_add_json_str(&k->keys, tab->name);
        free(k->koff);
        k->koff = xcalloc(tab->ncols + 1, sizeof *k->koff);
        for (size_t c = 0; c < tab->ncols; c++) {
            k->koff[c] = k->keys.len;
            sb_addc(&k->keys, ',');
            sb_add_json_str(&k->keys, tab->cols[c].name);
            sb_addc(&k->keys, ':');
        }
        k->koff[tab->ncols] = k->keys.len;
        break;
    case SEED_COPY:
        add(k, "COPY ", 5);
        sql_ident(k, tab->name);
        add(k, " (", 2);
        for (size_t c = 0; c < tab->ncols; c++) {
            if (c)
                add(k, ", ", 2);
            sql_ident(k, tab->cols[c].name);
        }
        add(k, ") FROM stdin;\n", 14);
        break;
    }
    k->tables++;
    return drain(k, e);
}

static int fd_row(void *ctx, const struct seed_value *vals, size_t n, struct err *e)
{
    struct seed_fd_sink *k = ctx;
    const unsigned char *mode = k->mode;
    switch (k->f) {
    case SEED_CSV:
        for (size_t i = 0; i < n; i++) {
            if (i)
                add(k, ",", 1);
            if (vals[i].null)
                continue;
            if ((mode[i] & PLAIN) && vals[i].len)
                add(k, vals[i].text, vals[i].len);
            else
                csv_field(k, vals[i].text, vals[i].len);
        }
        add(k, "\n", 1);
        break;
    case SEED_JSON:
        add(k, k->keys.buf, k->koff[0]);
        for (size_t i = 0; i < n; i++) {
            add(k, k->keys.buf + k->koff[i], k->koff[i + 1] - k->koff[i]);
            if (vals[i].null) {
                add(k, "null", 4);
            } else if (mode[i] & NUMBER) {
                add(k, vals[i].text, vals[i].len);
            } else if (mode[i] & PLAIN) {
                char *o = room(k, vals[i].len + 2);
                o[0] = '"';
                memcpy(o + 1, vals[i].text, vals[i].len);
                o[vals[i].len + 1] = '"';
                k->len += vals[i].len + 2;
            } else {
                json_str(k, vals[i].text, vals[i].len);
            }
        }
        add(k, "}\n", 2);
        break;
    case SEED_COPY:
        for (size_t i = 0; i < n; i++) {
            if (i)
                add(k, "\t", 1);
            if (vals[i].null)
                add(k, "\\N", 2);
            else if (mode[i] & PLAIN)
                add(k, vals[i].text, vals[i].len);
            else
                k->len += copy_escape(room(k, 2 * vals[i].len), vals[i].text, vals[i].len);
        }
        add(k, "\n", 1);
        break;
    }
    return k->len >= BLOCK ? drain(k, e) : 0;
}

static int fd_end(void *ctx, struct err *e)
{
    struct seed_fd_sink *k = ctx;
    if (k->f == SEED_COPY)
        add(k, "\\.\n", 3);
    return drain(k, e);
}

struct seed_fd_sink *seed_fd_sink_new(int fd, enum seed_format f, struct seed_sink *out)
{
    struct seed_fd_sink *k = xcalloc(1, sizeof *k);
    k->fd = fd;
    k->f = f;
    k->cap = 2 * BLOCK;
    k->buf = xmalloc(k->cap);
    sb_init(&k->keys);
    out->begin = fd_begin;
    out->row = fd_row;
    out->end = fd_end;
    out->ctx = k;
    return k;
}

int seed_fd_sink_free(struct seed_fd_sink *k)
{
    if (!k)
        return 0;
    int rc = write_all(k->fd, k->buf, k->len);
    free(k->buf);
    free(k->koff);
    free(k->mode);
    sb_release(&k->keys);
    free(k);
    return rc;
}
