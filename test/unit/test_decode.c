/*
 * test_decode — the network-layer decoder and the flow hash. Packets are
 * written here byte by byte (link header, IP header, extension headers,
 * layer 4) by a small big-endian writer that records where each layer ends,
 * so the decoder is checked against the header layouts, not against itself.
 * Every packet is also decoded at every caplen from 0 to its full length,
 * placed so that its last captured byte is the last byte before a PROT_NONE
 * page: a read past caplen crashes the test in any build, not only under
 * AddressSanitizer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "decode.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* LINKTYPE_ values, written out here rather than taken from the decoder */
#define LT_NULL 0
#define LT_ETHERNET 1
#define LT_RAW 101
#define LT_LOOP 108
#define LT_LINUX_SLL 113
#define LT_IPV4 228
#define LT_IPV6 229
#define LT_LINUX_SLL2 276

#define NEVER SIZE_MAX

/* ---- a guarded buffer ------------------------------------------------ */

static uint8_t *s_page; /* one read-write page followed by a PROT_NONE page */
static size_t s_pagesize;

static int s_setup(void **state)
{
    (void)state;
    s_pagesize = (size_t)sysconf(_SC_PAGESIZE);
    void *p =
        mmap(NULL, 2 * s_pagesize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    s_page = p;
    return mprotect(s_page + s_pagesize, s_pagesize, PROT_NONE);
}

static int s_teardown(void **state)
{
    (void)state;
    munmap(s_page, 2 * s_pagesize);
    return 0;
}

/* The first `n` bytes of `data`, copied so that they end at the guard page. */
static const uint8_t *s_guarded(const uint8_t *data, size_t n)
{
    if (n > s_pagesize)
        fail_msg("packet larger than a page");
    uint8_t *p = s_page + s_pagesize - n;
    if (n)
        memcpy(p, data, n);
    return p;
}

/* ---- a big-endian packet writer -------------------------------------- */

typedef struct {
    uint8_t b[2048];
    size_t len;
} s_pkt_t;

static void s_be(s_pkt_t *p, uint64_t v, size_t n)
{
    if (sizeof p->b - p->len < n)
        fail_msg("test packet overflow");
    for (size_t i = 0; i < n; i++)
        p->b[p->len + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    p->len += n;
}

static void s_u8(s_pkt_t *p, uint8_t v)
{
    s_be(p, v, 1);
}

static void s_u16(s_pkt_t *p, uint16_t v)
{
    s_be(p, v, 2);
}

static void s_u32(s_pkt_t *p, uint32_t v)
{
    s_be(p, v, 4);
}

static void s_raw(s_pkt_t *p, const void *data, size_t n)
{
    if (sizeof p->b - p->len < n)
        fail_msg("test packet overflow");
    memcpy(p->b + p->len, data, n);
    p->len += n;
}

static void s_fill(s_pkt_t *p, uint8_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s_u8(p, v);
}

/* Ethernet II: destination, source, then `ntags` VLAN tags (TPID `tpid[i]`,
 * TCI 100 + i) and the ethertype. */
static void s_eth(s_pkt_t *p, const uint16_t *tpid, int ntags, uint16_t type)
{
    static const uint8_t dst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
    static const uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    s_raw(p, dst, 6);
    s_raw(p, src, 6);
    for (int i = 0; i < ntags; i++) {
        s_u16(p, tpid[i]);
        s_u16(p, (uint16_t)(100 + i));
    }
    s_u16(p, type);
}

/* Linux cooked v1: packet type, ARPHRD_ETHER, address length 6, 8-byte address, protocol. */
static void s_sll(s_pkt_t *p, uint16_t proto)
{
    s_u16(p, 0);
    s_u16(p, 1);
    s_u16(p, 6);
    s_raw(p, "\x02\x00\x00\x00\x00\x02\x00\x00", 8);
    s_u16(p, proto);
}

/* Linux cooked v2: protocol, reserved, ifindex, ARPHRD, packet type, address length, address. */
static void s_sll2(s_pkt_t *p, uint16_t proto)
{
    s_u16(p, proto);
    s_u16(p, 0);
    s_u32(p, 3);
    s_u16(p, 1);
    s_u8(p, 0);
    s_u8(p, 6);
    s_raw(p, "\x02\x00\x00\x00\x00\x02\x00\x00", 8);
}

/* NULL / LOOP: a 4-byte address family in the given byte order. */
static void s_af(s_pkt_t *p, uint32_t af, bool little_endian)
{
    if (!little_endian) {
        s_u32(p, af);
        return;
    }
    for (int i = 0; i < 4; i++)
        s_u8(p, (uint8_t)(af >> (8 * i)));
}

/* IPv4 header with `ihl` words (options are NOPs) and fragment field
 * `frag` (flags << 13 | offset); `payload` bytes are to follow. */
static void s_ip4(s_pkt_t *p, int ihl, uint16_t frag, uint8_t proto, const uint8_t *src,
                  const uint8_t *dst, size_t payload)
{
    s_u8(p, (uint8_t)(0x40 | ihl));
    s_u8(p, 0);
    s_u16(p, (uint16_t)(ihl * 4 + payload));
    s_u16(p, 0x1234); /* identification */
    s_u16(p, frag);
    s_u8(p, 64);
    s_u8(p, proto);
    s_u16(p, 0); /* checksum */
    s_raw(p, src, 4);
    s_raw(p, dst, 4);
    if (ihl > 5)
        s_fill(p, 0x01, (size_t)(ihl - 5) * 4);
}

static void s_ip6(s_pkt_t *p, uint8_t next, const uint8_t *src, const uint8_t *dst, size_t payload)
{
    s_u32(p, 0x60012345); /* version 6, traffic class 0, flow label 0x12345 */
    s_u16(p, (uint16_t)payload);
    s_u8(p, next);
    s_u8(p, 64);
    s_raw(p, src, 16);
    s_raw(p, dst, 16);
}

/* Hop-by-Hop, Routing or Destination Options: (len + 1) * 8 bytes. */
static void s_ext(s_pkt_t *p, uint8_t next, uint8_t len)
{
    s_u8(p, next);
    s_u8(p, len);
    s_fill(p, 0x00, (size_t)(len + 1) * 8 - 2);
}

static void s_frag6(s_pkt_t *p, uint8_t next, uint16_t offset, bool more)
{
    s_u8(p, next);
    s_u8(p, 0);
    s_u16(p, (uint16_t)(offset << 3 | (more ? 1 : 0)));
    s_u32(p, 0xabcdef01); /* identification */
}

/* AH: (len + 2) * 4 bytes. */
static void s_ah(s_pkt_t *p, uint8_t next, uint8_t len)
{
    s_u8(p, next);
    s_u8(p, len);
    s_u16(p, 0);
    s_u32(p, 0x1000); /* SPI */
    s_fill(p, 0xaa, (size_t)(len + 2) * 4 - 8);
}

static void s_tcp(s_pkt_t *p, uint16_t sport, uint16_t dport)
{
    s_u16(p, sport);
    s_u16(p, dport);
    s_u32(p, 1000); /* seq */
    s_u32(p, 0);    /* ack */
    s_u16(p, 0x5002);
    s_u16(p, 65535);
    s_u32(p, 0);
}

static void s_udp(s_pkt_t *p, uint16_t sport, uint16_t dport)
{
    s_u16(p, sport);
    s_u16(p, dport);
    s_u16(p, 8);
    s_u16(p, 0);
}

static void s_icmp(s_pkt_t *p, uint8_t type)
{
    s_u8(p, type);
    s_u8(p, 0);
    s_u16(p, 0);
    s_u32(p, 0x00010001);
}

static const uint8_t A4[4] = {192, 0, 2, 1};
static const uint8_t B4[4] = {198, 51, 100, 7};
static const uint8_t A6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t B6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

/* ---- expectations, checked at every caplen --------------------------- */

typedef struct {
    const char *name;
    uint16_t linktype;
    decode_family_t family; /* when complete */
    size_t ip_end;          /* caplen from which decode_flow returns true; NEVER */
    size_t proto_end;       /* caplen from which proto is known; NEVER: stays 0 */
    size_t ports_end;       /* caplen from which the ports are there; NEVER */
    uint8_t proto;
    const uint8_t *src, *dst;
    uint16_t sport, dport;
} s_want_t;

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("%s, caplen %zu: %s", w->name, caplen, #cond);                                \
    } while (0)

static bool s_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Decodes the first `caplen` bytes of `p` and checks the result against `w`. */
static void s_check_at(const s_want_t *w, const s_pkt_t *p, size_t caplen, decode_flow_t *out)
{
    const uint8_t *data = s_guarded(p->b, caplen);
    decode_flow_t f;
    memset(&f, 0xee, sizeof f); /* decode_flow must write every field */
    bool ok = decode_flow(w->linktype, data, (uint32_t)caplen, &f);
    decode_family_t fam = decode_family(w->linktype, data, (uint32_t)caplen);
    S_CHECK(fam == f.family);
    if (caplen < w->ip_end) {
        S_CHECK(!ok);
        S_CHECK(f.family == DECODE_OTHER);
        S_CHECK(f.proto == 0 && f.addr_len == 0 && !f.has_ports && f.sport == 0 && f.dport == 0);
        S_CHECK(s_zero(f.src, 16) && s_zero(f.dst, 16));
    } else {
        size_t alen = w->family == DECODE_IPV4 ? 4 : 16;
        S_CHECK(ok);
        S_CHECK(f.family == w->family);
        S_CHECK(f.addr_len == alen);
        S_CHECK(memcmp(f.src, w->src, alen) == 0 && s_zero(f.src + alen, 16 - alen));
        S_CHECK(memcmp(f.dst, w->dst, alen) == 0 && s_zero(f.dst + alen, 16 - alen));
        S_CHECK(f.proto == (caplen >= w->proto_end ? w->proto : 0));
        bool ports = caplen >= w->ports_end;
        S_CHECK(f.has_ports == ports);
        S_CHECK(f.sport == (ports ? w->sport : 0));
        S_CHECK(f.dport == (ports ? w->dport : 0));
    }
    if (out)
        *out = f;
}

/* Checks `p` at every caplen from 0 to its length; *out (may be NULL) gets
 * the flow of the whole packet. */
static void s_check(const s_want_t *w, const s_pkt_t *p, decode_flow_t *out)
{
    for (size_t caplen = 0; caplen <= p->len; caplen++)
        s_check_at(w, p, caplen, caplen == p->len ? out : NULL);
}

/* Builds IPv4 / TCP behind link header `link` and checks it. */
typedef void (*s_link_fn)(s_pkt_t *p, decode_family_t family);

static void s_link_ip4_tcp(const char *name, uint16_t lt, s_link_fn link)
{
    s_pkt_t p = {.len = 0};
    link(&p, DECODE_IPV4);
    s_ip4(&p, 5, 0x4000, 6, A4, B4, 20);
    size_t ip_end = p.len;
    s_tcp(&p, 49152, 443);
    s_want_t w = {name, lt, DECODE_IPV4, ip_end, ip_end, ip_end + 4, 6, A4, B4, 49152, 443};
    s_check(&w, &p, NULL);
}

static void s_link_ip6_udp(const char *name, uint16_t lt, s_link_fn link)
{
    s_pkt_t p = {.len = 0};
    link(&p, DECODE_IPV6);
    s_ip6(&p, 17, A6, B6, 8);
    size_t ip_end = p.len;
    s_udp(&p, 5353, 53);
    s_want_t w = {name, lt, DECODE_IPV6, ip_end, ip_end, ip_end + 4, 17, A6, B6, 5353, 53};
    s_check(&w, &p, NULL);
}

static void s_link_ip4_icmp(const char *name, uint16_t lt, s_link_fn link)
{
    s_pkt_t p = {.len = 0};
    link(&p, DECODE_IPV4);
    s_ip4(&p, 5, 0, 1, A4, B4, 8);
    size_t ip_end = p.len;
    s_icmp(&p, 8);
    s_want_t w = {name, lt, DECODE_IPV4, ip_end, ip_end, NEVER, 1, A4, B4, 0, 0};
    s_check(&w, &p, NULL);
}

static void s_link_ip6_icmp(const char *name, uint16_t lt, s_link_fn link)
{
    s_pkt_t p = {.len = 0};
    link(&p, DECODE_IPV6);
    s_ip6(&p, 58, A6, B6, 8);
    size_t ip_end = p.len;
    s_icmp(&p, 128);
    s_want_t w = {name, lt, DECODE_IPV6, ip_end, ip_end, NEVER, 58, A6, B6, 0, 0};
    s_check(&w, &p, NULL);
}

static void s_link_all(const char *name, uint16_t lt, s_link_fn link)
{
    s_link_ip4_tcp(name, lt, link);
    s_link_ip6_udp(name, lt, link);
    s_link_ip4_icmp(name, lt, link);
    s_link_ip6_icmp(name, lt, link);
}

/* A frame whose link header is not IP: OTHER at every caplen. */
static void s_check_other(const char *name, uint16_t lt, const s_pkt_t *p)
{
    s_want_t w = {.name = name, .linktype = lt, .ip_end = NEVER};
    s_check(&w, p, NULL);
}

static uint16_t s_ethertype(decode_family_t family)
{
    return family == DECODE_IPV4 ? 0x0800 : 0x86DD;
}

/* ---- link types ------------------------------------------------------ */

static void s_link_eth(s_pkt_t *p, decode_family_t family)
{
    s_eth(p, NULL, 0, s_ethertype(family));
}

static void test_ethernet(void **state)
{
    (void)state;
    s_link_all("ethernet", LT_ETHERNET, s_link_eth);
    s_pkt_t p = {.len = 0};
    s_eth(&p, NULL, 0, 0x0806); /* ARP */
    s_fill(&p, 0, 28);
    s_check_other("ethernet arp", LT_ETHERNET, &p);
    p.len = 0;
    s_eth(&p, NULL, 0, 0x0600 - 46); /* 802.3 length field, then LLC */
    s_u8(&p, 0xaa);
    s_u8(&p, 0xaa);
    s_u8(&p, 3);
    s_u8(&p, 0);
    s_u8(&p, 0);
    s_u8(&p, 0);
    s_u16(&p, 0x0800);
    s_ip4(&p, 5, 0, 6, A4, B4, 20);
    s_tcp(&p, 1, 2);
    s_check_other("ethernet 802.3", LT_ETHERNET, &p);
}

static void s_link_vlan1(s_pkt_t *p, decode_family_t family)
{
    static const uint16_t tpid[] = {0x8100};
    s_eth(p, tpid, 1, s_ethertype(family));
}

static void s_link_qinq(s_pkt_t *p, decode_family_t family)
{
    static const uint16_t tpid[] = {0x88A8, 0x8100};
    s_eth(p, tpid, 2, s_ethertype(family));
}

static void s_link_qinq_9100(s_pkt_t *p, decode_family_t family)
{
    static const uint16_t tpid[] = {0x9100, 0x9100};
    s_eth(p, tpid, 2, s_ethertype(family));
}

static void test_vlan(void **state)
{
    (void)state;
    s_link_all("vlan 8100", LT_ETHERNET, s_link_vlan1);
    s_link_all("vlan 88a8+8100", LT_ETHERNET, s_link_qinq);
    s_link_all("vlan 9100+9100", LT_ETHERNET, s_link_qinq_9100);

    static const uint16_t three[] = {0x88A8, 0x8100, 0x8100};
    s_pkt_t p = {.len = 0};
    s_eth(&p, three, 3, 0x0800);
    s_ip4(&p, 5, 0, 6, A4, B4, 20);
    s_tcp(&p, 1, 2);
    s_check_other("three tags", LT_ETHERNET, &p);

    static const uint16_t arp[] = {0x8100};
    p.len = 0;
    s_eth(&p, arp, 1, 0x0806);
    s_fill(&p, 0, 28);
    s_check_other("vlan arp", LT_ETHERNET, &p);
}

static void s_link_none(s_pkt_t *p, decode_family_t family)
{
    (void)p;
    (void)family;
}

static void test_raw(void **state)
{
    (void)state;
    s_link_all("raw", LT_RAW, s_link_none);
    for (uint8_t v = 0; v < 16; v++) {
        if (v == 4 || v == 6)
            continue;
        s_pkt_t p = {.len = 0};
        s_ip4(&p, 5, 0, 6, A4, B4, 20);
        s_tcp(&p, 1, 2);
        p.b[0] = (uint8_t)(v << 4 | 5);
        s_check_other("raw bad version", LT_RAW, &p);
    }
}

static void test_ipv4_ipv6_linktypes(void **state)
{
    (void)state;
    s_link_ip4_tcp("ipv4", LT_IPV4, s_link_none);
    s_link_ip4_icmp("ipv4", LT_IPV4, s_link_none);
    s_link_ip6_udp("ipv6", LT_IPV6, s_link_none);
    s_link_ip6_icmp("ipv6", LT_IPV6, s_link_none);

    /* each link type takes only its own version */
    s_pkt_t p4 = {.len = 0}, p6 = {.len = 0};
    s_ip4(&p4, 5, 0, 6, A4, B4, 20);
    s_tcp(&p4, 1, 2);
    s_ip6(&p6, 17, A6, B6, 8);
    s_udp(&p6, 1, 2);
    s_check_other("ipv6 given v4", LT_IPV6, &p4);
    s_check_other("ipv4 given v6", LT_IPV4, &p6);
}

static void s_link_sll(s_pkt_t *p, decode_family_t family)
{
    s_sll(p, s_ethertype(family));
}

static void s_link_sll2(s_pkt_t *p, decode_family_t family)
{
    s_sll2(p, s_ethertype(family));
}

static void test_linux_sll(void **state)
{
    (void)state;
    s_link_all("sll", LT_LINUX_SLL, s_link_sll);
    s_link_all("sll2", LT_LINUX_SLL2, s_link_sll2);

    s_pkt_t p = {.len = 0};
    s_sll(&p, 0x0806);
    s_fill(&p, 0, 28);
    s_check_other("sll arp", LT_LINUX_SLL, &p);
    p.len = 0;
    s_sll2(&p, 0x0806);
    s_fill(&p, 0, 28);
    s_check_other("sll2 arp", LT_LINUX_SLL2, &p);
    /* an SLL header read as SLL2 puts the packet type where the protocol is */
    p.len = 0;
    s_sll(&p, 0x0800);
    s_ip4(&p, 5, 0, 6, A4, B4, 20);
    s_tcp(&p, 1, 2);
    s_check_other("sll as sll2", LT_LINUX_SLL2, &p);
}

static void s_link_null_le(s_pkt_t *p, decode_family_t family)
{
    s_af(p, family == DECODE_IPV4 ? 2 : 30, true);
}

static void s_link_null_be(s_pkt_t *p, decode_family_t family)
{
    s_af(p, family == DECODE_IPV4 ? 2 : 24, false);
}

static void s_link_loop(s_pkt_t *p, decode_family_t family)
{
    s_af(p, family == DECODE_IPV4 ? 2 : 28, false);
}

static void test_null_loop(void **state)
{
    (void)state;
    s_link_all("null little-endian", LT_NULL, s_link_null_le);
    s_link_all("null big-endian", LT_NULL, s_link_null_be);
    s_link_all("loop", LT_LOOP, s_link_loop);

    static const uint32_t inet6[] = {10, 24, 28, 30};
    for (size_t i = 0; i < 4; i++) {
        for (int le = 0; le < 2; le++) {
            s_pkt_t p = {.len = 0};
            s_af(&p, inet6[i], le);
            s_ip6(&p, 6, A6, B6, 20);
            size_t ip_end = p.len;
            s_tcp(&p, 80, 8080);
            s_want_t w = {"null inet6", LT_NULL, DECODE_IPV6, ip_end, ip_end, ip_end + 4, 6,
                          A6,           B6,      80,          8080};
            s_check(&w, &p, NULL);
            if (le)
                s_check_other("loop inet6 little-endian", LT_LOOP, &p);
            else
                s_check(&(s_want_t){"loop inet6", LT_LOOP, DECODE_IPV6, ip_end, ip_end, ip_end + 4,
                                    6, A6, B6, 80, 8080},
                        &p, NULL);
        }
    }
    /* LOOP is network order only; unknown families are OTHER */
    s_pkt_t p = {.len = 0};
    s_af(&p, 2, true);
    s_ip4(&p, 5, 0, 6, A4, B4, 20);
    s_tcp(&p, 1, 2);
    s_check_other("loop little-endian", LT_LOOP, &p);
    static const uint32_t other[] = {0, 1, 3, 7, 23, 0x02000002, 0x0a000000 | 10};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        p.len = 0;
        s_af(&p, other[i], false);
        s_ip4(&p, 5, 0, 6, A4, B4, 20);
        s_check_other("null unknown family", LT_NULL, &p);
        s_check_other("loop unknown family", LT_LOOP, &p);
    }
    /* AF_INET6 with an IPv4 packet behind it */
    p.len = 0;
    s_af(&p, 10, true);
    s_ip4(&p, 5, 0, 6, A4, B4, 20);
    s_check_other("null inet6 holding v4", LT_NULL, &p);
}

static void test_unsupported_linktype(void **state)
{
    (void)state;
    s_pkt_t p = {.len = 0};
    s_eth(&p, NULL, 0, 0x0800);
    s_ip4(&p, 5, 0, 6, A4, B4, 20);
    s_tcp(&p, 1, 2);
    static const uint16_t lts[] = {105, 127, 147, 192, 2, 12, 14, 0xffff};
    for (size_t i = 0; i < sizeof lts / sizeof lts[0]; i++)
        s_check_other("unsupported", lts[i], &p);
    decode_flow_t f;
    assert_false(decode_flow(LT_ETHERNET, NULL, 0, &f));
    assert_int_equal(f.family, DECODE_OTHER);
    assert_int_equal(decode_family(LT_RAW, NULL, 0), DECODE_OTHER);
}

/* ---- IPv4 ------------------------------------------------------------ */

static void test_ipv4_options(void **state)
{
    (void)state;
    for (int ihl = 5; ihl <= 15; ihl++) {
        s_pkt_t p = {.len = 0};
        s_eth(&p, NULL, 0, 0x0800);
        s_ip4(&p, ihl, 0, 17, A4, B4, 8);
        size_t ip_end = p.len;
        s_udp(&p, 67, 68);
        s_want_t w = {"ipv4 options",
                      LT_ETHERNET,
                      DECODE_IPV4,
                      ip_end,
                      ip_end,
                      ip_end + 4,
                      17,
                      A4,
                      B4,
                      67,
                      68};
        s_check(&w, &p, NULL);
    }
}

static void test_ipv4_bad_ihl(void **state)
{
    (void)state;
    for (int ihl = 0; ihl < 5; ihl++) {
        s_pkt_t p = {.len = 0};
        s_ip4(&p, 5, 0, 6, A4, B4, 20);
        s_tcp(&p, 1, 2);
        p.b[0] = (uint8_t)(0x40 | ihl);
        s_check_other("ihl < 5 raw", LT_RAW, &p);
        s_check_other("ihl < 5 ipv4", LT_IPV4, &p);
    }
    /* IHL 15 needs 60 bytes: 59 are not a complete header */
    s_pkt_t p = {.len = 0};
    s_ip4(&p, 5, 0, 6, A4, B4, 20);
    s_tcp(&p, 1, 2);
    p.b[0] = 0x4f;
    p.len = 59;
    s_check_other("ihl beyond caplen", LT_IPV4, &p);
}

static void test_bad_versions(void **state)
{
    (void)state;
    for (uint8_t v = 0; v < 16; v++) {
        /* IPv4 behind an IPv4 ethertype, and on its own */
        s_pkt_t p = {.len = 0};
        s_eth(&p, NULL, 0, 0x0800);
        s_ip4(&p, 5, 0, 6, A4, B4, 20);
        s_tcp(&p, 1, 2);
        p.b[14] = (uint8_t)(v << 4 | 5);
        if (v != 4)
            s_check_other("ethertype v4, bad version", LT_ETHERNET, &p);
        p.len = 0;
        s_ip4(&p, 5, 0, 6, A4, B4, 20);
        s_tcp(&p, 1, 2);
        p.b[0] = (uint8_t)(v << 4 | 5);
        if (v != 4)
            s_check_other("linktype ipv4, bad version", LT_IPV4, &p);
        /* IPv6 likewise */
        p.len = 0;
        s_eth(&p, NULL, 0, 0x86DD);
        s_ip6(&p, 17, A6, B6, 8);
        s_udp(&p, 1, 2);
        p.b[14] = (uint8_t)(v << 4);
        if (v != 6)
            s_check_other("ethertype v6, bad version", LT_ETHERNET, &p);
        p.len = 0;
        s_ip6(&p, 17, A6, B6, 8);
        s_udp(&p, 1, 2);
        p.b[0] = (uint8_t)(v << 4);
        if (v != 6)
            s_check_other("linktype ipv6, bad version", LT_IPV6, &p);
    }
}

static void test_ipv4_fragments(void **state)
{
    (void)state;
    /* first fragment: MF set, offset 0, the TCP header is there */
    s_pkt_t first = {.len = 0};
    s_eth(&first, NULL, 0, 0x0800);
    s_ip4(&first, 5, 0x2000, 6, A4, B4, 20);
    size_t ip_end = first.len;
    s_tcp(&first, 49152, 443);
    s_want_t w = {
        "ipv4 first fragment", LT_ETHERNET, DECODE_IPV4, ip_end, ip_end, NEVER, 6, A4, B4, 0, 0};
    decode_flow_t f1, f2, f3, whole;
    s_check(&w, &first, &f1);

    /* a middle fragment (MF, offset 185 * 8), the same datagram */
    s_pkt_t middle = {.len = 0};
    s_eth(&middle, NULL, 0, 0x0800);
    s_ip4(&middle, 5, 0x2000 | 185, 6, A4, B4, 32);
    s_fill(&middle, 0x55, 32); /* payload bytes, not a TCP header */
    w.name = "ipv4 middle fragment";
    s_check(&w, &middle, &f2);

    /* the last fragment: MF clear, offset != 0 */
    s_pkt_t last = {.len = 0};
    s_eth(&last, NULL, 0, 0x0800);
    s_ip4(&last, 5, 370, 6, A4, B4, 16);
    s_fill(&last, 0x66, 16);
    w.name = "ipv4 last fragment";
    s_check(&w, &last, &f3);

    assert_true(decode_flow_hash(&f1) == decode_flow_hash(&f2));
    assert_true(decode_flow_hash(&f1) == decode_flow_hash(&f3));

    /* DF (0x4000) alone is not a fragment; reserved bit neither */
    s_pkt_t df = {.len = 0};
    s_eth(&df, NULL, 0, 0x0800);
    s_ip4(&df, 5, 0xc000, 6, A4, B4, 20);
    s_tcp(&df, 49152, 443);
    s_want_t wd = {"ipv4 df", LT_ETHERNET, DECODE_IPV4, ip_end, ip_end, ip_end + 4,
                   6,         A4,          B4,          49152,  443};
    s_check(&wd, &df, &whole);
    /* the unfragmented flow has ports, so hashes apart from its fragments */
    assert_true(decode_flow_hash(&whole) != decode_flow_hash(&f1));
}

static void test_port_protocols(void **state)
{
    (void)state;
    static const struct {
        uint8_t proto;
        bool ports;
    } cases[] = {{6, true},   {17, true},  {132, true}, {136, true}, {1, false},
                 {2, false},  {47, false}, {50, false}, {89, false}, {0, false},
                 {58, false}, {41, false}, {255, false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_pkt_t p = {.len = 0};
        s_ip4(&p, 5, 0, cases[i].proto, A4, B4, 8);
        size_t ip_end = p.len;
        s_udp(&p, 2905, 2906);
        s_want_t w = {"ipv4 proto",
                      LT_RAW,
                      DECODE_IPV4,
                      ip_end,
                      ip_end,
                      cases[i].ports ? ip_end + 4 : NEVER,
                      cases[i].proto,
                      A4,
                      B4,
                      cases[i].ports ? 2905 : 0,
                      cases[i].ports ? 2906 : 0};
        s_check(&w, &p, NULL);

        p.len = 0;
        s_ip6(&p, cases[i].proto, A6, B6, 8);
        ip_end = p.len;
        s_udp(&p, 2905, 2906);
        if (cases[i].proto == 0)
            continue; /* Hop-by-Hop: an extension header in IPv6 */
        s_want_t w6 = {"ipv6 proto",
                       LT_RAW,
                       DECODE_IPV6,
                       ip_end,
                       ip_end,
                       cases[i].ports ? ip_end + 4 : NEVER,
                       cases[i].proto,
                       A6,
                       B6,
                       cases[i].ports ? 2905 : 0,
                       cases[i].ports ? 2906 : 0};
        s_check(&w6, &p, NULL);
    }
}

/* ---- IPv6 extension headers ------------------------------------------ */

static void test_ipv6_hbh_fragment(void **state)
{
    (void)state;
    /* Hop-by-Hop, then Fragment (first: offset 0, M) holding UDP */
    s_pkt_t first = {.len = 0};
    s_eth(&first, NULL, 0, 0x86DD);
    s_ip6(&first, 0, A6, B6, 8 + 8 + 8);
    size_t ip_end = first.len;
    s_ext(&first, 44, 0);
    s_frag6(&first, 17, 0, true);
    size_t chain_end = first.len;
    s_udp(&first, 5353, 53);
    s_want_t w = {"ipv6 hbh+frag first",
                  LT_ETHERNET,
                  DECODE_IPV6,
                  ip_end,
                  chain_end,
                  NEVER,
                  17,
                  A6,
                  B6,
                  0,
                  0};
    decode_flow_t f1, f2;
    s_check(&w, &first, &f1);

    /* a later fragment: same headers, payload bytes behind them */
    s_pkt_t later = {.len = 0};
    s_eth(&later, NULL, 0, 0x86DD);
    s_ip6(&later, 0, A6, B6, 8 + 8 + 24);
    s_ext(&later, 44, 0);
    s_frag6(&later, 17, 1000, false);
    s_fill(&later, 0x3c, 24);
    w.name = "ipv6 hbh+frag later";
    s_check(&w, &later, &f2);
    assert_true(decode_flow_hash(&f1) == decode_flow_hash(&f2));

    /* the fragmentable part opens with Destination Options: the first
     * fragment and a later one still agree on proto (the Fragment header's
     * Next Header) and so on the hash */
    s_pkt_t a = {.len = 0};
    s_ip6(&a, 44, A6, B6, 8 + 8 + 20);
    s_frag6(&a, 60, 0, true);
    size_t a_chain = a.len;
    s_ext(&a, 6, 0);
    s_tcp(&a, 1234, 80);
    s_want_t wa = {
        "ipv6 frag+dstopts first", LT_IPV6, DECODE_IPV6, 40, a_chain, NEVER, 60, A6, B6, 0, 0};
    s_check(&wa, &a, &f1);
    s_pkt_t b = {.len = 0};
    s_ip6(&b, 44, A6, B6, 8 + 16);
    s_frag6(&b, 60, 2, false);
    s_fill(&b, 0x2c, 16); /* would read as a header with next header 0x2c = 44 */
    wa.name = "ipv6 frag+dstopts later";
    s_check(&wa, &b, &f2);
    assert_true(decode_flow_hash(&f1) == decode_flow_hash(&f2));

    /* an atomic fragment (offset 0, no M) is still a fragment */
    s_pkt_t c = {.len = 0};
    s_ip6(&c, 44, A6, B6, 8 + 20);
    s_frag6(&c, 6, 0, false);
    s_tcp(&c, 1234, 80);
    s_want_t wc = {"ipv6 atomic fragment", LT_IPV6, DECODE_IPV6, 40, 48, NEVER, 6, A6, B6, 0, 0};
    s_check(&wc, &c, NULL);
}

static void test_ipv6_ext_chain(void **state)
{
    (void)state;
    /* Hop-by-Hop (16 bytes), Routing (24), Destination Options (8), AH (24), TCP */
    s_pkt_t p = {.len = 0};
    s_sll2(&p, 0x86DD);
    s_ip6(&p, 0, A6, B6, 16 + 24 + 8 + 24 + 20);
    size_t ip_end = p.len;
    s_ext(&p, 43, 1);
    s_ext(&p, 60, 2);
    s_ext(&p, 51, 0);
    s_ah(&p, 6, 4);
    size_t chain_end = p.len;
    assert_int_equal(chain_end - ip_end, 16 + 24 + 8 + 24);
    s_tcp(&p, 22, 40000);
    s_want_t w = {
        "ipv6 chain", LT_LINUX_SLL2, DECODE_IPV6, ip_end, chain_end, chain_end + 4, 6, A6, B6,
        22,           40000};
    s_check(&w, &p, NULL);

    /* ESP ends the walk: no ports behind it */
    p.len = 0;
    s_ip6(&p, 60, A6, B6, 8 + 16);
    s_ext(&p, 50, 0);
    s_u32(&p, 0x1000);
    s_u32(&p, 1);
    s_udp(&p, 1, 2);
    s_want_t we = {"ipv6 esp", LT_RAW, DECODE_IPV6, 40, 48, NEVER, 50, A6, B6, 0, 0};
    s_check(&we, &p, NULL);

    /* No Next Header */
    p.len = 0;
    s_ip6(&p, 0, A6, B6, 8);
    s_ext(&p, 59, 0);
    s_want_t wn = {"ipv6 no next", LT_RAW, DECODE_IPV6, 40, 48, NEVER, 59, A6, B6, 0, 0};
    s_check(&wn, &p, NULL);

    /* AH with the largest length: (255 + 2) * 4 bytes */
    p.len = 0;
    s_ip6(&p, 51, A6, B6, 1028 + 8);
    s_ah(&p, 17, 255);
    chain_end = p.len;
    s_udp(&p, 500, 4500);
    s_want_t wa = {"ipv6 big ah", LT_IPV6, DECODE_IPV6, 40, chain_end, chain_end + 4, 17, A6, B6,
                   500,           4500};
    s_check(&wa, &p, NULL);
}

static void test_ipv6_ext_limit(void **state)
{
    (void)state;
    for (int n = 1; n <= 10; n++) {
        s_pkt_t p = {.len = 0};
        s_ip6(&p, 60, A6, B6, (size_t)n * 8 + 20);
        for (int i = 0; i < n; i++)
            s_ext(&p, i + 1 < n ? 60 : 6, 0);
        size_t chain_end = p.len;
        s_tcp(&p, 3000, 3001);
        bool walked = n <= 8;
        s_want_t w = {"ipv6 ext limit",
                      LT_IPV6,
                      DECODE_IPV6,
                      40,
                      walked ? chain_end : NEVER,
                      walked ? chain_end + 4 : NEVER,
                      walked ? 6 : 0,
                      A6,
                      B6,
                      walked ? 3000 : 0,
                      walked ? 3001 : 0};
        s_check(&w, &p, NULL);
    }
}

/* Random bytes behind every link type, at every length: no crash, and the
 * two entry points agree. */
static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint64_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static void test_garbage(void **state)
{
    (void)state;
    static const uint16_t lts[] = {LT_NULL, LT_ETHERNET, LT_RAW,        LT_LOOP, LT_LINUX_SLL,
                                   LT_IPV4, LT_IPV6,     LT_LINUX_SLL2, 147};
    uint8_t buf[200];
    for (int round = 0; round < 300; round++) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)s_rand();
        /* bias towards what the decoder looks for */
        buf[0] = (uint8_t)(round % 3 == 0 ? 0x45 : round % 3 == 1 ? 0x60 : buf[0]);
        for (size_t l = 0; l < sizeof lts / sizeof lts[0]; l++) {
            for (size_t caplen = 0; caplen <= 120; caplen++) {
                const uint8_t *d = s_guarded(buf, caplen);
                decode_flow_t f;
                bool ok = decode_flow(lts[l], d, (uint32_t)caplen, &f);
                assert_int_equal(decode_family(lts[l], d, (uint32_t)caplen), f.family);
                assert_true(ok == (f.family != DECODE_OTHER));
                if (f.has_ports)
                    assert_true(f.proto == 6 || f.proto == 17 || f.proto == 132 || f.proto == 136);
            }
        }
    }
}

