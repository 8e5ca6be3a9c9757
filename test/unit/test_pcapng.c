/*
 * test_pcapng — the output writer, read back by libpcap (what tcpdump
 * uses) and by hand against the pcapng specification's block layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdbool.h>

#include "pcapng.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int fd;
    char path[64];
} s_file_t;

static void s_file_open(s_file_t *f)
{
    snprintf(f->path, sizeof f->path, "/tmp/test_pcapng.XXXXXX");
    f->fd = mkstemp(f->path);
    assert_true(f->fd >= 0);
}

static void s_file_close(s_file_t *f)
{
    close(f->fd);
    unlink(f->path);
}

static void s_fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7);
}

static pcap_t *s_read(const char *path)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p)
        fail_msg("libpcap cannot read %s: %s", path, err);
    return p;
}

static void s_expect_packet(pcap_t *p, uint64_t ts, uint32_t caplen, uint32_t origlen,
                            unsigned seed)
{
    struct pcap_pkthdr *h;
    const u_char *data;
    assert_int_equal(pcap_next_ex(p, &h, &data), 1);
    assert_int_equal((uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec, ts);
    assert_int_equal(h->caplen, caplen);
    assert_int_equal(h->len, origlen);
    uint8_t want[9100];
    s_fill(want, caplen, seed);
    assert_memory_equal(data, want, caplen);
}

/* Packets of every padding class and a jumbo frame come back from libpcap
 * byte for byte, with nanosecond timestamps and both lengths. */
static void test_pcapng_read_back_by_libpcap(void **state)
{
    (void)state;
    s_file_t f;
    s_file_open(&f);
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, 262144, "test", 4096, pcapng_sink_fd, &f.fd);
    assert_non_null(w);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "edge1/eth0", "first"), 0);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "edge2/eth0", "second"), 1);
    static const uint32_t sizes[] = {60, 61, 62, 63, 64, 1514, 9018, 1};
    uint8_t buf[9100];
    for (unsigned i = 0; i < 8; i++) {
        s_fill(buf, sizes[i], i);
        uint64_t ts = 1700000000123456789ull + i * 1000001ull;
        assert_int_equal(
            pcapng_writer_packet(w, i % 2, ts, sizes[i], sizes[i] + (i == 7 ? 99 : 0), buf, NULL),
            0);
    }
    assert_int_equal(pcapng_writer_flush(w), 0);
    assert_int_equal(pcapng_writer_buffered(w), 0);
    pcapng_writer_destroy(&w);
    assert_null(w);

    pcap_t *p = s_read(f.path);
    assert_int_equal(pcap_datalink(p), 1);
    assert_int_equal(pcap_snapshot(p), 262144);
    for (unsigned i = 0; i < 8; i++)
        s_expect_packet(p, 1700000000123456789ull + i * 1000001ull, sizes[i],
                        sizes[i] + (i == 7 ? 99 : 0), i);
    struct pcap_pkthdr *h;
    const u_char *data;
    assert_int_equal(pcap_next_ex(p, &h, &data), PCAP_ERROR_BREAK);
    pcap_close(p);
    s_file_close(&f);
}

static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t s_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* The blocks as the specification lays them out: SHB, IDB (snaplen,
 * if_name, if_description, if_tsresol = 9), EPB (ts high/low, lengths,
 * padding, comment), trailing lengths equal to leading ones. */
