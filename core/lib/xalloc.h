/* xalloc: allocation that aborts on out-of-memory, and overflow-checked sizes.
 * Everything in prenv allocates through these; none of them returns NULL. */
#ifndef PRENV_XALLOC_H
#define PRENV_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* xreallocarray: realloc to n*size bytes, aborting if the product overflows. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* xasprintf: formatted string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Grow *items (of *cap elements of size) so that it holds at least need. */
#define XGROW(items, cap, need)                                                                   \
    do {                                                                                          \
        if ((size_t)(need) > (cap)) {                                                             \
            size_t nc_ = (cap) ? (cap)*2 : 8;                                                     \
            while (nc_ < (size_t)(need))                                                          \
                nc_ *= 2;                                                                         \
            (items) = xreallocarray((items), nc_, sizeof(*(items)));                              \
            (cap) = nc_;                                                                          \
        }                                                                                         \
    } while (0)

#endif
