/*
 * agent — the capture agent's state machine.
 *
 * Data flow: source (source-live.c / source-file.c / source-poip.c) → outbox (batches,
 * custody, resends) → send callback (HELLO, BATCH, HEARTBEAT, END) — and
 * outbox → dlq when time runs out or the collector refuses the source.
 * STATS (§3.7) tells the collector the counters behind its files'
 * interface statistics: libpcap's, packets sent, packets dead-lettered.
 * Replies (WELCOME, REFUSE, ACK) decode into `in`; what the agent sends is
 * encoded from `out`: a reply never overwrites the message it answers.
 */
#include "agent.h"

#include "clock.h"
#include "compress.h"
#include "decode.h"
#include "dlq.h"
#include "log.h"
#include "outbox.h"
#include "seqset.h"
#include "trailer.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* A live source promises nothing older than this much before the moment it
 * found the kernel's buffer empty. */
#define S_LIVE_SLACK_NS 20000000u
/* Packets read per pass at most, so that replies are handled in between. */
#define S_READ_MAX 4096
/* Seqs a dead-letter file may jump ahead while batches are held. */
#define S_REPLAY_GAP_MAX 65536
/* How often a live source's kernel counters are read. */
#define S_STATS_MS 1000
/* Reading a file runs this many closed batches ahead of the window at
 * most (they wait while the window is full): enough to refill the window
 * at once, little enough to stay in cache. */
#define S_READ_AHEAD 4
/* Ranges of dead-lettered seqs remembered per epoch for DEAD (§3.9);
 * beyond, the oldest is forgotten (counted): a collector then waits for
 * those batches as it would without DEAD. */
#define S_DEAD_RANGES 256
/* The size histogram by family takes one packet in this many (the family
 * is decoded only for those): a sample, said so in its help text. */
#define S_SIZE_SAMPLE 16

typedef struct {
    metric_id_t packets, bytes, truncated, size[3], batches_sent, batches_acked, batches_resent,
        batches_dlq, packets_dlq, dlq_failed, backpressure, unacked_bytes, unacked_batches, rtt,
        malformed, refused, acks_unknown, kernel_drops, if_drops, received, connected,
        decap_dropped[DECAP_NREASONS], no_switch_ts, zstd_in, zstd_out, dead_forgotten;
} s_metrics_t;

struct agent_t {
    agent_opts_t opts;
    char node_id[WIRE_NAME_MAX + 1];
    char description[WIRE_TEXT_MAX + 1];
    char endpoint[256];
    source_t *source;     /* NULL when replaying dead letters */
    dlq_reader_t *replay; /* or NULL */
    bool replay_have;     /* `rb` was read and waits for room */
    dlq_batch_t rb;
    wire_iface_t iface; /* what HELLO says of the one interface */
    outbox_t *outbox;
    dlq_t *dlq;
    metrics_t *metrics;
    agent_send_fn send;
    void *ctx;
    wire_msg_t *in, *out; /* decoded replies; messages being encoded */
    uint8_t *cmd;         /* out's encoding, WIRE_COMMAND_MAX */
    uint16_t linktype;
    int outer_linktype;      /* the source's own, under DECAP */
    uint8_t *inner;          /* DECAP: an inner IP packet given an Ethernet header */
    uint8_t *unheadered;     /* header:arista7280 with TRAILER=strip: the frame without it */
    uint64_t watermark;      /* nothing older will be read */
    uint64_t sent_watermark; /* the newest watermark of a batch sent */
    int64_t last_send_ms, last_stats_ms, hello_sent_ms;
    bool hello_pending; /* HELLO sent, no WELCOME yet */
    bool hello_unsent;  /* the last HELLO could not be sent (no connection): it goes first */
    bool welcomed;      /* the collector took this (source, epoch) once: may hold some of it */
    bool rehello;       /* batches were refused as unknown: resend all on WELCOME */
    bool eof, failed, refused, finished, end_sent;
    bool more;                /* the source may have packets right now */
    bool room_blocked;        /* reading paused for room (memory, read-ahead) */
    unsigned sample_in;       /* packets until the next one the size histogram takes */
    bool send_failing;        /* the last send failed (logged once) */
    int64_t stop_deadline_ms; /* 0: not stopping */
    bool link_up, link_warned, link_ever_up;
    int64_t link_down_ms; /* since when there is no connection */
    uint64_t dead_batches, dead_packets, packets;
    uint64_t dead_low; /* lowest seq dead-lettered (or lost), UINT64_MAX: none */
    /* DEAD (§3.9): the seqs dead-lettered this epoch, and those the
     * collector has not been told of; dead_resend: tell it all of them
     * (a WELCOME came: it may know none) */
    seqset_t dead_all, dead_new;
    bool dead_resend;
    /* STATE_DIR (resume.h): the state, and while a continued epoch builds
     * its unacknowledged batches again, where the reading stands */
    resume_t *resume;
    uint64_t index;                    /* packets read from the source so far */
    uint64_t skip_to;                  /* packets before this index were released */
    uint64_t rebuild_seq, rebuild_end; /* recorded batches still to go through */
    uint32_t seg_left;                 /* packets of batch rebuild_seq still to read */
    bool seg_released, source_ended;
    source_stats_t last_stats;
    /* STATS: the counters as the metrics have them (kernel ones summed from
     * the same deltas), and what was last sent */
    wire_stats_t stats, stats_sent;
    bool stats_unsent; /* stats_sent says nothing (none yet, or a new WELCOME) */
    int64_t stats_sent_ms;
    /* COMPRESS: the context, a buffer for one compressed batch (grown to
     * the largest batch), and whether the collector said FEATURES (zstd)
     * since the last HELLO */
    compress_t *zc;
    uint8_t *zbuf;
    size_t zcap;
    bool zstd_ok, zstd_told;
    s_metrics_t m;
};

