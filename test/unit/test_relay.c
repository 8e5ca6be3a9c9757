/*
 * test_relay — the relay's engine in-process, without sockets: messages
 * built with the codec are handed over as the ROUTER and the DEALERs would
 * receive them; everything the relay sends is captured and decoded, with
 * its destination and route. Payloads are real packets (the sample
 * capture). Covers each fan-out mode with a next hop down and back, a hop
 * that stops acknowledging, the acknowledgements owed (all hops, one hop,
 * every part), resends, a full pending table, sources without HELLO, the
 * hop limit, malformed input, the timers in deadline order, sources bound
 * to keys (a peer's key speaks only for its own node ids, a relay's for
 * any), and the flood limits (a peer's rate of new sources, its own limit,
 * a full table; never a source with batches in flight).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "compress.h"
#include "metrics.h"
#include "relay.h"
#include "sample.h"
#include "trust.h"
#include "wire.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SENT 1024
#define EPOCH 77
#define PEER "edge1-peer"

/* ---- packets: the sample as payload frames ----------------------------- */

static sample_pkt_t *s_ref;
static size_t s_nref;

static void s_load_reference(void)
{
    if (!s_ref)
        s_nref = sample_load(TAPMESH_TEST_DATA "/sample-ether.pcap", &s_ref);
    assert_true(s_nref >= 400);
}

static uint8_t s_payload[8 << 20];

/* Packets [from, from + n) of the sample as one payload frame. */
static size_t s_make_payload(size_t from, size_t n)
{
    size_t len;
    assert_true(wire_packets_begin(s_payload, sizeof s_payload, &len));
    for (size_t i = from; i < from + n; i++) {
        wire_packet_t w = {.ts_ns = s_ref[i].ts,
                           .caplen = s_ref[i].caplen,
                           .origlen = s_ref[i].origlen,
                           .data = s_ref[i].data};
        assert_true(wire_packets_put(s_payload, sizeof s_payload, &len, &w));
    }
    return len;
}

/* ---- what the relay sends ---------------------------------------------- */

typedef struct {
    int hop;        /* RELAY_DOWN or a next hop */
    char route[64]; /* the first identity of the route */
    unsigned route_count;
    wire_msg_t msg;
    uint8_t *payload;
    size_t plen;
} sent_t;

typedef struct {
    metrics_t *metrics;
    relay_t *r;
    sent_t *sent;
    size_t nsent;
    int fail[HOPS_MAX]; /* sends to hop i return this (0: succeed) */
} fixture_t;

static int s_on_send(void *ctx, int hop, const route_t *route, const uint8_t *cmd, size_t len,
                     zmq_msg_t *payload)
{
    fixture_t *f = ctx;
    if (hop >= 0 && f->fail[hop])
        return f->fail[hop];
    assert_true(f->nsent < MAX_SENT);
    sent_t *s = &f->sent[f->nsent++];
    s->hop = hop;
    assert_int_equal(wire_decode(cmd, len, &s->msg), WIRE_OK);
    s->route_count = route ? route->count : 0;
    s->route[0] = '\0';
    if (route && route->count) {
        memcpy(s->route, route->id[0], route->len[0]);
        s->route[route->len[0]] = '\0';
    }
    s->payload = NULL;
    s->plen = 0;
    if (payload) {
        s->plen = zmq_msg_size(payload);
        s->payload = malloc(s->plen ? s->plen : 1);
        memcpy(s->payload, zmq_msg_data(payload), s->plen);
    }
    return 0;
}

static relay_opts_t s_opts;

/* The User-Id (CURVE key) of the connection upstream messages come by; ""
 * for none. */
static const char *s_user = "";
static char s_endpoints[HOPS_MAX][256] = {"tcp://hop-a:5710", "tcp://hop-b:5710",
                                          "tcp://hop-c:5710"};

static void s_default_opts(void)
{
    s_opts = (relay_opts_t){.node_id = "r1",
                            .fanout = RELAY_FAILOVER,
                            .hops = (const char(*)[256])s_endpoints,
                            .nhops = 2,
                            .filter = "",
                            .hop_timeout_ms = 3000,
                            .retry_ms = 10000,
                            .pending_max = 1024,
                            .max_sources = 16};
}

static int s_setup(void **state)
{
    s_load_reference();
    fixture_t *f = calloc(1, sizeof *f);
    f->sent = calloc(MAX_SENT, sizeof *f->sent);
    f->metrics = metrics_new("relay", "test");
    char err[512];
    f->r = relay_new(&s_opts, f->metrics, s_on_send, f, err, sizeof err);
    assert_non_null(f->r);
    for (unsigned i = 0; i < s_opts.nhops; i++)
        relay_on_link(f->r, i, true, 0);
    *state = f;
    return 0;
}

static void s_clear(fixture_t *f)
{
    for (size_t i = 0; i < f->nsent; i++)
        free(f->sent[i].payload);
    f->nsent = 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    relay_destroy(&f->r);
    assert_null(f->r);
    metrics_destroy(&f->metrics);
    s_clear(f);
    free(f->sent);
    free(f);
    trust_t *t = (trust_t *)s_opts.trust;
    trust_destroy(&t);
    s_default_opts();
    s_user = "";
    return 0;
}

static int s_setup_duplicate(void **state)
{
    s_opts.fanout = RELAY_DUPLICATE;
    return s_setup(state);
}

static int s_setup_flowhash(void **state)
{
    s_opts.fanout = RELAY_FLOWHASH;
    return s_setup(state);
}

static int s_setup_one_hop(void **state)
{
    s_opts.nhops = 1;
    return s_setup(state);
}

static int s_setup_small_table(void **state)
{
    s_opts.pending_max = 16;
    return s_setup(state);
}

/* ---- handing messages in --------------------------------------------------- */

static void s_frames(frames_t *in, const char *peer, const wire_msg_t *m, const uint8_t *payload,
                     size_t plen)
{
    static uint8_t cmd[WIRE_COMMAND_MAX];
    size_t len = wire_encode(m, cmd, sizeof cmd);
    assert_true(len > 0);
    memset(in, 0, sizeof *in);
    zmq_msg_init_size(&in->part[0], strlen(peer));
    memcpy(zmq_msg_data(&in->part[0]), peer, strlen(peer));
    zmq_msg_init(&in->part[1]);
    zmq_msg_init_size(&in->part[2], len);
    memcpy(zmq_msg_data(&in->part[2]), cmd, len);
    in->count = 3;
    if (payload) {
        zmq_msg_init_size(&in->part[3], plen);
        memcpy(zmq_msg_data(&in->part[3]), payload, plen);
        in->count = 4;
    }
    in->total = in->count;
    in->envelope = 1;
    in->framed = true;
    snprintf(in->user_id, sizeof in->user_id, "%s", s_user);
}

