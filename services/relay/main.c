/*
 * tapmesh-relay — a hop between sources and the collector: a ROUTER bound
 * towards its sources (capture agents or other relays), one DEALER per next
 * hop. Batches go on with this relay's hop record added (proto/wire-v1.md
 * §3.4) — to one next hop (FANOUT=failover), to all (duplicate), or split
 * by flow (flowhash) — optionally thinned by a BPF FILTER; acknowledgements
 * come back and go upstream once every hop that needed the batch has it.
 *
 * The relay keeps no custody: it never holds a packet after forwarding it;
 * it remembers only routes and which acknowledgements are still owed, so it
 * may be killed at any moment (the sources resend, the collector drops
 * duplicates).
 *
 * Data flow: ROUTER (sources) → known.c (who, and their link types) →
 * split.c (filter, flowhash) → hops.c (DEALERs) … ACKs → pending.c → ROUTER.
 */
#include "clock.h"
#include "frames.h"
#include "hops.h"
#include "known.h"
#include "log.h"
#include "pending.h"
#include "rejects.h"
#include "service.h"
#include "split.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

static const char s_summary[] =
    "Forwards batches from capture agents (or other relays) to the next hop(s) and routes the\n"
    "acknowledgements back; keeps no packets, so it may be restarted at any time.";

typedef enum { S_FAILOVER = 0, S_DUPLICATE = 1, S_FLOWHASH = 2 } s_fanout_t;

static const cfg_row_t s_rows[] = {
    SERVICE_ROWS(":9711"),
    {"COLLECT_ENDPOINT", CFG_ENDPOINT, "tcp://*:5711", 0, 0, NULL, false,
     "ZeroMQ endpoint to bind; capture agents and relays connect to it."},
    {"RELAY_ENDPOINT", CFG_ENDPOINTS, "tcp://127.0.0.1:5710", 0, 0, NULL, false,
     "Next hop(s) to connect to (relays or collectors), comma-separated, in order of "
     "preference."},
    {"FANOUT", CFG_ENUM, "failover", 0, 0, "failover|duplicate|flowhash", false,
     "failover: one next hop at a time, the first that works; duplicate: every next hop "
     "gets every batch; flowhash: packets split by a symmetric hash of their flow, so that "
     "both directions of a conversation take the same next hop."},
    {"FILTER", CFG_STR, "", 0, 0, NULL, false,
     "BPF filter (tcpdump syntax): only matching packets are forwarded; the others count as "
     "delivered."},
    {"HOP_TIMEOUT_MS", CFG_INT, "3000", 100, 600000, NULL, false,
     "A next hop that has not acknowledged a batch for this long is passed over (failover) "
     "until it acknowledges again, reconnects, or 30 s have passed."},
    {"RETRY_TIMEOUT_S", CFG_INT, "10", 1, 86400, NULL, false,
     "FANOUT=duplicate: a next hop that has not acknowledged a batch after this long is "
     "counted as having lost it, and the batch is acknowledged upstream."},
    {"PENDING_MAX", CFG_INT, "65536", 16, 16777216, NULL, false,
     "Batches in flight tracked at once (beyond, batches are forwarded untracked)."},
    {"MAX_SOURCES", CFG_INT, "4096", 1, 1000000, NULL, false,
     "Sources remembered (routes, link types)."},
};

#define S_STALL_PROBE_MS 30000