static void s_metrics_register(agent_t *a)
{
    metrics_t *r = a->metrics;
    s_metrics_t *m = &a->m;
    /* which source this agent is, so that a scrape (tapmesh-top, a
     * dashboard) can name it as the collector does (source="...") */
    char esc[160], source[192];
    snprintf(source, sizeof source, "source=\"%s\"",
             metrics_label_escape(a->opts.node_id, esc, sizeof esc));
    metrics_set(r,
                metrics_gauge(r, "tapmesh_capture_source_info",
                              "1, labelled with the source id this agent sends for (NODE_ID)",
                              source),
                1);
    m->packets = metrics_counter(r, "tapmesh_capture_packets_total", "Packets captured", NULL);
    m->bytes = metrics_counter(r, "tapmesh_capture_bytes_total",
                               "Bytes of packet data captured (captured length)", NULL);
    m->truncated = metrics_counter(r, "tapmesh_capture_truncated_packets_total",
                                   "Packets cut to 262144 bytes, the protocol's limit", NULL);
    static const double size_bounds[] = {64, 128, 256, 512, 1024, 1518, 2048, 4096, 9216, 65535};
    static const char *const families[] = {"family=\"other\"", "family=\"ipv4\"",
                                           "family=\"ipv6\""};
    for (int f = 0; f < 3; f++)
        m->size[f] = metrics_histogram(
            r, "tapmesh_capture_packet_size_bytes",
            "Packet length on the wire, by address family, of a sample: the first packet "
            "captured and every 16th after it (tapmesh_capture_packets_total counts them all)",
            families[f], size_bounds, sizeof size_bounds / sizeof *size_bounds);
    m->batches_sent =
        metrics_counter(r, "tapmesh_capture_batches_sent_total", "Batches sent (first send)", NULL);
    m->batches_acked = metrics_counter(r, "tapmesh_capture_batches_acked_total",
                                       "Batches acknowledged by the collector", NULL);
    m->batches_resent =
        metrics_counter(r, "tapmesh_capture_batches_resent_total",
                        "Batches sent again after the acknowledgement timeout", NULL);
    m->batches_dlq = metrics_counter(r, "tapmesh_capture_batches_dead_lettered_total",
                                     "Batches written to the dead-letter file", NULL);
    m->packets_dlq = metrics_counter(r, "tapmesh_capture_packets_dead_lettered_total",
                                     "Packets written to the dead-letter file", NULL);
    m->dlq_failed = metrics_counter(r, "tapmesh_capture_dead_letter_failures_total",
                                    "Batches lost because the dead-letter file could not be "
                                    "written",
                                    NULL);
    m->backpressure = metrics_counter(r, "tapmesh_capture_send_blocked_total",
                                      "Sends deferred because the next hop's queue was full", NULL);
    m->dead_forgotten = metrics_counter(
        r, "tapmesh_capture_dead_forgotten_batches_total",
        "Dead-lettered batches no longer named in DEAD (more than 256 ranges of them): the "
        "collector waits for them as for any gap",
        NULL);
    m->unacked_bytes = metrics_gauge(r, "tapmesh_capture_unacked_bytes",
                                     "Bytes held for batches not yet acknowledged", NULL);
    m->unacked_batches = metrics_gauge(r, "tapmesh_capture_unacked_batches",
                                       "Batches held, not yet acknowledged", NULL);
    m->connected = metrics_gauge(r, "tapmesh_capture_next_hop_up",
                                 "1 while the connection to the next hop is up", NULL);
    static const double rtt_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    m->rtt = metrics_histogram(r, "tapmesh_capture_ack_rtt_seconds",
                               "Time from a batch's first send to its acknowledgement", NULL,
                               rtt_bounds, sizeof rtt_bounds / sizeof *rtt_bounds);
    m->malformed = metrics_counter(r, "tapmesh_capture_malformed_messages_total",
                                   "Messages from upstream dropped as malformed", NULL);
    m->refused = metrics_counter(r, "tapmesh_capture_refused_total",
                                 "REFUSE answers received from the collector", NULL);
    m->acks_unknown = metrics_counter(r, "tapmesh_capture_acks_unknown_total",
                                      "Acknowledgements for batches no longer held", NULL);
    if (a->opts.live && a->source && source_has_stats(a->source)) {
        m->received = metrics_counter(r, "tapmesh_capture_kernel_received_packets_total",
                                      "Packets the kernel passed the filter (pcap_stats)", NULL);
        m->kernel_drops = metrics_counter(r, "tapmesh_capture_kernel_dropped_packets_total",
                                          "Packets the kernel dropped: its buffer was full "
                                          "(pcap_stats)",
                                          NULL);
        m->if_drops = metrics_counter(r, "tapmesh_capture_interface_dropped_packets_total",
                                      "Packets the interface or driver dropped (pcap_stats)", NULL);
    } else {
        m->received = m->kernel_drops = m->if_drops = -1;
    }
    if (a->opts.decap != DECAP_OFF) {
        for (int k = DECAP_OK + 1; k < DECAP_NREASONS; k++) {
            char label[64];
            snprintf(label, sizeof label, "reason=\"%s\"", decap_reason_name((decap_reason_t)k));
            m->decap_dropped[k] = metrics_counter(
                r, "tapmesh_capture_decap_dropped_packets_total",
                "Packets with no inner frame to send (DECAP), by reason: outer, fragment, other "
                "(not the tunnel asked for), header (cut short or bad), id (not DECAP_ID)",
                label);
        }
    }
    if (a->opts.tstamp_erspan || a->opts.tstamp_trailer || a->opts.tstamp_header)
        m->no_switch_ts = metrics_counter(
            r, "tapmesh_capture_switch_timestamp_missing_total",
            "Packets sent with the capture time because they carried no usable switch "
            "timestamp (TSTAMP_SOURCE): no ERSPAN III timestamp, no trailer or Arista 7280 "
            "header, or cut by the snaplen",
            NULL);
    if (a->opts.compress_level > 0) {
        m->zstd_in = metrics_counter(r, "tapmesh_capture_uncompressed_bytes_total",
                                     "COMPRESS: payload bytes of the batches sent (resends "
                                     "included), before compression",
                                     NULL);
        m->zstd_out = metrics_counter(r, "tapmesh_capture_compressed_bytes_total",
                                      "COMPRESS: payload bytes of the same batches as sent "
                                      "(compressed, or plain when the collector does not take "
                                      "compressed batches or a batch would not get smaller)",
                                      NULL);
    }
}

/* DECAP: the interface announced carries the inner frames; its
 * description says which tunnel and, when DECAP_ID fixes it, which VNI, key
 * or session (the wire has no per-packet comment to carry one that
 * varies). */
static int s_decap_iface(agent_t *a, wire_iface_t *f)
{
    a->outer_linktype = f->linktype;
    f->linktype = (uint16_t)decap_linktype(a->opts.decap);
    char tail[96];
    const char *kind = decap_kind_name(a->opts.decap);
    if (a->opts.decap_id_set) {
        const char *id = a->opts.decap == DECAP_VXLAN    ? "vni"
                         : a->opts.decap == DECAP_ERSPAN ? "session"
                         : a->opts.decap == DECAP_AUTO   ? "id"
                                                         : "key";
        snprintf(tail, sizeof tail, "; decap %s %s %" PRIu32, kind, id, a->opts.decap_id);
    } else {
        snprintf(tail, sizeof tail, "; decap %s", kind);
    }
    size_t used = strlen(f->description), room = sizeof f->description - 1;
    size_t tlen = strlen(tail);
    if (used + tlen > room)
        used = room > tlen ? room - tlen : 0;
    snprintf(f->description + used, sizeof f->description - used, "%s", tail);
    if (f->linktype == 1) {
        a->inner = malloc(WIRE_SNAPLEN_MAX);
        if (!a->inner)
            return -ENOMEM;
    }
    return 0;
}

/* The description's tags (§3.1): this host's OS and the filter in force. */
static void s_iface_tags(wire_iface_t *f, const char *filter)
{
    struct utsname u;
    char os[2 * sizeof u.release + 2] = "";
    if (uname(&u) == 0)
        snprintf(os, sizeof os, "%.64s %.64s", u.sysname, u.release);
    if (wire_iface_tags_append(f->description, os, filter) < 0)
        log_warn("the filter is too long for the interface description (%d bytes at most in "
                 "all): the output's if_filter will not have it",
                 WIRE_TEXT_MAX);
}