/* From a source, as the ROUTER receives it: [peer] [""] [command] [payload]. */
static void s_up_from(fixture_t *f, const char *peer, const wire_msg_t *m, const uint8_t *payload,
                      size_t plen, int64_t now)
{
    frames_t in;
    s_frames(&in, peer, m, payload, plen);
    relay_on_upstream(f->r, &in, now);
    frames_close(&in);
}

static void s_up(fixture_t *f, const wire_msg_t *m, const uint8_t *payload, size_t plen,
                 int64_t now)
{
    s_up_from(f, PEER, m, payload, plen, now);
}

/* From next hop `hop`, as its DEALER receives it: [PEER] [""] [command]. */
static void s_down(fixture_t *f, unsigned hop, const wire_msg_t *m, int64_t now)
{
    frames_t in;
    s_frames(&in, PEER, m, NULL, 0);
    relay_on_downstream(f->r, hop, &in, now);
    frames_close(&in);
}

static wire_msg_t s_m;

static void s_hello(fixture_t *f, int64_t now)
{
    wire_msg_init(&s_m, WIRE_HELLO, "edge1", EPOCH);
    snprintf(s_m.hello.description, sizeof s_m.hello.description, "test");
    s_m.hello.iface_count = 1;
    s_m.hello.ifaces[0] = (wire_iface_t){.linktype = 1, .snaplen = 262144, .name = "eth0"};
    s_up(f, &s_m, NULL, 0, now);
}

/* BATCH seq (part/parts) with sample packets [from, from + n). */
static void s_batch(fixture_t *f, uint64_t seq, uint16_t part, uint16_t parts, size_t from,
                    size_t n, int64_t now)
{
    size_t plen = s_make_payload(from, n);
    wire_msg_init(&s_m, WIRE_BATCH, "edge1", EPOCH);
    s_m.batch.seq = seq;
    s_m.batch.part = part;
    s_m.batch.parts = parts;
    s_m.batch.watermark = s_ref[from + n - 1].ts;
    s_m.batch.packet_count = (uint32_t)n;
    s_m.batch.payload_len = (uint32_t)plen;
    s_up(f, &s_m, s_payload, plen, now);
}

static void s_ack_from(fixture_t *f, unsigned hop, uint64_t seq, uint16_t part, int64_t now)
{
    wire_msg_init(&s_m, WIRE_ACK, "edge1", EPOCH);
    s_m.ack.count = 1;
    s_m.ack.entries[0] = (wire_ack_entry_t){.seq = seq, .part = part};
    s_down(f, hop, &s_m, now);
}

/* ---- looking at what went out ---------------------------------------------- */

/* The index of the only message sent since `from` to `hop` of `type`; fails
 * unless there is exactly one. */
static const sent_t *s_only(const fixture_t *f, size_t from, int hop, wire_type_t type)
{
    const sent_t *found = NULL;
    size_t n = 0;
    for (size_t i = from; i < f->nsent; i++)
        if (f->sent[i].hop == hop && f->sent[i].msg.type == type) {
            found = &f->sent[i];
            n++;
        }
    if (n != 1)
        fail_msg("%zu messages of type %d to hop %d since %zu, expected 1", n, type, hop, from);
    return found;
}

static size_t s_count(const fixture_t *f, size_t from, int hop, wire_type_t type)
{
    size_t n = 0;
    for (size_t i = from; i < f->nsent; i++)
        n += f->sent[i].hop == hop && f->sent[i].msg.type == type;
    return n;
}

/* A forwarded batch: the source's envelope, our hop record, the packets
 * [from, from + n) byte for byte. */
static void s_check_forwarded(const sent_t *s, uint64_t seq, size_t from, size_t n)
{
    assert_int_equal(s->msg.type, WIRE_BATCH);
    assert_string_equal(s->msg.source, "edge1");
    assert_int_equal(s->msg.epoch, EPOCH);
    assert_int_equal(s->msg.batch.seq, seq);
    assert_int_equal(s->route_count, 1);
    assert_string_equal(s->route, PEER);
    assert_int_equal(s->msg.batch.hop_count, 1);
    assert_string_equal(s->msg.batch.hops[0].node, "r1");
    assert_int_equal(s->msg.batch.packet_count, n);
    size_t plen = s_make_payload(from, n);
    assert_int_equal(s->plen, plen);
    assert_memory_equal(s->payload, s_payload, plen);
}

/* An ACK sent back to the source for exactly these (seq, part) entries. */
static void s_check_acked(const fixture_t *f, size_t from, const uint64_t *seqs, size_t n)
{
    const sent_t *s = s_only(f, from, RELAY_DOWN, WIRE_ACK);
    assert_string_equal(s->route, PEER);
    assert_string_equal(s->msg.source, "edge1");
    assert_int_equal(s->msg.ack.count, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s->msg.ack.entries[i].seq, seqs[i]);
}

static double s_metric(fixture_t *f, const char *name, const char *labels)
{
    size_t len;
    char *text = metrics_render(f->metrics, &len);
    char key[512];
    snprintf(key, sizeof key, "\n%s%s%s%s ", name, labels ? "{" : "", labels ? labels : "",
             labels ? "}" : "");
    char *at = strstr(text, key);
    double v = at ? strtod(at + strlen(key), NULL) : -1;
    free(text);
    return v;
}

/* ---- failover --------------------------------------------------------------- */

/* One hop at a time: the first; while it is down, the next; back to the
 * first once it returns. Each batch is acknowledged upstream once the hop
 * it went to acknowledges it. */
static void test_failover_hop_down_and_back(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    const sent_t *h = s_only(f, 0, 0, WIRE_HELLO);
    assert_string_equal(h->route, PEER);
    assert_int_equal(s_count(f, 0, 1, WIRE_HELLO), 0);

    size_t mark = f->nsent;
    s_batch(f, 0, 0, 1, 0, 10, 1);
    s_check_forwarded(s_only(f, mark, 0, WIRE_BATCH), 0, 0, 10);
    assert_int_equal(s_count(f, mark, 1, WIRE_BATCH), 0);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_ACK), 0);
    mark = f->nsent;
    s_ack_from(f, 0, 0, 0, 2);
    uint64_t want[] = {0};
    s_check_acked(f, mark, want, 1);

    relay_on_link(f->r, 0, false, 3);
    mark = f->nsent;
    s_batch(f, 1, 0, 1, 10, 10, 4);
    s_check_forwarded(s_only(f, mark, 1, WIRE_BATCH), 1, 10, 10);
    assert_int_equal(s_count(f, mark, 0, WIRE_BATCH), 0);
    mark = f->nsent;
    s_ack_from(f, 1, 1, 0, 5);
    want[0] = 1;
    s_check_acked(f, mark, want, 1);

    relay_on_link(f->r, 0, true, 6);
    mark = f->nsent;
    s_batch(f, 2, 0, 1, 20, 10, 7);
    s_check_forwarded(s_only(f, mark, 0, WIRE_BATCH), 2, 20, 10);
    assert_int_equal(s_metric(f, "tapmesh_relay_pending_batches", NULL), 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_next_hop_up", "hop=\"tcp://hop-a:5710\""), 1);
}

