/* process.service: long-running processes started from an argv (never a
 * shell string), one port per replica from the project's range, each replica
 * kept running by its own detached `prenv supervise` (supervise.h), so they
 * outlive the CLI. This file decides what runs: it leases ports, writes
 * specs, starts and stops supervisors, waits for health, and observes what
 * runs for `read`. Restarting a crashed application, piping and rotating its
 * log, and the SIGTERM-then-SIGKILL dance are the supervisor's; whether logs
 * are deleted is the engine's (remove keeps them).
 *
 * Replica i of (env, resource) is named, so `read` finds it without state:
 *   <run_dir>/<resource>.<i>.json       pid file (the supervisor keeps it current)
 *   <run_dir>/<resource>.<i>.spec.json  what the supervisor runs (written here)
 *   <log_dir>/<resource>.<i>.log        its output (+ .log.1 .. .log.N)
 * and holds one port lease for its whole life: restarts and updates keep it,
 * scaling down and remove release it.
 *
 * replicas: 0 is "asleep": nothing runs and no port stays leased, so sleeping
 * environments do not hold part of the project's port range; `port` and `url`
 * are null. Waking up leases ports again (the lowest free ones, so usually the
 * same). A replica is restarted by update when its spec changes: command,
 * env, dir, the health check (kind and path, not its timeouts), restart,
 * stop_timeout and the log settings, since the supervisor reads them at start.
 *
 * Provider calls run on worker threads: nothing here keeps global state. */
#include "core/provider.h"

#include "core/lib/crypto.h"
#include "core/lib/fs.h"
#include "core/lib/proc.h"
#include "core/lib/sb.h"
#include "core/lib/str.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"
#include "core/providers/supervise.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPLICAS 64
#define DEF_HEALTH_TIMEOUT_MS 30000
#define DEF_HEALTH_INTERVAL_MS 200
#define DEF_STOP_TIMEOUT_MS 10000
#define DEF_LOG_MAX_SIZE (10LL << 20)
#define DEF_LOG_KEEP 3
#define MIN_LOG_MAX_SIZE 1024
#define MAX_LOG_MAX_SIZE (1LL << 40)
#define MAX_LOG_KEEP 100
#define UP_FOR_MS 300         /* without a health check: ready once up this long */
#define PROBE_TIMEOUT_MS 2000 /* one health probe */
#define STOP_MARGIN_MS 5000   /* a supervisor gets stop_timeout + this to exit */
#define KILL_WAIT_MS 2000     /* after SIGKILL */
#define START_WAIT_MS 10000   /* for the supervisor to write its pid file */
#define TAIL_BYTES 4096
#define TAIL_LINES 10
#define TAIL_LINE_MAX 300

static const struct prov_prop schema[] = {
    {"command", PT_ARGV, PROP_REQUIRED,
     "the program and its arguments, e.g. [python3, app.py]; never run through a shell"},
    {"env", PT_STRMAP, 0, "environment variables (PORT is set by prenv to the replica's port)"},
    {"dir", PT_STR, 0, "working directory, relative to the env's work directory (default: it)"},
    {"replicas", PT_INT, 0, "number of processes, 0-64 (default 1; 0 = asleep, nothing runs)"},
    {"size", PT_STR, 0,
     "a name from prenv.yaml's cost.replica_hour, for cost reports only (default \"default\")"},
    {"health", PT_MAP, 0,
     "readiness check: {http: /healthz} or {tcp: true}, with optional timeout (default 30s) "
     "and interval (default 200ms); without one a replica is ready once up for 300ms"},
    {"stop_timeout", PT_DURATION, 0, "time between SIGTERM and SIGKILL on stop (default 10s)"},
    {"restart", PT_STR, 0, "always (default), on-failure or never"},
    {"log_max_size", PT_INT, 0, "rotate a replica's log at this many bytes (default 10 MiB)"},
    {"log_keep", PT_INT, 0, "rotated log files kept per replica (default 3)"},
    {"log_redact", PT_BOOL, 0,
     "mask email and IP addresses in the replicas' output before it is logged "
     "(default false; prenv sets it in stages with pii: redact)"},
    {NULL, 0, 0, NULL},
};

static const struct prov_output outputs[] = {
    {"port", OUT_STABLE, "the first replica's port (null when asleep)"},
    {"ports", 0, "every replica's port, in replica order"},
    {"url", OUT_STABLE, "http://127.0.0.1:<first port> (null when asleep)"},
    {"addresses", 0, "\"127.0.0.1:<port>\" for every replica"},
    {NULL, 0, NULL},
};

static const char *const restart_policies[] = {"always", "on-failure", "never", NULL};
static const char *const health_keys[] = {"http", "tcp", "timeout", "interval", NULL};

