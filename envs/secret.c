/* secret: Pulumi's v1 passphrase format on mbedTLS (PBKDF2, AES-GCM,
 * base64), passphrases, and the process's cache of project keys. What is
 * sealed where, and when a value is opened, is core/lib/seal.c's business. */
#include "envs/secret.h"

#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/seal.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/base64.h>
#include <mbedtls/gcm.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define NONCE_LEN 12
#define TAG_LEN 16
#define SALT_LEN 8
#define MAX_SALT 64
#define MAX_SECRET ((size_t)1 << 20) /* one secret value at most 1 MiB */
#define MAX_PASSPHRASE 4096

struct secret_key {
    unsigned char key[32];
    char *salt; /* the salt state it was derived for */
};

/* ---- the KDF ---- */

static unsigned iterations_override;

void secret_set_kdf_iterations(unsigned n)
{
    __atomic_store_n(&iterations_override, n, __ATOMIC_RELAXED);
}

unsigned secret_kdf_iterations(void)
{
    unsigned n = __atomic_load_n(&iterations_override, __ATOMIC_RELAXED);
    if (n)
        return n;
    static int warned;
    const char *t = getenv("PRENV_TEST_KDF_ITERATIONS");
    long long v;
    if (t && *t && str_parse_int(t, 1, SECRET_KDF_ITERATIONS, &v)) {
        if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
            fprintf(stderr, "prenv: warning: PRENV_TEST_KDF_ITERATIONS=%lld: keys are derived "
                            "with %lld PBKDF2 iterations instead of %d; secrets written now "
                            "open only with this setting (it is for tests)\n",
                    v, v, SECRET_KDF_ITERATIONS);
        return (unsigned)v;
    }
    return SECRET_KDF_ITERATIONS;
}

int secret_kdf(unsigned char key[32], const char *pass, size_t plen, const unsigned char *salt,
               size_t slen, unsigned iterations)
{
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    int rc = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    if (!rc)
        rc = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)pass, plen, salt, slen,
                                       iterations, 32, key);
    mbedtls_md_free(&md);
    return rc ? PE_INTERNAL : 0;
}

/* ---- base64 and the v1 value ---- */

static char *b64(const unsigned char *d, size_t n)
{
    size_t olen = 0;
    mbedtls_base64_encode(NULL, 0, &olen, d, n);
    char *out = xmalloc(olen + 1);
    if (mbedtls_base64_encode((unsigned char *)out, olen + 1, &olen, d, n)) {
        free(out);
        return NULL;
    }
    out[olen] = 0;
    return out;
}

/* decode n bytes of base64 text into a new buffer */
static int unb64(unsigned char **out, size_t *olen, const char *s, size_t n)
{
    size_t need = 0;
    *out = NULL;
    int rc = mbedtls_base64_decode(NULL, 0, &need, (const unsigned char *)s, n);
    if (rc == MBEDTLS_ERR_BASE64_INVALID_CHARACTER)
        return -1;
    *out = xmalloc(need + 1);
    if (mbedtls_base64_decode(*out, need + 1, olen, (const unsigned char *)s, n)) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

int secret_encrypt(char **out, const struct secret_key *k, const void *plain, size_t n,
                   struct err *e)
{
    *out = NULL;
    if (n > MAX_SECRET)
        return err_set(e, PE_LIMIT, NULL, "a secret value is larger than %zu bytes", MAX_SECRET);
    unsigned char nonce[NONCE_LEN];
    int rc = crypto_random(nonce, sizeof nonce);
    if (rc)
        return err_errno(e, -rc, "cannot read random bytes for a nonce");
    unsigned char *ct = xmalloc(n + TAG_LEN);
    mbedtls_gcm_context g;
    mbedtls_gcm_init(&g);
    rc = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, k->key, 256);
    if (!rc)
        rc = mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, n, nonce, NONCE_LEN, NULL, 0,
                                       plain, ct, TAG_LEN, ct + n);
    mbedtls_gcm_free(&g);
    if (rc) {
        free(ct);
        return err_set(e, PE_INTERNAL, NULL, "AES-GCM encryption failed (mbedTLS %d)", rc);
    }
    char *bn = b64(nonce, NONCE_LEN), *bc = b64(ct, n + TAG_LEN);
    free(ct);
    *out = xasprintf("v1:%s:%s", bn, bc);
    free(bn);
    free(bc);
    return 0;
}