agent_t *agent_new(source_t **source_p, const agent_opts_t *opts, metrics_t *metrics,
                   agent_send_fn send, void *ctx)
{
    agent_t *self = calloc(1, sizeof *self);
    if (!self)
        goto err;
    self->opts = *opts;
    snprintf(self->node_id, sizeof self->node_id, "%s", opts->node_id);
    snprintf(self->description, sizeof self->description, "%s",
             opts->description && *opts->description ? opts->description
                                                     : "tapmesh-capture " TAPMESH_VERSION);
    snprintf(self->endpoint, sizeof self->endpoint, "%s", opts->endpoint ? opts->endpoint : "");
    self->opts.node_id = self->node_id;
    self->opts.description = self->description;
    self->opts.endpoint = self->endpoint;
    self->opts.dlq_dir = NULL; /* not kept: the dlq has its own copy */
    self->source = *source_p;
    *source_p = NULL;
    self->resume = opts->resume;
    self->opts.resume = NULL;
    self->replay = opts->replay;
    self->opts.replay = NULL;
    self->opts.replay_info = NULL;
    self->metrics = metrics;
    self->send = send;
    self->ctx = ctx;
    self->dead_low = UINT64_MAX;
    self->sample_in = 1; /* the first packet */
    wire_iface_t *f = &self->iface;
    if (self->replay) {
        const dlq_info_t *info = opts->replay_info;
        f->linktype = info->linktype;
        f->snaplen = info->snaplen;
        wire_ifname_sanitize(info->ifname, f->name);
        snprintf(f->description, sizeof f->description, "%s", info->if_description);
        /* the file says nothing of the batches it does not hold: claim none */
        self->dead_low = 0;
        self->welcomed = true; /* its batches may have been written before */
    } else {
        f->linktype = (uint16_t)source_linktype(self->source);
        uint32_t snaplen = source_snaplen(self->source);
        f->snaplen = snaplen > WIRE_SNAPLEN_MAX ? WIRE_SNAPLEN_MAX : snaplen;
        wire_ifname_sanitize(source_name(self->source), f->name);
        snprintf(f->description, sizeof f->description, "%s", source_description(self->source));
        if (opts->decap != DECAP_OFF && s_decap_iface(self, f) < 0)
            goto err;
        s_iface_tags(f, opts->if_filter);
    }
    self->opts.if_filter = NULL; /* not kept: HELLO has it */
    self->stats_unsent = true;
    self->stats.flags = opts->live ? WIRE_STATS_KERNEL : 0;
    self->linktype = f->linktype;
    if (opts->tstamp_header && opts->trailer_strip) {
        self->unheadered = malloc(WIRE_SNAPLEN_MAX);
        if (!self->unheadered)
            goto err;
    }
    seqset_init(&self->dead_all, S_DEAD_RANGES);
    seqset_init(&self->dead_new, S_DEAD_RANGES);
    self->in = malloc(sizeof *self->in);
    self->out = malloc(sizeof *self->out);
    self->cmd = malloc(WIRE_COMMAND_MAX);
    self->outbox = outbox_new(opts->batch_bytes, opts->buffer_bytes, opts->window,
                              opts->ack_timeout_ms, opts->backoff_max_ms);

    /* what s_hello says, so that a replay of the dead letters says it again */
    dlq_identity_t id = {.source = self->node_id,
                         .epoch = opts->epoch,
                         .linktype = self->linktype,
                         .snaplen = f->snaplen,
                         .ifname = f->name,
                         .if_description = f->description,
                         .hello_description = self->description};
    self->dlq = dlq_new(opts->dlq_dir, &id);
    if (!self->in || !self->out || !self->cmd || !self->outbox || !self->dlq)
        goto err;
    if (opts->compress_level > 0 && !(self->zc = compress_new(opts->compress_level)))
        goto err;
    if (self->resume && resume_mode(self->resume) == RESUME_CONTINUE) {
        /* go through the recorded batches again from the lowest one not
         * released: those released are skipped, the others built again */
        self->skip_to = resume_first_packet(self->resume);
        self->rebuild_seq = resume_first_seq(self->resume);
        self->rebuild_end = resume_next_seq(self->resume);
        self->dead_low = resume_dead_low(self->resume);
        self->welcomed = true; /* before the restart */
        outbox_start_at(self->outbox, self->rebuild_seq);
        outbox_set_index(self->outbox, self->skip_to);
    }
    s_metrics_register(self);
    return self;
err:
    if (self) {
        agent_destroy(&self);
    } else {
        source_close(source_p);
        resume_t *resume = opts->resume;
        resume_close(&resume);
        dlq_reader_t *replay = opts->replay;
        dlq_reader_close(&replay);
    }
    return NULL;
}

void agent_destroy(agent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    agent_t *self = *self_p;
    dlq_destroy(&self->dlq);
    resume_close(&self->resume);
    outbox_destroy(&self->outbox);
    source_close(&self->source);
    dlq_reader_close(&self->replay);
    seqset_free(&self->dead_all);
    seqset_free(&self->dead_new);
    free(self->in);
    free(self->out);
    free(self->cmd);
    free(self->inner);
    free(self->unheadered);
    compress_destroy(&self->zc);
    free(self->zbuf);
    free(self);
    *self_p = NULL;
}

/* ---- STATE_DIR ------------------------------------------------------- */

/* A state that cannot be kept must not be trusted by the next start (it
 * would miss batches this run numbered): removed, the next start begins a
 * new epoch. */
static void s_resume_lost(agent_t *a)
{
    log_error("%s; going on without it (a restart will send the file again as a new epoch)",
              resume_error(a->resume));
    unlink(resume_path(a->resume));
    resume_close(&a->resume);
}

/* Records batch `b` before it first leaves (sent or dead-lettered). */
static void s_resume_batch(agent_t *a, const batch_t *b)
{
    if (a->resume && b->sends == 0 &&
        resume_batch(a->resume, b->seq, b->first_index, b->packets) < 0)
        s_resume_lost(a);
}

static void s_resume_released(agent_t *a, uint64_t seq, bool acked)
{
    if (a->resume && resume_released(a->resume, seq, acked) < 0)
        s_resume_lost(a);
}

/* A continued epoch, packet `index` of the file: true when it is skipped
 * (released before the restart). Packets of a batch not released are
 * added as ever; s_rebuilt closes the batch after its last one. */
static bool s_rebuild_skips(agent_t *a, uint64_t index)
{
    if (index < a->skip_to)
        return true;
    if (a->rebuild_seq >= a->rebuild_end)
        return false;
    if (a->seg_left == 0) {
        uint32_t count;
        bool released;
        if (!resume_batch_of(a->resume, a->rebuild_seq, &count, &released)) {
            uint64_t first = resume_first_seq(a->resume);
            if (a->rebuild_seq >= first) {
                a->rebuild_end = a->rebuild_seq; /* cannot happen: resume.c checks */
                return false;
            }
            /* acknowledged since the restart while reading paused, and
             * forgotten: the state keeps batches from its first unreleased
             * one on. Everything before that one is released. */
            while (a->rebuild_seq < first) {
                outbox_skip(a->outbox);
                a->rebuild_seq++;
            }
            a->skip_to = resume_first_packet(a->resume);
            outbox_set_index(a->outbox, a->skip_to);
            return s_rebuild_skips(a, index);
        }
        a->seg_left = count;
        a->seg_released = released;
    }
    if (!a->seg_released)
        return false;
    if (--a->seg_left == 0) {
        outbox_skip(a->outbox);
        a->rebuild_seq++;
    }
    outbox_set_index(a->outbox, index + 1);
    return true;
}

/* After a packet was added while rebuilding: the batch closes after its
 * recorded last packet, under its recorded seq. */
static void s_rebuilt(agent_t *a)
{
    if (a->rebuild_seq >= a->rebuild_end || a->seg_released || --a->seg_left > 0)
        return;
    outbox_close(a->outbox);
    if (outbox_next_seq(a->outbox) != a->rebuild_seq + 1) {
        log_error("STATE_DIR: batch %" PRIu64 " does not come out as recorded; stopping",
                  a->rebuild_seq);
        a->failed = true;
        a->rebuild_end = a->rebuild_seq;
        a->eof = true;
        return;
    }
    a->rebuild_seq++;
}

/* True while a batch recorded before the restart is being built again: it
 * must close after its recorded packets, not by time. */
static bool s_rebuilding_batch(const agent_t *a)
{
    return a->rebuild_seq < a->rebuild_end && a->seg_left > 0 && !a->seg_released;
}

