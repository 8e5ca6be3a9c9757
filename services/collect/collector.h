/*
 * collector — the collector's engine, without sockets: takes decoded
 * messages, keeps one state per (source, epoch), drops duplicates, merges
 * all sources by capture timestamp into the output, and produces the
 * acknowledgements once the output has the packets (shared DESIGN
 * "Delivery", "Ordering").
 *
 * main.c feeds it from the ROUTER socket; the tests feed it directly.
 */
#ifndef TAPMESH_COLLECTOR_H
#define TAPMESH_COLLECTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include "frames.h"
#include "journal.h"
#include "metrics.h"
#include "output.h"
#include "retention.h"
#include "trust.h"

typedef struct collector_t collector_t;

/* Sends a reply (WELCOME, REFUSE, ACK) back along `route`. Returns 0 or a
 * negative errno. */
typedef int (*collector_reply_fn)(void *ctx, const route_t *route, const uint8_t *cmd, size_t len);

typedef struct {
    int64_t merge_window_ms; /* longest a packet waits for slower sources */
    int64_t source_idle_ms;  /* a source silent this long no longer holds the merge */
    size_t merge_max_bytes;  /* queued payload bytes before the merge is forced */
    size_t max_sources;      /* (source, epoch) states kept */
    size_t max_batch_bytes;  /* larger payloads are refused (counted "oversize") */
    int64_t flush_ms;        /* longest written data waits in the buffer; 0: every pass */
    int64_t start_ms;        /* when the collector started, and for how long nothing */
    int64_t start_grace_ms;  /* is written: sources connecting then still merge in order */
    /* EXPECT_SOURCES (see collector_expect_check), or NULL: nothing is
     * written until these sources have joined; start_grace_ms then bounds
     * the wait, counted from the first source's HELLO (before it there is
     * nothing to write), and the wait ends the moment the last one joins */
    const char *expect_sources;
    journal_t *journal; /* STATE_DIR, or NULL */
    /* ROTATE_FILES, ROTATE_MAX_GB, or NULL: told of every rotation, and
     * applied after every commit, once the acknowledgements of what it
     * flushed are sent. It already knows the first file (retention_begin). */
    retention_t *retention;
    bool annotate_hops; /* every packet's EPB comment names the relays it came through */
    /* CURVE_ALLOWED_KEYS_DIR: who may speak for which source; NULL without
     * CURVE (nothing checked). The caller's, reloaded in place. */
    const trust_t *trust;
    /* No lock-out by a flood (a peer: frames_peer, its key or connection):
     * a peer holds at most max_sources_per_peer states (0: max_sources);
     * beyond, its new sources are refused unless one of its own has ended
     * or gone idle and makes room. It announces at most hello_rate new
     * sources a second (0: no limit). When max_sources is reached, a state
     * is evicted from the peer holding the most; never one with batches
     * queued or acknowledgements owed, and a live one only from a peer
     * holding more than the one asking. Refused HELLOs write nothing. */
    size_t max_sources_per_peer;
    unsigned hello_rate;
    /* Called with every packet as it is written to the output, in the
     * output's order, before the commit that acknowledges it (OUTPUT_DEVICE,
     * TUNNEL: inject.h; EVENTS: events.h); `iface` and `linktype` are its
     * interface's (as in the source's HELLO). NULL: none. */
    void (*tap)(void *tap_ctx, const char *source, const char *iface, uint16_t linktype,
                const wire_packet_t *pkt);
    void *tap_ctx;
    /* Called, with tap_ctx, whenever a count of lost packets grows, with
     * the growth (EVENTS: events.h): from a source's STATS (§3.7), per
     * interface, "kernel_drop" (ps_drop), "if_drop" (ps_ifdrop) and
     * "dead_letter" (the first STATS of an epoch: all its counts); "late"
     * for each packet written after a later one; for each HELLO refused,
     * "refused_linktype" (with the interface), "refused_conflict",
     * "refused_full", "refused_peer_limit", "refused_hello_rate" (iface "",
     * count 1). `reason` is a string literal. NULL: none. */
    void (*loss)(void *tap_ctx, const char *source, const char *iface, const char *reason,
                 uint64_t count);
} collector_opts_t;

/* Checks an EXPECT_SOURCES value: empty (no one in particular), a count
 * (digits alone: that many distinct node ids, whichever they are; 0 is
 * none), or a comma-separated list of node ids (only these count; blanks
 * around an id and empty items are ignored, so that a single node id made
 * of digits alone is written with a comma: "17,"). Returns the number of
 * sources expected (0: none), or -EINVAL with `why` saying what is wrong. */
int collector_expect_check(const char *text, char *why, size_t whylen);

/* The collector writes to `output`, replies through `reply` and records
 * its delivery state in opts->journal; it owns none of them. Returns NULL
 * when out of memory or when opts->expect_sources does not pass
 * collector_expect_check. */
collector_t *collector_new(output_t *output, const collector_opts_t *opts, metrics_t *metrics,
                           collector_reply_fn reply, void *ctx);
void collector_destroy(collector_t **self_p);

/* Handles one received message: `in` is framed; its payload, when taken,
 * is moved out (the caller still closes `in`). With opts->trust, a message
 * for a source its direct peer's key (in->user_id) may not speak for is
 * dropped unanswered and changes nothing (no HELLO taken, no batch marked
 * seen, no watermark moved), counted in
 * tapmesh_collect_auth_failures_total{reason="identity"}. */
void collector_on_message(collector_t *self, frames_t *in, int64_t now_ms);

/* Writes every packet the merge allows now (all of them when `drain`),
 * committing on the way whenever the output buffer fills. Returns the
 * number written, or a negative errno from the output or the journal. */
int collector_emit(collector_t *self, int64_t now_ms, bool drain);

/* Records the intent (STATE_DIR), flushes the output, acknowledges every
 * batch now wholly written, moves to the next output file when one is
 * due, and lets opts->retention delete the oldest files. Unless `force`, waits while the buffer is
 * small and its oldest data younger than flush_ms. Returns 0, or a negative errno: then nothing
 * more is acknowledged, ever (the sources keep what was not). */
int collector_commit(collector_t *self, int64_t now_ms, bool force);

/* A message for the last error of collector_emit / collector_commit. */
const char *collector_error(const collector_t *self);

/* When collector_emit may next have work without a new message (a merge
 * window or idle timeout running out), or INT64_MAX. */
int64_t collector_next_deadline(const collector_t *self, int64_t now_ms);

/* Packets waiting in the merge. */
size_t collector_queued_packets(const collector_t *self);

#endif