static void test_pcapng_block_layout(void **state)
{
    (void)state;
    s_file_t f;
    s_file_open(&f);
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, 262144, "tapmesh-test", 0, pcapng_sink_fd, &f.fd);
    assert_int_equal(pcapng_writer_add_interface(w, 101, "src/if0", "descr"), 0);
    uint8_t pkt[5] = {1, 2, 3, 4, 5};
    uint64_t ts = 0x0102030405060708ull;
    assert_int_equal(pcapng_writer_packet(w, 0, ts, 5, 7, pkt, "hi"), 0);
    assert_int_equal(pcapng_writer_flush(w), 0);
    uint64_t written = pcapng_writer_file_bytes(w);
    pcapng_writer_destroy(&w);

    uint8_t b[1024];
    ssize_t n = pread(f.fd, b, sizeof b, 0);
    assert_int_equal(n, (ssize_t)written);
    size_t off = 0;
    /* SHB */
    assert_int_equal(s_le32(b), 0x0A0D0D0A);
    uint32_t len = s_le32(b + 4);
    assert_int_equal(len % 4, 0);
    assert_int_equal(s_le32(b + 8), 0x1A2B3C4D);
    assert_int_equal(s_le16(b + 12), 1);
    assert_int_equal(s_le16(b + 14), 0);
    assert_int_equal(s_le16(b + 24), 4); /* shb_userappl */
    assert_int_equal(s_le16(b + 26), 12);
    assert_memory_equal(b + 28, "tapmesh-test", 12);
    assert_int_equal(s_le32(b + len - 4), len);
    off += len;
    /* IDB */
    assert_int_equal(s_le32(b + off), 1);
    len = s_le32(b + off + 4);
    assert_int_equal(s_le16(b + off + 8), 101);
    assert_int_equal(s_le32(b + off + 12), 262144);
    size_t o = off + 16;
    int seen_name = 0, seen_descr = 0, seen_tsresol = 0;
    while (s_le16(b + o) != 0) {
        uint16_t code = s_le16(b + o), olen = s_le16(b + o + 2);
        if (code == 2)
            seen_name = olen == 7 && memcmp(b + o + 4, "src/if0", 7) == 0;
        if (code == 3)
            seen_descr = olen == 5 && memcmp(b + o + 4, "descr", 5) == 0;
        if (code == 9)
            seen_tsresol = olen == 1 && b[o + 4] == 9;
        o += 4 + ((olen + 3u) & ~3u);
    }
    assert_true(seen_name && seen_descr && seen_tsresol);
    assert_int_equal(s_le32(b + off + len - 4), len);
    off += len;
    /* EPB */
    assert_int_equal(s_le32(b + off), 6);
    len = s_le32(b + off + 4);
    assert_int_equal(len, 32 + 8 + 8 + 4); /* data 5 → 8, comment "hi" → 4+4, end 4 */
    assert_int_equal(s_le32(b + off + 8), 0);
    assert_int_equal(s_le32(b + off + 12), 0x01020304);
    assert_int_equal(s_le32(b + off + 16), 0x05060708);
    assert_int_equal(s_le32(b + off + 20), 5);
    assert_int_equal(s_le32(b + off + 24), 7);
    assert_memory_equal(b + off + 28, pkt, 5);
    assert_int_equal(b[off + 33] | b[off + 34] | b[off + 35], 0); /* padding */
    assert_int_equal(s_le16(b + off + 36), 1);                    /* opt_comment */
    assert_int_equal(s_le16(b + off + 38), 2);
    assert_memory_equal(b + off + 40, "hi", 2);
    assert_int_equal(s_le32(b + off + len - 4), len);
    off += len;
    assert_int_equal(off, (size_t)n);
    s_file_close(&f);
}

/* Classic pcap: nanosecond magic, one link type; a second link type is
 * refused, the same one accepted. */
static void test_pcap_format(void **state)
{
    (void)state;
    s_file_t f;
    s_file_open(&f);
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAP, 262144, NULL, 0, pcapng_sink_fd, &f.fd);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "a/eth0", ""), 0);
    assert_int_equal(pcapng_writer_add_interface(w, 276, "b/any", ""), -EPROTOTYPE);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "c/eth1", ""), 1);
    uint8_t buf[2000];
    s_fill(buf, 1514, 3);
    assert_int_equal(pcapng_writer_packet(w, 1, 1700000000000000001ull, 1514, 1514, buf, NULL), 0);
    s_fill(buf, 60, 4);
    assert_int_equal(pcapng_writer_packet(w, 0, 1700000000999999999ull, 60, 64, buf, NULL), 0);
    assert_int_equal(pcapng_writer_flush(w), 0);
    pcapng_writer_destroy(&w);
    uint8_t magic[4];
    assert_int_equal(pread(f.fd, magic, 4, 0), 4);
    assert_int_equal(s_le32(magic), 0xa1b23c4d);
    pcap_t *p = s_read(f.path);
    assert_int_equal(pcap_datalink(p), 1);
    s_expect_packet(p, 1700000000000000001ull, 1514, 1514, 3);
    s_expect_packet(p, 1700000000999999999ull, 60, 64, 4);
    pcap_close(p);
    s_file_close(&f);
}

/* After a restart on a new file, the new file starts with the SHB and every
 * IDB again, with the same ids, and libpcap reads it alone. */
