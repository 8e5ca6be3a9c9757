/*
 * test_collector — the collector's engine in-process, without sockets:
 * messages are built with the codec and handed over as received frames;
 * replies are captured; the output is a real file read back by libpcap.
 * Covers acknowledgement after the write, the merge by timestamp with
 * watermarks, END and the merge window, duplicates, unknown sources, the
 * link-type policy, malformed input, a failing output, a HELLO handled
 * while the output buffer is full, an idle rotation with STATE_DIR,
 * EXPECT_SOURCES (the hold, its release by count and by id, its bound), a
 * full disk under the output or under STATE_DIR (the output ends whole and
 * agrees with the journal across a restart), sources bound to keys (a
 * peer with another node's key changes nothing of the real source), and
 * the flood limits (a peer's sources and its rate of new ones; room made
 * from the peer holding the most, never from a source with batches owed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "clock.h"
#include "collector.h"
#include "compress.h"
#include "journal.h"
#include "merge.h"
#include "metrics.h"
#include "output.h"
#include "tmpdir.h"
#include "trust.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPLIES 256

typedef struct {
    wire_msg_t msg;
    char peer[32];
} reply_t;

static reply_t s_replies[MAX_REPLIES];
static size_t s_nreplies;

static int s_on_reply(void *ctx, const route_t *route, const uint8_t *cmd, size_t len)
{
    (void)ctx;
    assert_true(s_nreplies < MAX_REPLIES);
    reply_t *r = &s_replies[s_nreplies++];
    assert_int_equal(wire_decode(cmd, len, &r->msg), WIRE_OK);
    assert_int_equal(route->count, 1);
    memcpy(r->peer, route->id[0], route->len[0]);
    r->peer[route->len[0]] = '\0';
    return 0;
}

/* What the tap was given, and how many ACKs had gone out when it was */
#define MAX_TAPPED 64
typedef struct {
    char source[16];
    uint16_t linktype;
    uint64_t ts;
    uint32_t caplen, origlen;
    uint8_t byte0, last;
    size_t acks_before;
} tapped_t;
static tapped_t s_tapped[MAX_TAPPED];
static size_t s_ntapped;

static void s_on_tap(void *ctx, const char *source, const char *iface, uint16_t linktype,
                     const wire_packet_t *pkt)
{
    (void)ctx;
    (void)iface;
    assert_true(s_ntapped < MAX_TAPPED);
    tapped_t *t = &s_tapped[s_ntapped++];
    snprintf(t->source, sizeof t->source, "%s", source);
    t->linktype = linktype;
    t->ts = pkt->ts_ns;
    t->caplen = pkt->caplen;
    t->origlen = pkt->origlen;
    t->byte0 = pkt->data[0];
    t->last = pkt->data[pkt->caplen - 1];
    t->acks_before = 0;
    for (size_t i = 0; i < s_nreplies; i++)
        t->acks_before += s_replies[i].msg.type == WIRE_ACK;
}

/* What the loss callback was told (EVENTS' tapmesh_loss) */
#define MAX_LOSSES 64
typedef struct {
    char source[16], iface[16], reason[32];
    uint64_t count;
} loss_t;
static loss_t s_losses[MAX_LOSSES];
static size_t s_nlosses;

static void s_on_loss(void *ctx, const char *source, const char *iface, const char *reason,
                      uint64_t count)
{
    (void)ctx;
    assert_true(s_nlosses < MAX_LOSSES);
    loss_t *l = &s_losses[s_nlosses++];
    snprintf(l->source, sizeof l->source, "%s", source);
    snprintf(l->iface, sizeof l->iface, "%s", iface);
    snprintf(l->reason, sizeof l->reason, "%s", reason);
    l->count = count;
}

/* The sum of what the loss callback was told for `reason` of `source` */
static uint64_t s_lost(const char *source, const char *reason)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s_nlosses; i++)
        if (strcmp(s_losses[i].source, source) == 0 && strcmp(s_losses[i].reason, reason) == 0)
            n += s_losses[i].count;
    return n;
}

typedef struct {
    char path[64];
    output_t *out;
    metrics_t *metrics;
    collector_t *c;
    trust_t *trust;
} fixture_t;

static int64_t s_flush_ms; /* FLUSH_MS of the next fixture */
static size_t s_bufsize;   /* its output buffer, when not 0 */
static trust_t *s_trust;   /* its allow-list (taken over), when not NULL */
static size_t s_per_peer;  /* its MAX_SOURCES_PER_PEER, when not 0 */
static unsigned s_rate;    /* its HELLO_RATE_PER_PEER */
static size_t s_max_src;   /* its MAX_SOURCES, when not 0 */
static bool s_with_tap;    /* its tap is s_on_tap */
static bool s_with_loss;   /* its loss callback is s_on_loss */
/* The User-Id (CURVE key) of the connection messages come by; "" for none. */
static const char *s_user = "";

static int s_setup_with(void **state, output_policy_t policy, int64_t window_ms)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->path, sizeof f->path, "/tmp/test_collector.XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    char err[256];
    output_opts_t oo = {.path = f->path,
                        .format = PCAPNG_FORMAT_PCAPNG,
                        .policy = policy,
                        .bufsize = s_bufsize ? s_bufsize : 1 << 20};
    s_bufsize = 0;
    f->out = output_open(&oo, err, sizeof err);
    assert_non_null(f->out);
    f->metrics = metrics_new("collect", "test");
    collector_opts_t opts = {.merge_window_ms = window_ms,
                             .source_idle_ms = 10000,
                             .merge_max_bytes = 64 << 20,
                             .max_sources = s_max_src ? s_max_src : 16,
                             .flush_ms = s_flush_ms,
                             .trust = s_trust,
                             .max_sources_per_peer = s_per_peer,
                             .hello_rate = s_rate};
    if (s_with_tap)
        opts.tap = s_on_tap;
    if (s_with_loss)
        opts.loss = s_on_loss;
    s_with_loss = false;
    s_with_tap = false;
    s_flush_ms = 0;
    s_max_src = 0;
    s_per_peer = 0;
    s_rate = 0;
    f->trust = s_trust;
    s_trust = NULL;
    f->c = collector_new(f->out, &opts, f->metrics, s_on_reply, NULL);
    assert_non_null(f->c);
    s_nreplies = 0;
    *state = f;
    return 0;
}

static int s_setup(void **state)
{
    return s_setup_with(state, OUTPUT_LINKTYPE_FIRST, 1000);
}

static int s_setup_flush(void **state)
{
    s_flush_ms = 100;
    return s_setup_with(state, OUTPUT_LINKTYPE_FIRST, 1000);
}

static int s_setup_small_buffer(void **state)
{
    s_bufsize = 1; /* raised by the writer to hold one packet of the largest */
    return s_setup_with(state, OUTPUT_LINKTYPE_FIRST, 1000);
}

static int s_setup_mixed(void **state)
{
    return s_setup_with(state, OUTPUT_LINKTYPE_MIXED, 1000);
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    collector_destroy(&f->c);
    output_close(&f->out);
    metrics_destroy(&f->metrics);
    trust_destroy(&f->trust);
    s_user = "";
    unlink(f->path);
    free(f);
    return 0;
}

/* Hands one message to the collector as if the ROUTER received it from
 * `peer`: [peer] [""] [command] ([payload]). */
static void s_deliver(fixture_t *f, const char *peer, const uint8_t *cmd, size_t len,
                      const uint8_t *payload, size_t plen, int64_t now)
{
    frames_t in;
    memset(&in, 0, sizeof in);
    zmq_msg_init_size(&in.part[0], strlen(peer));
    memcpy(zmq_msg_data(&in.part[0]), peer, strlen(peer));
    zmq_msg_init(&in.part[1]);
    zmq_msg_init_size(&in.part[2], len);
    memcpy(zmq_msg_data(&in.part[2]), cmd, len);
    in.count = 3;
    if (payload) {
        zmq_msg_init_size(&in.part[3], plen);
        memcpy(zmq_msg_data(&in.part[3]), payload, plen);
        in.count = 4;
    }
    in.total = in.count;
    in.envelope = 1;
    in.framed = true;
    snprintf(in.user_id, sizeof in.user_id, "%s", s_user);
    collector_on_message(f->c, &in, now);
    frames_close(&in);
}

static wire_msg_t s_m;
static uint8_t s_cmd[WIRE_COMMAND_MAX];
static uint8_t s_payload[1 << 16];
static size_t s_cmd_len, s_payload_len; /* of the last batch built */

static void s_hello_at(fixture_t *f, const char *peer, const char *source, uint64_t epoch,
                       uint16_t linktype, int64_t now)
{
    memset(&s_m, 0, sizeof s_m);
    s_m.type = WIRE_HELLO;
    snprintf(s_m.source, sizeof s_m.source, "%s", source);
    s_m.epoch = epoch;
    snprintf(s_m.hello.description, sizeof s_m.hello.description, "test source");
    s_m.hello.iface_count = 1;
    s_m.hello.ifaces[0].linktype = linktype;
    s_m.hello.ifaces[0].snaplen = 65535;
    snprintf(s_m.hello.ifaces[0].name, sizeof s_m.hello.ifaces[0].name, "eth0");
    size_t len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    assert_true(len > 0);
    s_deliver(f, peer, s_cmd, len, NULL, 0, now);
}

static void s_hello(fixture_t *f, const char *peer, const char *source, uint64_t epoch,
                    uint16_t linktype)
{
    s_hello_at(f, peer, source, epoch, linktype, 0);
}

/* A batch of packets with the given timestamps; byte i of a packet is
 * (ts + i), so content identifies the packet. */
static void s_batch(fixture_t *f, const char *peer, const char *source, uint64_t epoch,
                    uint64_t seq, uint64_t watermark, const uint64_t *ts, size_t n, int64_t now)
{
    uint8_t *payload = s_payload;
    size_t off;
    assert_true(wire_packets_begin(payload, sizeof s_payload, &off));
    for (size_t i = 0; i < n; i++) {
        uint8_t data[100];
        for (size_t j = 0; j < sizeof data; j++)
            data[j] = (uint8_t)(ts[i] + j);
        wire_packet_t p = {.ts_ns = ts[i], .caplen = 60 + (uint32_t)(ts[i] % 40), .data = data};
        p.origlen = p.caplen + 4;
        assert_true(wire_packets_put(payload, sizeof s_payload, &off, &p));
    }
    memset(&s_m, 0, sizeof s_m);
    s_m.type = WIRE_BATCH;
    snprintf(s_m.source, sizeof s_m.source, "%s", source);
    s_m.epoch = epoch;
    s_m.batch.seq = seq;
    s_m.batch.parts = 1;
    s_m.batch.watermark = watermark;
    s_m.batch.packet_count = (uint32_t)n;
    s_m.batch.payload_len = (uint32_t)off;
    size_t len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    assert_true(len > 0);
    s_cmd_len = len;
    s_payload_len = off;
    s_deliver(f, peer, s_cmd, len, payload, off, now);
}

static void s_progress(fixture_t *f, const char *peer, wire_type_t type, const char *source,
                       uint64_t epoch, uint64_t watermark, uint64_t next_seq, int64_t now)
{
    memset(&s_m, 0, sizeof s_m);
    s_m.type = type;
    snprintf(s_m.source, sizeof s_m.source, "%s", source);
    s_m.epoch = epoch;
    s_m.progress.watermark = watermark;
    s_m.progress.next_seq = next_seq;
    size_t len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    s_deliver(f, peer, s_cmd, len, NULL, 0, now);
}

/* Emit and commit at `now`; returns packets written. */
static int s_pass(fixture_t *f, int64_t now)
{
    int n = collector_emit(f->c, now, false);
    assert_true(n >= 0);
    assert_int_equal(collector_commit(f->c, now, true), 0);
    return n;
}

/* A batch of one packet of `caplen` bytes, byte j being (ts + j). */
static void s_batch_big(fixture_t *f, const char *peer, const char *source, uint64_t epoch,
                        uint64_t seq, uint64_t ts, uint32_t caplen, int64_t now)
{
    static uint8_t payload[WIRE_SNAPLEN_MAX + 64], data[WIRE_SNAPLEN_MAX];
    assert_true(caplen <= WIRE_SNAPLEN_MAX);
    for (uint32_t j = 0; j < caplen; j++)
        data[j] = (uint8_t)(ts + j);
    size_t off;
    assert_true(wire_packets_begin(payload, sizeof payload, &off));
    wire_packet_t p = {.ts_ns = ts, .caplen = caplen, .origlen = caplen, .data = data};
    assert_true(wire_packets_put(payload, sizeof payload, &off, &p));
    memset(&s_m, 0, sizeof s_m);
    s_m.type = WIRE_BATCH;
    snprintf(s_m.source, sizeof s_m.source, "%s", source);
    s_m.epoch = epoch;
    s_m.batch.seq = seq;
    s_m.batch.parts = 1;
    s_m.batch.watermark = ts;
    s_m.batch.packet_count = 1;
    s_m.batch.payload_len = (uint32_t)off;
    size_t len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    assert_true(len > 0);
    s_deliver(f, peer, s_cmd, len, payload, off, now);
}

/* The file `path`, as libpcap reads it: timestamps in order of appearance;
 * every packet's length and bytes as s_batch made them. */
static size_t s_read_file(const char *path, uint64_t *ts, size_t max)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p)
        fail_msg("%s", err);
    size_t n = 0;
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        assert_true(n < max);
        ts[n] = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
        assert_int_equal(h->caplen, 60 + ts[n] % 40);
        assert_int_equal(h->len, h->caplen + 4);
        for (uint32_t j = 0; j < h->caplen; j++)
            assert_int_equal(data[j], (uint8_t)(ts[n] + j));
        n++;
    }
    if (rc != PCAP_ERROR_BREAK) /* a torn block at the end, or worse */
        fail_msg("%s after %zu packets: %s", path, n, pcap_geterr(p));
    pcap_close(p);
    return n;
}

/* The output, as libpcap reads it (see s_read_file). */
static size_t s_read_output(fixture_t *f, uint64_t *ts, size_t max)
{
    assert_int_equal(output_flush(f->out), 0);
    return s_read_file(f->path, ts, max);
}

/* The pcapng blocks of `path`: the if_name of every IDB (in order, into
 * `names`), and the number of EPBs. Every block must be whole. */
