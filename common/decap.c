/*
 * decap — the inner frame of a tunnelled mirror frame (decap.h). Every
 * header is read through a bytes_t reader bounded by the captured bytes;
 * the inner frame's lengths are bounded again by what the outer IP and UDP
 * headers say, so that Ethernet padding after a short outer packet is not
 * taken for inner bytes.
 */
#include "decap.h"

#include "bytes.h"
#include "clock.h"

#include <string.h>

#define S_ETH_IPV4 0x0800
#define S_ETH_IPV6 0x86DD
#define S_ETH_VLAN 0x8100
#define S_ETH_QINQ 0x88A8
#define S_GRE_TEB 0x6558     /* transparent Ethernet bridging: GRETAP */
#define S_GRE_ERSPAN2 0x88BE /* ERSPAN types I and II */
#define S_GRE_ERSPAN3 0x22EB
#define S_VXLAN_PORT 4789
#define S_IPPROTO_UDP 17
#define S_IPPROTO_GRE 47
#define S_NS 1000000000ull

/* Where the outer IP packet's payload is: [off, end) within the frame,
 * `end` as the IP header says (may exceed what was captured). */
typedef struct {
    uint32_t off;
    uint64_t end;
    uint8_t proto;
} s_l4_t;

/* The ethertype and offset of the network layer under the link layer. */
static decap_reason_t s_link(int linktype, const uint8_t *pkt, uint32_t caplen, uint16_t *type,
                             uint32_t *off)
{
    bytes_t b = bytes_view(pkt, caplen);
    switch (linktype) {
    case 1: { /* ETHERNET */
        bytes_skip(&b, 12);
        uint16_t t = bytes_u16(&b);
        for (int tags = 0; tags < 2 && (t == S_ETH_VLAN || t == S_ETH_QINQ); tags++) {
            bytes_skip(&b, 2);
            t = bytes_u16(&b);
        }
        *type = t;
        break;
    }
    case 113: /* LINUX_SLL: protocol at 14, header 16 */
        bytes_skip(&b, 14);
        *type = bytes_u16(&b);
        break;
    case 276: /* LINUX_SLL2: protocol at 0, header 20 */
        *type = bytes_u16(&b);
        bytes_skip(&b, 18);
        break;
    case 101: /* RAW: the version nibble says */
        if (caplen < 1)
            return DECAP_OUTER;
        *type = (pkt[0] >> 4) == 6 ? S_ETH_IPV6 : S_ETH_IPV4;
        break;
    case 228:
        *type = S_ETH_IPV4;
        break;
    case 229:
        *type = S_ETH_IPV6;
        break;
    default:
        return DECAP_OUTER;
    }
    if (b.bad)
        return DECAP_OUTER;
    *off = (uint32_t)(b.pos - pkt);
    return DECAP_OK;
}

static decap_reason_t s_ipv4(const uint8_t *pkt, uint32_t caplen, uint32_t off, s_l4_t *l4)
{
    bytes_t b = bytes_view(pkt + off, caplen - off);
    uint8_t vihl = bytes_u8(&b);
    bytes_skip(&b, 1);
    uint16_t total = bytes_u16(&b);
    bytes_skip(&b, 2);
    uint16_t frag = bytes_u16(&b);
    bytes_skip(&b, 1);
    uint8_t proto = bytes_u8(&b);
    uint32_t ihl = (uint32_t)(vihl & 0x0f) * 4;
    if (b.bad || vihl >> 4 != 4 || ihl < 20 || total < ihl || (uint64_t)off + ihl > caplen)
        return DECAP_OUTER;
    if (frag & 0x3fff) /* MF or an offset */
        return DECAP_FRAGMENT;
    l4->off = off + ihl;
    l4->end = (uint64_t)off + total;
    l4->proto = proto;
    return DECAP_OK;
}

