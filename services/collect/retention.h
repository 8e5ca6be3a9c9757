/*
 * retention — which rotated output files are kept (ROTATE_FILES,
 * ROTATE_MAX_GB), like tcpdump -W: the oldest files go first, and only
 * once they are closed and everything in them is acknowledged.
 *
 * It owns the list of the output files this collector wrote and still
 * keeps, oldest first: the files of this run and, with STATE_DIR, those of
 * the runs before, as the journal names them (never a file the journal does
 * not know: an operator's other files are never touched). The last one in
 * the list is the file being written; it counts in both bounds and is
 * never deleted.
 *
 * Acknowledgement is tracked by commit marks (collector.c): every packet
 * written is stamped with the number of the commit that will flush it; a
 * file closed at mark M holds nothing unacknowledged once every batch
 * still partly written (its acknowledgement not sent) was begun at mark M
 * or later.
 *
 * The decision (retention_decide) is a pure function; retention_t applies
 * it: unlinks, logs one line per file, counts, keeps the gauge of the
 * bytes kept, and tells the journal.
 */
#ifndef TAPMESH_RETENTION_H
#define TAPMESH_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "metrics.h"

typedef enum { RETENTION_KEEP = 0, RETENTION_COUNT = 1, RETENTION_SIZE = 2 } retention_reason_t;

/* One file as the decision sees it. */
typedef struct {
    uint64_t bytes;
    bool open;  /* being written (the newest) */
    bool acked; /* everything in it is acknowledged */
} retention_file_t;

/* Which of `files` (oldest first) go: with keep_files (0: no bound) while
 * more than that many are left, by "count", then with max_bytes (0: no
 * bound) while the files left hold more than that, by "size". Only a prefix
 * goes: the first file that is open or not wholly acknowledged stops the
 * deletions (it and every newer file stay, over the bounds if need be, until
 * a later call). Fills why[i] for every file (RETENTION_KEEP for those that
 * stay) and returns how many go. */
size_t retention_decide(const retention_file_t *files, size_t n, unsigned keep_files,
                        uint64_t max_bytes, retention_reason_t *why);

/* Parses ROTATE_MAX_GB: GiB as a decimal number ("0", "2", "0.5", "0.001",
 * at most 9 digits after the point, at most 1048576) into bytes (rounded
 * down, 0 for "0": no bound). Returns 0, or -EINVAL with `why` saying what
 * is wrong. */
int retention_parse_gb(const char *text, uint64_t *bytes, char *why, size_t whylen);

typedef struct retention_t retention_t;

/* A retention keeping `keep_files` files (0: any number) and `max_bytes`
 * bytes (0: any size); `journal` (STATE_DIR, or NULL) is told of every file
 * deleted. Registers its metrics in `metrics`. NULL when out of memory. */
retention_t *retention_new(unsigned keep_files, uint64_t max_bytes, journal_t *journal,
                           metrics_t *metrics);
void retention_destroy(retention_t **self_p);

/* A file of an earlier run (STATE_DIR), closed and counted as acknowledged:
 * its bytes were all in the journal, so a resend of any of them is
 * acknowledged, never written again. Ignored (returns 0) unless it is a
 * regular file (not a symbolic link). Call before retention_begin. Returns
 * 0, or -ENOMEM. */
int retention_restore(retention_t *self, const char *path);

/* The output now writes `path` (the first file, or the next after a
 * rotation). The file written before, `closed_bytes` long, is closed at
 * commit mark `mark`: packets stamped below it are all it holds. Returns 0,
 * or -ENOMEM. */
int retention_begin(retention_t *self, const char *path, uint64_t closed_bytes, uint64_t mark);

/* After a commit (the acknowledgements of what it flushed sent): the file
 * being written holds `current_bytes`, and the oldest batch whose
 * acknowledgement is still to be sent was begun at mark `unacked_mark`
 * (UINT64_MAX: none). Deletes the files the bounds let go, logs each
 * deletion (naming the file and the bound), counts it
 * (tapmesh_collect_output_files_deleted_total{reason}), and sets
 * tapmesh_collect_output_retained_bytes. A file that cannot be deleted is
 * logged, counted (tapmesh_collect_output_delete_errors_total) and no
 * longer kept in the list (it stops counting, so that the others still
 * go); never an error for the caller. Returns the number of files taken out
 * of the list (deleted, or not deletable). */
size_t retention_apply(retention_t *self, uint64_t current_bytes, uint64_t unacked_mark);

/* Files in the list (the one being written included) and their bytes as
 * of the last retention_apply. */
size_t retention_files(const retention_t *self);
uint64_t retention_bytes(const retention_t *self);

#endif
