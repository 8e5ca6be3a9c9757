/*
 * test_dlq — dead-letter files (proto/dead-letters-v1.md): written by
 * dlq.c with the identity of every batch, read back by dlq-read.c batch by
 * batch and byte for byte, in both byte orders; read by libpcap as a plain
 * capture with the same packets and timestamps; names that do not carry
 * the epoch, a taken name never overwritten, files 0600; a file cut anywhere gives back its whole
 * batches; plain captures are told apart; malformed files are errors naming file and offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "dlq-read.h"
#include "dlq.h"
#include "pcapng.h"
#include "sample.h"
#include "tmpdir.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_SAMPLE TAPMESH_TEST_DATA "/sample-ether.pcap"

/* ---- fixtures --------------------------------------------------------------- */

typedef struct {
    char dir[64];
    sample_pkt_t *pkts;
    size_t npkts;
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_dlq.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->npkts = sample_load(S_SAMPLE, &f->pkts);
    if (f->npkts < 200)
        return -1;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    tmpdir_remove(f->dir);
    sample_free(&f->pkts, f->npkts);
    free(f);
    return 0;
}

static const dlq_identity_t s_id = {.source = "edge1",
                                    .epoch = 0x1122334455667788ull,
                                    .linktype = 1,
                                    .snaplen = 65535,
                                    .ifname = "eth0",
                                    .if_description = "capture file /data/x.pcap",
                                    .hello_description = "rack 4, tap 2"};

/* A batch of packets [first, first + n) of the sample, as the outbox
 * builds it (a wire payload frame). */
typedef struct {
    batch_t b;
    dlq_state_t state;
    size_t first;
} s_batch_t;

static void s_batch(s_batch_t *sb, const s_fix_t *f, size_t first, size_t n, uint64_t seq,
                    dlq_state_t state)
{
    size_t cap = WIRE_FRAME_HDR;
    for (size_t i = first; i < first + n; i++)
        cap += WIRE_PKT_HDR + f->pkts[i].caplen;
    memset(sb, 0, sizeof *sb);
    sb->b.buf = malloc(cap);
    size_t off;
    assert_true(wire_packets_begin(sb->b.buf, cap, &off));
    for (size_t i = first; i < first + n; i++) {
        wire_packet_t p = {.ts_ns = f->pkts[i].ts,
                           .caplen = f->pkts[i].caplen,
                           .origlen = f->pkts[i].origlen,
                           .data = f->pkts[i].data};
        assert_true(wire_packets_put(sb->b.buf, cap, &off, &p));
    }
    assert_int_equal(off, cap);
    sb->b.len = off;
    sb->b.seq = seq;
    sb->b.packets = (uint32_t)n;
    sb->b.watermark = f->pkts[first + n - 1].ts + 17;
    sb->state = state;
    sb->first = first;
}

/* Writes `n` batches of the given sizes (seqs 5, 6, 8, 9, ...: a gap, as
 * when batches in between were acknowledged), states alternating.
 * Returns the file's path in `path`. */
static void s_write(const s_fix_t *f, s_batch_t *batches, const size_t *sizes, size_t n, char *path,
                    size_t pathlen)
{
    dlq_t *d = dlq_new(f->dir, &s_id);
    assert_non_null(d);
    size_t first = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = 5 + i + (i >= 2);
        s_batch(&batches[i], f, first, sizes[i], seq, i % 2 ? DLQ_REFUSED : DLQ_UNACKED);
        first += sizes[i];
        int rc = dlq_write(d, &batches[i].b, batches[i].state);
        if (rc < 0)
            fail_msg("dlq_write: %s", dlq_error(d));
    }
    snprintf(path, pathlen, "%s", dlq_path(d));
    dlq_destroy(&d);
}

static void s_free_batches(s_batch_t *batches, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(batches[i].b.buf);
}

