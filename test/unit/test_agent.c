/*
 * test_agent — the capture agent's engine in-process, without sockets: a
 * real capture file as its source, every message it sends captured and
 * decoded, replies built with the codec, time passed in by the test.
 * Covers HELLO and its retry, the send window, resends with backoff, the
 * dead-letter file after RETRY_TIMEOUT_S (read back by libpcap), REFUSE
 * (link type, unknown source), END, stop and abort, malformed replies and
 * the "no connection" warning.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "agent.h"
#include "compress.h"
#include "dlq.h"
#include "metrics.h"
#include "source-int.h"
#include "source.h"
#include "tmpdir.h"
#include "sample.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLE TAPMESH_TEST_DATA "/sample-ether.pcap"
#define MAX_SENT 4096
#define EPOCH 0x1122334455667788ull

/* ---- the sample, as libpcap reads it ------------------------------------ */

static sample_pkt_t *s_ref;
static size_t s_nref;

static void s_load_reference(void)
{
    if (!s_ref)
        s_nref = sample_load(SAMPLE, &s_ref);
    assert_true(s_nref >= 400);
}

/* ---- what the agent sends --------------------------------------------- */

typedef struct {
    wire_msg_t msg;
    uint8_t *payload;
    size_t plen;
    const uint8_t *lent; /* the agent's own buffer, when lent */
    outbox_buf_t *loan;
} sent_t;

typedef struct {
    char dir[64];
    metrics_t *metrics;
    agent_t *a;
    sent_t *sent;
    size_t nsent;
    int fail_with; /* the next sends return this (0: succeed) */
    bool lend;     /* keep each payload where the agent handed it over */
} fixture_t;

static int s_on_send(void *ctx, const uint8_t *cmd, size_t len, batch_t *batch,
                     const uint8_t *packed, size_t packed_len)
{
    fixture_t *f = ctx;
    const uint8_t *payload = packed ? packed : batch ? batch->buf : NULL;
    size_t plen = packed ? packed_len : batch ? batch->len : 0;
    if (f->fail_with)
        return f->fail_with;
    assert_true(f->nsent < MAX_SENT);
    sent_t *s = &f->sent[f->nsent++];
    assert_int_equal(wire_decode(cmd, len, &s->msg), WIRE_OK);
    assert_string_equal(s->msg.source, "edge1");
    assert_int_equal(s->msg.epoch, EPOCH);
    s->payload = NULL;
    s->lent = NULL;
    s->loan = NULL;
    s->plen = plen;
    if (payload) {
        s->payload = malloc(plen);
        memcpy(s->payload, payload, plen);
        if (f->lend && !packed) {
            s->loan = outbox_lend(batch);
            s->lent = payload;
        }
    }
    return 0;
}

/* The same, for an agent speaking for another source (a replay). */
static int s_on_send_any(void *ctx, const uint8_t *cmd, size_t len, batch_t *batch,
                         const uint8_t *packed, size_t packed_len)
{
    fixture_t *f = ctx;
    const uint8_t *payload = packed ? packed : batch ? batch->buf : NULL;
    size_t plen = packed ? packed_len : batch ? batch->len : 0;
    assert_true(f->nsent < MAX_SENT);
    sent_t *s = &f->sent[f->nsent++];
    assert_int_equal(wire_decode(cmd, len, &s->msg), WIRE_OK);
    s->payload = NULL;
    s->plen = plen;
    if (payload) {
        s->payload = malloc(plen);
        memcpy(s->payload, payload, plen);
    }
    return 0;
}

static agent_opts_t s_opts;

static void s_default_opts(void)
{
    s_opts = (agent_opts_t){.node_id = "edge1",
                            .description = "unit test",
                            .endpoint = "tcp://192.0.2.1:5710",
                            .epoch = EPOCH,
                            .batch_bytes = 16384,
                            .buffer_bytes = 64 << 20,
                            .window = 4,
                            .batch_delay_ms = 100,
                            .heartbeat_ms = 250,
                            .ack_timeout_ms = 1000,
                            .backoff_max_ms = 4000,
                            .retry_timeout_ms = 60000};
}

static int s_setup(void **state)
{
    s_load_reference();
    fixture_t *f = calloc(1, sizeof *f);
    f->sent = calloc(MAX_SENT, sizeof *f->sent);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_agent.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    s_opts.dlq_dir = f->dir;
    char err[512];
    source_t *src = source_file_open(SAMPLE, 0, "", err, sizeof err);
    assert_non_null(src);
    f->metrics = metrics_new("capture", "test");
    f->a = agent_new(&src, &s_opts, f->metrics, s_on_send, f);
    assert_non_null(f->a);
    assert_null(src);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    agent_destroy(&f->a);
    assert_null(f->a);
    metrics_destroy(&f->metrics);
    for (size_t i = 0; i < f->nsent; i++) {
        if (f->sent[i].loan) /* a loan outlives the agent: freed with its return */
            assert_memory_equal(f->sent[i].lent, f->sent[i].payload, f->sent[i].plen);
        outbox_give_back(f->sent[i].loan);
        free(f->sent[i].payload);
    }
    free(f->sent);
    tmpdir_remove(f->dir);
    free(f);
    s_default_opts();
    return 0;
}

/* Hands a reply to the agent as its DEALER receives it: [""] [command]. */
static void s_deliver(fixture_t *f, const wire_msg_t *m, int64_t now)
{
    static uint8_t cmd[WIRE_COMMAND_MAX];
    size_t len = wire_encode(m, cmd, sizeof cmd);
    assert_true(len > 0);
    frames_t in;
    memset(&in, 0, sizeof in);
    zmq_msg_init(&in.part[0]);
    zmq_msg_init_size(&in.part[1], len);
    memcpy(zmq_msg_data(&in.part[1]), cmd, len);
    in.count = in.total = 2;
    in.envelope = 0;
    in.framed = true;
    agent_on_message(f->a, &in, now);
    frames_close(&in);
}

static wire_msg_t s_m;

static void s_ack(fixture_t *f, uint64_t seq, int64_t now)
{
    wire_msg_init(&s_m, WIRE_ACK, "edge1", EPOCH);
    s_m.ack.count = 1;
    s_m.ack.entries[0] = (wire_ack_entry_t){.seq = seq, .part = 0};
    s_deliver(f, &s_m, now);
}

static void s_ack_as(fixture_t *f, const char *source, uint64_t epoch, uint64_t seq, int64_t now)
{
    wire_msg_init(&s_m, WIRE_ACK, source, epoch);
    s_m.ack.count = 1;
    s_m.ack.entries[0] = (wire_ack_entry_t){.seq = seq, .part = 0};
    s_deliver(f, &s_m, now);
}

static void s_reply(fixture_t *f, wire_type_t type, int64_t now)
{
    wire_msg_init(&s_m, type, "edge1", EPOCH);
    s_deliver(f, &s_m, now);
}

static void s_refuse(fixture_t *f, wire_refuse_t code, int64_t now)
{
    wire_msg_init(&s_m, WIRE_REFUSE, "edge1", EPOCH);
    s_m.refuse.code = (uint8_t)code;
    snprintf(s_m.refuse.reason, sizeof s_m.refuse.reason, "test refusal");
    s_deliver(f, &s_m, now);
}

/* Messages of `type` sent from index `from` on. */
static size_t s_count(const fixture_t *f, size_t from, wire_type_t type)
{
    size_t n = 0;
    for (size_t i = from; i < f->nsent; i++)
        n += f->sent[i].msg.type == type;
    return n;
}

/* Sequence numbers of the BATCHes sent from index `from` on, in order. */
static size_t s_batch_seqs(const fixture_t *f, size_t from, uint64_t *seqs, size_t max)
{
    size_t n = 0;
    for (size_t i = from; i < f->nsent && n < max; i++)
        if (f->sent[i].msg.type == WIRE_BATCH)
            seqs[n++] = f->sent[i].msg.batch.seq;
    return n;
}

