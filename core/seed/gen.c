/* seed gen: draws the rows. Every column has its own random stream
 * (xoshiro256** seeded through splitmix64 from the seed value and the table
 * and column names) and its own scratch buffer, so a row costs no allocation
 * and adding or reordering columns leaves the other columns' values alone.
 * Everything is integer arithmetic: distributions use fixed point, numbers
 * and dates are formatted by hand, so output is the same on every machine.
 *
 * Only the values other tables refer to are kept (as rendered text, NULLs
 * left out); everything else streams to the sink row by row.
 *
 * What it leaves to others: parsing the seed file (schema.c) and writing
 * rows anywhere (sink.c, or a loader's own sink). */
#include "core/seed/seed_int.h"

#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"

#include <stdlib.h>
#include <string.h>

#define MAX_KEPT (((size_t)2 << 30) - 1) /* bytes of referenced values kept, with offsets */
#define MAX_SET_BYTES ((size_t)2 << 30)  /* memory of one unique column's set */
#define REDRAWS 32                       /* draws before a unique index probes */
#define TEXT_REDRAWS 1000                /* draws before a unique text gives up */
#define CANCEL_EVERY 4096

/* ---- hashing and the random streams ---- */

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t load64le(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

uint64_t seed_hash(const void *vp, size_t n)
{
    const unsigned char *p = vp;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        h = mix64(h ^ load64le(p));
        p += 8;
        n -= 8;
    }
    uint64_t last = 0;
    for (size_t i = 0; i < n; i++)
        last |= (uint64_t)p[i] << (8 * i);
    return mix64(h ^ last ^ ((uint64_t)n << 59));
}

struct rng {
    uint64_t s[4];
};

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static void rng_init(struct rng *r, uint64_t key)
{
    for (int i = 0; i < 4; i++) {
        key += 0x9e3779b97f4a7c15ULL; /* splitmix64 */
        r->s[i] = mix64(key);
    }
}

/* the stream of (seed, table, column, purpose) */
static uint64_t stream_key(uint64_t seed, const char *table, const char *col, uint64_t purpose)
{
    uint64_t k = mix64(seed ^ seed_hash(table, strlen(table)));
    k = mix64(k + seed_hash(col, strlen(col)));
    return mix64(k ^ (purpose * 0xd1b54a32d192ed03ULL));
}

/* uniform in [0, n), n > 0 (Lemire's multiply-and-reject) */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
    unsigned __int128 m = (unsigned __int128)rng_next(r) * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = -n % n;
        while (l < t) {
            m = (unsigned __int128)rng_next(r) * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* true with probability thr / 2^53 */
static inline bool rng_chance(struct rng *r, uint64_t thr)
{
    return (rng_next(r) >> 11) < thr;
}

/* ---- fixed-point distributions ---- */

/* a standard normal deviate in Q32, as the sum of 12 uniforms minus 6
 * (Irwin-Hall: bounded to +-6 sigma, close enough for test data) */
static inline int64_t normal_q32(struct rng *r)
{
    uint64_t s = 0;
    for (int i = 0; i < 6; i++) {
        uint64_t x = rng_next(r);
        s += (x >> 32) + (x & 0xffffffffULL);
    }
    return (int64_t)s - (int64_t)(6ULL << 32);
}

/* -ln(u) for u uniform in (0, 1], in Q32, by the bit-by-bit log2 */
static uint64_t exp_q32(struct rng *r)
{
    uint64_t u = rng_next(r) | 1;
    int msb = 63 - __builtin_clzll(u);
    uint64_t m = msb >= 31 ? u >> (msb - 31) : u << (31 - msb); /* [2^31, 2^32) */
    uint64_t frac = 0;
    for (int i = 0; i < 32; i++) {
        m = (m * m) >> 31;
        frac <<= 1;
        if (m >= (1ULL << 32)) {
            m >>= 1;
            frac |= 1;
        }
    }
    uint64_t log2u = ((uint64_t)msb << 32) | frac;
    uint64_t nl2 = (64ULL << 32) - log2u;                              /* -log2(u / 2^64) */
    return (uint64_t)(((unsigned __int128)nl2 * 2977044472ULL) >> 32); /* * ln 2 */
}

/* ---- number and date text ---- */

static const char digits2[201] = "00010203040506070809101112131415161718192021222324252627282930"
                                 "31323334353637383940414243444546474849505152535455565758596061"
                                 "62636465666768697071727374757677787980818283848586878889909192"
                                 "93949596979899";

static inline size_t ndigits(uint64_t v)
{
    size_t n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

size_t seed_fmt_u64(char *out, uint64_t v)
{
    size_t n = ndigits(v), i = n;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100) * 2;
        v /= 100;
        out[--i] = digits2[d + 1];
        out[--i] = digits2[d];
    }
    if (v >= 10) {
        out[1] = digits2[v * 2 + 1];
        out[0] = digits2[v * 2];
    } else {
        out[0] = (char)('0' + v);
    }
    return n;
}

size_t seed_fmt_i64(char *out, long long v)
{
    if (v < 0) {
        out[0] = '-';
        return 1 + seed_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
    }
    return seed_fmt_u64(out, (uint64_t)v);
}

static const uint64_t pow10u[] = {1ULL,      10ULL,      100ULL,      1000ULL,      10000ULL,
                                  100000ULL, 1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL};

