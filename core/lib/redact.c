/* redact: email and IP address masking for captured service output; see
 * redact.h. Matching is by hand-written scanners rather than regex(3): they
 * run on every line a service prints, and must not depend on the locale. */
#include "core/lib/redact.h"

#include "core/lib/sb.h"

#include <stdbool.h>
#include <string.h>

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_alpha(c) || is_digit(c);
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_word(char c)
{
    return is_alnum(c) || c == '_';
}

static bool is_local(char c)
{
    return is_alnum(c) || (c && strchr("._%+-", c));
}

/* ---- emails ---- */

/* domain_end: where a domain starting at p[i] ends, or i when there is none:
 * labels of letters, digits and '-', at least two, the last all letters (2+) */
static size_t domain_end(const char *p, size_t i, size_t n)
{
    size_t r = i;
    while (r < n && (is_alnum(p[r]) || p[r] == '-' || p[r] == '.'))
        r++;
    while (r > i && (p[r - 1] == '.' || p[r - 1] == '-'))
        r--;
    size_t dots = 0, label = 0, tld = 0;
    bool tld_alpha = true;
    for (size_t k = i; k < r; k++) {
        if (p[k] == '.') {
            if (!label)
                return i; /* empty label */
            dots++;
            label = 0;
            tld = 0;
            tld_alpha = true;
        } else {
            label++;
            tld++;
            tld_alpha = tld_alpha && is_alpha(p[k]);
        }
    }
    if (!dots || tld < 2 || !tld_alpha)
        return i;
    return r;
}

static void mask_emails(struct sb *out, const char *p, size_t n)
{
    size_t copied = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '@')
            continue;
        size_t l = i;
        while (l > copied && is_local(p[l - 1]))
            l--;
        while (l < i && p[l] == '.')
            l++;
        size_t r = domain_end(p, i + 1, n);
        if (l == i || r == i + 1)
            continue;
        sb_add(out, p + copied, l - copied);
        sb_adds(out, "[email]");
        copied = r;
        i = r - 1;
    }
    sb_add(out, p + copied, n - copied);
}

/* ---- IP addresses ---- */

/* ipv4_valid: p[0..n) is exactly a dotted quad, each part 0-255 */
static bool ipv4_valid(const char *p, size_t n)
{
    int parts = 0;
    size_t k = 0;
    while (k < n) {
        size_t d = 0;
        int v = 0;
        while (k < n && is_digit(p[k]) && d < 4) {
            v = v * 10 + (p[k] - '0');
            k++;
            d++;
        }
        if (d == 0 || d > 3 || v > 255)
            return false;
        parts++;
        if (k == n)
            break;
        if (p[k] != '.' || parts == 4)
            return false;
        k++;
        if (k == n)
            return false;
    }
    return parts == 4;
}

/* ipv6_valid: p[0..n) is exactly an IPv6 address: eight groups, or fewer
 * around one "::", the last two may be a dotted quad */
static bool ipv6_valid(const char *p, size_t n)
{
    int groups = 0;
    bool gap = false;
    size_t k = 0;
    if (n >= 2 && p[0] == ':' && p[1] == ':') {
        gap = true;
        k = 2;
        if (k == n)
            return true; /* "::" */
    } else if (n && p[0] == ':') {
        return false;
    }
    while (k < n) {
        size_t s = k;
        while (k < n && is_hex(p[k]))
            k++;
        if (k < n && p[k] == '.') { /* a trailing IPv4 part: the last two groups */
            if (!ipv4_valid(p + s, n - s))
                return false;
            groups += 2;
            k = n;
            break;
        }
        if (k == s || k - s > 4)
            return false;
        groups++;
        if (k == n)
            break;
        if (p[k] != ':')
            return false;
        k++;
        if (k < n && p[k] == ':') {
            if (gap)
                return false;
            gap = true;
            k++;
            if (k == n)
                break;
        } else if (k == n) {
            return false; /* a single trailing ':' */
        }
    }
    return gap ? groups <= 7 : groups == 8;
}

static bool is_ipchar(char c)
{
    return is_hex(c) || c == ':' || c == '.';
}