static void test_pcapng_restart_new_file(void **state)
{
    (void)state;
    s_file_t a, b;
    s_file_open(&a);
    s_file_open(&b);
    int fd = a.fd;
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, 262144, NULL, 0, pcapng_sink_fd, &fd);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "x/0", ""), 0);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "x/1", ""), 1);
    uint8_t buf[100];
    s_fill(buf, 100, 9);
    assert_int_equal(pcapng_writer_packet(w, 1, 5, 100, 100, buf, NULL), 0);
    assert_int_equal(pcapng_writer_flush(w), 0);
    assert_true(pcapng_writer_file_bytes(w) > 0);
    fd = b.fd;
    assert_int_equal(pcapng_writer_restart(w), 0);
    assert_int_equal(pcapng_writer_file_bytes(w), 0);
    s_fill(buf, 100, 10);
    assert_int_equal(pcapng_writer_packet(w, 1, 6, 100, 100, buf, NULL), 0);
    assert_int_equal(pcapng_writer_flush(w), 0);
    pcapng_writer_destroy(&w);
    pcap_t *p = s_read(a.path);
    s_expect_packet(p, 5, 100, 100, 9);
    pcap_close(p);
    p = s_read(b.path);
    s_expect_packet(p, 6, 100, 100, 10);
    pcap_close(p);
    s_file_close(&a);
    s_file_close(&b);
}

/* A sink that fails after `budget` calls, recording every chunk's end. */
typedef struct {
    int calls, budget, error;
    size_t total;
    uint8_t data[1 << 20];
} s_sink_t;

static int s_failing_sink(void *ctx, const void *buf, size_t len)
{
    s_sink_t *s = ctx;
    if (s->calls++ >= s->budget)
        return s->error;
    assert_true(s->total + len <= sizeof s->data);
    memcpy(s->data + s->total, buf, len);
    s->total += len;
    return 0;
}

/* A sink error is returned and latched: no later call succeeds, nothing
 * more is handed over. Chunks end on block boundaries. */
static void test_pcapng_sink_error_latched(void **state)
{
    (void)state;
    static s_sink_t s = {.budget = 3, .error = -EPIPE};
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, 262144, NULL, 0, s_failing_sink, &s);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "a/b", ""), 0);
    uint8_t buf[9018];
    s_fill(buf, sizeof buf, 1);
    int rc = 0, flushes = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = pcapng_writer_packet(w, 0, (uint64_t)i, 9018, 9018, buf, NULL);
        if (rc == 0 && i % 10 == 9) {
            rc = pcapng_writer_flush(w);
            flushes++;
        }
    }
    assert_int_equal(rc, -EPIPE);
    assert_int_equal(pcapng_writer_flush(w), -EPIPE);
    assert_int_equal(pcapng_writer_packet(w, 0, 1, 10, 10, buf, NULL), -EPIPE);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "c/d", ""), -EPIPE);
    int calls = s.calls;
    assert_int_equal(pcapng_writer_flush(w), -EPIPE);
    assert_int_equal(s.calls, calls); /* latched: the sink is not asked again */
    /* what was handed over parses block by block to its end */
    size_t off = 0;
    while (off < s.total) {
        uint32_t len = s_le32(s.data + off + 4);
        assert_true(len >= 12 && off + len <= s.total);
        assert_int_equal(s_le32(s.data + off + len - 4), len);
        off += len;
    }
    assert_int_equal(off, s.total);
    pcapng_writer_destroy(&w);
}

/* Walks the options from `o` to opt_endofopt (or the block's end `end`);
 * returns the offset of the option `code` (and of PEN `pen` when
 * code is a custom one), or 0. */
static size_t s_find_option(const uint8_t *b, size_t o, size_t end, uint16_t code, uint32_t pen)
{
    while (o + 4 <= end && s_le16(b + o) != 0) {
        uint16_t c = s_le16(b + o), olen = s_le16(b + o + 2);
        assert_true(o + 4 + ((olen + 3u) & ~3u) <= end);
        if (c == code && (code < 2988 || s_le32(b + o + 4) == pen))
            return o;
        o += 4 + ((olen + 3u) & ~3u);
    }
    return 0;
}

/* Custom options (code, length = PEN + data, PEN in the section's byte
 * order, data as given, zero padding) in the IDB and in EPBs, with and
 * without a comment; an EPB without options stays 32 + data bytes; the
 * sizes pcapng_packet_size_custom() says; libpcap reads every packet. */
