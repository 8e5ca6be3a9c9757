/*
 * source-file — packets from a pcap or pcapng file through libpcap, with
 * nanosecond precision, at full speed or at a multiple of the recorded pace.
 *
 * The file is opened here with a large stdio buffer and handed to libpcap
 * (pcap_fopen_offline...): libpcap's own fopen reads 4 KiB at a time.
 */
#include "source.h"

#include "clock.h"

#include <pcap/pcap.h>

#include <errno.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_STDIO_BUFFER (1u << 20)

struct source_t {
    pcap_t *pcap;
    FILE *file;
    char *stdio_buf;
    char name[256];
    char description[512];
    char error[PCAP_ERRBUF_SIZE + 256];
    unsigned speed;
    /* pacing */
    bool started;
    uint64_t first_ts, first_mono;
    bool held; /* a packet read but not yet due */
    source_packet_t pending;
    uint64_t due_mono;
};

source_t *source_file_open(const char *path, unsigned speed, char *err, size_t errlen)
{
    source_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    self->speed = speed;
    bool is_stdin = strcmp(path, "-") == 0;
    self->file = is_stdin ? stdin : fopen(path, "rb");
    if (!self->file) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto err;
    }
    self->stdio_buf = malloc(S_STDIO_BUFFER);
    if (self->stdio_buf)
        setvbuf(self->file, self->stdio_buf, _IOFBF, S_STDIO_BUFFER);
    char perr[PCAP_ERRBUF_SIZE] = "";
    self->pcap =
        pcap_fopen_offline_with_tstamp_precision(self->file, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (!self->pcap) {
        snprintf(err, errlen, "%s: %s", path, perr);
        goto err;
    }
    self->file = NULL; /* pcap_close closes it */
    char copy[256];
    snprintf(copy, sizeof copy, "%s", is_stdin ? "stdin" : path);
    snprintf(self->name, sizeof self->name, "%s", basename(copy));
    snprintf(self->description, sizeof self->description, "capture file %s",
             is_stdin ? "(standard input)" : path);
    return self;
err:
    source_close(&self);
    return NULL;
}

/* Reads the next record from libpcap into *pkt. */
static source_result_t s_read(source_t *self, source_packet_t *pkt)
{
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(self->pcap, &h, &data);
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

source_result_t source_next(source_t *self, source_packet_t *pkt)
{
    if (self->speed == 0)
        return s_read(self, pkt);
    if (!self->held) {
        source_result_t r = s_read(self, &self->pending);
        if (r != SOURCE_PACKET)
            return r;
        uint64_t now = clock_mono_ns();
        if (!self->started) {
            self->started = true;
            self->first_ts = self->pending.ts_ns;
            self->first_mono = now;
        }
        uint64_t offset = self->pending.ts_ns > self->first_ts
                              ? (self->pending.ts_ns - self->first_ts) / self->speed
                              : 0;
        self->due_mono = self->first_mono + offset;
        self->held = true;
    }
    if (clock_mono_ns() < self->due_mono)
        return SOURCE_IDLE;
    /* libpcap's buffer still holds the data: nothing was read since */
    self->held = false;
    *pkt = self->pending;
    return SOURCE_PACKET;
}

uint64_t source_wait_ns(const source_t *self)
{
    if (!self->held)
        return 0;
    uint64_t now = clock_mono_ns();
    return self->due_mono > now ? self->due_mono - now : 0;
}

int source_fd(const source_t *self)
{
    (void)self;
    return -1;
}

/* libpcap hands out DLT_ values; files and the wire carry LINKTYPE_ values.
 * They are equal except for a few historical DLTs (libpcap's
 * pcap-common.c, dlt_to_linktype), which libpcap does not export. */
static int s_linktype(int dlt)
{
    switch (dlt) {
    case 11: /* DLT_ATM_RFC1483 */
        return 100;
    case 12: /* DLT_RAW (most systems) */
    case 14: /* DLT_RAW (OpenBSD) */
        return 101;
    case 15: /* DLT_SLIP_BSDOS */
        return 102;
    case 16: /* DLT_PPP_BSDOS */
        return 103;
    case 17: /* DLT_OLD_PFLOG */
        return 117;
    default:
        return dlt;
    }
}

int source_linktype(const source_t *self)
{
    return s_linktype(pcap_datalink(self->pcap));
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
    if (self->pcap)
        pcap_close(self->pcap);
    else if (self->file && self->file != stdin)
        fclose(self->file);
    free(self->stdio_buf);
    free(self);
    *self_p = NULL;
}
