/*
 * test_trailer — the Arista 7130 (Metamako) trailer (trailer.h): frames
 * built here with one or two stacked trailers, with and without the new
 * FCS and TLV extensions, their timestamps, device, port and where each
 * trailer begins; every frame cut short (in a buffer of exactly its
 * length, so that a read past the end shows under ASan); implausible
 * timestamps and frames without a trailer refused.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_trailer),
        cmocka_unit_test(test_stacked),
        cmocka_unit_test(test_implausible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
