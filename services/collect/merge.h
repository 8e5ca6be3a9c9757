/*
 * merge — k-way merge by capture timestamp: a binary min-heap of lanes
 * (one per source with packets waiting), keyed by the timestamp of each
 * lane's next packet, ties broken by the order lanes were first seen. Like
 * mergecap, each lane is taken in its own order; the heap picks which lane
 * goes next.
 *
 * When to take the top lane (watermarks, the merge window) is the caller's
 * decision: this module only orders. A caller takes runs: the top lane's
 * packets while they come before merge_rival's key, then one update.
 */
#ifndef TAPMESH_MERGE_H
#define TAPMESH_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t ts;    /* key: timestamp of the lane's next packet */
    uint64_t order; /* tie-break: smaller first */
    size_t pos;     /* position in the heap, MERGE_NOWHERE when out */
} merge_lane_t;

#define MERGE_NOWHERE ((size_t)-1)

typedef struct {
    merge_lane_t **heap;
    size_t n, cap;
} merge_t;

void merge_init(merge_t *self);
void merge_free(merge_t *self);
void merge_lane_init(merge_lane_t *lane, uint64_t order);

/* Puts `lane` in (or re-sorts it after its ts changed). Returns 0 or -ENOMEM. */
int merge_update(merge_t *self, merge_lane_t *lane);

/* Takes `lane` out (no-op when out). */
void merge_remove(merge_t *self, merge_lane_t *lane);

/* The lane with the smallest (ts, order), or NULL. */
merge_lane_t *merge_top(const merge_t *self);

/* The lane that would be on top without the top one: the smaller of the
 * top's children, or NULL when the top is alone. While the top lane's key
 * stays below it (by ts, then order) the top lane stays on top, so a
 * caller can take a run of packets from it with one update at the end. */
merge_lane_t *merge_rival(const merge_t *self);

size_t merge_size(const merge_t *self);

#endif
