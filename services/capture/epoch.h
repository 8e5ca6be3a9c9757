/*
 * epoch — the epoch a capture agent starts afresh with: 64 random bits
 * from the kernel (getrandom(2)), never 0, never derived from the time
 * (shared DESIGN "Delivery": a restart never looks like a replay, and
 * nobody can guess a live epoch). The epoch, with the source id, is what a
 * sender must know to speak for a source, so it must not be guessable from
 * what the agent shows: its start time on /metrics, log time stamps, or
 * dead-letter file names (dlq.h).
 */
#ifndef TAPMESH_EPOCH_H
#define TAPMESH_EPOCH_H

#include <stddef.h>
#include <stdint.h>

/* Draws a new epoch into *epoch (never 0). Waits, at boot, until the
 * kernel's random source is ready. Returns 0, or a negative errno with
 * `err` saying why (getrandom's error): the agent must not start without
 * one. */
int epoch_new(uint64_t *epoch, char *err, size_t errlen);

#endif
