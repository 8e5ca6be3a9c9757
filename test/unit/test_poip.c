/*
 * test_poip — the PCAP-over-IP server without the collector: the classic
 * pcap framing (file header, record headers), what a client reads through
 * a socketpair parsed by libpcap (from the first packet on, and from the
 * middle for one that joins late; the header waits for the first packet),
 * a client that never reads cut off once the shared buffer would overrun
 * it while a reading one gets everything, the client limit, packets of
 * another link type counted, the listener accepting and noticing a client
 * that closed, and what is pending at exit sent before the close.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "metrics.h"
#include "poip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_TS0 1700000000123456789ull
#define S_ETHERNET 1

typedef struct {
    uint8_t *data;
    size_t len, cap;
} s_buf_t;

static metrics_t *s_metrics;

static double s_metric(const char *name)
{
    metric_id_t id = metrics_counter(s_metrics, name, "", NULL);
    if (strcmp(name, "tapmesh_collect_pcap_over_ip_clients") == 0)
        id = metrics_gauge(s_metrics, name, "", NULL);
    return metrics_value(s_metrics, id);
}

static int s_setup(void **state)
{
    (void)state;
    s_metrics = metrics_new("collect", "test");
    assert_non_null(s_metrics);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    metrics_destroy(&s_metrics);
    return 0;
}

static poip_t *s_server(size_t max_clients, size_t buffer_bytes)
{
    char err[256];
    poip_opts_t o = {.listen = NULL, .max_clients = max_clients, .buffer_bytes = buffer_bytes};
    poip_t *p = poip_new(&o, s_metrics, err, sizeof err);
    assert_non_null(p);
    return p;
}

/* Packet i: a length from 60 to 1500 and bytes that depend on i. */
static uint8_t s_data[2000];
static wire_packet_t s_packet(unsigned i)
{
    uint32_t len = 60 + (i * 7919u) % 1441u;
    for (uint32_t k = 0; k < len; k++)
        s_data[k] = (uint8_t)(i * 31u + k);
    return (wire_packet_t){.ts_ns = S_TS0 + (uint64_t)i * 1000003u,
                           .caplen = len,
                           .origlen = len + (i % 3),
                           .data = s_data};
}

/* Reads what is there now (non-blocking) into `b`. Returns 0 at end of
 * stream, 1 otherwise. */
static int s_drain(int fd, s_buf_t *b)
{
    for (;;) {
        if (b->cap - b->len < 65536) {
            b->cap = b->cap ? b->cap * 2 : 1 << 20;
            b->data = realloc(b->data, b->cap);
            assert_non_null(b->data);
        }
        ssize_t r = recv(fd, b->data + b->len, b->cap - b->len, MSG_DONTWAIT);
        if (r == 0)
            return 0;
        if (r < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return 1;
        }
        b->len += (size_t)r;
    }
}

/* Checks that `b` is a pcap stream libpcap reads, holding packets first..
 * first + count - 1 exactly. */
static void s_check_stream(const s_buf_t *b, unsigned first, unsigned count)
{
    FILE *f = fmemopen(b->data, b->len, "r");
    assert_non_null(f);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, err);
    assert_non_null(p);
    assert_int_equal(pcap_datalink(p), S_ETHERNET);
    assert_int_equal(pcap_snapshot(p), WIRE_SNAPLEN_MAX);
    unsigned n = 0;
    struct pcap_pkthdr *h;
    const u_char *d;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        wire_packet_t want = s_packet(first + n);
        uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
        assert_int_equal(ts, want.ts_ns);
        assert_int_equal(h->caplen, want.caplen);
        assert_int_equal(h->len, want.origlen);
        assert_memory_equal(d, want.data, want.caplen);
        n++;
    }
    assert_int_equal(rc, PCAP_ERROR_BREAK); /* the end, not a record cut short */
    assert_int_equal(n, count);
    pcap_close(p);
}

static void test_framing(void **state)
{
    (void)state;
    uint8_t h[POIP_HEADER_SIZE];
    poip_header(h, 276, 262144, false);
    uint32_t magic, snaplen, linktype;
    uint16_t major, minor;
    memcpy(&magic, h, 4);
    memcpy(&major, h + 4, 2);
    memcpy(&minor, h + 6, 2);
    memcpy(&snaplen, h + 16, 4);
    memcpy(&linktype, h + 20, 4);
    assert_int_equal(magic, 0xa1b23c4du);
    assert_int_equal(major, 2);
    assert_int_equal(minor, 4);
    assert_int_equal(snaplen, 262144);
    assert_int_equal(linktype, 276);
    uint8_t r[POIP_RECORD_HEADER_SIZE];
    wire_packet_t pkt = {.ts_ns = 1700000000999999999ull, .caplen = 60, .origlen = 1514};
    poip_record_header(r, &pkt, false);
    uint32_t v[4];
    memcpy(v, r, sizeof v);
    assert_int_equal(v[0], 1700000000u);
    assert_int_equal(v[1], 999999999u);
    assert_int_equal(v[2], 60);
    assert_int_equal(v[3], 1514);
    /* microseconds: the magic libpcap's default and Arkime read, the rest cut off */
    poip_header(h, 1, 262144, true);
    memcpy(&magic, h, 4);
    assert_int_equal(magic, 0xa1b2c3d4u);
    poip_record_header(r, &pkt, true);
    memcpy(v, r, sizeof v);
    assert_int_equal(v[0], 1700000000u);
    assert_int_equal(v[1], 999999u);
}