int secret_decrypt(char **out, size_t *n, const struct secret_key *k, const char *ct,
                   struct err *e)
{
    *out = NULL;
    const char *c1 = strchr(ct, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || strchr(c2 + 1, ':'))
        return err_set(e, PE_SECRET, NULL,
                       "not an encrypted value: expected v1:<nonce>:<ciphertext>");
    if (c1 - ct != 2 || strncmp(ct, "v1", 2) != 0)
        return err_set(e, PE_SECRET, NULL, "unknown secret format '%.*s' (only v1 is known)",
                       (int)(c1 - ct > 8 ? 8 : c1 - ct), ct);
    unsigned char *nonce = NULL, *data = NULL;
    size_t nl = 0, dl = 0;
    int rc = 0;
    if (unb64(&nonce, &nl, c1 + 1, (size_t)(c2 - c1 - 1)) || nl != NONCE_LEN) {
        rc = err_set(e, PE_SECRET, NULL, "malformed secret: the nonce is not 12 bytes of base64");
        goto out;
    }
    if (unb64(&data, &dl, c2 + 1, strlen(c2 + 1)) || dl < TAG_LEN || dl - TAG_LEN > MAX_SECRET) {
        rc = err_set(e, PE_SECRET, NULL, "malformed secret: the ciphertext is not base64 or too "
                                         "short");
        goto out;
    }
    size_t pl = dl - TAG_LEN;
    char *plain = xmalloc(pl + 1);
    mbedtls_gcm_context g;
    mbedtls_gcm_init(&g);
    int mrc = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, k->key, 256);
    if (!mrc)
        mrc = mbedtls_gcm_auth_decrypt(&g, pl, nonce, NONCE_LEN, NULL, 0, data + pl, TAG_LEN,
                                       data, (unsigned char *)plain);
    mbedtls_gcm_free(&g);
    if (mrc) {
        wipe(plain, pl);
        free(plain);
        rc = err_set(e, PE_SECRET, NULL,
                     "a secret does not decrypt: it was encrypted under another passphrase or "
                     "salt, or it was altered");
        goto out;
    }
    plain[pl] = 0;
    *out = plain;
    if (n)
        *n = pl;
out:
    free(nonce);
    free(data);
    return rc;
}

/* ---- keys ---- */

void secret_key_free(struct secret_key *k)
{
    if (!k)
        return;
    wipe(k->key, sizeof k->key);
    free(k->salt);
    free(k);
}

const char *secret_key_salt(const struct secret_key *k)
{
    return k->salt;
}

int secret_key_open(struct secret_key **out, const char *salt, const char *pass, size_t plen,
                    const char *where, struct err *e)
{
    *out = NULL;
    const char *w = where ? where : "encryptionsalt";
    const char *c1 = strchr(salt, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || c1 - salt != 2 || strncmp(salt, "v1", 2) != 0) {
        err_set(e, PE_CONFIG, NULL, "%s: the encryptionsalt '%.20s...' is not of the form "
                                    "v1:<salt>:<check value>",
                w, salt);
        err_hint(e, "restore it from version control: without it no secret of the project opens");
        return PE_CONFIG;
    }
    unsigned char *sb = NULL;
    size_t sl = 0;
    if (unb64(&sb, &sl, c1 + 1, (size_t)(c2 - c1 - 1)) || sl == 0 || sl > MAX_SALT) {
        free(sb);
        return err_set(e, PE_CONFIG, NULL, "%s: the encryptionsalt's salt is not base64", w);
    }
    struct secret_key *k = xcalloc(1, sizeof *k);
    k->salt = xstrdup(salt);
    if (secret_kdf(k->key, pass, plen, sb, sl, secret_kdf_iterations())) {
        free(sb);
        secret_key_free(k);
        return err_set(e, PE_INTERNAL, NULL, "PBKDF2 failed");
    }
    free(sb);
    char *check = NULL;
    size_t cl = 0;
    struct err de = {0};
    int rc = secret_decrypt(&check, &cl, k, c2 + 1, &de);
    bool ok = !rc && cl == 6 && !memcmp(check, "pulumi", 6);
    free(check);
    if (!ok) {
        secret_key_free(k);
        if (rc && rc != PE_SECRET) {
            err_move(e, &de);
            return rc;
        }
        err_release(&de);
        err_set(e, PE_SECRET, NULL, "wrong passphrase: it does not unlock the secrets of %s", w);
        return PE_SECRET;
    }
    *out = k;
    return 0;
}

