/*
 * rejects — logs dropped messages once per (peer, reason), and never more
 * than a few lines a second in all, however many peers misbehave: every
 * message is counted in the metrics; the log only says who and why.
 *
 * The peer is named by a short hash of the ZeroMQ routing identities the
 * message came with, the direct peer's by its key when it has one (the same
 * peer keeps the same name for every reason, and across its reconnects).
 */
#ifndef TAPMESH_REJECTS_H
#define TAPMESH_REJECTS_H

#include <stdint.h>

#include "frames.h"
#include "metrics.h"
#include "wire.h"

#define REJECTS_SLOTS 1024

typedef struct {
    metrics_t *metrics;
    metric_id_t count[WIRE_ERR_COUNT_]; /* per reason */
    uint64_t seen[REJECTS_SLOTS];       /* (peer, reason) keys already logged; 0 = free */
    int64_t window_ms;                  /* start of the current second */
    unsigned lines;                     /* lines logged in it */
    uint64_t suppressed;                /* not logged since the last line */
} rejects_t;

/* Registers `metric` (e.g. "tapmesh_relay_malformed_messages_total"), one
 * series per reason, in `metrics`. */
void rejects_init(rejects_t *self, metrics_t *metrics, const char *metric);

/* The peer's name: a hash of the identity frames before the delimiter (or,
 * for a message without one, of its first frame, which a ROUTER adds); the
 * first, the direct peer's connection, stands for its User-Id (its CURVE
 * key) when the connection has one. */
uint32_t rejects_peer(const frames_t *in);

/* Counts one dropped message, and logs it (warn) unless this (peer,
 * reason) was logged before or the line budget of this second is spent. */
void rejects_drop(rejects_t *self, uint32_t peer, wire_err_t why, const char *detail,
                  int64_t now_ms);

/* Reasons beyond the protocol's, for rejects_note. */
typedef enum {
    REJECTS_IDENTITY = WIRE_ERR_COUNT_, /* a source its peer may not speak for */
    REJECTS_PEER_LIMIT,                 /* MAX_SOURCES_PER_PEER */
    REJECTS_HELLO_RATE,                 /* HELLO_RATE_PER_PEER */
    REJECTS_FULL,                       /* MAX_SOURCES */
} rejects_reason_t;

/* Logs (warn) one refusal the caller counts itself, `what` saying what was
 * refused and why, under the same rule as rejects_drop: once per (peer,
 * reason), within the same line budget. */
void rejects_note(rejects_t *self, uint32_t peer, rejects_reason_t why, const char *what,
                  int64_t now_ms);

#endif
