/* testlib: helpers shared by the unit and end-to-end suites. */
#include "tests/testlib.h"

#include "core/lib/fs.h"
#include "core/lib/proc.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/val.h"
#include "core/lib/xalloc.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK_DIR "/tmp/prenv-test-ports"
/* 20000..29599: below Linux's ephemeral range (32768..60999). A block inside
 * it can lose a port to the source port of any outgoing connection — a test's
 * curl, a libpq session — and then a listener fails with EADDRINUSE. */
#define BLOCK_BASE 20000
#define BLOCK_SIZE 16
#define BLOCKS 600

char *tl_tmpdir(const char *tag)
{
    char *t = xasprintf("/tmp/prenv-test-%s-XXXXXX", tag);
    if (!mkdtemp(t)) {
        perror("mkdtemp");
        abort();
    }
    return t;
}

void tl_write(const char *dir, const char *rel, const char *text)
{
    char *path = xasprintf("%s/%s", dir, rel);
    char *d = fs_dirname(path);
    struct err e = {0};
    fs_mkdir_p(d, 0755, &e);
    if (fs_write_atomic(path, text, strlen(text), 0644, &e)) {
        fprintf(stderr, "tl_write %s: %s\n", path, e.msg);
        abort();
    }
    free(d);
    free(path);
}

char *tl_read(const char *path)
{
    char *t = NULL;
    size_t n;
    struct err e = {0};
    if (fs_read(path, 64 << 20, &t, &n, &e)) {
        err_release(&e);
        return NULL;
    }
    return t;
}

/* a block of ports no other test holds: a lock file per block, stolen only
 * from a dead holder */
static int reserve_block(void)
{
    mkdir(BLOCK_DIR, 0777);
    unsigned start = (unsigned)getpid() % BLOCKS;
    for (unsigned k = 0; k < BLOCKS; k++) {
        unsigned b = (start + k) % BLOCKS;
        char *path = xasprintf("%s/%u", BLOCK_DIR, b);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            char *t = tl_read(path);
            long pid = t ? strtol(t, NULL, 10) : 0;
            free(t);
            if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
                unlink(path);
                fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            }
        }
        if (fd >= 0) {
            char buf[32];
            int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
            ssize_t w = write(fd, buf, (size_t)n);
            (void)w;
            close(fd);
            free(path);
            return (int)b;
        }
        free(path);
    }
    fprintf(stderr, "no free port block\n");
    abort();
}

static void release_block(int b)
{
    char *path = xasprintf("%s/%d", BLOCK_DIR, b);
    unlink(path);
    free(path);
}

/* does yaml have key at the start of a line (a top-level key)? */
static bool has_top_key(const char *yaml, const char *key)
{
    size_t n = strlen(key);
    for (const char *l = yaml; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (!strncmp(l, key, n) && l[n] == ':')
            return true;
    return false;
}

void tl_proj_new(struct tl_proj *p, const char *template_yaml, const char *base_values,
                 const char *extra_yaml)
{
    memset(p, 0, sizeof *p);
    p->dir = tl_tmpdir("proj");
    p->state = xasprintf("%s/.prenv", p->dir);
    p->block = reserve_block();
    p->port_lo = BLOCK_BASE + p->block * BLOCK_SIZE;
    p->port_hi = p->port_lo + BLOCK_SIZE - 1;
    /* extra YAML may bring its own stages, previews or sandboxes block */
    /* the block's top two ports are for prenv serve (port_hi) and its
     * router (port_hi - 1); services get the rest */
    char router[64];
    snprintf(router, sizeof router, "router: {listen: '127.0.0.1:%d'}\n", p->port_hi - 1);
    char *y = xasprintf("project: test\n"
                        "template: templates/app.yaml\n"
                        "ports: %d-%d\n"
                        "tags: {team: qa}\n"
                        "%s%s%s%s%s",
                        p->port_lo, p->port_hi - 2,
                        has_top_key(extra_yaml, "router") ? "" : router,
                        has_top_key(extra_yaml, "stages")
                            ? ""
                            : "stages:\n"
                              "  dev: {config: envs/dev.yaml}\n"
                              "  staging: {config: envs/staging.yaml}\n"
                              "  prod: {config: envs/prod.yaml, protect: true}\n",
                        has_top_key(extra_yaml, "previews")
                            ? ""
                            : "previews: {name: 'pr-{number}', config: envs/preview.yaml, "
                              "ttl: 72h}\n",
                        has_top_key(extra_yaml, "sandboxes")
                            ? ""
                            : "sandboxes: {name: 'sb-{name}', config: envs/sandbox.yaml, ttl: 8h, "
                              "max_per_owner: 2}\n",
                        extra_yaml ? extra_yaml : "");
    tl_write(p->dir, "prenv.yaml", y);
    free(y);
    tl_write(p->dir, "templates/app.yaml", template_yaml);
    char *base = xasprintf("values:\n%s", base_values ? base_values : "  greeting: hello\n");
    tl_write(p->dir, "envs/base.yaml", base);
    free(base);
    const char *envs[] = {"dev", "staging", "prod", "preview", "sandbox"};
    for (size_t i = 0; i < 5; i++) {
        char *rel = xasprintf("envs/%s.yaml", envs[i]);
        tl_write(p->dir, rel, "imports: [base]\n");
        free(rel);
    }
    char *app = xasprintf("%s/tests/fixtures/app.py", PRENV_SRC);
    char *text = tl_read(app);
    tl_write(p->dir, "app.py", text);
    free(text);
    free(app);
}

static bool mentions_both(pid_t pid, const char *dir, const char *what)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    for (ssize_t i = 0; i < n; i++)
        if (!buf[i])
            buf[i] = ' ';
    buf[n] = 0;
    return strstr(buf, dir) && strstr(buf, what);
}

