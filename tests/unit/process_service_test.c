/* Tests for process.service and `prenv supervise`: real supervisors (the
 * built prenv binary) running a tiny Python HTTP app or plain commands, each
 * test in its own temp dir and port range. Every process a test starts
 * inherits PSTEST_ROOT=<its temp dir>, so the .fini function finds and kills
 * them by their environment even when the test failed half-way. No test
 * asserts on timings: waits are bounded polls. */
#include "core/provider.h"

#include "core/lib/err.h"
#include "core/lib/fs.h"
#include "core/lib/proc.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"
#include "core/lib/yt.h"
#include "core/providers/supervise.h"
#include "tests/testlib.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TRACKED 256

static const char app_py[] =
    "import http.server, os, signal, sys\n"
    "mode = sys.argv[1]\n"
    "port = int(os.environ['PORT'])\n"
    "if mode == 'trap':\n"
    "    def onterm(signo, frame):\n"
    "        print('got SIGTERM, exiting cleanly', flush=True)\n"
    "        os._exit(0)\n"
    "    signal.signal(signal.SIGTERM, onterm)\n"
    "elif mode == 'ignore':\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "    print('ignoring SIGTERM', flush=True)\n"
    "elif mode == 'pii':\n"
    "    sys.stdout.write('contact alice@exa'); sys.stdout.flush()\n"
    "    sys.stdout.write('mple.com from 10.1.2.3 and ::1 running 1.2.3\\n'); sys.stdout.flush()\n"
    "elif mode == 'noisy':\n"
    "    for i in range(300):\n"
    "        print('%05d %s' % (i, 'x' * 93), flush=True)\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        code = 503 if mode == 'unhealthy' else 200 if self.path == '/healthz' else 404\n"
    "        body = b'ok\\n'\n"
    "        self.send_response(code)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *args):\n"
    "        pass\n"
    "srv = http.server.HTTPServer(('127.0.0.1', port), H)\n"
    "print('listening on port %d' % port, flush=True)\n"
    "srv.serve_forever()\n";

static struct fixture {
    char root[64];
    char state[96], logs[96], run[96], work[96], app[128];
    struct prov_host host;
    struct prov_call call;
    struct {
        pid_t pid;
        unsigned long long start;
    } seen[MAX_TRACKED];
    int nseen;
} fx;

static const struct provider *ps(void)
{
    const struct provider *p = prov_find("process.service");
    cr_assert_not_null(p);
    return p;
}

static void msleep(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ours: pids of processes whose environment has PSTEST_ROOT=<our root> */
static int ours(pid_t *pids, int max)
{
    char needle[128];
    int nl = snprintf(needle, sizeof needle, "PSTEST_ROOT=%s", fx.root) + 1; /* with its NUL */
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) && n < max) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == getpid())
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/%ld/environ", pid);
        char *env = NULL;
        size_t len = 0;
        struct err e = {0};
        if (fs_read(path, 1 << 20, &env, &len, &e) == 0) {
            for (size_t off = 0; off < len; off += strlen(env + off) + 1)
                if (len - off >= (size_t)nl && !memcmp(env + off, needle, (size_t)nl)) {
                    pids[n++] = (pid_t)pid;
                    break;
                }
        }
        err_release(&e);
        free(env);
    }
    if (d)
        closedir(d);
    return n;
}

static int count_ours(void)
{
    pid_t pids[64];
    return ours(pids, 64);
}

static void kill_ours(void)
{
    for (int round = 0; round < 100; round++) {
        pid_t pids[64];
        int n = ours(pids, 64);
        for (int i = 0; i < fx.nseen; i++)
            if (proc_alive(fx.seen[i].pid, fx.seen[i].start) && n < 64)
                pids[n++] = fx.seen[i].pid;
        if (!n)
            return;
        for (int i = 0; i < n; i++)
            kill(pids[i], SIGKILL);
        msleep(50);
    }
}

static void write_file(const char *path, const char *text)
{
    struct err e = {0};
    cr_assert_eq(fs_write_atomic(path, text, strlen(text), 0644, &e), 0, "%s", e.msg);
}