static bool one_of(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

/* ---- check ---- */

static int check_duration(const struct val *h, const char *key, struct err *e)
{
    const struct val *v = val_map_get(h, key);
    if (!v || v->kind == VAL_NULL || v->kind == VAL_UNKNOWN)
        return 0;
    long long ms = -1;
    const char *why = NULL;
    if (v->kind == VAL_INT && v->u.i > 0 && v->u.i < 1000000000LL)
        ms = v->u.i * 1000;
    else if (v->kind == VAL_STR && !dur_parse(v->u.str.s, &ms, &why))
        return err_set(e, PE_CONFIG, &v->pos, "'health.%s': invalid duration '%s': %s", key,
                       v->u.str.s, why);
    if (ms <= 0)
        return err_set(e, PE_CONFIG, &v->pos,
                       "'health.%s' must be a positive duration such as 30s or 500ms", key);
    return 0;
}

static int check_health(const struct val *h, struct err *e)
{
    if (!h || h->kind != VAL_MAP)
        return 0;
    for (size_t i = 0; i < h->u.map.n; i++) {
        const struct val_entry *ent = &h->u.map.e[i];
        if (one_of(ent->key, health_keys))
            continue;
        const char *s = str_closest(ent->key, health_keys, (size_t)-1);
        if (s)
            return err_set(e, PE_CONFIG, &ent->kpos,
                           "unknown key '%s' in 'health' (did you mean '%s'?)", ent->key, s);
        err_set(e, PE_CONFIG, &ent->kpos, "unknown key '%s' in 'health'", ent->key);
        err_hint(e, "'health' takes http, tcp, timeout and interval");
        return PE_CONFIG;
    }
    const struct val *http = val_map_get(h, "http");
    const struct val *tcp = val_map_get(h, "tcp");
    bool has_http = http && http->kind != VAL_NULL;
    bool has_tcp = false;
    if (has_http && http->kind != VAL_UNKNOWN) {
        if (http->kind != VAL_STR)
            return err_set(e, PE_CONFIG, &http->pos,
                           "'health.http' must be a path such as /healthz");
        const char *s = http->u.str.s;
        if (s[0] != '/')
            return err_set(e, PE_CONFIG, &http->pos,
                           "'health.http' must be a path starting with '/', such as /healthz "
                           "(got '%s')",
                           s);
        if (strlen(s) > 1024)
            return err_set(e, PE_CONFIG, &http->pos, "'health.http' is longer than 1024 bytes");
        for (const char *p = s; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                return err_set(e, PE_CONFIG, &http->pos,
                               "'health.http' must not contain spaces or control characters");
    }
    if (tcp && tcp->kind != VAL_NULL) {
        if (tcp->kind == VAL_UNKNOWN)
            has_tcp = true;
        else if (tcp->kind != VAL_BOOL)
            return err_set(e, PE_CONFIG, &tcp->pos, "'health.tcp' must be true or false");
        else
            has_tcp = tcp->u.b;
    }
    if (has_http && has_tcp)
        return err_set(e, PE_CONFIG, &tcp->pos, "'health' takes 'http' or 'tcp', not both");
    if (!has_http && !has_tcp) {
        err_set(e, PE_CONFIG, &h->pos, "'health' has neither 'http' nor 'tcp'");
        err_hint(e, "write 'health: {http: /healthz}' for an HTTP check, 'health: {tcp: true}' "
                    "for a connect check, or leave 'health' out");
        return PE_CONFIG;
    }
    int rc = check_duration(h, "timeout", e);
    if (!rc)
        rc = check_duration(h, "interval", e);
    return rc;
}

static int check_int(const struct val *props, const char *name, long long lo, long long hi,
                     struct err *e)
{
    const struct val *v = val_map_get(props, name);
    if (v && v->kind == VAL_INT && (v->u.i < lo || v->u.i > hi))
        return err_set(e, PE_CONFIG, &v->pos, "'%s' must be between %lld and %lld, not %lld", name,
                       lo, hi, v->u.i);
    return 0;
}

static int ps_check(const struct prov_call *c, struct err *e)
{
    const struct val *p = c->props;
    if (!p || p->kind != VAL_MAP)
        return 0;
    int rc = check_int(p, "replicas", 0, MAX_REPLICAS, e);
    if (!rc)
        rc = check_int(p, "log_max_size", MIN_LOG_MAX_SIZE, MAX_LOG_MAX_SIZE, e);
    if (!rc)
        rc = check_int(p, "log_keep", 0, MAX_LOG_KEEP, e);
    if (rc)
        return rc;
    const struct val *v = val_map_get(p, "restart");
    if (v && v->kind != VAL_NULL && v->kind != VAL_UNKNOWN) {
        struct sb b;
        sb_init(&b);
        val_text(&b, v);
        if (v->kind != VAL_STR || !one_of(b.buf, restart_policies)) {
            const char *s = str_closest(b.buf, restart_policies, (size_t)-1);
            if (s)
                rc = err_set(e, PE_CONFIG, &v->pos,
                             "unknown restart policy '%s' (did you mean '%s'?)", b.buf, s);
            else {
                rc = err_set(e, PE_CONFIG, &v->pos, "unknown restart policy '%s'", b.buf);
                err_hint(e, "'restart' is always, on-failure or never");
            }
        }
        sb_release(&b);
        if (rc)
            return rc;
    }
    v = val_map_get(p, "dir");
    if (v && v->kind == VAL_STR && !v->u.str.s[0])
        return err_set(e, PE_CONFIG, &v->pos, "'dir' is empty");
    v = val_map_get(p, "env");
    const struct val_entry *port = v ? val_map_entry(v, "PORT") : NULL;
    if (port)
        return err_set(e, PE_CONFIG, &port->kpos,
                       "'env.PORT' cannot be set: prenv sets PORT to each replica's port");
    return check_health(val_map_get(p, "health"), e);
}

/* ---- settings ---- */

struct svc {
    const struct val *props;
    int replicas;
    char *dir; /* absolute */
    const char *http;
    bool tcp;
    long long health_timeout_ms, interval_ms, stop_timeout_ms, log_max, log_keep;
    const char *restart;
    bool redact;
    char env_digest[65];
};

static int clamp_replicas(long long n)
{
    return n < 0 ? 0 : n > MAX_REPLICAS ? MAX_REPLICAS : (int)n;
}

static void svc_load(struct svc *sv, const struct prov_call *c, const struct val *props)
{
    memset(sv, 0, sizeof *sv);
    sv->props = props;
    sv->replicas = clamp_replicas(prov_int(props, "replicas", 1));
    const char *d = prov_str(props, "dir", NULL);
    sv->dir = d && *d ? fs_abspath(c->work_dir, d) : xstrdup(c->work_dir);
    const struct val *h = val_map_get(props, "health");
    if (h && h->kind == VAL_MAP) {
        sv->http = prov_str(h, "http", NULL);
        sv->tcp = !sv->http && prov_bool(h, "tcp", false);
    }
    sv->health_timeout_ms = prov_duration_ms(h, "timeout", DEF_HEALTH_TIMEOUT_MS);
    sv->interval_ms = prov_duration_ms(h, "interval", DEF_HEALTH_INTERVAL_MS);
    if (sv->interval_ms < 10)
        sv->interval_ms = 10;
    sv->stop_timeout_ms = prov_duration_ms(props, "stop_timeout", DEF_STOP_TIMEOUT_MS);
    sv->restart = prov_str(props, "restart", "always");
    sv->log_max = prov_int(props, "log_max_size", DEF_LOG_MAX_SIZE);
    sv->log_keep = prov_int(props, "log_keep", DEF_LOG_KEEP);
    sv->redact = prov_bool(props, "log_redact", false);
    struct sb b;
    sb_init(&b);
    const struct val *env = val_map_get(props, "env");
    if (env)
        val_canon(&b, env);
    crypto_sha256_hex(b.buf, b.len, sv->env_digest);
    sb_release(&b);
}

static void svc_release(struct svc *sv)
{
    free(sv->dir);
}

/* ---- names ---- */

static char *rep_path(const struct prov_call *c, int i, const char *ext)
{
    return xasprintf("%s/%s.%d%s", c->run_dir, c->resource, i, ext);
}

static char *rep_log(const struct prov_call *c, int i)
{
    char suffix[24];
    snprintf(suffix, sizeof suffix, ".%d", i);
    return prov_log_path(c, suffix);
}

/* rep_name: the replica index in a run-dir entry "<resource>.<i><rest>", or
 * -1; *rest points after the digits */
static int rep_name(const struct prov_call *c, const char *name, const char **rest)
{
    size_t n = strlen(c->resource);
    if (strncmp(name, c->resource, n) || name[n] != '.')
        return -1;
    const char *p = name + n + 1;
    int i = 0, digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 3) {
        i = i * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || (digits > 1 && name[n + 1] == '0') || i >= MAX_REPLICAS)
        return -1;
    *rest = p;
    return i;
}

/* ---- what runs ---- */

struct rep {
    bool found;    /* a pid file exists */
    bool alive;    /* its supervisor (or the one priv recorded) runs: pid and start time match */
    bool replaced; /* the supervisor's pid now belongs to another process */
    struct supervise_pids pf;
    char *spec; /* the spec file's text; NULL when absent */
    int port;   /* from the pid file, else from priv; 0 = none */
    bool in_priv;
    pid_t priv_sup_pid;
    unsigned long long priv_sup_start;
};

struct fleet {
    struct rep r[MAX_REPLICAS];
    int hi; /* 1 + the highest index found */
};

static bool alive(pid_t pid, unsigned long long start)
{
    return pid > 0 && start && proc_alive(pid, start);
}

static void rep_clear(struct rep *rp, bool keep_port)
{
    int port = rp->port;
    supervise_pids_release(&rp->pf);
    free(rp->spec);
    memset(rp, 0, sizeof *rp);
    if (keep_port)
        rp->port = port;
}

static void fleet_free(struct fleet *f)
{
    if (!f)
        return;
    for (int i = 0; i < MAX_REPLICAS; i++)
        rep_clear(&f->r[i], false);
    free(f);
}

static void rep_load(const struct prov_call *c, struct rep *rp, int i)
{
    char *pid = rep_path(c, i, ".json");
    char *spec = rep_path(c, i, ".spec.json");
    struct err ign = {0};
    supervise_pids_release(&rp->pf);
    int rc = supervise_pids_read(&rp->pf, pid, &ign);
    if (rc != -ENOENT)
        rp->found = true; /* a corrupt pid file still names a replica */
    if (rc == 0 && rp->pf.port > 0 && rp->pf.port < 65536)
        rp->port = rp->pf.port;
    err_release(&ign);
    free(rp->spec);
    rp->spec = NULL;
    fs_read(spec, 1 << 20, &rp->spec, NULL, &ign);
    err_release(&ign);
    free(pid);
    free(spec);
}

/* fleet_scan: replicas from the run dir's pid files, priv and our port
 * leases; works with priv NULL (a crash lost the state write) */
static struct fleet *fleet_scan(const struct prov_call *c)
{
    struct fleet *f = xcalloc(1, sizeof *f);
    DIR *d = opendir(c->run_dir);
    struct dirent *de;
    bool seen[MAX_REPLICAS] = {false};
    while (d && (de = readdir(d))) {
        const char *rest;
        int i = rep_name(c, de->d_name, &rest);
        if (i >= 0 && (!strcmp(rest, ".json") || !strcmp(rest, ".spec.json")))
            seen[i] = true;
    }
    if (d)
        closedir(d);
    for (int i = 0; i < MAX_REPLICAS; i++)
        if (seen[i])
            rep_load(c, &f->r[i], i);
    const struct val *l = c->priv ? val_map_get(c->priv, "replicas") : NULL;
    for (size_t i = 0; l && l->kind == VAL_LIST && i < l->u.list.n && i < MAX_REPLICAS; i++) {
        const struct val *m = l->u.list.v[i];
        if (m->kind != VAL_MAP)
            continue;
        struct rep *rp = &f->r[i];
        rp->in_priv = true;
        long long port = val_map_int(m, "port", 0);
        if (!rp->port && port > 0 && port < 65536)
            rp->port = (int)port;
        rp->priv_sup_pid = (pid_t)val_map_int(m, "supervisor_pid", 0);
        rp->priv_sup_start = (unsigned long long)val_map_int(m, "supervisor_start", 0);
    }
    /* a replica whose pid file lost its port (and priv too): the leases
     * nobody else claims, lowest first */
    int *owned = NULL;
    int nowned = prov_ports_owned(c, &owned);
    for (int i = 0; i < MAX_REPLICAS; i++) {
        if (!f->r[i].found || f->r[i].port)
            continue;
        for (int k = 0; k < nowned && !f->r[i].port; k++) {
            bool taken = false;
            for (int j = 0; j < MAX_REPLICAS && !taken; j++)
                taken = f->r[j].port == owned[k];
            if (!taken)
                f->r[i].port = owned[k];
        }
    }
    free(owned);
    for (int i = 0; i < MAX_REPLICAS; i++) {
        struct rep *rp = &f->r[i];
        if (rp->found) {
            rp->alive = alive(rp->pf.sup_pid, rp->pf.sup_start);
            rp->replaced = !rp->alive && rp->pf.sup_pid > 0 && proc_start_time(rp->pf.sup_pid);
        } else if (rp->in_priv) {
            rp->alive = alive(rp->priv_sup_pid, rp->priv_sup_start);
            rp->replaced = !rp->alive && rp->priv_sup_pid > 0 && proc_start_time(rp->priv_sup_pid);
        }
        if (rp->found || rp->in_priv)
            f->hi = i + 1;
    }
    return f;
}

/* ---- errors with the log's tail ---- */

static void add_errno(struct sb *b, int er)
{
#ifdef __GLIBC__
    const char *d = strerrordesc_np(er);
#else
    /* musl's strerror returns constant strings and is thread-safe */
    const char *d = strerror(er);
#endif
    if (!d) {
        sb_addf(b, "error %d", er);
        return;
    }
    sb_addc(b, (char)tolower((unsigned char)d[0]));
    sb_adds(b, d + 1);
}

static bool tail_read(struct sb *out, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    char buf[TAIL_BYTES + 1];
    off_t off = 0;
    ssize_t n = 0;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        off = st.st_size > TAIL_BYTES ? st.st_size - TAIL_BYTES : 0;
        n = pread(fd, buf, TAIL_BYTES, off);
    }
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    const char *p = buf;
    if (off > 0) { /* skip the partial first line */
        const char *nl = memchr(buf, '\n', (size_t)n);
        p = nl ? nl + 1 : buf;
    }
    const char *starts[TAIL_LINES];
    size_t lens[TAIL_LINES];
    int count = 0;
    while (p < buf + n) {
        const char *nl = memchr(p, '\n', (size_t)(buf + n - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(buf + n - p);
        if (len) {
            if (count == TAIL_LINES) {
                memmove(starts, starts + 1, sizeof starts[0] * (TAIL_LINES - 1));
                memmove(lens, lens + 1, sizeof lens[0] * (TAIL_LINES - 1));
                count--;
            }
            starts[count] = p;
            lens[count++] = len;
        }
        p = nl ? nl + 1 : buf + n;
    }
    if (!count)
        return false;
    sb_addf(out, "\nlast lines of %s:", path);
    for (int i = 0; i < count; i++) {
        sb_adds(out, "\n  ");
        sb_add(out, starts[i], lens[i] > TAIL_LINE_MAX ? TAIL_LINE_MAX : lens[i]);
    }
    return true;
}

static void log_tail(struct sb *out, const struct prov_call *c, int i)
{
    char *path = rep_log(c, i);
    if (!tail_read(out, path)) {
        char *older = xasprintf("%s.1", path);
        if (!tail_read(out, older))
            sb_addf(out, "\n(%s is empty)", path);
        free(older);
    }
    free(path);
}

static int rep_fail(const struct prov_call *c, int i, struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int rep_fail(const struct prov_call *c, int i, struct err *e, const char *fmt, ...)
{
    struct sb b;
    sb_init(&b);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    log_tail(&b, c, i);
    int rc = err_set(e, PE_PROVIDER, NULL, "%s", b.buf);
    sb_release(&b);
    return rc;
}

/* ---- stopping ---- */

static void sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static long long spec_stop_timeout(const char *spec, long long def)
{
    cJSON *o = spec ? cJSON_Parse(spec) : NULL;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "stop_timeout_ms");
    long long ms = cJSON_IsNumber(j) && j->valuedouble >= 0 ? (long long)j->valuedouble : def;
    cJSON_Delete(o);
    return ms;
}

/* fleet_stop: stop the replicas marked in which[], all at once. Each live
 * supervisor gets SIGTERM (it stops its application's process group) and
 * stop_timeout plus a margin to exit; an application whose supervisor is gone
 * gets SIGTERM itself and stop_timeout. Past that, SIGKILL to the supervisor
 * and to the group. Then the pid and spec files go, and with release the
 * port leases; logs stay. Waits are bounded; pids are trusted only with
 * their start time. */
static void fleet_stop(const struct prov_call *c, struct fleet *f, const bool *which, bool release,
                       long long def_stop_ms)
{
    struct stopping {
        bool on, killed, app_termed;
        long long deadline, stop_ms;
        pid_t sup;
        unsigned long long sup_start;
        pid_t app;
        unsigned long long app_start;
    } *st = xcalloc(MAX_REPLICAS, sizeof *st);
    long long now = tm_mono_ms();
    for (int i = 0; i < MAX_REPLICAS; i++) {
        struct rep *rp = &f->r[i];
        if (!which[i])
            continue;
        struct stopping *s = &st[i];
        long long stop_ms = s->stop_ms = spec_stop_timeout(rp->spec, def_stop_ms);
        s->sup = rp->found ? rp->pf.sup_pid : rp->priv_sup_pid;
        s->sup_start = rp->found ? rp->pf.sup_start : rp->priv_sup_start;
        s->app = rp->pf.pid;
        s->app_start = rp->pf.start;
        if (alive(s->sup, s->sup_start)) {
            kill(s->sup, SIGTERM);
            s->deadline = now + stop_ms + STOP_MARGIN_MS;
            s->on = true;
        } else if (alive(s->app, s->app_start)) {
            kill(-s->app, SIGTERM);
            s->app_termed = true;
            s->deadline = now + stop_ms;
            s->on = true;
        }
    }
    for (;;) {
        bool waiting = false;
        now = tm_mono_ms();
        for (int i = 0; i < MAX_REPLICAS; i++) {
            struct stopping *s = &st[i];
            if (!s->on)
                continue;
            if (f->r[i].found) {
                /* the application may have been restarted since we looked */
                char *pid = rep_path(c, i, ".json");
                struct supervise_pids pf;
                struct err ign = {0};
                if (supervise_pids_read(&pf, pid, &ign) == 0 && pf.pid > 0 && pf.start) {
                    s->app = pf.pid;
                    s->app_start = pf.start;
                }
                supervise_pids_release(&pf); /* zeroed by a failed read */
                err_release(&ign);
                free(pid);
            }
            bool sup_up = alive(s->sup, s->sup_start);
            bool app_up = alive(s->app, s->app_start);
            if (!sup_up && !app_up) {
                s->on = false;
                continue;
            }
            if (now >= s->deadline) {
                if (s->killed) {
                    s->on = false; /* unkillable (uninterruptible sleep): give up */
                    continue;
                }
                if (sup_up)
                    kill(s->sup, SIGKILL);
                if (app_up)
                    kill(-s->app, SIGKILL);
                s->killed = true;
                s->deadline = now + KILL_WAIT_MS;
            } else if (!sup_up && app_up && !s->app_termed) {
                /* the supervisor died without stopping its application */
                kill(-s->app, SIGTERM);
                s->app_termed = true;
                if (now + s->stop_ms < s->deadline)
                    s->deadline = now + s->stop_ms;
            }
            waiting = true;
        }
        if (!waiting)
            break;
        sleep_ms(20);
    }
    free(st);
    for (int i = 0; i < MAX_REPLICAS; i++) {
        if (!which[i])
            continue;
        struct rep *rp = &f->r[i];
        char *pid = rep_path(c, i, ".json");
        char *spec = rep_path(c, i, ".spec.json");
        unlink(pid);
        unlink(spec);
        free(pid);
        free(spec);
        if (release && rp->port)
            prov_ports_release(c, &rp->port, 1);
        rep_clear(rp, !release);
    }
}

/* ---- starting ---- */

static char *spec_text(const struct prov_call *c, const struct svc *sv, int i, int port)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "argv");
    char **argv = prov_argv(sv->props, "command");
    for (char **p = argv; *p; p++)
        cJSON_AddItemToArray(a, cJSON_CreateString(*p));
    prov_argv_free(argv);
    cJSON_AddStringToObject(o, "dir", sv->dir);
    char *path = rep_log(c, i);
    cJSON_AddStringToObject(o, "log", path);
    free(path);
    path = rep_path(c, i, ".json");
    cJSON_AddStringToObject(o, "pidfile", path);
    free(path);
    cJSON_AddNumberToObject(o, "port", port);
    cJSON_AddNumberToObject(o, "replica", i);
    cJSON_AddStringToObject(o, "restart", sv->restart);
    cJSON_AddNumberToObject(o, "stop_timeout_ms", (double)sv->stop_timeout_ms);
    cJSON_AddNumberToObject(o, "log_max_size", (double)sv->log_max);
    cJSON_AddNumberToObject(o, "log_keep", (double)sv->log_keep);
    if (sv->redact)
        cJSON_AddTrueToObject(o, "redact");
    struct sb h;
    sb_init(&h);
    if (sv->http)
        sb_addf(&h, "http %s", sv->http);
    else
        sb_adds(&h, sv->tcp ? "tcp" : "none");
    cJSON_AddStringToObject(o, "health", h.buf);
    sb_release(&h);
    cJSON_AddStringToObject(o, "env_sha256", sv->env_digest);
    char *s = cJSON_PrintUnformatted(o);
    char *text = xstrdup(s);
    cJSON_free(s);
    cJSON_Delete(o);
    return text;
}