/* A hop that does not acknowledge for HOP_TIMEOUT_MS is passed over (its
 * gauge says 0) until it acknowledges again. */
static void test_failover_stall(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    s_batch(f, 0, 0, 1, 0, 5, 100);
    assert_int_equal(relay_next_deadline(f->r), 100 + 3000);
    relay_tick(f->r, 3099);
    assert_int_equal(s_metric(f, "tapmesh_relay_next_hop_up", "hop=\"tcp://hop-a:5710\""), 1);
    relay_tick(f->r, 3100);
    assert_int_equal(s_metric(f, "tapmesh_relay_next_hop_up", "hop=\"tcp://hop-a:5710\""), 0);
    size_t mark = f->nsent;
    s_batch(f, 1, 0, 1, 5, 5, 3200);
    s_check_forwarded(s_only(f, mark, 1, WIRE_BATCH), 1, 5, 5);
    /* the late acknowledgement of batch 0 from hop a: settled, hop a back */
    mark = f->nsent;
    s_ack_from(f, 0, 0, 0, 3300);
    uint64_t want[] = {0};
    s_check_acked(f, mark, want, 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_next_hop_up", "hop=\"tcp://hop-a:5710\""), 1);
    mark = f->nsent;
    s_batch(f, 2, 0, 1, 10, 5, 3400);
    s_check_forwarded(s_only(f, mark, 0, WIRE_BATCH), 2, 10, 5);
}

/* No hop takes the batch (all full): dropped and counted, not tracked (the
 * source resends); an acknowledgement the relay does not track goes
 * upstream in failover (nothing else can owe it), counted. */
static void test_failover_no_hop_and_unknown_acks(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    f->fail[0] = f->fail[1] = -EAGAIN;
    s_batch(f, 0, 0, 1, 0, 5, 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_dropped_no_hop_total", NULL), 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_pending_batches", NULL), 0);
    f->fail[0] = f->fail[1] = 0;
    size_t mark = f->nsent;
    s_ack_from(f, 1, 42, 0, 2);
    uint64_t want[] = {42};
    s_check_acked(f, mark, want, 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_acks_unknown_total", NULL), 1);
}

/* Replies from a next hop (WELCOME, REFUSE) go back to the source along
 * the route they carry. */
static void test_replies_routed_back(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    size_t mark = f->nsent;
    wire_msg_init(&s_m, WIRE_WELCOME, "edge1", EPOCH);
    s_down(f, 0, &s_m, 1);
    const sent_t *w = s_only(f, mark, RELAY_DOWN, WIRE_WELCOME);
    assert_string_equal(w->route, PEER);
    mark = f->nsent;
    wire_msg_init(&s_m, WIRE_REFUSE, "edge1", EPOCH);
    s_m.refuse.code = WIRE_REFUSE_LINKTYPE;
    snprintf(s_m.refuse.reason, sizeof s_m.refuse.reason, "link type 101, output has 1");
    s_down(f, 0, &s_m, 2);
    const sent_t *r = s_only(f, mark, RELAY_DOWN, WIRE_REFUSE);
    assert_string_equal(r->msg.refuse.reason, "link type 101, output has 1");
}

/* ---- duplicate -------------------------------------------------------------- */

/* Every hop gets every batch; acknowledged upstream once all have it; a
 * resend goes only to the hops that still owe it. */
static void test_duplicate_all_hops(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    assert_int_equal(s_count(f, 0, 0, WIRE_HELLO), 1);
    assert_int_equal(s_count(f, 0, 1, WIRE_HELLO), 1);
    size_t mark = f->nsent;
    s_batch(f, 0, 0, 1, 0, 20, 1);
    s_check_forwarded(s_only(f, mark, 0, WIRE_BATCH), 0, 0, 20);
    s_check_forwarded(s_only(f, mark, 1, WIRE_BATCH), 0, 0, 20);
    mark = f->nsent;
    s_ack_from(f, 0, 0, 0, 2);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_ACK), 0);
    /* the source resends before hop b acknowledged: only hop b gets it */
    mark = f->nsent;
    s_batch(f, 0, 0, 1, 0, 20, 3);
    assert_int_equal(s_count(f, mark, 0, WIRE_BATCH), 0);
    s_check_forwarded(s_only(f, mark, 1, WIRE_BATCH), 0, 0, 20);
    assert_int_equal(s_metric(f, "tapmesh_relay_resends_observed_total", NULL), 1);
    mark = f->nsent;
    s_ack_from(f, 1, 0, 0, 4);
    uint64_t want[] = {0};
    s_check_acked(f, mark, want, 1);
    /* an acknowledgement the relay does not track is not passed on: it
     * cannot tell whether the other hops have the batch */
    mark = f->nsent;
    s_ack_from(f, 0, 99, 0, 5);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_ACK), 0);
}

/* STATS goes where the source's HELLO went, as it came: to the one next
 * hop in use (failover), to every next hop (duplicate, flowhash). */
static void s_stats_check(void **state, int hops)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    size_t mark = f->nsent;
    wire_msg_init(&s_m, WIRE_STATS, "edge1", EPOCH);
    s_m.stats.count = 1;
    s_m.stats.entries[0] = (wire_stats_t){.ifindex = 0,
                                          .flags = WIRE_STATS_KERNEL,
                                          .recv = 900,
                                          .drop = 7,
                                          .ifdrop = 2,
                                          .sent = 880,
                                          .dead = 42};
    s_up(f, &s_m, NULL, 0, 1);
    for (int hop = 0; hop < 2; hop++) {
        if (hop >= hops) {
            assert_int_equal(s_count(f, mark, hop, WIRE_STATS), 0);
            continue;
        }
        const sent_t *st = s_only(f, mark, hop, WIRE_STATS);
        assert_string_equal(st->msg.source, "edge1");
        assert_int_equal(st->msg.epoch, EPOCH);
        assert_int_equal(st->msg.stats.count, 1);
        assert_int_equal(st->msg.stats.entries[0].drop, 7);
        assert_int_equal(st->msg.stats.entries[0].ifdrop, 2);
        assert_int_equal(st->msg.stats.entries[0].dead, 42);
        assert_int_equal(st->msg.stats.entries[0].sent, 880);
    }
}

static void test_stats_failover(void **state)
{
    s_stats_check(state, 1);
}

static void test_stats_duplicate(void **state)
{
    s_stats_check(state, 2);
}

static void test_stats_flowhash(void **state)
{
    s_stats_check(state, 2);
}

