/*
 * pcapng — block encoders (pcapng spec, draft-ietf-opsawg-pcapng: SHB §4.1,
 * IDB §4.2, EPB §4.3, ISB §4.6, custom options) and the classic pcap format, in host
 * byte order as the specification allows (readers follow the byte-order
 * magic).
 *
 * Every block: total length computed first, body padded to 4 bytes,
 * trailing length written, then appended whole to the buffer.
 */
#include "pcapng.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_SHB 0x0A0D0D0Au
#define S_IDB 0x00000001u
#define S_EPB 0x00000006u
#define S_ISB 0x00000005u
#define S_SHB_OS 3
#define S_IF_FILTER 11
#define S_IF_OS 12
#define S_ISB_STARTTIME 2
#define S_ISB_ENDTIME 3
#define S_ISB_IFRECV 4
#define S_ISB_IFDROP 5
#define S_ISB_OSDROP 7
#define S_ISB_USRDELIV 8
#define S_BOM 0x1A2B3C4Du
#define S_OPT_END 0
#define S_OPT_COMMENT 1
#define S_SHB_USERAPPL 4
#define S_IF_NAME 2
#define S_IF_DESCRIPTION 3
#define S_IF_TSRESOL 9
#define S_PCAP_MAGIC_NS 0xa1b23c4du
#define S_OPT_TEXT_MAX 4096
#define S_MAX_INTERFACES 65535

typedef struct {
    uint16_t linktype;
    char *name;
    char *description;
    char *filter;           /* NULL: none */
    char *os;               /* NULL: none */
    pcapng_custom_t custom; /* .data owned; .len 0 and .data NULL: none */
} s_iface_t;

struct pcapng_writer_t {
    pcapng_format_t format;
    uint32_t snaplen;
    char *userappl;
    char *os; /* shb_os, or NULL */
    uint8_t *buf;
    size_t len, cap;
    pcapng_sink_fn sink;
    void *ctx;
    int error; /* latched sink error, 0 when fine */
    bool pcap_header_done;
    s_iface_t *ifaces;
    unsigned nifaces, ifaces_cap;
    uint64_t file_bytes;
};

static size_t s_pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

static size_t s_opt_size(size_t len)
{
    return 4 + s_pad4(len);
}

size_t pcapng_packet_size(pcapng_format_t format, uint32_t caplen)
{
    if (format == PCAPNG_FORMAT_PCAP)
        return 16 + (size_t)caplen;
    return 32 + s_pad4(caplen);
}

/* Appends raw bytes; the caller has made room. */
static void s_raw(pcapng_writer_t *self, const void *p, size_t n)
{
    memcpy(self->buf + self->len, p, n);
    self->len += n;
}

static void s_u32(pcapng_writer_t *self, uint32_t v)
{
    s_raw(self, &v, 4);
}

static void s_u16(pcapng_writer_t *self, uint16_t v)
{
    s_raw(self, &v, 2);
}

static void s_zero_pad(pcapng_writer_t *self, size_t n)
{
    size_t pad = s_pad4(n) - n;
    memset(self->buf + self->len, 0, pad);
    self->len += pad;
}

static void s_option(pcapng_writer_t *self, uint16_t code, const void *val, size_t len)
{
    s_u16(self, code);
    s_u16(self, (uint16_t)len);
    if (len) {
        s_raw(self, val, len);
        s_zero_pad(self, len);
    }
}

static size_t s_text_len(const char *s)
{
    return s ? strnlen(s, S_OPT_TEXT_MAX) : 0;
}

static bool s_custom_valid(const pcapng_custom_t *c)
{
    bool code = c->code == PCAPNG_OPT_CUSTOM_UTF8 || c->code == PCAPNG_OPT_CUSTOM_BINARY ||
                c->code == PCAPNG_OPT_CUSTOM_UTF8_NOCOPY ||
                c->code == PCAPNG_OPT_CUSTOM_BINARY_NOCOPY;
    return code && c->len <= PCAPNG_CUSTOM_DATA_MAX && (c->len == 0 || c->data);
}

/* Bytes a custom option takes, or 0 for none. */
static size_t s_custom_size(const pcapng_custom_t *c)
{
    return c ? s_opt_size(4 + c->len) : 0;
}

/* Code, length (PEN + data), the PEN in the section's byte order (the
 * writer's: host order), the data, zero padding. */
static void s_custom(pcapng_writer_t *self, const pcapng_custom_t *c)
{
    s_u16(self, c->code);
    s_u16(self, (uint16_t)(4 + c->len));
    s_u32(self, c->pen);
    if (c->len)
        s_raw(self, c->data, c->len);
    s_zero_pad(self, 4 + c->len);
}

