/* config set: write one value into an environment's own config layer file,
 * keeping the rest of the file; --secret stores it encrypted (secure: v1:...). */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "envs/cfgedit.h"
#include "envs/project.h"
#include "envs/secret.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct set_opts {
    const char *env;
    bool secret;
};

#define O(f) offsetof(struct set_opts, f)
static const struct cmd_opt opts[] = {
    {"env", 'e', OPT_STR, O(env), "ENV", "the environment whose config file is written (required)"},
    {"secret", 0, OPT_BOOL, O(secret), NULL, "store the value encrypted (secure: v1:...)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

/* VALUE "-": read from stdin (so a secret stays out of argv and shell history) */
static char *read_value(const char *arg, struct err *e)
{
    if (strcmp(arg, "-") != 0)
        return xstrdup(arg);
    struct sb b;
    sb_init_max(&b, (size_t)1 << 20);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        sb_add(&b, buf, n);
    if (!sb_ok(&b)) {
        sb_release(&b);
        err_set(e, PE_LIMIT, NULL, "the value on stdin is larger than 1 MiB");
        return NULL;
    }
    while (b.len && (b.buf[b.len - 1] == '\n' || b.buf[b.len - 1] == '\r'))
        b.buf[--b.len] = 0;
    return sb_steal(&b);
}

static int exec_set(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct set_opts *o = vo;
    if (!o->env)
        return cmd_usage_error(c, "--env ENV is required");
    struct err e = {0};
    struct project *p = NULL;
    char *rel = NULL, *abs = NULL, *value = NULL, *yaml = NULL;
    struct val *sealed = NULL;
    int code = EXIT_OK;
    if (cmd_env_layer(c, o->env, &p, &rel, &e) || !(value = read_value(argv[1], &e)))
        goto fail;
    struct cfgedit_value v = {0};
    if (o->secret) {
        const struct secret_key *k = NULL;
        if (secret_project_init(&k, p->file, &e) || secret_seal_string(&sealed, k, value, &e))
            goto fail;
        v.secure = sealed->u.str.s;
    } else {
        struct val *t = yt_scalar(value, NULL);
        yaml = t->kind == VAL_STR ? cfgedit_scalar(value) : xstrdup(value);
        val_free(t);
        v.yaml = yaml;
    }
    abs = fs_abspath(p->dir, rel);
    if (cfgedit_file(abs, rel, argv[0], &v, &e))
        goto fail;
    printf("%s: set %s%s\n", rel, argv[0], o->secret ? " (secret, encrypted)" : "");
    goto out;
fail:
    code = cmd_error(c, &e);
out:
    if (value)
        secret_wipe_free(value);
    val_free(sealed);
    free(yaml);
    free(abs);
    free(rel);
    project_free(p);
    err_release(&e);
    return code;
}

const struct cmd_entry cmd_config_set_entry = {
    .name = "config set",
    .args = "KEY VALUE",
    .min_args = 2,
    .max_args = 2,
    .summary = "set a config value in an env's own config file (--secret: encrypted)",
    .help = "KEY is dotted (db.size); VALUE is typed like YAML (3 is a number) and `-` reads it "
            "from stdin, which keeps a secret out of the shell's history. The value goes under "
            "'values:' of the environment's config file (envs/ENV.yaml for a stage, unless "
            "prenv.yaml says otherwise); the rest of the file is kept as written. With "
            "--secret it is stored as `secure: v1:...`, in the format of Pulumi's passphrase "
            "provider; the passphrase comes from $PRENV_PASSPHRASE, the file "
            "$PRENV_PASSPHRASE_FILE names, or a prompt, and the first secret of a project adds "
            "'encryptionsalt:' to prenv.yaml.",
    .opts = opts,
    .opts_size = sizeof(struct set_opts),
    .exec = exec_set,
};
