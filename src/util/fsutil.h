/* Files that matter are written whole to a temporary name, synced, and
 * renamed into place: a crash leaves the old or the new content. */
#ifndef ACH_FSUTIL_H
#define ACH_FSUTIL_H
#include <stddef.h>
#include <stdio.h>

int write_file_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen);
/* The same for output too big to hold: atomic_open creates PATH.tmp to
 * write to; atomic_commit checks every write succeeded, syncs, closes and
 * renames it over PATH, or on failure removes PATH.tmp. A writer should
 * stop at the first failed write (ferror), so the message says why. */
FILE *atomic_open(const char *path, char *err, size_t errlen);
int atomic_commit(FILE *f, const char *path, char *err, size_t errlen);
/* Appends one line (adds the newline) and syncs. */
int append_line(const char *path, const char *line, char *err, size_t errlen);
/* Whole file into a NUL-terminated malloc'd buffer (max bytes), or NULL
 * with a message. */
char *read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);
/* mkdir -p; 0 if it exists or was made. */
int make_dirs(const char *path, char *err, size_t errlen);
#endif
