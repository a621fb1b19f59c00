/* export: an environment's record — its state document and its history — as
 * one portable JSON document, and the way back into a state directory. The
 * state goes out exactly as stored: secrets stay sealed (ciphertext), so
 * neither side needs the passphrase. Nothing here creates, reads or removes a
 * resource; an import only writes the record, with every resource's id, so a
 * later `env refresh`, `env plan` or `env up` reconciles with what exists.
 *
 * Printing and option parsing are cmd/'s (env_export.c, env_import.c). */
#ifndef PRENV_EXPORT_H
#define PRENV_EXPORT_H

#include "core/lib/err.h"
#include "core/lib/sb.h"
#include "envs/project.h"

#include <stdbool.h>
#include <stddef.h>

#define EXPORT_FORMAT "prenv-env-export"
#define EXPORT_VERSION 1
#define EXPORT_MAX_FILE ((size_t)128 << 20)

/* export_env: append the export document of env (state and history) to out.
 * Takes the env's lock while it reads (lock_wait_ms < 0 waits forever);
 * PE_NOTFOUND when the env has no state. */
int export_env(struct sb *out, const struct project *p, const char *env, const char *command,
               long long lock_wait_ms, struct err *e);

struct import_opts {
    const char *as;      /* the name to import under; NULL = the exported env's name */
    bool force;          /* replace an existing record (see import_env) */
    const char *command; /* shown to lock waiters */
    long long lock_wait_ms;
};

/* import_env: validate the document text (name is shown in errors) and write
 * its state and history into p's state directory under the env's lock. The
 * state file is the commit point: it is written last, atomically. Refuses
 * (PE_EXISTS) when the env has a state, unless force; even with force it
 * refuses when the existing record holds a resource the imported one does not
 * hold with the same type and id, or pending operations, since replacing it
 * would orphan live resources. *env_out is the imported env's name (caller
 * frees); *nres its resource count. */
int import_env(char **env_out, size_t *nres, const struct project *p, const char *text, size_t len,
               const char *name, const struct import_opts *o, struct err *e);

#endif
