/*
 * tmpdir — removing a test's temporary directory tree, for the unit tests
 * that make one (mkdtemp) per test.
 */
#ifndef TAPMESH_TEST_TMPDIR_H
#define TAPMESH_TEST_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>

/* Removes `path` and, for a directory, everything in it. */
static inline void tmpdir_remove(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[4096];
            if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub)
                tmpdir_remove(sub);
        }
        closedir(d);
    }
    remove(path);
}

#endif
