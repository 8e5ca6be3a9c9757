/*
 * source-file — packets from a pcap or pcapng file through libpcap, with
 * nanosecond precision, at full speed or at a multiple of the recorded pace.
 *
 * The file is opened here with a large stdio buffer and handed to libpcap
 * (pcap_fopen_offline...): libpcap's own fopen reads 4 KiB at a time.
 */
#include "source-int.h"

#include "clock.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_STDIO_BUFFER (1u << 20)

typedef struct {
    char *stdio_buf;
    unsigned speed;
    bool started;
    uint64_t first_ts, first_mono;
    bool held; /* a packet read but not yet due */
    source_packet_t pending;
    uint64_t due_mono;
} s_file_t;

static source_result_t s_next(source_t *self, source_packet_t *pkt)
{
    s_file_t *f = self->impl;
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
        pcap_close(self->pcap); /* closes the FILE, which uses stdio_buf */
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
    FILE *file = is_stdin ? stdin : fopen(path, "rb");
    if (!file) {
        snprintf(err, errlen, "READ_FILE=%s: %s", path, strerror(errno));
        goto err;
    }
    f->stdio_buf = malloc(S_STDIO_BUFFER);
    if (f->stdio_buf)
        setvbuf(file, f->stdio_buf, _IOFBF, S_STDIO_BUFFER);
    char perr[PCAP_ERRBUF_SIZE] = "";
    self->pcap = pcap_fopen_offline_with_tstamp_precision(file, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (!self->pcap) {
        if (!is_stdin)
            fclose(file);
        snprintf(err, errlen, "READ_FILE=%s: %s", path, perr);
        goto err;
    }
    char copy[256];
    snprintf(copy, sizeof copy, "%s", is_stdin ? "stdin" : path);
    snprintf(self->name, sizeof self->name, "%s", basename(copy));
    if (source_set_filter(self, filter, path, err, errlen) < 0)
        goto err;
    snprintf(self->description, sizeof self->description, "capture file %s%s%s%s",
             is_stdin ? "(standard input)" : path, *filter ? " (filter: " : "", filter,
             *filter ? ")" : "");
    return self;
err:
    source_close(&self);
    return NULL;
}
