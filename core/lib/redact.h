/* redact: masks personal data in text as it streams past — email addresses
 * become "[email]", IPv4 and IPv6 addresses "[ip]". The supervisor runs a
 * replica's output through it in stages marked `pii: redact`, so nothing
 * personal reaches the log on disk.
 *
 * Work is done line by line: a line split across reads is kept until its
 * newline arrives. The line buffer is bounded (REDACT_LINE_MAX): an over-long
 * line is masked and passed on in pieces, cut after the last character that
 * cannot be part of an address (a blank, a quote, a comma...) where there is
 * one, so that an address is not cut in two. It recognises addresses by
 * shape only; it does not know what a host name or a user name is, so those
 * pass unmasked. */
#ifndef PRENV_REDACT_H
#define PRENV_REDACT_H

#include <stddef.h>

struct sb;

#define REDACT_LINE_MAX 8192

/* Where masked text goes: called with complete lines (newline included) or
 * pieces of an over-long or unterminated line. */
typedef void (*redact_emit_fn)(void *ctx, const char *p, size_t n);

struct redact {
    redact_emit_fn emit;
    void *ctx;
    size_t len;
    char buf[REDACT_LINE_MAX];
};

void redact_init(struct redact *r, redact_emit_fn emit, void *ctx);
/* redact_feed: take n bytes of output; emits every line they complete. */
void redact_feed(struct redact *r, const char *p, size_t n);
/* redact_flush: emit what is held of an unterminated line (masked). */
void redact_flush(struct redact *r);
/* redact_line: append p[0..n) to out with addresses masked. */
void redact_line(struct sb *out, const char *p, size_t n);

#endif