static void setup(void)
{
    snprintf(fx.root, sizeof fx.root, "/tmp/prenv-ps-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.root));
    snprintf(fx.state, sizeof fx.state, "%s/state", fx.root);
    snprintf(fx.logs, sizeof fx.logs, "%s/state/logs/dev", fx.root);
    snprintf(fx.run, sizeof fx.run, "%s/state/run/dev", fx.root);
    snprintf(fx.work, sizeof fx.work, "%s/work", fx.root);
    snprintf(fx.app, sizeof fx.app, "%s/app.py", fx.work);
    struct err e = {0};
    cr_assert_eq(fs_mkdir_p(fx.logs, 0700, &e), 0);
    cr_assert_eq(fs_mkdir_p(fx.run, 0700, &e), 0);
    cr_assert_eq(fs_mkdir_p(fx.work, 0700, &e), 0);
    write_file(fx.app, app_py);
    fx.host.state_dir = fx.state;
    fx.host.port_lo = 32000 + (int)(getpid() % 500) * 10;
    fx.host.port_hi = fx.host.port_lo + 9;
    fx.host.cancel = 0;
    fx.call = (struct prov_call){
        .env = "dev",
        .resource = "web",
        .type = "process.service",
        .project_dir = fx.root,
        .work_dir = fx.work,
        .log_dir = fx.logs,
        .run_dir = fx.run,
        .host = &fx.host,
    };
    setenv("PRENV_SUPERVISOR_EXE", PRENV_BIN, 1);
    setenv("PSTEST_ROOT", fx.root, 1);
}

static void teardown(void)
{
    kill_ours();
    struct err e = {0};
    fs_rm_rf(fx.root, &e);
    err_release(&e);
    src_free_all();
}

TestSuite(process_service, .init = setup, .fini = teardown, .timeout = 240);

/* ---- helpers ---- */

static struct val *yaml(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static struct val *yaml(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct sb b;
    sb_init(&b);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    const struct src *s = src_add("web.yaml", b.buf, b.len);
    sb_release(&b);
    struct val *v = NULL;
    struct err e = {0};
    cr_assert_eq(yt_parse(&v, s, &e), 0, "%s", e.msg);
    return v;
}

static char *path_in(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *path_in(const char *dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct sb b;
    sb_init(&b);
    sb_addf(&b, "%s/", dir);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    return sb_steal(&b);
}

static bool exists_in(const char *dir, const char *fmt, int i)
{
    char *p = path_in(dir, fmt, i);
    bool ok = fs_exists(p);
    free(p);
    return ok;
}

static void track(pid_t pid, unsigned long long start)
{
    if (pid > 0 && start && fx.nseen < MAX_TRACKED) {
        fx.seen[fx.nseen].pid = pid;
        fx.seen[fx.nseen].start = start;
        fx.nseen++;
    }
}

/* pids: replica i's pid file into *out (zero-initialised or filled by an
 * earlier call); also remembers its pids for the checks */
static bool pids(int i, struct supervise_pids *out)
{
    supervise_pids_release(out);
    char *p = path_in(fx.run, "web.%d.json", i);
    struct err e = {0};
    int rc = supervise_pids_read(out, p, &e);
    free(p);
    err_release(&e);
    if (rc)
        return false;
    track(out->sup_pid, out->sup_start);
    track(out->pid, out->start);
    return true;
}

static int lease_count(void)
{
    char *dir = path_in(fx.state, "ports");
    DIR *d = opendir(dir);
    free(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

static int run_files(void)
{
    DIR *d = opendir(fx.run);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

static long http_status(int port)
{
    CURL *h = curl_easy_init();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    return code;
}

static int out_ports(const struct val *outputs, int *ports, int max)
{
    const struct val *l = val_map_get(outputs, "ports");
    cr_assert(l && l->kind == VAL_LIST);
    int n = 0;
    for (size_t i = 0; i < l->u.list.n && n < max; i++)
        ports[n++] = (int)l->u.list.v[i]->u.i;
    return n;
}

static char *read_log(int i, const char *suffix)
{
    char *p = path_in(fx.logs, "web.%d.log%s", i, suffix);
    char *text = NULL;
    struct err e = {0};
    if (fs_read(p, 1 << 24, &text, NULL, &e))
        text = xstrdup("");
    err_release(&e);
    free(p);
    return text;
}

/* logged: replica i's log or its last rotation has what */
static bool logged(int i, const char *what)
{
    char *text = read_log(i, "");
    char *text1 = read_log(i, ".1");
    bool found = strstr(text, what) || strstr(text1, what);
    free(text);
    free(text1);
    return found;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* a call as the engine would make it after recording r */
static struct prov_call recorded(const struct val *props, const struct val *old_props,
                                 const struct prov_result *r)
{
    struct prov_call c = fx.call;
    c.props = props;
    c.old_props = old_props;
    c.old_outputs = r ? r->outputs : NULL;
    c.priv = r ? r->priv : NULL;
    c.id = r ? r->id : NULL;
    return c;
}

#define WAIT_FOR(cond, ms)                                                                         \
    do {                                                                                           \
        long long until_ = tm_mono_ms() + (ms);                                                    \
        while (!(cond) && tm_mono_ms() < until_)                                                   \
            msleep(50);                                                                            \
    } while (0)

/* ---- the whole life of a service ---- */

Test(process_service, two_replicas_survive_kills_scale_and_are_removed_without_leftovers)
{
    struct val *props = yaml("command: [python3, -u, %s, ok]\nreplicas: 2\n"
                             "health: {http: /healthz}\nstop_timeout: 3s\n",
                             fx.app);
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), 0, "%s", e.msg);
    int ports[8];
    cr_assert_eq(out_ports(r.outputs, ports, 8), 2);
    cr_assert_neq(ports[0], ports[1]);
    cr_assert_eq(val_map_get(r.outputs, "port")->u.i, ports[0]);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ports[0]);
    cr_assert_str_eq(val_map_get(r.outputs, "url")->u.str.s, url);
    snprintf(url, sizeof url, "127.0.0.1:%d", ports[1]);
    cr_assert_str_eq(val_map_get(r.outputs, "addresses")->u.list.v[1]->u.str.s, url);
    cr_assert_eq(http_status(ports[0]), 200);
    cr_assert_eq(http_status(ports[1]), 200);
    cr_assert_eq(lease_count(), 2);
    struct supervise_pids p0 = {0}, p1 = {0};
    cr_assert(pids(0, &p0) && pids(1, &p1));
    cr_assert_eq(p1.port, ports[1]);
    cr_assert(proc_alive(p0.pid, p0.start) && proc_alive(p1.pid, p1.start));

    /* read: all there */
    struct prov_call rc = recorded(NULL, props, &r);
    struct prov_result rr = {0};
    cr_assert_eq(ps()->read(&rc, &rr, &e), 0, "%s", e.msg);
    cr_assert(rr.exists);
    cr_assert_null(rr.drift, "%s", rr.drift);
    prov_result_release(&rr);

    /* the application of replica 1 dies: its supervisor starts it again on its port */
    cr_assert_eq(kill(p1.pid, SIGKILL), 0);
    struct supervise_pids q1 = {0};
    WAIT_FOR(pids(1, &q1) && q1.pid != p1.pid && proc_alive(q1.pid, q1.start) &&
                 http_status(ports[1]) == 200,
             20000);
    cr_assert_neq(q1.pid, p1.pid, "replica 1 was not restarted");
    cr_assert_eq(http_status(ports[1]), 200);
    cr_assert_eq(q1.sup_pid, p1.sup_pid);
    cr_assert_geq(q1.restarts, 1);
    char *log1 = read_log(1, "");
    cr_assert(strstr(log1, "killed by signal 9"), "%s", log1);
    cr_assert(strstr(log1, "restarting in"), "%s", log1);
    free(log1);

    /* the supervisor of replica 1 dies: read reports it */
    cr_assert_eq(kill(q1.sup_pid, SIGKILL), 0);
    WAIT_FOR(!proc_alive(q1.sup_pid, q1.sup_start), 10000);
    cr_assert_eq(ps()->read(&rc, &rr, &e), 0, "%s", e.msg);
    cr_assert(rr.exists, "replica 0 still runs");
    cr_assert_not_null(rr.drift);
    cr_assert(strstr(rr.drift, "replica 1 is not running"), "%s", rr.drift);
    cr_assert_null(strstr(rr.drift, "replica 0"), "%s", rr.drift);
    prov_result_release(&rr);

    /* update to 3 replicas: 0 and 1 keep their ports, 1 is running again */
    struct val *props3 = yaml("command: [python3, -u, %s, ok]\nreplicas: 3\n"
                              "health: {http: /healthz}\nstop_timeout: 3s\n",
                              fx.app);
    struct prov_call uc = recorded(props3, props, &r);
    struct prov_result r3 = {0};
    cr_assert_eq(ps()->update(&uc, &r3, &e), 0, "%s", e.msg);
    int ports3[8];
    cr_assert_eq(out_ports(r3.outputs, ports3, 8), 3);
    cr_assert_eq(ports3[0], ports[0]);
    cr_assert_eq(ports3[1], ports[1]);
    cr_assert(ports3[2] != ports[0] && ports3[2] != ports[1]);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(http_status(ports3[i]), 200, "replica %d", i);
    cr_assert(!proc_alive(q1.pid, q1.start), "the orphaned application was not stopped");
    struct supervise_pids n0 = {0}, n1 = {0}, n2 = {0};
    cr_assert(pids(0, &n0) && pids(1, &n1) && pids(2, &n2));
    cr_assert_eq(n0.sup_pid, p0.sup_pid, "replica 0 was restarted by a scale-up");
    cr_assert_eq(lease_count(), 3);
    struct prov_call rc3 = recorded(NULL, props3, &r3);
    cr_assert_eq(ps()->read(&rc3, &rr, &e), 0, "%s", e.msg);
    cr_assert(rr.exists);
    cr_assert_null(rr.drift, "%s", rr.drift);
    prov_result_release(&rr);

    /* scale to 1: replicas 1 and 2 stop, their ports are released */
    struct prov_result r1 = {0};
    cr_assert_eq(ps()->scale(&rc3, 1, &r1, &e), 0, "%s", e.msg);
    int ports1[8];
    cr_assert_eq(out_ports(r1.outputs, ports1, 8), 1);
    cr_assert_eq(ports1[0], ports[0]);
    cr_assert_eq(lease_count(), 1);
    cr_assert(!exists_in(fx.run, "web.%d.json", 1) && !exists_in(fx.run, "web.%d.json", 2));
    cr_assert(!exists_in(fx.run, "web.%d.spec.json", 2));
    cr_assert(!proc_alive(n1.sup_pid, n1.sup_start) && !proc_alive(n2.pid, n2.start));
    cr_assert(proc_alive(n0.pid, n0.start));

    /* remove: nothing left but the logs; a second remove succeeds too */
    struct prov_call dc = recorded(NULL, props3, &r1);
    cr_assert_eq(ps()->remove(&dc, &e), 0, "%s", e.msg);
    for (int i = 0; i < fx.nseen; i++)
        cr_assert(!proc_alive(fx.seen[i].pid, fx.seen[i].start), "pid %d still runs",
                  (int)fx.seen[i].pid);
    cr_assert_eq(count_ours(), 0);
    cr_assert_eq(lease_count(), 0);
    cr_assert_eq(run_files(), 0);
    cr_assert(exists_in(fx.logs, "web.%d.log", 0) && exists_in(fx.logs, "web.%d.log", 2));
    cr_assert_eq(ps()->remove(&dc, &e), 0, "%s", e.msg);
    struct prov_call bare = recorded(NULL, NULL, NULL);
    cr_assert_eq(ps()->remove(&bare, &e), 0, "%s", e.msg);

    supervise_pids_release(&p0);
    supervise_pids_release(&p1);
    supervise_pids_release(&q1);
    supervise_pids_release(&n0);
    supervise_pids_release(&n1);
    supervise_pids_release(&n2);
    prov_result_release(&r);
    prov_result_release(&r3);
    prov_result_release(&r1);
    val_free(props);
    val_free(props3);
}

Test(process_service, remove_of_what_never_existed_succeeds)
{
    struct val *props = yaml("command: [sleep, '300']\n");
    struct prov_call c = recorded(NULL, props, NULL);
    struct err e = {0};
    cr_assert_eq(ps()->remove(&c, &e), 0, "%s", e.msg);
    cr_assert_eq(ps()->remove(&c, &e), 0, "%s", e.msg);
    val_free(props);
}

/* ---- failures ---- */

Test(process_service, health_timeout_names_replica_port_and_reason_and_leaves_nothing_running)
{
    struct val *props = yaml("command: [python3, -u, %s, unhealthy]\n"
                             "health: {http: /healthz, timeout: 2s, interval: 100ms}\n",
                             fx.app);
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), PE_PROVIDER, "%s", e.msg);
    cr_assert(strstr(e.msg, "replica 0 on port "), "%s", e.msg);
    cr_assert(strstr(e.msg, "not healthy after 2s: HTTP status 503"), "%s", e.msg);
    cr_assert(strstr(e.msg, "last lines of "), "%s", e.msg);
    cr_assert(strstr(e.msg, "listening on port"), "%s", e.msg);
    cr_assert_null(r.outputs);
    cr_assert_eq(count_ours(), 0);
    cr_assert_eq(lease_count(), 0);
    cr_assert_eq(run_files(), 0);
    char *log = read_log(0, "");
    cr_assert(strstr(log, "supervisor exiting"), "%s", log);
    free(log);
    err_release(&e);
    val_free(props);
}

Test(process_service, missing_command_fails_with_the_log_tail_and_leaves_nothing_running)
{
    struct val *props = yaml("command: [/nonexistent/prenv-no-such-command, --flag]\n"
                             "health: {tcp: true, timeout: 20s}\n");
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), PE_PROVIDER, "%s", e.msg);
    cr_assert(strstr(e.msg, "replica 0 on port "), "%s", e.msg);
    cr_assert(strstr(e.msg, "could not be started"), "%s", e.msg);
    cr_assert(strstr(e.msg, "last lines of "), "%s", e.msg);
    cr_assert(strstr(e.msg, "[prenv] cannot start '/nonexistent/prenv-no-such-command'"), "%s",
              e.msg);
    cr_assert(strstr(e.msg, "no such file or directory"), "%s", e.msg);
    cr_assert_eq(count_ours(), 0);
    cr_assert_eq(lease_count(), 0);
    cr_assert_eq(run_files(), 0);
    err_release(&e);
    val_free(props);
}

