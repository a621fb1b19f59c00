/* github: webhook signature, payload parsing and the preview policy. */
#include "hooks/github.h"

#include "core/lib/crypto.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <ctype.h>
#include <limits.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

int gh_verify(const char *secret, const char *sig, const void *body, size_t len, struct err *e)
{
    if (!sig || !*sig)
        return err_set(e, PE_USAGE, NULL, "missing X-Hub-Signature-256");
    if (strncmp(sig, "sha256=", 7) != 0)
        return err_set(e, PE_USAGE, NULL, "X-Hub-Signature-256 does not start with sha256=");
    const char *hex = sig + 7;
    if (strlen(hex) != 64)
        return err_set(e, PE_USAGE, NULL, "X-Hub-Signature-256 is not 64 hex digits");
    unsigned char want[32];
    for (int i = 0; i < 32; i++) {
        int hi = hex[2 * i], lo = hex[2 * i + 1];
        if (!isxdigit(hi) || !isxdigit(lo))
            return err_set(e, PE_USAGE, NULL, "X-Hub-Signature-256 is not hex");
        hi = isdigit(hi) ? hi - '0' : tolower(hi) - 'a' + 10;
        lo = isdigit(lo) ? lo - '0' : tolower(lo) - 'a' + 10;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    unsigned char got[32];
    crypto_hmac_sha256(secret, strlen(secret), body, len, got);
    unsigned char diff = 0; /* constant time: every byte is compared */
    for (int i = 0; i < 32; i++)
        diff |= (unsigned char)(got[i] ^ want[i]);
    if (diff)
        return err_set(e, PE_USAGE, NULL, "X-Hub-Signature-256 does not match the body");
    return 0;
}

void gh_event_release(struct gh_event *ev)
{
    free(ev->event);
    free(ev->delivery);
    free(ev->hook_id);
    free(ev->action);
    free(ev->repo);
    free(ev->sha);
    free(ev->branch);
    free(ev->author);
    free(ev->title);
    free(ev->state);
    free(ev->label);
    free(ev->head_repo);
    for (size_t i = 0; i < ev->nlabels; i++)
        free(ev->labels[i]);
    free(ev->labels);
    memset(ev, 0, sizeof *ev);
}

/* ---- the payload: one pass over the whole document, no tree ----
 *
 * gh_parse needs a dozen fields of a payload of 10-30 KB. Instead of building
 * the whole tree, one pass validates the entire document and remembers where
 * the wanted values start; only those are decoded. Valid or not, and every
 * value read, is exactly what cJSON 1.7 (which parsed these payloads before,
 * and still parses everything else) makes of the same bytes, quirks included:
 * any byte up to 0x20 is white space; a UTF-8 BOM is skipped; numbers are
 * what strtod reads of the run of [0-9+-.eE] (so "01" and "1." pass, "1.2.3"
 * does not); control characters and invalid UTF-8 pass inside strings; \uXXXX
 * with a bad hex digit reads as U+0000; surrogates must pair; nesting stops
 * at 1000 levels; what follows the top-level value is not looked at; a key
 * that occurs twice counts the first time; keys and values are C strings (a
 * \u0000 ends them). tests/unit/github_json_test.c holds it to cJSON. */

enum jtype { J_NONE, J_NULL, J_FALSE, J_TRUE, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT };

/* the fields gh_parse reads; the children of a field are contiguous */
enum field {
    F_ROOT,
    /* children of F_ROOT */
    F_ACTION,
    F_NUMBER,
    F_INST,
    F_REPO,
    F_LABEL,
    F_PR,
    /* of F_INST, F_REPO, F_LABEL */
    F_INST_ID,
    F_REPO_NAME,
    F_LABEL_NAME,
    /* of F_PR */
    F_PR_HEAD,
    F_PR_BASE,
    F_PR_USER,
    F_PR_TITLE,
    F_PR_STATE,
    F_PR_DRAFT,
    F_PR_MERGED,
    F_PR_UPDATED,
    F_PR_LABELS,
    /* of F_PR_HEAD */
    F_PR_HEAD_SHA,
    F_PR_HEAD_REF,
    F_PR_HEAD_REPO,
    /* of F_PR_HEAD_REPO, F_PR_BASE, F_PR_BASE_REPO, F_PR_USER */
    F_PR_HEAD_REPO_NAME,
    F_PR_BASE_REPO,
    F_PR_BASE_REPO_NAME,
    F_PR_USER_LOGIN,
    /* each element of pull_request.labels, and its name */
    F_ITEM,
    F_ITEM_NAME,
    F__COUNT
};

#define F_NONE (-1)
#define JSON_MAX_DEPTH 1000 /* cJSON's CJSON_NESTING_LIMIT */
#define KEY_MAX 16          /* longer than any wanted key */

/* clang-format off */
#define K(s) {s, sizeof s - 1}
/* clang-format on */
static const struct {
    const char *s;
    unsigned char len;
} keys[F__COUNT] = {
    [F_ACTION] = K("action"),
    [F_NUMBER] = K("number"),
    [F_INST] = K("installation"),
    [F_REPO] = K("repository"),
    [F_LABEL] = K("label"),
    [F_PR] = K("pull_request"),
    [F_INST_ID] = K("id"),
    [F_REPO_NAME] = K("full_name"),
    [F_LABEL_NAME] = K("name"),
    [F_PR_HEAD] = K("head"),
    [F_PR_BASE] = K("base"),
    [F_PR_USER] = K("user"),
    [F_PR_TITLE] = K("title"),
    [F_PR_STATE] = K("state"),
    [F_PR_DRAFT] = K("draft"),
    [F_PR_MERGED] = K("merged"),
    [F_PR_UPDATED] = K("updated_at"),
    [F_PR_LABELS] = K("labels"),
    [F_PR_HEAD_SHA] = K("sha"),
    [F_PR_HEAD_REF] = K("ref"),
    [F_PR_HEAD_REPO] = K("repo"),
    [F_PR_HEAD_REPO_NAME] = K("full_name"),
    [F_PR_BASE_REPO] = K("repo"),
    [F_PR_BASE_REPO_NAME] = K("full_name"),
    [F_PR_USER_LOGIN] = K("login"),
    [F_ITEM_NAME] = K("name"),
};
#undef K

/* a field's children: kids[f].n fields from kids[f].first on */
static const struct {
    unsigned char first, n;
} kids[F__COUNT] = {
    [F_ROOT] = {F_ACTION, 6},
    [F_INST] = {F_INST_ID, 1},
    [F_REPO] = {F_REPO_NAME, 1},
    [F_LABEL] = {F_LABEL_NAME, 1},
    [F_PR] = {F_PR_HEAD, 9},
    [F_PR_HEAD] = {F_PR_HEAD_SHA, 3},
    [F_PR_HEAD_REPO] = {F_PR_HEAD_REPO_NAME, 1},
    [F_PR_BASE] = {F_PR_BASE_REPO, 1},
    [F_PR_BASE_REPO] = {F_PR_BASE_REPO_NAME, 1},
    [F_PR_USER] = {F_PR_USER_LOGIN, 1},
    [F_ITEM] = {F_ITEM_NAME, 1},
};

struct jspan {
    size_t at, end; /* the value's first byte; for a string, its closing quote */
    bool esc;       /* a string with escapes */
};

struct jscan {
    const unsigned char *s;
    size_t len, pos;
    unsigned depth;
    unsigned char type[F__COUNT]; /* enum jtype; J_NONE: not seen */
    struct jspan v[F__COUNT];
    struct jspan *labels; /* the names of pull_request.labels[*] that are strings */
    size_t nlabels, caplabels;
};

static bool scan_value(struct jscan *j, int node);

static void skip_ws(struct jscan *j)
{
    while (j->pos < j->len && j->s[j->pos] <= 32)
        j->pos++;
}

static unsigned hex4(const unsigned char *p)
{
    unsigned h = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0; /* as cJSON: a bad digit makes the whole escape 0 */
        h = h << 4 | d;
    }
    return h;
}

