/*
 * test_decap — the tunnel decoder (decap.h): frames built here byte by byte
 * (Ethernet, VLAN, SLL2, raw IP; IPv4 and IPv6; VXLAN, GRETAP, GRE, ERSPAN
 * I, II, III), their inner frames and ids compared by content, every
 * truncation of every header refused (each in a buffer of exactly its
 * length, so that a read past the end shows under ASan), bad versions and
 * flags refused, ERSPAN III timestamps in every granularity.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decap.h"

/* The inner frame every tunnel carries: an Ethernet frame with IPv4/UDP. */
static const uint8_t s_inner_eth[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45,
    0x00, 0x00, 0x1e, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 10,   0,    0,    1,
    10,   0,    0,    2,    0x30, 0x39, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, 'h',  'i'};
/* ...and the IP packet inside it */
#define S_INNER_IP (s_inner_eth + 14)
#define S_INNER_IP_LEN (sizeof s_inner_eth - 14)

typedef struct {
    uint8_t b[2048];
    size_t n;
} s_buf_t;

static void s_put(s_buf_t *f, const void *p, size_t n)
{
    assert_true(f->n + n <= sizeof f->b);
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

static void s_u8(s_buf_t *f, unsigned v)
{
    uint8_t b = (uint8_t)v;
    s_put(f, &b, 1);
}

static void s_u16(s_buf_t *f, unsigned v)
{
    s_u8(f, v >> 8);
    s_u8(f, v);
}

static void s_u32(s_buf_t *f, uint32_t v)
{
    s_u16(f, v >> 16);
    s_u16(f, v & 0xffff);
}

enum { S_ETH, S_ETH_VLAN, S_SLL2, S_RAW };
enum { S_V4, S_V6 };

static int s_linktype(int link)
{
    return link == S_SLL2 ? 276 : link == S_RAW ? 101 : 1;
}

/* A frame: link header, outer IP (proto) with `payload` after it. */
static void s_frame(s_buf_t *f, int link, int ip, uint8_t proto, const s_buf_t *payload)
{
    f->n = 0;
    unsigned etype = ip == S_V4 ? 0x0800 : 0x86dd;
    if (link == S_ETH || link == S_ETH_VLAN) {
        static const uint8_t macs[12] = {0x02, 0, 0, 0, 0, 0x20, 0x02, 0, 0, 0, 0, 0x10};
        s_put(f, macs, sizeof macs);
        if (link == S_ETH_VLAN) {
            s_u16(f, 0x8100);
            s_u16(f, 100);
        }
        s_u16(f, etype);
    } else if (link == S_SLL2) {
        s_u16(f, etype);
        s_u16(f, 0);
        s_u32(f, 2);
        s_u16(f, 1);
        s_u8(f, 0);
        s_u8(f, 6);
        static const uint8_t addr[8] = {0x02, 0, 0, 0, 0, 0x10};
        s_put(f, addr, sizeof addr);
    }
    if (ip == S_V4) {
        s_u8(f, 0x45);
        s_u8(f, 0);
        s_u16(f, (unsigned)(20 + payload->n));
        s_u32(f, 0);
        s_u8(f, 64);
        s_u8(f, proto);
        s_u16(f, 0);
        s_u32(f, 0xc0000201);
        s_u32(f, 0xc0000202);
    } else {
        s_u32(f, 0x60000000);
        s_u16(f, (unsigned)payload->n);
        s_u8(f, proto);
        s_u8(f, 64);
        uint8_t addrs[32] = {0x20, 0x01, 0x0d, 0xb8};
        addrs[15] = 1;
        addrs[16] = 0x20;
        addrs[31] = 2;
        s_put(f, addrs, sizeof addrs);
    }
    s_put(f, payload->b, payload->n);
}

static void s_vxlan(s_buf_t *p, uint32_t vni, uint8_t flags)
{
    p->n = 0;
    s_u16(p, 49152);
    s_u16(p, 4789);
    s_u16(p, (unsigned)(16 + sizeof s_inner_eth));
    s_u16(p, 0);
    s_u8(p, flags);
    s_u8(p, 0);
    s_u16(p, 0);
    s_u32(p, vni << 8);
    s_put(p, s_inner_eth, sizeof s_inner_eth);
}

/* GRE with the given flags word; C, K, S fields as the flags ask. */
static void s_gre(s_buf_t *p, unsigned flags, unsigned proto, uint32_t key)
{
    p->n = 0;
    s_u16(p, flags);
    s_u16(p, proto);
    if (flags & 0x8000)
        s_u32(p, 0);
    if (flags & 0x2000)
        s_u32(p, key);
    if (flags & 0x1000)
        s_u32(p, 7);
}

static void s_erspan2(s_buf_t *p, unsigned ver, unsigned session)
{
    s_gre(p, 0x1000, 0x88be, 0);
    s_u16(p, ver << 12 | 100);
    s_u16(p, session & 0x3ff);
    s_u32(p, 5);
    s_put(p, s_inner_eth, sizeof s_inner_eth);
}

static void s_erspan3(s_buf_t *p, unsigned ver, unsigned session, uint32_t ts, unsigned ft,
                      unsigned gra, int platf, uint32_t upper)
{
    s_gre(p, 0x1000, 0x22eb, 0);
    s_u16(p, ver << 12 | 100);
    s_u16(p, session & 0x3ff);
    s_u32(p, ts);
    s_u16(p, 0);
    s_u16(p, ft << 10 | gra << 1 | (platf >= 0 ? 1 : 0));
    if (platf >= 0) {
        s_u32(p, (uint32_t)platf << 26 | 9);
        s_u32(p, upper);
    }
    if (ft == 2)
        s_put(p, S_INNER_IP, S_INNER_IP_LEN);
    else
        s_put(p, s_inner_eth, sizeof s_inner_eth);
}

/* decap_frame on a copy of exactly `len` bytes of the frame. */
static decap_reason_t s_decap(decap_kind_t kind, int linktype, const s_buf_t *f, size_t len,
                              decap_t *d, uint8_t **copy)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    memcpy(*copy, f->b, len);
    return decap_frame(kind, linktype, *copy, (uint32_t)len, (uint32_t)f->n, d);
}

