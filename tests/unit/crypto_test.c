/* Unit tests for core/lib/crypto: SHA-256 and HMAC-SHA256 on both
 * implementations (the SHA extensions where the CPU has them, and the
 * portable fallback forced), against the FIPS 180-4 and RFC 4231 vectors,
 * GitHub's published webhook vector, and mbedTLS on every length around the
 * block boundaries, unaligned inputs, long keys and files. */
#include "core/lib/crypto.h"
#include "core/lib/xalloc.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(crypto);

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)rnd();
}

static void tohex(const unsigned char d[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* the implementations to test: the portable one always, SHA-NI when the CPU
 * has it. Returns how many (1 or 2); impls[i] is the force_portable flag. */
static int implementations(bool impls[2])
{
    int n = 0;
    crypto_sha256_force_portable(false);
    if (!strcmp(crypto_sha256_impl(), "sha-ni"))
        impls[n++] = false;
    impls[n++] = true;
    return n;
}

static void use(bool portable)
{
    crypto_sha256_force_portable(portable);
    cr_assert_str_eq(crypto_sha256_impl(), portable ? "portable" : "sha-ni");
}

Test(crypto, fips_180_4_vectors_hold_on_every_implementation)
{
    static const struct {
        const char *msg;
        const char *digest;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
         "m"
         "nopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char *million = xmalloc(1000000);
    memset(million, 'a', 1000000);
    bool impls[2];
    int n = implementations(impls);
    for (int k = 0; k < n; k++) {
        use(impls[k]);
        char hex[65];
        for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
            crypto_sha256_hex(v[i].msg, strlen(v[i].msg), hex);
            cr_assert_str_eq(hex, v[i].digest, "%s: vector %zu", crypto_sha256_impl(), i);
        }
        crypto_sha256_hex(million, 1000000, hex);
        cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
                         "%s: a million 'a'", crypto_sha256_impl());
        crypto_sha256_hex(NULL, 0, hex);
        cr_assert_str_eq(hex, v[0].digest);
    }
    free(million);
}

Test(crypto, sha256_agrees_with_mbedtls_on_every_length_and_alignment)
{
    enum { MAX = 10000 };
    unsigned char *buf = xmalloc(MAX + 16);
    fill(buf, MAX + 16);
    bool impls[2];
    int n = implementations(impls);
    for (int k = 0; k < n; k++) {
        use(impls[k]);
        /* every length up to 300 (the block boundaries 55, 56, 63, 64, 119,
         * 120, 127, 128...), then random ones up to 10,000, each at an odd
         * address too */
        for (size_t len = 0; len <= MAX; len = len < 300 ? len + 1 : len + 1 + rnd() % 97) {
            for (size_t off = 0; off < 2; off++) {
                const unsigned char *p = buf + off * (1 + len % 15);
                unsigned char want[32], got[32];
                mbedtls_sha256_ret(p, len, want, 0);
                crypto_sha256(p, len, got);
                cr_assert_arr_eq(got, want, 32, "%s: length %zu, offset %zu", crypto_sha256_impl(),
                                 len, off);
            }
        }
    }
    free(buf);
}

Test(crypto, hmac_matches_rfc_4231_and_githubs_published_vector)
{
    static const struct {
        const char *key, *data, *mac;
        size_t klen;
    } v[] = {
        /* RFC 4231 test case 1 (key: 20 bytes 0x0b) and 2 */
        {"\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b",
         "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 20},
        {"Jefe", "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 4},
        /* the example in GitHub's "Validating webhook deliveries" */
        {"It's a Secret to Everybody", "Hello, World!",
         "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", 26},
    };
    /* RFC 4231 test case 6: a 131-byte key, hashed first */
    unsigned char longkey[131];
    memset(longkey, 0xaa, sizeof longkey);
    const char *tc6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    bool impls[2];
    int n = implementations(impls);
    for (int k = 0; k < n; k++) {
        use(impls[k]);
        unsigned char mac[32];
        char hex[65];
        for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
            crypto_hmac_sha256(v[i].key, v[i].klen, v[i].data, strlen(v[i].data), mac);
            tohex(mac, hex);
            cr_assert_str_eq(hex, v[i].mac, "%s: vector %zu", crypto_sha256_impl(), i);
        }
        crypto_hmac_sha256(longkey, sizeof longkey, tc6, strlen(tc6), mac);
        tohex(mac, hex);
        cr_assert_str_eq(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                         "%s: a 131-byte key", crypto_sha256_impl());
    }
}

Test(crypto, hmac_agrees_with_mbedtls_for_keys_and_bodies_of_every_size)
{
    enum { MAX = 10000 };
    unsigned char *data = xmalloc(MAX + 1), key[300];
    fill(data, MAX + 1);
    fill(key, sizeof key);
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    static const size_t klens[] = {0, 1, 26, 31, 32, 55, 56, 63, 64, 65, 100, 128, 129, 200, 300};
    static const size_t dlens[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 4095, 4096};
    bool impls[2];
    int n = implementations(impls);
    for (int k = 0; k < n; k++) {
        use(impls[k]);
        for (size_t i = 0; i < sizeof klens / sizeof *klens; i++) {
            for (size_t j = 0; j < sizeof dlens / sizeof *dlens + 40; j++) {
                size_t dl = j < sizeof dlens / sizeof *dlens ? dlens[j] : rnd() % (MAX + 1);
                const unsigned char *d = data + (j & 1); /* odd addresses too */
                if (dl > MAX)
                    dl = MAX;
                unsigned char want[32], got[32];
                cr_assert_eq(mbedtls_md_hmac(md, key, klens[i], d, dl, want), 0);
                crypto_hmac_sha256(key, klens[i], d, dl, got);
                cr_assert_arr_eq(got, want, 32, "%s: key %zu bytes, data %zu bytes",
                                 crypto_sha256_impl(), klens[i], dl);
            }
        }
    }
    free(data);
}

Test(crypto, file_digests_agree_across_read_boundaries)
{
    static const size_t sizes[] = {0, 1, 64, 65535, 65536, 65537, 131072 + 63, 200001};
    char path[] = "/tmp/prenv-test-crypto-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    unsigned char *buf = xmalloc(200001);
    fill(buf, 200001);
    bool impls[2];
    int n = implementations(impls);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(buf, 1, sizes[i], f), sizes[i]);
        fclose(f);
        unsigned char want[32];
        char wanthex[65], got[65];
        mbedtls_sha256_ret(buf, sizes[i], want, 0);
        tohex(want, wanthex);
        for (int k = 0; k < n; k++) {
            use(impls[k]);
            cr_assert_eq(crypto_sha256_file(path, got), 0);
            cr_assert_str_eq(got, wanthex, "%s: %zu bytes", crypto_sha256_impl(), sizes[i]);
        }
    }
    unlink(path);
    cr_assert_eq(crypto_sha256_file(path, (char[65]){0}), -ENOENT);
    free(buf);
}