int tl_procs_matching(const char *dir, const char *what)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid() || !proc_alive((pid_t)pid, 0))
            continue;
        if (mentions_both((pid_t)pid, dir, what))
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static bool mentions(pid_t pid, const char *dir)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                if (!buf[i])
                    buf[i] = ' ';
            buf[n] = 0;
            if (strstr(buf, dir))
                return true;
        }
    }
    snprintf(path, sizeof path, "/proc/%d/cwd", (int)pid);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = 0;
        if (!strncmp(buf, dir, strlen(dir)))
            return true;
    }
    return false;
}

static int scan(const char *dir, bool kill_them)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid())
            continue;
        if (!proc_alive((pid_t)pid, 0))
            continue; /* zombies don't count */
        if (mentions((pid_t)pid, dir)) {
            n++;
            if (kill_them)
                kill((pid_t)pid, SIGKILL);
        }
    }
    if (d)
        closedir(d);
    return n;
}

int tl_procs_in(const char *dir)
{
    return scan(dir, false);
}

void tl_kill_in(const char *dir)
{
    for (int i = 0; i < 20 && scan(dir, true); i++)
        usleep(50000);
}

struct tl_res tl_prenv(const struct tl_proj *p, const char *const *args, const char *const *env)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = PRENV_BIN;
    argv[n++] = "--no-color";
    if (p) {
        argv[n++] = "-C";
        argv[n++] = p->dir;
    }
    for (size_t i = 0; args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct val *extra = val_map(NULL);
    val_map_set(extra, "USER", NULL, val_str("tester", NULL));
    for (size_t i = 0; env && env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        char *k = xstrndup(env[i], (size_t)(eq - env[i]));
        val_map_set(extra, k, NULL, val_str(eq + 1, NULL));
        free(k);
    }
    /* the suite's own environment must not leak test hooks into every run */
    unsetenv("PRENV_CRASH_AT");
    char **envp = proc_env_build(extra);
    val_free(extra);
    struct proc_spec spec = {.argv = argv, .envp = envp, .timeout_ms = 120000, .log_fd = -1,
                             .out_cap = 8 << 20};
    struct proc_result r;
    struct err e = {0};
    struct tl_res res = {0};
    if (proc_run(&spec, &r, &e)) {
        res.code = -1;
        res.out = xstrdup("");
        res.err = xstrdup(e.msg ? e.msg : "spawn failed");
        err_release(&e);
    } else {
        res.code = r.signo ? 128 + r.signo : r.exit_code;
        res.out = r.out;
        res.err = r.err_tail;
        r.out = r.err_tail = NULL;
        proc_result_release(&r);
    }
    proc_env_free(envp);
    return res;
}

