/*
 * relay — routing state and the fan-out modes.
 *
 * Data flow: upstream message → known.c (who, and their link types) →
 * split.c (filter, flowhash) → the fan-out's ops → send callback … ACKs
 * from a next hop → pending.c → ACK upstream.
 *
 * A received command decodes into `in`; what the relay sends is encoded
 * from `out` (a forwarded batch's header is copied there and gets this
 * relay's hop record): an answer never overwrites the message it answers.
 */
#include "relay.h"

#include "auth.h"
#include "clock.h"
#include "compress.h"
#include "known.h"
#include "log.h"
#include "peers.h"
#include "pending.h"
#include "rejects.h"
#include "split.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* What one batch needs while it is forwarded. */
typedef struct {
    known_t *k;
    pending_t *p;       /* NULL when untracked (the table is full) */
    uint32_t owed;      /* bits (hops, or parts) still to send */
    zmq_msg_t *payload; /* as received */
    bool split;         /* split.c holds its parts (filtered, or one per way) */
    unsigned ways;      /* parts: 1, or the next hops (flowhash) */
} s_fwd_t;

/* Where the fan-out modes differ. */
typedef struct {
    const char *name;
    /* Sends the batch on; returns true when any next hop took it. */
    bool (*batch)(relay_t *r, s_fwd_t *fw);
    /* HELLO, HEARTBEAT, END, STATS, DEAD: where the source's batches go (one hop
     * for failover, every hop for duplicate and flowhash). */
    void (*command)(relay_t *r, const route_t *route, const uint8_t *cmd, size_t len);
    /* An entry RETRY_TIMEOUT_S old. */
    void (*expire)(relay_t *r, pending_t *p, int64_t now);
    /* A hop's health changed. */
    void (*hops_changed)(relay_t *r);
    /* An acknowledgement the relay does not track goes upstream as is
     * (nothing else can owe it). */
    bool pass_unknown_acks;
} s_fanout_ops_t;

struct relay_t {
    relay_opts_t opts;
    char node_id[WIRE_NAME_MAX + 1];
    metrics_t *metrics;
    relay_send_fn send;
    void *ctx;
    const s_fanout_ops_t *ops;
    hops_t hops;
    known_table_t *known;
    peers_t *peers;     /* entries held and allowance, per peer */
    uint64_t peer_seed; /* frames_peer's key: random, per relay */
    pending_table_t *pending;
    split_t *split;     /* NULL unless FILTER or flowhash over several hops */
    unsigned active;    /* failover: the hop in use */
    uint32_t lost_hops; /* hops whose connection broke, not yet asked about */
    uint64_t asks;      /* resend requests made (known_t.asked) */
    uint64_t relay_seq;
    rejects_t rejects;
    wire_msg_t *in, *out;
    uint8_t *cmd;           /* out's encoding, WIRE_COMMAND_MAX */
    wire_ack_entry_t *done; /* acknowledgements settled by one ACK, WIRE_ACKS_MAX */
    /* compression: the context (level 0: decompression only); a
     * compressed batch decompressed for FILTER or flowhash; the payload
     * being forwarded (key) compressed for the next hops that take it */
    compress_t *zc;
    uint8_t *plain, *zbuf, *zcmd;
    size_t plain_cap, zcap, zlen;
    uint64_t key, zkey; /* the payload being sent, and the one zbuf holds */
    struct {
        metric_id_t batches_in, packets_in, acks_routed, resends, filtered, pending, expired,
            dropped, unroutable, loops, unknown_acks, unknown_sources, identity, refused[4],
            resend_requests, bytes_in, unpacked, zstd_in, zstd_out;
    } m;
};

static const s_fanout_ops_t s_failover_ops, s_duplicate_ops, s_flowhash_ops;

/* ---- set-up ---------------------------------------------------------- */

static void s_register(relay_t *r)
{
    metrics_t *m = r->metrics;
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
    r->m.resend_requests = metrics_counter(
        m, "tapmesh_relay_resend_requests_total",
        "Sources asked to send again at once what a broken connection to a next hop carried", NULL);
    rejects_init(&r->rejects, m, "tapmesh_relay_malformed_messages_total");
    r->m.bytes_in = metrics_counter(m, "tapmesh_relay_payload_bytes_in_total",
                                    "Payload bytes of the batches received (as received: "
                                    "compressed or not)",
                                    NULL);
    r->m.unpacked = metrics_counter(m, "tapmesh_relay_decompressed_batches_total",
                                    "Compressed batches decompressed because FILTER or "
                                    "FANOUT=flowhash needs their packets (those that fail are "
                                    "malformed, reason zstd)",
                                    NULL);
    if (r->opts.compress_level > 0) {
        r->m.zstd_in = metrics_counter(m, "tapmesh_relay_uncompressed_bytes_total",
                                       "COMPRESS: payload bytes of the uncompressed batches "
                                       "sent to next hops that take compressed ones, before "
                                       "compression",
                                       NULL);
        r->m.zstd_out = metrics_counter(m, "tapmesh_relay_compressed_bytes_total",
                                        "COMPRESS: payload bytes of the same batches as sent "
                                        "(plain when one would not get smaller)",
                                        NULL);
    }
    r->m.identity = metrics_counter(m, "tapmesh_relay_auth_failures_total", AUTH_FAILURES_HELP,
                                    "reason=\"identity\"");
    static const char *const reasons[] = {NULL, "peer_limit", "full",
                                          "hello_rate"}; /* S_REFUSED_* */
    r->m.refused[0] = -1;
    for (int i = 1; i < 4; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", reasons[i]);
        r->m.refused[i] = metrics_counter(m, "tapmesh_relay_sources_refused_total",
                                          "Sources not taken (their messages dropped): a peer's "
                                          "limit or rate of new sources, or the table full "
                                          "with batches in flight",
                                          labels);
    }
}

