/*
 * seqset — sorted ranges; lookups by binary search, inserts merge with
 * neighbours. Ranges are few (holes are rare), so moving the array tail on
 * an insert is cheap.
 */
#include "seqset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void seqset_init(seqset_t *self, size_t max_ranges)
{
    memset(self, 0, sizeof *self);
    self->max = max_ranges ? max_ranges : 1;
}

void seqset_free(seqset_t *self)
{
    free(self->r);
    memset(self, 0, sizeof *self);
}

/* Makes room for one more range: doubles the array up to the maximum, or
 * past it by one when a removal has already split beyond it. Never shrinks. */
static int s_grow(seqset_t *self)
{
    if (self->n < self->cap)
        return 0;
    size_t cap = self->cap ? self->cap * 2 : 4;
    if (cap > self->max)
        cap = self->max;
    if (cap <= self->n)
        cap = self->n + 1;
    seqset_range_t *r = realloc(self->r, cap * sizeof *r);
    if (!r)
        return -ENOMEM;
    self->r = r;
    self->cap = cap;
    return 0;
}

/* Index of the first range with hi > seq (may be n). */
static size_t s_find(const seqset_t *self, uint64_t seq)
{
    size_t lo = 0, hi = self->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (self->r[mid].hi > seq)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

bool seqset_has(const seqset_t *self, uint64_t seq)
{
    size_t i = s_find(self, seq);
    return i < self->n && self->r[i].lo <= seq;
}

int seqset_add(seqset_t *self, uint64_t seq, uint64_t *given_up)
{
    if (given_up)
        *given_up = 0;
    if (seq == UINT64_MAX)
        return 0; /* never a valid seq: would overflow hi */
    size_t i = s_find(self, seq);
    if (i < self->n && self->r[i].lo <= seq)
        return 0;
    bool joins_prev = i > 0 && self->r[i - 1].hi == seq;
    bool joins_next = i < self->n && self->r[i].lo == seq + 1;
    if (joins_prev && joins_next) {
        self->r[i - 1].hi = self->r[i].hi;
        memmove(&self->r[i], &self->r[i + 1], (self->n - i - 1) * sizeof *self->r);
        self->n--;
        return 1;
    }
    if (joins_prev) {
        self->r[i - 1].hi = seq + 1;
        return 1;
    }
    if (joins_next) {
        self->r[i].lo = seq;
        return 1;
    }
    if (self->n >= self->max && self->n >= 2) {
        /* full (a removal may even have split past the maximum): close the
         * oldest hole, between ranges 0 and 1 */
        uint64_t hole_lo = self->r[0].hi, hole_hi = self->r[1].lo;
        bool inside = seq >= hole_lo && seq < hole_hi;
        if (given_up)
            *given_up = hole_hi - hole_lo - (inside ? 1 : 0);
        self->r[0].hi = self->r[1].hi;
        memmove(&self->r[1], &self->r[2], (self->n - 2) * sizeof *self->r);
        self->n--;
        return inside ? 1 : seqset_add(self, seq, NULL);
    }
    if (self->n >= self->max) {
        /* one range only and room for one: extend it over the hole */
        if (given_up)
            *given_up = seq < self->r[0].lo ? self->r[0].lo - seq - 1 : seq - self->r[0].hi;
        if (seq < self->r[0].lo)
            self->r[0].lo = seq;
        else
            self->r[0].hi = seq + 1;
        return 1;
    }
    if (s_grow(self) < 0)
        return -ENOMEM;
    memmove(&self->r[i + 1], &self->r[i], (self->n - i) * sizeof *self->r);
    self->r[i].lo = seq;
    self->r[i].hi = seq + 1;
    self->n++;
    return 1;
}

int seqset_add_range(seqset_t *self, uint64_t lo, uint64_t hi)
{
    if (lo >= hi)
        return 0;
    /* ranges that overlap or touch [lo, hi) are [first, last) */
    size_t first = 0;
    while (first < self->n && self->r[first].hi < lo)
        first++;
    size_t last = first;
    while (last < self->n && self->r[last].lo <= hi)
        last++;
    if (first < last) {
        if (self->r[first].lo < lo)
            lo = self->r[first].lo;
        if (self->r[last - 1].hi > hi)
            hi = self->r[last - 1].hi;
        self->r[first] = (seqset_range_t){lo, hi};
        memmove(&self->r[first + 1], &self->r[last], (self->n - last) * sizeof *self->r);
        self->n -= last - first - 1;
        return 0;
    }
    if (self->n >= self->max)
        return -ENOSPC;
    if (s_grow(self) < 0)
        return -ENOMEM;
    memmove(&self->r[first + 1], &self->r[first], (self->n - first) * sizeof *self->r);
    self->r[first] = (seqset_range_t){lo, hi};
    self->n++;
    return 0;
}

int seqset_remove(seqset_t *self, uint64_t seq)
{
    size_t i = s_find(self, seq);
    if (i >= self->n || self->r[i].lo > seq)
        return 0;
    seqset_range_t *r = &self->r[i];
    if (r->lo == seq && r->hi == seq + 1) {
        memmove(r, r + 1, (self->n - i - 1) * sizeof *r);
        self->n--;
    } else if (r->lo == seq) {
        r->lo++;
    } else if (r->hi == seq + 1) {
        r->hi--;
    } else {
        if (self->n == self->cap) {
            size_t cap = self->cap * 2; /* may pass `max`: a removal must not fail */
            seqset_range_t *nr = realloc(self->r, cap * sizeof *nr);
            if (!nr)
                return -ENOMEM;
            self->r = nr;
            self->cap = cap;
            r = &self->r[i];
        }
        memmove(r + 1, r, (self->n - i) * sizeof *r);
        r[0].hi = seq;
        r[1].lo = seq + 1;
        self->n++;
    }
    return 1;
}

uint64_t seqset_missing_below(const seqset_t *self, uint64_t limit)
{
    uint64_t have = 0;
    for (size_t i = 0; i < self->n && self->r[i].lo < limit; i++)
        have += (self->r[i].hi < limit ? self->r[i].hi : limit) - self->r[i].lo;
    return limit - have;
}

uint64_t seqset_end(const seqset_t *self)
{
    return self->n ? self->r[self->n - 1].hi : 0;
}

uint64_t seqset_drop_first(seqset_t *self)
{
    if (!self->n)
        return 0;
    uint64_t n = self->r[0].hi - self->r[0].lo;
    memmove(&self->r[0], &self->r[1], (self->n - 1) * sizeof *self->r);
    self->n--;
    return n;
}

uint64_t seqset_count_in(const seqset_t *self, uint64_t lo, uint64_t hi)
{
    uint64_t have = 0;
    for (size_t i = s_find(self, lo); i < self->n && self->r[i].lo < hi; i++) {
        uint64_t a = self->r[i].lo > lo ? self->r[i].lo : lo;
        uint64_t b = self->r[i].hi < hi ? self->r[i].hi : hi;
        have += b - a;
    }
    return have;
}

bool seqset_next_gap(const seqset_t *self, uint64_t from, uint64_t limit, uint64_t *lo,
                     uint64_t *hi)
{
    size_t i = s_find(self, from);
    if (i < self->n && self->r[i].lo <= from) {
        from = self->r[i].hi; /* inside a range: the gap starts after it */
        i++;
    }
    if (from >= limit)
        return false;
    *lo = from;
    *hi = i < self->n && self->r[i].lo < limit ? self->r[i].lo : limit;
    return true;
}

/* The end of the range of `self` holding p, or p when none does. */
static uint64_t s_through(const seqset_t *self, uint64_t p)
{
    size_t i = s_find(self, p);
    return i < self->n && self->r[i].lo <= p ? self->r[i].hi : p;
}

uint64_t seqset_prefix_union(const seqset_t *a, const seqset_t *b)
{
    /* each step leaves a range of one set behind, so this ends */
    uint64_t p = 0;
    for (;;) {
        uint64_t q = s_through(b, s_through(a, p));
        if (q == p)
            return p;
        p = q;
    }
}
