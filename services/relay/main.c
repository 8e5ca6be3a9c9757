/*
 * tapmesh-relay — a hop between sources and the collector: a ROUTER bound
 * towards its sources (capture agents or other relays), a DEALER connected
 * towards the next hop. Batches go up with this relay's hop record added
 * (proto/wire-v1.md §3.4); replies come down along their envelope. The relay
 * keeps no custody: a batch it loses is resent by its source.
 *
 * Data flow: ROUTER (sources) → check + hop record → DEALER (next hop);
 * DEALER → ROUTER for WELCOME, REFUSE and ACK.
 */
#include "clock.h"
#include "frames.h"
#include "log.h"
#include "rejects.h"
#include "service.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

static const char s_summary[] =
    "Forwards batches from capture agents (or other relays) to the next hop and routes the\n"
    "acknowledgements back; keeps nothing, so it may be restarted at any time.";

static const cfg_row_t s_rows[] = {
    SERVICE_ROWS(":9711"),
    {"COLLECT_ENDPOINT", CFG_ENDPOINT, "tcp://*:5711", 0, 0, NULL, false,
     "ZeroMQ endpoint to bind; capture agents and relays connect to it."},
    {"RELAY_ENDPOINT", CFG_ENDPOINTS, "tcp://127.0.0.1:5710", 0, 0, NULL, false,
     "Next hop(s) to connect to (a relay or the collector), comma-separated; this version "
     "uses the first."},
};

typedef struct {
    service_t svc;
    zsock_t *router, *dealer;
    void *up, *down; /* dealer (towards the collector), router (towards sources) */
    uint64_t relay_seq;
    rejects_t rejects;
    struct {
        metric_id_t batches_in, packets_in, batches_out, replies, dropped_full, unroutable, loops;
    } m;
} relay_t;

static wire_msg_t s_msg;
static uint8_t s_cmd[WIRE_COMMAND_MAX];

static void s_register(relay_t *r)
{
    metrics_t *m = r->svc.metrics;
    r->m.batches_in =
        metrics_counter(m, "tapmesh_relay_batches_in_total", "Batches received from sources", NULL);
    r->m.packets_in = metrics_counter(m, "tapmesh_relay_packets_in_total",
                                      "Packets in batches received from sources", NULL);
    r->m.batches_out = metrics_counter(m, "tapmesh_relay_batches_out_total",
                                       "Batches forwarded to the next hop", NULL);
    r->m.replies = metrics_counter(m, "tapmesh_relay_replies_routed_total",
                                   "Acknowledgements and other replies routed back", NULL);
    r->m.dropped_full = metrics_counter(
        m, "tapmesh_relay_dropped_full_total",
        "Messages dropped because the next hop's queue was full (their sources resend)", NULL);
    r->m.unroutable = metrics_counter(m, "tapmesh_relay_replies_unroutable_total",
                                      "Replies for a source no longer connected", NULL);
    r->m.loops = metrics_counter(m, "tapmesh_relay_hop_limit_total",
                                 "Batches dropped because they already had 16 hops", NULL);
    rejects_init(&r->rejects, m, "tapmesh_relay_malformed_messages_total");
}

/* Counts a dropped message; logs it once per (peer, reason). */
static void s_malformed(relay_t *r, const frames_t *in, wire_err_t why)
{
    rejects_drop(&r->rejects, rejects_peer(in), why, NULL, clock_mono_ms());
}

/* A message from a source: checked, hop record added to a BATCH, forwarded. */
static void s_upstream(relay_t *r, frames_t *in)
{
    size_t len;
    const uint8_t *cmd = frames_command(in, &len);
    if (!cmd) {
        s_malformed(r, in, WIRE_ERR_FRAMING);
        return;
    }
    wire_err_t err = wire_decode(cmd, len, &s_msg);
    if (err != WIRE_OK) {
        s_malformed(r, in, err);
        return;
    }
    zmq_msg_t *payload = frames_payload(in);
    if ((s_msg.type == WIRE_BATCH) != (payload != NULL)) {
        s_malformed(r, in, WIRE_ERR_FRAMING);
        return;
    }
    switch (s_msg.type) {
    case WIRE_HELLO:
    case WIRE_HEARTBEAT:
    case WIRE_END:
        break;
    case WIRE_BATCH:
        if (zmq_msg_size(payload) != s_msg.batch.payload_len) {
            s_malformed(r, in, WIRE_ERR_FRAMING);
            return;
        }
        metrics_add(r->svc.metrics, r->m.batches_in, 1);
        metrics_add(r->svc.metrics, r->m.packets_in, s_msg.batch.packet_count);
        if (s_msg.batch.hop_count >= WIRE_HOPS_MAX) {
            metrics_add(r->svc.metrics, r->m.loops, 1);
            return;
        }
        wire_hop_t *hop = &s_msg.batch.hops[s_msg.batch.hop_count++];
        snprintf(hop->node, sizeof hop->node, "%s", r->svc.node_id);
        hop->recv_ns = clock_wall_ns();
        hop->relay_seq = r->relay_seq;
        len = wire_encode(&s_msg, s_cmd, sizeof s_cmd);
        cmd = s_cmd;
        break;
    default:
        s_malformed(r, in, WIRE_ERR_TYPE);
        return;
    }
    if (in->envelope >= FRAMES_ENVELOPE_MAX) {
        s_malformed(r, in, WIRE_ERR_FRAMING);
        return;
    }
    int rc = frames_forward(r->up, in, cmd, len, ZMQ_DONTWAIT);
    if (rc == -EAGAIN) {
        metrics_add(r->svc.metrics, r->m.dropped_full, 1);
        return;
    }
    if (rc < 0) {
        log_warn("forward failed: %s", strerror(-rc));
        return;
    }
    if (s_msg.type == WIRE_BATCH) {
        r->relay_seq++;
        metrics_add(r->svc.metrics, r->m.batches_out, 1);
    }
}

