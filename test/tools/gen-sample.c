/*
 * gen-sample — writes the sample capture files shipped in test/data, with
 * libpcap's own writer: Ethernet (or raw IP) frames of IPv4 and IPv6, UDP
 * and TCP, 60 to 9018 bytes on the wire, nanosecond timestamps that are not
 * multiples of a microsecond. Deterministic: the same files every time.
 *
 *   gen-sample OUT.pcap COUNT ether|raw [SEED [MARKER]]
 *
 * SEED (default 2463534242) varies sizes, flows, bytes and gaps; every
 * file starts at the same time. MARKER, a string, begins the payload of
 * every packet (frames then have room for it: 128 bytes at least), so that
 * a test can look for it where the packets must not be readable.
 * test/data/regen.sh runs it (and editcap, for the pcapng variant).
 */
#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t s_rand = 2463534242u;

static uint32_t s_next(void)
{
    s_rand ^= s_rand << 13;
    s_rand ^= s_rand >> 17;
    s_rand ^= s_rand << 5;
    return s_rand;
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

/* One frame of `wire` bytes (Ethernet) or `wire - 14` (raw IP). */
static size_t s_frame(uint8_t *f, size_t wire, int v6, int tcp, int flow, int ether)
{
    size_t off = 0;
    if (ether) {
        uint8_t dst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, (uint8_t)(flow & 0xff)};
        uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x01, (uint8_t)(flow & 0xff)};
        memcpy(f, dst, 6);
        memcpy(f + 6, src, 6);
        s_put16(f + 12, v6 ? 0x86dd : 0x0800);
        off = 14;
    }
    size_t ip_len = wire - 14;
    uint8_t proto = tcp ? 6 : 17;
    uint8_t *ip = f + off;
    size_t l4;
    if (!v6) {
        ip[0] = 0x45;
        ip[1] = 0;
        s_put16(ip + 2, (uint16_t)ip_len);
        s_put16(ip + 4, (uint16_t)(flow * 7));
        s_put16(ip + 6, 0x4000);
        ip[8] = 64;
        ip[9] = proto;
        s_put16(ip + 10, 0);
        uint8_t a[4] = {192, 0, 2, (uint8_t)(1 + flow % 50)};
        uint8_t b[4] = {198, 51, 100, (uint8_t)(1 + flow % 30)};
        memcpy(ip + 12, a, 4);
        memcpy(ip + 16, b, 4);
        s_put16(ip + 10, s_ipsum(ip, 20));
        l4 = 20;
    } else {
        ip[0] = 0x60;
        ip[1] = ip[2] = ip[3] = 0;
        s_put16(ip + 4, (uint16_t)(ip_len - 40));
        ip[6] = proto;
        ip[7] = 64;
        uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                         0,    0,    0,    0,    0, 0, 0, (uint8_t)(1 + flow % 50)};
        uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0,
                         0,    0,    0,    0,    0, 0, 0, (uint8_t)(1 + flow % 30)};
        memcpy(ip + 8, a, 16);
        memcpy(ip + 24, b, 16);
        l4 = 40;
    }
    uint8_t *t = ip + l4;
    s_put16(t, (uint16_t)(20000 + flow));
    s_put16(t + 2, tcp ? 443 : 9999);
    size_t hdr;
    if (tcp) {
        uint32_t seq = s_next();
        memcpy(t + 4, &seq, 4);
        memset(t + 8, 0, 4);
        t[12] = 0x50;
        t[13] = 0x18; /* PSH ACK */
        s_put16(t + 14, 65535);
        s_put16(t + 16, 0);
        s_put16(t + 18, 0);
        hdr = 20;
    } else {
        s_put16(t + 4, (uint16_t)(ip_len - l4));
        s_put16(t + 6, 0);
        hdr = 8;
    }
    for (size_t i = l4 + hdr; i < ip_len; i++)
        ip[i] = (uint8_t)s_next();
    return off + ip_len;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: gen-sample OUT.pcap COUNT ether|raw [SEED [MARKER]]\n");
        return 2;
    }
    if (argc >= 5)
        s_rand = (uint32_t)strtoul(argv[4], NULL, 10) | 1u;
    const char *marker = argc == 6 ? argv[5] : NULL;
    if (marker && strlen(marker) > 48) {
        fprintf(stderr, "gen-sample: MARKER: 48 characters at most\n");
        return 2;
    }
    int count = atoi(argv[2]);
    int ether = strcmp(argv[3], "ether") == 0;
    pcap_t *dead = pcap_open_dead_with_tstamp_precision(ether ? DLT_EN10MB : DLT_RAW, 262144,
                                                        PCAP_TSTAMP_PRECISION_NANO);
    pcap_dumper_t *d = pcap_dump_open(dead, argv[1]);
    if (!d) {
        fprintf(stderr, "%s: %s\n", argv[1], pcap_geterr(dead));
        return 1;
    }
    static const size_t sizes[] = {60,  64,  66,   74,   90,   128,  256,  342,
                                   512, 576, 1024, 1280, 1500, 1514, 4096, 9018};
    static uint8_t frame[9018];
    uint64_t ts = 1700000000123456789ull;
    for (int i = 0; i < count; i++) {
        size_t wire = sizes[s_next() % (sizeof sizes / sizeof *sizes)];
        if (i == 0)
            wire = 60;
        if (i == 1)
            wire = 9018;
        int v6 = (int)(s_next() % 3 == 0);
        if (v6 && wire < 74)
            wire = 74; /* room for the IPv6 and TCP headers */
        int tcp = (int)(s_next() & 1);
        if (marker && wire < 128)
            wire = 128;
        size_t len = s_frame(frame, wire, v6, tcp, (int)(s_next() % 40), ether);
        if (marker) /* after the largest headers: Ethernet, IPv6, TCP */
            memcpy(frame + 14 + 40 + 20, marker, strlen(marker));
        ts += 1 + s_next() % 2000003u; /* up to ~2 ms, odd nanoseconds */
        struct pcap_pkthdr h;
        h.ts.tv_sec = (time_t)(ts / 1000000000u);
        h.ts.tv_usec = (suseconds_t)(ts % 1000000000u); /* nanoseconds in nano mode */
        h.caplen = h.len = (bpf_u_int32)len;
        pcap_dump((u_char *)d, &h, frame);
    }
    pcap_dump_close(d);
    pcap_close(dead);
    return 0;
}
