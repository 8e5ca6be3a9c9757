/*
 * privs — the capture agent gives up what it no longer needs once its
 * source is open (issue "Security" 5). Opening a live interface takes
 * CAP_NET_RAW (a packet socket), reading a file may take root; neither is
 * needed to read from what is already open, and the agent then parses
 * packets, capture files and network replies. So, after the open:
 *   - RUN_AS_USER (a user name or a uid): the process becomes that user —
 *     supplementary groups cleared, the user's primary group, then the uid
 *     (setgroups, setresgid, setresuid: in this order, since a process
 *     that has given up its uid may no longer change its groups) — and the
 *     change is checked (the ids read back, and setuid(0) must fail);
 *   - always: every capability is cleared (inheritable, permitted,
 *     effective, ambient) and no_new_privs set, in every thread of the
 *     process (capabilities belong to threads: the metrics server's thread
 *     started before the source was opened), and checked in
 *     /proc/self/task/<tid>/status.
 * Directories the agent creates before the drop (DLQ_DIR, STATE_DIR and
 * their missing parents) are made 0750 and, when running as root with
 * RUN_AS_USER, handed to that user, so that it can write there afterwards.
 */
#ifndef TAPMESH_PRIVS_H
#define TAPMESH_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    char name[64]; /* as RUN_AS_USER gave it (messages) */
    uid_t uid;
    gid_t gid; /* the user's primary group */
} privs_user_t;

/* Resolves RUN_AS_USER: a user name from the user database, or a uid
 * (digits alone; one without an entry in the database has its own number
 * as group, as in containers). Root (uid 0) is no user to drop to.
 * Returns 0, or -ENOENT / -EINVAL with `err` naming RUN_AS_USER. */
int privs_lookup(const char *text, privs_user_t *user, char *err, size_t errlen);

/* Creates `path` and its missing parents (mkdir -p) with mode 0750, the
 * umask applied. When `user` is not NULL and the process runs as root,
 * what it created now is handed to `user` and its group (unless root
 * lacks CAP_CHOWN: then it stays root's); directories that existed are
 * left as they are. Returns 0 or a negative errno with `err` naming
 * `setting` and the directory. */
int privs_mkdirs(const char *setting, const char *path, const privs_user_t *user, char *err,
                 size_t errlen);

/* Becomes `user` (unless NULL) and clears every capability of every
 * thread, as above. Returns 0, or a negative errno with `err` saying what
 * failed and where: the process must not go on (exit 1). */
int privs_drop(const privs_user_t *user, char *err, size_t errlen);

/* True when the process holds no capability and runs as `user` (or, when
 * NULL, as whoever it is): what privs_drop leaves, read from
 * /proc/self/task/<tid>/status for every thread. On false `why` says
 * which thread kept what. */
bool privs_dropped(const privs_user_t *user, char *why, size_t whylen);

#endif