/* The whole frame gives `inner`; every cut before the inner frame starts
 * is refused; every cut inside it gives the captured part. */
static void s_check(decap_kind_t kind, int linktype, const s_buf_t *f, const uint8_t *inner,
                    size_t inner_len, decap_t *whole)
{
    uint8_t *copy;
    assert_int_equal(s_decap(kind, linktype, f, f->n, whole, &copy), DECAP_OK);
    assert_int_equal(whole->caplen, inner_len);
    assert_int_equal(whole->origlen, inner_len);
    assert_memory_equal(whole->data, inner, inner_len);
    size_t start = (size_t)(whole->data - copy);
    free(copy);
    assert_int_equal(start + inner_len, f->n);
    for (size_t len = 0; len < f->n; len++) {
        decap_t d;
        decap_reason_t r = s_decap(kind, linktype, f, len, &d, &copy);
        if (len < start + (whole->inner_ip ? 1 : 0)) {
            assert_int_not_equal(r, DECAP_OK);
        } else {
            assert_int_equal(r, DECAP_OK);
            assert_ptr_equal(d.data, copy + start);
            assert_int_equal(d.caplen, len - start);
            assert_int_equal(d.origlen, inner_len);
            assert_int_equal(d.id, whole->id);
        }
        free(copy);
    }
}

static void test_vxlan_every_link_and_ip(void **state)
{
    (void)state;
    static const int links[] = {S_ETH, S_ETH_VLAN, S_SLL2, S_RAW};
    for (size_t l = 0; l < 4; l++) {
        for (int ip = S_V4; ip <= S_V6; ip++) {
            s_buf_t p, f;
            s_vxlan(&p, 42, 0x08);
            s_frame(&f, links[l], ip, 17, &p);
            decap_t d;
            s_check(DECAP_VXLAN, s_linktype(links[l]), &f, s_inner_eth, sizeof s_inner_eth, &d);
            assert_int_equal(d.found, DECAP_VXLAN);
            assert_true(d.has_id);
            assert_int_equal(d.id, 42);
            assert_false(d.inner_ip);
            s_check(DECAP_AUTO, s_linktype(links[l]), &f, s_inner_eth, sizeof s_inner_eth, &d);
            uint8_t *copy;
            assert_int_equal(s_decap(DECAP_GRETAP, s_linktype(links[l]), &f, f.n, &d, &copy),
                             DECAP_OTHER);
            free(copy);
        }
    }
}

