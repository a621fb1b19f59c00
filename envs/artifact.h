/* artifact: an environment's pinned build — name, version, where it came from
 * (URI) and the SHA-256 digest of its bytes — and the state directory's
 * content-addressed store (<state dir>/artifacts/sha256/<hex>) that keeps
 * those exact bytes. Pinning copies the source into the store, hashes the
 * copy and refuses it unless the digest is the one given; every later use
 * re-hashes the stored copy, and fetches it again from its URI only if the
 * copy is gone or damaged. An env runs the stored copy, never the source,
 * so a source that changes later cannot change what runs.
 *
 * Sources: a path relative to the project, an absolute path, file://PATH, and
 * http(s):// through libcurl. The pin is a value map kept in the env's state:
 * {name, version, uri, digest: "sha256:<hex>", size, path, pinned_at}.
 * Nothing here prints; nothing here knows about envs or promotions. */
#ifndef PRENV_ARTIFACT_H
#define PRENV_ARTIFACT_H

#include "core/lib/err.h"
#include "core/lib/val.h"

/* Artifacts larger than this are refused (a cap on outside input). */
#define ARTIFACT_MAX_BYTES ((long long)4 << 30)

/* artifact_pin: parse spec ("URI@sha256:HEX"), copy the URI's bytes into the
 * store under state_dir, verify the digest and return the pin map in *out
 * (caller frees). name and version may be NULL: they are then derived from
 * the URI's file name ("shop-1.4.0.tar.gz" is shop, 1.4.0; without a version
 * in the name it is the digest's first 12 hex digits). Relative paths are
 * taken from project_dir. A malformed spec is PE_USAGE; a mismatch PE_CONFIG
 * with the expected and actual digests. */
int artifact_pin(struct val **out, const char *spec, const char *name, const char *version,
                 const char *project_dir, const char *state_dir, struct err *e);

/* artifact_verify: make sure the store holds pin's bytes (re-hash the stored
 * copy; fetch from the pin's URI again when it is missing or damaged) and set
 * the pin's `path` to the stored copy. pin is a map from artifact_pin or a
 * state document; it is updated in place. */
int artifact_verify(struct val *pin, const char *project_dir, const char *state_dir,
                    struct err *e);

/* artifact_digest: the pin's "sha256:<hex>", or NULL; borrowed from pin. */
const char *artifact_digest(const struct val *pin);

/* artifact_store_path: <state_dir>/artifacts/sha256/<hex>; caller frees. */
char *artifact_store_path(const char *state_dir, const char *hex);

#endif
