/* crypto: SHA-256 (FIPS 180-4) on the x86 SHA extensions when the CPU has
 * them, else mbedTLS's portable code; HMAC-SHA256 (RFC 2104) on top; the
 * kernel CSPRNG. The SHA-NI path is only the compression function and the
 * padding; everything else (ciphers, signatures) is left to mbedTLS. */
#include "core/lib/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#define HAVE_SHA_NI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* ---- which implementation ---- */

enum { IMPL_UNKNOWN, IMPL_PORTABLE, IMPL_SHA_NI };

static int impl; /* read and written with __atomic builtins: threads may hash at once */

static bool cpu_has_sha_ni(void)
{
#ifdef HAVE_SHA_NI
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    if (!(c & (1u << 9)) || !(c & (1u << 19))) /* SSSE3, SSE4.1 */
        return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    return (b >> 29) & 1; /* SHA */
#else
    return false;
#endif
}

static int impl_get(void)
{
    int v = __atomic_load_n(&impl, __ATOMIC_RELAXED);
    if (v != IMPL_UNKNOWN)
        return v;
    const char *env = getenv("PRENV_SHA256_PORTABLE");
    bool portable = env && *env && strcmp(env, "0") != 0;
    v = !portable && cpu_has_sha_ni() ? IMPL_SHA_NI : IMPL_PORTABLE;
    __atomic_store_n(&impl, v, __ATOMIC_RELAXED);
    return v;
}

const char *crypto_sha256_impl(void)
{
    return impl_get() == IMPL_SHA_NI ? "sha-ni" : "portable";
}

void crypto_sha256_force_portable(bool on)
{
    int v = !on && cpu_has_sha_ni() ? IMPL_SHA_NI : IMPL_PORTABLE;
    __atomic_store_n(&impl, v, __ATOMIC_RELAXED);
}

/* ---- SHA-256 on the SHA extensions ---- */

#ifdef HAVE_SHA_NI
static const _Alignas(16) uint32_t round_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Four rounds: W[4i..4i+3] + K[4i..4i+3], two rounds per SHA256RNDS2 (which
 * reads the low two words of its third operand). s0 holds A,B,E,F and s1
 * C,D,G,H (high word first); each SHA256RNDS2 leaves the new A,B,E,F in its
 * first operand, and the old A,B,E,F are the new C,D,G,H, so the two
 * registers trade roles every two rounds and are back after four. */
#define NI_ROUNDS4(i, m)                                                                           \
    do {                                                                                           \
        __m128i wk_ = _mm_add_epi32((m), _mm_load_si128((const __m128i *)&round_k[4 * (i)]));      \
        s1 = _mm_sha256rnds2_epu32(s1, s0, wk_);                                                   \
        s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(wk_, 0x0E));                          \
    } while (0)

/* The message schedule, four words at a time: m0 = W[t-16..t-13] becomes
 * W[t..t+3] = sigma1(W[t-2]) + W[t-7] + sigma0(W[t-15]) + W[t-16], with
 * m1 = W[t-12..t-9], m2 = W[t-8..t-5] and m3 = W[t-4..t-1]. SHA256MSG1 adds
 * sigma0 of the next words, the byte shift brings W[t-7..t-4], SHA256MSG2
 * adds sigma1 of the two words before each. */
#define NI_SCHEDULE(m0, m1, m2, m3)                                                                \
    (m0) = _mm_sha256msg2_epu32(                                                                   \
        _mm_add_epi32(_mm_sha256msg1_epu32((m0), (m1)), _mm_alignr_epi8((m3), (m2), 4)), (m3))

__attribute__((target("sha,sse4.1"))) static void
sha256_ni_blocks(uint32_t h[8], const unsigned char *p, size_t nblocks)
{
    /* big-endian words: reverse the bytes of each 32-bit lane */
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    /* h[0..3] = a b c d and h[4..7] = e f g h, low word first, into
     * s0 = (a b e f) and s1 = (c d g h), high word first */
    __m128i t0 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* c d a b */
    __m128i t1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* e f g h */
    __m128i s0 = _mm_alignr_epi8(t0, t1, 8);                                       /* a b e f */
    __m128i s1 = _mm_blend_epi16(t1, t0, 0xF0);                                    /* c d g h */
    while (nblocks--) {
        __m128i save0 = s0, save1 = s1;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), bswap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);
        NI_ROUNDS4(0, m0);
        NI_ROUNDS4(1, m1);
        NI_ROUNDS4(2, m2);
        NI_ROUNDS4(3, m3);
        for (int i = 4; i < 16; i += 4) {
            NI_SCHEDULE(m0, m1, m2, m3);
            NI_ROUNDS4(i, m0);
            NI_SCHEDULE(m1, m2, m3, m0);
            NI_ROUNDS4(i + 1, m1);
            NI_SCHEDULE(m2, m3, m0, m1);
            NI_ROUNDS4(i + 2, m2);
            NI_SCHEDULE(m3, m0, m1, m2);
            NI_ROUNDS4(i + 3, m3);
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
        p += 64;
    }
    t0 = _mm_shuffle_epi32(s0, 0x1B);                                  /* f e b a */
    t1 = _mm_shuffle_epi32(s1, 0xB1);                                  /* d c h g */
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(t0, t1, 0xF0)); /* a b c d */
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(t1, t0, 8));    /* e f g h */
}
#else
static void sha256_ni_blocks(uint32_t h[8], const unsigned char *p, size_t nblocks)
{
    (void)h;
    (void)p;
    (void)nblocks;
    abort(); /* never chosen without the extensions */
}
#endif