static size_t s_idb_names(const char *path, char names[][WIRE_NAME_MAX * 2 + 2], size_t max,
                          size_t *epbs)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static uint8_t buf[4 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n < sizeof buf);
    size_t nidb = 0;
    *epbs = 0;
    for (size_t off = 0; off < n;) {
        uint32_t type, len;
        assert_true(n - off >= 12);
        memcpy(&type, buf + off, 4);
        memcpy(&len, buf + off + 4, 4);
        if (len < 12 || len % 4 || len > n - off)
            fail_msg("%s: a bad block at %zu", path, off);
        if (type == 6)
            (*epbs)++;
        if (type == 1) {
            assert_true(nidb < max);
            names[nidb][0] = '\0';
            for (size_t o = off + 16; o + 4 <= off + len - 4;) {
                uint16_t code, olen;
                memcpy(&code, buf + o, 2);
                memcpy(&olen, buf + o + 2, 2);
                if (code == 0)
                    break;
                if (code == 2)
                    snprintf(names[nidb], WIRE_NAME_MAX * 2 + 2, "%.*s", (int)olen, buf + o + 4);
                o += 4 + (((size_t)olen + 3) & ~(size_t)3);
            }
            nidb++;
        }
        off += len;
    }
    return nidb;
}

static size_t s_count(wire_type_t type)
{
    size_t n = 0;
    for (size_t i = 0; i < s_nreplies; i++)
        n += s_replies[i].msg.type == type;
    return n;
}

/* HELLO is welcomed; a batch is acknowledged only after the packets are in
 * the output, along the route it came by. */
static void test_ack_after_write(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "peerA", "edge1", 7, 1);
    assert_int_equal(s_nreplies, 1);
    assert_int_equal(s_replies[0].msg.type, WIRE_WELCOME);
    assert_string_equal(s_replies[0].peer, "peerA");
    uint64_t ts[] = {100, 200, 300};
    s_batch(f, "peerA", "edge1", 7, 0, 300, ts, 3, 0);
    assert_int_equal(s_count(WIRE_ACK), 0); /* not yet written */
    assert_int_equal(s_pass(f, 0), 3);
    assert_int_equal(s_count(WIRE_ACK), 1);
    reply_t *ack = &s_replies[s_nreplies - 1];
    assert_string_equal(ack->peer, "peerA");
    assert_string_equal(ack->msg.source, "edge1");
    assert_int_equal(ack->msg.epoch, 7);
    assert_int_equal(ack->msg.ack.count, 1);
    assert_int_equal(ack->msg.ack.entries[0].seq, 0);
    uint64_t out[10];
    assert_int_equal(s_read_output(f, out, 10), 3);
    assert_int_equal(out[0], 100);
    assert_int_equal(out[2], 300);
}

/* The tap (OUTPUT_DEVICE, TUNNEL) is given every packet written, in the
 * output's merged order, with its source, link type and bytes, and before
 * the commit that acknowledges its batch; a duplicate batch is not given
 * to it again. */
static void test_tap_in_output_order_before_ack(void **state)
{
    (void)state;
    fixture_t *f;
    s_ntapped = 0;
    s_with_tap = true;
    s_setup(state);
    f = *state;
    s_hello(f, "pa", "a", 1, 1);
    s_hello(f, "pb", "b", 1, 1);
    uint64_t a0[] = {10, 30, 50};
    uint64_t b0[] = {20, 40, 60};
    s_batch(f, "pa", "a", 1, 0, 50, a0, 3, 0);
    s_batch(f, "pb", "b", 1, 0, 60, b0, 3, 0);
    assert_int_equal(s_ntapped, 0); /* nothing written yet */
    assert_int_equal(s_pass(f, 0), 5);
    s_progress(f, "pa", WIRE_END, "a", 1, 50, 1, 0);
    assert_int_equal(s_pass(f, 0), 1);
    s_batch(f, "pa", "a", 1, 0, 50, a0, 3, 0); /* a resend: dropped, acknowledged */
    s_pass(f, 0);
    uint64_t out[16];
    assert_int_equal(s_read_output(f, out, 16), 6);
    assert_int_equal(s_ntapped, 6);
    for (size_t i = 0; i < 6; i++) {
        tapped_t *t = &s_tapped[i];
        assert_int_equal(t->ts, out[i]); /* the file's order */
        assert_string_equal(t->source, t->ts % 20 ? "a" : "b");
        assert_int_equal(t->linktype, 1);
        assert_int_equal(t->caplen, 60 + t->ts % 40);
        assert_int_equal(t->origlen, t->caplen + 4);
        assert_int_equal(t->byte0, (uint8_t)t->ts);
        assert_int_equal(t->last, (uint8_t)(t->ts + t->caplen - 1));
    }
    /* the first five went out in the pass before any ACK; the sixth (60)
     * before the ACK of b's batch */
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(s_tapped[i].acks_before, 0);
    size_t acks_b = 0;
    for (size_t i = 0; i < s_nreplies; i++)
        if (s_replies[i].msg.type == WIRE_ACK && strcmp(s_replies[i].msg.source, "b") == 0)
            acks_b++;
    assert_int_equal(acks_b, 1);
    assert_true(s_tapped[5].acks_before < s_count(WIRE_ACK));
}

/* The ISBs of a file: (interface id, ifdrop, usrdeliv, comment) of each;
 * returns how many (a little-endian pcapng, as the writer makes it). */
typedef struct {
    uint32_t ifid;
    uint64_t ifrecv, ifdrop, usrdeliv;
    char comment[512];
} isb_t;

static size_t s_read_isbs(const char *path, isb_t *out, size_t max)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static uint8_t data[1 << 20];
    size_t len = fread(data, 1, sizeof data, fp);
    fclose(fp);
    size_t n = 0, at = 0;
    while (at + 12 <= len) {
        uint32_t type, blen;
        memcpy(&type, data + at, 4);
        memcpy(&blen, data + at + 4, 4);
        assert_true(blen >= 12 && at + blen <= len);
        if (type == 5 && n < max) {
            isb_t *i = &out[n++];
            memset(i, 0, sizeof *i);
            memcpy(&i->ifid, data + at + 8, 4);
            size_t o = at + 20; /* id, timestamp high and low */
            while (o + 4 <= at + blen - 4) {
                uint16_t code, olen;
                memcpy(&code, data + o, 2);
                memcpy(&olen, data + o + 2, 2);
                if (code == 0)
                    break;
                uint64_t v = 0;
                if (olen == 8)
                    memcpy(&v, data + o + 4, 8);
                if (code == 4)
                    i->ifrecv = v;
                else if (code == 5)
                    i->ifdrop = v;
                else if (code == 8)
                    i->usrdeliv = v;
                else if (code == 1)
                    snprintf(i->comment, sizeof i->comment, "%.*s", (int)olen, data + o + 4);
                o += 4 + ((olen + 3u) & ~3u);
            }
        }
        at += blen;
    }
    return n;
}

static void s_stats_msg(fixture_t *f, const char *peer, const char *source, uint64_t epoch,
                        uint16_t ifindex, uint64_t drop, uint64_t dead)
{
    wire_msg_init(&s_m, WIRE_STATS, source, epoch);
    s_m.stats.count = 1;
    s_m.stats.entries[0] = (wire_stats_t){.ifindex = ifindex,
                                          .flags = WIRE_STATS_KERNEL,
                                          .recv = 1000,
                                          .drop = drop,
                                          .ifdrop = 2,
                                          .sent = 3,
                                          .dead = dead};
    size_t len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    assert_true(len > 0);
    s_deliver(f, peer, s_cmd, len, NULL, 0, 0);
}

/* STATS: the latest counters of each interface end the file in its ISB
 * (ifdrop = drop + ifdrop, the dead-lettered count in the comment); one
 * naming an interface its HELLO did not announce is dropped and counted,
 * and changes nothing. */
static void test_stats_into_isb(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    uint64_t ts[] = {100, 200, 300};
    s_batch(f, "pa", "a", 1, 0, 300, ts, 3, 0);
    s_stats_msg(f, "pa", "a", 1, 0, 5, 40);
    s_stats_msg(f, "pa", "a", 1, 0, 7, 42);  /* the latest wins */
    s_stats_msg(f, "pa", "a", 1, 3, 99, 99); /* no interface 3 */
    metric_id_t range = metrics_counter(f->metrics, "tapmesh_collect_malformed_messages_total", "",
                                        "reason=\"range\"");
    assert_int_equal(metrics_value(f->metrics, range), 1);
    assert_int_equal(s_pass(f, 0), 3);
    assert_int_equal(output_end(f->out), 0);
    isb_t isb[4];
    assert_int_equal(s_read_isbs(f->path, isb, 4), 1);
    assert_int_equal(isb[0].ifid, 0);
    assert_int_equal(isb[0].ifrecv, 1000);
    assert_int_equal(isb[0].ifdrop, 7 + 2);
    assert_int_equal(isb[0].usrdeliv, 3);
    assert_non_null(strstr(isb[0].comment, "1000 received, 7 dropped by the kernel, 2 dropped by "
                                           "the interface, 3 sent, 42 dead-lettered"));
    assert_non_null(strstr(isb[0].comment, "this file: 3 written"));
}

/* Losses as events: the growth of a source's STATS counts (kernel, interface,
 * dead letters) per interface, each late packet, a refused HELLO. */
static void test_losses_reported(void **state)
{
    s_nlosses = 0;
    s_with_loss = true;
    s_setup(state);
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    s_stats_msg(f, "pa", "a", 1, 0, 5, 40); /* drop 5, ifdrop 2, dead 40 */
    s_stats_msg(f, "pa", "a", 1, 0, 7, 42); /* grew by 2, 0, 2 */
    s_stats_msg(f, "pa", "a", 1, 0, 7, 42); /* no growth: nothing */
    assert_int_equal(s_lost("a", "kernel_drop"), 7);
    assert_int_equal(s_lost("a", "if_drop"), 2);
    assert_int_equal(s_lost("a", "dead_letter"), 42);
    for (size_t i = 0; i < s_nlosses; i++) {
        assert_string_equal(s_losses[i].iface, "eth0");
        assert_true(s_losses[i].count > 0);
    }
    /* a late packet: written after a newer one the window forced out */
    s_hello(f, "pb", "b", 1, 1);
    uint64_t a0[] = {100, 200};
    s_batch(f, "pa", "a", 1, 0, 200, a0, 2, 0);
    s_pass(f, 0);
    assert_int_equal(s_pass(f, 2000), 2); /* b silent past the window: forced */
    uint64_t b0[] = {150};
    s_batch(f, "pb", "b", 1, 0, 150, b0, 1, 2001);
    s_pass(f, 2001);
    s_pass(f, 4002);
    assert_int_equal(s_lost("b", "late"), 1);
    assert_int_equal(s_lost("a", "late"), 0);
    /* a HELLO with another link type, refused */
    s_hello(f, "pc", "c", 1, 101);
    assert_int_equal(s_lost("c", "refused_linktype"), 1);
}

/* Two sources: packets are held until every live source's watermark
 * passes them, then come out in timestamp order. */
static void test_merge_by_watermark(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    s_hello(f, "pb", "b", 1, 1);
    uint64_t a0[] = {10, 30, 50};
    s_batch(f, "pa", "a", 1, 0, 50, a0, 3, 0);
    assert_int_equal(s_pass(f, 0), 0); /* b has promised nothing yet */
    uint64_t b0[] = {20, 40};
    s_batch(f, "pb", "b", 1, 0, 40, b0, 2, 0);
    assert_int_equal(s_pass(f, 0), 4); /* up to 40 = min(50, 40) */
    assert_int_equal(collector_queued_packets(f->c), 1);
    s_progress(f, "pb", WIRE_HEARTBEAT, "b", 1, 60, 1, 0);
    assert_int_equal(s_pass(f, 0), 1);
    uint64_t out[10];
    assert_int_equal(s_read_output(f, out, 10), 5);
    uint64_t want[] = {10, 20, 30, 40, 50};
    for (int i = 0; i < 5; i++)
        assert_int_equal(out[i], want[i]);
    assert_int_equal(s_count(WIRE_ACK), 2);
}

/* END releases a source at once; a source that never catches up is passed
 * after the merge window, and those packets are counted as forced. */
static void test_end_and_window(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    s_hello(f, "pb", "b", 1, 1);
    s_progress(f, "pb", WIRE_HEARTBEAT, "b", 1, 0, 0, 0); /* b is fed: it holds the merge */
    uint64_t a0[] = {10, 20};
    s_batch(f, "pa", "a", 1, 0, 20, a0, 2, 0);
    assert_int_equal(s_pass(f, 999), 0);
    assert_int_equal(collector_next_deadline(f->c, 500), 1000);
    assert_int_equal(s_pass(f, 1000), 2); /* the window passed */
    uint64_t a1[] = {30};
    s_batch(f, "pa", "a", 1, 1, 30, a1, 1, 1000);
    assert_int_equal(s_pass(f, 1000), 0);
    s_progress(f, "pb", WIRE_END, "b", 1, 0, 0, 1000);
    assert_int_equal(s_pass(f, 1000), 1); /* b ended: nothing holds a back */
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "tapmesh_collect_merge_forced_packets_total 2\n"));
    assert_non_null(strstr(text, "tapmesh_collect_packets_total 3\n"));
    free(text);
}

/* A duplicate is written once and acknowledged again; a duplicate of a
 * batch still in the merge is not acknowledged early. */
static void test_duplicates(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    s_hello(f, "pb", "b", 1, 1);
    uint64_t a0[] = {10};
    s_batch(f, "pa", "a", 1, 0, 10, a0, 1, 0);
    s_batch(f, "pa", "a", 1, 0, 10, a0, 1, 0); /* resent while still queued (b holds) */
    assert_int_equal(s_pass(f, 0), 0);
    assert_int_equal(s_count(WIRE_ACK), 0);
    s_progress(f, "pb", WIRE_END, "b", 1, 0, 0, 0);
    assert_int_equal(s_pass(f, 0), 1);
    assert_int_equal(s_count(WIRE_ACK), 1);
    s_batch(f, "pa2", "a", 1, 0, 10, a0, 1, 0); /* resent after the ack was lost, other path */
    assert_int_equal(s_pass(f, 0), 0);
    assert_int_equal(s_count(WIRE_ACK), 2);
    assert_string_equal(s_replies[s_nreplies - 1].peer, "pa2");
    uint64_t out[10];
    assert_int_equal(s_read_output(f, out, 10), 1);
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "tapmesh_collect_duplicate_batches_total 2\n"));
    free(text);
}