static decap_reason_t s_ipv6(const uint8_t *pkt, uint32_t caplen, uint32_t off, s_l4_t *l4)
{
    bytes_t b = bytes_view(pkt + off, caplen - off);
    uint8_t v = bytes_u8(&b);
    bytes_skip(&b, 3);
    uint16_t plen = bytes_u16(&b);
    uint8_t next = bytes_u8(&b);
    bytes_skip(&b, 33);
    if (b.bad || v >> 4 != 6 || plen == 0) /* 0: a jumbogram, not mirrored traffic */
        return DECAP_OUTER;
    /* hop-by-hop, routing and destination options come before the payload */
    for (int i = 0; i < 8 && (next == 0 || next == 43 || next == 60); i++) {
        next = bytes_u8(&b);
        uint8_t len = bytes_u8(&b);
        bytes_skip(&b, (size_t)len * 8 + 6);
    }
    if (b.bad)
        return DECAP_OUTER;
    if (next == 44)
        return DECAP_FRAGMENT;
    l4->off = (uint32_t)(b.pos - pkt);
    l4->end = (uint64_t)off + 40 + plen;
    if (l4->off > l4->end)
        return DECAP_OUTER;
    l4->proto = next;
    return DECAP_OK;
}

/* The inner frame from `off` to `end` (as the outer headers say), cut at
 * what was captured. */
static decap_reason_t s_inner(const uint8_t *pkt, uint32_t caplen, uint32_t off, uint64_t end,
                              decap_t *out)
{
    if (off > caplen || off > end)
        return DECAP_HEADER;
    uint64_t cap_end = end < caplen ? end : caplen;
    out->data = pkt + off;
    out->caplen = (uint32_t)(cap_end - off);
    out->origlen = (uint32_t)(end - off > UINT32_MAX ? UINT32_MAX : end - off);
    return DECAP_OK;
}

static decap_reason_t s_vxlan(const uint8_t *pkt, uint32_t caplen, const s_l4_t *l4, decap_t *out)
{
    bytes_t b = bytes_view(pkt + l4->off, caplen - l4->off);
    bytes_skip(&b, 2);
    uint16_t dport = bytes_u16(&b);
    uint16_t ulen = bytes_u16(&b);
    bytes_skip(&b, 2);
    if (b.bad)
        return DECAP_OUTER;
    if (dport != S_VXLAN_PORT)
        return DECAP_OTHER;
    uint8_t flags = bytes_u8(&b);
    bytes_skip(&b, 3);
    uint32_t vni = (uint32_t)bytes_be(&b, 3);
    bytes_skip(&b, 1);
    /* the I flag says the VNI is valid (RFC 7348); the reserved bits are
     * ignored on receipt */
    if (b.bad || !(flags & 0x08) || ulen < 16)
        return DECAP_HEADER;
    uint64_t end = (uint64_t)l4->off + ulen;
    if (end > l4->end)
        end = l4->end;
    out->found = DECAP_VXLAN;
    out->has_id = true;
    out->id = vni;
    return s_inner(pkt, caplen, (uint32_t)(b.pos - pkt), end, out);
}

/* ERSPAN's own header after GRE: type II (8 bytes) or III (12, plus 8 of
 * platform sub-header when O is set). Moves *b past it. */
static decap_reason_t s_erspan(bytes_t *b, uint16_t proto, bool has_seq, decap_t *out)
{
    out->found = DECAP_ERSPAN;
    if (proto == S_GRE_ERSPAN2 && !has_seq) {
        out->erspan_type = 1; /* no ERSPAN header at all (Wireshark's type I) */
        return DECAP_OK;
    }
    uint16_t ver_vlan = bytes_u16(b);
    uint16_t cos_session = bytes_u16(b);
    unsigned ver = ver_vlan >> 12;
    out->has_id = true;
    out->id = cos_session & 0x3ff;
    if (proto == S_GRE_ERSPAN2) {
        bytes_skip(b, 4); /* reserved, index */
        if (b->bad || ver != 1)
            return DECAP_HEADER;
        out->erspan_type = 2;
        return DECAP_OK;
    }
    uint32_t ts = bytes_u32(b);
    bytes_skip(b, 2); /* SGT */
    uint16_t bits = bytes_u16(b);
    if (b->bad || ver != 2)
        return DECAP_HEADER;
    unsigned ft = (bits >> 10) & 0x1f;
    out->erspan_type = 3;
    out->erspan_ts = ts;
    out->erspan_gra = (uint8_t)((bits >> 1) & 3);
    if (bits & 1) {
        uint32_t w0 = bytes_u32(b);
        uint32_t w1 = bytes_u32(b);
        if (b->bad)
            return DECAP_HEADER;
        unsigned platf = w0 >> 26;
        if (platf == 3 || platf == 5 || platf == 6 || platf == 7) {
            out->erspan_has_upper = true;
            out->erspan_upper = w1;
        }
    }
    if (ft == 2) {
        out->inner_ip = true;
    } else if (ft != 0) {
        return DECAP_HEADER;
    }
    return DECAP_OK;
}

