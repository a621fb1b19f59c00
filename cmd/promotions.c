/* promotions: every promotion recorded in the state dir, oldest first. */
#include "cmd/promote.h"
#include "cmd/ui.h"
#include "core/lib/sb.h"
#include "envs/project.h"
#include "envs/promo.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct list_opts {
    bool json, pending;
};

#define O(f) offsetof(struct list_opts, f)
static const struct cmd_opt opts[] = {
    {"json", 0, OPT_BOOL, O(json), NULL, "print JSON"},
    {"pending", 0, OPT_BOOL, O(pending), NULL, "only the promotions waiting for approval"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

static int exec_list(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct list_opts *o = vo;
    struct err e = {0};
    struct project *proj = NULL;
    struct val *all = NULL, *bad = NULL;
    int code = EXIT_OK;
    if (cmd_project(c, &proj, &e) || promo_list(&all, &bad, proj->state_dir, &e)) {
        code = cmd_error(c, &e);
        goto out;
    }
    for (size_t i = 0; i < bad->u.list.n; i++) {
        cmd_warn(c, "%s", bad->u.list.v[i]->u.str.s);
        code = EXIT_FAIL;
    }
    struct sb b;
    sb_init(&b);
    size_t shown = 0;
    if (o->json)
        sb_adds(&b, "[");
    for (size_t i = 0; i < all->u.list.n; i++) {
        const struct val *r = all->u.list.v[i];
        const char *st = val_map_str(r, "state", "?");
        if (o->pending && strcmp(st, "pending") != 0)
            continue;
        if (o->json) {
            sb_adds(&b, shown ? ",\n  " : "\n  ");
            val_json(&b, r, VAL_JSON_MASK);
        } else {
            const struct val *a = val_map_get(r, "artifact");
            struct sb art, ft;
            sb_init(&art);
            sb_init(&ft);
            sb_addf(&art, "%s %s", val_map_str(a, "name", "?"), val_map_str(a, "version", "?"));
            sb_addf(&ft, "%s -> %s", val_map_str(r, "from", "?"), val_map_str(r, "to", "?"));
            const char *by = val_map_str(r, "approved_by", NULL);
            if (!by)
                by = val_map_str(r, "rejected_by", "-");
            sb_addf(&b, "%-7s %-10s %-22s %-24s %-19.19s %-20s %s\n", val_map_str(r, "id", "?"),
                    st, ft.buf, art.buf, val_map_str(r, "digest", ""),
                    val_map_str(r, "requested_by", "-"), by);
            sb_release(&ft);
            sb_release(&art);
        }
        shown++;
    }
    if (o->json)
        sb_adds(&b, shown ? "\n]\n" : "]\n");
    else if (!shown)
        printf("no %spromotions\n", o->pending ? "pending " : "");
    else
        printf("%-7s %-10s %-22s %-24s %-19s %-20s %s\n", "ID", "STATE", "FROM -> TO",
               "ARTIFACT", "DIGEST", "REQUESTED BY", "APPROVED/REJECTED BY");
    fputs(b.buf, stdout);
    sb_release(&b);
out:
    err_release(&e);
    val_free(all);
    val_free(bad);
    project_free(proj);
    return code;
}

const struct cmd_entry cmd_promotions_entry = {
    .name = "promotions",
    .min_args = 0,
    .max_args = 0,
    .summary = "list promotions: pending, applied, failed, rejected, superseded",
    .opts = opts,
    .opts_size = sizeof(struct list_opts),
    .exec = exec_list,
};
