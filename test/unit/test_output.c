/*
 * test_output — the collector's sink: how file names are chosen (plain,
 * kept-existing with an index, strftime patterns), rotation by size and by
 * age with every file readable by libpcap on its own (SHB and every IDB
 * again), standard output never rotated, the interface table and
 * LINKTYPE_POLICY, the buffer that reaches the operating system only
 * through output_flush(), files that appear only with their first interface
 * block (none without a source), standard output's end without a source,
 * a FIFO written in place, a failed write cut back to the last whole
 * block (a file, standard output redirected to one), and files made 0640
 * (the umask applied) with or without anonymous files. Each test works in its
 * own temporary directory.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "clock.h"
#include "output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_LINKTYPE_ETHERNET 1
#define S_TS0 1700000000123456789ull

typedef struct {
    char dir[64];
} s_env_t;

static int s_setup(void **state)
{
    s_env_t *env = calloc(1, sizeof *env);
    assert_non_null(env);
    snprintf(env->dir, sizeof env->dir, "/tmp/test_output.XXXXXX");
    assert_non_null(mkdtemp(env->dir));
    *state = env;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *env = *state;
    tmpdir_remove(env->dir);
    free(env);
    return 0;
}

static output_opts_t s_opts(const char *path)
{
    return (output_opts_t){.path = path, .bufsize = 1 << 16};
}

static output_t *s_open(const output_opts_t *opts)
{
    char err[512] = "";
    output_t *o = output_open(opts, err, sizeof err);
    if (!o)
        fail_msg("output_open(%s): %s", opts->path, err);
    return o;
}

static wire_iface_t s_iface(uint16_t linktype, const char *name)
{
    wire_iface_t f = {.linktype = linktype, .snaplen = 65535};
    snprintf(f.name, sizeof f.name, "%s", name);
    snprintf(f.description, sizeof f.description, "test %s", name);
    return f;
}

/* The id of `source`/`name`, which must be accepted. */
static int s_add_iface(output_t *o, const char *source, uint16_t linktype, const char *name)
{
    wire_iface_t f = s_iface(linktype, name);
    char why[512] = "";
    int id = output_interface(o, source, "a source", &f, why, sizeof why);
    if (id < 0)
        fail_msg("output_interface(%s/%s): %d %s", source, name, id, why);
    return id;
}

static uint8_t s_byte(unsigned seed, size_t i)
{
    return (uint8_t)(seed * 31 + i * 7);
}

/* Packet number `seed`: its timestamp, length and bytes follow from it. */
static void s_write_packet(output_t *o, uint32_t ifid, unsigned seed, uint32_t caplen)
{
    static uint8_t data[WIRE_SNAPLEN_MAX];
    assert_true(caplen <= sizeof data);
    for (size_t i = 0; i < caplen; i++)
        data[i] = s_byte(seed, i);
    wire_packet_t pkt = {
        .ts_ns = S_TS0 + seed, .caplen = caplen, .origlen = caplen + 4, .data = data};
    assert_true(output_room(o, caplen, NULL));
    assert_int_equal(output_packet(o, ifid, &pkt, NULL), 0);
}

static long long s_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void s_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void s_assert_text(const char *path, const char *text)
{
    char buf[256] = "";
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, text);
}

/* Reads `path` with libpcap: its link type, then packets seeds[0..n) of
 * `caplen` bytes each, and nothing more. */
static void s_expect_pcap(const char *path, int linktype, const unsigned *seeds, size_t n,
                          uint32_t caplen)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p)
        fail_msg("libpcap cannot read %s: %s", path, err);
    assert_int_equal(pcap_datalink(p), linktype);
    for (size_t k = 0; k < n; k++) {
        struct pcap_pkthdr *h;
        const u_char *data;
        int rc = pcap_next_ex(p, &h, &data);
        if (rc != 1)
            fail_msg("%s: packet %zu of %zu: %d %s", path, k, n, rc, pcap_geterr(p));
        assert_int_equal((uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec,
                         S_TS0 + seeds[k]);
        assert_int_equal(h->caplen, caplen);
        assert_int_equal(h->len, caplen + 4);
        for (size_t i = 0; i < caplen; i++)
            if (data[i] != s_byte(seeds[k], i))
                fail_msg("%s: packet %zu byte %zu differs", path, k, i);
    }
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(p, &h, &data);
    if (rc != -2)
        fail_msg("%s: %d after %zu packets, expected the end (%s)", path, rc, n, pcap_geterr(p));
    pcap_close(p);
}

/* The blocks of a pcapng file as letters: S(HB), I(DB), E(PB), ? other. */
static void s_blocks(const char *path, char *out, size_t outlen)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n < sizeof buf);
    size_t o = 0;
    for (size_t off = 0; off < n;) {
        uint32_t type, len;
        assert_true(n - off >= 12);
        memcpy(&type, buf + off, 4);
        memcpy(&len, buf + off + 4, 4);
        if (len < 12 || len % 4 || len > n - off)
            fail_msg("%s: bad block at %zu", path, off);
        assert_true(o + 1 < outlen);
        out[o++] = type == 0x0A0D0D0Au ? 'S' : type == 1 ? 'I' : type == 6 ? 'E' : '?';
        off += len;
    }
    out[o] = '\0';
}

/* ---- names --------------------------------------------------------- */

/* A plain path is used as it is, and an existing file there replaced, when
 * the first flush with an interface is written (not before). */
