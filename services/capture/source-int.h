/*
 * source-int — what source.c shares with its kinds (source-file.c,
 * source-live.c, source-poip.c): the struct and the ops that differ between
 * them.
 */
#ifndef TAPMESH_SOURCE_INT_H
#define TAPMESH_SOURCE_INT_H

#include "source.h"

#include <pcap/pcap.h>

typedef struct {
    source_result_t (*next)(source_t *self, source_packet_t *pkt);
    uint64_t (*wait_ns)(const source_t *self);
    uint64_t (*next_ts)(const source_t *self);
    int (*stats)(source_t *self, source_stats_t *stats);
    uint32_t (*snaplen)(const source_t *self); /* NULL: libpcap's pcap_snapshot */
    void (*close)(source_t *self);             /* the kind's own resources, before pcap_close */
} source_ops_t;

/* How libpcap's timestamps relate to what the capture holds. */
typedef enum {
    SOURCE_TS_NATIVE = 0, /* as libpcap gives them: live captures, pcapng */
    SOURCE_TS_PCAP_NS,    /* classic pcap, nanosecond fractions */
    SOURCE_TS_PCAP_US,    /* classic pcap, microsecond fractions (libpcap scales them) */
} source_ts_t;

struct source_t {
    const source_ops_t *ops;
    source_ts_t ts;
    pcap_t *pcap;
    int fd;
    char name[256];
    char description[512];
    char error[PCAP_ERRBUF_SIZE + 256];
    void *impl; /* the kind's own state */
};

/* A new source of `ops` with `impl`; NULL when out of memory. */
source_t *source_new(const source_ops_t *ops, void *impl);

/* Reads one record from libpcap. */
source_result_t source_read_pcap(source_t *self, source_packet_t *pkt);

/* Compiles and sets a BPF filter; on failure `err` names FILTER and quotes
 * libpcap. `subject` names the interface or file. */
int source_set_filter(source_t *self, const char *filter, const char *subject, char *err,
                      size_t errlen);

#endif