void tl_res_free(struct tl_res *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

void tl_proj_free(struct tl_proj *p)
{
    if (!p->dir)
        return;
    /* destroy what the test left, the supported way first */
    char *sd = xasprintf("%s/state", p->state);
    DIR *d = opendir(sd);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json"))
            continue;
        char *env = xstrndup(de->d_name, l - 5);
        struct tl_res r = TL_PRENV(p, "env", "destroy", env, "--yes", "--unprotect");
        tl_res_free(&r);
        free(env);
    }
    if (d)
        closedir(d);
    free(sd);
    tl_kill_in(p->dir);
    struct err e = {0};
    fs_rm_rf(p->dir, &e);
    err_release(&e);
    release_block(p->block);
    free(p->dir);
    free(p->state);
    memset(p, 0, sizeof *p);
}

int tl_http_status(const char *raw, size_t len)
{
    if (len < 12 || strncmp(raw, "HTTP/1.", 7) || raw[8] != ' ')
        return 0;
    char *end = NULL;
    long st = strtol(raw + 9, &end, 10);
    return end == raw + 12 && st >= 100 && st <= 999 ? (int)st : 0;
}

/* exchange: send req to 127.0.0.1:port, read until the server closes; the
 * status (0 = no answer) and, in *body, what follows the head */
static int exchange(int port, const struct sb *req, int timeout_s, char **body)
{
    if (body)
        *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return 0;
    }
    for (size_t off = 0; off < req->len;) {
        ssize_t w = write(fd, req->buf + off, req->len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    struct sb b;
    sb_init(&b);
    char buf[8192];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        sb_add(&b, buf, (size_t)n);
    close(fd);
    int status = tl_http_status(b.buf, b.len);
    char *hdr_end = strstr(b.buf, "\r\n\r\n");
    if (body)
        *body = xstrdup(hdr_end ? hdr_end + 4 : "");
    sb_release(&b);
    return status;
}

int tl_http_get(int port, const char *path, char **body)
{
    struct sb req;
    sb_init(&req);
    sb_addf(&req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    int st = exchange(port, &req, 5, body);
    sb_release(&req);
    return st;
}

int tl_http(int port, const char *method, const char *path, const char *const *headers,
            const void *body, size_t len, char **resp)
{
    struct sb req;
    sb_init(&req);
    /* a Host among the headers replaces ours (two would be a bad request) */
    bool host = false;
    for (size_t i = 0; headers && headers[i]; i++)
        host |= !strncasecmp(headers[i], "Host:", 5);
    sb_addf(&req, "%s %s HTTP/1.1\r\n%sConnection: close\r\n", method, path,
            host ? "" : "Host: 127.0.0.1\r\n");
    for (size_t i = 0; headers && headers[i]; i++)
        sb_addf(&req, "%s\r\n", headers[i]);
    sb_addf(&req, "Content-Length: %zu\r\n\r\n", len);
    sb_add(&req, body, len);
    int st = exchange(port, &req, 20, resp);
    sb_release(&req);
    return st;
}

int tl_read_port(const char *path, long long timeout_ms)
{
    for (long long waited = 0; waited <= timeout_ms; waited += 50) {
        char *t = tl_read(path);
        long port = 0;
        if (t && strchr(t, '\n')) {
            char *end = NULL;
            port = strtol(t, &end, 10);
            if (end == t || *end != '\n' || port < 1 || port > 65535)
                port = 0;
        }
        free(t);
        if (port)
            return (int)port;
        usleep(50000);
    }
    return 0;
}

int tl_files_with(const char *dir, const char *needle, char *found, size_t fl)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    size_t nl = strlen(needle);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            n += tl_files_with(p, needle, found, fl);
        } else if (S_ISREG(st.st_mode)) {
            /* every byte, binary files too (a database, a log with NULs) */
            char *t = NULL;
            size_t len = 0;
            struct err e = {0};
            if (!fs_read(p, (size_t)1 << 30, &t, &len, &e) && memmem(t, len, needle, nl)) {
                n++;
                size_t l = found ? strlen(found) : 0;
                if (found && l < fl)
                    snprintf(found + l, fl - l, "%s ", p);
            }
            err_release(&e);
            free(t);
        }
        free(p);
    }
    closedir(d);
    return n;
}