relay_t *relay_new(const relay_opts_t *opts, metrics_t *metrics, relay_send_fn send, void *ctx,
                   char *err, size_t errlen)
{
    relay_t *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->opts = *opts;
    snprintf(r->node_id, sizeof r->node_id, "%s", opts->node_id);
    r->opts.node_id = r->node_id;
    r->opts.filter = NULL; /* split.c keeps its own copy */
    r->opts.hops = NULL;   /* hops_t keeps its own copy */
    r->metrics = metrics;
    r->send = send;
    r->ctx = ctx;
    r->ops = opts->fanout == RELAY_DUPLICATE  ? &s_duplicate_ops
             : opts->fanout == RELAY_FLOWHASH ? &s_flowhash_ops
                                              : &s_failover_ops;
    if (!r->opts.max_sources_per_peer)
        r->opts.max_sources_per_peer = opts->max_sources;
    r->peers = peers_new(opts->max_sources, opts->hello_rate);
    r->known = r->peers ? known_new(opts->max_sources, r->peers) : NULL;
    r->pending = pending_new(opts->pending_max);
    if (getrandom(&r->peer_seed, sizeof r->peer_seed, GRND_NONBLOCK) !=
        (ssize_t)sizeof r->peer_seed)
        r->peer_seed = (uint64_t)(uintptr_t)r;
    r->in = malloc(sizeof *r->in);
    r->out = malloc(sizeof *r->out);
    r->cmd = malloc(WIRE_COMMAND_MAX);
    r->done = malloc(WIRE_ACKS_MAX * sizeof *r->done);
    r->zc = compress_new(opts->compress_level);
    r->zcmd = malloc(WIRE_COMMAND_MAX);
    if (!r->known || !r->pending || !r->in || !r->out || !r->cmd || !r->done || !r->zc ||
        !r->zcmd) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    s_register(r);
    hops_init(&r->hops, opts->hops, opts->nhops, metrics);
    const char *filter = opts->filter ? opts->filter : "";
    if (*filter || (opts->fanout == RELAY_FLOWHASH && r->hops.n > 1)) {
        r->split = split_new(filter, opts->fanout == RELAY_FLOWHASH ? r->hops.n : 1, err, errlen);
        if (!r->split)
            goto err;
    }
    return r;
err:
    relay_destroy(&r);
    return NULL;
}

void relay_destroy(relay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    relay_t *r = *self_p;
    split_destroy(&r->split);
    pending_destroy(&r->pending);
    known_destroy(&r->known);
    peers_destroy(&r->peers);
    free(r->in);
    free(r->out);
    free(r->cmd);
    free(r->done);
    compress_destroy(&r->zc);
    free(r->plain);
    free(r->zbuf);
    free(r->zcmd);
    free(r);
    *self_p = NULL;
}

const hops_t *relay_hops(const relay_t *self)
{
    return &self->hops;
}

/* ---- sending ------------------------------------------------------------- */

static void s_malformed(relay_t *r, const frames_t *in, wire_err_t why)
{
    rejects_drop(&r->rejects, rejects_peer(in), why, NULL, clock_mono_ms());
}

/* Removes an entry of the pending table, and its count from its source
 * (when that is still the same source). */
static void s_pending_remove(relay_t *r, pending_t *p)
{
    known_t *k = known_at(r->known, p->source, p->generation);
    if (k && k->pending)
        k->pending--;
    pending_remove(r->pending, p);
}

/* Encodes `out` into cmd; 0 on a programmer error. */
static size_t s_encode(relay_t *r)
{
    return wire_encode(r->out, r->cmd, WIRE_COMMAND_MAX);
}

/* Sends `out` back towards a source. */
static void s_send_down(relay_t *r, const route_t *route, size_t len)
{
    if (len == 0 || r->send(r->ctx, RELAY_DOWN, route, r->cmd, len, NULL) < 0)
        metrics_add(r->metrics, r->m.unroutable, 1);
}

