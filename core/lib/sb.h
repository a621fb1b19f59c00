/* sb: a growable string buffer whose buf is never NULL and always NUL-terminated.
 * Every buffer has a maximum size (default 256 MiB); sb_ok() says whether a write
 * was refused because of it, so data sized by outside input can never grow
 * without bound. */
#ifndef PRENV_SB_H
#define PRENV_SB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct sb {
    char *buf;
    size_t len, cap, max;
    bool overflow;
};

#define SB_MAX_DEFAULT ((size_t)256 << 20)

void sb_init(struct sb *b);
void sb_init_max(struct sb *b, size_t max);
void sb_release(struct sb *b);
void sb_reset(struct sb *b);
/* sb_steal: return the buffer (caller frees) and re-initialise b. */
char *sb_steal(struct sb *b);
void sb_add(struct sb *b, const void *p, size_t n);
void sb_adds(struct sb *b, const char *s);
void sb_addc(struct sb *b, char c);
void sb_addf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vaddf(struct sb *b, const char *fmt, va_list ap);
/* sb_add_json_str: s as a JSON string literal, with quotes. */
void sb_add_json_str(struct sb *b, const char *s);
void sb_trim_right(struct sb *b);
static inline bool sb_ok(const struct sb *b)
{
    return !b->overflow;
}

#endif
