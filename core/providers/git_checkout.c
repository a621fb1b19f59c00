/* git.checkout: a git repository checked out at a branch, a tag or an exact
 * commit in the environment's work directory, through libgit2 only: nothing
 * here runs the git CLI or a shell, so branch names taken from pull requests
 * (which may contain quotes, `;`, `$`...) reach nothing but libgit2 calls,
 * after git's own ref-name rules have accepted them.
 *
 * create clones into a temporary sibling, ".<dir>.prenv-clone", and renames
 * it into place, so a crash never leaves a half checkout at `path`; that
 * sibling is deterministic, so the next create or remove deletes what a crash
 * left there. If `path` already holds a checkout of the same url (a crash
 * after the rename, before state was saved), create reuses it. The commit is
 * checked out detached, forced.
 *
 * The checkout is prenv-managed: create and update overwrite modified
 * tracked files, and untracked files where the new commit has a file, and
 * drop a stale .git/index.lock left by a crashed run. Other untracked files
 * (build output, node_modules) are left alone, and read does not count them
 * as drift. Each checkout's .git/config records prenv.ref and
 * prenv.sha, so read can report outputs when a crash lost the state write.
 *
 * Not done here: shallow clones (libgit2 1.5 cannot fetch with a depth, so
 * there is no `depth` property), submodules, LFS, credentials other than a
 * key in ssh-agent for ssh URLs, and fetching a commit that no branch, tag or
 * named ref of the remote reaches (libgit2 1.5 cannot fetch a bare sha).
 * libgit2 itself is started and stopped by core/lib/vcs.c. */
#include "core/provider.h"

#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/vcs.h"
#include "core/lib/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define TMP_SUFFIX ".prenv-clone"
#define SHA_HEX 40
#define SHOWN_MAX 200     /* characters of an outside value quoted in a message */
#define LIST_MAX 20       /* branch or tag names listed in an unknown-ref error */
#define DRIFT_FILES_MAX 5 /* changed files named in a drift report */
#define CRED_TRIES_MAX 3  /* credential callback calls before giving up */

static const struct prov_prop schema[] = {
    {"url", PT_STR, PROP_REQUIRED | PROP_REPLACE,
     "repository: an https://, http://, file://, ssh:// or git:// URL, or a local path "
     "(relative to the project directory)"},
    {"ref", PT_STR, 0,
     "branch or tag to check out (default: the remote's HEAD branch); a full name such as "
     "refs/pull/42/head is fetched as it is"},
    {"sha", PT_STR, 0, "exact commit to check out, all 40 hex digits; wins over ref"},
    {"path", PT_STR, PROP_REPLACE,
     "checkout directory relative to the env's work directory (default: the resource name)"},
    {NULL, 0, 0, NULL},
};

static const struct prov_output outputs[] = {
    {"path", OUT_STABLE, "absolute path of the checkout"},
    {"sha", 0, "the checked-out commit (40 hex digits)"},
    {"ref", 0, "the requested ref (or sha), or the remote's default branch when none was given"},
    {NULL, 0, NULL},
};

enum url_kind { URL_LOCAL, URL_FILE, URL_HTTP, URL_SSH, URL_GIT, URL_BAD };

/* What one call works on, from a property map. */
struct spec {
    char *url;   /* as given; a local path made absolute; NULL when absent */
    char *shown; /* url for messages: password redacted, or "[secret url]" */
    enum url_kind kind;
    char *ref;  /* requested ref, or NULL */
    char *sha;  /* requested commit, lowercase, or NULL */
    char *dir;  /* absolute checkout directory */
    char *tmp;  /* its temporary sibling for a clone in progress */
    char *work; /* the work directory, normalised */
    const struct pos *url_at, *ref_at, *sha_at, *path_at; /* borrowed; may be NULL */
};

/* What to fetch and check out, from the remote's advertisement. */
struct target {
    char *remote; /* remote ref name (refs/heads/x); NULL for an exact sha */
    char *local;  /* the local ref the fetch updates for it */
    char *extra;  /* an extra refspec for a ref outside refs/heads and refs/tags, or NULL */
    char *ref;    /* the `ref` output */
};

/* Network callbacks' payload: one per call, never shared. */
struct xfer {
    const struct prov_call *c;
    int cred_tries;
};

/* ---- values and names ---- */

/* a property as text (strings as they are, numbers as written); NULL when
 * absent, null or of another kind; *at gets its position. Caller frees. */
static char *prop_text(const struct val *props, const char *name, const struct pos **at)
{
    const struct val *v = props && props->kind == VAL_MAP ? val_map_get(props, name) : NULL;
    if (at)
        *at = v ? &v->pos : NULL;
    if (!v || (v->kind != VAL_STR && v->kind != VAL_INT && v->kind != VAL_FLOAT))
        return NULL;
    struct sb b;
    sb_init(&b);
    val_text(&b, v);
    return sb_steal(&b);
}

