/* fs: file-system helpers. */
#include "core/lib/fs.h"

#include "core/lib/sb.h"
#include "core/lib/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdir_p(const char *path, mode_t mode, struct err *e)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, mode) < 0 && errno != EEXIST) {
                rc = err_errno(e, errno, "cannot create directory %s", p);
                break;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    if (!rc && !fs_is_dir(path))
        rc = err_set(e, -ENOTDIR, NULL, "%s exists and is not a directory", path);
    free(p);
    return rc;
}

char *fs_dirname(const char *path)
{
    const char *sl = strrchr(path, '/');
    if (!sl)
        return xstrdup(".");
    if (sl == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(sl - path));
}

int fs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e)
{
    char *dir = fs_dirname(path);
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        rc = err_errno(e, errno, "cannot write %s", tmp);
        goto out;
    }
    if ((rc = write_all(fd, data, len)) < 0 || (fsync(fd) < 0 && (rc = -errno))) {
        err_errno(e, -rc, "cannot write %s", tmp);
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) < 0) {
        rc = err_errno(e, errno, "cannot write %s", tmp);
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) < 0) {
        rc = err_errno(e, errno, "cannot rename %s to %s", tmp, path);
        unlink(tmp);
        goto out;
    }
    int drc = fs_fsync_dir(dir);
    if (drc < 0)
        rc = err_errno(e, -drc, "cannot sync directory %s", dir);
out:
    free(tmp);
    free(dir);
    return rc;
}

int fs_read(const char *path, size_t max, char **out, size_t *len, struct err *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int er = errno;
        if (er == ENOENT)
            return -ENOENT;
        return err_errno(e, er, "cannot read %s", path);
    }
    struct sb b;
    sb_init_max(&b, max);
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int er = errno;
            close(fd);
            sb_release(&b);
            return err_errno(e, er, "cannot read %s", path);
        }
        if (!n)
            break;
        sb_add(&b, buf, (size_t)n);
        if (!sb_ok(&b)) {
            close(fd);
            sb_release(&b);
            return err_set(e, PE_LIMIT, NULL, "%s is larger than %zu bytes", path, max);
        }
    }
    close(fd);
    if (len)
        *len = b.len;
    *out = sb_steal(&b);
    return 0;
}

int fs_append_durable(const char *path, const void *data, size_t len, mode_t mode, struct err *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode);
    if (fd < 0)
        return err_errno(e, errno, "cannot open %s", path);
    int rc = write_all(fd, data, len);
    if (!rc && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc)
        return err_errno(e, -rc, "cannot append to %s", path);
    return 0;
}

static int rm_rec(int dfd, const char *name, const char *shown, struct err *e)
{
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return err_errno(e, errno, "cannot remove %s", shown);
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return err_errno(e, errno, "cannot open %s", shown);
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return err_errno(e, errno, "cannot open %s", shown);
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *sub = xasprintf("%s/%s", shown, de->d_name);
        rc = rm_rec(dirfd(d), de->d_name, sub, e);
        free(sub);
        if (rc)
            break;
    }
    closedir(d);
    if (!rc && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = err_errno(e, errno, "cannot remove %s", shown);
    return rc;
}

int fs_rm_rf(const char *path, struct err *e)
{
    return rm_rec(AT_FDCWD, path, path, e);
}

bool fs_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

bool fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *fs_abspath(const char *base, const char *path)
{
    struct sb in;
    sb_init(&in);
    if (path[0] != '/') {
        if (base) {
            sb_adds(&in, base);
        } else {
            char cwd[4096];
            sb_adds(&in, getcwd(cwd, sizeof cwd) ? cwd : "/");
        }
        sb_addc(&in, '/');
    }
    sb_adds(&in, path);
    /* fold "." and ".." lexically */
    char **parts = NULL;
    size_t n = 0, cap = 0;
    char *save = in.buf;
    for (char *p = save; *p;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        char *q = p;
        while (*q && *q != '/')
            q++;
        char c = *q;
        *q = 0;
        if (!strcmp(p, ".")) {
        } else if (!strcmp(p, "..")) {
            if (n)
                n--;
        } else {
            XGROW(parts, cap, n + 1);
            parts[n++] = p;
        }
        if (!c)
            break;
        p = q + 1;
    }
    struct sb out;
    sb_init(&out);
    for (size_t i = 0; i < n; i++) {
        sb_addc(&out, '/');
        sb_adds(&out, parts[i]);
    }
    if (!n)
        sb_addc(&out, '/');
    free(parts);
    sb_release(&in);
    return sb_steal(&out);
}

bool fs_within(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/';
    return strncmp(dir, path, n) == 0 && (path[n] == 0 || path[n] == '/');
}
