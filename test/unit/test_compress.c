/*
 * test_compress — PACKETS_ZSTD frames (proto/wire-v2.md §4.1): the sample
 * capture's packets round-trip byte for byte at every level; the declared
 * length is bounded before anything is sized from it; corrupt, cut and
 * lying frames are refused with their reason, never a crash; what does not
 * compress is left plain; the COMPRESS setting's syntax.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "compress.h"
#include "sample.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static uint8_t *s_plain, *s_packed, *s_back;
static size_t s_plain_len, s_cap;
static uint32_t s_count;

/* The sample capture's headers (its first 96 bytes, as SNAPLEN=96 would
 * keep: its payloads are random), four times over, as one PACKETS frame. */
static int s_setup(void **state)
{
    (void)state;
    sample_pkt_t *pkts;
    size_t n = sample_load(TAPMESH_TEST_DATA "/sample-ether.pcap", &pkts);
    if (n == 0)
        return -1;
    s_cap = 4 << 20;
    s_plain = malloc(s_cap);
    s_packed = malloc(compress_bound(s_cap));
    s_back = malloc(s_cap);
    size_t off;
    wire_packets_begin(s_plain, s_cap, &off);
    for (int round = 0; round < 4; round++)
        for (size_t i = 0; i < n; i++) {
            wire_packet_t p = {.ts_ns = pkts[i].ts + (uint64_t)round * 1000000000u,
                               .caplen = pkts[i].caplen < 96 ? pkts[i].caplen : 96,
                               .origlen = pkts[i].origlen,
                               .data = pkts[i].data};
            if (!wire_packets_put(s_plain, s_cap, &off, &p))
                return -1;
            s_count++;
        }
    s_plain_len = off;
    sample_free(&pkts, n);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    free(s_plain);
    free(s_packed);
    free(s_back);
    return 0;
}

static void test_round_trip(void **state)
{
    (void)state;
    static const int levels[] = {COMPRESS_LEVEL_MIN, COMPRESS_LEVEL_DEFAULT, 9};
    for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
        int level = levels[l];
        compress_t *c = compress_new(level);
        assert_non_null(c);
        size_t n = compress_pack(c, s_plain, s_plain_len, s_packed, compress_bound(s_plain_len));
        assert_true(n > WIRE_ZSTD_HDR);
        assert_true(n < s_plain_len / 3); /* headers repeat */
        assert_true(compress_is_packed(s_packed, n));
        assert_false(compress_is_packed(s_plain, s_plain_len));
        /* the header: signature, version, type 10, the plain length */
        assert_int_equal(wire_be16(s_packed), WIRE_SIGNATURE);
        assert_int_equal(s_packed[2], WIRE_VERSION);
        assert_int_equal(s_packed[3], 10);
        assert_int_equal(wire_be32(s_packed + 4), s_plain_len);
        uint32_t declared = 0;
        assert_int_equal(compress_peek(s_packed, n, &declared), WIRE_OK);
        assert_int_equal(declared, s_plain_len);
        /* a plain zstd frame follows, as the zstd tool reads it */
        assert_int_equal(ZSTD_getFrameContentSize(s_packed + 8, n - 8), s_plain_len);
        memset(s_back, 0xaa, s_plain_len);
        assert_int_equal(compress_unpack(c, s_packed, n, s_back, declared), WIRE_OK);
        assert_memory_equal(s_back, s_plain, s_plain_len);
        assert_int_equal(wire_packets_check(s_back, declared, s_count, 1, NULL, NULL), WIRE_OK);
        compress_destroy(&c);
        assert_null(c);
    }
    compress_destroy(NULL);
}

/* Level 0 only decompresses; what would not get smaller stays plain. */
static void test_not_packed(void **state)
{
    (void)state;
    compress_t *c = compress_new(0);
    assert_int_equal(compress_pack(c, s_plain, s_plain_len, s_packed, compress_bound(s_cap)), 0);
    compress_destroy(&c);
    c = compress_new(3);
    /* random bytes do not compress */
    uint8_t frame[4096];
    size_t off;
    wire_packets_begin(frame, sizeof frame, &off);
    uint8_t data[1000];
    srand(7);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)rand();
    wire_packet_t p = {.ts_ns = 1, .caplen = sizeof data, .origlen = sizeof data, .data = data};
    assert_true(wire_packets_put(frame, sizeof frame, &off, &p));
    assert_int_equal(compress_pack(c, frame, off, s_packed, compress_bound(off)), 0);
    /* an empty payload (a header alone) is never worth it */
    assert_int_equal(compress_pack(c, frame, WIRE_FRAME_HDR, s_packed, 64), 0);
    /* no room in `out`: 0, and the context still works */
    assert_int_equal(compress_pack(c, s_plain, s_plain_len, s_packed, 16), 0);
    assert_true(compress_pack(c, s_plain, s_plain_len, s_packed, compress_bound(s_plain_len)) > 0);
    compress_destroy(&c);
}