/* str_decode: the text of a string literal whose content is [p, end) (end
 * is its closing quote). Writes at most cap bytes to out (none when out is
 * NULL) and returns how many it decoded in all, or SIZE_MAX when an escape
 * is bad. */
static size_t str_decode(const unsigned char *p, const unsigned char *end, char *out, size_t cap)
{
    size_t n = 0;
    while (p < end) {
        if (*p != '\\') {
            /* a run of plain bytes */
            const unsigned char *q = memchr(p, '\\', (size_t)(end - p));
            if (!q)
                q = end;
            size_t run = (size_t)(q - p);
            if (out && n < cap)
                memcpy(out + n, p, run < cap - n ? run : cap - n);
            n += run;
            p = q;
            continue;
        }
        unsigned char c;
        size_t seq = 2;
        unsigned long cp = 0;
        switch (p[1]) { /* p + 1 <= end: at worst the closing quote */
        case 'b':
            c = '\b';
            break;
        case 'f':
            c = '\f';
            break;
        case 'n':
            c = '\n';
            break;
        case 'r':
            c = '\r';
            break;
        case 't':
            c = '\t';
            break;
        case '"':
        case '\\':
        case '/':
            c = p[1];
            break;
        case 'u': {
            if (end - p < 6)
                return SIZE_MAX;
            unsigned first = hex4(p + 2);
            if (first >= 0xDC00 && first <= 0xDFFF)
                return SIZE_MAX;
            if (first >= 0xD800 && first <= 0xDBFF) {
                const unsigned char *q = p + 6;
                if (end - q < 6 || q[0] != '\\' || q[1] != 'u')
                    return SIZE_MAX;
                unsigned second = hex4(q + 2);
                if (second < 0xDC00 || second > 0xDFFF)
                    return SIZE_MAX;
                cp = 0x10000 + (((unsigned long)(first & 0x3FF) << 10) | (second & 0x3FF));
                seq = 12;
            } else {
                cp = first;
                seq = 6;
            }
            break;
        }
        default:
            return SIZE_MAX;
        }
        if (seq == 2) {
            if (out && n < cap)
                out[n] = (char)c;
            n++;
        } else {
            unsigned char u[4];
            size_t ul;
            if (cp < 0x80) {
                u[0] = (unsigned char)cp;
                ul = 1;
            } else if (cp < 0x800) {
                u[0] = (unsigned char)(0xC0 | cp >> 6);
                u[1] = (unsigned char)(0x80 | (cp & 0x3F));
                ul = 2;
            } else if (cp < 0x10000) {
                u[0] = (unsigned char)(0xE0 | cp >> 12);
                u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
                u[2] = (unsigned char)(0x80 | (cp & 0x3F));
                ul = 3;
            } else {
                u[0] = (unsigned char)(0xF0 | cp >> 18);
                u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
                u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
                u[3] = (unsigned char)(0x80 | (cp & 0x3F));
                ul = 4;
            }
            for (size_t i = 0; i < ul; i++, n++)
                if (out && n < cap)
                    out[n] = (char)u[i];
        }
        p += seq;
    }
    return n;
}

