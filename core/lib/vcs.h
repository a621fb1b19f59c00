/* vcs: prenv's glue to libgit2: process-wide initialisation (once, from any
 * thread), libgit2 errors turned into struct err with a prenv code (network
 * trouble is PE_TRANSIENT so the engine retries; a missing repository or
 * missing credentials is PE_PROVIDER) and a hint, and URL redaction for
 * messages. It does not clone, fetch or check out: providers call libgit2
 * for that (core/providers/git_checkout.c). */
#ifndef PRENV_VCS_H
#define PRENV_VCS_H

#include "core/lib/err.h"

#include <stdbool.h>

/* vcs_init: initialise libgit2 once per process (pthread_once); every caller
 * of libgit2, including pure helpers such as ref-name checks, calls this
 * first. Cheap after the first call. 0, or PE_INTERNAL when libgit2 cannot
 * start or was already shut down. */
int vcs_init(struct err *e);
/* vcs_shutdown: release libgit2's global state (thread-local error buffers,
 * caches, TLS contexts) so leak checkers see nothing at exit. Call once at
 * process exit after every thread that used libgit2 has finished; a no-op
 * when vcs_init never ran; later vcs_init calls fail. */
void vcs_shutdown(void);
/* vcs_errmsg: the calling thread's last libgit2 error text; never NULL;
 * borrowed until the thread's next libgit2 call. */
const char *vcs_errmsg(void);
/* vcs_err: record "<fmt...>: <libgit2 message>" with a code chosen from the
 * libgit2 return code rc and the error class: PE_CANCELED (GIT_EUSER from a
 * callback), PE_TRANSIENT (connection, DNS, TLS handshake, HTTP 5xx/408/429,
 * early EOF), otherwise PE_PROVIDER, with a hint for credentials,
 * certificates and "not found". Returns the code. at may be NULL. */
int vcs_err(struct err *e, int rc, const struct pos *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* vcs_url_redact: url with any password or token in its user part replaced
 * by "***": "user:pass@" becomes "user:***@", and for http(s) a bare
 * "token@" becomes "***@". Caller frees. */
char *vcs_url_redact(const char *url);

#endif
