/*
 * source-live — packets from a network interface through libpcap:
 * pcap_create, then every option before pcap_activate (snaplen, promiscuous
 * and immediate mode, kernel buffer, nanosecond precision, timestamp type),
 * a BPF filter (without the agent's own connections to its next hops:
 * source-filter.c), non-blocking reads from a pollable descriptor. Every
 * error names the setting and the interface.
 */
#include "source-int.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static source_result_t s_next(source_t *self, source_packet_t *pkt)
{
    return source_read_pcap(self, pkt);
}

static int s_stats(source_t *self, source_stats_t *stats)
{
    struct pcap_stat ps;
    if (pcap_stats(self->pcap, &ps) < 0) {
        snprintf(self->error, sizeof self->error, "%s: %s", self->name, pcap_geterr(self->pcap));
        return -EIO;
    }
    stats->received = ps.ps_recv;
    stats->dropped = ps.ps_drop;
    stats->ifdropped = ps.ps_ifdrop;
    return 0;
}

static const source_ops_t s_ops = {.next = s_next, .stats = s_stats};

/* "host, adapter_unsynced" — what the interface offers, for messages. */
static void s_tstamp_types(pcap_t *p, char *out, size_t len)
{
    int *types = NULL;
    int n = pcap_list_tstamp_types(p, &types);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", i ? ", " : "",
                 pcap_tstamp_type_val_to_name(types[i]));
    }
    if (n <= 0)
        snprintf(out, len, "only the default (host)");
    pcap_free_tstamp_types(types);
}

static int s_tstamp(source_t *self, const char *dev, const char *name, char *err, size_t errlen)
{
    if (!name || !*name)
        return 0;
    int type = pcap_tstamp_type_name_to_val(name);
    char offers[256];
    s_tstamp_types(self->pcap, offers, sizeof offers);
    if (type == PCAP_ERROR) {
        snprintf(err, errlen, "TSTAMP_TYPE=%s: not a timestamp type; %s offers %s", name, dev,
                 offers);
        return -EINVAL;
    }
    int rc = pcap_set_tstamp_type(self->pcap, type);
    if (rc != 0) {
        snprintf(err, errlen, "TSTAMP_TYPE=%s: %s does not offer it; it offers %s", name, dev,
                 offers);
        return -EINVAL;
    }
    return 0;
}

static bool s_compiles(pcap_t *p, const char *program)
{
    struct bpf_program prog;
    if (pcap_compile(p, &prog, program, 1, PCAP_NETMASK_UNKNOWN) < 0)
        return false;
    pcap_freecode(&prog);
    return true;
}

/* Sets the user's FILTER with the agent's own connections to its next hops
 * left out (source-filter.c), and logs the filter in force. */
static int s_filter(source_t *self, const source_live_opts_t *o, char *err, size_t errlen)
{
    const char *filter = o->filter ? o->filter : "";
    /* the user's filter alone first: its errors name FILTER, and it is known
     * whole before it is put in parentheses */
    if (*filter && !s_compiles(self->pcap, filter)) {
        snprintf(err, errlen, "FILTER='%s': %s", filter, pcap_geterr(self->pcap));
        return -EINVAL;
    }
    size_t len = strlen(filter) + 4096;
    char *program = malloc(len);
    if (!program) {
        snprintf(err, errlen, "DEVICE=%s: out of memory", o->device);
        return -ENOMEM;
    }
    int rc = source_filter_build(filter, o->next_hops, program, len, err, errlen);
    if (rc == 0 && strcmp(program, filter) != 0 && !s_compiles(self->pcap, program) &&
        !s_compiles(self->pcap, "ip or ip6")) {
        /* a link type without IP (CAN, USB...) cannot carry the agent's
         * connection: nothing to leave out */
        log_info("DEVICE=%s: link type %s carries no IP: nothing of the agent's own to leave out",
                 o->device, pcap_datalink_val_to_name(pcap_datalink(self->pcap)));
        snprintf(program, len, "%s", filter);
    }
    if (rc == 0)
        rc = source_set_filter(self, program, o->device, err, errlen);
    if (rc == 0)
        log_info("DEVICE=%s: filter in force: %s", o->device, *program ? program : "none");
    free(program);
    return rc;
}

source_t *source_live_open(const source_live_opts_t *o, char *err, size_t errlen)
{
    source_t *self = source_new(&s_ops, NULL);
    if (!self) {
        snprintf(err, errlen, "DEVICE=%s: out of memory", o->device);
        return NULL;
    }
    snprintf(self->name, sizeof self->name, "%s", o->device);
    char perr[PCAP_ERRBUF_SIZE] = "";
    self->pcap = pcap_create(o->device, perr);
    if (!self->pcap) {
        snprintf(err, errlen, "DEVICE=%s: %s", o->device, perr);
        goto err;
    }
    pcap_set_snaplen(self->pcap, (int)o->snaplen);
    pcap_set_promisc(self->pcap, o->promisc);
    pcap_set_immediate_mode(self->pcap, o->immediate);
    if (o->buffer_mb)
        pcap_set_buffer_size(self->pcap, (int)(o->buffer_mb << 20));
    if (pcap_set_tstamp_precision(self->pcap, PCAP_TSTAMP_PRECISION_NANO) != 0) {
        snprintf(err, errlen, "DEVICE=%s: nanosecond timestamps are not available", o->device);
        goto err;
    }
    if (s_tstamp(self, o->device, o->tstamp_type, err, errlen) < 0)
        goto err;
    int rc = pcap_activate(self->pcap);
    if (rc < 0) {
        const char *detail = pcap_geterr(self->pcap);
        snprintf(err, errlen, "DEVICE=%s: %s%s%s", o->device, pcap_statustostr(rc),
                 *detail ? ": " : "", detail);
        goto err;
    }
    if (rc > 0)
        log_warn("DEVICE=%s: %s: %s", o->device, pcap_statustostr(rc), pcap_geterr(self->pcap));
    if (pcap_setnonblock(self->pcap, 1, perr) < 0) {
        snprintf(err, errlen, "DEVICE=%s: %s", o->device, perr);
        goto err;
    }
    if (s_filter(self, o, err, errlen) < 0)
        goto err;
    self->fd = pcap_get_selectable_fd(self->pcap);
    if (self->fd < 0) {
        snprintf(err, errlen, "DEVICE=%s: cannot be polled", o->device);
        goto err;
    }
    snprintf(self->description, sizeof self->description, "live capture on %s%s%s%s", o->device,
             *o->filter ? " (filter: " : "", o->filter, *o->filter ? ")" : "");
    return self;
err:
    source_close(&self);
    return NULL;
}
