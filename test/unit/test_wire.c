/*
 * test_wire — the wire v2 codec against proto/wire-v2.md: every command
 * round-trips canonically, payload frames are built, checked and walked,
 * and every malformed variant is rejected with the reason §5 gives it.
 * Frames are written here by a small big-endian writer that follows the
 * spec field by field, so the decoder and encoder are checked against the
 * document rather than against each other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "wire.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a big-endian writer, independent of the codec ------------------- */

typedef struct {
    uint8_t *buf;
    size_t len;
    size_t cap;
} s_bw_t;

/* Large enough for the biggest HELLO and a payload with a maximal record. */
#define S_BW_CAP (1u << 20)

static s_bw_t s_w;
static uint8_t *s_enc;  /* encoder output, S_BW_CAP bytes */
static uint8_t *s_enc2; /* second encoding, S_BW_CAP bytes */
static wire_msg_t s_m;  /* the message under test */
static wire_msg_t s_d;  /* what the decoder made of it */

static void s_reset(s_bw_t *w)
{
    w->len = 0;
}

static void s_be(s_bw_t *w, uint64_t v, size_t n)
{
    if (w->cap - w->len < n)
        fail_msg("test writer overflow");
    for (size_t i = 0; i < n; i++)
        w->buf[w->len + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    w->len += n;
}

static void s_u8(s_bw_t *w, uint8_t v)
{
    s_be(w, v, 1);
}

static void s_u16(s_bw_t *w, uint16_t v)
{
    s_be(w, v, 2);
}

static void s_u32(s_bw_t *w, uint32_t v)
{
    s_be(w, v, 4);
}

static void s_u64(s_bw_t *w, uint64_t v)
{
    s_be(w, v, 8);
}

static void s_raw(s_bw_t *w, const void *p, size_t n)
{
    if (w->cap - w->len < n)
        fail_msg("test writer overflow");
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

/* §2 name / ifname: u8 length, then the bytes (no checks: may be invalid). */
static void s_label_n(s_bw_t *w, const char *s, size_t n)
{
    s_u8(w, (uint8_t)n);
    s_raw(w, s, n);
}

static void s_label(s_bw_t *w, const char *s)
{
    s_label_n(w, s, strlen(s));
}

/* §2 text: u16 length, then the bytes. */
static void s_text_n(s_bw_t *w, const char *s, size_t n)
{
    s_u16(w, (uint16_t)n);
    s_raw(w, s, n);
}

static void s_text(s_bw_t *w, const char *s)
{
    s_text_n(w, s, strlen(s));
}

/* §2 frame header */
static void s_hdr(s_bw_t *w, uint16_t sig, uint8_t version, uint8_t type)
{
    s_u16(w, sig);
    s_u8(w, version);
    s_u8(w, type);
}

static unsigned s_min(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

/* Writes `m` as §3 lays it out, without checking any rule, so a test can
 * put any out-of-range value on the wire. Counts above the arrays' sizes
 * write as many elements as the arrays hold. */
static void s_ref(s_bw_t *w, const wire_msg_t *m)
{
    s_reset(w);
    s_hdr(w, WIRE_SIGNATURE, WIRE_VERSION, (uint8_t)m->type);
    s_label(w, m->source);
    s_u64(w, m->epoch);
    switch (m->type) {
    case WIRE_HELLO: /* §3.1 */
        s_u64(w, m->hello.settled);
        s_text(w, m->hello.description);
        s_u8(w, m->hello.iface_count);
        for (unsigned i = 0; i < s_min(m->hello.iface_count, WIRE_IFACES_MAX); i++) {
            const wire_iface_t *f = &m->hello.ifaces[i];
            s_u16(w, f->linktype);
            s_u32(w, f->snaplen);
            s_label(w, f->name);
            s_text(w, f->description);
        }
        break;
    case WIRE_WELCOME: /* §3.2 */
        break;
    case WIRE_REFUSE:
        s_u8(w, m->refuse.code);
        s_text(w, m->refuse.reason);
        break;
    case WIRE_BATCH: /* §3.3 */
        s_u64(w, m->batch.seq);
        s_u16(w, m->batch.part);
        s_u16(w, m->batch.parts);
        s_u64(w, m->batch.watermark);
        s_u32(w, m->batch.packet_count);
        s_u32(w, m->batch.payload_len);
        s_u8(w, m->batch.hop_count);
        for (unsigned i = 0; i < s_min(m->batch.hop_count, WIRE_HOPS_MAX); i++) {
            s_label(w, m->batch.hops[i].node);
            s_u64(w, m->batch.hops[i].recv_ns);
            s_u64(w, m->batch.hops[i].relay_seq);
        }
        break;
    case WIRE_ACK: /* §3.5 */
        s_u16(w, m->ack.count);
        for (unsigned i = 0; i < s_min(m->ack.count, WIRE_ACKS_MAX); i++) {
            s_u64(w, m->ack.entries[i].seq);
            s_u16(w, m->ack.entries[i].part);
        }
        break;
    case WIRE_HEARTBEAT: /* §3.6 */
    case WIRE_END:
        s_u64(w, m->progress.watermark);
        s_u64(w, m->progress.next_seq);
        break;
    case WIRE_STATS: /* §3.7 */
        s_u8(w, m->stats.count);
        for (unsigned i = 0; i < s_min(m->stats.count, WIRE_IFACES_MAX); i++) {
            const wire_stats_t *e = &m->stats.entries[i];
            s_u16(w, e->ifindex);
            s_u16(w, e->flags);
            s_u64(w, e->recv);
            s_u64(w, e->drop);
            s_u64(w, e->ifdrop);
            s_u64(w, e->sent);
            s_u64(w, e->dead);
        }
        break;
    case WIRE_FEATURES: /* §3.8 */
        s_u32(w, m->features.flags);
        break;
    case WIRE_DEAD: /* §3.9 */
        s_u16(w, m->dead.count);
        for (unsigned i = 0; i < s_min(m->dead.count, WIRE_DEAD_MAX); i++) {
            s_u64(w, m->dead.ranges[i].lo);
            s_u64(w, m->dead.ranges[i].hi);
        }
        break;
    default:
        break;
    }
}

/* §4 record, with `ndata` bytes of data whatever caplen says. */
static void s_rec(s_bw_t *w, uint64_t ts, uint16_t ifindex, uint16_t flags, uint32_t caplen,
                  uint32_t origlen, size_t ndata)
{
    s_u64(w, ts);
    s_u16(w, ifindex);
    s_u16(w, flags);
    s_u32(w, caplen);
    s_u32(w, origlen);
    for (size_t i = 0; i < ndata; i++)
        s_u8(w, (uint8_t)(i * 7 + 1));
}

/* ---- messages under test --------------------------------------------- */

/* `n` bytes cycling through the §2 name alphabet. */
static void s_fill_name(char *out, size_t n, unsigned seed)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    for (size_t i = 0; i < n; i++)
        out[i] = set[(i + seed) % (sizeof set - 1)];
    out[n] = '\0';
}

/* `n` bytes cycling through every ifname byte: 0x21..0x7E but / " \ */
static void s_fill_ifname(char *out, size_t n, unsigned seed)
{
    size_t k = 0;
    for (unsigned c = seed; k < n; c++) {
        char b = (char)(0x21 + c % (0x7f - 0x21));
        if (b != '/' && b != '"' && b != '\\')
            out[k++] = b;
    }
    out[n] = '\0';
}

/* `n` bytes of text: every printable ASCII byte and UTF-8 "é" (C3 A9). */
static void s_fill_text(char *out, size_t n, unsigned seed)
{
    size_t k = 0;
    for (unsigned c = seed; k < n; c++) {
        if (c % 97 == 0 && k + 2 <= n) {
            out[k++] = (char)0xc3;
            out[k++] = (char)0xa9;
        } else {
            out[k++] = (char)(0x20 + c % (0x7f - 0x20));
        }
    }
    out[n] = '\0';
}

static void s_base(wire_msg_t *m, wire_type_t type)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    snprintf(m->source, sizeof m->source, "cap-1.eu_west");
    m->epoch = 0x0102030405060708ull;
}

/* HELLO with `n` interfaces; `big` makes every name and text its maximum. */
static void s_make_hello(wire_msg_t *m, unsigned n, bool big)
{
    s_base(m, WIRE_HELLO);
    if (big) {
        s_fill_name(m->source, WIRE_NAME_MAX, 3);
        s_fill_text(m->hello.description, WIRE_TEXT_MAX, 0);
        m->hello.settled = UINT64_MAX;
    } else {
        m->hello.settled = 0x0102030405060708ull;
        snprintf(m->hello.description, sizeof m->hello.description, "tapmesh-capture 0.1");
    }
    m->hello.iface_count = (uint8_t)n;
    for (unsigned i = 0; i < n; i++) {
        wire_iface_t *f = &m->hello.ifaces[i];
        f->linktype = (uint16_t)(i == 0 ? 1 : 100 + i * 997);
        f->snaplen = i == 0 ? WIRE_SNAPLEN_MAX : 1 + i * 4000;
        if (big) {
            s_fill_ifname(f->name, WIRE_NAME_MAX, i);
            s_fill_text(f->description, WIRE_TEXT_MAX, i + 1);
        } else {
            snprintf(f->name, sizeof f->name, "eth%u", i);
            snprintf(f->description, sizeof f->description, "port %u", i);
        }
    }
}

static void s_make_welcome(wire_msg_t *m)
{
    s_base(m, WIRE_WELCOME);
}

static void s_make_refuse(wire_msg_t *m, uint8_t code)
{
    s_base(m, WIRE_REFUSE);
    m->refuse.code = code;
    snprintf(m->refuse.reason, sizeof m->refuse.reason, "link type 105 refused");
}

static void s_make_batch(wire_msg_t *m, unsigned hops)
{
    s_base(m, WIRE_BATCH);
    m->batch.seq = UINT64_MAX - 1;
    m->batch.part = 2;
    m->batch.parts = 3;
    m->batch.watermark = 1700000000123456789ull;
    m->batch.packet_count = 77;
    m->batch.payload_len = 4096;
    m->batch.hop_count = (uint8_t)hops;
    for (unsigned i = 0; i < hops; i++) {
        s_fill_name(m->batch.hops[i].node, i == WIRE_HOPS_MAX - 1 ? WIRE_NAME_MAX : 1 + i, i);
        m->batch.hops[i].recv_ns = 1700000000000000000ull + i;
        m->batch.hops[i].relay_seq = (uint64_t)i << 40 | i;
    }
}

static void s_make_ack(wire_msg_t *m, unsigned n)
{
    s_base(m, WIRE_ACK);
    m->ack.count = (uint16_t)n;
    for (unsigned i = 0; i < n; i++) {
        m->ack.entries[i].seq = i == 0 ? UINT64_MAX : (uint64_t)i * 1000003u;
        m->ack.entries[i].part = (uint16_t)(i % WIRE_PARTS_MAX);
    }
}

static void s_make_progress(wire_msg_t *m, wire_type_t type)
{
    s_base(m, type);
    m->progress.watermark = 1700000000987654321ull;
    m->progress.next_seq = 4242;
}

/* Every valid shape used by the generic loops below. */
enum { S_SHAPES = 13 };

static void s_make_shape(wire_msg_t *m, int i)
{
    switch (i) {
    case 0:
        s_make_hello(m, 1, false);
        break;
    case 1:
        s_make_hello(m, 3, false);
        break;
    case 2:
        s_make_welcome(m);
        break;
    case 3:
    case 4:
    case 5:
        s_make_refuse(m, (uint8_t)(i - 2));
        break;
    case 6:
        s_make_batch(m, 0);
        break;
    case 7:
        s_make_batch(m, 2);
        break;
    case 8:
        s_make_batch(m, WIRE_HOPS_MAX);
        break;
    case 9:
        s_make_ack(m, 1);
        break;
    case 10:
        s_make_ack(m, 5);
        break;
    case 11:
        s_make_progress(m, WIRE_HEARTBEAT);
        break;
    default:
        s_make_progress(m, WIRE_END);
        break;
    }
}

/* ---- checks ---------------------------------------------------------- */

static void s_assert_msg_equal(const wire_msg_t *a, const wire_msg_t *b)
{
    assert_int_equal(a->type, b->type);
    assert_string_equal(a->source, b->source);
    assert_int_equal(a->epoch, b->epoch);
    switch (a->type) {
    case WIRE_HELLO:
        assert_int_equal(a->hello.settled, b->hello.settled);
        assert_string_equal(a->hello.description, b->hello.description);
        assert_int_equal(a->hello.iface_count, b->hello.iface_count);
        for (unsigned i = 0; i < a->hello.iface_count; i++) {
            const wire_iface_t *x = &a->hello.ifaces[i], *y = &b->hello.ifaces[i];
            assert_int_equal(x->linktype, y->linktype);
            assert_int_equal(x->snaplen, y->snaplen);
            assert_string_equal(x->name, y->name);
            assert_string_equal(x->description, y->description);
        }
        break;
    case WIRE_WELCOME:
        break;
    case WIRE_REFUSE:
        assert_int_equal(a->refuse.code, b->refuse.code);
        assert_string_equal(a->refuse.reason, b->refuse.reason);
        break;
    case WIRE_BATCH:
        assert_int_equal(a->batch.seq, b->batch.seq);
        assert_int_equal(a->batch.part, b->batch.part);
        assert_int_equal(a->batch.parts, b->batch.parts);
        assert_int_equal(a->batch.watermark, b->batch.watermark);
        assert_int_equal(a->batch.packet_count, b->batch.packet_count);
        assert_int_equal(a->batch.payload_len, b->batch.payload_len);
        assert_int_equal(a->batch.hop_count, b->batch.hop_count);
        for (unsigned i = 0; i < a->batch.hop_count; i++) {
            assert_string_equal(a->batch.hops[i].node, b->batch.hops[i].node);
            assert_int_equal(a->batch.hops[i].recv_ns, b->batch.hops[i].recv_ns);
            assert_int_equal(a->batch.hops[i].relay_seq, b->batch.hops[i].relay_seq);
        }
        break;
    case WIRE_ACK:
        assert_int_equal(a->ack.count, b->ack.count);
        for (unsigned i = 0; i < a->ack.count; i++) {
            assert_int_equal(a->ack.entries[i].seq, b->ack.entries[i].seq);
            assert_int_equal(a->ack.entries[i].part, b->ack.entries[i].part);
        }
        break;
    case WIRE_HEARTBEAT:
    case WIRE_END:
        assert_int_equal(a->progress.watermark, b->progress.watermark);
        assert_int_equal(a->progress.next_seq, b->progress.next_seq);
        break;
    case WIRE_STATS:
        assert_int_equal(a->stats.count, b->stats.count);
        for (unsigned i = 0; i < a->stats.count; i++) {
            const wire_stats_t *x = &a->stats.entries[i], *y = &b->stats.entries[i];
            assert_int_equal(x->ifindex, y->ifindex);
            assert_int_equal(x->flags, y->flags);
            assert_int_equal(x->recv, y->recv);
            assert_int_equal(x->drop, y->drop);
            assert_int_equal(x->ifdrop, y->ifdrop);
            assert_int_equal(x->sent, y->sent);
            assert_int_equal(x->dead, y->dead);
        }
        break;
    case WIRE_FEATURES:
        assert_int_equal(a->features.flags, b->features.flags);
        break;
    case WIRE_DEAD:
        assert_int_equal(a->dead.count, b->dead.count);
        for (unsigned i = 0; i < a->dead.count; i++) {
            assert_int_equal(a->dead.ranges[i].lo, b->dead.ranges[i].lo);
            assert_int_equal(a->dead.ranges[i].hi, b->dead.ranges[i].hi);
        }
        break;
    default:
        fail_msg("unexpected type %d", (int)a->type);
    }
}

/* Decodes `len` bytes from a heap copy of exactly that size, so that the
 * sanitizer builds catch any read past the frame. */
static wire_err_t s_decode_exact(const uint8_t *buf, size_t len, wire_msg_t *m)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, buf, len);
    wire_err_t err = wire_decode(copy, len, m);
    free(copy);
    return err;
}