/* ip_at: the length of an IP address starting at p[i], 0 if none */
static size_t ip_at(const char *p, size_t i, size_t n)
{
    if (i > 0 && (is_word(p[i - 1]) || p[i - 1] == '.'))
        return 0;
    /* after a ':' only an IPv4 address may start (ip:10.0.0.1): inside a
     * run of groups, 1:2:3:4:5:6:7:8:9 would otherwise match at its '2' */
    bool v4only = i > 0 && p[i - 1] == ':';
    size_t r = i;
    bool colon = false, digit = false;
    while (r < n && (v4only ? is_digit(p[r]) || p[r] == '.' : is_ipchar(p[r]))) {
        colon = colon || p[r] == ':';
        digit = digit || is_digit(p[r]);
        r++;
    }
    if (!digit || (r < n && is_word(p[r])))
        return 0;
    if (colon) {
        for (size_t e = r; e > i + 1; e--) {
            if (ipv6_valid(p + i, e - i))
                return e - i;
            if (p[e - 1] != ':' && p[e - 1] != '.')
                break;
        }
        /* an IPv4 address with a port: 10.0.0.1:8080 */
        size_t c = i;
        while (c < r && p[c] != ':')
            c++;
        return c > i && ipv4_valid(p + i, c - i) ? c - i : 0;
    }
    /* a sentence may end right after the address; 1.2.3.4.5 is not one */
    size_t e = r;
    if (e > i && p[e - 1] == '.')
        e--;
    return ipv4_valid(p + i, e - i) ? e - i : 0;
}

static void mask_ips(struct sb *out, const char *p, size_t n)
{
    size_t copied = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_ipchar(p[i]))
            continue;
        size_t m = ip_at(p, i, n);
        if (!m)
            continue;
        sb_add(out, p + copied, i - copied);
        sb_adds(out, "[ip]");
        copied = i + m;
        i = copied - 1;
    }
    sb_add(out, p + copied, n - copied);
}

void redact_line(struct sb *out, const char *p, size_t n)
{
    struct sb mid;
    sb_init(&mid);
    mask_emails(&mid, p, n);
    mask_ips(out, mid.buf, mid.len);
    sb_release(&mid);
}

/* ---- streaming ---- */

void redact_init(struct redact *r, redact_emit_fn emit, void *ctx)
{
    r->emit = emit;
    r->ctx = ctx;
    r->len = 0;
}

static void emit_masked(struct redact *r, const char *p, size_t n)
{
    struct sb b;
    sb_init(&b);
    redact_line(&b, p, n);
    if (b.len)
        r->emit(r->ctx, b.buf, b.len);
    sb_release(&b);
}

/* the buffer is full without a newline: pass on what ends at the last
 * character no address can hold (a blank, '"', ',', '=', '/'...), so no
 * address is cut in two, or all of it when there is none, and keep the rest */
static void spill(struct redact *r)
{
    size_t cut = r->len;
    while (cut > 0 &&
           (is_local(r->buf[cut - 1]) || r->buf[cut - 1] == '@' || r->buf[cut - 1] == ':'))
        cut--;
    if (cut == 0)
        cut = r->len;
    emit_masked(r, r->buf, cut);
    memmove(r->buf, r->buf + cut, r->len - cut);
    r->len -= cut;
}

void redact_feed(struct redact *r, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        if (r->len == 0 && nl && take <= sizeof r->buf) { /* a whole line: no copy */
            emit_masked(r, p, take);
            p += take;
            n -= take;
            continue;
        }
        size_t room = sizeof r->buf - r->len;
        size_t k = take < room ? take : room;
        memcpy(r->buf + r->len, p, k);
        r->len += k;
        p += k;
        n -= k;
        if (r->buf[r->len - 1] == '\n') {
            emit_masked(r, r->buf, r->len);
            r->len = 0;
        } else if (r->len == sizeof r->buf) {
            spill(r);
        }
    }
}

void redact_flush(struct redact *r)
{
    if (r->len)
        emit_masked(r, r->buf, r->len);
    r->len = 0;
}
