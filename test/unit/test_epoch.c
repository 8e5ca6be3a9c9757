/*
 * test_epoch — epochs nobody can guess (shared DESIGN "Delivery"): the
 * capture agent's epoch_new draws 64 random bits, not a clock reading, a
 * new value every time, never 0, and refuses to make one up when the
 * kernel's random source fails (getrandom is replaced through the linker
 * to fail, be interrupted, read short or give zeros). And the collector
 * gives away nothing about a guess: its answer to a HEARTBEAT, BATCH or
 * END for an unknown (source, epoch) is the same, byte for byte, whether
 * the source id is there with another epoch or not at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "clock.h"
#include "collector.h"
#include "epoch.h"
#include "metrics.h"
#include "output.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* ---- getrandom, through the linker (-Wl,--wrap=getrandom) ---------------------- */

typedef enum {
    S_REAL,  /* the kernel's */
    S_FAIL,  /* -1 with s_errno */
    S_EINTR, /* -1 EINTR s_count times, then the kernel's */
    S_SHORT, /* at most 3 bytes a call, from the kernel */
    S_ZEROS, /* zeros s_count times, then the kernel's */
} s_mode_t;

static s_mode_t s_mode;
static int s_errno, s_count, s_calls;

ssize_t __real_getrandom(void *buf, size_t len, unsigned flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags);

ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags)
{
    s_calls++;
    switch (s_mode) {
    case S_FAIL:
        errno = s_errno;
        return -1;
    case S_EINTR:
        if (s_count > 0) {
            s_count--;
            errno = EINTR;
            return -1;
        }
        break;
    case S_SHORT:
        return __real_getrandom(buf, len < 3 ? len : 3, flags);
    case S_ZEROS:
        if (s_count > 0) {
            s_count--;
            memset(buf, 0, len);
            return (ssize_t)len;
        }
        break;
    case S_REAL:
        break;
    }
    return __real_getrandom(buf, len, flags);
}

static int s_reset(void **state)
{
    (void)state;
    s_mode = S_REAL;
    s_errno = s_count = s_calls = 0;
    return 0;
}

/* ---- epoch_new ------------------------------------------------------------------ */

#define S_HOUR_NS (3600ull * 1000000000ull)

/* Not a clock reading: more than an hour away from the time now, in
 * nanoseconds (where clock_wall_ns() epochs were). */
static void s_not_time_like(uint64_t e)
{
    uint64_t now = clock_wall_ns();
    uint64_t d = e > now ? e - now : now - e;
    if (d <= S_HOUR_NS)
        fail_msg("epoch %" PRIu64 " is within an hour of the time now (%" PRIu64 " ns)", e, now);
}

/* Two epochs in a row differ, neither is 0 or near the time now. */
static void test_epoch_two_in_a_row(void **state)
{
    (void)state;
    char err[256];
    uint64_t a = 0, b = 0;
    assert_int_equal(epoch_new(&a, err, sizeof err), 0);
    assert_int_equal(epoch_new(&b, err, sizeof err), 0);
    assert_true(a != 0 && b != 0);
    assert_true(a != b);
    s_not_time_like(a);
    s_not_time_like(b);
}

/* Many draws: all different, and every one of the 64 bits is seen both
 * set and clear (a 32-bit value widened, or a counter, is not). */
static void test_epoch_all_bits_random(void **state)
{
    (void)state;
    enum { N = 2000 };
    static uint64_t seen[N];
    uint64_t ones = 0, zeros = 0;
    char err[256];
    for (int i = 0; i < N; i++) {
        assert_int_equal(epoch_new(&seen[i], err, sizeof err), 0);
        s_not_time_like(seen[i]);
        ones |= seen[i];
        zeros |= ~seen[i];
        for (int j = 0; j < i; j++)
            if (seen[j] == seen[i])
                fail_msg("draw %d repeats draw %d: %" PRIu64, i, j, seen[i]);
    }
    assert_true(ones == UINT64_MAX);
    assert_true(zeros == UINT64_MAX);
}