static wire_err_t s_check_exact(const uint8_t *buf, size_t len, uint32_t count, unsigned ifaces,
                                uint64_t *lo, uint64_t *hi)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, buf, len);
    wire_err_t err = wire_packets_check(copy, len, count, ifaces, lo, hi);
    free(copy);
    return err;
}

static void s_want(wire_err_t got, wire_err_t want, const char *what, int line)
{
    if (got != want)
        fail_msg("line %d: %s: got %s, want %s", line, what, wire_err_name(got),
                 wire_err_name(want));
}

/* The frame in s_w must decode with exactly `want`. */
#define S_DECODE_IS(want) s_want(s_decode_exact(s_w.buf, s_w.len, &s_d), (want), "decode", __LINE__)

/* The payload in s_w, with `count` records and `ifaces` interfaces. */
#define S_CHECK_IS(count, ifaces, want)                                                            \
    s_want(s_check_exact(s_w.buf, s_w.len, (count), (ifaces), NULL, NULL), (want), "check",        \
           __LINE__)

/* `m` is valid: the encoder writes exactly what the spec says (s_ref),
 * the decoder gives back every field, and re-encoding gives the same bytes. */
static void s_round_trip(const wire_msg_t *m)
{
    size_t len = wire_encode(m, s_enc, S_BW_CAP);
    assert_true(len > 0);
    s_ref(&s_w, m);
    assert_int_equal(len, s_w.len);
    assert_memory_equal(s_enc, s_w.buf, len);

    memset(&s_d, 0xa5, sizeof s_d); /* the decoder must terminate every string */
    assert_int_equal(s_decode_exact(s_enc, len, &s_d), WIRE_OK);
    s_assert_msg_equal(m, &s_d);

    size_t len2 = wire_encode(&s_d, s_enc2, S_BW_CAP);
    assert_int_equal(len2, len);
    assert_memory_equal(s_enc2, s_enc, len);
}

/* ---- round trips ----------------------------------------------------- */

static void test_round_trip_hello(void **state)
{
    (void)state;
    s_make_hello(&s_m, 1, false);
    s_round_trip(&s_m);
    s_make_hello(&s_m, 1, true);
    s_round_trip(&s_m);
    s_make_hello(&s_m, WIRE_IFACES_MAX, false);
    s_round_trip(&s_m);
    s_make_hello(&s_m, WIRE_IFACES_MAX, true); /* the largest command there is */
    s_round_trip(&s_m);
    assert_int_equal(wire_encode(&s_m, s_enc, S_BW_CAP), WIRE_COMMAND_MAX);
    /* empty texts and the shortest names */
    s_make_hello(&s_m, 1, false);
    s_m.hello.description[0] = '\0';
    s_m.hello.ifaces[0].description[0] = '\0';
    snprintf(s_m.source, sizeof s_m.source, "x");
    snprintf(s_m.hello.ifaces[0].name, sizeof s_m.hello.ifaces[0].name, "!");
    s_m.hello.ifaces[0].snaplen = 1;
    s_round_trip(&s_m);
}

static void test_round_trip_welcome(void **state)
{
    (void)state;
    s_make_welcome(&s_m);
    s_round_trip(&s_m);
    s_m.epoch = UINT64_MAX;
    s_fill_name(s_m.source, WIRE_NAME_MAX, 0);
    s_round_trip(&s_m);
}

static void test_round_trip_refuse(void **state)
{
    (void)state;
    for (uint8_t code = WIRE_REFUSE_UNKNOWN_SOURCE; code <= WIRE_REFUSE_CONFLICT; code++) {
        s_make_refuse(&s_m, code);
        s_round_trip(&s_m);
        s_m.refuse.reason[0] = '\0';
        s_round_trip(&s_m);
        s_fill_text(s_m.refuse.reason, WIRE_TEXT_MAX, code);
        s_round_trip(&s_m);
    }
}

static void test_round_trip_batch(void **state)
{
    (void)state;
    s_make_batch(&s_m, 0);
    s_round_trip(&s_m);
    s_make_batch(&s_m, WIRE_HOPS_MAX);
    s_round_trip(&s_m);
    /* every bound at its edge */
    s_m.batch.part = WIRE_PARTS_MAX - 1;
    s_m.batch.parts = WIRE_PARTS_MAX;
    s_m.batch.packet_count = WIRE_PACKETS_MAX;
    s_m.batch.payload_len = WIRE_PAYLOAD_MAX;
    s_m.batch.watermark = UINT64_MAX;
    s_round_trip(&s_m);
    s_make_batch(&s_m, 1);
    s_m.batch.seq = 0;
    s_m.batch.part = 0;
    s_m.batch.parts = 1;
    s_m.batch.packet_count = 1;
    s_m.batch.payload_len = WIRE_FRAME_HDR;
    s_m.batch.watermark = 0;
    s_round_trip(&s_m);
}

static void test_round_trip_ack(void **state)
{
    (void)state;
    s_make_ack(&s_m, 1);
    s_round_trip(&s_m);
    s_make_ack(&s_m, WIRE_ACKS_MAX);
    s_round_trip(&s_m);
}

static void test_round_trip_progress(void **state)
{
    (void)state;
    s_make_progress(&s_m, WIRE_HEARTBEAT);
    s_round_trip(&s_m);
    s_make_progress(&s_m, WIRE_END);
    s_round_trip(&s_m);
    s_m.progress.watermark = 0;
    s_m.progress.next_seq = UINT64_MAX;
    s_round_trip(&s_m);
}

/* The bytes of a WELCOME and an ACK, written out from §2, §3.2 and §3.5. */
static void test_golden_bytes(void **state)
{
    (void)state;
    /* clang-format off */
    static const uint8_t welcome[] = {
        0x54, 0x4d, 0x02, 0x02,                         /* "TM", version 2, WELCOME */
        0x03, 'a', '-', '1',                            /* source "a-1" */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, /* epoch 256 */
    };
    /* clang-format on */
    s_base(&s_m, WIRE_WELCOME);
    snprintf(s_m.source, sizeof s_m.source, "a-1");
    s_m.epoch = 256;
    assert_int_equal(wire_encode(&s_m, s_enc, S_BW_CAP), sizeof welcome);
    assert_memory_equal(s_enc, welcome, sizeof welcome);
    assert_int_equal(s_decode_exact(welcome, sizeof welcome, &s_d), WIRE_OK);
    assert_int_equal(s_d.type, WIRE_WELCOME);
    assert_string_equal(s_d.source, "a-1");
    assert_int_equal(s_d.epoch, 256);

    /* clang-format off */
    static const uint8_t ack[] = {
        0x54, 0x4d, 0x02, 0x05,                         /* "TM", version 2, ACK */
        0x01, 'z',                                      /* source "z" */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, /* epoch 7 */
        0x00, 0x02,                                     /* count 2 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, /* seq 9 */
        0x00, 0x00,                                     /* part 0 */
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, /* seq 2^32 */
        0x03, 0xff,                                     /* part 1023 */
    };
    /* clang-format on */
    assert_int_equal(s_decode_exact(ack, sizeof ack, &s_d), WIRE_OK);
    assert_int_equal(s_d.type, WIRE_ACK);
    assert_string_equal(s_d.source, "z");
    assert_int_equal(s_d.epoch, 7);
    assert_int_equal(s_d.ack.count, 2);
    assert_int_equal(s_d.ack.entries[0].seq, 9);
    assert_int_equal(s_d.ack.entries[0].part, 0);
    assert_int_equal(s_d.ack.entries[1].seq, 1ull << 32);
    assert_int_equal(s_d.ack.entries[1].part, 1023);
    assert_int_equal(wire_encode(&s_d, s_enc, S_BW_CAP), sizeof ack);
    assert_memory_equal(s_enc, ack, sizeof ack);
}