typedef struct {
    service_t svc;
    zsock_t *router;
    void *down; /* libzmq handle of router: towards the sources */
    hops_t hops;
    known_table_t *known;
    pending_table_t *pending;
    split_t *split; /* NULL unless FILTER or flowhash */
    s_fanout_t fanout;
    int64_t hop_timeout_ms, retry_ms;
    int64_t stalled_until[HOPS_MAX];
    unsigned active; /* failover: the hop in use */
    uint64_t relay_seq;
    rejects_t rejects;
    struct {
        metric_id_t batches_in, packets_in, acks_routed, resends, filtered, pending, expired,
            dropped, unroutable, loops, unknown_acks, unknown_sources;
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
    r->m.acks_routed = metrics_counter(m, "tapmesh_relay_acks_routed_total",
                                       "Batch acknowledgements sent back to sources", NULL);
    r->m.resends = metrics_counter(m, "tapmesh_relay_resends_observed_total",
                                   "Batches received again while the relay still waited for "
                                   "their acknowledgement",
                                   NULL);
    r->m.filtered = metrics_counter(m, "tapmesh_relay_filtered_packets_total",
                                    "Packets FILTER kept from the next hops", NULL);
    r->m.pending = metrics_gauge(m, "tapmesh_relay_pending_batches",
                                 "Batches forwarded and not yet acknowledged", NULL);
    r->m.expired = metrics_counter(m, "tapmesh_relay_pending_expired_total",
                                   "Batches no next hop acknowledged in RETRY_TIMEOUT_S (their "
                                   "sources resend them)",
                                   NULL);
    r->m.dropped = metrics_counter(m, "tapmesh_relay_dropped_no_hop_total",
                                   "Batches no next hop could take (none connected, or all "
                                   "full): their sources resend them",
                                   NULL);
    r->m.unroutable = metrics_counter(m, "tapmesh_relay_replies_unroutable_total",
                                      "Replies for a source no longer connected", NULL);
    r->m.loops = metrics_counter(m, "tapmesh_relay_hop_limit_total",
                                 "Batches dropped because they already had 16 hops", NULL);
    r->m.unknown_acks = metrics_counter(m, "tapmesh_relay_acks_unknown_total",
                                        "Acknowledgements of batches the relay does not track "
                                        "(after a restart, or beyond PENDING_MAX)",
                                        NULL);
    r->m.unknown_sources = metrics_counter(
        m, "tapmesh_relay_unknown_sources_total",
        "Batches from sources whose HELLO this relay has not seen (FILTER and flowhash need its "
        "link types): answered with REFUSE code 1, so that the source says HELLO again",
        NULL);
    rejects_init(&r->rejects, m, "tapmesh_relay_malformed_messages_total");
}

static void s_malformed(relay_t *r, const frames_t *in, wire_err_t why)
{
    rejects_drop(&r->rejects, rejects_peer(in), why, NULL, clock_mono_ms());
}

/* ---- next hops --------------------------------------------------------- */

static bool s_usable(const relay_t *r, unsigned i)
{
    return hop_healthy(&r->hops.hop[i]);
}

/* failover: the first usable hop in order of preference */
static void s_choose_active(relay_t *r)
{
    unsigned best = 0;
    for (unsigned i = 0; i < r->hops.n; i++) {
        if (s_usable(r, i)) {
            best = i;
            break;
        }
        if (!r->hops.hop[best].connected && r->hops.hop[i].connected)
            best = i;
    }
    if (best != r->active)
        log_info("next hop: now %s (was %s)", r->hops.hop[best].endpoint,
                 r->hops.hop[r->active].endpoint);
    r->active = best;
}

static void s_stall(relay_t *r, unsigned i, int64_t now)
{
    hop_t *h = &r->hops.hop[i];
    if (h->stalled || !h->connected)
        return;
    h->stalled = true;
    r->stalled_until[i] = now + S_STALL_PROBE_MS;
    log_warn("next hop %s stopped acknowledging: passed over", h->endpoint);
    hops_publish(&r->hops);
}

/* Sends command + payload (copied, so the caller keeps its own) to hop i.
 * Returns 0 or a negative errno. */
static int s_send_hop(relay_t *r, unsigned i, const route_t *route, const uint8_t *cmd, size_t len,
                      zmq_msg_t *payload, uint32_t packets)
{
    hop_t *h = &r->hops.hop[i];
    zmq_msg_t copy;
    if (payload) {
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, payload);
    }
    int rc = frames_send(h->sock, route, cmd, len, payload ? &copy : NULL, ZMQ_DONTWAIT);
    if (payload)
        zmq_msg_close(&copy);
    if (rc < 0) {
        metrics_add(r->svc.metrics, h->m.send_failed, 1);
        return rc;
    }
    if (payload) {
        metrics_add(r->svc.metrics, h->m.batches, 1);
        metrics_add(r->svc.metrics, h->m.packets, packets);
    }
    return 0;
}