/* q / 10^dec with exactly dec decimals */
static size_t fmt_fixed(char *out, long long q, int dec)
{
    size_t n = 0;
    uint64_t a = (uint64_t)q;
    if (q < 0) {
        out[n++] = '-';
        a = (uint64_t)0 - a;
    }
    if (dec == 0)
        return n + seed_fmt_u64(out + n, a);
    uint64_t p = pow10u[dec], ip = a / p, fp = a % p;
    n += seed_fmt_u64(out + n, ip);
    out[n++] = '.';
    for (int i = dec - 1; i >= 0; i--) {
        out[n + (size_t)i] = (char)('0' + fp % 10);
        fp /= 10;
    }
    return n + (size_t)dec;
}

static inline void put2(char *o, unsigned v)
{
    o[0] = digits2[v * 2];
    o[1] = digits2[v * 2 + 1];
}

/* YYYY-MM-DD of days since 1970-01-01 (years 1..9999) */
static void fmt_date(char *o, long long z)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    put2(o, (unsigned)(y / 100));
    put2(o + 2, (unsigned)(y % 100));
    o[4] = '-';
    put2(o + 5, m);
    o[7] = '-';
    put2(o + 8, d);
}

/* YYYY-MM-DDTHH:MM:SSZ */
static void fmt_ts(char *o, long long secs)
{
    long long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    unsigned rem = (unsigned)(secs - days * 86400);
    fmt_date(o, days);
    o[10] = 'T';
    put2(o + 11, rem / 3600);
    o[13] = ':';
    put2(o + 14, rem / 60 % 60);
    o[16] = ':';
    put2(o + 17, rem % 60);
    o[19] = 'Z';
}

static const char hexd[] = "0123456789abcdef";

static void fmt_uuid(char *o, uint64_t hi, uint64_t lo)
{
    unsigned char b[16];
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(hi >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
    }
    size_t n = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            o[n++] = '-';
        o[n++] = hexd[b[i] >> 4];
        o[n++] = hexd[b[i] & 15];
    }
}

/* a bijection of the low 62 bits, keyed: distinct rows give distinct uuids */
static inline uint64_t perm62(uint64_t x, uint64_t key)
{
    const uint64_t M = ((uint64_t)1 << 62) - 1;
    x = (x + key) & M;
    x ^= x >> 31;
    x = (x * 0x7fb5d329728ea185ULL) & M;
    x ^= x >> 27;
    x = (x * 0x81dadef4bc2dd44dULL) & M;
    x ^= x >> 33;
    return x;
}

/* ---- unique sets: a bitmap over small index domains, else a hash set of
 * 64-bit keys (indices, or hashes of text) ---- */

struct uset {
    uint64_t *bits; /* bitmap, when the domain is small */
    uint64_t *keys; /* open addressing; 0 marks a free slot (key 0 is kept aside) */
    size_t cap, n;
    bool zero;
    uint64_t used; /* values taken */
};

static void uset_release(struct uset *u)
{
    free(u->bits);
    free(u->keys);
    memset(u, 0, sizeof *u);
}

static void uset_init(struct uset *u, uint64_t dom, long long rows)
{
    memset(u, 0, sizeof *u);
    uint64_t want = (uint64_t)rows * 16 > (1u << 20) ? (uint64_t)rows * 16 : (1u << 20);
    if (dom != SEED_DOM_INF && dom / 8 <= want) {
        u->bits = xcalloc((size_t)(dom / 64 + 1), sizeof *u->bits);
        return;
    }
    /* room for every row at under half load, up to 128 MiB; more grows */
    size_t cap = 1024;
    while (cap < ((size_t)1 << 24) && (uint64_t)cap < (uint64_t)rows * 2)
        cap *= 2;
    u->keys = xcalloc(cap, sizeof *u->keys);
    u->cap = cap;
}

static int uset_grow(struct uset *u, struct err *e)
{
    size_t nc = u->cap ? u->cap * 2 : 1024;
    if (nc * sizeof(uint64_t) > MAX_SET_BYTES)
        return err_set(e, PE_LIMIT, NULL, "too many unique values to track (over %zu MiB)",
                       MAX_SET_BYTES >> 20);
    uint64_t *nk = xcalloc(nc, sizeof *nk);
    for (size_t i = 0; i < u->cap; i++) {
        uint64_t k = u->keys[i];
        if (!k)
            continue;
        size_t j = (size_t)mix64(k) & (nc - 1);
        while (nk[j])
            j = (j + 1) & (nc - 1);
        nk[j] = k;
    }
    free(u->keys);
    u->keys = nk;
    u->cap = nc;
    return 0;
}

/* uset_add: 1 if key was new (now taken), 0 if already taken, <0 on error */
static int uset_add(struct uset *u, uint64_t key, struct err *e)
{
    if (u->bits) {
        uint64_t w = key >> 6, b = (uint64_t)1 << (key & 63);
        if (u->bits[w] & b)
            return 0;
        u->bits[w] |= b;
        u->used++;
        return 1;
    }
    if (key == 0) {
        if (u->zero)
            return 0;
        u->zero = true;
        u->used++;
        return 1;
    }
    if ((u->n + 1) * 2 > u->cap) {
        int rc = uset_grow(u, e);
        if (rc)
            return rc;
    }
    size_t j = (size_t)mix64(key) & (u->cap - 1);
    while (u->keys[j]) {
        if (u->keys[j] == key)
            return 0;
        j = (j + 1) & (u->cap - 1);
    }
    u->keys[j] = key;
    u->n++;
    u->used++;
    return 1;
}

