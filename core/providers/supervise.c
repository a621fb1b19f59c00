/* supervise: `prenv supervise SPEC`, the detached process that keeps one
 * replica of a process.service running. It starts the application in its own
 * session and process group with stdout and stderr piped into the replica's
 * log (rotated by size), restarts it by policy with exponential backoff,
 * keeps the pid file current, and on SIGTERM or SIGINT stops the whole
 * process group (SIGTERM, then SIGKILL after stop_timeout) and exits 0.
 *
 * It leaves to the provider: ports, health checks, when replicas start and
 * stop, and removing the spec and pid files. It never reads the template or
 * state, and never prints: its only outputs are the log and the pid file.
 *
 * Writes to the log and the pid file are plain blocking calls made from libuv
 * callbacks: this loop serves one replica only, so a short local write delays
 * nothing else, and it keeps log lines in the order things happened. */
#include "core/providers/supervise.h"

#include "core/lib/fs.h"
#include "core/lib/proc.h"
#include "core/lib/redact.h"
#include "core/lib/sb.h"
#include "core/lib/tm.h"
#include "core/lib/xalloc.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#define SPEC_MAX ((size_t)1 << 20)
#define PIDFILE_MAX ((size_t)64 << 10)
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define BACKOFF_RESET_MS 10000 /* a run this long resets the backoff */
#define STOP_POLL_MS 50
#define STOP_GRACE_MS 5000 /* after SIGKILL, how long the group may take to go */

struct sup_spec {
    char **argv; /* NULL-terminated */
    char *dir, *log, *pidfile, *restart;
    int port, replica, log_keep;
    long long stop_timeout_ms, log_max_size;
    bool redact; /* mask emails and IP addresses in the output (pii: redact) */
};

struct sup;

/* one run of the application; freed in its handle's close callback */
struct sup_run {
    uv_process_t proc;
    struct sup *s;
    long long started_ms;
};

struct sup {
    struct sup_spec spec;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t restart_timer, stop_timer;
    uv_pipe_t out; /* read end of the application's stdout and stderr */
    int out_wfd;   /* write end, handed to every run */
    int log_fd;
    long long log_size;
    bool log_bol;        /* the log ends with a newline (or is empty) */
    struct redact *red;  /* the output's way to the log when spec.redact, else NULL */
    struct sup_run *run; /* the running application, NULL between runs */
    pid_t pgid;          /* process group of the current or last run; 0 = none */
    unsigned long long child_start;
    unsigned long long self_start;
    long long backoff_ms;
    int starts, restarts; /* attempts to start; restarts = attempts after the first */
    bool stopping, killed, shutting_down;
    long long stop_deadline;
    char *start_error;
    int ready_fd; /* tells the intermediate process we are up; -1 once done */
    int handles;  /* open handles, counted down in close callbacks */
    char rbuf[65536];
};

/* ---- spec and pid files ---- */

static void spec_release(struct sup_spec *sp)
{
    if (sp->argv)
        for (char **a = sp->argv; *a; a++)
            free(*a);
    free(sp->argv);
    free(sp->dir);
    free(sp->log);
    free(sp->pidfile);
    free(sp->restart);
    memset(sp, 0, sizeof *sp);
}

static char *json_str(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(j) && j->valuestring ? xstrdup(j->valuestring) : NULL;
}

static long long json_num(const cJSON *o, const char *key, long long def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(j) ? (long long)j->valuedouble : def;
}

