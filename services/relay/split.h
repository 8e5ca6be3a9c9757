/*
 * split — what a relay does to a batch's packets before forwarding it,
 * when it does anything: FILTER (a BPF program per link type, run with
 * pcap_offline_filter on each packet) and FANOUT=flowhash (each packet to
 * the next hop chosen by the symmetric hash of its flow, so both
 * directions of a conversation go the same way; non-IP packets to the
 * first hop). The result is one payload frame per next hop, possibly
 * empty (proto/wire-v2.md §4), built in buffers reused from batch to batch.
 */
#ifndef TAPMESH_SPLIT_H
#define TAPMESH_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct split_t split_t;

/* `filter` "" for none; `ways` 1 (filter only) or the number of next hops
 * (flowhash). Checks that the filter compiles (for Ethernet); returns NULL
 * with `err` naming FILTER and quoting libpcap. */
split_t *split_new(const char *filter, unsigned ways, char *err, size_t errlen);
void split_destroy(split_t **self_p);

/* Splits a checked payload frame of `count` records whose interfaces have
 * `linktypes`. Returns 0 (then split_out gives the parts) or -ENOMEM. */
int split_batch(split_t *self, const uint8_t *payload, size_t len, uint32_t count,
                const uint16_t *linktypes, unsigned nifaces);

/* Part `i` (< ways) of the last split: its frame, length and packet count. */
const uint8_t *split_out(const split_t *self, unsigned i, size_t *len, uint32_t *count);

/* Packets the filter dropped in the last split. */
uint32_t split_filtered(const split_t *self);

#endif
