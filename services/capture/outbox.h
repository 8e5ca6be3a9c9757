/*
 * outbox — the capture agent's custody of batches: the one being filled,
 * those waiting to be sent, and those sent but not yet acknowledged. A batch
 * leaves only when it is acknowledged (or handed to the dead-letter file).
 *
 * Memory is bounded: outbox_has_room() says whether one more batch fits in
 * BUFFER_MAX; when it does not, the agent stops reading. Reading a file can
 * also be held to a few batches ahead of sending (outbox_set_read_ahead).
 * Batch buffers are recycled, never freed and allocated per batch in the
 * steady state.
 *
 * Batches go out without a copy: a sender that keeps a batch's payload
 * after the call (ZeroMQ's zmq_msg_init_data) takes a loan on its buffer,
 * and the buffer is neither reused nor freed until every loan is given
 * back, whatever happens to the batch meanwhile (acknowledged,
 * dead-lettered, the outbox destroyed).
 *
 * Sending is windowed: at most `window` batches are in flight (sent,
 * unacknowledged); each has a resend deadline that backs off.
 */
#ifndef TAPMESH_OUTBOX_H
#define TAPMESH_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct {
    uint64_t seq;
    uint64_t first_index; /* the input's count of packets before this batch's first */
    uint8_t *buf;         /* the payload frame (proto §4) */
    size_t len;
    uint32_t packets;
    uint64_t bytes;     /* packet data bytes (caplen) */
    uint64_t watermark; /* proto §3.3 */
    int64_t opened_ms;  /* first packet added */
    int64_t first_sent_ms;
    int64_t last_sent_ms;
    int64_t deadline_ms; /* resend after this */
    unsigned sends;
} batch_t;

typedef struct outbox_t outbox_t;
typedef struct outbox_buf_t outbox_buf_t; /* a batch's buffer, as lent */

/* `batch_bytes`: a batch is closed once it holds this many bytes;
 * `buffer_bytes`: the bound on everything held; `window`: batches in
 * flight; `ack_timeout_ms`: first resend deadline (doubles per resend, up
 * to `backoff_max_ms`). Returns NULL when out of memory. */
outbox_t *outbox_new(size_t batch_bytes, size_t buffer_bytes, unsigned window,
                     int64_t ack_timeout_ms, int64_t backoff_max_ms);
void outbox_destroy(outbox_t **self_p);

/* True when a packet of `caplen` bytes can be added without passing the
 * memory bound (it may first close the open batch), nor the read-ahead
 * bound when it needs a new batch. Recycles buffers whose loans came back. */
bool outbox_has_room(outbox_t *self, uint32_t caplen);

/* Reading a file: has_room and has_room_for say no while `batches` closed
 * batches wait unsent (the window is full), so that the reader runs only
 * that far ahead of sending; 0 (the default) bounds only memory, as a live
 * interface needs (a pause there moves the loss into the kernel). */
void outbox_set_read_ahead(outbox_t *self, unsigned batches);

/* Adds a packet to the open batch, opening one if needed; closes the batch
 * first when the packet would not fit, and after, when it reached
 * `batch_bytes`. `watermark` is what the source promises after this packet.
 * Returns 0, or -ENOBUFS when out of room (check outbox_has_room first). */
int outbox_add(outbox_t *self, const wire_packet_t *pkt, uint64_t watermark, int64_t now_ms);

/* The index (in the input) of the next packet added; it counts up by one
 * per packet added. Set it when packets of the input are skipped. */
void outbox_set_index(outbox_t *self, uint64_t index);

/* Starts numbering at `seq` (an empty outbox only: a continued epoch). */
void outbox_start_at(outbox_t *self, uint64_t seq);

/* Gives seq outbox_next_seq() to no batch: it was settled before (a
 * continued epoch skips what was acknowledged). No batch may be open. */
int outbox_skip(outbox_t *self);

