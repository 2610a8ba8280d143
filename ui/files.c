/* Directory trees for snapshots: copy, remove, replace, list. */
#define _GNU_SOURCE /* renameat2 */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

int tui_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int tui_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* One regular file, to dst.tmp then renamed: a copy is whole or absent. */
static int copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
    char tmp[2100];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    int in = open(src, O_RDONLY), out = -1, rc = -1;
    if (in < 0) {
        snprintf(err, errlen, "%s: %s", src, strerror(errno));
        return -1;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            snprintf(err, errlen, "%s: %s", src, strerror(errno));
            goto done;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, n - off);
            if (w < 0) {
                if (errno == EINTR) continue;
                snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
                goto done;
            }
            off += w;
        }
    }
    if (fsync(out)) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    if (close(out)) {
        out = -1;
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    out = -1;
    if (rename(tmp, dst)) {
        snprintf(err, errlen, "%s: %s", dst, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (out >= 0) close(out);
    if (rc) unlink(tmp);
    close(in);
    return rc;
}

int tui_copy_tree(const char *src, const char *dst, char *err, size_t errlen)
{
    if (make_dirs(dst, err, errlen)) return -1;
    DIR *d = opendir(src);
    if (!d) {
        snprintf(err, errlen, "%s: %s", src, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t ns = strlen(e->d_name);
        if (ns > 4 && !strcmp(e->d_name + ns - 4, ".tmp")) continue; /* a write in flight elsewhere */
        char s[2100], t[2100];
        snprintf(s, sizeof s, "%s/%s", src, e->d_name);
        snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
        struct stat st;
        if (lstat(s, &st)) {
            snprintf(err, errlen, "%s: %s", s, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) rc = tui_copy_tree(s, t, err, errlen);
        else if (S_ISREG(st.st_mode)) rc = copy_file(s, t, err, errlen);
    }
    closedir(d);
    return rc;
}

int tui_remove_tree(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st)) {
        if (errno == ENOENT) return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        struct dirent *e;
        int rc = 0;
        while (!rc && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char s[2100];
            snprintf(s, sizeof s, "%s/%s", path, e->d_name);
            rc = tui_remove_tree(s, err, errlen);
        }
        closedir(d);
        if (rc) return -1;
        if (rmdir(path)) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (unlink(path)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

void tui_staging_dir(const char *dir, char *out, size_t n)
{
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    snprintf(out, n, "%.*s.%s.saving", (int)(base - dir), dir, base);
}

int tui_replace_tree(const char *staged, const char *dir, char *err, size_t errlen)
{
    if (!tui_exists(dir)) {
        if (!rename(staged, dir)) return 0;
    } else if (!renameat2(AT_FDCWD, staged, AT_FDCWD, dir, RENAME_EXCHANGE)) {
        return tui_remove_tree(staged, err, errlen); /* the old tree, swapped out */
    } else if (errno == EINVAL || errno == ENOSYS) {
        /* no swap on this file system (NFS, say): dir is missing for an
         * instant, the old tree waiting in OLD */
        char old[2100];
        snprintf(old, sizeof old, "%s.old", staged);
        if (tui_remove_tree(old, err, errlen)) return -1;
        if (!rename(dir, old) && !rename(staged, dir)) return tui_remove_tree(old, err, errlen);
    }
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    return -1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char **tui_list_sessions(const char *root, int *n)
{
    *n = 0;
    DIR *d = opendir(root);
    if (!d) return NULL;
    char **list = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[2100];
        snprintf(p, sizeof p, "%s/%s/session.json", root, e->d_name);
        if (!tui_exists(p)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nl = realloc(list, cap * sizeof *nl);
            if (!nl) break;
            list = nl;
        }
        list[*n] = strdup(e->d_name);
        if (list[*n]) (*n)++;
    }
    closedir(d);
    if (*n) qsort(list, *n, sizeof *list, cmp_str);
    return list;
}

void tui_free_list(char **list, int n)
{
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}