/* find_qb: the first quote or backslash in s[p..len), or len */
__attribute__((always_inline)) static inline size_t find_qb(const unsigned char *s, size_t p,
                                                            size_t len)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    for (; p + 16 <= len; p += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + p));
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)));
        if (m)
            return p + (size_t)__builtin_ctz(m);
    }
#endif
    while (p < len && s[p] != '"' && s[p] != '\\')
        p++;
    return p;
}

/* scan_string: the string literal at pos (its opening quote); *sp gets its
 * span. The end is the first quote not escaped, then the escapes must decode. */
__attribute__((always_inline)) static inline bool scan_string(struct jscan *j, struct jspan *sp)
{
    const unsigned char *s = j->s;
    size_t p = j->pos + 1, len = j->len;
    bool esc = false;
    for (;;) {
        p = find_qb(s, p, len);
        if (p >= len)
            return false; /* ends without its quote */
        if (s[p] == '"')
            break;
        esc = true;
        if (p + 1 >= len)
            return false; /* a backslash last */
        p += 2;           /* the escaped byte may be a quote */
    }
    if (esc && str_decode(s + j->pos + 1, s + p, NULL, 0) == SIZE_MAX)
        return false;
    sp->at = j->pos;
    sp->end = p;
    sp->esc = esc;
    j->pos = p + 1;
    return true;
}