static int wait_exit(pid_t pid, long long timeout_ms, int *status)
{
    long long end = tm_mono_ms() + timeout_ms;
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -errno;
        if (tm_mono_ms() > end) {
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            return -ETIMEDOUT;
        }
        sleep_ms(5);
    }
}

/* rep_spawn: write replica i's spec and start its supervisor, which is up
 * (pid file written) when this returns 0 */
static int rep_spawn(const struct prov_call *c, const struct svc *sv, struct fleet *f, int i,
                     int port, struct err *e)
{
    struct rep *rp = &f->r[i];
    rep_clear(rp, false);
    rp->port = port;
    char *spec = spec_text(c, sv, i, port);
    char *spec_path = rep_path(c, i, ".spec.json");
    char *pid_path = rep_path(c, i, ".json");
    char **envp = NULL;
    int rc = fs_write_atomic(spec_path, spec, strlen(spec), 0600, e);
    if (rc)
        goto out;
    unlink(pid_path);
    struct val *extra =
        val_map_get(sv->props, "env") ? val_clone(val_map_get(sv->props, "env")) : val_map(NULL);
    if (extra->kind != VAL_MAP) {
        val_free(extra);
        extra = val_map(NULL);
    }
    val_map_set(extra, "PORT", NULL, val_int(port, NULL));
    val_map_set(extra, "PRENV_REPLICA", NULL, val_int(i, NULL));
    envp = prov_env(c, extra);
    val_free(extra);
    const char *exe = getenv("PRENV_SUPERVISOR_EXE");
    if (!exe || !*exe)
        exe = proc_self_exe();
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *args[] = {"prenv", "supervise", spec_path, NULL};
    pid_t pid;
    int src = posix_spawn(&pid, exe, &fa, &at, args, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (src) {
        rc = err_errno(e, src, "cannot run the supervisor %s", exe);
        goto out;
    }
    int status = 0;
    int wrc = wait_exit(pid, START_WAIT_MS, &status);
    if (wrc == -ETIMEDOUT) {
        rc = rep_fail(c, i, e, "the supervisor of replica %d did not start within %ds", i,
                      START_WAIT_MS / 1000);
        goto out;
    }
    if (wrc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        rc = rep_fail(c, i, e, "the supervisor of replica %d (%s supervise %s) failed to start", i,
                      exe, spec_path);
        goto out;
    }
    rp->spec = spec;
    spec = NULL;
    struct err ign = {0};
    rc = supervise_pids_read(&rp->pf, pid_path, &ign);
    err_release(&ign);
    rp->found = rc == 0;
    rp->alive = rc == 0 && alive(rp->pf.sup_pid, rp->pf.sup_start);
    rc = 0;
    if (!rp->alive)
        rc = rep_fail(c, i, e, "the supervisor of replica %d on port %d exited at once", i, port);
    else
        prov_log(c, "replica %d: supervisor pid %d started on port %d", i, (int)rp->pf.sup_pid,
                 port);
out:
    proc_env_free(envp);
    free(spec);
    free(spec_path);
    free(pid_path);
    return rc;
}

/* probe: one health check; 0 when healthy, else why it is not */
static int probe(const char *http, int port, long long timeout_ms, struct sb *why)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        sb_adds(why, "cannot create a socket: ");
        add_errno(why, errno);
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long long end = tm_mono_ms() + timeout_ms;
    int rc = -1;
    struct pollfd pf = {.fd = fd};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINPROGRESS) {
            add_errno(why, errno);
            goto out;
        }
        pf.events = POLLOUT;
        int pr;
        while ((pr = poll(&pf, 1, (int)(end - tm_mono_ms()))) < 0 && errno == EINTR)
            ;
        if (pr <= 0) {
            sb_adds(why, "no connection within ");
            dur_fmt(why, timeout_ms);
            goto out;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            add_errno(why, soerr);
            goto out;
        }
    }
    if (!http) {
        rc = 0;
        goto out;
    }
    char *req = xasprintf("GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nUser-Agent: prenv-health\r\n"
                          "Connection: close\r\n\r\n",
                          http, port);
    size_t len = strlen(req), off = 0;
    char buf[512];
    size_t got = 0;
    bool line = false;
    while (off < len || !line) {
        long long left = end - tm_mono_ms();
        if (left <= 0) {
            sb_adds(why, "no HTTP response within ");
            dur_fmt(why, timeout_ms);
            break;
        }
        pf.events = off < len ? POLLOUT : POLLIN;
        pf.revents = 0;
        int pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        if (off < len) {
            ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                add_errno(why, errno);
                break;
            }
            off += w > 0 ? (size_t)w : 0;
            continue;
        }
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r < 0) {
            add_errno(why, errno);
            break;
        }
        got += (size_t)r;
        buf[got] = 0;
        line = memchr(buf, '\n', got) != NULL || got == sizeof buf - 1;
        if (r == 0 && !line) {
            sb_adds(why, got ? "truncated HTTP response" : "connection closed without a response");
            break;
        }
    }
    free(req);
    if (line) {
        int status = 0;
        if (sscanf(buf, "HTTP/%*d.%*d %3d", &status) != 1 || status < 100)
            sb_adds(why, "not an HTTP response");
        else if (status >= 200 && status < 400)
            rc = 0;
        else
            sb_addf(why, "HTTP status %d", status);
    }
