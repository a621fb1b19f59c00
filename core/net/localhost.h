/* localhost: "localhost" and names under ".localhost" mean the loopback
 * address without asking /etc/hosts or DNS (RFC 6761, section 6.3), so a
 * static prenv in an empty root file system still reaches
 * postgres://localhost/... or http://localhost:8080/.
 *
 * The static build sends every getaddrinfo() call in the binary (libpq's,
 * libgit2's, libuv's) through net_getaddrinfo by linking with
 * -Wl,--wrap=getaddrinfo; libcurl already answers "localhost" itself. The
 * dynamic build leaves name lookups to the system.
 *
 * What it leaves to others: every other name (the libc's resolver). */
#ifndef PRENV_LOCALHOST_H
#define PRENV_LOCALHOST_H

#include <stdbool.h>

struct addrinfo;

/* net_is_localhost: "localhost", "LOCALHOST.", "db.localhost" */
bool net_is_localhost(const char *name);
/* net_getaddrinfo: getaddrinfo(), except that a localhost name is looked up
 * as the numeric address 127.0.0.1 (::1 when hints ask for AF_INET6); the
 * result is freed with freeaddrinfo() as usual. */
int net_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res);

#endif