/* ---- sending --------------------------------------------------------- */

static void s_header(agent_t *a, wire_type_t type)
{
    wire_msg_init(a->out, type, a->node_id, a->opts.epoch);
}

/* Encodes `out` and sends it with `batch`'s payload (NULL: none). */
static int s_send(agent_t *a, batch_t *batch)
{
    size_t len = wire_encode(a->out, a->cmd, WIRE_COMMAND_MAX);
    if (len == 0)
        return -EINVAL; /* a field breaks its rule: a programmer error */
    return a->send(a->ctx, a->cmd, len, batch, NULL, 0);
}

/* COMPRESS, once the collector takes it: `b` compressed into zbuf, or 0
 * when it goes plain (no packets, it would not get smaller, no memory). */
static size_t s_pack(agent_t *a, const batch_t *b)
{
    if (!a->zc || !a->zstd_ok || b->packets == 0)
        return 0;
    size_t need = compress_bound(b->len);
    if (need > a->zcap) {
        uint8_t *grown = realloc(a->zbuf, need);
        if (!grown)
            return 0;
        a->zbuf = grown;
        a->zcap = need;
    }
    return compress_pack(a->zc, b->buf, b->len, a->zbuf, a->zcap);
}

static void s_hello(agent_t *a, int64_t now)
{
    s_header(a, WIRE_HELLO);
    wire_msg_t *m = a->out;
    snprintf(m->hello.description, sizeof m->hello.description, "%s", a->description);
    /* §3.1, §3.8: ask whether compressed batches are taken; until the
     * answer, batches go plain */
    a->zstd_ok = false;
    if (a->zc && wire_compress_tag_add(m->hello.description) < 0 && !a->zstd_told) {
        a->zstd_told = true;
        log_warn("COMPRESS: DESCRIPTION leaves no room for the compress=zstd tag in HELLO: "
                 "batches go uncompressed");
    }
    m->hello.iface_count = 1;
    m->hello.ifaces[0] = a->iface;
    /* what a collector meeting this source mid-stream need not wait for:
     * everything below the oldest batch held, unless one was dead-lettered
     * (it may be replayed) */
    const batch_t *oldest = outbox_oldest(a->outbox);
    uint64_t settled = oldest ? oldest->seq : outbox_next_seq(a->outbox);
    m->hello.settled = settled < a->dead_low ? settled : a->dead_low;
    a->hello_pending = true;
    a->hello_sent_ms = now;
    int rc = s_send(a, NULL);
    a->hello_unsent = rc < 0;
    if (rc < 0 && a->link_up)
        log_warn("HELLO not sent (%s); will retry", rc == -EAGAIN ? "queue full" : strerror(-rc));
    else if (rc < 0) /* no connection: sent once there is one */
        log_debug("HELLO not sent (%s); will retry",
                  rc == -EAGAIN ? "no connection" : strerror(-rc));
    else
        log_debug("HELLO sent: %s epoch %" PRIu64, a->node_id, a->opts.epoch);
}

/* A HELLO that could not be sent goes before anything else: a collector
 * drops what comes from a source it does not know. True when nothing
 * else need wait for it. */
static bool s_hello_first(agent_t *a, int64_t now)
{
    if (a->hello_unsent)
        s_hello(a, now);
    return !a->hello_unsent;
}

/* HEARTBEAT or END: what has been sent, and the watermark that holds for
 * it. Packets read but not sent yet (an open batch, batches waiting for the
 * window) are older than the read watermark: then only the watermark of the
 * last batch sent may be promised. */
static void s_progress(agent_t *a, wire_type_t type, int64_t now)
{
    if (!s_hello_first(a, now))
        return;
    s_header(a, type);
    bool pending = outbox_open_batch(a->outbox) || outbox_unsent(a->outbox);
    a->out->progress.watermark = pending ? a->sent_watermark : a->watermark;
    a->out->progress.next_seq = outbox_next_unsent(a->outbox);
    s_send(a, NULL);
}

/* Puts due batches on the wire, resends first, within the window. */
static void s_send_batches(agent_t *a, int64_t now)
{
    batch_t *b;
    /* no connection: a batch sent now would wait in ZeroMQ's queue and
     * reach a collector that comes after the agent dead-lettered it */
    if (!a->link_up)
        return;
    /* COMPRESS: the first batches wait for the answer to the first HELLO
     * (FEATURES comes before the WELCOME), at most ACK_TIMEOUT_MS, so that
     * a short run is not sent uncompressed within the window */
    if (a->zc && a->hello_pending && !a->welcomed &&
        now - a->hello_sent_ms < a->opts.ack_timeout_ms)
        return;
    if (!outbox_next_send(a->outbox, now) || !s_hello_first(a, now))
        return;
    while ((b = outbox_next_send(a->outbox, now))) {
        s_header(a, WIRE_BATCH);
        a->out->batch.seq = b->seq;
        a->out->batch.parts = 1;
        a->out->batch.watermark = b->watermark;
        a->out->batch.packet_count = b->packets;
        a->out->batch.payload_len = (uint32_t)b->len;
        s_resume_batch(a, b);
        size_t packed = s_pack(a, b);
        int rc;
        if (packed)
            a->out->batch.payload_len = (uint32_t)packed;
        size_t clen = wire_encode(a->out, a->cmd, WIRE_COMMAND_MAX);
        if (clen == 0)
            rc = -EINVAL; /* a programmer error */
        else
            rc = a->send(a->ctx, a->cmd, clen, b, packed ? a->zbuf : NULL, packed);
        if (rc == 0 && a->zc) {
            metrics_add(a->metrics, a->m.zstd_in, b->len);
            metrics_add(a->metrics, a->m.zstd_out, packed ? packed : b->len);
        }
        if (rc == -EAGAIN) {
            /* the next hop's queue is full (or the connection went before
             * its event was heard): keep it, try on a later pass */
            metrics_add(a->metrics, a->m.backpressure, 1);
            return;
        }
        if (rc < 0) {
            /* not a full queue: count it as a send, so that it backs off
             * like any unacknowledged batch instead of being retried at once */
            if (!a->send_failing)
                log_error("batch %" PRIu64 ": send failed: %s (retrying with backoff)", b->seq,
                          strerror(-rc));
            a->send_failing = true;
            outbox_sent(a->outbox, b, now);
            return;
        }
        a->send_failing = false;
        metrics_add(a->metrics, b->sends ? a->m.batches_resent : a->m.batches_sent, 1);
        if (b->sends == 0)
            a->stats.sent += b->packets;
        if (b->watermark > a->sent_watermark)
            a->sent_watermark = b->watermark;
        if (b->sends)
            log_debug("batch %" PRIu64 " resent (send %u)", b->seq, b->sends + 1);
        outbox_sent(a->outbox, b, now);
        a->last_send_ms = now;
    }
}

/* ---- dead letters ------------------------------------------------------ */

/* `count` more packets lost for `reason`, to opts.loss. */
static void s_loss(agent_t *a, const char *reason, uint64_t count)
{
    if (a->opts.loss && count)
        a->opts.loss(a->opts.tap_ctx, a->node_id, a->iface.name, reason, count);
}

/* Notes `seq` in `set` (DEAD's record), forgetting its oldest range when
 * it would need more than S_DEAD_RANGES; returns how many seqs were
 * forgotten. */
static uint64_t s_dead_note(seqset_t *set, uint64_t seq)
{
    uint64_t forgotten = 0;
    int rc = seqset_add_range(set, seq, seq + 1);
    if (rc == -ENOSPC) {
        forgotten = seqset_drop_first(set);
        rc = seqset_add_range(set, seq, seq + 1);
    }
    if (rc < 0)
        forgotten++; /* out of memory: this one is not told */
    return forgotten;
}