static void test_pcapng_custom_options(void **state)
{
    (void)state;
    s_file_t f;
    s_file_open(&f);
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, 262144, NULL, 0, pcapng_sink_fd, &f.fd);
    pcapng_custom_t idc = {
        .code = PCAPNG_OPT_CUSTOM_BINARY, .pen = 32473, .data = "\x01\x02\x03\x04\x05", .len = 5};
    assert_int_equal(pcapng_writer_add_interface_custom(w, 1, "n/i", "d", &idc), 0);
    pcapng_custom_t pc = {.code = PCAPNG_OPT_CUSTOM_UTF8, .pen = 99, .data = "abcdef", .len = 6};
    uint8_t pkt[7];
    s_fill(pkt, sizeof pkt, 5);
    assert_int_equal(pcapng_writer_packet_custom(w, 0, 10, 7, 9, pkt, "hey", &pc), 0);
    assert_int_equal(pcapng_writer_packet_custom(w, 0, 11, 7, 9, pkt, NULL, &pc), 0);
    assert_int_equal(pcapng_writer_packet_custom(w, 0, 12, 7, 9, pkt, NULL, NULL), 0);
    assert_int_equal(pcapng_writer_packet(w, 0, 13, 7, 9, pkt, NULL), 0);
    assert_int_equal(pcapng_writer_flush(w), 0);
    uint64_t written = pcapng_writer_file_bytes(w);
    pcapng_writer_destroy(&w);

    uint8_t b[1024];
    assert_int_equal(pread(f.fd, b, sizeof b, 0), (ssize_t)written);
    size_t off = s_le32(b + 4); /* past the SHB */
    /* IDB */
    uint32_t len = s_le32(b + off + 4);
    assert_int_equal(s_le32(b + off + len - 4), len);
    size_t o = s_find_option(b, off + 16, off + len - 4, 2989, 32473);
    assert_true(o > 0);
    assert_int_equal(s_le16(b + o + 2), 4 + 5);
    assert_memory_equal(b + o + 8, "\x01\x02\x03\x04\x05\x00\x00\x00", 8); /* data, padding */
    assert_true(s_find_option(b, off + 16, off + len - 4, 9, 0) > 0);      /* if_tsresol kept */
    off += len;
    /* EPB: comment, then custom */
    size_t sizes[4] = {
        pcapng_packet_size_custom(7, "hey", &pc), pcapng_packet_size_custom(7, NULL, &pc),
        pcapng_packet_size_custom(7, NULL, NULL), pcapng_packet_size(PCAPNG_FORMAT_PCAPNG, 7)};
    assert_int_equal(sizes[0], 32 + 8 + 8 + 16 + 4); /* data, comment, custom, end */
    assert_int_equal(sizes[1], 32 + 8 + 16 + 4);
    assert_int_equal(sizes[2], 32 + 8);
    assert_int_equal(sizes[3], 32 + 8);
    for (int k = 0; k < 4; k++) {
        len = s_le32(b + off + 4);
        assert_int_equal(s_le32(b + off), 6);
        assert_int_equal(len, sizes[k]);
        assert_int_equal(s_le32(b + off + len - 4), len);
        size_t opts = off + 28 + 8, end = off + len - 4;
        o = s_find_option(b, opts, end, 1, 0);
        assert_int_equal(o > 0, k == 0);
        size_t c = s_find_option(b, opts, end, 2988, 99);
        assert_int_equal(c > 0, k < 2);
        if (c) {
            assert_int_equal(s_le16(b + c + 2), 4 + 6);
            assert_memory_equal(b + c + 8, "abcdef\0\0", 8);
            assert_int_equal(s_le16(b + c + 16), 0); /* opt_endofopt follows */
        }
        if (k < 2)
            assert_int_equal(s_le32(b + end - 4), 0); /* opt_endofopt */
        off += len;
    }
    assert_int_equal(off, (size_t)written);
    pcap_t *p = s_read(f.path);
    for (int k = 0; k < 4; k++)
        s_expect_packet(p, 10 + (uint64_t)k, 7, 9, 5);
    pcap_close(p);
    s_file_close(&f);
}

