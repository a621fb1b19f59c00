/* env refresh: compare state with reality and report drift per resource.
 * Read-only unless --write: then an interrupted operation is completed, the
 * resources that no longer exist leave the state and the drift is recorded
 * (so `env show` and a later `env up` see it), with a history record. */
#include "cmd/cmd.h"
#include "cmd/ui.h"
#include "envs/op.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct refresh_opts {
    bool expect_no_changes, json, write;
};

#define O(f) offsetof(struct refresh_opts, f)
static const struct cmd_opt opts[] = {
    {"expect-no-changes", 0, OPT_BOOL, O(expect_no_changes), NULL,
     "exit with status 3 if anything drifted"},
    {"write", 0, OPT_BOOL, O(write), NULL,
     "record the drift in the state (drop what no longer exists); without it nothing is written"},
    {"json", 0, OPT_BOOL, O(json), NULL, "print the result as JSON"},
    {NULL, 0, 0, 0, NULL, NULL},
};
#undef O

/* the drift seen, per resource, on its way to the progress printer */
struct seen {
    struct ui_progress *up;
    cJSON *list;
};

static void on_event(void *ctx, const struct eng_event *ev)
{
    struct seen *s = ctx;
    if (ev->kind == EV_DRIFT) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "resource", ev->resource);
        cJSON_AddStringToObject(d, "type", ev->type ? ev->type : "");
        cJSON_AddStringToObject(d, "detail", ev->detail ? ev->detail : "");
        cJSON_AddItemToArray(s->list, d);
    }
    ui_event(s->up, ev);
}

static int exec_refresh(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    struct refresh_opts *o = vo;
    struct err e = {0};
    struct ui_progress up = {.c = c, .quiet = o->json};
    struct op_opts oo = cmd_op_opts(c, &up);
    struct seen seen = {.up = &up, .list = cJSON_CreateArray()};
    oo.on_event = on_event;
    oo.ev_ctx = &seen;
    struct op_env *oe = NULL;
    if (op_open(&oe, argv[0], OP_LOCK | OP_NEED_STATE | OP_NO_CONFIG, &oo, &e)) {
        cJSON_Delete(seen.list);
        return cmd_error(c, &e);
    }
    int nd = 0;
    int rc = o->write ? op_refresh(oe, &oo, &nd, &e) : op_refresh_read(oe, &nd, &e);
    int code = EXIT_OK;
    if (rc) {
        code = cmd_error(c, &e);
    } else {
        if (o->json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "env", argv[0]);
            cJSON_AddNumberToObject(j, "drift", nd);
            cJSON_AddNumberToObject(j, "resources", (double)oe->st->nres);
            cJSON_AddItemToObject(j, "drifted", seen.list);
            seen.list = NULL;
            cJSON_AddBoolToObject(j, "written", o->write);
            char *s = cJSON_PrintUnformatted(j);
            printf("%s\n", s);
            free(s);
            cJSON_Delete(j);
        } else if (nd) {
            printf("%s: %d resource%s drifted from the state", argv[0], nd, nd == 1 ? "" : "s");
            if (o->write)
                printf(" (recorded; `prenv env up %s` puts them back)\n", argv[0]);
            else
                printf(" (nothing written: `prenv env up %s` puts them back; `prenv env refresh "
                       "%s --write` records the drift)\n",
                       argv[0], argv[0]);
        } else {
            printf("%s: no drift; %zu resource%s match the state\n", argv[0], oe->st->nres,
                   oe->st->nres == 1 ? "" : "s");
        }
        if (nd && o->expect_no_changes)
            code = EXIT_CHANGES;
    }
    cJSON_Delete(seen.list);
    err_release(&e);
    free(up.failed);
    op_close(oe);
    return code;
}

const struct cmd_entry cmd_env_refresh_entry = {
    .name = "env refresh",
    .args = "ENV",
    .min_args = 1,
    .max_args = 1,
    .summary = "report drift between state and reality (read-only unless --write)",
    .opts = opts,
    .opts_size = sizeof(struct refresh_opts),
    .exec = exec_refresh,
};