/* s for an error message: control characters escaped, long values cut */
static void add_shown(struct sb *b, const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        if (n == SHOWN_MAX) {
            sb_adds(b, "...");
            return;
        }
        if (*p < 0x20 || *p == 0x7f)
            sb_addf(b, "\\x%02x", *p);
        else
            sb_addc(b, (char)*p);
    }
}

static char *shown(const char *s)
{
    struct sb b;
    sb_init(&b);
    add_shown(&b, s);
    return sb_steal(&b);
}

static enum url_kind url_kind(const char *u)
{
    const char *p = u;
    if (isalpha((unsigned char)*p)) {
        while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
            p++;
        if (!strncmp(p, "://", 3)) {
            static const struct {
                const char *scheme;
                enum url_kind kind;
            } schemes[] = {
                {"file", URL_FILE},   {"http", URL_HTTP},   {"https", URL_HTTP}, {"ssh", URL_SSH},
                {"ssh+git", URL_SSH}, {"git+ssh", URL_SSH}, {"git", URL_GIT},
            };
            size_t n = (size_t)(p - u);
            for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
                if (strlen(schemes[i].scheme) == n && !strncasecmp(u, schemes[i].scheme, n))
                    return schemes[i].kind;
            return URL_BAD;
        }
    }
    /* scp-like user@host:path, as git reads it: a ':' before any '/' */
    const char *colon = strchr(u, ':'), *slash = strchr(u, '/');
    if (colon && colon != u && (!slash || colon < slash))
        return URL_SSH;
    return URL_LOCAL;
}

/* ref is a valid branch or tag name, or a valid full ref name, by git's
 * rules (no "..", spaces, control characters, ~^:?*[\, "@{", ".lock"...) */
static bool ref_valid(const char *ref)
{
    if (!*ref)
        return false;
    char *full = str_prefix(ref, "refs/") ? xstrdup(ref) : xasprintf("refs/heads/%s", ref);
    int valid = 0;
    int rc = git_reference_name_is_valid(&valid, full);
    free(full);
    if (rc)
        git_error_clear();
    return rc == 0 && valid;
}

/* the local ref a fetch of remote ref name updates */
static char *local_ref(const char *name)
{
    if (str_prefix(name, "refs/heads/"))
        return xasprintf("refs/remotes/origin/%s", name + strlen("refs/heads/"));
    if (str_prefix(name, "refs/tags/"))
        return xstrdup(name);
    return xasprintf("refs/prenv/%s", name + strlen("refs/"));
}

/* ---- check ---- */

static int check_url(const struct val *v, struct err *e)
{
    const char *u = v->u.str.s;
    if (!*u)
        return err_set(e, PE_CONFIG, &v->pos, "'url' is empty");
    enum url_kind k = url_kind(u);
    int features = git_libgit2_features();
    const char *missing = NULL;
    if (k == URL_BAD) {
        char *s = v->secret ? xstrdup("[secret url]") : vcs_url_redact(u);
        char *q = shown(s);
        err_set(e, PE_CONFIG, &v->pos, "'url' %s uses a scheme git.checkout cannot fetch from", q);
        err_hint(e, "use an https://, http://, file://, ssh:// or git:// URL, or a local path");
        free(q);
        free(s);
        return PE_CONFIG;
    }
    if (k == URL_SSH && !(features & GIT_FEATURE_SSH))
        missing = "SSH";
    else if (k == URL_HTTP && !strncasecmp(u, "https", 5) && !(features & GIT_FEATURE_HTTPS))
        missing = "HTTPS";
    if (missing) {
        err_set(e, PE_CONFIG, &v->pos, "this prenv's libgit2 was built without %s support",
                missing);
        err_hint(e, "use an http://, file:// or git:// URL, or a local mirror");
        return PE_CONFIG;
    }
    return 0;
}

static int check_sha(const char *sha, const struct pos *at, struct err *e)
{
    size_t n = strlen(sha), hex = strspn(sha, "0123456789abcdefABCDEF");
    if (n == SHA_HEX && hex == n)
        return 0;
    char *q = shown(sha);
    if (hex == n && n >= 4 && n < SHA_HEX) {
        err_set(e, PE_CONFIG, at,
                "'sha' %s is a short commit id: it is ambiguous, and may match another commit "
                "later; give all 40 hex digits",
                q);
        err_hint(e, "`git rev-parse %s` prints the full id", q);
    } else if (hex == n && n == 64) {
        err_set(e, PE_CONFIG, at,
                "'sha' %s is a SHA-256 commit id; git.checkout supports SHA-1 repositories only",
                q);
    } else {
        err_set(e, PE_CONFIG, at, "'sha' %s is not a commit id: expected 40 hex digits", q);
        if (hex == n)
            err_hint(e, "quote it in YAML so it stays a string");
    }
    free(q);
    return PE_CONFIG;
}

