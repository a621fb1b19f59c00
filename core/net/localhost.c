/* localhost: loopback names without /etc/hosts (see localhost.h). */
#include "core/net/localhost.h"

#include <netdb.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#ifdef PRENV_STATIC_BUILD
/* the libc's own, renamed by -Wl,--wrap=getaddrinfo */
int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
#define system_getaddrinfo __real_getaddrinfo

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    return net_getaddrinfo(node, service, hints, res);
}
#else
#define system_getaddrinfo getaddrinfo
#endif

bool net_is_localhost(const char *name)
{
    size_t n = strlen(name);
    if (n && name[n - 1] == '.')
        n--;
    static const char lh[] = "localhost";
    size_t l = sizeof lh - 1;
    if (n < l || strncasecmp(name + n - l, lh, l) != 0)
        return false;
    return n == l || name[n - l - 1] == '.';
}

int net_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res)
{
    if (!node || !net_is_localhost(node))
        return system_getaddrinfo(node, service, hints, res);
    struct addrinfo h = {0};
    if (hints)
        h = *hints;
    /* numeric: the libc answers without files or the network; no
     * AI_ADDRCONFIG: an empty network namespace has only loopback */
    h.ai_flags = (h.ai_flags | AI_NUMERICHOST) & ~AI_ADDRCONFIG;
    return system_getaddrinfo(h.ai_family == AF_INET6 ? "::1" : "127.0.0.1", service, &h, res);
}