static uint8_t *s_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void s_spill(const char *path, const uint8_t *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t s_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Offsets of the blocks of a little-endian file, and one past the end. */
static size_t s_blocks(const uint8_t *buf, size_t len, size_t *at, size_t max)
{
    size_t n = 0, off = 0;
    while (off < len) {
        assert_true(n < max);
        at[n++] = off;
        uint32_t total = s_le32(buf + off + 4);
        assert_true(total >= 12 && off + total <= len);
        assert_int_equal(s_le32(buf + off + total - 4), total);
        off += total;
    }
    at[n] = off;
    return n;
}

/* Reads every batch of `path` and checks it against `want[0..nwant)`. */
static void s_expect_batches(const char *path, const s_batch_t *want, size_t nwant,
                             uint64_t skipped)
{
    dlq_reader_t *r;
    dlq_info_t info;
    char err[512];
    int rc = dlq_reader_open(path, &r, &info, err, sizeof err);
    if (rc != 1)
        fail_msg("dlq_reader_open %s: %d %s", path, rc, err);
    assert_string_equal(info.source, "edge1");
    assert_int_equal(info.epoch, 0x1122334455667788ull);
    assert_int_equal(info.linktype, 1);
    assert_int_equal(info.snaplen, 65535);
    assert_string_equal(info.ifname, "eth0");
    assert_string_equal(info.if_description, "capture file /data/x.pcap");
    assert_string_equal(info.hello_description, "rack 4, tap 2");
    dlq_batch_t b;
    for (size_t i = 0; i < nwant; i++) {
        rc = dlq_reader_next(r, &b);
        if (rc != 1)
            fail_msg("batch %zu: %d %s", i, rc, dlq_reader_error(r));
        assert_int_equal(b.seq, want[i].b.seq);
        assert_int_equal(b.part, 0);
        assert_int_equal(b.parts, 1);
        assert_int_equal(b.state, want[i].state);
        assert_int_equal(b.watermark, want[i].b.watermark);
        assert_int_equal(b.packets, want[i].b.packets);
        assert_int_equal(b.len, want[i].b.len);
        assert_memory_equal(b.payload, want[i].b.buf, b.len);
        assert_int_equal(wire_packets_check(b.payload, b.len, b.packets, 1, NULL, NULL), WIRE_OK);
    }
    rc = dlq_reader_next(r, &b);
    if (rc != 0)
        fail_msg("after the last batch: %d %s", rc, dlq_reader_error(r));
    assert_int_equal(dlq_reader_next(r, &b), 0);
    assert_int_equal(dlq_reader_skipped(r), skipped);
    dlq_reader_close(&r);
    assert_null(r);
    dlq_reader_close(&r);
}

/* ---- round trip ---------------------------------------------------------------- */

/* `path` is DLQ_DIR/edge1-<UTC time>-<8 hex digits>.pcapng, the time within
 * two seconds of `now`, and the name does not carry the epoch (in decimal
 * or in hex, in either case): the epoch is the secret that lets a source
 * speak (issue "Security" 3), and file names are seen by many. */
static void s_expect_name(const s_fix_t *f, const char *path, time_t now)
{
    size_t dl = strlen(f->dir);
    assert_true(strncmp(path, f->dir, dl) == 0 && path[dl] == '/');
    const char *name = path + dl + 1;
    char lower[256];
    size_t n = strlen(name);
    assert_true(n < sizeof lower);
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    char dec[32], hex[32], hex16[32];
    snprintf(dec, sizeof dec, "%" PRIu64, s_id.epoch);
    snprintf(hex, sizeof hex, "%" PRIx64, s_id.epoch);
    snprintf(hex16, sizeof hex16, "%016" PRIx64, s_id.epoch);
    if (strstr(lower, dec) || strstr(lower, hex) || strstr(lower, hex16))
        fail_msg("the dead-letter file name %s carries the epoch %s (%s)", name, dec, hex);
    /* edge1-20250102T030405Z-0123abcd.pcapng */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char rand[9] = "", tail[16] = "";
    int got = sscanf(name, "edge1-%4d%2d%2dT%2d%2d%2dZ-%8[0-9a-f]%15s", &tm.tm_year, &tm.tm_mon,
                     &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, rand, tail);
    if (got != 8 || strlen(rand) != 8 || strcmp(tail, ".pcapng") != 0)
        fail_msg("the dead-letter file name %s is not edge1-<UTC time>-<8 hex>.pcapng", name);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t < now - 2 || t > now + 2)
        fail_msg("the dead-letter file name %s does not give the time now (%lld)", name,
                 (long long)now);
}

static const size_t s_sizes[] = {1, 7, 40, 200, 2, 350};
#define S_NBATCH (sizeof s_sizes / sizeof s_sizes[0])

/* Several batches, unacknowledged and refused, come back with their
 * identity and their packets byte for byte. */
static void test_dlq_round_trip(void **state)
{
    s_fix_t *f = *state;
    s_batch_t batches[S_NBATCH];
    char path[4200];
    s_write(f, batches, s_sizes, S_NBATCH, path, sizeof path);
    s_expect_name(f, path, time(NULL));
    s_expect_batches(path, batches, S_NBATCH, 0);
    s_free_batches(batches, S_NBATCH);
}