/* Grows *buf to `need` bytes (never shrinks). */
static bool s_room(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    uint8_t *grown = realloc(*buf, need);
    if (!grown)
        return false;
    *buf = grown;
    *cap = need;
    return true;
}

/* COMPRESS: the payload being sent (r->key) compressed into zbuf, once for
 * all the hops that take it; false when it goes plain. */
static bool s_packed(relay_t *r, zmq_msg_t *payload)
{
    if (r->zkey != r->key) {
        size_t len = zmq_msg_size(payload);
        r->zkey = r->key;
        r->zlen = s_room(&r->zbuf, &r->zcap, compress_bound(len))
                      ? compress_pack(r->zc, zmq_msg_data(payload), len, r->zbuf, r->zcap)
                      : 0;
    }
    return r->zlen > 0;
}

/* Sends a command (+ a shared reference to `payload`) to hop i: the
 * payload compressed instead (and the command with its length) when
 * COMPRESS is on, hop i takes it, and it is not compressed already; `out`
 * is then the batch. Returns 0 or a negative errno. */
static int s_send_hop(relay_t *r, unsigned i, const route_t *route, const uint8_t *cmd, size_t len,
                      zmq_msg_t *payload, uint32_t packets)
{
    hop_t *h = &r->hops.hop[i];
    zmq_msg_t copy;
    size_t plen = payload ? zmq_msg_size(payload) : 0;
    bool pack = payload && r->opts.compress_level > 0 && h->zstd && packets > 0 &&
                !compress_is_packed(zmq_msg_data(payload), plen);
    bool packed = pack && s_packed(r, payload);
    if (packed) {
        uint32_t plain_len = r->out->batch.payload_len;
        r->out->batch.payload_len = (uint32_t)r->zlen;
        len = wire_encode(r->out, r->zcmd, WIRE_COMMAND_MAX);
        r->out->batch.payload_len = plain_len;
        cmd = r->zcmd;
        if (len == 0 || zmq_msg_init_size(&copy, r->zlen) < 0)
            return -ENOMEM;
        memcpy(zmq_msg_data(&copy), r->zbuf, r->zlen);
    } else if (payload) {
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, payload); /* a reference, not the bytes */
    }
    size_t sent = payload ? zmq_msg_size(&copy) : 0;
    int rc = r->send(r->ctx, (int)i, route, cmd, len, payload ? &copy : NULL);
    if (payload)
        zmq_msg_close(&copy);
    if (rc < 0) {
        metrics_add(r->metrics, h->m.send_failed, 1);
        return rc;
    }
    if (payload) {
        metrics_add(r->metrics, h->m.batches, 1);
        metrics_add(r->metrics, h->m.packets, packets);
        metrics_add(r->metrics, h->m.bytes, sent);
        if (pack) {
            metrics_add(r->metrics, r->m.zstd_in, plen);
            metrics_add(r->metrics, r->m.zstd_out, sent);
        }
    }
    return 0;
}

/* Sends to the active hop, or the next connected one that takes it.
 * Returns the hop index, or -1. */