static int check_ref(const char *ref, const struct pos *at, struct err *e)
{
    if (!*ref)
        return err_set(e, PE_CONFIG, at, "'ref' is empty");
    if (ref_valid(ref))
        return 0;
    char *q = shown(ref);
    err_set(e, PE_CONFIG, at, "'ref' \"%s\" is not a valid git branch or tag name", q);
    err_hint(e, "git ref names cannot contain spaces, control characters, '..', '~', '^', ':', "
                "'?', '*', '[', '\\' or \"@{\", nor begin or end with '/' or end with '.' or "
                "\".lock\"");
    free(q);
    return PE_CONFIG;
}

static int check_path(const struct val *v, struct err *e)
{
    const char *s = v->u.str.s;
    char *q = shown(s);
    int rc = 0;
    if (!*s || s[0] == '/') {
        rc = err_set(e, PE_CONFIG, &v->pos,
                     "'path' %s must be relative to the environment's work directory",
                     *s ? q : "\"\"");
    } else {
        char *abs = fs_abspath("/w", s);
        if (!fs_within("/w", abs) || !strcmp(abs, "/w"))
            rc = err_set(e, PE_CONFIG, &v->pos, "'path' %s leaves the environment's work directory",
                         q);
        free(abs);
    }
    free(q);
    return rc;
}

static int gc_check(const struct prov_call *c, struct err *e)
{
    int rc = vcs_init(e);
    if (rc)
        return rc;
    const struct val *u = val_map_get(c->props, "url");
    if (u && u->kind == VAL_STR && (rc = check_url(u, e)))
        return rc;
    const struct pos *at;
    char *sha = prop_text(c->props, "sha", &at);
    rc = sha ? check_sha(sha, at, e) : 0;
    free(sha);
    if (rc)
        return rc;
    char *ref = prop_text(c->props, "ref", &at);
    rc = ref ? check_ref(ref, at, e) : 0;
    free(ref);
    if (rc)
        return rc;
    const struct val *p = val_map_get(c->props, "path");
    if (p && p->kind == VAL_STR)
        return check_path(p, e);
    return 0;
}

/* ---- spec ---- */

static void spec_release(struct spec *s)
{
    free(s->url);
    free(s->shown);
    free(s->ref);
    free(s->sha);
    free(s->dir);
    free(s->tmp);
    free(s->work);
    memset(s, 0, sizeof *s);
}

