/*
 * test_trailer — the Arista 7130 (Metamako) trailer (trailer.h): frames
 * built here with one or two stacked trailers, with and without the new
 * FCS and TLV extensions, their timestamps, device, port and where each
 * trailer begins; every frame cut short (in a buffer of exactly its
 * length, so that a read past the end shows under ASan); implausible
 * timestamps and frames without a trailer refused. The Arista 7280 header:
 * each of its four versions, with and without an 802.1Q tag before it,
 * TAI taken back to UTC, the 48-bit form's seconds unwrapped at both edges
 * of the wrap, every cut and every wrong field refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trailer.h"

#define S_NS 1000000000ull
#define S_CAPTURE (1700000000ull * S_NS + 5)

typedef struct {
    uint8_t b[512];
    uint32_t n;
} s_buf_t;

static void s_u32(s_buf_t *f, uint32_t v)
{
    assert_true(f->n + 4 <= sizeof f->b);
    f->b[f->n++] = (uint8_t)(v >> 24);
    f->b[f->n++] = (uint8_t)(v >> 16);
    f->b[f->n++] = (uint8_t)(v >> 8);
    f->b[f->n++] = (uint8_t)v;
}

/* A 60-byte Ethernet frame (no FCS). */
static void s_frame(s_buf_t *f)
{
    f->n = 60;
    for (uint32_t i = 0; i < 60; i++)
        f->b[i] = (uint8_t)(i * 7 + 1);
    f->b[12] = 0x08;
    f->b[13] = 0x00;
}

/* Appends a trailer; `ext` adds a sequence-number TLV (one word of data). */
static void s_trailer(s_buf_t *f, uint32_t sec, uint32_t nsec, uint16_t dev, uint8_t port, bool ext,
                      bool fcs)
{
    s_u32(f, 0xdeadbeef); /* original FCS */
    if (ext) {
        s_u32(f, 0x00000102);            /* data */
        s_u32(f, 1u << 6 | 1u << 5 | 0); /* one word, last, tag 0 */
    }
    s_u32(f, sec);
    s_u32(f, nsec);
    s_u32(f, (uint32_t)(ext ? 3 : 1) << 24 | (uint32_t)dev << 8 | port);
    if (fcs)
        s_u32(f, 0x01020304);
}

static bool s_find(const s_buf_t *f, uint32_t len, trailer_t *t)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, f->b, len);
    bool ok = trailer_metamako(copy, len, S_CAPTURE, t);
    free(copy);
    return ok;
}

static void test_one_trailer(void **state)
{
    (void)state;
    for (int ext = 0; ext < 2; ext++) {
        for (int fcs = 0; fcs < 2; fcs++) {
            s_buf_t f;
            s_frame(&f);
            s_trailer(&f, 1700000001, 123456789, 0x0102, 7, ext, fcs);
            trailer_t t;
            assert_true(s_find(&f, f.n, &t));
            assert_int_equal(t.start, 60);
            assert_int_equal(t.ts_ns, 1700000001123456789ull);
            assert_int_equal(t.device, 0x0102);
            assert_int_equal(t.port, 7);
            assert_int_equal(t.fcs, fcs);
            assert_int_equal(t.flags & 2, ext ? 2 : 0);
            /* cut anywhere: never a read past the end, and what is found
             * is never a trailer that is not there */
            for (uint32_t len = 0; len < f.n; len++) {
                trailer_t c;
                if (s_find(&f, len, &c))
                    assert_true(c.start + 16 <= len);
            }
        }
    }
}

static void test_stacked(void **state)
{
    (void)state;
    s_buf_t f;
    s_frame(&f);
    s_trailer(&f, 1700000001, 100, 1, 1, false, true);
    uint32_t second = f.n - 4; /* the first switch's new FCS is the second's original FCS */
    f.n = second;
    s_trailer(&f, 1700000002, 200, 2, 9, true, true);
    trailer_t t[4];
    uint8_t *copy = malloc(f.n);
    assert_non_null(copy);
    memcpy(copy, f.b, f.n);
    assert_int_equal(trailer_metamako_all(copy, f.n, S_CAPTURE, t, 4), 2);
    free(copy);
    assert_int_equal(t[0].start, second);
    assert_int_equal(t[0].ts_ns, 1700000002000000200ull);
    assert_int_equal(t[0].port, 9);
    assert_int_equal(t[1].start, 60);
    assert_int_equal(t[1].ts_ns, 1700000001000000100ull);
    assert_int_equal(t[1].device, 1);
    assert_true(t[1].fcs);
}

