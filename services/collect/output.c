/*
 * output — the collector's sink. Every IDB carries WIRE_SNAPLEN_MAX, large
 * enough for any packet the protocol admits; a source's own snaplen goes
 * into the IDB description.
 */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char name[WIRE_NAME_MAX * 2 + 2]; /* source/interface */
    uint16_t linktype;
} s_iface_t;

struct output_t {
    char path[4096];
    int fd;
    pcapng_format_t format;
    output_policy_t policy;
    pcapng_writer_t *writer;
    s_iface_t *ifaces;
    size_t nifaces, cap;
    uint64_t bytes;
};

static int s_sink(void *ctx, const void *buf, size_t len)
{
    output_t *self = ctx;
    int rc = pcapng_sink_fd(&self->fd, buf, len);
    if (rc == 0)
        self->bytes += len;
    return rc;
}

output_t *output_open(const char *path, pcapng_format_t format, output_policy_t policy,
                      size_t bufsize, char *err, size_t errlen)
{
    output_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    snprintf(self->path, sizeof self->path, "%s", path);
    self->format = format;
    self->policy = format == PCAPNG_FORMAT_PCAP ? OUTPUT_LINKTYPE_FIRST : policy;
    if (strcmp(path, "-") == 0) {
        self->fd = STDOUT_FILENO;
    } else {
        self->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (self->fd < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(self);
            return NULL;
        }
    }
    self->writer = pcapng_writer_new(format, WIRE_SNAPLEN_MAX, "tapmesh-collect " TAPMESH_VERSION,
                                     bufsize, s_sink, self);
    if (!self->writer) {
        snprintf(err, errlen, "%s: out of memory", path);
        output_close(&self);
        return NULL;
    }
    return self;
}

void output_close(output_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    output_t *self = *self_p;
    if (self->writer)
        pcapng_writer_flush(self->writer);
    pcapng_writer_destroy(&self->writer);
    if (self->fd > STDERR_FILENO)
        close(self->fd);
    free(self->ifaces);
    free(self);
    *self_p = NULL;
}

int output_interface(output_t *self, const char *source, const char *source_descr,
                     const wire_iface_t *iface, char *why, size_t whylen)
{
    char name[sizeof self->ifaces->name];
    snprintf(name, sizeof name, "%s/%s", source, iface->name);
    for (size_t i = 0; i < self->nifaces; i++)
        if (self->ifaces[i].linktype == iface->linktype && strcmp(self->ifaces[i].name, name) == 0)
            return (int)i;
    if (self->nifaces > 0 && self->policy == OUTPUT_LINKTYPE_FIRST &&
        self->ifaces[0].linktype != iface->linktype) {
        if (self->format == PCAPNG_FORMAT_PCAP)
            snprintf(why, whylen,
                     "%s has link type %u but this output has link type %u: OUTPUT_FORMAT=pcap "
                     "holds one link type",
                     name, iface->linktype, self->ifaces[0].linktype);
        else
            snprintf(why, whylen,
                     "%s has link type %u but this output has link type %u "
                     "(LINKTYPE_POLICY=first, so that tcpdump reads it; "
                     "LINKTYPE_POLICY=mixed allows both, for tshark and Wireshark)",
                     name, iface->linktype, self->ifaces[0].linktype);
        return -EPROTOTYPE;
    }
    if (self->nifaces == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        s_iface_t *f = realloc(self->ifaces, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        self->ifaces = f;
        self->cap = cap;
    }
    char descr[WIRE_TEXT_MAX * 2 + 128];
    snprintf(descr, sizeof descr, "%s%s%s; snaplen %u", iface->description,
             *source_descr ? "; " : "", source_descr, iface->snaplen);
    int id = pcapng_writer_add_interface(self->writer, iface->linktype, name, descr);
    if (id < 0) {
        snprintf(why, whylen, "%s: %s", name, strerror(-id));
        return id;
    }
    s_iface_t *f = &self->ifaces[self->nifaces++];
    snprintf(f->name, sizeof f->name, "%s", name);
    f->linktype = iface->linktype;
    return id;
}

int output_packet(output_t *self, uint32_t ifid, const wire_packet_t *pkt, const char *comment)
{
    return pcapng_writer_packet(self->writer, ifid, pkt->ts_ns, pkt->caplen, pkt->origlen,
                                pkt->data, comment);
}

int output_flush(output_t *self)
{
    return pcapng_writer_flush(self->writer);
}

const char *output_name(const output_t *self)
{
    return strcmp(self->path, "-") == 0 ? "standard output" : self->path;
}

uint64_t output_bytes(const output_t *self)
{
    return self->bytes;
}
