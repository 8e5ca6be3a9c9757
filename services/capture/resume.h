/*
 * resume — a capture agent's progress through READ_FILE, kept in STATE_DIR
 * in step with what it sends and what is acknowledged, so that an agent
 * killed mid-file and started again with the same NODE_ID, READ_FILE and
 * STATE_DIR continues its epoch: every batch not yet acknowledged is built
 * again from the file with its original seq and packets (the collector
 * drops what it already has), and what was acknowledged is not sent again
 * (shared DESIGN "Delivery": exactly once across the agent's own crash).
 *
 * STATE_DIR/<node>.resume (mode 0600, the umask applied) holds a header
 * — the epoch, the input file's identity (device, inode, size,
 * modification time), the settings that
 * decide how packets fall into batches (FILTER, BATCH_MAX_BYTES) and the
 * boot id — then fixed-size records, each with a CRC:
 *   BATCH  seq, index of its first packet, packet count  (before it is sent)
 *   ACKED  seq                                           (acknowledged)
 *   DEAD   seq                                           (dead-lettered)
 *   MARK   seq, packet index: everything below is released (compaction)
 *   DONE   packets read                                  (the file is through)
 * Batches cover the file's packets in order without gaps, so the packets of
 * a batch are found again by counting. Records are appended with write(2)
 * and not synced: they survive the agent being killed, not the host
 * losing power; so a state written before the last boot is not trusted and
 * a new epoch starts (at least once, as without STATE_DIR). The file is
 * rewritten smaller from time to time (write, rename).
 */
#ifndef TAPMESH_RESUME_H
#define TAPMESH_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

typedef struct resume_t resume_t;

/* What decides which packets are read and how they fall into batches: a
 * state recorded with other values cannot be continued. */
typedef struct {
    const char *path;     /* READ_FILE */
    const char *filter;   /* FILTER, "" for none */
    uint64_t batch_bytes; /* BATCH_MAX_BYTES */
    /* READ_FILE's identity as read when it was opened, or NULL: resume_open
     * stats `path` (an agent that has given up the user that could open
     * the file may no longer be able to) */
    const struct stat *input;
} resume_key_t;

typedef enum {
    RESUME_FRESH = 0,    /* nothing to continue: call resume_start with a new epoch */
    RESUME_CONTINUE = 1, /* continue resume_epoch() */
    RESUME_DONE = 2,     /* the file was read through and released before */
} resume_mode_t;

/* Opens (creating STATE_DIR if needed) and reads the state of `node`.
 * When a state is there but cannot be continued (another file, other
 * settings, another boot, damaged), the mode is RESUME_FRESH and `why`
 * says why (else `why` is ""). Returns NULL with `err` naming STATE_DIR
 * and the file when it cannot be read or written. */
resume_t *resume_open(const char *dir, const char *node, const resume_key_t *key, char *why,
                      size_t whylen, char *err, size_t errlen);
void resume_close(resume_t **self_p);

resume_mode_t resume_mode(const resume_t *self);

/* RESUME_FRESH: starts the state of `epoch` (the old one is replaced).
 * Returns 0 or a negative errno (resume_error says why). */
int resume_start(resume_t *self, uint64_t epoch);

/* RESUME_CONTINUE / RESUME_DONE: the plan. The epoch; the first seq to
 * build again (the lowest not released, or resume_next_seq when all are)
 * and the index of its first packet (the packets before it are skipped);
 * the seq after the last one recorded; the lowest seq dead-lettered
 * (UINT64_MAX: none); packets read when DONE was recorded. */
uint64_t resume_epoch(const resume_t *self);
uint64_t resume_first_seq(const resume_t *self);
uint64_t resume_first_packet(const resume_t *self);
uint64_t resume_next_seq(const resume_t *self);
uint64_t resume_dead_low(const resume_t *self);
uint64_t resume_done_packets(const resume_t *self);

/* The recorded batch `seq` (resume_first_seq <= seq < resume_next_seq):
 * its packet count, and whether it was released (acknowledged or
 * dead-lettered: its packets are skipped). False when not recorded. */
bool resume_batch_of(const resume_t *self, uint64_t seq, uint32_t *count, bool *released);

/* Recording. Each returns 0 or a negative errno (resume_error says why,
 * naming the file): a state that cannot be kept is reported, and the agent
 * goes on without it. */
int resume_batch(resume_t *self, uint64_t seq, uint64_t first_packet, uint32_t count);
int resume_released(resume_t *self, uint64_t seq, bool acked);
int resume_done(resume_t *self, uint64_t packets);

const char *resume_path(const resume_t *self);
const char *resume_error(const resume_t *self);

#endif