static void test_plain_path_truncated(void **state)
{
    s_env_t *env = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/out.pcapng", env->dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 5000; i++)
        fputc('x', f);
    fclose(f);

    output_opts_t opts = s_opts(path);
    output_t *o = s_open(&opts);
    assert_string_equal(output_path(o), path);
    assert_string_equal(output_name(o), path);
    assert_int_equal(output_files(o), 0);
    assert_int_equal(s_size(path), 5000);
    int id = s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
    assert_int_equal(id, 0);
    s_write_packet(o, 0, 1, 100);
    s_write_packet(o, 0, 2, 100);
    assert_int_equal(s_size(path), 5000);
    assert_int_equal(output_flush(o), 0);
    assert_int_equal(output_files(o), 1);
    uint64_t bytes = output_bytes(o);
    assert_int_equal(output_offset(o), bytes);
    output_close(&o);
    assert_null(o);
    output_close(&o); /* accepts NULL */
    assert_int_equal(s_size(path), bytes);
    static const unsigned seeds[] = {1, 2};
    s_expect_pcap(path, S_LINKTYPE_ETHERNET, seeds, 2, 100);
}

/* keep_existing: an existing file becomes a pattern with an index before
 * its extension, and the first free index is taken; no existing file is
 * touched. */
static void test_keep_existing_next_free_name(void **state)
{
    s_env_t *env = *state;
    static const struct {
        const char *make[3]; /* files that exist first */
        const char *path;    /* asked for */
        const char *want;    /* got */
    } cases[] = {
        {{"cap.pcapng", "cap-0000.pcapng"}, "cap.pcapng", "cap-0001.pcapng"},
        {{"cap.pcapng", "cap-0001.pcapng"}, "cap.pcapng", "cap-0000.pcapng"},
        {{"noext"}, "noext", "noext-0000"},
        {{"a.b.pcapng"}, "a.b.pcapng", "a.b-0000.pcapng"}, /* the last dot */
        {{"d.x/cap"}, "d.x/cap", "d.x/cap-0000"},          /* a dot in the directory */
        {{".hidden"}, ".hidden", ".hidden-0000"},          /* a leading dot */
        {{"x-0000.pcapng", "x-0001.pcapng"}, "x-%i.pcapng", "x-0002.pcapng"},
        {{"other.pcapng"}, "new.pcapng", "new.pcapng"}, /* free: as it is */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char sub[128], path[256], want[256], made[256], text[64];
        snprintf(sub, sizeof sub, "%s/case%zu", env->dir, c);
        assert_int_equal(mkdir(sub, 0755), 0);
        snprintf(made, sizeof made, "%s/d.x", sub);
        assert_int_equal(mkdir(made, 0755), 0);
        for (int k = 0; k < 3 && cases[c].make[k]; k++) {
            snprintf(made, sizeof made, "%s/%s", sub, cases[c].make[k]);
            snprintf(text, sizeof text, "keep me %d", k);
            s_write_text(made, text);
        }
        snprintf(path, sizeof path, "%s/%s", sub, cases[c].path);
        snprintf(want, sizeof want, "%s/%s", sub, cases[c].want);
        output_opts_t opts = s_opts(path);
        opts.keep_existing = true;
        output_t *o = s_open(&opts);
        if (strcmp(output_path(o), want) != 0)
            fail_msg("case %zu: %s opened %s, expected %s", c, path, output_path(o), want);
        s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
        s_write_packet(o, 0, 1, 60);
        output_close(&o);
        static const unsigned seeds[] = {1};
        s_expect_pcap(want, S_LINKTYPE_ETHERNET, seeds, 1, 60);
        for (int k = 0; k < 3 && cases[c].make[k]; k++) {
            snprintf(made, sizeof made, "%s/%s", sub, cases[c].make[k]);
            snprintf(text, sizeof text, "keep me %d", k);
            s_assert_text(made, text);
        }
    }
}

/* Opened again and again with keep_existing, each run takes a new file. */
static void test_keep_existing_runs(void **state)
{
    s_env_t *env = *state;
    char path[128], want[160];
    snprintf(path, sizeof path, "%s/run.pcapng", env->dir);
    for (int run = 0; run < 4; run++) {
        output_opts_t opts = s_opts(path);
        opts.keep_existing = true;
        output_t *o = s_open(&opts);
        if (run == 0)
            snprintf(want, sizeof want, "%s", path);
        else
            snprintf(want, sizeof want, "%s/run-%04d.pcapng", env->dir, run - 1);
        assert_string_equal(output_path(o), want);
        s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
        s_write_packet(o, 0, (unsigned)run, 60);
        output_close(&o);
    }
    for (int run = 0; run < 4; run++) {
        if (run == 0)
            snprintf(want, sizeof want, "%s", path);
        else
            snprintf(want, sizeof want, "%s/run-%04d.pcapng", env->dir, run - 1);
        const unsigned seeds[] = {(unsigned)run};
        s_expect_pcap(want, S_LINKTYPE_ETHERNET, seeds, 1, 60);
    }
}

/* A '%' makes a pattern: strftime conversions expanded, "%%" a percent
 * sign, and an index added before the extension. */
static void test_strftime_expanded(void **state)
{
    s_env_t *env = *state;
    char path[128], want[160];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);

    snprintf(path, sizeof path, "%s/%%Y-cap.pcapng", env->dir);
    output_opts_t opts = s_opts(path);
    output_t *o = s_open(&opts);
    snprintf(want, sizeof want, "%s/%04d-cap-0000.pcapng", env->dir, tm.tm_year + 1900);
    assert_string_equal(output_path(o), want);
    s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
    output_close(&o);
    assert_true(s_size(want) >= 0);

    snprintf(path, sizeof path, "%s/a%%%%b.pcapng", env->dir); /* a%%b.pcapng */
    opts = s_opts(path);
    o = s_open(&opts);
    snprintf(want, sizeof want, "%s/a%%b-0000.pcapng", env->dir);
    assert_string_equal(output_path(o), want);
    s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
    output_close(&o);
    assert_true(s_size(want) >= 0);
}

/* A pattern whose only "%i" is the escaped "%%i" (a literal "%i" in the
 * name) has no index: "-%i" is added, so that the files of a rotation get
 * names of their own (once, each rotation truncated the one before).
 * Expected lit%i-0000.pcapng, lit%i-0001.pcapng. */
