/*
 * known — the sources a relay has seen: per (source, epoch), the route back
 * to it (the envelope of its latest message) and the link types of its
 * interfaces (from HELLO, for FILTER and flowhash). Routing state only,
 * bounded, with the flood limits (peers.h): a peer holds at most so many
 * entries, and when the table is full, room is made from the peer holding
 * the most; never from an entry with batches in flight (pending).
 */
#ifndef TAPMESH_KNOWN_H
#define TAPMESH_KNOWN_H

#include <stdbool.h>
#include <stdint.h>

#include "frames.h"
#include "peers.h"
#include "wire.h"

typedef struct {
    char id[WIRE_NAME_MAX + 1];
    uint64_t epoch;
    route_t route;
    bool hello; /* link types known */
    unsigned nifaces;
    uint16_t linktype[WIRE_IFACES_MAX];
    int64_t heard_ms;
    uint64_t asked;      /* the resend request it last got (relay.c), 0: none */
    uint32_t generation; /* changes when the slot is reused */
    uint64_t peer;       /* who announced it (frames_peer) */
    uint32_t pending;    /* its batches forwarded and not yet settled */
    /* compression (proto §3.8): its own HELLO asked (FEATURES go back to
     * it), the HELLO forwarded asked (ours or its own tag), and the next
     * hops that said FEATURES (zstd) since */
    bool asked_zstd, hello_zstd;
    uint32_t zstd_hops;
} known_t;

/* Why known_add made no entry. */
typedef enum { KNOWN_PEER_LIMIT = 1, KNOWN_FULL } known_refusal_t;

typedef struct known_table_t known_table_t;

/* A table of `capacity` entries, counting them per peer in `peers` (the
 * caller's). */
known_table_t *known_new(size_t capacity, peers_t *peers);
void known_destroy(known_table_t **self_p);

/* The entry of (source, epoch), or NULL. */
known_t *known_get(known_table_t *self, const char *id, uint64_t epoch);

/* A new entry of (source, epoch), announced by `peer`. When `peer` holds
 * `peer_max` entries, its own least recently heard one without batches in
 * flight makes room; when the table is full, the least recently heard of
 * the peer holding the most (more than `peer` will), else of all, without
 * batches in flight. Returns NULL with *why when none may go. */
known_t *known_add(known_table_t *self, const char *id, uint64_t epoch, uint64_t peer,
                   size_t peer_max, known_refusal_t *why);

/* The entry in slot `index` if it still has `generation`, else NULL. */
known_t *known_at(known_table_t *self, uint32_t index, uint32_t generation);
uint32_t known_index(const known_table_t *self, const known_t *k);

#endif
