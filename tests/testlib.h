/* testlib: helpers shared by the unit and end-to-end suites: temporary
 * projects with their own port block, running the real binary, HTTP GETs on
 * 127.0.0.1, and cleanup that leaves no process, file or port behind even
 * when a test fails. */
#ifndef PRENV_TESTLIB_H
#define PRENV_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>

struct tl_proj {
    char *dir;     /* project root (a mkdtemp dir) */
    char *state;   /* <dir>/.prenv */
    int port_lo, port_hi;
    int block;     /* reserved port block */
};

struct tl_res {
    int code;      /* exit status, or 128+signal */
    char *out, *err;
};

/* tl_tmpdir: a fresh directory under /tmp; caller frees (and removes). */
char *tl_tmpdir(const char *tag);
/* tl_write: write text to dir/rel, creating parent directories. */
void tl_write(const char *dir, const char *rel, const char *text);
char *tl_read(const char *path);
/* tl_proj_new: a project with prenv.yaml (stages dev, staging, prod protected;
 * previews; sandboxes), the given template and env layers. extra_yaml is
 * appended to prenv.yaml (may be NULL); a top-level stages:, previews: or
 * sandboxes: in it replaces the default block. */
void tl_proj_new(struct tl_proj *p, const char *template_yaml, const char *base_values,
                 const char *extra_yaml);
/* tl_proj_free: destroy every env it holds, kill anything left, remove files,
 * release the port block. Safe to call twice. */
void tl_proj_free(struct tl_proj *p);
/* tl_prenv: run the binary with -C project; args are NULL-terminated. */
struct tl_res tl_prenv(const struct tl_proj *p, const char *const *args, const char *const *env);
#define TL_PRENV(p, ...) tl_prenv((p), (const char *const[]){__VA_ARGS__, NULL}, NULL)
void tl_res_free(struct tl_res *r);
/* tl_http_get: GET http://127.0.0.1:port/path; returns status (0 = no answer). */
int tl_http_get(int port, const char *path, char **body);
/* tl_procs_in: number of live processes whose cmdline or cwd mentions dir. */
int tl_procs_in(const char *dir);
void tl_kill_in(const char *dir);
/* tl_procs_matching: live processes whose cmdline holds both dir and what. */
int tl_procs_matching(const char *dir, const char *what);
/* tl_json_int / tl_json_str: a top-level or dotted field of a JSON text. */
long long tl_json_int(const char *json, const char *path);
char *tl_json_str(const char *json, const char *path);
/* tl_count_files: regular files under dir (recursively). */
int tl_count_files(const char *dir);
bool tl_exists(const char *path);
/* tl_wait_http: poll until port answers status 200 or timeout_ms passes. */
bool tl_wait_http(int port, const char *path, long long timeout_ms);
/* tl_http: one request to 127.0.0.1:port; headers are "Name: value" strings,
 * NULL-terminated; returns the status (0 = no answer), *resp the body. */
int tl_http(int port, const char *method, const char *path, const char *const *headers,
            const void *body, size_t len, char **resp);
/* tl_http_status: the status code of a raw HTTP/1.x response, 0 if it is not one. */
int tl_http_status(const char *raw, size_t len);
/* tl_read_port: the port a process wrote to path ("N\n"), waiting up to
 * timeout_ms for it; 0 if none came. */
int tl_read_port(const char *path, long long timeout_ms);
/* tl_files_with: regular files under dir (recursively) whose bytes hold
 * needle; their paths are appended to found (fl bytes; may be NULL). */
int tl_files_with(const char *dir, const char *needle, char *found, size_t fl);
/* tl_spawn: start the binary with -C project and args in the background,
 * stdout+stderr to logfile; returns its pid. */
int tl_spawn(const struct tl_proj *p, const char *const *args, const char *const *env,
             const char *logfile);
/* tl_wait_pid: wait up to timeout_ms for pid to exit; its status or -1. */
int tl_wait_pid(int pid, long long timeout_ms);
/* tl_stop_pid: send *pid sig, wait up to 30 s, then SIGKILL it; *pid = 0.
 * Nothing when *pid is not positive (the fini of a test that started none). */
void tl_stop_pid(int *pid, int sig);
/* tl_until: poll cond(ctx) every 50 ms for up to timeout_ms. */
bool tl_until(bool (*cond)(void *ctx), void *ctx, long long timeout_ms);
/* tl_leases: number of port lease files in the project's state. */
int tl_leases(const struct tl_proj *p);

#endif