Test(process_service, app_that_exits_with_restart_never_fails_create_with_the_log_tail)
{
    struct val *props = yaml("command: [sh, -c, 'echo bye from app; exit 7']\n"
                             "restart: never\n");
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), PE_PROVIDER, "%s", e.msg);
    cr_assert(strstr(e.msg, "replica 0 on port "), "%s", e.msg);
    cr_assert(strstr(e.msg, "bye from app"), "%s", e.msg);
    cr_assert(strstr(e.msg, "exited with status 7"), "%s", e.msg);
    cr_assert(strstr(e.msg, "not restarting (restart: never)"), "%s", e.msg);
    cr_assert_eq(count_ours(), 0);
    cr_assert_eq(lease_count(), 0);
    err_release(&e);
    val_free(props);
}

Test(process_service, missing_working_directory_is_reported_before_anything_starts)
{
    struct val *props = yaml("command: [sleep, '300']\ndir: no/such/dir\n");
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), PE_PROVIDER, "%s", e.msg);
    cr_assert(strstr(e.msg, "working directory "), "%s", e.msg);
    cr_assert(strstr(e.msg, "/work/no/such/dir does not exist"), "%s", e.msg);
    cr_assert_eq(lease_count(), 0);
    err_release(&e);
    val_free(props);
}

