/* promo: promotion records on disk and the identity of who acts. */
#include "envs/promo.h"

#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/vcs.h"
#include "core/lib/xalloc.h"
#include "core/state.h"
#include "envs/op.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROMO_MAX_FILE ((size_t)1 << 20)

/* user.email, else user.name, from the configuration the repository holding
 * dir sees; NULL when dir is in no repository or neither is set */
static char *git_identity(const char *dir)
{
    struct err e = {0};
    char *id = NULL;
    if (!dir || vcs_init(&e)) {
        err_release(&e);
        return NULL;
    }
    git_repository *repo = NULL;
    if (git_repository_open_ext(&repo, dir, 0, NULL) == 0) {
        git_config *cfg = NULL;
        if (git_repository_config_snapshot(&cfg, repo) == 0) {
            static const char *const keys[] = {"user.email", "user.name"};
            for (size_t i = 0; i < 2 && !id; i++) {
                const char *v = NULL;
                if (git_config_get_string(&v, cfg, keys[i]) == 0 && v && *v)
                    id = xstrdup(v);
            }
            git_config_free(cfg);
        }
        git_repository_free(repo);
    }
    return id;
}

char *promo_identity(const char *project_dir)
{
    const char *u = getenv("PRENV_USER");
    if (u && *u)
        return xstrdup(u);
    char *id = git_identity(project_dir);
    return id ? id : op_user();
}

bool promo_same_person(const char *a, const char *b)
{
    return a && b && !strcasecmp(a, b);
}

int promo_check_id(const char *id, struct err *e)
{
    size_t n = strlen(id);
    bool ok = n == PROMO_ID_LEN;
    for (size_t i = 0; ok && i < n; i++)
        ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
    if (ok)
        return 0;
    err_set(e, PE_USAGE, NULL, "'%s' is not a promotion id: ids are %d hex digits, like 3fa9c0",
            id, PROMO_ID_LEN);
    err_hint(e, "`prenv promotions` lists them");
    return PE_USAGE;
}

int promo_lock(struct lock *l, const char *state_dir, const char *command, struct err *e)
{
    /* a name no environment can have (env names start with a letter or digit) */
    return lock_acquire(l, state_dir, ".promotions", command, -1, NULL, NULL, e);
}

static char *record_path(const char *state_dir, const char *id)
{
    return xasprintf("%s/promotions/%s.json", state_dir, id);
}

int promo_save(const struct val *rec, const char *state_dir, struct err *e)
{
    const char *id = val_map_str(rec, "id", NULL);
    if (!id)
        return err_set(e, PE_INTERNAL, NULL, "promotion record without an id");
    char *dir = xasprintf("%s/promotions", state_dir);
    int rc = fs_mkdir_p(dir, 0700, e);
    free(dir);
    if (rc)
        return rc;
    struct sb b;
    sb_init(&b);
    val_json(&b, rec, VAL_JSON_PRETTY);
    sb_addc(&b, '\n');
    char *path = record_path(state_dir, id);
    rc = fs_write_atomic(path, b.buf, b.len, 0600, e);
    free(path);
    sb_release(&b);
    return rc;
}

int promo_create(struct val *rec, const char *state_dir, const char **id, struct err *e)
{
    for (int attempt = 0; attempt < 64; attempt++) {
        unsigned char r[PROMO_ID_LEN / 2];
        char hex[PROMO_ID_LEN + 1];
        int rc = crypto_random(r, sizeof r);
        if (rc)
            return err_errno(e, -rc, "cannot make a promotion id");
        for (size_t i = 0; i < sizeof r; i++)
            snprintf(hex + 2 * i, 3, "%02x", r[i]);
        char *path = record_path(state_dir, hex);
        bool taken = fs_exists(path);
        free(path);
        if (taken)
            continue;
        val_map_set(rec, "id", NULL, val_str(hex, NULL));
        if ((rc = promo_save(rec, state_dir, e)))
            return rc;
        *id = val_map_str(rec, "id", NULL);
        return 0;
    }
    return err_set(e, PE_LIMIT, NULL, "no free promotion id after 64 tries");
}