static void test_vxlan_bad(void **state)
{
    (void)state;
    s_buf_t p, f;
    decap_t d;
    uint8_t *copy;
    s_vxlan(&p, 0xabcdef, 0x00); /* no I flag */
    s_frame(&f, S_ETH, S_V4, 17, &p);
    assert_int_equal(s_decap(DECAP_VXLAN, 1, &f, f.n, &d, &copy), DECAP_HEADER);
    free(copy);
    s_vxlan(&p, 0xabcdef, 0x08);
    p.b[3] = 53; /* DNS, not VXLAN */
    s_frame(&f, S_ETH, S_V4, 17, &p);
    assert_int_equal(s_decap(DECAP_VXLAN, 1, &f, f.n, &d, &copy), DECAP_OTHER);
    free(copy);
    s_vxlan(&p, 0xabcdef, 0x08);
    s_frame(&f, S_ETH, S_V4, 17, &p);
    f.b[14 + 6] = 0x20; /* MF: a first fragment */
    assert_int_equal(s_decap(DECAP_VXLAN, 1, &f, f.n, &d, &copy), DECAP_FRAGMENT);
    free(copy);
    f.b[14 + 6] = 0;
    f.b[14] = 0x55; /* IP version 5 */
    assert_int_equal(s_decap(DECAP_VXLAN, 1, &f, f.n, &d, &copy), DECAP_OUTER);
    free(copy);
    f.b[14] = 0x45;
    f.b[12] = 0x08;
    f.b[13] = 0x06; /* ARP */
    assert_int_equal(s_decap(DECAP_AUTO, 1, &f, f.n, &d, &copy), DECAP_OTHER);
    free(copy);
    assert_int_equal(s_decap(DECAP_AUTO, 105, &f, f.n, &d, &copy), DECAP_OUTER);
    free(copy);
}

/* Ethernet pads a short frame: the padding is not the inner frame's. */
static void test_vxlan_padding_not_inner(void **state)
{
    (void)state;
    s_buf_t p, f;
    s_vxlan(&p, 7, 0x08);
    s_frame(&f, S_ETH, S_V4, 17, &p);
    size_t real = f.n;
    static const uint8_t pad[8] = {0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee};
    s_put(&f, pad, sizeof pad);
    decap_t d;
    uint8_t *copy;
    assert_int_equal(s_decap(DECAP_VXLAN, 1, &f, f.n, &d, &copy), DECAP_OK);
    assert_int_equal(d.caplen, sizeof s_inner_eth);
    assert_int_equal(d.origlen, sizeof s_inner_eth);
    assert_ptr_equal(d.data + d.caplen, copy + real);
    free(copy);
}

static void test_gretap_key_and_flags(void **state)
{
    (void)state;
    static const unsigned flag_sets[] = {0x0000, 0x2000, 0x3000, 0xb000, 0x8000};
    for (size_t i = 0; i < 5; i++) {
        for (int ip = S_V4; ip <= S_V6; ip++) {
            s_buf_t p, f;
            s_gre(&p, flag_sets[i], 0x6558, 0x01020304);
            s_put(&p, s_inner_eth, sizeof s_inner_eth);
            s_frame(&f, S_ETH, ip, 47, &p);
            decap_t d;
            s_check(DECAP_GRETAP, 1, &f, s_inner_eth, sizeof s_inner_eth, &d);
            assert_int_equal(d.found, DECAP_GRETAP);
            assert_int_equal(d.has_id, (flag_sets[i] & 0x2000) != 0);
            assert_int_equal(d.id, d.has_id ? 0x01020304u : 0u);
            uint8_t *copy;
            assert_int_equal(s_decap(DECAP_ERSPAN, 1, &f, f.n, &d, &copy), DECAP_OTHER);
            free(copy);
            assert_int_equal(s_decap(DECAP_GRE, 1, &f, f.n, &d, &copy), DECAP_OTHER);
            free(copy);
            assert_int_equal(s_decap(DECAP_VXLAN, 1, &f, f.n, &d, &copy), DECAP_OTHER);
            free(copy);
        }
    }
}

static void test_gre_bad_version_and_flags(void **state)
{
    (void)state;
    /* version 1 (PPTP), routing present, strict source route */
    static const unsigned bad[] = {0x2001, 0x4000, 0x0800, 0x0007};
    for (size_t i = 0; i < 4; i++) {
        s_buf_t p, f;
        s_gre(&p, bad[i], 0x6558, 1);
        s_put(&p, s_inner_eth, sizeof s_inner_eth);
        s_frame(&f, S_ETH, S_V4, 47, &p);
        decap_t d;
        uint8_t *copy;
        assert_int_equal(s_decap(DECAP_GRETAP, 1, &f, f.n, &d, &copy), DECAP_HEADER);
        assert_null(d.data);
        free(copy);
    }
}

