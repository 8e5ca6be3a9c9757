/*
 * clock — the two clocks every service reads: wall time in nanoseconds
 * (packet timestamps, hop records) and monotonic milliseconds/nanoseconds
 * (timers, which must not jump with the wall clock); and the full value of
 * a switch's timestamp that keeps only its low part (it wraps).
 */
#ifndef TAPMESH_CLOCK_H
#define TAPMESH_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t clock_mono_ms(void)
{
    return (int64_t)(clock_mono_ns() / 1000000u);
}

/* The value whose remainder modulo `mod` is `low` (below `mod`) nearest to
 * `near`: a wrapped counter's full value, `near` being a time known to be
 * close (the capture time). `near` + `mod` must not overflow. */
static inline uint64_t clock_nearest(uint64_t low, uint64_t mod, uint64_t near)
{
    uint64_t base = near - near % mod + low;
    uint64_t best = base;
    uint64_t dist = base > near ? base - near : near - base;
    if (base >= mod && near - (base - mod) < dist) {
        best = base - mod;
        dist = near - best;
    }
    if (base + mod > base && base + mod - near < dist)
        best = base + mod;
    return best;
}

#endif
