/*
 * pending — a fixed array of entries, chained hash buckets by index, a
 * free list through `next`, and two doubly linked lists by index for the
 * timers.
 */
#include "pending.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t head, tail;
} s_list_t;

struct pending_table_t {
    pending_t *e;
    int32_t *bucket;
    size_t cap, nbuckets, used;
    int32_t free_head;
    s_list_t first, sent;
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
    self->first = self->sent = (s_list_t){-1, -1};
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

/* ---- the two lists: the same code, on either pair of links ---------------- */

static int32_t *s_prev(pending_t *p, bool sent)
{
    return sent ? &p->sent_prev : &p->first_prev;
}

static int32_t *s_next(pending_t *p, bool sent)
{
    return sent ? &p->sent_next : &p->first_next;
}

static void s_append(pending_table_t *self, s_list_t *l, int32_t i, bool sent)
{
    pending_t *p = &self->e[i];
    *s_prev(p, sent) = l->tail;
    *s_next(p, sent) = -1;
    if (l->tail >= 0)
        *s_next(&self->e[l->tail], sent) = i;
    else
        l->head = i;
    l->tail = i;
}

static void s_unlink(pending_table_t *self, s_list_t *l, int32_t i, bool sent)
{
    pending_t *p = &self->e[i];
    int32_t prev = *s_prev(p, sent), next = *s_next(p, sent);
    if (prev >= 0)
        *s_next(&self->e[prev], sent) = next;
    else
        l->head = next;
    if (next >= 0)
        *s_prev(&self->e[next], sent) = prev;
    else
        l->tail = prev;
}

/* ---- entries ----------------------------------------------------------- */

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
                       uint16_t part, int64_t now_ms)
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
    p->first_ms = p->sent_ms = now_ms;
    p->used = true;
    size_t b = s_hash(self, source, generation, seq, part);
    p->next = self->bucket[b];
    self->bucket[b] = i;
    s_append(self, &self->first, i, false);
    self->used++;
    return p;
}

void pending_sent(pending_table_t *self, pending_t *entry, int64_t now_ms)
{
    int32_t i = (int32_t)(entry - self->e);
    if (entry->watched)
        s_unlink(self, &self->sent, i, true);
    entry->sent_ms = now_ms;
    entry->watched = true;
    s_append(self, &self->sent, i, true);
}

void pending_unwatch(pending_table_t *self, pending_t *entry)
{
    if (!entry->watched)
        return;
    s_unlink(self, &self->sent, (int32_t)(entry - self->e), true);
    entry->watched = false;
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
    s_unlink(self, &self->first, i, false);
    pending_unwatch(self, entry);
    entry->used = false;
    entry->next = self->free_head;
    self->free_head = i;
    self->used--;
}

pending_t *pending_oldest(pending_table_t *self)
{
    return self->first.head >= 0 ? &self->e[self->first.head] : NULL;
}

pending_t *pending_after(pending_table_t *self, const pending_t *entry)
{
    return entry->first_next >= 0 ? &self->e[entry->first_next] : NULL;
}

pending_t *pending_oldest_sent(pending_table_t *self)
{
    return self->sent.head >= 0 ? &self->e[self->sent.head] : NULL;
}

size_t pending_count(const pending_table_t *self)
{
    return self->used;
}