/* DEAD (§3.9) goes like STATS: as it came, to the one next hop in use
 * (failover), to every next hop (duplicate, flowhash). */
static void s_dead_check(void **state, int hops)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    size_t mark = f->nsent;
    wire_msg_init(&s_m, WIRE_DEAD, "edge1", EPOCH);
    s_m.dead.count = 2;
    s_m.dead.ranges[0] = (wire_range_t){.lo = 3, .hi = 5};
    s_m.dead.ranges[1] = (wire_range_t){.lo = 9, .hi = 12};
    s_up(f, &s_m, NULL, 0, 1);
    for (int hop = 0; hop < 2; hop++) {
        if (hop >= hops) {
            assert_int_equal(s_count(f, mark, hop, WIRE_DEAD), 0);
            continue;
        }
        const sent_t *d = s_only(f, mark, hop, WIRE_DEAD);
        assert_string_equal(d->msg.source, "edge1");
        assert_int_equal(d->msg.epoch, EPOCH);
        assert_int_equal(d->msg.dead.count, 2);
        assert_int_equal(d->msg.dead.ranges[0].lo, 3);
        assert_int_equal(d->msg.dead.ranges[0].hi, 5);
        assert_int_equal(d->msg.dead.ranges[1].lo, 9);
        assert_int_equal(d->msg.dead.ranges[1].hi, 12);
    }
    assert_int_equal(s_metric(f, "tapmesh_relay_malformed_messages_total", "reason=\"type\""), 0);
}

static void test_dead_failover(void **state)
{
    s_dead_check(state, 1);
}

static void test_dead_duplicate(void **state)
{
    s_dead_check(state, 2);
}

static void test_dead_flowhash(void **state)
{
    s_dead_check(state, 2);
}

/* A hop that lags past RETRY_TIMEOUT_S lost the batch: the others'
 * acknowledgement goes upstream, the lagging hop is counted and passed
 * over; while it is down, batches go to the healthy hop only. */
static void test_duplicate_lagging_and_down(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    s_batch(f, 0, 0, 1, 0, 20, 1000);
    s_ack_from(f, 0, 0, 0, 1001);
    size_t mark = f->nsent;
    relay_tick(f->r, 1000 + 9999);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_ACK), 0);
    assert_int_equal(relay_next_deadline(f->r), 1000 + 10000);
    relay_tick(f->r, 1000 + 10000);
    uint64_t want[] = {0};
    s_check_acked(f, mark, want, 1);
    assert_int_equal(
        s_metric(f, "tapmesh_relay_hop_lost_batches_total", "hop=\"tcp://hop-b:5710\""), 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_next_hop_up", "hop=\"tcp://hop-b:5710\""), 0);
    assert_int_equal(s_metric(f, "tapmesh_relay_pending_batches", NULL), 0);

    relay_on_link(f->r, 1, false, 11001);
    mark = f->nsent;
    s_batch(f, 1, 0, 1, 20, 20, 11002);
    s_check_forwarded(s_only(f, mark, 0, WIRE_BATCH), 1, 20, 20);
    assert_int_equal(s_count(f, mark, 1, WIRE_BATCH), 0);
    mark = f->nsent;
    s_ack_from(f, 0, 1, 0, 11003);
    want[0] = 1;
    s_check_acked(f, mark, want, 1);
}

/* ---- flowhash --------------------------------------------------------------- */

static int s_cmp_ts(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Without the source's HELLO the relay cannot split (it needs the link
 * types): REFUSE "unknown source", nothing forwarded. With it, part i goes
 * to hop i; every packet in exactly one part; the batch is acknowledged
 * upstream once every part is. A hop down: its part goes to the next. */
static void test_flowhash_parts(void **state)
{
    fixture_t *f = *state;
    s_batch(f, 0, 0, 1, 0, 200, 1);
    const sent_t *r = s_only(f, 0, RELAY_DOWN, WIRE_REFUSE);
    assert_int_equal(r->msg.refuse.code, WIRE_REFUSE_UNKNOWN_SOURCE);
    assert_string_equal(r->route, PEER);
    assert_int_equal(s_count(f, 0, 0, WIRE_BATCH) + s_count(f, 0, 1, WIRE_BATCH), 0);
    assert_int_equal(s_metric(f, "tapmesh_relay_unknown_sources_total", NULL), 1);

    s_hello(f, 2);
    size_t mark = f->nsent;
    s_batch(f, 0, 0, 1, 0, 200, 3);
    const sent_t *p0 = s_only(f, mark, 0, WIRE_BATCH), *p1 = s_only(f, mark, 1, WIRE_BATCH);
    assert_int_equal(p0->msg.batch.part, 0);
    assert_int_equal(p1->msg.batch.part, 1);
    assert_int_equal(p0->msg.batch.parts, 2);
    assert_int_equal(p1->msg.batch.parts, 2);
    assert_true(p0->msg.batch.packet_count > 0 && p1->msg.batch.packet_count > 0);
    assert_int_equal(p0->msg.batch.packet_count + p1->msg.batch.packet_count, 200);
    /* every packet once: the timestamps of both parts are the input's */
    uint64_t got[200], want_ts[200];
    size_t n = 0;
    for (const sent_t *s = p0; s; s = s == p0 ? p1 : NULL) {
        assert_int_equal(
            wire_packets_check(s->payload, s->plen, s->msg.batch.packet_count, 1, NULL, NULL),
            WIRE_OK);
        size_t off = 0;
        wire_packet_t p;
        while (wire_packets_next(s->payload, s->plen, &off, &p)) {
            size_t i = 0;
            while (i < 200 && !(s_ref[i].ts == p.ts_ns && s_ref[i].caplen == p.caplen &&
                                memcmp(s_ref[i].data, p.data, p.caplen) == 0))
                i++;
            assert_true(i < 200);
            got[n++] = p.ts_ns;
        }
    }
    for (size_t i = 0; i < 200; i++)
        want_ts[i] = s_ref[i].ts;
    qsort(got, 200, sizeof *got, s_cmp_ts);
    qsort(want_ts, 200, sizeof *want_ts, s_cmp_ts);
    assert_memory_equal(got, want_ts, sizeof got);

    mark = f->nsent;
    s_ack_from(f, 0, 0, 0, 4);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_ACK), 0);
    s_ack_from(f, 1, 0, 1, 5);
    uint64_t want[] = {0};
    s_check_acked(f, mark, want, 1);
    assert_int_equal(s_only(f, mark, RELAY_DOWN, WIRE_ACK)->msg.ack.entries[0].part, 0);

    /* hop b cannot take its part (a full queue): it goes to hop a */
    f->fail[1] = -EAGAIN;
    mark = f->nsent;
    s_batch(f, 1, 0, 1, 200, 200, 7);
    assert_int_equal(s_count(f, mark, 0, WIRE_BATCH), 2);
    assert_int_equal(s_count(f, mark, 1, WIRE_BATCH), 0);
    /* an acknowledgement naming a part beyond any split is not taken */
    mark = f->nsent;
    s_ack_from(f, 0, 1, 40, 8);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_ACK), 0);
}