/* One client from before the first packet, another joining after 300:
 * both read valid streams, the second a suffix. */
static void test_stream_and_late_join(void **state)
{
    (void)state;
    poip_t *p = s_server(4, 256 << 10);
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    assert_int_equal(poip_adopt(p, a[0], "a"), 0);
    s_buf_t ba = {0}, bb = {0};
    poip_send(p);
    assert_int_equal(s_drain(a[1], &ba), 1);
    assert_int_equal(ba.len, 0); /* no link type yet: no header */
    for (unsigned i = 0; i < 1000; i++) {
        if (i == 300)
            assert_int_equal(poip_adopt(p, b[0], "b"), 0);
        wire_packet_t pkt = s_packet(i);
        poip_packet(p, S_ETHERNET, &pkt);
        if (i % 7 == 0) { /* a few packets between sends, as in a pass */
            poip_send(p);
            s_drain(a[1], &ba);
            s_drain(b[1], &bb);
        }
    }
    poip_finish(p, 1000);
    assert_int_equal(poip_clients(p), 0);
    assert_int_equal(s_drain(a[1], &ba), 0);
    assert_int_equal(s_drain(b[1], &bb), 0);
    s_check_stream(&ba, 0, 1000);
    s_check_stream(&bb, 300, 700);
    assert_true(s_metric("tapmesh_collect_pcap_over_ip_packets_total") == 1700);
    assert_true(s_metric("tapmesh_collect_pcap_over_ip_sent_bytes_total") ==
                (double)(ba.len + bb.len));
    assert_true(s_metric("tapmesh_collect_pcap_over_ip_clients_total") == 2);
    assert_true(s_metric("tapmesh_collect_pcap_over_ip_clients_cut_total") == 0);
    poip_destroy(&p);
    close(a[1]);
    close(b[1]);
    free(ba.data);
    free(bb.data);
}

/* A client that never reads is cut off once the 64 KiB buffer (plus what
 * its socket holds) would be overrun; the one that reads gets everything. */