int pcapng_writer_flush(pcapng_writer_t *self)
{
    if (self->error)
        return self->error;
    if (self->len == 0)
        return 0;
    int rc = self->sink(self->ctx, self->buf, self->len);
    if (rc < 0) {
        self->error = rc;
        return rc;
    }
    self->file_bytes += self->len;
    self->len = 0;
    return 0;
}

/* Makes room for a block of `n` bytes, flushing when the buffer is full. */
static int s_room(pcapng_writer_t *self, size_t n)
{
    if (self->error)
        return self->error;
    if (self->cap - self->len >= n)
        return 0;
    int rc = pcapng_writer_flush(self);
    if (rc < 0)
        return rc;
    if (self->cap < n) {
        uint8_t *b = realloc(self->buf, n);
        if (!b)
            return -ENOMEM;
        self->buf = b;
        self->cap = n;
    }
    return 0;
}

static int s_shb(pcapng_writer_t *self)
{
    size_t ul = s_text_len(self->userappl), ol = s_text_len(self->os);
    size_t total = 24 + (ol ? s_opt_size(ol) : 0) + (ul ? s_opt_size(ul) : 0) + 4 + 4;
    int rc = s_room(self, total);
    if (rc < 0)
        return rc;
    s_u32(self, S_SHB);
    s_u32(self, (uint32_t)total);
    s_u32(self, S_BOM);
    s_u16(self, 1);
    s_u16(self, 0);
    uint64_t section_len = UINT64_MAX; /* unknown: streamed */
    s_raw(self, &section_len, 8);
    if (ol)
        s_option(self, S_SHB_OS, self->os, ol);
    if (ul)
        s_option(self, S_SHB_USERAPPL, self->userappl, ul);
    s_option(self, S_OPT_END, NULL, 0);
    s_u32(self, (uint32_t)total);
    return 0;
}

static int s_pcap_header(pcapng_writer_t *self, uint16_t linktype)
{
    int rc = s_room(self, 24);
    if (rc < 0)
        return rc;
    s_u32(self, S_PCAP_MAGIC_NS);
    s_u16(self, 2);
    s_u16(self, 4);
    s_u32(self, 0); /* thiszone */
    s_u32(self, 0); /* sigfigs */
    s_u32(self, self->snaplen);
    s_u32(self, linktype);
    self->pcap_header_done = true;
    return 0;
}

static int s_idb(pcapng_writer_t *self, const s_iface_t *f)
{
    size_t nl = s_text_len(f->name), dl = s_text_len(f->description);
    size_t fl = s_text_len(f->filter), ol = s_text_len(f->os);
    const pcapng_custom_t *custom = f->custom.data ? &f->custom : NULL;
    size_t total = 16 + (nl ? s_opt_size(nl) : 0) + (dl ? s_opt_size(dl) : 0) + s_opt_size(1) +
                   (fl ? s_opt_size(1 + fl) : 0) + (ol ? s_opt_size(ol) : 0) +
                   s_custom_size(custom) + 4 + 4;
    int rc = s_room(self, total);
    if (rc < 0)
        return rc;
    s_u32(self, S_IDB);
    s_u32(self, (uint32_t)total);
    s_u16(self, f->linktype);
    s_u16(self, 0);
    s_u32(self, self->snaplen);
    if (nl)
        s_option(self, S_IF_NAME, f->name, nl);
    if (dl)
        s_option(self, S_IF_DESCRIPTION, f->description, dl);
    uint8_t tsresol = 9; /* 10^-9 s */
    s_option(self, S_IF_TSRESOL, &tsresol, 1);
    if (fl) { /* code, length, 0 (libpcap filter string), the string, padding */
        s_u16(self, S_IF_FILTER);
        s_u16(self, (uint16_t)(1 + fl));
        uint8_t kind = 0;
        s_raw(self, &kind, 1);
        s_raw(self, f->filter, fl);
        s_zero_pad(self, 1 + fl);
    }
    if (ol)
        s_option(self, S_IF_OS, f->os, ol);
    if (custom)
        s_custom(self, custom);
    s_option(self, S_OPT_END, NULL, 0);
    s_u32(self, (uint32_t)total);
    return 0;
}

/* The header blocks of a file: SHB and every IDB, or the pcap header. */
static int s_headers(pcapng_writer_t *self)
{
    if (self->format == PCAPNG_FORMAT_PCAP) {
        self->pcap_header_done = false;
        return self->nifaces ? s_pcap_header(self, self->ifaces[0].linktype) : 0;
    }
    int rc = s_shb(self);
    for (unsigned i = 0; rc == 0 && i < self->nifaces; i++)
        rc = s_idb(self, &self->ifaces[i]);
    return rc;
}

