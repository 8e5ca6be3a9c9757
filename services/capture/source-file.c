/*
 * source-file — packets from a pcap or pcapng file through libpcap, with
 * nanosecond precision, at full speed or at a multiple of the recorded pace.
 *
 * The file is opened here with a large stdio buffer and handed to libpcap
 * (pcap_fopen_offline...): libpcap's own fopen reads 4 KiB at a time.
 * libpcap does not tell whether a classic pcap file counts microseconds or
 * nanoseconds, and its timestamps are only read right knowing that
 * (source.c): a regular file's first four bytes are read with pread(2);
 * standard input gets a stream of our own (fopencookie) that sees them go
 * by, since nothing can be read twice from a pipe.
 */
#define _GNU_SOURCE /* fopencookie */
#include "source-int.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio_ext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_STDIO_BUFFER (1u << 20)

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

typedef struct {
    s_stream_t stream;
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

/* A regular file opened by path: its first bytes are read with pread(2)
 * and the stream is stdio's own, whose reads from its buffer are a memcpy
 * (a cookie stream copies reads of up to 20 bytes, such as every record
 * header, byte by byte: a fifth of the agent's instructions per packet).
 * NULL with errno 0 when it is not one (the cookie stream then), with
 * errno set on failure. */
static FILE *s_regular_open(s_stream_t *st)
{
    struct stat sb;
    errno = 0;
    if (!st->own_fd || fstat(st->fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        errno = 0;
        return NULL;
    }
    ssize_t n;
    do
        n = pread(st->fd, st->head, sizeof st->head, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return NULL;
    st->head_len = (size_t)n;
    FILE *file = fdopen(st->fd, "rb"); /* fclose closes the descriptor */
    if (file)
        st->fd = -1;
    return file;
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

static source_result_t s_next(source_t *self, source_packet_t *pkt)
{
    s_file_t *f = self->impl;
    if (!f->held && s_pipe_dry(self, f))
        return SOURCE_IDLE;
    if (f->speed == 0)
        return source_read_pcap(self, pkt);
    if (!f->held) {
        source_result_t r = source_read_pcap(self, &f->pending);
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
    /* libpcap's buffer still holds the data: nothing was read since */
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
    FILE *file = s_regular_open(&f->stream);
    if (!file && !errno)
        file = s_stream_open(&f->stream);
    if (!file) {
        snprintf(err, errlen, "READ_FILE=%s: %s", path, strerror(errno));
        s_stream_close(&f->stream);
        goto err;
    }
    f->stdio_buf = malloc(S_STDIO_BUFFER);
    if (f->stdio_buf)
        setvbuf(file, f->stdio_buf, _IOFBF, S_STDIO_BUFFER);
    /* only the agent's loop reads it: libpcap's two freads per record then
     * take no lock each (a third of their cost) */
    __fsetlocking(file, FSETLOCKING_BYCALLER);
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
    if (source_set_filter(self, filter, path, err, errlen) < 0)
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