/* ---- the table, the timers, bad input ------------------------------------------ */

/* Beyond PENDING_MAX, batches are forwarded untracked; in failover their
 * acknowledgements still reach the source. */
static void test_pending_full(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    for (uint64_t s = 0; s < 20; s++)
        s_batch(f, s, 0, 1, s, 1, 1);
    assert_int_equal(s_count(f, 0, 0, WIRE_BATCH), 20);
    assert_int_equal(s_metric(f, "tapmesh_relay_pending_batches", NULL), 16);
    size_t mark = f->nsent;
    s_ack_from(f, 0, 19, 0, 2);
    uint64_t want[] = {19};
    s_check_acked(f, mark, want, 1);
}

/* Entries expire in the order they were first forwarded, each when its own
 * RETRY_TIMEOUT_S has passed, and relay_next_deadline says when. */
static void test_expiry_in_deadline_order(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    for (uint64_t s = 0; s < 10; s++)
        s_batch(f, s, 0, 1, s, 1, (int64_t)(s * 100));
    /* the hop stalls at 3000 (none acknowledged); then expiries */
    for (uint64_t s = 0; s < 10; s++) {
        int64_t due = (int64_t)(s * 100) + 10000;
        relay_tick(f->r, due - 1);
        assert_int_equal(s_metric(f, "tapmesh_relay_pending_batches", NULL), 10 - s);
        assert_int_equal(relay_next_deadline(f->r), due);
        relay_tick(f->r, due);
        assert_int_equal(s_metric(f, "tapmesh_relay_pending_batches", NULL), 9 - s);
        assert_int_equal(s_metric(f, "tapmesh_relay_pending_expired_total", NULL), s + 1);
    }
    assert_true(relay_next_deadline(f->r) > 20000);
}

/* Batches that already passed 16 relays, malformed frames, reply types
 * sent upstream, a payload of the wrong size: dropped and counted. */
static void test_bad_input(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    size_t mark = f->nsent;
    size_t plen = s_make_payload(0, 3);
    wire_msg_init(&s_m, WIRE_BATCH, "edge1", EPOCH);
    s_m.batch.parts = 1;
    s_m.batch.packet_count = 3;
    s_m.batch.payload_len = (uint32_t)plen;
    s_m.batch.hop_count = WIRE_HOPS_MAX;
    for (unsigned i = 0; i < WIRE_HOPS_MAX; i++)
        snprintf(s_m.batch.hops[i].node, sizeof s_m.batch.hops[i].node, "r%u", i);
    s_up(f, &s_m, s_payload, plen, 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_hop_limit_total", NULL), 1);
    s_m.batch.hop_count = 0;
    s_m.batch.payload_len = (uint32_t)plen + 1; /* not the payload's size */
    s_up(f, &s_m, s_payload, plen, 1);
    wire_msg_init(&s_m, WIRE_ACK, "edge1", EPOCH); /* a reply type, upstream */
    s_m.ack.count = 1;
    s_up(f, &s_m, NULL, 0, 1);
    frames_t in;
    memset(&in, 0, sizeof in);
    zmq_msg_init_size(&in.part[0], 3);
    memcpy(zmq_msg_data(&in.part[0]), "abc", 3);
    in.count = in.total = 1; /* not framed */
    relay_on_upstream(f->r, &in, 1);
    relay_on_downstream(f->r, 0, &in, 1);
    frames_close(&in);
    wire_msg_init(&s_m, WIRE_HELLO, "edge1", EPOCH); /* a request type, downstream */
    s_m.hello.iface_count = 1;
    s_m.hello.ifaces[0] = (wire_iface_t){.linktype = 1, .snaplen = 262144, .name = "eth0"};
    s_down(f, 0, &s_m, 1);
    assert_int_equal(s_count(f, mark, 0, WIRE_BATCH) + s_count(f, mark, 1, WIRE_BATCH), 0);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_HELLO), 0);
    double framing = s_metric(f, "tapmesh_relay_malformed_messages_total", "reason=\"framing\"");
    double type = s_metric(f, "tapmesh_relay_malformed_messages_total", "reason=\"type\"");
    assert_int_equal(framing, 3);
    assert_int_equal(type, 2);
}

/* ---- compression (proto §3.8, §4.1) ------------------------------------------ */

static uint8_t s_packed_buf[1 << 20];

/* HELLO of edge1, asking for FEATURES when `zstd`. */
static void s_hello_zstd(fixture_t *f, bool zstd, int64_t now)
{
    wire_msg_init(&s_m, WIRE_HELLO, "edge1", EPOCH);
    snprintf(s_m.hello.description, sizeof s_m.hello.description, "%s",
             zstd ? "test; compress=zstd" : "test");
    s_m.hello.iface_count = 1;
    s_m.hello.ifaces[0] = (wire_iface_t){.linktype = 1, .snaplen = 262144, .name = "eth0"};
    s_up(f, &s_m, NULL, 0, now);
}

static void s_features_from(fixture_t *f, unsigned hop, int64_t now)
{
    wire_msg_init(&s_m, WIRE_FEATURES, "edge1", EPOCH);
    s_m.features.flags = WIRE_FEATURE_ZSTD;
    s_down(f, hop, &s_m, now);
}

/* BATCH seq with sample packets [from, from + n), compressed; returns the
 * compressed frame's length (its bytes in s_packed_buf). */
static size_t s_batch_zstd(fixture_t *f, uint64_t seq, size_t from, size_t n, int64_t now)
{
    size_t plen = s_make_payload(from, n);
    compress_t *c = compress_new(3);
    size_t zlen = compress_pack(c, s_payload, plen, s_packed_buf, sizeof s_packed_buf);
    compress_destroy(&c);
    assert_true(zlen > 0);
    wire_msg_init(&s_m, WIRE_BATCH, "edge1", EPOCH);
    s_m.batch.seq = seq;
    s_m.batch.watermark = s_ref[from + n - 1].ts;
    s_m.batch.packet_count = (uint32_t)n;
    s_m.batch.payload_len = (uint32_t)zlen;
    s_up(f, &s_m, s_packed_buf, zlen, now);
    return zlen;
}

/* A sent payload decompressed in place (when it is compressed). */
static bool s_unpack_sent(sent_t *s)
{
    if (!compress_is_packed(s->payload, s->plen))
        return false;
    assert_int_equal(s->msg.batch.payload_len, s->plen);
    uint32_t n;
    assert_int_equal(compress_peek(s->payload, s->plen, &n), WIRE_OK);
    uint8_t *plain = malloc(n);
    compress_t *c = compress_new(0);
    assert_int_equal(compress_unpack(c, s->payload, s->plen, plain, n), WIRE_OK);
    compress_destroy(&c);
    free(s->payload);
    s->payload = plain;
    s->plen = n;
    s->msg.batch.payload_len = n;
    return true;
}