/* The packets of a sent BATCH are the sample's, from index *next on. A
 * compressed one (COMPRESS) is decompressed first, in place. */
static void s_check_batch(sent_t *s, size_t *next)
{
    assert_int_equal(s->msg.type, WIRE_BATCH);
    assert_int_equal(s->plen, s->msg.batch.payload_len);
    if (compress_is_packed(s->payload, s->plen)) {
        uint32_t n;
        assert_int_equal(compress_peek(s->payload, s->plen, &n), WIRE_OK);
        uint8_t *plain = malloc(n);
        compress_t *c = compress_new(0);
        assert_int_equal(compress_unpack(c, s->payload, s->plen, plain, n), WIRE_OK);
        compress_destroy(&c);
        free(s->payload);
        s->payload = plain;
        s->plen = n;
    }
    assert_int_equal(
        wire_packets_check(s->payload, s->plen, s->msg.batch.packet_count, 1, NULL, NULL), WIRE_OK);
    size_t off = 0;
    wire_packet_t p;
    uint64_t last_ts = 0;
    while (wire_packets_next(s->payload, s->plen, &off, &p)) {
        assert_true(*next < s_nref);
        const sample_pkt_t *r = &s_ref[(*next)++];
        assert_int_equal(p.ts_ns, r->ts);
        assert_int_equal(p.caplen, r->caplen);
        assert_int_equal(p.origlen, r->origlen);
        assert_memory_equal(p.data, r->data, r->caplen);
        last_ts = p.ts_ns;
    }
    assert_true(s->msg.batch.watermark >= last_ts);
}

/* ---- tests ------------------------------------------------------------- */

static size_t s_packed(const fixture_t *f, size_t from, size_t *plain)
{
    size_t n = 0;
    *plain = 0;
    for (size_t i = from; i < f->nsent; i++)
        if (f->sent[i].msg.type == WIRE_BATCH) {
            bool z = compress_is_packed(f->sent[i].payload, f->sent[i].plen);
            n += z;
            *plain += !z;
        }
    return n;
}

static int s_setup_zstd(void **state)
{
    s_opts.compress_level = 3;
    s_opts.batch_bytes = 4096; /* the sample's headers compress; its payloads do not */
    return s_setup(state);
}

/* COMPRESS: HELLO carries the tag; batches go plain until FEATURES (zstd)
 * comes, then compressed (each decompresses to the sample's packets, in
 * order); a HELLO again (REFUSE code 1) goes back to plain until the next
 * FEATURES; a WELCOME without FEATURES leaves them plain. The metrics
 * count the bytes before and after. */
static void test_compress(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    assert_string_equal(f->sent[0].msg.hello.description, "unit test; compress=zstd");
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0); /* 4 batches: no FEATURES yet */
    size_t plain, zipped = s_packed(f, 0, &plain);
    assert_int_equal(zipped, 0);
    assert_int_equal(plain, 4);
    for (uint64_t seq = 0; seq < 4; seq++)
        s_ack(f, seq, 1);
    /* the collector's answer to a HELLO again: FEATURES, then WELCOME */
    s_refuse(f, WIRE_REFUSE_UNKNOWN_SOURCE, 2);
    assert_int_equal(f->sent[f->nsent - 1].msg.type, WIRE_HELLO);
    wire_msg_init(&s_m, WIRE_FEATURES, "edge1", EPOCH);
    s_m.features.flags = WIRE_FEATURE_ZSTD | 0x80000000u; /* a bit to come: ignored */
    s_deliver(f, &s_m, 2);
    s_reply(f, WIRE_WELCOME, 2);
    size_t from = f->nsent;
    int64_t now = 3;
    for (int round = 0; round < 200 && !agent_finished(f->a); round++, now++) {
        size_t at = f->nsent;
        agent_step(f->a, now);
        for (size_t i = at; i < f->nsent; i++)
            if (f->sent[i].msg.type == WIRE_BATCH)
                s_ack(f, f->sent[i].msg.batch.seq, now);
        if (f->nsent - from > 20)
            break;
    }
    zipped = s_packed(f, from, &plain);
    assert_true(zipped >= 10);
    size_t next = 0;
    for (size_t i = 0; i < f->nsent; i++)
        if (f->sent[i].msg.type == WIRE_BATCH)
            s_check_batch(&f->sent[i], &next);
    /* the metrics: before > after, both over every batch sent */
    char *text = metrics_render(f->metrics, NULL);
    unsigned long long in = 0, out = 0;
    const char *p = strstr(text, "\ntapmesh_capture_uncompressed_bytes_total ");
    assert_non_null(p);
    in = strtoull(p + strlen("\ntapmesh_capture_uncompressed_bytes_total "), NULL, 10);
    p = strstr(text, "\ntapmesh_capture_compressed_bytes_total ");
    assert_non_null(p);
    out = strtoull(p + strlen("\ntapmesh_capture_compressed_bytes_total "), NULL, 10);
    free(text);
    /* every batch sent, as sent (payload_len) and as it was before */
    unsigned long long sent = 0, before = 0;
    for (size_t i = 0; i < f->nsent; i++)
        if (f->sent[i].msg.type == WIRE_BATCH) {
            sent += f->sent[i].msg.batch.payload_len;
            before += f->sent[i].plen; /* decompressed by s_check_batch */
        }
    assert_int_equal(out, sent);
    assert_int_equal(in, before);
    assert_true(out < in);
    /* HELLO again without FEATURES this time: plain again */
    s_refuse(f, WIRE_REFUSE_UNKNOWN_SOURCE, now);
    s_reply(f, WIRE_WELCOME, now);
    from = f->nsent;
    agent_step(f->a, now + 1);
    zipped = s_packed(f, from, &plain);
    assert_int_equal(zipped, 0);
    assert_true(plain > 0);
}

/* HELLO first, describing the file; again after ACK_TIMEOUT_MS without a
 * WELCOME, not before. */
static void test_hello_and_retry(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    assert_int_equal(f->nsent, 1);
    const wire_msg_t *h = &f->sent[0].msg;
    assert_int_equal(h->type, WIRE_HELLO);
    assert_string_equal(h->hello.description, "unit test");
    assert_int_equal(h->hello.iface_count, 1);
    assert_int_equal(h->hello.ifaces[0].linktype, 1);
    size_t n = f->nsent;
    agent_step(f->a, 999);
    assert_int_equal(s_count(f, n, WIRE_HELLO), 0);
    assert_true(agent_next_wake(f->a, 999) <= 1000);
    n = f->nsent;
    agent_step(f->a, 1000);
    assert_int_equal(s_count(f, n, WIRE_HELLO), 1);
    s_reply(f, WIRE_WELCOME, 1001);
    n = f->nsent;
    agent_step(f->a, 5000);
    assert_int_equal(s_count(f, n, WIRE_HELLO), 0);
}

/* At most `window` batches in flight, each carrying the sample's packets
 * in order; an acknowledgement lets the next one go; everything
 * acknowledged: END, finished, exit 0. */