static void test_stalled_client_cut(void **state)
{
    (void)state;
    poip_t *p = s_server(4, 64 << 10);
    int slow[2], fast[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, slow), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fast), 0);
    int small = 4096;
    setsockopt(slow[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(slow[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_int_equal(poip_adopt(p, slow[0], "slow"), 0);
    assert_int_equal(poip_adopt(p, fast[0], "fast"), 0);
    s_buf_t bf = {0};
    unsigned cut_at = 0;
    for (unsigned i = 0; i < 2000; i++) {
        wire_packet_t pkt = s_packet(i);
        poip_packet(p, S_ETHERNET, &pkt);
        poip_send(p);
        s_drain(fast[1], &bf);
        if (!cut_at && poip_clients(p) == 1)
            cut_at = i;
    }
    /* ~1.6 MB went by: far more than 64 KiB and the socket's buffers */
    assert_true(cut_at > 0);
    assert_true(s_metric("tapmesh_collect_pcap_over_ip_clients_cut_total") == 1);
    assert_int_equal(poip_clients(p), 1);
    poip_finish(p, 1000);
    assert_int_equal(s_drain(fast[1], &bf), 0);
    s_check_stream(&bf, 0, 2000);
    /* the stalled client's side: what it was sent, then the end */
    s_buf_t bs = {0};
    assert_int_equal(s_drain(slow[1], &bs), 0);
    assert_true(bs.len > 0 && bs.len < (256u << 10));
    poip_destroy(&p);
    close(slow[1]);
    close(fast[1]);
    free(bf.data);
    free(bs.data);
}

/* PCAP_OVER_IP_PRECISION=micro: libpcap reads microseconds, the rest cut off. */
static void test_micro_stream(void **state)
{
    (void)state;
    char err[256];
    poip_opts_t o = {.max_clients = 1, .buffer_bytes = 1 << 20, .micro = true};
    poip_t *p = poip_new(&o, s_metrics, err, sizeof err);
    assert_non_null(p);
    int s[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    assert_int_equal(poip_adopt(p, s[0], "c"), 0);
    for (unsigned i = 0; i < 50; i++) {
        wire_packet_t pkt = s_packet(i);
        poip_packet(p, S_ETHERNET, &pkt);
    }
    poip_finish(p, 1000);
    s_buf_t b = {0};
    assert_int_equal(s_drain(s[1], &b), 0);
    FILE *f = fmemopen(b.data, b.len, "r");
    assert_non_null(f);
    pcap_t *pc = pcap_fopen_offline(f, err);
    assert_non_null(pc);
    struct pcap_pkthdr *h;
    const u_char *d;
    unsigned n = 0;
    while (pcap_next_ex(pc, &h, &d) == 1) {
        wire_packet_t want = s_packet(n++);
        assert_int_equal((uint64_t)h->ts.tv_sec * 1000000u + (uint64_t)h->ts.tv_usec,
                         want.ts_ns / 1000u);
        assert_int_equal(h->caplen, want.caplen);
        assert_memory_equal(d, want.data, want.caplen);
    }
    assert_int_equal(n, 50);
    pcap_close(pc);
    poip_destroy(&p);
    close(s[1]);
    free(b.data);
}

static void test_client_limit(void **state)
{
    (void)state;
    poip_t *p = s_server(2, 64 << 10);
    int s[3][2];
    for (int i = 0; i < 3; i++)
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s[i]), 0);
    assert_int_equal(poip_adopt(p, s[0][0], "c0"), 0);
    assert_int_equal(poip_adopt(p, s[1][0], "c1"), 0);
    assert_int_equal(poip_adopt(p, s[2][0], "c2"), -EBUSY);
    assert_int_equal(poip_clients(p), 2);
    assert_true(s_metric("tapmesh_collect_pcap_over_ip_clients_refused_total") == 1);
    s_buf_t b = {0};
    assert_int_equal(s_drain(s[2][1], &b), 0); /* closed at once */
    assert_int_equal(b.len, 0);
    poip_destroy(&p);
    for (int i = 0; i < 3; i++)
        close(s[i][1]);
    free(b.data);
}

static void test_other_linktype_counted(void **state)
{
    (void)state;
    poip_t *p = s_server(2, 64 << 10);
    int s[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    assert_int_equal(poip_adopt(p, s[0], "c"), 0);
    wire_packet_t p0 = s_packet(0); /* (s_packet's bytes are one buffer) */
    poip_packet(p, S_ETHERNET, &p0);
    wire_packet_t p1 = s_packet(1);
    poip_packet(p, 101, &p1); /* raw IP: not this stream's */
    assert_true(s_metric("tapmesh_collect_pcap_over_ip_linktype_skipped_packets_total") == 1);
    poip_finish(p, 1000);
    s_buf_t b = {0};
    assert_int_equal(s_drain(s[1], &b), 0);
    s_check_stream(&b, 0, 1);
    poip_destroy(&p);
    close(s[1]);
    free(b.data);
}

/* The listener on a loopback port: a connection is accepted through the
 * poll items, gets the stream, and is dropped once it closes. */
static void test_listener(void **state)
{
    (void)state;
    char err[256];
    poip_opts_t o = {.listen = "127.0.0.1:0", .max_clients = 2, .buffer_bytes = 1 << 20};
    poip_t *p = poip_new(&o, s_metrics, err, sizeof err);
    assert_non_null(p);
    assert_true(poip_port(p) > 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)poip_port(p))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    zmq_pollitem_t items[4];
    for (int k = 0; k < 50 && poip_clients(p) == 0; k++) {
        size_t n = poip_pollitems(p, items, 4);
        zmq_poll(items, (int)n, 100);
        poip_handle(p, items, n);
    }
    assert_int_equal(poip_clients(p), 1);
    wire_packet_t pkt = s_packet(0);
    poip_packet(p, S_ETHERNET, &pkt);
    poip_send(p);
    uint8_t got[POIP_HEADER_SIZE + POIP_RECORD_HEADER_SIZE + 60];
    size_t have = 0;
    while (have < sizeof got) {
        ssize_t r = recv(fd, got + have, sizeof got - have, 0);
        assert_true(r > 0);
        have += (size_t)r;
    }
    uint32_t magic;
    memcpy(&magic, got, 4);
    assert_int_equal(magic, POIP_MAGIC_NS);
    assert_memory_equal(got + POIP_HEADER_SIZE + POIP_RECORD_HEADER_SIZE, pkt.data, 60);
    close(fd);
    for (int k = 0; k < 50 && poip_clients(p) == 1; k++) {
        size_t n = poip_pollitems(p, items, 4);
        zmq_poll(items, (int)n, 100);
        poip_handle(p, items, n);
    }
    assert_int_equal(poip_clients(p), 0);
    poip_destroy(&p);
    /* a bad address names the setting */
    o.listen = "nowhere";
    assert_null(poip_new(&o, s_metrics, err, sizeof err));
    assert_non_null(strstr(err, "PCAP_OVER_IP=nowhere"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing),
        cmocka_unit_test_setup_teardown(test_stream_and_late_join, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stalled_client_cut, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_micro_stream, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_client_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_other_linktype_counted, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_listener, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