static int spec_load(struct sup_spec *sp, const char *path, struct err *e)
{
    char *text = NULL;
    int rc = fs_read(path, SPEC_MAX, &text, NULL, e);
    if (rc == -ENOENT)
        return err_set(e, rc, NULL, "spec file %s does not exist", path);
    if (rc)
        return rc;
    cJSON *o = cJSON_Parse(text);
    free(text);
    const cJSON *argv = cJSON_GetObjectItemCaseSensitive(o, "argv");
    int n = cJSON_IsArray(argv) ? cJSON_GetArraySize(argv) : 0;
    if (!cJSON_IsObject(o) || n <= 0) {
        cJSON_Delete(o);
        return err_set(e, PE_STATE, NULL, "%s is not a supervisor spec", path);
    }
    sp->argv = xcalloc((size_t)n + 1, sizeof *sp->argv);
    for (int i = 0; i < n; i++) {
        const cJSON *a = cJSON_GetArrayItem(argv, i);
        sp->argv[i] = xstrdup(cJSON_IsString(a) && a->valuestring ? a->valuestring : "");
    }
    sp->dir = json_str(o, "dir");
    sp->log = json_str(o, "log");
    sp->pidfile = json_str(o, "pidfile");
    sp->restart = json_str(o, "restart");
    sp->port = (int)json_num(o, "port", 0);
    sp->replica = (int)json_num(o, "replica", 0);
    sp->stop_timeout_ms = json_num(o, "stop_timeout_ms", 10000);
    sp->log_max_size = json_num(o, "log_max_size", 10LL << 20);
    sp->log_keep = (int)json_num(o, "log_keep", 3);
    sp->redact = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "redact"));
    cJSON_Delete(o);
    if (!sp->restart)
        sp->restart = xstrdup("always");
    if (!sp->dir || !sp->log || !sp->pidfile || sp->dir[0] != '/' || sp->log[0] != '/' ||
        sp->pidfile[0] != '/')
        return err_set(e, PE_STATE, NULL, "%s lacks absolute dir, log or pidfile", path);
    if (sp->log_max_size < 1)
        sp->log_max_size = 1;
    if (sp->log_keep < 0)
        sp->log_keep = 0;
    if (sp->stop_timeout_ms < 0)
        sp->stop_timeout_ms = 0;
    return 0;
}

int supervise_pids_read(struct supervise_pids *out, const char *path, struct err *e)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    struct err ign = {0};
    int rc = fs_read(path, PIDFILE_MAX, &text, NULL, &ign);
    if (rc == -ENOENT) {
        err_release(&ign);
        return rc;
    }
    if (rc) {
        err_move(e, &ign);
        return rc;
    }
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return err_set(e, PE_STATE, NULL, "%s is not a pid file", path);
    }
    out->sup_pid = (pid_t)json_num(o, "supervisor_pid", 0);
    out->sup_start = (unsigned long long)json_num(o, "supervisor_start", 0);
    out->pid = (pid_t)json_num(o, "pid", 0);
    out->start = (unsigned long long)json_num(o, "start", 0);
    out->port = (int)json_num(o, "port", 0);
    out->replica = (int)json_num(o, "replica", 0);
    out->restarts = (int)json_num(o, "restarts", 0);
    out->state = json_str(o, "state");
    if (!out->state)
        out->state = xstrdup("unknown");
    out->start_error = json_str(o, "start_error");
    cJSON_Delete(o);
    return 0;
}

void supervise_pids_release(struct supervise_pids *p)
{
    free(p->state);
    free(p->start_error);
    memset(p, 0, sizeof *p);
}

/* ---- the replica's log ---- */

