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

#include "metrics.h"
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
#include <netinet/in.h>
#include <sys/socket.h>
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

/* ---- the live capture's program: the agent's own connections left out ---- */

static void s_build(const char *filter, const char *hops, const char *want)
{
    char out[4096], err[512] = "";
    int rc = source_filter_build(filter, hops, out, sizeof out, err, sizeof err);
    if (rc != 0)
        fail_msg("'%s' + '%s': %d %s", filter, hops, rc, err);
    assert_string_equal(out, want);
}

static void test_filter_text(void **state)
{
    (void)state;
    s_build("", "tcp://127.0.0.1:5710", "not (host 127.0.0.1 and tcp port 5710)");
    s_build(NULL, "tcp://127.0.0.1:5710", "not (host 127.0.0.1 and tcp port 5710)");
    s_build("udp or icmp", "tcp://127.0.0.1:5710",
            "(udp or icmp) and not (host 127.0.0.1 and tcp port 5710)");
    s_build("", "tcp://[::1]:5711", "not (host ::1 and tcp port 5711)");
    /* ZeroMQ's source address: the far end is after the ';' */
    s_build("", "tcp://127.0.0.2:6000;192.0.2.7:5710", "not (host 192.0.2.7 and tcp port 5710)");
    s_build("", "tcp://[::2]:6000;[2001:db8::7]:5710", "not (host 2001:db8::7 and tcp port 5710)");
    /* several next hops */
    s_build("tcp", "tcp://127.0.0.1:5710,tcp://[::1]:5711",
            "(tcp) and not (host 127.0.0.1 and tcp port 5710) and not (host ::1 and tcp port "
            "5711)");
    /* nothing crosses an interface: the user's filter as given, or none */
    s_build("", "ipc:///tmp/tapmesh.sock,inproc://x", "");
    s_build("udp port 9999", "ipc:///tmp/tapmesh.sock", "udp port 9999");
    s_build("udp", "", "udp");
    s_build("udp", NULL, "udp");
    s_build("", "", "");
}

/* A host name: every address it has, none left to pcap_compile. */
static void test_filter_names(void **state)
{
    (void)state;
    char out[4096], err[512] = "";
    assert_int_equal(
        source_filter_build("", "tcp://localhost:5710", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "not (host 127.0.0.1 and tcp port 5710)"));
    assert_null(strstr(out, "localhost"));
}

static void s_build_fails(const char *hops, int want, const char *mention)
{
    char out[4096], err[512] = "";
    assert_int_equal(source_filter_build("", hops, out, sizeof out, err, sizeof err), want);
    if (!strstr(err, mention))
        fail_msg("'%s': error '%s' does not mention '%s'", hops, err, mention);
}

static void test_filter_errors(void **state)
{
    (void)state;
    s_build_fails("tcp://[zz::1]:5710", -EINVAL,
                  "RELAY_ENDPOINT=tcp://[zz::1]:5710: cannot resolve zz::1");
    s_build_fails("tcp://[zz::1]:5710", -EINVAL, "CAPTURE_OWN_TRAFFIC=true");
    s_build_fails("tcp://127.0.0.1:x", -EINVAL, "RELAY_ENDPOINT=tcp://127.0.0.1:x");
    s_build_fails("tcp://127.0.0.1:0", -EINVAL, "expected tcp://HOST:PORT");
    s_build_fails("tcp://127.0.0.1", -EINVAL, "expected tcp://HOST:PORT");
    s_build_fails("tcp://:5710", -EINVAL, "expected tcp://HOST:PORT");
    s_build_fails("udp://127.0.0.1:5710", -EINVAL, "RELAY_ENDPOINT=udp://127.0.0.1:5710");
    /* too long for the caller's buffer */
    char out[40], err[512] = "";
    assert_int_equal(
        source_filter_build("tcp", "tcp://127.0.0.1:5710", out, sizeof out, err, sizeof err),
        -ENOSPC);
}

/* Crafted Ethernet frames: IPv4 or IPv6, TCP or UDP, between two ports. */
typedef struct {
    const char *what;
    bool v6, udp;
    const char *src, *dst;
    uint16_t sport, dport;
} pkt_t;

static size_t s_packet(uint8_t *f, const pkt_t *p)
{
    memset(f, 0, 128);
    f[0] = 0x02;
    f[6] = 0x02;
    f[11] = 1;
    size_t l3 = 14, l4;
    if (p->v6) {
        s_put16(f + 12, 0x86dd, true);
        f[l3] = 0x60;
        s_put16(f + l3 + 4, 20, true);
        f[l3 + 6] = p->udp ? 17 : 6;
        f[l3 + 7] = 64;
        assert_int_equal(inet_pton(AF_INET6, p->src, f + l3 + 8), 1);
        assert_int_equal(inet_pton(AF_INET6, p->dst, f + l3 + 24), 1);
        l4 = l3 + 40;
    } else {
        s_put16(f + 12, 0x0800, true);
        f[l3] = 0x45;
        s_put16(f + l3 + 2, 40, true);
        f[l3 + 8] = 64;
        f[l3 + 9] = p->udp ? 17 : 6;
        assert_int_equal(inet_pton(AF_INET, p->src, f + l3 + 12), 1);
        assert_int_equal(inet_pton(AF_INET, p->dst, f + l3 + 16), 1);
        l4 = l3 + 20;
    }
    s_put16(f + l4, p->sport, true);
    s_put16(f + l4 + 2, p->dport, true);
    if (!p->udp)
        f[l4 + 12] = 0x50;
    else
        s_put16(f + l4 + 4, 20, true);
    return l4 + 20;
}

