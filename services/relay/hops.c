/*
 * hops — state changes go through one place each, which keeps the log line
 * and the gauge in step with the state.
 */
#include "hops.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

static void s_register(hops_t *self, hop_t *h)
{
    metrics_t *m = self->metrics;
    char esc[300], labels[320];
    snprintf(labels, sizeof labels, "hop=\"%s\"",
             metrics_label_escape(h->endpoint, esc, sizeof esc));
    h->m.up = metrics_gauge(m, "tapmesh_relay_next_hop_up",
                            "1 when the next hop is connected and acknowledging", labels);
    h->m.batches = metrics_counter(m, "tapmesh_relay_batches_out_total",
                                   "Batches forwarded, per next hop", labels);
    h->m.packets = metrics_counter(m, "tapmesh_relay_packets_out_total",
                                   "Packets forwarded, per next hop", labels);
    h->m.bytes = metrics_counter(m, "tapmesh_relay_payload_bytes_out_total",
                                 "Payload bytes forwarded (as sent: compressed or not), per next "
                                 "hop",
                                 labels);
    h->m.acks = metrics_counter(m, "tapmesh_relay_hop_acks_total",
                                "Batch acknowledgements received, per next hop", labels);
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,    0.25,  0.5,    1,     2.5,  5};
    h->m.latency = metrics_histogram(m, "tapmesh_relay_hop_latency_seconds",
                                     "From forwarding a batch to its acknowledgement, per next hop",
                                     labels, bounds, sizeof bounds / sizeof *bounds);
    h->m.lost = metrics_counter(m, "tapmesh_relay_hop_lost_batches_total",
                                "Batches a next hop never acknowledged (FANOUT=duplicate: "
                                "given up after RETRY_TIMEOUT_S)",
                                labels);
    h->m.send_failed =
        metrics_counter(m, "tapmesh_relay_hop_send_failed_total",
                        "Sends to a next hop that was not connected or full", labels);
}

int hops_parse(const char *list, char out[][256], char *err, size_t errlen)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", list);
    int n = 0;
    for (char *save = NULL, *ep = strtok_r(copy, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        if (n == HOPS_MAX) {
            snprintf(err, errlen, "RELAY_ENDPOINT: more than %d next hops", HOPS_MAX);
            return -1;
        }
        snprintf(out[n++], 256, "%s", ep);
    }
    if (n == 0)
        snprintf(err, errlen, "RELAY_ENDPOINT: no next hop");
    return n ? n : -1;
}

static void s_publish(hops_t *self, unsigned i)
{
    metrics_set(self->metrics, self->hop[i].m.up, hop_healthy(&self->hop[i]) ? 1 : 0);
}

void hops_init(hops_t *self, const char (*endpoints)[256], unsigned n, metrics_t *metrics)
{
    memset(self, 0, sizeof *self);
    self->metrics = metrics;
    self->n = n > HOPS_MAX ? HOPS_MAX : n;
    for (unsigned i = 0; i < self->n; i++) {
        snprintf(self->hop[i].endpoint, sizeof self->hop[i].endpoint, "%s", endpoints[i]);
        s_register(self, &self->hop[i]);
        s_publish(self, i);
    }
}

bool hops_set_connected(hops_t *self, unsigned i, bool up)
{
    hop_t *h = &self->hop[i];
    bool was = hop_healthy(h);
    if (up && !h->connected)
        log_info("next hop %s: connected", h->endpoint);
    else if (!up && h->connected)
        log_warn("next hop %s: disconnected", h->endpoint);
    h->connected = up;
    if (up)
        h->stalled = false; /* a new connection: a new chance */
    s_publish(self, i);
    return was != hop_healthy(h);
}

bool hops_stall(hops_t *self, unsigned i, int64_t now_ms)
{
    hop_t *h = &self->hop[i];
    if (h->stalled || !h->connected)
        return false;
    h->stalled = true;
    h->stalled_until_ms = now_ms + HOPS_STALL_PROBE_MS;
    log_warn("next hop %s stopped acknowledging: passed over", h->endpoint);
    s_publish(self, i);
    return true;
}

bool hops_acknowledged(hops_t *self, unsigned i)
{
    hop_t *h = &self->hop[i];
    if (!h->stalled)
        return false;
    h->stalled = false;
    log_info("next hop %s acknowledges again", h->endpoint);
    s_publish(self, i);
    return true;
}

bool hops_probe(hops_t *self, int64_t now_ms)
{
    bool changed = false;
    for (unsigned i = 0; i < self->n; i++) {
        hop_t *h = &self->hop[i];
        if (h->stalled && now_ms >= h->stalled_until_ms) {
            h->stalled = false; /* give it another chance */
            s_publish(self, i);
            changed = true;
        }
    }
    return changed;
}

int64_t hops_next_probe(const hops_t *self)
{
    int64_t t = INT64_MAX;
    for (unsigned i = 0; i < self->n; i++)
        if (self->hop[i].stalled && self->hop[i].stalled_until_ms < t)
            t = self->hop[i].stalled_until_ms;
    return t;
}

bool hops_any_healthy(const hops_t *self)
{
    for (unsigned i = 0; i < self->n; i++)
        if (hop_healthy(&self->hop[i]))
            return true;
    return false;
}
