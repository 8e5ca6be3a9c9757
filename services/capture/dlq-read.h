/*
 * dlq-read — reads a dead-letter file (proto/dead-letters-v1.md) back into
 * batches under their original identity, for a replay: the identity of the
 * agent that wrote it (what its HELLO said) and, batch by batch, seq,
 * part, state, watermark and a wire payload frame (proto/wire-v2.md §4).
 *
 * Every length is checked before it is used; a malformed file is an error
 * that names the file and the offset, never a crash. Memory is bounded:
 * one block (at most DLQ_READ_BLOCK_MAX bytes) and one batch (at most
 * WIRE_PAYLOAD_MAX bytes).
 */
#ifndef TAPMESH_DLQ_READ_H
#define TAPMESH_DLQ_READ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dlq.h"
#include "wire.h"

/* The largest IDB or EPB read: a packet of WIRE_SNAPLEN_MAX bytes and
 * 64 KiB of options (proto/dead-letters-v1.md §4). */
#define DLQ_READ_BLOCK_MAX (32u + WIRE_SNAPLEN_MAX + 65536u)

/* The identity of the agent that wrote the file (§3.1). */
typedef struct {
    char source[WIRE_NAME_MAX + 1];
    uint64_t epoch;
    uint16_t linktype;
    uint32_t snaplen;
    char ifname[WIRE_NAME_MAX + 1];
    char if_description[WIRE_TEXT_MAX + 1];
    char hello_description[WIRE_TEXT_MAX + 1];
} dlq_info_t;

/* One whole batch (§3.2). `payload` is a wire payload frame of `len`
 * bytes holding `packets` records (ifindex 0), valid until the next call
 * on the reader. */
typedef struct {
    uint64_t seq;
    uint16_t part, parts;
    dlq_state_t state;
    uint64_t watermark;
    uint32_t packets;
    const uint8_t *payload;
    size_t len;
} dlq_batch_t;

typedef struct dlq_reader_t dlq_reader_t;

/* Opens `path`. Returns 1 for a dead-letter file (*out set, *info
 * filled), 0 for a file without tapmesh's identity (classic pcap, a pcapng
 * whose interface carries none, or anything that is not pcapng at all:
 * read it with libpcap, which says what it thinks), or a negative errno
 * when the file cannot be read or its identity is malformed (`err` names
 * the file, and the offset where it applies). */
int dlq_reader_open(const char *path, dlq_reader_t **out, dlq_info_t *info, char *err,
                    size_t errlen);

/* The same on an open stream, read from where it stands, named `name` in
 * messages. The stream stays the caller's: close it after
 * dlq_reader_close. */
int dlq_reader_fopen(FILE *file, const char *name, dlq_reader_t **out, dlq_info_t *info, char *err,
                     size_t errlen);

/* The next whole batch: 1 (*b filled), 0 at the end (a file cut short
 * inside a block ends there too), or a negative errno for a malformed
 * file or a read error (dlq_reader_error says what and where); an error
 * is returned again by every later call. */
int dlq_reader_next(dlq_reader_t *self, dlq_batch_t *b);

/* Packets of batches that are not whole in the file (a crash mid-write
 * cuts the last one): whole EPBs that were skipped, counted. */
uint64_t dlq_reader_skipped(const dlq_reader_t *self);

/* The last error, naming the file and the offset. */
const char *dlq_reader_error(const dlq_reader_t *self);

void dlq_reader_close(dlq_reader_t **self_p);

#endif