static void log_open(struct sup *s)
{
    s->log_fd = open(s->spec.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    s->log_size = 0;
    s->log_bol = true;
    struct stat st;
    if (s->log_fd >= 0 && fstat(s->log_fd, &st) == 0)
        s->log_size = st.st_size;
    if (s->log_size > 0) {
        char last = '\n';
        if (pread(s->log_fd, &last, 1, s->log_size - 1) == 1)
            s->log_bol = last == '\n';
    }
}

/* log_rotate: .log.(N-1) -> .log.N, ..., .log -> .log.1, and a fresh .log */
static void log_rotate(struct sup *s)
{
    if (s->log_fd >= 0)
        close(s->log_fd);
    s->log_fd = -1;
    const char *log = s->spec.log;
    if (s->spec.log_keep == 0) {
        unlink(log);
    } else {
        for (int k = s->spec.log_keep - 1; k >= 1; k--) {
            char *from = xasprintf("%s.%d", log, k);
            char *to = xasprintf("%s.%d", log, k + 1);
            rename(from, to); /* a missing .k is fine */
            free(from);
            free(to);
        }
        char *to = xasprintf("%s.1", log);
        rename(log, to);
        free(to);
    }
    log_open(s);
}

/* log_write: append, rotating first whenever the file would grow beyond
 * log_max_size, so no file ever exceeds it */
static void log_write(struct sup *s, const char *p, size_t n)
{
    if (!n)
        return;
    bool ends_nl = p[n - 1] == '\n';
    while (n) {
        if (s->log_fd < 0)
            return;
        long long room = s->spec.log_max_size - s->log_size;
        if (room <= 0) {
            log_rotate(s);
            if (s->log_size >= s->spec.log_max_size)
                return; /* could not start a fresh file */
            continue;
        }
        size_t w = n < (size_t)room ? n : (size_t)room;
        ssize_t k = write(s->log_fd, p, w);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s->log_size += k;
        p += k;
        n -= (size_t)k;
    }
    s->log_bol = ends_nl;
}

/* output: what the application wrote, on its way to the log; masked line by
 * line first when the spec says redact */
static void output_emit(void *ctx, const char *p, size_t n)
{
    log_write(ctx, p, n);
}

static void output(struct sup *s, const char *p, size_t n)
{
    if (s->red)
        redact_feed(s->red, p, n);
    else
        log_write(s, p, n);
}

/* output_flush: a partial last line goes out before our own event lines */
static void output_flush(struct sup *s)
{
    if (s->red)
        redact_flush(s->red);
}

static void sup_event(struct sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sup_event(struct sup *s, const char *fmt, ...)
{
    struct sb b;
    sb_init(&b);
    if (!s->log_bol)
        sb_addc(&b, '\n');
    tm_rfc3339(&b, tm_now_ms());
    sb_adds(&b, " [prenv] ");
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    sb_addc(&b, '\n');
    log_write(s, b.buf, b.len);
    sb_release(&b);
}

static void pidfile_write(struct sup *s, const char *state)
{
    struct sb b;
    sb_init(&b);
    pid_t pid = s->run ? s->run->proc.pid : 0;
    unsigned long long start = s->run ? s->child_start : 0;
    sb_addf(&b,
            "{\"supervisor_pid\":%d,\"supervisor_start\":%llu,\"pid\":%d,\"start\":%llu,"
            "\"port\":%d,\"replica\":%d,\"restarts\":%d,\"state\":",
            (int)getpid(), s->self_start, (int)pid, start, s->spec.port, s->spec.replica,
            s->restarts);
    sb_add_json_str(&b, state);
    if (s->start_error) {
        sb_adds(&b, ",\"start_error\":");
        sb_add_json_str(&b, s->start_error);
    }
    sb_adds(&b, "}\n");
    struct err e = {0};
    if (fs_write_atomic(s->spec.pidfile, b.buf, b.len, 0600, &e))
        sup_event(s, "cannot write the pid file: %s", e.msg);
    err_release(&e);
    sb_release(&b);
}

/* ---- the application ---- */

static void child_start(struct sup *s);
static void sup_shutdown(struct sup *s);

static void on_handle_closed(uv_handle_t *h)
{
    struct sup *s = h->data;
    s->handles--;
}

static void on_run_closed(uv_handle_t *h)
{
    struct sup_run *run = h->data;
    run->s->handles--;
    free(run);
}

static void on_restart_timer(uv_timer_t *t)
{
    struct sup *s = t->data;
    if (!s->stopping)
        child_start(s);
}

static void schedule_restart(struct sup *s)
{
    long long delay = s->backoff_ms;
    struct sb d;
    sb_init(&d);
    dur_fmt(&d, delay);
    sup_event(s, "restarting in %s", d.buf);
    sb_release(&d);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
    uv_timer_start(&s->restart_timer, on_restart_timer, (uint64_t)delay, 0);
}

/* read whatever the application wrote before it exited, so its last words
 * come before our "exited" line */
static void drain_output(struct sup *s)
{
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&s->out, &fd))
        return;
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(fd, s->rbuf, sizeof s->rbuf);
        if (n <= 0)
            break;
        output(s, s->rbuf, (size_t)n);
    }
    output_flush(s);
}