Test(process_service, canceled_create_stops_what_it_started)
{
    struct val *props = yaml("command: [python3, -u, %s, unhealthy]\n"
                             "health: {http: /healthz, timeout: 60s}\n",
                             fx.app);
    struct prov_call c = recorded(props, NULL, NULL);
    fx.host.cancel = 1;
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), PE_CANCELED, "%s", e.msg);
    cr_assert(strstr(e.msg, "canceled while waiting for replica 0"), "%s", e.msg);
    cr_assert_eq(count_ours(), 0);
    cr_assert_eq(lease_count(), 0);
    err_release(&e);
    val_free(props);
}

/* ---- logs and stopping ---- */

Test(process_service, log_rotates_at_log_max_size_and_keeps_log_keep_files)
{
    struct val *props = yaml("command: [python3, -u, %s, noisy]\nhealth: {http: /healthz}\n"
                             "log_max_size: 2048\nlog_keep: 2\n",
                             fx.app);
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), 0, "%s", e.msg);
    char *log = path_in(fx.logs, "web.0.log");
    char *log1 = path_in(fx.logs, "web.0.log.1");
    char *log2 = path_in(fx.logs, "web.0.log.2");
    char *log3 = path_in(fx.logs, "web.0.log.3");
    /* the supervisor may not have read the pipe to its end yet */
    WAIT_FOR(fs_exists(log2) && logged(0, "listening on port"), 10000);
    cr_assert(fs_exists(log1) && fs_exists(log2));
    cr_assert(!fs_exists(log3));
    cr_assert_leq(file_size(log), 2048);
    cr_assert_leq(file_size(log1), 2048);
    cr_assert_leq(file_size(log2), 2048);
    cr_assert_gt(file_size(log1), 1024, "rotated before it was full");
    cr_assert(logged(0, "listening on port"));
    struct prov_call dc = recorded(NULL, props, &r);
    cr_assert_eq(ps()->remove(&dc, &e), 0, "%s", e.msg);
    free(log);
    free(log1);
    free(log2);
    free(log3);
    prov_result_release(&r);
    val_free(props);
}

