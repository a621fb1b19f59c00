/* secret: the v1 secrets format of Pulumi's passphrase provider, so config
 * files move between Pulumi and prenv both ways, and the project's key.
 *
 *   key    = PBKDF2-HMAC-SHA256(passphrase, salt, 1,000,000 iterations, 32 bytes)
 *   value  = "v1:" base64(12-byte random nonce) ":" base64(AES-256-GCM ciphertext ‖ tag)
 *   salt   = "v1:" base64(salt) ":" <the value of the 6 bytes "pulumi">, which
 *            tells a right passphrase from a wrong one
 *
 * The project's salt is `encryptionsalt:` in prenv.yaml. The passphrase comes
 * from $PRENV_PASSPHRASE, else the file $PRENV_PASSPHRASE_FILE names, else a
 * prompt without echo on a terminal; the key is derived once per process and
 * salt, and only when a secret's plaintext is actually needed. This module
 * installs the hooks core/lib/seal.h opens and seals through. */
#ifndef PRENV_SECRET_H
#define PRENV_SECRET_H

#include "core/lib/err.h"
#include "core/lib/val.h"

#include <stdbool.h>
#include <stddef.h>

#define SECRET_KDF_ITERATIONS 1000000

struct secret_key;

/* secret_kdf: the raw PBKDF2 (for tests and vectors). */
int secret_kdf(unsigned char key[32], const char *pass, size_t plen, const unsigned char *salt,
               size_t slen, unsigned iterations);
/* secret_kdf_iterations: what keys are derived with: 1,000,000, or a test's
 * lower count (secret_set_kdf_iterations, or $PRENV_TEST_KDF_ITERATIONS,
 * which warns on stderr: keys made so are useless outside tests). */
unsigned secret_kdf_iterations(void);
void secret_set_kdf_iterations(unsigned n);

/* secret_key_open: the key for salt state `salt` ("v1:...:v1:...:...") and a
 * passphrase; PE_SECRET when the passphrase is wrong, PE_CONFIG when the salt
 * is malformed (where = "prenv.yaml:4" names it in messages). */
int secret_key_open(struct secret_key **out, const char *salt, const char *pass, size_t plen,
                    const char *where, struct err *e);
/* secret_key_new: a fresh random salt and its key. */
int secret_key_new(struct secret_key **out, const char *pass, size_t plen, struct err *e);
void secret_key_free(struct secret_key *k);
/* secret_key_salt: the salt state to store (borrowed). */
const char *secret_key_salt(const struct secret_key *k);

/* secret_encrypt: "v1:nonce:ciphertext" of n bytes (caller frees *out). */
int secret_encrypt(char **out, const struct secret_key *k, const void *plain, size_t n,
                   struct err *e);
/* secret_decrypt: the plaintext (NUL-terminated, caller frees; *n its
 * length). PE_SECRET when it is not v1 or does not decrypt under k. */
int secret_decrypt(char **out, size_t *n, const struct secret_key *k, const char *ct,
                   struct err *e);

/* secret_open_val: the plaintext value of one sealed VAL_STR under k (a
 * string, or the value its JSON holds), marked secret. */
int secret_open_val(struct val **out, const struct secret_key *k, const struct val *sealed,
                    struct err *e);
/* secret_seal_val: v (plaintext) sealed under k as JSON (sealed_json). */
int secret_seal_val(struct val **out, const struct secret_key *k, const struct val *v,
                    struct err *e);
/* secret_seal_string: a config `secure:` leaf (raw string) under k. */
int secret_seal_string(struct val **out, const struct secret_key *k, const char *s,
                       struct err *e);

/* secret_passphrase: from $var (set, even empty), else the file $file_var
 * names (trimmed), else a no-echo prompt when stdin is a terminal. Caller
 * frees (and should wipe) *out. PE_SECRET when there is none. */
int secret_passphrase(char **out, const char *var, const char *file_var, const char *prompt,
                      struct err *e);
/* secret_wipe_free: overwrite a passphrase and free it. */
void secret_wipe_free(char *s);

/* The project's secrets. secret_project_set: the salt state from prenv.yaml
 * (NULL: the project encrypts nothing) and where it is written; installs the
 * seal hooks. Keys derived before are kept for the process. */
void secret_project_set(const char *salt, const char *where);
const char *secret_project_salt(void);
/* secret_project_key: the project's key, derived now if needed (borrowed,
 * lives until exit). flags: SEAL_PROMPT allows asking on a terminal. */
int secret_project_key(const struct secret_key **out, unsigned flags, struct err *e);
/* secret_project_forget: drop every cached key (tests, rotate). */
void secret_project_forget(void);
/* secret_project_adopt: k (taken) becomes the project's key and its salt
 * the project's salt, for the rest of the process. */
void secret_project_adopt(struct secret_key *k, const char *where);
/* secret_project_init: the project's key; when the project has no
 * encryptionsalt yet, one is made from the passphrase (as for the key, but a
 * prompt asks twice) and appended to project_file, atomically. */
int secret_project_init(const struct secret_key **out, const char *project_file,
                        struct err *e);

#endif