int tl_spawn(const struct tl_proj *p, const char *const *args, const char *const *env,
             const char *logfile)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = PRENV_BIN;
    argv[n++] = "--no-color";
    if (p) {
        argv[n++] = "-C";
        argv[n++] = p->dir;
    }
    for (size_t i = 0; args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        setenv("USER", "tester", 1);
        unsetenv("PRENV_CRASH_AT");
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(PRENV_BIN, (char *const *)argv);
        _exit(127);
    }
    return (int)pid;
}

int tl_wait_pid(int pid, long long timeout_ms)
{
    long long end = tm_mono_ms() + timeout_ms;
    int st;
    while (tm_mono_ms() < end) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(20000);
    }
    return -1;
}

void tl_stop_pid(int *pid, int sig)
{
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    if (tl_wait_pid(*pid, 30000) < 0) {
        kill(*pid, SIGKILL);
        tl_wait_pid(*pid, 5000);
    }
    *pid = 0;
}

bool tl_until(bool (*cond)(void *ctx), void *ctx, long long timeout_ms)
{
    long long end = tm_mono_ms() + timeout_ms;
    while (tm_mono_ms() < end) {
        if (cond(ctx))
            return true;
        usleep(50000);
    }
    return cond(ctx);
}

bool tl_wait_http(int port, const char *path, long long timeout_ms)
{
    long long end = tm_mono_ms() + timeout_ms;
    while (tm_mono_ms() < end) {
        if (tl_http_get(port, path, NULL) == 200)
            return true;
        usleep(50000);
    }
    return false;
}

static const cJSON *walk(const cJSON *j, const char *path)
{
    char *p = xstrdup(path), *save = NULL;
    for (char *t = strtok_r(p, ".", &save); t && j; t = strtok_r(NULL, ".", &save)) {
        char *end;
        long idx = strtol(t, &end, 10);
        j = !*end && cJSON_IsArray(j) ? cJSON_GetArrayItem(j, (int)idx)
                                      : cJSON_GetObjectItemCaseSensitive(j, t);
    }
    free(p);
    return j;
}

long long tl_json_int(const char *json, const char *path)
{
    cJSON *j = cJSON_Parse(json);
    const cJSON *x = walk(j, path);
    long long v = cJSON_IsNumber(x) ? (long long)x->valuedouble : -1;
    cJSON_Delete(j);
    return v;
}

char *tl_json_str(const char *json, const char *path)
{
    cJSON *j = cJSON_Parse(json);
    const cJSON *x = walk(j, path);
    char *v = cJSON_IsString(x) ? xstrdup(x->valuestring) : NULL;
    cJSON_Delete(j);
    return v;
}

int tl_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                n += tl_count_files(p);
            else
                n++;
        }
        free(p);
    }
    closedir(d);
    return n;
}

bool tl_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

int tl_leases(const struct tl_proj *p)
{
    char *d = xasprintf("%s/ports", p->state);
    int n = tl_count_files(d);
    free(d);
    return n;
}

#if defined(__SANITIZE_ADDRESS__)
/* Criterion's workers leave with _exit(), which skips LeakSanitizer's check
 * at exit, so a leak in a unit test would pass unseen. This definition in the
 * test executable takes the place of libc's for Criterion too: it runs the
 * leak check first. A leak then fails the test. */
#include <sanitizer/lsan_interface.h>
#include <sys/syscall.h>

/* The runner's own exit is not checked (Criterion 2.4 leaks one block of its
 * own there); run-tests.sh says so with leak_check_at_exit=0, and everything
 * the tests start — workers, prenv, its supervisors — gets the check back. */
__attribute__((constructor)) static void children_check_leaks(void)
{
    const char *o = getenv("LSAN_OPTIONS");
    if (o && strstr(o, "leak_check_at_exit=0")) {
        struct sb b;
        sb_init(&b);
        sb_adds(&b, o);
        char *at = strstr(b.buf, "leak_check_at_exit=0");
        at[strlen("leak_check_at_exit=")] = '1';
        setenv("LSAN_OPTIONS", b.buf, 1);
        sb_release(&b);
    }
}

void _exit(int status)
{
    if (__lsan_do_recoverable_leak_check() && status == 0)
        status = 23;
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}
#endif
