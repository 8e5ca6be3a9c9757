/*
 * test_source — the libpcap source: capture files read back with the
 * timestamps they carry (classic pcap's unsigned 32-bit fields, in either
 * byte order, from a file or a pipe; pcapng), and the BPF program a live
 * capture runs so that it leaves out the agent's own connection to its next
 * hop (source_filter_build), tried with libpcap's own compiler and matcher.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "source.h"
#include "tmpdir.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NS 1000000000ull
#define MAGIC_US 0xa1b2c3d4u
#define MAGIC_NS 0xa1b23c4du
#define MAGIC_US_MODIFIED 0xa1b2cd34u /* Alexey Kuznetzov's, microseconds */

typedef struct {
    char dir[64];
    char path[128];
} fixture_t;

static int s_setup(void **state)
{
    static fixture_t fx;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/test_source.XXXXXX");
    assert_non_null(mkdtemp(fx.dir));
    snprintf(fx.path, sizeof fx.path, "%s/in.pcap", fx.dir);
    *state = &fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    tmpdir_remove(fx->dir);
    return 0;
}

/* ---- capture files written byte by byte ---- */

typedef struct {
    uint32_t sec, frac; /* the record's fields as the file holds them */
    uint64_t want_ns;   /* what source_next must return */
} rec_t;

static size_t s_put32(uint8_t *p, uint32_t v, bool big)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(big ? v >> (24 - 8 * i) : v >> (8 * i));
    return 4;
}

static size_t s_put16(uint8_t *p, uint16_t v, bool big)
{
    p[0] = (uint8_t)(big ? v >> 8 : v);
    p[1] = (uint8_t)(big ? v : v >> 8);
    return 2;
}

/* The 60-byte frame of record i: its index in every byte, so that packets
 * are told apart by content. */
static void s_frame(uint8_t *f, size_t i)
{
    memset(f, (int)(0x40 + i), 60);
}

/* A classic pcap file in `buf`: `magic` in the byte order `big`, Ethernet,
 * 60-byte frames (the modified format's records are 8 bytes longer).
 * Returns its length. */
static size_t s_pcap(uint8_t *buf, uint32_t magic, bool big, const rec_t *recs, size_t n)
{
    size_t o = 0;
    o += s_put32(buf + o, magic, big);
    o += s_put16(buf + o, 2, big);
    o += s_put16(buf + o, 4, big);
    o += s_put32(buf + o, 0, big);     /* thiszone */
    o += s_put32(buf + o, 0, big);     /* sigfigs */
    o += s_put32(buf + o, 65535, big); /* snaplen */
    o += s_put32(buf + o, 1, big);     /* LINKTYPE_ETHERNET */
    for (size_t i = 0; i < n; i++) {
        o += s_put32(buf + o, recs[i].sec, big);
        o += s_put32(buf + o, recs[i].frac, big);
        o += s_put32(buf + o, 60, big);
        o += s_put32(buf + o, 60, big);
        if (magic == MAGIC_US_MODIFIED) {
            memset(buf + o, 0, 8); /* ifindex, protocol, pkt_type, pad */
            o += 8;
        }
        s_frame(buf + o, i);
        o += 60;
    }
    return o;
}