/* A restart writes the IDB again with its custom option. */
static void test_pcapng_custom_option_restart(void **state)
{
    (void)state;
    static s_sink_t s = {.budget = 1000};
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, 262144, NULL, 0, s_failing_sink, &s);
    pcapng_custom_t c = {
        .code = PCAPNG_OPT_CUSTOM_BINARY_NOCOPY, .pen = 7, .data = "xyz", .len = 3};
    assert_int_equal(pcapng_writer_add_interface_custom(w, 1, "a/b", "", &c), 0);
    assert_int_equal(pcapng_writer_flush(w), 0);
    size_t first = s.total;
    assert_int_equal(pcapng_writer_restart(w), 0);
    assert_int_equal(pcapng_writer_flush(w), 0);
    pcapng_writer_destroy(&w);
    assert_int_equal(s.total, 2 * first);
    assert_memory_equal(s.data, s.data + first, first);
    size_t idb = s_le32(s.data + 4), len = s_le32(s.data + idb + 4);
    size_t o = s_find_option(s.data, idb + 16, idb + len - 4, 19373, 7);
    assert_true(o > 0);
    assert_memory_equal(s.data + o + 8, "xyz\0", 4);
}

/* A custom option classic pcap cannot hold, an unknown code, data longer
 * than an option can be: refused, nothing written. */
static void test_pcapng_custom_option_refused(void **state)
{
    (void)state;
    static uint8_t big[65532];
    static s_sink_t s = {.budget = 1000};
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, 262144, NULL, 0, s_failing_sink, &s);
    pcapng_custom_t bad_code = {.code = 2990, .pen = 1, .data = "x", .len = 1};
    pcapng_custom_t too_long = {.code = 2989, .pen = 1, .data = big, .len = sizeof big};
    pcapng_custom_t longest = {.code = 2989, .pen = 1, .data = big, .len = sizeof big - 1};
    assert_int_equal(pcapng_writer_add_interface_custom(w, 1, "a", "", &bad_code), -EINVAL);
    assert_int_equal(pcapng_writer_add_interface_custom(w, 1, "a", "", &too_long), -EINVAL);
    assert_int_equal(pcapng_writer_interfaces(w), 0);
    assert_int_equal(pcapng_writer_add_interface_custom(w, 1, "a", "", &longest), 0);
    uint8_t pkt[4] = {0};
    assert_int_equal(pcapng_writer_packet_custom(w, 0, 1, 4, 4, pkt, NULL, &bad_code), -EINVAL);
    assert_int_equal(pcapng_writer_packet_custom(w, 0, 1, 4, 4, pkt, NULL, &too_long), -EINVAL);
    assert_int_equal(pcapng_writer_packet_custom(w, 0, 1, 4, 4, pkt, NULL, &longest), 0);
    assert_int_equal(pcapng_writer_flush(w), 0);
    pcapng_writer_destroy(&w);
    /* the whole output parses block by block */
    size_t off = 0;
    while (off < s.total) {
        uint32_t len = s_le32(s.data + off + 4);
        assert_int_equal(s_le32(s.data + off + len - 4), len);
        off += len;
    }
    assert_int_equal(off, s.total);
    pcapng_writer_t *p = pcapng_writer_new(PCAPNG_FORMAT_PCAP, 262144, NULL, 0, s_failing_sink, &s);
    pcapng_custom_t c = {.code = 2989, .pen = 1, .data = "x", .len = 1};
    assert_int_equal(pcapng_writer_add_interface_custom(p, 1, "a", "", &c), -EINVAL);
    assert_int_equal(pcapng_writer_add_interface(p, 1, "a", ""), 0);
    assert_int_equal(pcapng_writer_packet_custom(p, 0, 1, 4, 4, pkt, NULL, &c), -EINVAL);
    pcapng_writer_destroy(&p);
}

