/*
 * trailer — timestamps that a timestamping switch adds to each frame: the
 * Arista 7130 (Metamako) trailer at its end, and the Arista 7280 header
 * after its addresses (below).
 *
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

/*
 * The Arista 7280 timestamp header (AVSP, the Arista Vendor Specific
 * Protocol, as Wireshark's packet-avsp.c and tcpdump's print-arista.c read
 * it), inserted after the source address, or after one 802.1Q tag as
 * Wireshark also reads it:
 *
 *   dst (6) | src (6) | [0x8100 | TCI (2)] | EtherType 0xD28B (2) |
 *   subtype 0x0001 (2) | version (2) | timestamp (8 or 6) |
 *   original EtherType (2) | the rest of the frame
 *
 * version: 0x0010 64-bit TAI, 0x0110 64-bit UTC (seconds (4), nanoseconds
 * (4)); 0x0020 48-bit TAI, 0x0120 48-bit UTC (seconds modulo 65536 (2),
 * nanoseconds (4), its top two bits zero). Other subtypes and versions are
 * not timestamps this reads.
 */
#define TRAILER_AVSP_ETHERTYPE 0xD28B
/* TAI - UTC: 37 s since 2017-01-01 (IERS Bulletin C); a new leap second
 * would change it */
#define TRAILER_TAI_UTC_S 37

typedef struct {
    uint32_t start;   /* where the header (its EtherType 0xD28B) begins: 12, or 16 after a tag */
    uint32_t len;     /* its bytes up to the original EtherType: 14 (64-bit) or 12 (48-bit) */
    uint16_t version; /* 0x0010, 0x0110, 0x0020 or 0x0120 */
    uint64_t ts_ns;   /* the switch's time in UTC, ns since the epoch */
} trailer_avsp_t;

/* The Arista 7280 timestamp header of an Ethernet frame of which `caplen`
 * bytes were captured (the header and the original EtherType after it must
 * be there). The 48-bit form's seconds are those nearest `capture_ns`; a
 * TAI time is taken back to UTC; a 64-bit time must lie within 30 days of
 * `capture_ns`. Returns true and fills *out, or false (no header, another
 * subtype or version, nanoseconds of 10^9 or more, cut short,
 * implausible). */
bool trailer_arista7280(const uint8_t *frame, uint32_t caplen, uint64_t capture_ns,
                        trailer_avsp_t *out);

#endif