/* email suffixes: hash of a local part -> the next number to try, packed in
 * one word per slot: a 32-bit fingerprint (never 0) over a 32-bit counter
 * (0: the bare form is unused). Counters stay below 2 * SEED_MAX_ROWS. Two
 * local parts that share a slot share a counter, which still never repeats
 * an address. */
struct smap {
    uint64_t *slot;
    size_t cap, n;
};

static void smap_release(struct smap *m)
{
    free(m->slot);
    memset(m, 0, sizeof *m);
}

static uint64_t *smap_slot(struct smap *m, uint64_t h)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        size_t nc = m->cap ? m->cap * 2 : 1024;
        uint64_t *ns = xcalloc(nc, sizeof *ns);
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slot[i])
                continue;
            /* the fingerprint is the top half of the hash; the index its bottom */
            size_t j = (size_t)mix64(m->slot[i] >> 32) & (nc - 1);
            while (ns[j])
                j = (j + 1) & (nc - 1);
            ns[j] = m->slot[i];
        }
        free(m->slot);
        m->slot = ns;
        m->cap = nc;
    }
    uint64_t fp = (h >> 32) | 1;
    size_t j = (size_t)mix64(fp) & (m->cap - 1);
    while (m->slot[j] && (m->slot[j] >> 32) != fp)
        j = (j + 1) & (m->cap - 1);
    if (!m->slot[j]) {
        m->slot[j] = fp << 32;
        m->n++;
    }
    return &m->slot[j];
}

/* ---- kept values (the targets of refs) ---- */

struct keep {
    char *text;
    size_t len, cap;
    uint32_t *end; /* end offset of value i; value i starts at end[i-1] */
    size_t n, capn;
};

static void keep_free(struct keep *k)
{
    if (!k)
        return;
    free(k->text);
    free(k->end);
    free(k);
}

static int keep_add(struct keep *k, const char *s, size_t n, struct err *e)
{
    if (k->len + n + 4 * (k->n + 1) > MAX_KEPT)
        return err_set(e, PE_LIMIT, NULL, "the values other tables refer to exceed %zu MiB",
                       MAX_KEPT >> 20);
    if (k->len + n > k->cap) {
        size_t nc = k->cap ? k->cap * 2 : 4096;
        while (nc < k->len + n)
            nc *= 2;
        k->text = xrealloc(k->text, nc);
        k->cap = nc;
    }
    memcpy(k->text + k->len, s, n);
    k->len += n;
    XGROW(k->end, k->capn, k->n + 1);
    k->end[k->n++] = (uint32_t)k->len;
    return 0;
}

/* ---- per-column run state ---- */

struct colrt {
    const struct seed_col *c;
    struct rng r;  /* values */
    struct rng rn; /* NULLs */
    char *buf;     /* scratch for this row's value */
    size_t len, cap;
    struct uset u;
    struct smap sfx;
    uint64_t last; /* the index drawn this row (a country follows its city) */
    bool last_null;
    uint64_t uuid_key;
    uint64_t dom;           /* distinct values (refs: the kept values) */
    struct keep *keep;      /* this column's values, kept for refs to it */
    const struct keep *src; /* ref: the kept values of the target */
    bool need;
};

static void grow(struct colrt *rt, size_t need)
{
    size_t nc = rt->cap ? rt->cap * 2 : 256;
    while (nc < need)
        nc *= 2;
    rt->buf = xrealloc(rt->buf, nc);
    rt->cap = nc;
}

static inline char *reserve(struct colrt *rt, size_t n)
{
    if (rt->len + n > rt->cap)
        grow(rt, rt->len + n);
    return rt->buf + rt->len;
}

static inline void put(struct colrt *rt, const char *s, size_t n)
{
    memcpy(reserve(rt, n), s, n);
    rt->len += n;
}

static inline void putw(struct colrt *rt, const struct dword *w)
{
    put(rt, w->s, w->len);
}

/* ---- ASCII for e-mail addresses ---- */

/* Latin-1 Supplement and Latin Extended-A letters as ASCII (lowercase) */
static const char *const latin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",  /* C0 */
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "ss", /* D0 */
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",  /* E0 */
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y",  /* F0 */
};

/* U+0100..U+017F: pairs of upper/lower case letters, mostly */
static const char extA[] = "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiijjjjkkklllllllllln"
                           "nnnnnnnnnoooooooorrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";