/* A batch from a source without HELLO: REFUSE code 1, counted, dropped;
 * after HELLO the resend is taken. */
static void test_unknown_source(void **state)
{
    fixture_t *f = *state;
    uint64_t a0[] = {10};
    s_batch(f, "pa", "ghost", 5, 0, 10, a0, 1, 0);
    assert_int_equal(s_nreplies, 1);
    assert_int_equal(s_replies[0].msg.type, WIRE_REFUSE);
    assert_int_equal(s_replies[0].msg.refuse.code, WIRE_REFUSE_UNKNOWN_SOURCE);
    assert_int_equal(s_pass(f, 0), 0);
    s_hello(f, "pa", "ghost", 5, 1);
    s_batch(f, "pa", "ghost", 5, 0, 10, a0, 1, 0);
    assert_int_equal(s_pass(f, 0), 1);
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(
        strstr(text, "tapmesh_collect_malformed_messages_total{reason=\"source\"} 1\n"));
    free(text);
}

/* LINKTYPE_POLICY=first: a source with another link type is refused with a
 * reason naming both link types and the setting; its batches are not taken. */
static void test_linktype_first(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "eth", 1, 1);
    s_hello(f, "pb", "sll", 1, 276);
    reply_t *r = &s_replies[s_nreplies - 1];
    assert_int_equal(r->msg.type, WIRE_REFUSE);
    assert_int_equal(r->msg.refuse.code, WIRE_REFUSE_LINKTYPE);
    assert_non_null(strstr(r->msg.refuse.reason, "276"));
    assert_non_null(strstr(r->msg.refuse.reason, "link type 1"));
    assert_non_null(strstr(r->msg.refuse.reason, "LINKTYPE_POLICY"));
    uint64_t a0[] = {10};
    s_batch(f, "pb", "sll", 1, 0, 10, a0, 1, 0);
    assert_int_equal(s_replies[s_nreplies - 1].msg.refuse.code, WIRE_REFUSE_UNKNOWN_SOURCE);
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "tapmesh_collect_sources_refused_total{reason=\"linktype\"} 1\n"));
    free(text);
}

/* LINKTYPE_POLICY=mixed: both are taken, each with its IDB. */
static void test_linktype_mixed(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "eth", 1, 1);
    s_hello(f, "pb", "sll", 1, 276);
    assert_int_equal(s_count(WIRE_WELCOME), 2);
}

/* Garbage, bad framing and payload lies are counted by reason and dropped;
 * the collector keeps serving the good source. */
static void test_malformed(void **state)
{
    fixture_t *f = *state;
    uint8_t junk[] = {0x54, 0x4d, WIRE_VERSION + 1, 1, 0, 0}; /* a version to come */
    s_deliver(f, "evil", junk, sizeof junk, NULL, 0, 0);
    uint8_t junk2[] = {1, 2, 3};
    s_deliver(f, "evil", junk2, sizeof junk2, NULL, 0, 0);
    s_hello(f, "pa", "a", 1, 1);
    uint64_t ts[] = {1, 2};
    s_batch(f, "pa", "a", 1, 0, 2, ts, 2, 0);
    assert_int_equal(s_pass(f, 0), 2);
    /* the next batch, with a payload one byte short of its payload_len */
    s_batch(f, "pa", "a", 1, 1, 2, ts, 2, 0);
    assert_int_equal(s_pass(f, 0), 2);
    s_m.batch.seq = 2;
    size_t len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    s_deliver(f, "pa", s_cmd, len, s_payload, s_payload_len - 1, 0);
    /* a batch whose payload claims a packet past its end: truncated */
    s_m.batch.seq = 3;
    s_m.batch.payload_len = (uint32_t)(s_payload_len - 1);
    len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    s_deliver(f, "pa", s_cmd, len, s_payload, s_payload_len - 1, 0);
    /* BATCH without its payload frame */
    s_deliver(f, "pa", s_cmd, len, NULL, 0, 0);
    assert_int_equal(s_pass(f, 0), 0);
    /* HELLO followed by a payload frame */
    s_hello(f, "pa", "a", 1, 1);
    len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    s_deliver(f, "pa", s_cmd, len, junk, sizeof junk, 0);
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(
        strstr(text, "tapmesh_collect_malformed_messages_total{reason=\"version\"} 1\n"));
    assert_non_null(
        strstr(text, "tapmesh_collect_malformed_messages_total{reason=\"truncated\"} 2\n"));
    assert_non_null(
        strstr(text, "tapmesh_collect_malformed_messages_total{reason=\"framing\"} 3\n"));
    assert_non_null(strstr(text, "tapmesh_collect_packets_total 4\n"));
    free(text);
}

static void s_assert_metric(fixture_t *f, const char *sample);

/* Sends the batch s_batch built last (s_m, s_payload) again with its
 * payload as `frame` (len bytes), as seq `seq`. */
static void s_batch_as(fixture_t *f, const char *peer, uint64_t seq, const uint8_t *frame,
                       size_t len)
{
    s_m.batch.seq = seq;
    s_m.batch.payload_len = (uint32_t)len;
    size_t n = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    assert_true(n > 0);
    s_deliver(f, peer, s_cmd, n, frame, len, 0);
}

/* §3.8 and §4.1: a HELLO with "; compress=zstd" gets FEATURES (zstd)
 * before its WELCOME, and the tag is not in the output's description; a
 * compressed batch is written as its plain self and acknowledged; a frame
 * that lies about its length, or that zstd cannot read, or that declares
 * more than the bound is dropped and counted, never written. */
static void test_compressed_batch(void **state)
{
    fixture_t *f = *state;
    memset(&s_m, 0, sizeof s_m);
    s_m.type = WIRE_HELLO;
    snprintf(s_m.source, sizeof s_m.source, "z");
    s_m.epoch = 5;
    snprintf(s_m.hello.description, sizeof s_m.hello.description, "edge; compress=zstd");
    s_m.hello.iface_count = 1;
    s_m.hello.ifaces[0].linktype = 1;
    s_m.hello.ifaces[0].snaplen = 65535;
    snprintf(s_m.hello.ifaces[0].name, sizeof s_m.hello.ifaces[0].name, "eth0");
    size_t len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    s_deliver(f, "pz", s_cmd, len, NULL, 0, 0);
    assert_int_equal(s_nreplies, 2);
    assert_int_equal(s_replies[0].msg.type, WIRE_FEATURES);
    assert_int_equal(s_replies[0].msg.features.flags, WIRE_FEATURE_ZSTD);
    assert_string_equal(s_replies[0].msg.source, "z");
    assert_int_equal(s_replies[0].msg.epoch, 5);
    assert_int_equal(s_replies[1].msg.type, WIRE_WELCOME);
    /* a HELLO without the tag: WELCOME alone */
    s_hello(f, "pz", "plain", 6, 1);
    assert_int_equal(s_nreplies, 3);
    assert_int_equal(s_replies[2].msg.type, WIRE_WELCOME);
    s_progress(f, "pz", WIRE_END, "plain", 6, 0, 0, 0); /* holds nothing back */

    compress_t *c = compress_new(3);
    static uint8_t packed[1 << 17];
    uint64_t ts[40];
    for (size_t i = 0; i < 40; i++)
        ts[i] = 1000 + i;
    /* seq 0 plain, to learn the bytes; then the same packets compressed */
    s_batch(f, "pz", "z", 5, 0, 1039, ts, 40, 0);
    size_t plain_len = s_payload_len;
    size_t n = compress_pack(c, s_payload, plain_len, packed, sizeof packed);
    assert_true(n > 0 && n < plain_len);
    for (size_t i = 0; i < 40; i++)
        ts[i] = 2000 + i;
    s_batch(f, "pz", "z", 5, 1, 1039, ts, 40, 100000); /* builds seq 1 ... */
    /* (delivered plain as seq 1; now seq 2 compressed with the same packets
     * at later times, so the output says which arrived) */
    for (size_t i = 0; i < 40; i++)
        ts[i] = 3000 + i;
    size_t off;
    wire_packets_begin(s_payload, sizeof s_payload, &off);
    for (size_t i = 0; i < 40; i++) {
        uint8_t data[100];
        for (size_t j = 0; j < sizeof data; j++)
            data[j] = (uint8_t)(ts[i] + j);
        wire_packet_t p = {.ts_ns = ts[i], .caplen = 60 + (uint32_t)(ts[i] % 40), .data = data};
        p.origlen = p.caplen + 4;
        assert_true(wire_packets_put(s_payload, sizeof s_payload, &off, &p));
    }
    n = compress_pack(c, s_payload, off, packed, sizeof packed);
    assert_true(n > 0 && n < off);
    s_m.batch.watermark = 3039;
    s_batch_as(f, "pz", 2, packed, n);
    assert_true(s_pass(f, 0) >= 40);
    while (s_pass(f, 0) > 0)
        ;
    uint64_t out[200];
    size_t got = s_read_output(f, out, 200); /* checks every byte as s_batch made it */
    assert_int_equal(got, 120);
    assert_int_equal(out[80], 3000);
    assert_int_equal(out[119], 3039);
    bool acked2 = false;
    for (size_t i = 0; i < s_nreplies; i++)
        if (s_replies[i].msg.type == WIRE_ACK)
            for (unsigned e = 0; e < s_replies[i].msg.ack.count; e++)
                acked2 |= s_replies[i].msg.ack.entries[e].seq == 2;
    assert_true(acked2);
    s_assert_metric(f, "tapmesh_collect_compressed_batches_total 1\n");
    char want[128];
    snprintf(want, sizeof want, "tapmesh_collect_compressed_bytes_total %zu\n", n);
    s_assert_metric(f, want);
    snprintf(want, sizeof want, "tapmesh_collect_uncompressed_bytes_total %zu\n", off);
    s_assert_metric(f, want);

    /* bad frames: nothing written, nothing acknowledged, each counted */
    size_t replies = s_nreplies;
    uint8_t bad[sizeof packed];
    memcpy(bad, packed, n);
    bad[4] = 0x04, bad[5] = 0, bad[6] = 0, bad[7] = 1; /* 64 MiB + 1 declared */
    s_batch_as(f, "pz", 3, bad, n);
    memcpy(bad, packed, n);
    bad[7] ^= 1; /* a length that is not the content's */
    s_batch_as(f, "pz", 3, bad, n);
    memcpy(bad, packed, n);
    memset(bad + 8, 0xee, 8); /* no zstd frame */
    s_batch_as(f, "pz", 3, bad, n);
    s_batch_as(f, "pz", 3, packed, 7); /* cut in its header */
    /* a zstd frame that holds a frame of another type than PACKETS */
    static uint8_t nested[1 << 17];
    s_payload[3] = WIRE_PACKETS_ZSTD;
    size_t nn = compress_pack(c, s_payload, off, nested, sizeof nested);
    s_payload[3] = WIRE_PACKETS;
    assert_true(nn > 0);
    s_batch_as(f, "pz", 3, nested, nn);
    assert_int_equal(s_pass(f, 0), 0);
    assert_int_equal(s_nreplies, replies);
    s_assert_metric(f, "tapmesh_collect_malformed_messages_total{reason=\"range\"} 1\n");
    s_assert_metric(f, "tapmesh_collect_malformed_messages_total{reason=\"zstd\"} 2\n");
    s_assert_metric(f, "tapmesh_collect_malformed_messages_total{reason=\"truncated\"} 1\n");
    s_assert_metric(f, "tapmesh_collect_malformed_messages_total{reason=\"type\"} 1\n");
    assert_int_equal(s_read_output(f, out, 200), 120);
    /* the output's IDBs: the tag is in neither */
    char names[4][WIRE_NAME_MAX * 2 + 2];
    size_t epbs;
    assert_int_equal(s_idb_names(f->path, names, 4, &epbs), 2);
    assert_int_equal(epbs, 120);
    FILE *fp = fopen(f->path, "rb");
    static char file[1 << 20];
    size_t flen = fread(file, 1, sizeof file, fp);
    fclose(fp);
    for (size_t i = 0; i + 9 <= flen; i++)
        assert_false(memcmp(file + i, "compress=", 9) == 0);
    compress_destroy(&c);
}

/* A source silent for SOURCE_IDLE_S no longer holds the merge back; when
 * it speaks again it holds it again. */
static void test_idle_source_released(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    s_hello(f, "pb", "b", 1, 1);
    s_progress(f, "pb", WIRE_HEARTBEAT, "b", 1, 0, 0, 0); /* b is fed: it holds the merge */
    uint64_t a0[] = {10, 20};
    s_batch(f, "pa", "a", 1, 0, 20, a0, 2, 0);
    assert_int_equal(s_pass(f, 500), 0);
    /* a speaks at 9000 (not idle); b last spoke at 0 and is idle from 10000 */
    s_progress(f, "pa", WIRE_HEARTBEAT, "a", 1, 20, 1, 9000);
    assert_int_equal(collector_next_deadline(f->c, 9000), 9000); /* a's first batch is overdue */
    uint64_t a1[] = {30};
    s_batch(f, "pa", "a", 1, 1, 30, a1, 1, 9500);
    assert_int_equal(s_pass(f, 9999), 2);  /* a0 forced by the window, a1 still held by b */
    assert_int_equal(s_pass(f, 10000), 1); /* b idle: a1 goes */
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "tapmesh_collect_sources_live 1\n"));
    free(text);
    s_progress(f, "pb", WIRE_HEARTBEAT, "b", 1, 25, 0, 10100); /* b is back */
    uint64_t a2[] = {40};
    s_batch(f, "pa", "a", 1, 2, 40, a2, 1, 10100);
    assert_int_equal(s_pass(f, 10100), 0); /* held by b's watermark 25 again */
}

/* Gaps: a batch that overtakes earlier ones is counted as missing batches
 * until they arrive; no watermark is trusted before the hole is filled (the
 * newest promise waits for everything below it), so the earlier packets,
 * when they come, still go out in order. */