static void test_gre_ip(void **state)
{
    (void)state;
    s_buf_t p, f;
    s_gre(&p, 0x2000, 0x0800, 99);
    s_put(&p, S_INNER_IP, S_INNER_IP_LEN);
    s_frame(&f, S_ETH, S_V4, 47, &p);
    decap_t d;
    s_check(DECAP_GRE, 1, &f, S_INNER_IP, S_INNER_IP_LEN, &d);
    assert_int_equal(d.found, DECAP_GRE);
    assert_true(d.inner_ip);
    assert_int_equal(d.ethertype, 0x0800);
    assert_int_equal(d.id, 99);
    s_check(DECAP_AUTO, 1, &f, S_INNER_IP, S_INNER_IP_LEN, &d);
    uint8_t *copy;
    assert_int_equal(s_decap(DECAP_GRETAP, 1, &f, f.n, &d, &copy), DECAP_OTHER);
    free(copy);
    /* GRE says IPv6, the packet is IPv4 */
    s_gre(&p, 0, 0x86dd, 0);
    s_put(&p, S_INNER_IP, S_INNER_IP_LEN);
    s_frame(&f, S_ETH, S_V4, 47, &p);
    assert_int_equal(s_decap(DECAP_GRE, 1, &f, f.n, &d, &copy), DECAP_HEADER);
    free(copy);

    assert_int_equal(decap_linktype(DECAP_GRE), 101);
    assert_int_equal(decap_linktype(DECAP_ERSPAN), 1);
    uint8_t eth[14];
    decap_ethernet_header(0x86dd, eth);
    static const uint8_t want[14] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd};
    assert_memory_equal(eth, want, 14);
}

static void test_erspan_types(void **state)
{
    (void)state;
    s_buf_t p, f;
    decap_t d;
    uint8_t *copy;
    /* type I: GRE without sequence, no ERSPAN header */
    s_gre(&p, 0, 0x88be, 0);
    s_put(&p, s_inner_eth, sizeof s_inner_eth);
    s_frame(&f, S_ETH, S_V4, 47, &p);
    s_check(DECAP_ERSPAN, 1, &f, s_inner_eth, sizeof s_inner_eth, &d);
    assert_int_equal(d.erspan_type, 1);
    assert_false(d.has_id);

    s_erspan2(&p, 1, 0x3ff);
    s_frame(&f, S_ETH_VLAN, S_V4, 47, &p);
    s_check(DECAP_ERSPAN, 1, &f, s_inner_eth, sizeof s_inner_eth, &d);
    assert_int_equal(d.found, DECAP_ERSPAN);
    assert_int_equal(d.erspan_type, 2);
    assert_int_equal(d.id, 0x3ff);
    assert_false(decap_erspan_ts(&d, 1, &(uint64_t){0}));
    s_erspan2(&p, 2, 5); /* type II's protocol, type III's version */
    s_frame(&f, S_ETH, S_V4, 47, &p);
    assert_int_equal(s_decap(DECAP_ERSPAN, 1, &f, f.n, &d, &copy), DECAP_HEADER);
    free(copy);

    for (int platf = -1; platf <= 3; platf += 4) {
        s_erspan3(&p, 2, 300, 123456789, 0, 2, platf, 1700000000);
        s_frame(&f, S_ETH, S_V6, 47, &p);
        s_check(DECAP_ERSPAN, 1, &f, s_inner_eth, sizeof s_inner_eth, &d);
        assert_int_equal(d.erspan_type, 3);
        assert_int_equal(d.id, 300);
        assert_int_equal(d.erspan_gra, 2);
        assert_int_equal(d.erspan_ts, 123456789);
        assert_int_equal(d.erspan_has_upper, platf == 3);
    }
    s_erspan3(&p, 1, 300, 1, 0, 2, -1, 0); /* type III's protocol, type II's version */
    s_frame(&f, S_ETH, S_V4, 47, &p);
    assert_int_equal(s_decap(DECAP_ERSPAN, 1, &f, f.n, &d, &copy), DECAP_HEADER);
    free(copy);
    s_erspan3(&p, 2, 300, 1, 5, 2, -1, 0); /* frame type 5: unknown */
    s_frame(&f, S_ETH, S_V4, 47, &p);
    assert_int_equal(s_decap(DECAP_ERSPAN, 1, &f, f.n, &d, &copy), DECAP_HEADER);
    free(copy);
    s_erspan3(&p, 2, 17, 1, 2, 1, 3, 0); /* frame type IP */
    s_frame(&f, S_ETH, S_V4, 47, &p);
    s_check(DECAP_ERSPAN, 1, &f, S_INNER_IP, S_INNER_IP_LEN, &d);
    assert_true(d.inner_ip);
    assert_int_equal(d.ethertype, 0x0800);
}

