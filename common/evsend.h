/*
 * evsend — the event streams' sender: a bounded queue of whole lines and
 * the way out, standard output, UDP or TCP (EVENTS_TO), never blocking the
 * service's loop. Owns the socket and the queue; events.c feeds it lines.
 *
 * - UDP: whole lines per datagram, at most EVENTS_DATAGRAM_BYTES (a line
 *   never split across datagrams) and EVENTS_BATCH lines.
 * - TCP, standard output: a stream of lines, written as the socket or pipe
 *   takes them. TCP connects without blocking and reconnects with backoff
 *   (0.1 s doubling to 10 s); a line cut by a lost connection is dropped.
 * - Lines go once EVENTS_BATCH are queued, or once the oldest has waited
 *   EVENTS_INTERVAL_MS. A line that does not fit the queue
 *   (EVENTS_QUEUE_KB) is dropped and counted; so is a datagram the network
 *   refuses.
 *
 * Metrics (prefix tapmesh_<service>_events_): sent_total, sent_bytes_total,
 * dropped_total{reason="queue_full|too_long|send_error|disconnected"},
 * connected (TCP: 1 while up).
 */
#ifndef TAPMESH_EVSEND_H
#define TAPMESH_EVSEND_H

#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct evsend_t evsend_t;

typedef struct {
    const char *to;        /* "-", "udp://host:port", "tcp://host:port" */
    size_t queue_bytes;    /* bound on queued lines */
    size_t datagram_bytes; /* UDP: largest datagram */
    unsigned batch;        /* lines per send (>= 1) */
    int64_t interval_ms;   /* longest a line waits (>= 1) */
} evsend_opts_t;

/* Checks and resolves opts->to (a host name is resolved once, here), opens
 * the UDP socket or starts the TCP connection. NULL with err saying what
 * is wrong, naming EVENTS_TO. `service` names the metrics. */
evsend_t *evsend_new(const evsend_opts_t *opts, metrics_t *metrics, const char *service, char *err,
                     size_t errlen);
void evsend_destroy(evsend_t **self_p);

/* Queues one line (ending in '\n', at most EVENTS_LINE_MAX). Returns 0, or
 * -ENOBUFS (queue full) / -EMSGSIZE (longer than a datagram), dropped and
 * counted. */
int evsend_line(evsend_t *self, const char *line, size_t len, int64_t now_ms);

/* Sends what is due (everything with `flush`), as far as the socket takes
 * it without blocking; moves the TCP connection along. */
void evsend_pump(evsend_t *self, int64_t now_ms, bool flush);

/* When evsend_pump next has something to do, or INT64_MAX. */
int64_t evsend_next_deadline(const evsend_t *self, int64_t now_ms);

/* Lines queued. */
size_t evsend_queued(const evsend_t *self);

/* The length of the longest prefix of buf[len] made of whole lines ('\n'
 * ended), at most max_bytes long and of at most max_lines lines; their
 * number in *nlines. 0 when the first line alone is longer than max_bytes
 * (or is not whole). */
size_t evsend_pack(const char *buf, size_t len, size_t max_bytes, unsigned max_lines,
                   unsigned *nlines);

#endif