static void test_window_and_content(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0);
    uint64_t seqs[1024];
    size_t n = s_batch_seqs(f, 0, seqs, 1024);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seqs[i], i);
    agent_step(f->a, 1);
    assert_int_equal(s_batch_seqs(f, 0, seqs, 1024), 4); /* the window is full */
    s_ack(f, 0, 2);
    agent_step(f->a, 2);
    n = s_batch_seqs(f, 0, seqs, 1024);
    assert_int_equal(n, 5);
    assert_int_equal(seqs[4], 4);
    s_ack(f, 4, 2);

    /* acknowledge everything as it comes */
    int64_t now = 3;
    for (int round = 0; round < 10000 && !agent_finished(f->a); round++, now++) {
        size_t from = f->nsent;
        agent_step(f->a, now);
        for (size_t i = from; i < f->nsent; i++)
            if (f->sent[i].msg.type == WIRE_BATCH)
                s_ack(f, f->sent[i].msg.batch.seq, now);
        for (uint64_t s = 1; s < 4; s++)
            s_ack(f, s, now); /* duplicates after the first round: counted, harmless */
    }
    assert_true(agent_finished(f->a));
    size_t next = 0, batches = 0;
    const wire_msg_t *end = NULL;
    for (size_t i = 0; i < f->nsent; i++) {
        if (f->sent[i].msg.type == WIRE_BATCH) {
            assert_int_equal(f->sent[i].msg.batch.seq, batches);
            s_check_batch(&f->sent[i], &next);
            batches++;
        } else if (f->sent[i].msg.type == WIRE_END) {
            end = &f->sent[i].msg;
        }
    }
    assert_int_equal(next, s_nref); /* every packet, once, in order */
    assert_non_null(end);
    assert_int_equal(end->progress.next_seq, batches);
    uint64_t newest = 0;
    for (size_t i = 0; i < s_nref; i++)
        newest = s_ref[i].ts > newest ? s_ref[i].ts : newest;
    assert_int_equal(end->progress.watermark, newest);
    assert_int_equal(agent_packets(f->a), s_nref);
    assert_int_equal(agent_exit_status(f->a), 0);
}

/* Unacknowledged batches are sent again after ACK_TIMEOUT_MS, then after
 * twice that, four times, capped at the maximum; in seq order. */
static void test_resend_backoff(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0);
    uint64_t seqs[64];
    assert_int_equal(s_batch_seqs(f, 0, seqs, 64), 4);
    /* resend times: 1000, 1000+2000, +4000, +4000 (capped) */
    const int64_t due[] = {1000, 3000, 7000, 11000};
    int64_t now = 0;
    for (size_t k = 0; k < 4; k++) {
        size_t from = f->nsent;
        agent_step(f->a, due[k] - 1);
        assert_int_equal(s_batch_seqs(f, from, seqs, 64), 0);
        assert_true(agent_next_wake(f->a, due[k] - 1) <= due[k]);
        from = f->nsent;
        now = due[k];
        agent_step(f->a, now);
        size_t n = s_batch_seqs(f, from, seqs, 64);
        assert_int_equal(n, 4);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(seqs[i], i);
    }
    assert_int_equal(
        metrics_value(
            f->metrics,
            metrics_counter(f->metrics, "tapmesh_capture_batches_resent_total", "", NULL)),
        16);
}

/* The packets of the one dead-letter file in `dir` (its path in `path`),
 * read back by libpcap; 0 when there is no file. */
static size_t s_read_dlq(const char *dir, sample_pkt_t **out, char *path, size_t pathlen)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    size_t files = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, pathlen, "%s/%s", dir, e->d_name);
        files++;
    }
    closedir(d);
    *out = NULL;
    if (files == 0)
        return 0;
    assert_int_equal(files, 1);
    size_t n = sample_load(path, out);
    assert_non_null(*out);
    return n;
}

/* A batch unacknowledged for RETRY_TIMEOUT_S goes to the dead-letter file,
 * whole; the others are acknowledged; exit status 1. */
static void test_dead_letter_after_retry_timeout(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    int64_t now = 0;
    uint64_t first_packets = 0;
    /* everything is read at t=0; batch 0 is never acknowledged */
    for (int round = 0; round < 200000 && !agent_finished(f->a); round++) {
        size_t from = f->nsent;
        agent_step(f->a, now);
        for (size_t i = from; i < f->nsent; i++) {
            const wire_msg_t *m = &f->sent[i].msg;
            if (m->type != WIRE_BATCH)
                continue;
            if (m->batch.seq == 0)
                first_packets = m->batch.packet_count;
            else
                s_ack(f, m->batch.seq, now);
        }
        now = agent_next_wake(f->a, now);
    }
    assert_true(agent_finished(f->a));
    assert_true(now >= 60000);
    assert_true(first_packets > 0);
    sample_pkt_t *got;
    char path[4200];
    size_t n = s_read_dlq(f->dir, &got, path, sizeof path);
    assert_int_equal(n, first_packets);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].ts, s_ref[i].ts);
        assert_int_equal(got[i].caplen, s_ref[i].caplen);
        assert_int_equal(got[i].origlen, s_ref[i].origlen);
        assert_memory_equal(got[i].data, s_ref[i].data, s_ref[i].caplen);
    }
    sample_free(&got, n);
    assert_non_null(strstr(path, "edge1-"));
    assert_int_equal(agent_exit_status(f->a), 1);
}

/* Batches that waited for a connection until just before RETRY_TIMEOUT
 * and have just gone out get ACK_TIMEOUT for their acknowledgement rather
 * than being dead-lettered while the collector writes them (they would be
 * both written and dead-lettered); one whose acknowledgement does not come
 * in that time is dead-lettered then. */
static int s_setup_retry_3s(void **state)
{
    s_opts.retry_timeout_ms = 3000;
    return s_setup(state);
}

static void test_dead_letter_waits_for_ack_in_flight(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0); /* read at 0; no connection: nothing goes */
    uint64_t seqs[64];
    assert_int_equal(s_batch_seqs(f, 0, seqs, 64), 0);
    metric_id_t id =
        metrics_counter(f->metrics, "tapmesh_capture_batches_dead_lettered_total", "", NULL);
    agent_on_link(f->a, true, 2900);
    agent_step(f->a, 2900);
    assert_int_equal(s_batch_seqs(f, 0, seqs, 64), 4);
    assert_int_equal(seqs[0], 0);
    /* 3 s after they were read: their sends are 100 ms old */
    agent_step(f->a, 3000);
    assert_int_equal(metrics_value(f->metrics, id), 0);
    int64_t wake = agent_next_wake(f->a, 3000);
    assert_true(wake > 3000 && wake <= 3900);
    s_ack(f, 0, 3500);
    s_ack(f, 2, 3500);
    s_ack(f, 3, 3500);
    agent_step(f->a, 3500);
    assert_int_equal(metrics_value(f->metrics, id), 0);
    /* batch 1's acknowledgement did not come within ACK_TIMEOUT_MS */
    agent_step(f->a, 3900);
    assert_int_equal(metrics_value(f->metrics, id), 1);
    sample_pkt_t *got;
    char path[4200];
    size_t n = s_read_dlq(f->dir, &got, path, sizeof path);
    assert_true(n > 0);
    sample_free(&got, n);
}

/* ---- DEAD (§3.9) ---------------------------------------------------------- */

/* Every seq named by the DEADs sent from `from` on goes into `named`
 * (counted); each DEAD's ranges are valid and none names a seq twice. */
static void s_dead_seqs(const fixture_t *f, size_t from, size_t to, unsigned *named, size_t max)
{
    for (size_t i = from; i < to; i++) {
        const wire_msg_t *m = &f->sent[i].msg;
        if (m->type != WIRE_DEAD)
            continue;
        assert_true(m->dead.count >= 1);
        for (unsigned r = 0; r < m->dead.count; r++)
            for (uint64_t q = m->dead.ranges[r].lo; q < m->dead.ranges[r].hi; q++) {
                assert_true(q < max);
                named[q]++;
            }
    }
}

/* Little room for batches: they are read, and dead-lettered, a few at a
 * time over many passes. */
static int s_setup_small_buffer(void **state)
{
    s_opts.buffer_bytes = 4 * 16384;
    s_opts.retry_timeout_ms = 3000;
    return s_setup(state);
}

