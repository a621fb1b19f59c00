/* str: small string helpers: suggestions for misspelt names, name checks,
 * prefixes. No allocation unless stated. */
#ifndef PRENV_STR_H
#define PRENV_STR_H

#include <stdbool.h>
#include <stddef.h>

/* str_closest: the candidate nearest to word by edit distance, if it is close
 * enough to be a plausible typo; NULL otherwise. cands is NULL-terminated or
 * has n entries (n = (size_t)-1 for NULL-terminated). */
const char *str_closest(const char *word, const char *const *cands, size_t n);
size_t str_edit_distance(const char *a, const char *b);
bool str_prefix(const char *s, const char *prefix);
bool str_suffix(const char *s, const char *suffix);
/* str_is_ident: [A-Za-z_][A-Za-z0-9_-]* */
bool str_is_ident(const char *s);
/* str_is_slug: a DNS label: [a-z0-9]([a-z0-9-]*[a-z0-9])?, at most max chars */
bool str_is_slug(const char *s, size_t max);
/* str_parse_int: whole string as a base-10 integer within [lo, hi]. */
bool str_parse_int(const char *s, long long lo, long long hi, long long *out);

#endif