static void test_gap_holds_watermark(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    uint64_t b2[] = {50, 60};
    s_batch(f, "pa", "a", 1, 2, 60, b2, 2, 0);
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "tapmesh_collect_batches_missing 2\n"));
    free(text);
    assert_int_equal(s_pass(f, 0), 0); /* 0 and 1 may be older */
    uint64_t b0[] = {10, 20};
    s_batch(f, "pa", "a", 1, 0, 20, b0, 2, 0);
    assert_int_equal(s_pass(f, 0), 0); /* batch 1 is still missing */
    text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "tapmesh_collect_batches_missing 1\n"));
    free(text);
    uint64_t b1[] = {30, 40};
    s_batch(f, "pa", "a", 1, 1, 40, b1, 2, 0);
    assert_int_equal(s_pass(f, 0), 6);
    uint64_t out[10];
    assert_int_equal(s_read_output(f, out, 10), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(out[i], 10 * (uint64_t)(i + 1));
    text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "tapmesh_collect_batches_missing 0\n"));
    assert_non_null(strstr(text, "tapmesh_collect_late_packets_total 0\n"));
    free(text);
}

/* FLUSH_MS: a little written data waits (and its acknowledgement with it)
 * until FLUSH_MS has passed, then leaves in one write. */
static void test_flush_ms_coalesces(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    uint64_t a0[] = {10};
    s_batch(f, "pa", "a", 1, 0, 10, a0, 1, 1000);
    assert_int_equal(collector_emit(f->c, 1000, false), 1);
    assert_int_equal(collector_commit(f->c, 1000, false), 0);
    assert_int_equal(s_count(WIRE_ACK), 0); /* buffered, not flushed, not acknowledged */
    assert_int_equal(collector_next_deadline(f->c, 1000), 1100);
    uint64_t a1[] = {20};
    s_batch(f, "pa", "a", 1, 1, 20, a1, 1, 1050);
    assert_int_equal(collector_emit(f->c, 1050, false), 1);
    assert_int_equal(collector_commit(f->c, 1050, false), 0);
    assert_int_equal(s_count(WIRE_ACK), 0);
    assert_int_equal(collector_commit(f->c, 1100, false), 0);
    assert_int_equal(s_count(WIRE_ACK), 1);
    assert_int_equal(s_replies[s_nreplies - 1].msg.ack.count, 2); /* both, in one ACK */
}

/* The output fails (the reader went away): nothing is acknowledged. */
static void test_output_failure_no_ack(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char path[32];
    snprintf(path, sizeof path, "/dev/fd/%d", fds[1]);
    char err[256];
    output_opts_t oo = {.path = path, .format = PCAPNG_FORMAT_PCAPNG};
    output_t *out = output_open(&oo, err, sizeof err);
    assert_non_null(out);
    close(fds[0]); /* the reader exits */
    close(fds[1]);
    metrics_t *m = metrics_new("collect", "test");
    collector_opts_t opts = {
        .merge_window_ms = 0, .source_idle_ms = 1000, .merge_max_bytes = 1 << 20, .max_sources = 4};
    fixture_t f = {.out = out, .metrics = m};
    f.c = collector_new(out, &opts, m, s_on_reply, NULL);
    s_nreplies = 0;
    signal(SIGPIPE, SIG_IGN);
    s_hello(&f, "pa", "a", 1, 1);
    uint64_t ts[] = {1};
    s_batch(&f, "pa", "a", 1, 0, 1, ts, 1, 0);
    assert_int_equal(collector_emit(f.c, 0, false), 1);
    assert_int_equal(collector_commit(f.c, 0, true), -EPIPE);
    assert_int_equal(s_count(WIRE_ACK), 0);
    collector_destroy(&f.c);
    output_close(&out);
    metrics_destroy(&m);
}

/* The largest caplen output_room still admits (0 when none). */
static uint32_t s_room_caplen(const output_t *out)
{
    uint32_t lo = 0, hi = WIRE_SNAPLEN_MAX + 1; /* room(lo) holds, room(hi) does not */
    if (!output_room(out, 0, NULL))
        return 0;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (output_room(out, mid, NULL))
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* A HELLO whose interface block needs a commit first (the output buffer is
 * nearly full) while another source is owed acknowledgements: the commit's
 * ACK must not take the place of the HELLO being handled. The WELCOME names
 * the HELLO's own source and goes to its sender, the ACK goes to the other
 * source, and the output holds one IDB per source and nothing made up. */
static void test_hello_while_buffer_full(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "peerA", "a", 1, 1);
    assert_int_equal(s_nreplies, 1);
    /* two packets that leave less room than an interface block needs, not
     * yet committed: their batches are owed acknowledgements */
    s_batch_big(f, "peerA", "a", 1, 0, 1000, 200000, 0);
    assert_int_equal(collector_emit(f->c, 0, false), 1);
    uint32_t fit = s_room_caplen(f->out);
    assert_true(fit > 2000);
    s_batch_big(f, "peerA", "a", 1, 1, 2000, (fit - 1200) & ~3u, 0);
    assert_int_equal(collector_emit(f->c, 0, false), 1);
    assert_true(s_room_caplen(f->out) < 1300);
    assert_int_equal(s_count(WIRE_ACK), 0);

    s_hello(f, "peerB", "b", 2, 1);
    assert_int_equal(s_nreplies, 3);
    reply_t *ack = &s_replies[1], *welcome = &s_replies[2];
    assert_int_equal(ack->msg.type, WIRE_ACK);
    assert_string_equal(ack->peer, "peerA");
    assert_string_equal(ack->msg.source, "a");
    assert_int_equal(ack->msg.epoch, 1);
    assert_int_equal(ack->msg.ack.count, 2);
    assert_int_equal(ack->msg.ack.entries[0].seq, 0);
    assert_int_equal(ack->msg.ack.entries[1].seq, 1);
    assert_int_equal(welcome->msg.type, WIRE_WELCOME);
    assert_string_equal(welcome->peer, "peerB");
    assert_string_equal(welcome->msg.source, "b");
    assert_int_equal(welcome->msg.epoch, 2);

    /* both sources known once each: b's batch is taken, a's HELLO again
     * is no conflict, and two sources are live */
    uint64_t ts[] = {3000};
    s_batch(f, "peerB", "b", 2, 0, 3000, ts, 1, 0);
    s_hello(f, "peerA", "a", 1, 1);
    assert_int_equal(s_replies[s_nreplies - 1].msg.type, WIRE_WELCOME);
    assert_string_equal(s_replies[s_nreplies - 1].msg.source, "a");
    s_progress(f, "peerA", WIRE_HEARTBEAT, "a", 1, 5000, 2, 0);
    assert_int_equal(s_pass(f, 0), 1);
    reply_t *last = &s_replies[s_nreplies - 1];
    assert_int_equal(last->msg.type, WIRE_ACK);
    assert_string_equal(last->peer, "peerB");
    assert_string_equal(last->msg.source, "b");
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "tapmesh_collect_sources_live 2\n"));
    free(text);

    assert_int_equal(output_flush(f->out), 0);
    char names[8][WIRE_NAME_MAX * 2 + 2];
    size_t epbs;
    assert_int_equal(s_idb_names(f->path, names, 8, &epbs), 2);
    assert_string_equal(names[0], "a/eth0");
    assert_string_equal(names[1], "b/eth0");
    assert_int_equal(epbs, 3);
}

/* An age rotation while nothing is buffered or owed (an idle collector)
 * takes the path of every rotation: the journal records the new file, the
 * file count moves. Started again with the same STATE_DIR, the collector
 * leaves the earlier file whole and counts what the new one holds as
 * written (a resend of it is a duplicate). */
