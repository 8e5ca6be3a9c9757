/*
 * hops — a relay's next hops: one DEALER per endpoint of RELAY_ENDPOINT,
 * with a socket monitor that says when the connection is up or down, and the
 * per-hop metrics. "Healthy" = connected and acknowledging (a hop whose
 * oldest batch waited longer than HOP_TIMEOUT_MS is "stalled" until it
 * acknowledges again or reconnects).
 */
#ifndef TAPMESH_HOPS_H
#define TAPMESH_HOPS_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"

#define HOPS_MAX 32

typedef struct {
    char endpoint[256];
    zsock_t *dealer;
    void *sock; /* libzmq handle of dealer */
    zsock_t *monitor;
    void *msock; /* libzmq handle of monitor */
    bool connected;
    bool stalled;
    struct {
        metric_id_t up, batches, packets, acks, latency, lost, send_failed;
    } m;
} hop_t;

typedef struct {
    hop_t hop[HOPS_MAX];
    unsigned n;
    metrics_t *metrics;
} hops_t;

/* Connects one DEALER per endpoint of `list` (comma-separated). Returns 0,
 * or -1 with `err` naming RELAY_ENDPOINT and the endpoint. */
int hops_open(hops_t *self, const char *list, metrics_t *metrics, char *err, size_t errlen);
void hops_close(hops_t *self);

/* Reads the monitor of hop `i` (when its socket is readable); returns true
 * when the hop's state changed. */
bool hops_on_monitor(hops_t *self, unsigned i);

static inline bool hop_healthy(const hop_t *h)
{
    return h->connected && !h->stalled;
}

/* Publishes every hop's state into its gauge (1 healthy, 0 not). */
void hops_publish(hops_t *self);

#endif
