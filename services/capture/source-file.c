/*
 * source-file — packets from a pcap or pcapng file through libpcap, with
 * nanosecond precision, at full speed or at a multiple of the recorded pace.
 *
 * The file is opened here with a large stdio buffer and handed to libpcap
 * (pcap_fopen_offline...): libpcap's own fopen reads 4 KiB at a time. The
 * stream is our own (fopencookie), so that it sees the file's first four
 * bytes go by: libpcap does not tell whether a classic pcap file counts
 * microseconds or nanoseconds, and its timestamps are only read right
 * knowing that (source.c). Seeing them pass works on a pipe too, where
 * nothing can be read twice.
 *
 * Classic pcap records are then read here, not through libpcap: its
 * pcap_next_ex costs two fread calls per packet (about 500 instructions,
 * as much as the rest of the agent's work on a 64-byte packet), where a
 * record is 16 bytes to decode in a large buffer filled by read(2). What
 * libpcap does with a record is done the same way here (the same length
 * checks and truncation to the file's snaplen, the same error messages,
 * the BPF filter through pcap_offline_filter); formats and link types
 * whose records libpcap rewrites (the modified pcap format, versions
 * before 2.4, USB and NFLOG pseudo-headers, larger snaplen limits) are
 * left to libpcap. On a pipe a record is taken only once all of it has
 * arrived, and nothing blocks: what is there is read, then the loop polls.
 */
#define _GNU_SOURCE /* fopencookie */
#include "source-int.h"

#include "clock.h"
#include "log.h"
#include "wire.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_STDIO_BUFFER (1u << 20)
/* The direct reader's buffer: what stdio read ahead, and then 1 MiB reads;
 * it always holds a whole record (16 + 262144 bytes) */
#define S_DIRECT_BUFFER (S_STDIO_BUFFER + (1u << 19))
#define S_RECORD_HDR 16
#define S_NS 1000000000ull

/* Classic pcap's magic numbers, in the file's byte order either way. */
#define S_MAGIC_US 0xa1b2c3d4u
#define S_MAGIC_US_MODIFIED 0xa1b2cd34u
#define S_MAGIC_NS 0xa1b23c4du

/* What libpcap reads: a descriptor, and the first bytes seen. */
typedef struct {
    int fd;
    bool own_fd; /* closed with the stream (not standard input) */
    uint8_t head[4];
    size_t head_len;
} s_stream_t;

/* Classic pcap records read without libpcap (see the top of this file). */
typedef struct {
    bool on;
    bool little;     /* the file's byte order */
    uint32_t ts_mul; /* ns per unit of the fraction: 1000 (µs files) or 1 */
    uint32_t snapshot;
    bool filter;
    struct bpf_program prog;
    uint8_t *buf;
    size_t pos, end; /* the bytes read and not yet taken */
    bool eof;
} s_direct_t;

typedef struct {
    s_stream_t stream;
    s_direct_t direct;
    bool pipe; /* standard input is a pipe or socket: read only what is there */
    char *stdio_buf;
    unsigned speed;
    bool started;
    uint64_t first_ts, first_mono;
    bool held; /* a packet read but not yet due */
    source_packet_t pending;
    uint64_t due_mono;
} s_file_t;

static ssize_t s_stream_read(void *cookie, char *buf, size_t size)
{
    s_stream_t *st = cookie;
    ssize_t n;
    do
        n = read(st->fd, buf, size);
    while (n < 0 && errno == EINTR);
    for (ssize_t i = 0; i < n && st->head_len < sizeof st->head; i++)
        st->head[st->head_len++] = (uint8_t)buf[i];
    return n;
}

static int s_stream_close(void *cookie)
{
    s_stream_t *st = cookie;
    int rc = st->own_fd ? close(st->fd) : 0;
    st->fd = -1;
    return rc;
}

/* A stream reading `st->fd`, NULL with errno set. */
static FILE *s_stream_open(s_stream_t *st)
{
    cookie_io_functions_t io = {.read = s_stream_read, .close = s_stream_close};
    return fopencookie(st, "rb", io);
}

