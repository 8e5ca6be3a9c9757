/*
 * sample — the packets of a capture file as libpcap reads them, for the
 * unit tests that compare what an engine sent or wrote with its input
 * (timestamps in nanoseconds, lengths, bytes).
 */
#ifndef TAPMESH_TEST_SAMPLE_H
#define TAPMESH_TEST_SAMPLE_H

#include <pcap/pcap.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t ts;
    uint32_t caplen, origlen;
    uint8_t *data;
} sample_pkt_t;

/* Reads every packet of `path`; returns the count (0 when the file cannot
 * be read) and a new array in *pkts, freed with sample_free. */
static inline size_t sample_load(const char *path, sample_pkt_t **pkts)
{
    char err[PCAP_ERRBUF_SIZE];
    *pkts = NULL;
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
    if (!p)
        return 0;
    struct pcap_pkthdr *h;
    const u_char *d;
    size_t n = 0, cap = 0;
    while (pcap_next_ex(p, &h, &d) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            sample_pkt_t *grown = realloc(*pkts, cap * sizeof **pkts);
            if (!grown)
                break;
            *pkts = grown;
        }
        sample_pkt_t *r = &(*pkts)[n++];
        r->ts = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
        r->caplen = h->caplen;
        r->origlen = h->len;
        r->data = malloc(h->caplen ? h->caplen : 1);
        memcpy(r->data, d, h->caplen);
    }
    pcap_close(p);
    return n;
}

static inline void sample_free(sample_pkt_t **pkts, size_t n)
{
    for (size_t i = 0; *pkts && i < n; i++)
        free((*pkts)[i].data);
    free(*pkts);
    *pkts = NULL;
}

#endif
