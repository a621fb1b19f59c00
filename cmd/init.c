/* init: scaffold prenv.yaml, a template and layered env configs in the
 * current repository. Never overwrites a file. */
#include "cmd/cmd.h"
#include "core/lib/fs.h"
#include "core/lib/str.h"
#include "core/lib/xalloc.h"
#include "envs/project.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct init_opts {
    const char *name;
};

static const struct cmd_opt opts[] = {
    {"name", 0, OPT_STR, offsetof(struct init_opts, name), "NAME",
     "project name (default: the directory's name)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const char template_yaml[] =
    "# The stack template: every environment is an instance of it.\n"
    "# Values differ per environment through envs/*.yaml, never here.\n"
    "resources:\n"
    "  page:\n"
    "    type: file.render\n"
    "    properties:\n"
    "      path: site/index.html\n"
    "      content: |\n"
    "        <h1>${project.name}: ${env.name}</h1>\n"
    "        <p>${config.greeting}</p>\n"
    "  web:\n"
    "    type: process.service\n"
    "    depends_on: [page]\n"
    "    properties:\n"
    "      # argv, never a shell; each replica gets its own PORT\n"
    "      command: [python3, -c, \"import os, http.server as h; os.chdir('site'); "
    "h.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), "
    "h.SimpleHTTPRequestHandler).serve_forever()\"]\n"
    "      replicas: ${config.replicas}\n"
    "      health: {http: /, timeout: 20s}\n"
    "outputs:\n"
    "  url: ${web.url}\n";

static const char base_yaml[] = "description: values every environment shares\n"
                                "values:\n"
                                "  greeting: hello from prenv\n"
                                "  replicas: 1\n";

static int write_new(const char *dir, const char *rel, const char *text, struct err *e)
{
    char *path = xasprintf("%s/%s", dir, rel);
    char *d = fs_dirname(path);
    int rc = fs_mkdir_p(d, 0755, e);
    if (!rc)
        rc = fs_write_atomic(path, text, strlen(text), 0644, e);
    free(d);
    free(path);
    return rc;
}

static int exec_init(struct cmd_ctx *c, void *vo, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct init_opts *o = vo;
    struct err e = {0};
    char *dir = fs_abspath(NULL, c->project_dir ? c->project_dir : ".");
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : "app";
    char name[64];
    size_t k = 0;
    for (const char *p = o->name ? o->name : base; *p && k < sizeof name - 1; p++) {
        char ch = (char)tolower((unsigned char)*p);
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
            name[k++] = ch;
        else if (k && name[k - 1] != '-')
            name[k++] = '-';
    }
    while (k && name[k - 1] == '-')
        k--;
    name[k] = 0;
    if (!k)
        snprintf(name, sizeof name, "app");
    if (o->name && strcmp(name, o->name) != 0) {
        free(dir);
        return cmd_usage_error(c, "--name must be lowercase letters, digits and '-' (try '%s')",
                               name);
    }
    const char *files[] = {PROJECT_FILE,       "templates/web.yaml", "envs/base.yaml",
                           "envs/dev.yaml",    "envs/staging.yaml",  "envs/prod.yaml",
                           "envs/preview.yaml", "envs/sandbox.yaml", NULL};
    int exists = 0;
    for (size_t i = 0; files[i]; i++) {
        char *p = xasprintf("%s/%s", dir, files[i]);
        if (fs_exists(p)) {
            fprintf(stderr, "prenv: %s already exists\n", files[i]);
            exists++;
        }
        free(p);
    }
    if (exists) {
        free(dir);
        err_set(&e, PE_EXISTS, NULL, "not initialising: %d file%s would be overwritten", exists,
                exists == 1 ? "" : "s");
        err_hint(&e, "move them away, or run `prenv init` in another directory");
        return cmd_error(c, &e);
    }
    char *project = xasprintf(
        "# prenv project: https://github.com/ (see docs/files.md)\n"
        "project: %s\n"
        "template: templates/web.yaml\n"
        "state_dir: .prenv        # state, logs and work files of every env\n"
        "ports: 20000-20999       # ports handed to services, one per replica\n"
        "tags:\n"
        "  team: %s\n"
        "stages:\n"
        "  dev:     {config: envs/dev.yaml}\n"
        "  staging: {config: envs/staging.yaml}\n"
        "  prod:    {config: envs/prod.yaml, protect: true}\n"
        "previews:\n"
        "  name: pr-{number}\n"
        "  config: envs/preview.yaml\n"
        "  ttl: 72h\n"
        "sandboxes:\n"
        "  name: sb-{name}\n"
        "  config: envs/sandbox.yaml\n"
        "  ttl: 8h\n"
        "  max_per_owner: 2\n",
        name, name);
    struct {
        const char *rel, *text;
    } out[] = {
        {PROJECT_FILE, project},
        {"templates/web.yaml", template_yaml},
        {"envs/base.yaml", base_yaml},
        {"envs/dev.yaml", "imports: [base]\nvalues:\n  greeting: hello from dev\n"},
        {"envs/staging.yaml", "imports: [base]\nvalues:\n  replicas: 2\n"},
        {"envs/prod.yaml", "imports: [base]\nvalues:\n  replicas: 3\n"},
        {"envs/preview.yaml", "imports: [base]\nvalues:\n  greeting: a pull request preview\n"},
        {"envs/sandbox.yaml", "imports: [base]\n"},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof out / sizeof *out && !rc; i++)
        rc = write_new(dir, out[i].rel, out[i].text, &e);
    free(project);
    if (!rc) {
        /* keep state out of git */
        char *gi = xasprintf("%s/.gitignore", dir);
        char *text = NULL;
        size_t len = 0;
        struct err ge = {0};
        int r = fs_read(gi, 1 << 20, &text, &len, &ge);
        if (r == -ENOENT || (!r && !strstr(text, ".prenv/"))) {
            const char *line = (!r && len && text[len - 1] != '\n') ? "\n.prenv/\n" : ".prenv/\n";
            fs_append_durable(gi, line, strlen(line), 0644, &ge);
        }
        err_release(&ge);
        free(text);
        free(gi);
    }
    free(dir);
    if (rc)
        return cmd_error(c, &e);
    printf("initialised project '%s':\n", name);
    for (size_t i = 0; files[i]; i++)
        printf("  %s\n", files[i]);
    printf("next: prenv env plan dev && prenv env up dev --yes\n");
    return EXIT_OK;
}

const struct cmd_entry cmd_init_entry = {
    .name = "init",
    .min_args = 0,
    .max_args = 0,
    .summary = "scaffold prenv.yaml, templates/ and envs/ in the current repository",
    .opts = opts,
    .opts_size = sizeof(struct init_opts),
    .exec = exec_init,
};
