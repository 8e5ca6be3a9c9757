/*
 * known — a small array searched linearly (sources are few), with LRU
 * eviction by heard_ms.
 */
#include "known.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct known_table_t {
    known_t *slots;
    size_t n, cap;
};

known_table_t *known_new(size_t capacity)
{
    known_table_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
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

known_t *known_get(known_table_t *self, const char *id, uint64_t epoch, bool create)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->slots[i].epoch == epoch && strcmp(self->slots[i].id, id) == 0)
            return &self->slots[i];
    if (!create)
        return NULL;
    known_t *k;
    if (self->n < self->cap) {
        k = &self->slots[self->n++];
    } else {
        k = &self->slots[0];
        for (size_t i = 1; i < self->n; i++)
            if (self->slots[i].heard_ms < k->heard_ms)
                k = &self->slots[i];
    }
    uint32_t generation = k->generation + 1;
    memset(k, 0, sizeof *k);
    k->generation = generation;
    snprintf(k->id, sizeof k->id, "%s", id);
    k->epoch = epoch;
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