static void test_idle_rotation_journaled(void **state)
{
    (void)state;
    char dir[64], sdir[96], path[96], first[128], second[128];
    snprintf(dir, sizeof dir, "/tmp/test_collector.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sdir, sizeof sdir, "%s/state", dir);
    snprintf(path, sizeof path, "%s/out.pcapng", dir);
    snprintf(first, sizeof first, "%s/out-0000.pcapng", dir);
    snprintf(second, sizeof second, "%s/out-0001.pcapng", dir);
    char err[512] = "";
    journal_t *j = journal_open(sdir, err, sizeof err);
    assert_non_null(j);
    output_opts_t oo = {.path = path,
                        .format = PCAPNG_FORMAT_PCAPNG,
                        .bufsize = 1 << 20,
                        .rotate_ms = 200,
                        .keep_existing = true};
    output_t *out = output_open(&oo, err, sizeof err);
    assert_non_null(out);
    assert_string_equal(output_path(out), first);
    assert_int_equal(journal_file(j, output_path(out)), 0); /* as main.c does */
    int64_t t0 = clock_mono_ms();
    fixture_t f = {.out = out, .metrics = metrics_new("collect", "test")};
    collector_opts_t opts = {.merge_window_ms = 1000,
                             .source_idle_ms = 10000,
                             .merge_max_bytes = 64 << 20,
                             .max_sources = 16,
                             .start_ms = t0,
                             .journal = j};
    f.c = collector_new(out, &opts, f.metrics, s_on_reply, NULL);
    assert_non_null(f.c);
    s_nreplies = 0;

    s_hello_at(&f, "pa", "a", 1, 1, t0);
    uint64_t ts0[] = {100, 200, 300};
    s_batch(&f, "pa", "a", 1, 0, 300, ts0, 3, t0);
    assert_int_equal(s_pass(&f, t0), 3);
    assert_int_equal(s_count(WIRE_ACK), 1);

    /* idle for longer than ROTATE_S (the clock is the real one, as in
     * main.c): the rotation is due with nothing to write */
    usleep(250 * 1000);
    int64_t t1 = clock_mono_ms();
    assert_int_equal(collector_commit(f.c, t1, false), 0);
    assert_string_equal(output_path(out), second);
    /* more than the first file holds goes into the second, at once (well
     * before it is due itself) */
    uint64_t ts1[20];
    for (int i = 0; i < 20; i++)
        ts1[i] = 400 + 100 * (uint64_t)i;
    s_batch(&f, "pa", "a", 1, 1, ts1[19], ts1, 20, t1);
    assert_int_equal(s_pass(&f, t1), 20);
    assert_int_equal(s_count(WIRE_ACK), 2);
    assert_string_equal(output_path(out), second);
    char *text = metrics_render(f.metrics, NULL);
    collector_destroy(&f.c);
    output_close(&out);
    metrics_destroy(&f.metrics);
    journal_close(&j);

    /* started again */
    j = journal_open(sdir, err, sizeof err);
    assert_non_null(j);
    uint64_t got[32];
    assert_int_equal(s_read_file(first, got, 32), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(got[i], ts0[i]);
    assert_int_equal(s_read_file(second, got, 32), 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(got[i], ts1[i]);
    journal_state_t *st = journal_take(j, "a", 1);
    assert_non_null(st);
    assert_true(seqset_has(&st->complete, 0));
    assert_true(seqset_has(&st->complete, 1));
    journal_state_free(&st);
    journal_close(&j);
    assert_non_null(strstr(text, "tapmesh_collect_output_files_total 2\n"));
    free(text);
    tmpdir_remove(dir);
}

/* ROTATE_FILES=1: a file closed while a batch begun in it waits for the
 * merge (its acknowledgement not sent) is not deleted; once the rest of
 * that batch is written and acknowledged, it is. */
static void test_retention_waits_for_ack(void **state)
{
    (void)state;
    char dir[64], path[96], first[128], second[128];
    snprintf(dir, sizeof dir, "/tmp/test_collector.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/out.pcapng", dir);
    snprintf(first, sizeof first, "%s/out-0000.pcapng", dir);
    snprintf(second, sizeof second, "%s/out-0001.pcapng", dir);
    char err[512] = "";
    output_opts_t oo = {
        .path = path, .format = PCAPNG_FORMAT_PCAPNG, .bufsize = 1 << 20, .rotate_ms = 200};
    output_t *out = output_open(&oo, err, sizeof err);
    assert_non_null(out);
    fixture_t f = {.out = out, .metrics = metrics_new("collect", "test")};
    retention_t *r = retention_new(1, 0, NULL, f.metrics);
    assert_int_equal(retention_begin(r, output_path(out), 0, 0), 0); /* as main.c does */
    int64_t t0 = clock_mono_ms();
    collector_opts_t opts = {.merge_window_ms = 60000,
                             .source_idle_ms = 60000,
                             .merge_max_bytes = 64 << 20,
                             .max_sources = 16,
                             .start_ms = t0,
                             .retention = r};
    f.c = collector_new(out, &opts, f.metrics, s_on_reply, NULL);
    assert_non_null(f.c);
    s_nreplies = 0;

    /* b holds the merge at 150: of a's batch only 100 is written */
    s_hello_at(&f, "pa", "a", 1, 1, t0);
    s_hello_at(&f, "pb", "b", 1, 1, t0);
    uint64_t tsa[] = {100, 200, 300}, tsb[] = {150};
    s_batch(&f, "pa", "a", 1, 0, 300, tsa, 3, t0);
    s_batch(&f, "pb", "b", 1, 0, 150, tsb, 1, t0);
    assert_int_equal(s_pass(&f, t0), 2);
    assert_int_equal(s_count(WIRE_ACK), 1); /* b's batch only */

    /* the rotation is due: the first file is closed, and with
     * ROTATE_FILES=1 over the bound, but a's batch is not acknowledged */
    usleep(250 * 1000);
    int64_t t1 = clock_mono_ms();
    assert_int_equal(collector_commit(f.c, t1, false), 0);
    assert_string_equal(output_path(out), second);
    assert_int_equal(access(first, F_OK), 0);
    assert_int_equal(collector_commit(f.c, t1 + 1, true), 0);
    assert_int_equal(access(first, F_OK), 0);
    assert_int_equal(retention_files(r), 2);

    /* b moves on: a's batch is written to its end, acknowledged, and the
     * first file goes */
    s_progress(&f, "pb", WIRE_HEARTBEAT, "b", 1, 1000, 1, t1 + 2);
    assert_int_equal(s_pass(&f, t1 + 2), 2);
    assert_int_equal(s_count(WIRE_ACK), 2);
    assert_int_equal(access(first, F_OK), -1);
    assert_int_equal(access(second, F_OK), 0);
    uint64_t got[8];
    assert_int_equal(s_read_file(second, got, 8), 2);
    assert_int_equal(got[0], 200);
    assert_int_equal(got[1], 300);
    char *text = metrics_render(f.metrics, NULL);
    assert_non_null(
        strstr(text, "tapmesh_collect_output_files_deleted_total{reason=\"count\"} 1\n"));
    free(text);
    collector_destroy(&f.c);
    retention_destroy(&r);
    output_close(&out);
    metrics_destroy(&f.metrics);
    tmpdir_remove(dir);
}

/* ---- EXPECT_SOURCES --------------------------------------------------- */

/* The fixture's collector again, started at `start_ms` with STARTUP_WAIT_MS
 * `grace_ms` and EXPECT_SOURCES `expect` (NULL: unset); the merge window
 * and idle timeout are long, so that only the start-up wait holds. */
static void s_renew(fixture_t *f, const char *expect, int64_t start_ms, int64_t grace_ms)
{
    collector_destroy(&f->c);
    metrics_destroy(&f->metrics);
    f->metrics = metrics_new("collect", "test");
    collector_opts_t opts = {.merge_window_ms = 60000,
                             .source_idle_ms = 60000,
                             .merge_max_bytes = 64 << 20,
                             .max_sources = 16,
                             .start_ms = start_ms,
                             .start_grace_ms = grace_ms,
                             .expect_sources = expect};
    f->c = collector_new(f->out, &opts, f->metrics, s_on_reply, NULL);
    assert_non_null(f->c);
    s_nreplies = 0;
}

static void s_assert_metric(fixture_t *f, const char *sample)
{
    char *text = metrics_render(f->metrics, NULL);
    if (!strstr(text, sample))
        fail_msg("no \"%s\" in the metrics", sample);
    free(text);
}

/* A source that joins at `now`, sends one packet at `ts` and ends. */
static void s_one_and_end(fixture_t *f, const char *source, uint64_t ts, int64_t now)
{
    s_hello_at(f, source, source, 1, 1, now);
    uint64_t one[] = {ts};
    s_batch(f, source, source, 1, 0, ts, one, 1, now);
    s_progress(f, source, WIRE_END, source, 1, ts, 1, now);
}

/* The setting's forms: a count, a list (blanks and empty items ignored),
 * nothing; and what is refused, with the reason. */
static void test_expect_check(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(collector_expect_check("", why, sizeof why), 0);
    assert_int_equal(collector_expect_check("  ", why, sizeof why), 0);
    assert_int_equal(collector_expect_check("0", why, sizeof why), 0);
    assert_int_equal(collector_expect_check("4", why, sizeof why), 4);
    assert_int_equal(collector_expect_check(" 12 ", why, sizeof why), 12);
    assert_int_equal(collector_expect_check("site1,site2", why, sizeof why), 2);
    assert_int_equal(collector_expect_check(" a , b,,c ", why, sizeof why), 3);
    assert_int_equal(collector_expect_check("17,", why, sizeof why), 1);
    assert_int_equal(collector_expect_check("1,2,3", why, sizeof why), 3);
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"a b", "\"a b\" is not a node id"},
        {"a,b/c", "\"b/c\" is not a node id"},
        {"a,\x01", "item 2 is not a node id"},
        {"a,b,a", "a is listed twice"},
        {",", "no node id"},
        {"99999999", "more than 1000000"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        assert_int_equal(collector_expect_check(bad[i].text, why, sizeof why), -EINVAL);
        if (!strstr(why, bad[i].why))
            fail_msg("EXPECT_SOURCES=%s: \"%s\" does not say %s", bad[i].text, why, bad[i].why);
    }
    collector_opts_t opts = {.max_sources = 4, .expect_sources = "a,a"};
    metrics_t *m = metrics_new("collect", "test");
    assert_null(collector_new(NULL, &opts, m, s_on_reply, NULL));
    metrics_destroy(&m);
}

/* EXPECT_SOURCES=2: nothing is written while one source has joined (a
 * second epoch of it is no second source), and everything the merge allows
 * is written the moment a second one joins, long before STARTUP_WAIT_MS. */
static void test_expect_count_releases(void **state)
{
    fixture_t *f = *state;
    s_renew(f, "2", 0, 5000);
    s_assert_metric(f, "tapmesh_collect_expected_sources_missing 2\n");
    s_one_and_end(f, "a", 10, 100);
    s_hello_at(f, "a2", "a", 2, 1, 150); /* a again, another epoch */
    s_progress(f, "a2", WIRE_END, "a", 2, 0, 0, 150);
    assert_int_equal(s_pass(f, 200), 0);
    s_assert_metric(f, "tapmesh_collect_expected_sources_missing 1\n");
    assert_int_equal(collector_next_deadline(f->c, 200), 100 + 5000);
    s_one_and_end(f, "b", 5, 300);
    s_assert_metric(f, "tapmesh_collect_expected_sources_missing 0\n");
    assert_int_equal(s_pass(f, 300), 2);
    uint64_t out[4];
    assert_int_equal(s_read_output(f, out, 4), 2);
    assert_int_equal(out[0], 5);
    assert_int_equal(out[1], 10);
}

/* EXPECT_SOURCES=b,c: a source not on the list does not count; the wait
 * ends with the last listed one. */
static void test_expect_ids_release(void **state)
{
    fixture_t *f = *state;
    s_renew(f, "b,c", 0, 5000);
    s_one_and_end(f, "a", 30, 100);
    s_one_and_end(f, "x", 40, 100);
    assert_int_equal(s_pass(f, 100), 0);
    s_assert_metric(f, "tapmesh_collect_expected_sources_missing 2\n");
    s_one_and_end(f, "c", 20, 200);
    assert_int_equal(s_pass(f, 200), 0);
    s_assert_metric(f, "tapmesh_collect_expected_sources_missing 1\n");
    s_one_and_end(f, "b", 10, 300);
    assert_int_equal(s_pass(f, 300), 4);
    uint64_t out[8];
    assert_int_equal(s_read_output(f, out, 8), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(out[i], 10 * (uint64_t)(i + 1));
}

/* While EXPECT_SOURCES holds, the merge window forces nothing out: a
 * packet that has waited longer than MERGE_WINDOW_MS for an expected
 * source still goes in order with that source's older packets. */
static void test_expect_holds_past_merge_window(void **state)
{
    fixture_t *f = *state;
    collector_destroy(&f->c);
    collector_opts_t opts = {.merge_window_ms = 1000,
                             .source_idle_ms = 60000,
                             .merge_max_bytes = 64 << 20,
                             .max_sources = 16,
                             .start_grace_ms = 10000,
                             .expect_sources = "a,b"};
    f->c = collector_new(f->out, &opts, f->metrics, s_on_reply, NULL);
    assert_non_null(f->c);
    s_one_and_end(f, "a", 20, 0);
    assert_int_equal(s_pass(f, 3000), 0);
    /* the loop sleeps until the bound (not at once, again and again) */
    assert_int_equal(collector_next_deadline(f->c, 3000), 10000);
    s_one_and_end(f, "b", 10, 3000);
    assert_int_equal(s_pass(f, 3000), 2);
    uint64_t out[4];
    assert_int_equal(s_read_output(f, out, 4), 2);
    assert_int_equal(out[0], 10);
    assert_int_equal(out[1], 20);
    s_assert_metric(f, "tapmesh_collect_late_packets_total 0\n");
    s_assert_metric(f, "tapmesh_collect_merge_forced_packets_total 0\n");
}

/* The last expected source joins with a HELLO, and its first packets come
 * a round trip later (the agent waits for WELCOME): the packets that waited
 * for it past MERGE_WINDOW_MS are not forced out at its HELLO, before its
 * older packets. The merge window counts from the release. */
static void test_expect_release_restarts_merge_window(void **state)
{
    fixture_t *f = *state;
    collector_destroy(&f->c);
    collector_opts_t opts = {.merge_window_ms = 1000,
                             .source_idle_ms = 60000,
                             .merge_max_bytes = 64 << 20,
                             .max_sources = 16,
                             .start_grace_ms = 100000,
                             .expect_sources = "a,b"};
    f->c = collector_new(f->out, &opts, f->metrics, s_on_reply, NULL);
    assert_non_null(f->c);
    s_one_and_end(f, "a", 20, 0);
    assert_int_equal(s_pass(f, 8000), 0);
    s_hello_at(f, "b", "b", 1, 1, 8000);
    assert_int_equal(s_pass(f, 8000), 0);
    assert_int_equal(s_pass(f, 8005), 0);
    uint64_t one[] = {10};
    s_batch(f, "b", "b", 1, 0, 10, one, 1, 8010);
    s_progress(f, "b", WIRE_END, "b", 1, 10, 1, 8010);
    assert_int_equal(s_pass(f, 8010), 2);
    uint64_t out[4];
    assert_int_equal(s_read_output(f, out, 4), 2);
    assert_int_equal(out[0], 10);
    assert_int_equal(out[1], 20);
    s_assert_metric(f, "tapmesh_collect_late_packets_total 0\n");
}

/* STARTUP_WAIT_MS bounds the wait for expected sources that do not come,
 * counted from the first one's HELLO (a collector that has run for long
 * before its sources start still waits for them), and the merge wakes for
 * it. Without EXPECT_SOURCES the wait counts from the start, as before. */
static void test_expect_bounded_by_startup_wait(void **state)
{
    fixture_t *f = *state;
    s_renew(f, "3", 0, 1000);
    assert_int_equal(s_pass(f, 4000), 0);
    s_one_and_end(f, "a", 10, 5000);
    assert_int_equal(s_pass(f, 5000), 0);
    assert_int_equal(collector_next_deadline(f->c, 5000), 6000);
    assert_int_equal(s_pass(f, 5999), 0);
    assert_int_equal(s_pass(f, 6000), 1);
    s_assert_metric(f, "tapmesh_collect_expected_sources_missing 2\n");
    s_one_and_end(f, "b", 20, 6100); /* late, but nothing holds it any more */
    assert_int_equal(s_pass(f, 6100), 1);
    s_assert_metric(f, "tapmesh_collect_expected_sources_missing 1\n");

    s_renew(f, NULL, 0, 1000);
    s_one_and_end(f, "c", 30, 500);
    assert_int_equal(s_pass(f, 999), 0);
    assert_int_equal(collector_next_deadline(f->c, 999), 1000);
    assert_int_equal(s_pass(f, 1000), 1);
    s_one_and_end(f, "d", 40, 5000);
    assert_int_equal(s_pass(f, 5000), 1);
    s_assert_metric(f, "tapmesh_collect_expected_sources_missing 0\n");
}

/* ---- a full disk ------------------------------------------------------ */

/* A collector with STATE_DIR, set up and torn down as main.c does. */
typedef struct {
    journal_t *j;
    output_t *out;
    fixture_t f;
} s_run_t;

static void s_run_open(s_run_t *r, const char *sdir, const char *path)
{
    char err[512] = "";
    memset(r, 0, sizeof *r);
    r->j = journal_open(sdir, err, sizeof err);
    if (!r->j)
        fail_msg("%s", err);
    output_opts_t oo = {
        .path = path, .format = PCAPNG_FORMAT_PCAPNG, .bufsize = 1 << 20, .keep_existing = true};
    r->out = output_open(&oo, err, sizeof err);
    assert_non_null(r->out);
    assert_int_equal(journal_file(r->j, output_path(r->out)), 0);
    r->f.out = r->out;
    r->f.metrics = metrics_new("collect", "test");
    collector_opts_t opts = {.merge_window_ms = 1000,
                             .source_idle_ms = 10000,
                             .merge_max_bytes = 64 << 20,
                             .max_sources = 16,
                             .journal = r->j};
    r->f.c = collector_new(r->out, &opts, r->f.metrics, s_on_reply, NULL);
    assert_non_null(r->f.c);
    s_nreplies = 0;
}

static void s_run_close(s_run_t *r)
{
    collector_destroy(&r->f.c);
    output_close(&r->out);
    metrics_destroy(&r->f.metrics);
    journal_close(&r->j);
}

static off_t s_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* A file system that fills up, for this process's files: a write that
 * crosses `limit` writes what fits and fails (EFBIG), as on a full disk. */
static struct rlimit s_fsize;

static void s_disk_full_at(off_t limit)
{
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &s_fsize), 0);
    struct rlimit rl = s_fsize;
    rl.rlim_cur = (rlim_t)limit;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void s_disk_freed(void)
{
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &s_fsize), 0);
}

/* Ten packets, 1000 to 1009 ns. */
static const uint64_t s_ten[] = {1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009};

/* After the restart of a full-disk test: a collector with the same
 * STATE_DIR and OUTPUT (`path` is kept: it writes `next`) takes batches 0
 * (three packets) and 1 (ten) again: 0 is acknowledged as written before,
 * only 1 is written. */