/* Batches 0, 3, 6, ... are never acknowledged: each pass that
 * dead-letters some sends one DEAD naming them (adjacent ones merged),
 * before the batches of that pass, and only those not named before; after
 * a WELCOME, the next DEAD names all of them again. (Six DEADs: the
 * second WELCOME comes after two.) */
static void test_dead_ranges_sent(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    int64_t now = 0;
    size_t deads = 0, welcome_at = 0, after_welcome = SIZE_MAX;
    for (int round = 0; round < 200000 && deads < 6; round++) {
        size_t from = f->nsent;
        agent_step(f->a, now);
        bool batch_seen = false;
        for (size_t i = from; i < f->nsent; i++) {
            const wire_msg_t *m = &f->sent[i].msg;
            if (m->type == WIRE_DEAD) {
                assert_false(batch_seen); /* before the batches of its pass */
                if (welcome_at && after_welcome == SIZE_MAX)
                    after_welcome = i;
                deads++;
            }
            if (m->type != WIRE_BATCH)
                continue;
            batch_seen = true;
            if (m->batch.seq % 3 != 0)
                s_ack(f, m->batch.seq, now);
        }
        if (deads == 2 && !welcome_at) {
            welcome_at = f->nsent; /* the collector restarted: it knows none */
            s_reply(f, WIRE_WELCOME, now);
        }
        now = agent_next_wake(f->a, now);
    }
    assert_int_equal(deads, 6);
    assert_true(after_welcome != SIZE_MAX);
    metric_id_t id =
        metrics_counter(f->metrics, "tapmesh_capture_batches_dead_lettered_total", "", NULL);
    uint64_t dead = (uint64_t)metrics_value(f->metrics, id);
    assert_true(dead >= 3);
    /* before the WELCOME, each seq once; exactly the multiples of 3 */
    static unsigned named[4096];
    memset(named, 0, sizeof named);
    s_dead_seqs(f, 0, welcome_at, named, 4096);
    uint64_t before = 0;
    for (uint64_t q = 0; q < 4096; q++) {
        assert_true(named[q] <= 1);
        if (named[q])
            assert_int_equal(q % 3, 0);
        before += named[q];
    }
    /* the DEAD after the WELCOME names everything dead-lettered by then:
     * what came before, again */
    const wire_msg_t *all = &f->sent[after_welcome].msg;
    static unsigned again[4096];
    memset(again, 0, sizeof again);
    s_dead_seqs(f, after_welcome, after_welcome + 1, again, 4096);
    for (uint64_t q = 0; q < 4096; q++)
        if (named[q])
            assert_int_equal(again[q], 1);
    assert_true(all->dead.count >= before);
    /* after it, only new ones; in all, every batch dead-lettered */
    s_dead_seqs(f, after_welcome + 1, f->nsent, named, 4096);
    uint64_t total = 0;
    for (uint64_t q = 0; q < 4096; q++) {
        assert_true(named[q] + again[q] <= 2);
        if (named[q] || again[q]) {
            assert_int_equal(q % 3, 0);
            total++;
        }
    }
    assert_int_equal(total, dead);
}

/* No DEAD before the collector WELCOMEd the source (it would refuse it);
 * once it does, one DEAD names every batch dead-lettered. */
static void test_dead_waits_for_welcome(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    int64_t now = 0;
    metric_id_t id =
        metrics_counter(f->metrics, "tapmesh_capture_batches_dead_lettered_total", "", NULL);
    for (int round = 0; round < 10000 && metrics_value(f->metrics, id) == 0; round++) {
        agent_step(f->a, now);
        now = agent_next_wake(f->a, now);
    }
    assert_true(metrics_value(f->metrics, id) >= 1);
    assert_false(agent_finished(f->a));
    assert_int_equal(s_count(f, 0, WIRE_DEAD), 0);
    s_reply(f, WIRE_WELCOME, now);
    size_t mark = f->nsent;
    agent_step(f->a, now);
    assert_int_equal(s_count(f, mark, WIRE_DEAD), 1);
    assert_int_equal(f->sent[mark].msg.type, WIRE_DEAD); /* first */
    static unsigned named[4096];
    memset(named, 0, sizeof named);
    s_dead_seqs(f, mark, f->nsent, named, 4096);
    uint64_t total = 0;
    for (uint64_t q = 0; q < 4096; q++)
        total += named[q];
    assert_int_equal(total, (uint64_t)metrics_value(f->metrics, id));
    assert_int_equal(named[0], 1);
}

/* A HELLO that found no connection (ZMQ_IMMEDIATE: EAGAIN) goes first once
 * there is one: when the link comes up, and before any batch when the
 * sends get through before the link's event is heard. */
static void test_hello_first_on_link_up(void **state)
{
    fixture_t *f = *state;
    f->fail_with = -EAGAIN;
    agent_start(f->a, 0);
    agent_step(f->a, 0);
    agent_step(f->a, 150);
    assert_int_equal(f->nsent, 0);
    f->fail_with = 0;
    agent_on_link(f->a, true, 200);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].msg.type, WIRE_HELLO);
    agent_step(f->a, 200);
    assert_int_equal(s_count(f, 0, WIRE_HELLO), 1);
    assert_true(s_count(f, 0, WIRE_BATCH) > 0);
    /* the link is gone again: the HELLO retried on its timer finds none */
    agent_on_link(f->a, false, 300);
    f->fail_with = -EAGAIN;
    agent_step(f->a, 1300);
    /* no batch goes while the link is down, even when sends would get
     * through: it would wait in ZeroMQ's queue; back up: HELLO first */
    f->fail_with = 0;
    size_t mark = f->nsent;
    agent_step(f->a, 1400);
    for (size_t i = mark; i < f->nsent; i++)
        assert_int_not_equal(f->sent[i].msg.type, WIRE_BATCH);
    mark = f->nsent;
    agent_on_link(f->a, true, 1500);
    agent_step(f->a, 1500);
    assert_true(f->nsent > mark);
    assert_int_equal(f->sent[mark].msg.type, WIRE_HELLO);
}

/* REFUSE for the link type: nothing will be accepted; everything read goes
 * to the dead-letter file at once, whole; exit status 1. */
static void test_refused_linktype(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_step(f->a, 0); /* reads everything there is room for */
    s_refuse(f, WIRE_REFUSE_LINKTYPE, 1);
    agent_step(f->a, 1);
    assert_true(agent_finished(f->a));
    sample_pkt_t *got;
    char path[4200];
    size_t n = s_read_dlq(f->dir, &got, path, sizeof path);
    assert_int_equal(n, agent_packets(f->a));
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].ts, s_ref[i].ts);
        assert_memory_equal(got[i].data, s_ref[i].data, s_ref[i].caplen);
    }
    sample_free(&got, n);
    assert_int_equal(agent_exit_status(f->a), 1);
}

/* REFUSE "unknown source" (the collector restarted): one HELLO however
 * many batches draw the answer, saying which batches are settled; on
 * WELCOME every batch in flight again. */
static void test_refused_unknown_source(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0);
    assert_int_equal(f->sent[0].msg.hello.settled, 0); /* nothing acknowledged yet */
    s_ack(f, 0, 5);
    s_ack(f, 1, 5);
    size_t from = f->nsent;
    for (int i = 0; i < 4; i++)
        s_refuse(f, WIRE_REFUSE_UNKNOWN_SOURCE, 10);
    assert_int_equal(s_count(f, from, WIRE_HELLO), 1);
    /* a collector meeting the source now need not wait for batches 0 and 1 */
    assert_int_equal(f->sent[from].msg.hello.settled, 2);
    agent_step(f->a, 11);
    uint64_t seqs[64];
    /* new batches go on (after the HELLO, on the same connection) */
    assert_int_equal(s_batch_seqs(f, from, seqs, 64), 2);
    assert_int_equal(seqs[0], 4);
    assert_int_equal(seqs[1], 5);
    s_reply(f, WIRE_WELCOME, 12);
    from = f->nsent;
    agent_step(f->a, 12);
    size_t n = s_batch_seqs(f, from, seqs, 64);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seqs[i], i + 2);
    assert_false(agent_finished(f->a));
}