/* ---- malformed commands ---------------------------------------------- */

/* Every proper prefix of a valid frame ends inside a field. */
static void s_all_prefixes_truncated(const uint8_t *frame, size_t len, size_t step)
{
    for (size_t n = 0; n < len; n += (n < 256 || len - n < 256) ? 1 : step) {
        wire_err_t err = s_decode_exact(frame, n, &s_d);
        if (err != WIRE_ERR_TRUNCATED)
            fail_msg("prefix %zu of %zu: got %s", n, len, wire_err_name(err));
    }
}

static void test_truncated_every_prefix(void **state)
{
    (void)state;
    for (int i = 0; i < S_SHAPES; i++) {
        s_make_shape(&s_m, i);
        s_ref(&s_w, &s_m);
        assert_int_equal(s_decode_exact(s_w.buf, s_w.len, &s_d), WIRE_OK);
        s_all_prefixes_truncated(s_w.buf, s_w.len, 1);
    }
    /* the long ones: every byte near both ends, every 61st in between */
    s_make_hello(&s_m, 2, true);
    s_ref(&s_w, &s_m);
    s_all_prefixes_truncated(s_w.buf, s_w.len, 1);
    s_make_ack(&s_m, WIRE_ACKS_MAX);
    s_ref(&s_w, &s_m);
    s_all_prefixes_truncated(s_w.buf, s_w.len, 1);
    s_make_hello(&s_m, WIRE_IFACES_MAX, true);
    s_ref(&s_w, &s_m);
    s_all_prefixes_truncated(s_w.buf, s_w.len, 61);
}

static void test_trailing_byte(void **state)
{
    (void)state;
    for (int i = 0; i < S_SHAPES; i++) {
        s_make_shape(&s_m, i);
        s_ref(&s_w, &s_m);
        s_u8(&s_w, 0);
        S_DECODE_IS(WIRE_ERR_TRAILING);
        s_w.buf[s_w.len - 1] = 0xff;
        S_DECODE_IS(WIRE_ERR_TRAILING);
    }
}

static void test_bad_header(void **state)
{
    (void)state;
    static const uint16_t sigs[] = {0x0000, 0x4d54, 0x544c, 0x544e, 0x554d, 0xffff};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        s_make_welcome(&s_m);
        s_ref(&s_w, &s_m);
        s_w.buf[0] = (uint8_t)(sigs[i] >> 8);
        s_w.buf[1] = (uint8_t)sigs[i];
        S_DECODE_IS(WIRE_ERR_SIGNATURE);
        s_w.buf[2] = 1; /* the signature is checked first */
        S_DECODE_IS(WIRE_ERR_SIGNATURE);
    }
    static const uint8_t versions[] = {0, 1, 3, 0x81, 0xff}; /* 1: before HELLO's settled */
    for (size_t i = 0; i < sizeof versions; i++) {
        for (int shape = 0; shape < S_SHAPES; shape++) {
            s_make_shape(&s_m, shape);
            s_ref(&s_w, &s_m);
            s_w.buf[2] = versions[i];
            S_DECODE_IS(WIRE_ERR_VERSION);
        }
    }
    /* a header cut short is truncated, whatever its bytes say */
    static const uint8_t junk[] = {0x00, 0x00, 0x00};
    for (size_t n = 0; n <= 3; n++)
        s_want(s_decode_exact(junk, n, &s_d), WIRE_ERR_TRUNCATED, "junk header", __LINE__);
}

static void test_unknown_type(void **state)
{
    (void)state;
    static const uint8_t types[] = {0, WIRE_PACKETS, WIRE_PACKETS_ZSTD, 13, 0x7f, 0x80, 255};
    for (size_t i = 0; i < sizeof types; i++) {
        /* a body that would be a valid WELCOME */
        s_make_welcome(&s_m);
        s_ref(&s_w, &s_m);
        s_w.buf[3] = types[i];
        S_DECODE_IS(WIRE_ERR_TYPE);
        /* the header alone */
        s_reset(&s_w);
        s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, types[i]);
        S_DECODE_IS(WIRE_ERR_TYPE);
    }
    /* a real payload frame where a command belongs */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    s_rec(&s_w, 1, 0, 0, 4, 4, 4);
    S_DECODE_IS(WIRE_ERR_TYPE);
}

static void test_epoch_zero(void **state)
{
    (void)state;
    for (int i = 0; i < S_SHAPES; i++) {
        s_make_shape(&s_m, i);
        s_m.epoch = 0;
        s_ref(&s_w, &s_m);
        S_DECODE_IS(WIRE_ERR_RANGE);
    }
}

static void test_bad_name(void **state)
{
    (void)state;
    char name[WIRE_NAME_MAX + 2];
    /* length 0 and 65, as source of a WELCOME */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_WELCOME);
    s_label_n(&s_w, "", 0);
    s_u64(&s_w, 1);
    S_DECODE_IS(WIRE_ERR_NAME);
    s_fill_name(name, WIRE_NAME_MAX + 1, 0);
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_WELCOME);
    s_label_n(&s_w, name, WIRE_NAME_MAX + 1);
    s_u64(&s_w, 1);
    S_DECODE_IS(WIRE_ERR_NAME);
    /* length 255 with too few bytes: the length is judged first */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_WELCOME);
    s_u8(&s_w, 255);
    s_raw(&s_w, "abc", 3);
    S_DECODE_IS(WIRE_ERR_NAME);

    /* a byte outside A-Z a-z 0-9 . _ - anywhere in a source or a hop node */
    static const char bad[] = {' ', '/', '@', ':', '+', '~', '!', '"', '\\', 0x7f, 0x01, 0x00};
    static const uint8_t high[] = {0x80, 0xc3, 0xff};
    for (size_t i = 0; i < sizeof bad + sizeof high; i++) {
        char c = i < sizeof bad ? bad[i] : (char)high[i - sizeof bad];
        for (size_t at = 0; at < 3; at++) {
            char s[4] = "abc";
            s[at] = c;
            s_reset(&s_w);
            s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_END);
            s_label_n(&s_w, s, 3);
            s_u64(&s_w, 1);
            s_u64(&s_w, 2);
            s_u64(&s_w, 3);
            S_DECODE_IS(WIRE_ERR_NAME);

            s_make_batch(&s_m, 3);
            snprintf(s_m.batch.hops[2].node, sizeof s_m.batch.hops[2].node, "abc");
            s_ref(&s_w, &s_m);
            /* hop 2's node is "abc": patch it in place */
            size_t pos = s_w.len - (1 + 3 + 8 + 8) + 1 + at;
            assert_memory_equal(s_w.buf + pos - at, "abc", 3);
            s_w.buf[pos] = (uint8_t)c;
            S_DECODE_IS(WIRE_ERR_NAME);
        }
    }
    /* hop node of length 0 */
    s_make_batch(&s_m, 1);
    s_m.batch.hops[0].node[0] = '\0';
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_NAME);
}

static void test_bad_ifname(void **state)
{
    (void)state;
    static const uint8_t bad[] = {'/', '"', '\\', ' ', 0x00, 0x09, 0x1f, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < sizeof bad; i++) {
        for (size_t at = 0; at < 4; at++) {
            s_make_hello(&s_m, 2, false);
            s_ref(&s_w, &s_m); /* iface 1 is "eth1", then text "port 1" */
            size_t pos = s_w.len - (2 + 6) - 4 + at;
            assert_memory_equal(s_w.buf + pos - at, "eth1", 4);
            s_w.buf[pos] = bad[i];
            S_DECODE_IS(WIRE_ERR_NAME);
        }
    }
    /* §2: ifname is 0x21..0x7E, so these are fine where a name would not be */
    s_make_hello(&s_m, 1, false);
    snprintf(s_m.hello.ifaces[0].name, sizeof s_m.hello.ifaces[0].name, "!~:@eth0.100+[x]");
    s_round_trip(&s_m);

    /* length 0 and 65 */
    char name[WIRE_NAME_MAX + 2];
    s_fill_ifname(name, WIRE_NAME_MAX + 1, 0);
    for (int k = 0; k < 2; k++) {
        s_reset(&s_w);
        s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_HELLO);
        s_label(&s_w, "src");
        s_u64(&s_w, 1);
        s_u64(&s_w, 0); /* settled */
        s_text(&s_w, "");
        s_u8(&s_w, 1);
        s_u16(&s_w, 1);
        s_u32(&s_w, 65535);
        s_label_n(&s_w, name, k ? WIRE_NAME_MAX + 1 : 0);
        s_text(&s_w, "");
        S_DECODE_IS(WIRE_ERR_NAME);
    }
}

static void test_bad_text(void **state)
{
    (void)state;
    static const uint8_t bad[] = {0x00, 0x01, 0x09, 0x0a, 0x0d, 0x1b, 0x1f, 0x7f};
    for (size_t i = 0; i < sizeof bad; i++) {
        /* HELLO description */
        s_make_hello(&s_m, 1, false);
        s_ref(&s_w, &s_m);
        size_t pos = 4 + 1 + strlen(s_m.source) + 8 + 8 + 2;
        assert_memory_equal(s_w.buf + pos, "tapmesh", 7);
        s_w.buf[pos + 3] = bad[i];
        S_DECODE_IS(WIRE_ERR_TEXT);
        /* interface description: the last bytes of the frame */
        s_ref(&s_w, &s_m);
        s_w.buf[s_w.len - 1] = bad[i];
        S_DECODE_IS(WIRE_ERR_TEXT);
        /* REFUSE reason */
        s_make_refuse(&s_m, WIRE_REFUSE_LINKTYPE);
        s_ref(&s_w, &s_m);
        s_w.buf[s_w.len - 5] = bad[i];
        S_DECODE_IS(WIRE_ERR_TEXT);
    }
    /* 0x20 and bytes above 0x7F are text */
    s_make_refuse(&s_m, WIRE_REFUSE_CONFLICT);
    snprintf(s_m.refuse.reason, sizeof s_m.refuse.reason, " caf\xc3\xa9 \xe2\x82\xac ~ ");
    s_round_trip(&s_m);

    /* length 1025, with the bytes there and with them missing */
    static char text[WIRE_TEXT_MAX + 2];
    s_fill_text(text, WIRE_TEXT_MAX + 1, 0);
    for (int k = 0; k < 2; k++) {
        s_reset(&s_w);
        s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_REFUSE);
        s_label(&s_w, "src");
        s_u64(&s_w, 1);
        s_u8(&s_w, WIRE_REFUSE_UNKNOWN_SOURCE);
        s_u16(&s_w, WIRE_TEXT_MAX + 1);
        if (k == 0)
            s_raw(&s_w, text, WIRE_TEXT_MAX + 1);
        S_DECODE_IS(WIRE_ERR_TEXT);
    }
    /* the same in a HELLO description and an interface description */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_HELLO);
    s_label(&s_w, "src");
    s_u64(&s_w, 1);
    s_u64(&s_w, 0); /* settled */
    s_text_n(&s_w, text, WIRE_TEXT_MAX + 1);
    s_u8(&s_w, 1);
    s_u16(&s_w, 1);
    s_u32(&s_w, 1500);
    s_label(&s_w, "eth0");
    s_text(&s_w, "");
    S_DECODE_IS(WIRE_ERR_TEXT);
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_HELLO);
    s_label(&s_w, "src");
    s_u64(&s_w, 1);
    s_u64(&s_w, 0); /* settled */
    s_text(&s_w, "");
    s_u8(&s_w, 1);
    s_u16(&s_w, 1);
    s_u32(&s_w, 1500);
    s_label(&s_w, "eth0");
    s_text_n(&s_w, text, WIRE_TEXT_MAX + 1);
    S_DECODE_IS(WIRE_ERR_TEXT);
    s_u16(&s_w, 0xffff);
    S_DECODE_IS(WIRE_ERR_TEXT);
}