/* Without FILTER or flowhash a compressed batch goes on byte for byte
 * (never decompressed); the HELLO's tag goes on too, and FEATURES come back
 * to the source that asked, not to one that did not. */
static void test_compressed_pass_through(void **state)
{
    fixture_t *f = *state;
    s_hello_zstd(f, true, 0);
    const sent_t *h = s_only(f, 0, 0, WIRE_HELLO);
    assert_string_equal(h->msg.hello.description, "test; compress=zstd");
    size_t mark = f->nsent;
    s_features_from(f, 0, 1);
    const sent_t *feat = s_only(f, mark, RELAY_DOWN, WIRE_FEATURES);
    assert_string_equal(feat->route, PEER);
    assert_int_equal(feat->msg.features.flags, WIRE_FEATURE_ZSTD);
    mark = f->nsent;
    size_t zlen = s_batch_zstd(f, 0, 0, 20, 2);
    const sent_t *b = s_only(f, mark, 0, WIRE_BATCH);
    assert_int_equal(b->plen, zlen);
    assert_int_equal(b->msg.batch.payload_len, zlen);
    assert_int_equal(b->msg.batch.packet_count, 20);
    assert_memory_equal(b->payload, s_packed_buf, zlen);
    assert_int_equal(s_metric(f, "tapmesh_relay_payload_bytes_in_total", NULL), zlen);
    assert_int_equal(
        s_metric(f, "tapmesh_relay_payload_bytes_out_total", "hop=\"tcp://hop-a:5710\""), zlen);
    assert_int_equal(s_metric(f, "tapmesh_relay_decompressed_batches_total", NULL), 0);
    /* a source that did not ask gets no FEATURES */
    s_hello_zstd(f, false, 3);
    mark = f->nsent;
    s_features_from(f, 0, 4);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_FEATURES), 0);
}

static int s_setup_filter(void **state)
{
    s_opts.filter = "tcp";
    return s_setup(state);
}

/* With FILTER, a compressed batch is decompressed and filtered: what goes
 * on (uncompressed) is exactly the packets libpcap's filter keeps; a
 * corrupt one is dropped and counted (reason zstd), not forwarded. */
static void test_compressed_filtered(void **state)
{
    fixture_t *f = *state;
    s_hello_zstd(f, true, 0);
    size_t mark = f->nsent;
    s_batch_zstd(f, 0, 0, 50, 1);
    sent_t *b = (sent_t *)s_only(f, mark, 0, WIRE_BATCH);
    assert_false(s_unpack_sent(b)); /* goes on uncompressed: no COMPRESS here */
    /* the packets tcpdump's "tcp" keeps, in order */
    pcap_t *dead =
        pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 262144, PCAP_TSTAMP_PRECISION_NANO);
    struct bpf_program prog;
    assert_int_equal(pcap_compile(dead, &prog, "tcp", 1, PCAP_NETMASK_UNKNOWN), 0);
    size_t off = 0, kept = 0;
    wire_packet_t p;
    for (size_t i = 0; i < 50; i++) {
        struct pcap_pkthdr hdr = {.caplen = s_ref[i].caplen, .len = s_ref[i].origlen};
        if (!pcap_offline_filter(&prog, &hdr, s_ref[i].data))
            continue;
        assert_true(wire_packets_next(b->payload, b->plen, &off, &p));
        assert_int_equal(p.ts_ns, s_ref[i].ts);
        assert_int_equal(p.caplen, s_ref[i].caplen);
        assert_memory_equal(p.data, s_ref[i].data, p.caplen);
        kept++;
    }
    assert_false(wire_packets_next(b->payload, b->plen, &off, &p));
    pcap_freecode(&prog);
    pcap_close(dead);
    assert_true(kept > 0 && kept < 50);
    assert_int_equal(b->msg.batch.packet_count, kept);
    assert_int_equal(s_metric(f, "tapmesh_relay_decompressed_batches_total", NULL), 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_filtered_packets_total", NULL), 50 - kept);
    /* corrupt: the zstd frame's bytes, then a declared length past the bound */
    mark = f->nsent;
    size_t zlen = s_batch_zstd(f, 1, 0, 50, 2);
    for (size_t i = 8; i < 24; i++)
        s_packed_buf[i] = 0xee;
    s_m.batch.seq = 2;
    s_up(f, &s_m, s_packed_buf, zlen, 3);
    s_batch_zstd(f, 3, 0, 50, 2);
    s_packed_buf[4] = 0x10;
    s_m.batch.seq = 4;
    s_up(f, &s_m, s_packed_buf, zlen, 3);
    assert_int_equal(s_count(f, mark, 0, WIRE_BATCH), 2); /* seq 1 and 3 */
    assert_int_equal(s_metric(f, "tapmesh_relay_malformed_messages_total", "reason=\"zstd\""), 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_malformed_messages_total", "reason=\"range\""), 1);
}

static int s_setup_compress(void **state)
{
    s_opts.compress_level = 3;
    return s_setup(state);
}

/* COMPRESS: every HELLO forwarded asks (the relay adds the tag); a hop
 * that says FEATURES gets plain batches compressed (the source, which did
 * not ask, does not see FEATURES), one that WELCOMEs a HELLO without them
 * gets them plain; a batch compressed already goes as it is. */
static void test_relay_compresses(void **state)
{
    fixture_t *f = *state;
    s_hello_zstd(f, false, 0);
    const sent_t *h = s_only(f, 0, 0, WIRE_HELLO);
    assert_string_equal(h->msg.hello.description, "test; compress=zstd");
    /* before any FEATURES: plain */
    size_t mark = f->nsent;
    s_batch(f, 0, 0, 1, 0, 20, 1);
    sent_t *b = (sent_t *)s_only(f, mark, 0, WIRE_BATCH);
    assert_false(s_unpack_sent(b));
    mark = f->nsent;
    s_features_from(f, 0, 2);
    wire_msg_init(&s_m, WIRE_WELCOME, "edge1", EPOCH);
    s_down(f, 0, &s_m, 2);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_FEATURES), 0);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_WELCOME), 1);
    mark = f->nsent;
    s_batch(f, 1, 0, 1, 20, 20, 3);
    b = (sent_t *)s_only(f, mark, 0, WIRE_BATCH);
    size_t sent_len = b->plen;
    assert_true(s_unpack_sent(b));
    assert_true(sent_len < b->plen);
    s_check_forwarded(b, 1, 20, 20);
    assert_int_equal(s_metric(f, "tapmesh_relay_uncompressed_bytes_total", NULL), b->plen);
    assert_int_equal(s_metric(f, "tapmesh_relay_compressed_bytes_total", NULL), sent_len);
    /* a batch compressed upstream: as it is */
    mark = f->nsent;
    size_t zlen = s_batch_zstd(f, 2, 40, 20, 4);
    b = (sent_t *)s_only(f, mark, 0, WIRE_BATCH);
    assert_int_equal(b->plen, zlen);
    assert_memory_equal(b->payload, s_packed_buf, zlen);
    /* the hop is replaced by one that does not take them: HELLO, WELCOME
     * without FEATURES, and batches go plain again */
    s_hello_zstd(f, false, 5);
    wire_msg_init(&s_m, WIRE_WELCOME, "edge1", EPOCH);
    s_down(f, 0, &s_m, 5);
    mark = f->nsent;
    s_batch(f, 3, 0, 1, 60, 20, 6);
    b = (sent_t *)s_only(f, mark, 0, WIRE_BATCH);
    assert_false(s_unpack_sent(b));
    s_check_forwarded(b, 3, 60, 20);
}