/* libpcap (so tcpdump) reads the file as a plain capture: the same packets
 * with the same nanosecond timestamps, nothing more. */
static void test_dlq_libpcap_reads_it(void **state)
{
    s_fix_t *f = *state;
    s_batch_t batches[S_NBATCH];
    char path[4200];
    s_write(f, batches, s_sizes, S_NBATCH, path, sizeof path);
    sample_pkt_t *got;
    size_t n = sample_load(path, &got), total = 0;
    for (size_t i = 0; i < S_NBATCH; i++)
        total += s_sizes[i];
    assert_int_equal(n, total);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].ts, f->pkts[i].ts);
        assert_int_equal(got[i].caplen, f->pkts[i].caplen);
        assert_int_equal(got[i].origlen, f->pkts[i].origlen);
        assert_memory_equal(got[i].data, f->pkts[i].data, got[i].caplen);
    }
    sample_free(&got, n);
    s_free_batches(batches, S_NBATCH);
}

/* The blocks as proto/dead-letters-v1.md lays them out: the IDB's names for
 * people and its identity option (code 2989, PEN 32473, padded); every EPB
 * a record with its place in the batch; a comment on each batch's first. */
static void test_dlq_layout(void **state)
{
    s_fix_t *f = *state;
    static const size_t sizes[] = {3, 2};
    s_batch_t batches[2];
    char path[4200];
    s_write(f, batches, sizes, 2, path, sizeof path);
    size_t len, at[16];
    uint8_t *buf = s_slurp(path, &len);
    size_t n = s_blocks(buf, len, at, 15);
    assert_int_equal(n, 2 + 5);
    /* IDB */
    const uint8_t *idb = buf + at[1];
    assert_int_equal(s_le32(idb), 1);
    assert_int_equal(s_le16(idb + 8), 1);
    assert_int_equal(s_le32(idb + 12), WIRE_SNAPLEN_MAX);
    bool name = false, descr = false, identity = false;
    for (size_t o = 16; s_le16(idb + o) != 0; o += 4 + ((s_le16(idb + o + 2) + 3u) & ~3u)) {
        uint16_t code = s_le16(idb + o), olen = s_le16(idb + o + 2);
        const uint8_t *v = idb + o + 4;
        if (code == 2)
            name = olen == 10 && memcmp(v, "edge1/eth0", 10) == 0;
        if (code == 3) {
            const char *d = "dead letters of edge1: capture file /data/x.pcap";
            descr = olen == strlen(d) && memcmp(v, d, olen) == 0;
        }
        if (code == 2989 && s_le32(v) == 32473) {
            /* PEN, "TM", version 1, kind 1, source "edge1", epoch (big-endian) */
            static const uint8_t head[] = {'T', 'M', 1, 1, 5, 'e', 'd', 'g', 'e', '1', 0x11, 0x22};
            identity = memcmp(v + 4, head, sizeof head) == 0;
            for (size_t p = olen; p % 4; p++)
                assert_int_equal(v[p], 0); /* padding */
        }
    }
    assert_true(name && descr && identity);
    /* EPBs */
    for (size_t k = 0; k < 5; k++) {
        const uint8_t *epb = buf + at[2 + k];
        assert_int_equal(s_le32(epb), 6);
        uint32_t caplen = s_le32(epb + 20);
        size_t o = 28 + ((caplen + 3u) & ~3u);
        uint32_t index = k < 3 ? (uint32_t)k : (uint32_t)k - 3, count = k < 3 ? 3 : 2;
        bool first = index == 0, comment = false, letter = false;
        for (; s_le16(epb + o) != 0; o += 4 + ((s_le16(epb + o + 2) + 3u) & ~3u)) {
            uint16_t code = s_le16(epb + o), olen = s_le16(epb + o + 2);
            const uint8_t *v = epb + o + 4;
            if (code == 1) {
                char want[256];
                snprintf(
                    want, sizeof want,
                    "tapmesh dead letter: source edge1 epoch %" PRIu64 " batch %d (%u packets), %s",
                    s_id.epoch, k < 3 ? 5 : 6, count,
                    k < 3 ? "unacknowledged: may have been written" : "refused: never written");
                comment = olen == strlen(want) && memcmp(v, want, olen) == 0;
            }
            if (code == 2989 && s_le32(v) == 32473) {
                assert_int_equal(olen, 4 + DLQ_LETTER_LEN); /* PEN + record */
                assert_memory_equal(v + 4, "TM\x01\x02", 4);
                assert_int_equal(s_be32(v + 8), 0);
                assert_int_equal(s_be32(v + 12), k < 3 ? 5 : 6); /* seq */
                assert_int_equal(s_be32(v + 16), 0x00000001);    /* part 0, parts 1 */
                assert_int_equal(v[20], k < 3 ? DLQ_UNACKED : DLQ_REFUSED);
                assert_int_equal(s_be32(v + 29), index);
                assert_int_equal(s_be32(v + 33), count);
                letter = true;
            }
        }
        assert_true(letter);
        assert_int_equal(comment, first);
    }
    free(buf);
    s_free_batches(batches, 2);
}