/* How to read libpcap's timestamps for the file that began with `head`. */
static source_ts_t s_ts_kind(const s_stream_t *st)
{
    if (st->head_len < sizeof st->head)
        return SOURCE_TS_NATIVE;
    const uint8_t *h = st->head;
    uint32_t le =
        (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    uint32_t be =
        (uint32_t)h[3] | (uint32_t)h[2] << 8 | (uint32_t)h[1] << 16 | (uint32_t)h[0] << 24;
    if (le == S_MAGIC_NS || be == S_MAGIC_NS)
        return SOURCE_TS_PCAP_NS;
    if (le == S_MAGIC_US || be == S_MAGIC_US || le == S_MAGIC_US_MODIFIED ||
        be == S_MAGIC_US_MODIFIED)
        return SOURCE_TS_PCAP_US;
    return SOURCE_TS_NATIVE; /* pcapng: 64-bit timestamps, read right by libpcap */
}

/* A pipe with nothing to read now: libpcap would block in read(2) and
 * stop the agent's loop (no heartbeats, no acknowledgements handled), so
 * the source says IDLE and the loop polls the descriptor. What the stream
 * has buffered is read first (glibc's FILE: _IO_read_ptr/_IO_read_end).
 * A writer that stops in the middle of a record still blocks until it
 * goes on: `tcpdump -U -w -` writes whole records. */
static bool s_pipe_dry(const source_t *self, const s_file_t *f)
{
    if (!f->pipe)
        return false;
    FILE *fp = pcap_file(self->pcap);
    if (fp && fp->_IO_read_ptr < fp->_IO_read_end)
        return false;
    struct pollfd p = {.fd = f->stream.fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

/* ---- classic pcap records, read directly ---------------------------------- */

static inline uint32_t s_u32(const s_direct_t *d, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return d->little ? le32toh(v) : be32toh(v);
}

/* Link types whose records libpcap hands over as the file holds them, with
 * its default limit of 262144 bytes per record. */
static bool s_direct_linktype(int dlt)
{
    switch (dlt) {
    case DLT_NULL:
    case DLT_EN10MB:
    case DLT_RAW:
    case DLT_LOOP:
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_IPV4:
    case DLT_IPV6:
        return true;
    default:
        return false;
    }
}

/* After libpcap read the file header: takes over the records when they are
 * plain classic pcap (else libpcap keeps reading them), with what stdio has
 * read ahead. Returns 0, or -1 with `err` naming FILTER. */
static int s_direct_start(source_t *self, s_file_t *f, const char *filter, char *err, size_t errlen)
{
    s_direct_t *d = &f->direct;
    const s_stream_t *st = &f->stream;
    FILE *fp = pcap_file(self->pcap);
    if (self->ts == SOURCE_TS_NATIVE || st->head_len < 4 || !fp || !f->stdio_buf ||
        pcap_major_version(self->pcap) != 2 || pcap_minor_version(self->pcap) != 4 ||
        !s_direct_linktype(pcap_datalink(self->pcap)) || pcap_snapshot(self->pcap) <= 0)
        return 0;
    uint32_t le = (uint32_t)st->head[0] | (uint32_t)st->head[1] << 8 | (uint32_t)st->head[2] << 16 |
                  (uint32_t)st->head[3] << 24;
    uint32_t be = (uint32_t)st->head[3] | (uint32_t)st->head[2] << 8 | (uint32_t)st->head[1] << 16 |
                  (uint32_t)st->head[0] << 24;
    if (le == S_MAGIC_NS || be == S_MAGIC_NS)
        d->ts_mul = 1;
    else if (le == S_MAGIC_US || be == S_MAGIC_US)
        d->ts_mul = 1000;
    else
        return 0; /* the modified format: 24-byte records */
    d->little = le == S_MAGIC_NS || le == S_MAGIC_US;
    d->snapshot = (uint32_t)pcap_snapshot(self->pcap);
    /* what stdio read ahead, past the file header */
    size_t ahead =
        fp->_IO_read_ptr < fp->_IO_read_end ? (size_t)(fp->_IO_read_end - fp->_IO_read_ptr) : 0;
    if (ahead > S_DIRECT_BUFFER)
        return 0; /* cannot happen: stdio's buffer is smaller */
    d->buf = malloc(S_DIRECT_BUFFER);
    if (!d->buf)
        return 0;
    if (ahead && fread(d->buf, 1, ahead, fp) != ahead) {
        free(d->buf);
        d->buf = NULL;
        return 0; /* libpcap can still read from where the stream stands */
    }
    d->end = ahead;
    if (filter && *filter) {
        if (pcap_compile(self->pcap, &d->prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
            snprintf(err, errlen, "FILTER='%s': %s", filter, pcap_geterr(self->pcap));
            return -1;
        }
        d->filter = true;
    }
    d->on = true;
    return 0;
}

/* Has `need` bytes at pos: 1; the file ended short of them: 0; a pipe has
 * no more now: 2; a read failed: -1 (errno). Reads fill the buffer; a pipe
 * is read only once poll says it holds something. */
static int s_direct_fill(s_file_t *f, size_t need)
{
    s_direct_t *d = &f->direct;
    while (d->end - d->pos < need) {
        if (d->eof)
            return 0;
        if (d->pos) { /* the partial record to the front */
            memmove(d->buf, d->buf + d->pos, d->end - d->pos);
            d->end -= d->pos;
            d->pos = 0;
        }
        if (f->pipe) {
            struct pollfd p = {.fd = f->stream.fd, .events = POLLIN};
            if (poll(&p, 1, 0) == 0)
                return 2;
        }
        ssize_t n;
        do
            n = read(f->stream.fd, d->buf + d->end, S_DIRECT_BUFFER - d->end);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno == EAGAIN)
                return 2;
            return -1;
        }
        if (n == 0)
            d->eof = true;
        d->end += (size_t)n;
    }
    return 1;
}

/* The slow way to the next record: more bytes to read (or a pipe to wait
 * for), or the file's end, or a record libpcap refuses. Returns
 * SOURCE_PACKET once the whole record is at pos, *caplen its length. */
static source_result_t s_direct_fill_record(source_t *self, s_file_t *f, uint32_t *caplen_p)
{
    s_direct_t *d = &f->direct;
    int r = s_direct_fill(f, S_RECORD_HDR);
    if (r == 2)
        return SOURCE_IDLE;
    if (r == 0) {
        size_t got = d->end - d->pos;
        if (got == 0)
            return SOURCE_EOF;
        snprintf(self->error, sizeof self->error,
                 "%s: truncated dump file; tried to read %u header bytes, only got %zu", self->name,
                 S_RECORD_HDR, got);
        return SOURCE_ERROR;
    }
    if (r == 1) {
        uint32_t caplen = s_u32(d, d->buf + d->pos + 8);
        if (caplen > WIRE_SNAPLEN_MAX) {
            if (caplen > d->snapshot)
                snprintf(self->error, sizeof self->error,
                         "%s: invalid packet capture length %u, bigger than snaplen of %u",
                         self->name, caplen, d->snapshot);
            else
                snprintf(self->error, sizeof self->error,
                         "%s: invalid packet capture length %u, bigger than maximum of %u",
                         self->name, caplen, WIRE_SNAPLEN_MAX);
            return SOURCE_ERROR;
        }
        r = s_direct_fill(f, S_RECORD_HDR + (size_t)caplen);
        if (r == 2)
            return SOURCE_IDLE;
        if (r == 0) {
            size_t got = d->end - d->pos - S_RECORD_HDR;
            uint32_t tried = caplen > d->snapshot && got < d->snapshot ? d->snapshot : caplen;
            snprintf(self->error, sizeof self->error,
                     "%s: truncated dump file; tried to read %u captured bytes, only got %zu",
                     self->name, tried, got);
            return SOURCE_ERROR;
        }
        if (r == 1) {
            *caplen_p = caplen;
            return SOURCE_PACKET;
        }
    }
    snprintf(self->error, sizeof self->error, "%s: error reading dump file: %s", self->name,
             strerror(errno));
    return SOURCE_ERROR;
}

/* One record, as libpcap's classic pcap reader gives it (sf-pcap.c). */
static source_result_t s_direct_next(source_t *self, s_file_t *f, source_packet_t *pkt)
{
    s_direct_t *d = &f->direct;
    for (;;) {
        size_t have = d->end - d->pos;
        uint32_t caplen;
        if (have < S_RECORD_HDR || (caplen = s_u32(d, d->buf + d->pos + 8)) > WIRE_SNAPLEN_MAX ||
            caplen > have - S_RECORD_HDR) {
            source_result_t r = s_direct_fill_record(self, f, &caplen);
            if (r != SOURCE_PACKET)
                return r;
        }
        const uint8_t *h = d->buf + d->pos;
        d->pos += S_RECORD_HDR + (size_t)caplen;
        struct pcap_pkthdr ph = {.caplen = caplen > d->snapshot ? d->snapshot : caplen,
                                 .len = s_u32(d, h + 12)};
        const uint8_t *data = h + S_RECORD_HDR;
        if (d->filter && !pcap_offline_filter(&d->prog, &ph, data))
            continue;
        pkt->ts_ns = (uint64_t)s_u32(d, h) * S_NS + (uint64_t)s_u32(d, h + 4) * d->ts_mul;
        pkt->caplen = ph.caplen;
        pkt->origlen = ph.len;
        pkt->data = data;
        return SOURCE_PACKET;
    }
}

/* The next record, from the direct reader or from libpcap. */
static source_result_t s_read(source_t *self, s_file_t *f, source_packet_t *pkt)
{
    if (f->direct.on)
        return s_direct_next(self, f, pkt);
    if (s_pipe_dry(self, f))
        return SOURCE_IDLE;
    return source_read_pcap(self, pkt);
}

static source_result_t s_next(source_t *self, source_packet_t *pkt)
{
    s_file_t *f = self->impl;
    if (f->speed == 0)
        return s_read(self, f, pkt);
    if (!f->held) {
        source_result_t r = s_read(self, f, &f->pending);
        if (r != SOURCE_PACKET)
            return r;
        uint64_t now = clock_mono_ns();
        if (!f->started) {
            f->started = true;
            f->first_ts = f->pending.ts_ns;
            f->first_mono = now;
        }
        uint64_t offset =
            f->pending.ts_ns > f->first_ts ? (f->pending.ts_ns - f->first_ts) / f->speed : 0;
        f->due_mono = f->first_mono + offset;
        f->held = true;
    }
    if (clock_mono_ns() < f->due_mono)
        return SOURCE_IDLE;
    /* the reader's buffer still holds the data: nothing was read since */
    f->held = false;
    *pkt = f->pending;
    return SOURCE_PACKET;
}

static uint64_t s_wait_ns(const source_t *self)
{
    const s_file_t *f = self->impl;
    if (!f->held)
        return 0;
    uint64_t now = clock_mono_ns();
    return f->due_mono > now ? f->due_mono - now : 0;
}

static uint64_t s_next_ts(const source_t *self)
{
    const s_file_t *f = self->impl;
    return f->held ? f->pending.ts_ns : 0;
}

static void s_close(source_t *self)
{
    s_file_t *f = self->impl;
    if (self->pcap) {
        pcap_close(self->pcap); /* closes the stream, which uses stdio_buf and f->stream */
        self->pcap = NULL;
    }
    if (f->direct.filter)
        pcap_freecode(&f->direct.prog);
    free(f->direct.buf);
    free(f->stdio_buf);
    free(f);
}

static const source_ops_t s_ops = {
    .next = s_next, .wait_ns = s_wait_ns, .next_ts = s_next_ts, .close = s_close};

source_t *source_file_open(const char *path, unsigned speed, const char *filter, char *err,
                           size_t errlen)
{
    s_file_t *f = calloc(1, sizeof *f);
    source_t *self = f ? source_new(&s_ops, f) : NULL;
    if (!self) {
        free(f);
        snprintf(err, errlen, "READ_FILE=%s: out of memory", path);
        return NULL;
    }
    f->speed = speed;
    bool is_stdin = strcmp(path, "-") == 0;
    f->stream.fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    f->stream.own_fd = !is_stdin;
    if (f->stream.fd < 0) {
        snprintf(err, errlen, "READ_FILE=%s: %s", path, strerror(errno));
        goto err;
    }
    FILE *file = s_stream_open(&f->stream);
    if (!file) {
        snprintf(err, errlen, "READ_FILE=%s: %s", path, strerror(errno));
        s_stream_close(&f->stream);
        goto err;
    }
    f->stdio_buf = malloc(S_STDIO_BUFFER);
    if (f->stdio_buf)
        setvbuf(file, f->stdio_buf, _IOFBF, S_STDIO_BUFFER);
    char perr[PCAP_ERRBUF_SIZE] = "";
    self->pcap = pcap_fopen_offline_with_tstamp_precision(file, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (!self->pcap) {
        fclose(file); /* and the descriptor, unless it is standard input */
        snprintf(err, errlen, "READ_FILE=%s: %s", path, perr);
        goto err;
    }
    self->ts = s_ts_kind(&f->stream);
    struct stat st;
    if (is_stdin && fstat(STDIN_FILENO, &st) == 0 && !S_ISREG(st.st_mode)) {
        f->pipe = true;
        self->fd = STDIN_FILENO; /* polled by the agent's loop */
    }
    char copy[256];
    snprintf(copy, sizeof copy, "%s", is_stdin ? "stdin" : path);
    snprintf(self->name, sizeof self->name, "%s", basename(copy));
    if (source_set_filter(self, filter, path, err, errlen) < 0 ||
        s_direct_start(self, f, filter, err, errlen) < 0)
        goto err;
    log_info("READ_FILE=%s: filter in force: %s", path, *filter ? filter : "none");
    snprintf(self->description, sizeof self->description, "capture file %s%s%s%s",
             is_stdin ? "(standard input)" : path, *filter ? " (filter: " : "", filter,
             *filter ? ")" : "");
    return self;
err:
    source_close(&self);
    return NULL;
}