/* ---- batches ----------------------------------------------------------- */

/* Encodes s_msg's BATCH header for one part. */
static size_t s_batch_header(uint16_t part, uint16_t parts, uint32_t count, size_t plen)
{
    s_msg.batch.part = part;
    s_msg.batch.parts = parts;
    s_msg.batch.packet_count = count;
    s_msg.batch.payload_len = (uint32_t)plen;
    return wire_encode(&s_msg, s_cmd, sizeof s_cmd);
}

static zmq_msg_t *s_msg_from(zmq_msg_t *m, const uint8_t *buf, size_t len)
{
    if (zmq_msg_init_size(m, len) < 0)
        return NULL;
    memcpy(zmq_msg_data(m), buf, len);
    return m;
}

/* Failover: the batch (filtered or not) to the active hop, or the next that
 * takes it. Returns the hop index, or -1. */
static int s_failover(relay_t *r, const route_t *route, const uint8_t *cmd, size_t len,
                      zmq_msg_t *payload, uint32_t packets)
{
    for (unsigned k = 0; k < r->hops.n; k++) {
        unsigned i = (r->active + k) % r->hops.n;
        if (k > 0 && !r->hops.hop[i].connected)
            continue;
        if (s_send_hop(r, i, route, cmd, len, payload, packets) == 0)
            return (int)i;
    }
    return -1;
}

/* A command without payload (HELLO, HEARTBEAT, END): where a batch would go
 * in failover, to every hop otherwise. */
static void s_forward_command(relay_t *r, const route_t *route, const uint8_t *cmd, size_t len)
{
    if (r->fanout == S_FAILOVER) {
        s_failover(r, route, cmd, len, NULL, 0);
        return;
    }
    for (unsigned i = 0; i < r->hops.n; i++)
        s_send_hop(r, i, route, cmd, len, NULL, 0);
}