/* Does `program` ("" passes all) take the packet? */
static bool s_passes(pcap_t *dead, const char *program, const pkt_t *p)
{
    if (!*program)
        return true;
    struct bpf_program prog;
    if (pcap_compile(dead, &prog, program, 1, PCAP_NETMASK_UNKNOWN) < 0)
        fail_msg("'%s' does not compile: %s", program, pcap_geterr(dead));
    uint8_t frame[128];
    struct pcap_pkthdr h = {.caplen = (bpf_u_int32)s_packet(frame, p)};
    h.len = h.caplen;
    bool pass = pcap_offline_filter(&prog, &h, frame) != 0;
    pcap_freecode(&prog);
    return pass;
}

/* The built program compiles for Ethernet, drops the agent's own flows in
 * both directions (IPv4 and IPv6), keeps everything else, and means what
 * the user's filter means for everything else. */
static void test_filter_matches(void **state)
{
    (void)state;
    static const pkt_t pkts[] = {
        {"agent to collector", false, false, "127.0.0.1", "127.0.0.1", 40000, 5710},
        {"collector to agent", false, false, "127.0.0.1", "127.0.0.1", 5710, 40000},
        {"agent to v6 relay", true, false, "::1", "::1", 40001, 5711},
        {"v6 relay to agent", true, false, "::1", "::1", 5711, 40001},
        {"agent to remote hop", false, false, "192.0.2.10", "198.51.100.7", 41000, 5720},
        {"remote hop to agent", false, false, "198.51.100.7", "192.0.2.10", 5720, 41000},
        {"other port, same host", false, false, "127.0.0.1", "127.0.0.1", 40000, 80},
        {"same port, other host", false, false, "10.0.0.1", "10.0.0.2", 40000, 5710},
        {"udp to the collector's port", false, true, "127.0.0.1", "127.0.0.1", 40000, 5710},
        {"v6 other port", true, false, "::1", "::1", 40001, 80},
        {"v6 same port, other host", true, false, "2001:db8::1", "2001:db8::2", 40001, 5711},
        {"remote hop, other port", false, false, "198.51.100.7", "192.0.2.10", 22, 41000},
        {"udp dns", false, true, "10.0.0.1", "10.0.0.53", 40000, 53},
    };
    static const bool own[] = {true,  true,  true,  true,  true,  true, false,
                               false, false, false, false, false, false};
    static const char *const users[] = {"", "tcp", "udp or port 5710", "port 80 or ip6", "not udp"};
    const char *hops = "tcp://127.0.0.1:5710,tcp://[::1]:5711,tcp://192.0.2.99:1;198.51.100.7:5720";
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
    assert_non_null(dead);
    for (size_t u = 0; u < N(users); u++) {
        char program[4096], err[512] = "";
        assert_int_equal(
            source_filter_build(users[u], hops, program, sizeof program, err, sizeof err), 0);
        for (size_t i = 0; i < N(pkts); i++) {
            bool want = !own[i] && s_passes(dead, users[u], &pkts[i]);
            if (s_passes(dead, program, &pkts[i]) != want)
                fail_msg("FILTER='%s', %s: %s by '%s'", users[u], pkts[i].what,
                         want ? "dropped" : "kept", program);
        }
    }
    pcap_close(dead);
}

/* ---- PCAP-over-IP ---- */