static bool s_gre_wanted(decap_kind_t kind, uint16_t proto)
{
    switch (kind) {
    case DECAP_GRETAP:
        return proto == S_GRE_TEB;
    case DECAP_GRE:
        return proto == S_ETH_IPV4 || proto == S_ETH_IPV6;
    case DECAP_ERSPAN:
        return proto == S_GRE_ERSPAN2 || proto == S_GRE_ERSPAN3;
    case DECAP_AUTO:
        return proto == S_GRE_TEB || proto == S_ETH_IPV4 || proto == S_ETH_IPV6 ||
               proto == S_GRE_ERSPAN2 || proto == S_GRE_ERSPAN3;
    default:
        return false;
    }
}

static decap_reason_t s_gre(decap_kind_t kind, const uint8_t *pkt, uint32_t caplen,
                            const s_l4_t *l4, decap_t *out)
{
    bytes_t b = bytes_view(pkt + l4->off, caplen - l4->off);
    uint16_t flags = bytes_u16(&b);
    uint16_t proto = bytes_u16(&b);
    if (b.bad)
        return DECAP_HEADER;
    if (!s_gre_wanted(kind, proto))
        return DECAP_OTHER;
    /* version 0 only (1 is PPTP's enhanced GRE); routing (R) and strict
     * source routing are RFC 1701's, deprecated by RFC 2784 */
    if ((flags & 7) != 0 || (flags & 0x4000) || (flags & 0x0800))
        return DECAP_HEADER;
    bool has_key = flags & 0x2000, has_seq = flags & 0x1000;
    if (flags & 0x8000)
        bytes_skip(&b, 4); /* checksum, reserved */
    uint32_t key = has_key ? bytes_u32(&b) : 0;
    if (has_seq)
        bytes_skip(&b, 4);
    if (b.bad)
        return DECAP_HEADER;
    if (proto == S_GRE_ERSPAN2 || proto == S_GRE_ERSPAN3) {
        decap_reason_t r = s_erspan(&b, proto, has_seq, out);
        if (r != DECAP_OK || b.bad)
            return DECAP_HEADER;
    } else {
        out->found = proto == S_GRE_TEB ? DECAP_GRETAP : DECAP_GRE;
        out->inner_ip = proto != S_GRE_TEB;
        out->has_id = has_key;
        out->id = key;
    }
    decap_reason_t r = s_inner(pkt, caplen, (uint32_t)(b.pos - pkt), l4->end, out);
    if (r != DECAP_OK || !out->inner_ip)
        return r;
    /* an inner IP packet: its version says which */
    if (out->caplen < 1)
        return DECAP_HEADER;
    unsigned v = out->data[0] >> 4;
    if (proto == S_ETH_IPV4 || proto == S_ETH_IPV6) {
        if (v != (proto == S_ETH_IPV4 ? 4u : 6u))
            return DECAP_HEADER;
    } else if (v != 4 && v != 6) {
        return DECAP_HEADER;
    }
    out->ethertype = v == 4 ? S_ETH_IPV4 : S_ETH_IPV6;
    return DECAP_OK;
}