static void s_batch(relay_t *r, frames_t *in, known_t *k, int64_t now)
{
    zmq_msg_t *payload = frames_payload(in);
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
    bool split = r->split && s_msg.batch.parts == 1; /* a split batch is not split again */
    if (r->split && !k->hello) {
        /* its link types are needed: have it say HELLO (through us) again */
        metrics_add(r->svc.metrics, r->m.unknown_sources, 1);
        wire_msg_init(&s_msg, WIRE_REFUSE, s_msg.source, s_msg.epoch);
        s_msg.refuse.code = WIRE_REFUSE_UNKNOWN_SOURCE;
        snprintf(s_msg.refuse.reason, sizeof s_msg.refuse.reason,
                 "relay %s has not seen this source's HELLO", r->svc.node_id);
        size_t len = wire_encode(&s_msg, s_cmd, sizeof s_cmd);
        if (frames_send(r->down, &k->route, s_cmd, len, NULL, ZMQ_DONTWAIT) < 0)
            metrics_add(r->svc.metrics, r->m.unroutable, 1);
        return;
    }
    if (split && wire_packets_check(zmq_msg_data(payload), zmq_msg_size(payload),
                                    s_msg.batch.packet_count, k->nifaces, NULL, NULL) != WIRE_OK) {
        s_malformed(r, in, WIRE_ERR_CAPLEN);
        return;
    }
    wire_hop_t *hop = &s_msg.batch.hops[s_msg.batch.hop_count++];
    snprintf(hop->node, sizeof hop->node, "%s", r->svc.node_id);
    hop->recv_ns = clock_wall_ns();
    hop->relay_seq = r->relay_seq++;

    uint32_t kidx = known_index(r->known, k);
    uint64_t seq = s_msg.batch.seq;
    uint16_t part = s_msg.batch.part, parts = s_msg.batch.parts;
    pending_t *p = pending_find(r->pending, kidx, k->generation, seq, part);
    bool resend = p != NULL;
    if (resend)
        metrics_add(r->svc.metrics, r->m.resends, 1);

    unsigned ways = r->fanout == S_FLOWHASH && split ? r->hops.n : 1;
    if (split) {
        if (split_batch(r->split, zmq_msg_data(payload), zmq_msg_size(payload),
                        s_msg.batch.packet_count, k->linktype, k->nifaces) < 0) {
            log_error("out of memory splitting a batch");
            return; /* its source resends */
        }
        metrics_add(r->svc.metrics, r->m.filtered, split_filtered(r->split));
    }

    if (!p) {
        p = pending_add(r->pending, kidx, k->generation, seq, part);
        if (p) {
            p->first_ms = now;
            p->packets = s_msg.batch.packet_count;
            p->any = r->fanout == S_FAILOVER || (r->fanout == S_FLOWHASH && !split);
            p->split = ways > 1;
            if (p->split)
                p->needed = (ways >= 32 ? UINT32_MAX : (1u << ways) - 1);
        }
    }
    /* what still has to go: everything the first time; on a resend, what
     * is not acknowledged yet */
    uint32_t owed = resend ? p->needed & ~p->acked : UINT32_MAX;
    bool sent = false;

    if (ways > 1) {
        /* flowhash: part i to hop i, or to the next connected hop */
        for (unsigned i = 0; i < ways; i++) {
            if (!(owed & (1u << i)))
                continue;
            size_t plen;
            uint32_t count;
            const uint8_t *buf = split_out(r->split, i, &plen, &count);
            size_t len = s_batch_header((uint16_t)i, (uint16_t)ways, count, plen);
            zmq_msg_t m;
            if (!len || !s_msg_from(&m, buf, plen))
                continue;
            for (unsigned t = 0; t < r->hops.n; t++) {
                unsigned h = (i + t) % r->hops.n;
                if ((t == 0 || r->hops.hop[h].connected) &&
                    s_send_hop(r, h, &k->route, s_cmd, len, &m, count) == 0) {
                    sent = true;
                    break;
                }
            }
            zmq_msg_close(&m);
        }
    } else {
        zmq_msg_t filtered, *out = payload;
        uint32_t count = s_msg.batch.packet_count;
        size_t len;
        if (split) {
            size_t plen;
            const uint8_t *buf = split_out(r->split, 0, &plen, &count);
            len = s_batch_header(part, parts, count, plen);
            out = len ? s_msg_from(&filtered, buf, plen) : NULL;
        } else {
            len = wire_encode(&s_msg, s_cmd, sizeof s_cmd);
        }
        if (out && len) {
            if (r->fanout == S_DUPLICATE) {
                /* every usable hop that still owes it (all of them, when none is usable) */
                bool any_usable = false;
                for (unsigned i = 0; i < r->hops.n; i++)
                    any_usable |= s_usable(r, i);
                for (unsigned i = 0; i < r->hops.n; i++) {
                    if (!(owed & (1u << i)) || (any_usable && !s_usable(r, i)))
                        continue;
                    if (s_send_hop(r, i, &k->route, s_cmd, len, out, count) == 0) {
                        sent = true;
                        if (p)
                            p->needed |= 1u << i;
                    }
                }
            } else {
                int i = s_failover(r, &k->route, s_cmd, len, out, count);
                if (i >= 0) {
                    sent = true;
                    if (p)
                        p->needed |= 1u << i;
                }
            }
        }
        if (split && out)
            zmq_msg_close(&filtered);
    }
    if (!sent) {
        metrics_add(r->svc.metrics, r->m.dropped, 1);
        if (p && !p->acked && !p->needed)
            pending_remove(r->pending, p);
        return;
    }
    if (p)
        p->sent_ms = now;
    metrics_set(r->svc.metrics, r->m.pending, (double)pending_count(r->pending));
}

