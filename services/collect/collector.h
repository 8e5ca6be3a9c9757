/*
 * collector — the collector's engine, without sockets: takes decoded
 * messages, keeps one state per (source, epoch), drops duplicates, merges
 * all sources by capture timestamp into the output, and produces the
 * acknowledgements once the output has the packets (shared DESIGN
 * "Delivery", "Ordering").
 *
 * main.c feeds it from the ROUTER socket; the tests feed it directly.
 */
#ifndef TAPMESH_COLLECTOR_H
#define TAPMESH_COLLECTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include "frames.h"
#include "metrics.h"
#include "output.h"

typedef struct collector_t collector_t;

/* Sends a reply (WELCOME, REFUSE, ACK) back along `route`. Returns 0 or a
 * negative errno. */
typedef int (*collector_reply_fn)(void *ctx, const route_t *route, const uint8_t *cmd, size_t len);

typedef struct {
    int64_t merge_window_ms; /* longest a packet waits for slower sources */
    int64_t source_idle_ms;  /* a source silent this long no longer holds the merge */
    size_t merge_max_bytes;  /* queued payload bytes before the merge is forced */
    size_t max_sources;      /* (source, epoch) states kept */
} collector_opts_t;

/* The collector writes to `output` and replies through `reply`; it owns
 * neither. Returns NULL when out of memory. */
collector_t *collector_new(output_t *output, const collector_opts_t *opts, metrics_t *metrics,
                           collector_reply_fn reply, void *ctx);
void collector_destroy(collector_t **self_p);

/* Handles one received message: `in` is framed; its payload, when taken,
 * is moved out (the caller still closes `in`). */
void collector_on_message(collector_t *self, frames_t *in, int64_t now_ms);

/* Writes every packet the merge allows now (all of them when `drain`).
 * Returns the number written, or a negative errno from the output. */
int collector_emit(collector_t *self, int64_t now_ms, bool drain);

/* Flushes the output, then acknowledges every batch now wholly written.
 * Returns 0, or the output's negative errno (nothing is acknowledged). */
int collector_commit(collector_t *self);

/* When collector_emit may next have work without a new message (a merge
 * window or idle timeout running out), or INT64_MAX. */
int64_t collector_next_deadline(const collector_t *self, int64_t now_ms);

/* Packets waiting in the merge. */
size_t collector_queued_packets(const collector_t *self);

#endif