static void test_implausible(void **state)
{
    (void)state;
    s_buf_t f;
    s_frame(&f);
    trailer_t t;
    assert_false(s_find(&f, f.n, &t));                         /* no trailer */
    s_trailer(&f, 1700000001, 1000000000, 1, 1, false, false); /* nanoseconds */
    assert_false(s_find(&f, f.n, &t));
    s_frame(&f);
    s_trailer(&f, 1700000000 + 31 * 86400, 5, 1, 1, false, false); /* 31 days later */
    assert_false(s_find(&f, f.n, &t));
    s_frame(&f);
    s_trailer(&f, 1700000000 - 29 * 86400, 5, 1, 1, false, false); /* 29 days before */
    assert_true(s_find(&f, f.n, &t));
    s_frame(&f);
    s_trailer(&f, 3600, 5, 1, 1, false, false);
    assert_false(s_find(&f, f.n, &t));
    /* extensions flagged, none there before the Ethernet header ends */
    s_buf_t g = {.n = 14};
    s_trailer(&g, 1700000001, 5, 1, 1, false, false);
    g.b[g.n - 4] = 3;
    assert_false(s_find(&g, g.n, &t));
    assert_false(trailer_metamako(NULL, 0, S_CAPTURE, &t));
}

/* ---- Arista 7280 header ---------------------------------------------- */

#define S_TAI ((uint64_t)TRAILER_TAI_UTC_S * S_NS)

static void s_u16(s_buf_t *f, uint16_t v)
{
    assert_true(f->n + 2 <= sizeof f->b);
    f->b[f->n++] = (uint8_t)(v >> 8);
    f->b[f->n++] = (uint8_t)v;
}

/* The 60-byte frame with a timestamp header of `version` after its
 * addresses (after an 802.1Q tag with `tag`): the 64-bit forms carry `sec`
 * whole, the 48-bit ones its low 16 bits. */
static void s_avsp(s_buf_t *f, bool tag, uint16_t subtype, uint16_t version, uint64_t sec,
                   uint32_t nsec)
{
    s_buf_t orig;
    s_frame(&orig);
    f->n = 0;
    memcpy(f->b, orig.b, 12);
    f->n = 12;
    if (tag) {
        s_u16(f, 0x8100);
        s_u16(f, 0x0064);
    }
    s_u16(f, 0xd28b);
    s_u16(f, subtype);
    s_u16(f, version);
    if ((version & 0xf0) == 0x10)
        s_u32(f, (uint32_t)sec);
    else
        s_u16(f, (uint16_t)sec);
    s_u32(f, nsec);
    memcpy(f->b + f->n, orig.b + 12, orig.n - 12);
    f->n += orig.n - 12;
}

static bool s_find_avsp(const s_buf_t *f, uint32_t len, uint64_t capture_ns, trailer_avsp_t *h)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, f->b, len);
    bool ok = trailer_arista7280(copy, len, capture_ns, h);
    free(copy);
    return ok;
}

static void test_avsp_versions(void **state)
{
    (void)state;
    const struct {
        uint16_t version;
        uint64_t sec; /* what the header carries */
        uint32_t len;
    } cases[] = {
        {0x0010, 1700000001 + TRAILER_TAI_UTC_S, 14}, /* 64-bit TAI */
        {0x0110, 1700000001, 14},                     /* 64-bit UTC */
        {0x0020, 1700000001 + TRAILER_TAI_UTC_S, 12}, /* 48-bit TAI */
        {0x0120, 1700000001, 12},                     /* 48-bit UTC */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        for (int tag = 0; tag < 2; tag++) {
            s_buf_t f;
            s_avsp(&f, tag, 1, cases[i].version, cases[i].sec, 123456789);
            trailer_avsp_t h;
            assert_true(s_find_avsp(&f, f.n, S_CAPTURE, &h));
            assert_int_equal(h.ts_ns, 1700000001123456789ull);
            assert_int_equal(h.start, tag ? 16 : 12);
            assert_int_equal(h.len, cases[i].len);
            assert_int_equal(h.version, cases[i].version);
            /* the original EtherType follows the header */
            assert_int_equal(f.b[h.start + h.len], 0x08);
            assert_int_equal(f.b[h.start + h.len + 1], 0x00);
            /* cut anywhere before the original EtherType's end: refused,
             * never a read past the end */
            uint32_t need = h.start + h.len + 2;
            for (uint32_t len = 0; len < need; len++)
                assert_false(s_find_avsp(&f, len, S_CAPTURE, &h));
            assert_true(s_find_avsp(&f, need, S_CAPTURE, &h));
            assert_int_equal(h.ts_ns, 1700000001123456789ull);
        }
    }
}

