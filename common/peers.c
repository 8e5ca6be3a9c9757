/*
 * peers — an open-addressed table (linear probing) of 64-bit keys; key 0
 * marks a free slot, so a peer whose key is 0 is stored as 1. Tokens are
 * kept in thousandths, refilled from the time passed since the last look.
 */
#include "peers.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t key; /* 0: free */
    uint32_t held;
    int64_t milli_tokens; /* thousandths of a new source */
    int64_t seen_ms;      /* of the last refill */
} s_peer_t;

struct peers_t {
    s_peer_t *slot;
    size_t cap, used; /* cap: a power of two */
    size_t max_peers; /* remembered before those holding nothing go */
    int64_t rate;     /* new sources a second; 0: no limit */
};

peers_t *peers_new(size_t max_sources, unsigned rate)
{
    peers_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->max_peers = 4 * (max_sources ? max_sources : 1) + 64;
    self->cap = 16;
    while (self->cap < 2 * self->max_peers)
        self->cap *= 2;
    self->slot = calloc(self->cap, sizeof *self->slot);
    if (!self->slot) {
        free(self);
        return NULL;
    }
    self->rate = rate;
    return self;
}

void peers_destroy(peers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->slot);
    free(*self_p);
    *self_p = NULL;
}

size_t peers_count(const peers_t *self)
{
    return self->used;
}

static uint64_t s_key(uint64_t peer)
{
    return peer ? peer : 1;
}

static size_t s_home(const peers_t *self, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 7) & (self->cap - 1);
}

static s_peer_t *s_find(const peers_t *self, uint64_t peer)
{
    uint64_t key = s_key(peer);
    for (size_t i = s_home(self, key);; i = (i + 1) & (self->cap - 1)) {
        if (self->slot[i].key == key)
            return &self->slot[i];
        if (self->slot[i].key == 0)
            return NULL;
    }
}

/* Forgets every peer holding nothing: the table is rebuilt from the rest. */
static void s_sweep(peers_t *self)
{
    s_peer_t *old = self->slot;
    s_peer_t *fresh = calloc(self->cap, sizeof *fresh);
    if (!fresh)
        return; /* kept as it is: the next insertion tries again */
    self->slot = fresh;
    self->used = 0;
    for (size_t i = 0; i < self->cap; i++) {
        if (!old[i].key || !old[i].held)
            continue;
        size_t j = s_home(self, old[i].key);
        while (fresh[j].key)
            j = (j + 1) & (self->cap - 1);
        fresh[j] = old[i];
        self->used++;
    }
    free(old);
}

/* The entry of `peer`, made when absent (with a full allowance). */
static s_peer_t *s_get(peers_t *self, uint64_t peer, int64_t now)
{
    s_peer_t *p = s_find(self, peer);
    if (p)
        return p;
    if (self->used >= self->max_peers)
        s_sweep(self);
    if (self->used >= self->cap - 1)
        return NULL; /* only when a sweep could not allocate */
    uint64_t key = s_key(peer);
    size_t i = s_home(self, key);
    while (self->slot[i].key)
        i = (i + 1) & (self->cap - 1);
    p = &self->slot[i];
    *p = (s_peer_t){.key = key, .milli_tokens = self->rate * 1000, .seen_ms = now};
    self->used++;
    return p;
}

size_t peers_held(const peers_t *self, uint64_t peer)
{
    const s_peer_t *p = s_find(self, peer);
    return p ? p->held : 0;
}

void peers_hold(peers_t *self, uint64_t peer, int delta)
{
    s_peer_t *p = delta > 0 ? s_get(self, peer, 0) : s_find(self, peer);
    if (!p)
        return;
    if (delta > 0)
        p->held++;
    else if (p->held > 0)
        p->held--;
}

bool peers_admit(peers_t *self, uint64_t peer, int64_t now_ms)
{
    if (!self->rate)
        return true;
    s_peer_t *p = s_get(self, peer, now_ms);
    if (!p)
        return false; /* out of memory: nobody new */
    int64_t full = self->rate * 1000;
    if (now_ms > p->seen_ms) {
        int64_t add = (now_ms - p->seen_ms) * self->rate; /* thousandths */
        p->milli_tokens = add >= full - p->milli_tokens ? full : p->milli_tokens + add;
        p->seen_ms = now_ms;
    }
    if (p->milli_tokens < 1000)
        return false;
    p->milli_tokens -= 1000;
    return true;
}
