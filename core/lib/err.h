/* err: prenv's error value. A fallible function returns 0 or a negative code
 * and fills a struct err passed last. The first error set wins; layers add
 * context by prefixing, never by replacing. Errors about user files carry the
 * position (file, line, column) so they can be shown like a compiler's.
 *
 * Sources: every user file prenv reads is registered as a struct src, which
 * keeps its text so an error can quote the offending line. Sources live until
 * src_free_all() (called once at exit). */
#ifndef PRENV_ERR_H
#define PRENV_ERR_H

#include <stdarg.h>
#include <stddef.h>

struct sb;

struct src {
    char *name; /* path as shown to the user */
    char *text; /* whole file, NUL-terminated */
    size_t len;
    struct src *next;
};

struct pos {
    const struct src *src; /* NULL when the position is unknown */
    int line, col;         /* 1-based; 0 = unknown */
};

/* Project error codes: name, value, short description. */
#define PE_CODES(X)                                                                               \
    X(PE_INTERNAL, -1000, "internal error")                                                       \
    X(PE_USAGE, -1001, "usage error")                                                             \
    X(PE_CONFIG, -1002, "invalid configuration")                                                  \
    X(PE_NOTFOUND, -1003, "not found")                                                            \
    X(PE_LOCKED, -1004, "locked")                                                                 \
    X(PE_PROVIDER, -1005, "provider failed")                                                      \
    X(PE_TRANSIENT, -1006, "transient failure")                                                   \
    X(PE_CYCLE, -1007, "dependency cycle")                                                        \
    X(PE_PROTECTED, -1008, "protected")                                                           \
    X(PE_STATE, -1009, "corrupt state")                                                           \
    X(PE_CANCELED, -1010, "canceled")                                                             \
    X(PE_EXISTS, -1011, "already exists")                                                         \
    X(PE_LIMIT, -1012, "limit exceeded")                                                          \
    X(PE_SECRET, -1013, "secret unavailable")                                                     \
    X(PE_TIMEOUT, -1014, "timed out")                                                             \
    X(PE_DRIFT, -1015, "drift detected")                                                          \
    X(PE_MISSING, -1016, "no such value")

enum pe_code {
#define PE_ENUM(name, val, desc) name = val,
    PE_CODES(PE_ENUM)
#undef PE_ENUM
};

struct err {
    int code;   /* 0 = no error */
    char *msg;  /* lowercase, no full stop */
    char *hint; /* optional: what to do next */
    struct pos pos;
    char *line; /* copy of the source line at pos, if any */
};

/* err_set: record an error unless one is already set; returns code. */
int err_set(struct err *e, int code, const struct pos *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int err_vset(struct err *e, int code, const struct pos *at, const char *fmt, va_list ap);
/* err_errno: record "<what>: <strerror(errnum)>" with code -errnum. */
int err_errno(struct err *e, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* err_hint: attach what to do next (only if none is set yet). */
void err_hint(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* err_prefix: prepend context, "resource 'db': " + msg. */
void err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* err_move: move src into dst (dst must be clear); src is left clear. */
void err_move(struct err *dst, struct err *src);
void err_release(struct err *e);
const char *err_code_name(int code);
/* err_format: compiler-style rendering with the source line and a caret. */
void err_format(struct sb *out, const struct err *e, int color);

/* Sources. src_load reads a file (at most max bytes); src_add registers text. */
int src_load(const struct src **out, const char *path, const char *display, size_t max,
             struct err *e);
const struct src *src_add(const char *name, const char *text, size_t len);
void src_free_all(void);
/* src_line: pointer to the start of line (1-based) and its length. */
const char *src_line(const struct src *s, int line, size_t *len);

#endif