static void s_resend_after_restart(const char *sdir, const char *path, const char *next)
{
    s_run_t r;
    s_run_open(&r, sdir, path);
    assert_string_equal(output_path(r.out), next);
    s_hello(&r.f, "pa", "a", 1, 1);
    uint64_t ts0[] = {100, 200, 300};
    s_batch(&r.f, "pa", "a", 1, 0, 300, ts0, 3, 0);
    s_batch(&r.f, "pa", "a", 1, 1, 1009, s_ten, 10, 0);
    s_progress(&r.f, "pa", WIRE_END, "a", 1, 1009, 2, 0);
    assert_int_equal(s_pass(&r.f, 0), 10);
    assert_int_equal(s_count(WIRE_ACK), 1);
    const wire_msg_t *ack = &s_replies[s_nreplies - 1].msg;
    assert_int_equal(ack->type, WIRE_ACK);
    assert_int_equal(ack->ack.count, 2); /* the duplicate too */
    assert_int_equal(ack->ack.entries[0].seq + ack->ack.entries[1].seq, 1);
    s_run_close(&r);
    uint64_t got[32];
    assert_int_equal(s_read_file(next, got, 32), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(got[i], s_ten[i]);
}

/* The output's disk fills up in the middle of a flush: the write fails,
 * nothing more is acknowledged, and the file is cut back to the end of the
 * last whole flush, so that it reads to its end; nothing is written at the
 * teardown either. Started again with the same STATE_DIR, the collector
 * counts as written exactly what the file kept. */
static void test_full_output_cut_back(void **state)
{
    (void)state;
    char dir[64], sdir[96], path[96], first[128], second[128];
    snprintf(dir, sizeof dir, "/tmp/test_collector.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sdir, sizeof sdir, "%s/state", dir);
    snprintf(path, sizeof path, "%s/out.pcapng", dir);
    snprintf(first, sizeof first, "%s", path);
    snprintf(second, sizeof second, "%s/out-0000.pcapng", dir); /* out.pcapng is kept */
    s_run_t r;
    s_run_open(&r, sdir, path);
    s_hello(&r.f, "pa", "a", 1, 1);
    uint64_t ts0[] = {100, 200, 300};
    s_batch(&r.f, "pa", "a", 1, 0, 300, ts0, 3, 0);
    assert_int_equal(s_pass(&r.f, 0), 3);
    assert_int_equal(s_count(WIRE_ACK), 1);
    off_t whole = s_size(first);

    s_disk_full_at(whole + 100); /* a part of the next block fits */
    s_batch(&r.f, "pa", "a", 1, 1, 1009, s_ten, 10, 0);
    assert_int_equal(collector_emit(r.f.c, 0, false), 10);
    assert_true(collector_commit(r.f.c, 0, true) < 0);
    assert_non_null(strstr(collector_error(r.f.c), first));
    assert_int_equal(s_count(WIRE_ACK), 1); /* nothing more */
    s_run_close(&r);
    s_disk_freed();

    assert_int_equal(s_size(first), whole);
    uint64_t got[32];
    assert_int_equal(s_read_file(first, got, 32), 3);
    s_resend_after_restart(sdir, path, second);
    assert_int_equal(s_size(first), whole);
    assert_int_equal(s_read_file(second, got, 32), 10);
    tmpdir_remove(dir);
}

/* STATE_DIR's disk fills up while an intent is recorded: the flush it
 * announced does not happen, neither now nor at the teardown, and the torn
 * record is taken off the journal. The output holds what the journal says
 * was written; started again, the collector writes the rest once. */
static void test_full_journal_output_agrees(void **state)
{
    (void)state;
    char dir[64], sdir[96], path[96], first[128], second[128], jpath[128];
    snprintf(dir, sizeof dir, "/tmp/test_collector.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sdir, sizeof sdir, "%s/state", dir);
    snprintf(jpath, sizeof jpath, "%s/journal", sdir);
    snprintf(path, sizeof path, "%s/out.pcapng", dir);
    snprintf(first, sizeof first, "%s", path);
    snprintf(second, sizeof second, "%s/out-0000.pcapng", dir); /* out.pcapng is kept */
    /* an earlier run left a state of many ranges: the journal is larger
     * than the output will be, so that it alone reaches the limit */
    char err[512] = "";
    journal_t *j = journal_open(sdir, err, sizeof err);
    assert_non_null(j);
    assert_int_equal(journal_file(j, "-"), 0);
    journal_entry_t old[300];
    for (int i = 0; i < 300; i++)
        old[i] = (journal_entry_t){
            .source = "old", .epoch = 9, .seq = 2 * (uint64_t)i, .written = 1, .complete = true};
    assert_int_equal(journal_intent(j, 0, 0, old, 300), 0);
    assert_int_equal(journal_end(j, "old", 9), 0);
    journal_close(&j);

    s_run_t r;
    s_run_open(&r, sdir, path);
    s_hello(&r.f, "pa", "a", 1, 1);
    uint64_t ts0[] = {100, 200, 300};
    s_batch(&r.f, "pa", "a", 1, 0, 300, ts0, 3, 0);
    assert_int_equal(s_pass(&r.f, 0), 3);
    assert_int_equal(s_count(WIRE_ACK), 1);
    off_t whole = s_size(first), journaled = s_size(jpath);
    assert_true(journaled > whole + 2000);

    s_disk_full_at(journaled + 10); /* a part of the next record fits */
    s_batch(&r.f, "pa", "a", 1, 1, 1009, s_ten, 10, 0);
    assert_int_equal(collector_emit(r.f.c, 0, false), 10);
    assert_true(collector_commit(r.f.c, 0, true) < 0);
    assert_non_null(strstr(collector_error(r.f.c), "STATE_DIR"));
    assert_int_equal(s_count(WIRE_ACK), 1);
    s_run_close(&r);
    s_disk_freed();

    assert_int_equal(s_size(jpath), journaled);
    uint64_t got[32];
    assert_int_equal(s_read_file(first, got, 32), 3);
    s_resend_after_restart(sdir, path, second);
    assert_int_equal(s_read_file(first, got, 32), 3);
    assert_int_equal(s_read_file(second, got, 32), 10);
    tmpdir_remove(dir);
}

/* Bytes and files written only grow: counters (_total), not gauges. */
static void test_output_metrics_are_counters(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    uint64_t ts[] = {10, 20};
    s_batch(f, "pa", "a", 1, 0, 20, ts, 2, 0);
    assert_int_equal(s_pass(f, 0), 2);
    char *text = metrics_render(f->metrics, NULL);
    assert_non_null(strstr(text, "# TYPE tapmesh_collect_output_bytes_total counter\n"));
    assert_non_null(strstr(text, "# TYPE tapmesh_collect_output_files_total counter\n"));
    assert_non_null(strstr(text, "tapmesh_collect_output_files_total 1\n"));
    char want[96];
    snprintf(want, sizeof want, "tapmesh_collect_output_bytes_total %llu\n",
             (unsigned long long)output_bytes(f->out));
    assert_true(output_bytes(f->out) > 0);
    assert_non_null(strstr(text, want));
    assert_null(strstr(text, "tapmesh_collect_output_bytes "));
    assert_null(strstr(text, "tapmesh_collect_output_files "));
    free(text);
}

/* A source met mid-stream (a relay failed over to this collector, or it
 * restarted without STATE_DIR) says in HELLO which batches were settled
 * elsewhere: its watermark counts at once, without a merge window's wait
 * for batches that will never come; one of them arriving late anyway is a
 * duplicate, acknowledged and not written. */
static void test_hello_settled(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    memset(&s_m, 0, sizeof s_m);
    s_m.type = WIRE_HELLO;
    snprintf(s_m.source, sizeof s_m.source, "b");
    s_m.epoch = 2;
    s_m.hello.settled = 5;
    s_m.hello.iface_count = 1;
    s_m.hello.ifaces[0].linktype = 1;
    s_m.hello.ifaces[0].snaplen = 65535;
    snprintf(s_m.hello.ifaces[0].name, sizeof s_m.hello.ifaces[0].name, "eth0");
    size_t len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    s_deliver(f, "pb", s_cmd, len, NULL, 0, 0);
    const uint64_t ta[] = {100, 300}, tb[] = {200};
    s_batch(f, "pa", "a", 1, 0, 300, ta, 2, 1);
    s_batch(f, "pb", "b", 2, 5, 400, tb, 1, 1);
    assert_int_equal(s_pass(f, 2), 3); /* 100, 200, 300: no window's wait */
    s_nreplies = 0;
    const uint64_t late[] = {150};
    s_batch(f, "pb", "b", 2, 3, 150, late, 1, 3);
    assert_int_equal(s_pass(f, 4), 0);
    bool acked = false;
    for (size_t i = 0; i < s_nreplies; i++)
        acked |= s_replies[i].msg.type == WIRE_ACK && strcmp(s_replies[i].peer, "pb") == 0 &&
                 s_replies[i].msg.ack.entries[0].seq == 3;
    assert_true(acked);
    metric_id_t dup =
        metrics_counter(f->metrics, "tapmesh_collect_duplicate_batches_total", "", NULL);
    assert_int_equal(metrics_value(f->metrics, dup), 1);
}

/* ---- DEAD (§3.9) ---------------------------------------------------------- */

/* DEAD from `source`: `n` ranges, lo and hi in turn in `r`. */
static void s_dead(fixture_t *f, const char *peer, const char *source, uint64_t epoch,
                   const uint64_t *r, size_t n, int64_t now)
{
    wire_msg_init(&s_m, WIRE_DEAD, source, epoch);
    s_m.dead.count = (uint16_t)n;
    for (size_t i = 0; i < n; i++)
        s_m.dead.ranges[i] = (wire_range_t){.lo = r[2 * i], .hi = r[2 * i + 1]};
    size_t len = wire_encode(&s_m, s_cmd, sizeof s_cmd);
    assert_true(len > 0);
    s_deliver(f, peer, s_cmd, len, NULL, 0, now);
}

/* True when an ACK to `peer` for `seq` is among the replies. */
static bool s_acked(const char *peer, uint64_t seq)
{
    for (size_t i = 0; i < s_nreplies; i++) {
        const wire_msg_t *m = &s_replies[i].msg;
        if (m->type != WIRE_ACK || strcmp(s_replies[i].peer, peer) != 0)
            continue;
        for (unsigned e = 0; e < m->ack.count; e++)
            if (m->ack.entries[e].seq == seq)
                return true;
    }
    return false;
}

/* Batches 1 and 2 were dead-lettered: without DEAD the watermark waits for
 * them (only batch 0 goes out within the window); DEAD releases it at once,
 * and they are no gap. A replay of batch 1 is still new: written once,
 * acknowledged; its second copy is a duplicate. */
static void test_dead_releases_watermark(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    const uint64_t b0[] = {10}, b3[] = {50, 60};
    s_batch(f, "pa", "a", 1, 0, 10, b0, 1, 0);
    s_batch(f, "pa", "a", 1, 3, 60, b3, 2, 0);
    assert_int_equal(s_pass(f, 1), 1); /* 10; 50 and 60 wait for batches 1, 2 */
    s_assert_metric(f, "tapmesh_collect_batches_missing 2\n");
    const uint64_t r[] = {1, 3};
    s_dead(f, "pa", "a", 1, r, 1, 2);
    s_assert_metric(f, "tapmesh_collect_batches_missing 0\n");
    s_assert_metric(f, "tapmesh_collect_dead_skipped_batches_total 2\n");
    assert_int_equal(s_pass(f, 3), 2); /* within the window: the watermark let them go */
    s_assert_metric(f, "tapmesh_collect_merge_forced_packets_total 0\n");
    assert_true(s_acked("pa", 3));
    /* the replay of batch 1 */
    s_nreplies = 0;
    const uint64_t b1[] = {30};
    s_batch(f, "pa", "a", 1, 1, 30, b1, 1, 4);
    assert_int_equal(s_pass(f, 5), 1);
    assert_true(s_acked("pa", 1));
    s_nreplies = 0;
    s_batch(f, "pa", "a", 1, 1, 30, b1, 1, 6);
    assert_int_equal(s_pass(f, 7), 0);
    assert_true(s_acked("pa", 1)); /* acknowledged again */
    s_assert_metric(f, "tapmesh_collect_duplicate_batches_total 1\n");
    s_assert_metric(f, "tapmesh_collect_batches_missing 0\n");
    uint64_t out[8];
    assert_int_equal(s_read_output(f, out, 8), 4);
    assert_int_equal(out[0], 10);
    assert_int_equal(out[1], 50);
    assert_int_equal(out[2], 60);
    assert_int_equal(out[3], 30); /* late, once */
    /* DEAD after END: the source ends once nothing is left to wait for */
    s_progress(f, "pa", WIRE_END, "a", 1, 60, 5, 8);
    const uint64_t r4[] = {4, 5};
    s_dead(f, "pa", "a", 1, r4, 1, 9);
    s_pass(f, 10);
    s_assert_metric(f, "tapmesh_collect_sources_live 0\n");
}

/* DEAD for batches already taken changes nothing: no skip counted, the
 * gap below stays one, the watermark still waits for it, and a resend of
 * a taken batch is a duplicate. */
static void test_dead_for_seen_changes_nothing(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    const uint64_t b0[] = {10}, b2[] = {30};
    s_batch(f, "pa", "a", 1, 0, 10, b0, 1, 0);
    s_batch(f, "pa", "a", 1, 2, 30, b2, 1, 0);
    const uint64_t r[] = {0, 1, 2, 3};
    s_dead(f, "pa", "a", 1, r, 2, 1);
    s_assert_metric(f, "tapmesh_collect_dead_skipped_batches_total 0\n");
    s_assert_metric(f, "tapmesh_collect_batches_missing 1\n");
    assert_int_equal(s_pass(f, 2), 1); /* 30 still waits for batch 1 */
    s_batch(f, "pa", "a", 1, 0, 10, b0, 1, 3);
    s_assert_metric(f, "tapmesh_collect_duplicate_batches_total 1\n");
    const uint64_t b1[] = {20};
    s_batch(f, "pa", "a", 1, 1, 20, b1, 1, 4);
    assert_int_equal(s_pass(f, 5), 2);
    uint64_t out[4];
    assert_int_equal(s_read_output(f, out, 4), 3);
    assert_int_equal(out[1], 20);
    assert_int_equal(out[2], 30);
    s_assert_metric(f, "tapmesh_collect_late_packets_total 0\n");
}

/* DEAD of a source the collector does not know: REFUSE code 1 (HELLO
 * first), like HEARTBEAT. */
static void test_dead_unknown_source(void **state)
{
    fixture_t *f = *state;
    const uint64_t r[] = {0, 4};
    s_dead(f, "pa", "nobody", 9, r, 1, 0);
    assert_int_equal(s_nreplies, 1);
    assert_int_equal(s_replies[0].msg.type, WIRE_REFUSE);
    assert_int_equal(s_replies[0].msg.refuse.code, WIRE_REFUSE_UNKNOWN_SOURCE);
}

/* The skipped ranges of a source are bounded (1024): a peer cannot grow
 * them further; what does not fit is counted (and waited for), what
 * merges with a range kept still fits. */
static void test_dead_bounded(void **state)
{
    fixture_t *f = *state;
    s_hello(f, "pa", "a", 1, 1);
    static uint64_t r[2 * WIRE_DEAD_MAX];
    for (size_t i = 0; i < WIRE_DEAD_MAX; i++) {
        r[2 * i] = 2 * i + 1;
        r[2 * i + 1] = 2 * i + 2;
    }
    s_dead(f, "pa", "a", 1, r, WIRE_DEAD_MAX, 0);
    s_assert_metric(f, "tapmesh_collect_dead_skipped_batches_total 1024\n");
    s_assert_metric(f, "tapmesh_collect_dead_refused_ranges_total 0\n");
    const uint64_t more[] = {5000, 5001, 6000, 6002};
    s_dead(f, "pa", "a", 1, more, 2, 1);
    s_assert_metric(f, "tapmesh_collect_dead_refused_ranges_total 2\n");
    s_assert_metric(f, "tapmesh_collect_dead_skipped_batches_total 1024\n");
    /* [2, 3) joins [1, 2) and [3, 4): no new range */
    const uint64_t join[] = {2, 3};
    s_dead(f, "pa", "a", 1, join, 1, 2);
    s_assert_metric(f, "tapmesh_collect_dead_skipped_batches_total 1025\n");
    s_assert_metric(f, "tapmesh_collect_dead_refused_ranges_total 2\n");
    /* batch 0 taken: the watermark is free up to 4 (0, 1..3 skipped), not
     * past batch 4 */
    const uint64_t b0[] = {10}, b6[] = {70};
    s_batch(f, "pa", "a", 1, 0, 10, b0, 1, 3);
    s_batch(f, "pa", "a", 1, 6, 70, b6, 1, 3);
    assert_int_equal(s_pass(f, 4), 1); /* 70 waits for batch 4 */
}

/* ---- sources bound to keys ----------------------------------------------- */

static char s_key_edge1[41], s_key_other[41], s_key_relay[41], s_key_stranger[41];

/* A key's Z85 text from 32 bytes of `b`. */
static void s_key(char *out, uint8_t b)
{
    uint8_t bin[32];
    memset(bin, b, sizeof bin);
    assert_non_null(zmq_z85_encode(out, bin, sizeof bin));
}

static int s_setup_trust(void **state)
{
    s_key(s_key_edge1, 1);
    s_key(s_key_other, 2);
    s_key(s_key_relay, 3);
    s_key(s_key_stranger, 4);
    s_trust = trust_new();
    char err[256];
    assert_int_equal(trust_add(s_trust, s_key_edge1, "edge1", false, err, sizeof err), 0);
    assert_int_equal(trust_add(s_trust, s_key_other, "mallory", false, err, sizeof err), 0);
    assert_int_equal(trust_add(s_trust, s_key_relay, NULL, true, err, sizeof err), 0);
    return s_setup(state);
}

/* The spoofing attack: a peer that knows edge1's source id and epoch sends
 * HELLO (other interfaces), batches with seq 1 and 2 (junk timestamps,
 * watermark 2^64-1), a HEARTBEAT and END, with an allowed key that belongs
 * to another node, with a key not in the list, and with none. Nothing is
 * answered and nothing of edge1 changes: its packet still waits for its
 * watermark, its own batches 1 and 2 are taken (not duplicates), and the
 * output holds exactly its packets. A relay's key speaks for anyone. */
static void test_identity_spoof(void **state)
{
    fixture_t *f = *state;
    const uint64_t epoch = 42;
    s_user = s_key_edge1;
    s_hello(f, "real", "edge1", epoch, 1);
    assert_int_equal(s_count(WIRE_WELCOME), 1);
    const uint64_t t0[] = {2000};
    s_batch(f, "real", "edge1", epoch, 0, 1999, t0, 1, 0); /* not due: watermark below */

    size_t replies = s_nreplies;
    const char *spoofers[] = {s_key_other, s_key_stranger, ""};
    const uint64_t junk[] = {1, 5000};
    for (size_t i = 0; i < 3; i++) {
        s_user = spoofers[i];
        s_hello_at(f, "evil", "edge1", epoch, 147, 1);
        s_batch(f, "evil", "edge1", epoch, 1, UINT64_MAX, junk, 2, 1);
        s_batch(f, "evil", "edge1", epoch, 2, UINT64_MAX, junk, 2, 1);
        s_progress(f, "evil", WIRE_HEARTBEAT, "edge1", epoch, UINT64_MAX, 3, 1);
        s_progress(f, "evil", WIRE_END, "edge1", epoch, UINT64_MAX, 3, 1);
    }
    assert_int_equal(s_nreplies, replies); /* unanswered */
    s_assert_metric(f, "tapmesh_collect_auth_failures_total{reason=\"identity\"} 15");
    s_assert_metric(f, "tapmesh_collect_sources_refused_total{reason=\"conflict\"} 0");
    /* no watermark moved: edge1's packet still waits */
    assert_int_equal(s_pass(f, 10), 0);

    s_user = s_key_edge1;
    const uint64_t t1[] = {2001}, t2[] = {2002};
    s_batch(f, "real", "edge1", epoch, 1, 2001, t1, 1, 20);
    s_batch(f, "real", "edge1", epoch, 2, 2002, t2, 1, 20);
    s_progress(f, "real", WIRE_END, "edge1", epoch, UINT64_MAX, 3, 20);
    assert_int_equal(s_pass(f, 30), 3);
    s_assert_metric(f, "tapmesh_collect_duplicate_batches_total 0");
    uint64_t ts[8];
    assert_int_equal(s_read_output(f, ts, 8), 3);
    assert_int_equal(ts[0], 2000);
    assert_int_equal(ts[1], 2001);
    assert_int_equal(ts[2], 2002);
    size_t acked = 0;
    for (size_t i = replies; i < s_nreplies; i++) {
        assert_string_equal(s_replies[i].peer, "real");
        if (s_replies[i].msg.type == WIRE_ACK)
            acked += s_replies[i].msg.ack.count;
    }
    assert_int_equal(acked, 3);

    /* the other node's key, for its own node id; a relay's, for anyone */
    s_user = s_key_other;
    s_hello(f, "mallory-peer", "mallory", 7, 1);
    s_user = s_key_relay;
    s_hello(f, "relay-peer", "edge9", 8, 1);
    assert_int_equal(s_count(WIRE_WELCOME), 3);
}

/* ---- no lock-out by a flood ---------------------------------------------- */

static int s_setup_limits(void **state)
{
    s_per_peer = 4;
    s_rate = 10;
    return s_setup(state);
}

static int s_setup_per_peer_8(void **state)
{
    s_per_peer = 8;
    return s_setup(state);
}

/* Welcomes sent to `peer` among the replies since `from`. */
static size_t s_welcomed(const char *peer, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < s_nreplies; i++)
        n += s_replies[i].msg.type == WIRE_WELCOME && strcmp(s_replies[i].peer, peer) == 0;
    return n;
}

/* One peer announces 100 made-up sources at once: it gets its 4
 * (MAX_SOURCES_PER_PEER), the rest is refused, by its limit while its
 * allowance of 10 a second lasts, then by the rate; refused HELLOs write no
 * interface block. A real agent on another connection joins and is written.
 * The flooder gets a new source only once one of its own has ended. */
static void test_flood_one_peer(void **state)
{
    fixture_t *f = *state;
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "flood-%d", i);
        s_hello_at(f, "flooder", name, 1000 + (uint64_t)i, 1, 0);
    }
    assert_int_equal(s_welcomed("flooder", 0), 4);
    s_assert_metric(f, "tapmesh_collect_sources_refused_total{reason=\"peer_limit\"} 6\n");
    s_assert_metric(f, "tapmesh_collect_sources_refused_total{reason=\"hello_rate\"} 90\n");

    s_hello(f, "real", "edge1", 7, 1);
    assert_int_equal(s_welcomed("real", 0), 1);
    const uint64_t ts[] = {5000, 5001};
    s_batch(f, "real", "edge1", 7, 0, 5001, ts, 2, 0);
    s_progress(f, "real", WIRE_END, "edge1", 7, UINT64_MAX, 1, 0);
    for (int i = 0; i < 4; i++) { /* the flooder's sources go quiet: no longer waited for */
        snprintf(name, sizeof name, "flood-%d", i);
        s_progress(f, "flooder", WIRE_HEARTBEAT, name, 1000 + (uint64_t)i, UINT64_MAX, 0, 0);
    }
    assert_int_equal(s_pass(f, 10), 2);
    uint64_t got[4];
    assert_int_equal(s_read_output(f, got, 4), 2);
    char names[16][WIRE_NAME_MAX * 2 + 2];
    size_t epbs;
    assert_int_equal(s_idb_names(f->path, names, 16, &epbs), 5);
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "flood-%d/eth0", i);
        assert_string_equal(names[i], name);
    }
    assert_string_equal(names[4], "edge1/eth0");

    /* a second later the allowance is back; the limit still holds */
    size_t mark = s_nreplies;
    s_hello_at(f, "flooder", "flood-100", 2000, 1, 1000);
    assert_int_equal(s_welcomed("flooder", mark), 0);
    s_assert_metric(f, "tapmesh_collect_sources_refused_total{reason=\"peer_limit\"} 7\n");
    /* one of its own ends: it makes room for the next */
    s_progress(f, "flooder", WIRE_END, "flood-0", 1000, UINT64_MAX, 0, 1000);
    s_hello_at(f, "flooder", "flood-101", 2001, 1, 1000);
    assert_int_equal(s_welcomed("flooder", mark), 1);
}