/* ---- upstream: from the sources ---------------------------------------- */

static void s_upstream(relay_t *r, frames_t *in, int64_t now)
{
    size_t len;
    const uint8_t *cmd = frames_command(in, &len);
    if (!cmd || in->envelope >= FRAMES_ENVELOPE_MAX) {
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
    if (s_msg.type != WIRE_HELLO && s_msg.type != WIRE_BATCH && s_msg.type != WIRE_HEARTBEAT &&
        s_msg.type != WIRE_END) {
        s_malformed(r, in, WIRE_ERR_TYPE);
        return;
    }
    known_t *k = known_get(r->known, s_msg.source, s_msg.epoch, true);
    if (!k)
        return;
    frames_route(in, &k->route);
    k->heard_ms = now;
    if (s_msg.type == WIRE_HELLO) {
        k->hello = true;
        k->nifaces = s_msg.hello.iface_count;
        for (unsigned i = 0; i < k->nifaces; i++)
            k->linktype[i] = s_msg.hello.ifaces[i].linktype;
    }
    if (s_msg.type == WIRE_BATCH)
        s_batch(r, in, k, now);
    else
        s_forward_command(r, &k->route, cmd, len);
}

/* ---- downstream: from a next hop --------------------------------------- */

/* Acknowledges upstream what is settled among the entries of s_msg (an ACK
 * from hop `h`). */
static void s_on_ack(relay_t *r, frames_t *in, unsigned h, int64_t now)
{
    hop_t *hop = &r->hops.hop[h];
    known_t *k = known_get(r->known, s_msg.source, s_msg.epoch, false);
    static wire_ack_entry_t done[WIRE_ACKS_MAX];
    unsigned ndone = 0;
    hop->stalled = false; /* it acknowledges */
    for (unsigned e = 0; e < s_msg.ack.count; e++) {
        uint64_t seq = s_msg.ack.entries[e].seq;
        uint16_t part = s_msg.ack.entries[e].part;
        metrics_add(r->svc.metrics, hop->m.acks, 1);
        pending_t *p = NULL;
        uint32_t bit = 1u << h;
        if (k) {
            uint32_t kidx = known_index(r->known, k);
            p = pending_find(r->pending, kidx, k->generation, seq, part);
            if (!p) { /* a part of a batch this relay split */
                p = pending_find(r->pending, kidx, k->generation, seq, 0);
                if (p && !p->split)
                    p = NULL;
                bit = 1u << part;
            }
        }
        if (!p) {
            metrics_add(r->svc.metrics, r->m.unknown_acks, 1);
            if (r->fanout == S_FAILOVER) /* nothing else owes it: pass it on */
                done[ndone++] = s_msg.ack.entries[e];
            continue;
        }
        metrics_observe(r->svc.metrics, hop->m.latency, (double)(now - p->sent_ms) / 1000.0);
        p->acked |= bit;
        if (pending_done(p)) {
            done[ndone++] = (wire_ack_entry_t){.seq = p->seq, .part = p->part};
            pending_remove(r->pending, p);
        }
    }
    metrics_set(r->svc.metrics, r->m.pending, (double)pending_count(r->pending));
    if (!ndone)
        return;
    wire_msg_init(&s_msg, WIRE_ACK, s_msg.source, s_msg.epoch);
    s_msg.ack.count = (uint16_t)ndone;
    memcpy(s_msg.ack.entries, done, ndone * sizeof *done);
    size_t len = wire_encode(&s_msg, s_cmd, sizeof s_cmd);
    if (frames_forward(r->down, in, s_cmd, len, ZMQ_DONTWAIT) < 0)
        metrics_add(r->svc.metrics, r->m.unroutable, 1);
    else
        metrics_add(r->svc.metrics, r->m.acks_routed, ndone);
}

static void s_downstream(relay_t *r, frames_t *in, unsigned h, int64_t now)
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
    if (s_msg.type == WIRE_ACK) {
        s_on_ack(r, in, h, now);
        return;
    }
    if (s_msg.type != WIRE_WELCOME && s_msg.type != WIRE_REFUSE) {
        s_malformed(r, in, WIRE_ERR_TYPE);
        return;
    }
    if (frames_forward(r->down, in, cmd, len, ZMQ_DONTWAIT) < 0)
        metrics_add(r->svc.metrics, r->m.unroutable, 1);
}

