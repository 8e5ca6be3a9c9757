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
    /* in nanosecond mode tv_usec holds nanoseconds */
    pkt->ts_ns = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
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

uint32_t source_snaplen(const source_t *self)
{
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