/* Bad arguments are refused without writing. */
static void test_pcapng_bad_arguments(void **state)
{
    (void)state;
    s_file_t f;
    s_file_open(&f);
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, 1000, NULL, 0, pcapng_sink_fd, &f.fd);
    uint8_t buf[2000] = {0};
    assert_int_equal(pcapng_writer_packet(w, 0, 1, 10, 10, buf, NULL), -EINVAL); /* no IDB yet */
    assert_int_equal(pcapng_writer_add_interface(w, 1, "a/b", ""), 0);
    assert_int_equal(pcapng_writer_packet(w, 1, 1, 10, 10, buf, NULL), -EINVAL); /* unknown id */
    assert_int_equal(pcapng_writer_packet(w, 0, 1, 1001, 1001, buf, NULL), -EINVAL); /* > snaplen */
    assert_int_equal(pcapng_writer_packet(w, 0, 1, 1000, 1001, buf, NULL), 0);
    assert_int_equal(pcapng_writer_linktype(w, 0), 1);
    assert_int_equal(pcapng_writer_linktype(w, 1), -1);
    assert_int_equal(pcapng_writer_interfaces(w), 1);
    assert_int_equal(pcapng_packet_size(PCAPNG_FORMAT_PCAPNG, 61), 32 + 64);
    assert_int_equal(pcapng_packet_size(PCAPNG_FORMAT_PCAP, 61), 16 + 61);
    pcapng_writer_destroy(&w);
    pcapng_writer_destroy(&w); /* NULL is fine */
    s_file_close(&f);
}

/* A sink into memory. */
typedef struct {
    uint8_t buf[1 << 16];
    size_t len;
    int calls;
} s_mem_t;

static int s_mem_sink(void *ctx, const void *buf, size_t len)
{
    s_mem_t *m = ctx;
    assert_true(m->len + len <= sizeof m->buf);
    memcpy(m->buf + m->len, buf, len);
    m->len += len;
    m->calls++;
    return 0;
}

/* pcapng_writer_append writes, byte for byte, what pcapng_writer_packet
 * writes without a comment (in both formats, every padding class, caplen
 * 0 with no data); when the packet does not fit it writes nothing and
 * hands nothing to the sink (-ENOBUFS), and a flush makes room. */
static void test_append_same_bytes(void **state)
{
    (void)state;
    static s_mem_t a, b;
    for (int format = 0; format < 2; format++) {
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        pcapng_writer_t *wa =
            pcapng_writer_new((pcapng_format_t)format, 2000, "t", 1 << 14, s_mem_sink, &a);
        pcapng_writer_t *wb =
            pcapng_writer_new((pcapng_format_t)format, 2000, "t", 1 << 14, s_mem_sink, &b);
        assert_int_equal(pcapng_writer_add_interface(wa, 1, "a", "d"), 0);
        assert_int_equal(pcapng_writer_add_interface(wb, 1, "a", "d"), 0);
        uint8_t data[2000];
        for (uint32_t caplen = 0; caplen < 9; caplen++) {
            s_fill(data, caplen, caplen);
            uint64_t ts = 1700000000123456789ull + caplen;
            assert_int_equal(
                pcapng_writer_packet(wa, 0, ts, caplen, caplen + 3, caplen ? data : NULL, NULL), 0);
            assert_int_equal(
                pcapng_writer_append(wb, 0, ts, caplen, caplen + 3, caplen ? data : NULL), 0);
        }
        assert_int_equal(pcapng_writer_buffered(wa), pcapng_writer_buffered(wb));
        assert_int_equal(pcapng_writer_append(wb, 1, 1, 4, 4, data), -EINVAL);
        assert_int_equal(pcapng_writer_append(wb, 0, 1, 2001, 2001, data), -EINVAL);
        /* fill up: the writer refuses, flushes nothing, and keeps its bytes */
        int rc;
        size_t n = 0;
        s_fill(data, 1999, 5);
        while ((rc = pcapng_writer_append(wb, 0, 42, 1999, 1999, data)) == 0) {
            assert_int_equal(pcapng_writer_packet(wa, 0, 42, 1999, 1999, data, NULL), 0);
            n++;
        }
        assert_int_equal(rc, -ENOBUFS);
        assert_true(n > 0);
        assert_true(pcapng_writer_room(wb) < pcapng_packet_size((pcapng_format_t)format, 1999));
        assert_int_equal(b.calls, 0);
        assert_int_equal(pcapng_writer_flush(wa), 0);
        assert_int_equal(pcapng_writer_flush(wb), 0);
        assert_int_equal(pcapng_writer_append(wb, 0, 43, 1999, 1999, data), 0);
        assert_int_equal(pcapng_writer_packet(wa, 0, 43, 1999, 1999, data, NULL), 0);
        assert_int_equal(pcapng_writer_flush(wa), 0);
        assert_int_equal(pcapng_writer_flush(wb), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.buf, b.buf, a.len);
        pcapng_writer_destroy(&wa);
        pcapng_writer_destroy(&wb);
    }
}

