/*
 * latency — reads the collector's output (pcapng or pcap) from standard
 * input as it streams, stamps each packet on arrival (CLOCK_REALTIME) and
 * compares that with the packet's capture timestamp. Only the benchmark's
 * own packets count (IPv4/UDP to port 9 with "TMBENCH" at the start of the
 * payload, as bench/gen writes them); anything else a live interface picks
 * up is skipped.
 *
 *   collect ... OUTPUT=- | latency
 *
 * At end of input prints "packets=N p50_ms=X p99_ms=Y max_ms=Z
 * min_ms=W" (latencies in milliseconds). Timestamps in the future (a
 * clock step) count as 0.
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int s_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int s_ours(const u_char *p, bpf_u_int32 caplen)
{
    if (caplen < 14 + 20 + 8 + 7)
        return 0;
    if (p[12] != 0x08 || p[13] != 0x00 || (p[14] >> 4) != 4 || p[23] != 17)
        return 0;
    size_t ihl = (size_t)(p[14] & 0x0f) * 4;
    if (14 + ihl + 8 + 7 > caplen)
        return 0;
    const u_char *udp = p + 14 + ihl;
    return udp[2] == 0 && udp[3] == 9 && memcmp(udp + 8, "TMBENCH", 7) == 0;
}

/* The q-quantile of n sorted values (nearest rank). */
static uint64_t s_quantile(const uint64_t *v, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

int main(void)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_fopen_offline_with_tstamp_precision(stdin, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!p) {
        fprintf(stderr, "latency: standard input: %s\n", errbuf);
        return 1;
    }
    size_t n = 0, cap = 1 << 20;
    uint64_t *lat = malloc(cap * sizeof *lat);
    if (!lat)
        return 1;
    struct pcap_pkthdr *h;
    const u_char *data;
    int r;
    while ((r = pcap_next_ex(p, &h, &data)) == 1) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (!s_ours(data, h->caplen))
            continue;
        uint64_t arrival = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
        /* nanosecond precision: tv_usec holds nanoseconds */
        uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec;
        if (n == cap) {
            uint64_t *bigger = realloc(lat, 2 * cap * sizeof *lat);
            if (!bigger) {
                fprintf(stderr, "latency: out of memory\n");
                return 1;
            }
            lat = bigger;
            cap *= 2;
        }
        lat[n++] = arrival > ts ? arrival - ts : 0;
    }
    if (r == -1)
        fprintf(stderr, "latency: standard input: %s\n", pcap_geterr(p));
    pcap_close(p);
    if (n == 0) {
        printf("packets=0\n");
        free(lat);
        return 1;
    }
    qsort(lat, n, sizeof *lat, s_cmp);
    printf("packets=%zu p50_ms=%.3f p99_ms=%.3f max_ms=%.3f min_ms=%.3f\n", n,
           (double)s_quantile(lat, n, 0.50) / 1e6, (double)s_quantile(lat, n, 0.99) / 1e6,
           (double)lat[n - 1] / 1e6, (double)lat[0] / 1e6);
    free(lat);
    return 0;
}
