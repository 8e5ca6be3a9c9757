/*
 * clock — the two clocks every service reads: wall time in nanoseconds
 * (packet timestamps, hop records) and monotonic milliseconds/nanoseconds
 * (timers, which must not jump with the wall clock).
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

#endif
