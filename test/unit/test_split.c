/*
 * test_split — the relay's filter and flow split on real packets (the
 * shipped sample capture, read with libpcap): every packet goes to exactly
 * one way, both directions of a flow to the same way, the filter keeps
 * exactly what tcpdump's would, and the parts are valid payload frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "decode.h"
#include "split.h"

#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

static uint8_t s_payload[4 << 20];
static size_t s_len;
static uint32_t s_count;

/* The sample as one payload frame. */
static void s_load(const char *filter)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(TAPMESH_TEST_DATA "/sample-ether.pcap",
                                                        PCAP_TSTAMP_PRECISION_NANO, err);
    assert_non_null(p);
    if (filter) {
        struct bpf_program prog;
        assert_int_equal(pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN), 0);
        pcap_setfilter(p, &prog);
        pcap_freecode(&prog);
    }
    wire_packets_begin(s_payload, sizeof s_payload, &s_len);
    s_count = 0;
    struct pcap_pkthdr *h;
    const u_char *d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        wire_packet_t w = {.ts_ns = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec,
                           .caplen = h->caplen,
                           .origlen = h->len,
                           .data = d};
        assert_true(wire_packets_put(s_payload, sizeof s_payload, &s_len, &w));
        s_count++;
    }
    pcap_close(p);
}

static void test_flowhash_split(void **state)
{
    (void)state;
    s_load(NULL);
    char err[256];
    split_t *sp = split_new("", 3, err, sizeof err);
    assert_non_null(sp);
    uint16_t lt[1] = {1};
    assert_int_equal(split_batch(sp, s_payload, s_len, s_count, lt, 1), 0);
    uint32_t total = 0;
    for (unsigned w = 0; w < 3; w++) {
        size_t len;
        uint32_t count;
        const uint8_t *buf = split_out(sp, w, &len, &count);
        assert_int_equal(wire_packets_check(buf, len, count, 1, NULL, NULL), WIRE_OK);
        assert_true(count > 0); /* 40 flows over 3 ways: none empty */
        total += count;
        /* every packet of this way hashes to it */
        size_t off = 0;
        wire_packet_t p;
        while (wire_packets_next(buf, len, &off, &p)) {
            decode_flow_t f;
            assert_true(decode_flow(1, p.data, p.caplen, &f));
            assert_int_equal(decode_flow_hash(&f) % 3, w);
        }
    }
    assert_int_equal(total, s_count);
    assert_int_equal(split_filtered(sp), 0);
    split_destroy(&sp);
}

static uint32_t s_count_of(const char *filter)
{
    s_load(filter);
    return s_count;
}

static void test_filter_like_tcpdump(void **state)
{
    (void)state;
    const char *filter = "ip6 or (udp and port 9999)";
    uint32_t want = s_count_of(filter);
    s_load(NULL);
    char err[256];
    split_t *sp = split_new(filter, 1, err, sizeof err);
    assert_non_null(sp);
    uint16_t lt[1] = {1};
    assert_int_equal(split_batch(sp, s_payload, s_len, s_count, lt, 1), 0);
    size_t len;
    uint32_t count;
    const uint8_t *buf = split_out(sp, 0, &len, &count);
    assert_int_equal(count, want);
    assert_int_equal(split_filtered(sp), s_count - want);
    assert_int_equal(wire_packets_check(buf, len, count, 1, NULL, NULL), WIRE_OK);
    /* the same packets, in order, as libpcap's own filter */
    static uint8_t expected[4 << 20];
    s_load(filter);
    memcpy(expected, s_payload, s_len);
    assert_int_equal(len, s_len);
    assert_memory_equal(buf, expected, len);
    split_destroy(&sp);
}

static void test_bad_filter_named(void **state)
{
    (void)state;
    char err[512];
    assert_null(split_new("tcp prot 80", 1, err, sizeof err));
    assert_non_null(strstr(err, "FILTER='tcp prot 80': "));
    assert_non_null(strstr(err, "syntax error"));
}

/* A filter that cannot apply to a link type (raw IP has no ether header)
 * passes nothing of that link type, and says so. */
static void test_filter_other_linktype(void **state)
{
    (void)state;
    s_load(NULL);
    char err[256];
    split_t *sp = split_new("ether host 02:00:00:00:00:01", 1, err, sizeof err);
    assert_non_null(sp);
    uint16_t raw[1] = {101};
    assert_int_equal(split_batch(sp, s_payload, s_len, s_count, raw, 1), 0);
    size_t len;
    uint32_t count;
    split_out(sp, 0, &len, &count);
    assert_int_equal(count, 0);
    assert_int_equal(len, WIRE_FRAME_HDR);
    assert_int_equal(split_filtered(sp), s_count);
    split_destroy(&sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flowhash_split),
        cmocka_unit_test(test_filter_like_tcpdump),
        cmocka_unit_test(test_bad_filter_named),
        cmocka_unit_test(test_filter_other_linktype),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