static void pii_run(bool redact, const char *want, const char *unwanted)
{
    struct val *props = yaml("command: [python3, -u, %s, pii]\nhealth: {tcp: true}\n"
                             "log_redact: %s\n",
                             fx.app, redact ? "true" : "false");
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), 0, "%s", e.msg);
    WAIT_FOR(logged(0, "listening on port"), 10000);
    cr_expect(logged(0, want), "the log has \"%s\"", want);
    cr_expect(!logged(0, unwanted), "the log lacks \"%s\"", unwanted);
    struct prov_call dc = recorded(NULL, props, &r);
    cr_assert_eq(ps()->remove(&dc, &e), 0, "%s", e.msg);
    prov_result_release(&r);
    val_free(props);
}

Test(process_service, log_redact_masks_emails_and_ips_even_in_a_line_written_in_two_parts)
{
    pii_run(true, "contact [email] from [ip] and [ip] running 1.2.3\n", "alice");
}

Test(process_service, without_log_redact_the_output_is_logged_as_written)
{
    pii_run(false, "contact alice@example.com from 10.1.2.3 and ::1 running 1.2.3\n", "[ip]");
}

Test(process_service, log_redact_masks_an_unterminated_last_line_before_the_exit_line)
{
    struct val *props = yaml("command: [sh, -c, 'printf \"last words from 10.9.8.7\"; exit 3']\n"
                             "restart: never\nlog_redact: true\n");
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), PE_PROVIDER, "%s", e.msg);
    char *log = read_log(0, "");
    cr_assert(log && strstr(log, "last words from [ip]\n"), "%s", log ? log : "(no log)");
    cr_assert(strstr(strstr(log, "[ip]"), "exited with status 3"), "%s", log);
    cr_assert_null(strstr(log, "10.9.8.7"), "%s", log);
    free(log);
    err_release(&e);
    val_free(props);
}

