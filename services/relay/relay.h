/*
 * relay — the relay's engine, without sockets: batches from the sources go
 * on with this relay's hop record added (proto/wire-v2.md §3.4) — to one
 * next hop (failover), to all (duplicate), or split by flow (flowhash) —
 * optionally thinned by a BPF FILTER; acknowledgements come back and go
 * upstream once every hop that needed the batch has it.
 *
 * The relay keeps no custody: it never holds a packet after forwarding it;
 * it remembers only routes and which acknowledgements are still owed, so it
 * may be killed at any moment (the sources resend, the collector drops
 * duplicates).
 *
 * main.c owns the ROUTER (towards the sources), one DEALER per next hop and
 * their monitors: it hands messages to relay_on_upstream and
 * relay_on_downstream, connection changes to relay_on_link, and calls
 * relay_tick once relay_next_deadline has come. The tests drive it directly.
 */
#ifndef TAPMESH_RELAY_H
#define TAPMESH_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "frames.h"
#include "hops.h"
#include "metrics.h"
#include "trust.h"

typedef struct relay_t relay_t;

typedef enum { RELAY_FAILOVER = 0, RELAY_DUPLICATE = 1, RELAY_FLOWHASH = 2 } relay_fanout_t;

/* The destination "towards the sources" of relay_send_fn. */
#define RELAY_DOWN (-1)

/* Sends route + delimiter + command (+ payload when not NULL): to next hop
 * `hop` (>= 0), carrying the source's envelope, or back towards the sources
 * (RELAY_DOWN) along `route`. The callee may move the payload out (as
 * zmq_msg_send does); the engine closes it after the call. Returns 0 or a
 * negative errno (-EAGAIN: the hop's queue is full; -EHOSTUNREACH: no such
 * route). */
typedef int (*relay_send_fn)(void *ctx, int hop, const route_t *route, const uint8_t *cmd,
                             size_t len, zmq_msg_t *payload);

typedef struct {
    const char *node_id;     /* the hop record's name */
    relay_fanout_t fanout;   /* FANOUT */
    const char (*hops)[256]; /* next hop endpoints, in order of preference */
    unsigned nhops;          /* 1..HOPS_MAX */
    const char *filter;      /* FILTER, "" for none */
    int64_t hop_timeout_ms;  /* HOP_TIMEOUT_MS */
    int64_t retry_ms;        /* RETRY_TIMEOUT_S, in ms */
    size_t pending_max;      /* PENDING_MAX */
    size_t max_sources;      /* MAX_SOURCES */
    /* CURVE_ALLOWED_KEYS_DIR: who may speak for which source; NULL without
     * CURVE (nothing checked). The caller's, reloaded in place. */
    const trust_t *trust;
    /* No lock-out by a flood (known.h): sources one peer may announce at
     * once (0: max_sources) and per second (0: no limit); messages of the
     * sources refused are dropped, counted by reason. */
    size_t max_sources_per_peer;
    unsigned hello_rate;
    /* COMPRESS, for every next hop: the zstd level (compress.h), 0 for off.
     * HELLOs forwarded ask for FEATURES (proto §3.8); a next hop that says
     * it takes compressed batches gets uncompressed ones compressed.
     * Compressed batches pass through as they are, whatever this says,
     * unless FILTER or flowhash needs their packets. */
    int compress_level;
} relay_opts_t;

/* Registers the relay's metrics. Returns NULL with `err` naming FILTER
 * when it does not compile, or saying "out of memory". */
relay_t *relay_new(const relay_opts_t *opts, metrics_t *metrics, relay_send_fn send, void *ctx,
                   char *err, size_t errlen);
void relay_destroy(relay_t **self_p);

/* A message from a source (or a relay before this one), as the ROUTER
 * received it. Its payload, when forwarded, is shared, not copied (unless
 * FILTER or flowhash take a compressed one apart, or COMPRESS packs a
 * plain one for a next hop that takes it). With
 * opts->trust, a message for a source its direct peer's key (in->user_id)
 * may not speak for is dropped before anything is remembered of it, and
 * counted: tapmesh_relay_auth_failures_total{reason="identity"}. */
void relay_on_upstream(relay_t *self, frames_t *in, int64_t now_ms);

/* A message from next hop `hop` (ACK, WELCOME, REFUSE, FEATURES), as its
 * DEALER received it. */
void relay_on_downstream(relay_t *self, unsigned hop, frames_t *in, int64_t now_ms);

/* The connection to next hop `hop` went up or down. */
void relay_on_link(relay_t *self, unsigned hop, bool up, int64_t now_ms);

/* Hops that stopped acknowledging, duplicates a hop lags behind on past
 * RETRY_TIMEOUT_S, entries nobody will settle: whatever is due at `now_ms`. */
void relay_tick(relay_t *self, int64_t now_ms);

/* When relay_tick next has work, or INT64_MAX. */
int64_t relay_next_deadline(const relay_t *self);

/* The next hops' state (tests, logs). */
const hops_t *relay_hops(const relay_t *self);

#endif
