/* crypto: hashing and randomness through mbedTLS. Secrets encryption (the
 * Pulumi-compatible v1 format) builds on this in envs/. */
#ifndef PRENV_CRYPTO_H
#define PRENV_CRYPTO_H

#include <stddef.h>

/* crypto_sha256_hex: lowercase hex digest into out (65 bytes). */
void crypto_sha256_hex(const void *data, size_t len, char out[65]);
/* crypto_sha256_file: digest of a file's content; 0 or -errno. */
int crypto_sha256_file(const char *path, char out[65]);
/* crypto_random: bytes from the kernel's CSPRNG (getrandom); 0 or -errno. */
int crypto_random(void *buf, size_t len);

#endif