/* ---- time -------------------------------------------------------------- */

/* Once in a while: hops that stopped acknowledging, duplicate hops that
 * lag past RETRY_TIMEOUT_S, entries nobody will settle. */
static void s_tick(relay_t *r, int64_t now)
{
    for (unsigned i = 0; i < r->hops.n; i++)
        if (r->hops.hop[i].stalled && now >= r->stalled_until[i]) {
            r->hops.hop[i].stalled = false; /* give it another chance */
            hops_publish(&r->hops);
        }
    for (size_t i = 0; i < pending_capacity(r->pending); i++) {
        pending_t *p = pending_slot(r->pending, i);
        if (!p->used)
            continue;
        int64_t age = now - p->sent_ms;
        if (!p->split && age >= r->hop_timeout_ms && !p->acked) {
            for (unsigned h = 0; h < r->hops.n; h++)
                if (p->needed & (1u << h))
                    s_stall(r, h, now);
        }
        if (now - p->first_ms < r->retry_ms)
            continue;
        known_t *k = known_at(r->known, p->source, p->generation);
        if (r->fanout == S_DUPLICATE && p->acked && k) {
            /* a lagging hop must not stall the others: it lost this one */
            uint32_t lagging = p->needed & ~p->acked;
            for (unsigned h = 0; h < r->hops.n; h++)
                if (lagging & (1u << h)) {
                    metrics_add(r->svc.metrics, r->hops.hop[h].m.lost, 1);
                    s_stall(r, h, now);
                }
            wire_msg_init(&s_msg, WIRE_ACK, k->id, k->epoch);
            s_msg.ack.count = 1;
            s_msg.ack.entries[0] = (wire_ack_entry_t){.seq = p->seq, .part = p->part};
            size_t len = wire_encode(&s_msg, s_cmd, sizeof s_cmd);
            if (frames_send(r->down, &k->route, s_cmd, len, NULL, ZMQ_DONTWAIT) < 0)
                metrics_add(r->svc.metrics, r->m.unroutable, 1);
            else
                metrics_add(r->svc.metrics, r->m.acks_routed, 1);
        } else {
            metrics_add(r->svc.metrics, r->m.expired, 1);
        }
        pending_remove(r->pending, p);
    }
    metrics_set(r->svc.metrics, r->m.pending, (double)pending_count(r->pending));
    if (r->fanout == S_FAILOVER)
        s_choose_active(r);
}

/* ---- set-up and loop ----------------------------------------------------- */