/* Replies for another source or epoch, or that do not decode, change
 * nothing and are counted. */
static void test_malformed_replies(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0);
    wire_msg_init(&s_m, WIRE_ACK, "edge1", EPOCH + 1);
    s_m.ack.count = 1;
    s_deliver(f, &s_m, 1);
    wire_msg_init(&s_m, WIRE_ACK, "edge2", EPOCH);
    s_m.ack.count = 1;
    s_deliver(f, &s_m, 1);
    wire_msg_init(&s_m, WIRE_REFUSE, "edge2", EPOCH);
    s_m.refuse.code = WIRE_REFUSE_LINKTYPE;
    s_deliver(f, &s_m, 1);
    frames_t in;
    memset(&in, 0, sizeof in);
    zmq_msg_init(&in.part[0]);
    zmq_msg_init_size(&in.part[1], 3);
    memcpy(zmq_msg_data(&in.part[1]), "abc", 3);
    in.count = in.total = 2;
    in.framed = true;
    agent_on_message(f->a, &in, 1);
    frames_close(&in);
    metric_id_t id =
        metrics_counter(f->metrics, "tapmesh_capture_malformed_messages_total", "", NULL);
    assert_int_equal(metrics_value(f->metrics, id), 4);
    agent_step(f->a, 2);
    assert_false(agent_finished(f->a)); /* the foreign REFUSE was not taken */
    id = metrics_counter(f->metrics, "tapmesh_capture_batches_acked_total", "", NULL);
    assert_int_equal(metrics_value(f->metrics, id), 0);
}

/* A back-pressured send is tried again on the next pass, not lost. */
static void test_backpressure(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    f->fail_with = -EAGAIN;
    agent_step(f->a, 0);
    f->fail_with = 0;
    uint64_t seqs[64];
    assert_int_equal(s_batch_seqs(f, 0, seqs, 64), 0);
    agent_step(f->a, 1);
    assert_int_equal(s_batch_seqs(f, 0, seqs, 64), 4);
    assert_int_equal(seqs[0], 0);
}

/* Stop: reading ends, the open batch goes, END follows; what stays
 * unacknowledged until RETRY_TIMEOUT_S is dead-lettered. Abort (a second
 * signal): dead-lettered at once. */
static void test_stop_then_abort(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0);
    agent_stop(f->a, 5);
    agent_step(f->a, 5);
    assert_false(agent_finished(f->a));
    assert_true(agent_next_wake(f->a, 5) <= 5 + 1000);
    agent_abort(f->a, 6);
    assert_true(agent_finished(f->a));
    sample_pkt_t *got;
    char path[4200];
    size_t n = s_read_dlq(f->dir, &got, path, sizeof path);
    assert_int_equal(n, agent_packets(f->a));
    sample_free(&got, n);
    assert_int_equal(agent_exit_status(f->a), 1);
}

/* A connection that breaks took what it carried: once it is back, the
 * batches sent before the break go again at once (not after
 * ACK_TIMEOUT_MS). While there is no connection no batch is sent (it would
 * wait in ZeroMQ's queue, out of the agent's hands, and could reach a
 * collector after the agent dead-lettered it): it waits in the agent and
 * goes once the connection is up. */
static void test_resend_on_reconnect(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    s_reply(f, WIRE_WELCOME, 0);
    size_t mark = f->nsent;
    agent_step(f->a, 0); /* no connection yet: no batch goes */
    uint64_t seqs[64];
    assert_int_equal(s_batch_seqs(f, mark, seqs, 64), 0);
    agent_on_link(f->a, true, 5);
    agent_step(f->a, 5); /* the window's 4 batches */
    assert_int_equal(s_batch_seqs(f, mark, seqs, 64), 4);
    assert_int_equal(seqs[0], 0);
    assert_int_equal(seqs[3], 3);
    s_ack(f, 0, 6);
    s_ack(f, 1, 6);
    agent_step(f->a, 6); /* batches 4 and 5 go out */
    agent_on_link(f->a, false, 10);
    s_ack(f, 2, 11); /* an acknowledgement that made it: not resent */
    mark = f->nsent;
    agent_step(f->a, 12); /* the link is down: batch 6 waits in the agent */
    assert_int_equal(s_batch_seqs(f, mark, seqs, 64), 0);
    agent_on_link(f->a, true, 20);
    agent_step(f->a, 20);
    /* what the broken connection carried again, then 6 for the first time */
    assert_int_equal(s_batch_seqs(f, mark, seqs, 64), 4);
    assert_int_equal(seqs[0], 3);
    assert_int_equal(seqs[1], 4);
    assert_int_equal(seqs[2], 5);
    assert_int_equal(seqs[3], 6);
    agent_on_link(f->a, false, 30);
    s_ack(f, 3, 31);
    s_ack(f, 4, 31);
    s_ack(f, 5, 31);
    mark = f->nsent;
    agent_step(f->a, 32); /* down: 7, 8, 9 wait */
    assert_int_equal(s_batch_seqs(f, mark, seqs, 64), 0);
    agent_on_link(f->a, true, 40);
    agent_step(f->a, 40);
    /* 6 was on the connection that broke at 30: again; then 7, 8, 9 */
    assert_int_equal(s_batch_seqs(f, mark, seqs, 64), 4);
    assert_int_equal(seqs[0], 6);
    assert_int_equal(seqs[1], 7);
    assert_int_equal(seqs[3], 9);
}

/* A payload lent to the sender (ZeroMQ sends it from the batch's own
 * buffer) stays as it was after its acknowledgement, while later batches
 * are read and sent, until the sender gives it back. */
static void test_lent_payload_outlives_ack(void **state)
{
    fixture_t *f = *state;
    f->lend = true;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0);
    size_t first = f->nsent;
    uint64_t seqs[64];
    assert_int_equal(s_batch_seqs(f, 0, seqs, 64), 4);
    /* every batch acknowledged as soon as it is sent: buffers come free */
    int64_t now = 1;
    for (int round = 0; round < 1000 && !agent_finished(f->a); round++, now++) {
        for (size_t i = 0; i < f->nsent; i++)
            if (f->sent[i].msg.type == WIRE_BATCH)
                s_ack(f, f->sent[i].msg.batch.seq, now);
        agent_step(f->a, now);
    }
    assert_true(agent_finished(f->a));
    assert_true(f->nsent > first + 8); /* later batches came and went */
    size_t checked = 0;
    for (size_t i = 0; i < f->nsent; i++) {
        const sent_t *s = &f->sent[i];
        if (s->msg.type != WIRE_BATCH)
            continue;
        assert_non_null(s->lent);
        assert_memory_equal(s->lent, s->payload, s->plen);
        checked++;
    }
    assert_true(checked > 8);
    /* the oldest loans come back (ZeroMQ wrote those out): their buffers
     * are used again, the others stay as they are */
    size_t back = 0;
    for (size_t i = 0; i < f->nsent && back < 4; i++) {
        if (f->sent[i].loan) {
            outbox_give_back(f->sent[i].loan);
            f->sent[i].loan = NULL;
            back++;
        }
    }
    for (size_t i = 0; i < f->nsent; i++)
        if (f->sent[i].loan)
            assert_memory_equal(f->sent[i].lent, f->sent[i].payload, f->sent[i].plen);
}