/* group_alive: some process of the group still runs. Zombies do not count:
 * orphans are reaped by init, which may take its time. */
static bool group_alive(pid_t pgid)
{
    if (pgid <= 0 || kill(-pgid, 0) < 0)
        return false;
    DIR *d = opendir("/proc");
    if (!d)
        return true;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        /* "pid (comm) state ppid pgrp ...": comm may hold spaces and ')' */
        char *p = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (p && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
            state != 'Z' && state != 'X')
            found = true;
    }
    closedir(d);
    return found;
}

static void on_child_exit(uv_process_t *p, int64_t status, int signo)
{
    struct sup_run *run = p->data;
    struct sup *s = run->s;
    drain_output(s);
    long long ran = tm_mono_ms() - run->started_ms;
    if (signo)
        sup_event(s, "pid %d killed by signal %d (%s)", (int)p->pid, signo, strsignal(signo));
    else
        sup_event(s, "pid %d exited with status %lld", (int)p->pid, (long long)status);
    s->run = NULL;
    s->child_start = 0;
    uv_close((uv_handle_t *)p, on_run_closed);
    if (s->stopping) {
        pidfile_write(s, "stopping");
        return; /* the stop timer finishes the job */
    }
    /* the group is the replica's: what the leader left behind would hold the
     * port and the log pipe */
    if (group_alive(s->pgid)) {
        kill(-s->pgid, SIGKILL);
        sup_event(s, "killed the rest of process group %d", (int)s->pgid);
    }
    bool failed = signo != 0 || status != 0;
    if (!strcmp(s->spec.restart, "never") || (!strcmp(s->spec.restart, "on-failure") && !failed)) {
        sup_event(s, "not restarting (restart: %s)", s->spec.restart);
        sup_shutdown(s);
        return;
    }
    if (ran >= BACKOFF_RESET_MS)
        s->backoff_ms = BACKOFF_MIN_MS;
    pidfile_write(s, "backoff");
    schedule_restart(s);
}

/* errors that another attempt will not fix */
static bool start_error_is_final(int uverr)
{
    return uverr == UV_ENOENT || uverr == UV_EACCES || uverr == UV_ENOTDIR || uverr == UV_ELOOP ||
           uverr == UV_ENAMETOOLONG || uverr == UV_EPERM || uverr == UV_EISDIR;
}

static void child_start(struct sup *s)
{
    struct sup_run *run = xcalloc(1, sizeof *run);
    run->s = s;
    run->proc.data = run;
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = s->out_wfd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = s->out_wfd;
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.exit_cb = on_child_exit;
    o.file = s->spec.argv[0];
    o.args = s->spec.argv;
    o.env = NULL; /* ours: the provider built it for the application */
    o.cwd = s->spec.dir;
    o.flags = UV_PROCESS_DETACHED; /* setsid: its own session and process group */
    o.stdio_count = 3;
    o.stdio = stdio;
    s->restarts = s->starts++;
    int rc = uv_spawn(&s->loop, &run->proc, &o);
    s->handles++; /* initialised even when the spawn failed */
    if (rc) {
        uv_close((uv_handle_t *)&run->proc, on_run_closed);
        free(s->start_error);
        s->start_error = NULL;
        struct sb m;
        sb_init(&m);
        sb_addf(&m, "cannot start '%s' in %s: %s", s->spec.argv[0], s->spec.dir, uv_strerror(rc));
        if (rc == UV_ENOENT)
            sb_adds(&m, " (command not found, or the working directory is missing)");
        sup_event(s, "%s", m.buf);
        if (start_error_is_final(rc))
            s->start_error = sb_steal(&m);
        sb_release(&m);
        if (!strcmp(s->spec.restart, "never")) {
            sup_event(s, "not retrying (restart: never)");
            sup_shutdown(s);
            return;
        }
        pidfile_write(s, "backoff");
        schedule_restart(s);
        return;
    }
    free(s->start_error);
    s->start_error = NULL;
    s->run = run;
    run->started_ms = tm_mono_ms();
    s->pgid = run->proc.pid;
    s->child_start = proc_start_time(run->proc.pid);
    sup_event(s, "started '%s' as pid %d on port %d", s->spec.argv[0], (int)run->proc.pid,
              s->spec.port);
    if (!s->child_start) {
        /* it exited already (a zombie has no start time): the exit callback
         * follows; record no pid rather than one we cannot verify */
        s->run = NULL;
        pidfile_write(s, "running");
        s->run = run;
        return;
    }
    pidfile_write(s, "running");
}

