/*
 * merge — a binary heap of lane pointers; each lane records its position so
 * that an update or a removal is O(log n).
 */
#include "merge.h"

#include <errno.h>
#include <stdlib.h>

void merge_init(merge_t *self)
{
    self->heap = NULL;
    self->n = self->cap = 0;
}

void merge_free(merge_t *self)
{
    free(self->heap);
    merge_init(self);
}

void merge_lane_init(merge_lane_t *lane, uint64_t order)
{
    lane->ts = 0;
    lane->order = order;
    lane->pos = MERGE_NOWHERE;
}

static bool s_less(const merge_lane_t *a, const merge_lane_t *b)
{
    return a->ts < b->ts || (a->ts == b->ts && a->order < b->order);
}

static void s_place(merge_t *self, size_t i, merge_lane_t *lane)
{
    self->heap[i] = lane;
    lane->pos = i;
}

static void s_up(merge_t *self, size_t i)
{
    merge_lane_t *lane = self->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!s_less(lane, self->heap[parent]))
            break;
        s_place(self, i, self->heap[parent]);
        i = parent;
    }
    s_place(self, i, lane);
}

static void s_down(merge_t *self, size_t i)
{
    merge_lane_t *lane = self->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= self->n)
            break;
        if (c + 1 < self->n && s_less(self->heap[c + 1], self->heap[c]))
            c++;
        if (!s_less(self->heap[c], lane))
            break;
        s_place(self, i, self->heap[c]);
        i = c;
    }
    s_place(self, i, lane);
}

int merge_update(merge_t *self, merge_lane_t *lane)
{
    if (lane->pos == MERGE_NOWHERE) {
        if (self->n == self->cap) {
            size_t cap = self->cap ? self->cap * 2 : 16;
            merge_lane_t **h = realloc(self->heap, cap * sizeof *h);
            if (!h)
                return -ENOMEM;
            self->heap = h;
            self->cap = cap;
        }
        s_place(self, self->n++, lane);
    }
    s_up(self, lane->pos);
    s_down(self, lane->pos);
    return 0;
}

void merge_remove(merge_t *self, merge_lane_t *lane)
{
    size_t i = lane->pos;
    if (i == MERGE_NOWHERE)
        return;
    lane->pos = MERGE_NOWHERE;
    merge_lane_t *last = self->heap[--self->n];
    if (i == self->n)
        return;
    s_place(self, i, last);
    s_up(self, i);
    s_down(self, last->pos);
}

merge_lane_t *merge_rival(const merge_t *self)
{
    if (self->n < 3)
        return self->n == 2 ? self->heap[1] : NULL;
    return s_less(self->heap[2], self->heap[1]) ? self->heap[2] : self->heap[1];
}

merge_lane_t *merge_top(const merge_t *self)
{
    return self->n ? self->heap[0] : NULL;
}

size_t merge_size(const merge_t *self)
{
    return self->n;
}