/* MAX_SOURCES (16) reached by two flooders (8 each): a real agent's HELLO
 * makes room from a peer holding the most. Its state, holding a batch not
 * yet written, is never given up: a third flooder takes the others' room
 * (until it holds as many as they do), not its, and its batches go on. When every state holds
 * batches not yet acknowledged, a new source is refused, and taken once they are. */
static void test_flood_eviction(void **state)
{
    fixture_t *f = *state;
    char name[32];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "a-%d", i);
        s_hello_at(f, "flood-a", name, 100 + (uint64_t)i, 1, i);
        snprintf(name, sizeof name, "b-%d", i);
        s_hello_at(f, "flood-b", name, 200 + (uint64_t)i, 1, i);
    }
    assert_int_equal(s_count(WIRE_WELCOME), 16);
    s_hello_at(f, "real", "edge1", 7, 1, 10);
    assert_int_equal(s_welcomed("real", 0), 1);
    s_assert_metric(f, "tapmesh_collect_sources_refused_total{reason=\"full\"} 0\n");
    const uint64_t t0[] = {5000};
    s_batch(f, "real", "edge1", 7, 0, 4999, t0, 1, 10); /* queued: its watermark is below */

    size_t mark = s_nreplies;
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "c-%d", i);
        s_hello_at(f, "flood-c", name, 300 + (uint64_t)i, 1, 20);
    }
    /* it takes room from the two others until all three hold as many (5):
     * then it is refused too */
    assert_int_equal(s_welcomed("flood-c", mark), 5);
    s_assert_metric(f, "tapmesh_collect_sources_refused_total{reason=\"full\"} 95\n");
    for (size_t i = mark; i < s_nreplies; i++)
        assert_string_not_equal(s_replies[i].peer, "real");
    /* edge1 is still known: its next batch is taken, not refused */
    const uint64_t t1[] = {5001};
    s_batch(f, "real", "edge1", 7, 1, 5001, t1, 1, 30);
    s_progress(f, "real", WIRE_END, "edge1", 7, UINT64_MAX, 2, 30);
    for (size_t i = mark; i < s_nreplies; i++)
        assert_false(s_replies[i].msg.type == WIRE_REFUSE);
    assert_int_equal(collector_emit(f->c, 2000, true), 2); /* the others hold nothing */
    assert_int_equal(collector_commit(f->c, 2000, true), 0);
    uint64_t got[4];
    assert_int_equal(s_read_output(f, got, 4), 2);
    assert_int_equal(got[0], 5000);
    assert_int_equal(got[1], 5001);
}

static void test_flood_never_unacknowledged(void **state)
{
    fixture_t *f = *state;
    char name[32];
    for (int i = 0; i < 16; i++) {
        const char *peer = i < 8 ? "peer-a" : "peer-b";
        snprintf(name, sizeof name, "s-%d", i);
        s_hello_at(f, peer, name, 100 + (uint64_t)i, 1, 0);
        const uint64_t ts[] = {5000 + (uint64_t)i};
        s_batch(f, peer, name, 100 + (uint64_t)i, 0, 0, ts, 1, 0); /* queued */
    }
    size_t mark = s_nreplies;
    s_hello_at(f, "newcomer", "edge9", 9, 1, 0);
    assert_int_equal(s_welcomed("newcomer", mark), 0);
    s_assert_metric(f, "tapmesh_collect_sources_refused_total{reason=\"full\"} 1\n");
    /* written and acknowledged: now one may go */
    assert_int_equal(collector_emit(f->c, 0, true), 16);
    assert_int_equal(collector_commit(f->c, 0, true), 0);
    s_hello_at(f, "newcomer", "edge9", 9, 1, 0);
    assert_int_equal(s_welcomed("newcomer", mark), 1);
}

/* A source that only says HELLO, however often, holds the merge for a
 * moment after joining, not for a merge window at every batch: a flood of
 * such sources cannot slow everybody else down. Once it sends a heartbeat
 * it holds the merge like any source. */
static void test_hello_only_holds_briefly(void **state)
{
    fixture_t *f = *state;
    s_hello_at(f, "pa", "a", 1, 1, 0);
    s_hello_at(f, "flooder", "f1", 1, 1, 0);
    const uint64_t a0[] = {10};
    s_batch(f, "pa", "a", 1, 0, 10, a0, 1, 400);
    for (int64_t t = 100; t < 1000; t += 100) /* HELLO again and again */
        s_hello_at(f, "flooder", "f1", 1, 1, t);
    assert_int_equal(s_pass(f, 500), 0); /* f1 just joined: waited for */
    assert_int_equal(collector_next_deadline(f->c, 950), 1000);
    assert_int_equal(s_pass(f, 1000), 1); /* not for longer: a0 goes, before its window */
    s_assert_metric(f, "tapmesh_collect_merge_forced_packets_total 0\n");
    s_assert_metric(f, "tapmesh_collect_sources_live 1\n");
    /* fed now: it holds the merge again */
    s_progress(f, "flooder", WIRE_HEARTBEAT, "f1", 1, 5, 0, 1100);
    const uint64_t a1[] = {20};
    s_batch(f, "pa", "a", 1, 1, 20, a1, 1, 1100);
    assert_int_equal(s_pass(f, 1200), 0);
    s_assert_metric(f, "tapmesh_collect_sources_live 2\n");
}

/* ---- runs -------------------------------------------------------- */

/* Every heap update the collector makes, counted through the linker
 * (-Wl,--wrap=merge_update). */
static size_t s_merge_updates;
int __real_merge_update(merge_t *self, merge_lane_t *lane);
int __wrap_merge_update(merge_t *self, merge_lane_t *lane);
int __wrap_merge_update(merge_t *self, merge_lane_t *lane)
{
    s_merge_updates++;
    return __real_merge_update(self, lane);
}