static bool num_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e' || c == 'E' || c == '.';
}

static size_t digits(const unsigned char *s, size_t i, size_t n)
{
    size_t k = i;
    while (k < n && s[k] >= '0' && s[k] <= '9')
        k++;
    return k - i;
}

/* scan_number: what strtod takes of the number characters at pos:
 * [+-] digits [. digits] [(e|E) [+-] digits], at least one digit before the
 * exponent, which counts only with a digit. */
static bool scan_number(struct jscan *j)
{
    const unsigned char *s = j->s + j->pos;
    size_t n = 0, max = j->len - j->pos;
    while (n < max && num_char(s[n]))
        n++;
    size_t q = 0;
    if (q < n && (s[q] == '+' || s[q] == '-'))
        q++;
    size_t d1 = digits(s, q, n), d2 = 0;
    q += d1;
    if (q < n && s[q] == '.') {
        d2 = digits(s, q + 1, n);
        if (d1 + d2 > 0)
            q += 1 + d2;
    }
    if (d1 + d2 == 0)
        return false;
    if (q < n && (s[q] == 'e' || s[q] == 'E')) {
        size_t r = q + 1;
        if (r < n && (s[r] == '+' || s[r] == '-'))
            r++;
        size_t de = digits(s, r, n);
        if (de)
            q = r + de;
    }
    j->pos += q;
    return true;
}

/* key_is: is the key whose span is sp the field f's, as C strings (a NUL
 * ends a key)? */
static bool key_is(const struct jscan *j, const struct jspan *sp, int f)
{
    const unsigned char *p = j->s + sp->at + 1, *end = j->s + sp->end;
    size_t kl = (size_t)(end - p), wl = keys[f].len;
    if (!sp->esc) {
        if (kl < wl || (kl > wl && p[wl] != 0))
            return false;
        for (size_t i = 0; i < wl; i++) /* short: no call */
            if (p[i] != (unsigned char)keys[f].s[i])
                return false;
        return true;
    }
    char buf[KEY_MAX];
    size_t n = str_decode(p, end, buf, sizeof buf);
    kl = strnlen(buf, n < sizeof buf ? n : sizeof buf);
    return kl == wl && !memcmp(buf, keys[f].s, wl);
}

static int child_of(const struct jscan *j, int node, const struct jspan *key)
{
    for (int f = kids[node].first, last = f + kids[node].n; f < last; f++)
        if (j->type[f] == J_NONE && key_is(j, key, f))
            return f;
    return F_NONE;
}

/* an element (or member) of pull_request.labels: its first "name" */
static bool scan_label(struct jscan *j)
{
    j->type[F_ITEM_NAME] = J_NONE;
    if (!scan_value(j, F_ITEM))
        return false;
    if (j->type[F_ITEM_NAME] == J_STRING) {
        XGROW(j->labels, j->caplabels, j->nlabels + 1);
        j->labels[j->nlabels++] = j->v[F_ITEM_NAME];
    }
    return true;
}