out:
    close(fd);
    return rc;
}

/* rep_wait: until replica i is ready (healthy, or up for UP_FOR_MS without a
 * health check), its supervisor gives up, the run is canceled or deadline */
static int rep_wait(const struct prov_call *c, const struct svc *sv, struct fleet *f, int i,
                    long long deadline, struct err *e)
{
    struct rep *rp = &f->r[i];
    char *pid_path = rep_path(c, i, ".json");
    pid_t seen = 0;
    unsigned long long seen_start = 0;
    long long seen_at = 0;
    bool health = sv->http || sv->tcp;
    long long interval = health ? sv->interval_ms : (sv->interval_ms < 100 ? sv->interval_ms : 100);
    struct sb why;
    sb_init(&why);
    int rc = 0;
    for (;;) {
        if (prov_canceled(c)) {
            rc = err_set(e, PE_CANCELED, NULL,
                         "canceled while waiting for replica %d on port %d to be ready", i,
                         rp->port);
            break;
        }
        struct supervise_pids pf;
        struct err ign = {0};
        if (supervise_pids_read(&pf, pid_path, &ign) == 0) {
            supervise_pids_release(&rp->pf);
            rp->pf = pf;
        }
        err_release(&ign);
        if (rp->pf.start_error) {
            rc = rep_fail(c, i, e, "replica %d on port %d could not be started: %s", i, rp->port,
                          rp->pf.start_error);
            break;
        }
        if (!alive(rp->pf.sup_pid, rp->pf.sup_start)) {
            rp->alive = false;
            rc = rep_fail(c, i, e, "replica %d on port %d did not start: its supervisor exited", i,
                          rp->port);
            break;
        }
        long long now = tm_mono_ms();
        sb_reset(&why);
        bool ok = false;
        if (health) {
            long long pt = deadline - now < PROBE_TIMEOUT_MS ? deadline - now : PROBE_TIMEOUT_MS;
            ok = probe(sv->http, rp->port, pt < 100 ? 100 : pt, &why) == 0;
        } else if (alive(rp->pf.pid, rp->pf.start)) {
            if (rp->pf.pid != seen || rp->pf.start != seen_start) {
                seen = rp->pf.pid;
                seen_start = rp->pf.start;
                seen_at = now;
            }
            ok = now - seen_at >= UP_FOR_MS;
            sb_adds(&why, "the process did not stay up");
        } else {
            seen = 0;
            sb_adds(&why,
                    rp->pf.restarts ? "the process keeps exiting" : "the process is not running");
        }
        if (ok)
            break;
        now = tm_mono_ms();
        if (now >= deadline) {
            struct sb d;
            sb_init(&d);
            dur_fmt(&d, sv->health_timeout_ms);
            rc = rep_fail(c, i, e, "replica %d on port %d not %s after %s: %s", i, rp->port,
                          health ? "healthy" : "ready", d.buf, why.buf);
            sb_release(&d);
            break;
        }
        sleep_ms(deadline - now < interval ? deadline - now : interval);
    }
    sb_release(&why);
    free(pid_path);
    return rc;
}

