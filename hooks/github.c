/* github: webhook signature, payload parsing and the preview policy. */
#include "hooks/github.h"

#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <mbedtls/md.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int gh_verify(const char *secret, const char *sig, const void *body, size_t len, struct err *e)
{
    if (!sig || !*sig)
        return err_set(e, PE_USAGE, NULL, "missing X-Hub-Signature-256");
    if (strncmp(sig, "sha256=", 7) != 0)
        return err_set(e, PE_USAGE, NULL, "X-Hub-Signature-256 does not start with sha256=");
    const char *hex = sig + 7;
    if (strlen(hex) != 64)
        return err_set(e, PE_USAGE, NULL, "X-Hub-Signature-256 is not 64 hex digits");
    unsigned char want[32];
    for (int i = 0; i < 32; i++) {
        int hi = hex[2 * i], lo = hex[2 * i + 1];
        if (!isxdigit(hi) || !isxdigit(lo))
            return err_set(e, PE_USAGE, NULL, "X-Hub-Signature-256 is not hex");
        hi = isdigit(hi) ? hi - '0' : tolower(hi) - 'a' + 10;
        lo = isdigit(lo) ? lo - '0' : tolower(lo) - 'a' + 10;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    unsigned char got[32];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (mbedtls_md_hmac(md, (const unsigned char *)secret, strlen(secret), body, len, got) != 0)
        return err_set(e, PE_INTERNAL, NULL, "HMAC failed");
    unsigned char diff = 0; /* constant time: every byte is compared */
    for (int i = 0; i < 32; i++)
        diff |= (unsigned char)(got[i] ^ want[i]);
    if (diff)
        return err_set(e, PE_USAGE, NULL, "X-Hub-Signature-256 does not match the body");
    return 0;
}

void gh_event_release(struct gh_event *ev)
{
    free(ev->event);
    free(ev->delivery);
    free(ev->hook_id);
    free(ev->action);
    free(ev->repo);
    free(ev->sha);
    free(ev->branch);
    free(ev->author);
    free(ev->title);
    free(ev->state);
    free(ev->label);
    free(ev->head_repo);
    for (size_t i = 0; i < ev->nlabels; i++)
        free(ev->labels[i]);
    free(ev->labels);
    memset(ev, 0, sizeof *ev);
}

static char *str_at(const cJSON *j, const char *path)
{
    char *p = xstrdup(path), *save = NULL;
    for (char *t = strtok_r(p, ".", &save); t && j; t = strtok_r(NULL, ".", &save))
        j = cJSON_GetObjectItemCaseSensitive(j, t);
    free(p);
    return cJSON_IsString(j) ? xstrdup(j->valuestring) : NULL;
}

static const cJSON *at(const cJSON *j, const char *path)
{
    char *p = xstrdup(path), *save = NULL;
    for (char *t = strtok_r(p, ".", &save); t && j; t = strtok_r(NULL, ".", &save))
        j = cJSON_GetObjectItemCaseSensitive(j, t);
    free(p);
    return j;
}

int gh_parse(struct gh_event *ev, const char *event, const char *delivery, const char *hook_id,
             const char *body, size_t len, struct err *e)
{
    memset(ev, 0, sizeof *ev);
    if (!event || !*event)
        return err_set(e, PE_USAGE, NULL, "missing X-GitHub-Event");
    if (!delivery || !*delivery)
        return err_set(e, PE_USAGE, NULL, "missing X-GitHub-Delivery");
    ev->event = xstrdup(event);
    ev->delivery = xstrdup(delivery);
    ev->hook_id = hook_id ? xstrdup(hook_id) : NULL;
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return err_set(e, PE_USAGE, NULL, "the body is not a JSON object");
    }
    ev->action = str_at(j, "action");
    const cJSON *inst = at(j, "installation.id");
    if (cJSON_IsNumber(inst))
        ev->installation = (long long)inst->valuedouble;
    if (!strcmp(event, "pull_request")) {
        const cJSON *pr = at(j, "pull_request");
        const cJSON *num = at(j, "number");
        if (!cJSON_IsObject(pr) || !cJSON_IsNumber(num) || !ev->action) {
            cJSON_Delete(j);
            return err_set(e, PE_USAGE, NULL,
                           "a pull_request delivery needs action, number and pull_request");
        }
        ev->number = (long long)num->valuedouble;
        ev->repo = str_at(j, "repository.full_name");
        if (!ev->repo)
            ev->repo = str_at(pr, "base.repo.full_name");
        ev->sha = str_at(pr, "head.sha");
        ev->branch = str_at(pr, "head.ref");
        ev->author = str_at(pr, "user.login");
        ev->title = str_at(pr, "title");
        ev->state = str_at(pr, "state");
        ev->head_repo = str_at(pr, "head.repo.full_name");
        char *base_repo = str_at(pr, "base.repo.full_name");
        /* a deleted fork has head.repo null; names compare case-insensitively */
        ev->fork = !ev->head_repo || !base_repo || strcasecmp(ev->head_repo, base_repo) != 0;
        free(base_repo);
        ev->draft = cJSON_IsTrue(at(pr, "draft"));
        ev->merged = cJSON_IsTrue(at(pr, "merged"));
        char *upd = str_at(pr, "updated_at");
        if (upd)
            tm_parse_rfc3339(upd, &ev->updated_ms);
        free(upd);
        ev->label = str_at(j, "label.name");
        const cJSON *labels = at(pr, "labels"), *l;
        ev->labels = xcalloc((size_t)cJSON_GetArraySize(labels) + 1, sizeof *ev->labels);
        cJSON_ArrayForEach(l, labels)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(l, "name");
            if (cJSON_IsString(n))
                ev->labels[ev->nlabels++] = xstrdup(n->valuestring);
        }
        if (!ev->sha || ev->number <= 0 || !ev->repo) {
            cJSON_Delete(j);
            return err_set(e, PE_USAGE, NULL, "a pull_request delivery lacks head.sha or repository");
        }
    }
    cJSON_Delete(j);
    return 0;
}