/* ---- both byte orders ----------------------------------------------------------- */

static void s_swap16(uint8_t *p)
{
    uint8_t t = p[0];
    p[0] = p[1];
    p[1] = t;
}

static void s_swap32(uint8_t *p)
{
    uint8_t t = p[0];
    p[0] = p[3];
    p[3] = t;
    t = p[1];
    p[1] = p[2];
    p[2] = t;
}

/* Swaps an option list in place: codes and lengths, a custom option's PEN
 * (its data is big-endian already), nothing of strings or bytes. */
static void s_swap_options(uint8_t *p, uint8_t *end)
{
    while (p + 4 <= end) {
        uint16_t code = s_le16(p), olen = s_le16(p + 2);
        s_swap16(p);
        s_swap16(p + 2);
        if (code == 0)
            return;
        if (code == 2989)
            s_swap32(p + 4);
        p += 4 + ((olen + 3u) & ~3u);
    }
}

/* The same file as a big-endian machine writes it. */
static void s_to_big_endian(uint8_t *buf, size_t len)
{
    size_t at[4096];
    size_t n = s_blocks(buf, len, at, 4095);
    for (size_t k = 0; k < n; k++) {
        uint8_t *b = buf + at[k];
        uint32_t type = s_le32(b), total = s_le32(b + 4);
        uint8_t *end = b + total - 4;
        if (type == 0x0A0D0D0A) {
            s_swap32(b + 8);
            s_swap16(b + 12);
            s_swap16(b + 14);
            /* section length -1: the same in both orders */
            s_swap_options(b + 24, end);
        } else if (type == 1) {
            s_swap16(b + 8);
            s_swap16(b + 10);
            s_swap32(b + 12);
            s_swap_options(b + 16, end);
        } else if (type == 6) {
            uint32_t caplen = s_le32(b + 20);
            for (int i = 0; i < 5; i++)
                s_swap32(b + 8 + 4 * i);
            s_swap_options(b + 28 + ((caplen + 3u) & ~3u), end);
        } else {
            fail_msg("block type %" PRIu32, type);
        }
        s_swap32(b);
        s_swap32(b + 4);
        s_swap32(end);
    }
}

/* A big-endian file reads the same, and libpcap agrees with it. */
static void test_dlq_big_endian(void **state)
{
    s_fix_t *f = *state;
    s_batch_t batches[S_NBATCH];
    char path[4200], be[4200];
    s_write(f, batches, s_sizes, S_NBATCH, path, sizeof path);
    size_t len;
    uint8_t *buf = s_slurp(path, &len);
    s_to_big_endian(buf, len);
    assert_memory_equal(buf + 8, "\x1a\x2b\x3c\x4d", 4);
    snprintf(be, sizeof be, "%s/big-endian.pcapng", f->dir);
    s_spill(be, buf, len);
    s_expect_batches(be, batches, S_NBATCH, 0);
    sample_pkt_t *got;
    size_t n = sample_load(be, &got);
    assert_int_equal(n, 600);
    assert_int_equal(got[599].ts, f->pkts[599].ts);
    assert_memory_equal(got[599].data, f->pkts[599].data, got[599].caplen);
    sample_free(&got, n);
    free(buf);
    s_free_batches(batches, S_NBATCH);
}

/* ---- names ------------------------------------------------------------------------ */

/* A name that exists (another agent of this node started in the same
 * second drew the same digits, or anything else put it there) is kept as it
 * is; the file gets another name of the same form. Two files of one agent
 * run, and of two runs in a row, never share a name. */
