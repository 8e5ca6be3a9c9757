/*
 * hops — DEALERs and their monitors.
 */
#include "hops.h"

#include "log.h"
#include "wire.h"

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

int hops_open(hops_t *self, const char *list, metrics_t *metrics, char *err, size_t errlen)
{
    memset(self, 0, sizeof *self);
    self->metrics = metrics;
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", list);
    for (char *save = NULL, *ep = strtok_r(copy, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        if (self->n == HOPS_MAX) {
            snprintf(err, errlen, "RELAY_ENDPOINT: more than %d next hops", HOPS_MAX);
            return -1;
        }
        hop_t *h = &self->hop[self->n++];
        snprintf(h->endpoint, sizeof h->endpoint, "%s", ep);
        h->dealer = zsock_new(ZMQ_DEALER);
        h->monitor = zsock_new(ZMQ_PAIR);
        if (!h->dealer || !h->monitor) {
            snprintf(err, errlen, "cannot create ZeroMQ sockets");
            return -1;
        }
        /* messages for a hop that is not connected yet are queued (a little:
         * the relay chooses connected hops when it has any) */
        zsock_set_sndhwm(h->dealer, 100);
        zsock_set_heartbeat_ivl(h->dealer, 1000);
        zsock_set_heartbeat_timeout(h->dealer, 5000);
        zsock_set_reconnect_ivl(h->dealer, 100);
        zsock_set_reconnect_ivl_max(h->dealer, 1000);
        zsock_set_linger(h->dealer, 500);
        h->sock = zsock_resolve(h->dealer);
        char inproc[64];
        snprintf(inproc, sizeof inproc, "inproc://tapmesh-hop-%u-%p", self->n, (void *)h);
        if (zmq_socket_monitor(h->sock, inproc,
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                                   ZMQ_EVENT_CLOSED) < 0 ||
            zsock_connect(h->monitor, "%s", inproc) < 0) {
            snprintf(err, errlen, "RELAY_ENDPOINT=%s: cannot monitor: %s", ep,
                     zmq_strerror(zmq_errno()));
            return -1;
        }
        h->msock = zsock_resolve(h->monitor);
        if (zsock_connect(h->dealer, "%s", ep) < 0) {
            snprintf(err, errlen, "RELAY_ENDPOINT=%s: cannot connect: %s", ep,
                     zmq_strerror(zmq_errno()));
            return -1;
        }
        s_register(self, h);
    }
    return 0;
}

void hops_close(hops_t *self)
{
    for (unsigned i = 0; i < self->n; i++) {
        hop_t *h = &self->hop[i];
        if (h->sock)
            zmq_socket_monitor(h->sock, NULL, 0);
        zsock_destroy(&h->monitor);
        zsock_destroy(&h->dealer);
    }
    self->n = 0;
}

bool hops_on_monitor(hops_t *self, unsigned i)
{
    hop_t *h = &self->hop[i];
    bool was = hop_healthy(h);
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, h->msock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), 2);
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, h->msock, 0);
        zmq_msg_close(&addr);
        zmq_msg_close(&ev);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            h->connected = true;
            h->stalled = false;
            log_info("next hop %s: connected", h->endpoint);
        } else if (event == ZMQ_EVENT_DISCONNECTED || event == ZMQ_EVENT_CLOSED) {
            if (h->connected)
                log_warn("next hop %s: disconnected", h->endpoint);
            h->connected = false;
        }
    }
    hops_publish(self);
    return was != hop_healthy(h);
}

void hops_publish(hops_t *self)
{
    for (unsigned i = 0; i < self->n; i++)
        metrics_set(self->metrics, self->hop[i].m.up, hop_healthy(&self->hop[i]) ? 1 : 0);
}