/* ---- results ---- */

static void set_result(const struct prov_call *c, const struct fleet *f, int n,
                       struct prov_result *r)
{
    struct val *ports = val_list(NULL), *addrs = val_list(NULL), *reps = val_list(NULL);
    int first = 0;
    for (int i = 0; i < n; i++) {
        const struct rep *rp = &f->r[i];
        struct val *m = val_map(NULL);
        val_map_set(m, "port", NULL, val_int(rp->port, NULL));
        val_map_set(m, "supervisor_pid", NULL,
                    val_int(rp->found ? rp->pf.sup_pid : rp->priv_sup_pid, NULL));
        val_map_set(m, "supervisor_start", NULL,
                    val_int((long long)(rp->found ? rp->pf.sup_start : rp->priv_sup_start), NULL));
        val_list_push(reps, m);
        if (!rp->port)
            continue;
        if (!first)
            first = rp->port;
        val_list_push(ports, val_int(rp->port, NULL));
        val_list_push(addrs, val_str_own(xasprintf("127.0.0.1:%d", rp->port), NULL));
    }
    r->id = c->id ? xstrdup(c->id) : xasprintf("%s/%s", c->env, c->resource);
    r->outputs = val_map(NULL);
    val_map_set(r->outputs, "port", NULL, first ? val_int(first, NULL) : val_null(NULL));
    val_map_set(r->outputs, "ports", NULL, ports);
    val_map_set(r->outputs, "url", NULL,
                first ? val_str_own(xasprintf("http://127.0.0.1:%d", first), NULL)
                      : val_null(NULL));
    val_map_set(r->outputs, "addresses", NULL, addrs);
    r->priv = val_map(NULL);
    val_map_set(r->priv, "replicas", NULL, reps);
}