static void test_dlq_name_taken(void **state)
{
    s_fix_t *f = *state;
    dlq_t *d = dlq_new(f->dir, &s_id);
    assert_non_null(d);
    char taken[4200];
    snprintf(taken, sizeof taken, "%s", dlq_path(d)); /* the first name it will try */
    s_expect_name(f, taken, time(NULL));
    s_spill(taken, (const uint8_t *)"keep", 4);
    s_batch_t one[1];
    s_batch(&one[0], f, 0, 4, 9, DLQ_UNACKED);
    assert_int_equal(dlq_write(d, &one[0].b, DLQ_UNACKED), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s", dlq_path(d));
    assert_string_not_equal(path, taken);
    s_expect_name(f, path, time(NULL));
    dlq_destroy(&d);
    s_expect_batches(path, one, 1, 0);
    size_t len;
    uint8_t *kept = s_slurp(taken, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(kept, "keep", 4);
    free(kept);
    s_free_batches(one, 1);
    /* the same identity again, at once: a third name */
    char second[4200];
    static const size_t sizes[] = {4};
    s_write(f, one, sizes, 1, second, sizeof second);
    s_expect_name(f, second, time(NULL));
    assert_string_not_equal(second, taken);
    assert_string_not_equal(second, path);
    s_free_batches(one, 1);
}

/* Dead letters hold captured packets: 0600, whatever the umask lets
 * through beyond that (the umask still applies). */
static void test_dlq_file_mode(void **state)
{
    s_fix_t *f = *state;
    static const struct {
        mode_t umask, want;
    } cases[] = {{022, 0600}, {0, 0600}, {077, 0600}, {0277, 0400}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mode_t old = umask(cases[i].umask);
        s_batch_t one[1];
        static const size_t sizes[] = {3};
        char path[4200];
        s_write(f, one, sizes, 1, path, sizeof path);
        umask(old);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if ((st.st_mode & 07777) != cases[i].want)
            fail_msg("umask %03o: %s has mode %04o, expected %04o", (unsigned)cases[i].umask, path,
                     (unsigned)(st.st_mode & 07777), (unsigned)cases[i].want);
        s_expect_batches(path, one, 1, 0);
        s_free_batches(one, 1);
    }
}

/* Nothing is created before the first batch; an empty batch writes
 * nothing; an unknown state is refused. */
static void test_dlq_lazy_and_arguments(void **state)
{
    s_fix_t *f = *state;
    dlq_t *d = dlq_new(f->dir, &s_id);
    struct stat st;
    assert_int_equal(stat(dlq_path(d), &st), -1);
    uint8_t empty[WIRE_FRAME_HDR];
    size_t off;
    assert_true(wire_packets_begin(empty, sizeof empty, &off));
    batch_t b = {.seq = 1, .buf = empty, .len = off};
    assert_int_equal(dlq_write(d, &b, DLQ_UNACKED), 0);
    assert_int_equal(stat(dlq_path(d), &st), -1);
    assert_int_equal(dlq_write(d, &b, (dlq_state_t)3), -EINVAL);
    assert_non_null(strstr(dlq_error(d), "state"));
    dlq_destroy(&d);
    dlq_destroy(&d);
}

/* HELLO's rules hold for what is kept: a sanitized interface name, a
 * snaplen within the wire's, texts without control bytes. */
static void test_dlq_identity_as_hello_carries_it(void **state)
{
    s_fix_t *f = *state;
    dlq_identity_t id = s_id;
    id.ifname = "my \"if\"/0";
    id.snaplen = 0;
    id.if_description = "tab\there";
    id.hello_description = "";
    dlq_t *d = dlq_new(f->dir, &id);
    s_batch_t one;
    s_batch(&one, f, 0, 2, 0, DLQ_UNACKED);
    assert_int_equal(dlq_write(d, &one.b, DLQ_UNACKED), 0);
    dlq_reader_t *r;
    dlq_info_t info;
    char err[256];
    assert_int_equal(dlq_reader_open(dlq_path(d), &r, &info, err, sizeof err), 1);
    assert_string_equal(info.ifname, "my__if__0");
    assert_int_equal(info.snaplen, WIRE_SNAPLEN_MAX);
    assert_string_equal(info.if_description, "tab?here");
    assert_string_equal(info.hello_description, "");
    dlq_reader_close(&r);
    dlq_destroy(&d);
    free(one.b.buf);
}

/* A write that fails part-way (here: the file size limit, as a full disk
 * would) leaves the file cut back to its last whole batch, and says so
 * naming the file; later writes fail too, nothing half-written follows. */
static void test_dlq_write_fails_cut_back(void **state)
{
    s_fix_t *f = *state;
    dlq_t *d = dlq_new(f->dir, &s_id);
    s_batch_t batches[2];
    s_batch(&batches[0], f, 0, 3, 1, DLQ_UNACKED);
    s_batch(&batches[1], f, 3, 200, 2, DLQ_UNACKED);
    assert_int_equal(dlq_write(d, &batches[0].b, DLQ_UNACKED), 0);
    struct stat st;
    assert_int_equal(stat(dlq_path(d), &st), 0);
    off_t whole = st.st_size;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)whole + 5000;
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = dlq_write(d, &batches[1].b, DLQ_UNACKED);
    int again = dlq_write(d, &batches[0].b, DLQ_UNACKED);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, was);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(again, -EFBIG);
    assert_non_null(strstr(dlq_error(d), dlq_path(d)));
    assert_int_equal(stat(dlq_path(d), &st), 0);
    assert_int_equal(st.st_size, whole);
    s_expect_batches(dlq_path(d), batches, 1, 0);
    dlq_destroy(&d);
    s_free_batches(batches, 2);
}

