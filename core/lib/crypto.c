/* crypto: SHA-256 and the kernel CSPRNG. */
#include "core/lib/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <sys/random.h>
#include <unistd.h>

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

void crypto_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
    mbedtls_sha256_ret(data, len, d, 0);
    hex(d, 32, out);
}

int crypto_sha256_file(const char *path, char out[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    mbedtls_sha256_starts_ret(&ctx, 0);
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
        mbedtls_sha256_update_ret(&ctx, buf, (size_t)n);
    }
    close(fd);
    unsigned char d[32];
    mbedtls_sha256_finish_ret(&ctx, d);
    mbedtls_sha256_free(&ctx);
    if (!rc)
        hex(d, 32, out);
    return rc;
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
