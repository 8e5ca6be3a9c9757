/*
 * decap — mirrored traffic arrives in a tunnel: VXLAN (UDP 4789, as AWS VPC
 * Traffic Mirroring sends it, RFC 7348), GRETAP (GRE protocol 0x6558), GRE
 * carrying IP (RFC 2784/2890) and ERSPAN types I, II (GRE 0x88BE) and III
 * (GRE 0x22EB; draft-foschiano-erspan). Given one captured frame of the
 * capture's link type, this finds the frame inside: an Ethernet frame, or an
 * IP packet for GRE carrying IP and ERSPAN III frame type IP. Pure: no
 * allocation, no state, nothing read outside [pkt, pkt + caplen).
 */
#ifndef TAPMESH_DECAP_H
#define TAPMESH_DECAP_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    DECAP_OFF = 0,
    DECAP_VXLAN,
    DECAP_GRETAP,
    DECAP_GRE, /* GRE carrying IPv4 or IPv6 */
    DECAP_ERSPAN,
    DECAP_AUTO, /* any of the above */
} decap_kind_t;

/* Why a frame gave no inner frame: the label of
 * tapmesh_capture_decap_dropped_packets_total{reason=...}. */
typedef enum {
    DECAP_OK = 0,
    DECAP_OUTER,    /* "outer": no IPv4/IPv6 under a known link type, or cut short */
    DECAP_FRAGMENT, /* "fragment": an outer IP fragment (not reassembled) */
    DECAP_OTHER,    /* "other": not the encapsulation asked for */
    DECAP_HEADER,   /* "header": a tunnel header cut short, or bad version or flags */
    DECAP_ID,       /* "id": another VNI, key or session than DECAP_ID (decided by the caller) */
    DECAP_NREASONS,
} decap_reason_t;

typedef struct {
    decap_kind_t found;    /* DECAP_VXLAN, DECAP_GRETAP, DECAP_GRE or DECAP_ERSPAN */
    const uint8_t *data;   /* the inner frame, inside the caller's buffer */
    uint32_t caplen;       /* its captured bytes */
    uint32_t origlen;      /* its length on the wire, as the outer headers say */
    bool inner_ip;         /* an IP packet with no link-layer header */
    uint16_t ethertype;    /* inner_ip: 0x0800 or 0x86DD */
    bool has_id;           /* a VNI, GRE key or ERSPAN session id is there */
    uint32_t id;           /* VXLAN VNI (24 bits), GRE key, ERSPAN session id (10 bits) */
    uint8_t erspan_type;   /* 1, 2 or 3 with ERSPAN; 0 otherwise */
    uint8_t erspan_gra;    /* type III: timestamp granularity (0 100 us, 1 100 ns, 2 IEEE
                            * 1588, 3 user-defined) */
    uint32_t erspan_ts;    /* type III: the header's 32-bit timestamp */
    bool erspan_has_upper; /* type III: a platform sub-header holds the upper 32 bits */
    uint32_t erspan_upper; /* (platform ids 3 and 7; seconds for ids 5 and 6) */
} decap_t;

/* Finds the inner frame of `pkt` (`caplen` bytes captured of `origlen`),
 * a frame of LINKTYPE_ `linktype` (ETHERNET 1 with up to two VLAN tags,
 * RAW 101, IPV4 228, IPV6 229, LINUX_SLL 113, LINUX_SLL2 276), tunnelled as
 * `kind` asks (DECAP_AUTO: any). Returns DECAP_OK with *out filled, or the
 * reason (never DECAP_ID, which is the caller's). */
decap_reason_t decap_frame(decap_kind_t kind, int linktype, const uint8_t *pkt, uint32_t caplen,
                           uint32_t origlen, decap_t *out);

/* The switch's timestamp of an ERSPAN III frame in nanoseconds since the
 * epoch, into *ts_ns. With the upper 32 bits in a platform sub-header the
 * 64-bit count of granularity units (100 us, 100 ns) is the time since the
 * epoch; with IEEE 1588 the upper word is the seconds and the header's
 * timestamp the nanoseconds. Without the upper word the header's 32 bits
 * wrap (100 ns: every 429 s; 100 us: every 4.97 days; 1588: every second),
 * so the time is the one with those low bits nearest to `capture_ns`.
 * Returns false when the frame carries no usable timestamp (not type III,
 * user-defined granularity, nanoseconds of a second above 999999999). */
bool decap_erspan_ts(const decap_t *d, uint64_t capture_ns, uint64_t *ts_ns);

/* The link type of the inner frames a kind delivers: LINKTYPE_RAW (101)
 * for DECAP_GRE, LINKTYPE_ETHERNET (1) otherwise (where an inner IP packet
 * is then given an Ethernet header: decap_ethernet_header). */
int decap_linktype(decap_kind_t kind);

/* The 14-byte Ethernet header put before an inner IP packet when the
 * output is Ethernet (DECAP_AUTO, ERSPAN III frame type IP): zero
 * addresses and the packet's ethertype. */
void decap_ethernet_header(uint16_t ethertype, uint8_t out[14]);

/* A BPF expression that passes the kind's outer frames ("" for DECAP_OFF). */
const char *decap_filter(decap_kind_t kind);

/* "vxlan", "gretap"... and the reason labels ("outer", "header"...). */
const char *decap_kind_name(decap_kind_t kind);
const char *decap_reason_name(decap_reason_t reason);

/* What the id is called for the kind found: "vni", "key", "session". */
const char *decap_id_name(decap_kind_t found);

#endif