static bool scan_array(struct jscan *j, int node)
{
    if (j->depth >= JSON_MAX_DEPTH)
        return false;
    j->depth++;
    j->pos++;
    skip_ws(j);
    if (j->pos < j->len && j->s[j->pos] == ']')
        goto done;
    for (;;) {
        skip_ws(j);
        if (!(node == F_PR_LABELS ? scan_label(j) : scan_value(j, F_NONE)))
            return false;
        skip_ws(j);
        if (j->pos < j->len && j->s[j->pos] == ',') {
            j->pos++;
            continue;
        }
        break;
    }
    if (j->pos >= j->len || j->s[j->pos] != ']')
        return false;
done:
    j->pos++;
    j->depth--;
    return true;
}

static bool scan_object(struct jscan *j, int node)
{
    if (j->depth >= JSON_MAX_DEPTH)
        return false;
    j->depth++;
    j->pos++;
    skip_ws(j);
    if (j->pos < j->len && j->s[j->pos] == '}')
        goto done;
    for (;;) {
        skip_ws(j);
        struct jspan key;
        if (j->pos >= j->len || j->s[j->pos] != '"' || !scan_string(j, &key))
            return false;
        skip_ws(j);
        if (j->pos >= j->len || j->s[j->pos] != ':')
            return false;
        j->pos++;
        skip_ws(j);
        bool ok;
        if (node == F_PR_LABELS)
            ok = scan_label(j);
        else
            ok = scan_value(j, node == F_NONE ? F_NONE : child_of(j, node, &key));
        if (!ok)
            return false;
        skip_ws(j);
        if (j->pos < j->len && j->s[j->pos] == ',') {
            j->pos++;
            continue;
        }
        break;
    }
    if (j->pos >= j->len || j->s[j->pos] != '}')
        return false;
done:
    j->pos++;
    j->depth--;
    return true;
}

static bool lit(const struct jscan *j, const char *w, size_t n)
{
    return j->len - j->pos >= n && !memcmp(j->s + j->pos, w, n);
}

/* scan_value: the value at pos; node: the field it is (F_NONE: none) */
static bool scan_value(struct jscan *j, int node)
{
    if (j->pos >= j->len)
        return false;
    struct jspan sp = {j->pos, 0, false};
    enum jtype t;
    switch (j->s[j->pos]) {
    case '"':
        t = J_STRING;
        if (!scan_string(j, &sp))
            return false;
        break;
    case '{':
        t = J_OBJECT;
        if (!scan_object(j, node))
            return false;
        break;
    case '[':
        t = J_ARRAY;
        if (!scan_array(j, node))
            return false;
        break;
    case 'n':
        t = J_NULL;
        if (!lit(j, "null", 4))
            return false;
        j->pos += 4;
        break;
    case 'f':
        t = J_FALSE;
        if (!lit(j, "false", 5))
            return false;
        j->pos += 5;
        break;
    case 't':
        t = J_TRUE;
        if (!lit(j, "true", 4))
            return false;
        j->pos += 4;
        break;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        t = J_NUMBER;
        if (!scan_number(j))
            return false;
        break;
    default:
        return false;
    }
    if (node != F_NONE) {
        j->type[node] = (unsigned char)t;
        j->v[node] = sp;
    }
    return true;
}

/* json_scan: validate the whole of s and find the fields; 0 or -1 */
static int json_scan(struct jscan *j, const char *s, size_t len)
{
    memset(j, 0, sizeof *j);
    j->s = (const unsigned char *)s;
    j->len = len;
    if (!len)
        return -1;
    if (len >= 5 && !memcmp(s, "\xEF\xBB\xBF", 3))
        j->pos = 3;
    skip_ws(j);
    return scan_value(j, F_ROOT) ? 0 : -1;
}

static void json_scan_release(struct jscan *j)
{
    free(j->labels);
}

static char *span_str(const struct jscan *j, const struct jspan *sp)
{
    const unsigned char *p = j->s + sp->at + 1, *end = j->s + sp->end;
    size_t cap = (size_t)(end - p); /* decoding never grows a string */
    char *out = xmalloc(cap + 1);
    size_t n = str_decode(p, end, out, cap);
    out[n < cap ? n : cap] = 0;
    return out;
}

static char *str_of(const struct jscan *j, enum field f)
{
    return j->type[f] == J_STRING ? span_str(j, &j->v[f]) : NULL;
}

