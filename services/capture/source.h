/*
 * source — where packets come from: a capture file read by libpcap (this
 * file's ops in source-file.c), or a live interface. The agent's loop sees
 * only this interface: one packet at a time, nanosecond timestamps.
 */
#ifndef TAPMESH_SOURCE_H
#define TAPMESH_SOURCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct source_t source_t;

typedef enum {
    SOURCE_PACKET = 1, /* *pkt holds a packet */
    SOURCE_IDLE = 0,   /* nothing now; see source_wait_ns */
    SOURCE_EOF = -1,   /* no packet will follow */
    SOURCE_ERROR = -2, /* read failed; source_error says why */
} source_result_t;

typedef struct {
    uint64_t ts_ns;
    uint32_t caplen;
    uint32_t origlen;
    const uint8_t *data; /* valid until the next call */
} source_packet_t;

/* Opens a capture file ("-" is standard input), any format and link type
 * libpcap reads, with nanosecond timestamps. `speed` 0 reads as fast as
 * possible; N > 0 replays at N times the recorded pace. Returns NULL with
 * `err` naming the file. */
source_t *source_file_open(const char *path, unsigned speed, char *err, size_t errlen);

/* The next packet. Never blocks. */
source_result_t source_next(source_t *self, source_packet_t *pkt);

/* Nanoseconds until source_next may have a packet (after SOURCE_IDLE). */
uint64_t source_wait_ns(const source_t *self);

/* A descriptor to poll for readability, or -1 when there is none. */
int source_fd(const source_t *self);

int source_linktype(const source_t *self);
uint32_t source_snaplen(const source_t *self);
const char *source_name(const source_t *self);        /* interface name */
const char *source_description(const source_t *self); /* for the IDB */
const char *source_error(const source_t *self);

void source_close(source_t **self_p);

#endif
