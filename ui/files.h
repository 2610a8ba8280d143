/* Directory trees for session snapshots: copy a run directory, remove a
 * deleted run, list snapshots. 0, or -1 with a message naming the path. */
#ifndef TUI_FILES_H
#define TUI_FILES_H
#include <stddef.h>

/* Copies the tree at src to dst (created; files written to a temporary
 * name and renamed, so a file is whole or absent). */
int tui_copy_tree(const char *src, const char *dst, char *err, size_t errlen);
/* Where a snapshot is written before it takes dir's place:
 * a/NAME -> a/.NAME.saving (hidden, so not listed as a session). */
void tui_staging_dir(const char *dir, char *out, size_t n);
/* Puts the tree at staged in dir's place and removes the old one. The swap
 * is atomic (RENAME_EXCHANGE) where the file system has it: a crash leaves
 * dir old or new, never missing or half-written. */
int tui_replace_tree(const char *staged, const char *dir, char *err, size_t errlen);
/* rm -r path. */
int tui_remove_tree(const char *path, char *err, size_t errlen);
/* Whether path exists (as anything) / is a directory. */
int tui_exists(const char *path);
int tui_is_dir(const char *path);
/* Names of the subdirectories of root that hold a session.json, sorted,
 * as a malloc'd array of malloc'd strings (*n of them); NULL if none. */
char **tui_list_sessions(const char *root, int *n);
void tui_free_list(char **list, int n);
#endif
