/* cfgedit: change one key under `values:` of a config layer file and keep
 * everything else of the file as it was written (comments, order, quoting,
 * blank lines). Works on the text, guided by the positions the YAML parser
 * reports; a key inside a flow-style map ({a: 1}) is refused rather than
 * rewritten. The result is parsed again before it is returned, so a caller
 * never writes a file prenv cannot read. Nothing here touches the disk. */
#ifndef PRENV_CFGEDIT_H
#define PRENV_CFGEDIT_H

#include "core/lib/err.h"

#include <stdbool.h>

/* A value to write: YAML text on the key's line ("3", "\"a b\"", "[1, 2]"),
 * or a ciphertext written as a nested `secure:` key (Pulumi's layout). */
struct cfgedit_value {
    const char *yaml;   /* inline YAML text, or NULL */
    const char *secure; /* "v1:..." ciphertext, or NULL */
};

/* cfgedit_set: *out is text with values.<key> (dotted) set; name is the
 * file's name for errors. Caller frees *out. */
int cfgedit_set(char **out, const char *text, const char *name, const char *key,
                const struct cfgedit_value *v, struct err *e);
/* cfgedit_rm: *out is text without values.<key> (maps left empty go too);
 * PE_NOTFOUND when the key is not in this file. */
int cfgedit_rm(char **out, const char *text, const char *name, const char *key, struct err *e);
/* cfgedit_file: set (v) or remove (v NULL) key in the layer file at path
 * (display: its name in messages); a missing file is created when setting.
 * Written atomically, keeping the file's permissions. */
int cfgedit_file(const char *path, const char *display, const char *key,
                 const struct cfgedit_value *v, struct err *e);
/* cfgedit_write: text to path atomically, keeping path's permissions (0644
 * for a new file). */
int cfgedit_write(const char *path, const char *text, struct err *e);
/* cfgedit_scalar: YAML text for a string value: plain when it reads back as
 * the same string, else double-quoted. Caller frees. */
char *cfgedit_scalar(const char *s);

#endif