static void test_hello_range(void **state)
{
    (void)state;
    static const unsigned counts[] = {0, WIRE_IFACES_MAX + 1, 255};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        s_make_hello(&s_m, WIRE_IFACES_MAX, false);
        s_m.hello.iface_count = (uint8_t)counts[i];
        s_ref(&s_w, &s_m);
        S_DECODE_IS(WIRE_ERR_RANGE);
    }
    static const uint32_t snaplens[] = {0, WIRE_SNAPLEN_MAX + 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof snaplens / sizeof *snaplens; i++) {
        s_make_hello(&s_m, 3, false);
        s_m.hello.ifaces[2].snaplen = snaplens[i];
        s_ref(&s_w, &s_m);
        S_DECODE_IS(WIRE_ERR_RANGE);
    }
    s_make_hello(&s_m, 2, false);
    s_m.hello.ifaces[0].snaplen = 1;
    s_m.hello.ifaces[1].snaplen = WIRE_SNAPLEN_MAX;
    s_round_trip(&s_m);
}

static void test_refuse_range(void **state)
{
    (void)state;
    static const uint8_t codes[] = {0, 4, 0x80, 255};
    for (size_t i = 0; i < sizeof codes; i++) {
        s_make_refuse(&s_m, codes[i]);
        s_ref(&s_w, &s_m);
        S_DECODE_IS(WIRE_ERR_RANGE);
    }
}

/* wire_msg_init leaves nothing of an earlier message behind: a BATCH built
 * in a message that held a HELLO has no stray hops (once, a batch resent
 * after a HELLO went out with garbage for hop_count and could not be
 * encoded). The source may point into the message itself. */
static void test_msg_init_clears(void **state)
{
    (void)state;
    wire_msg_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    memset(m, 0x45, sizeof *m); /* whatever an earlier HELLO left */
    snprintf(m->source, sizeof m->source, "edge-1");
    wire_msg_init(m, WIRE_BATCH, m->source, 77);
    assert_int_equal(m->type, WIRE_BATCH);
    assert_string_equal(m->source, "edge-1");
    assert_int_equal(m->epoch, 77);
    assert_int_equal(m->batch.hop_count, 0);
    assert_int_equal(m->batch.part, 0);
    assert_int_equal(m->batch.parts, 1);
    m->batch.seq = 5;
    m->batch.packet_count = 1;
    m->batch.payload_len = 24;
    uint8_t buf[256];
    assert_true(wire_encode(m, buf, sizeof buf) > 0);
    memset(m, 0x45, sizeof *m);
    snprintf(m->source, sizeof m->source, "edge-2");
    wire_msg_init(m, WIRE_ACK, m->source, 9);
    assert_int_equal(m->ack.count, 0);
    m->ack.count = 1;
    m->ack.entries[0] = (wire_ack_entry_t){.seq = 3, .part = 0};
    assert_true(wire_encode(m, buf, sizeof buf) > 0);
    memset(m, 0x45, sizeof *m);
    snprintf(m->source, sizeof m->source, "edge-3");
    wire_msg_init(m, WIRE_HEARTBEAT, m->source, 9);
    assert_int_equal(m->progress.watermark, 0);
    assert_int_equal(m->progress.next_seq, 0);
    free(m);
}

/* An empty batch (a relay filtered or split every packet away) still
 * travels: packet_count 0 with a header-only payload. */
static void test_empty_batch(void **state)
{
    (void)state;
    s_make_batch(&s_m, 0);
    s_m.batch.packet_count = 0;
    s_m.batch.payload_len = WIRE_FRAME_HDR;
    uint8_t buf[512];
    size_t len = wire_encode(&s_m, buf, sizeof buf);
    assert_true(len > 0);
    wire_msg_t back;
    assert_int_equal(wire_decode(buf, len, &back), WIRE_OK);
    assert_int_equal(back.batch.packet_count, 0);
    uint8_t payload[WIRE_FRAME_HDR];
    size_t off;
    assert_true(wire_packets_begin(payload, sizeof payload, &off));
    assert_int_equal(wire_packets_check(payload, off, 0, 1, NULL, NULL), WIRE_OK);
    size_t walk = 0;
    wire_packet_t p;
    assert_false(wire_packets_next(payload, off, &walk, &p));
    /* a count of 0 with a record after the header is not empty */
    uint8_t one[64];
    assert_true(wire_packets_begin(one, sizeof one, &off));
    uint8_t data[4] = {1, 2, 3, 4};
    wire_packet_t rec = {.ts_ns = 1, .caplen = 4, .origlen = 4, .data = data};
    assert_true(wire_packets_put(one, sizeof one, &off, &rec));
    assert_int_equal(wire_packets_check(one, off, 0, 1, NULL, NULL), WIRE_ERR_TRAILING);
}

static void test_batch_range(void **state)
{
    (void)state;
    static const struct {
        uint16_t part, parts;
        uint32_t packet_count, payload_len;
        uint8_t hop_count;
    } bad[] = {
        {0, 0, 1, 4, 0},                    /* parts 0 */
        {1, 1, 1, 4, 0},                    /* part = parts */
        {5, 3, 1, 4, 0},                    /* part > parts */
        {0, WIRE_PARTS_MAX + 1, 1, 4, 0},   /* parts 1025 */
        {1024, 1024, 1, 4, 0},              /* part = parts at max */
        {0, 0xffff, 1, 4, 0},               /* parts huge */
        {0, 1, WIRE_PACKETS_MAX + 1, 4, 0}, /* packet_count 1048577 */
        {0, 1, UINT32_MAX, 4, 0},           /* packet_count huge */
        {0, 1, 1, 3, 0},                    /* payload_len 3 */
        {0, 1, 1, 0, 0},                    /* payload_len 0 */
        {0, 1, 1, WIRE_PAYLOAD_MAX + 1, 0}, /* payload_len 64 MiB + 1 */
        {0, 1, 1, UINT32_MAX, 0},           /* payload_len huge */
        {0, 1, 1, 4, WIRE_HOPS_MAX + 1},    /* hop_count 17 */
        {0, 1, 1, 4, 255},                  /* hop_count 255 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s_make_batch(&s_m, WIRE_HOPS_MAX);
        s_m.batch.part = bad[i].part;
        s_m.batch.parts = bad[i].parts;
        s_m.batch.packet_count = bad[i].packet_count;
        s_m.batch.payload_len = bad[i].payload_len;
        if (bad[i].hop_count <= WIRE_HOPS_MAX)
            s_m.batch.hop_count = bad[i].hop_count;
        s_ref(&s_w, &s_m);
        if (bad[i].hop_count > WIRE_HOPS_MAX) {
            /* 16 hops written, the count says more: patch the count byte */
            size_t at = 4 + 1 + strlen(s_m.source) + 8 + 8 + 2 + 2 + 8 + 4 + 4;
            assert_int_equal(s_w.buf[at], WIRE_HOPS_MAX);
            s_w.buf[at] = bad[i].hop_count;
        }
        S_DECODE_IS(WIRE_ERR_RANGE);
    }
}

static void test_ack_range(void **state)
{
    (void)state;
    s_make_ack(&s_m, 1);
    s_m.ack.count = 0;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    s_make_ack(&s_m, WIRE_ACKS_MAX);
    s_m.ack.count = WIRE_ACKS_MAX + 1;
    s_ref(&s_w, &s_m); /* 1024 entries written: the count is judged first */
    S_DECODE_IS(WIRE_ERR_RANGE);
    s_u64(&s_w, 1); /* and with the 1025th entry there too */
    s_u16(&s_w, 0);
    S_DECODE_IS(WIRE_ERR_RANGE);
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_ACK);
    s_label(&s_w, "src");
    s_u64(&s_w, 1);
    s_u16(&s_w, 0xffff);
    S_DECODE_IS(WIRE_ERR_RANGE);
}

/* A count that disagrees with the elements that follow. */
static void test_count_vs_elements(void **state)
{
    (void)state;
    size_t at;
    s_make_ack(&s_m, 5);
    s_ref(&s_w, &s_m);
    at = 4 + 1 + strlen(s_m.source) + 8;
    assert_int_equal(s_w.buf[at + 1], 5);
    s_w.buf[at + 1] = 4; /* fewer than follow */
    S_DECODE_IS(WIRE_ERR_TRAILING);
    s_w.buf[at + 1] = 6; /* more than follow */
    S_DECODE_IS(WIRE_ERR_TRUNCATED);

    s_make_hello(&s_m, 3, false);
    s_ref(&s_w, &s_m);
    at = 4 + 1 + strlen(s_m.source) + 8 + 8 + 2 + strlen(s_m.hello.description);
    assert_int_equal(s_w.buf[at], 3);
    s_w.buf[at] = 2;
    S_DECODE_IS(WIRE_ERR_TRAILING);
    s_w.buf[at] = 4;
    S_DECODE_IS(WIRE_ERR_TRUNCATED);

    s_make_batch(&s_m, 3);
    s_ref(&s_w, &s_m);
    at = 4 + 1 + strlen(s_m.source) + 8 + 8 + 2 + 2 + 8 + 4 + 4;
    assert_int_equal(s_w.buf[at], 3);
    s_w.buf[at] = 2;
    S_DECODE_IS(WIRE_ERR_TRAILING);
    s_w.buf[at] = 4;
    S_DECODE_IS(WIRE_ERR_TRUNCATED);
}

/* ---- the encoder ----------------------------------------------------- */

static void s_encode_refused(const wire_msg_t *m, int line)
{
    size_t len = wire_encode(m, s_enc, S_BW_CAP);
    if (len != 0)
        fail_msg("line %d: wire_encode accepted an invalid message (%zu bytes)", line, len);
}

#define S_ENCODE_REFUSED(m) s_encode_refused((m), __LINE__)

