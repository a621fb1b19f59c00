/* seal: secrets at rest, as the engine and the state see them. A secret is
 * either plaintext in memory (val.secret) or sealed (val.encrypted): a
 * ciphertext, or the concatenation of text and ciphertexts that interpolation
 * built from them. Sealed values are compared, stored and copied without a
 * key; they are opened only where a plaintext is needed (a provider call,
 * `config list --show-secrets`).
 *
 * The cryptography and the passphrase are not here: envs/secret.c installs
 * hooks that open one sealed string and seal one plaintext value. Without
 * hooks nothing can be opened, and plaintext secrets stay as they are. */
#ifndef PRENV_SEAL_H
#define PRENV_SEAL_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#include <stdbool.h>

enum {
    SEAL_NEED = 1,   /* seal_open: a sealed value that cannot be opened is an error */
    SEAL_PROMPT = 2, /* the hooks may ask for the passphrase on a terminal */
};

/* SEAL_OFF: seal hook result when this project does not encrypt secrets */
#define SEAL_OFF 1

struct seal_hooks {
    /* open: the plaintext of one sealed VAL_STR (raw or sealed_json) into a
     * new value marked secret. 0 or a negative code (PE_SECRET). */
    int (*open)(const struct val *sealed, unsigned flags, struct val **out, struct err *e);
    /* seal: a sealed VAL_STR (sealed_json) for plaintext v; SEAL_OFF when
     * secrets are not configured; a negative code when they are but the key
     * is not available. */
    int (*seal)(const struct val *v, unsigned flags, struct val **out, struct err *e);
};

/* seal_set_hooks: install (or, with NULL, remove) the process's hooks. */
void seal_set_hooks(const struct seal_hooks *h);

/* seal_open: a deep copy of v with every sealed part opened (caller frees).
 * Without SEAL_NEED, what cannot be opened becomes an unknown value
 * (seal_is_withheld) and the call succeeds. */
int seal_open(struct val **out, const struct val *v, unsigned flags, struct err *e);
/* seal_close: replace every plaintext secret inside *v by its sealed form, in
 * place. 0 (also when secrets are not configured: *v stays plaintext) or the
 * hook's error. */
int seal_close(struct val **v, unsigned flags, struct err *e);
/* seal_has_sealed / seal_has_plain: anywhere inside v. */
bool seal_has_sealed(const struct val *v);
bool seal_has_plain(const struct val *v);
/* seal_first: the first sealed value inside v that knows its position in a
 * file (else the first sealed one), or NULL. */
const struct val *seal_first(const struct val *v);
/* seal_is_withheld: an unknown that seal_open put where a secret was. */
bool seal_is_withheld(const struct val *v);
/* seal_keep: for each member of map fresh that equals the same member of
 * opened (what a provider was given), put back the member of stored (its
 * sealed form): an unchanged secret keeps its ciphertext. */
void seal_keep(struct val *fresh, const struct val *stored, const struct val *opened);

#endif
