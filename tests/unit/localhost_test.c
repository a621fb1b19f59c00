/* Unit tests for core/net/localhost: loopback names resolve without
 * /etc/hosts or DNS, everything else goes to the libc untouched. */
#include "core/net/localhost.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

Test(localhost, names_under_localhost_are_loopback_names)
{
    cr_assert(net_is_localhost("localhost"));
    cr_assert(net_is_localhost("LocalHost"));
    cr_assert(net_is_localhost("localhost."));
    cr_assert(net_is_localhost("db.localhost"));
    cr_assert_not(net_is_localhost("notlocalhost"));
    cr_assert_not(net_is_localhost("localhost.example.com"));
    cr_assert_not(net_is_localhost("localhos"));
    cr_assert_not(net_is_localhost(""));
}

static void assert_first(const char *node, int family, const char *want_addr, int want_port)
{
    struct addrinfo hints = {
        .ai_family = family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int rc = net_getaddrinfo(node, "5432", &hints, &res);
    cr_assert_eq(rc, 0, "%s: %s", node, gai_strerror(rc));
    char buf[INET6_ADDRSTRLEN];
    int port;
    if (res->ai_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)res->ai_addr;
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        port = ntohs(a->sin_port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)res->ai_addr;
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        port = ntohs(a->sin6_port);
    }
    cr_assert_str_eq(buf, want_addr, "%s", node);
    cr_assert_eq(port, want_port);
    freeaddrinfo(res);
}

Test(localhost, localhost_is_the_loopback_address_and_other_names_pass_through)
{
    assert_first("localhost", AF_UNSPEC, "127.0.0.1", 5432);
    assert_first("api.localhost.", AF_INET, "127.0.0.1", 5432);
    assert_first("localhost", AF_INET6, "::1", 5432);
    assert_first("10.1.2.3", AF_UNSPEC, "10.1.2.3", 5432);
}
