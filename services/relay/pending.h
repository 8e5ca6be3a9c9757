/*
 * pending — the batches a relay has forwarded and not yet seen
 * acknowledged: which next hops (or which parts of a split batch) still
 * owe an acknowledgement. It holds no packets (the relay keeps no custody,
 * the source does); it only lets the relay acknowledge upstream once every
 * hop that needed the batch has it, notice a hop that stops acknowledging,
 * and measure hop latency. Bounded: when full, a batch is forwarded
 * untracked (its source resends if need be).
 *
 * Timers without a scan: entries are kept in two lists in deadline order —
 * by first forwarding (RETRY_TIMEOUT_S runs from it) and by last
 * forwarding (HOP_TIMEOUT_MS runs from it). Both timeouts are the same for
 * every entry and time only moves forward, so a list's head is always the
 * next due; the relay's tick looks at heads only.
 */
#ifndef TAPMESH_PENDING_H
#define TAPMESH_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PENDING_HOPS_MAX 32

typedef struct {
    uint32_t source;     /* known_t index */
    uint32_t generation; /* known_t generation */
    uint64_t seq;
    uint16_t part;    /* as the source sent it */
    uint32_t needed;  /* bits (hops, or parts when split) that must acknowledge */
    uint32_t acked;   /* bits that have */
    bool any;         /* failover: one acknowledgement settles it */
    bool split;       /* flowhash: bits are part indices */
    int64_t first_ms; /* first forwarded (set by pending_add) */
    int64_t sent_ms;  /* last forwarded (set by pending_sent) */
    uint32_t packets;
    /* internal */
    int32_t next;                   /* hash chain, or the free list */
    int32_t first_prev, first_next; /* the list by first_ms */
    int32_t sent_prev, sent_next;   /* the list by sent_ms */
    bool used, watched;             /* watched: in the list by sent_ms */
} pending_t;

typedef struct pending_table_t pending_table_t;

pending_table_t *pending_new(size_t capacity);
void pending_destroy(pending_table_t **self_p);

pending_t *pending_find(pending_table_t *self, uint32_t source, uint32_t generation, uint64_t seq,
                        uint16_t part);

/* A new entry (zeroed but for the key and first_ms = now_ms), last in the
 * list by first forwarding; NULL when the table is full. `now_ms` must not
 * be earlier than any earlier call's. */
pending_t *pending_add(pending_table_t *self, uint32_t source, uint32_t generation, uint64_t seq,
                       uint16_t part, int64_t now_ms);

/* The entry was forwarded (again) at `now_ms`: sent_ms = now_ms, and it is
 * last in the list by last forwarding. */
void pending_sent(pending_table_t *self, pending_t *entry, int64_t now_ms);

/* Takes the entry out of the list by last forwarding (its hop timeout was
 * dealt with) until the next pending_sent. */
void pending_unwatch(pending_table_t *self, pending_t *entry);

void pending_remove(pending_table_t *self, pending_t *entry);

/* The entry forwarded first, and the entry watched whose last forwarding is
 * the oldest; NULL when there is none. */
pending_t *pending_oldest(pending_table_t *self);
pending_t *pending_oldest_sent(pending_table_t *self);

/* The entry forwarded first after `entry` (walks every entry), or NULL. */
pending_t *pending_after(pending_table_t *self, const pending_t *entry);

size_t pending_count(const pending_table_t *self);

/* True when the entry is settled: every needed bit acknowledged (or one,
 * for `any`). */
static inline bool pending_done(const pending_t *p)
{
    return p->any ? (p->acked & p->needed) != 0 : (p->acked & p->needed) == p->needed;
}

#endif