static void test_erspan_timestamps(void **state)
{
    (void)state;
    decap_t d = {.erspan_type = 3,
                 .erspan_gra = 2,
                 .erspan_ts = 123456789,
                 .erspan_has_upper = true,
                 .erspan_upper = 1700000000};
    uint64_t ts = 0;
    assert_true(decap_erspan_ts(&d, 0, &ts));
    assert_int_equal(ts, 1700000000123456789ull);
    /* without the seconds: the second nearest the capture time */
    d.erspan_has_upper = false;
    assert_true(decap_erspan_ts(&d, 1700000005900000000ull, &ts));
    assert_int_equal(ts, 1700000006123456789ull);
    assert_true(decap_erspan_ts(&d, 1700000005000000000ull, &ts));
    assert_int_equal(ts, 1700000005123456789ull);
    d.erspan_ts = 1000000000; /* not nanoseconds of a second */
    assert_false(decap_erspan_ts(&d, 1, &ts));
    /* 100 ns with the upper word: a 64-bit count */
    d = (decap_t){.erspan_type = 3,
                  .erspan_gra = 1,
                  .erspan_ts = 5,
                  .erspan_has_upper = true,
                  .erspan_upper = 3};
    assert_true(decap_erspan_ts(&d, 0, &ts));
    assert_int_equal(ts, ((3ull << 32) + 5) * 100);
    /* 100 ns without: the wrap of 2^32 units nearest the capture time */
    d.erspan_has_upper = false;
    uint64_t cap = 1700000000000000000ull;
    uint64_t units = cap / 100;
    d.erspan_ts = (uint32_t)(units + 10);
    assert_true(decap_erspan_ts(&d, cap, &ts));
    assert_int_equal(ts, cap + 1000);
    d.erspan_ts = (uint32_t)(units - 10);
    assert_true(decap_erspan_ts(&d, cap, &ts));
    assert_int_equal(ts, cap - 1000);
    /* 100 us */
    d.erspan_gra = 0;
    d.erspan_ts = (uint32_t)(cap / 100000 - 3);
    assert_true(decap_erspan_ts(&d, cap, &ts));
    assert_int_equal(ts, cap - 300000);
    d.erspan_gra = 3; /* user-defined: nothing to go by */
    assert_false(decap_erspan_ts(&d, cap, &ts));
    d.erspan_type = 2;
    d.erspan_gra = 1;
    assert_false(decap_erspan_ts(&d, cap, &ts));
}

static void test_names_and_filters(void **state)
{
    (void)state;
    assert_string_equal(decap_kind_name(DECAP_ERSPAN), "erspan");
    assert_string_equal(decap_reason_name(DECAP_HEADER), "header");
    assert_string_equal(decap_reason_name(DECAP_ID), "id");
    assert_string_equal(decap_filter(DECAP_VXLAN), "udp dst port 4789");
    assert_string_equal(decap_filter(DECAP_OFF), "");
    assert_string_equal(decap_id_name(DECAP_VXLAN), "vni");
    assert_string_equal(decap_id_name(DECAP_ERSPAN), "session");
    assert_string_equal(decap_id_name(DECAP_GRETAP), "key");
    decap_t d;
    assert_int_equal(decap_frame(DECAP_OFF, 1, s_inner_eth, sizeof s_inner_eth, 44, &d),
                     DECAP_OTHER);
    assert_int_equal(decap_frame(DECAP_AUTO, 1, NULL, 0, 0, &d), DECAP_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vxlan_every_link_and_ip),
        cmocka_unit_test(test_vxlan_bad),
        cmocka_unit_test(test_vxlan_padding_not_inner),
        cmocka_unit_test(test_gretap_key_and_flags),
        cmocka_unit_test(test_gre_bad_version_and_flags),
        cmocka_unit_test(test_gre_ip),
        cmocka_unit_test(test_erspan_types),
        cmocka_unit_test(test_erspan_timestamps),
        cmocka_unit_test(test_names_and_filters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
