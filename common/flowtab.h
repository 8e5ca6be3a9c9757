/*
 * flowtab — the flow table of the event streams' aggregation
 * (EVENTS_UNIQUE_S): packet and byte counts per flow, in a table of a fixed
 * number of flows allocated once, least recently used first out. A flow is
 * everything an event says of a packet but its time and length: source,
 * interface, Ethernet addresses, ethertype, VLAN, IP addresses, protocol
 * and ports (one direction: the reply is another flow).
 *
 * A pure module (no clock, no output): events.c turns what comes out of it
 * into events. A flow leaves the table whole (its counts in one piece), so
 * the sum over everything taken out equals everything put in.
 */
#ifndef TAPMESH_FLOWTAB_H
#define TAPMESH_FLOWTAB_H

#include "decode.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct flowtab_t flowtab_t;

typedef struct {
    char source[WIRE_NAME_MAX + 1];
    char iface[WIRE_NAME_MAX + 1];
    decode_eth_t eth;
    decode_flow_t flow;
} flowtab_key_t;

typedef struct {
    flowtab_key_t key;
    uint64_t packets, bytes;
    uint64_t first_ns, last_ns; /* smallest and largest timestamp seen */
} flowtab_flow_t;

/* Fills *key from its parts (cut to WIRE_NAME_MAX characters), zeroing
 * every byte first: keys are compared as bytes. */
void flowtab_key(flowtab_key_t *key, const char *source, const char *iface, const decode_eth_t *eth,
                 const decode_flow_t *flow);

/* A table of `capacity` flows (>= 1). NULL when out of memory. */
flowtab_t *flowtab_new(size_t capacity);
void flowtab_destroy(flowtab_t **self_p);

/* Counts one packet of `bytes` at `ts_ns` in its flow. A new flow in a full
 * table takes the place of the least recently used one, which is copied to
 * *evicted: returns true then, false otherwise. */
bool flowtab_add(flowtab_t *self, const flowtab_key_t *key, uint64_t ts_ns, uint64_t bytes,
                 flowtab_flow_t *evicted);

/* Takes the least recently used flow out into *out; false when empty. */
bool flowtab_pop(flowtab_t *self, flowtab_flow_t *out);

size_t flowtab_size(const flowtab_t *self);

#endif