/* ---- cut short ------------------------------------------------------------------ */

/* Cut at every block boundary, one byte past it, in the middle of the
 * block and one byte short of its end: whole batches before the cut come
 * back, the packets of a batch the cut went through are counted as
 * skipped, the end is an end (not an error). Cut inside the section
 * header or the interface block, the file has no identity to go by. */
static void test_dlq_cut_short(void **state)
{
    s_fix_t *f = *state;
    static const size_t sizes[] = {1, 3, 5, 2};
    s_batch_t batches[4];
    char path[4200], cut[4200];
    s_write(f, batches, sizes, 4, path, sizeof path);
    snprintf(cut, sizeof cut, "%s/cut.pcapng", f->dir);
    size_t len, at[32];
    uint8_t *buf = s_slurp(path, &len);
    size_t n = s_blocks(buf, len, at, 31);
    assert_int_equal(n, 2 + 11);
    size_t ends[4], e = 2; /* block index after each batch */
    for (size_t i = 0; i < 4; i++) {
        e += sizes[i];
        ends[i] = e;
    }
    for (size_t k = 0; k <= n; k++) {
        size_t blen = k < n ? at[k + 1] - at[k] : 0;
        size_t points[] = {at[k], at[k] + 1, at[k] + blen / 2, at[k] + blen - 1};
        for (size_t j = 0; j < (k < n ? 4u : 1u); j++) {
            size_t c = points[j];
            s_spill(cut, buf, c);
            if (c < at[2]) {
                dlq_reader_t *r = NULL;
                dlq_info_t info;
                char err[256];
                int rc = dlq_reader_open(cut, &r, &info, err, sizeof err);
                assert_int_equal(rc, 0);
                assert_null(r);
                continue;
            }
            size_t whole = k; /* blocks whole before the cut */
            size_t nb = 0, skipped;
            while (nb < 4 && ends[nb] <= whole)
                nb++;
            skipped = whole - (nb ? ends[nb - 1] : 2);
            s_expect_batches(cut, batches, nb, skipped);
        }
    }
    free(buf);
    s_free_batches(batches, 4);
}

/* A batch with a packet missing in the middle of the file is skipped
 * (its packets counted); the batches after it come back. */
static void test_dlq_batch_not_whole(void **state)
{
    s_fix_t *f = *state;
    static const size_t sizes[] = {2, 4, 3};
    s_batch_t batches[3];
    char path[4200], holed[4200];
    s_write(f, batches, sizes, 3, path, sizeof path);
    size_t len, at[32];
    uint8_t *buf = s_slurp(path, &len);
    size_t n = s_blocks(buf, len, at, 31);
    assert_int_equal(n, 2 + 9);
    /* drop the third packet of the second batch (block 2 + 2 + 2) */
    size_t k = 6, blen = at[k + 1] - at[k];
    memmove(buf + at[k], buf + at[k + 1], len - at[k + 1]);
    snprintf(holed, sizeof holed, "%s/holed.pcapng", f->dir);
    s_spill(holed, buf, len - blen);
    s_batch_t want[2] = {batches[0], batches[2]};
    s_expect_batches(holed, want, 2, 3); /* 2 before the hole, 1 after */
    free(buf);
    s_free_batches(batches, 3);
}