/* ---- the hash -------------------------------------------------------- */

static decode_flow_t s_flow4(const uint8_t *src, const uint8_t *dst, uint8_t proto, uint16_t sport,
                             uint16_t dport)
{
    decode_flow_t f;
    memset(&f, 0, sizeof f);
    f.family = DECODE_IPV4;
    f.addr_len = 4;
    f.proto = proto;
    memcpy(f.src, src, 4);
    memcpy(f.dst, dst, 4);
    f.has_ports = sport || dport;
    f.sport = sport;
    f.dport = dport;
    return f;
}

static decode_flow_t s_flow6(const uint8_t *src, const uint8_t *dst, uint8_t proto, uint16_t sport,
                             uint16_t dport)
{
    decode_flow_t f = s_flow4(src, dst, proto, sport, dport);
    f.family = DECODE_IPV6;
    f.addr_len = 16;
    memcpy(f.src, src, 16);
    memcpy(f.dst, dst, 16);
    return f;
}

static decode_flow_t s_reverse(const decode_flow_t *f)
{
    decode_flow_t r = *f;
    memcpy(r.src, f->dst, 16);
    memcpy(r.dst, f->src, 16);
    r.sport = f->dport;
    r.dport = f->sport;
    return r;
}

static void test_hash_symmetric(void **state)
{
    (void)state;
    decode_flow_t flows[] = {
        s_flow4(A4, B4, 6, 49152, 443), s_flow4(B4, A4, 17, 53, 5353),
        s_flow4(A4, A4, 6, 1000, 2000), /* same address: the ports order the endpoints */
        s_flow4(A4, A4, 6, 2000, 1000), s_flow4(A4, B4, 1, 0, 0),
        s_flow6(A6, B6, 17, 5353, 53),  s_flow6(B6, A6, 6, 443, 443),
        s_flow6(A6, B6, 58, 0, 0),
    };
    for (size_t i = 0; i < sizeof flows / sizeof flows[0]; i++) {
        decode_flow_t r = s_reverse(&flows[i]);
        assert_true(decode_flow_hash(&flows[i]) == decode_flow_hash(&r));
        assert_true(decode_flow_hash(&flows[i]) == decode_flow_hash(&flows[i]));
    }
    /* a reply packet built by hand, decoded: the same hash as the request */
    s_pkt_t q = {.len = 0}, a = {.len = 0};
    s_eth(&q, NULL, 0, 0x0800);
    s_ip4(&q, 5, 0, 6, A4, B4, 20);
    s_tcp(&q, 49152, 443);
    s_eth(&a, NULL, 0, 0x0800);
    s_ip4(&a, 5, 0, 6, B4, A4, 20);
    s_tcp(&a, 443, 49152);
    decode_flow_t fq, fa;
    assert_true(decode_flow(LT_ETHERNET, q.b, (uint32_t)q.len, &fq));
    assert_true(decode_flow(LT_ETHERNET, a.b, (uint32_t)a.len, &fa));
    assert_true(decode_flow_hash(&fq) == decode_flow_hash(&fa));
    q.len = a.len = 0;
    s_sll(&q, 0x86DD);
    s_ip6(&q, 17, A6, B6, 8);
    s_udp(&q, 5353, 53);
    s_ip6(&a, 17, B6, A6, 8);
    s_udp(&a, 53, 5353);
    assert_true(decode_flow(LT_LINUX_SLL, q.b, (uint32_t)q.len, &fq));
    assert_true(decode_flow(LT_RAW, a.b, (uint32_t)a.len, &fa));
    assert_true(decode_flow_hash(&fq) == decode_flow_hash(&fa));
}