static int s_setup(relay_t *r)
{
    cfg_t *c = r->svc.cfg;
    char err[1024];
    r->fanout = (s_fanout_t)cfg_enum(c, "FANOUT");
    r->hop_timeout_ms = cfg_int(c, "HOP_TIMEOUT_MS");
    r->retry_ms = cfg_int(c, "RETRY_TIMEOUT_S") * 1000;
    r->known = known_new((size_t)cfg_int(c, "MAX_SOURCES"));
    r->pending = pending_new((size_t)cfg_int(c, "PENDING_MAX"));
    if (!r->known || !r->pending) {
        log_error("out of memory");
        return 1;
    }
    s_register(r);
    if (hops_open(&r->hops, cfg_str(c, "RELAY_ENDPOINT"), r->svc.metrics, err, sizeof err) < 0) {
        fprintf(stderr, "tapmesh-relay: %s\n", err);
        return 2;
    }
    const char *filter = cfg_str(c, "FILTER");
    if (*filter || (r->fanout == S_FLOWHASH && r->hops.n > 1)) {
        r->split = split_new(filter, r->fanout == S_FLOWHASH ? r->hops.n : 1, err, sizeof err);
        if (!r->split) {
            fprintf(stderr, "tapmesh-relay: %s\n", err);
            return 2;
        }
    }
    r->router = zsock_new(ZMQ_ROUTER);
    if (!r->router) {
        log_error("cannot create a ZeroMQ socket");
        return 1;
    }
    zsock_set_router_mandatory(r->router, 1);
    zsock_set_heartbeat_ivl(r->router, 1000);
    zsock_set_heartbeat_timeout(r->router, 5000);
    zsock_set_maxmsgsize(r->router, (int)(WIRE_PAYLOAD_MAX + (1 << 20)));
    zsock_set_linger(r->router, 500);
    const char *bind = cfg_str(c, "COLLECT_ENDPOINT");
    if (zsock_bind(r->router, "%s", bind) < 0) {
        fprintf(stderr, "tapmesh-relay: COLLECT_ENDPOINT=%s: cannot bind: %s\n", bind,
                zmq_strerror(zmq_errno()));
        return 2;
    }
    r->down = zsock_resolve(r->router);
    hops_publish(&r->hops);
    log_info("relay %s: sources on %s, %u next hop(s) (%s)%s%s", r->svc.node_id, bind, r->hops.n,
             cfg_str(c, "FANOUT"), *filter ? ", filter: " : "", filter);
    return 0;
}

static int s_run(relay_t *r)
{
    int64_t next_tick = clock_mono_ms() + 100;
    while (!service_stop) {
        zmq_pollitem_t items[1 + 2 * HOPS_MAX];
        unsigned n = 0;
        items[n++] = (zmq_pollitem_t){r->down, 0, ZMQ_POLLIN, 0};
        for (unsigned i = 0; i < r->hops.n; i++) {
            items[n++] = (zmq_pollitem_t){r->hops.hop[i].sock, 0, ZMQ_POLLIN, 0};
            items[n++] = (zmq_pollitem_t){r->hops.hop[i].msock, 0, ZMQ_POLLIN, 0};
        }
        int64_t now = clock_mono_ms();
        if (zmq_poll(items, (int)n, next_tick > now ? (long)(next_tick - now) : 0) < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll: %s", zmq_strerror(errno));
            return 1;
        }
        now = clock_mono_ms();
        bool changed = false;
        for (unsigned i = 0; i < r->hops.n; i++)
            changed |= hops_on_monitor(&r->hops, i);
        if (changed && r->fanout == S_FAILOVER)
            s_choose_active(r);
        frames_t f;
        for (unsigned i = 0; i < r->hops.n; i++)
            for (int j = 0; j < 256 && frames_recv(&f, r->hops.hop[i].sock, ZMQ_DONTWAIT) == 0;
                 j++) {
                s_downstream(r, &f, i, now);
                frames_close(&f);
            }
        for (int j = 0; j < 256 && frames_recv(&f, r->down, ZMQ_DONTWAIT) == 0; j++) {
            s_upstream(r, &f, now);
            frames_close(&f);
        }
        if (now >= next_tick) {
            s_tick(r, now);
            next_tick = now + 100;
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
    hops_close(&r.hops);
    zsock_destroy(&r.router);
    split_destroy(&r.split);
    pending_destroy(&r.pending);
    known_destroy(&r.known);
    service_finish(&r.svc);
    zsys_shutdown();
    return status;
}
