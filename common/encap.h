/*
 * encap — what the collector puts around a frame it sends on: an 802.1Q
 * tag after the MAC addresses (VLAN_TAGS), and the GRE, GRETAP or VXLAN
 * header of a tunnel (TUNNEL), with the sizes that decide how much of a
 * frame fits a path MTU. Pure functions over caller-owned buffers: no
 * sockets, no allocation.
 *
 * The outer IPv4 (and UDP) header is the kernel's: GRE goes out of a raw
 * IPPROTO_GRE socket, VXLAN out of a UDP socket, so only the tunnel's own
 * header is built here (RFC 2784/2890 GRE, RFC 7348 VXLAN).
 *
 * Frames come from the network: encap_ip_payload reads them only through
 * its bounds checks and refuses what it cannot place.
 */
#ifndef TAPMESH_ENCAP_H
#define TAPMESH_ENCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENCAP_MAC_LEN 12 /* destination and source MAC addresses */
#define ENCAP_ETHER_LEN 14
#define ENCAP_VLAN_LEN 4
#define ENCAP_IPV4_LEN 20 /* the outer header, without options */
#define ENCAP_UDP_LEN 8
#define ENCAP_VXLAN_LEN 8
#define ENCAP_HDR_MAX 8 /* the longest tunnel header built here (GRE with key, VXLAN) */
#define ENCAP_VXLAN_PORT 4789
#define ENCAP_HOST_MAX 255

#define ENCAP_ETH_IPV4 0x0800
#define ENCAP_ETH_IPV6 0x86DD
#define ENCAP_ETH_8021Q 0x8100
#define ENCAP_ETH_8021AD 0x88A8
#define ENCAP_ETH_BRIDGE 0x6558 /* GRE protocol type of an Ethernet frame (GRETAP) */

typedef enum { ENCAP_GRETAP = 0, ENCAP_GRE = 1, ENCAP_VXLAN = 2 } encap_kind_t;

/* A tunnel as TUNNEL names it (encap_tunnel_parse). */
typedef struct {
    encap_kind_t kind;
    char host[ENCAP_HOST_MAX + 1]; /* IPv4 address or host name */
    uint16_t port;                 /* VXLAN's UDP port (4789); 0 for GRE */
    bool has_key;                  /* GRE, GRETAP: a key field is sent */
    uint32_t key;
    uint32_t vni; /* VXLAN: 24 bits */
} encap_tunnel_t;

/* Parses "gretap://HOST[?key=N]", "gre://HOST[?key=N]" or
 * "vxlan://HOST[:PORT][?vni=N]" (key: 0..4294967295; vni: 0..16777215,
 * default 0; port 1..65535, default 4789). Returns 0 and fills *t, or
 * -EINVAL with `why` saying what is wrong. */
int encap_tunnel_parse(const char *text, encap_tunnel_t *t, char *why, size_t whylen);

/* The name of a kind: "gretap", "gre", "vxlan". */
const char *encap_kind_name(encap_kind_t kind);

/* Builds the tunnel header into `out` (ENCAP_HDR_MAX bytes): GRE or
 * GRETAP, 4 bytes (flags 0, version 0, protocol type `proto`) or 8 with the
 * K bit and the key; VXLAN, 8 bytes (I flag, VNI; `proto` unused). Returns
 * its length. */
size_t encap_header(const encap_tunnel_t *t, uint16_t proto, uint8_t *out);

/* Bytes the tunnel adds around what it carries, outer IPv4 header
 * included: 24 or 28 for GRE (with key), 36 for VXLAN (IPv4, UDP, VXLAN). */
size_t encap_overhead(const encap_tunnel_t *t);

/* The longest payload (inner frame or packet) an outer IPv4 packet of at
 * most `mtu` bytes carries in this tunnel; 0 when the MTU leaves no room. */
size_t encap_payload_max(const encap_tunnel_t *t, size_t mtu);

/* Where the IP packet of an Ethernet frame starts: after the MAC
 * addresses and any 802.1Q/802.1ad tags. Returns 0 with *off and *proto
 * (0x0800 or 0x86DD) set; -EPROTONOSUPPORT when the frame carries
 * something else (ARP, ...); -EINVAL when it is too short to tell. */
int encap_ip_payload(const uint8_t *frame, size_t len, size_t *off, uint16_t *proto);

/* The GRE protocol type of a raw IP packet (LINKTYPE_RAW): from its
 * version nibble. Returns 0x0800, 0x86DD, or 0 when it is neither. */
uint16_t encap_raw_proto(const uint8_t *pkt, size_t len);

/* Writes `frame` with an 802.1Q tag (TPID 0x8100, TCI = `tci`: priority,
 * DEI and VLAN id) after its MAC addresses into `out`, keeping at most
 * `max` bytes of the result. The frame must hold the MAC addresses
 * (ENCAP_MAC_LEN) and `max` must keep them and the tag. Returns the length
 * written, or -EINVAL (frame too short, max too small) / -ENOBUFS (outcap
 * below the result). */
long encap_vlan_insert(uint8_t *out, size_t outcap, const uint8_t *frame, size_t len, uint16_t tci,
                       size_t max);

/* One entry of VLAN_TAGS: the node id of a source and its VLAN id. */
typedef struct {
    char source[65]; /* WIRE_NAME_MAX + 1 */
    uint16_t vid;
} encap_vlan_tag_t;

/* Parses VLAN_TAGS, "node:vid[,node:vid]..." (node ids as NODE_ID allows;
 * vid 1..4094; each node once; blanks around items ignored), into `tags`
 * (at most `max`). Returns the number of entries (0 for empty text), or
 * -EINVAL with `why` naming the bad item. */
int encap_vlan_tags_parse(const char *text, encap_vlan_tag_t *tags, size_t max, char *why,
                          size_t whylen);

#endif
