/* env list: every environment with a state, as a table or JSON. Reads only
 * the summary fields of each state file; takes no locks. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "core/lib/fs.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/state.h"
#include "envs/project.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct list_opts {
    bool json;
    const char *kind;
    struct opt_list tag;
};

#define O(f) offsetof(struct list_opts, f)
static const struct cmd_opt opts[] = {
    {"json", 0, OPT_BOOL, O(json), NULL, "print JSON (see docs/json.md)"},
    {"kind", 'k', OPT_STR, O(kind), "KIND", "only envs of this kind: stage, preview or sandbox"},
    {"tag", 't', OPT_LIST, O(tag), "K=V", "only envs with this tag (all given tags must match)"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static const char *js(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static void rel_time(struct sb *b, long long ms)
{
    long long now = tm_now_ms();
    if (ms > now) {
        sb_adds(b, "in ");
        dur_fmt(b, ((ms - now) / 1000) * 1000);
    } else {
        dur_fmt(b, ((now - ms) / 1000) * 1000);
        sb_adds(b, " ago");
    }
}

static int exec_list(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct list_opts *o = vo;
    struct err e = {0};
    if (o->kind) {
        enum env_kind k;
        if (!env_kind_parse(o->kind, &k))
            return cmd_usage_error(c, "--kind must be stage, preview or sandbox, not '%s'",
                                   o->kind);
    }
    for (size_t i = 0; i < o->tag.n; i++)
        if (!strchr(o->tag.v[i], '=') || o->tag.v[i][0] == '=')
            return cmd_usage_error(c, "--tag expects K=V, not '%s'", o->tag.v[i]);
    struct project *p = NULL;
    int rc = cmd_project(c, &p, &e);
    if (rc)
        return cmd_error(c, &e);
    char **names = NULL;
    size_t n = 0;
    if ((rc = state_list(&names, &n, p->state_dir, &e))) {
        project_free(p);
        return cmd_error(c, &e);
    }
    struct sb out;
    sb_init(&out);
    if (o->json)
        sb_adds(&out, "[");
    size_t shown = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        char *path = state_path(p->state_dir, names[i]);
        char *text = NULL;
        size_t len = 0;
        struct err re = {0};
        int r = fs_read(path, STATE_MAX_FILE, &text, &len, &re);
        free(path);
        /* the summary is everything before the resources: parse only that */
        cJSON *j = NULL;
        if (!r) {
            const char *cut = strstr(text, "\n  \"resources\": [");
            if (cut && cut > text && cut[-1] == ',') {
                size_t hl = (size_t)(cut - text);
                text[hl - 1] = '}';
                j = cJSON_ParseWithLength(text, hl);
                text[hl - 1] = ',';
            }
            if (!j)
                j = cJSON_ParseWithLength(text, len);
        }
        free(text);
        err_release(&re);
        if (!j) {
            bad++;
            cmd_warn(c, "state of '%s' cannot be read; `prenv env show %s` says why", names[i],
                     names[i]);
            continue;
        }
        const char *kind = js(j, "kind"), *owner = js(j, "owner"), *status = js(j, "status");
        bool keep = !o->kind || (kind && !strcmp(kind, o->kind));
        const cJSON *tags = cJSON_GetObjectItemCaseSensitive(j, "tags");
        for (size_t t = 0; keep && t < o->tag.n; t++) {
            const char *eq = strchr(o->tag.v[t], '=');
            char *k = xstrndup(o->tag.v[t], (size_t)(eq - o->tag.v[t]));
            const cJSON *tv = cJSON_GetObjectItemCaseSensitive(tags, k);
            keep = cJSON_IsString(tv) && !strcmp(tv->valuestring, eq + 1);
            free(k);
        }
        if (!keep) {
            cJSON_Delete(j);
            continue;
        }
        const cJSON *rc_ = cJSON_GetObjectItemCaseSensitive(j, "resource_count"),
                    *pc_ = cJSON_GetObjectItemCaseSensitive(j, "pending_count");
        int nres = cJSON_IsNumber(rc_)
                       ? rc_->valueint
                       : cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "resources"));
        int npend = cJSON_IsNumber(pc_)
                        ? pc_->valueint
                        : cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "pending"));
        const cJSON *outs = cJSON_GetObjectItemCaseSensitive(j, "outputs");
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(outs, "url");
        const char *urls = cJSON_IsString(url) ? url->valuestring : NULL;
        long long created = 0, expires = 0;
        const char *cs = js(j, "created"), *es = js(j, "expires");
        if (cs)
            tm_parse_rfc3339(cs, &created);
        if (es)
            tm_parse_rfc3339(es, &expires);
        if (o->json) {
            sb_adds(&out, shown ? ",\n  {" : "\n  {");
            sb_adds(&out, "\"name\": ");
            sb_add_json_str(&out, names[i]);
            const char *keys[] = {"kind", "owner", "status", "created", "updated", "expires",
                                  "sha"};
            for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
                sb_addf(&out, ", \"%s\": ", keys[k]);
                const char *v = js(j, keys[k]);
                if (v)
                    sb_add_json_str(&out, v);
                else
                    sb_adds(&out, "null");
            }
            sb_addf(&out, ", \"resources\": %d, \"pending\": %d, \"url\": ", nres, npend);
            if (urls)
                sb_add_json_str(&out, urls);
            else
                sb_adds(&out, "null");
            sb_adds(&out, ", \"tags\": ");
            char *t = tags ? cJSON_PrintUnformatted(tags) : NULL;
            sb_adds(&out, t ? t : "{}");
            cJSON_free(t);
            sb_adds(&out, "}");
        } else {
            struct sb age, exp;
            sb_init(&age);
            sb_init(&exp);
            if (created && tm_now_ms() - created >= 60000)
                dur_fmt(&age, ((tm_now_ms() - created) / 60000) * 60000);
            else
                sb_adds(&age, "<1m");
            if (expires)
                rel_time(&exp, expires);
            else
                sb_adds(&exp, "never");
            const char *col = !status                     ? ""
                              : !strcmp(status, "up")     ? cmd_c(c, "\033[32m")
                              : strstr(status, "fail")    ? cmd_c(c, "\033[31m")
                                                          : cmd_c(c, "\033[33m");
            sb_addf(&out, "%-24s %-8s %-12s %s%-15s%s %5d  %-10s %-12s %s\n", names[i],
                    kind ? kind : "?", owner ? owner : "-", col, status ? status : "?",
                    cmd_c(c, "\033[0m"), nres, age.buf, exp.buf, urls ? urls : "");
            sb_release(&age);
            sb_release(&exp);
        }
        shown++;
        cJSON_Delete(j);
    }
    if (o->json)
        sb_adds(&out, shown ? "\n]\n" : "]\n");
    if (!o->json && shown)
        printf("%s%-24s %-8s %-12s %-15s %5s  %-10s %-12s %s%s\n", cmd_c(c, "\033[1m"), "NAME",
               "KIND", "OWNER", "STATUS", "RES", "AGE", "EXPIRES", "URL", cmd_c(c, "\033[0m"));
    fputs(out.buf, stdout);
    if (!o->json && !shown)
        fprintf(stderr, "no environments%s; `prenv env up ENV` creates one\n",
                o->kind || o->tag.n ? " match" : "");
    sb_release(&out);
    state_names_free(names, n);
    project_free(p);
    return bad ? EXIT_FAIL : EXIT_OK;
}

const struct cmd_entry cmd_env_list_entry = {
    .name = "env list",
    .args = NULL,
    .min_args = 0,
    .max_args = 0,
    .summary = "list environments: kind, owner, status, resources, age, expiry, URL",
    .opts = opts,
    .opts_size = sizeof(struct list_opts),
    .exec = exec_list,
};