/* ASCII bytes: their lowercase letter or digit, or 0 to drop */
static const char ascii_keep[128] = {
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4', ['5'] = '5', ['6'] = '6',
    ['7'] = '7', ['8'] = '8', ['9'] = '9', ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd',
    ['E'] = 'e', ['F'] = 'f', ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k',
    ['L'] = 'l', ['M'] = 'm', ['N'] = 'n', ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r',
    ['S'] = 's', ['T'] = 't', ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y',
    ['Z'] = 'z', ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd', ['e'] = 'e', ['f'] = 'f',
    ['g'] = 'g', ['h'] = 'h', ['i'] = 'i', ['j'] = 'j', ['k'] = 'k', ['l'] = 'l', ['m'] = 'm',
    ['n'] = 'n', ['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't',
    ['u'] = 'u', ['v'] = 'v', ['w'] = 'w', ['x'] = 'x', ['y'] = 'y', ['z'] = 'z',
};

size_t seed_ascii(char *o, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80) {
            o[k] = ascii_keep[ch];
            k += o[k] != 0;
            i++;
            continue;
        }
        /* decode one UTF-8 sequence (invalid bytes are skipped) */
        size_t len = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 1;
        if (len == 1 || i + len > n) {
            i++;
            continue;
        }
        unsigned cp = ch & (0x7fu >> len);
        for (size_t j = 1; j < len; j++)
            cp = (cp << 6) | ((unsigned char)s[i + j] & 0x3f);
        i += len;
        const char *t = NULL;
        char one[2] = {0, 0};
        if (cp >= 0xc0 && cp < 0x100) {
            t = latin1[cp - 0xc0];
        } else if (cp >= 0x100 && cp < 0x180 && cp - 0x100 < sizeof extA - 1) {
            one[0] = extA[cp - 0x100];
            t = one;
        } else if (cp == 0x0218 || cp == 0x0219) {
            t = "s";
        } else if (cp == 0x021a || cp == 0x021b) {
            t = "t";
        }
        for (; t && *t; t++)
            o[k++] = *t;
    }
    return k;
}

/* append the ASCII letters and digits of s, lowercase */
static void put_ascii(struct colrt *rt, const char *s, size_t n)
{
    rt->len += seed_ascii(reserve(rt, 2 * n), s, n);
}

/* ---- drawing ---- */

struct run {
    const struct seed_schema *s;
    const struct seed_opts *o;
    struct err *e;
    bool **need;          /* need[t][c]: column rendered in this run */
    struct keep ***keeps; /* keeps[t][c]: kept values, or NULL */
    bool *emit;           /* table goes to the sink */
};

static uint64_t draw_range(struct colrt *rt)
{
    const struct seed_col *c = rt->c;
    if (c->dist == DIST_UNIFORM)
        return rng_below(&rt->r, c->dom);
    for (int tries = 0;; tries++) {
        __int128 v;
        if (c->dist == DIST_NORMAL) {
            __int128 d = (__int128)normal_q32(&rt->r) * c->sd_q16; /* Q48 */
            v = (__int128)c->mean_q + ((d + ((__int128)1 << 47)) >> 48);
        } else {
            uint64_t scale = (uint64_t)(c->mean_q - c->lo);
            v = (__int128)c->lo +
                (__int128)(((unsigned __int128)exp_q32(&rt->r) * scale + (1ULL << 31)) >> 32);
        }
        if (v >= c->lo && v <= c->hi)
            return (uint64_t)(long long)(v - c->lo);
        if (tries == 16) /* far in a tail: clamp */
            return v < c->lo ? 0 : c->dom - 1;
    }
}

