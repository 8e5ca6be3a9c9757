/*
 * decode — finds the network layer of a captured packet: its address
 * family, addresses, protocol and ports. Used by the capture agent for its
 * per-family packet-size histogram and by the relay for its symmetric
 * flow-hash fan-out (both directions of a conversation to the same next hop),
 * and, with the Ethernet header (decode_packet), by the event streams
 * (events.h).
 *
 * Everything is read through a bounds-checked reader limited by caplen: any
 * byte string is valid input, nothing is allocated, nothing is asserted.
 */
#ifndef TAPMESH_DECODE_H
#define TAPMESH_DECODE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { DECODE_OTHER = 0, DECODE_IPV4 = 1, DECODE_IPV6 = 2 } decode_family_t;

typedef struct {
    decode_family_t family;   /* DECODE_OTHER when not IP */
    uint8_t proto;            /* IPv4 protocol / IPv6 final next header (after extension headers); 0
                                 when unknown */
    uint8_t addr_len;         /* 4 or 16 */
    uint8_t src[16], dst[16]; /* addresses, first addr_len bytes used */
    bool has_ports;        /* TCP (6), UDP (17), SCTP (132), UDP-Lite (136) header present and not
                              a fragment */
    uint16_t sport, dport; /* host byte order; 0 when !has_ports */
} decode_flow_t;

/* The Ethernet header of a LINKTYPE_ETHERNET frame. */
typedef struct {
    bool present; /* the link type is Ethernet and its 14 bytes are within caplen */
    uint8_t dst[6], src[6];
    uint16_t ethertype; /* of the payload: the one after the VLAN tags skipped */
    bool has_vlan;      /* an 802.1Q/802.1ad tag (0x8100, 0x88A8, 0x9100) within caplen */
    uint16_t vlan;      /* the outer tag's VLAN id (12 bits); 0 when !has_vlan */
} decode_eth_t;

/* The address family of a packet of LINKTYPE_ `linktype`, for the
 * packet-size histogram by family. A family is reported only when
 * decode_flow would accept the packet (a complete IP header within caplen),
 * so the two always agree. Never reads past caplen. */
decode_family_t decode_family(uint16_t linktype, const uint8_t *data, uint32_t caplen);

/* Fills *flow (always written: zeroed first); returns true when the packet
 * is IPv4 or IPv6 with a complete IP header within caplen, false otherwise
 * (flow->family = DECODE_OTHER, every field 0).
 *
 * Supported link types: 1 ETHERNET (up to two VLAN tags 0x8100, 0x88A8,
 * 0x9100), 101 RAW, 228 IPV4, 229 IPV6, 113 LINUX_SLL, 276 LINUX_SLL2,
 * 0 NULL (either byte order), 108 LOOP. IPv6 extension headers (Hop-by-Hop,
 * Routing, Destination Options, Fragment, AH; at most 8) are walked; proto
 * is 0 when that walk is cut short by caplen or the limit. The walk stops
 * after a Fragment header, so proto is its Next Header in every fragment.
 * Ports are read only from an unfragmented TCP, UDP, SCTP or UDP-Lite
 * header whose first 4 bytes are within caplen. */
bool decode_flow(uint16_t linktype, const uint8_t *data, uint32_t caplen, decode_flow_t *flow);

/* decode_flow, and the Ethernet header into *eth (always written: zeroed
 * first; present only for LINKTYPE_ETHERNET), in one pass. Up to two VLAN
 * tags are skipped, as for decode_flow; ethertype is that after them (the
 * third tag's type when there are three). A frame cut inside a tag keeps
 * the tags read whole and the ethertype of the last one read. */
bool decode_packet(uint16_t linktype, const uint8_t *data, uint32_t caplen, decode_flow_t *flow,
                   decode_eth_t *eth);

/* A 64-bit hash of (addresses, protocol, ports), symmetric: both
 * directions of a conversation give the same value. Without ports
 * (fragments, ICMP, ...) only addresses and protocol count, so every
 * fragment of a datagram hashes alike. Reads only the first addr_len
 * (at most 16) bytes of each address, and the ports only when has_ports.
 *
 * The value is fixed across runs, machines and releases (the relay's
 * fan-out of a conversation depends on it): FNV-1a 64 over the bytes
 *   addr_len, proto, A, port A (big-endian), B, port B (big-endian)
 * where (A, port A) is the smaller of the two (address, port) endpoints
 * (addresses compared bytewise, then ports; ports 0 when !has_ports),
 * followed by the splitmix64 finalizer. */
uint64_t decode_flow_hash(const decode_flow_t *flow);

#endif