static int s_failover_send(relay_t *r, const route_t *route, const uint8_t *cmd, size_t len,
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

/* Encodes `out` (a BATCH) as part `part` of `parts` with `count` packets in
 * `plen` bytes. */
static size_t s_encode_part(relay_t *r, uint16_t part, uint16_t parts, uint32_t count, size_t plen)
{
    r->out->batch.part = part;
    r->out->batch.parts = parts;
    r->out->batch.packet_count = count;
    r->out->batch.payload_len = (uint32_t)plen;
    return s_encode(r);
}

static zmq_msg_t *s_msg_from(zmq_msg_t *m, const uint8_t *buf, size_t len)
{
    if (zmq_msg_init_size(m, len) < 0)
        return NULL;
    memcpy(zmq_msg_data(m), buf, len);
    return m;
}

/* The batch's single output: what the filter kept (a new message in
 * `filtered`), or the payload as received. Returns the encoded command's
 * length with *msg and *count set, or 0. */
static size_t s_one_output(relay_t *r, s_fwd_t *fw, zmq_msg_t *filtered, zmq_msg_t **msg,
                           uint32_t *count)
{
    r->key++; /* a payload to send: compressed at most once */
    if (!fw->split) {
        *msg = fw->payload;
        *count = r->out->batch.packet_count;
        return s_encode(r);
    }
    size_t plen;
    const uint8_t *buf = split_out(r->split, 0, &plen, count);
    size_t len = s_encode_part(r, r->out->batch.part, r->out->batch.parts, *count, plen);
    *msg = len ? s_msg_from(filtered, buf, plen) : NULL;
    return *msg ? len : 0;
}

/* ---- fan-out: failover ------------------------------------------------------ */

static bool s_failover_batch(relay_t *r, s_fwd_t *fw)
{
    zmq_msg_t filtered, *msg;
    uint32_t count;
    size_t len = s_one_output(r, fw, &filtered, &msg, &count);
    if (!len)
        return false;
    int i = s_failover_send(r, &fw->k->route, r->cmd, len, msg, count);
    if (fw->split)
        zmq_msg_close(&filtered);
    if (i < 0)
        return false;
    if (fw->p)
        fw->p->needed |= 1u << i;
    return true;
}

static void s_failover_command(relay_t *r, const route_t *route, const uint8_t *cmd, size_t len)
{
    s_failover_send(r, route, cmd, len, NULL, 0);
}

static void s_count_expired(relay_t *r, pending_t *p, int64_t now)
{
    (void)p;
    (void)now;
    metrics_add(r->metrics, r->m.expired, 1);
}

/* The first healthy hop in order of preference (else the first connected,
 * else the first). */
static void s_choose_active(relay_t *r)
{
    unsigned best = 0;
    for (unsigned i = 0; i < r->hops.n; i++) {
        if (hop_healthy(&r->hops.hop[i])) {
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

static void s_nothing_changes(relay_t *r)
{
    (void)r;
}

static const s_fanout_ops_t s_failover_ops = {.name = "failover",
                                              .batch = s_failover_batch,
                                              .command = s_failover_command,
                                              .expire = s_count_expired,
                                              .hops_changed = s_choose_active,
                                              .pass_unknown_acks = true};

/* ---- fan-out: duplicate ----------------------------------------------------- */

/* Every healthy hop that still owes it (all that owe it, when none is
 * healthy: a hop that is only slow should still get it). */
static bool s_duplicate_batch(relay_t *r, s_fwd_t *fw)
{
    zmq_msg_t filtered, *msg;
    uint32_t count;
    size_t len = s_one_output(r, fw, &filtered, &msg, &count);
    if (!len)
        return false;
    bool any_healthy = hops_any_healthy(&r->hops), sent = false;
    for (unsigned i = 0; i < r->hops.n; i++) {
        if (!(fw->owed & (1u << i)) || (any_healthy && !hop_healthy(&r->hops.hop[i])))
            continue;
        if (s_send_hop(r, i, &fw->k->route, r->cmd, len, msg, count) == 0) {
            sent = true;
            if (fw->p)
                fw->p->needed |= 1u << i;
        }
    }
    if (fw->split)
        zmq_msg_close(&filtered);
    return sent;
}

static void s_every_hop_command(relay_t *r, const route_t *route, const uint8_t *cmd, size_t len)
{
    for (unsigned i = 0; i < r->hops.n; i++)
        s_send_hop(r, i, route, cmd, len, NULL, 0);
}

/* A lagging hop must not stall the others: past RETRY_TIMEOUT_S it lost
 * the batch, and what the others acknowledged goes upstream. */
static void s_duplicate_expire(relay_t *r, pending_t *p, int64_t now)
{
    known_t *k = known_at(r->known, p->source, p->generation);
    if (!p->acked || !k) {
        s_count_expired(r, p, now);
        return;
    }
    uint32_t lagging = p->needed & ~p->acked;
    bool changed = false;
    for (unsigned h = 0; h < r->hops.n; h++)
        if (lagging & (1u << h)) {
            metrics_add(r->metrics, r->hops.hop[h].m.lost, 1);
            changed |= hops_stall(&r->hops, h, now);
        }
    wire_msg_init(r->out, WIRE_ACK, k->id, k->epoch);
    r->out->ack.count = 1;
    r->out->ack.entries[0] = (wire_ack_entry_t){.seq = p->seq, .part = p->part};
    size_t len = s_encode(r);
    if (len && r->send(r->ctx, RELAY_DOWN, &k->route, r->cmd, len, NULL) == 0)
        metrics_add(r->metrics, r->m.acks_routed, 1);
    else
        metrics_add(r->metrics, r->m.unroutable, 1);
    if (changed)
        r->ops->hops_changed(r);
}

static const s_fanout_ops_t s_duplicate_ops = {.name = "duplicate",
                                               .batch = s_duplicate_batch,
                                               .command = s_every_hop_command,
                                               .expire = s_duplicate_expire,
                                               .hops_changed = s_nothing_changes,
                                               .pass_unknown_acks = false};

/* ---- fan-out: flowhash ------------------------------------------------------ */

/* Part i to hop i, or to the next connected hop. A batch split before
 * (by a relay upstream) is not split again: it goes as failover would. */
static bool s_flowhash_batch(relay_t *r, s_fwd_t *fw)
{
    if (fw->ways <= 1)
        return s_failover_batch(r, fw);
    bool sent = false;
    for (unsigned i = 0; i < fw->ways; i++) {
        if (!(fw->owed & (1u << i)))
            continue;
        size_t plen;
        uint32_t count;
        const uint8_t *buf = split_out(r->split, i, &plen, &count);
        size_t len = s_encode_part(r, (uint16_t)i, (uint16_t)fw->ways, count, plen);
        r->key++;
        zmq_msg_t m;
        if (!len || !s_msg_from(&m, buf, plen))
            continue;
        for (unsigned t = 0; t < r->hops.n; t++) {
            unsigned h = (i + t) % r->hops.n;
            if ((t == 0 || r->hops.hop[h].connected) &&
                s_send_hop(r, h, &fw->k->route, r->cmd, len, &m, count) == 0) {
                sent = true;
                break;
            }
        }
        zmq_msg_close(&m);
    }
    return sent;
}

static const s_fanout_ops_t s_flowhash_ops = {.name = "flowhash",
                                              .batch = s_flowhash_batch,
                                              .command = s_every_hop_command,
                                              .expire = s_count_expired,
                                              .hops_changed = s_nothing_changes,
                                              .pass_unknown_acks = false};

/* ---- upstream: from the sources -------------------------------------------- */

/* `out` becomes the batch in `in` with this relay's hop record added. */
static void s_out_batch(relay_t *r)
{
    wire_msg_init(r->out, WIRE_BATCH, r->in->source, r->in->epoch);
    r->out->batch = r->in->batch;
    wire_hop_t *hop = &r->out->batch.hops[r->out->batch.hop_count++];
    snprintf(hop->node, sizeof hop->node, "%s", r->node_id);
    hop->recv_ns = clock_wall_ns();
    hop->relay_seq = r->relay_seq++;
}

static void s_batch(relay_t *r, frames_t *in, known_t *k, int64_t now)
{
    const wire_msg_t *m = r->in;
    zmq_msg_t *payload = frames_payload(in);
    if (zmq_msg_size(payload) != m->batch.payload_len) {
        s_malformed(r, in, WIRE_ERR_FRAMING);
        return;
    }
    metrics_add(r->metrics, r->m.batches_in, 1);
    metrics_add(r->metrics, r->m.packets_in, m->batch.packet_count);
    metrics_add(r->metrics, r->m.bytes_in, m->batch.payload_len);
    if (m->batch.hop_count >= WIRE_HOPS_MAX) {
        metrics_add(r->metrics, r->m.loops, 1);
        return;
    }
    if (r->split && !k->hello) {
        /* its link types are needed: have it say HELLO (through us) again */
        metrics_add(r->metrics, r->m.unknown_sources, 1);
        wire_msg_init(r->out, WIRE_REFUSE, m->source, m->epoch);
        r->out->refuse.code = WIRE_REFUSE_UNKNOWN_SOURCE;
        snprintf(r->out->refuse.reason, sizeof r->out->refuse.reason,
                 "relay %s has not seen this source's HELLO", r->node_id);
        s_send_down(r, &k->route, s_encode(r));
        return;
    }
    bool split = r->split && m->batch.parts == 1; /* a split batch is not split again */
    const uint8_t *data = zmq_msg_data(payload);
    size_t dlen = zmq_msg_size(payload);
    if (split && compress_is_packed(data, dlen)) {
        /* FILTER and flowhash need the packets: decompressed (§4.1) into
         * the relay's buffer, the parts go on uncompressed (or packed
         * again by COMPRESS) */
        uint32_t n;
        wire_err_t err = compress_peek(data, dlen, &n);
        if (err == WIRE_OK && !s_room(&r->plain, &r->plain_cap, n)) {
            log_error("out of memory decompressing a batch");
            return; /* its source resends */
        }
        if (err == WIRE_OK)
            err = compress_unpack(r->zc, data, dlen, r->plain, n);
        if (err != WIRE_OK) {
            s_malformed(r, in, err);
            return;
        }
        metrics_add(r->metrics, r->m.unpacked, 1);
        data = r->plain;
        dlen = n;
    }
    if (split &&
        wire_packets_check(data, dlen, m->batch.packet_count, k->nifaces, NULL, NULL) != WIRE_OK) {
        s_malformed(r, in, WIRE_ERR_CAPLEN);
        return;
    }
    s_out_batch(r);
    uint32_t kidx = known_index(r->known, k);
    pending_t *p = pending_find(r->pending, kidx, k->generation, m->batch.seq, m->batch.part);
    bool resend = p != NULL;
    if (resend)
        metrics_add(r->metrics, r->m.resends, 1);
    unsigned ways = r->opts.fanout == RELAY_FLOWHASH && split ? r->hops.n : 1;
    if (split) {
        if (split_batch(r->split, data, dlen, m->batch.packet_count, k->linktype, k->nifaces) < 0) {
            log_error("out of memory splitting a batch");
            return; /* its source resends */
        }
        metrics_add(r->metrics, r->m.filtered, split_filtered(r->split));
    }
    if (!p) {
        p = pending_add(r->pending, kidx, k->generation, m->batch.seq, m->batch.part, now);
        if (p) {
            k->pending++;
            p->packets = m->batch.packet_count;
            p->any =
                r->opts.fanout == RELAY_FAILOVER || (r->opts.fanout == RELAY_FLOWHASH && !split);
            p->split = ways > 1;
            if (p->split)
                p->needed = ways >= 32 ? UINT32_MAX : (1u << ways) - 1;
        }
    }
    /* what still has to go: everything the first time; on a resend, what
     * is not acknowledged yet */
    s_fwd_t fw = {.k = k,
                  .p = p,
                  .owed = resend ? p->needed & ~p->acked : UINT32_MAX,
                  .payload = payload,
                  .split = split,
                  .ways = ways};
    if (!r->ops->batch(r, &fw)) {
        metrics_add(r->metrics, r->m.dropped, 1);
        if (p && !p->acked && !p->needed)
            s_pending_remove(r, p);
    } else if (p) {
        pending_sent(r->pending, p, now);
    }
    metrics_set(r->metrics, r->m.pending, (double)pending_count(r->pending));
}

/* Why a source was not taken: the index of its counter. */
enum { S_REFUSED_PEER_LIMIT = 1, S_REFUSED_FULL, S_REFUSED_RATE };

/* A new source from the sender of `in` (r->in): its allowance of new
 * sources, its own limit, room in the table. The entry, or NULL after
 * counting and logging (once per peer) why not. */
static known_t *s_admit(relay_t *r, const frames_t *in, int64_t now)
{
    const wire_msg_t *m = r->in;
    uint64_t peer = frames_peer(in, r->peer_seed);
    int refused = S_REFUSED_RATE;
    if (peers_admit(r->peers, peer, now)) {
        known_refusal_t why;
        known_t *k =
            known_add(r->known, m->source, m->epoch, peer, r->opts.max_sources_per_peer, &why);
        if (k)
            return k;
        refused = why == KNOWN_PEER_LIMIT ? S_REFUSED_PEER_LIMIT : S_REFUSED_FULL;
    }
    metrics_add(r->metrics, r->m.refused[refused], 1);
    char what[WIRE_NAME_MAX + 160];
    if (refused == S_REFUSED_PEER_LIMIT)
        snprintf(what, sizeof what,
                 "source %s: this peer announced %zu sources, all with batches in flight "
                 "(MAX_SOURCES_PER_PEER)",
                 m->source, r->opts.max_sources_per_peer);
    else if (refused == S_REFUSED_FULL)
        snprintf(what, sizeof what,
                 "source %s: %zu sources known, all with batches in flight (MAX_SOURCES)",
                 m->source, r->opts.max_sources);
    else
        snprintf(what, sizeof what,
                 "source %s: more than %u new sources a second (HELLO_RATE_PER_PEER)", m->source,
                 r->opts.hello_rate);
    rejects_note(&r->rejects, rejects_peer(in),
                 refused == S_REFUSED_PEER_LIMIT ? REJECTS_PEER_LIMIT
                 : refused == S_REFUSED_FULL     ? REJECTS_FULL
                                                 : REJECTS_HELLO_RATE,
                 what, now);
    return NULL;
}

void relay_on_upstream(relay_t *self, frames_t *in, int64_t now_ms)
{
    relay_t *r = self;
    size_t len;
    const uint8_t *cmd = frames_command(in, &len);
    if (!cmd || in->envelope >= FRAMES_ENVELOPE_MAX) {
        s_malformed(r, in, WIRE_ERR_FRAMING);
        return;
    }
    wire_err_t err = wire_decode(cmd, len, r->in);
    if (err != WIRE_OK) {
        s_malformed(r, in, err);
        return;
    }
    const wire_msg_t *m = r->in;
    zmq_msg_t *payload = frames_payload(in);
    if ((m->type == WIRE_BATCH) != (payload != NULL)) {
        s_malformed(r, in, WIRE_ERR_FRAMING);
        return;
    }
    if (m->type != WIRE_HELLO && m->type != WIRE_BATCH && m->type != WIRE_HEARTBEAT &&
        m->type != WIRE_END && m->type != WIRE_STATS && m->type != WIRE_DEAD) {
        s_malformed(r, in, WIRE_ERR_TYPE);
        return;
    }
    if (r->opts.trust && !trust_allows(r->opts.trust, in->user_id, m->source)) {
        /* a spoofed source: nothing of it is remembered or passed on */
        metrics_add(r->metrics, r->m.identity, 1);
        char what[WIRE_NAME_MAX + FRAMES_USER_ID_MAX + 96];
        snprintf(what, sizeof what, "key %s may not speak for source %s",
                 *in->user_id ? in->user_id : "(none)", m->source);
        rejects_note(&r->rejects, rejects_peer(in), REJECTS_IDENTITY, what, clock_mono_ms());
        return;
    }
    known_t *k = known_get(r->known, m->source, m->epoch);
    if (!k && !(k = s_admit(r, in, now_ms)))
        return;
    frames_route(in, &k->route);
    k->heard_ms = now_ms;
    if (m->type == WIRE_HELLO) {
        k->hello = true;
        k->nifaces = m->hello.iface_count;
        for (unsigned i = 0; i < k->nifaces; i++)
            k->linktype[i] = m->hello.ifaces[i].linktype;
        /* §3.8: FEATURES go back to a source that asked; with COMPRESS,
         * every HELLO asks, so that the relay learns which hops take it */
        char *d = r->in->hello.description;
        k->asked_zstd = wire_compress_tag_take(d);
        k->hello_zstd = k->asked_zstd;
        k->zstd_hops = 0;
        if (r->opts.compress_level > 0 && !k->asked_zstd) {
            if (wire_compress_tag_add(d) == 0) {
                k->hello_zstd = true;
                memcpy(r->out, r->in, sizeof *r->out);
                len = s_encode(r);
                cmd = r->cmd;
                if (!len)
                    return;
            }
        }
    }
    if (m->type == WIRE_BATCH)
        s_batch(r, in, k, now_ms);
    else
        r->ops->command(r, &k->route, cmd, len);
}

/* ---- downstream: from a next hop ------------------------------------------- */

/* The entry an acknowledgement from hop `h` settles part of, and which bit. */
static pending_t *s_acked_entry(relay_t *r, const known_t *k, unsigned h, const wire_ack_entry_t *e,
                                uint32_t *bit)
{
    if (!k)
        return NULL;
    uint32_t kidx = known_index(r->known, k);
    pending_t *p = pending_find(r->pending, kidx, k->generation, e->seq, e->part);
    *bit = 1u << h;
    if (p)
        return p;
    /* a part of a batch this relay split: its entry is the whole batch's */
    if (e->part >= PENDING_HOPS_MAX)
        return NULL;
    p = pending_find(r->pending, kidx, k->generation, e->seq, 0);
    if (!p || !p->split)
        return NULL;
    *bit = 1u << e->part;
    return p;
}

/* Acknowledges upstream what is settled among the entries of an ACK from
 * hop `h`. */
static void s_on_ack(relay_t *r, frames_t *in, unsigned h, int64_t now)
{
    const wire_msg_t *m = r->in;
    known_t *k = known_get(r->known, m->source, m->epoch);
    if (hops_acknowledged(&r->hops, h))
        r->ops->hops_changed(r);
    unsigned ndone = 0;
    for (unsigned e = 0; e < m->ack.count; e++) {
        const wire_ack_entry_t *entry = &m->ack.entries[e];
        metrics_add(r->metrics, r->hops.hop[h].m.acks, 1);
        uint32_t bit;
        pending_t *p = s_acked_entry(r, k, h, entry, &bit);
        if (!p) {
            metrics_add(r->metrics, r->m.unknown_acks, 1);
            if (r->ops->pass_unknown_acks)
                r->done[ndone++] = *entry;
            continue;
        }
        metrics_observe(r->metrics, r->hops.hop[h].m.latency, (double)(now - p->sent_ms) / 1000.0);
        p->acked |= bit;
        if (pending_done(p)) {
            r->done[ndone++] = (wire_ack_entry_t){.seq = p->seq, .part = p->part};
            s_pending_remove(r, p);
        }
    }
    metrics_set(r->metrics, r->m.pending, (double)pending_count(r->pending));
    if (!ndone)
        return;
    wire_msg_init(r->out, WIRE_ACK, m->source, m->epoch);
    r->out->ack.count = (uint16_t)ndone;
    memcpy(r->out->ack.entries, r->done, ndone * sizeof *r->done);
    route_t route;
    frames_route(in, &route);
    size_t len = s_encode(r);
    if (len && r->send(r->ctx, RELAY_DOWN, &route, r->cmd, len, NULL) == 0)
        metrics_add(r->metrics, r->m.acks_routed, ndone);
    else
        metrics_add(r->metrics, r->m.unroutable, 1);
}

void relay_on_downstream(relay_t *self, unsigned hop, frames_t *in, int64_t now_ms)
{
    relay_t *r = self;
    size_t len;
    const uint8_t *cmd = frames_command(in, &len);
    if (!cmd || in->envelope == 0 || frames_payload(in) || hop >= r->hops.n) {
        s_malformed(r, in, WIRE_ERR_FRAMING);
        return;
    }
    wire_err_t err = wire_decode(cmd, len, r->in);
    if (err != WIRE_OK) {
        s_malformed(r, in, err);
        return;
    }
    if (r->in->type == WIRE_ACK) {
        s_on_ack(r, in, hop, now_ms);
        return;
    }
    if (r->in->type != WIRE_WELCOME && r->in->type != WIRE_REFUSE && r->in->type != WIRE_FEATURES) {
        s_malformed(r, in, WIRE_ERR_TYPE);
        return;
    }
    /* §3.8: which next hops take compressed batches; FEATURES only to a
     * source that asked for them itself */
    known_t *k = known_get(r->known, r->in->source, r->in->epoch);
    hop_t *h = &r->hops.hop[hop];
    if (r->in->type == WIRE_FEATURES) {
        bool zstd = r->in->features.flags & WIRE_FEATURE_ZSTD;
        if (zstd && !h->zstd && r->opts.compress_level > 0)
            log_info("next hop %s takes compressed batches (COMPRESS)", h->endpoint);
        h->zstd |= zstd;
        if (k && zstd)
            k->zstd_hops |= 1u << hop;
        if (!k || !k->asked_zstd)
            return;
    } else if (r->in->type == WIRE_WELCOME && k && k->hello_zstd && !(k->zstd_hops & (1u << hop))) {
        if (h->zstd && r->opts.compress_level > 0)
            log_warn("next hop %s no longer takes compressed batches: sending them "
                     "uncompressed (COMPRESS)",
                     h->endpoint);
        h->zstd = false;
    }
    route_t route;
    frames_route(in, &route);
    if (r->send(r->ctx, RELAY_DOWN, &route, cmd, len, NULL) < 0)
        metrics_add(r->metrics, r->m.unroutable, 1);
}

/* ---- time and links --------------------------------------------------------- */

/* A connection to a next hop broke and took what it carried: every source
 * with a batch forwarded on it and not acknowledged is asked to say HELLO
 * and send what is unacknowledged again now (REFUSE code 1, proto §3.2),
 * rather than after its ACK_TIMEOUT_MS with backoff — by then the merge
 * window may have passed it. Once per source. */
static void s_ask_resend(relay_t *r, uint32_t lost)
{
    uint64_t ask = ++r->asks;
    unsigned sources = 0;
    for (pending_t *p = pending_oldest(r->pending); p; p = pending_after(r->pending, p)) {
        /* a split entry's bits are parts, not hops: any part not acknowledged */
        uint32_t owed = p->needed & ~p->acked;
        if (!(p->split ? owed : owed & lost))
            continue;
        known_t *k = known_at(r->known, p->source, p->generation);
        if (!k || k->asked == ask)
            continue;
        k->asked = ask;
        wire_msg_init(r->out, WIRE_REFUSE, k->id, k->epoch);
        r->out->refuse.code = WIRE_REFUSE_UNKNOWN_SOURCE;
        snprintf(r->out->refuse.reason, sizeof r->out->refuse.reason,
                 "relay %s lost its connection to a next hop: send again", r->node_id);
        s_send_down(r, &k->route, s_encode(r));
        metrics_add(r->metrics, r->m.resend_requests, 1);
        sources++;
    }
    if (sources)
        log_info("asked %u source(s) to send again what a broken connection carried", sources);
}

void relay_on_link(relay_t *self, unsigned hop, bool up, int64_t now_ms)
{
    (void)now_ms;
    if (hop >= self->hops.n)
        return;
    bool was = self->hops.hop[hop].connected;
    if (hops_set_connected(&self->hops, hop, up))
        self->ops->hops_changed(self);
    if (was && !up)
        self->lost_hops |= 1u << hop;
    /* the resends need a way on: another hop now, or this one once it is back */
    if (self->lost_hops && hops_any_healthy(&self->hops)) {
        s_ask_resend(self, self->lost_hops);
        self->lost_hops = 0;
    }
}

void relay_tick(relay_t *self, int64_t now_ms)
{
    relay_t *r = self;
    bool changed = hops_probe(&r->hops, now_ms);
    pending_t *p;
    /* hops that stopped acknowledging: each forwarding is looked at once */
    while ((p = pending_oldest_sent(r->pending)) && now_ms - p->sent_ms >= r->opts.hop_timeout_ms) {
        if (!p->split && !p->acked)
            for (unsigned h = 0; h < r->hops.n; h++)
                if (p->needed & (1u << h))
                    changed |= hops_stall(&r->hops, h, now_ms);
        pending_unwatch(r->pending, p);
    }
    if (changed)
        r->ops->hops_changed(r);
    while ((p = pending_oldest(r->pending)) && now_ms - p->first_ms >= r->opts.retry_ms) {
        r->ops->expire(r, p, now_ms);
        s_pending_remove(r, p);
    }
    metrics_set(r->metrics, r->m.pending, (double)pending_count(r->pending));
}

int64_t relay_next_deadline(const relay_t *self)
{
    int64_t t = hops_next_probe(&self->hops);
    pending_t *p = pending_oldest_sent(self->pending);
    if (p && p->sent_ms + self->opts.hop_timeout_ms < t)
        t = p->sent_ms + self->opts.hop_timeout_ms;
    p = pending_oldest(self->pending);
    if (p && p->first_ms + self->opts.retry_ms < t)
        t = p->first_ms + self->opts.retry_ms;
    return t;
}
