/*
 * gen — the benchmark's input files, written with libpcap's own writer
 * (classic pcap, nanosecond timestamps, Ethernet, snaplen 262144). The same
 * arguments give the same bytes: sizes, flows and payloads come from SEED.
 *
 *   gen small|mixed|imix COUNT SEED OUT [--sources K] [--t0 NS|now] [--gap NS]
 *
 * small: 64-byte frames; mixed: 60 to 9018 bytes, uniform; imix: 64, 594
 * and 1518 bytes in the proportions 7:4:1 (shuffled, not in blocks).
 * Every frame is Ethernet/IPv4/UDP to port 9 whose payload starts with
 * "TMBENCH" (bench/latency counts only those).
 *
 * --sources K writes K files, OUT.0 ... OUT.K-1, COUNT packets each, with
 * interleaved timestamps: packet i of source s is stamped
 * t0 + (i*K + s)*gap + jitter (jitter < gap), so that merging them
 * alternates between all K. --gap is the spacing in ns between consecutive
 * packets of the merged stream (default 1000); --t0 the first timestamp in
 * ns since the epoch, or "now" (default 1700000000 s, fixed, so that files
 * are identical from run to run).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GEN_SNAPLEN 262144
#define GEN_MAX_FRAME 9018
#define GEN_MAX_SOURCES 4096

static uint64_t s_state;

/* xorshift64*: fast, and the same sequence on every machine */
static uint64_t s_next(void)
{
    s_state ^= s_state >> 12;
    s_state ^= s_state << 25;
    s_state ^= s_state >> 27;
    return s_state * 2685821657736338717ull;
}

static void s_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t s_ipsum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static size_t s_size(const char *mode)
{
    if (strcmp(mode, "small") == 0)
        return 64;
    if (strcmp(mode, "mixed") == 0)
        return 60 + (size_t)(s_next() % (GEN_MAX_FRAME - 60 + 1));
    /* imix: 7 of 12 small, 4 of 12 medium, 1 of 12 large */
    uint64_t r = s_next() % 12;
    return r < 7 ? 64 : r < 11 ? 594 : 1518;
}

/* One Ethernet/IPv4/UDP frame of `wire` bytes from source `src`. */
static void s_frame(uint8_t *f, size_t wire, unsigned src)
{
    uint64_t r = s_next();
    unsigned flow = (unsigned)(r & 0xff);
    uint8_t dst_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    uint8_t src_mac[6] = {0x02, 0x00, 0x00, (uint8_t)(src >> 8), (uint8_t)src, 0x01};
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, src_mac, 6);
    s_put16(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    size_t ip_len = wire - 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    s_put16(ip + 2, (uint16_t)ip_len);
    ip[8] = 64;
    ip[9] = 17;
    ip[12] = 10;
    ip[13] = (uint8_t)(src >> 8);
    ip[14] = (uint8_t)src;
    ip[15] = (uint8_t)flow;
    ip[16] = 10;
    ip[17] = 255;
    ip[18] = 0;
    ip[19] = 1;
    s_put16(ip + 10, s_ipsum(ip, 20));
    uint8_t *udp = ip + 20;
    s_put16(udp, (uint16_t)(1024 + (r >> 8) % 60000));
    s_put16(udp + 2, 9);
    s_put16(udp + 4, (uint16_t)(ip_len - 20));
    s_put16(udp + 6, 0);
    uint8_t *pay = udp + 8;
    size_t pay_len = ip_len - 28;
    for (size_t i = 0; i < pay_len; i += 8) {
        uint64_t v = s_next();
        memcpy(pay + i, &v, pay_len - i < 8 ? pay_len - i : 8);
    }
    memcpy(pay, "TMBENCH", pay_len < 7 ? pay_len : 7);
}

static int s_usage(void)
{
    fprintf(stderr, "usage: gen small|mixed|imix COUNT SEED OUT [--sources K] [--t0 NS|now] "
                    "[--gap NS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return s_usage();
    const char *mode = argv[1];
    if (strcmp(mode, "small") && strcmp(mode, "mixed") && strcmp(mode, "imix"))
        return s_usage();
    char *end;
    unsigned long long count = strtoull(argv[2], &end, 10);
    if (*end || count == 0)
        return s_usage();
    unsigned long long seed = strtoull(argv[3], &end, 10);
    if (*end)
        return s_usage();
    const char *out = argv[4];
    unsigned sources = 0;
    uint64_t t0 = 1700000000ull * 1000000000ull, gap = 1000;
    for (int i = 5; i < argc; i += 2) {
        if (i + 1 >= argc)
            return s_usage();
        if (strcmp(argv[i], "--sources") == 0) {
            sources = (unsigned)strtoul(argv[i + 1], &end, 10);
            if (*end || sources == 0 || sources > GEN_MAX_SOURCES)
                return s_usage();
        } else if (strcmp(argv[i], "--t0") == 0) {
            if (strcmp(argv[i + 1], "now") == 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                t0 = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
            } else {
                t0 = strtoull(argv[i + 1], &end, 10);
                if (*end)
                    return s_usage();
            }
        } else if (strcmp(argv[i], "--gap") == 0) {
            gap = strtoull(argv[i + 1], &end, 10);
            if (*end || gap == 0)
                return s_usage();
        } else {
            return s_usage();
        }
    }
    s_state = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    if (s_state == 0)
        s_state = 1;

    unsigned files = sources ? sources : 1;
    pcap_t *dead =
        pcap_open_dead_with_tstamp_precision(DLT_EN10MB, GEN_SNAPLEN, PCAP_TSTAMP_PRECISION_NANO);
    pcap_dumper_t **dump = calloc(files, sizeof *dump);
    if (!dead || !dump) {
        fprintf(stderr, "gen: out of memory\n");
        return 1;
    }
    size_t name_len = strlen(out) + 16;
    char *name = malloc(name_len);
    for (unsigned s = 0; s < files; s++) {
        if (sources)
            snprintf(name, name_len, "%s.%u", out, s);
        else
            snprintf(name, name_len, "%s", out);
        dump[s] = pcap_dump_open(dead, name);
        if (!dump[s]) {
            fprintf(stderr, "gen: %s: %s\n", name, pcap_geterr(dead));
            return 1;
        }
    }
    static uint8_t frame[GEN_MAX_FRAME];
    for (unsigned long long i = 0; i < count; i++) {
        for (unsigned s = 0; s < files; s++) {
            size_t wire = s_size(mode);
            s_frame(frame, wire, s);
            uint64_t slot = (uint64_t)i * files + s;
            uint64_t ts = t0 + slot * gap + s_next() % gap;
            struct pcap_pkthdr h = {0};
            h.ts.tv_sec = (time_t)(ts / 1000000000ull);
            h.ts.tv_usec = (suseconds_t)(ts % 1000000000ull); /* nanoseconds here */
            h.caplen = h.len = (bpf_u_int32)wire;
            pcap_dump((u_char *)dump[s], &h, frame);
        }
    }
    int rc = 0;
    for (unsigned s = 0; s < files; s++) {
        if (pcap_dump_flush(dump[s]) != 0) {
            fprintf(stderr, "gen: %s: write failed: %s\n", out, strerror(errno));
            rc = 1;
        }
        pcap_dump_close(dump[s]);
    }
    pcap_close(dead);
    free(dump);
    free(name);
    return rc;
}