static void test_encode_refuses_invalid(void **state)
{
    (void)state;
    /* header and common fields */
    static const int types[] = {0, WIRE_PACKETS, 9, WIRE_PACKETS_ZSTD, 12, 255};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        s_make_welcome(&s_m);
        s_m.type = (wire_type_t)types[i];
        S_ENCODE_REFUSED(&s_m);
    }
    for (int i = 0; i < S_SHAPES; i++) {
        s_make_shape(&s_m, i);
        s_m.epoch = 0;
        S_ENCODE_REFUSED(&s_m);
        s_make_shape(&s_m, i);
        s_m.source[0] = '\0';
        S_ENCODE_REFUSED(&s_m);
        s_make_shape(&s_m, i);
        s_m.source[1] = ' ';
        S_ENCODE_REFUSED(&s_m);
        s_make_shape(&s_m, i);
        memset(s_m.source, 'a', sizeof s_m.source); /* 65 bytes, unterminated */
        S_ENCODE_REFUSED(&s_m);
    }
    /* HELLO */
    s_make_hello(&s_m, 1, false);
    s_m.hello.iface_count = 0;
    S_ENCODE_REFUSED(&s_m);
    s_make_hello(&s_m, WIRE_IFACES_MAX, false);
    s_m.hello.iface_count = WIRE_IFACES_MAX + 1;
    S_ENCODE_REFUSED(&s_m);
    s_make_hello(&s_m, 2, false);
    s_m.hello.description[2] = '\n';
    S_ENCODE_REFUSED(&s_m);
    s_make_hello(&s_m, 2, false);
    memset(s_m.hello.description, 'x', sizeof s_m.hello.description); /* 1025, unterminated */
    S_ENCODE_REFUSED(&s_m);
    s_make_hello(&s_m, 2, false);
    s_m.hello.ifaces[1].description[0] = 0x7f;
    S_ENCODE_REFUSED(&s_m);
    static const char ifbad[] = {'/', '"', '\\', ' '};
    for (size_t i = 0; i < sizeof ifbad; i++) {
        s_make_hello(&s_m, 2, false);
        s_m.hello.ifaces[1].name[1] = ifbad[i];
        S_ENCODE_REFUSED(&s_m);
    }
    s_make_hello(&s_m, 2, false);
    s_m.hello.ifaces[1].name[0] = '\0';
    S_ENCODE_REFUSED(&s_m);
    s_make_hello(&s_m, 2, false);
    s_m.hello.ifaces[1].snaplen = 0;
    S_ENCODE_REFUSED(&s_m);
    s_make_hello(&s_m, 2, false);
    s_m.hello.ifaces[1].snaplen = WIRE_SNAPLEN_MAX + 1;
    S_ENCODE_REFUSED(&s_m);
    /* REFUSE */
    s_make_refuse(&s_m, 0);
    S_ENCODE_REFUSED(&s_m);
    s_make_refuse(&s_m, 4);
    S_ENCODE_REFUSED(&s_m);
    s_make_refuse(&s_m, 1);
    s_m.refuse.reason[0] = 0x1f;
    S_ENCODE_REFUSED(&s_m);
    /* BATCH */
    s_make_batch(&s_m, 1);
    s_m.batch.parts = 0;
    s_m.batch.part = 0;
    S_ENCODE_REFUSED(&s_m);
    s_make_batch(&s_m, 1);
    s_m.batch.part = s_m.batch.parts;
    S_ENCODE_REFUSED(&s_m);
    s_make_batch(&s_m, 1);
    s_m.batch.parts = WIRE_PARTS_MAX + 1;
    S_ENCODE_REFUSED(&s_m);
    s_make_batch(&s_m, 1);
    s_m.batch.packet_count = WIRE_PACKETS_MAX + 1;
    S_ENCODE_REFUSED(&s_m);
    s_make_batch(&s_m, 1);
    s_m.batch.payload_len = WIRE_FRAME_HDR - 1;
    S_ENCODE_REFUSED(&s_m);
    s_make_batch(&s_m, 1);
    s_m.batch.payload_len = WIRE_PAYLOAD_MAX + 1;
    S_ENCODE_REFUSED(&s_m);
    s_make_batch(&s_m, WIRE_HOPS_MAX);
    s_m.batch.hop_count = WIRE_HOPS_MAX + 1;
    S_ENCODE_REFUSED(&s_m);
    s_make_batch(&s_m, 2);
    s_m.batch.hops[1].node[0] = '/';
    S_ENCODE_REFUSED(&s_m);
    s_make_batch(&s_m, 2);
    s_m.batch.hops[1].node[0] = '\0';
    S_ENCODE_REFUSED(&s_m);
    /* ACK */
    s_make_ack(&s_m, 1);
    s_m.ack.count = 0;
    S_ENCODE_REFUSED(&s_m);
    s_make_ack(&s_m, WIRE_ACKS_MAX);
    s_m.ack.count = WIRE_ACKS_MAX + 1;
    S_ENCODE_REFUSED(&s_m);
}

/* Too small a buffer gives 0 and not one byte is written past `cap`. */
static void s_encode_short(const wire_msg_t *m, size_t step)
{
    size_t len = wire_encode(m, s_enc, S_BW_CAP);
    assert_true(len > 0);
    enum { CANARY = 64 };
    uint8_t *buf = malloc(len + CANARY);
    assert_non_null(buf);
    for (size_t cap = 0; cap < len; cap += (cap < 300 || len - cap < 300) ? 1 : step) {
        memset(buf, 0xa5, len + CANARY);
        assert_int_equal(wire_encode(m, buf, cap), 0);
        for (size_t i = cap; i < len + CANARY; i++)
            if (buf[i] != 0xa5)
                fail_msg("cap %zu of %zu: byte %zu written", cap, len, i);
        /* and into a heap block of exactly `cap` bytes, for the sanitizers */
        uint8_t *exact = malloc(cap ? cap : 1);
        assert_non_null(exact);
        assert_int_equal(wire_encode(m, exact, cap), 0);
        free(exact);
    }
    memset(buf, 0xa5, len + CANARY);
    assert_int_equal(wire_encode(m, buf, len), len);
    assert_memory_equal(buf, s_enc, len);
    for (size_t i = len; i < len + CANARY; i++)
        assert_int_equal(buf[i], 0xa5);
    free(buf);
}

static void test_encode_small_buffer(void **state)
{
    (void)state;
    for (int i = 0; i < S_SHAPES; i++) {
        s_make_shape(&s_m, i);
        s_encode_short(&s_m, 1);
    }
    s_make_ack(&s_m, WIRE_ACKS_MAX);
    s_encode_short(&s_m, 37);
    s_make_hello(&s_m, WIRE_IFACES_MAX, true);
    s_encode_short(&s_m, 509);
}

/* ---- payload frames -------------------------------------------------- */

typedef struct {
    uint64_t ts;
    uint16_t ifindex;
    uint32_t caplen, origlen;
} s_pkt_t;

static const s_pkt_t s_pkts[] = {
    {300, 0, 60, 60},
    {100, 2, 0, 1514},                      /* caplen 0 */
    {UINT64_MAX - 5, 63, 1, 65535},         /* the last interface there can be */
    {200, 1, WIRE_SNAPLEN_MAX, UINT32_MAX}, /* the largest record */
    {0, 0, 9000, 9000},                     /* ts 0 is the smallest */
    {250, 0, 1500, WIRE_SNAPLEN_MAX + 1},   /* origlen past the snaplen */
};
#define S_NPKTS (sizeof s_pkts / sizeof *s_pkts)

/* Packet data: deterministic, different per packet. */
static uint8_t *s_pkt_data(size_t i)
{
    static uint8_t data[WIRE_SNAPLEN_MAX];
    for (size_t k = 0; k < s_pkts[i].caplen; k++)
        data[k] = (uint8_t)(k * 31 + i * 17 + (k >> 8));
    return data;
}

static void test_payload_round_trip(void **state)
{
    (void)state;
    uint8_t *buf = malloc(S_BW_CAP);
    assert_non_null(buf);
    size_t off = 12345;
    assert_true(wire_packets_begin(buf, S_BW_CAP, &off));
    assert_int_equal(off, WIRE_FRAME_HDR);
    assert_memory_equal(buf, "\x54\x4d\x02\x08", 4);

    /* the same frame, written from §4 */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    for (size_t i = 0; i < S_NPKTS; i++) {
        wire_packet_t p = {
            .ts_ns = s_pkts[i].ts,
            .ifindex = s_pkts[i].ifindex,
            .caplen = s_pkts[i].caplen,
            .origlen = s_pkts[i].origlen,
            .data = s_pkt_data(i),
        };
        size_t before = off;
        assert_true(wire_packets_put(buf, S_BW_CAP, &off, &p));
        assert_int_equal(off, before + WIRE_PKT_HDR + p.caplen);
        s_u64(&s_w, p.ts_ns);
        s_u16(&s_w, p.ifindex);
        s_u16(&s_w, 0);
        s_u32(&s_w, p.caplen);
        s_u32(&s_w, p.origlen);
        s_raw(&s_w, p.data, p.caplen);
    }
    assert_int_equal(off, s_w.len);
    assert_memory_equal(buf, s_w.buf, off);

    uint64_t lo = 1, hi = 1;
    assert_int_equal(wire_packets_check(buf, off, S_NPKTS, WIRE_IFACES_MAX, &lo, &hi), WIRE_OK);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, UINT64_MAX - 5);
    assert_int_equal(wire_packets_check(buf, off, S_NPKTS, WIRE_IFACES_MAX, NULL, NULL), WIRE_OK);
    assert_int_equal(s_check_exact(buf, off, S_NPKTS, WIRE_IFACES_MAX, &lo, &hi), WIRE_OK);
    /* iface_count above 64 is held to 64: ifindex 63 is still the last */
    assert_int_equal(wire_packets_check(buf, off, S_NPKTS, 200, NULL, NULL), WIRE_OK);
    /* 63 interfaces: the record on interface 63 is out of range */
    assert_int_equal(wire_packets_check(buf, off, S_NPKTS, 63, NULL, NULL), WIRE_ERR_CAPLEN);

    size_t walk = 0, n = 0;
    wire_packet_t p;
    while (wire_packets_next(buf, off, &walk, &p)) {
        assert_true(n < S_NPKTS);
        assert_int_equal(p.ts_ns, s_pkts[n].ts);
        assert_int_equal(p.ifindex, s_pkts[n].ifindex);
        assert_int_equal(p.caplen, s_pkts[n].caplen);
        assert_int_equal(p.origlen, s_pkts[n].origlen);
        assert_true(p.data >= buf + WIRE_FRAME_HDR + WIRE_PKT_HDR);
        assert_true(p.data + p.caplen <= buf + off);
        assert_memory_equal(p.data, s_pkt_data(n), p.caplen);
        n++;
    }
    assert_int_equal(n, S_NPKTS);
    assert_int_equal(walk, off);
    assert_false(wire_packets_next(buf, off, &walk, &p)); /* stays at the end */
    free(buf);
}

/* wire_packet_at, the receiver's walk of a checked frame, reads every
 * record as wire_packets_next does and ends exactly at the frame's end. */