static void s_write(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Reads `path` ("-": standard input) through the source and checks every
 * record's timestamp and bytes. */
static void s_expect(const char *path, const rec_t *recs, size_t n)
{
    char err[512] = "";
    source_t *s = source_file_open(path, 0, "", err, sizeof err);
    if (!s)
        fail_msg("%s", err);
    for (size_t i = 0; i < n; i++) {
        source_packet_t p;
        assert_int_equal(source_next(s, &p), SOURCE_PACKET);
        if (p.ts_ns != recs[i].want_ns)
            fail_msg("record %zu (%#x s, fraction %#x): ts_ns %llu, expected %llu", i, recs[i].sec,
                     recs[i].frac, (unsigned long long)p.ts_ns,
                     (unsigned long long)recs[i].want_ns);
        uint8_t frame[60];
        s_frame(frame, i);
        assert_int_equal(p.caplen, 60);
        assert_int_equal(p.origlen, 60);
        assert_memory_equal(p.data, frame, 60);
    }
    source_packet_t p;
    assert_int_equal(source_next(s, &p), SOURCE_EOF);
    source_close(&s);
    assert_null(s);
}

/* Nanosecond files: the fraction is an unsigned 32-bit count of
 * nanoseconds: 0x80000000 (tcpdump's timestamp_invalid_nano.pcap) is
 * 2.147483648 s after the record's second, not before it. */
static const rec_t s_nano[] = {
    {1000, 0x80000000u, 1000 * NS + 0x80000000ull},
    {1000, 123456789, 1000 * NS + 123456789},
    {1000, 0xffffffffu, 1000 * NS + 0xffffffffull},
    {1000, 999999999, 1000 * NS + 999999999},
    {1000, 1000000000u, 1001 * NS},
    {0x80000000u, 5, 0x80000000ull * NS + 5},
    {0xffffffffu, 0xffffffffu, 0xffffffffull * NS + 0xffffffffull},
};

/* Microsecond files: the fraction counts microseconds, whatever its size,
 * in 64 bits (field × 1000 ns). */
static const rec_t s_micro[] = {
    {1000, 0xffffffffu, 1000 * NS + 0xffffffffull * 1000},
    {1000, 1000000, 1001 * NS},
    {1000, 123456, 1000 * NS + 123456000},
    {1000, 0x80000000u, 1000 * NS + 0x80000000ull * 1000},
    {1000, 999999, 1000 * NS + 999999000},
    {0x80000000u, 7, 0x80000000ull * NS + 7000},
};

#define N(a) (sizeof(a) / sizeof *(a))

static void test_pcap_fractions(void **state)
{
    fixture_t *fx = *state;
    static uint8_t buf[4096];
    for (int big = 0; big <= 1; big++) {
        s_write(fx->path, buf, s_pcap(buf, MAGIC_NS, big, s_nano, N(s_nano)));
        s_expect(fx->path, s_nano, N(s_nano));
        s_write(fx->path, buf, s_pcap(buf, MAGIC_US, big, s_micro, N(s_micro)));
        s_expect(fx->path, s_micro, N(s_micro));
        s_write(fx->path, buf, s_pcap(buf, MAGIC_US_MODIFIED, big, s_micro, N(s_micro)));
        s_expect(fx->path, s_micro, N(s_micro));
    }
}

/* The same through standard input: a pipe, which cannot be rewound. */
static void s_expect_stdin(const uint8_t *buf, size_t len, const rec_t *recs, size_t n)
{
    int saved = dup(0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_true(len < 65536); /* the pipe's buffer holds it all */
    assert_int_equal(write(fds[1], buf, len), (ssize_t)len);
    close(fds[1]);
    assert_int_equal(dup2(fds[0], 0), 0);
    close(fds[0]);
    s_expect("-", recs, n);
    assert_int_equal(dup2(saved, 0), 0);
    close(saved);
}

static void test_pcap_fractions_stdin(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    s_expect_stdin(buf, s_pcap(buf, MAGIC_NS, false, s_nano, N(s_nano)), s_nano, N(s_nano));
    s_expect_stdin(buf, s_pcap(buf, MAGIC_US, true, s_micro, N(s_micro)), s_micro, N(s_micro));
}

/* pcapng: 64-bit timestamps, libpcap's own arithmetic (µs by default, or an
 * interface's if_tsresol) is right and stays as it is. */
static size_t s_pcapng(uint8_t *buf, int tsresol, const uint64_t *ts, size_t n)
{
    size_t o = 0;
    /* SHB */
    o += s_put32(buf + o, 0x0a0d0d0a, false);
    o += s_put32(buf + o, 28, false);
    o += s_put32(buf + o, 0x1a2b3c4d, false);
    o += s_put16(buf + o, 1, false);
    o += s_put16(buf + o, 0, false);
    o += s_put32(buf + o, 0xffffffffu, false);
    o += s_put32(buf + o, 0xffffffffu, false);
    o += s_put32(buf + o, 28, false);
    /* IDB, with if_tsresol when asked */
    uint32_t idb_len = tsresol >= 0 ? 32 : 20;
    o += s_put32(buf + o, 1, false);
    o += s_put32(buf + o, idb_len, false);
    o += s_put16(buf + o, 1, false); /* Ethernet */
    o += s_put16(buf + o, 0, false);
    o += s_put32(buf + o, 65535, false);
    if (tsresol >= 0) {
        o += s_put16(buf + o, 9, false);
        o += s_put16(buf + o, 1, false);
        buf[o++] = (uint8_t)tsresol;
        memset(buf + o, 0, 3);
        o += 3;
        o += s_put32(buf + o, 0, false); /* opt_endofopt */
    }
    o += s_put32(buf + o, idb_len, false);
    for (size_t i = 0; i < n; i++) {
        o += s_put32(buf + o, 6, false);
        o += s_put32(buf + o, 92, false);
        o += s_put32(buf + o, 0, false);
        o += s_put32(buf + o, (uint32_t)(ts[i] >> 32), false);
        o += s_put32(buf + o, (uint32_t)ts[i], false);
        o += s_put32(buf + o, 60, false);
        o += s_put32(buf + o, 60, false);
        s_frame(buf + o, i);
        o += 60;
        o += s_put32(buf + o, 92, false);
    }
    return o;
}

static void test_pcapng_timestamps(void **state)
{
    fixture_t *fx = *state;
    static uint8_t buf[4096];
    /* in microseconds: 4294.967295 s, then 1000.5 s */
    uint64_t us[] = {0xffffffffull, 1000500000ull};
    rec_t want_us[] = {{0, 0, 0xffffffffull * 1000}, {0, 0, 1000500000ull * 1000}};
    s_write(fx->path, buf, s_pcapng(buf, -1, us, 2));
    s_expect(fx->path, want_us, 2);
    /* in nanoseconds, beyond 2^32 s and with a fraction above 2^31 */
    uint64_t ns[] = {5000000000ull * NS + 147483648, 1002 * NS + 999999999};
    rec_t want_ns[] = {{0, 0, ns[0]}, {0, 0, ns[1]}};
    s_write(fx->path, buf, s_pcapng(buf, 9, ns, 2));
    s_expect(fx->path, want_ns, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pcap_fractions, s_setup, s_teardown),
        cmocka_unit_test(test_pcap_fractions_stdin),
        cmocka_unit_test_setup_teardown(test_pcapng_timestamps, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