/* The EPBs of the output, in order: interface id and timestamp. */
static size_t s_read_epbs(fixture_t *f, uint32_t *ifid, uint64_t *ts, size_t max)
{
    assert_int_equal(output_flush(f->out), 0);
    FILE *fp = fopen(f->path, "rb");
    assert_non_null(fp);
    static uint8_t buf[8 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    assert_true(n < sizeof buf);
    size_t k = 0;
    for (size_t off = 0; off < n;) {
        uint32_t type, len, hi, lo;
        assert_true(n - off >= 12);
        memcpy(&type, buf + off, 4);
        memcpy(&len, buf + off + 4, 4);
        assert_true(len >= 12 && len % 4 == 0 && len <= n - off);
        if (type == 6) {
            assert_true(k < max);
            memcpy(&ifid[k], buf + off + 8, 4);
            memcpy(&hi, buf + off + 12, 4);
            memcpy(&lo, buf + off + 16, 4);
            ts[k++] = (uint64_t)hi << 32 | lo;
        }
        off += len;
    }
    return k;
}

static uint64_t s_rand_state;
static uint64_t s_rand(void)
{
    s_rand_state ^= s_rand_state << 13;
    s_rand_state ^= s_rand_state >> 7;
    s_rand_state ^= s_rand_state << 17;
    return s_rand_state;
}

#define S_RUN_SOURCES 4
#define S_RUN_BATCHES 6
#define S_RUN_MAX 300 /* packets per batch at most */

/* The merge packet by packet, as the collector must behave: the queue
 * whose next packet has the smallest (timestamp, join order) goes first,
 * while that timestamp is at or below the smallest watermark. */
typedef struct {
    uint64_t ts[S_RUN_BATCHES * S_RUN_MAX];
    size_t n, next;
    uint64_t wm;
    bool ended;
} s_ref_lane_t;

static void s_ref_pass(s_ref_lane_t *l, size_t nl, uint32_t *ifid, uint64_t *ts, size_t *out)
{
    uint64_t min_wm = UINT64_MAX;
    for (size_t i = 0; i < nl; i++)
        if (!l[i].ended && l[i].wm < min_wm)
            min_wm = l[i].wm;
    for (;;) {
        size_t best = nl;
        for (size_t i = 0; i < nl; i++)
            if (l[i].next < l[i].n && (best == nl || l[i].ts[l[i].next] < l[best].ts[l[best].next]))
                best = i;
        if (best == nl || l[best].ts[l[best].next] > min_wm)
            return;
        ifid[*out] = (uint32_t)best;
        ts[(*out)++] = l[best].ts[l[best].next++];
    }
}

/* Runs from four sources: batches of different lengths arriving in a
 * random order, timestamps that tie across sources and within one, and
 * now and then one that goes back in time (written late); watermarks cut
 * runs part-way. The output is, packet for packet, the merge taken one
 * packet at a time, ties going to the source that joined first, and the
 * counters agree with it. */
static void test_runs_match_packet_by_packet(void **state)
{
    fixture_t *f = *state;
    static s_ref_lane_t lanes[S_RUN_SOURCES];
    static uint64_t batch_ts[S_RUN_SOURCES][S_RUN_BATCHES][S_RUN_MAX];
    size_t batch_n[S_RUN_SOURCES][S_RUN_BATCHES];
    static uint32_t want_if[S_RUN_SOURCES * S_RUN_BATCHES * S_RUN_MAX];
    static uint64_t want_ts[S_RUN_SOURCES * S_RUN_BATCHES * S_RUN_MAX];
    static uint32_t got_if[S_RUN_SOURCES * S_RUN_BATCHES * S_RUN_MAX];
    static uint64_t got_ts[S_RUN_SOURCES * S_RUN_BATCHES * S_RUN_MAX];
    const char *names[S_RUN_SOURCES] = {"a", "b", "c", "d"};
    s_rand_state = 0x9e3779b97f4a7c15u;
    memset(lanes, 0, sizeof lanes);
    for (size_t i = 0; i < S_RUN_SOURCES; i++) {
        s_hello(f, names[i], names[i], 1, 1);
        uint64_t t = 1000;
        for (size_t k = 0; k < S_RUN_BATCHES; k++) {
            /* runs of very different lengths: 1 packet up to S_RUN_MAX */
            size_t n = k == 0 ? 1 : 1 + s_rand() % (i == 0 ? S_RUN_MAX : S_RUN_MAX / (i * 8));
            for (size_t j = 0; j < n; j++) {
                uint64_t r = s_rand() % 16;
                /* steps of 0 (ties) to a few; a step back now and then */
                t = r == 0 && t > 1010 ? t - 10 : t + (i == 0 ? r % 3 : r % 5) * (1 + i % 2);
                batch_ts[i][k][j] = t;
            }
            batch_n[i][k] = n;
        }
    }
    size_t sent[S_RUN_SOURCES] = {0}, left = S_RUN_SOURCES * S_RUN_BATCHES, want = 0;
    while (left) {
        size_t i = s_rand() % S_RUN_SOURCES;
        if (sent[i] == S_RUN_BATCHES)
            continue;
        size_t k = sent[i]++;
        left--;
        uint64_t wm = 0;
        for (size_t j = 0; j < batch_n[i][k]; j++) {
            lanes[i].ts[lanes[i].n++] = batch_ts[i][k][j];
            wm = batch_ts[i][k][j] > wm ? batch_ts[i][k][j] : wm;
        }
        if (wm > lanes[i].wm)
            lanes[i].wm = wm;
        s_batch(f, names[i], names[i], 1, k, wm, batch_ts[i][k], batch_n[i][k], 0);
        s_pass(f, 0);
        s_ref_pass(lanes, S_RUN_SOURCES, want_if, want_ts, &want);
    }
    for (size_t i = 0; i < S_RUN_SOURCES; i++) {
        s_progress(f, names[i], WIRE_END, names[i], 1, lanes[i].wm, S_RUN_BATCHES, 0);
        lanes[i].ended = true;
    }
    s_pass(f, 0);
    s_ref_pass(lanes, S_RUN_SOURCES, want_if, want_ts, &want);
    size_t total = 0;
    for (size_t i = 0; i < S_RUN_SOURCES; i++)
        total += lanes[i].n;
    assert_int_equal(want, total);
    assert_int_equal(collector_queued_packets(f->c), 0);
    size_t got = s_read_epbs(f, got_if, got_ts, total);
    assert_int_equal(got, total);
    uint64_t late = 0, newest = 0, bytes = 0, per[S_RUN_SOURCES] = {0};
    for (size_t k = 0; k < total; k++) {
        if (got_if[k] != want_if[k] || got_ts[k] != want_ts[k])
            fail_msg("packet %zu: source %u ts %llu, want source %u ts %llu", k, got_if[k],
                     (unsigned long long)got_ts[k], want_if[k], (unsigned long long)want_ts[k]);
        if (want_ts[k] < newest)
            late++;
        else
            newest = want_ts[k];
        bytes += 60 + want_ts[k] % 40;
        per[want_if[k]]++;
    }
    assert_true(late > 0); /* the steps back were written late, and counted */
    char sample[128];
    snprintf(sample, sizeof sample, "tapmesh_collect_late_packets_total %llu\n",
             (unsigned long long)late);
    s_assert_metric(f, sample);
    snprintf(sample, sizeof sample, "tapmesh_collect_packets_total %zu\n", total);
    s_assert_metric(f, sample);
    snprintf(sample, sizeof sample, "tapmesh_collect_bytes_total %llu\n",
             (unsigned long long)bytes);
    s_assert_metric(f, sample);
    for (size_t i = 0; i < S_RUN_SOURCES; i++) {
        snprintf(sample, sizeof sample,
                 "tapmesh_collect_source_packets_total{source=\"%s\"} %llu\n", names[i],
                 (unsigned long long)per[i]);
        s_assert_metric(f, sample);
    }
    s_assert_metric(f, "tapmesh_collect_merge_queued_packets 0\n");
}

/* One heap update per run, not per packet: a source alone is written
 * without any while its packets are due; two sources taking turns in runs
 * of 100 cost one update per run. */
static void test_one_heap_update_per_run(void **state)
{
    fixture_t *f = *state;
    static uint64_t ts[400];
    s_hello(f, "pa", "a", 1, 1);
    for (uint64_t k = 0; k < 3; k++) {
        for (size_t j = 0; j < 400; j++)
            ts[j] = 1000 + k * 400 + j;
        s_batch(f, "pa", "a", 1, k, ts[399], ts, 400, 0);
    }
    s_merge_updates = 0;
    assert_int_equal(s_pass(f, 0), 1200);
    assert_true(s_merge_updates <= 1);
    s_assert_metric(f, "tapmesh_collect_packets_total 1200\n");

    s_hello(f, "pb", "b", 1, 1);
    for (uint64_t k = 0; k < 2; k++) { /* a: 10000.., b: 10100.., a: 10200.. */
        for (size_t j = 0; j < 400; j++)
            ts[j] = 10000 + (j / 100) * 200 + k * 100 + j % 100;
        s_batch(f, k ? "pb" : "pa", k ? "b" : "a", 1, k ? 0 : 3, UINT64_MAX - 1, ts, 400, 0);
    }
    s_merge_updates = 0;
    s_progress(f, "pa", WIRE_END, "a", 1, UINT64_MAX - 1, 4, 0);
    s_progress(f, "pb", WIRE_END, "b", 1, UINT64_MAX - 1, 1, 0);
    assert_int_equal(s_pass(f, 0), 800);
    assert_true(s_merge_updates <= 8); /* 8 runs */
    static uint32_t ifid[2000];
    static uint64_t out[2000];
    assert_int_equal(s_read_epbs(f, ifid, out, 2000), 2000);
    for (size_t k = 1; k < 2000; k++)
        assert_true(out[k] > out[k - 1]);
}

static int s_setup_many(void **state)
{
    s_max_src = 300;
    return s_setup_with(state, OUTPUT_LINKTYPE_FIRST, 1000);
}

static double s_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Fan-in: 256 sources whose packets interleave one by one (every run one
 * packet long, the heap's worst case) cost about log N per packet, not
 * N: per packet, no more than a few times what one source's packets cost.
 * Something scanning every source per packet would cost 256 times. */
static void test_fan_in_cost(void **state)
{
    fixture_t *f = *state;
    enum { N = 256, PER = 200 };
    static uint64_t ts[PER];
    char name[16];
    double best[2] = {1e9, 1e9};
    for (int round = 0; round < 3; round++) {
        for (int many = 0; many < 2; many++) {
            /* one source: N batches of PER; many: N sources, one batch each */
            for (int i = 0; i < N; i++) {
                s_nreplies = 0; /* WELCOMEs and ACKs: not looked at here */
                snprintf(name, sizeof name, "s%d", many ? i : 0);
                if (i == 0 || many)
                    s_hello(f, name, name, 10 + (uint64_t)round * 2 + (uint64_t)many, 1);
                for (int j = 0; j < PER; j++)
                    ts[j] = many ? 1000000 + (uint64_t)j * N + (uint64_t)i
                                 : 1000000 + (uint64_t)i * PER + (uint64_t)j;
                s_batch(f, name, name, 10 + (uint64_t)round * 2 + (uint64_t)many,
                        many ? 0 : (uint64_t)i, UINT64_MAX - 1, ts, PER, 0);
            }
            for (int i = 0; i < (many ? N : 1); i++) {
                snprintf(name, sizeof name, "s%d", i);
                s_progress(f, name, WIRE_END, name, 10 + (uint64_t)round * 2 + (uint64_t)many,
                           UINT64_MAX - 1, many ? 1 : N, 0);
            }
            double t0 = s_cpu_s();
            int n = collector_emit(f->c, 0, false);
            double t = s_cpu_s() - t0;
            assert_int_equal(n, N * PER);
            s_nreplies = 0;
            assert_int_equal(collector_commit(f->c, 0, true), 0);
            if (t < best[many])
                best[many] = t;
        }
    }
    print_message("fan-in: %.1f ns per packet from 1 source, %.1f ns from %d interleaved\n",
                  best[0] * 1e9 / (N * PER), best[1] * 1e9 / (N * PER), N);
    assert_true(best[1] < 12 * best[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dead_releases_watermark, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_for_seen_changes_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_unknown_source, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_bounded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hello_settled, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ack_after_write, s_setup, s_teardown),
        cmocka_unit_test_teardown(test_tap_in_output_order_before_ack, s_teardown),
        cmocka_unit_test_setup_teardown(test_stats_into_isb, s_setup, s_teardown),
        cmocka_unit_test_teardown(test_losses_reported, s_teardown),
        cmocka_unit_test_setup_teardown(test_merge_by_watermark, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_end_and_window, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_source, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_linktype_first, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_linktype_mixed, s_setup_mixed, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_compressed_batch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_idle_source_released, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_gap_holds_watermark, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_flush_ms_coalesces, s_setup_flush, s_teardown),
        cmocka_unit_test(test_output_failure_no_ack),
        cmocka_unit_test_setup_teardown(test_hello_while_buffer_full, s_setup_small_buffer,
                                        s_teardown),
        cmocka_unit_test(test_idle_rotation_journaled),
        cmocka_unit_test(test_retention_waits_for_ack),
        cmocka_unit_test_setup_teardown(test_output_metrics_are_counters, s_setup, s_teardown),
        cmocka_unit_test(test_expect_check),
        cmocka_unit_test_setup_teardown(test_expect_count_releases, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_expect_ids_release, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_expect_holds_past_merge_window, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_expect_bounded_by_startup_wait, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_expect_release_restarts_merge_window, s_setup,
                                        s_teardown),
        cmocka_unit_test(test_full_output_cut_back),
        cmocka_unit_test(test_full_journal_output_agrees),
        cmocka_unit_test_setup_teardown(test_identity_spoof, s_setup_trust, s_teardown),
        cmocka_unit_test_setup_teardown(test_flood_one_peer, s_setup_limits, s_teardown),
        cmocka_unit_test_setup_teardown(test_hello_only_holds_briefly, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_flood_eviction, s_setup_per_peer_8, s_teardown),
        cmocka_unit_test_setup_teardown(test_flood_never_unacknowledged, s_setup_per_peer_8,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_runs_match_packet_by_packet, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_one_heap_update_per_run, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_fan_in_cost, s_setup_many, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
