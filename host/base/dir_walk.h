/* Every regular file under a directory, as relative paths in byte order, so that what is built
   from a tree (an imported dataset) is the same wherever and however often it runs. */
#ifndef SAEC_DIR_WALK_H
#define SAEC_DIR_WALK_H

#include <stddef.h>

typedef struct {
    char **paths; /* [n] relative to the root, '/'-separated, sorted by strcmp */
    size_t n;
} saec_file_list;

/* Lists the regular files under `root` (following symbolic links, at most SAEC_WALK_MAX_DEPTH
   folders deep, skipping names that start with '.'). A root that is missing or not a folder
   fails with SAEC_ERR_DATA naming it; an unreadable sub-folder fails naming that folder. */
enum { SAEC_WALK_MAX_DEPTH = 32 };
int saec_list_files(const char *root, saec_file_list *out);
void saec_file_list_free(saec_file_list *list);

#endif
