/*
 * known — a small array searched linearly (sources are few); eviction by
 * heard_ms among the entries the flood rules allow.
 */
#include "known.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct known_table_t {
    known_t *slots;
    size_t n, cap;
    peers_t *peers;
};

known_table_t *known_new(size_t capacity, peers_t *peers)
{
    known_table_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->peers = peers;
    self->cap = capacity ? capacity : 1;
    self->slots = calloc(self->cap, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return NULL;
    }
    return self;
}

void known_destroy(known_table_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

known_t *known_get(known_table_t *self, const char *id, uint64_t epoch)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->slots[i].epoch == epoch && strcmp(self->slots[i].id, id) == 0)
            return &self->slots[i];
    return NULL;
}

/* The least recently heard entry without batches in flight: of `peer` only
 * (`own`), or of a peer holding more than `more_than`, or (more_than 0) of
 * anyone; NULL when there is none. */
static known_t *s_victim(known_table_t *self, uint64_t peer, bool own, size_t more_than)
{
    known_t *v = NULL;
    size_t vheld = 0;
    for (size_t i = 0; i < self->n; i++) {
        known_t *k = &self->slots[i];
        if (k->pending || (own && k->peer != peer))
            continue;
        size_t held = own ? 0 : peers_held(self->peers, k->peer);
        if (!own && more_than && held <= more_than)
            continue;
        if (!v || held > vheld || (held == vheld && k->heard_ms < v->heard_ms)) {
            v = k;
            vheld = held;
        }
    }
    return v;
}

known_t *known_add(known_table_t *self, const char *id, uint64_t epoch, uint64_t peer,
                   size_t peer_max, known_refusal_t *why)
{
    size_t held = peers_held(self->peers, peer);
    known_t *k = NULL;
    if (held >= peer_max) {
        k = s_victim(self, peer, true, 0);
        if (!k) {
            *why = KNOWN_PEER_LIMIT;
            return NULL;
        }
    } else if (self->n == self->cap) {
        k = s_victim(self, peer, false, held + 1);
        if (!k)
            k = s_victim(self, peer, false, 0);
        if (!k) {
            *why = KNOWN_FULL;
            return NULL;
        }
    } else {
        k = &self->slots[self->n++];
    }
    if (k->generation || k->id[0]) /* reused: the one before goes */
        peers_hold(self->peers, k->peer, -1);
    uint32_t generation = k->generation + 1;
    memset(k, 0, sizeof *k);
    k->generation = generation;
    snprintf(k->id, sizeof k->id, "%s", id);
    k->epoch = epoch;
    k->peer = peer;
    peers_hold(self->peers, peer, 1);
    return k;
}

known_t *known_at(known_table_t *self, uint32_t index, uint32_t generation)
{
    if (index >= self->n || self->slots[index].generation != generation)
        return NULL;
    return &self->slots[index];
}

uint32_t known_index(const known_table_t *self, const known_t *k)
{
    return (uint32_t)(k - self->slots);
}