static void test_escaped_percent_i_is_no_index(void **state)
{
    s_env_t *env = *state;
    char path[128], want[160];
    snprintf(path, sizeof path, "%s/lit%%%%i.pcapng", env->dir); /* lit%%i.pcapng */
    output_opts_t opts = s_opts(path);
    opts.rotate_bytes = 1;
    output_t *o = s_open(&opts);
    snprintf(want, sizeof want, "%s/lit%%i-0000.pcapng", env->dir);
    assert_string_equal(output_path(o), want);
    s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
    s_write_packet(o, 0, 1, 60);
    assert_int_equal(output_flush(o), 0);
    assert_int_equal(output_rotate_if_due(o, clock_mono_ms()), 1);
    snprintf(want, sizeof want, "%s/lit%%i-0001.pcapng", env->dir);
    assert_string_equal(output_path(o), want);
    output_close(&o);
}

/* ---- rotation ------------------------------------------------------ */

enum { S_FILES_MAX = 16, S_PER_FILE_MAX = 64 };

typedef struct {
    char path[S_FILES_MAX][256];
    unsigned seeds[S_FILES_MAX][S_PER_FILE_MAX];
    size_t n[S_FILES_MAX];
    size_t files;
} s_files_t;

/* Writes `count` packets of `caplen` bytes, flushing and asking for a
 * rotation after each (at `now_ms`, or the clock when 0); checks that it
 * rotates exactly when the flushed file reached `rotate_bytes`. */
static void s_write_rotating(output_t *o, s_files_t *fs, unsigned count, uint32_t caplen,
                             uint32_t nifaces, uint64_t rotate_bytes, int64_t now_ms)
{
    for (unsigned k = 0; k < count; k++) {
        size_t f = fs->files - 1;
        assert_true(fs->n[f] < S_PER_FILE_MAX);
        s_write_packet(o, k % nifaces, k, caplen);
        fs->seeds[f][fs->n[f]++] = k;
        assert_int_equal(output_flush(o), 0);
        assert_int_equal(output_buffered(o), 0);
        uint64_t off = output_offset(o);
        assert_int_equal(s_size(fs->path[f]), off);
        int rc = output_rotate_if_due(o, now_ms ? now_ms : clock_mono_ms());
        assert_int_equal(rc, off >= rotate_bytes ? 1 : 0);
        if (rc == 1) {
            assert_true(fs->files < S_FILES_MAX);
            assert_string_not_equal(output_path(o), fs->path[f]);
            snprintf(fs->path[fs->files], sizeof fs->path[0], "%s", output_path(o));
            fs->n[fs->files++] = 0;
            assert_int_equal(output_files(o), fs->files - 1); /* not created yet */
            assert_int_equal(output_offset(o), 0);            /* a new file */
            assert_true(output_buffered(o) > 0);              /* its header blocks */
            assert_int_equal(s_size(output_path(o)), -1);     /* until they are flushed */
        }
    }
}

/* Past rotate_bytes a new file begins, named by the next index; each file
 * starts with the SHB and every IDB and is read on its own by libpcap. */