/* ---- create, update, scale ---- */

enum mode { MODE_CREATE, MODE_UPDATE, MODE_SCALE };

static bool has_port(const int *ports, int n, int port)
{
    for (int i = 0; i < n; i++)
        if (ports[i] == port)
            return true;
    return false;
}

/* undo: after a failed reconcile. A create leaves nothing running and no
 * lease. Otherwise the replica that failed a rolling restart is stopped but
 * keeps its port (a retry reuses it), and replicas new in this call are
 * stopped and lose theirs; the others are left as they are. */
static void undo(const struct prov_call *c, struct fleet *f, const struct svc *sv, enum mode mode,
                 int n, int failed, const bool *fresh)
{
    bool which[MAX_REPLICAS] = {false};
    if (mode == MODE_CREATE) {
        for (int i = 0; i < MAX_REPLICAS; i++)
            which[i] = f->r[i].found || f->r[i].in_priv || fresh[i];
        fleet_stop(c, f, which, true, sv->stop_timeout_ms);
        int *owned = NULL;
        int k = prov_ports_owned(c, &owned);
        prov_ports_release(c, owned, k);
        free(owned);
        return;
    }
    if (failed >= 0 && !fresh[failed]) {
        which[failed] = true;
        fleet_stop(c, f, which, false, sv->stop_timeout_ms);
        which[failed] = false;
    }
    for (int i = 0; i < n; i++)
        which[i] = fresh[i];
    fleet_stop(c, f, which, true, sv->stop_timeout_ms);
}

