/* schema: checks for user-written maps: unknown keys with a did-you-mean,
 * expected kinds, and typed getters that report errors at the value. */
#ifndef PRENV_SCHEMA_H
#define PRENV_SCHEMA_H

#include "core/lib/err.h"
#include "core/lib/val.h"

/* schema_map: v must be a map (what names it: "'stages.dev'"). */
int schema_map(const struct val *v, const char *what, struct err *e);
/* schema_keys: every key of map is in allowed (NULL-terminated). */
int schema_keys(const struct val *map, const char *const *allowed, const char *what,
                struct err *e);
/* schema_kind: v has kind k; the message names key. */
int schema_kind(const struct val *v, enum val_kind k, const char *key, struct err *e);
/* Typed members: absent is fine (out untouched), wrong kind is an error. */
int schema_str(const struct val *map, const char *key, const char **out, struct err *e);
int schema_bool(const struct val *map, const char *key, bool *out, struct err *e);
int schema_int(const struct val *map, const char *key, long long lo, long long hi,
               long long *out, struct err *e);
int schema_duration(const struct val *map, const char *key, long long *ms, struct err *e);

#endif
