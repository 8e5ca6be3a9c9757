/*
 * seqset — a set of batch sequence numbers kept as sorted disjoint ranges
 * [lo, hi): those a collector has taken from one (source, epoch), those a
 * source said it dead-lettered (DEAD, §3.9; the agent's own record too).
 * For the batches taken, in the normal
 * case it is one range [0, n); a hole is a batch not (yet) received while
 * later ones were (a gap), which a resend usually fills.
 *
 * Exact, so a duplicate is never mistaken for new or the reverse, as long
 * as the number of holes stays under the set's capacity; past it, the
 * oldest hole is given up (counted by the caller as lost for dedup).
 */
#ifndef TAPMESH_SEQSET_H
#define TAPMESH_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t lo, hi; /* [lo, hi) */
} seqset_range_t;

typedef struct {
    seqset_range_t *r;
    size_t n, cap, max;
} seqset_t;

/* An empty set holding at most `max_ranges` ranges. */
void seqset_init(seqset_t *self, size_t max_ranges);
void seqset_free(seqset_t *self);

bool seqset_has(const seqset_t *self, uint64_t seq);

/* Adds seq. Returns 1 when it was new, 0 when already there, -ENOMEM. When
 * the set is full, the oldest hole is filled first and *given_up (may be
 * NULL) receives its size. */
int seqset_add(seqset_t *self, uint64_t seq, uint64_t *given_up);

/* Adds every number in [lo, hi). Returns 0, -ENOSPC when it would need a
 * range beyond the maximum, or -ENOMEM. */
int seqset_add_range(seqset_t *self, uint64_t lo, uint64_t hi);

/* Removes seq (splitting its range when needed). Returns 1 when it was
 * there, 0 when not, -ENOMEM. */
int seqset_remove(seqset_t *self, uint64_t seq);

/* Numbers below `limit` missing from the set (gaps). */
uint64_t seqset_missing_below(const seqset_t *self, uint64_t limit);

/* Removes the lowest range; returns how many numbers it held (0 when the
 * set is empty). */
uint64_t seqset_drop_first(seqset_t *self);

/* Members in [lo, hi). */
uint64_t seqset_count_in(const seqset_t *self, uint64_t lo, uint64_t hi);

/* The first run of numbers in [from, limit) missing from the set: true and
 * [*lo, *hi) when there is one, false otherwise. */
bool seqset_next_gap(const seqset_t *self, uint64_t from, uint64_t limit, uint64_t *lo,
                     uint64_t *hi);

/* The largest p such that every number below p is in `a` or in `b`. */
uint64_t seqset_prefix_union(const seqset_t *a, const seqset_t *b);

/* One past the largest member, 0 when empty. */
uint64_t seqset_end(const seqset_t *self);

#endif