decap_reason_t decap_frame(decap_kind_t kind, int linktype, const uint8_t *pkt, uint32_t caplen,
                           uint32_t origlen, decap_t *out)
{
    memset(out, 0, sizeof *out);
    if (kind == DECAP_OFF || !pkt)
        return DECAP_OTHER;
    (void)origlen; /* the outer IP header's length is the authority */
    uint16_t type = 0;
    uint32_t off = 0;
    decap_reason_t r = s_link(linktype, pkt, caplen, &type, &off);
    if (r != DECAP_OK)
        return r;
    s_l4_t l4;
    if (type == S_ETH_IPV4)
        r = s_ipv4(pkt, caplen, off, &l4);
    else if (type == S_ETH_IPV6)
        r = s_ipv6(pkt, caplen, off, &l4);
    else
        return DECAP_OTHER; /* ARP and the like: not a tunnel */
    if (r != DECAP_OK)
        return r;
    if (l4.proto == S_IPPROTO_UDP && (kind == DECAP_VXLAN || kind == DECAP_AUTO))
        r = s_vxlan(pkt, caplen, &l4, out);
    else if (l4.proto == S_IPPROTO_GRE && kind != DECAP_VXLAN)
        r = s_gre(kind, pkt, caplen, &l4, out);
    else
        r = DECAP_OTHER;
    if (r != DECAP_OK)
        memset(out, 0, sizeof *out);
    return r;
}

bool decap_erspan_ts(const decap_t *d, uint64_t capture_ns, uint64_t *ts_ns)
{
    if (d->erspan_type != 3)
        return false;
    uint64_t unit;
    switch (d->erspan_gra) {
    case 0:
        unit = 100000; /* 100 us */
        break;
    case 1:
        unit = 100; /* 100 ns */
        break;
    case 2: /* IEEE 1588: seconds (upper) and nanoseconds (header) */
        if (d->erspan_ts >= S_NS)
            return false;
        if (d->erspan_has_upper)
            *ts_ns = (uint64_t)d->erspan_upper * S_NS + d->erspan_ts;
        else
            *ts_ns = clock_nearest(d->erspan_ts, S_NS, capture_ns);
        return true;
    default:
        return false;
    }
    if (d->erspan_has_upper) {
        uint64_t units = (uint64_t)d->erspan_upper << 32 | d->erspan_ts;
        if (units > UINT64_MAX / unit)
            return false;
        *ts_ns = units * unit;
        return true;
    }
    /* (capture_ns / unit) keeps the result a whole number of units */
    *ts_ns = clock_nearest(d->erspan_ts, 1ull << 32, capture_ns / unit) * unit;
    return true;
}

int decap_linktype(decap_kind_t kind)
{
    return kind == DECAP_GRE ? 101 : 1;
}

void decap_ethernet_header(uint16_t ethertype, uint8_t out[14])
{
    memset(out, 0, 12);
    out[12] = (uint8_t)(ethertype >> 8);
    out[13] = (uint8_t)ethertype;
}

const char *decap_filter(decap_kind_t kind)
{
    switch (kind) {
    case DECAP_VXLAN:
        return "udp dst port 4789";
    case DECAP_GRETAP:
    case DECAP_GRE:
    case DECAP_ERSPAN:
        return "ip proto 47 or ip6 proto 47";
    case DECAP_AUTO:
        return "udp dst port 4789 or ip proto 47 or ip6 proto 47";
    default:
        return "";
    }
}

const char *decap_kind_name(decap_kind_t kind)
{
    static const char *const names[] = {"off", "vxlan", "gretap", "gre", "erspan", "auto"};
    return (unsigned)kind < sizeof names / sizeof *names ? names[kind] : "?";
}

const char *decap_reason_name(decap_reason_t reason)
{
    static const char *const names[] = {"ok", "outer", "fragment", "other", "header", "id"};
    return (unsigned)reason < sizeof names / sizeof *names ? names[reason] : "?";
}

const char *decap_id_name(decap_kind_t found)
{
    switch (found) {
    case DECAP_VXLAN:
        return "vni";
    case DECAP_ERSPAN:
        return "session";
    default:
        return "key";
    }
}