/* ---- sources bound to keys -------------------------------------------------- */

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
    trust_t *t = trust_new();
    char err[256];
    assert_int_equal(trust_add(t, s_key_edge1, "edge1", false, err, sizeof err), 0);
    assert_int_equal(trust_add(t, s_key_other, "edge2,site-*", false, err, sizeof err), 0);
    assert_int_equal(trust_add(t, s_key_relay, NULL, true, err, sizeof err), 0);
    s_opts.trust = t;
    return s_setup(state);
}

/* A peer whose key belongs to another node speaks for edge1: its HELLO and
 * batches go nowhere and leave no trace (the real source's batches then go
 * on as if nothing had come); edge1's own key, and a relay's, pass. */
static void test_identity(void **state)
{
    fixture_t *f = *state;
    /* another node's key, a key not in the list, no key at all */
    const char *spoofers[] = {s_key_other, s_key_stranger, ""};
    for (size_t i = 0; i < 3; i++) {
        s_user = spoofers[i];
        s_hello(f, 0);
        s_batch(f, 0, 0, 1, 0, 10, 1);
        wire_msg_init(&s_m, WIRE_END, "edge1", EPOCH);
        s_m.progress.watermark = UINT64_MAX;
        s_m.progress.next_seq = 1;
        s_up(f, &s_m, NULL, 0, 2);
        wire_msg_init(&s_m, WIRE_DEAD, "edge1", EPOCH);
        s_m.dead.count = 1;
        s_m.dead.ranges[0] = (wire_range_t){.lo = 0, .hi = 1};
        s_up(f, &s_m, NULL, 0, 2);
    }
    assert_int_equal(f->nsent, 0);
    assert_int_equal(s_metric(f, "tapmesh_relay_auth_failures_total", "reason=\"identity\""), 12);
    assert_int_equal(s_metric(f, "tapmesh_relay_batches_in_total", NULL), 0);
    assert_int_equal(s_metric(f, "tapmesh_relay_pending_batches", NULL), 0);
    assert_int_equal(s_metric(f, "tapmesh_relay_malformed_messages_total", "reason=\"source\""), 0);
    /* the other key for its own node ids: passed on */
    s_user = s_key_other;
    wire_msg_init(&s_m, WIRE_HEARTBEAT, "site-7", EPOCH);
    s_up(f, &s_m, NULL, 0, 3);
    assert_int_equal(s_only(f, 0, 0, WIRE_HEARTBEAT)->msg.epoch, EPOCH);

    /* edge1's own key: its batch 0 goes on (not a resend of anything) and
     * its acknowledgement comes back to it */
    s_user = s_key_edge1;
    size_t mark = f->nsent;
    s_hello(f, 4);
    s_batch(f, 0, 0, 1, 0, 10, 5);
    s_only(f, mark, 0, WIRE_HELLO);
    s_check_forwarded(s_only(f, mark, 0, WIRE_BATCH), 0, 0, 10);
    assert_int_equal(s_metric(f, "tapmesh_relay_resends_observed_total", NULL), 0);
    mark = f->nsent;
    s_ack_from(f, 0, 0, 0, 6);
    uint64_t want[] = {0};
    s_check_acked(f, mark, want, 1);

    /* a relay's key passes on any source */
    s_user = s_key_relay;
    mark = f->nsent;
    s_batch(f, 1, 0, 1, 10, 10, 7);
    s_check_forwarded(s_only(f, mark, 0, WIRE_BATCH), 1, 10, 10);
    assert_int_equal(s_metric(f, "tapmesh_relay_auth_failures_total", "reason=\"identity\""), 12);
}

/* ---- no lock-out by a flood ------------------------------------------------- */

static int s_setup_limits(void **state)
{
    s_opts.max_sources_per_peer = 4;
    s_opts.hello_rate = 10;
    return s_setup(state);
}

/* HELLO of `source` from `peer`. */
static void s_hello_of(fixture_t *f, const char *peer, const char *source, uint64_t epoch,
                       int64_t now)
{
    wire_msg_init(&s_m, WIRE_HELLO, source, epoch);
    s_m.hello.iface_count = 1;
    s_m.hello.ifaces[0] = (wire_iface_t){.linktype = 1, .snaplen = 262144, .name = "eth0"};
    s_up_from(f, peer, &s_m, NULL, 0, now);
}

/* BATCH seq 0 of `source` from `peer`, packets [from, from + 5). */
static void s_batch_of(fixture_t *f, const char *peer, const char *source, uint64_t epoch,
                       size_t from, int64_t now)
{
    size_t plen = s_make_payload(from, 5);
    wire_msg_init(&s_m, WIRE_BATCH, source, epoch);
    s_m.batch.parts = 1;
    s_m.batch.watermark = s_ref[from + 4].ts;
    s_m.batch.packet_count = 5;
    s_m.batch.payload_len = (uint32_t)plen;
    s_up_from(f, peer, &s_m, s_payload, plen, now);
}

/* 100 made-up sources at once from one peer: 10 go on (its allowance of
 * HELLO_RATE_PER_PEER), the rest is dropped and counted; a second later, 10
 * more. A real source of another peer goes on throughout. */