static bool has_label(const struct gh_event *ev, const char *name)
{
    for (size_t i = 0; i < ev->nlabels; i++)
        if (!strcmp(ev->labels[i], name))
            return true;
    return false;
}

enum gh_verdict gh_decide(const struct gh_event *ev, const struct gh_policy *p, const char **why)
{
    *why = NULL;
    if (!strcmp(ev->event, "ping")) {
        *why = "ping";
        return GH_PING;
    }
    if (strcmp(ev->event, "pull_request") != 0) {
        *why = "not a pull_request event";
        return GH_IGNORE;
    }
    const char *a = ev->action;
    if (!strcmp(a, "closed")) {
        *why = ev->merged ? "merged" : "closed";
        return GH_DESTROY;
    }
    bool deployish = !strcmp(a, "opened") || !strcmp(a, "reopened") ||
                     !strcmp(a, "synchronize") || !strcmp(a, "ready_for_review") ||
                     !strcmp(a, "labeled") || !strcmp(a, "unlabeled");
    if (!strcmp(a, "converted_to_draft")) {
        if (p->destroy_on_draft && !p->drafts) {
            *why = "converted to draft";
            return GH_DESTROY;
        }
        *why = "converted to draft: kept (previews.on_draft: keep)";
        return GH_IGNORE;
    }
    if (!deployish) {
        *why = "action does not change the preview";
        return GH_IGNORE;
    }
    if (ev->state && strcmp(ev->state, "open") != 0) {
        *why = "the pull request is not open";
        return GH_IGNORE;
    }
    if (p->label) {
        bool labeled = has_label(ev, p->label);
        if (!strcmp(a, "unlabeled") && ev->label && !strcmp(ev->label, p->label)) {
            *why = "the opt-in label was removed";
            return GH_DESTROY;
        }
        if (!labeled) {
            *why = "the pull request does not carry the opt-in label";
            return GH_IGNORE;
        }
    } else if (!strcmp(a, "labeled") || !strcmp(a, "unlabeled")) {
        *why = "labels do not matter without previews.label";
        return GH_IGNORE;
    }
    if (ev->draft && !p->drafts) {
        *why = "drafts get no preview (previews.drafts: false)";
        return GH_IGNORE;
    }
    if (ev->fork) {
        if (p->forks == GH_FORKS_DENY) {
            *why = "pull requests from forks get no preview (previews.forks: deny)";
            return GH_IGNORE;
        }
        if (p->forks == GH_FORKS_TRUSTED) {
            bool trusted = false;
            for (size_t i = 0; p->trusted && p->trusted[i] && ev->author; i++)
                if (!strcasecmp(p->trusted[i], ev->author))
                    trusted = true;
            if (!trusted) {
                *why = "the fork's author is not in previews.forks.trusted";
                return GH_IGNORE;
            }
        }
    }
    *why = a;
    return GH_UP;
}

char *gh_meta_json(const struct gh_event *ev, bool untrusted)
{
    struct sb b;
    sb_init(&b);
    sb_addf(&b, "{\"number\": %lld, \"sha\": ", ev->number);
    const char *fields[][2] = {{"sha", ev->sha},     {"branch", ev->branch}, {"author", ev->author},
                               {"title", ev->title}, {"repo", ev->repo},     {"delivery", ev->delivery}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        if (i)
            sb_addf(&b, ", \"%s\": ", fields[i][0]);
        if (fields[i][1])
            sb_add_json_str(&b, fields[i][1]);
        else
            sb_adds(&b, "null");
    }
    sb_addf(&b, ", \"fork\": %s, \"untrusted\": %s, \"installation\": %lld}",
            ev->fork ? "true" : "false", untrusted ? "true" : "false", ev->installation);
    return sb_steal(&b);
}