/* ---- streaming SHA-256 over either implementation ---- */

struct sha256 {
    bool ni;
    union {
        mbedtls_sha256_context mb;
        struct {
            uint32_t h[8];
            uint64_t total; /* bytes */
            unsigned char buf[64];
            size_t n;
        } x;
    } u;
};

static void sha_init(struct sha256 *s)
{
    s->ni = impl_get() == IMPL_SHA_NI;
    if (!s->ni) {
        mbedtls_sha256_init(&s->u.mb);
        mbedtls_sha256_starts_ret(&s->u.mb, 0);
        return;
    }
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->u.x.h, h0, sizeof h0);
    s->u.x.total = 0;
    s->u.x.n = 0;
}

static void sha_update(struct sha256 *s, const void *data, size_t len)
{
    if (!len)
        return; /* data may be NULL */
    if (!s->ni) {
        mbedtls_sha256_update_ret(&s->u.mb, data, len);
        return;
    }
    const unsigned char *p = data;
    s->u.x.total += len;
    if (s->u.x.n) {
        size_t take = 64 - s->u.x.n < len ? 64 - s->u.x.n : len;
        memcpy(s->u.x.buf + s->u.x.n, p, take);
        s->u.x.n += take;
        p += take;
        len -= take;
        if (s->u.x.n < 64)
            return;
        sha256_ni_blocks(s->u.x.h, s->u.x.buf, 1);
        s->u.x.n = 0;
    }
    if (len >= 64) {
        sha256_ni_blocks(s->u.x.h, p, len / 64);
        p += len & ~(size_t)63;
        len &= 63;
    }
    if (len) {
        memcpy(s->u.x.buf, p, len);
        s->u.x.n = len;
    }
}

static void sha_final(struct sha256 *s, unsigned char out[32])
{
    if (!s->ni) {
        mbedtls_sha256_finish_ret(&s->u.mb, out);
        mbedtls_sha256_free(&s->u.mb);
        return;
    }
    uint64_t bits = s->u.x.total * 8;
    unsigned char *b = s->u.x.buf;
    size_t n = s->u.x.n;
    b[n++] = 0x80;
    if (n > 56) {
        memset(b + n, 0, 64 - n);
        sha256_ni_blocks(s->u.x.h, b, 1);
        n = 0;
    }
    memset(b + n, 0, 56 - n);
    for (int i = 0; i < 8; i++)
        b[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_ni_blocks(s->u.x.h, b, 1);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->u.x.h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->u.x.h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->u.x.h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->u.x.h[i];
    }
}

/* ---- the API ---- */

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

void crypto_sha256(const void *data, size_t len, unsigned char out[32])
{
    struct sha256 s;
    sha_init(&s);
    sha_update(&s, data, len);
    sha_final(&s, out);
}

void crypto_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
    crypto_sha256(data, len, d);
    hex(d, 32, out);
}

int crypto_sha256_file(const char *path, char out[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct sha256 s;
    sha_init(&s);
    unsigned char buf[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (!n)
            break;
        sha_update(&s, buf, (size_t)n);
    }
    close(fd);
    unsigned char d[32];
    sha_final(&s, d);
    if (!rc)
        hex(d, 32, out);
    return rc;
}

void crypto_hmac_sha256(const void *key, size_t klen, const void *data, size_t len,
                        unsigned char out[32])
{
    unsigned char k[64] = {0}, pad[64], inner[32];
    if (klen > 64)
        crypto_sha256(key, klen, k);
    else if (klen)
        memcpy(k, key, klen);
    struct sha256 s;
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    sha_init(&s);
    sha_update(&s, pad, 64);
    sha_update(&s, data, len);
    sha_final(&s, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    sha_init(&s);
    sha_update(&s, pad, 64);
    sha_update(&s, inner, 32);
    sha_final(&s, out);
    /* the key does not outlive the call on the stack */
    volatile unsigned char *vk = k, *vp = pad;
    for (int i = 0; i < 64; i++)
        vk[i] = vp[i] = 0;
}

int crypto_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