static void test_rotate_by_size(void **state)
{
    s_env_t *env = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/rot.pcapng", env->dir);
    output_opts_t opts = s_opts(path);
    opts.rotate_bytes = 2000;
    output_t *o = s_open(&opts);
    s_files_t *fs = calloc(1, sizeof *fs);
    assert_non_null(fs);
    snprintf(fs->path[0], sizeof fs->path[0], "%s/rot-0000.pcapng", env->dir);
    fs->files = 1;
    assert_string_equal(output_path(o), fs->path[0]);
    assert_int_equal(s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0"), 0);
    assert_int_equal(s_add_iface(o, "edge2", S_LINKTYPE_ETHERNET, "eth0"), 1);
    assert_int_equal(output_flush(o), 0);
    assert_true(output_offset(o) < 2000);
    /* age does not count without rotate_ms, however late it is */
    assert_int_equal(output_rotate_if_due(o, clock_mono_ms() + 1000000000), 0);

    s_write_rotating(o, fs, 30, 300, 2, 2000, clock_mono_ms() + 1000000000);
    assert_true(fs->files >= 3);
    assert_int_equal(output_flush(o), 0); /* the last file's header blocks */
    uint64_t bytes = output_bytes(o);
    output_close(&o);

    uint64_t total = 0;
    for (size_t f = 0; f < fs->files; f++) {
        char want[160];
        snprintf(want, sizeof want, "%s/rot-%04zu.pcapng", env->dir, f);
        assert_string_equal(fs->path[f], want);
        char blocks[128];
        s_blocks(fs->path[f], blocks, sizeof blocks);
        assert_true(strncmp(blocks, "SII", 3) == 0);
        assert_int_equal(strspn(blocks + 3, "E"), strlen(blocks + 3));
        assert_int_equal(strlen(blocks + 3), fs->n[f]);
        s_expect_pcap(fs->path[f], S_LINKTYPE_ETHERNET, fs->seeds[f], fs->n[f], 300);
        total += (uint64_t)s_size(fs->path[f]);
        if (f + 1 < fs->files)
            assert_true(s_size(fs->path[f]) >= 2000);
    }
    assert_int_equal(total, bytes);
    assert_int_equal(s_size(path), -1); /* the plain name itself is not used */
    free(fs);
}

/* Classic pcap rotates too: each file has its own file header. */
static void test_rotate_pcap_format(void **state)
{
    s_env_t *env = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/rot-%%i.pcap", env->dir);
    output_opts_t opts = s_opts(path);
    opts.format = PCAPNG_FORMAT_PCAP;
    opts.rotate_bytes = 1000;
    output_t *o = s_open(&opts);
    s_files_t *fs = calloc(1, sizeof *fs);
    assert_non_null(fs);
    snprintf(fs->path[0], sizeof fs->path[0], "%s/rot-0000.pcap", env->dir);
    fs->files = 1;
    assert_string_equal(output_path(o), fs->path[0]);
    assert_int_equal(s_add_iface(o, "edge1", 228, "ip0"), 0); /* LINKTYPE = DLT_IPV4 */
    s_write_rotating(o, fs, 12, 200, 1, 1000, 0);
    assert_true(fs->files >= 2);
    output_close(&o);
    for (size_t f = 0; f < fs->files; f++)
        s_expect_pcap(fs->path[f], 228, fs->seeds[f], fs->n[f], 200);
    free(fs);
}

/* rotate_ms after the file was opened, and counted again from the
 * rotation, on the caller's clock (here faked). */
static void test_rotate_by_age(void **state)
{
    s_env_t *env = *state;
    char path[128], want[160];
    snprintf(path, sizeof path, "%s/age.pcapng", env->dir);
    output_opts_t opts = s_opts(path);
    opts.rotate_ms = 60000;
    int64_t opened = clock_mono_ms();
    output_t *o = s_open(&opts);
    assert_int_equal(s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0"), 0);
    for (unsigned k = 0; k < 20; k++)
        s_write_packet(o, 0, k, 1000);
    assert_int_equal(output_flush(o), 0);
    assert_true(output_offset(o) > 20000); /* size does not count without rotate_bytes */
    assert_int_equal(output_rotate_if_due(o, opened + 30000), 0);
    assert_int_equal(output_rotate_if_due(o, opened), 0);
    snprintf(want, sizeof want, "%s/age-0000.pcapng", env->dir);
    assert_string_equal(output_path(o), want);

    int64_t later = clock_mono_ms() + 61000;
    assert_int_equal(output_rotate_if_due(o, later), 1);
    snprintf(want, sizeof want, "%s/age-0001.pcapng", env->dir);
    assert_string_equal(output_path(o), want);
    assert_int_equal(output_offset(o), 0);
    s_write_packet(o, 0, 100, 60);
    assert_int_equal(output_flush(o), 0);
    assert_int_equal(output_rotate_if_due(o, later + 59999), 0); /* a young file */
    assert_int_equal(output_rotate_if_due(o, later + 60000), 1);
    snprintf(want, sizeof want, "%s/age-0002.pcapng", env->dir);
    assert_string_equal(output_path(o), want);
    assert_int_equal(output_files(o), 2); /* age-0002 appears with its first flush */
    output_close(&o);
    char blocks[16];
    s_blocks(want, blocks, sizeof blocks);
    assert_string_equal(blocks, "SI");
    snprintf(want, sizeof want, "%s/age-0001.pcapng", env->dir);
    static const unsigned seeds[] = {100};
    s_expect_pcap(want, S_LINKTYPE_ETHERNET, seeds, 1, 60);
}

/* A rotation with keep_existing skips names that exist, and leaves them. */
static void test_rotate_keeps_existing(void **state)
{
    s_env_t *env = *state;
    char path[128], taken[160], want[160];
    snprintf(path, sizeof path, "%s/k.pcapng", env->dir);
    snprintf(taken, sizeof taken, "%s/k-0001.pcapng", env->dir);
    s_write_text(taken, "keep me");
    output_opts_t opts = s_opts(path);
    opts.rotate_bytes = 1;
    opts.keep_existing = true;
    output_t *o = s_open(&opts);
    snprintf(want, sizeof want, "%s/k-0000.pcapng", env->dir);
    assert_string_equal(output_path(o), want);
    s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
    s_write_packet(o, 0, 1, 60);
    assert_int_equal(output_flush(o), 0);
    assert_int_equal(output_rotate_if_due(o, clock_mono_ms()), 1);
    snprintf(want, sizeof want, "%s/k-0002.pcapng", env->dir);
    assert_string_equal(output_path(o), want);
    output_close(&o);
    s_assert_text(taken, "keep me");
}

/* "-" writes to standard output and never rotates. */
static void test_stdout_never_rotates(void **state)
{
    s_env_t *env = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/stdout.pcapng", env->dir);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);

    output_opts_t opts = s_opts("-");
    opts.rotate_bytes = 1;
    opts.rotate_ms = 1;
    opts.keep_existing = true;
    char err[256] = "";
    output_t *o = output_open(&opts, err, sizeof err);
    bool ok = o != NULL;
    char got_path[64] = "", got_name[64] = "";
    int rc = -1;
    unsigned files = 0;
    if (o) {
        snprintf(got_path, sizeof got_path, "%s", output_path(o));
        snprintf(got_name, sizeof got_name, "%s", output_name(o));
        s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
        s_write_packet(o, 0, 7, 80);
        ok = output_flush(o) == 0;
        rc = output_rotate_if_due(o, clock_mono_ms() + 1000000000);
        files = output_files(o);
        output_close(&o);
    }
    bool still_open = fcntl(STDOUT_FILENO, F_GETFD) >= 0 && s_size(path) > 0;
    assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);

    if (!ok)
        fail_msg("output to standard output: %s", err);
    assert_string_equal(got_path, "-");
    assert_string_equal(got_name, "standard output");
    assert_int_equal(rc, 0);
    assert_int_equal(files, 1);
    assert_true(still_open);
    static const unsigned seeds[] = {7};
    s_expect_pcap(path, S_LINKTYPE_ETHERNET, seeds, 1, 80);
}

/* ---- a failed write ------------------------------------------------- */

/* Makes a write that crosses `limit` bytes of a file write what fits and
 * fail (EFBIG), as on a full disk; s_limit(-1) lifts it. */
static void s_limit(long long limit)
{
    static struct rlimit saved;
    static bool limited;
    signal(SIGXFSZ, SIG_IGN);
    if (limit < 0) {
        if (limited)
            assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        limited = false;
        return;
    }
    if (!limited)
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    struct rlimit rl = saved;
    rl.rlim_cur = (rlim_t)limit;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
    limited = true;
}

/* A flush that fails part-way leaves part of a block in the file;
 * output_abort cuts it off, so that the file ends with the last whole
 * flush and reads to its end; after it nothing is written, not even by
 * output_close. */
static void test_abort_cuts_failed_write(void **state)
{
    s_env_t *env = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/out.pcapng", env->dir);
    output_opts_t opts = s_opts(path);
    output_t *o = s_open(&opts);
    s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
    s_write_packet(o, 0, 1, 100);
    s_write_packet(o, 0, 2, 100);
    assert_int_equal(output_flush(o), 0);
    long long whole = s_size(path);
    assert_int_equal((long long)output_offset(o), whole);

    s_limit(whole + 60);
    for (unsigned seed = 3; seed < 10; seed++)
        s_write_packet(o, 0, seed, 100);
    int rc = output_flush(o);
    long long torn = s_size(path);
    int cut = output_abort(o);
    long long after = s_size(path);
    s_limit(-1);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(torn, whole + 60);
    assert_int_equal(cut, 1);
    assert_int_equal(after, whole);

    assert_int_equal(output_flush(o), -ECANCELED);
    assert_int_equal(output_end(o), -ECANCELED);
    output_close(&o);
    assert_int_equal(s_size(path), whole);
    static const unsigned seeds[] = {1, 2};
    s_expect_pcap(path, S_LINKTYPE_ETHERNET, seeds, 2, 100);

    /* nothing failed, but what is buffered must not be written (its
     * intent could not be recorded): it never is */
    snprintf(path, sizeof path, "%s/out2.pcapng", env->dir);
    opts = s_opts(path);
    o = s_open(&opts);
    s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
    s_write_packet(o, 0, 1, 100);
    assert_int_equal(output_flush(o), 0);
    whole = s_size(path);
    s_write_packet(o, 0, 2, 100);
    assert_int_equal(output_abort(o), 0);
    assert_int_equal(output_rotate_if_due(o, clock_mono_ms()), -ECANCELED);
    output_close(&o);
    assert_int_equal(s_size(path), whole);
    s_expect_pcap(path, S_LINKTYPE_ETHERNET, seeds, 1, 100);
}

/* Standard output redirected to a regular file is cut back the same way,
 * from where the collector's bytes begin in it: after what the file held
 * at the position it was handed over at, or, opened for appending
 * (tapmesh-collect >> file), at its end. */
static void test_abort_cuts_stdout_file(void **state)
{
    s_env_t *env = *state;
    for (int append = 0; append < 2; append++) {
        char path[128];
        snprintf(path, sizeof path, "%s/stdout%d.pcapng", env->dir, append);
        s_write_text(path, "before\n");
        fflush(stdout);
        int saved = dup(STDOUT_FILENO);
        assert_true(saved >= 0);
        int fd = open(path, O_WRONLY | (append ? O_APPEND : 0));
        assert_true(fd >= 0);
        if (!append)
            assert_int_equal(lseek(fd, 0, SEEK_END), 7);
        assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
        close(fd);

        output_opts_t opts = s_opts("-");
        output_t *o = output_open(&opts, (char[256]){0}, 256);
        int rc = -1, cut = -1;
        long long whole = -1, torn = -1;
        if (o) {
            s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
            s_write_packet(o, 0, 1, 100);
            if (output_flush(o) == 0)
                whole = s_size(path);
            s_limit(whole + 60);
            for (unsigned seed = 2; seed < 10; seed++)
                s_write_packet(o, 0, seed, 100);
            rc = output_flush(o);
            torn = s_size(path);
            cut = output_abort(o);
            s_limit(-1);
            output_close(&o);
        }
        assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
        close(saved);
        assert_true(whole > 7 + 100);
        assert_int_equal(rc, -EFBIG);
        assert_int_equal(torn, whole + 60);
        assert_int_equal(cut, 1);
        assert_int_equal(s_size(path), whole);
        char head[8] = "";
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(head, 1, 7, f), 7);
        fclose(f);
        assert_memory_equal(head, "before\n", 7);
    }
}