/* spec_init: what props (which may be NULL) ask for; release s even on error. */
static int spec_init(struct spec *s, const struct prov_call *c, const struct val *props,
                     struct err *e)
{
    memset(s, 0, sizeof *s);
    s->work = fs_abspath(NULL, c->work_dir);
    char *path = prop_text(props, "path", &s->path_at);
    s->dir = fs_abspath(s->work, path ? path : c->resource);
    free(path);
    if (!fs_within(s->work, s->dir) || !strcmp(s->work, s->dir))
        return err_set(e, PE_CONFIG, s->path_at,
                       "checkout directory %s is not inside the environment's work directory %s",
                       s->dir, s->work);
    const char *base = strrchr(s->dir, '/') + 1;
    s->tmp = xasprintf("%.*s.%s%s", (int)(base - s->dir), s->dir, base, TMP_SUFFIX);
    s->url = prop_text(props, "url", &s->url_at);
    if (s->url) {
        s->kind = url_kind(s->url);
        if (s->kind == URL_LOCAL) {
            char *abs = fs_abspath(c->project_dir, s->url);
            free(s->url);
            s->url = abs;
        }
        s->shown =
            val_map_get(props, "url")->secret ? xstrdup("[secret url]") : vcs_url_redact(s->url);
    }
    s->ref = prop_text(props, "ref", &s->ref_at);
    s->sha = prop_text(props, "sha", &s->sha_at);
    for (char *p = s->sha; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

/* ---- network ---- */

static int on_transfer(const git_indexer_progress *st, void *payload)
{
    (void)st;
    const struct xfer *x = payload;
    return prov_canceled(x->c) ? GIT_EUSER : 0;
}

static int on_sideband(const char *str, int len, void *payload)
{
    (void)str;
    (void)len;
    return on_transfer(NULL, payload);
}

/* a key in ssh-agent for ssh URLs; nothing else (see the file comment) */
static int on_credentials(git_credential **out, const char *url, const char *user,
                          unsigned int allowed, void *payload)
{
    (void)url;
    struct xfer *x = payload;
    if (prov_canceled(x->c))
        return GIT_EUSER;
    if (x->cred_tries++ >= CRED_TRIES_MAX)
        return GIT_PASSTHROUGH;
    const char *name = user && *user ? user : "git";
    if (allowed & GIT_CREDENTIAL_USERNAME)
        return git_credential_username_new(out, name);
    if ((allowed & GIT_CREDENTIAL_SSH_KEY) && getenv("SSH_AUTH_SOCK"))
        return git_credential_ssh_key_from_agent(out, name);
    return GIT_PASSTHROUGH;
}

static void callbacks_init(git_remote_callbacks *cb, struct xfer *x)
{
    git_remote_init_callbacks(cb, GIT_REMOTE_CALLBACKS_VERSION);
    cb->transfer_progress = on_transfer;
    cb->sideband_progress = on_sideband;
    cb->credentials = on_credentials;
    cb->payload = x;
}

static int net_err(const struct prov_call *c, const struct spec *s, int rc, const char *what,
                   struct err *e)
{
    if (prov_canceled(c))
        return err_set(e, PE_CANCELED, NULL, "fetch from %s canceled", s->shown);
    return vcs_err(e, rc, NULL, "%s %s", what, s->shown);
}

/* a local url that is missing or not a repository, said plainly before
 * libgit2 (which would search parent directories) gets to it */
static int check_local_source(const struct spec *s, struct err *e)
{
    const char *path = s->url;
    if (s->kind == URL_FILE) {
        if (!str_prefix(s->url, "file:///") || strchr(s->url, '%'))
            return 0;
        path = s->url + strlen("file://");
    } else if (s->kind != URL_LOCAL) {
        return 0;
    }
    if (!fs_exists(path)) {
        err_set(e, PE_PROVIDER, s->url_at, "repository %s does not exist", s->shown);
        err_hint(e, "a local 'url' is a path relative to the project directory; check it");
        return PE_PROVIDER;
    }
    git_repository *repo = NULL;
    int rc = git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    git_repository_free(repo);
    if (rc == GIT_ENOTFOUND) {
        git_error_clear();
        err_set(e, PE_PROVIDER, s->url_at, "%s is not a git repository", s->shown);
        err_hint(e, "point 'url' at a repository: a directory with a .git inside, or a bare "
                    "repository");
        return PE_PROVIDER;
    }
    if (rc)
        return vcs_err(e, rc, s->url_at, "cannot open repository %s", s->shown);
    return 0;
}

static bool ls_has(const git_remote_head **heads, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(heads[i]->name, name))
            return true;
    return false;
}

/* the names under prefix in the advertisement, at most LIST_MAX of them;
 * returns how many there are */
static size_t ls_list(struct sb *b, const git_remote_head **heads, size_t n, const char *prefix)
{
    size_t listed = 0, more = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = heads[i]->name;
        if (!str_prefix(name, prefix) || str_suffix(name, "^{}"))
            continue;
        if (listed == LIST_MAX) {
            more++;
            continue;
        }
        if (listed++)
            sb_adds(b, ", ");
        add_shown(b, name + strlen(prefix));
    }
    if (more)
        sb_addf(b, " and %zu more", more);
    return listed + more;
}

static int unknown_ref(const struct spec *s, const git_remote_head **heads, size_t n, struct err *e)
{
    struct sb branches, tags;
    sb_init(&branches);
    sb_init(&tags);
    if (!ls_list(&branches, heads, n, "refs/heads/"))
        sb_adds(&branches, "(none)");
    size_t ntags = ls_list(&tags, heads, n, "refs/tags/");
    char *q = shown(s->ref);
    err_set(e, PE_PROVIDER, s->ref_at, "ref '%s' not found in %s; branches: %s", q, s->shown,
            branches.buf);
    if (ntags)
        err_hint(e,
                 "set 'ref' to one of those branches or a tag (tags: %s), or push the branch "
                 "first",
                 tags.buf);
    else
        err_hint(e, "set 'ref' to one of those branches, or push the branch first");
    free(q);
    sb_release(&branches);
    sb_release(&tags);
    return PE_PROVIDER;
}

static void target_release(struct target *t)
{
    free(t->remote);
    free(t->local);
    free(t->extra);
    free(t->ref);
    memset(t, 0, sizeof *t);
}

