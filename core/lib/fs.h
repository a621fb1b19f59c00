/* fs: file-system helpers: atomic durable writes, whole-file reads with a cap,
 * recursive create and remove. Every fd is opened O_CLOEXEC. */
#ifndef PRENV_FS_H
#define PRENV_FS_H

#include "core/lib/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* fs_mkdir_p: create dir and its parents with mode (existing dirs are fine). */
int fs_mkdir_p(const char *path, mode_t mode, struct err *e);
/* fs_write_atomic: temp file in the same dir, write, fsync, rename over path,
 * fsync the dir. Readers see the old or the new content, never a mix. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e);
/* fs_read: whole file, NUL-terminated; caller frees *out. -ENOENT if absent. */
int fs_read(const char *path, size_t max, char **out, size_t *len, struct err *e);
/* fs_append_durable: O_APPEND one record and fsync. */
int fs_append_durable(const char *path, const void *data, size_t len, mode_t mode,
                      struct err *e);
/* fs_rm_rf: remove a file or a tree; a missing path is not an error. */
int fs_rm_rf(const char *path, struct err *e);
bool fs_exists(const char *path);
bool fs_is_dir(const char *path);
/* fs_fsync_dir: fsync a directory so renames and creations in it are durable. */
int fs_fsync_dir(const char *dir);
/* fs_abspath: absolute form of path (relative to base when not absolute);
 * "." and ".." are folded lexically. Caller frees. */
char *fs_abspath(const char *base, const char *path);
/* fs_within: true if path (absolute, normalised) is dir or inside it. */
bool fs_within(const char *dir, const char *path);
char *fs_dirname(const char *path);

#endif