/* reconcile: make replicas 0..n-1 run props and nothing else run.
 * - replicas at n and above are stopped and their ports released;
 * - a replica that is not running, or whose spec differs (not in
 *   MODE_SCALE), is restarted on its port, one at a time, each waiting for
 *   health (a rolling restart);
 * - missing replicas get a port (their old one when priv or a lease still
 *   has it) and are started together, then waited for.
 * On failure, see undo(). */
static int reconcile(const struct prov_call *c, const struct val *props, int n, enum mode mode,
                     struct prov_result *r, struct err *e)
{
    struct svc sv;
    svc_load(&sv, c, props);
    struct fleet *f = fleet_scan(c);
    int *owned = NULL;
    int nowned = prov_ports_owned(c, &owned);
    bool which[MAX_REPLICAS];
    bool fresh[MAX_REPLICAS] = {false};
    int rc = 0, failed = -1;
    if (n > 0 && !fs_is_dir(sv.dir)) {
        rc = err_set(e, PE_PROVIDER, NULL, "working directory %s does not exist", sv.dir);
        goto out;
    }
    /* 1. scale down (a stale priv entry must not release a port a kept
     * replica's pid file names) */
    for (int i = 0; i < MAX_REPLICAS; i++) {
        which[i] = i >= n && (f->r[i].found || f->r[i].in_priv);
        for (int j = 0; which[i] && j < n; j++)
            if (f->r[j].found && f->r[j].port == f->r[i].port)
                f->r[i].port = 0;
    }
    fleet_stop(c, f, which, true, sv.stop_timeout_ms);

    /* 2. replicas that exist but are dead or out of date, one at a time */
    for (int i = 0; i < n; i++) {
        struct rep *rp = &f->r[i];
        if (!rp->found && !(rp->in_priv && rp->alive))
            continue;
        int port = has_port(owned, nowned, rp->port) ? rp->port : 0;
        char *want = spec_text(c, &sv, i, rp->port);
        /* a rebuild (something it depends on was created anew) restarts
         * every replica even when its spec is the same */
        bool keep = rp->alive && rp->found && rp->port &&
                    (mode == MODE_SCALE ||
                     (rp->spec && !strcmp(rp->spec, want) && !(mode == MODE_UPDATE && c->rebuild)));
        free(want);
        if (keep)
            continue;
        prov_log(c, "replica %d: %s", i,
                 !rp->alive ? "not running, starting it again"
                 : c->rebuild ? "restarting: a resource it depends on was created anew"
                              : "restarting with a new spec");
        memset(which, 0, sizeof which);
        which[i] = true;
        fleet_stop(c, f, which, !port, sv.stop_timeout_ms);
        if (!port)
            continue; /* gets a new port with the missing ones */
        rc = rep_spawn(c, &sv, f, i, port, e);
        if (!rc)
            rc = rep_wait(c, &sv, f, i, tm_mono_ms() + sv.health_timeout_ms, e);
        if (rc) {
            failed = i;
            goto out;
        }
    }

    /* 3. missing replicas: ports, then start them all, then wait */
    int used[MAX_REPLICAS], nused = 0, need = 0;
    for (int i = 0; i < n; i++)
        if (f->r[i].found && f->r[i].port)
            used[nused++] = f->r[i].port;
    for (int i = 0; i < n; i++) {
        struct rep *rp = &f->r[i];
        if (rp->found)
            continue;
        fresh[i] = true;
        if (rp->port && has_port(owned, nowned, rp->port) && !has_port(used, nused, rp->port))
            used[nused++] = rp->port; /* its old port, still leased to us */
        else
            rp->port = 0;
    }
    for (int i = 0; i < n; i++) {
        struct rep *rp = &f->r[i];
        if (!fresh[i] || rp->port)
            continue;
        for (int k = 0; k < nowned && !rp->port; k++)
            if (!has_port(used, nused, owned[k]))
                used[nused++] = rp->port = owned[k]; /* a lease nobody uses */
        if (!rp->port)
            need++;
    }
    if (need) {
        int got[MAX_REPLICAS];
        rc = prov_ports_alloc(c, need, got, e);
        if (rc)
            goto out;
        for (int i = 0, k = 0; i < n; i++)
            if (fresh[i] && !f->r[i].port)
                f->r[i].port = got[k++];
    }
    for (int i = 0; i < n && !rc; i++)
        if (fresh[i]) {
            rc = rep_spawn(c, &sv, f, i, f->r[i].port, e);
            if (rc)
                failed = i;
        }
    long long deadline = tm_mono_ms() + sv.health_timeout_ms;
    for (int i = 0; i < n && !rc; i++)
        if (fresh[i]) {
            rc = rep_wait(c, &sv, f, i, deadline, e);
            if (rc)
                failed = i;
        }
    if (rc)
        goto out;