/* pick_target: find what s asks for in the advertisement of the connected remote. */
static int pick_target(struct target *t, git_remote *remote, const struct spec *s, struct err *e)
{
    const git_remote_head **heads = NULL;
    size_t n = 0;
    int rc = git_remote_ls(&heads, &n, remote);
    if (rc)
        return vcs_err(e, rc, NULL, "cannot list the refs of %s", s->shown);
    if (s->ref) {
        char *cand[2] = {NULL, NULL};
        if (str_prefix(s->ref, "refs/")) {
            cand[0] = xstrdup(s->ref);
        } else {
            cand[0] = xasprintf("refs/heads/%s", s->ref);
            cand[1] = xasprintf("refs/tags/%s", s->ref);
        }
        for (size_t i = 0; i < 2 && !t->remote; i++)
            if (cand[i] && ls_has(heads, n, cand[i])) {
                t->remote = cand[i];
                cand[i] = NULL;
            }
        free(cand[0]);
        free(cand[1]);
        /* with a sha the ref only widens the fetch (refs/pull/42/head) */
        if (!t->remote && !s->sha)
            return unknown_ref(s, heads, n, e);
        t->ref = xstrdup(s->ref);
    } else if (!s->sha) {
        git_buf buf = {0};
        rc = git_remote_default_branch(&buf, remote);
        if (rc == GIT_ENOTFOUND) {
            git_error_clear();
            if (n == 0) {
                err_set(e, PE_PROVIDER, s->url_at,
                        "%s is an empty repository: there is no commit to check out", s->shown);
                err_hint(e, "push a commit to it first");
            } else {
                err_set(e, PE_PROVIDER, s->url_at, "cannot tell the default branch of %s",
                        s->shown);
                err_hint(e, "set 'ref' to the branch to check out");
            }
            return PE_PROVIDER;
        }
        if (rc)
            return vcs_err(e, rc, NULL, "cannot find the default branch of %s", s->shown);
        t->remote = xstrdup(buf.ptr);
        git_buf_dispose(&buf);
        t->ref = xstrdup(str_prefix(t->remote, "refs/heads/") ? t->remote + strlen("refs/heads/")
                                                              : t->remote);
    } else {
        t->ref = xstrdup(s->sha);
    }
    if (t->remote) {
        t->local = local_ref(t->remote);
        if (!str_prefix(t->remote, "refs/heads/") && !str_prefix(t->remote, "refs/tags/"))
            t->extra = xasprintf("+%s:%s", t->remote, t->local);
    }
    return 0;
}

/* fetch: every branch and tag of origin (and the named ref), after checking
 * that what s asks for is there; fills t. */
static int fetch(struct target *t, git_repository *repo, const struct spec *s,
                 const struct prov_call *c, struct err *e)
{
    struct xfer x = {.c = c};
    git_remote *remote = NULL;
    if (prov_canceled(c))
        return err_set(e, PE_CANCELED, NULL, "fetch from %s canceled", s->shown);
    int rc = git_remote_lookup(&remote, repo, "origin");
    if (rc)
        return vcs_err(e, rc, NULL, "cannot read the origin remote of %s", s->dir);
    git_remote_connect_options co;
    git_remote_connect_options_init(&co, GIT_REMOTE_CONNECT_OPTIONS_VERSION);
    callbacks_init(&co.callbacks, &x);
    co.proxy_opts.type = GIT_PROXY_AUTO; /* http.proxy and *_proxy like git */
    prov_log(c, "fetching %s", s->shown);
    rc = git_remote_connect_ext(remote, GIT_DIRECTION_FETCH, &co);
    if (rc) {
        rc = net_err(c, s, rc, "cannot reach", e);
        goto out;
    }
    rc = pick_target(t, remote, s, e);
    if (rc)
        goto out;
    const char *specs[3] = {"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"};
    size_t nspecs = 2;
    if (t->extra)
        specs[nspecs++] = t->extra;
    git_strarray arr = {(char **)specs, nspecs};
    git_fetch_options fo;
    git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
    fo.callbacks = co.callbacks;
    fo.proxy_opts.type = GIT_PROXY_AUTO;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE; /* the tags refspec fetches them all */
    fo.update_fetchhead = 0;
    rc = git_remote_download(remote, &arr, &fo);
    if (rc) {
        rc = net_err(c, s, rc, "cannot fetch from", e);
        goto out;
    }
    rc = git_remote_update_tips(remote, &co.callbacks, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE,
                                "prenv: fetch");
    if (!rc)
        rc = git_remote_prune(remote, &co.callbacks);
    if (rc) {
        rc = vcs_err(e, rc, NULL, "cannot update the refs of %s from %s", s->dir, s->shown);
        goto out;
    }
    const git_indexer_progress *st = git_remote_stats(remote);
    prov_log(c, "fetched %u objects (%zu bytes) from %s", st->received_objects, st->received_bytes,
             s->shown);
out:
    if (remote)
        git_remote_disconnect(remote);
    git_remote_free(remote);
    return rc;
}

/* ---- local repository ---- */