static void test_poip_addr(void **state)
{
    (void)state;
    static const struct {
        const char *text, *host, *port;
    } good[] = {
        {"192.0.2.7:57012", "192.0.2.7", "57012"},
        {"sensor-1.example.org:1", "sensor-1.example.org", "1"},
        {"[::1]:57012", "::1", "57012"},
        {"[2001:db8::7]:65535", "2001:db8::7", "65535"},
        {"[fe80::1%eth0]:80", "fe80::1%eth0", "80"},
        {"localhost:00080", "localhost", "80"},
    };
    for (size_t i = 0; i < N(good); i++) {
        char host[256], port[8], why[200] = "";
        if (source_poip_addr_parse(good[i].text, host, sizeof host, port, sizeof port, why,
                                   sizeof why) != 0)
            fail_msg("'%s' refused: %s", good[i].text, why);
        assert_string_equal(host, good[i].host);
        assert_string_equal(port, good[i].port);
    }
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "expected HOST:PORT"},
        {"host", "expected HOST:PORT"},
        {":57012", "no host"},
        {"host:", "not 1..65535"},
        {"host:0", "not 1..65535"},
        {"host:65536", "not 1..65535"},
        {"host:123456", "not 1..65535"},
        {"host:12a", "not 1..65535"},
        {"host:-1", "not 1..65535"},
        {"::1:57012", "goes in brackets"},
        {"[::1]57012", "expected [IPv6 ADDRESS]:PORT"},
        {"[::1:57012", "expected [IPv6 ADDRESS]:PORT"},
        {"[]:57012", "no host"},
        {"tcp://host:1", "without a scheme"},
        {"ho st:1", "a character"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        char host[256], port[8], why[200] = "";
        if (source_poip_addr_parse(bad[i].text, host, sizeof host, port, sizeof port, why,
                                   sizeof why) != -EINVAL)
            fail_msg("'%s' accepted", bad[i].text);
        if (!strstr(why, bad[i].why))
            fail_msg("'%s': '%s' does not say '%s'", bad[i].text, why, bad[i].why);
    }
}

static void s_put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Polls the source until it has a packet or `tries` passes went by. */
static source_result_t s_next_within(source_t *s, source_packet_t *pkt, int tries)
{
    source_result_t r = SOURCE_IDLE;
    for (int i = 0; i < tries && (r = source_next(s, pkt)) == SOURCE_IDLE; i++)
        usleep(2000);
    return r;
}

/* A big-endian, microsecond stream from a server of the test's own: a
 * record sent in two parts is not delivered until its last byte is there
 * (and source_next never waits for it); its timestamp and bytes come out
 * as sent; a second stream after the first ends continues the source. */
static void test_poip_stream(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ls >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 4), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &len), 0);
    char addr[64], err[512] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%u", ntohs(sa.sin_port));
    metrics_t *m = metrics_new("capture", "test");
    assert_non_null(m);
    source_poip_opts_t o = {
        .addr = addr, .filter = "", .snaplen = 262144, .retry_ms = 10, .metrics = m};
    source_t *s = source_poip_open(&o, err, sizeof err);
    assert_non_null(s);
    source_packet_t pkt;
    uint8_t hdr[24] = {0}, rec[16 + 60];
    s_put32be(hdr, MAGIC_US);
    hdr[5] = 2; /* version 2.4 */
    hdr[7] = 4;
    s_put32be(hdr + 16, 65535);
    s_put32be(hdr + 20, 1); /* Ethernet */
    s_put32be(rec, 1700000000u);
    s_put32be(rec + 4, 123456u);
    s_put32be(rec + 8, 60);
    s_put32be(rec + 12, 1514);
    for (int i = 0; i < 60; i++)
        rec[16 + i] = (uint8_t)(i * 7);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(s_next_within(s, &pkt, 1), SOURCE_IDLE); /* starts the connect */
        int c = accept(ls, NULL, NULL);
        assert_true(c >= 0);
        assert_int_equal(write(c, hdr, sizeof hdr), (ssize_t)sizeof hdr);
        if (round == 0) {
            static volatile sig_atomic_t stop = 0;
            assert_int_equal(source_poip_wait_stream(s, &stop, err, sizeof err), 0);
            assert_int_equal(source_linktype(s), 1);
            assert_int_equal(source_snaplen(s), 65535);
        }
        assert_int_equal(write(c, rec, 30), 30);
        assert_int_equal(s_next_within(s, &pkt, 50), SOURCE_IDLE); /* half a record */
        assert_int_equal(write(c, rec + 30, sizeof rec - 30), (ssize_t)sizeof rec - 30);
        assert_int_equal(s_next_within(s, &pkt, 500), SOURCE_PACKET);
        assert_int_equal(pkt.ts_ns, 1700000000ull * NS + 123456000ull);
        assert_int_equal(pkt.caplen, 60);
        assert_int_equal(pkt.origlen, 1514);
        assert_memory_equal(pkt.data, rec + 16, 60);
        close(c); /* the next round is a new stream */
        assert_int_equal(s_next_within(s, &pkt, 50), SOURCE_IDLE);
    }
    char name[80];
    snprintf(name, sizeof name, "poip:%s", addr);
    assert_string_equal(source_name(s), name);
    source_close(&s);
    metrics_destroy(&m);
    close(ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pcap_fractions, s_setup, s_teardown),
        cmocka_unit_test(test_pcap_fractions_stdin),
        cmocka_unit_test_setup_teardown(test_pcapng_timestamps, s_setup, s_teardown),
        cmocka_unit_test(test_filter_text),
        cmocka_unit_test(test_filter_names),
        cmocka_unit_test(test_filter_errors),
        cmocka_unit_test(test_filter_matches),
        cmocka_unit_test(test_poip_addr),
        cmocka_unit_test(test_poip_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