int secret_key_new(struct secret_key **out, const char *pass, size_t plen, struct err *e)
{
    *out = NULL;
    unsigned char salt[SALT_LEN];
    int rc = crypto_random(salt, sizeof salt);
    if (rc)
        return err_errno(e, -rc, "cannot read random bytes for a salt");
    struct secret_key *k = xcalloc(1, sizeof *k);
    if (secret_kdf(k->key, pass, plen, salt, sizeof salt, secret_kdf_iterations())) {
        secret_key_free(k);
        return err_set(e, PE_INTERNAL, NULL, "PBKDF2 failed");
    }
    char *check = NULL;
    if ((rc = secret_encrypt(&check, k, "pulumi", 6, e))) {
        secret_key_free(k);
        return rc;
    }
    char *bs = b64(salt, sizeof salt);
    k->salt = xasprintf("v1:%s:%s", bs, check);
    free(bs);
    free(check);
    *out = k;
    return 0;
}

/* ---- values ---- */

int secret_open_val(struct val **out, const struct secret_key *k, const struct val *sealed,
                    struct err *e)
{
    *out = NULL;
    char *plain = NULL;
    size_t n = 0;
    int rc = secret_decrypt(&plain, &n, k, sealed->u.str.s, e);
    if (rc)
        return rc;
    struct val *v = NULL;
    if (sealed->sealed_json) {
        cJSON *j = cJSON_ParseWithLength(plain, n);
        if (!j) {
            wipe(plain, n);
            free(plain);
            return err_set(e, PE_SECRET, &sealed->pos, "a sealed value decrypts to invalid JSON");
        }
        v = val_from_cjson(j);
        cJSON_Delete(j);
    } else {
        if (memchr(plain, 0, n)) {
            wipe(plain, n);
            free(plain);
            return err_set(e, PE_SECRET, &sealed->pos, "a secret decrypts to text with a NUL byte");
        }
        v = val_strn(plain, n, &sealed->pos);
    }
    wipe(plain, n);
    free(plain);
    val_mark_secret(v);
    v->pos = sealed->pos;
    *out = v;
    return 0;
}

int secret_seal_val(struct val **out, const struct secret_key *k, const struct val *v,
                    struct err *e)
{
    *out = NULL;
    struct sb b;
    sb_init(&b);
    val_json(&b, v, 0);
    char *ct = NULL;
    int rc = secret_encrypt(&ct, k, b.buf, b.len, e);
    wipe(b.buf, b.len);
    sb_release(&b);
    if (rc)
        return rc;
    struct val *s = val_str_own(ct, &v->pos);
    s->secret = s->encrypted = s->sealed_json = 1;
    *out = s;
    return 0;
}

int secret_seal_string(struct val **out, const struct secret_key *k, const char *str,
                       struct err *e)
{
    *out = NULL;
    char *ct = NULL;
    int rc = secret_encrypt(&ct, k, str, strlen(str), e);
    if (rc)
        return rc;
    struct val *s = val_str_own(ct, NULL);
    s->secret = s->encrypted = 1;
    *out = s;
    return 0;
}

/* ---- passphrases ---- */

void secret_wipe_free(char *s)
{
    if (!s)
        return;
    wipe(s, strlen(s));
    free(s);
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return xstrndup(s + i, n - i);
}

static int prompt_tty(char **out, const char *prompt, struct err *e)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return PE_SECRET;
    struct termios old, quiet;
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    if (write(fd, prompt, strlen(prompt)) < 0 || write(fd, ": ", 2) < 0) {
        /* the prompt is a courtesy; reading still works */
    }
    char buf[MAX_PASSPHRASE];
    size_t n = 0;
    int rc = 0;
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || ch == '\n')
            break;
        if (n + 1 >= sizeof buf) {
            rc = err_set(e, PE_LIMIT, NULL, "the passphrase is longer than %d bytes",
                         MAX_PASSPHRASE - 1);
            break;
        }
        buf[n++] = ch;
    }
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) {
        /* nothing to do */
    }
    close(fd);
    if (!rc)
        *out = trim_dup(buf, n);
    wipe(buf, sizeof buf);
    return rc;
}

