/* envpolicy: log level, feature flags, log retention and redaction as an env
 * hands them to its services; see envpolicy.h. */
#include "envs/envpolicy.h"

#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const levels[] = {"debug", "info", "warn", "warning", "error", NULL};

const char *env_log_level_default(enum env_kind k)
{
    return k == ENV_STAGE ? "info" : "debug";
}

const char *env_log_level(enum env_kind k, const struct val *cfg)
{
    const struct val *v = cfg ? val_map_get(cfg, "log_level") : NULL;
    if (v && v->kind == VAL_STR && !v->encrypted && *v->u.str.s)
        return v->u.str.s;
    return env_log_level_default(k);
}

static bool level_ok(const struct val *v)
{
    if (v->kind != VAL_STR || v->encrypted)
        return false;
    for (size_t i = 0; levels[i]; i++)
        if (!strcmp(v->u.str.s, levels[i]))
            return true;
    return false;
}

int env_policy_check(const struct val *cfg, struct err *e)
{
    if (!cfg || cfg->kind != VAL_MAP)
        return 0;
    const struct val *v = val_map_get(cfg, "log_level");
    if (v && v->kind != VAL_NULL && !level_ok(v))
        return err_set(e, PE_CONFIG, &v->pos,
                       "log_level must be one of debug, info, warn, warning, error");
    v = val_map_get(cfg, "flags");
    if (!v || v->kind == VAL_NULL)
        return 0;
    if (v->kind != VAL_MAP)
        return err_set(e, PE_CONFIG, &v->pos,
                       "flags must be a map of flag names to true, false, numbers or strings");
    for (size_t i = 0; i < v->u.map.n; i++) {
        const struct val_entry *f = &v->u.map.e[i];
        if (!*f->key)
            return err_set(e, PE_CONFIG, &f->kpos, "a flag needs a name");
        const struct val *x = f->v;
        if (x->encrypted || x->secret)
            return err_set(e, PE_CONFIG, &x->pos,
                           "flag '%s' cannot be a secret: flags are shown by `prenv flags "
                           "list`",
                           f->key);
        if (x->kind != VAL_BOOL && x->kind != VAL_INT && x->kind != VAL_FLOAT && x->kind != VAL_STR)
            return err_set(e, PE_CONFIG, &x->pos,
                           "flag '%s' must be true, false, a number or a string, not a %s", f->key,
                           val_kind_name(x->kind));
    }
    return 0;
}

char *env_flag_var(const char *name)
{
    struct sb b;
    sb_init(&b);
    sb_adds(&b, "FLAG_");
    for (const char *c = name; *c; c++) {
        char ch = *c;
        if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        else if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            ch = '_';
        sb_addc(&b, ch);
    }
    return sb_steal(&b);
}

void env_flag_text(struct sb *out, const struct val *v)
{
    if (v->kind == VAL_BOOL)
        sb_adds(out, v->u.b ? "1" : "0");
    else
        val_text(out, v);
}

void env_policy_apply(struct val *props, const struct env_def *d, const struct val *cfg)
{
    if (!props || props->kind != VAL_MAP)
        return;
    struct val *env = val_map_get(props, "env");
    if (!env || env->kind == VAL_NULL) {
        val_map_set(props, "env", NULL, val_map(NULL));
        env = val_map_get(props, "env");
    }
    if (env->kind != VAL_MAP) /* not known until apply: it gets them then */
        goto logs;
    val_map_set(env, "PRENV_LOG_LEVEL", NULL, val_str(env_log_level(d->kind, cfg), NULL));
    const struct val *flags = cfg ? val_map_get(cfg, "flags") : NULL;
    for (size_t i = 0; flags && flags->kind == VAL_MAP && i < flags->u.map.n; i++) {
        char *var = env_flag_var(flags->u.map.e[i].key);
        struct sb b;
        sb_init(&b);
        env_flag_text(&b, flags->u.map.e[i].v);
        val_map_set(env, var, NULL, val_str_own(sb_steal(&b), NULL));
        free(var);
    }
logs:
    if (d->retain_set)
        val_map_set(props, "log_keep", NULL, val_int(d->retain, NULL));
    if (d->pii_redact)
        val_map_set(props, "log_redact", NULL, val_bool(true, NULL));
}