/* DEAD (§3.9): tells the collector which seqs it need not wait for —
 * those dead-lettered since the last DEAD, or all of them after a WELCOME.
 * Once WELCOMEd only (an unknown source is refused); what cannot be sent
 * stays pending for the next pass. */
static void s_send_dead(agent_t *a, int64_t now)
{
    if (!a->welcomed || a->hello_pending)
        return;
    const seqset_t *set = a->dead_resend ? &a->dead_all : &a->dead_new;
    if (!set->n) {
        a->dead_resend = false;
        return;
    }
    if (!s_hello_first(a, now))
        return;
    s_header(a, WIRE_DEAD);
    size_t n = set->n < WIRE_DEAD_MAX ? set->n : WIRE_DEAD_MAX;
    a->out->dead.count = (uint16_t)n;
    for (size_t i = 0; i < n; i++)
        a->out->dead.ranges[i] = (wire_range_t){.lo = set->r[i].lo, .hi = set->r[i].hi};
    if (s_send(a, NULL) < 0)
        return;
    log_debug("DEAD sent: %zu ranges of dead-lettered batches", n);
    seqset_free(&a->dead_new);
    seqset_init(&a->dead_new, S_DEAD_RANGES);
    a->dead_resend = false;
}

/* When a held batch goes to the dead-letter file: RETRY_TIMEOUT_S after it
 * was opened, but not while a send of it is in flight (less than
 * ACK_TIMEOUT_MS old): a batch that waited for a connection and has just
 * gone out gets the time for its acknowledgement, instead of being
 * dead-lettered while the collector writes it. */
static int64_t s_dead_due(const agent_t *a, const batch_t *b)
{
    int64_t due = b->opened_ms + a->opts.retry_timeout_ms;
    if (b->sends && b->last_sent_ms + a->opts.ack_timeout_ms > due)
        due = b->last_sent_ms + a->opts.ack_timeout_ms;
    return due;
}

/* Moves the oldest held batch to the dead-letter file and forgets it. */
static void s_dead_letter_oldest(agent_t *a)
{
    batch_t *b = outbox_oldest(a->outbox);
    if (!b)
        return;
    if (b->seq < a->dead_low)
        a->dead_low = b->seq;
    /* written or lost, the collector need not wait for it (DEAD) */
    uint64_t forgotten = s_dead_note(&a->dead_all, b->seq);
    s_dead_note(&a->dead_new, b->seq);
    if (forgotten)
        metrics_add(a->metrics, a->m.dead_forgotten, forgotten);
    s_resume_batch(a, b);
    /* refused: the collector turned this source down and wrote none of it
     * (unless it took this source before: then it may have written some) */
    if (dlq_write(a->dlq, b, a->refused && !a->welcomed ? DLQ_REFUSED : DLQ_UNACKED) < 0) {
        metrics_add(a->metrics, a->m.dlq_failed, 1);
        log_error("batch %" PRIu64 " (%u packets) lost: %s", b->seq, b->packets, dlq_error(a->dlq));
        a->failed = true;
    } else {
        if (a->dead_batches == 0)
            log_warn("writing unacknowledged batches to the dead-letter file %s", dlq_path(a->dlq));
        a->dead_batches++;
        a->dead_packets += b->packets;
        a->stats.dead += b->packets;
        metrics_add(a->metrics, a->m.batches_dlq, 1);
        metrics_add(a->metrics, a->m.packets_dlq, b->packets);
        s_loss(a, "dead_letter", b->packets);
    }
    s_resume_released(a, b->seq, false);
    outbox_release(a->outbox, b->seq);
}

/* Stops reading for good: the open batch is closed (and will be sent). */
static void s_end_of_input(agent_t *a)
{
    a->eof = true;
    a->more = false;
    if (s_rebuilding_batch(a))
        outbox_drop_open(a->outbox); /* still recorded: the next start builds it */
    outbox_close(a->outbox);
}

/* Everything held to the dead-letter file; the agent is done. */
static void s_dead_letter_all(agent_t *a)
{
    s_end_of_input(a);
    while (outbox_held(a->outbox))
        s_dead_letter_oldest(a);
    a->finished = true;
}

/* ---- what comes back ----------------------------------------------------- */

static void s_on_ack(agent_t *a, const wire_msg_t *m, int64_t now)
{
    for (unsigned i = 0; i < m->ack.count; i++) {
        int64_t rtt;
        if (outbox_ack(a->outbox, m->ack.entries[i].seq, now, &rtt)) {
            s_resume_released(a, m->ack.entries[i].seq, true);
            metrics_add(a->metrics, a->m.batches_acked, 1);
            metrics_observe(a->metrics, a->m.rtt, (double)rtt / 1000.0);
        } else {
            metrics_add(a->metrics, a->m.acks_unknown, 1);
        }
    }
}

static void s_on_refuse(agent_t *a, const wire_msg_t *m, int64_t now)
{
    metrics_add(a->metrics, a->m.refused, 1);
    if (m->refuse.code == WIRE_REFUSE_UNKNOWN_SOURCE) {
        /* every batch in flight draws this answer: one HELLO per episode,
         * none while a HELLO is on its way */
        a->rehello = true;
        if (!a->hello_pending) {
            log_info("collector does not know this source (it restarted?): sending HELLO, "
                     "then everything unacknowledged again");
            s_hello(a, now);
        }
    } else if (!a->refused) {
        log_error("collector refused this source: %s", m->refuse.reason);
        a->refused = true;
        a->failed = true;
    }
}

void agent_on_message(agent_t *self, frames_t *in, int64_t now_ms)
{
    size_t len;
    const uint8_t *cmd = frames_command(in, &len);
    if (!cmd || frames_payload(in) || in->envelope != 0) {
        metrics_add(self->metrics, self->m.malformed, 1);
        log_debug("dropped a message from upstream: not delimiter + command");
        return;
    }
    const wire_msg_t *m = self->in;
    wire_err_t err = wire_decode(cmd, len, self->in);
    if (err != WIRE_OK || m->epoch != self->opts.epoch || strcmp(m->source, self->node_id) != 0) {
        metrics_add(self->metrics, self->m.malformed, 1);
        log_debug("dropped a message from upstream: %s",
                  err ? wire_err_name(err) : "not for this source/epoch");
        return;
    }
    switch (m->type) {
    case WIRE_ACK:
        s_on_ack(self, m, now_ms);
        break;
    case WIRE_WELCOME:
        log_info("collector accepted source %s (epoch %" PRIu64 ")", self->node_id,
                 self->opts.epoch);
        self->hello_pending = false;
        self->welcomed = true;
        if (self->zc && !self->zstd_ok && !self->zstd_told) {
            self->zstd_told = true;
            log_warn("COMPRESS: the collector, or a relay on the way, does not take compressed "
                     "batches (no FEATURES before its WELCOME): sending them uncompressed "
                     "(upgrade the collector, then the relays)");
        }
        self->stats_unsent = true; /* a collector that restarted knows none */
        self->dead_resend = true;  /* nor which batches were dead-lettered */
        if (self->rehello) {
            self->rehello = false;
            outbox_resend_all(self->outbox); /* what it dropped before it knew us */
        }
        break;
    case WIRE_REFUSE:
        s_on_refuse(self, m, now_ms);
        break;
    case WIRE_FEATURES: /* §3.8: comes before the WELCOME of the HELLO it answers */
        if (self->zc && (m->features.flags & WIRE_FEATURE_ZSTD)) {
            if (!self->zstd_ok)
                log_info("collector takes compressed batches: COMPRESS=zstd:%d in use",
                         self->opts.compress_level);
            self->zstd_ok = true;
        }
        break;
    default:
        metrics_add(self->metrics, self->m.malformed, 1);
        break;
    }
}