static void test_declared_bounds(void **state)
{
    (void)state;
    compress_t *c = compress_new(3);
    size_t n = compress_pack(c, s_plain, s_plain_len, s_packed, compress_bound(s_plain_len));
    uint32_t declared;
    /* above 64 MiB: refused before anything is sized from it */
    s_packed[4] = 0x04, s_packed[5] = 0, s_packed[6] = 0, s_packed[7] = 1;
    assert_int_equal(compress_peek(s_packed, n, &declared), WIRE_ERR_RANGE);
    assert_int_equal(compress_unpack(c, s_packed, n, s_back, s_cap), WIRE_ERR_RANGE);
    s_packed[4] = 0xff;
    assert_int_equal(compress_peek(s_packed, n, &declared), WIRE_ERR_RANGE);
    /* exactly 64 MiB is within the bound (zstd then fails: it holds less) */
    s_packed[4] = 0x04, s_packed[7] = 0;
    assert_int_equal(compress_peek(s_packed, n, &declared), WIRE_OK);
    assert_int_equal(declared, WIRE_PAYLOAD_MAX);
    /* below a frame header */
    memset(s_packed + 4, 0, 4);
    s_packed[7] = 3;
    assert_int_equal(compress_peek(s_packed, n, &declared), WIRE_ERR_RANGE);
    /* a length other than the content's: zstd's error, or a short result */
    for (uint32_t lie = (uint32_t)s_plain_len - 1; lie <= s_plain_len + 1; lie += 2) {
        s_packed[4] = (uint8_t)(lie >> 24), s_packed[5] = (uint8_t)(lie >> 16);
        s_packed[6] = (uint8_t)(lie >> 8), s_packed[7] = (uint8_t)lie;
        assert_int_equal(compress_unpack(c, s_packed, n, s_back, lie), WIRE_ERR_ZSTD);
    }
    /* the caller's buffer is not the declared length */
    n = compress_pack(c, s_plain, s_plain_len, s_packed, compress_bound(s_plain_len));
    assert_int_equal(compress_unpack(c, s_packed, n, s_back, s_plain_len - 1), WIRE_ERR_OVERSIZE);
    assert_int_equal(compress_unpack(c, s_packed, n, s_back, s_plain_len), WIRE_OK);
    compress_destroy(&c);
}

static void test_corrupt(void **state)
{
    (void)state;
    compress_t *c = compress_new(3);
    size_t n = compress_pack(c, s_plain, s_plain_len, s_packed, compress_bound(s_plain_len));
    uint32_t declared;
    /* the header */
    static const struct {
        size_t at;
        uint8_t value;
        wire_err_t want;
    } hdr[] = {{0, 0x00, WIRE_ERR_SIGNATURE},
               {2, 1, WIRE_ERR_VERSION},
               {3, WIRE_PACKETS, WIRE_ERR_TYPE},
               {3, 11, WIRE_ERR_TYPE}};
    for (size_t i = 0; i < sizeof hdr / sizeof *hdr; i++) {
        uint8_t keep = s_packed[hdr[i].at];
        s_packed[hdr[i].at] = hdr[i].value;
        assert_int_equal(compress_peek(s_packed, n, &declared), hdr[i].want);
        assert_int_equal(compress_unpack(c, s_packed, n, s_back, s_plain_len), hdr[i].want);
        s_packed[hdr[i].at] = keep;
    }
    /* every cut: truncated header, or zstd's error (never a crash, never OK) */
    for (size_t cut = 0; cut < n; cut += cut < 64 ? 1 : 97) {
        uint8_t *exact = malloc(cut ? cut : 1);
        memcpy(exact, s_packed, cut);
        wire_err_t err = compress_unpack(c, exact, cut, s_back, s_plain_len);
        assert_int_not_equal(err, WIRE_OK);
        if (cut < WIRE_ZSTD_HDR + 1)
            assert_int_equal(err, WIRE_ERR_TRUNCATED);
        else
            assert_int_equal(err, WIRE_ERR_ZSTD);
        free(exact);
    }
    /* flipped bytes in the zstd frame: refused, or (checksum-less data
     * blocks) other bytes that the payload check then judges */
    unsigned refused = 0;
    for (size_t at = WIRE_ZSTD_HDR; at < n; at += 13) {
        s_packed[at] ^= 0x5a;
        wire_err_t err = compress_unpack(c, s_packed, n, s_back, s_plain_len);
        assert_true(err == WIRE_OK || err == WIRE_ERR_ZSTD);
        refused += err != WIRE_OK;
        s_packed[at] ^= 0x5a;
    }
    assert_true(refused > 0);
    /* and the context is still good afterwards */
    assert_int_equal(compress_unpack(c, s_packed, n, s_back, s_plain_len), WIRE_OK);
    assert_memory_equal(s_back, s_plain, s_plain_len);
    /* zstd's skippable frame alone gives nothing: a short result */
    uint8_t skip[WIRE_ZSTD_HDR + 8] = {0x54, 0x4d, 2, 10, 0, 0, 0, 8, 0x50, 0x2a, 0x4d, 0x18};
    uint8_t out[8];
    assert_int_equal(compress_unpack(c, skip, sizeof skip, out, sizeof out), WIRE_ERR_ZSTD);
    compress_destroy(&c);
}

static void test_parse(void **state)
{
    (void)state;
    int level = -1;
    char why[128];
    assert_int_equal(compress_parse("off", &level, why, sizeof why), 0);
    assert_int_equal(level, 0);
    assert_int_equal(compress_parse("zstd", &level, why, sizeof why), 0);
    assert_int_equal(level, COMPRESS_LEVEL_DEFAULT);
    assert_int_equal(compress_parse("zstd:1", &level, why, sizeof why), 0);
    assert_int_equal(level, 1);
    assert_int_equal(compress_parse("zstd:19", &level, why, sizeof why), 0);
    assert_int_equal(level, 19);
    static const char *const bad[] = {"zstd:0",  "zstd:20", "zstd:", "zstd:3x", "zstd:-1",
                                      "zstd:+3", "lz4",     "ZSTD",  "zstd3",   "zstd: 3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        assert_int_equal(compress_parse(bad[i], &level, why, sizeof why), -EINVAL);
        assert_non_null(strstr(why, bad[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_not_packed),
        cmocka_unit_test(test_declared_bounds), cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
