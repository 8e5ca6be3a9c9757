/*
 * pending — the batches a relay has forwarded and not yet seen
 * acknowledged: which next hops (or which parts of a split batch) still
 * owe an acknowledgement. It holds no packets (the relay keeps no custody,
 * the source does); it only lets the relay acknowledge upstream once every
 * hop that needed the batch has it, notice a hop that stops acknowledging,
 * and measure hop latency. Bounded: when full, a batch is forwarded
 * untracked (its source resends if need be).
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
    int64_t first_ms; /* first forwarded */
    int64_t sent_ms;  /* last forwarded */
    uint32_t packets;
    int32_t next; /* hash chain; internal */
    bool used;    /* internal */
} pending_t;

typedef struct pending_table_t pending_table_t;

pending_table_t *pending_new(size_t capacity);
void pending_destroy(pending_table_t **self_p);

pending_t *pending_find(pending_table_t *self, uint32_t source, uint32_t generation, uint64_t seq,
                        uint16_t part);

/* A new entry (zeroed but for the key), or NULL when the table is full. */
pending_t *pending_add(pending_table_t *self, uint32_t source, uint32_t generation, uint64_t seq,
                       uint16_t part);

void pending_remove(pending_table_t *self, pending_t *entry);

/* Entries in use; and all slots, for a periodic scan (skip !used). */
size_t pending_count(const pending_table_t *self);
size_t pending_capacity(const pending_table_t *self);
pending_t *pending_slot(pending_table_t *self, size_t i);

/* True when the entry is settled: every needed bit acknowledged (or one,
 * for `any`). */
static inline bool pending_done(const pending_t *p)
{
    return p->any ? (p->acked & p->needed) != 0 : (p->acked & p->needed) == p->needed;
}

#endif