/* num_of: the number as cJSON reads it: strtod of the run of number
 * characters, '.' as the locale's decimal point; then as a long long the way
 * x86 truncates (out of range or NaN: LLONG_MIN), without the undefined
 * behaviour of a C cast */
static bool num_of(const struct jscan *j, enum field f, long long *out)
{
    if (j->type[f] != J_NUMBER)
        return false;
    const unsigned char *s = j->s + j->v[f].at;
    size_t n = 0, max = j->len - j->v[f].at;
    while (n < max && num_char(s[n]))
        n++;
    char small[64], *buf = n < sizeof small ? small : xmalloc(n + 1);
    char point = *localeconv()->decimal_point;
    for (size_t i = 0; i < n; i++)
        buf[i] = s[i] == '.' ? point : (char)s[i];
    buf[n] = 0;
    double d = strtod(buf, NULL);
    if (buf != small)
        free(buf);
    *out = d >= -9223372036854775808.0 && d < 9223372036854775808.0 ? (long long)d : LLONG_MIN;
    return true;
}

int gh_parse(struct gh_event *ev, const char *event, const char *delivery, const char *hook_id,
             const char *body, size_t len, struct err *e)
{
    memset(ev, 0, sizeof *ev);
    if (!event || !*event)
        return err_set(e, PE_USAGE, NULL, "missing X-GitHub-Event");
    if (!delivery || !*delivery)
        return err_set(e, PE_USAGE, NULL, "missing X-GitHub-Delivery");
    ev->event = xstrdup(event);
    ev->delivery = xstrdup(delivery);
    ev->hook_id = hook_id ? xstrdup(hook_id) : NULL;
    struct jscan j;
    int rc = 0;
    if (json_scan(&j, body, len) || j.type[F_ROOT] != J_OBJECT) {
        rc = err_set(e, PE_USAGE, NULL, "the body is not a JSON object");
        goto out;
    }
    ev->action = str_of(&j, F_ACTION);
    num_of(&j, F_INST_ID, &ev->installation);
    if (!strcmp(event, "pull_request")) {
        if (j.type[F_PR] != J_OBJECT || j.type[F_NUMBER] != J_NUMBER || !ev->action) {
            rc = err_set(e, PE_USAGE, NULL,
                         "a pull_request delivery needs action, number and pull_request");
            goto out;
        }
        num_of(&j, F_NUMBER, &ev->number);
        ev->repo = str_of(&j, F_REPO_NAME);
        if (!ev->repo)
            ev->repo = str_of(&j, F_PR_BASE_REPO_NAME);
        ev->sha = str_of(&j, F_PR_HEAD_SHA);
        ev->branch = str_of(&j, F_PR_HEAD_REF);
        ev->author = str_of(&j, F_PR_USER_LOGIN);
        ev->title = str_of(&j, F_PR_TITLE);
        ev->state = str_of(&j, F_PR_STATE);
        ev->head_repo = str_of(&j, F_PR_HEAD_REPO_NAME);
        char *base_repo = str_of(&j, F_PR_BASE_REPO_NAME);
        /* a deleted fork has head.repo null; names compare case-insensitively */
        ev->fork = !ev->head_repo || !base_repo || strcasecmp(ev->head_repo, base_repo) != 0;
        free(base_repo);
        ev->draft = j.type[F_PR_DRAFT] == J_TRUE;
        ev->merged = j.type[F_PR_MERGED] == J_TRUE;
        char *upd = str_of(&j, F_PR_UPDATED);
        if (upd)
            tm_parse_rfc3339(upd, &ev->updated_ms);
        free(upd);
        ev->label = str_of(&j, F_LABEL_NAME);
        ev->labels = xcalloc(j.nlabels + 1, sizeof *ev->labels);
        for (size_t i = 0; i < j.nlabels; i++)
            ev->labels[ev->nlabels++] = span_str(&j, &j.labels[i]);
        if (!ev->sha || ev->number <= 0 || !ev->repo)
            rc = err_set(e, PE_USAGE, NULL, "a pull_request delivery lacks head.sha or repository");
    }
out:
    json_scan_release(&j);
    return rc;
}