static void test_hash_fields(void **state)
{
    (void)state;
    /* every field of the key changes the hash */
    decode_flow_t base = s_flow4(A4, B4, 6, 49152, 443);
    uint64_t h = decode_flow_hash(&base);
    decode_flow_t f = base;
    f.proto = 17;
    assert_true(decode_flow_hash(&f) != h);
    f = base;
    f.sport++;
    assert_true(decode_flow_hash(&f) != h);
    f = base;
    f.dport++;
    assert_true(decode_flow_hash(&f) != h);
    f = base;
    f.sport = 443;
    f.dport = 49152; /* ports swapped without the addresses: another flow */
    assert_true(decode_flow_hash(&f) != h);
    for (int i = 0; i < 4; i++) {
        f = base;
        f.src[i] ^= 1;
        assert_true(decode_flow_hash(&f) != h);
        f = base;
        f.dst[i] ^= 0x80;
        assert_true(decode_flow_hash(&f) != h);
    }
    decode_flow_t b6 = s_flow6(A6, B6, 6, 49152, 443);
    uint64_t h6 = decode_flow_hash(&b6);
    for (int i = 0; i < 16; i++) {
        f = b6;
        f.src[i] ^= 4;
        assert_true(decode_flow_hash(&f) != h6);
    }
    /* the same first 4 bytes as an IPv6 flow: another flow */
    f = base;
    f.family = DECODE_IPV6;
    f.addr_len = 16;
    assert_true(decode_flow_hash(&f) != h);

    /* what the hash must ignore: bytes past addr_len, ports without has_ports */
    f = base;
    memset(f.src + 4, 0xa5, 12);
    memset(f.dst + 4, 0x5a, 12);
    assert_true(decode_flow_hash(&f) == h);
    decode_flow_t np = s_flow4(A4, B4, 6, 0, 0);
    f = np;
    f.sport = 49152;
    f.dport = 443;
    assert_false(f.has_ports);
    assert_true(decode_flow_hash(&f) == decode_flow_hash(&np));
    assert_true(decode_flow_hash(&np) != h);
}

