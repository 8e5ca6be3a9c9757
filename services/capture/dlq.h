/*
 * dlq — the dead-letter file: batches that were never acknowledged within
 * RETRY_TIMEOUT_S (or that the collector refused) are written here, as
 * pcapng, packets whole with their original timestamps and interface, so
 * that nothing is lost without a trace. One file per agent run:
 * DLQ_DIR/<node>-<epoch>.pcapng, created on first use.
 */
#ifndef TAPMESH_DLQ_H
#define TAPMESH_DLQ_H

#include "outbox.h"

typedef struct dlq_t dlq_t;

/* Nothing is created yet. Returns NULL when out of memory. */
dlq_t *dlq_new(const char *dir, const char *node, uint64_t epoch, uint16_t linktype,
               const char *ifname, const char *description);
void dlq_destroy(dlq_t **self_p);

/* Writes every packet of `b`, flushed and synced to disk. Returns 0 or a
 * negative errno (then dlq_error() says why, naming the file). */
int dlq_write(dlq_t *self, const batch_t *b);

/* The file's path (known once created), and the last error. */
const char *dlq_path(const dlq_t *self);
const char *dlq_error(const dlq_t *self);

#endif