static bool has_label(const struct gh_event *ev, const char *name)
{
    for (size_t i = 0; i < ev->nlabels; i++)
        if (!strcmp(ev->labels[i], name))
            return true;
    return false;
}

enum gh_verdict gh_decide(const struct gh_event *ev, const struct gh_policy *p, const char **why)
{
    *why = NULL;
    if (!strcmp(ev->event, "ping")) {
        *why = "ping";
        return GH_PING;
    }
    if (strcmp(ev->event, "pull_request") != 0) {
        *why = "not a pull_request event";
        return GH_IGNORE;
    }
    const char *a = ev->action;
    if (!strcmp(a, "closed")) {
        *why = ev->merged ? "merged" : "closed";
        return GH_DESTROY;
    }
    bool deployish = !strcmp(a, "opened") || !strcmp(a, "reopened") ||
                     !strcmp(a, "synchronize") || !strcmp(a, "ready_for_review") ||
                     !strcmp(a, "labeled") || !strcmp(a, "unlabeled");
    if (!strcmp(a, "converted_to_draft")) {
        if (p->destroy_on_draft && !p->drafts) {
            *why = "converted to draft";
            return GH_DESTROY;
        }
        *why = "converted to draft: kept (previews.on_draft: keep)";
        return GH_IGNORE;
    }
    if (!deployish) {
        *why = "action does not change the preview";
        return GH_IGNORE;
    }
    if (ev->state && strcmp(ev->state, "open") != 0) {
        *why = "the pull request is not open";
        return GH_IGNORE;
    }
    if (p->label) {
        bool labeled = has_label(ev, p->label);
        if (!strcmp(a, "unlabeled") && ev->label && !strcmp(ev->label, p->label)) {
            *why = "the opt-in label was removed";
            return GH_DESTROY;
        }
        if (!labeled) {
            *why = "the pull request does not carry the opt-in label";
            return GH_IGNORE;
        }
    } else if (!strcmp(a, "labeled") || !strcmp(a, "unlabeled")) {
        *why = "labels do not matter without previews.label";
        return GH_IGNORE;
    }
    if (ev->draft && !p->drafts) {
        *why = "drafts get no preview (previews.drafts: false)";
        return GH_IGNORE;
    }
    if (ev->fork) {
        if (p->forks == GH_FORKS_DENY) {
            *why = "pull requests from forks get no preview (previews.forks: deny)";
            return GH_IGNORE;
        }
        if (p->forks == GH_FORKS_TRUSTED) {
            bool trusted = false;
            for (size_t i = 0; p->trusted && p->trusted[i] && ev->author; i++)
                if (!strcasecmp(p->trusted[i], ev->author))
                    trusted = true;
            if (!trusted) {
                *why = "the fork's author is not in previews.forks.trusted";
                return GH_IGNORE;
            }
        }
    }
    *why = a;
    return GH_UP;
}

char *gh_meta_json(const struct gh_event *ev, bool untrusted)
{
    struct sb b;
    sb_init(&b);
    sb_addf(&b, "{\"number\": %lld, \"sha\": ", ev->number);
    const char *fields[][2] = {{"sha", ev->sha},     {"branch", ev->branch}, {"author", ev->author},
                               {"title", ev->title}, {"repo", ev->repo},     {"delivery", ev->delivery}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        if (i)
            sb_addf(&b, ", \"%s\": ", fields[i][0]);
        if (fields[i][1])
            sb_add_json_str(&b, fields[i][1]);
        else
            sb_adds(&b, "null");
    }
    sb_addf(&b, ", \"fork\": %s, \"untrusted\": %s, \"installation\": %lld}",
            ev->fork ? "true" : "false", untrusted ? "true" : "false", ev->installation);
    return sb_steal(&b);
}