#define S_FLOWS 10000

static uint64_t s_hashes[S_FLOWS];

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* No collision among `n` hashes; each of 2 and 4 buckets (hash % k) holds
 * its share within ±5%. */
static void s_spread(const char *name, uint64_t *h, size_t n)
{
    for (unsigned k = 2; k <= 4; k += 2) {
        size_t count[4] = {0};
        for (size_t i = 0; i < n; i++)
            count[h[i] % k]++;
        for (unsigned b = 0; b < k; b++) {
            double share = (double)n / k;
            if (count[b] < share * 0.95 || count[b] > share * 1.05)
                fail_msg("%s: bucket %u of %u holds %zu of %zu", name, b, k, count[b], n);
        }
    }
    qsort(h, n, sizeof h[0], s_cmp_u64);
    for (size_t i = 1; i < n; i++)
        if (h[i] == h[i - 1])
            fail_msg("%s: two flows hash to %016llx", name, (unsigned long long)h[i]);
}

static void test_hash_spread(void **state)
{
    (void)state;
    /* random flows, distinct by construction (index in the source address) */
    s_rng = 0x243f6a8885a308d3ull;
    for (uint32_t i = 0; i < S_FLOWS; i++) {
        uint64_t r = s_rand();
        uint8_t src[16], dst[16];
        for (int j = 0; j < 16; j++) {
            src[j] = (uint8_t)s_rand();
            dst[j] = (uint8_t)s_rand();
        }
        src[0] = (uint8_t)(i >> 8);
        src[1] = (uint8_t)i;
        dst[0] = 0xff; /* no src starts so: no flow is another's reverse */
        static const uint8_t protos[] = {6, 17, 132, 1};
        uint8_t proto = protos[r % 4];
        uint16_t sport = proto == 1 ? 0 : (uint16_t)(r >> 8);
        uint16_t dport = proto == 1 ? 0 : (uint16_t)(r >> 24);
        decode_flow_t f = (r >> 40) & 1 ? s_flow6(src, dst, proto, sport, dport)
                                        : s_flow4(src, dst, proto, sport, dport);
        f.has_ports = proto != 1;
        s_hashes[i] = decode_flow_hash(&f);
    }
    s_spread("random flows", s_hashes, S_FLOWS);

    /* one client to one server, consecutive source ports: the realistic
     * fan-out case, where only a few low bits differ */
    for (uint32_t i = 0; i < S_FLOWS; i++) {
        decode_flow_t f = s_flow4(A4, B4, 6, (uint16_t)(32768 + i), 443);
        s_hashes[i] = decode_flow_hash(&f);
    }
    s_spread("consecutive ports", s_hashes, S_FLOWS);

    /* consecutive IPv4 addresses, no ports (ICMP from a /18) */
    for (uint32_t i = 0; i < S_FLOWS; i++) {
        uint8_t src[4] = {10, 0, (uint8_t)(i >> 8), (uint8_t)i};
        decode_flow_t f = s_flow4(src, B4, 1, 0, 0);
        s_hashes[i] = decode_flow_hash(&f);
    }
    s_spread("consecutive addresses", s_hashes, S_FLOWS);

    /* consecutive IPv6 hosts in one /64, UDP to one port */
    for (uint32_t i = 0; i < S_FLOWS; i++) {
        uint8_t src[16];
        memcpy(src, A6, 16);
        src[14] = (uint8_t)(i >> 8);
        src[15] = (uint8_t)i;
        decode_flow_t f = s_flow6(src, B6, 17, 53, 53);
        s_hashes[i] = decode_flow_hash(&f);
    }
    s_spread("consecutive ipv6 hosts", s_hashes, S_FLOWS);
}