/* ---- interfaces ---------------------------------------------------- */

static int s_try_iface(output_t *o, const char *source, uint16_t linktype, const char *name,
                       char *why, size_t whylen)
{
    wire_iface_t f = s_iface(linktype, name);
    why[0] = '\0';
    return output_interface(o, source, "", &f, why, whylen);
}

static void s_assert_has(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("\"%s\" does not name %s", text, needle);
}

/* One id per (source, interface, link type); LINKTYPE_POLICY=first
 * refuses a second link type and says why. */
static void test_interface_policy_first(void **state)
{
    s_env_t *env = *state;
    char path[128], why[1024];
    snprintf(path, sizeof path, "%s/if.pcapng", env->dir);
    output_opts_t opts = s_opts(path);
    output_t *o = s_open(&opts);
    assert_int_equal(s_add_iface(o, "A", 105, "eth0"), 0);
    assert_int_equal(s_add_iface(o, "A", 105, "eth0"), 0);
    assert_int_equal(s_add_iface(o, "A", 105, "eth1"), 1);
    assert_int_equal(s_add_iface(o, "B", 105, "eth0"), 2);
    assert_int_equal(s_add_iface(o, "A", 105, "eth0"), 0);
    assert_int_equal(s_try_iface(o, "A", 228, "eth2", why, sizeof why), -EPROTOTYPE);
    s_assert_has(why, "A/eth2");
    s_assert_has(why, "105");
    s_assert_has(why, "228");
    s_assert_has(why, "LINKTYPE_POLICY");
    assert_int_equal(s_try_iface(o, "A", 228, "eth0", why, sizeof why), -EPROTOTYPE);
    assert_int_equal(s_add_iface(o, "C", 105, "eth0"), 3); /* the refused took no id */
    assert_int_equal(s_add_iface(o, "B", 105, "eth0"), 2);
    output_close(&o);
}

/* LINKTYPE_POLICY=mixed: every link type, the same name under another link
 * type being another interface. */
