/*
 * pktcmp — compares two capture files packet by packet, through libpcap,
 * at nanosecond precision: timestamp, captured length, original length and
 * every byte. Exit 0 when equal; 1 with the first difference on stderr.
 *
 *   pktcmp [--ignore-ts] EXPECTED ACTUAL
 *
 * --ignore-ts compares everything but the timestamps (a live capture of
 * replayed traffic has new ones).
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static pcap_t *s_open(const char *path)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p)
        fprintf(stderr, "pktcmp: %s\n", err);
    return p;
}

static uint64_t s_ns(const struct pcap_pkthdr *h)
{
    /* in nanosecond mode tv_usec holds nanoseconds */
    return (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
}

static int s_ignore_ts;

static int s_compare(pcap_t *a, pcap_t *b, const char *name_a, const char *name_b)
{
    for (unsigned long n = 1;; n++) {
        struct pcap_pkthdr *ha, *hb;
        const u_char *da, *db;
        int ra = pcap_next_ex(a, &ha, &da);
        int rb = pcap_next_ex(b, &hb, &db);
        if (ra == PCAP_ERROR_BREAK && rb == PCAP_ERROR_BREAK) {
            printf("pktcmp: %lu packets equal\n", n - 1);
            return 0;
        }
        if (ra != 1 || rb != 1) {
            const char *why = ra == PCAP_ERROR   ? pcap_geterr(a)
                              : rb == PCAP_ERROR ? pcap_geterr(b)
                                                 : "";
            fprintf(stderr, "pktcmp: packet %lu: %s ends first%s%s\n", n, ra != 1 ? name_a : name_b,
                    *why ? ": " : "", why);
            return 1;
        }
        if ((!s_ignore_ts && s_ns(ha) != s_ns(hb)) || ha->caplen != hb->caplen ||
            ha->len != hb->len || memcmp(da, db, ha->caplen) != 0) {
            fprintf(stderr,
                    "pktcmp: packet %lu differs: ts %llu/%llu caplen %u/%u len %u/%u bytes %s\n", n,
                    (unsigned long long)s_ns(ha), (unsigned long long)s_ns(hb), ha->caplen,
                    hb->caplen, ha->len, hb->len,
                    ha->caplen == hb->caplen && memcmp(da, db, ha->caplen) == 0 ? "same"
                                                                                : "differ");
            return 1;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--ignore-ts") == 0) {
        s_ignore_ts = 1;
        argv++;
        argc--;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: pktcmp [--ignore-ts] EXPECTED ACTUAL\n");
        return 2;
    }
    pcap_t *a = s_open(argv[1]), *b = s_open(argv[2]);
    int rc = a && b ? s_compare(a, b, argv[1], argv[2]) : 2;
    if (a)
        pcap_close(a);
    if (b)
        pcap_close(b);
    return rc;
}
