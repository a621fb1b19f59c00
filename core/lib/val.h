/* val: prenv's typed value tree: what YAML files, config layers, template
 * properties, provider outputs and state all become. Every value carries the
 * position it came from, a secret flag that survives interpolation, and an
 * "unknown" kind for outputs not yet known at plan time.
 *
 * Maps keep insertion order and the position of each key. Lookups are linear:
 * maps in prenv are small. Nothing here does I/O. */
#ifndef PRENV_VAL_H
#define PRENV_VAL_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stddef.h>

struct sb;
struct cJSON;

enum val_kind { VAL_NULL, VAL_BOOL, VAL_INT, VAL_FLOAT, VAL_STR, VAL_LIST, VAL_MAP, VAL_UNKNOWN };

struct val_entry {
    char *key;
    struct pos kpos;
    struct val *v;
};

struct val {
    enum val_kind kind;
    unsigned secret : 1;    /* a secret, or derived from one: masked everywhere */
    unsigned quoted : 1;    /* a quoted YAML scalar (columns inside it are offset by one) */
    unsigned encrypted : 1; /* sealed: the plaintext is not here (see core/lib/seal.h):
                             * VAL_STR "v1:..." ciphertext of a string (config `secure:`),
                             * or of a value's JSON when sealed_json is set; VAL_LIST: the
                             * concatenation of its parts (text and sealed strings) */
    unsigned sealed_json : 1; /* with encrypted VAL_STR: the plaintext is JSON */
    struct pos pos;
    union {
        bool b;
        long long i;
        double f;
        struct {
            char *s; /* never NULL; for VAL_UNKNOWN: what it waits for, "db.path" */
            size_t len;
        } str;
        struct {
            struct val **v;
            size_t n, cap;
        } list;
        struct {
            struct val_entry *e;
            size_t n, cap;
        } map;
    } u;
};

/* Constructors: all return a new value the caller owns. pos may be NULL. */
struct val *val_null(const struct pos *pos);
struct val *val_bool(bool b, const struct pos *pos);
struct val *val_int(long long i, const struct pos *pos);
struct val *val_float(double f, const struct pos *pos);
struct val *val_str(const char *s, const struct pos *pos);
struct val *val_strn(const char *s, size_t n, const struct pos *pos);
/* val_str_own: takes ownership of s (malloc'd). */
struct val *val_str_own(char *s, const struct pos *pos);
struct val *val_list(const struct pos *pos);
struct val *val_map(const struct pos *pos);
struct val *val_unknown(const char *what);

void val_free(struct val *v);
struct val *val_clone(const struct val *v);

/* Lists and maps. push/set take ownership of item. */
void val_list_push(struct val *list, struct val *item);
void val_map_set(struct val *map, const char *key, const struct pos *kpos, struct val *item);
struct val *val_map_get(const struct val *map, const char *key);
const struct val_entry *val_map_entry(const struct val *map, const char *key);
/* val_map_take: remove key and return its value (caller owns), or NULL. */
struct val *val_map_take(struct val *map, const char *key);
/* val_get: a dotted path ("a.b.c") through nested maps; NULL if absent. */
struct val *val_get(const struct val *v, const char *path);

/* Typed access to a map member with a default when absent or of another kind. */
const char *val_map_str(const struct val *map, const char *key, const char *def);
long long val_map_int(const struct val *map, const char *key, long long def);
bool val_map_bool(const struct val *map, const char *key, bool def);

const char *val_kind_name(enum val_kind k);
/* val_equal: deep equality of content (positions and flags ignored). */
bool val_equal(const struct val *a, const struct val *b);
/* val_has_unknown / val_has_secret: anywhere inside. */
bool val_has_unknown(const struct val *v);
bool val_has_secret(const struct val *v);
void val_mark_secret(struct val *v);

/* val_merge: deep-merge src onto *dst (ESC rules: maps merge recursively,
 * anything else replaces). src is borrowed; *dst may be replaced. */
void val_merge(struct val **dst, const struct val *src);

/* Text forms. val_text: the string form used by interpolation (strings as is,
 * numbers and bools literally, null empty, lists and maps as compact JSON).
 * val_json: JSON; with mask, secrets print as "[secret]". val_canon: JSON with
 * sorted keys and secrets included, for hashing. */
enum {
    VAL_JSON_MASK = 1,   /* secrets print as "[secret]" */
    VAL_JSON_PRETTY = 2, /* indented */
    VAL_JSON_HUMAN = 4,  /* unknowns print as "(known after apply: x)" */
    VAL_JSON_TAGGED = 8, /* secrets are written {"$secret": value}, as state stores them;
                          * sealed values are always written {"$secure": "v1:..."},
                          * {"$sealed": "v1:..."} or {"$concat": [parts]} */
};
void val_text(struct sb *out, const struct val *v);
void val_json(struct sb *out, const struct val *v, int flags);
void val_canon(struct sb *out, const struct val *v);

/* cJSON conversion. to_cjson with VAL_JSON_MASK masks secrets; otherwise a
 * secret is written {"$secret": value} and unknown {"$unknown": "what"}, which
 * from_cjson reads back. */
struct cJSON *val_to_cjson(const struct val *v, int flags);
struct val *val_from_cjson(const struct cJSON *j);

#endif