/* ---- the connection ------------------------------------------------------ */

/* Since when the oldest packet held has waited without a connection, or
 * INT64_MAX when nothing waits. */
static int64_t s_waiting_since(const agent_t *a)
{
    const batch_t *b = outbox_oldest(a->outbox);
    if (!b)
        b = outbox_open_batch(a->outbox);
    if (!b)
        return INT64_MAX;
    return b->opened_ms > a->link_down_ms ? b->opened_ms : a->link_down_ms;
}

void agent_on_link(agent_t *self, bool up, int64_t now_ms)
{
    if (up == self->link_up)
        return;
    self->link_up = up;
    metrics_set(self->metrics, self->m.connected, up ? 1 : 0);
    if (!up) {
        self->link_down_ms = now_ms;
        log_debug("no connection to %s", self->endpoint);
        return;
    }
    /* a HELLO that found no connection goes before any batch */
    s_hello_first(self, now_ms);
    /* a connection that broke took what it carried: send that again now,
     * not after ACK_TIMEOUT_MS, so that the resend fits the merge window */
    size_t again =
        self->link_ever_up ? outbox_resend_sent_before(self->outbox, self->link_down_ms) : 0;
    if (self->link_warned)
        log_info("connection to %s is back: sending the %zu batches held", self->endpoint,
                 outbox_held(self->outbox));
    else if (again)
        log_info("connection to %s is back: sending %zu unacknowledged batches again",
                 self->endpoint, again);
    else
        log_debug("connected to %s", self->endpoint);
    self->link_warned = false;
    self->link_ever_up = true;
}

/* Batches are not getting through: no connection for ACK_TIMEOUT_MS
 * while something waits, or a batch overdue for its acknowledgement. */
static bool s_undelivered(const agent_t *a, int64_t now)
{
    if (outbox_overdue(a->outbox, now))
        return true;
    if (a->link_up)
        return false;
    int64_t since = s_waiting_since(a);
    return since != INT64_MAX && now - since >= a->opts.ack_timeout_ms;
}

/* A batch has waited ACK_TIMEOUT_MS with no connection: say so, once. */
static void s_check_link(agent_t *a, int64_t now)
{
    if (a->link_up || a->link_warned || a->finished)
        return;
    int64_t since = s_waiting_since(a);
    if (since == INT64_MAX || now - since < a->opts.ack_timeout_ms)
        return;
    a->link_warned = true;
    log_warn("no connection to %s: holding %zu batches, dead-lettering after RETRY_TIMEOUT_S "
             "(%" PRId64 " s)",
             a->endpoint, outbox_held(a->outbox) + (outbox_open_batch(a->outbox) ? 1 : 0),
             a->opts.retry_timeout_ms / 1000);
}

/* ---- reading ------------------------------------------------------------- */

/* Dead letters sent again: whole batches, each under its seq, as many as
 * the outbox has room for. Returns true when the file may have more now. */
static bool s_replay_read(agent_t *a, int64_t now)
{
    for (int i = 0; i < 64; i++) {
        if (!a->replay_have) {
            int rc = dlq_reader_next(a->replay, &a->rb);
            if (rc < 0) {
                log_error("%s", dlq_reader_error(a->replay));
                a->failed = true;
            }
            if (rc <= 0) {
                if (rc == 0)
                    a->source_ended = true;
                uint64_t skipped = dlq_reader_skipped(a->replay);
                if (skipped)
                    log_warn("%" PRIu64 " packets of batches the file holds only in part (cut "
                             "short by a crash while it was written) were not sent",
                             skipped);
                s_end_of_input(a);
                return false;
            }
            a->replay_have = true;
        }
        const dlq_batch_t *b = &a->rb;
        if (!outbox_has_room_for(a->outbox, b->len)) {
            a->room_blocked = true;
            return false;
        }
        uint64_t next = outbox_next_seq(a->outbox);
        if (b->seq < next || b->parts != 1) {
            log_warn("dead letter batch %" PRIu64 " (part %u of %u) out of order: not sent", b->seq,
                     b->part, b->parts);
            a->replay_have = false;
            continue;
        }
        if (b->seq - next > S_REPLAY_GAP_MAX) {
            /* far ahead: numbering starts there once nothing is held */
            if (outbox_held(a->outbox))
                return false;
            outbox_start_at(a->outbox, b->seq);
        }
        int rc = outbox_put(a->outbox, b->seq, b->payload, b->len, b->packets, b->watermark, now);
        if (rc < 0) {
            log_error("dead letter batch %" PRIu64 ": %s", b->seq, strerror(-rc));
            a->failed = true;
            s_end_of_input(a);
            return false;
        }
        a->replay_have = false;
        if (b->watermark > a->watermark)
            a->watermark = b->watermark;
        a->packets += b->packets;
        metrics_add(a->metrics, a->m.packets, b->packets);
    }
    return true;
}

/* The size histogram's sample: the packet's family, decoded for it alone. */
static void s_sample_size(agent_t *a, const source_packet_t *p)
{
    a->sample_in = S_SIZE_SAMPLE;
    metrics_observe(a->metrics, a->m.size[decode_family(a->linktype, p->data, p->caplen)],
                    (double)p->origlen);
}

/* DECAP: turns *p into its inner frame (with the switch's timestamp under
 * TSTAMP_SOURCE=erspan). Returns false, counted by reason, when it has
 * none to send. */
static bool s_decap(agent_t *a, source_packet_t *p)
{
    decap_t d;
    decap_reason_t r =
        decap_frame(a->opts.decap, a->outer_linktype, p->data, p->caplen, p->origlen, &d);
    if (r == DECAP_OK && a->opts.decap_id_set && (!d.has_id || d.id != a->opts.decap_id))
        r = DECAP_ID;
    if (r != DECAP_OK) {
        metrics_add(a->metrics, a->m.decap_dropped[r], 1);
        return false;
    }
    if (a->opts.tstamp_erspan) {
        uint64_t ts;
        if (decap_erspan_ts(&d, p->ts_ns, &ts))
            p->ts_ns = ts;
        else
            metrics_add(a->metrics, a->m.no_switch_ts, 1);
    }
    if (d.inner_ip && a->inner) {
        /* an Ethernet output: the IP packet gets a header of its own */
        uint32_t n = d.caplen < WIRE_SNAPLEN_MAX - 14 ? d.caplen : WIRE_SNAPLEN_MAX - 14;
        decap_ethernet_header(d.ethertype, a->inner);
        memcpy(a->inner + 14, d.data, n);
        p->data = a->inner;
        p->caplen = n + 14;
        p->origlen = d.origlen > UINT32_MAX - 14 ? UINT32_MAX : d.origlen + 14;
        return true;
    }
    p->data = d.data;
    p->caplen = d.caplen;
    p->origlen = d.origlen;
    return true;
}

/* TSTAMP_SOURCE=trailer:arista7130: the packet's time from the first
 * switch's trailer (the innermost of those stacked), and with TRAILER=strip
 * the frame as that switch received it. A frame cut by the snaplen has lost
 * its trailers: it keeps its capture time, counted. */
