/*
 * flowtab — a fixed array of flows, a chained hash index over them (bucket
 * heads and next links as indices) and a doubly linked LRU list, all
 * allocated once: no allocation per packet.
 */
#include "flowtab.h"

#include <stdlib.h>
#include <string.h>

#define S_NIL UINT32_MAX

typedef struct {
    flowtab_flow_t f;
    uint64_t hash;
    uint32_t next;        /* in its bucket, or in the free list */
    uint32_t prev, newer; /* LRU: prev is older, newer is newer */
} s_entry_t;

struct flowtab_t {
    s_entry_t *e;
    size_t capacity, size;
    uint32_t *buckets; /* nbuckets, a power of two */
    size_t nbuckets;
    uint32_t free;
    uint32_t oldest, newest;
};

void flowtab_key(flowtab_key_t *key, const char *source, const char *iface, const decode_eth_t *eth,
                 const decode_flow_t *flow)
{
    memset(key, 0, sizeof *key);
    strncpy(key->source, source, WIRE_NAME_MAX);
    strncpy(key->iface, iface, WIRE_NAME_MAX);
    /* field by field: the structs' padding stays zero */
    key->eth.present = eth->present;
    memcpy(key->eth.src, eth->src, 6);
    memcpy(key->eth.dst, eth->dst, 6);
    key->eth.ethertype = eth->ethertype;
    key->eth.has_vlan = eth->has_vlan;
    key->eth.vlan = eth->vlan;
    key->flow.family = flow->family;
    key->flow.proto = flow->proto;
    key->flow.addr_len = flow->addr_len;
    memcpy(key->flow.src, flow->src, 16);
    memcpy(key->flow.dst, flow->dst, 16);
    key->flow.has_ports = flow->has_ports;
    key->flow.sport = flow->sport;
    key->flow.dport = flow->dport;
}

/* FNV-1a 64 over the key's bytes */
static uint64_t s_hash(const flowtab_key_t *key)
{
    const unsigned char *p = (const unsigned char *)key;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof *key; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h ^ h >> 29;
}

flowtab_t *flowtab_new(size_t capacity)
{
    if (capacity < 1 || capacity >= S_NIL / 2)
        return NULL;
    flowtab_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = capacity;
    self->nbuckets = 1;
    while (self->nbuckets < capacity * 2)
        self->nbuckets <<= 1;
    self->e = calloc(capacity, sizeof *self->e);
    self->buckets = malloc(self->nbuckets * sizeof *self->buckets);
    if (!self->e || !self->buckets) {
        flowtab_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < self->nbuckets; i++)
        self->buckets[i] = S_NIL;
    for (size_t i = 0; i < capacity; i++)
        self->e[i].next = i + 1 < capacity ? (uint32_t)(i + 1) : S_NIL;
    self->free = 0;
    self->oldest = self->newest = S_NIL;
    return self;
}

void flowtab_destroy(flowtab_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    flowtab_t *self = *self_p;
    free(self->e);
    free(self->buckets);
    free(self);
    *self_p = NULL;
}

static void s_lru_unlink(flowtab_t *self, uint32_t i)
{
    s_entry_t *e = &self->e[i];
    if (e->prev != S_NIL)
        self->e[e->prev].newer = e->newer;
    else
        self->oldest = e->newer;
    if (e->newer != S_NIL)
        self->e[e->newer].prev = e->prev;
    else
        self->newest = e->prev;
}

static void s_lru_push(flowtab_t *self, uint32_t i)
{
    s_entry_t *e = &self->e[i];
    e->prev = self->newest;
    e->newer = S_NIL;
    if (self->newest != S_NIL)
        self->e[self->newest].newer = i;
    else
        self->oldest = i;
    self->newest = i;
}

/* Takes entry i out of the table (index, LRU) into the free list. */
static void s_remove(flowtab_t *self, uint32_t i, flowtab_flow_t *out)
{
    s_entry_t *e = &self->e[i];
    uint32_t *link = &self->buckets[e->hash & (self->nbuckets - 1)];
    while (*link != i)
        link = &self->e[*link].next;
    *link = e->next;
    s_lru_unlink(self, i);
    *out = e->f;
    e->next = self->free;
    self->free = i;
    self->size--;
}

bool flowtab_add(flowtab_t *self, const flowtab_key_t *key, uint64_t ts_ns, uint64_t bytes,
                 flowtab_flow_t *evicted)
{
    uint64_t h = s_hash(key);
    uint32_t *head = &self->buckets[h & (self->nbuckets - 1)];
    for (uint32_t i = *head; i != S_NIL; i = self->e[i].next) {
        s_entry_t *e = &self->e[i];
        if (e->hash == h && memcmp(&e->f.key, key, sizeof *key) == 0) {
            e->f.packets++;
            e->f.bytes += bytes;
            if (ts_ns < e->f.first_ns)
                e->f.first_ns = ts_ns;
            if (ts_ns > e->f.last_ns)
                e->f.last_ns = ts_ns;
            s_lru_unlink(self, i);
            s_lru_push(self, i);
            return false;
        }
    }
    bool full = self->size == self->capacity;
    if (full)
        s_remove(self, self->oldest, evicted);
    uint32_t i = self->free;
    s_entry_t *e = &self->e[i];
    self->free = e->next;
    e->f.key = *key;
    e->f.packets = 1;
    e->f.bytes = bytes;
    e->f.first_ns = e->f.last_ns = ts_ns;
    e->hash = h;
    head = &self->buckets[h & (self->nbuckets - 1)];
    e->next = *head;
    *head = i;
    s_lru_push(self, i);
    self->size++;
    return full;
}

bool flowtab_pop(flowtab_t *self, flowtab_flow_t *out)
{
    if (self->oldest == S_NIL)
        return false;
    s_remove(self, self->oldest, out);
    return true;
}

size_t flowtab_size(const flowtab_t *self)
{
    return self->size;
}