pcapng_writer_t *pcapng_writer_new(pcapng_format_t format, uint32_t snaplen, const char *userappl,
                                   size_t bufsize, pcapng_sink_fn sink, void *ctx)
{
    return pcapng_writer_new_os(format, snaplen, userappl, NULL, bufsize, sink, ctx);
}

pcapng_writer_t *pcapng_writer_new_os(pcapng_format_t format, uint32_t snaplen,
                                      const char *userappl, const char *os, size_t bufsize,
                                      pcapng_sink_fn sink, void *ctx)
{
    pcapng_writer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    size_t largest = pcapng_packet_size(PCAPNG_FORMAT_PCAPNG, snaplen) +
                     s_opt_size(S_OPT_TEXT_MAX) + 2 * s_opt_size(S_OPT_TEXT_MAX) + 64;
    self->format = format;
    self->snaplen = snaplen;
    self->cap = bufsize > largest ? bufsize : largest;
    self->buf = malloc(self->cap);
    self->userappl = userappl ? strdup(userappl) : NULL;
    self->os = os && *os ? strdup(os) : NULL;
    self->sink = sink;
    self->ctx = ctx;
    if (!self->buf || (userappl && !self->userappl) || (os && *os && !self->os) ||
        s_headers(self) < 0) {
        pcapng_writer_destroy(&self);
        return NULL;
    }
    return self;
}

void pcapng_writer_destroy(pcapng_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pcapng_writer_t *self = *self_p;
    for (unsigned i = 0; i < self->nifaces; i++) {
        free(self->ifaces[i].name);
        free(self->ifaces[i].description);
        free(self->ifaces[i].filter);
        free(self->ifaces[i].os);
        free((void *)self->ifaces[i].custom.data);
    }
    free(self->ifaces);
    free(self->userappl);
    free(self->os);
    free(self->buf);
    free(self);
    *self_p = NULL;
}

int pcapng_writer_add_interface(pcapng_writer_t *self, uint16_t linktype, const char *name,
                                const char *description)
{
    return pcapng_writer_add_interface_custom(self, linktype, name, description, NULL);
}

int pcapng_writer_add_interface_custom(pcapng_writer_t *self, uint16_t linktype, const char *name,
                                       const char *description, const pcapng_custom_t *custom)
{
    pcapng_iface_t f = {
        .linktype = linktype, .name = name, .description = description, .custom = custom};
    return pcapng_writer_add_interface_opts(self, &f);
}

static void s_iface_free(s_iface_t *f)
{
    free(f->name);
    free(f->description);
    free(f->filter);
    free(f->os);
    free((void *)f->custom.data);
}