int secret_passphrase(char **out, const char *var, const char *file_var, const char *prompt,
                      struct err *e)
{
    *out = NULL;
    const char *v = getenv(var);
    if (v) {
        *out = xstrdup(v);
        return 0;
    }
    const char *f = file_var ? getenv(file_var) : NULL;
    if (f && *f) {
        char *text = NULL;
        size_t len = 0;
        struct err fe = {0};
        int rc = fs_read(f, MAX_PASSPHRASE, &text, &len, &fe);
        if (rc) {
            err_set(e, PE_SECRET, NULL, "cannot read the passphrase file %s (from $%s): %s", f,
                    file_var, fe.msg ? fe.msg : "error");
            err_release(&fe);
            err_hint(e, "point $%s at a readable file holding the passphrase", file_var);
            return PE_SECRET;
        }
        *out = trim_dup(text, len);
        wipe(text, len);
        free(text);
        return 0;
    }
    if (prompt && isatty(0)) {
        int rc = prompt_tty(out, prompt, e);
        if (rc != PE_SECRET || e->code)
            return rc;
    }
    err_set(e, PE_SECRET, NULL, "no passphrase: $%s is not set%s%s%s", var,
            file_var ? " and neither is $" : "", file_var ? file_var : "",
            prompt ? ", and there is no terminal to ask on" : "");
    err_hint(e, "export %s=... (or %s=/path/to/file) with the passphrase the secrets were "
                "encrypted with",
             var, file_var ? file_var : var);
    return PE_SECRET;
}

/* ---- the project's key ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char *proj_salt, *proj_where;
static struct secret_key **cache; /* every key derived in this process */
static size_t ncache, capcache;

static void clear_cache(void)
{
    for (size_t i = 0; i < ncache; i++)
        secret_key_free(cache[i]);
    free(cache);
    cache = NULL;
    ncache = capcache = 0;
}

static void free_all(void)
{
    pthread_mutex_lock(&mu);
    clear_cache();
    free(proj_salt);
    free(proj_where);
    proj_salt = proj_where = NULL;
    pthread_mutex_unlock(&mu);
}

static int hook_open(const struct val *sealed, unsigned flags, struct val **out, struct err *e);
static int hook_seal(const struct val *v, unsigned flags, struct val **out, struct err *e);
static const struct seal_hooks hooks = {hook_open, hook_seal};

void secret_project_set(const char *salt, const char *where)
{
    static int registered;
    pthread_mutex_lock(&mu);
    free(proj_salt);
    free(proj_where);
    proj_salt = salt ? xstrdup(salt) : NULL;
    proj_where = xstrdup(where ? where : "prenv.yaml");
    if (!registered) {
        registered = 1;
        atexit(free_all);
    }
    pthread_mutex_unlock(&mu);
    seal_set_hooks(&hooks);
}

const char *secret_project_salt(void)
{
    pthread_mutex_lock(&mu);
    const char *s = proj_salt;
    pthread_mutex_unlock(&mu);
    return s;
}

void secret_project_forget(void)
{
    pthread_mutex_lock(&mu);
    clear_cache();
    pthread_mutex_unlock(&mu);
}

int secret_project_key(const struct secret_key **out, unsigned flags, struct err *e)
{
    *out = NULL;
    pthread_mutex_lock(&mu);
    int rc = 0;
    if (!proj_salt) {
        err_set(e, PE_SECRET, NULL, "this project has no encryptionsalt in %s, so it has no key "
                                    "to open or seal secrets with",
                proj_where ? proj_where : "prenv.yaml");
        err_hint(e, "`prenv config set KEY VALUE --env ENV --secret` creates one; values "
                    "encrypted for a Pulumi stack come in with `prenv config import-pulumi`");
        rc = PE_SECRET;
        goto out;
    }
    for (size_t i = 0; i < ncache; i++)
        if (!strcmp(cache[i]->salt, proj_salt)) {
            *out = cache[i];
            goto out;
        }
    char *pass = NULL;
    char *prompt = xasprintf("passphrase for the secrets of this project (%s)", proj_where);
    rc = secret_passphrase(&pass, "PRENV_PASSPHRASE", "PRENV_PASSPHRASE_FILE",
                           (flags & SEAL_PROMPT) ? prompt : NULL, e);
    free(prompt);
    if (rc)
        goto out;
    struct secret_key *k = NULL;
    rc = secret_key_open(&k, proj_salt, pass, strlen(pass), proj_where, e);
    secret_wipe_free(pass);
    if (rc) {
        if (rc == PE_SECRET)
            err_hint(e, "PRENV_PASSPHRASE (or the file PRENV_PASSPHRASE_FILE names) must hold "
                        "the passphrase the project's secrets were encrypted with");
        goto out;
    }
    XGROW(cache, capcache, ncache + 1);
    cache[ncache++] = k;
    *out = k;
out:
    pthread_mutex_unlock(&mu);
    return rc;
}

