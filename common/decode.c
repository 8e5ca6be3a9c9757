/*
 * decode — the network layer of a captured packet, for the capture agent's
 * per-family packet-size histogram, the relay's symmetric flow-hash
 * fan-out and the event streams (with the Ethernet header). Every read goes through bytes_t, which
 * carries a position and an end (data + caplen) and latches the first short read; no struct is ever
 * laid over a packet.
 */
#include "decode.h"

#include "bytes.h"

#include <string.h>

/* LINKTYPE_ values (tcpdump.org/linktypes.html) */
enum {
    S_LT_NULL = 0,
    S_LT_ETHERNET = 1,
    S_LT_RAW = 101,
    S_LT_LOOP = 108,
    S_LT_LINUX_SLL = 113,
    S_LT_IPV4 = 228,
    S_LT_IPV6 = 229,
    S_LT_LINUX_SLL2 = 276,
};

#define S_VLAN_MAX 2 /* tags skipped in front of the ethertype */
#define S_EXT_MAX 8  /* IPv6 extension headers walked */

/* ---- link layer ------------------------------------------------------ */

static decode_family_t s_ethertype(uint16_t type)
{
    switch (type) {
    case 0x0800:
        return DECODE_IPV4;
    case 0x86DD:
        return DECODE_IPV6;
    default:
        return DECODE_OTHER;
    }
}

static bool s_vlan(uint16_t type)
{
    return type == 0x8100 || type == 0x88A8 || type == 0x9100;
}

/* BSD address families: AF_INET is 2 everywhere, AF_INET6 differs by OS
 * (Linux 10, OpenBSD/NetBSD 24, FreeBSD 28, macOS 30). */
static decode_family_t s_af(uint32_t af)
{
    switch (af) {
    case 2:
        return DECODE_IPV4;
    case 10:
    case 24:
    case 28:
    case 30:
        return DECODE_IPV6;
    default:
        return DECODE_OTHER;
    }
}

static uint32_t s_swap32(uint32_t v)
{
    return v >> 24 | (v >> 8 & 0xff00u) | (v << 8 & 0xff0000u) | v << 24;
}

/* Moves r past the link-layer header of `linktype`; returns the family that
 * header announces, DECODE_OTHER when it is not IP, not supported or cut
 * short. RAW announces nothing: the IP version nibble decides. */
static decode_family_t s_link(bytes_t *r, uint16_t linktype, decode_eth_t *eth)
{
    decode_family_t family = DECODE_OTHER;
    switch (linktype) {
    case S_LT_ETHERNET: {
        uint8_t macs[12];
        bytes_copy(r, macs, 12); /* destination, source */
        uint16_t type = bytes_u16(r);
        if (!r->bad && eth) {
            eth->present = true;
            memcpy(eth->dst, macs, 6);
            memcpy(eth->src, macs + 6, 6);
            eth->ethertype = type;
        }
        for (int i = 0; i < S_VLAN_MAX && s_vlan(type); i++) {
            uint16_t tci = bytes_u16(r);
            type = bytes_u16(r);
            if (r->bad || !eth)
                continue; /* bad: the loop ends on a type of 0 */
            if (!eth->has_vlan) {
                eth->has_vlan = true;
                eth->vlan = tci & 0x0fff;
            }
            eth->ethertype = type;
        }
        family = s_ethertype(type); /* a third tag is OTHER */
        break;
    }
    case S_LT_RAW:
        if (bytes_need(r, 1))
            family = r->pos[0] >> 4 == 4 ? DECODE_IPV4 : r->pos[0] >> 4 == 6 ? DECODE_IPV6 : family;
        break;
    case S_LT_IPV4:
        family = DECODE_IPV4;
        break;
    case S_LT_IPV6:
        family = DECODE_IPV6;
        break;
    case S_LT_LINUX_SLL:
        bytes_skip(r, 14); /* packet type, ARPHRD, address length, address */
        family = s_ethertype(bytes_u16(r));
        break;
    case S_LT_LINUX_SLL2:
        family = s_ethertype(bytes_u16(r));
        bytes_skip(r, 18); /* reserved, ifindex, ARPHRD, type, address length, address */
        break;
    case S_LT_NULL: {
        /* host byte order of the capturing machine, which the file does not
         * say: the two readings never both name a family */
        uint32_t af = bytes_u32(r);
        family = s_af(af) != DECODE_OTHER ? s_af(af) : s_af(s_swap32(af));
        break;
    }
    case S_LT_LOOP:
        family = s_af(bytes_u32(r));
        break;
    default:
        break;
    }
    return r->bad ? DECODE_OTHER : family;
}

/* ---- network layer --------------------------------------------------- */

static bool s_port_proto(uint8_t proto)
{
    return proto == 6 || proto == 17 || proto == 132 || proto == 136;
}

/* The first 4 bytes of every port protocol's header: source, destination. */
static void s_ports(bytes_t *r, decode_flow_t *flow)
{
    if (!s_port_proto(flow->proto) || !bytes_need(r, 4))
        return;
    flow->sport = bytes_u16(r);
    flow->dport = bytes_u16(r);
    flow->has_ports = true;
}

/* RFC 791. Returns false unless version 4, IHL >= 5 and the whole header
 * (options included) is within the buffer. Total length is not checked:
 * offloaded captures carry 0 there. */