Test(process_service, app_that_handles_sigterm_stops_cleanly_without_sigkill)
{
    struct val *props = yaml("command: [python3, -u, %s, trap]\nhealth: {tcp: true}\n"
                             "stop_timeout: 20s\n",
                             fx.app);
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), 0, "%s", e.msg);
    struct supervise_pids p = {0};
    cr_assert(pids(0, &p));
    struct prov_call dc = recorded(NULL, props, &r);
    cr_assert_eq(ps()->remove(&dc, &e), 0, "%s", e.msg);
    cr_assert(!proc_alive(p.pid, p.start));
    cr_assert(!proc_alive(p.sup_pid, p.sup_start));
    char *log = read_log(0, "");
    cr_assert(strstr(log, "sending SIGTERM to process group"), "%s", log);
    cr_assert(strstr(log, "got SIGTERM, exiting cleanly"), "%s", log);
    cr_assert(strstr(log, "exited with status 0"), "%s", log);
    cr_assert_null(strstr(log, "SIGKILL"), "%s", log);
    cr_assert(strstr(log, "supervisor exiting"), "%s", log);
    free(log);
    supervise_pids_release(&p);
    prov_result_release(&r);
    val_free(props);
}

Test(process_service, app_that_ignores_sigterm_is_killed_after_stop_timeout)
{
    struct val *props = yaml("command: [python3, -u, %s, ignore]\nhealth: {http: /healthz}\n"
                             "stop_timeout: 1s\n",
                             fx.app);
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), 0, "%s", e.msg);
    struct supervise_pids p = {0};
    cr_assert(pids(0, &p));
    struct prov_call dc = recorded(NULL, props, &r);
    cr_assert_eq(ps()->remove(&dc, &e), 0, "%s", e.msg);
    cr_assert(!proc_alive(p.pid, p.start));
    cr_assert(!proc_alive(p.sup_pid, p.sup_start));
    char *log = read_log(0, "");
    cr_assert(strstr(log, "ignoring SIGTERM"), "%s", log);
    cr_assert(strstr(log, "still running after 1s: sending SIGKILL to process group"), "%s", log);
    cr_assert(strstr(log, "killed by signal 9"), "%s", log);
    free(log);
    cr_assert_eq(count_ours(), 0);
    supervise_pids_release(&p);
    prov_result_release(&r);
    val_free(props);
}

/* ---- state ---- */

Test(process_service, read_finds_replicas_without_private_data_or_recorded_state)
{
    struct val *props = yaml("command: [sleep, '300']\nreplicas: 2\n");
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), 0, "%s", e.msg);
    int ports[8];
    cr_assert_eq(out_ports(r.outputs, ports, 8), 2);

    /* a crash lost the state write: nothing recorded at all */
    struct prov_call bare = recorded(NULL, NULL, NULL);
    struct prov_result rr = {0};
    cr_assert_eq(ps()->read(&bare, &rr, &e), 0, "%s", e.msg);
    cr_assert(rr.exists);
    cr_assert_null(rr.drift, "%s", rr.drift);
    int found[8];
    cr_assert_eq(out_ports(rr.outputs, found, 8), 2);
    cr_assert_eq(found[0], ports[0]);
    cr_assert_eq(found[1], ports[1]);
    cr_assert_not_null(rr.priv);
    prov_result_release(&rr);

    /* properties recorded, private data lost */
    struct prov_call nopriv = recorded(NULL, props, NULL);
    cr_assert_eq(ps()->read(&nopriv, &rr, &e), 0, "%s", e.msg);
    cr_assert(rr.exists);
    cr_assert_null(rr.drift, "%s", rr.drift);
    prov_result_release(&rr);

    /* a create that finds them adopts them instead of starting twice */
    struct supervise_pids p0 = {0};
    cr_assert(pids(0, &p0));
    struct prov_result again = {0};
    cr_assert_eq(ps()->create(&c, &again, &e), 0, "%s", e.msg);
    struct supervise_pids a0 = {0};
    cr_assert(pids(0, &a0));
    cr_assert_eq(a0.sup_pid, p0.sup_pid);
    cr_assert_eq(lease_count(), 2);

    /* remove without any recorded state still finds and stops everything */
    cr_assert_eq(ps()->remove(&bare, &e), 0, "%s", e.msg);
    cr_assert_eq(count_ours(), 0);
    cr_assert_eq(lease_count(), 0);
    cr_assert_eq(run_files(), 0);
    struct prov_call gone = recorded(NULL, props, &r);
    cr_assert_eq(ps()->read(&gone, &rr, &e), 0, "%s", e.msg);
    cr_assert(!rr.exists);
    prov_result_release(&rr);
    supervise_pids_release(&p0);
    supervise_pids_release(&a0);
    prov_result_release(&r);
    prov_result_release(&again);
    val_free(props);
}

