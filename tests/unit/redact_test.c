/* Unit tests for core/lib/redact: what is masked, what is left alone, and
 * lines that arrive in pieces. */
#include "core/lib/redact.h"
#include "core/lib/sb.h"

#include <criterion/criterion.h>
#include <string.h>

static char *mask(const char *s)
{
    struct sb b;
    sb_init(&b);
    redact_line(&b, s, strlen(s));
    return sb_steal(&b);
}

#define MASKS(in, want)                                                                            \
    do {                                                                                           \
        char *got_ = mask(in);                                                                     \
        cr_expect_str_eq(got_, want, "masking \"%s\"", in);                                        \
        free(got_);                                                                                \
    } while (0)

Test(redact, emails_are_masked_with_the_text_around_them_kept)
{
    MASKS("user alice@example.com signed in", "user [email] signed in");
    MASKS("<bob.smith+tag@mail.example.co.uk>", "<[email]>");
    MASKS("to=a_b-c%d@x-y.io, cc=z@q.org.", "to=[email], cc=[email].");
    MASKS("alice@example.com", "[email]");
}

Test(redact, things_that_only_look_like_emails_are_left_alone)
{
    MASKS("@mention and foo@ and @bar.com", "@mention and foo@ and @bar.com");
    MASKS("user@localhost", "user@localhost");
    MASKS("pkg@1.2.3", "pkg@1.2.3");
    MASKS("a@b.c", "a@b.c"); /* one-letter top-level domain */
}

Test(redact, ipv4_addresses_are_masked_including_with_ports_and_at_sentence_end)
{
    MASKS("from 10.0.0.1 port 22", "from [ip] port 22");
    MASKS("client=192.168.1.254:8080", "client=[ip]:8080");
    MASKS("[127.0.0.1]", "[[ip]]");
    MASKS("peer 255.255.255.255.", "peer [ip].");
    MASKS("ip:8.8.8.8", "ip:[ip]");
    MASKS("0.0.0.0", "[ip]");
}

Test(redact, version_numbers_and_other_dotted_numbers_are_not_ips)
{
    MASKS("prenv 1.2.3 starting", "prenv 1.2.3 starting");
    MASKS("v1.2.3.4 build", "v1.2.3.4 build");
    MASKS("1.2.3.4.5", "1.2.3.4.5");
    MASKS("256.1.1.1 and 1.2.3.1000", "256.1.1.1 and 1.2.3.1000");
    MASKS("took 1.5s, 3.14159", "took 1.5s, 3.14159");
    MASKS("10.0.0.1a", "10.0.0.1a");
}

Test(redact, ipv6_addresses_in_full_and_compressed_forms_are_masked)
{
    MASKS("listening on ::1", "listening on [ip]");
    MASKS("[::1]:8080", "[[ip]]:8080");
    MASKS("from 2001:db8::8a2e:370:7334 ok", "from [ip] ok");
    MASKS("2001:0db8:0000:0000:0000:ff00:0042:8329", "[ip]");
    MASKS("fe80::1%eth0", "[ip]%eth0");
    MASKS("::ffff:192.0.2.128", "[ip]");
    MASKS("addr=1::, next", "addr=[ip], next");
    MASKS("host ::1.", "host [ip].");
    MASKS("FE80::ABCD:12", "[ip]");
}

Test(redact, times_macs_and_scoped_names_are_not_ipv6)
{
    MASKS("at 06:26:30.123 done", "at 06:26:30.123 done");
    MASKS("mac aa:bb:cc:dd:ee:ff", "mac aa:bb:cc:dd:ee:ff");
    MASKS("std::vector and a::b", "std::vector and a::b");
    MASKS("1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8:9");
    MASKS("1::2::3", "1::2::3");
    MASKS("12345::1", "12345::1");
    MASKS(":::", ":::");
}

Test(redact, an_email_with_an_ip_domain_keeps_its_local_part)
{
    MASKS("root@10.1.2.3 logged in", "root@[ip] logged in");
}

struct sink {
    struct sb b;
    int calls;
};

static void sink_emit(void *ctx, const char *p, size_t n)
{
    struct sink *s = ctx;
    sb_add(&s->b, p, n);
    s->calls++;
}

