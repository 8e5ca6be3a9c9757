/*
 * trailer — timestamps that a timestamping switch appends to each frame.
 * The Arista 7130 (Metamako) trailer, as Wireshark's packet-metamako.c
 * reads it, at the end of the frame:
 *
 *   original FCS (4) | TLV extensions (flags bit 1) | seconds (4) |
 *   nanoseconds (4) | flags (1) | device id (2) | port (1) | new FCS (4, not
 *   always captured)
 *
 * There is no signature: a trailer is recognised by a timestamp that makes
 * sense (seconds above 3600, nanoseconds below 10^9, within 30 days of the
 * capture time), trying first without a new FCS, then with one. A frame
 * that went through several switches carries several trailers, each after
 * the one before (the one before and its FCS are the next one's frame).
 * Pure: no allocation, nothing read outside [frame, frame + len).
 */
#ifndef TAPMESH_TRAILER_H
#define TAPMESH_TRAILER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint32_t start; /* where the trailer (its original FCS) begins in the frame */
    uint64_t ts_ns; /* the switch's time, ns since the epoch */
    uint8_t flags;  /* bit 0: the original FCS was valid; bit 1: extensions */
    uint16_t device;
    uint8_t port;
    bool fcs; /* a new FCS follows the trailer */
} trailer_t;

/* The last Metamako trailer of a frame of `len` bytes (the whole frame: a
 * frame cut by the snaplen has lost its trailer), an Ethernet frame whose
 * header stays whole before it. Returns true and fills *out, or false. */
bool trailer_metamako(const uint8_t *frame, uint32_t len, uint64_t capture_ns, trailer_t *out);

/* Every stacked trailer, outermost first: up to `max` into out[]; returns
 * how many. out[n - 1] is the first switch's. */
unsigned trailer_metamako_all(const uint8_t *frame, uint32_t len, uint64_t capture_ns,
                              trailer_t *out, unsigned max);

#endif