Test(process_service, changing_env_restarts_each_replica_on_its_port)
{
    struct val *props = yaml("command: [sleep, '300']\nreplicas: 2\nenv: {GREETING: hello}\n");
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), 0, "%s", e.msg);
    int ports[8];
    cr_assert_eq(out_ports(r.outputs, ports, 8), 2);
    struct supervise_pids p0 = {0}, p1 = {0};
    cr_assert(pids(0, &p0) && pids(1, &p1));

    struct val *props2 = yaml("command: [sleep, '300']\nreplicas: 2\nenv: {GREETING: bonjour}\n");
    struct prov_call uc = recorded(props2, props, &r);
    struct prov_result r2 = {0};
    cr_assert_eq(ps()->update(&uc, &r2, &e), 0, "%s", e.msg);
    int ports2[8];
    cr_assert_eq(out_ports(r2.outputs, ports2, 8), 2);
    cr_assert_eq(ports2[0], ports[0]);
    cr_assert_eq(ports2[1], ports[1]);
    struct supervise_pids n0 = {0}, n1 = {0};
    cr_assert(pids(0, &n0) && pids(1, &n1));
    cr_assert_neq(n0.sup_pid, p0.sup_pid);
    cr_assert_neq(n1.sup_pid, p1.sup_pid);
    cr_assert(!proc_alive(p0.pid, p0.start) && !proc_alive(p1.pid, p1.start));

    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)n1.pid);
    char *env = NULL;
    size_t len = 0;
    cr_assert_eq(fs_read(path, 1 << 20, &env, &len, &e), 0, "%s", e.msg);
    bool greeting = false, port = false;
    char want_port[32];
    snprintf(want_port, sizeof want_port, "PORT=%d", ports[1]);
    for (size_t off = 0; off < len; off += strlen(env + off) + 1) {
        greeting = greeting || !strcmp(env + off, "GREETING=bonjour");
        port = port || !strcmp(env + off, want_port);
    }
    cr_assert(greeting && port);
    free(env);

    /* the same properties again change nothing */
    struct prov_call same = recorded(props2, props2, &r2);
    struct prov_result r3 = {0};
    cr_assert_eq(ps()->update(&same, &r3, &e), 0, "%s", e.msg);
    struct supervise_pids m1 = {0};
    cr_assert(pids(1, &m1));
    cr_assert_eq(m1.sup_pid, n1.sup_pid);

    struct prov_call dc = recorded(NULL, props2, &r3);
    cr_assert_eq(ps()->remove(&dc, &e), 0, "%s", e.msg);
    cr_assert_eq(count_ours(), 0);
    supervise_pids_release(&p0);
    supervise_pids_release(&p1);
    supervise_pids_release(&n0);
    supervise_pids_release(&n1);
    supervise_pids_release(&m1);
    prov_result_release(&r);
    prov_result_release(&r2);
    prov_result_release(&r3);
    val_free(props);
    val_free(props2);
}

Test(process_service, zero_replicas_run_nothing_hold_no_port_and_wake_up)
{
    struct val *props = yaml("command: [sleep, '300']\nreplicas: 0\n");
    struct prov_call c = recorded(props, NULL, NULL);
    struct prov_result r = {0};
    struct err e = {0};
    cr_assert_eq(ps()->create(&c, &r, &e), 0, "%s", e.msg);
    cr_assert_eq(val_map_get(r.outputs, "port")->kind, VAL_NULL);
    cr_assert_eq(val_map_get(r.outputs, "url")->kind, VAL_NULL);
    cr_assert_eq(val_map_get(r.outputs, "ports")->u.list.n, 0);
    cr_assert_eq(lease_count(), 0);
    cr_assert_eq(count_ours(), 0);
    struct prov_call rc = recorded(NULL, props, &r);
    struct prov_result rr = {0};
    cr_assert_eq(ps()->read(&rc, &rr, &e), 0, "%s", e.msg);
    cr_assert(rr.exists, "an asleep service exists");
    cr_assert_null(rr.drift, "%s", rr.drift);
    prov_result_release(&rr);

    struct prov_result r1 = {0};
    cr_assert_eq(ps()->scale(&rc, 1, &r1, &e), 0, "%s", e.msg);
    cr_assert_eq(val_map_get(r1.outputs, "port")->kind, VAL_INT);
    cr_assert_eq(lease_count(), 1);
    struct prov_result r0 = {0};
    struct prov_call rc1 = recorded(NULL, props, &r1);
    cr_assert_eq(ps()->scale(&rc1, 0, &r0, &e), 0, "%s", e.msg);
    cr_assert_eq(lease_count(), 0);
    cr_assert_eq(count_ours(), 0);
    cr_assert_eq(run_files(), 0);
    prov_result_release(&r);
    prov_result_release(&r1);
    prov_result_release(&r0);
    val_free(props);
}

/* ---- check ---- */

