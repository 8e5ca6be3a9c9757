/*
 * hops — a relay's next hops as its engine sees them: the endpoint, whether
 * the connection is up (main.c reads the socket monitors and says so), and
 * whether the hop acknowledges ("stalled": its oldest batch waited longer
 * than HOP_TIMEOUT_MS, until it acknowledges again, reconnects, or a probe
 * period passes), with the per-hop metrics. "Healthy" = connected and not
 * stalled. No sockets here.
 */
#ifndef TAPMESH_HOPS_H
#define TAPMESH_HOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

#define HOPS_MAX 32

/* A stalled hop is tried again after this long. */
#define HOPS_STALL_PROBE_MS 30000

typedef struct {
    char endpoint[256];
    bool connected;
    bool stalled;
    int64_t stalled_until_ms;
    /* takes PACKETS_ZSTD frames: it said FEATURES (zstd); no longer once
     * it WELCOMEs a HELLO that asked without saying so (proto §3.8) */
    bool zstd;
    struct {
        metric_id_t up, batches, packets, acks, latency, lost, send_failed, bytes;
    } m;
} hop_t;

typedef struct {
    hop_t hop[HOPS_MAX];
    unsigned n;
    metrics_t *metrics;
} hops_t;

/* Splits a comma-separated list of endpoints into `out` (at most HOPS_MAX).
 * Returns the count, or -1 with `err` naming RELAY_ENDPOINT. */
int hops_parse(const char *list, char out[][256], char *err, size_t errlen);

/* One hop per endpoint, all down, with their metrics registered. */
void hops_init(hops_t *self, const char (*endpoints)[256], unsigned n, metrics_t *metrics);

static inline bool hop_healthy(const hop_t *h)
{
    return h->connected && !h->stalled;
}

/* The connection of hop `i` went up or down (logged). Returns true when
 * the hop's health changed. */
bool hops_set_connected(hops_t *self, unsigned i, bool up);

/* Hop `i` stopped acknowledging: passed over until it acknowledges or
 * reconnects, or HOPS_STALL_PROBE_MS from `now_ms`. Returns true when its
 * health changed. */
bool hops_stall(hops_t *self, unsigned i, int64_t now_ms);

/* Hop `i` acknowledged: no longer stalled. */
bool hops_acknowledged(hops_t *self, unsigned i);

/* Stalled hops whose probe time came: tried again. Returns true when any
 * hop's health changed. */
bool hops_probe(hops_t *self, int64_t now_ms);

/* The earliest probe time of a stalled hop, or INT64_MAX. */
int64_t hops_next_probe(const hops_t *self);

/* Any hop healthy. */
bool hops_any_healthy(const hops_t *self);

#endif
