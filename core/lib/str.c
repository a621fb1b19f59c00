/* str: string helpers. */
#include "core/lib/str.h"

#include "core/lib/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t str_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    /* optimal string alignment distance: insert, delete, substitute, transpose */
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *str_closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1;
    size_t wl = strlen(word);
    for (size_t i = 0; n == (size_t)-1 ? cands[i] != NULL : i < n; i++) {
        if (!cands[i])
            continue;
        size_t d = str_edit_distance(word, cands[i]);
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    /* plausible: at most a third of the word's length, and at least one edit */
    size_t limit = wl < 3 ? 1 : wl / 3 + 1;
    if (limit > 3)
        limit = 3;
    if (best && bestd <= limit)
        return best;
    /* a long shared prefix is a plausible abbreviation or truncation */
    const char *pbest = NULL;
    size_t plen = 0;
    int ties = 0;
    for (size_t i = 0; n == (size_t)-1 ? cands[i] != NULL : i < n; i++) {
        if (!cands[i])
            continue;
        size_t k = 0;
        while (word[k] && word[k] == cands[i][k])
            k++;
        if (k > plen) {
            plen = k;
            pbest = cands[i];
            ties = 0;
        } else if (k == plen) {
            ties++;
        }
    }
    return pbest && !ties && plen >= 4 && plen * 3 >= wl * 2 ? pbest : NULL;
}

bool str_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

bool str_is_ident(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-'))
            return false;
    return true;
}

bool str_is_slug(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return s[0] != '-' && s[n - 1] != '-';
}

bool str_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}