/* resolve: the commit to check out, from the fetched refs. */
static int resolve(git_oid *oid, git_repository *repo, const struct spec *s, const struct target *t,
                   struct err *e)
{
    git_object *obj = NULL;
    int rc;
    if (s->sha) {
        if (git_oid_fromstr(oid, s->sha)) {
            git_error_clear();
            return check_sha(s->sha, s->sha_at, e);
        }
        rc = git_object_lookup(&obj, repo, oid, GIT_OBJECT_ANY);
        if (rc == GIT_ENOTFOUND) {
            git_error_clear();
            err_set(e, PE_PROVIDER, s->sha_at,
                    "commit %s not found in %s after fetching its branches and tags", s->sha,
                    s->shown);
            err_hint(e, "check the sha; prenv can fetch only a commit that a branch or tag of the "
                        "remote reaches (push one, or also set 'ref' to a ref that reaches it, "
                        "such as refs/pull/42/head)");
            return PE_PROVIDER;
        }
        if (rc)
            return vcs_err(e, rc, s->sha_at, "cannot read commit %s", s->sha);
        if (git_object_type(obj) != GIT_OBJECT_COMMIT) {
            err_set(e, PE_PROVIDER, s->sha_at, "%s in %s is a %s, not a commit", s->sha, s->shown,
                    git_object_type2string(git_object_type(obj)));
            git_object_free(obj);
            return PE_PROVIDER;
        }
        git_object_free(obj);
        return 0;
    }
    git_reference *ref = NULL;
    rc = git_reference_lookup(&ref, repo, t->local);
    if (!rc)
        rc = git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT);
    git_reference_free(ref);
    if (rc) {
        char *q = shown(t->ref);
        rc = vcs_err(e, rc, s->ref_at, "ref '%s' of %s does not lead to a commit", q, s->shown);
        free(q);
        return rc;
    }
    git_oid_cpy(oid, git_object_id(obj));
    git_object_free(obj);
    return 0;
}

/* checkout: force the work tree and index to commit oid; HEAD detached at it. */
static int checkout(git_repository *repo, const git_oid *oid, const struct spec *s, struct err *e)
{
    /* a crashed run may have left the index locked; the checkout is ours */
    char *lock = xasprintf("%sindex.lock", git_repository_path(repo));
    unlink(lock);
    free(lock);
    git_commit *commit = NULL;
    int rc = git_commit_lookup(&commit, repo, oid);
    if (!rc) {
        git_checkout_options co;
        git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
        /* prenv-managed: local edits and untracked files in the way lose */
        co.checkout_strategy = GIT_CHECKOUT_FORCE;
        rc = git_checkout_tree(repo, (const git_object *)commit, &co);
    }
    if (!rc)
        rc = git_repository_set_head_detached(repo, oid);
    git_commit_free(commit);
    if (rc) {
        char hex[GIT_OID_HEXSZ + 1];
        git_oid_tostr(hex, sizeof hex, oid);
        return vcs_err(e, rc, NULL, "cannot check out %s in %s", hex, s->dir);
    }
    return 0;
}

/* record: the ref output and the sha in the checkout's own config, for read
 * after a crash that lost the state write */
static int record(git_repository *repo, const char *ref, const char *sha, const struct spec *s,
                  struct err *e)
{
    git_config *cfg = NULL, *local = NULL;
    int rc = git_repository_config(&cfg, repo);
    if (!rc)
        rc = git_config_open_level(&local, cfg, GIT_CONFIG_LEVEL_LOCAL);
    if (!rc)
        rc = git_config_set_string(local, "prenv.ref", ref);
    if (!rc)
        rc = git_config_set_string(local, "prenv.sha", sha);
    if (rc)
        rc = vcs_err(e, rc, NULL, "cannot write the config of %s", s->dir);
    git_config_free(local);
    git_config_free(cfg);
    return rc;
}

/* recorded: prenv.<key> from the checkout's config; caller frees; NULL if none */
static char *recorded(git_repository *repo, const char *key)
{
    git_config *snap = NULL;
    const char *v = NULL;
    char *out = NULL;
    if (git_repository_config_snapshot(&snap, repo) == 0 &&
        git_config_get_string(&v, snap, key) == 0)
        out = xstrdup(v);
    else
        git_error_clear();
    git_config_free(snap);
    return out;
}

/* sync: fetch, resolve and check out what s asks for in repo; fills sha and *ref. */
static int sync_repo(git_repository *repo, const struct spec *s, const struct prov_call *c,
                     char sha[GIT_OID_HEXSZ + 1], char **ref, struct err *e)
{
    struct target t = {0};
    git_oid oid;
    int rc = fetch(&t, repo, s, c, e);
    if (!rc)
        rc = resolve(&oid, repo, s, &t, e);
    if (!rc && prov_canceled(c))
        rc = err_set(e, PE_CANCELED, NULL, "checkout of %s canceled", s->shown);
    if (!rc)
        rc = checkout(repo, &oid, s, e);
    if (!rc) {
        git_oid_tostr(sha, GIT_OID_HEXSZ + 1, &oid);
        rc = record(repo, t.ref, sha, s, e);
    }
    if (!rc) {
        char *q = shown(t.ref);
        prov_log(c, "checked out %s (%s) at %s", q, sha, s->dir);
        free(q);
        *ref = t.ref;
        t.ref = NULL;
    }
    target_release(&t);
    return rc;
}