/* Reading a file runs only a few batches ahead of what the window can
 * send, not until BUFFER_MAX: nothing acknowledged, the agent holds the
 * window plus a few, and reads on as acknowledgements come. */
static void test_file_read_ahead_is_bounded(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    for (int64_t now = 0; now < 10; now++)
        agent_step(f->a, now);
    metric_id_t held = metrics_gauge(f->metrics, "tapmesh_capture_unacked_batches", "", NULL);
    assert_true(metrics_value(f->metrics, held) >= s_opts.window);
    assert_true(metrics_value(f->metrics, held) <= s_opts.window + 8);
    assert_true(agent_packets(f->a) < s_nref / 2);
    /* acknowledged as sent: everything goes, in order, once */
    int64_t now = 10;
    for (int round = 0; round < 10000 && !agent_finished(f->a); round++, now++) {
        size_t from = f->nsent;
        agent_step(f->a, now);
        for (size_t i = 0; i < from; i++)
            if (f->sent[i].msg.type == WIRE_BATCH)
                s_ack(f, f->sent[i].msg.batch.seq, now);
        assert_true(metrics_value(f->metrics, held) <= s_opts.window + 8);
    }
    assert_true(agent_finished(f->a));
    size_t next = 0;
    uint64_t batches = 0; /* first sends, in seq order */
    for (size_t i = 0; i < f->nsent; i++)
        if (f->sent[i].msg.type == WIRE_BATCH && f->sent[i].msg.batch.seq == batches) {
            s_check_batch(&f->sent[i], &next);
            batches++;
        }
    assert_int_equal(next, s_nref);
}

/* While the next hop is away (for ACK_TIMEOUT_MS), or batches go
 * unacknowledged past their deadline, a file is read up to BUFFER_MAX as
 * before: what cannot be
 * delivered is dead-lettered after RETRY_TIMEOUT_S all together, not a
 * window's worth per RETRY_TIMEOUT_S. Once batches flow again the bound
 * is back. */
static void test_file_read_ahead_lifted_while_undelivered(void **state)
{
    fixture_t *f = *state;
    agent_start(f->a, 0);
    s_reply(f, WIRE_WELCOME, 0);
    for (int64_t now = 0; now < 10; now++)
        agent_step(f->a, now); /* no connection yet: as if it were coming */
    assert_true(agent_packets(f->a) < s_nref / 2);
    agent_step(f->a, 1000); /* none for ACK_TIMEOUT_MS */
    assert_int_equal(agent_packets(f->a), s_nref);
    agent_destroy(&f->a);
    char err[512];
    source_t *src = source_file_open(SAMPLE, 0, "", err, sizeof err);
    assert_non_null(src);
    f->a = agent_new(&src, &s_opts, f->metrics, s_on_send, f);
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0);
    uint64_t bounded = agent_packets(f->a);
    assert_true(bounded < s_nref / 2);
    agent_step(f->a, 1500); /* past ACK_TIMEOUT_MS: resent, and read on */
    assert_int_equal(agent_packets(f->a), s_nref);
}

/* A live interface is read into memory up to BUFFER_MAX as before (a
 * pause would only move the loss into the kernel's buffer), and the
 * packet and byte counters are exact after every pass. */
static void test_live_reads_up_to_buffer_max(void **state)
{
    fixture_t *f = *state;
    agent_destroy(&f->a);
    char err[512];
    source_t *src = source_file_open(SAMPLE, 0, "", err, sizeof err);
    assert_non_null(src);
    agent_opts_t o = s_opts;
    o.live = true; /* wall_clock false: the file's own timestamps */
    f->a = agent_new(&src, &o, f->metrics, s_on_send, f);
    assert_non_null(f->a);
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    for (int64_t now = 0; now < 10; now++)
        agent_step(f->a, now);
    assert_int_equal(agent_packets(f->a), s_nref);
    metric_id_t packets = metrics_counter(f->metrics, "tapmesh_capture_packets_total", "", NULL);
    metric_id_t bytes = metrics_counter(f->metrics, "tapmesh_capture_bytes_total", "", NULL);
    uint64_t sum = 0;
    for (size_t i = 0; i < s_nref; i++)
        sum += s_ref[i].caplen;
    assert_int_equal(metrics_value(f->metrics, packets), s_nref);
    assert_int_equal(metrics_value(f->metrics, bytes), sum);
}

/* ---- a continued epoch (STATE_DIR) -------------------------------------- */