static void test_payload_walk_checked(void **state)
{
    (void)state;
    uint8_t *buf = malloc(S_BW_CAP);
    assert_non_null(buf);
    size_t off;
    assert_true(wire_packets_begin(buf, S_BW_CAP, &off));
    for (size_t i = 0; i < S_NPKTS; i++) {
        wire_packet_t p = {.ts_ns = s_pkts[i].ts,
                           .ifindex = s_pkts[i].ifindex,
                           .caplen = s_pkts[i].caplen,
                           .origlen = s_pkts[i].origlen,
                           .data = s_pkt_data(i)};
        assert_true(wire_packets_put(buf, S_BW_CAP, &off, &p));
    }
    assert_int_equal(wire_packets_check(buf, off, S_NPKTS, WIRE_IFACES_MAX, NULL, NULL), WIRE_OK);
    size_t at = WIRE_FRAME_HDR, walk = 0;
    for (size_t n = 0; n < S_NPKTS; n++) {
        wire_packet_t a, b;
        memset(&a, 0xa5, sizeof a);
        memset(&b, 0x5a, sizeof b);
        at = wire_packet_at(buf, at, &a);
        assert_true(wire_packets_next(buf, off, &walk, &b));
        assert_int_equal(at, walk);
        assert_int_equal(a.ts_ns, s_pkts[n].ts);
        assert_int_equal(a.ifindex, s_pkts[n].ifindex);
        assert_int_equal(a.caplen, s_pkts[n].caplen);
        assert_int_equal(a.origlen, s_pkts[n].origlen);
        assert_ptr_equal(a.data, b.data);
        assert_int_equal(b.ts_ns, a.ts_ns);
        assert_int_equal(b.caplen, a.caplen);
        assert_int_equal(b.origlen, a.origlen);
        assert_memory_equal(a.data, s_pkt_data(n), a.caplen);
    }
    assert_int_equal(at, off);
    /* wire_packets_next stops on a record whose data runs past the end */
    for (size_t cut = 1; cut < 24; cut++) {
        size_t w = 0, k = 0;
        wire_packet_t p;
        while (wire_packets_next(buf, off - cut, &w, &p))
            k++;
        assert_int_equal(k, S_NPKTS - 1);
    }
    free(buf);
}

static void test_payload_single(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t off;
    uint8_t data[4] = {1, 2, 3, 4};
    wire_packet_t p = {.ts_ns = 42, .ifindex = 0, .caplen = 4, .origlen = 4, .data = data};
    assert_true(wire_packets_begin(buf, sizeof buf, &off));
    assert_true(wire_packets_put(buf, sizeof buf, &off, &p));
    uint64_t lo = 0, hi = 0;
    assert_int_equal(wire_packets_check(buf, off, 1, 1, &lo, &hi), WIRE_OK);
    assert_int_equal(lo, 42);
    assert_int_equal(hi, 42);
    size_t walk = 0;
    wire_packet_t q;
    assert_true(wire_packets_next(buf, off, &walk, &q));
    assert_int_equal(q.ts_ns, 42);
    assert_memory_equal(q.data, data, 4);
    assert_false(wire_packets_next(buf, off, &walk, &q));
}

/* The builders write nothing and move nothing when the buffer is short. */
static void test_payload_builder_capacity(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t off;
    for (size_t cap = 0; cap < WIRE_FRAME_HDR; cap++) {
        memset(buf, 0xa5, sizeof buf);
        off = 77;
        assert_false(wire_packets_begin(buf, cap, &off));
        assert_int_equal(off, 77);
        for (size_t i = 0; i < sizeof buf; i++)
            assert_int_equal(buf[i], 0xa5);
    }
    uint8_t data[100];
    memset(data, 0x11, sizeof data);
    wire_packet_t p = {.ts_ns = 1, .ifindex = 0, .caplen = 100, .origlen = 100, .data = data};
    size_t need = WIRE_FRAME_HDR + WIRE_PKT_HDR + 100;
    for (size_t cap = WIRE_FRAME_HDR; cap < need; cap++) {
        memset(buf, 0xa5, sizeof buf);
        assert_true(wire_packets_begin(buf, cap, &off));
        assert_false(wire_packets_put(buf, cap, &off, &p));
        assert_int_equal(off, WIRE_FRAME_HDR);
        for (size_t i = WIRE_FRAME_HDR; i < sizeof buf; i++)
            assert_int_equal(buf[i], 0xa5);
    }
    memset(buf, 0xa5, sizeof buf);
    assert_true(wire_packets_begin(buf, need, &off));
    assert_true(wire_packets_put(buf, need, &off, &p));
    assert_int_equal(off, need);
    for (size_t i = need; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0xa5);
    /* a position already past the capacity */
    off = sizeof buf + 1;
    assert_false(wire_packets_put(buf, sizeof buf, &off, &p));
    assert_int_equal(off, sizeof buf + 1);
}

/* Three records, as §4 lays them out: ts 30, 10, 20 on interfaces 0..2. */
static void s_three(s_bw_t *w)
{
    s_reset(w);
    s_hdr(w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    s_rec(w, 30, 0, 0, 60, 60, 60);
    s_rec(w, 10, 1, 0, 0, 100, 0);
    s_rec(w, 20, 2, 0, 14, 1514, 14);
}

static void test_payload_valid_by_hand(void **state)
{
    (void)state;
    s_three(&s_w);
    uint64_t lo = 0, hi = 0;
    assert_int_equal(s_check_exact(s_w.buf, s_w.len, 3, 3, &lo, &hi), WIRE_OK);
    assert_int_equal(lo, 10);
    assert_int_equal(hi, 30);
    /* the header alone holds zero records */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    S_CHECK_IS(0, 1, WIRE_OK);
    /* caplen = origlen = 262144 is the largest record */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    s_rec(&s_w, 1, 0, 0, WIRE_SNAPLEN_MAX, WIRE_SNAPLEN_MAX, WIRE_SNAPLEN_MAX);
    S_CHECK_IS(1, 1, WIRE_OK);
}

static void test_payload_bad_header(void **state)
{
    (void)state;
    static const uint8_t types[] = {0, WIRE_HELLO, WIRE_BATCH, WIRE_END, 9, 255};
    for (size_t i = 0; i < sizeof types; i++) {
        s_three(&s_w);
        s_w.buf[3] = types[i];
        S_CHECK_IS(3, 3, WIRE_ERR_TYPE);
    }
    /* a BATCH command where the payload belongs */
    s_make_batch(&s_m, 0);
    s_ref(&s_w, &s_m);
    S_CHECK_IS(1, 3, WIRE_ERR_TYPE);
    s_three(&s_w);
    s_w.buf[0] = 0x4d;
    s_w.buf[1] = 0x54;
    S_CHECK_IS(3, 3, WIRE_ERR_SIGNATURE);
    s_three(&s_w);
    s_w.buf[2] = 1;
    S_CHECK_IS(3, 3, WIRE_ERR_VERSION);
    s_three(&s_w);
    s_w.buf[2] = 0;
    S_CHECK_IS(3, 3, WIRE_ERR_VERSION);
}

static void test_payload_count_mismatch(void **state)
{
    (void)state;
    s_three(&s_w);
    S_CHECK_IS(4, 3, WIRE_ERR_TRUNCATED); /* more records than present */
    S_CHECK_IS(1000000, 3, WIRE_ERR_TRUNCATED);
    S_CHECK_IS(UINT32_MAX, 3, WIRE_ERR_TRUNCATED);
    S_CHECK_IS(2, 3, WIRE_ERR_TRAILING); /* fewer */
    S_CHECK_IS(1, 3, WIRE_ERR_TRAILING);
    S_CHECK_IS(0, 3, WIRE_ERR_TRAILING);
}

static void test_payload_caplen(void **state)
{
    (void)state;
    /* caplen > origlen */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    s_rec(&s_w, 1, 0, 0, 61, 60, 61);
    S_CHECK_IS(1, 1, WIRE_ERR_CAPLEN);
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    s_rec(&s_w, 1, 0, 0, 60, 60, 60);
    s_rec(&s_w, 2, 0, 0, 1, 0, 1);
    S_CHECK_IS(2, 1, WIRE_ERR_CAPLEN);
    /* caplen > 262144, with its bytes present and with origlen larger */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    s_rec(&s_w, 1, 0, 0, WIRE_SNAPLEN_MAX + 1, WIRE_SNAPLEN_MAX + 1, WIRE_SNAPLEN_MAX + 1);
    S_CHECK_IS(1, 1, WIRE_ERR_CAPLEN);
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    s_rec(&s_w, 1, 0, 0, UINT32_MAX, UINT32_MAX, 0);
    S_CHECK_IS(1, 1, WIRE_ERR_CAPLEN);
}

static void test_payload_ifindex(void **state)
{
    (void)state;
    s_three(&s_w);
    S_CHECK_IS(3, 2, WIRE_ERR_CAPLEN); /* ifindex 2 of 2 interfaces */
    S_CHECK_IS(3, 0, WIRE_ERR_CAPLEN);
    static const uint16_t idx[] = {64, 65, 0xffff};
    for (size_t i = 0; i < sizeof idx / sizeof *idx; i++) {
        s_reset(&s_w);
        s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
        s_rec(&s_w, 1, idx[i], 0, 4, 4, 4);
        S_CHECK_IS(1, WIRE_IFACES_MAX, WIRE_ERR_CAPLEN);
        S_CHECK_IS(1, 255, WIRE_ERR_CAPLEN); /* never 64 or above (§4) */
    }
}

static void test_payload_flags(void **state)
{
    (void)state;
    static const uint16_t flags[] = {1, 0x8000, 0xffff};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        s_reset(&s_w);
        s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
        s_rec(&s_w, 1, 0, 0, 4, 4, 4);
        s_rec(&s_w, 2, 0, flags[i], 4, 4, 4);
        S_CHECK_IS(2, 1, WIRE_ERR_RANGE);
    }
}

static void test_payload_past_end(void **state)
{
    (void)state;
    /* caplen says 100, 50 bytes follow */
    s_reset(&s_w);
    s_hdr(&s_w, WIRE_SIGNATURE, WIRE_VERSION, WIRE_PACKETS);
    s_rec(&s_w, 1, 0, 0, 100, 100, 50);
    S_CHECK_IS(1, 1, WIRE_ERR_TRUNCATED);
    /* the last record's data one byte short */
    s_three(&s_w);
    s_w.len--;
    S_CHECK_IS(3, 3, WIRE_ERR_TRUNCATED);
    /* a record header cut in the middle */
    s_three(&s_w);
    s_rec(&s_w, 5, 0, 0, 0, 0, 0);
    s_w.len -= 7;
    S_CHECK_IS(4, 3, WIRE_ERR_TRUNCATED);
}

static void test_payload_trailing(void **state)
{
    (void)state;
    s_three(&s_w);
    s_u8(&s_w, 0);
    S_CHECK_IS(3, 3, WIRE_ERR_TRAILING);
    s_three(&s_w);
    s_raw(&s_w, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 19); /* not a whole record */
    S_CHECK_IS(3, 3, WIRE_ERR_TRAILING);
    s_three(&s_w);
    s_rec(&s_w, 5, 0, 0, 0, 0, 0); /* a whole record not counted */
    S_CHECK_IS(3, 3, WIRE_ERR_TRAILING);
}

static void test_payload_truncated_every_prefix(void **state)
{
    (void)state;
    s_three(&s_w);
    for (size_t n = 0; n < s_w.len; n++) {
        wire_err_t err = s_check_exact(s_w.buf, n, 3, 3, NULL, NULL);
        if (err != WIRE_ERR_TRUNCATED)
            fail_msg("payload prefix %zu of %zu: got %s", n, s_w.len, wire_err_name(err));
    }
    assert_int_equal(s_check_exact(s_w.buf, s_w.len, 3, 3, NULL, NULL), WIRE_OK);
}