static uint64_t draw_index(struct colrt *rt)
{
    const struct seed_col *c = rt->c;
    switch (c->gen) {
    case G_INT:
    case G_FLOAT:
    case G_MONEY:
        return draw_range(rt);
    case G_BOOL:
        return rng_chance(&rt->r, c->ratio_thr) ? 1 : 0;
    case G_ENUM: {
        if (c->nvals == 1)
            return 0;
        uint64_t x = rng_below(&rt->r, c->cum[c->nvals - 1]);
        size_t lo = 0, hi = c->nvals - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (x < c->cum[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        return lo;
    }
    case G_CONSTANT:
        return 0;
    default:
        return rng_below(&rt->r, rt->dom);
    }
}

/* the text of index idx */
static void render_index(struct colrt *rt, uint64_t idx, struct seed_value *v)
{
    const struct seed_col *c = rt->c;
    rt->len = 0;
    rt->last = idx;
    switch (c->gen) {
    case G_INT:
        rt->len = seed_fmt_i64(reserve(rt, 24), (long long)((uint64_t)c->lo + idx));
        break;
    case G_FLOAT:
    case G_MONEY:
        rt->len = fmt_fixed(reserve(rt, 32), (long long)((uint64_t)c->lo + idx), c->decimals);
        break;
    case G_DATE:
        fmt_date(reserve(rt, 10), c->lo + (long long)idx);
        rt->len = 10;
        break;
    case G_TIMESTAMP:
        fmt_ts(reserve(rt, 20), c->lo + (long long)idx);
        rt->len = 20;
        break;
    case G_BOOL:
        v->text = idx ? "true" : "false";
        v->len = idx ? 4 : 5;
        return;
    case G_ENUM:
        v->text = c->vals[idx];
        v->len = c->vlens[idx];
        return;
    case G_CONSTANT:
        v->text = c->text;
        v->len = c->tlen;
        return;
    case G_FIRST_NAME:
        v->text = dict_first_names.w[idx].s;
        v->len = dict_first_names.w[idx].len;
        return;
    case G_LAST_NAME:
        v->text = dict_last_names.w[idx].s;
        v->len = dict_last_names.w[idx].len;
        return;
    case G_CITY:
        v->text = dict_cities[idx].city.s;
        v->len = dict_cities[idx].city.len;
        return;
    case G_COUNTRY:
        v->text = dict_countries.w[idx].s;
        v->len = dict_countries.w[idx].len;
        return;
    case G_REF: {
        const struct keep *k = rt->src;
        size_t b = idx ? k->end[idx - 1] : 0;
        v->text = k->text + b;
        v->len = k->end[idx] - b;
        return;
    }
    case G_FULL_NAME:
        putw(rt, &dict_first_names.w[idx % dict_first_names.n]);
        put(rt, " ", 1);
        putw(rt, &dict_last_names.w[idx / dict_first_names.n]);
        break;
    case G_PHONE: {
        char *o = reserve(rt, c->tlen);
        /* the '#'s from the right take the digits of idx */
        for (size_t i = c->tlen; i-- > 0;) {
            if (c->text[i] == '#') {
                o[i] = (char)('0' + idx % 10);
                idx /= 10;
            } else {
                o[i] = c->text[i];
            }
        }
        rt->len = c->tlen;
        break;
    }
    case G_STREET: {
        uint64_t num = idx % 9999 + 1;
        idx /= 9999;
        rt->len = seed_fmt_u64(reserve(rt, 20), num);
        put(rt, " ", 1);
        putw(rt, &dict_streets.w[idx % dict_streets.n]);
        put(rt, " ", 1);
        putw(rt, &dict_street_suffixes.w[idx / dict_streets.n]);
        break;
    }
    case G_COMPANY: {
        size_t nw = dict_company_words.n, ns = dict_company_sectors.n;
        uint64_t a = (uint64_t)nw * ns * dict_company_suffixes.n;
        if (idx < a) {
            putw(rt, &dict_company_words.w[idx % nw]);
            idx /= nw;
            put(rt, " ", 1);
            putw(rt, &dict_company_sectors.w[idx % ns]);
            idx /= ns;
        } else {
            idx -= a;
            putw(rt, &dict_company_words.w[idx % nw]);
            idx /= nw;
        }
        put(rt, " ", 1);
        putw(rt, &dict_company_suffixes.w[idx]);
        break;
    }
    case G_PRODUCT: {
        size_t na = dict_product_adjectives.n, nm = dict_product_materials.n;
        putw(rt, &dict_product_adjectives.w[idx % na]);
        idx /= na;
        put(rt, " ", 1);
        putw(rt, &dict_product_materials.w[idx % nm]);
        idx /= nm;
        put(rt, " ", 1);
        putw(rt, &dict_product_nouns.w[idx]);
        break;
    }
    case G_WORDS:
        for (int i = 0; i < c->count; i++) {
            if (i)
                put(rt, " ", 1);
            putw(rt, &dict_lorem.w[idx % dict_lorem.n]);
            idx /= dict_lorem.n;
        }
        break;
    default:
        break;
    }
    v->text = rt->buf;
    v->len = rt->len;
}

static void put_sentence(struct colrt *rt, int words)
{
    size_t start = rt->len;
    for (int i = 0; i < words; i++) {
        if (i)
            put(rt, " ", 1);
        putw(rt, &dict_lorem.w[rng_below(&rt->r, dict_lorem.n)]);
    }
    rt->buf[start] = (char)(rt->buf[start] - 32); /* lorem words are lowercase ASCII */
    put(rt, ".", 1);
}

/* free text: not drawn as an index */
static void render_text(struct colrt *rt, struct seed_value *v)
{
    const struct seed_col *c = rt->c;
    rt->len = 0;
    switch (c->gen) {
    case G_WORDS:
        for (int i = 0; i < c->count; i++) {
            if (i)
                put(rt, " ", 1);
            putw(rt, &dict_lorem.w[rng_below(&rt->r, dict_lorem.n)]);
        }
        break;
    case G_SENTENCE:
        put_sentence(rt, c->count ? c->count : 4 + (int)rng_below(&rt->r, 9));
        break;
    case G_PARAGRAPH:
        for (int i = 0; i < c->count; i++) {
            if (i)
                put(rt, " ", 1);
            put_sentence(rt, 4 + (int)rng_below(&rt->r, 9));
        }
        break;
    default:
        break;
    }
    v->text = rt->buf;
    v->len = rt->len;
}

static int exhausted(const struct run *run, const struct colrt *rt, long long row)
{
    const struct seed_col *c = rt->c;
    const struct seed_table *t = NULL;
    for (size_t i = 0; i < run->s->n && !t; i++)
        if (rt->c >= run->s->t[i].cols && rt->c < run->s->t[i].cols + run->s->t[i].ncols)
            t = &run->s->t[i];
    if (c->gen == G_REF)
        return err_set(run->e, PE_CONFIG, &c->upos,
                       "column '%s.%s' is unique, but '%s.%s' has only %llu values to refer to "
                       "and row %lld needs another",
                       t->name, c->name, run->s->t[c->rtable].name,
                       run->s->t[c->rtable].cols[c->rcol].name, (unsigned long long)rt->dom,
                       row + 1);
    if (c->indexed)
        return err_set(run->e, PE_CONFIG, &c->upos,
                       "column '%s.%s' is unique, but %s can produce only %llu distinct values "
                       "and row %lld needs another",
                       t->name, c->name, seed_gen_names[c->gen], (unsigned long long)rt->dom,
                       row + 1);
    return err_set(run->e, PE_CONFIG, &c->upos,
                   "column '%s.%s' is unique, but %d draws in a row at row %lld gave only values "
                   "already used: %s cannot produce enough distinct values",
                   t->name, c->name, TEXT_REDRAWS, row + 1, seed_gen_names[c->gen]);
}

static int render_email(struct colrt *rt, const struct seed_value *vals, struct err *e)
{
    const struct seed_col *c = rt->c;
    rt->len = 0;
    size_t parts = 0;
    for (size_t i = 0; i < c->nfrom; i++) {
        const struct seed_value *sv = &vals[c->from[i]];
        if (sv->null || !sv->len)
            continue;
        size_t before = rt->len;
        if (parts)
            put(rt, ".", 1);
        size_t mark = rt->len;
        put_ascii(rt, sv->text, sv->len);
        if (rt->len == mark)
            rt->len = before; /* nothing ASCII in it */
        else
            parts++;
    }
    if (!c->nfrom) {
        /* first and last names from the column's own stream */
        const struct dword *f = &dict_first_names.w[rng_below(&rt->r, dict_first_names.n)];
        const struct dword *l = &dict_last_names.w[rng_below(&rt->r, dict_last_names.n)];
        put_ascii(rt, f->s, f->len);
        put(rt, ".", 1);
        put_ascii(rt, l->s, l->len);
    }
    if (rt->len == 0)
        put(rt, "user", 4);
    if (c->unique) {
        /* the first use of a local part takes it bare, later ones add 2, 3, ...
         * When no local part can end in a digit, "base" + digits decodes to one
         * (base, number), so the counter alone keeps addresses unique; otherwise
         * every address is also checked against all those made so far. */
        size_t base = rt->len;
        uint64_t *slot = smap_slot(&rt->sfx, seed_hash(rt->buf, base));
        for (;;) {
            rt->len = base;
            uint32_t next = (uint32_t)*slot;
            if (next == 0)
                next = 2;
            else
                rt->len += seed_fmt_u64(reserve(rt, 20), next++);
            *slot = (*slot & ~(uint64_t)0xffffffff) | next;
            if (c->safe_suffix)
                break;
            int rc = uset_add(&rt->u, seed_hash(rt->buf, rt->len), e);
            if (rc < 0)
                return rc;
            if (rc == 1)
                break;
        }
    }
    put(rt, "@", 1);
    put(rt, c->text, c->tlen);
    return 0;
}

/* render column rt (index k of its table) of row into vals[k] */
static int render(struct run *run, struct colrt *rt, struct colrt *all, struct seed_value *vals,
                  size_t k, long long row)
{
    const struct seed_col *c = rt->c;
    struct seed_value *v = &vals[k];
    v->null = false;
    rt->last_null = false;
    rt->len = 0;
    if (c->null_thr && rng_chance(&rt->rn, c->null_thr)) {
        v->null = true;
        v->text = "";
        v->len = 0;
        rt->last_null = true;
        return 0;
    }
    switch (c->gen) {
    case G_SEQUENCE: {
        long long x = (long long)((uint64_t)c->start + (uint64_t)row * (uint64_t)c->step);
        rt->len = seed_fmt_i64(reserve(rt, 24), x);
        v->text = rt->buf;
        v->len = rt->len;
        return 0;
    }
    case G_UUID: {
        uint64_t hi = rng_next(&rt->r);
        uint64_t lo = perm62((uint64_t)row, rt->uuid_key);
        hi = (hi & ~0xf000ULL) | 0x4000ULL; /* version 4 */
        lo = lo | 0x8000000000000000ULL;    /* variant 10 */
        fmt_uuid(reserve(rt, 36), hi, lo);
        rt->len = 36;
        v->text = rt->buf;
        v->len = 36;
        return 0;
    }
    case G_CONSTANT:
        if (c->cnull) {
            v->null = true;
            v->text = "";
            v->len = 0;
            return 0;
        }
        break;
    case G_EMAIL: {
        int rc = render_email(rt, vals, run->e);
        v->text = rt->buf;
        v->len = rt->len;
        return rc;
    }
    case G_FULL_NAME:
        if (!c->nfrom)
            break;
        rt->len = 0;
        for (size_t i = 0; i < c->nfrom; i++) {
            const struct seed_value *sv = &vals[c->from[i]];
            if (sv->null || !sv->len)
                continue;
            if (rt->len)
                put(rt, " ", 1);
            put(rt, sv->text, sv->len);
        }
        v->text = rt->buf;
        v->len = rt->len;
        return 0;
    case G_COUNTRY:
        if (c->nfrom && !all[c->from[0]].last_null) {
            const struct dcity *ci = &dict_cities[all[c->from[0]].last];
            v->text = ci->country.s;
            v->len = ci->country.len;
            return 0;
        }
        break;
    default:
        break;
    }
    if (!c->indexed) {
        render_text(rt, v);
        if (!c->unique)
            return 0;
        for (int tries = 0; tries < TEXT_REDRAWS; tries++) {
            int rc = uset_add(&rt->u, seed_hash(v->text, v->len), run->e);
            if (rc)
                return rc < 0 ? rc : 0;
            render_text(rt, v);
        }
        return exhausted(run, rt, row);
    }
    if (!c->unique) {
        render_index(rt, draw_index(rt), v);
        return 0;
    }
    if (rt->u.used >= rt->dom)
        return exhausted(run, rt, row);
    uint64_t idx = draw_index(rt);
    for (int tries = 0;; tries++) {
        int rc = uset_add(&rt->u, idx, run->e);
        if (rc < 0)
            return rc;
        if (rc)
            break;
        if (tries < REDRAWS)
            idx = draw_index(rt);
        else
            idx = idx + 1 == rt->dom ? 0 : idx + 1; /* the next free one */
    }
    render_index(rt, idx, v);
    return 0;
}

/* ---- options ---- */

long long seed_rows_for(const struct seed_schema *s, size_t t, const struct seed_opts *o)
{
    if (o && o->rows_all > 0)
        return o->rows_all;
    if (o && o->rows && o->rows->kind == VAL_MAP) {
        const struct val *v = val_map_get(o->rows, s->t[t].name);
        if (v && v->kind == VAL_INT && v->u.i >= 0)
            return v->u.i;
    }
    return s->t[t].rows;
}

static int unknown_table(const struct seed_schema *s, const char *name, const struct pos *at,
                         const char *what, struct err *e)
{
    const char *near = str_closest(name, (const char *const *)s->names, s->n);
    int rc;
    if (near)
        rc = err_set(e, PE_CONFIG, at, "%s names unknown table '%s' (did you mean '%s'?)", what,
                     name, near);
    else
        rc = err_set(e, PE_CONFIG, at, "%s names unknown table '%s'", what, name);
    struct sb b;
    sb_init(&b);
    for (size_t i = 0; i < s->n; i++)
        sb_addf(&b, "%s%s", i ? ", " : "", s->names[i]);
    err_hint(e, "tables: %s", b.buf);
    sb_release(&b);
    return rc;
}

static int check_opts(const struct seed_schema *s, const struct seed_opts *o, struct err *e)
{
    if (o->rows_all < 0 || o->rows_all > SEED_MAX_ROWS)
        return err_set(e, PE_CONFIG, NULL, "row count %lld: it must be between 0 and %lld",
                       o->rows_all, SEED_MAX_ROWS);
    if (o->rows && o->rows->kind != VAL_NULL) {
        if (o->rows->kind != VAL_MAP)
            return err_set(e, PE_CONFIG, &o->rows->pos,
                           "row counts must be a map of table: rows, not %s",
                           val_kind_name(o->rows->kind));
        for (size_t i = 0; i < o->rows->u.map.n; i++) {
            const struct val_entry *ent = &o->rows->u.map.e[i];
            if (seed_table_find(s, ent->key) < 0)
                return unknown_table(s, ent->key, &ent->kpos, "row counts", e);
            if (ent->v->kind != VAL_INT || ent->v->u.i < 0 || ent->v->u.i > SEED_MAX_ROWS)
                return err_set(e, PE_CONFIG, &ent->v->pos,
                               "the row count of table '%s' must be a whole number from 0 to "
                               "%lld",
                               ent->key, SEED_MAX_ROWS);
        }
    }
    for (size_t i = 0; o->only && o->only[i]; i++)
        if (seed_table_find(s, o->only[i]) < 0)
            return unknown_table(s, o->only[i], NULL, "the table list", e);
    return 0;
}

/* ---- running ---- */

static void run_release(struct run *run)
{
    for (size_t t = 0; t < run->s->n; t++) {
        if (run->keeps[t])
            for (size_t c = 0; c < run->s->t[t].ncols; c++)
                keep_free(run->keeps[t][c]);
        free(run->keeps[t]);
        free(run->need[t]);
    }
    free(run->keeps);
    free(run->need);
    free(run->emit);
}

/* which columns to render: all of the emitted tables, and whatever they
 * take values from, transitively (other tables' columns only when referred to) */
static void plan_run(struct run *run)
{
    const struct seed_schema *s = run->s;
    const struct seed_opts *o = run->o;
    run->need = xcalloc(s->n, sizeof *run->need);
    run->keeps = xcalloc(s->n, sizeof *run->keeps);
    run->emit = xcalloc(s->n, sizeof *run->emit);
    for (size_t t = 0; t < s->n; t++) {
        run->need[t] = xcalloc(s->t[t].ncols, sizeof **run->need);
        run->keeps[t] = xcalloc(s->t[t].ncols, sizeof **run->keeps);
        bool in = !o->only;
        for (size_t i = 0; o->only && o->only[i]; i++)
            in = in || !strcmp(o->only[i], s->t[t].name);
        run->emit[t] = in;
        for (size_t c = 0; in && c < s->t[t].ncols; c++)
            run->need[t][c] = true;
    }
    /* tables in reverse order: a table's needs reach only earlier tables */
    for (size_t oi = s->n; oi-- > 0;) {
        size_t t = s->order[oi];
        const struct seed_table *tab = &s->t[t];
        bool changed = true;
        while (changed) {
            changed = false;
            for (size_t c = 0; c < tab->ncols; c++) {
                if (!run->need[t][c])
                    continue;
                const struct seed_col *col = &tab->cols[c];
                for (size_t f = 0; f < col->nfrom; f++)
                    if (!run->need[t][col->from[f]])
                        changed = run->need[t][col->from[f]] = true;
                if (col->gen == G_REF) {
                    run->need[col->rtable][col->rcol] = true;
                    if (!run->keeps[col->rtable][col->rcol])
                        run->keeps[col->rtable][col->rcol] = xcalloc(1, sizeof(struct keep));
                }
            }
        }
    }
}

static int run_table(struct run *run, size_t t, const struct seed_sink *sink)
{
    const struct seed_schema *s = run->s;
    const struct seed_table *tab = &s->t[t];
    struct err *e = run->e;
    bool emit = run->emit[t];
    long long rows = seed_rows_for(s, t, run->o);
    size_t n = tab->ncols;
    struct colrt *rts = xcalloc(n, sizeof *rts);
    struct seed_value *vals = xcalloc(n, sizeof *vals);
    int rc = 0;
    for (size_t k = 0; k < n; k++) {
        struct colrt *rt = &rts[k];
        const struct seed_col *c = &tab->cols[k];
        rt->c = c;
        rt->need = run->need[t][k];
        rt->keep = run->keeps[t][k];
        rt->dom = c->dom;
        vals[k].text = "";
        vals[k].null = true;
        if (!rt->need)
            continue;
        rng_init(&rt->r, stream_key(run->o->seed, tab->name, c->name, 0));
        rng_init(&rt->rn, stream_key(run->o->seed, tab->name, c->name, 1));
        rt->uuid_key = stream_key(run->o->seed, tab->name, c->name, 2);
        if (c->gen == G_REF) {
            rt->src = run->keeps[c->rtable][c->rcol];
            rt->dom = rt->src->n;
            if (rt->dom == 0 && rows > 0 && c->null_thr < ((uint64_t)1 << 53)) {
                const struct seed_table *target = &s->t[c->rtable];
                rc = err_set(e, PE_CONFIG, &c->pos,
                             "column '%s.%s' refers to '%s.%s', which has no %s", tab->name,
                             c->name, target->name, target->cols[c->rcol].name,
                             seed_rows_for(s, c->rtable, run->o) ? "non-NULL values" : "rows");
                err_hint(e, "give table '%s' rows, or allow NULLs here with 'nulls: 1'",
                         target->name);
                goto out;
            }
        }
        if (c->unique && c->indexed && c->null_thr == 0 && (uint64_t)rows > rt->dom) {
            if (c->gen == G_REF)
                rc = err_set(e, PE_CONFIG, &c->upos,
                             "column '%s.%s' is unique, but '%s.%s' has only %llu values to "
                             "refer to and %lld rows were asked",
                             tab->name, c->name, s->t[c->rtable].name,
                             s->t[c->rtable].cols[c->rcol].name, (unsigned long long)rt->dom, rows);
            else
                rc = err_set(e, PE_CONFIG, &c->upos,
                             "column '%s.%s' is unique, but %s can produce only %llu distinct "
                             "values and %lld rows were asked",
                             tab->name, c->name, seed_gen_names[c->gen],
                             (unsigned long long)rt->dom, rows);
            goto out;
        }
        if (c->gen == G_SEQUENCE && rows > 1) {
            long long last;
            if (__builtin_mul_overflow(rows - 1, c->step, &last) ||
                __builtin_add_overflow(last, c->start, &last)) {
                rc = err_set(e, PE_CONFIG, &c->pos,
                             "column '%s.%s': the sequence overflows 64 bits within %lld rows",
                             tab->name, c->name, rows);
                goto out;
            }
        }
        bool by_construction =
            c->gen == G_SEQUENCE || c->gen == G_UUID || (c->gen == G_EMAIL && c->safe_suffix);
        if (c->unique && !by_construction)
            uset_init(&rt->u, c->indexed ? rt->dom : SEED_DOM_INF, rows);
    }
    if (emit && (rc = sink->begin(sink->ctx, s, t, rows, e)))
        goto out;
    for (long long row = 0; row < rows; row++) {
        if ((row & (CANCEL_EVERY - 1)) == 0 && row && run->o->cancel && *run->o->cancel) {
            rc = err_set(e, PE_CANCELED, NULL, "canceled while generating table '%s'", tab->name);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            size_t k = tab->corder[i];
            if (!rts[k].need)
                continue;
            if ((rc = render(run, &rts[k], rts, vals, k, row))) {
                if (rc == PE_LIMIT)
                    err_prefix(e, "column '%s.%s': ", tab->name, rts[k].c->name);
                goto out;
            }
        }
        if (emit && (rc = sink->row(sink->ctx, vals, n, e)))
            goto out;
        for (size_t k = 0; k < n; k++)
            if (rts[k].keep && !vals[k].null &&
                (rc = keep_add(rts[k].keep, vals[k].text, vals[k].len, e))) {
                err_prefix(e, "column '%s.%s': ", tab->name, rts[k].c->name);
                goto out;
            }
    }
    if (emit)
        rc = sink->end(sink->ctx, e);
out:
    for (size_t k = 0; k < n; k++) {
        free(rts[k].buf);
        uset_release(&rts[k].u);
        smap_release(&rts[k].sfx);
    }
    free(rts);
    free(vals);
    return rc;
}

int seed_generate(const struct seed_schema *s, const struct seed_opts *o,
                  const struct seed_sink *sink, struct err *e)
{
    static const struct seed_opts none = {0};
    if (!o)
        o = &none;
    int rc = check_opts(s, o, e);
    if (rc)
        return rc;
    struct run run = {.s = s, .o = o, .e = e};
    plan_run(&run);
    for (size_t oi = 0; oi < s->n && !rc; oi++) {
        size_t t = s->order[oi];
        bool any = false;
        for (size_t c = 0; c < s->t[t].ncols; c++)
            any = any || run.need[t][c];
        if (any)
            rc = run_table(&run, t, sink);
    }
    run_release(&run);
    return rc;
}

uint64_t seed_of_name(const char *name)
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}