static resume_t *s_resume_open(fixture_t *f, resume_mode_t want)
{
    char dir[96], why[4096], err[4096];
    snprintf(dir, sizeof dir, "%s/state", f->dir);
    mkdir(dir, 0755);
    resume_key_t key = {.path = SAMPLE, .filter = "", .batch_bytes = s_opts.batch_bytes};
    resume_t *r = resume_open(dir, "edge1", &key, why, sizeof why, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(resume_mode(r), want);
    return r;
}

/* The agent process ends (killed: nothing more happens) and another starts. */
static void s_restart(fixture_t *f, resume_t *r)
{
    agent_destroy(&f->a);
    char err[512];
    source_t *src = source_file_open(SAMPLE, 0, "", err, sizeof err);
    assert_non_null(src);
    agent_opts_t o = s_opts;
    o.resume = r;
    o.epoch = resume_epoch(r);
    f->a = agent_new(&src, &o, f->metrics, s_on_send, f);
    assert_non_null(f->a);
}

/* The first BATCH `seq` sent in [from, to), or NULL. */
static const sent_t *s_first_send(const fixture_t *f, size_t from, size_t to, uint64_t seq)
{
    for (size_t i = from; i < to; i++)
        if (f->sent[i].msg.type == WIRE_BATCH && f->sent[i].msg.batch.seq == seq)
            return &f->sent[i];
    return NULL;
}

/* Killed with batches 2 and 5 unacknowledged and the others acknowledged:
 * the next start continues the epoch, says HELLO with settled = 2, sends
 * 2 and 5 again with exactly the packets they had, nothing acknowledged
 * again, then the rest; together every packet of the file once, in order.
 * Done, the state says so. */
static void test_resume_after_crash(void **state)
{
    fixture_t *f = *state;
    resume_t *r = s_resume_open(f, RESUME_FRESH);
    assert_int_equal(resume_start(r, EPOCH), 0);
    s_restart(f, r);
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    bool acked_a[1024] = {false};
    uint64_t highest = 0;
    for (int64_t now = 0; now < 1000 && highest < 11; now++) {
        size_t from = f->nsent;
        agent_step(f->a, now);
        for (size_t i = from; i < f->nsent; i++) {
            uint64_t seq = f->sent[i].msg.batch.seq;
            if (f->sent[i].msg.type != WIRE_BATCH || seq > 11)
                continue;
            highest = seq > highest ? seq : highest;
            if (seq != 2 && seq != 5) {
                s_ack(f, seq, now);
                acked_a[seq] = true;
            }
        }
    }
    assert_int_equal(highest, 11);
    size_t a_end = f->nsent;

    r = s_resume_open(f, RESUME_CONTINUE);
    assert_int_equal(resume_epoch(r), EPOCH);
    assert_int_equal(resume_first_seq(r), 2);
    s_restart(f, r);
    agent_start(f->a, 0);
    assert_int_equal(f->sent[a_end].msg.type, WIRE_HELLO);
    assert_int_equal(f->sent[a_end].msg.hello.settled, 2);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    for (int64_t now = 0; now < 100000 && !agent_finished(f->a); now++) {
        size_t from = f->nsent;
        agent_step(f->a, now);
        for (size_t i = from; i < f->nsent; i++)
            if (f->sent[i].msg.type == WIRE_BATCH)
                s_ack(f, f->sent[i].msg.batch.seq, now);
    }
    assert_true(agent_finished(f->a));
    assert_int_equal(agent_exit_status(f->a), 0);
    for (uint64_t seq = 0; seq <= 11; seq++) {
        const sent_t *b = s_first_send(f, a_end, f->nsent, seq);
        if (acked_a[seq]) {
            assert_null(b); /* acknowledged before the crash: not again */
            continue;
        }
        const sent_t *a = s_first_send(f, 0, a_end, seq);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(b->plen, a->plen);
        assert_memory_equal(b->payload, a->payload, a->plen);
    }
    /* every packet once, in order: each seq from the run that got it acknowledged */
    size_t next = 0;
    for (uint64_t seq = 0;; seq++) {
        const sent_t *b = seq < 1024 && acked_a[seq] ? s_first_send(f, 0, a_end, seq)
                                                     : s_first_send(f, a_end, f->nsent, seq);
        if (!b)
            break;
        s_check_batch((sent_t *)b, &next);
    }
    assert_int_equal(next, s_nref);
    agent_destroy(&f->a);
    r = s_resume_open(f, RESUME_DONE);
    assert_int_equal(resume_done_packets(r), s_nref);
    resume_close(&r);
}

/* ---- dead letters sent again ----------------------------------------------- */

/* A dead-letter file of another agent (source "edge9", epoch 77, batches
 * 3 and 7) read as READ_FILE: HELLO under that identity, claiming nothing
 * settled; batches 3 and 7 with exactly their packets; END. */
static void test_replay_dead_letters(void **state)
{
    fixture_t *f = *state;
    char dir[96], err[1024];
    snprintf(dir, sizeof dir, "%s/dlq-in", f->dir);
    mkdir(dir, 0755);
    dlq_identity_t id = {.source = "edge9",
                         .epoch = 77,
                         .linktype = 1,
                         .snaplen = 65535,
                         .ifname = "eth3",
                         .if_description = "rack 9",
                         .hello_description = "edge nine"};
    dlq_t *w = dlq_new(dir, &id);
    assert_non_null(w);
    uint8_t *payload[2];
    size_t plen[2];
    for (int k = 0; k < 2; k++) {
        size_t len;
        payload[k] = malloc(1 << 20);
        assert_true(wire_packets_begin(payload[k], 1 << 20, &len));
        for (size_t i = (size_t)k * 10; i < (size_t)k * 10 + 10; i++) {
            wire_packet_t p = {.ts_ns = s_ref[i].ts,
                               .caplen = s_ref[i].caplen,
                               .origlen = s_ref[i].origlen,
                               .data = s_ref[i].data};
            assert_true(wire_packets_put(payload[k], 1 << 20, &len, &p));
        }
        plen[k] = len;
        batch_t b = {.seq = k ? 7 : 3,
                     .buf = payload[k],
                     .len = len,
                     .packets = 10,
                     .watermark = s_ref[k * 10 + 9].ts};
        assert_int_equal(dlq_write(w, &b, DLQ_UNACKED), 0);
    }
    char path[256];
    snprintf(path, sizeof path, "%s", dlq_path(w));
    dlq_destroy(&w);

    dlq_reader_t *reader;
    dlq_info_t info;
    assert_int_equal(dlq_reader_open(path, &reader, &info, err, sizeof err), 1);
    agent_destroy(&f->a);
    agent_opts_t o = s_opts;
    o.replay = reader;
    o.replay_info = &info;
    o.node_id = info.source;
    o.epoch = info.epoch;
    o.description = info.hello_description;
    source_t *none = NULL;
    f->nsent = 0;
    f->a = agent_new(&none, &o, f->metrics, s_on_send_any, f);
    assert_non_null(f->a);
    agent_start(f->a, 0);
    const wire_msg_t *h = &f->sent[0].msg;
    assert_int_equal(h->type, WIRE_HELLO);
    assert_string_equal(h->source, "edge9");
    assert_int_equal(h->epoch, 77);
    assert_int_equal(h->hello.settled, 0);
    assert_string_equal(h->hello.description, "edge nine");
    assert_string_equal(h->hello.ifaces[0].name, "eth3");
    assert_string_equal(h->hello.ifaces[0].description, "rack 9");
    assert_int_equal(h->hello.ifaces[0].snaplen, 65535);
    agent_on_link(f->a, true, 0);
    for (int64_t now = 0; now < 1000 && !agent_finished(f->a); now++) {
        size_t from = f->nsent;
        agent_step(f->a, now);
        for (size_t i = from; i < f->nsent; i++)
            if (f->sent[i].msg.type == WIRE_BATCH)
                s_ack_as(f, "edge9", 77, f->sent[i].msg.batch.seq, now);
    }
    assert_true(agent_finished(f->a));
    assert_int_equal(agent_exit_status(f->a), 0);
    size_t batches = 0, ends = 0;
    for (size_t i = 0; i < f->nsent; i++) {
        const sent_t *s = &f->sent[i];
        if (s->msg.type == WIRE_END)
            ends++;
        if (s->msg.type != WIRE_BATCH)
            continue;
        int k = s->msg.batch.seq == 7;
        assert_int_equal(s->msg.batch.seq, k ? 7 : 3);
        assert_int_equal(s->plen, plen[k]);
        assert_memory_equal(s->payload, payload[k], plen[k]);
        assert_int_equal(s->msg.batch.watermark, s_ref[k * 10 + 9].ts);
        batches++;
    }
    assert_int_equal(batches, 2);
    assert_true(ends >= 1);
    free(payload[0]);
    free(payload[1]);
}

/* Runs `fn` with stderr going to a file; returns what was written. */
static char *s_stderr_of(void (*fn)(fixture_t *), fixture_t *f)
{
    char path[] = "/tmp/test_agent_log.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn(f);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, text, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return text;
}

static size_t s_occurrences(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void s_outage(fixture_t *f)
{
    agent_start(f->a, 0);
    agent_step(f->a, 0);
    agent_step(f->a, 999); /* held for less than ACK_TIMEOUT_MS: nothing said */
    assert_true(agent_next_wake(f->a, 999) <= 1000);
    for (int64_t t = 1000; t < 3000; t += 100)
        agent_step(f->a, t);
    s_reply(f, WIRE_WELCOME, 3000);
    agent_on_link(f->a, true, 3000);
    agent_step(f->a, 3001);
    agent_on_link(f->a, false, 4000);
    agent_step(f->a, 4500); /* down again, not for long */
    agent_on_link(f->a, true, 4600);
}

/* With no connection, a batch held for ACK_TIMEOUT_MS is reported once,
 * naming the next hop and the dead-letter deadline; the return too. A short
 * outage says nothing at the warning level. */
static void test_no_connection_warning(void **state)
{
    fixture_t *f = *state;
    char *text = s_stderr_of(s_outage, f);
    assert_int_equal(s_occurrences(text, "warn: no connection to tcp://192.0.2.1:5710: holding "),
                     1);
    assert_non_null(strstr(text, "dead-lettering after RETRY_TIMEOUT_S (60 s)"));
    assert_int_equal(
        s_occurrences(text, "info: connection to tcp://192.0.2.1:5710 is back: sending the "), 1);
    /* the short outage: what was on the connection is sent again, said at info */
    assert_int_equal(s_occurrences(text, " unacknowledged batches again"), 1);
    /* the warning came at 1000 ms, after the batch had waited; not before */
    free(text);
    metric_id_t up = metrics_gauge(f->metrics, "tapmesh_capture_next_hop_up", "", NULL);
    assert_int_equal(metrics_value(f->metrics, up), 1);
}

/* ---- EVENTS: the tap and the losses ------------------------------------ */

typedef struct {
    size_t packets, bad; /* tapped; differing from the sample's next */
    uint64_t losses[3];  /* kernel_drop, if_drop, dead_letter */
    unsigned loss_calls;
    char source[64], iface[64];
} taps_t;

static taps_t s_taps;

static void s_on_tap(void *ctx, const char *source, const char *iface, uint16_t linktype,
                     const wire_packet_t *pkt)
{
    taps_t *t = ctx;
    snprintf(t->source, sizeof t->source, "%s", source);
    snprintf(t->iface, sizeof t->iface, "%s", iface);
    const sample_pkt_t *r = t->packets < s_nref ? &s_ref[t->packets] : NULL;
    if (!r || linktype != 1 || pkt->ts_ns != r->ts || pkt->caplen != r->caplen ||
        pkt->origlen != r->origlen || memcmp(pkt->data, r->data, r->caplen) != 0)
        t->bad++;
    t->packets++;
}

static void s_on_loss(void *ctx, const char *source, const char *iface, const char *reason,
                      uint64_t count)
{
    taps_t *t = ctx;
    assert_string_equal(source, "edge1");
    snprintf(t->iface, sizeof t->iface, "%s", iface);
    assert_true(count > 0);
    int k = strcmp(reason, "kernel_drop") == 0 ? 0 : strcmp(reason, "if_drop") == 0 ? 1 : 2;
    if (k == 2)
        assert_string_equal(reason, "dead_letter");
    t->losses[k] += count;
    t->loss_calls++;
}

/* An agent reading the sample with the tap set. */
static void s_tapped_agent(fixture_t *f)
{
    agent_destroy(&f->a);
    memset(&s_taps, 0, sizeof s_taps);
    char err[512];
    source_t *src = source_file_open(SAMPLE, 0, "", err, sizeof err);
    assert_non_null(src);
    agent_opts_t o = s_opts;
    o.tap = s_on_tap;
    o.loss = s_on_loss;
    o.tap_ctx = &s_taps;
    f->a = agent_new(&src, &o, f->metrics, s_on_send, f);
    assert_non_null(f->a);
}

/* Every packet read goes through the tap once, in order, as it is sent
 * (time, lengths, bytes), named by the source and the interface HELLO
 * names; batches that stay unacknowledged are one loss each,
 * "dead_letter", their sum the dead-letter counter. */
static void test_tap_and_dead_letter_losses(void **state)
{
    fixture_t *f = *state;
    s_tapped_agent(f);
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    int64_t now = 0;
    for (int round = 0; round < 200000 && !agent_finished(f->a); round++) {
        size_t from = f->nsent;
        agent_step(f->a, now);
        for (size_t i = from; i < f->nsent; i++) /* odd batches are never acknowledged */
            if (f->sent[i].msg.type == WIRE_BATCH && f->sent[i].msg.batch.seq % 2 == 0)
                s_ack(f, f->sent[i].msg.batch.seq, now);
        now = agent_next_wake(f->a, now);
    }
    assert_true(agent_finished(f->a));
    assert_int_equal(s_taps.packets, s_nref);
    assert_int_equal(s_taps.bad, 0);
    assert_string_equal(s_taps.source, "edge1");
    assert_string_equal(s_taps.iface, f->sent[0].msg.hello.ifaces[0].name);
    metric_id_t dead =
        metrics_counter(f->metrics, "tapmesh_capture_packets_dead_lettered_total", "", NULL);
    metric_id_t batches =
        metrics_counter(f->metrics, "tapmesh_capture_batches_dead_lettered_total", "", NULL);
    assert_true(metrics_value(f->metrics, dead) > 0);
    assert_int_equal(s_taps.losses[2], metrics_value(f->metrics, dead));
    assert_int_equal(s_taps.loss_calls, metrics_value(f->metrics, batches));
    assert_int_equal(s_taps.losses[0] + s_taps.losses[1], 0); /* a file has no kernel */
}

/* A live source of no packets whose kernel counters the test sets. */
static source_stats_t s_fake_stats;

static source_result_t s_fake_next(source_t *self, source_packet_t *pkt)
{
    (void)self;
    (void)pkt;
    return SOURCE_IDLE;
}

static int s_fake_stats_of(source_t *self, source_stats_t *st)
{
    (void)self;
    *st = s_fake_stats;
    return 0;
}

static const source_ops_t s_fake_ops = {.next = s_fake_next, .stats = s_fake_stats_of};

/* Kernel and interface drops: their growth each time the counters are read
 * (once a second, and at exit), as "kernel_drop" and "if_drop", summing to
 * the metrics; counters that do not grow say nothing. */
static void test_kernel_drop_losses(void **state)
{
    fixture_t *f = *state;
    agent_destroy(&f->a);
    memset(&s_taps, 0, sizeof s_taps);
    memset(&s_fake_stats, 0, sizeof s_fake_stats);
    source_t *src = source_new(&s_fake_ops, NULL);
    assert_non_null(src);
    src->pcap = pcap_open_dead(DLT_EN10MB, 65535);
    snprintf(src->name, sizeof src->name, "eth7");
    agent_opts_t o = s_opts;
    o.live = true;
    o.tap = s_on_tap;
    o.loss = s_on_loss;
    o.tap_ctx = &s_taps;
    f->a = agent_new(&src, &o, f->metrics, s_on_send, f);
    assert_non_null(f->a);
    agent_start(f->a, 0);
    agent_on_link(f->a, true, 0);
    s_reply(f, WIRE_WELCOME, 0);
    agent_step(f->a, 0);
    s_fake_stats = (source_stats_t){.received = 100, .dropped = 5, .ifdropped = 2};
    agent_step(f->a, 500); /* not read yet */
    assert_int_equal(s_taps.loss_calls, 0);
    agent_step(f->a, 1000);
    assert_int_equal(s_taps.losses[0], 5);
    assert_int_equal(s_taps.losses[1], 2);
    assert_int_equal(s_taps.loss_calls, 2);
    assert_string_equal(s_taps.iface, "eth7");
    agent_step(f->a, 2000); /* no growth: nothing */
    assert_int_equal(s_taps.loss_calls, 2);
    s_fake_stats.dropped = 12;
    agent_step(f->a, 3000);
    assert_int_equal(s_taps.losses[0], 12);
    assert_int_equal(s_taps.losses[1], 2);
    s_fake_stats.ifdropped = 3;
    agent_exit_status(f->a); /* the last counters, at exit */
    assert_int_equal(s_taps.losses[1], 3);
    metric_id_t kd =
        metrics_counter(f->metrics, "tapmesh_capture_kernel_dropped_packets_total", "", NULL);
    metric_id_t id =
        metrics_counter(f->metrics, "tapmesh_capture_interface_dropped_packets_total", "", NULL);
    assert_int_equal(metrics_value(f->metrics, kd), s_taps.losses[0]);
    assert_int_equal(metrics_value(f->metrics, id), s_taps.losses[1]);
    assert_int_equal(s_taps.packets, 0);
    assert_int_equal(s_taps.losses[2], 0);
}

int main(void)
{
    s_default_opts();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_and_retry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_window_and_content, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_compress, s_setup_zstd, s_teardown),
        cmocka_unit_test_setup_teardown(test_resend_backoff, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_after_retry_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_waits_for_ack_in_flight, s_setup_retry_3s,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_ranges_sent, s_setup_small_buffer, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_waits_for_welcome, s_setup_small_buffer,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_hello_first_on_link_up, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refused_linktype, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refused_unknown_source, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_replies, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stop_then_abort, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_resend_on_reconnect, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_resume_after_crash, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_replay_dead_letters, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_no_connection_warning, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_lent_payload_outlives_ack, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_file_read_ahead_is_bounded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_live_reads_up_to_buffer_max, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_file_read_ahead_lifted_while_undelivered, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_tap_and_dead_letter_losses, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kernel_drop_losses, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sample_free(&s_ref, s_nref);
    return rc;
}
