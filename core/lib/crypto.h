/* crypto: SHA-256, HMAC-SHA256 and randomness. SHA-256 runs on the CPU's SHA
 * extensions (x86 SHA-NI) where it has them and on mbedTLS's portable code
 * elsewhere; the choice is made once, at first use. Secrets encryption (the
 * Pulumi-compatible v1 format) builds on mbedTLS in envs/. */
#ifndef PRENV_CRYPTO_H
#define PRENV_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

/* crypto_sha256: the digest of len bytes of data into out. */
void crypto_sha256(const void *data, size_t len, unsigned char out[32]);
/* crypto_sha256_hex: lowercase hex digest into out (65 bytes). */
void crypto_sha256_hex(const void *data, size_t len, char out[65]);
/* crypto_sha256_file: digest of a file's content; 0 or -errno. */
int crypto_sha256_file(const char *path, char out[65]);
/* crypto_hmac_sha256: HMAC-SHA256 (RFC 2104) of len bytes of data under a
 * key of klen bytes (any length; longer than 64 bytes is hashed first). */
void crypto_hmac_sha256(const void *key, size_t klen, const void *data, size_t len,
                        unsigned char out[32]);

/* crypto_sha256_impl: the SHA-256 in use, "sha-ni" or "portable". */
const char *crypto_sha256_impl(void);
/* crypto_sha256_force_portable: true makes every later hash use the portable
 * code even where the CPU has SHA extensions; false goes back to the fastest.
 * For tests and measurements: call it while no other thread hashes. The
 * environment variable PRENV_SHA256_PORTABLE=1 does the same at start. */
void crypto_sha256_force_portable(bool on);

/* crypto_random: bytes from the kernel's CSPRNG (getrandom); 0 or -errno. */
int crypto_random(void *buf, size_t len);

#endif