/* A little-endian block builder for the expected bytes, independent of the
 * writer: the specification's layout, field by field. */
typedef struct {
    uint8_t b[4096];
    size_t n;
} s_exp_t;

static void s_x32(s_exp_t *e, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        e->b[e->n++] = (uint8_t)(v >> (8 * i));
}

static void s_x16(s_exp_t *e, uint16_t v)
{
    e->b[e->n++] = (uint8_t)v;
    e->b[e->n++] = (uint8_t)(v >> 8);
}

static void s_xopt(s_exp_t *e, uint16_t code, const void *val, size_t len)
{
    s_x16(e, code);
    s_x16(e, (uint16_t)len);
    memcpy(e->b + e->n, val, len);
    e->n += len;
    while (e->n % 4)
        e->b[e->n++] = 0;
}

static void s_xu64(s_exp_t *e, uint16_t code, uint64_t v)
{
    s_x16(e, code);
    s_x16(e, 8);
    s_x32(e, (uint32_t)v); /* little-endian u64: low word first */
    s_x32(e, (uint32_t)(v >> 32));
}

static void s_xts(s_exp_t *e, uint16_t code, uint64_t ts)
{
    s_x16(e, code);
    s_x16(e, 8);
    s_x32(e, (uint32_t)(ts >> 32)); /* a timestamp: high word first */
    s_x32(e, (uint32_t)ts);
}

/* Ends the block begun at `start`: the end of options, both lengths. */
static void s_xend(s_exp_t *e, size_t start, bool opt_end)
{
    if (opt_end)
        s_x32(e, 0);
    uint32_t total = (uint32_t)(e->n - start + 4);
    s_x32(e, total);
    for (int i = 0; i < 4; i++)
        e->b[start + 4 + (size_t)i] = (uint8_t)(total >> (8 * i));
}

/* SHB with shb_os and shb_userappl, an IDB with if_filter (kind 0) and
 * if_os, an ISB with every option the writer knows: byte for byte. */
static void test_pcapng_stats_bytes(void **state)
{
    (void)state;
    static s_mem_t m;
    memset(&m, 0, sizeof m);
    pcapng_writer_t *w = pcapng_writer_new_os(PCAPNG_FORMAT_PCAPNG, 262144, "tapmesh-collect 1.2",
                                              "Linux 6.1", 0, s_mem_sink, &m);
    assert_non_null(w);
    pcapng_iface_t idb = {.linktype = 1,
                          .name = "a/eth0",
                          .description = "d",
                          .filter = "udp port 53",
                          .os = "Linux 5"};
    assert_int_equal(pcapng_writer_add_interface_opts(w, &idb), 0);
    pcapng_stats_t st = {.ts_ns = 0x0000000100000002ull,
                         .start_ns = 0x0000000300000004ull,
                         .have = PCAPNG_ISB_IFRECV | PCAPNG_ISB_IFDROP | PCAPNG_ISB_OSDROP |
                                 PCAPNG_ISB_USRDELIV,
                         .ifrecv = 1000,
                         .ifdrop = 0x1122334455667788ull,
                         .osdrop = 7,
                         .usrdeliv = 990,
                         .comment = "tapmesh: x"};
    assert_int_equal(pcapng_writer_stats(w, 0, &st), 0);
    assert_int_equal(pcapng_writer_stats(w, 1, &st), -EINVAL); /* no such interface */
    assert_int_equal(pcapng_writer_flush(w), 0);
    pcapng_writer_destroy(&w);

    static s_exp_t e;
    memset(&e, 0, sizeof e);
    size_t start = e.n; /* SHB */
    s_x32(&e, 0x0A0D0D0A);
    s_x32(&e, 0);
    s_x32(&e, 0x1A2B3C4D);
    s_x16(&e, 1);
    s_x16(&e, 0);
    s_x32(&e, 0xffffffff);
    s_x32(&e, 0xffffffff);
    s_xopt(&e, 3, "Linux 6.1", 9);
    s_xopt(&e, 4, "tapmesh-collect 1.2", 19);
    s_xend(&e, start, true);
    start = e.n; /* IDB */
    s_x32(&e, 1);
    s_x32(&e, 0);
    s_x16(&e, 1);
    s_x16(&e, 0);
    s_x32(&e, 262144);
    s_xopt(&e, 2, "a/eth0", 6);
    s_xopt(&e, 3, "d", 1);
    s_xopt(&e, 9, "\x09", 1);
    s_xopt(&e, 11, "\0udp port 53", 12);
    s_xopt(&e, 12, "Linux 5", 7);
    s_xend(&e, start, true);
    start = e.n; /* ISB */
    s_x32(&e, 5);
    s_x32(&e, 0);
    s_x32(&e, 0);
    s_x32(&e, 1);
    s_x32(&e, 2);
    s_xopt(&e, 1, "tapmesh: x", 10);
    s_xts(&e, 2, st.start_ns);
    s_xts(&e, 3, st.ts_ns);
    s_xu64(&e, 4, 1000);
    s_xu64(&e, 5, 0x1122334455667788ull);
    s_xu64(&e, 7, 7);
    s_xu64(&e, 8, 990);
    s_xend(&e, start, true);
    assert_int_equal(m.len, e.n);
    assert_memory_equal(m.buf, e.b, e.n);
    assert_int_equal(pcapng_stats_size(&st), e.n - start);

    /* only what is known: no counters, no comment */
    memset(&m, 0, sizeof m);
    w = pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, 262144, NULL, 0, s_mem_sink, &m);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "", ""), 0);
    size_t before = pcapng_writer_buffered(w);
    pcapng_stats_t bare = {.ts_ns = 5, .start_ns = 4};
    assert_int_equal(pcapng_writer_stats(w, 0, &bare), 0);
    assert_int_equal(pcapng_writer_buffered(w) - before, 12 + 8 + 2 * 12 + 4 + 4);
    assert_int_equal(pcapng_stats_size(&bare), 12 + 8 + 2 * 12 + 4 + 4);
    pcapng_writer_destroy(&w);

    /* classic pcap has no place for it */
    w = pcapng_writer_new(PCAPNG_FORMAT_PCAP, 262144, NULL, 0, s_mem_sink, &m);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "", ""), 0);
    assert_int_equal(pcapng_writer_stats(w, 0, &bare), -EINVAL);
    pcapng_writer_destroy(&w);
}

