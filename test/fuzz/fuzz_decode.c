/*
 * fuzz_decode — libFuzzer target for the network-layer decoder (decode.h).
 *
 * data[0..1] (big-endian) modulo the table below picks the link type: every
 * supported one plus one the decoder does not know; data[2..] is the packet,
 * its length the caplen. decode_family, decode_flow and decode_flow_hash all
 * run on it, and on a prefix of it (the same two bytes, divided by the table
 * size, pick the prefix's length). A broken property calls abort(), so the
 * fuzzer and replay.c both see it:
 *   - decode_flow's result, its family and decode_family agree;
 *   - an IP flow has addr_len 4 (IPv4) or 16 (IPv6), a non-IP flow is all 0;
 *   - ports only with TCP, UDP, SCTP or UDP-Lite, and 0 without has_ports;
 *   - the hash is the same for the flow reversed;
 *   - decode_packet gives decode_flow's flow, and an Ethernet header only
 *     for Ethernet, with a VLAN id of 12 bits and none without a tag;
 *   - what a prefix shows holds for the whole packet: its family and
 *     addresses, its proto once known (IPv6 reports 0 while the extension
 *     headers are cut short), its ports. A decoder that accepted a header
 *     missing its last bytes would break this.
 */
#include "decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t s_linktypes[] = {
    1,   /* ETHERNET */
    101, /* RAW */
    228, /* IPV4 */
    229, /* IPV6 */
    113, /* LINUX_SLL */
    276, /* LINUX_SLL2 */
    0,   /* NULL */
    108, /* LOOP */
    105, /* IEEE802_11: not supported */
};

#define S_NLINKTYPES (sizeof s_linktypes / sizeof s_linktypes[0])

static bool s_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* Decodes one packet, checks every property of a single flow, returns it. */
static decode_flow_t s_decode(uint16_t linktype, const uint8_t *pkt, uint32_t caplen)
{
    decode_family_t family = decode_family(linktype, pkt, caplen);
    decode_flow_t f;
    bool ok = decode_flow(linktype, pkt, caplen, &f);
    if (f.family != family || ok != (family != DECODE_OTHER))
        abort();
    switch (f.family) {
    case DECODE_IPV4:
        if (f.addr_len != 4 || !s_zero(f.src + 4, 12) || !s_zero(f.dst + 4, 12))
            abort();
        break;
    case DECODE_IPV6:
        if (f.addr_len != 16)
            abort();
        break;
    case DECODE_OTHER:
        if (f.proto || f.addr_len || f.has_ports || f.sport || f.dport || !s_zero(f.src, 16) ||
            !s_zero(f.dst, 16))
            abort();
        break;
    default:
        abort();
    }
    if (f.has_ports && f.proto != 6 && f.proto != 17 && f.proto != 132 && f.proto != 136)
        abort();
    if (!f.has_ports && (f.sport || f.dport))
        abort();

    decode_flow_t g;
    decode_eth_t e;
    if (decode_packet(linktype, pkt, caplen, &g, &e) != ok || memcmp(&g, &f, sizeof g) != 0)
        abort();
    if ((e.present && (linktype != 1 || caplen < 14)) || e.vlan > 0x0fff ||
        (!e.has_vlan && e.vlan) || (!e.present && (e.has_vlan || e.ethertype)))
        abort();

    decode_flow_t r = f;
    memcpy(r.src, f.dst, sizeof r.src);
    memcpy(r.dst, f.src, sizeof r.dst);
    r.sport = f.dport;
    r.dport = f.sport;
    if (decode_flow_hash(&f) != decode_flow_hash(&r))
        abort();
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size - 2 > UINT32_MAX)
        return 0;
    unsigned sel = (unsigned)data[0] << 8 | data[1];
    uint16_t linktype = s_linktypes[sel % S_NLINKTYPES];
    const uint8_t *pkt = data + 2;
    uint32_t caplen = (uint32_t)(size - 2);
    uint32_t cut = (uint32_t)(sel / S_NLINKTYPES) % (caplen + 1);

    decode_flow_t whole = s_decode(linktype, pkt, caplen);
    decode_flow_t part = s_decode(linktype, pkt, cut);
    decode_flow_t f;
    decode_eth_t ew, ep;
    decode_packet(linktype, pkt, caplen, &f, &ew);
    decode_packet(linktype, pkt, cut, &f, &ep);
    /* the prefix's Ethernet header, when it has one, is the whole's */
    if (ep.present && (!ew.present || memcmp(ep.src, ew.src, 6) || memcmp(ep.dst, ew.dst, 6) ||
                       (ep.has_vlan && (!ew.has_vlan || ep.vlan != ew.vlan))))
        abort();
    if (part.family == DECODE_OTHER)
        return 0;
    if (whole.family != part.family || memcmp(whole.src, part.src, sizeof part.src) != 0 ||
        memcmp(whole.dst, part.dst, sizeof part.dst) != 0)
        abort();
    if (part.proto != whole.proto && !(part.family == DECODE_IPV6 && part.proto == 0))
        abort();
    if (part.has_ports &&
        (!whole.has_ports || part.sport != whole.sport || part.dport != whole.dport))
        abort();
    return 0;
}
