/*
 * test_pcapng — the output writer, read back by libpcap (what tcpdump
 * uses) and by hand against the pcapng specification's block layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pcapng_read_back_by_libpcap),
        cmocka_unit_test(test_pcapng_block_layout),
        cmocka_unit_test(test_pcap_format),
        cmocka_unit_test(test_pcapng_restart_new_file),
        cmocka_unit_test(test_pcapng_sink_error_latched),
        cmocka_unit_test(test_pcapng_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