/* open_ours: 1 with *out open when s->dir holds a non-bare repository whose
 * origin is s->url (any origin when s->url is NULL); 0 when it does not; a
 * negative code on error. */
static int open_ours(git_repository **out, const struct spec *s, struct err *e)
{
    *out = NULL;
    if (!fs_is_dir(s->dir))
        return 0;
    git_repository *repo = NULL;
    int rc = git_repository_open_ext(&repo, s->dir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    if (rc == GIT_ENOTFOUND) {
        git_error_clear();
        return 0;
    }
    if (rc)
        return vcs_err(e, rc, NULL, "cannot open %s", s->dir);
    int ours = 0;
    git_remote *origin = NULL;
    if (!git_repository_is_bare(repo)) {
        rc = git_remote_lookup(&origin, repo, "origin");
        if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC) {
            git_error_clear();
        } else if (rc) {
            ours = vcs_err(e, rc, NULL, "cannot read the origin remote of %s", s->dir);
        } else {
            const char *url = git_remote_url(origin);
            ours = url && (!s->url || !strcmp(url, s->url));
        }
    }
    git_remote_free(origin);
    if (ours == 1)
        *out = repo;
    else
        git_repository_free(repo);
    return ours;
}

static void set_outputs(struct prov_result *r, const char *dir, const char *sha, const char *ref)
{
    free(r->id);
    val_free(r->outputs);
    r->id = xstrdup(dir);
    r->outputs = val_map(NULL);
    val_map_set(r->outputs, "path", NULL, val_str(dir, NULL));
    val_map_set(r->outputs, "sha", NULL, val_str(sha, NULL));
    val_map_set(r->outputs, "ref", NULL, val_str(ref, NULL));
}

/* clone: s's repository into s->tmp, then renamed to s->dir. */
static int clone_fresh(const struct spec *s, const struct prov_call *c, char sha[GIT_OID_HEXSZ + 1],
                       char **ref, struct err *e)
{
    git_repository *repo = NULL;
    git_remote *origin = NULL;
    int rc = fs_rm_rf(s->tmp, e); /* what a crashed create left */
    if (rc)
        return rc;
    prov_log(c, "cloning %s into %s", s->shown, s->dir);
    rc = git_repository_init(&repo, s->tmp, 0);
    if (rc) {
        rc = vcs_err(e, rc, NULL, "cannot create a repository in %s", s->tmp);
        goto out;
    }
    rc = git_remote_create(&origin, repo, "origin", s->url);
    git_remote_free(origin);
    if (rc) {
        rc = vcs_err(e, rc, s->url_at, "cannot use %s as a remote", s->shown);
        goto out;
    }
    rc = sync_repo(repo, s, c, sha, ref, e);
    git_repository_free(repo);
    repo = NULL;
    if (!rc && rename(s->tmp, s->dir) < 0)
        rc = err_errno(e, errno, "cannot move %s to %s", s->tmp, s->dir);
    if (!rc) {
        char *parent = fs_dirname(s->dir);
        fs_fsync_dir(parent);
        free(parent);
    }
out:
    git_repository_free(repo);
    if (rc) {
        struct err ignored = {0};
        fs_rm_rf(s->tmp, &ignored);
        err_release(&ignored);
    }
    return rc;
}

/* create and update: bring s->dir to what c->props ask for, reusing a
 * checkout of the same url that is there, cloning otherwise. */
static int gc_apply(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    struct spec s;
    git_repository *repo = NULL;
    char sha[GIT_OID_HEXSZ + 1] = "";
    char *ref = NULL;
    int rc = gc_check(c, e);
    if (!rc)
        rc = spec_init(&s, c, c->props, e);
    else
        memset(&s, 0, sizeof s);
    if (!rc && !s.url)
        rc = err_set(e, PE_CONFIG, NULL, "git.checkout needs property 'url'");
    if (!rc)
        rc = check_local_source(&s, e);
    char *parent = s.dir ? fs_dirname(s.dir) : NULL;
    if (!rc)
        rc = fs_mkdir_p(parent, 0755, e);
    if (!rc)
        rc = open_ours(&repo, &s, e);
    if (rc < 0)
        goto out;
    if (rc == 1) {
        prov_log(c, "updating the checkout in %s from %s", s.dir, s.shown);
        rc = sync_repo(repo, &s, c, sha, &ref, e);
    } else {
        if (fs_exists(s.dir) && rmdir(s.dir) < 0) {
            if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR) {
                rc = err_set(e, PE_EXISTS, s.path_at,
                             "%s already exists and is not a checkout of %s", s.dir, s.shown);
                err_hint(e, "remove it, or set 'path' to another directory");
            } else {
                rc = err_errno(e, errno, "cannot remove the empty directory %s", s.dir);
            }
            goto out;
        }
        rc = clone_fresh(&s, c, sha, &ref, e);
    }
    if (!rc)
        set_outputs(r, s.dir, sha, ref);