static bool s_ipv4(bytes_t *r, decode_flow_t *flow, bool l4)
{
    if (!bytes_need(r, 1))
        return false;
    uint8_t vihl = r->pos[0];
    size_t hlen = (size_t)(vihl & 0x0f) * 4;
    if (vihl >> 4 != 4 || hlen < 20 || !bytes_need(r, hlen))
        return false;
    bytes_skip(r, 6); /* version/IHL, TOS, total length, identification */
    uint16_t frag = bytes_u16(r);
    bytes_skip(r, 1); /* TTL */
    flow->proto = bytes_u8(r);
    bytes_skip(r, 2); /* checksum */
    bytes_copy(r, flow->src, 4);
    bytes_copy(r, flow->dst, 4);
    bytes_skip(r, hlen - 20); /* options */
    flow->family = DECODE_IPV4;
    flow->addr_len = 4;
    bool fragment = (frag & 0x2000) != 0 || (frag & 0x1fff) != 0; /* MF, offset */
    if (l4 && !fragment)
        s_ports(r, flow);
    return true;
}

static bool s_ipv6_ext(uint8_t next)
{
    return next == 0 || next == 43 || next == 44 || next == 51 || next == 60;
}

/* RFC 8200. Returns false unless version 6 and the fixed 40-byte header is
 * within the buffer. With `l4`, walks the extension headers to the final
 * next header. */
static bool s_ipv6(bytes_t *r, decode_flow_t *flow, bool l4)
{
    if (!bytes_need(r, 40) || r->pos[0] >> 4 != 6)
        return false;
    bytes_skip(r, 6); /* version, traffic class, flow label, payload length */
    uint8_t next = bytes_u8(r);
    bytes_skip(r, 1); /* hop limit */
    bytes_copy(r, flow->src, 16);
    bytes_copy(r, flow->dst, 16);
    flow->family = DECODE_IPV6;
    flow->addr_len = 16;
    if (!l4)
        return true;
    bool fragment = false;
    for (int n = 0; s_ipv6_ext(next); n++) {
        if (n == S_EXT_MAX)
            return true; /* proto unknown */
        uint8_t nh = bytes_u8(r);
        uint8_t len = bytes_u8(r);
        size_t size = next == 44 ? 8 : next == 51 ? ((size_t)len + 2) * 4 : ((size_t)len + 1) * 8;
        bytes_skip(r, size - 2);
        if (r->bad)
            return true; /* proto unknown */
        /* Past a Fragment header a later fragment holds payload, not headers;
         * stopping here gives every fragment the same proto, hence hash. */
        fragment = next == 44;
        next = nh;
        if (fragment)
            break;
    }
    flow->proto = next;
    if (!fragment)
        s_ports(r, flow);
    return true;
}

/* decode_flow, with the layer-4 part (extension headers, ports) only when
 * `l4`; the family and the return value do not depend on it. */
static bool s_decode(uint16_t linktype, const uint8_t *data, uint32_t caplen, decode_flow_t *flow,
                     bool l4, decode_eth_t *eth)
{
    memset(flow, 0, sizeof *flow);
    if (eth)
        memset(eth, 0, sizeof *eth);
    bytes_t r = bytes_view(data, caplen);
    /* the parsers write nothing before they accept a header */
    switch (s_link(&r, linktype, eth)) {
    case DECODE_IPV4:
        return s_ipv4(&r, flow, l4);
    case DECODE_IPV6:
        return s_ipv6(&r, flow, l4);
    default:
        return false;
    }
}

/* ---- public ---------------------------------------------------------- */

decode_family_t decode_family(uint16_t linktype, const uint8_t *data, uint32_t caplen)
{
    decode_flow_t flow;
    s_decode(linktype, data, caplen, &flow, false, NULL);
    return flow.family;
}

bool decode_flow(uint16_t linktype, const uint8_t *data, uint32_t caplen, decode_flow_t *flow)
{
    return s_decode(linktype, data, caplen, flow, true, NULL);
}

bool decode_packet(uint16_t linktype, const uint8_t *data, uint32_t caplen, decode_flow_t *flow,
                   decode_eth_t *eth)
{
    return s_decode(linktype, data, caplen, flow, true, eth);
}

#define S_FNV_OFFSET 0xcbf29ce484222325ull
#define S_FNV_PRIME 0x100000001b3ull

static uint64_t s_splitmix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t decode_flow_hash(const decode_flow_t *flow)
{
    size_t n = flow->addr_len < 16 ? flow->addr_len : 16;
    uint16_t sport = flow->has_ports ? flow->sport : 0;
    uint16_t dport = flow->has_ports ? flow->dport : 0;
    int c = memcmp(flow->src, flow->dst, n);
    bool swap = c > 0 || (c == 0 && sport > dport);
    const uint8_t *a = swap ? flow->dst : flow->src, *b = swap ? flow->src : flow->dst;
    uint16_t pa = swap ? dport : sport, pb = swap ? sport : dport;

    uint8_t key[2 + 2 * (16 + 2)];
    size_t len = 0;
    key[len++] = (uint8_t)n;
    key[len++] = flow->proto;
    memcpy(key + len, a, n);
    len += n;
    key[len++] = (uint8_t)(pa >> 8);
    key[len++] = (uint8_t)pa;
    memcpy(key + len, b, n);
    len += n;
    key[len++] = (uint8_t)(pb >> 8);
    key[len++] = (uint8_t)pb;

    uint64_t h = S_FNV_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= S_FNV_PRIME;
    }
    return s_splitmix64(h);
}
