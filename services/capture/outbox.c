/*
 * outbox — batches held by the capture agent, indexed by seq in a ring
 * (seq - head_seq), with a small array of the ones in flight.
 *
 * Accounting: each held batch counts the bytes its buffer takes. A batch is
 * filled in a full-size buffer; on close, a batch that used less than half
 * of it is moved to an exact-size buffer so that a trickle of one-packet
 * batches does not pin a full buffer each. Full-size buffers are recycled
 * through a short free list, so that a steady stream reuses the same few
 * (warm, already faulted in) instead of mapping fresh ones.
 *
 * Zero-copy sends: a buffer carries a reference count, the outbox's one
 * while it keeps the buffer plus one per loan to ZeroMQ (outbox_lend). The
 * loans are given back on libzmq's I/O thread, so the count is atomic and
 * the hand-back is lock-free. A batch released (acknowledged or
 * dead-lettered) while its buffer is still lent is retired: kept aside,
 * still counted against the bound, and recycled once every loan is back.
 */
#include "outbox.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define S_POOL_MAX 16

_Static_assert(WIRE_PKT_HDR == 20, "a packet record's header is written here (proto §4)");

struct outbox_buf_t {
    _Atomic unsigned refs; /* the outbox's one while it keeps the buffer, + one per loan */
    size_t size;           /* bytes of data */
    outbox_buf_t *next;    /* retired list (the agent's thread only) */
    _Alignas(16) uint8_t data[];
};

typedef struct {
    batch_t pub;
    outbox_buf_t *mem; /* pub.buf is mem->data */
} s_batch_t;

struct outbox_t {
    size_t batch_bytes;  /* close threshold */
    size_t cap;          /* full-size buffer */
    size_t buffer_bytes; /* bound on held + open + retired */
    unsigned window;
    unsigned ahead; /* closed, unsent batches at most before reading pauses; 0: no bound */
    int64_t ack_timeout_ms, backoff_max_ms;

    s_batch_t **ring; /* closed, unacknowledged: ring[(seq - head_seq) & mask] */
    size_t ring_cap;  /* power of two */
    uint64_t head_seq, next_seq, next_unsent;
    uint64_t index; /* of the next packet added, in the input */
    size_t held, held_bytes;

    s_batch_t **inflight;
    size_t ninflight;

    s_batch_t *open;
    outbox_buf_t *pool[S_POOL_MAX];
    size_t npool;
    outbox_buf_t *retired; /* released while lent */
    size_t retired_bytes;
};

/* ---- buffers ------------------------------------------------------------- */

static outbox_buf_t *s_buf_new(size_t size)
{
    outbox_buf_t *m = malloc(sizeof *m + (size ? size : 1));
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->size = size;
    m->next = NULL;
    return m;
}

/* Drops one reference; the last one frees the buffer (on whichever thread
 * drops it). */