Test(redact, a_line_split_across_reads_is_masked_whole)
{
    struct sink s = {0};
    sb_init(&s.b);
    struct redact *r = malloc(sizeof *r);
    redact_init(r, sink_emit, &s);
    const char *text = "mail alice@example.com from 192.168.10.20\nnext ::1 line\ntail 1.2.3.4";
    for (size_t i = 0; text[i]; i++) /* one byte at a time */
        redact_feed(r, text + i, 1);
    cr_expect_str_eq(s.b.buf, "mail [email] from [ip]\nnext [ip] line\n");
    redact_flush(r);
    cr_expect_str_eq(s.b.buf, "mail [email] from [ip]\nnext [ip] line\ntail [ip]");
    redact_flush(r); /* nothing held: no output */
    cr_expect_eq(s.calls, 3);
    free(r);
    sb_release(&s.b);
}

Test(redact, several_lines_in_one_read_are_each_masked)
{
    struct sink s = {0};
    sb_init(&s.b);
    struct redact *r = malloc(sizeof *r);
    redact_init(r, sink_emit, &s);
    const char *text = "a 10.0.0.1\nb x@y.com\npartial 10.0.";
    redact_feed(r, text, strlen(text));
    redact_feed(r, "0.2 end\n", 8);
    cr_expect_str_eq(s.b.buf, "a [ip]\nb [email]\npartial [ip] end\n");
    free(r);
    sb_release(&s.b);
}

Test(redact, an_over_long_line_is_passed_on_masked_in_pieces_cut_between_words)
{
    struct sink s = {0};
    sb_init(&s.b);
    struct redact *r = malloc(sizeof *r);
    redact_init(r, sink_emit, &s);
    struct sb in, want;
    sb_init(&in);
    sb_init(&want);
    /* ~3.5 buffers of "user@example.org 10.0.0.1 " words and no newline */
    while (in.len < REDACT_LINE_MAX * 3 + REDACT_LINE_MAX / 2) {
        sb_adds(&in, "user@example.org 10.0.0.1 ");
        sb_adds(&want, "[email] [ip] ");
    }
    sb_adds(&in, "\n");
    sb_adds(&want, "\n");
    for (size_t off = 0; off < in.len; off += 1000) {
        size_t k = in.len - off < 1000 ? in.len - off : 1000;
        redact_feed(r, in.buf + off, k);
    }
    cr_expect_gt(s.calls, 3, "passed on in pieces (%d)", s.calls);
    cr_expect_eq(s.b.len, want.len);
    cr_expect(s.b.len == want.len && !memcmp(s.b.buf, want.buf, want.len),
              "every address masked, none cut in two");
    sb_release(&in);
    sb_release(&want);
    free(r);
    sb_release(&s.b);
}

Test(redact, an_over_long_json_line_is_cut_between_values_not_inside_an_address)
{
    struct sink s = {0};
    sb_init(&s.b);
    struct redact *r = malloc(sizeof *r);
    redact_init(r, sink_emit, &s);
    struct sb in, want;
    sb_init(&in);
    sb_init(&want);
    sb_adds(&in, "[");
    sb_adds(&want, "[");
    while (in.len < REDACT_LINE_MAX * 2) {
        sb_adds(&in, "\"bob.jones@example.com\",\"fe80::1\",");
        sb_adds(&want, "\"[email]\",\"[ip]\",");
    }
    sb_adds(&in, "0]\n");
    sb_adds(&want, "0]\n");
    redact_feed(r, in.buf, in.len);
    cr_expect_gt(s.calls, 1);
    cr_expect(s.b.len == want.len && !memcmp(s.b.buf, want.buf, want.len), "%s", s.b.buf);
    sb_release(&in);
    sb_release(&want);
    free(r);
    sb_release(&s.b);
}

Test(redact, an_over_long_line_without_blanks_is_cut_at_the_buffer_size)
{
    struct sink s = {0};
    sb_init(&s.b);
    struct redact *r = malloc(sizeof *r);
    redact_init(r, sink_emit, &s);
    char *big = malloc(REDACT_LINE_MAX * 2 + 1);
    memset(big, 'x', REDACT_LINE_MAX * 2);
    big[REDACT_LINE_MAX * 2] = '\n';
    redact_feed(r, big, REDACT_LINE_MAX * 2 + 1);
    cr_expect_eq(s.b.len, (size_t)REDACT_LINE_MAX * 2 + 1);
    cr_expect_eq(s.calls, 3);
    free(big);
    free(r);
    sb_release(&s.b);
}