out:
    git_repository_free(repo);
    free(ref);
    free(parent);
    spec_release(&s);
    return rc;
}

/* ---- read and remove ---- */

static const char *change_word(unsigned st)
{
    if (st & (GIT_STATUS_WT_DELETED | GIT_STATUS_INDEX_DELETED))
        return "deleted";
    if (st & GIT_STATUS_INDEX_NEW)
        return "added";
    if (st & (GIT_STATUS_WT_RENAMED | GIT_STATUS_INDEX_RENAMED))
        return "renamed";
    if (st & (GIT_STATUS_WT_TYPECHANGE | GIT_STATUS_INDEX_TYPECHANGE))
        return "type changed";
    if (st & GIT_STATUS_CONFLICTED)
        return "conflicted";
    return "modified";
}

/* local_changes: tracked files that differ from HEAD, into b ("" when none) */
static int local_changes(struct sb *b, git_repository *repo, const struct spec *s, struct err *e)
{
    git_status_options so;
    git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
    so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
    so.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES; /* untracked files are not drift */
    git_status_list *list = NULL;
    int rc = git_status_list_new(&list, repo, &so);
    if (rc)
        return vcs_err(e, rc, NULL, "cannot read the status of %s", s->dir);
    size_t n = git_status_list_entrycount(list);
    for (size_t i = 0; i < n && i < DRIFT_FILES_MAX; i++) {
        const git_status_entry *se = git_status_byindex(list, i);
        const git_diff_delta *d = se->index_to_workdir ? se->index_to_workdir : se->head_to_index;
        sb_addf(b, "%s%s ", i ? ", " : "", change_word(se->status));
        add_shown(b, d ? d->new_file.path : "?");
    }
    if (n > DRIFT_FILES_MAX)
        sb_addf(b, " and %zu more", n - DRIFT_FILES_MAX);
    git_status_list_free(list);
    return 0;
}

static int gc_read(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    const struct val *props = c->old_props ? c->old_props : c->props;
    struct spec s;
    git_repository *repo = NULL;
    char *ref = NULL, *want = NULL;
    struct sb drift, changes;
    sb_init(&drift);
    sb_init(&changes);
    r->exists = false;
    int rc = vcs_init(e);
    if (!rc)
        rc = spec_init(&s, c, props, e);
    else
        memset(&s, 0, sizeof s);
    if (!rc)
        rc = open_ours(&repo, &s, e);
    if (rc <= 0)
        goto out; /* gone, not a repository, or another url's */
    rc = 0;
    r->exists = true;
    char sha[GIT_OID_HEXSZ + 1] = "";
    git_oid head;
    if (git_reference_name_to_id(&head, repo, "HEAD") == 0)
        git_oid_tostr(sha, sizeof sha, &head);
    else
        git_error_clear();
    const char *was = c->old_outputs ? val_map_str(c->old_outputs, "sha", NULL) : NULL;
    want = was ? xstrdup(was) : recorded(repo, "prenv.sha");
    ref = recorded(repo, "prenv.ref");
    if (!ref) {
        const char *r0 = c->old_outputs ? val_map_str(c->old_outputs, "ref", NULL) : NULL;
        ref = xstrdup(r0 ? r0 : s.ref ? s.ref : s.sha ? s.sha : "");
    }
    if (!*sha)
        sb_addf(&drift, "HEAD of %s has no commit", s.dir);
    else if (want && strcmp(want, sha))
        sb_addf(&drift, "HEAD of %s is at %.12s, not the checked-out %.12s", s.dir, sha, want);
    if (*sha && (rc = local_changes(&changes, repo, &s, e)))
        goto out;
    if (changes.len)
        sb_addf(&drift, "%swork tree of %s has local changes: %s", drift.len ? "; " : "", s.dir,
                changes.buf);
    set_outputs(r, s.dir, sha, ref);
    if (drift.len)
        r->drift = sb_steal(&drift);
out:
    if (rc)
        r->exists = false;
    git_repository_free(repo);
    free(ref);
    free(want);
    sb_release(&drift);
    sb_release(&changes);
    spec_release(&s);
    return rc;
}

static int gc_remove(const struct prov_call *c, struct err *e)
{
    struct spec s;
    int rc = spec_init(&s, c, c->old_props ? c->old_props : c->props, e);
    if (!rc)
        rc = fs_rm_rf(s.dir, e);
    if (!rc)
        rc = fs_rm_rf(s.tmp, e);
    spec_release(&s);
    return rc;
}

const struct provider prov_git_checkout = {
    .type = "git.checkout",
    .summary = "a git repository checked out at a branch, tag or exact commit (libgit2)",
    .props = schema,
    .outputs = outputs,
    .check = gc_check,
    .create = gc_apply,
    .read = gc_read,
    .update = gc_apply,
    .remove = gc_remove,
};
