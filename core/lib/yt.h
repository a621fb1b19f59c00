/* yt: YAML text to a val tree through libyaml, with a position on every node.
 * Plain scalars resolve by the YAML 1.2 core schema (null, true/false, ints,
 * floats); quoted scalars are strings; `!!str` forces a string. Duplicate keys,
 * non-string keys, more than one document, nesting deeper than 64 and alias
 * expansion beyond a budget are errors that point at the input.
 * A one-key map {secure: "v1:..."} becomes an encrypted secret string. */
#ifndef PRENV_YT_H
#define PRENV_YT_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#define YT_MAX_FILE ((size_t)16 << 20)

/* yt_parse: parse src's text; *out is a new tree the caller frees (VAL_NULL for
 * an empty document). */
int yt_parse(struct val **out, const struct src *src, struct err *e);
/* yt_load: read and parse a file; display is the name shown in errors. */
int yt_load(struct val **out, const char *path, const char *display, struct err *e);
/* yt_scalar: resolve one plain scalar by the core schema (for --set K=V). */
struct val *yt_scalar(const char *text, const struct pos *pos);

#endif