static int check(const char *text, struct err *e)
{
    struct val *props = yaml("%s", text);
    struct prov_call c = recorded(props, NULL, NULL);
    int rc = prov_check_props(ps(), &c, NULL, e);
    val_free(props);
    return rc;
}

Test(process_service, check_accepts_a_complete_service)
{
    struct err e = {0};
    cr_assert_eq(check("command: [python3, app.py]\nenv: {MODE: dev}\ndir: app\nreplicas: 3\n"
                       "health: {http: /healthz, timeout: 5s, interval: 100ms}\n"
                       "stop_timeout: 5s\nrestart: on-failure\nlog_max_size: 1048576\n"
                       "log_keep: 5\n",
                       &e),
                 0, "%s", e.msg);
    cr_assert_eq(check("command: [redis-server]\nhealth: {tcp: true}\n", &e), 0, "%s", e.msg);
}

Test(process_service, check_rejects_replicas_out_of_range_at_the_value)
{
    struct err e = {0};
    cr_assert_eq(check("command: [python3, app.py]\nreplicas: 65\n", &e), PE_CONFIG);
    cr_assert_str_eq(e.msg, "'replicas' must be between 0 and 64, not 65");
    cr_assert_eq(e.pos.line, 2);
    cr_assert_eq(e.pos.col, 11);
    err_release(&e);
}

Test(process_service, check_rejects_an_unknown_restart_policy_with_a_suggestion)
{
    struct err e = {0};
    cr_assert_eq(check("command: [python3, app.py]\nrestart: alway\n", &e), PE_CONFIG);
    cr_assert_str_eq(e.msg, "unknown restart policy 'alway' (did you mean 'always'?)");
    cr_assert_eq(e.pos.line, 2);
    cr_assert_eq(e.pos.col, 10);
    err_release(&e);
}

Test(process_service, check_rejects_health_without_http_or_tcp)
{
    struct err e = {0};
    cr_assert_eq(check("command: [python3, app.py]\nhealth:\n  timeout: 5s\n", &e), PE_CONFIG);
    cr_assert_str_eq(e.msg, "'health' has neither 'http' nor 'tcp'");
    cr_assert_eq(e.pos.line, 3);
    cr_assert_not_null(e.hint);
    err_release(&e);
}

Test(process_service, check_rejects_an_http_path_without_a_leading_slash)
{
    struct err e = {0};
    cr_assert_eq(check("command: [python3, app.py]\nhealth: {http: healthz}\n", &e), PE_CONFIG);
    cr_assert(strstr(e.msg, "'health.http' must be a path starting with '/'"), "%s", e.msg);
    cr_assert_eq(e.pos.line, 2);
    cr_assert_eq(e.pos.col, 16);
    err_release(&e);
}

Test(process_service, check_rejects_misspelt_health_keys_and_port_in_env)
{
    struct err e = {0};
    cr_assert_eq(check("command: [python3, app.py]\nhealth: {htp: /healthz}\n", &e), PE_CONFIG);
    cr_assert_str_eq(e.msg, "unknown key 'htp' in 'health' (did you mean 'http'?)");
    cr_assert_eq(e.pos.line, 2);
    err_release(&e);
    cr_assert_eq(check("command: [python3, app.py]\nenv:\n  PORT: 80\n", &e), PE_CONFIG);
    cr_assert(strstr(e.msg, "'env.PORT' cannot be set"), "%s", e.msg);
    cr_assert_eq(e.pos.line, 3);
    cr_assert_eq(e.pos.col, 3);
    err_release(&e);
    cr_assert_eq(check("command: [python3, app.py]\nhealth: {http: /a, tcp: true}\n", &e),
                 PE_CONFIG);
    cr_assert(strstr(e.msg, "not both"), "%s", e.msg);
    err_release(&e);
    cr_assert_eq(check("command: [python3, app.py]\nlog_max_size: 10\n", &e), PE_CONFIG);
    cr_assert(strstr(e.msg, "'log_max_size' must be between 1024"), "%s", e.msg);
    err_release(&e);
}

Test(process_service, check_rejects_a_command_given_as_one_string)
{
    struct err e = {0};
    cr_assert_eq(check("command: python3 app.py\n", &e), PE_CONFIG);
    cr_assert(strstr(e.msg, "never run through a shell"), "%s", e.msg);
    err_release(&e);
}

/* ---- the supervisor on its own ---- */

Test(process_service, supervise_without_a_spec_is_a_usage_error)
{
    struct tl_res r = tl_prenv(NULL, (const char *const[]){"supervise", NULL}, NULL);
    cr_assert_eq(r.code, 2, "%s", r.err);
    tl_res_free(&r);
    char *spec = xasprintf("%s/nope.json", fx.root);
    r = tl_prenv(NULL, (const char *const[]){"supervise", spec, NULL}, NULL);
    cr_assert_eq(r.code, 1, "%s", r.err);
    tl_res_free(&r);
    free(spec);
}