static int hook_open(const struct val *sealed, unsigned flags, struct val **out, struct err *e)
{
    const struct secret_key *k = NULL;
    int rc = secret_project_key(&k, flags, e);
    if (rc) {
        if (sealed->pos.src)
            err_prefix(e, "the secret at %s:%d is needed: ", sealed->pos.src->name,
                       sealed->pos.line);
        else
            err_prefix(e, "a secret is needed: ");
        return rc;
    }
    rc = secret_open_val(out, k, sealed, e);
    if (rc && sealed->pos.src) {
        e->pos = sealed->pos;
        err_hint(e, "set it again with `prenv config set KEY VALUE --env ENV --secret`, or "
                    "import it with the salt it was encrypted with");
    }
    return rc;
}

static int hook_seal(const struct val *v, unsigned flags, struct val **out, struct err *e)
{
    if (!secret_project_salt())
        return SEAL_OFF;
    const struct secret_key *k = NULL;
    int rc = secret_project_key(&k, flags, e);
    if (rc)
        return rc;
    return secret_seal_val(out, k, v, e);
}

void secret_project_adopt(struct secret_key *k, const char *where)
{
    pthread_mutex_lock(&mu);
    free(proj_salt);
    proj_salt = xstrdup(k->salt);
    if (where) {
        free(proj_where);
        proj_where = xstrdup(where);
    }
    XGROW(cache, capcache, ncache + 1);
    cache[ncache++] = k;
    pthread_mutex_unlock(&mu);
    seal_set_hooks(&hooks);
}

int secret_project_init(const struct secret_key **out, const char *project_file, struct err *e)
{
    *out = NULL;
    if (secret_project_salt())
        return secret_project_key(out, SEAL_PROMPT, e);
    char *pass = NULL;
    int rc = secret_passphrase(&pass, "PRENV_PASSPHRASE", "PRENV_PASSPHRASE_FILE",
                               "new passphrase for this project's secrets", e);
    if (rc)
        return rc;
    if (!getenv("PRENV_PASSPHRASE") && !getenv("PRENV_PASSPHRASE_FILE")) {
        char *again = NULL;
        rc = secret_passphrase(&again, "PRENV_PASSPHRASE", NULL, "the same passphrase again", e);
        bool same = !rc && !strcmp(pass, again);
        secret_wipe_free(again);
        if (!rc && !same) {
            secret_wipe_free(pass);
            return err_set(e, PE_USAGE, NULL, "the two passphrases differ; nothing was changed");
        }
        if (rc) {
            secret_wipe_free(pass);
            return rc;
        }
    }
    struct secret_key *k = NULL;
    rc = secret_key_new(&k, pass, strlen(pass), e);
    secret_wipe_free(pass);
    if (rc)
        return rc;
    char *text = NULL;
    size_t len = 0;
    if ((rc = fs_read(project_file, (size_t)16 << 20, &text, &len, e))) {
        secret_key_free(k);
        return rc;
    }
    struct sb b;
    sb_init(&b);
    sb_add(&b, text, len);
    if (len && text[len - 1] != '\n')
        sb_addc(&b, '\n');
    sb_addf(&b, "# the salt of the secrets' key (Pulumi's passphrase format); keep it with the "
                "config files\nencryptionsalt: %s\n",
            k->salt);
    int line = 0;
    for (size_t i = 0; i < b.len; i++)
        if (b.buf[i] == '\n')
            line++;
    rc = fs_write_atomic(project_file, b.buf, b.len, 0644, e);
    sb_release(&b);
    free(text);
    if (rc) {
        secret_key_free(k);
        return rc;
    }
    char *where = xasprintf("prenv.yaml:%d", line);
    *out = k;
    secret_project_adopt(k, where);
    free(where);
    return 0;
}