/* ---- helpers --------------------------------------------------------- */

static void test_name_valid(void **state)
{
    (void)state;
    char name[WIRE_NAME_MAX + 2];
    assert_true(wire_name_valid("a"));
    assert_true(wire_name_valid("cap-1.eu_west"));
    assert_true(wire_name_valid("ABCXYZabcxyz0189._-"));
    s_fill_name(name, WIRE_NAME_MAX, 0);
    assert_true(wire_name_valid(name));
    s_fill_name(name, WIRE_NAME_MAX + 1, 0);
    assert_false(wire_name_valid(name));
    assert_false(wire_name_valid(""));
    static const char *const bad[] = {"a b", "a/b", "a:b", "a@b", "caf\xc3\xa9", "x\x7f",
                                      "\t",  "a\"", "a\\", "a+b", "~",           "a,b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (wire_name_valid(bad[i]))
            fail_msg("\"%s\" accepted as a name", bad[i]);
}

static void test_ifname_sanitize(void **state)
{
    (void)state;
    char out[WIRE_NAME_MAX + 1];
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"eth0", "eth0"},
        {"", "-"},
        {"my if/0", "my_if_0"},
        {"a\"b\\c", "a_b_c"},
        {"\t\n\x7f\x80\xff", "_____"},
        {"enp0s31f6:1@~!", "enp0s31f6:1@~!"},
        {"\\Device\\NPF_{4A}", "_Device_NPF_{4A}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memset(out, 0xa5, sizeof out);
        wire_ifname_sanitize(cases[i].in, out);
        assert_string_equal(out, cases[i].out);
    }
    /* longer than 64: cut to 64, still a valid ifname */
    char in[200];
    memset(in, 'x', sizeof in - 1);
    in[sizeof in - 1] = '\0';
    in[70] = '/';
    wire_ifname_sanitize(in, out);
    assert_int_equal(strlen(out), WIRE_NAME_MAX);
    /* whatever comes out is accepted on the wire */
    s_make_hello(&s_m, 1, false);
    memcpy(s_m.hello.ifaces[0].name, out, sizeof out);
    s_round_trip(&s_m);
    wire_ifname_sanitize("\x01 /\"\\\x7f", s_m.hello.ifaces[0].name);
    assert_string_equal(s_m.hello.ifaces[0].name, "______");
    s_round_trip(&s_m);
}

static void test_err_name(void **state)
{
    (void)state;
    static const char *const want[WIRE_ERR_COUNT_] = {
        [WIRE_OK] = "ok",
        [WIRE_ERR_TRUNCATED] = "truncated",
        [WIRE_ERR_TRAILING] = "trailing",
        [WIRE_ERR_SIGNATURE] = "signature",
        [WIRE_ERR_VERSION] = "version",
        [WIRE_ERR_TYPE] = "type",
        [WIRE_ERR_NAME] = "name",
        [WIRE_ERR_TEXT] = "text",
        [WIRE_ERR_RANGE] = "range",
        [WIRE_ERR_CAPLEN] = "caplen",
        [WIRE_ERR_FRAMING] = "framing",
        [WIRE_ERR_SOURCE] = "source",
        [WIRE_ERR_OVERSIZE] = "oversize",
        [WIRE_ERR_ZSTD] = "zstd",
    };
    for (int i = 0; i < WIRE_ERR_COUNT_; i++) {
        assert_non_null(want[i]);
        assert_string_equal(wire_err_name((wire_err_t)i), want[i]);
    }
    assert_string_equal(wire_err_name(WIRE_ERR_COUNT_), "unknown");
    assert_string_equal(wire_err_name((wire_err_t)1000), "unknown");
}

/* ---- STATS (§3.7) ----------------------------------------------------- */

/* STATS with `n` entries at interfaces 0, 2, 4 ...; kernel counters on
 * even entries. */
static void s_make_stats(wire_msg_t *m, unsigned n)
{
    s_base(m, WIRE_STATS);
    m->stats.count = (uint8_t)n;
    for (unsigned i = 0; i < n; i++) {
        wire_stats_t *e = &m->stats.entries[i];
        e->ifindex = (uint16_t)(2 * i < WIRE_IFACES_MAX ? 2 * i : i);
        e->flags = i % 2 ? 0 : WIRE_STATS_KERNEL;
        e->recv = i % 2 ? 0 : 0x1000000000ull + i;
        e->drop = i % 2 ? 0 : 17 + i;
        e->ifdrop = i % 2 ? 0 : 3;
        e->sent = 0xfedcba9876543210ull - i;
        e->dead = i;
    }
}

static void test_round_trip_stats(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= 32; n++) {
        s_make_stats(&s_m, n);
        s_round_trip(&s_m);
    }
    /* 64 entries, interfaces 0..63 */
    s_make_stats(&s_m, WIRE_IFACES_MAX);
    for (unsigned i = 0; i < WIRE_IFACES_MAX; i++)
        s_m.stats.entries[i].ifindex = (uint16_t)i;
    s_round_trip(&s_m);
    /* the bytes, by hand: one entry */
    s_make_stats(&s_m, 1);
    size_t len = wire_encode(&s_m, s_enc, S_BW_CAP);
    static const uint8_t want_tail[] = {
        0x01,                                           /* count */
        0x00, 0x00, 0x00, 0x01,                         /* ifindex 0, flags KERNEL */
        0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, /* recv */
        0,    0,    0,    0,    0,    0,    0,    17,   /* drop */
        0,    0,    0,    0,    0,    0,    0,    3,    /* ifdrop */
        0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, /* sent */
        0,    0,    0,    0,    0,    0,    0,    0,    /* dead */
    };
    assert_int_equal(len, 4 + 1 + 13 + 8 + sizeof want_tail);
    assert_int_equal(s_enc[3], 9);
    assert_memory_equal(s_enc + len - sizeof want_tail, want_tail, sizeof want_tail);
    s_all_prefixes_truncated(s_enc, len, 1);
}

/* ---- FEATURES (§3.8) and the compress tag (§3.1) ---------------------- */

static void test_features(void **state)
{
    (void)state;
    s_base(&s_m, WIRE_FEATURES);
    s_m.features.flags = WIRE_FEATURE_ZSTD;
    s_round_trip(&s_m);
    size_t len = wire_encode(&s_m, s_enc, S_BW_CAP);
    assert_int_equal(len, 4 + 1 + 13 + 8 + 4);
    assert_int_equal(s_enc[3], 11);
    static const uint8_t flags[] = {0, 0, 0, 1};
    assert_memory_equal(s_enc + len - 4, flags, 4);
    s_all_prefixes_truncated(s_enc, len, 1);
    /* bits not known yet are kept (a receiver ignores them) */
    s_m.features.flags = 0xffffffffu;
    s_round_trip(&s_m);
    /* a byte more */
    s_ref(&s_w, &s_m);
    s_w.buf[s_w.len++] = 0;
    S_DECODE_IS(WIRE_ERR_TRAILING);
    /* wire_msg_init leaves nothing of an earlier use */
    wire_msg_init(&s_m, WIRE_FEATURES, "a", 1);
    assert_int_equal(s_m.features.flags, 0);
}

/* ---- DEAD (§3.9) ------------------------------------------------------ */

/* DEAD with `n` ranges [10i, 10i + 1 + i % 5). */
static void s_make_dead(wire_msg_t *m, unsigned n)
{
    s_base(m, WIRE_DEAD);
    m->dead.count = (uint16_t)n;
    for (unsigned i = 0; i < n; i++)
        m->dead.ranges[i] = (wire_range_t){.lo = 10u * i, .hi = 10u * i + 1 + i % 5};
}

static void test_dead(void **state)
{
    (void)state;
    for (unsigned n = 1; n <= 40; n++) {
        s_make_dead(&s_m, n);
        s_round_trip(&s_m);
    }
    s_make_dead(&s_m, WIRE_DEAD_MAX);
    s_round_trip(&s_m);
    /* the widest range there is */
    s_make_dead(&s_m, 1);
    s_m.dead.ranges[0] = (wire_range_t){.lo = 0, .hi = UINT64_MAX};
    s_round_trip(&s_m);
    /* the bytes, by hand: two ranges */
    s_base(&s_m, WIRE_DEAD);
    s_m.dead.count = 2;
    s_m.dead.ranges[0] = (wire_range_t){.lo = 3, .hi = 5};
    s_m.dead.ranges[1] = (wire_range_t){.lo = 0x0102030405060708ull, .hi = UINT64_MAX};
    size_t len = wire_encode(&s_m, s_enc, S_BW_CAP);
    static const uint8_t want_tail[] = {
        0x00, 0x02,                                     /* count */
        0,    0,    0,    0,    0,    0,    0,    3,    /* lo */
        0,    0,    0,    0,    0,    0,    0,    5,    /* hi */
        1,    2,    3,    4,    5,    6,    7,    8,    /* lo */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* hi */
    };
    assert_int_equal(len, 4 + 1 + 13 + 8 + sizeof want_tail);
    assert_int_equal(s_enc[3], 12);
    assert_memory_equal(s_enc + len - sizeof want_tail, want_tail, sizeof want_tail);
    s_all_prefixes_truncated(s_enc, len, 1);
    /* wire_msg_init leaves nothing of an earlier use */
    wire_msg_init(&s_m, WIRE_DEAD, "a", 1);
    assert_int_equal(s_m.dead.count, 0);
}

static void test_dead_malformed(void **state)
{
    (void)state;
    size_t count_at = 4 + 1 + strlen("cap-1.eu_west") + 8;
    /* count 0, and above the maximum (refused before any range is read) */
    s_make_dead(&s_m, 1);
    s_m.dead.count = 0;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    S_ENCODE_REFUSED(&s_m);
    s_make_dead(&s_m, 1);
    s_ref(&s_w, &s_m);
    s_w.buf[count_at] = (WIRE_DEAD_MAX + 1) >> 8;
    s_w.buf[count_at + 1] = (WIRE_DEAD_MAX + 1) & 0xff;
    S_DECODE_IS(WIRE_ERR_RANGE);
    s_w.buf[count_at] = s_w.buf[count_at + 1] = 0xff;
    S_DECODE_IS(WIRE_ERR_RANGE);
    s_make_dead(&s_m, 1);
    s_m.dead.count = WIRE_DEAD_MAX + 1;
    S_ENCODE_REFUSED(&s_m);
    /* an empty range, a reversed one */
    s_make_dead(&s_m, 2);
    s_m.dead.ranges[1].hi = s_m.dead.ranges[1].lo;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    S_ENCODE_REFUSED(&s_m);
    s_m.dead.ranges[1].hi = s_m.dead.ranges[1].lo - 1;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    S_ENCODE_REFUSED(&s_m);
    /* not above the one before: overlapping, touching, equal, lower */
    static const uint64_t lows[] = {3, 4, 0};
    for (size_t i = 0; i < sizeof lows / sizeof *lows; i++) {
        s_base(&s_m, WIRE_DEAD);
        s_m.dead.count = 2;
        s_m.dead.ranges[0] = (wire_range_t){.lo = 2, .hi = 4};
        s_m.dead.ranges[1] = (wire_range_t){.lo = lows[i], .hi = 9};
        s_ref(&s_w, &s_m);
        S_DECODE_IS(WIRE_ERR_RANGE);
        S_ENCODE_REFUSED(&s_m);
    }
    s_base(&s_m, WIRE_DEAD);
    s_m.dead.count = 2;
    s_m.dead.ranges[0] = (wire_range_t){.lo = 2, .hi = 4};
    s_m.dead.ranges[1] = (wire_range_t){.lo = 2, .hi = 4};
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    /* apart by one is fine */
    s_m.dead.ranges[1] = (wire_range_t){.lo = 5, .hi = 6};
    s_round_trip(&s_m);
    /* a byte too many, a byte too few, fewer ranges than counted */
    s_make_dead(&s_m, 3);
    s_ref(&s_w, &s_m);
    s_u8(&s_w, 0);
    S_DECODE_IS(WIRE_ERR_TRAILING);
    s_ref(&s_w, &s_m);
    s_w.len--;
    S_DECODE_IS(WIRE_ERR_TRUNCATED);
    s_ref(&s_w, &s_m);
    s_w.buf[count_at + 1] = 4;
    S_DECODE_IS(WIRE_ERR_TRUNCATED);
    s_w.buf[count_at + 1] = 2;
    S_DECODE_IS(WIRE_ERR_TRAILING);
    /* epoch 0 */
    s_make_dead(&s_m, 1);
    s_m.epoch = 0;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    S_ENCODE_REFUSED(&s_m);
    /* version 1 */
    s_make_dead(&s_m, 1);
    s_ref(&s_w, &s_m);
    s_w.buf[2] = 1;
    S_DECODE_IS(WIRE_ERR_VERSION);
}