static void test_avsp_wrap(void **state)
{
    (void)state;
    /* 1700003840 is a multiple of 65536: the 48-bit seconds read 0 there */
    const uint64_t wrap = 1700003840ull;
    assert_int_equal(wrap % 65536, 0);
    s_buf_t f;
    trailer_avsp_t h;
    /* captured just before the wrap, stamped just after it */
    s_avsp(&f, false, 1, 0x0120, 0, 100);
    assert_true(s_find_avsp(&f, f.n, (wrap - 1) * S_NS + 900000000, &h));
    assert_int_equal(h.ts_ns, wrap * S_NS + 100);
    /* captured just after the wrap, stamped just before it */
    s_avsp(&f, false, 1, 0x0120, 65535, 900000000);
    assert_true(s_find_avsp(&f, f.n, wrap * S_NS + 100000000, &h));
    assert_int_equal(h.ts_ns, (wrap - 1) * S_NS + 900000000);
    /* half a wrap away either way */
    s_avsp(&f, false, 1, 0x0120, 32767, 0);
    assert_true(s_find_avsp(&f, f.n, wrap * S_NS, &h));
    assert_int_equal(h.ts_ns, (wrap + 32767) * S_NS);
    s_avsp(&f, false, 1, 0x0120, 32769, 0);
    assert_true(s_find_avsp(&f, f.n, wrap * S_NS, &h));
    assert_int_equal(h.ts_ns, (wrap - 65536 + 32769) * S_NS);
    /* TAI: the UTC seconds are just before the wrap, the TAI ones after */
    s_avsp(&f, false, 1, 0x0020, (wrap - 1 + TRAILER_TAI_UTC_S) % 65536, 500000000);
    assert_true(s_find_avsp(&f, f.n, wrap * S_NS - 200000000, &h));
    assert_int_equal(h.ts_ns, (wrap - 1) * S_NS + 500000000);
    /* TAI: unwrapped on the switch's timescale, then taken back to UTC
     * (unwrapped near the UTC capture time, 32797 would be the wrap before) */
    s_avsp(&f, false, 1, 0x0020, (wrap + 32760 + TRAILER_TAI_UTC_S) % 65536, 0);
    assert_int_equal((wrap + 32760 + TRAILER_TAI_UTC_S) % 65536, 32797);
    assert_true(s_find_avsp(&f, f.n, wrap * S_NS, &h));
    assert_int_equal(h.ts_ns, (wrap + 32760) * S_NS);
}

static void test_avsp_refused(void **state)
{
    (void)state;
    s_buf_t f;
    trailer_avsp_t h;
    s_frame(&f); /* no header */
    assert_false(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    s_avsp(&f, false, 2, 0x0110, 1700000001, 5); /* another subtype */
    assert_false(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    s_avsp(&f, false, 0xcafe, 0x0110, 1700000001, 5);
    assert_false(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    const uint16_t unknown[] = {0x0000, 0x0011, 0x0111, 0x0021, 0x0121, 0x0030, 0x0210, 0x1010};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        s_avsp(&f, false, 1, unknown[i], 1700000001, 5);
        assert_false(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    }
    s_avsp(&f, false, 1, 0x0110, 1700000001, 1000000000); /* nanoseconds */
    assert_false(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    s_avsp(&f, false, 1, 0x0120, 1700000001, 0x40000000); /* the top bits of the 48-bit ns */
    assert_false(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    s_avsp(&f, false, 1, 0x0110, 1700000000 + 31 * 86400, 5); /* 31 days later */
    assert_false(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    s_avsp(&f, false, 1, 0x0110, 1700000000 - 29 * 86400, 5); /* 29 days before */
    assert_true(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    s_avsp(&f, false, 1, 0x0010, 1700000000 - 31 * 86400 + TRAILER_TAI_UTC_S, 5);
    assert_false(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    s_avsp(&f, false, 1, 0x0010, 36, 5); /* TAI before the epoch in UTC */
    assert_false(s_find_avsp(&f, f.n, 0, &h));
    s_avsp(&f, false, 1, 0x0010, 37, 5);
    assert_true(s_find_avsp(&f, f.n, 0, &h));
    assert_int_equal(h.ts_ns, 5);
    /* two tags, or a tag of another kind: only one 802.1Q tag is looked through */
    s_avsp(&f, true, 1, 0x0110, 1700000001, 5);
    f.b[12] = 0x88;
    f.b[13] = 0xa8;
    assert_false(s_find_avsp(&f, f.n, S_CAPTURE, &h));
    s_buf_t g = {.n = 0};
    memcpy(g.b, f.b, 12);
    g.n = 12;
    s_u16(&g, 0x8100);
    s_u16(&g, 0x0001);
    memcpy(g.b + g.n, f.b + 12, f.n - 12);
    g.n += f.n - 12;
    g.b[16] = 0x81; /* 0x8100 | TCI | 0x8100 | TCI | 0xd28b ... */
    g.b[17] = 0x00;
    assert_false(s_find_avsp(&g, g.n, S_CAPTURE, &h));
    assert_false(trailer_arista7280(NULL, 0, S_CAPTURE, &h));
    assert_false(trailer_arista7280(NULL, 100, S_CAPTURE, &h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_trailer), cmocka_unit_test(test_stacked),
        cmocka_unit_test(test_implausible), cmocka_unit_test(test_avsp_versions),
        cmocka_unit_test(test_avsp_wrap),   cmocka_unit_test(test_avsp_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