static void s_trailer(agent_t *a, source_packet_t *p)
{
    trailer_t t[8];
    unsigned n = p->caplen == p->origlen
                     ? trailer_metamako_all(p->data, p->caplen, p->ts_ns, t, sizeof t / sizeof *t)
                     : 0;
    if (n == 0) {
        metrics_add(a->metrics, a->m.no_switch_ts, 1);
        return;
    }
    p->ts_ns = t[n - 1].ts_ns;
    if (a->opts.trailer_strip)
        p->caplen = p->origlen = t[n - 1].start;
}

/* TSTAMP_SOURCE=header:arista7280: the packet's time from the Arista 7280
 * timestamp header after the frame's addresses, and with TRAILER=strip the
 * frame without it, as the switch received it. A frame without one (or
 * not Ethernet) keeps its capture time, counted. */
static void s_arista7280(agent_t *a, source_packet_t *p)
{
    trailer_avsp_t h;
    if (a->linktype != 1 || !trailer_arista7280(p->data, p->caplen, p->ts_ns, &h)) {
        metrics_add(a->metrics, a->m.no_switch_ts, 1);
        return;
    }
    p->ts_ns = h.ts_ns;
    if (!a->opts.trailer_strip)
        return;
    /* the addresses (and tag) before it, the original EtherType on after it */
    uint32_t after = h.start + h.len;
    uint32_t rest = p->caplen - after;
    if (rest > WIRE_SNAPLEN_MAX - h.start) {
        rest = WIRE_SNAPLEN_MAX - h.start; /* as the wire would cut it */
        metrics_add(a->metrics, a->m.truncated, 1);
    }
    memcpy(a->unheadered, p->data, h.start);
    memcpy(a->unheadered + h.start, p->data + after, rest);
    p->data = a->unheadered;
    p->caplen = h.start + rest;
    p->origlen = p->origlen > h.len ? p->origlen - h.len : 0;
}

/* Reads up to S_READ_MAX packets into the outbox, as far as there is room,
 * counting into *packets and *bytes. Returns true when the source may have
 * more right now. */
static bool s_read_packets(agent_t *a, int64_t now, uint64_t *packets, uint64_t *bytes)
{
    outbox_t *o = a->outbox;
    for (int i = 0; i < S_READ_MAX; i++) {
        if (!outbox_has_room(o, WIRE_SNAPLEN_MAX)) {
            a->room_blocked = true;
            return false;
        }
        source_packet_t p;
        source_result_t r = source_next(a->source, &p);
        if (r == SOURCE_IDLE) {
            /* nothing older than what is due next, or than "now" for a live
             * interface whose kernel buffer is empty */
            uint64_t next = source_next_ts(a->source);
            if (next > a->watermark + 1)
                a->watermark = next - 1;
            if (a->opts.live && a->opts.wall_clock) {
                uint64_t wall = clock_wall_ns() - S_LIVE_SLACK_NS;
                if (wall > a->watermark)
                    a->watermark = wall;
            }
            return false;
        }
        if (r != SOURCE_PACKET) {
            if (r == SOURCE_ERROR) {
                log_error("%s", source_error(a->source));
                a->failed = true;
            } else {
                a->source_ended = true;
            }
            s_end_of_input(a);
            return false;
        }
        if (a->opts.decap != DECAP_OFF && !s_decap(a, &p))
            continue;
        if (a->opts.tstamp_trailer)
            s_trailer(a, &p);
        else if (a->opts.tstamp_header)
            s_arista7280(a, &p);
        uint64_t index = a->index++;
        if (a->resume && s_rebuild_skips(a, index)) {
            if (p.ts_ns > a->watermark)
                a->watermark = p.ts_ns;
            continue;
        }
        wire_packet_t w = {.ts_ns = p.ts_ns,
                           .ifindex = 0,
                           .caplen = p.caplen,
                           .origlen = p.origlen,
                           .data = p.data};
        if (w.caplen > WIRE_SNAPLEN_MAX) {
            w.caplen = WIRE_SNAPLEN_MAX;
            metrics_add(a->metrics, a->m.truncated, 1);
        }
        if (w.origlen < w.caplen)
            w.origlen = w.caplen; /* a malformed record: the wire needs caplen <= origlen */
        if (p.ts_ns > a->watermark)
            a->watermark = p.ts_ns;
        if (outbox_add(o, &w, a->watermark, now) < 0) {
            log_error("out of memory for batches");
            a->failed = true;
            s_end_of_input(a);
            return false;
        }
        if (a->opts.tap)
            a->opts.tap(a->opts.tap_ctx, a->node_id, a->iface.name, a->linktype, &w);
        if (a->resume)
            s_rebuilt(a);
        ++*packets;
        *bytes += w.caplen;
        if (--a->sample_in == 0)
            s_sample_size(a, &p);
    }
    return true;
}

/* Reads what the outbox has room for, a bounded amount per pass. The
 * packet and byte counters move once per pass, so that they are exact
 * whenever the loop is not in the middle of one. Returns true when the
 * source may have more right now. */
static bool s_read(agent_t *a, int64_t now)
{
    a->room_blocked = false;
    if (a->replay)
        return s_replay_read(a, now);
    uint64_t packets = 0, bytes = 0;
    bool more = s_read_packets(a, now, &packets, &bytes);
    a->packets += packets;
    metrics_add(a->metrics, a->m.packets, packets);
    metrics_add(a->metrics, a->m.bytes, bytes);
    return more;
}

/* The kernel's counters, as deltas into monotonic counters. */
static void s_stats(agent_t *a)
{
    source_stats_t st;
    if (!a->opts.live || source_stats(a->source, &st) < 0)
        return;
    metrics_t *r = a->metrics;
    if (st.received >= a->last_stats.received) {
        metrics_add(r, a->m.received, st.received - a->last_stats.received);
        a->stats.recv += st.received - a->last_stats.received;
    }
    if (st.dropped >= a->last_stats.dropped) {
        metrics_add(r, a->m.kernel_drops, st.dropped - a->last_stats.dropped);
        a->stats.drop += st.dropped - a->last_stats.dropped;
        s_loss(a, "kernel_drop", st.dropped - a->last_stats.dropped);
    }
    if (st.ifdropped >= a->last_stats.ifdropped) {
        metrics_add(r, a->m.if_drops, st.ifdropped - a->last_stats.ifdropped);
        a->stats.ifdrop += st.ifdropped - a->last_stats.ifdropped;
        s_loss(a, "if_drop", st.ifdropped - a->last_stats.ifdropped);
    }
    if (st.dropped > a->last_stats.dropped)
        log_warn("%s: the kernel dropped %" PRIu64 " packets (buffer full)", source_name(a->source),
                 st.dropped - a->last_stats.dropped);
    a->last_stats = st;
}

/* STATS when the counters changed since the last one the collector took
 * (and, unless `now_too`, a second has passed): only once WELCOMEd, since
 * a collector that does not know the source answers with REFUSE. */
static void s_send_stats(agent_t *a, int64_t now, bool now_too)
{
    if (!a->welcomed || a->hello_pending || a->replay)
        return;
    if (!now_too && now - a->stats_sent_ms < S_STATS_MS)
        return;
    const wire_stats_t *x = &a->stats, *y = &a->stats_sent;
    if (!a->stats_unsent && x->recv == y->recv && x->drop == y->drop && x->ifdrop == y->ifdrop &&
        x->sent == y->sent && x->dead == y->dead)
        return;
    s_header(a, WIRE_STATS);
    a->out->stats.count = 1;
    a->out->stats.entries[0] = a->stats;
    if (s_send(a, NULL) < 0)
        return; /* a full queue: the next pass tries again */
    a->stats_sent = a->stats;
    a->stats_unsent = false;
    a->stats_sent_ms = now;
}