static void test_interface_policy_mixed(void **state)
{
    s_env_t *env = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/if.pcapng", env->dir);
    output_opts_t opts = s_opts(path);
    opts.policy = OUTPUT_LINKTYPE_MIXED;
    output_t *o = s_open(&opts);
    assert_int_equal(s_add_iface(o, "A", 105, "eth0"), 0);
    assert_int_equal(s_add_iface(o, "A", 228, "eth0"), 1);
    assert_int_equal(s_add_iface(o, "B", S_LINKTYPE_ETHERNET, "eth0"), 2);
    assert_int_equal(s_add_iface(o, "A", 228, "eth0"), 1);
    assert_int_equal(s_add_iface(o, "A", 105, "eth0"), 0);
    output_close(&o);
    char blocks[16];
    s_blocks(path, blocks, sizeof blocks);
    assert_string_equal(blocks, "SIII");
}

/* OUTPUT_FORMAT=pcap holds one link type, whatever the policy. */
static void test_interface_pcap_format(void **state)
{
    s_env_t *env = *state;
    char path[128], why[1024];
    snprintf(path, sizeof path, "%s/if.pcap", env->dir);
    output_opts_t opts = s_opts(path);
    opts.format = PCAPNG_FORMAT_PCAP;
    opts.policy = OUTPUT_LINKTYPE_MIXED;
    output_t *o = s_open(&opts);
    assert_int_equal(s_add_iface(o, "A", 105, "wlan0"), 0);
    assert_int_equal(s_try_iface(o, "B", 228, "ip0", why, sizeof why), -EPROTOTYPE);
    s_assert_has(why, "B/ip0");
    s_assert_has(why, "105");
    s_assert_has(why, "228");
    s_assert_has(why, "OUTPUT_FORMAT=pcap");
    output_close(&o);
}

/* ---- the buffer ---------------------------------------------------- */

/* Nothing reaches the file but through output_flush: an interface that no
 * longer fits the buffer is refused with -ENOBUFS (never flushed behind
 * the caller's back), known interfaces still answer, and packets go in
 * until output_room says no. */
static void test_buffer_full(void **state)
{
    s_env_t *env = *state;
    char path[128], why[512];
    snprintf(path, sizeof path, "%s/buf.pcapng", env->dir);
    output_opts_t opts = s_opts(path);
    opts.bufsize = 1; /* the writer raises it to hold one packet of the largest */
    output_t *o = s_open(&opts);
    assert_int_equal(s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0"), 0);
    assert_true(output_room(o, WIRE_SNAPLEN_MAX, NULL));

    /* the largest IDB there is, offered while the buffer fills */
    wire_iface_t big = {.linktype = S_LINKTYPE_ETHERNET, .snaplen = 65535};
    memset(big.name, 'n', WIRE_NAME_MAX);
    memset(big.description, 'd', WIRE_TEXT_MAX);
    char source_descr[WIRE_TEXT_MAX + 1];
    memset(source_descr, 's', WIRE_TEXT_MAX);
    source_descr[WIRE_TEXT_MAX] = '\0';
    int added = 0, refused = 0;
    unsigned packets = 0;
    for (;;) {
        char source[WIRE_NAME_MAX + 1];
        snprintf(source, sizeof source, "%0*d", WIRE_NAME_MAX, added);
        int rc = output_interface(o, source, source_descr, &big, why, sizeof why);
        if (rc == -ENOBUFS) {
            refused++;
            s_assert_has(why, "buffer");
        } else {
            assert_int_equal(rc, added + 1);
            added++;
        }
        assert_int_equal(s_size(path), -1); /* not even created */
        uint32_t caplen = output_room(o, 1500, NULL) ? 1500 : 0;
        if (!output_room(o, caplen, NULL))
            break;
        s_write_packet(o, 0, packets++, caplen);
        assert_int_equal(s_size(path), -1); /* not even created */
        assert_int_equal(output_offset(o), 0);
    }
    assert_true(added > 10);
    assert_true(refused > 0);
    assert_true(packets > 50);
    assert_false(output_room(o, 0, NULL));
    assert_int_equal(s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0"), 0); /* known */
    assert_int_equal(s_try_iface(o, "edge9", S_LINKTYPE_ETHERNET, "eth0", why, sizeof why),
                     -ENOBUFS);
    assert_int_equal(s_size(path), -1); /* not even created */
    assert_int_equal(output_bytes(o), 0);

    size_t buffered = output_buffered(o);
    assert_true(buffered > 0);
    assert_int_equal(output_flush(o), 0);
    assert_int_equal(output_buffered(o), 0);
    assert_int_equal(output_offset(o), buffered);
    assert_int_equal(output_bytes(o), buffered);
    assert_int_equal(s_size(path), buffered);
    assert_int_equal(s_add_iface(o, "edge9", S_LINKTYPE_ETHERNET, "eth0"), added + 1);

    /* a comment takes room too */
    uint32_t lo = 0, hi = WIRE_SNAPLEN_MAX + 1; /* room(lo) holds, room(hi) does not */
    while (output_room(o, WIRE_SNAPLEN_MAX, NULL))
        s_write_packet(o, 0, packets++, WIRE_SNAPLEN_MAX);
    assert_true(output_room(o, lo, NULL));
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (output_room(o, mid, NULL))
            lo = mid;
        else
            hi = mid;
    }
    assert_false(output_room(o, lo, "a comment"));
    output_close(&o);

    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p)
        fail_msg("libpcap cannot read %s: %s", path, err);
    struct pcap_pkthdr *h;
    const u_char *data;
    unsigned read = 0;
    while (pcap_next_ex(p, &h, &data) == 1)
        read++;
    pcap_close(p);
    assert_int_equal(read, packets);
}

/* ---- files appear whole ------------------------------------------- */

/* A file appears only once its first interface block is written, with
 * its section header and that block in it: before, nothing is buffered
 * for the operating system and no file exists, so that no file is left
 * that a reader cannot open (a crash while starting, or no source). */