/* getrandom fails: no epoch is made up; the error says what failed. */
static void test_epoch_getrandom_fails(void **state)
{
    (void)state;
    static const int errs[] = {ENOSYS, EIO, EAGAIN, EFAULT};
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
        s_mode = S_FAIL;
        s_errno = errs[i];
        char err[256] = "";
        uint64_t e = 42;
        assert_int_equal(epoch_new(&e, err, sizeof err), -errs[i]);
        assert_int_equal(e, 42); /* untouched */
        assert_non_null(strstr(err, "getrandom"));
        assert_non_null(strstr(err, strerror(errs[i])));
        assert_non_null(strstr(err, "epoch"));
    }
}

/* A signal (EINTR) is not a failure; short reads are completed. */
static void test_epoch_interrupted_and_short(void **state)
{
    (void)state;
    char err[256];
    uint64_t a = 0, b = 0;
    s_mode = S_EINTR;
    s_count = 3;
    assert_int_equal(epoch_new(&a, err, sizeof err), 0);
    assert_int_equal(s_calls, 4);
    assert_true(a != 0);
    s_mode = S_SHORT;
    s_calls = 0;
    assert_int_equal(epoch_new(&b, err, sizeof err), 0);
    assert_int_equal(s_calls, 3); /* 3 + 3 + 2 bytes */
    assert_true(b != 0 && b != a);
    s_not_time_like(b);
}

/* 0 is never an epoch (the wire's rule): drawn again; a source that
 * keeps giving zeros is broken. */
static void test_epoch_never_zero(void **state)
{
    (void)state;
    char err[256];
    uint64_t e = 0;
    s_mode = S_ZEROS;
    s_count = 2;
    assert_int_equal(epoch_new(&e, err, sizeof err), 0);
    assert_true(e != 0);
    assert_int_equal(s_calls, 3);
    s_count = 1000;
    e = 7;
    assert_int_equal(epoch_new(&e, err, sizeof err), -EIO);
    assert_int_equal(e, 7);
    assert_non_null(strstr(err, "getrandom"));
}

/* ---- the collector's answer to a guessed epoch ------------------------------ */

typedef struct {
    char path[64];
    output_t *out;
    metrics_t *metrics;
    collector_t *c;
    uint8_t reply[WIRE_COMMAND_MAX];
    size_t reply_len;
    int replies;
} s_coll_t;

static int s_on_reply(void *ctx, const route_t *route, const uint8_t *cmd, size_t len)
{
    s_coll_t *c = ctx;
    assert_int_equal(route->count, 1);
    assert_true(len <= sizeof c->reply);
    memcpy(c->reply, cmd, len);
    c->reply_len = len;
    c->replies++;
    return 0;
}

static void s_coll_open(s_coll_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "/tmp/test_epoch.XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    close(fd);
    char err[256];
    output_opts_t oo = {.path = c->path,
                        .format = PCAPNG_FORMAT_PCAPNG,
                        .policy = OUTPUT_LINKTYPE_FIRST,
                        .bufsize = 1 << 20};
    c->out = output_open(&oo, err, sizeof err);
    assert_non_null(c->out);
    c->metrics = metrics_new("collect", "test");
    collector_opts_t opts = {.merge_window_ms = 1000,
                             .source_idle_ms = 10000,
                             .merge_max_bytes = 64 << 20,
                             .max_sources = 16};
    c->c = collector_new(c->out, &opts, c->metrics, s_on_reply, c);
    assert_non_null(c->c);
}

static void s_coll_close(s_coll_t *c)
{
    collector_destroy(&c->c);
    output_close(&c->out);
    metrics_destroy(&c->metrics);
    unlink(c->path);
}

/* Hands `m` (and a payload) to the collector as the ROUTER would from
 * peer "p1"; returns the number of replies it made. */
static int s_send(s_coll_t *c, const wire_msg_t *m, const uint8_t *payload, size_t plen)
{
    uint8_t cmd[WIRE_COMMAND_MAX];
    size_t len = wire_encode(m, cmd, sizeof cmd);
    assert_true(len > 0);
    frames_t in;
    memset(&in, 0, sizeof in);
    zmq_msg_init_size(&in.part[0], 2);
    memcpy(zmq_msg_data(&in.part[0]), "p1", 2);
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
    int before = c->replies;
    collector_on_message(c->c, &in, 0);
    frames_close(&in);
    return c->replies - before;
}