/* A copy of `s`, or NULL for none; *bad when out of memory. */
static char *s_dup_opt(const char *s, bool *bad)
{
    if (!s || !*s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *bad = true;
    return d;
}

int pcapng_writer_add_interface_opts(pcapng_writer_t *self, const pcapng_iface_t *in)
{
    uint16_t linktype = in->linktype;
    const char *name = in->name, *description = in->description;
    const pcapng_custom_t *custom = in->custom;
    if (self->error)
        return self->error;
    if (custom && (self->format != PCAPNG_FORMAT_PCAPNG || !s_custom_valid(custom)))
        return -EINVAL;
    if (self->format == PCAPNG_FORMAT_PCAP && self->nifaces > 0 &&
        self->ifaces[0].linktype != linktype)
        return -EPROTOTYPE;
    if (self->nifaces >= S_MAX_INTERFACES)
        return -ENOSPC;
    if (self->nifaces == self->ifaces_cap) {
        unsigned cap = self->ifaces_cap ? self->ifaces_cap * 2 : 8;
        s_iface_t *f = realloc(self->ifaces, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        self->ifaces = f;
        self->ifaces_cap = cap;
    }
    s_iface_t *f = &self->ifaces[self->nifaces];
    f->linktype = linktype;
    f->name = strdup(name ? name : "");
    f->description = strdup(description ? description : "");
    f->custom = (pcapng_custom_t){0};
    bool bad = false;
    f->filter = s_dup_opt(in->filter, &bad);
    f->os = s_dup_opt(in->os, &bad);
    if (custom) {
        /* a copy of at least one byte, so that .data says "present" */
        uint8_t *copy = malloc(custom->len ? custom->len : 1);
        if (copy) {
            if (custom->len)
                memcpy(copy, custom->data, custom->len);
            f->custom = *custom;
            f->custom.data = copy;
        }
    }
    if (!f->name || !f->description || (custom && !f->custom.data) || bad) {
        s_iface_free(f);
        return -ENOMEM;
    }
    int rc = 0;
    if (self->format == PCAPNG_FORMAT_PCAPNG)
        rc = s_idb(self, f);
    else if (!self->pcap_header_done)
        rc = s_pcap_header(self, linktype);
    if (rc < 0) {
        s_iface_free(f);
        return rc;
    }
    return (int)self->nifaces++;
}

size_t pcapng_stats_size(const pcapng_stats_t *st)
{
    size_t cl = s_text_len(st->comment);
    size_t n = 20 + (cl ? s_opt_size(cl) : 0) + 2 * s_opt_size(8);
    for (unsigned bit = PCAPNG_ISB_IFRECV; bit <= PCAPNG_ISB_USRDELIV; bit <<= 1)
        if (st->have & bit)
            n += s_opt_size(8);
    return n + s_opt_size(0) + 4;
}

static void s_opt_u64(pcapng_writer_t *self, uint16_t code, uint64_t v)
{
    s_option(self, code, &v, 8);
}

static void s_opt_ts(pcapng_writer_t *self, uint16_t code, uint64_t ts)
{
    uint32_t w[2] = {(uint32_t)(ts >> 32), (uint32_t)ts};
    s_option(self, code, w, 8);
}

int pcapng_writer_stats(pcapng_writer_t *self, uint32_t ifid, const pcapng_stats_t *st)
{
    if (self->error)
        return self->error;
    if (self->format != PCAPNG_FORMAT_PCAPNG || ifid >= self->nifaces)
        return -EINVAL;
    size_t cl = s_text_len(st->comment);
    size_t total = pcapng_stats_size(st);
    int rc = s_room(self, total);
    if (rc < 0)
        return rc;
    s_u32(self, S_ISB);
    s_u32(self, (uint32_t)total);
    s_u32(self, ifid);
    s_u32(self, (uint32_t)(st->ts_ns >> 32));
    s_u32(self, (uint32_t)st->ts_ns);
    if (cl)
        s_option(self, S_OPT_COMMENT, st->comment, cl);
    s_opt_ts(self, S_ISB_STARTTIME, st->start_ns);
    s_opt_ts(self, S_ISB_ENDTIME, st->ts_ns);
    if (st->have & PCAPNG_ISB_IFRECV)
        s_opt_u64(self, S_ISB_IFRECV, st->ifrecv);
    if (st->have & PCAPNG_ISB_IFDROP)
        s_opt_u64(self, S_ISB_IFDROP, st->ifdrop);
    if (st->have & PCAPNG_ISB_OSDROP)
        s_opt_u64(self, S_ISB_OSDROP, st->osdrop);
    if (st->have & PCAPNG_ISB_USRDELIV)
        s_opt_u64(self, S_ISB_USRDELIV, st->usrdeliv);
    s_option(self, S_OPT_END, NULL, 0);
    s_u32(self, (uint32_t)total);
    return 0;
}

size_t pcapng_packet_size_custom(uint32_t caplen, const char *comment,
                                 const pcapng_custom_t *custom)
{
    size_t cl = s_text_len(comment);
    size_t opts = (cl ? s_opt_size(cl) : 0) + s_custom_size(custom);
    return pcapng_packet_size(PCAPNG_FORMAT_PCAPNG, caplen) + (opts ? opts + s_opt_size(0) : 0);
}

static inline void s_put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

/* One packet without options, built in place: the header's fixed fields,
 * the data, the padding and the trailing length, with no branch on the
 * packet's size. The caller has checked the interface and made room for
 * pcapng_packet_size() bytes. */
static inline void s_plain(pcapng_writer_t *self, uint32_t ifid, uint64_t ts_ns, uint32_t caplen,
                           uint32_t origlen, const uint8_t *data)
{
    uint8_t *p = self->buf + self->len;
    if (self->format == PCAPNG_FORMAT_PCAP) {
        s_put32(p, (uint32_t)(ts_ns / 1000000000u));
        s_put32(p + 4, (uint32_t)(ts_ns % 1000000000u));
        s_put32(p + 8, caplen);
        s_put32(p + 12, origlen);
        if (caplen) /* data may be NULL then */
            memcpy(p + 16, data, caplen);
        self->len += 16 + (size_t)caplen;
        return;
    }
    size_t padded = s_pad4(caplen);
    uint32_t total = (uint32_t)(32 + padded);
    /* the last data word zeroed first (the padding), then overwritten by
     * the data; with no data it lands on the header, written next; the
     * copy last, so that nothing is live across it */
    s_put32(p + 24 + padded, 0);
    s_put32(p, S_EPB);
    s_put32(p + 4, total);
    s_put32(p + 8, ifid);
    s_put32(p + 12, (uint32_t)(ts_ns >> 32));
    s_put32(p + 16, (uint32_t)ts_ns);
    s_put32(p + 20, caplen);
    s_put32(p + 24, origlen);
    s_put32(p + 28 + padded, total);
    self->len += total;
    if (caplen)
        memcpy(p + 28, data, caplen);
}

int pcapng_writer_packet(pcapng_writer_t *self, uint32_t ifid, uint64_t ts_ns, uint32_t caplen,
                         uint32_t origlen, const uint8_t *data, const char *comment)
{
    if (comment && *comment)
        return pcapng_writer_packet_custom(self, ifid, ts_ns, caplen, origlen, data, comment, NULL);
    if (self->error)
        return self->error;
    if (ifid >= self->nifaces || caplen > self->snaplen)
        return -EINVAL;
    int rc = s_room(self, pcapng_packet_size(self->format, caplen));
    if (rc < 0)
        return rc;
    s_plain(self, ifid, ts_ns, caplen, origlen, data);
    return 0;
}

int pcapng_writer_append(pcapng_writer_t *self, uint32_t ifid, uint64_t ts_ns, uint32_t caplen,
                         uint32_t origlen, const uint8_t *data)
{
    if (self->error)
        return self->error;
    if (ifid >= self->nifaces || caplen > self->snaplen)
        return -EINVAL;
    if (self->cap - self->len < pcapng_packet_size(self->format, caplen))
        return -ENOBUFS;
    s_plain(self, ifid, ts_ns, caplen, origlen, data);
    return 0;
}

int pcapng_writer_packet_custom(pcapng_writer_t *self, uint32_t ifid, uint64_t ts_ns,
                                uint32_t caplen, uint32_t origlen, const uint8_t *data,
                                const char *comment, const pcapng_custom_t *custom)
{
    if (self->error)
        return self->error;
    if (ifid >= self->nifaces || caplen > self->snaplen)
        return -EINVAL;
    if (custom && (self->format != PCAPNG_FORMAT_PCAPNG || !s_custom_valid(custom)))
        return -EINVAL;
    if (self->format == PCAPNG_FORMAT_PCAP) {
        int rc = s_room(self, 16 + (size_t)caplen);
        if (rc < 0)
            return rc;
        s_u32(self, (uint32_t)(ts_ns / 1000000000u));
        s_u32(self, (uint32_t)(ts_ns % 1000000000u));
        s_u32(self, caplen);
        s_u32(self, origlen);
        if (caplen)
            s_raw(self, data, caplen);
        return 0;
    }
    size_t cl = s_text_len(comment);
    size_t total = pcapng_packet_size_custom(caplen, comment, custom);
    int rc = s_room(self, total);
    if (rc < 0)
        return rc;
    s_u32(self, S_EPB);
    s_u32(self, (uint32_t)total);
    s_u32(self, ifid);
    s_u32(self, (uint32_t)(ts_ns >> 32));
    s_u32(self, (uint32_t)ts_ns);
    s_u32(self, caplen);
    s_u32(self, origlen);
    if (caplen)
        s_raw(self, data, caplen);
    s_zero_pad(self, caplen);
    if (cl)
        s_option(self, S_OPT_COMMENT, comment, cl);
    if (custom)
        s_custom(self, custom);
    if (cl || custom)
        s_option(self, S_OPT_END, NULL, 0);
    s_u32(self, (uint32_t)total);
    return 0;
}

int pcapng_writer_restart(pcapng_writer_t *self)
{
    int rc = pcapng_writer_flush(self);
    if (rc < 0)
        return rc;
    self->file_bytes = 0;
    return s_headers(self);
}

int pcapng_writer_linktype(const pcapng_writer_t *self, uint32_t ifid)
{
    return ifid < self->nifaces ? self->ifaces[ifid].linktype : -1;
}

unsigned pcapng_writer_interfaces(const pcapng_writer_t *self)
{
    return self->nifaces;
}

size_t pcapng_writer_room(const pcapng_writer_t *self)
{
    return self->cap - self->len;
}

size_t pcapng_writer_buffered(const pcapng_writer_t *self)
{
    return self->len;
}

uint64_t pcapng_writer_file_bytes(const pcapng_writer_t *self)
{
    return self->file_bytes;
}

int pcapng_sink_fd(void *ctx, const void *buf, size_t len)
{
    int fd = *(int *)ctx;
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
