/* Atomic whole-file writes, synced appends, bounded reads, mkdir -p. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *atomic_open(const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) snprintf(err, errlen, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    return f;
}

int atomic_commit(FILE *f, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* The error flag: a write already failed (errno still says why if the
     * caller stopped writing there). */
    int bad = ferror(f) || fflush(f) || fsync(fileno(f));
    int e = errno;
    if (fclose(f) && !bad) bad = 1, e = errno;
    if (bad) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(e));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path)) {
        snprintf(err, errlen, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int append_line(const char *path, const char *line, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot append: %s", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(line);
    char *buf = malloc(len + 1);
    if (!buf) {
        close(fd);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    memcpy(buf, line, len);
    buf[len] = '\n';
    ssize_t w = write(fd, buf, len + 1); /* one write: a line is never split by another writer */
    free(buf);
    if (w != (ssize_t)(len + 1) || fsync(fd)) {
        snprintf(err, errlen, "%s: append failed: %s", path, w < 0 ? strerror(errno) : "short write");
        close(fd);
        return -1;
    }
    return close(fd);
}

char *read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    /* The buffer grows with what is read: max is a limit, not a size to
     * allocate (1 GiB up front for every metrics.jsonl failed under
     * ulimit -v or strict overcommit, however small the file). */
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int oom = 0;
    while (n == cap && n <= max) {
        size_t want = cap ? 2 * cap : 4096;
        if (want > max + 1 || want < cap) want = max + 1;
        char *nb = realloc(buf, want + 1);
        if (!nb) {
            oom = 1;
            break;
        }
        buf = nb, cap = want;
        n += fread(buf + n, 1, cap - n, f);
    }
    int bad = ferror(f);
    fclose(f);
    if (oom || bad || n > max) {
        snprintf(err, errlen, "%s: %s", path, oom ? "out of memory" : bad ? "read error" : "file too large");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int make_dirs(const char *path, char *err, size_t errlen)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c == '/' || c == 0) {
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST) {
                snprintf(err, errlen, "%s: cannot create directory: %s", p, strerror(errno));
                return -1;
            }
            *s = c;
        }
        if (!c) break;
    }
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", path);
        return -1;
    }
    return 0;
}

int write_file_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
    FILE *f = atomic_open(path, err, errlen);
    if (!f) return -1;
    fwrite(data, 1, len, f); /* a short write sets the error flag atomic_commit checks */
    return atomic_commit(f, path, err, errlen);
}