/* ---- stopping ---- */

static void on_stop_tick(uv_timer_t *t)
{
    struct sup *s = t->data;
    if (!s->run && !group_alive(s->pgid)) {
        sup_shutdown(s);
        return;
    }
    long long now = tm_mono_ms();
    if (now < s->stop_deadline)
        return;
    if (!s->killed) {
        struct sb d;
        sb_init(&d);
        dur_fmt(&d, s->spec.stop_timeout_ms);
        sup_event(s, "still running after %s: sending SIGKILL to process group %d", d.buf,
                  (int)s->pgid);
        sb_release(&d);
        kill(-s->pgid, SIGKILL);
        s->killed = true;
        s->stop_deadline = now + STOP_GRACE_MS;
        return;
    }
    sup_event(s, "process group %d did not go away after SIGKILL; giving up", (int)s->pgid);
    sup_shutdown(s);
}

static void on_signal(uv_signal_t *h, int signo)
{
    struct sup *s = h->data;
    if (s->stopping)
        return;
    s->stopping = true;
    uv_timer_stop(&s->restart_timer);
    sup_event(s, "stopping (%s)", signo == SIGINT ? "SIGINT" : "SIGTERM");
    if (!s->run && !group_alive(s->pgid)) {
        sup_shutdown(s);
        return;
    }
    pidfile_write(s, "stopping");
    sup_event(s, "sending SIGTERM to process group %d", (int)s->pgid);
    kill(-s->pgid, SIGTERM);
    s->stop_deadline = tm_mono_ms() + s->spec.stop_timeout_ms;
    uv_timer_start(&s->stop_timer, on_stop_tick, STOP_POLL_MS, STOP_POLL_MS);
}

static void close_handle(struct sup *s, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        h->data = s;
        uv_close(h, on_handle_closed);
    }
}

static void sup_shutdown(struct sup *s)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    drain_output(s);
    if (s->run) {
        /* only after "giving up": forget the process, the loop must end */
        uv_close((uv_handle_t *)&s->run->proc, on_run_closed);
        s->run = NULL;
    }
    pidfile_write(s, s->stopping ? "stopped" : "exited");
    sup_event(s, "supervisor exiting");
    close_handle(s, (uv_handle_t *)&s->sigterm);
    close_handle(s, (uv_handle_t *)&s->sigint);
    close_handle(s, (uv_handle_t *)&s->restart_timer);
    close_handle(s, (uv_handle_t *)&s->stop_timer);
    close_handle(s, (uv_handle_t *)&s->out);
}

/* ---- output pipe ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct sup *s = h->data;
    *buf = uv_buf_init(s->rbuf, sizeof s->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct sup *s = st->data;
    if (n > 0)
        output(s, buf->base, (size_t)n);
    else if (n < 0)
        uv_read_stop(st);
}

/* ---- main ---- */

