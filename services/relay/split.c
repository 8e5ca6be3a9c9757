/*
 * split — BPF programs compiled lazily per link type (pcap_open_dead), the
 * flow hash from common/decode, and one growing output buffer per way.
 */
#include "split.h"

#include "decode.h"
#include "linktype.h"
#include "log.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PROGRAMS 8

typedef struct {
    uint16_t linktype;
    bool ok; /* compiled; else the filter cannot apply: nothing passes */
    struct bpf_program prog;
} s_program_t;

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    uint32_t count;
} s_out_t;

struct split_t {
    char *filter;
    unsigned ways;
    s_program_t prog[S_PROGRAMS];
    unsigned nprog;
    s_out_t out[WIRE_PARTS_MAX > 32 ? 32 : WIRE_PARTS_MAX];
    uint32_t filtered;
};

/* Compiles the filter for a link type; false with libpcap's message. */
static bool s_compile(const char *filter, uint16_t linktype, struct bpf_program *prog, char *err,
                      size_t errlen)
{
    pcap_t *dead = pcap_open_dead_with_tstamp_precision(
        linktype_to_dlt(linktype), (int)WIRE_SNAPLEN_MAX, PCAP_TSTAMP_PRECISION_NANO);
    if (!dead) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    bool ok = pcap_compile(dead, prog, filter, 1, PCAP_NETMASK_UNKNOWN) == 0;
    if (!ok)
        snprintf(err, errlen, "%s", pcap_geterr(dead));
    pcap_close(dead);
    return ok;
}

split_t *split_new(const char *filter, unsigned ways, char *err, size_t errlen)
{
    split_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->ways = ways ? ways : 1;
    if (self->ways > sizeof self->out / sizeof *self->out)
        self->ways = sizeof self->out / sizeof *self->out;
    self->filter = strdup(filter ? filter : "");
    if (*self->filter) {
        struct bpf_program prog;
        char why[PCAP_ERRBUF_SIZE + 64];
        if (!s_compile(self->filter, 1, &prog, why, sizeof why)) {
            snprintf(err, errlen, "FILTER='%s': %s", self->filter, why);
            split_destroy(&self);
            return NULL;
        }
        pcap_freecode(&prog);
    }
    return self;
}

void split_destroy(split_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    split_t *self = *self_p;
    for (unsigned i = 0; i < self->nprog; i++)
        if (self->prog[i].ok)
            pcap_freecode(&self->prog[i].prog);
    for (unsigned i = 0; i < sizeof self->out / sizeof *self->out; i++)
        free(self->out[i].buf);
    free(self->filter);
    free(self);
    *self_p = NULL;
}

static const s_program_t *s_program(split_t *self, uint16_t linktype)
{
    for (unsigned i = 0; i < self->nprog; i++)
        if (self->prog[i].linktype == linktype)
            return &self->prog[i];
    s_program_t *p = &self->prog[self->nprog < S_PROGRAMS ? self->nprog++ : S_PROGRAMS - 1];
    if (self->nprog == S_PROGRAMS && p->ok)
        pcap_freecode(&p->prog); /* many link types: reuse the last slot */
    p->linktype = linktype;
    char why[PCAP_ERRBUF_SIZE + 64];
    p->ok = s_compile(self->filter, linktype, &p->prog, why, sizeof why);
    if (!p->ok)
        log_warn("FILTER='%s' cannot apply to link type %u (%s): no packet of that link type "
                 "is forwarded",
                 self->filter, linktype, why);
    return p;
}

static int s_room(s_out_t *o, size_t need)
{
    if (o->cap - o->len >= need)
        return 0;
    size_t cap = o->cap ? o->cap : 65536;
    while (cap - o->len < need)
        cap *= 2;
    uint8_t *b = realloc(o->buf, cap);
    if (!b)
        return -ENOMEM;
    o->buf = b;
    o->cap = cap;
    return 0;
}

int split_batch(split_t *self, const uint8_t *payload, size_t len, uint32_t count,
                const uint16_t *linktypes, unsigned nifaces)
{
    self->filtered = 0;
    for (unsigned i = 0; i < self->ways; i++) {
        s_out_t *o = &self->out[i];
        o->len = o->count = 0;
        if (s_room(o, WIRE_FRAME_HDR) < 0)
            return -ENOMEM;
        wire_packets_begin(o->buf, o->cap, &o->len);
    }
    size_t off = 0;
    wire_packet_t p;
    for (uint32_t n = 0; n < count && wire_packets_next(payload, len, &off, &p); n++) {
        uint16_t lt = p.ifindex < nifaces ? linktypes[p.ifindex] : 1;
        if (*self->filter) {
            const s_program_t *prog = s_program(self, lt);
            struct pcap_pkthdr h = {.caplen = p.caplen, .len = p.origlen};
            if (!prog->ok || !pcap_offline_filter(&prog->prog, &h, p.data)) {
                self->filtered++;
                continue;
            }
        }
        unsigned way = 0;
        decode_flow_t flow;
        if (self->ways > 1 && decode_flow(lt, p.data, p.caplen, &flow))
            way = (unsigned)(decode_flow_hash(&flow) % self->ways);
        s_out_t *o = &self->out[way];
        if (s_room(o, WIRE_PKT_HDR + p.caplen) < 0)
            return -ENOMEM;
        wire_packets_put(o->buf, o->cap, &o->len, &p);
        o->count++;
    }
    return 0;
}

const uint8_t *split_out(const split_t *self, unsigned i, size_t *len, uint32_t *count)
{
    *len = self->out[i].len;
    *count = self->out[i].count;
    return self->out[i].buf;
}

uint32_t split_filtered(const split_t *self)
{
    return self->filtered;
}