/* Strict avalanche: flipping any one bit of the addresses or ports flips
 * every output bit in about half the flows (FNV-1a alone fails this: a
 * change in the last bytes never reaches the low bits). */
static void test_hash_avalanche(void **state)
{
    (void)state;
    enum { FLOWS = 400, IN_BITS = 2 * 32 + 2 * 16 };
    static unsigned flips[IN_BITS][64];
    memset(flips, 0, sizeof flips);
    s_rng = 0x13198a2e03707344ull;
    for (int n = 0; n < FLOWS; n++) {
        uint64_t r = s_rand();
        uint8_t a[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
        uint8_t b[4] = {(uint8_t)(r >> 32), (uint8_t)(r >> 40), (uint8_t)(r >> 48),
                        (uint8_t)(r >> 56)};
        uint64_t p = s_rand();
        decode_flow_t f = s_flow4(a, b, 6, (uint16_t)p | 1, (uint16_t)(p >> 16) | 1);
        uint64_t h = decode_flow_hash(&f);
        for (int bit = 0; bit < IN_BITS; bit++) {
            decode_flow_t g = f;
            if (bit < 32)
                g.src[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            else if (bit < 64)
                g.dst[(bit - 32) / 8] ^= (uint8_t)(1u << (bit % 8));
            else if (bit < 80)
                g.sport ^= (uint16_t)(1u << (bit - 64));
            else
                g.dport ^= (uint16_t)(1u << (bit - 80));
            uint64_t d = h ^ decode_flow_hash(&g);
            for (int o = 0; o < 64; o++)
                flips[bit][o] += (unsigned)(d >> o & 1);
        }
    }
    for (int bit = 0; bit < IN_BITS; bit++)
        for (int o = 0; o < 64; o++)
            if (flips[bit][o] < FLOWS * 3 / 10 || flips[bit][o] > FLOWS * 7 / 10)
                fail_msg("input bit %d flips output bit %d in %u of %d flows", bit, o,
                         flips[bit][o], FLOWS);
}

/* Frozen values: the relay's fan-out of a conversation must not move
 * between releases. Computed from the algorithm in decode.h by a separate
 * implementation, not by this one. */
static void test_hash_known_answer(void **state)
{
    (void)state;
    /* TCP 192.0.2.1:49152 <-> 198.51.100.7:443 */
    decode_flow_t f = s_flow4(A4, B4, 6, 49152, 443);
    assert_true(decode_flow_hash(&f) == 0x007c3afa2a105417ull);
    s_pkt_t p = {.len = 0};
    s_eth(&p, NULL, 0, 0x0800);
    s_ip4(&p, 5, 0x4000, 6, B4, A4, 20);
    s_tcp(&p, 443, 49152);
    decode_flow_t d;
    assert_true(decode_flow(LT_ETHERNET, p.b, (uint32_t)p.len, &d));
    assert_true(decode_flow_hash(&d) == 0x007c3afa2a105417ull);
    /* UDP [2001:db8::1]:5353 <-> [2001:db8::2]:53 */
    f = s_flow6(A6, B6, 17, 5353, 53);
    assert_true(decode_flow_hash(&f) == 0x28a5a0ee8730d4d2ull);
    /* ICMP 10.0.0.1 <-> 10.0.0.2, no ports */
    static const uint8_t c[4] = {10, 0, 0, 1}, s[4] = {10, 0, 0, 2};
    f = s_flow4(s, c, 1, 0, 0);
    assert_true(decode_flow_hash(&f) == 0x26c9c4d601fd35c9ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ethernet),
        cmocka_unit_test(test_vlan),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_ipv4_ipv6_linktypes),
        cmocka_unit_test(test_linux_sll),
        cmocka_unit_test(test_null_loop),
        cmocka_unit_test(test_unsupported_linktype),
        cmocka_unit_test(test_ipv4_options),
        cmocka_unit_test(test_ipv4_bad_ihl),
        cmocka_unit_test(test_bad_versions),
        cmocka_unit_test(test_ipv4_fragments),
        cmocka_unit_test(test_port_protocols),
        cmocka_unit_test(test_ipv6_hbh_fragment),
        cmocka_unit_test(test_ipv6_ext_chain),
        cmocka_unit_test(test_ipv6_ext_limit),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_hash_symmetric),
        cmocka_unit_test(test_hash_fields),
        cmocka_unit_test(test_hash_spread),
        cmocka_unit_test(test_hash_avalanche),
        cmocka_unit_test(test_hash_known_answer),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