/* Blocks other than SHB, IDB and EPB are read past. */
static void test_dlq_other_blocks_skipped(void **state)
{
    s_fix_t *f = *state;
    static const size_t sizes[] = {2, 2};
    s_batch_t batches[2];
    char path[4200], more[4200];
    s_write(f, batches, sizes, 2, path, sizeof path);
    size_t len, at[16];
    uint8_t *buf = s_slurp(path, &len);
    s_blocks(buf, len, at, 15);
    /* an interface statistics block (type 5) and a custom block (0xBAD)
     * between the first batch's packets */
    static const uint8_t isb[] = {5, 0, 0, 0, 24, 0, 0, 0, 0,  0, 0, 0,
                                  1, 0, 0, 0, 2,  0, 0, 0, 24, 0, 0, 0};
    static const uint8_t cb[] = {0xad, 0x0b, 0,   0,   20,  0,   0,  0, 0xd9, 0x7e,
                                 0,    0,    'a', 'b', 'c', 'd', 20, 0, 0,    0};
    uint8_t *out = malloc(len + sizeof isb + sizeof cb);
    size_t split = at[3];
    memcpy(out, buf, split);
    memcpy(out + split, isb, sizeof isb);
    memcpy(out + split + sizeof isb, cb, sizeof cb);
    memcpy(out + split + sizeof isb + sizeof cb, buf + split, len - split);
    snprintf(more, sizeof more, "%s/more.pcapng", f->dir);
    s_spill(more, out, len + sizeof isb + sizeof cb);
    s_expect_batches(more, batches, 2, 0);
    free(out);
    free(buf);
    s_free_batches(batches, 2);
}

/* ---- not ours ------------------------------------------------------------------- */

static int s_open_rc(const char *path, char *err, size_t errlen)
{
    dlq_reader_t *r = NULL;
    dlq_info_t info;
    int rc = dlq_reader_open(path, &r, &info, err, errlen);
    if (rc != 1)
        assert_null(r);
    dlq_reader_close(&r);
    return rc;
}

/* Classic pcap, pcapng from elsewhere (and tapmesh's own output), an
 * empty file: 0, read them as plain captures. A file that is not there:
 * an error naming it. */