/* A reply from the next hop: routed back by its envelope. */
static void s_downstream(relay_t *r, frames_t *in)
{
    size_t len;
    const uint8_t *cmd = frames_command(in, &len);
    if (!cmd || in->envelope == 0 || frames_payload(in)) {
        s_malformed(r, in, WIRE_ERR_FRAMING);
        return;
    }
    wire_err_t err = wire_decode(cmd, len, &s_msg);
    if (err != WIRE_OK) {
        s_malformed(r, in, err);
        return;
    }
    if (s_msg.type != WIRE_ACK && s_msg.type != WIRE_WELCOME && s_msg.type != WIRE_REFUSE) {
        s_malformed(r, in, WIRE_ERR_TYPE);
        return;
    }
    int rc = frames_forward(r->down, in, cmd, len, ZMQ_DONTWAIT);
    if (rc < 0)
        metrics_add(r->svc.metrics, r->m.unroutable, 1);
    else
        metrics_add(r->svc.metrics, r->m.replies, 1);
}

static int s_setup(relay_t *r)
{
    cfg_t *c = r->svc.cfg;
    r->router = zsock_new(ZMQ_ROUTER);
    r->dealer = zsock_new(ZMQ_DEALER);
    if (!r->router || !r->dealer) {
        log_error("cannot create ZeroMQ sockets");
        return 1;
    }
    zsock_set_router_mandatory(r->router, 1);
    zsock_set_heartbeat_ivl(r->router, 1000);
    zsock_set_heartbeat_timeout(r->router, 5000);
    zsock_set_heartbeat_ivl(r->dealer, 1000);
    zsock_set_heartbeat_timeout(r->dealer, 5000);
    zsock_set_reconnect_ivl(r->dealer, 100);
    zsock_set_reconnect_ivl_max(r->dealer, 1000);
    zsock_set_maxmsgsize(r->router, (int)(WIRE_PAYLOAD_MAX + (1 << 20)));
    zsock_set_linger(r->router, 500);
    zsock_set_linger(r->dealer, 500);
    const char *bind = cfg_str(c, "COLLECT_ENDPOINT");
    if (zsock_bind(r->router, "%s", bind) < 0) {
        log_error("COLLECT_ENDPOINT=%s: cannot bind: %s", bind, zmq_strerror(zmq_errno()));
        return 2;
    }
    char next[512];
    snprintf(next, sizeof next, "%s", cfg_str(c, "RELAY_ENDPOINT"));
    char *comma = strchr(next, ',');
    if (comma) {
        *comma = '\0';
        log_warn("RELAY_ENDPOINT lists several next hops; this version uses only %s", next);
    }
    if (zsock_connect(r->dealer, "%s", next) < 0) {
        log_error("RELAY_ENDPOINT=%s: cannot connect: %s", next, zmq_strerror(zmq_errno()));
        return 2;
    }
    r->down = zsock_resolve(r->router);
    r->up = zsock_resolve(r->dealer);
    s_register(r);
    log_info("relay %s: sources on %s, next hop %s", r->svc.node_id, bind, next);
    return 0;
}

static int s_run(relay_t *r)
{
    while (!service_stop) {
        zmq_pollitem_t items[2] = {{r->down, 0, ZMQ_POLLIN, 0}, {r->up, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, 500) < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll: %s", zmq_strerror(errno));
            return 1;
        }
        frames_t f;
        for (int i = 0; i < 256 && frames_recv(&f, r->up, ZMQ_DONTWAIT) == 0; i++) {
            s_downstream(r, &f);
            frames_close(&f);
        }
        for (int i = 0; i < 256 && frames_recv(&f, r->down, ZMQ_DONTWAIT) == 0; i++) {
            s_upstream(r, &f);
            frames_close(&f);
        }
    }
    log_info("stopping");
    return 0;
}

int main(int argc, char **argv)
{
    relay_t r;
    memset(&r, 0, sizeof r);
    int status;
    if (!service_start(&r.svc, "tapmesh-relay", "relay", s_summary, s_rows,
                       sizeof s_rows / sizeof *s_rows, argc, argv, &status))
        return status;
    status = s_setup(&r);
    if (status == 0)
        status = s_run(&r);
    zsock_destroy(&r.dealer);
    zsock_destroy(&r.router);
    service_finish(&r.svc);
    zsys_shutdown();
    return status;
}