static void test_file_appears_with_first_interface(void **state)
{
    s_env_t *env = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/late.pcapng", env->dir);
    output_opts_t opts = s_opts(path);
    output_t *o = s_open(&opts);
    assert_string_equal(output_path(o), path);
    assert_int_equal(output_buffered(o), 0);
    assert_int_equal(output_flush(o), 0);
    assert_int_equal(s_size(path), -1);
    assert_int_equal(output_files(o), 0);
    assert_int_equal(output_offset(o), 0);
    assert_int_equal(output_rotate_if_due(o, clock_mono_ms() + 1000000), 0);

    s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
    assert_true(output_buffered(o) > 0);
    assert_int_equal(s_size(path), -1); /* buffered only */
    assert_int_equal(output_flush(o), 0);
    assert_int_equal(output_files(o), 1);
    char blocks[16];
    s_blocks(path, blocks, sizeof blocks);
    assert_string_equal(blocks, "SI");
    s_expect_pcap(path, S_LINKTYPE_ETHERNET, NULL, 0, 0);
    s_write_packet(o, 0, 5, 70);
    output_close(&o);
    static const unsigned seeds[] = {5};
    s_expect_pcap(path, S_LINKTYPE_ETHERNET, seeds, 1, 70);
}

/* ---- open(2), through the linker (-Wl,--wrap=open) ------------------------------ */

/* When set, O_TMPFILE is refused as on a file system without anonymous
 * files, so that the hidden-name path runs. */
static bool s_no_tmpfile;

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);

int __wrap_open(const char *path, int flags, ...)
{
    int mode = 0;
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, int);
        va_end(ap);
    }
    if (s_no_tmpfile && (flags & O_TMPFILE) == O_TMPFILE) {
        errno = EOPNOTSUPP;
        return -1;
    }
    return __real_open(path, flags, mode);
}

/* Outputs hold captured packets: 0640, less when the umask says so, on
 * either way a file is made (an anonymous file linked, or a hidden name
 * linked), in place of an earlier file of the same name that was wider,
 * and for the next file of a rotation. */
static void test_file_modes(void **state)
{
    s_env_t *env = *state;
    static const struct {
        mode_t umask, want;
    } cases[] = {{022, 0640}, {0, 0640}, {027, 0640}, {077, 0600}, {0237, 0440}};
    for (int hidden = 0; hidden < 2; hidden++) {
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            char path[128], first[160], second[160];
            snprintf(path, sizeof path, "%s/modes-%d-%zu.pcapng", env->dir, hidden, i);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644); /* an earlier one */
            assert_true(fd >= 0);
            assert_int_equal(fchmod(fd, 0666), 0);
            close(fd);
            s_no_tmpfile = hidden;
            mode_t old = umask(cases[i].umask);
            output_opts_t opts = s_opts(path);
            output_t *o = s_open(&opts);
            s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
            s_write_packet(o, 0, 5, 70);
            assert_int_equal(output_flush(o), 0);
            snprintf(first, sizeof first, "%s", output_path(o));
            output_close(&o);
            /* a rotation's next file */
            char pattern[160];
            snprintf(pattern, sizeof pattern, "%s/rot-%d-%zu-%%i.pcapng", env->dir, hidden, i);
            opts = s_opts(pattern);
            opts.rotate_bytes = 100;
            o = s_open(&opts);
            s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
            s_write_packet(o, 0, 5, 70);
            assert_int_equal(output_flush(o), 0);
            assert_int_equal(output_rotate_if_due(o, clock_mono_ms()), 1);
            s_write_packet(o, 0, 6, 70);
            assert_int_equal(output_flush(o), 0);
            snprintf(second, sizeof second, "%s", output_path(o));
            output_close(&o);
            umask(old);
            s_no_tmpfile = false;
            const char *const files[] = {first, second};
            for (int k = 0; k < 2; k++) {
                struct stat st;
                assert_int_equal(stat(files[k], &st), 0);
                if ((st.st_mode & 07777) != cases[i].want)
                    fail_msg("%s, umask %03o: %s has mode %04o, expected %04o",
                             hidden ? "hidden name" : "anonymous file", (unsigned)cases[i].umask,
                             files[k], (unsigned)(st.st_mode & 07777), (unsigned)cases[i].want);
            }
            assert_string_equal(first, path);
            s_expect_pcap(path, S_LINKTYPE_ETHERNET, (const unsigned[]){5}, 1, 70);
        }
    }
    /* no hidden file was left behind */
    DIR *d = opendir(env->dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            fail_msg("left behind: %s", e->d_name);
    closedir(d);
}

/* An output that never had an interface leaves no file behind, whatever
 * its name or format, and a plain path's earlier file is left as it was. */