static void test_dlq_plain_captures(void **state)
{
    s_fix_t *f = *state;
    char err[512], path[4200];
    assert_int_equal(s_open_rc(TAPMESH_TEST_DATA "/sample-ether.pcap", err, sizeof err), 0);
    assert_int_equal(s_open_rc(TAPMESH_TEST_DATA "/sample-rawip.pcapng", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/output.pcapng", f->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pcapng_writer_t *w =
        pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, WIRE_SNAPLEN_MAX, "x", 0, pcapng_sink_fd, &fd);
    assert_int_equal(pcapng_writer_add_interface(w, 1, "edge1/eth0", "d"), 0);
    /* someone else's custom option under the same PEN is not an identity */
    pcapng_custom_t other = {.code = 2989, .pen = 32473, .data = "XY\x01\x01", .len = 4};
    assert_int_equal(pcapng_writer_add_interface_custom(w, 1, "edge2/eth0", "d", &other), 1);
    assert_int_equal(pcapng_writer_packet(w, 0, 1, 4, 4, (const uint8_t *)"abcd", "c"), 0);
    assert_int_equal(pcapng_writer_flush(w), 0);
    pcapng_writer_destroy(&w);
    close(fd);
    assert_int_equal(s_open_rc(path, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/empty", f->dir);
    s_spill(path, (const uint8_t *)"", 0);
    assert_int_equal(s_open_rc(path, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/missing.pcapng", f->dir);
    assert_int_equal(s_open_rc(path, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, path));
}

/* ---- malformed ------------------------------------------------------------------ */

/* Patches one file and expects an error at open (`at_open`) or on
 * reading, naming the file and an offset, never a crash. */
static void s_expect_error(const s_fix_t *f, const uint8_t *buf, size_t len, bool at_open,
                           const char *what)
{
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/bad.pcapng", f->dir);
    s_spill(path, buf, len);
    dlq_reader_t *r = NULL;
    dlq_info_t info;
    int rc = dlq_reader_open(path, &r, &info, err, sizeof err);
    const char *msg = err;
    if (at_open) {
        assert_true(rc < 0);
        assert_null(r);
    } else {
        if (rc != 1)
            fail_msg("%s: open gave %d %s", what, rc, err);
        dlq_batch_t b;
        while ((rc = dlq_reader_next(r, &b)) == 1)
            ;
        assert_true(rc < 0);
        assert_int_equal(dlq_reader_next(r, &b), rc); /* latched */
        msg = dlq_reader_error(r);
    }
    if (!strstr(msg, path) || !strstr(msg, "offset") || !strstr(msg, what))
        fail_msg("error '%s' should name the file, an offset and '%s'", msg, what);
    dlq_reader_close(&r);
}

/* Offset of our custom option's data (after the PEN) in block `blk`. */
static size_t s_ours_at(const uint8_t *buf, size_t blk)
{
    uint32_t type = s_le32(buf + blk);
    size_t o = type == 1 ? 16 : 28 + ((s_le32(buf + blk + 20) + 3u) & ~3u);
    for (; s_le16(buf + blk + o) != 0; o += 4 + ((s_le16(buf + blk + o + 2) + 3u) & ~3u))
        if (s_le16(buf + blk + o) == 2989 && s_le32(buf + blk + o + 4) == 32473)
            return blk + o + 8;
    fail_msg("no option of ours in the block at %zu", blk);
    return 0;
}

static void test_dlq_malformed(void **state)
{
    s_fix_t *f = *state;
    static const size_t sizes[] = {2, 3};
    s_batch_t batches[2];
    char path[4200];
    s_write(f, batches, sizes, 2, path, sizeof path);
    size_t len, at[16];
    uint8_t *good = s_slurp(path, &len);
    s_blocks(good, len, at, 15);
    uint8_t *buf = malloc(len * 2);
    size_t idb = at[1], epb = at[2], id = s_ours_at(good, idb), letter = s_ours_at(good, epb);

    memcpy(buf, good, len);
    buf[id + 2] = 2; /* identity version */
    s_expect_error(f, buf, len, true, "version 2");

    memcpy(buf, good, len);
    buf[id + 4] = 0; /* source length 0 */
    s_expect_error(f, buf, len, true, "source");

    memcpy(buf, good, len);
    buf[id + 5] = '/'; /* not a name */
    s_expect_error(f, buf, len, true, "source");

    memcpy(buf, good, len);
    buf[idb + 8] = 105; /* IDB link type differs from the identity's */
    s_expect_error(f, buf, len, true, "link type");

    memcpy(buf, good, len);
    buf[letter + 2] = 9; /* record version */
    s_expect_error(f, buf, len, false, "version 9");

    memcpy(buf, good, len);
    buf[letter + 16] = 3; /* state */
    s_expect_error(f, buf, len, false, "state 3");

    memcpy(buf, good, len);
    buf[letter + 13] = 2; /* part 2 of 1 */
    s_expect_error(f, buf, len, false, "part");

    memcpy(buf, good, len);
    memset(buf + letter + 29, 0, 4); /* count 0 */
    s_expect_error(f, buf, len, false, "of 0");

    memcpy(buf, good, len);
    buf[epb + 8] = 1; /* interface 1 */
    s_expect_error(f, buf, len, false, "interface 1");

    memcpy(buf, good, len);
    buf[epb + 22] = 0x10; /* caplen beyond the block */
    s_expect_error(f, buf, len, false, "captured length");

    memcpy(buf, good, len);
    buf[epb + s_le32(good + epb + 4) - 4] ^= 4; /* trailing length */
    s_expect_error(f, buf, len, false, "trailing length");

    memcpy(buf, good, len);
    memcpy(buf + epb + 4, "\x0d\0\0\0", 4); /* block length not a multiple of 4 */
    s_expect_error(f, buf, len, false, "length 13");

    memcpy(buf, good, len);
    buf[letter - 4] = 0x42; /* another PEN: a packet without its record */
    s_expect_error(f, buf, len, false, "without its dead-letter record");

    /* a second interface, a second section */
    memcpy(buf, good, len);
    memcpy(buf + len, good + idb, at[2] - idb);
    s_expect_error(f, buf, len + (at[2] - idb), false, "second interface");
    memcpy(buf + len, good, at[1]);
    s_expect_error(f, buf, len + at[1], false, "second section");

    free(buf);
    free(good);
    s_free_batches(batches, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dlq_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_libpcap_reads_it, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_layout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_big_endian, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_name_taken, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_file_mode, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_lazy_and_arguments, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_identity_as_hello_carries_it, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_write_fails_cut_back, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_cut_short, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_batch_not_whole, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_other_blocks_skipped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_plain_captures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dlq_malformed, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