static void ready_tell(struct sup *s)
{
    if (s->ready_fd < 0)
        return;
    ssize_t w;
    do
        w = write(s->ready_fd, "1", 1);
    while (w < 0 && errno == EINTR);
    close(s->ready_fd);
    s->ready_fd = -1;
}

/* run: the detached supervisor proper; returns the exit code */
static int run_loop(struct sup *s)
{
    s->self_start = proc_start_time(getpid());
    s->backoff_ms = BACKOFF_MIN_MS;
    s->out_wfd = -1;
    log_open(s);
    if (s->log_fd < 0)
        return 1;
    int rc = uv_loop_init(&s->loop);
    if (rc) {
        sup_event(s, "cannot start the event loop: %s", uv_strerror(rc));
        return 1;
    }
    uv_file fds[2];
    rc = uv_pipe(fds, 0, 0);
    if (rc) {
        sup_event(s, "cannot create the output pipe: %s", uv_strerror(rc));
        uv_loop_close(&s->loop);
        return 1;
    }
    s->out_wfd = fds[1];
    uv_pipe_init(&s->loop, &s->out, 0);
    s->out.data = s;
    s->handles++;
    rc = uv_pipe_open(&s->out, fds[0]);
    if (rc)
        sup_event(s, "cannot watch the output pipe: %s", uv_strerror(rc));
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    uv_timer_init(&s->loop, &s->restart_timer);
    uv_timer_init(&s->loop, &s->stop_timer);
    s->handles += 4;
    s->sigterm.data = s->sigint.data = s;
    s->restart_timer.data = s->stop_timer.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_read_start((uv_stream_t *)&s->out, on_alloc, on_read);
    sup_event(s, "supervisor %d started for replica %d on port %d (restart: %s)", (int)getpid(),
              s->spec.replica, s->spec.port, s->spec.restart);
    child_start(s); /* writes the pid file, whatever happened */
    ready_tell(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    close(s->out_wfd);
    int lrc = uv_loop_close(&s->loop);
    assert(lrc == 0 && s->handles == 0);
    if (lrc) {
        sup_event(s, "internal error: the event loop still has handles (%s)", uv_strerror(lrc));
        return 1;
    }
    return 0;
}

int supervise_main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: prenv supervise SPEC\n"
                        "(internal: started by the process.service provider)\n");
        return 2;
    }
    /* nothing above stderr is ours: whatever the spawner leaked is closed */
#ifdef __GLIBC__
    close_range(3, ~0U, 0);
#else
    syscall(SYS_close_range, 3, ~0U, 0); /* musl has no wrapper */
#endif
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    struct sup *s = xcalloc(1, sizeof *s);
    s->log_fd = -1;
    s->ready_fd = -1;
    struct err e = {0};
    int code = 1;
    char *spec = realpath(argv[1], NULL);
    if (!spec || spec_load(&s->spec, spec, &e)) {
        fprintf(stderr, "prenv supervise: %s\n", e.msg ? e.msg : strerror(errno));
        goto out;
    }
    if (s->spec.redact) {
        s->red = xmalloc(sizeof *s->red);
        redact_init(s->red, output_emit, s);
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        goto out;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        goto out;
    }
    if (pid > 0) {
        /* the intermediate: exit once the supervisor is up, so the spawner
         * reaps us and the supervisor is nobody's child */
        close(p[1]);
        char c = 0;
        ssize_t r;
        do
            r = read(p[0], &c, 1);
        while (r < 0 && errno == EINTR);
        _exit(r == 1 ? 0 : 1);
    }
    close(p[0]);
    s->ready_fd = p[1];
    if (chdir("/") < 0) {
        /* cannot happen in practice; the application gets its own dir anyway */
    }
    code = run_loop(s);
out:
    if (s->ready_fd >= 0)
        close(s->ready_fd);
    if (s->red)
        redact_flush(s->red);
    free(s->red);
    if (s->log_fd >= 0)
        close(s->log_fd);
    free(s->start_error);
    spec_release(&s->spec);
    free(s);
    free(spec);
    err_release(&e);
    return code;
}