static void test_flood_rate(void **state)
{
    fixture_t *f = *state;
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "flood-%d", i);
        s_hello_of(f, "flooder", name, 1000 + (uint64_t)i, 0);
    }
    assert_int_equal(s_count(f, 0, 0, WIRE_HELLO), 10);
    assert_int_equal(s_metric(f, "tapmesh_relay_sources_refused_total", "reason=\"hello_rate\""),
                     90);
    s_hello(f, 1);
    s_batch(f, 0, 0, 1, 0, 10, 1);
    assert_int_equal(s_count(f, 0, 0, WIRE_BATCH), 1);
    size_t mark = f->nsent;
    for (int i = 100; i < 200; i++) {
        snprintf(name, sizeof name, "flood-%d", i);
        s_hello_of(f, "flooder", name, 1000 + (uint64_t)i, 1000);
    }
    assert_int_equal(s_count(f, mark, 0, WIRE_HELLO), 10);
    mark = f->nsent;
    s_ack_from(f, 0, 0, 0, 1001);
    uint64_t want[] = {0};
    s_check_acked(f, mark, want, 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_acks_unknown_total", NULL), 0);
}

/* A peer at its limit (4) whose sources all have batches in flight gets no
 * fifth: its messages are dropped and counted; once a batch is settled,
 * that source makes room. MAX_SOURCES (16) full of sources with batches in
 * flight: a new peer's source is refused; edge1, with a batch in flight
 * among them, keeps its entry and its acknowledgement comes back. */
static void test_flood_in_flight_kept(void **state)
{
    fixture_t *f = *state;
    char name[32], peer[32];
    s_hello(f, 0);
    s_batch(f, 0, 0, 1, 0, 10, 0); /* edge1: a batch in flight */
    for (int p = 0; p < 4; p++)
        for (int i = 0; i < 4 - (p == 3); i++) {
            snprintf(peer, sizeof peer, "peer-%d", p);
            snprintf(name, sizeof name, "s-%d-%d", p, i);
            s_hello_of(f, peer, name, 7, 0);
            s_batch_of(f, peer, name, 7, (size_t)(p * 4 + i) * 5, 0);
        }
    assert_int_equal(s_count(f, 0, 0, WIRE_BATCH), 16);
    /* peer-0 at its limit, all in flight */
    size_t mark = f->nsent;
    s_hello_of(f, "peer-0", "s-0-4", 7, 1000);
    assert_int_equal(s_count(f, mark, 0, WIRE_HELLO), 0);
    assert_int_equal(s_metric(f, "tapmesh_relay_sources_refused_total", "reason=\"peer_limit\""),
                     1);
    /* the table full, all in flight */
    s_hello_of(f, "newcomer", "edge9", 7, 1000);
    assert_int_equal(s_count(f, mark, 0, WIRE_HELLO), 0);
    assert_int_equal(s_metric(f, "tapmesh_relay_sources_refused_total", "reason=\"full\""), 1);
    /* edge1's batch settles and goes back to it */
    s_ack_from(f, 0, 0, 0, 1001);
    uint64_t want[] = {0};
    s_check_acked(f, mark, want, 1);
    /* s-0-0's batch settles: it makes room for peer-0's fifth */
    wire_msg_init(&s_m, WIRE_ACK, "s-0-0", 7);
    s_m.ack.count = 1;
    s_m.ack.entries[0] = (wire_ack_entry_t){.seq = 0, .part = 0};
    s_down(f, 0, &s_m, 1002);
    mark = f->nsent;
    s_hello_of(f, "peer-0", "s-0-4", 7, 1003);
    assert_int_equal(s_count(f, mark, 0, WIRE_HELLO), 1);
    assert_int_equal(s_metric(f, "tapmesh_relay_acks_unknown_total", NULL), 0);
}

/* A connection to a next hop breaks with batches on it: each source that
 * had one is asked once (REFUSE "unknown source": say HELLO, send again)
 * as soon as there is a way on — at once when another hop is healthy,
 * when the hop is back otherwise; a source with nothing on it is not. */
static void test_resend_asked_when_hop_lost(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    s_batch(f, 0, 0, 1, 0, 5, 1);
    s_batch(f, 1, 0, 1, 5, 5, 2);
    size_t mark = f->nsent;
    relay_on_link(f->r, 0, false, 3);
    const sent_t *r = s_only(f, mark, RELAY_DOWN, WIRE_REFUSE);
    assert_int_equal(r->msg.refuse.code, WIRE_REFUSE_UNKNOWN_SOURCE);
    assert_string_equal(r->route, PEER);
    assert_string_equal(r->msg.source, "edge1");
    assert_int_equal(r->msg.epoch, EPOCH);
    assert_int_equal(s_metric(f, "tapmesh_relay_resend_requests_total", NULL), 1);
    /* the resends take the healthy hop */
    mark = f->nsent;
    s_batch(f, 0, 0, 1, 0, 5, 4);
    s_check_forwarded(s_only(f, mark, 1, WIRE_BATCH), 0, 0, 5);
    /* settled: a later break of the other hop asks nobody */
    s_ack_from(f, 1, 0, 0, 5);
    s_batch(f, 1, 0, 1, 5, 5, 6);
    s_ack_from(f, 1, 1, 0, 7);
    mark = f->nsent;
    relay_on_link(f->r, 1, false, 8);
    relay_on_link(f->r, 0, true, 9);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_REFUSE), 0);
}

/* With one next hop, the request waits until it is back. */
static void test_resend_asked_when_hop_back(void **state)
{
    fixture_t *f = *state;
    s_hello(f, 0);
    s_batch(f, 0, 0, 1, 0, 5, 1);
    size_t mark = f->nsent;
    relay_on_link(f->r, 0, false, 2);
    assert_int_equal(s_count(f, mark, RELAY_DOWN, WIRE_REFUSE), 0);
    relay_on_link(f->r, 0, true, 3);
    s_only(f, mark, RELAY_DOWN, WIRE_REFUSE);
}

int main(void)
{
    s_default_opts();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failover_hop_down_and_back, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failover_stall, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failover_no_hop_and_unknown_acks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_replies_routed_back, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_compressed_pass_through, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_compressed_filtered, s_setup_filter, s_teardown),
        cmocka_unit_test_setup_teardown(test_relay_compresses, s_setup_compress, s_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_all_hops, s_setup_duplicate, s_teardown),
        cmocka_unit_test_setup_teardown(test_stats_failover, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stats_duplicate, s_setup_duplicate, s_teardown),
        cmocka_unit_test_setup_teardown(test_stats_flowhash, s_setup_flowhash, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_failover, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_duplicate, s_setup_duplicate, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_flowhash, s_setup_flowhash, s_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_lagging_and_down, s_setup_duplicate,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_flowhash_parts, s_setup_flowhash, s_teardown),
        cmocka_unit_test_setup_teardown(test_pending_full, s_setup_small_table, s_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_in_deadline_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_resend_asked_when_hop_lost, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_resend_asked_when_hop_back, s_setup_one_hop,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_identity, s_setup_trust, s_teardown),
        cmocka_unit_test_setup_teardown(test_flood_rate, s_setup_limits, s_teardown),
        cmocka_unit_test_setup_teardown(test_flood_in_flight_kept, s_setup_limits, s_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sample_free(&s_ref, s_nref);
    return rc;
}