/* ---- the pass -------------------------------------------------------------- */

void agent_start(agent_t *self, int64_t now_ms)
{
    self->last_send_ms = now_ms;
    self->last_stats_ms = now_ms;
    self->link_down_ms = now_ms;
    metrics_set(self->metrics, self->m.connected, 0);
    s_hello(self, now_ms);
}

void agent_stop(agent_t *self, int64_t now_ms)
{
    if (self->stop_deadline_ms || self->finished)
        return;
    log_info("stopping: no more capturing; waiting up to %" PRId64
             " ms for acknowledgements (a second SIGTERM or SIGINT dead-letters them at once)",
             self->opts.retry_timeout_ms);
    self->stop_deadline_ms = now_ms + self->opts.retry_timeout_ms;
    s_end_of_input(self);
}

void agent_abort(agent_t *self, int64_t now_ms)
{
    if (self->finished)
        return;
    size_t held = outbox_held(self->outbox) + (outbox_open_batch(self->outbox) ? 1 : 0);
    log_warn("stopping now: %zu unacknowledged batches go to the dead-letter file", held);
    s_dead_letter_all(self);
    s_send_dead(self, now_ms);
    s_send_stats(self, now_ms, true);
}

void agent_step(agent_t *self, int64_t now_ms)
{
    agent_t *a = self;
    if (a->finished)
        return;
    if (a->refused) {
        /* nothing will be accepted: keep what we hold, in the dead-letter file */
        s_dead_letter_all(a);
        return;
    }
    if (a->hello_pending && now_ms - a->hello_sent_ms >= a->opts.ack_timeout_ms)
        s_hello(a, now_ms); /* no WELCOME yet: ask again */
    /* a file waits for us: while batches flow it is read only as far
     * ahead as the window can send. While they do not, it is read up to
     * BUFFER_MAX as a live interface always is (a pause there moves the
     * loss into the kernel's buffer), so that what cannot be delivered
     * reaches the dead-letter file together. */
    if (!a->opts.live)
        outbox_set_read_ahead(a->outbox, s_undelivered(a, now_ms) ? 0 : S_READ_AHEAD);
    a->more = !a->eof && s_read(a, now_ms);
    const batch_t *open = outbox_open_batch(a->outbox);
    if (open && now_ms - open->opened_ms >= a->opts.batch_delay_ms && !s_rebuilding_batch(a))
        outbox_close(a->outbox);
    const batch_t *oldest;
    while ((oldest = outbox_oldest(a->outbox)) && now_ms >= s_dead_due(a, oldest))
        s_dead_letter_oldest(a);
    s_send_dead(a, now_ms); /* before the batches that follow the dead-lettered ones */
    s_send_batches(a, now_ms);
    /* sending made room the reading waited for: read on at once */
    if (a->room_blocked && !a->eof &&
        (a->replay ? !a->replay_have || outbox_has_room_for(a->outbox, a->rb.len)
                   : outbox_has_room(a->outbox, WIRE_SNAPLEN_MAX)))
        a->more = true;
    if (a->eof && !a->end_sent && !outbox_open_batch(a->outbox) && outbox_unsent(a->outbox) == 0) {
        s_stats(a); /* the last counters go just before END */
        a->last_stats_ms = now_ms;
        s_send_stats(a, now_ms, true);
        s_progress(a, WIRE_END, now_ms);
        a->end_sent = true;
        a->last_send_ms = now_ms;
    }
    if (now_ms - a->last_send_ms >= a->opts.heartbeat_ms) {
        s_progress(a, a->end_sent ? WIRE_END : WIRE_HEARTBEAT, now_ms);
        a->last_send_ms = now_ms;
    }
    if (now_ms - a->last_stats_ms >= S_STATS_MS) {
        s_stats(a);
        a->last_stats_ms = now_ms;
    }
    s_send_stats(a, now_ms, false);
    s_check_link(a, now_ms);
    metrics_set(a->metrics, a->m.unacked_bytes, (double)outbox_held_bytes(a->outbox));
    metrics_set(a->metrics, a->m.unacked_batches, (double)outbox_held(a->outbox));
    if (a->eof && outbox_held(a->outbox) == 0 && !outbox_open_batch(a->outbox)) {
        a->finished = true;
        s_send_stats(a, now_ms, true);
        /* read through and all released: a restart has nothing to do */
        if (a->resume && a->source_ended && !a->failed && resume_done(a->resume, a->index) < 0)
            s_resume_lost(a);
    } else if (a->stop_deadline_ms && now_ms >= a->stop_deadline_ms) {
        s_dead_letter_all(a);
        s_send_dead(a, now_ms);
        s_send_stats(a, now_ms, true);
    }
}

bool agent_finished(const agent_t *self)
{
    return self->finished;
}

static void s_earlier(int64_t *wake, int64_t t)
{
    if (t < *wake)
        *wake = t;
}

int64_t agent_next_wake(const agent_t *self, int64_t now_ms)
{
    const agent_t *a = self;
    if (a->more || a->finished || a->refused)
        return now_ms;
    int64_t wake = a->last_send_ms + a->opts.heartbeat_ms;
    const batch_t *b = outbox_open_batch(a->outbox);
    if (b)
        s_earlier(&wake, b->opened_ms + a->opts.batch_delay_ms);
    /* without a connection nothing is sent: a resend waits for one (the
     * loop hears of it), not for its deadline, which may have passed */
    if (a->link_up)
        s_earlier(&wake, outbox_next_deadline(a->outbox));
    if ((b = outbox_oldest(a->outbox)))
        s_earlier(&wake, s_dead_due(a, b));
    if (a->hello_pending)
        s_earlier(&wake, a->hello_sent_ms + a->opts.ack_timeout_ms);
    bool can_read = !a->eof && a->source && outbox_has_room(a->outbox, WIRE_SNAPLEN_MAX);
    uint64_t ns = can_read ? source_wait_ns(a->source) : 0;
    if (ns) /* a paced replay: the next packet's time */
        s_earlier(&wake, now_ms + (int64_t)(ns / 1000000u));
    if (a->opts.live)
        s_earlier(&wake, a->last_stats_ms + S_STATS_MS);
    /* what blocks reading may be buffers ZeroMQ is about to give back,
     * which says nothing to the loop: look again shortly */
    if (!a->eof && a->room_blocked && outbox_lent_bytes(a->outbox))
        s_earlier(&wake, now_ms + 1);
    if (!a->link_up && !a->link_warned) {
        int64_t since = s_waiting_since(a);
        if (since != INT64_MAX)
            s_earlier(&wake, since + a->opts.ack_timeout_ms);
    }
    if (a->stop_deadline_ms)
        s_earlier(&wake, a->stop_deadline_ms);
    return wake < now_ms ? now_ms : wake;
}

int agent_poll_fd(const agent_t *self)
{
    if (self->eof || self->finished || !self->source ||
        !outbox_has_room(self->outbox, WIRE_SNAPLEN_MAX))
        return -1;
    return source_fd(self->source);
}

int agent_exit_status(agent_t *self)
{
    s_stats(self);
    if (self->dead_batches) {
        log_error("%" PRIu64 " of %" PRIu64 " packets (%" PRIu64
                  " batches) were not acknowledged and are in the dead-letter file %s",
                  self->dead_packets, self->packets, self->dead_batches, dlq_path(self->dlq));
        return 1;
    }
    if (self->failed)
        return 1;
    log_info("done: %" PRIu64 " packets sent and acknowledged", self->packets);
    return 0;
}

uint64_t agent_packets(const agent_t *self)
{
    return self->packets;
}