/* Holds a whole batch made elsewhere (a dead letter sent again): its
 * payload frame is copied, it gets `seq` (>= outbox_next_seq(); the seqs
 * between are skipped). No batch may be open. Returns 0, -EINVAL for a seq
 * already passed, -ENOBUFS past the memory bound, or -ENOMEM. */
int outbox_put(outbox_t *self, uint64_t seq, const uint8_t *payload, size_t len, uint32_t packets,
               uint64_t watermark, int64_t now_ms);

/* True when a batch of `len` bytes can be put without passing the bounds
 * (always when nothing is held). */
bool outbox_has_room_for(outbox_t *self, size_t len);

/* Forgets the open batch and its packets (they are read again later). */
void outbox_drop_open(outbox_t *self);

/* Closes the open batch (a no-op when there is none or it is empty). */
void outbox_close(outbox_t *self);

/* The open batch, or NULL: the agent closes it once its delay expires. */
const batch_t *outbox_open_batch(const outbox_t *self);

/* The next batch to put on the wire now: an in-flight batch past its
 * deadline (a resend), else the oldest closed, never-sent batch when the
 * window has room. NULL when there is none. */
batch_t *outbox_next_send(outbox_t *self, int64_t now_ms);

/* Records that `b` went out at `now_ms` (first send or resend). */
void outbox_sent(outbox_t *self, batch_t *b, int64_t now_ms);

/* Makes every in-flight batch due now (the receiver lost them). */
void outbox_resend_all(outbox_t *self);

/* Makes due now every in-flight batch last sent at or before `t_ms` (a
 * connection that carried them broke at t_ms; what was sent later still
 * waits in the socket's queue). Returns how many. */
size_t outbox_resend_sent_before(outbox_t *self, int64_t t_ms);

/* Releases batch `seq` on acknowledgement. Returns 1 and *rtt_ms (time
 * since its first send) when it was held, 0 when unknown (already
 * released: a duplicate acknowledgement). */
int outbox_ack(outbox_t *self, uint64_t seq, int64_t now_ms, int64_t *rtt_ms);

/* The held batch with the lowest seq (the oldest), or NULL. */
batch_t *outbox_oldest(const outbox_t *self);

/* Releases batch `seq` without an acknowledgement (it went to the
 * dead-letter file). Returns 1 when it was held, 0 otherwise. */
int outbox_release(outbox_t *self, uint64_t seq);

/* True when an in-flight batch went unacknowledged past its deadline (it
 * was, or is about to be, sent again). */
bool outbox_overdue(const outbox_t *self, int64_t now_ms);

/* Earliest time something needs doing (resend deadline), or INT64_MAX. */
int64_t outbox_next_deadline(const outbox_t *self);

/* The seq the next batch will get (everything below has been closed). */
uint64_t outbox_next_seq(const outbox_t *self);

/* The lowest seq never sent: everything below has been sent at least once. */
uint64_t outbox_next_unsent(const outbox_t *self);

/* Lends the payload of closed batch `b` (b->buf, b->len) to a sender that
 * keeps it after the call: one more reference to its buffer, which stays
 * as it is until outbox_give_back. One loan per send (a resend takes
 * another). The agent's thread. */
outbox_buf_t *outbox_lend(batch_t *b);

/* Gives a loan back: any thread, lock-free (ZeroMQ's free callback runs on
 * its I/O thread). The last reference frees the buffer, so a loan may
 * outlive the outbox. */
void outbox_give_back(outbox_buf_t *loan);

/* Bytes of buffers whose batches are released but which are still lent:
 * counted against the bound until given back. */
size_t outbox_lent_bytes(const outbox_t *self);

/* Counts: batches held (closed, unacknowledged), in flight, and bytes held
 * (including the open batch). */
size_t outbox_held(const outbox_t *self);
size_t outbox_inflight(const outbox_t *self);
size_t outbox_unsent(const outbox_t *self); /* closed, never sent */
size_t outbox_held_bytes(const outbox_t *self);

#endif