static void s_join(s_coll_t *c, const char *source, uint64_t epoch)
{
    wire_msg_t m;
    wire_msg_init(&m, WIRE_HELLO, source, epoch);
    snprintf(m.hello.description, sizeof m.hello.description, "test");
    m.hello.iface_count = 1;
    m.hello.ifaces[0].linktype = 1;
    m.hello.ifaces[0].snaplen = 65535;
    snprintf(m.hello.ifaces[0].name, sizeof m.hello.ifaces[0].name, "eth0");
    assert_int_equal(s_send(c, &m, NULL, 0), 1);
    wire_msg_t w;
    assert_int_equal(wire_decode(c->reply, c->reply_len, &w), WIRE_OK);
    assert_int_equal(w.type, WIRE_WELCOME);
}

/* The guess, as each kind of message: the reply it gets. */
static void s_guess(s_coll_t *c, wire_type_t type, uint8_t *reply, size_t *len)
{
    wire_msg_t m;
    wire_msg_init(&m, type, "edge", 0x0123456789abcdefull);
    uint8_t payload[256];
    size_t plen = 0;
    if (type == WIRE_BATCH) {
        assert_true(wire_packets_begin(payload, sizeof payload, &plen));
        uint8_t data[60];
        memset(data, 0xab, sizeof data);
        wire_packet_t p = {.ts_ns = 1000, .caplen = 60, .origlen = 60, .data = data};
        assert_true(wire_packets_put(payload, sizeof payload, &plen, &p));
        m.batch.seq = 3;
        m.batch.parts = 1;
        m.batch.packet_count = 1;
        m.batch.payload_len = (uint32_t)plen;
        m.batch.watermark = 1000;
    } else {
        m.progress.watermark = 5000;
        m.progress.next_seq = 4;
    }
    int n = s_send(c, &m, type == WIRE_BATCH ? payload : NULL, plen);
    assert_int_equal(n, 1);
    memcpy(reply, c->reply, c->reply_len);
    *len = c->reply_len;
}

/* The same answer, byte for byte, to a guessed epoch whether the source id
 * is there (with its real epoch) or unknown; and nothing is written. */
static void test_epoch_collector_answer_same(void **state)
{
    (void)state;
    s_coll_t known, none;
    s_coll_open(&known);
    s_coll_open(&none);
    s_join(&known, "edge", 0x1111222233334444ull);
    static const wire_type_t types[] = {WIRE_HEARTBEAT, WIRE_BATCH, WIRE_END};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        uint8_t a[WIRE_COMMAND_MAX], b[WIRE_COMMAND_MAX];
        size_t alen, blen;
        s_guess(&known, types[i], a, &alen);
        s_guess(&none, types[i], b, &blen);
        assert_int_equal(alen, blen);
        assert_memory_equal(a, b, alen);
        wire_msg_t r;
        assert_int_equal(wire_decode(a, alen, &r), WIRE_OK);
        assert_int_equal(r.type, WIRE_REFUSE);
        assert_int_equal(r.refuse.code, WIRE_REFUSE_UNKNOWN_SOURCE);
        assert_string_equal(r.source, "edge");
        assert_true(r.epoch == 0x0123456789abcdefull);
    }
    assert_int_equal(collector_emit(known.c, 0, true), 0);
    assert_int_equal(collector_emit(none.c, 0, true), 0);
    assert_int_equal(collector_queued_packets(known.c), 0);
    s_coll_close(&known);
    s_coll_close(&none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_epoch_two_in_a_row, s_reset),
        cmocka_unit_test_setup(test_epoch_all_bits_random, s_reset),
        cmocka_unit_test_setup(test_epoch_getrandom_fails, s_reset),
        cmocka_unit_test_setup(test_epoch_interrupted_and_short, s_reset),
        cmocka_unit_test_setup(test_epoch_never_zero, s_reset),
        cmocka_unit_test_setup(test_epoch_collector_answer_same, s_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