    /* 4. leases no replica uses */
    free(owned);
    nowned = prov_ports_owned(c, &owned);
    for (int k = 0; k < nowned; k++) {
        bool mine = false;
        for (int i = 0; i < n && !mine; i++)
            mine = f->r[i].port == owned[k];
        if (!mine)
            prov_ports_release(c, &owned[k], 1);
    }
    set_result(c, f, n, r);
    r->exists = true;
out:
    if (rc)
        undo(c, f, &sv, mode, n, failed, fresh);
    free(owned);
    fleet_free(f);
    svc_release(&sv);
    return rc;
}

/* the replicas to run: none while the environment sleeps */
static int wanted(const struct prov_call *c, const struct val *props)
{
    if (c->host && c->host->asleep)
        return 0;
    return clamp_replicas(prov_int(props, "replicas", 1));
}

static int ps_create(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    return reconcile(c, c->props, wanted(c, c->props), MODE_CREATE, r, e);
}

static int ps_update(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    return reconcile(c, c->props, wanted(c, c->props), MODE_UPDATE, r, e);
}

static int ps_scale(const struct prov_call *c, int replicas, struct prov_result *r, struct err *e)
{
    const struct val *props = c->old_props ? c->old_props : c->props;
    if (!props)
        return err_set(e, PE_STATE, NULL, "cannot scale: no properties recorded");
    if (replicas < 0 || replicas > MAX_REPLICAS)
        return err_set(e, PE_USAGE, NULL, "replicas must be between 0 and %d, not %d", MAX_REPLICAS,
                       replicas);
    return reconcile(c, props, replicas, MODE_SCALE, r, e);
}

/* ---- read, remove ---- */

static int ps_read(const struct prov_call *c, struct prov_result *r, struct err *e)
{
    (void)e;
    struct fleet *f = fleet_scan(c);
    int want = c->old_props ? wanted(c, c->old_props) : -1;
    int hi = f->hi > want ? f->hi : want;
    int running = 0;
    struct sb drift;
    sb_init(&drift);
    for (int i = 0; i < hi; i++) {
        const struct rep *rp = &f->r[i];
        size_t before = drift.len;
        if (drift.len)
            sb_adds(&drift, "; ");
        size_t mark = drift.len;
        if (rp->alive) {
            running++;
            if (want >= 0 && i >= want)
                sb_addf(&drift, "replica %d is running but replicas is %d", i, want);
            else if (rp->found && rp->in_priv && rp->priv_sup_pid &&
                     (rp->priv_sup_pid != rp->pf.sup_pid || rp->priv_sup_start != rp->pf.sup_start))
                sb_addf(&drift, "replica %d's supervisor was replaced (pid %d, recorded %d)", i,
                        (int)rp->pf.sup_pid, (int)rp->priv_sup_pid);
        } else if (rp->replaced) {
            sb_addf(&drift,
                    "replica %d is not running (its supervisor's pid %d now belongs to another "
                    "process)",
                    i, (int)(rp->found ? rp->pf.sup_pid : rp->priv_sup_pid));
        } else if (rp->found || rp->in_priv || i < want) {
            sb_addf(&drift, "replica %d is not running", i);
        }
        if (drift.len == mark) {
            drift.len = before;
            drift.buf[before] = 0;
        }
    }
    /* an application the supervisor is restarting (backoff) is not drift:
     * the supervisor is doing its job; asleep (replicas 0) exists */
    r->exists = running > 0 || want == 0;
    if (r->exists) {
        set_result(c, f, hi, r);
        if (drift.len)
            r->drift = sb_steal(&drift);
    }
    sb_release(&drift);
    fleet_free(f);
    return 0;
}

/* stray_files: spec files without a pid file, and temporary files of
 * interrupted atomic writes */
static void stray_files(const struct prov_call *c)
{
    DIR *d = opendir(c->run_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        const char *rest;
        if (rep_name(c, de->d_name, &rest) < 0)
            continue;
        if (!strcmp(rest, ".json") || !strcmp(rest, ".spec.json") ||
            str_prefix(rest, ".json.tmp.") || str_prefix(rest, ".spec.json.tmp."))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    if (d)
        closedir(d);
}

static int ps_remove(const struct prov_call *c, struct err *e)
{
    (void)e;
    const struct val *props = c->old_props ? c->old_props : c->props;
    struct fleet *f = fleet_scan(c);
    bool which[MAX_REPLICAS];
    bool any = false;
    for (int i = 0; i < MAX_REPLICAS; i++) {
        which[i] = f->r[i].found || f->r[i].in_priv;
        any = any || which[i];
    }
    fleet_stop(c, f, which, true,
               props ? prov_duration_ms(props, "stop_timeout", DEF_STOP_TIMEOUT_MS)
                     : DEF_STOP_TIMEOUT_MS);
    fleet_free(f);
    stray_files(c);
    int *owned = NULL;
    int n = prov_ports_owned(c, &owned);
    prov_ports_release(c, owned, n);
    free(owned);
    if (any)
        prov_log(c, "removed: every replica stopped, ports released");
    return 0;
}

const struct provider prov_process_service = {
    .type = "process.service",
    .summary = "long-running processes with a port per replica, health checks and restarts, "
               "supervised by prenv",
    .props = schema,
    .outputs = outputs,
    .check = ps_check,
    .create = ps_create,
    .read = ps_read,
    .update = ps_update,
    .remove = ps_remove,
    .scale = ps_scale,
};
