/*
 * source — dispatch to the kind's ops, and what both kinds share: reading a
 * record from libpcap, filters, link types.
 */
#include "source-int.h"

#include "linktype.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NS 1000000000ull

source_t *source_new(const source_ops_t *ops, void *impl)
{
    source_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ops = ops;
    self->impl = impl;
    self->fd = -1;
    return self;
}

/* Nanoseconds since the epoch. In nanosecond mode tv_usec holds
 * nanoseconds. A classic pcap record's seconds and fraction are unsigned
 * 32-bit fields, which libpcap hands over through signed 32-bit ones: a
 * field of 2^31 or more arrives negative (tcpdump's
 * timestamp_invalid_nano.pcap has a fraction of 0x80000000), and a
 * microsecond fraction arrives multiplied by 1000 after that. The fields are
 * taken back as the file holds them; a microsecond fraction above 999999
 * counts as it says (field × 1000 ns, in 64 bits). */
static uint64_t s_ts_ns(source_ts_t kind, const struct timeval *tv)
{
    switch (kind) {
    case SOURCE_TS_PCAP_NS:
        return (uint64_t)(uint32_t)tv->tv_sec * S_NS + (uint32_t)tv->tv_usec;
    case SOURCE_TS_PCAP_US:
        return (uint64_t)(uint32_t)tv->tv_sec * S_NS +
               (uint64_t)(uint32_t)(tv->tv_usec / 1000) * 1000u;
    case SOURCE_TS_NATIVE:
        break;
    }
    return (uint64_t)tv->tv_sec * S_NS + (uint64_t)tv->tv_usec;
}

source_result_t source_read_pcap(source_t *self, source_packet_t *pkt)
{
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(self->pcap, &h, &data);
    if (rc == 0)
        return SOURCE_IDLE;
    if (rc == PCAP_ERROR_BREAK)
        return SOURCE_EOF;
    if (rc != 1) {
        snprintf(self->error, sizeof self->error, "%s: %s", self->name, pcap_geterr(self->pcap));
        return SOURCE_ERROR;
    }
    pkt->ts_ns = s_ts_ns(self->ts, &h->ts);
    pkt->caplen = h->caplen;
    pkt->origlen = h->len;
    pkt->data = data;
    return SOURCE_PACKET;
}

int source_set_filter(source_t *self, const char *filter, const char *subject, char *err,
                      size_t errlen)
{
    if (!filter || !*filter)
        return 0;
    struct bpf_program prog;
    if (pcap_compile(self->pcap, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        snprintf(err, errlen, "FILTER='%s': %s", filter, pcap_geterr(self->pcap));
        return -EINVAL;
    }
    int rc = pcap_setfilter(self->pcap, &prog);
    pcap_freecode(&prog);
    if (rc < 0) {
        snprintf(err, errlen, "FILTER='%s': %s: %s", filter, subject, pcap_geterr(self->pcap));
        return -EINVAL;
    }
    return 0;
}

source_result_t source_next(source_t *self, source_packet_t *pkt)
{
    return self->ops->next(self, pkt);
}

uint64_t source_wait_ns(const source_t *self)
{
    return self->ops->wait_ns ? self->ops->wait_ns(self) : 0;
}

uint64_t source_next_ts(const source_t *self)
{
    return self->ops->next_ts ? self->ops->next_ts(self) : 0;
}

int source_stats(source_t *self, source_stats_t *stats)
{
    return self->ops->stats ? self->ops->stats(self, stats) : -ENOTSUP;
}

int source_fd(const source_t *self)
{
    return self->fd;
}

int source_linktype(const source_t *self)
{
    return linktype_from_dlt(pcap_datalink(self->pcap));
}

bool source_has_stats(const source_t *self)
{
    return self->ops->stats != NULL;
}

uint32_t source_snaplen(const source_t *self)
{
    if (self->ops->snaplen)
        return self->ops->snaplen(self);
    int s = pcap_snapshot(self->pcap);
    return s > 0 ? (uint32_t)s : 262144u;
}

const char *source_name(const source_t *self)
{
    return self->name;
}

const char *source_description(const source_t *self)
{
    return self->description;
}

const char *source_error(const source_t *self)
{
    return self->error;
}

void source_close(source_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    source_t *self = *self_p;
    if (self->ops->close)
        self->ops->close(self);
    if (self->pcap)
        pcap_close(self->pcap);
    free(self);
    *self_p = NULL;
}