static int parse_record(struct val **out, const char *text, size_t len, const char *path,
                        struct err *e)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        err_set(e, PE_STATE, NULL, "%s is not a promotion record (not a JSON object)", path);
        err_hint(e, "restore it from a backup, or remove it to forget that promotion");
        return PE_STATE;
    }
    struct val *v = val_from_cjson(j);
    cJSON_Delete(j);
    long long schema = val_map_int(v, "schema", 0);
    if (schema > PROMO_SCHEMA || !val_map_str(v, "id", NULL) || !val_map_str(v, "to", NULL) ||
        !val_map_str(v, "state", NULL)) {
        val_free(v);
        err_set(e, PE_STATE, NULL, "%s is %s", path,
                schema > PROMO_SCHEMA ? "from a newer prenv (schema too new)"
                                      : "missing its id, target or state");
        return PE_STATE;
    }
    *out = v;
    return 0;
}

int promo_load(struct val **out, const char *state_dir, const char *id, struct err *e)
{
    *out = NULL;
    int rc = promo_check_id(id, e);
    if (rc)
        return rc;
    char *path = record_path(state_dir, id);
    char *text = NULL;
    size_t len = 0;
    rc = fs_read(path, PROMO_MAX_FILE, &text, &len, e);
    if (rc == -ENOENT) {
        err_release(e);
        err_set(e, PE_NOTFOUND, NULL, "no promotion '%s'", id);
        err_hint(e, "`prenv promotions` lists them; `prenv promote FROM TO` asks for one");
        rc = PE_NOTFOUND;
    } else if (!rc) {
        rc = parse_record(out, text, len, path, e);
    }
    free(text);
    free(path);
    return rc;
}

static int cmp_requested(const void *a, const void *b)
{
    const struct val *x = *(struct val *const *)a, *y = *(struct val *const *)b;
    int c = strcmp(val_map_str(x, "requested_at", ""), val_map_str(y, "requested_at", ""));
    return c ? c : strcmp(val_map_str(x, "id", ""), val_map_str(y, "id", ""));
}

int promo_list(struct val **out, struct val **bad, const char *state_dir, struct err *e)
{
    *out = val_list(NULL);
    *bad = val_list(NULL);
    char *dir = xasprintf("%s/promotions", state_dir);
    DIR *d = opendir(dir);
    if (!d) {
        int er = errno;
        int rc = er == ENOENT ? 0 : err_errno(e, er, "cannot list %s", dir);
        free(dir);
        return rc;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l <= 5 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        char *path = xasprintf("%s/%s", dir, de->d_name);
        char *text = NULL;
        size_t len = 0;
        struct err fe = {0};
        struct val *rec = NULL;
        if (!fs_read(path, PROMO_MAX_FILE, &text, &len, &fe) &&
            !parse_record(&rec, text, len, path, &fe))
            val_list_push(*out, rec);
        else
            val_list_push(*bad, val_str(fe.msg ? fe.msg : path, NULL));
        err_release(&fe);
        free(text);
        free(path);
    }
    closedir(d);
    free(dir);
    if ((*out)->u.list.n > 1)
        qsort((*out)->u.list.v, (*out)->u.list.n, sizeof(struct val *), cmp_requested);
    return 0;
}

void promo_set_now(struct val *rec, const char *key)
{
    struct sb t;
    sb_init(&t);
    tm_rfc3339(&t, tm_now_ms());
    val_map_set(rec, key, NULL, val_str_own(sb_steal(&t), NULL));
}

int promo_history(const char *state_dir, const struct val *rec, const char *result,
                  const char *user, struct err *e)
{
    struct val *h = val_map(NULL);
    promo_set_now(h, "time");
    val_map_set(h, "user", NULL, val_str(user, NULL));
    val_map_set(h, "operation", NULL, val_str("promote", NULL));
    val_map_set(h, "sha", NULL, val_null(NULL));
    val_map_set(h, "result", NULL, val_str(result, NULL));
    val_map_set(h, "artifact", NULL, val_str(val_map_str(rec, "digest", ""), NULL));
    static const char *const keys[] = {"id",          "from",        "requested_by",
                                       "approved_by", "rejected_by", "reason"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const struct val *v = val_map_get(rec, keys[i]);
        if (v && v->kind != VAL_NULL)
            val_map_set(h, i ? keys[i] : "promotion", NULL, val_clone(v));
    }
    int rc = state_history_append(state_dir, val_map_str(rec, "to", ""), h, e);
    val_free(h);
    return rc;
}