static void test_compress_tag(void **state)
{
    (void)state;
    char d[WIRE_TEXT_MAX + 1] = "edge host";
    assert_false(wire_compress_tag_take(d));
    assert_int_equal(wire_compress_tag_add(d), 0);
    assert_string_equal(d, "edge host; compress=zstd");
    assert_int_equal(wire_compress_tag_add(d), 0); /* once */
    assert_string_equal(d, "edge host; compress=zstd");
    assert_true(wire_compress_tag_take(d));
    assert_string_equal(d, "edge host");
    /* only at the end */
    snprintf(d, sizeof d, "; compress=zstd and more");
    assert_false(wire_compress_tag_take(d));
    /* no room: unchanged */
    memset(d, 'x', WIRE_TEXT_MAX - 3);
    d[WIRE_TEXT_MAX - 3] = '\0';
    assert_int_equal(wire_compress_tag_add(d), -ENOSPC);
    assert_int_equal(strlen(d), WIRE_TEXT_MAX - 3);
    d[0] = '\0';
    assert_int_equal(wire_compress_tag_add(d), 0);
    assert_string_equal(d, "; compress=zstd");
    assert_true(wire_compress_tag_take(d));
    assert_string_equal(d, "");
}

static void test_stats_malformed(void **state)
{
    (void)state;
    /* count 0 and above 64 */
    s_make_stats(&s_m, 1);
    s_m.stats.count = 0;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    S_ENCODE_REFUSED(&s_m);
    s_make_stats(&s_m, WIRE_IFACES_MAX);
    for (unsigned i = 0; i < WIRE_IFACES_MAX; i++)
        s_m.stats.entries[i].ifindex = (uint16_t)i;
    s_ref(&s_w, &s_m);
    s_w.buf[4 + 1 + strlen(s_m.source) + 8] = WIRE_IFACES_MAX + 1; /* count */
    S_DECODE_IS(WIRE_ERR_RANGE);                                   /* before any entry is read */
    s_w.buf[4 + 1 + strlen(s_m.source) + 8] = 255;
    S_DECODE_IS(WIRE_ERR_RANGE);
    /* ifindex 64 and above */
    s_make_stats(&s_m, 1);
    s_m.stats.entries[0].ifindex = WIRE_IFACES_MAX;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    S_ENCODE_REFUSED(&s_m);
    s_m.stats.entries[0].ifindex = 0xffff;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    /* not strictly increasing: equal, then lower */
    s_make_stats(&s_m, 3);
    s_m.stats.entries[2].ifindex = s_m.stats.entries[1].ifindex;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    S_ENCODE_REFUSED(&s_m);
    s_m.stats.entries[2].ifindex = 0;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    /* reserved flags */
    for (unsigned bit = 1; bit < 16; bit++) {
        s_make_stats(&s_m, 1);
        s_m.stats.entries[0].flags |= (uint16_t)(1u << bit);
        s_ref(&s_w, &s_m);
        S_DECODE_IS(WIRE_ERR_RANGE);
        S_ENCODE_REFUSED(&s_m);
    }
    /* without the kernel flag, kernel counters must be 0 */
    for (int which = 0; which < 3; which++) {
        s_make_stats(&s_m, 2); /* entry 1 has no kernel counters */
        wire_stats_t *e = &s_m.stats.entries[1];
        *(which == 0 ? &e->recv : which == 1 ? &e->drop : &e->ifdrop) = 1;
        s_ref(&s_w, &s_m);
        S_DECODE_IS(WIRE_ERR_RANGE);
        S_ENCODE_REFUSED(&s_m);
    }
    /* a byte too many, a byte too few */
    s_make_stats(&s_m, 2);
    s_ref(&s_w, &s_m);
    s_u8(&s_w, 0);
    S_DECODE_IS(WIRE_ERR_TRAILING);
    s_ref(&s_w, &s_m);
    s_w.len--;
    S_DECODE_IS(WIRE_ERR_TRUNCATED);
    /* the header of STATS with version 1 */
    s_ref(&s_w, &s_m);
    s_w.buf[2] = 1;
    S_DECODE_IS(WIRE_ERR_VERSION);
    /* epoch 0 and a bad source */
    s_make_stats(&s_m, 1);
    s_m.epoch = 0;
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_RANGE);
    s_make_stats(&s_m, 1);
    snprintf(s_m.source, sizeof s_m.source, "a b");
    s_ref(&s_w, &s_m);
    S_DECODE_IS(WIRE_ERR_NAME);
}

static void test_iface_tags(void **state)
{
    (void)state;
    char d[WIRE_TEXT_MAX + 1], plain[WIRE_TEXT_MAX + 1], os[WIRE_TEXT_MAX + 1],
        filter[WIRE_TEXT_MAX + 1];
    snprintf(d, sizeof d, "eth0 at edge1");
    assert_int_equal(wire_iface_tags_append(d, "Linux 6.1.0-18-amd64", "udp port 53\tor\ntcp"), 0);
    assert_string_equal(d,
                        "eth0 at edge1; if_os=Linux 6.1.0-18-amd64; if_filter=udp port 53 or tcp");
    wire_iface_tags_split(d, plain, os, filter);
    assert_string_equal(plain, "eth0 at edge1");
    assert_string_equal(os, "Linux 6.1.0-18-amd64");
    assert_string_equal(filter, "udp port 53 or tcp");
    /* none: the description as it is */
    wire_iface_tags_split("capture file x (filter: udp)", plain, os, filter);
    assert_string_equal(plain, "capture file x (filter: udp)");
    assert_string_equal(os, "");
    assert_string_equal(filter, "");
    /* OS alone, filter alone */
    snprintf(d, sizeof d, "x");
    assert_int_equal(wire_iface_tags_append(d, "Linux 6", NULL), 0);
    wire_iface_tags_split(d, plain, os, filter);
    assert_string_equal(plain, "x");
    assert_string_equal(os, "Linux 6");
    assert_string_equal(filter, "");
    snprintf(d, sizeof d, "x");
    assert_int_equal(wire_iface_tags_append(d, "", "icmp"), 0);
    assert_string_equal(d, "x; if_filter=icmp");
    wire_iface_tags_split(d, plain, os, filter);
    assert_string_equal(os, "");
    assert_string_equal(filter, "icmp");
    /* the result is valid text: a HELLO with it encodes */
    s_make_hello(&s_m, 1, false);
    snprintf(s_m.hello.ifaces[0].description, sizeof s_m.hello.ifaces[0].description, "d");
    assert_int_equal(wire_iface_tags_append(s_m.hello.ifaces[0].description, "L\x7f", "a\x01b"), 0);
    s_round_trip(&s_m);
    /* too long: the filter is left out, the OS kept */
    char big[WIRE_TEXT_MAX + 1];
    memset(big, 'f', WIRE_TEXT_MAX);
    big[WIRE_TEXT_MAX] = '\0';
    snprintf(d, sizeof d, "x");
    assert_int_equal(wire_iface_tags_append(d, "Linux 6", big), -ENOSPC);
    assert_string_equal(d, "x; if_os=Linux 6");
    /* exactly full fits */
    size_t room = WIRE_TEXT_MAX - strlen("x; if_filter=");
    big[room] = '\0';
    snprintf(d, sizeof d, "x");
    assert_int_equal(wire_iface_tags_append(d, NULL, big), 0);
    assert_int_equal(strlen(d), WIRE_TEXT_MAX);
    wire_iface_tags_split(d, plain, os, filter);
    assert_string_equal(filter, big);
}

static int s_setup(void **state)
{
    (void)state;
    s_w.buf = malloc(S_BW_CAP);
    s_w.cap = S_BW_CAP;
    s_enc = malloc(S_BW_CAP);
    s_enc2 = malloc(S_BW_CAP);
    return s_w.buf && s_enc && s_enc2 ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    free(s_w.buf);
    free(s_enc);
    free(s_enc2);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_hello),
        cmocka_unit_test(test_round_trip_welcome),
        cmocka_unit_test(test_round_trip_refuse),
        cmocka_unit_test(test_round_trip_batch),
        cmocka_unit_test(test_round_trip_ack),
        cmocka_unit_test(test_round_trip_progress),
        cmocka_unit_test(test_round_trip_stats),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_compress_tag),
        cmocka_unit_test(test_stats_malformed),
        cmocka_unit_test(test_dead),
        cmocka_unit_test(test_dead_malformed),
        cmocka_unit_test(test_iface_tags),
        cmocka_unit_test(test_golden_bytes),
        cmocka_unit_test(test_truncated_every_prefix),
        cmocka_unit_test(test_trailing_byte),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_epoch_zero),
        cmocka_unit_test(test_bad_name),
        cmocka_unit_test(test_bad_ifname),
        cmocka_unit_test(test_bad_text),
        cmocka_unit_test(test_hello_range),
        cmocka_unit_test(test_refuse_range),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_msg_init_clears),
        cmocka_unit_test(test_batch_range),
        cmocka_unit_test(test_ack_range),
        cmocka_unit_test(test_count_vs_elements),
        cmocka_unit_test(test_encode_refuses_invalid),
        cmocka_unit_test(test_encode_small_buffer),
        cmocka_unit_test(test_payload_round_trip),
        cmocka_unit_test(test_payload_walk_checked),
        cmocka_unit_test(test_payload_single),
        cmocka_unit_test(test_payload_builder_capacity),
        cmocka_unit_test(test_payload_valid_by_hand),
        cmocka_unit_test(test_payload_bad_header),
        cmocka_unit_test(test_payload_count_mismatch),
        cmocka_unit_test(test_payload_caplen),
        cmocka_unit_test(test_payload_ifindex),
        cmocka_unit_test(test_payload_flags),
        cmocka_unit_test(test_payload_past_end),
        cmocka_unit_test(test_payload_trailing),
        cmocka_unit_test(test_payload_truncated_every_prefix),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_ifname_sanitize),
        cmocka_unit_test(test_err_name),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
