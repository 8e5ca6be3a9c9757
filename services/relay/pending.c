/*
 * pending — a fixed array of entries, chained hash buckets by index, a
 * free list through `next`.
 */
#include "pending.h"

#include <stdlib.h>
#include <string.h>

struct pending_table_t {
    pending_t *e;
    int32_t *bucket;
    size_t cap, nbuckets, used;
    int32_t free_head;
};

static size_t s_hash(const pending_table_t *self, uint32_t source, uint32_t generation,
                     uint64_t seq, uint16_t part)
{
    uint64_t h = seq * 0x9E3779B97F4A7C15ull ^ ((uint64_t)source << 32 | generation) ^
                 (uint64_t)part * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    return (size_t)(h % self->nbuckets);
}

pending_table_t *pending_new(size_t capacity)
{
    pending_table_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = capacity ? capacity : 1;
    self->nbuckets = self->cap * 2 + 1;
    self->e = calloc(self->cap, sizeof *self->e);
    self->bucket = malloc(self->nbuckets * sizeof *self->bucket);
    if (!self->e || !self->bucket) {
        pending_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < self->nbuckets; i++)
        self->bucket[i] = -1;
    for (size_t i = 0; i < self->cap; i++)
        self->e[i].next = i + 1 < self->cap ? (int32_t)(i + 1) : -1;
    self->free_head = 0;
    return self;
}

void pending_destroy(pending_table_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->e);
    free((*self_p)->bucket);
    free(*self_p);
    *self_p = NULL;
}

pending_t *pending_find(pending_table_t *self, uint32_t source, uint32_t generation, uint64_t seq,
                        uint16_t part)
{
    for (int32_t i = self->bucket[s_hash(self, source, generation, seq, part)]; i >= 0;
         i = self->e[i].next) {
        pending_t *p = &self->e[i];
        if (p->seq == seq && p->source == source && p->generation == generation && p->part == part)
            return p;
    }
    return NULL;
}

pending_t *pending_add(pending_table_t *self, uint32_t source, uint32_t generation, uint64_t seq,
                       uint16_t part)
{
    if (self->free_head < 0)
        return NULL;
    int32_t i = self->free_head;
    pending_t *p = &self->e[i];
    self->free_head = p->next;
    memset(p, 0, sizeof *p);
    p->source = source;
    p->generation = generation;
    p->seq = seq;
    p->part = part;
    p->used = true;
    size_t b = s_hash(self, source, generation, seq, part);
    p->next = self->bucket[b];
    self->bucket[b] = i;
    self->used++;
    return p;
}

void pending_remove(pending_table_t *self, pending_t *entry)
{
    int32_t i = (int32_t)(entry - self->e);
    int32_t *link =
        &self->bucket[s_hash(self, entry->source, entry->generation, entry->seq, entry->part)];
    while (*link >= 0 && *link != i)
        link = &self->e[*link].next;
    if (*link != i)
        return;
    *link = entry->next;
    entry->used = false;
    entry->next = self->free_head;
    self->free_head = i;
    self->used--;
}

size_t pending_count(const pending_table_t *self)
{
    return self->used;
}

size_t pending_capacity(const pending_table_t *self)
{
    return self->cap;
}

pending_t *pending_slot(pending_table_t *self, size_t i)
{
    return i < self->cap ? &self->e[i] : NULL;
}