/* An ISB larger than the room left flushes first, like a packet; the IDB
 * options are written again after a restart. */
static void test_pcapng_stats_flush_restart(void **state)
{
    (void)state;
    static s_mem_t m;
    memset(&m, 0, sizeof m);
    pcapng_writer_t *w =
        pcapng_writer_new_os(PCAPNG_FORMAT_PCAPNG, 1000, NULL, "OS", 0, s_mem_sink, &m);
    pcapng_iface_t idb = {.linktype = 1, .name = "n", .filter = "tcp", .os = "OS2"};
    assert_int_equal(pcapng_writer_add_interface_opts(w, &idb), 0);
    size_t headers = pcapng_writer_buffered(w);
    char comment[3000];
    memset(comment, 'c', sizeof comment - 1);
    comment[sizeof comment - 1] = '\0';
    pcapng_stats_t st = {.ts_ns = 1, .comment = comment};
    while (pcapng_writer_room(w) >= pcapng_stats_size(&st))
        assert_int_equal(pcapng_writer_stats(w, 0, &st), 0);
    int calls = m.calls;
    assert_int_equal(pcapng_writer_stats(w, 0, &st), 0);
    assert_int_equal(m.calls, calls + 1);
    assert_int_equal(pcapng_writer_buffered(w), pcapng_stats_size(&st));
    assert_int_equal(pcapng_writer_restart(w), 0);
    size_t at = m.len;
    assert_int_equal(pcapng_writer_flush(w), 0);
    assert_int_equal(m.len - at, headers);
    assert_memory_equal(m.buf + at, m.buf, headers);
    pcapng_writer_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pcapng_read_back_by_libpcap),
        cmocka_unit_test(test_pcapng_block_layout),
        cmocka_unit_test(test_pcap_format),
        cmocka_unit_test(test_pcapng_restart_new_file),
        cmocka_unit_test(test_pcapng_sink_error_latched),
        cmocka_unit_test(test_pcapng_bad_arguments),
        cmocka_unit_test(test_pcapng_custom_options),
        cmocka_unit_test(test_pcapng_custom_option_restart),
        cmocka_unit_test(test_pcapng_custom_option_refused),
        cmocka_unit_test(test_append_same_bytes),
        cmocka_unit_test(test_pcapng_stats_bytes),
        cmocka_unit_test(test_pcapng_stats_flush_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