static void test_no_interface_no_file(void **state)
{
    s_env_t *env = *state;
    char path[128], made[160];
    for (int variant = 0; variant < 4; variant++) {
        snprintf(path, sizeof path, "%s/none%d.pcapng", env->dir, variant);
        output_opts_t opts = s_opts(path);
        opts.keep_existing = variant == 1;
        opts.rotate_bytes = variant == 2 ? 1000 : 0;
        opts.format = variant == 3 ? PCAPNG_FORMAT_PCAP : PCAPNG_FORMAT_PCAPNG;
        output_t *o = s_open(&opts);
        snprintf(made, sizeof made, "%s", output_path(o));
        assert_int_equal(output_flush(o), 0);
        assert_int_equal(output_end(o), 0);
        assert_int_equal(output_files(o), 0);
        output_close(&o);
        assert_int_equal(s_size(made), -1);
    }
    DIR *d = opendir(env->dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            fail_msg("%s/%s was left behind", env->dir, e->d_name);
    closedir(d);

    snprintf(path, sizeof path, "%s/kept.pcapng", env->dir);
    s_write_text(path, "earlier capture");
    output_opts_t opts = s_opts(path);
    output_t *o = s_open(&opts);
    output_close(&o);
    s_assert_text(path, "earlier capture");
}

/* Standard output: nothing until the first interface; a clean end
 * without any gives a section header and one interface block ("none", no
 * packets), so that a reader such as `tcpdump -r -` ends without error.
 * With an interface, the end adds nothing. */
/* OUTPUT=none: interfaces and packets taken, the link type policy
 * applied, flushes and the end succeed, and nothing is created anywhere;
 * rotation is refused. */
static void test_output_none(void **state)
{
    s_env_t *env = *state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(env->dir), 0);
    output_opts_t opts = s_opts(OUTPUT_NONE);
    char err[256];
    output_t *o = output_open(&opts, err, sizeof err);
    assert_non_null(o);
    assert_non_null(strstr(output_name(o), "OUTPUT=none"));
    assert_int_equal(s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0"), 0);
    wire_iface_t raw = s_iface(101, "tun0");
    char why[512];
    assert_int_equal(output_interface(o, "edge2", "", &raw, why, sizeof why), -EPROTOTYPE);
    for (unsigned k = 0; k < 100; k++) {
        s_write_packet(o, 0, k, 1000);
        if (k % 10 == 0)
            assert_int_equal(output_flush(o), 0);
    }
    assert_int_equal(output_end(o), 0);
    assert_int_equal(output_files(o), 0);
    assert_int_equal(output_bytes(o), 0);
    output_close(&o);
    DIR *d = opendir(env->dir);
    assert_non_null(d);
    struct dirent *e;
    unsigned entries = 0;
    while ((e = readdir(d)))
        entries += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    assert_int_equal(entries, 0);
    opts.rotate_bytes = 1 << 20;
    assert_null(output_open(&opts, err, sizeof err));
    assert_int_equal(chdir(cwd), 0);
}

static void test_stdout_end_without_source(void **state)
{
    s_env_t *env = *state;
    for (int variant = 0; variant < 3; variant++) {
        char path[128];
        snprintf(path, sizeof path, "%s/stdout%d.out", env->dir, variant);
        fflush(stdout);
        int saved = dup(STDOUT_FILENO);
        assert_true(saved >= 0);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
        close(fd);
        output_opts_t opts = s_opts("-");
        opts.format = variant == 1 ? PCAPNG_FORMAT_PCAP : PCAPNG_FORMAT_PCAPNG;
        output_t *o = output_open(&opts, (char[256]){0}, 256);
        long long before = -2, after_flush = -2;
        int end = -1;
        unsigned files = 9;
        if (o) {
            before = s_size(path);
            if (variant == 2) {
                s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
                s_write_packet(o, 0, 3, 90);
            }
            after_flush = output_flush(o) == 0 ? s_size(path) : -3;
            end = output_end(o);
            files = output_files(o);
            output_close(&o);
        }
        assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
        close(saved);
        assert_int_equal(before, 0);
        assert_int_equal(end, 0);
        assert_int_equal(files, 1);
        if (variant == 2) {
            static const unsigned seeds[] = {3};
            assert_true(after_flush > 0);
            s_expect_pcap(path, S_LINKTYPE_ETHERNET, seeds, 1, 90);
            char blocks[16];
            s_blocks(path, blocks, sizeof blocks);
            assert_string_equal(blocks, "SIE");
            continue;
        }
        assert_int_equal(after_flush, 0);
        s_expect_pcap(path, S_LINKTYPE_ETHERNET, NULL, 0, 0);
        if (variant == 0) {
            char blocks[16];
            s_blocks(path, blocks, sizeof blocks);
            assert_string_equal(blocks, "SI");
        }
    }
}

/* An existing FIFO named by OUTPUT is written in place (a reader such as
 * Wireshark on a named pipe), never replaced by a file; like standard
 * output, it gets nothing before the first interface. */
static void test_fifo_written_in_place(void **state)
{
    s_env_t *env = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/pipe", env->dir);
    assert_int_equal(mkfifo(path, 0644), 0);
    int rd = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(rd >= 0);
    output_opts_t opts = s_opts(path);
    output_t *o = s_open(&opts);
    assert_string_equal(output_path(o), path);
    assert_int_equal(output_flush(o), 0);
    uint8_t buf[4096];
    assert_int_equal(read(rd, buf, sizeof buf), -1); /* nothing yet */
    assert_int_equal(errno, EAGAIN);
    s_add_iface(o, "edge1", S_LINKTYPE_ETHERNET, "eth0");
    s_write_packet(o, 0, 9, 64);
    assert_int_equal(output_flush(o), 0);
    ssize_t n = read(rd, buf, sizeof buf);
    assert_true(n > 0);
    output_close(&o);
    close(rd);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    char copy[160];
    snprintf(copy, sizeof copy, "%s/copy.pcapng", env->dir);
    FILE *f = fopen(copy, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    static const unsigned seeds[] = {9};
    s_expect_pcap(copy, S_LINKTYPE_ETHERNET, seeds, 1, 64);
}

/* ---- errors -------------------------------------------------------- */

static void test_open_error_names_path(void **state)
{
    s_env_t *env = *state;
    char path[128], want[160], err[512];
    snprintf(path, sizeof path, "%s/missing/out.pcapng", env->dir);
    for (int variant = 0; variant < 3; variant++) {
        output_opts_t opts = s_opts(path);
        opts.keep_existing = variant == 1;
        opts.rotate_bytes = variant == 2 ? 1000 : 0;
        snprintf(want, sizeof want, variant == 2 ? "%s/missing/out-0000.pcapng" : "%s",
                 variant == 2 ? env->dir : path);
        err[0] = '\0';
        assert_null(output_open(&opts, err, sizeof err));
        s_assert_has(err, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_path_truncated, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_keep_existing_next_free_name, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_keep_existing_runs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_strftime_expanded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_escaped_percent_i_is_no_index, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_by_size, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_pcap_format, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_by_age, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_keeps_existing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stdout_never_rotates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_interface_policy_first, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_interface_policy_mixed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_interface_pcap_format, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_buffer_full, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_open_error_names_path, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_file_appears_with_first_interface, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_no_interface_no_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_file_modes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stdout_end_without_source, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_output_none, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_fifo_written_in_place, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_abort_cuts_failed_write, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_abort_cuts_stdout_file, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
