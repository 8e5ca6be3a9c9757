/*
 * peers — per-peer accounting for the flood limits (shared DESIGN "Every
 * service"; MAX_SOURCES_PER_PEER, HELLO_RATE_PER_PEER): how many source
 * states each peer holds, and how many new sources it may still announce
 * (a token bucket: `rate` a second, a burst of as many). A peer is a 64-bit
 * key (frames_peer): its CURVE key, or its connection without one, plus the
 * connections behind it when it is a relay.
 *
 * Bounded: at most four times `max_sources` peers are remembered; past
 * that, those holding nothing are forgotten (their allowance starts full
 * again).
 */
#ifndef TAPMESH_PEERS_H
#define TAPMESH_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct peers_t peers_t;

/* For up to `max_sources` states in all; `rate` new sources a second per
 * peer (0: no limit). Returns NULL when out of memory. */
peers_t *peers_new(size_t max_sources, unsigned rate);
void peers_destroy(peers_t **self_p);

/* Source states `peer` holds. */
size_t peers_held(const peers_t *self, uint64_t peer);

/* `peer` holds one state more (delta 1) or one fewer (-1). */
void peers_hold(peers_t *self, uint64_t peer, int delta);

/* Takes one new source from `peer`'s allowance at `now_ms`. Returns false,
 * taking nothing, when it has none left. */
bool peers_admit(peers_t *self, uint64_t peer, int64_t now_ms);

/* Peers remembered (tests). */
size_t peers_count(const peers_t *self);

#endif