static void s_buf_unref(outbox_buf_t *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

/* True while ZeroMQ holds a loan. Acquire: once false, ZeroMQ's reads of
 * the data happened before the agent writes it again. */
static bool s_buf_lent(outbox_buf_t *m)
{
    return atomic_load_explicit(&m->refs, memory_order_acquire) > 1;
}

/* The outbox lets go of a buffer none of its batches uses any more. */
static void s_buffer_release(outbox_t *self, outbox_buf_t *m)
{
    if (!m)
        return;
    if (s_buf_lent(m)) {
        m->next = self->retired;
        self->retired = m;
        self->retired_bytes += m->size;
    } else if (m->size == self->cap && self->npool < S_POOL_MAX) {
        self->pool[self->npool++] = m;
    } else {
        s_buf_unref(m);
    }
}

/* Recycles the retired buffers whose loans have all come back. */
static void s_reclaim(outbox_t *self)
{
    outbox_buf_t **pp = &self->retired;
    while (*pp) {
        outbox_buf_t *m = *pp;
        if (s_buf_lent(m)) {
            pp = &m->next;
            continue;
        }
        *pp = m->next;
        m->next = NULL;
        self->retired_bytes -= m->size;
        s_buffer_release(self, m);
    }
}

outbox_buf_t *outbox_lend(batch_t *b)
{
    outbox_buf_t *m = ((s_batch_t *)b)->mem;
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void outbox_give_back(outbox_buf_t *loan)
{
    s_buf_unref(loan);
}

size_t outbox_lent_bytes(const outbox_t *self)
{
    return self->retired_bytes;
}

/* ---- the outbox ------------------------------------------------------------ */

outbox_t *outbox_new(size_t batch_bytes, size_t buffer_bytes, unsigned window,
                     int64_t ack_timeout_ms, int64_t backoff_max_ms)
{
    outbox_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->batch_bytes = batch_bytes;
    size_t one = WIRE_FRAME_HDR + WIRE_PKT_HDR + WIRE_SNAPLEN_MAX;
    self->cap = batch_bytes > one ? batch_bytes : one;
    self->buffer_bytes = buffer_bytes > self->cap ? buffer_bytes : self->cap;
    self->window = window ? window : 1;
    self->ack_timeout_ms = ack_timeout_ms;
    self->backoff_max_ms = backoff_max_ms > ack_timeout_ms ? backoff_max_ms : ack_timeout_ms;
    self->ring_cap = 64;
    self->ring = calloc(self->ring_cap, sizeof *self->ring);
    self->inflight = calloc(self->window, sizeof *self->inflight);
    if (!self->ring || !self->inflight) {
        outbox_destroy(&self);
        return NULL;
    }
    return self;
}

static void s_batch_free(outbox_t *self, s_batch_t *b)
{
    if (!b)
        return;
    s_buffer_release(self, b->mem);
    free(b);
}

void outbox_destroy(outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    outbox_t *self = *self_p;
    if (self->ring)
        for (uint64_t s = self->head_seq; s < self->next_seq; s++) {
            s_batch_t *b = self->ring[s & (self->ring_cap - 1)];
            if (b) {
                s_buf_unref(b->mem); /* freed by the last loan's return when still lent */
                free(b);
            }
        }
    if (self->open) {
        s_buf_unref(self->open->mem);
        free(self->open);
    }
    for (size_t i = 0; i < self->npool; i++)
        s_buf_unref(self->pool[i]);
    while (self->retired) {
        outbox_buf_t *m = self->retired;
        self->retired = m->next;
        s_buf_unref(m); /* freed by the last loan's return when still lent */
    }
    free(self->ring);
    free(self->inflight);
    free(self);
    *self_p = NULL;
}

static s_batch_t **s_slot(const outbox_t *self, uint64_t seq)
{
    return &self->ring[seq & (self->ring_cap - 1)];
}

/* Doubles the ring; slots keep their seq. */
static int s_ring_grow(outbox_t *self)
{
    size_t cap = self->ring_cap * 2;
    s_batch_t **ring = calloc(cap, sizeof *ring);
    if (!ring)
        return -ENOMEM;
    for (uint64_t s = self->head_seq; s < self->next_seq; s++)
        ring[s & (cap - 1)] = *s_slot(self, s);
    free(self->ring);
    self->ring = ring;
    self->ring_cap = cap;
    return 0;
}

void outbox_close(outbox_t *self)
{
    s_batch_t *b = self->open;
    if (!b || b->pub.packets == 0)
        return;
    if (self->next_seq - self->head_seq >= self->ring_cap && s_ring_grow(self) < 0)
        return; /* keep it open; the next close tries again */
    if (b->pub.len < self->cap / 2) {
        /* never lent yet: only closed batches are sent */
        outbox_buf_t *small = s_buf_new(b->pub.len);
        if (small) {
            memcpy(small->data, b->pub.buf, b->pub.len);
            s_buffer_release(self, b->mem);
            b->mem = small;
            b->pub.buf = small->data;
        }
    }
    b->pub.seq = self->next_seq++;
    *s_slot(self, b->pub.seq) = b;
    self->held++;
    self->held_bytes += b->mem->size;
    self->open = NULL;
}

/* Room for a new full-size batch: the bound on memory, and for a file the
 * bound on read-ahead. */
static bool s_room_for_batch(outbox_t *self, size_t closed_open)
{
    if (self->ahead && self->next_seq - self->next_unsent >= self->ahead)
        return false;
    if (self->retired)
        s_reclaim(self);
    return self->held_bytes + self->retired_bytes + closed_open + self->cap <= self->buffer_bytes;
}

bool outbox_has_room(outbox_t *self, uint32_t caplen)
{
    const s_batch_t *b = self->open;
    if (b && b->pub.len + WIRE_PKT_HDR + caplen <= self->cap)
        return true;   /* fits the open batch, already counted */
    size_t closed = 0; /* what the open batch will take once closed */
    if (b)
        closed = b->pub.len < self->cap / 2 ? b->pub.len : b->mem->size;
    return s_room_for_batch(self, closed);
}

void outbox_set_read_ahead(outbox_t *self, unsigned batches)
{
    self->ahead = batches;
}

static s_batch_t *s_open(outbox_t *self, int64_t now_ms)
{
    s_batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    if (self->retired)
        s_reclaim(self);
    b->mem = self->npool ? self->pool[--self->npool] : s_buf_new(self->cap);
    if (!b->mem) {
        free(b);
        return NULL;
    }
    b->pub.buf = b->mem->data;
    b->pub.opened_ms = now_ms;
    b->pub.first_index = self->index;
    wire_packets_begin(b->pub.buf, self->cap, &b->pub.len); /* cap > header: cannot fail */
    return b;
}

static inline void s_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void s_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void s_be64(uint8_t *p, uint64_t v)
{
    s_be32(p, (uint32_t)(v >> 32));
    s_be32(p + 4, (uint32_t)v);
}

int outbox_add(outbox_t *self, const wire_packet_t *pkt, uint64_t watermark, int64_t now_ms)
{
    if (pkt->caplen > WIRE_SNAPLEN_MAX)
        return -EMSGSIZE; /* the caller clamps */
    size_t need = WIRE_PKT_HDR + (size_t)pkt->caplen;
    s_batch_t *ob = self->open;
    if (ob && ob->pub.len + need > self->cap) {
        outbox_close(self);
        if ((ob = self->open))
            return -ENOMEM; /* the ring could not grow to take it */
    }
    if (!ob) {
        if (self->held_bytes + self->retired_bytes + self->cap > self->buffer_bytes)
            return -ENOBUFS;
        ob = self->open = s_open(self, now_ms);
        if (!ob)
            return -ENOMEM;
    }
    /* a record (proto §4): ts, ifindex, reserved, caplen, origlen, data;
     * `cap` holds the largest record after the header, so it fits */
    batch_t *b = &ob->pub;
    uint8_t *p = b->buf + b->len;
    s_be64(p, pkt->ts_ns);
    s_be16(p + 8, pkt->ifindex);
    s_be16(p + 10, 0);
    s_be32(p + 12, pkt->caplen);
    s_be32(p + 16, pkt->origlen);
    memcpy(p + WIRE_PKT_HDR, pkt->data, pkt->caplen);
    b->len += need;
    b->packets++;
    self->index++;
    b->bytes += pkt->caplen;
    b->watermark = watermark;
    if (b->len >= self->batch_bytes)
        outbox_close(self);
    return 0;
}

bool outbox_has_room_for(outbox_t *self, size_t len)
{
    if (self->held == 0)
        return true;
    if (self->ahead && self->next_seq - self->next_unsent >= self->ahead)
        return false;
    if (self->retired)
        s_reclaim(self);
    return self->held_bytes + self->retired_bytes + len <= self->buffer_bytes;
}

int outbox_put(outbox_t *self, uint64_t seq, const uint8_t *payload, size_t len, uint32_t packets,
               uint64_t watermark, int64_t now_ms)
{
    if (seq < self->next_seq || (self->open && self->open->pub.packets))
        return -EINVAL;
    if (!outbox_has_room_for(self, len))
        return -ENOBUFS;
    while (self->next_seq < seq)
        if (outbox_skip(self) < 0)
            return -ENOMEM;
    if (self->next_seq - self->head_seq >= self->ring_cap && s_ring_grow(self) < 0)
        return -ENOMEM;
    s_batch_t *b = calloc(1, sizeof *b);
    outbox_buf_t *mem = s_buf_new(len);
    if (!b || !mem) {
        free(b);
        free(mem);
        return -ENOMEM;
    }
    if (len)
        memcpy(mem->data, payload, len);
    b->mem = mem;
    b->pub.buf = mem->data;
    b->pub.len = len;
    b->pub.packets = packets;
    b->pub.watermark = watermark;
    b->pub.opened_ms = now_ms;
    b->pub.seq = self->next_seq++;
    *s_slot(self, b->pub.seq) = b;
    self->held++;
    self->held_bytes += mem->size;
    return 0;
}

void outbox_drop_open(outbox_t *self)
{
    if (self->open)
        self->index -= self->open->pub.packets;
    s_batch_free(self, self->open);
    self->open = NULL;
}

void outbox_set_index(outbox_t *self, uint64_t index)
{
    self->index = index;
}

void outbox_start_at(outbox_t *self, uint64_t seq)
{
    if (self->held || self->open)
        return;
    self->head_seq = self->next_seq = self->next_unsent = seq;
}

int outbox_skip(outbox_t *self)
{
    if (self->next_seq - self->head_seq >= self->ring_cap && s_ring_grow(self) < 0)
        return -ENOMEM;
    *s_slot(self, self->next_seq) = NULL;
    self->next_seq++;
    while (self->head_seq < self->next_seq && !*s_slot(self, self->head_seq))
        self->head_seq++;
    if (self->next_unsent < self->head_seq)
        self->next_unsent = self->head_seq;
    return 0;
}

const batch_t *outbox_open_batch(const outbox_t *self)
{
    return self->open && self->open->pub.packets ? &self->open->pub : NULL;
}

batch_t *outbox_next_send(outbox_t *self, int64_t now_ms)
{
    /* resends first, oldest seq first, so that they arrive in order */
    s_batch_t *due = NULL;
    for (size_t i = 0; i < self->ninflight; i++) {
        s_batch_t *b = self->inflight[i];
        if (b->pub.deadline_ms <= now_ms && (!due || b->pub.seq < due->pub.seq))
            due = b;
    }
    if (due)
        return &due->pub;
    while (self->next_unsent < self->next_seq && self->ninflight < self->window) {
        s_batch_t *b = *s_slot(self, self->next_unsent);
        if (b)
            return &b->pub;
        self->next_unsent++; /* acknowledged before it was sent (a resend race) */
    }
    return NULL;
}

void outbox_sent(outbox_t *self, batch_t *pub, int64_t now_ms)
{
    s_batch_t *b = (s_batch_t *)pub;
    if (pub->sends == 0) {
        pub->first_sent_ms = now_ms;
        if (pub->seq == self->next_unsent)
            self->next_unsent++;
        self->inflight[self->ninflight++] = b;
    }
    int64_t backoff = self->ack_timeout_ms;
    for (unsigned i = 0; i < pub->sends && backoff < self->backoff_max_ms; i++)
        backoff *= 2;
    if (backoff > self->backoff_max_ms)
        backoff = self->backoff_max_ms;
    pub->sends++;
    pub->last_sent_ms = now_ms;
    pub->deadline_ms = now_ms + backoff;
}

void outbox_resend_all(outbox_t *self)
{
    for (size_t i = 0; i < self->ninflight; i++)
        self->inflight[i]->pub.deadline_ms = 0;
}

size_t outbox_resend_sent_before(outbox_t *self, int64_t t_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < self->ninflight; i++) {
        batch_t *b = &self->inflight[i]->pub;
        if (b->last_sent_ms <= t_ms && b->deadline_ms > 0) {
            b->deadline_ms = 0;
            n++;
        }
    }
    return n;
}

int outbox_release(outbox_t *self, uint64_t seq)
{
    if (seq < self->head_seq || seq >= self->next_seq)
        return 0;
    s_batch_t **slot = s_slot(self, seq);
    s_batch_t *b = *slot;
    if (!b)
        return 0;
    for (size_t i = 0; i < self->ninflight; i++) {
        if (self->inflight[i] == b) {
            self->inflight[i] = self->inflight[--self->ninflight];
            break;
        }
    }
    *slot = NULL;
    self->held--;
    self->held_bytes -= b->mem->size;
    s_batch_free(self, b);
    while (self->head_seq < self->next_seq && !*s_slot(self, self->head_seq))
        self->head_seq++;
    if (self->next_unsent < self->head_seq)
        self->next_unsent = self->head_seq;
    return 1;
}

int outbox_ack(outbox_t *self, uint64_t seq, int64_t now_ms, int64_t *rtt_ms)
{
    if (seq < self->head_seq || seq >= self->next_seq || !*s_slot(self, seq))
        return 0;
    const batch_t *b = &(*s_slot(self, seq))->pub;
    if (rtt_ms)
        *rtt_ms = b->sends ? now_ms - b->first_sent_ms : 0;
    return outbox_release(self, seq);
}

batch_t *outbox_oldest(const outbox_t *self)
{
    return self->held ? &(*s_slot(self, self->head_seq))->pub : NULL;
}

bool outbox_overdue(const outbox_t *self, int64_t now_ms)
{
    for (size_t i = 0; i < self->ninflight; i++)
        if (self->inflight[i]->pub.sends > 1 || self->inflight[i]->pub.deadline_ms <= now_ms)
            return true;
    return false;
}

int64_t outbox_next_deadline(const outbox_t *self)
{
    int64_t d = INT64_MAX;
    for (size_t i = 0; i < self->ninflight; i++)
        if (self->inflight[i]->pub.deadline_ms < d)
            d = self->inflight[i]->pub.deadline_ms;
    return d;
}

uint64_t outbox_next_seq(const outbox_t *self)
{
    return self->next_seq;
}

uint64_t outbox_next_unsent(const outbox_t *self)
{
    return self->next_unsent;
}

size_t outbox_held(const outbox_t *self)
{
    return self->held;
}

size_t outbox_inflight(const outbox_t *self)
{
    return self->ninflight;
}

size_t outbox_unsent(const outbox_t *self)
{
    return (size_t)(self->next_seq - self->next_unsent);
}

size_t outbox_held_bytes(const outbox_t *self)
{
    return self->held_bytes + (self->open ? self->open->mem->size : 0);
}
