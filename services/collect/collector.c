/*
 * collector — per (source, epoch) state, dedup, merge and acknowledgements.
 *
 * A received batch keeps its payload zmq_msg_t (no copy) in its source's
 * FIFO until its last packet is written; then (seq, part) joins the
 * source's pending acknowledgements, which leave after the next successful
 * flush of the output. Nothing is acknowledged that the operating system
 * does not have.
 *
 * With STATE_DIR, every flush is preceded by a journal intent naming the
 * batches it completes or advances (journal.h), so that after a crash the
 * resends of what was written are acknowledged and not written again.
 *
 * It also keeps, per interface of the output (IDB), what the file's
 * Interface Statistics Block says when the file is closed (at a rotation,
 * and at the end): the agent's counters from its latest STATS (§3.7), and
 * what this file holds of that interface. The ISB's options:
 *   isb_starttime  the first packet of the interface in this file (its
 *                  capture time), or without one, when the interface's HELLO
 *                  came or the file began (the later)
 *   isb_endtime    now (the collector's clock), also the block's time
 *   isb_ifrecv     ps_recv           } live agents only, cumulative since
 *   isb_ifdrop     ps_drop+ps_ifdrop } the agent's epoch began (the latest
 *   isb_osdrop     ps_drop           } epoch that sent STATS)
 *   isb_usrdeliv   packets of this interface written to this file
 *   opt_comment    "tapmesh: agent counters (epoch E, since it began):
 *                  R received, D dropped by the kernel, I dropped by the
 *                  interface, S sent, L dead-lettered; this file: W written,
 *                  A late, F forced" — without "R received ... interface, "
 *                  for an agent reading a file, and "tapmesh: no agent
 *                  counters received; this file: ..." before any STATS.
 */
#include "collector.h"

#include "auth.h"
#include "clock.h"
#include "compress.h"
#include "log.h"
#include "merge.h"
#include "peers.h"
#include "rejects.h"
#include "seqset.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define S_SEQSET_RANGES 65536
/* Ranges of dead-lettered seqs (DEAD, §3.9) kept per source: an agent
 * remembers 256; a peer cannot make a source's state grow past this. */
#define S_SKIPPED_RANGES 1024

/* A source that said HELLO holds the merge this long without a BATCH,
 * HEARTBEAT or END; after, only from its first one on (agents send one at
 * once, or a heartbeat within HEARTBEAT_MS). HELLOs alone, however often
 * repeated, hold nothing: a peer announcing sources it never feeds must not
 * hold everybody's packets for a merge window each. */
#define S_HELLO_ONLY_HOLD_MS 1000

typedef struct s_batch {
    struct s_batch *next;
    zmq_msg_t payload;
    const uint8_t *data; /* the payload's bytes and length, checked on receipt: */
    size_t len;          /* walked with wire_packet_at, no second parse */
    size_t off;          /* offset of the record after `head` */
    uint32_t total;      /* records in the batch */
    uint32_t left;       /* records not yet written */
    bool touched;        /* written to since the last commit */
    bool main_lane;      /* of the source's first lane (journaled) */
    uint64_t mark;       /* the commit mark when its writing began (retention.h) */
    uint64_t seq;
    uint16_t part;
    char *comment; /* ANNOTATE=hops: the EPB comment of its packets, or NULL */
    int64_t arrived_ms;
    wire_packet_t head; /* the next record, decoded */
} s_batch_t;

typedef struct s_source {
    char id[WIRE_NAME_MAX + 1];
    uint64_t epoch;
    uint64_t peer; /* who holds the state (frames_peer of its last HELLO) */
    int64_t joined_ms;
    bool progressed; /* a BATCH, HEARTBEAT or END came: it has a watermark */
    char description[WIRE_TEXT_MAX + 1];
    unsigned nifaces;
    wire_iface_t *ifaces; /* as in HELLO, to detect a conflicting HELLO */
    uint32_t ifid[WIRE_IFACES_MAX];
    route_t route;
    uint64_t watermark; /* effective: every batch it covers has arrived */
    bool ended, idle;   /* ended: END and every batch before it arrived */
    /* the newest promise (watermark, next_seq, END), applied once every
     * batch below next_seq has arrived: a resend of an older batch must not
     * find the merge already past it */
    uint64_t promise_wm, promise_seq;
    bool promise_end;
    int64_t last_heard_ms;
    seqset_t seen; /* batches taken (queued or written) */
    /* seqs the source dead-lettered (DEAD, §3.9) and this collector had
     * not taken: not waited for, not gaps, but not taken either (a replay
     * of them is written) */
    seqset_t skipped;
    bool skipped_full_told; /* the bound was hit and logged */
    s_batch_t *qhead, *qtail;
    size_t queued_bytes;
    merge_lane_t lane;
    wire_ack_entry_t *acks; /* written, to acknowledge after the flush */
    size_t nacks, acks_cap;
    bool lane_set; /* lane_part/lane_parts known (first batch) */
    uint16_t lane_part, lane_parts;
    seqset_t other; /* batches of other lanes: seq * WIRE_PARTS_MAX + part */
    char path[WIRE_HOPS_MAX * (WIRE_NAME_MAX + 1) + 8]; /* of the last batch */
    metric_id_t m_path;
    journal_state_t *restored; /* partly written batches from before a restart */
    uint64_t missing;          /* batches not received below the newest one */
    metric_id_t m_packets;
    uint64_t unpublished; /* packets written, not yet in m_packets (s_publish) */
} s_source_t;

/* One interface (IDB) of the output: what its next ISB says. */
typedef struct {
    uint64_t start_ns;              /* the HELLO or the file's start, until a packet */
    bool have_first;                /* start_ns is this file's first packet's */
    uint64_t written, late, forced; /* of this interface, in this file */
    bool have_stats;                /* a STATS came */
    uint64_t epoch;                 /* of the latest STATS */
    wire_stats_t st;
} s_ifstat_t;

struct collector_t {
    output_t *output;
    s_ifstat_t *ifs; /* per output interface id */
    size_t nifs;
    collector_opts_t opts;
    metrics_t *metrics;
    collector_reply_fn reply;
    void *ctx;
    s_source_t **sources;
    size_t nsources;
    uint64_t joined; /* sources ever created: lane order */
    merge_t merge;
    size_t queued_bytes, queued_packets;
    uint64_t last_ts;          /* newest timestamp written */
    uint64_t missing;          /* sum of the sources' */
    int64_t buffered_since_ms; /* when the output buffer stopped being empty, or -1 */
    journal_entry_t *done;     /* batches completed since the last commit */
    size_t ndone, done_cap;
    bool broken; /* the output or the journal failed: nothing is acknowledged any more */
    char error[600];
    rejects_t rejects;
    uint32_t peer;      /* of the message being handled, for rejects */
    uint64_t peer_key;  /* the same, for the flood limits (frames_peer) */
    uint64_t peer_seed; /* frames_peer's key: random, per collector */
    peers_t *peers;     /* states held and allowance, per peer */
    int64_t now_ms;     /* its arrival */
    /* the message being handled, and the reply being built: apart, since
     * handling one (a HELLO that needs a commit first) may send others */
    wire_msg_t in, out;
    uint8_t cmd[WIRE_COMMAND_MAX]; /* `out`, encoded */
    uint64_t output_bytes;         /* as counted in the metrics so far */
    unsigned output_files;
    struct {
        size_t want;                    /* sources expected; 0: EXPECT_SOURCES not set */
        bool by_id;                     /* a list of node ids, else a count */
        char (*ids)[WIRE_NAME_MAX + 1]; /* the list; for a count, the ids joined so far */
        bool *joined;                   /* per listed id */
        size_t njoined;
        int64_t first_ms;    /* the first source's HELLO, or -1 */
        bool released;       /* all have joined, or the wait's bound has passed */
        int64_t released_ms; /* when: the merge window counts from then */
    } expect;
    bool wrote_any;
    /* commits whose acknowledgements are sent: a packet written now is
     * flushed and acknowledged by commit `mark` (retention.h) */
    uint64_t mark;
    /* what collector_emit wrote and has not yet added to the metrics: one
     * update per pass (and before a commit within it), not per packet, so
     * every scrape between passes sees exact values */
    struct {
        uint64_t packets, bytes, late, forced;
    } tally;
    struct {
        metric_id_t packets, bytes, batches, duplicates, late, queued_bytes, queued_packets,
            sources_live, acks, acks_failed, forced, dedup_given_up, output_bytes, output_files,
            missing, restored_skipped, refused_linktype, refused_conflict, refused_full,
            expected_missing, identity, refused_peer_limit, refused_hello_rate, zstd_batches,
            zstd_bytes, zstd_plain_bytes, dead_skipped, dead_refused;
    } m;
    compress_t *unpack; /* PACKETS_ZSTD frames (§4.1) */
};

static int s_commit(collector_t *self, int64_t now);
static void s_settled(collector_t *self, s_source_t *s, uint64_t settled);
static void s_settle(collector_t *self, s_source_t *s);
static int s_fail(collector_t *self, int rc, const char *what);
static void s_done_seq(collector_t *self, s_source_t *s, uint64_t seq, uint16_t part,
                       uint32_t total);

/* ---- set-up ---------------------------------------------------------- */

static void s_register(collector_t *self)
{
    metrics_t *r = self->metrics;
    self->m.packets =
        metrics_counter(r, "tapmesh_collect_packets_total", "Packets written to the output", NULL);
    self->m.zstd_batches = metrics_counter(r, "tapmesh_collect_compressed_batches_total",
                                           "Batches received compressed (COMPRESS=zstd)", NULL);
    self->m.zstd_bytes =
        metrics_counter(r, "tapmesh_collect_compressed_bytes_total",
                        "Payload bytes of the batches received compressed, as received", NULL);
    self->m.zstd_plain_bytes = metrics_counter(
        r, "tapmesh_collect_uncompressed_bytes_total",
        "Payload bytes of the batches received compressed, once decompressed", NULL);
    self->m.bytes = metrics_counter(r, "tapmesh_collect_bytes_total",
                                    "Packet data bytes (captured length) written", NULL);
    self->m.batches = metrics_counter(r, "tapmesh_collect_batches_total",
                                      "Batches accepted (not duplicates)", NULL);
    self->m.duplicates =
        metrics_counter(r, "tapmesh_collect_duplicate_batches_total",
                        "Batches received again and dropped (acknowledged again)", NULL);
    self->m.late = metrics_counter(r, "tapmesh_collect_late_packets_total",
                                   "Packets written after a packet with a later timestamp", NULL);
    self->m.forced = metrics_counter(
        r, "tapmesh_collect_merge_forced_packets_total",
        "Packets written before every source's watermark passed them (window or memory)", NULL);
    self->m.queued_bytes = metrics_gauge(r, "tapmesh_collect_merge_queued_bytes",
                                         "Payload bytes waiting in the merge", NULL);
    self->m.queued_packets = metrics_gauge(r, "tapmesh_collect_merge_queued_packets",
                                           "Packets waiting in the merge", NULL);
    self->m.sources_live = metrics_gauge(r, "tapmesh_collect_sources_live",
                                         "Sources the merge waits for (not ended, not idle)", NULL);
    self->m.acks = metrics_counter(r, "tapmesh_collect_acks_sent_total",
                                   "Batches acknowledged (duplicates included)", NULL);
    self->m.acks_failed = metrics_counter(r, "tapmesh_collect_acks_unroutable_total",
                                          "Replies that could not be sent back", NULL);
    self->m.dedup_given_up =
        metrics_counter(r, "tapmesh_collect_dedup_given_up_batches_total",
                        "Missing batches no longer tracked for duplicates (too many holes)", NULL);
    self->m.output_bytes =
        metrics_counter(r, "tapmesh_collect_output_bytes_total",
                        "Bytes handed to the operating system for the output", NULL);
    self->m.output_files = metrics_counter(r, "tapmesh_collect_output_files_total",
                                           "Output files created (rotation)", NULL);
    self->m.missing =
        metrics_gauge(r, "tapmesh_collect_batches_missing",
                      "Batches not received while later ones of the same source were (gaps)", NULL);
    self->m.dead_skipped = metrics_counter(
        r, "tapmesh_collect_dead_skipped_batches_total",
        "Batches sources said they dead-lettered (DEAD) that the merge then did not wait for "
        "(a replay of them is still written)",
        NULL);
    self->m.dead_refused =
        metrics_counter(r, "tapmesh_collect_dead_refused_ranges_total",
                        "Dead-lettered ranges (DEAD) not noted: the source had 1024 already "
                        "(the merge waits for them as before)",
                        NULL);
    self->m.restored_skipped = metrics_counter(
        r, "tapmesh_collect_restored_skipped_packets_total",
        "Packets of resent batches skipped because they were written before a restart", NULL);
    self->m.expected_missing =
        metrics_gauge(r, "tapmesh_collect_expected_sources_missing",
                      "Sources EXPECT_SOURCES names (or counts) that have not joined yet", NULL);
    rejects_init(&self->rejects, r, "tapmesh_collect_malformed_messages_total");
    self->m.identity = metrics_counter(r, "tapmesh_collect_auth_failures_total", AUTH_FAILURES_HELP,
                                       "reason=\"identity\"");
    const char *help = "HELLOs refused";
    self->m.refused_linktype =
        metrics_counter(r, "tapmesh_collect_sources_refused_total", help, "reason=\"linktype\"");
    self->m.refused_conflict =
        metrics_counter(r, "tapmesh_collect_sources_refused_total", help, "reason=\"conflict\"");
    self->m.refused_full =
        metrics_counter(r, "tapmesh_collect_sources_refused_total", help, "reason=\"full\"");
    self->m.refused_peer_limit =
        metrics_counter(r, "tapmesh_collect_sources_refused_total", help, "reason=\"peer_limit\"");
    self->m.refused_hello_rate =
        metrics_counter(r, "tapmesh_collect_sources_refused_total", help, "reason=\"hello_rate\"");
}

/* ---- EXPECT_SOURCES ----------------------------------------------- */

#define S_EXPECT_MAX 1000000

static bool s_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Parses EXPECT_SOURCES (collector_expect_check); with `ids`, of room for
 * every listed id, fills it. */
static int s_expect_parse(const char *text, char (*ids)[WIRE_NAME_MAX + 1], bool *by_id, char *why,
                          size_t whylen)
{
    const char *p = text, *end = text + strlen(text);
    while (p < end && s_blank(*p))
        p++;
    while (end > p && s_blank(end[-1]))
        end--;
    *by_id = false;
    if (p == end)
        return 0;
    size_t digits = strspn(p, "0123456789");
    if (p + digits == end) {
        if (digits > 7 || strtol(p, NULL, 10) > S_EXPECT_MAX) {
            snprintf(why, whylen, "a count of more than %d sources", S_EXPECT_MAX);
            return -EINVAL;
        }
        return (int)strtol(p, NULL, 10);
    }
    *by_id = true;
    size_t n = 0, item = 0;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end, *a = p, *b = stop;
        p = comma ? comma + 1 : end;
        item++;
        while (a < b && s_blank(*a))
            a++;
        while (b > a && s_blank(b[-1]))
            b--;
        if (a == b)
            continue; /* "a,,b" or "17," */
        char id[WIRE_NAME_MAX + 2];
        size_t len = (size_t)(b - a);
        snprintf(id, sizeof id, "%.*s", (int)(len < sizeof id - 1 ? len : sizeof id - 1), a);
        if (len > WIRE_NAME_MAX || !wire_name_valid(id)) {
            bool printable = len <= WIRE_NAME_MAX;
            for (size_t i = 0; printable && i < len; i++)
                printable = a[i] >= 0x20 && a[i] < 0x7f;
            if (printable)
                snprintf(why, whylen,
                         "\"%s\" is not a node id (1 to %d letters, digits, '.', '_' or '-')", id,
                         WIRE_NAME_MAX);
            else
                snprintf(why, whylen,
                         "item %zu is not a node id (1 to %d letters, digits, '.', '_' or '-')",
                         item, WIRE_NAME_MAX);
            return -EINVAL;
        }
        if (n == S_EXPECT_MAX) {
            snprintf(why, whylen, "more than %d node ids", S_EXPECT_MAX);
            return -EINVAL;
        }
        if (ids) {
            for (size_t k = 0; k < n; k++) {
                if (strcmp(ids[k], id) == 0) {
                    snprintf(why, whylen, "%s is listed twice", id);
                    return -EINVAL;
                }
            }
            memcpy(ids[n], id, len + 1);
        }
        n++;
    }
    if (n == 0) {
        snprintf(why, whylen, "no node id in the list");
        return -EINVAL;
    }
    return (int)n;
}

int collector_expect_check(const char *text, char *why, size_t whylen)
{
    bool by_id;
    int n = s_expect_parse(text, NULL, &by_id, why, whylen);
    if (n <= 0 || !by_id)
        return n;
    /* the second pass finds an id listed twice */
    char(*ids)[WIRE_NAME_MAX + 1] = calloc((size_t)n, sizeof *ids);
    if (!ids) {
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    n = s_expect_parse(text, ids, &by_id, why, whylen);
    free(ids);
    return n;
}

/* Sets up the wait for EXPECT_SOURCES; false when it is not valid or
 * memory is short. */
static bool s_expect_init(collector_t *self, const char *text)
{
    self->expect.first_ms = -1;
    char why[256];
    int n = text ? collector_expect_check(text, why, sizeof why) : 0;
    if (n <= 0)
        return n == 0;
    self->expect.want = (size_t)n;
    self->expect.ids = calloc((size_t)n, sizeof *self->expect.ids);
    self->expect.joined = calloc((size_t)n, sizeof *self->expect.joined);
    if (!self->expect.ids || !self->expect.joined)
        return false;
    if (s_expect_parse(text, self->expect.ids, &self->expect.by_id, why, sizeof why) != n)
        return false;
    metrics_set(self->metrics, self->m.expected_missing, (double)n);
    return true;
}

/* A new source joined: counted towards EXPECT_SOURCES when it is one of
 * those expected (any new node id, for a count); the wait ends with the
 * last of them. */
static void s_expect_join(collector_t *self, const char *id, int64_t now)
{
    if (!self->expect.want)
        return;
    if (self->expect.first_ms < 0)
        self->expect.first_ms = now;
    size_t k = 0;
    size_t known = self->expect.by_id ? self->expect.want : self->expect.njoined;
    while (k < known && strcmp(self->expect.ids[k], id) != 0)
        k++;
    if (self->expect.by_id) {
        if (k == known || self->expect.joined[k])
            return; /* not expected, or back again */
        self->expect.joined[k] = true;
    } else {
        if (k < known || known == self->expect.want)
            return; /* joined before (another epoch), or enough already */
        snprintf(self->expect.ids[k], sizeof self->expect.ids[k], "%s", id);
    }
    self->expect.njoined++;
    metrics_set(self->metrics, self->m.expected_missing,
                (double)(self->expect.want - self->expect.njoined));
    if (self->expect.njoined == self->expect.want && !self->expect.released) {
        self->expect.released = true;
        self->expect.released_ms = now;
        log_info("EXPECT_SOURCES: all %zu expected sources have joined, %" PRId64
                 " ms after the first: writing starts",
                 self->expect.want, now - self->expect.first_ms);
    }
}

/* True while nothing may be written yet: for STARTUP_WAIT_MS after the
 * start; with EXPECT_SOURCES, until the expected sources have joined, for
 * at most STARTUP_WAIT_MS after the first one did. */
static bool s_holding(collector_t *self, int64_t now)
{
    if (!self->expect.want)
        return now - self->opts.start_ms < self->opts.start_grace_ms;
    if (self->expect.released)
        return false;
    if (self->expect.first_ms < 0 || now - self->expect.first_ms < self->opts.start_grace_ms)
        return true;
    self->expect.released = true;
    self->expect.released_ms = now;
    char missing[512] = "";
    size_t o = 0;
    for (size_t k = 0; self->expect.by_id && k < self->expect.want && o < sizeof missing; k++)
        if (!self->expect.joined[k])
            o += (size_t)snprintf(missing + o, sizeof missing - o, "%s%s", o ? ", " : "",
                                  self->expect.ids[k]);
    log_warn("EXPECT_SOURCES: %zu of %zu expected sources joined within STARTUP_WAIT_MS (%" PRId64
             " ms)%s%s: writing starts without the others; their packets may come late",
             self->expect.njoined, self->expect.want, self->opts.start_grace_ms,
             o ? "; missing: " : "", missing);
    return false;
}

/* When s_holding may end by itself, or INT64_MAX. */
static int64_t s_hold_deadline(const collector_t *self, int64_t now)
{
    int64_t t = INT64_MAX;
    if (!self->expect.want)
        t = self->opts.start_ms + self->opts.start_grace_ms;
    else if (!self->expect.released && self->expect.first_ms >= 0)
        t = self->expect.first_ms + self->opts.start_grace_ms;
    return t > now ? t : INT64_MAX;
}

/* ---- interface statistics (the ISBs) --------------------------------- */

/* Makes room for interface ids below `n`; a new one starts now. */
static bool s_ifstats_grow(collector_t *self, size_t n)
{
    if (n <= self->nifs)
        return true;
    s_ifstat_t *f = realloc(self->ifs, n * sizeof *f);
    if (!f)
        return false;
    uint64_t now = clock_wall_ns();
    for (size_t i = self->nifs; i < n; i++)
        f[i] = (s_ifstat_t){.start_ns = now};
    self->ifs = f;
    self->nifs = n;
    return true;
}

/* The ISB of interface `id` (the header's contract above). */
static void s_isb(collector_t *self, uint32_t id, uint64_t now_ns)
{
    const s_ifstat_t *f = &self->ifs[id];
    char comment[512], agent[256] = "";
    const wire_stats_t *st = &f->st;
    pcapng_stats_t isb = {.ts_ns = now_ns,
                          .start_ns = f->start_ns,
                          .have = PCAPNG_ISB_USRDELIV,
                          .usrdeliv = f->written,
                          .comment = comment};
    if (f->have_stats && (st->flags & WIRE_STATS_KERNEL)) {
        isb.have |= PCAPNG_ISB_IFRECV | PCAPNG_ISB_IFDROP | PCAPNG_ISB_OSDROP;
        isb.ifrecv = st->recv;
        isb.ifdrop = st->drop + st->ifdrop;
        isb.osdrop = st->drop;
        snprintf(agent, sizeof agent,
                 "%" PRIu64 " received, %" PRIu64 " dropped by the kernel, %" PRIu64
                 " dropped by the interface, ",
                 st->recv, st->drop, st->ifdrop);
    }
    int n = f->have_stats
                ? snprintf(comment, sizeof comment,
                           "tapmesh: agent counters (epoch %" PRIu64 ", since it began): %s%" PRIu64
                           " sent, %" PRIu64 " dead-lettered; ",
                           f->epoch, agent, st->sent, st->dead)
                : snprintf(comment, sizeof comment, "tapmesh: no agent counters received; ");
    snprintf(comment + n, sizeof comment - (size_t)n,
             "this file: %" PRIu64 " written, %" PRIu64 " late, %" PRIu64 " forced", f->written,
             f->late, f->forced);
    int rc = output_stats(self->output, id, &isb);
    if (rc < 0)
        log_warn("OUTPUT: %s: interface statistics not written: %s", output_name(self->output),
                 strerror(-rc));
}

/* output_closing_fn: an ISB per interface into the file being closed; the
 * next file's counts start from zero, now. */
static void s_closing(void *ctx, output_t *output)
{
    collector_t *self = ctx;
    unsigned n = output_interfaces(output);
    if (!s_ifstats_grow(self, n)) {
        log_warn("OUTPUT: %s: out of memory: no interface statistics", output_name(output));
        return;
    }
    uint64_t now = clock_wall_ns();
    for (uint32_t i = 0; i < n; i++) {
        s_isb(self, i, now);
        s_ifstat_t *f = &self->ifs[i];
        f->start_ns = now;
        f->have_first = false;
        f->written = f->late = f->forced = 0;
    }
}

collector_t *collector_new(output_t *output, const collector_opts_t *opts, metrics_t *metrics,
                           collector_reply_fn reply, void *ctx)
{
    collector_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->sources = calloc(opts->max_sources ? opts->max_sources : 1, sizeof *self->sources);
    if (!self->sources) {
        free(self);
        return NULL;
    }
    self->output = output;
    self->opts = *opts;
    if (!self->opts.max_batch_bytes)
        self->opts.max_batch_bytes = WIRE_PAYLOAD_MAX;
    if (!self->opts.max_sources_per_peer)
        self->opts.max_sources_per_peer = self->opts.max_sources;
    self->peers = peers_new(opts->max_sources, opts->hello_rate);
    if (!self->peers) {
        free(self->sources);
        free(self);
        return NULL;
    }
    if (getrandom(&self->peer_seed, sizeof self->peer_seed, GRND_NONBLOCK) !=
        (ssize_t)sizeof self->peer_seed)
        self->peer_seed = (uint64_t)(uintptr_t)self ^ (uint64_t)opts->start_ms;
    self->buffered_since_ms = -1;
    self->metrics = metrics;
    self->reply = reply;
    self->ctx = ctx;
    self->unpack = compress_new(0);
    if (!self->unpack) {
        peers_destroy(&self->peers);
        free(self->sources);
        free(self);
        return NULL;
    }
    merge_init(&self->merge);
    s_register(self);
    if (output)
        output_on_closing(output, s_closing, self);
    if (!s_expect_init(self, opts->expect_sources)) {
        collector_destroy(&self);
        return NULL;
    }
    return self;
}

static void s_source_free(s_source_t *s)
{
    while (s->qhead) {
        s_batch_t *b = s->qhead;
        s->qhead = b->next;
        zmq_msg_close(&b->payload);
        free(b->comment);
        free(b);
    }
    seqset_free(&s->seen);
    seqset_free(&s->skipped);
    seqset_free(&s->other);
    journal_state_free(&s->restored);
    free(s->ifaces);
    free(s->acks);
    free(s);
}

void collector_destroy(collector_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    collector_t *self = *self_p;
    for (size_t i = 0; i < self->nsources; i++)
        s_source_free(self->sources[i]);
    if (self->output)
        output_on_closing(self->output, NULL, NULL);
    free(self->ifs);
    free(self->sources);
    compress_destroy(&self->unpack);
    free(self->done);
    free(self->expect.ids);
    free(self->expect.joined);
    merge_free(&self->merge);
    peers_destroy(&self->peers);
    free(self);
    *self_p = NULL;
}

/* ---- helpers --------------------------------------------------------- */

/* Counts a rejected message; logs it once per (peer, reason). */
static void s_reject(collector_t *self, wire_err_t why, const char *detail)
{
    rejects_drop(&self->rejects, self->peer, why, detail, self->now_ms);
}

/* Encodes self->out and sends it along `route`. */
static void s_reply(collector_t *self, const route_t *route)
{
    size_t len = wire_encode(&self->out, self->cmd, sizeof self->cmd);
    if (len == 0)
        return;
    if (self->reply(self->ctx, route, self->cmd, len) < 0)
        metrics_add(self->metrics, self->m.acks_failed, 1);
}

static void s_refuse(collector_t *self, const route_t *route, const char *source, uint64_t epoch,
                     wire_refuse_t code, const char *reason)
{
    wire_msg_init(&self->out, WIRE_REFUSE, source, epoch);
    self->out.refuse.code = (uint8_t)code;
    snprintf(self->out.refuse.reason, sizeof self->out.refuse.reason, "%s", reason);
    s_reply(self, route);
}

/* opts.loss, when set */
static void s_loss(collector_t *self, const char *source, const char *iface, const char *reason,
                   uint64_t count)
{
    if (self->opts.loss && count)
        self->opts.loss(self->opts.tap_ctx, source, iface, reason, count);
}

static s_source_t *s_find(const collector_t *self, const char *id, uint64_t epoch)
{
    for (size_t i = 0; i < self->nsources; i++) {
        s_source_t *s = self->sources[i];
        if (s->epoch == epoch && strcmp(s->id, id) == 0)
            return s;
    }
    return NULL;
}

/* True when a state may make room: nothing of it is queued, no
 * acknowledgement is owed, and nothing restored from before a restart
 * waits for its resend. */
static bool s_drained(const s_source_t *s)
{
    return !s->qhead && !s->nacks && !(s->restored && s->restored->npartials);
}

/* Frees a slot for a new state of `peer`. With `own`, among that peer's
 * own states that ended or went idle; otherwise from the peer that holds
 * the most: one that ended or went idle, or a live one when its peer holds
 * more than `peer` will. Among equals, the longest silent. False when none
 * may go. */
static bool s_evict(collector_t *self, uint64_t peer, bool own)
{
    size_t asker = peers_held(self->peers, peer) + 1;
    size_t victim = SIZE_MAX, vheld = 0;
    bool vquiet = false;
    for (size_t i = 0; i < self->nsources; i++) {
        s_source_t *s = self->sources[i];
        bool quiet = s->ended || s->idle;
        if (!s_drained(s) || (own && (s->peer != peer || !quiet)))
            continue;
        size_t held = peers_held(self->peers, s->peer);
        if (!quiet && held <= asker)
            continue;
        const s_source_t *v = victim == SIZE_MAX ? NULL : self->sources[victim];
        if (!v || held > vheld || (held == vheld && quiet && !vquiet) ||
            (held == vheld && quiet == vquiet && s->last_heard_ms < v->last_heard_ms)) {
            victim = i;
            vheld = held;
            vquiet = quiet;
        }
    }
    if (victim == SIZE_MAX)
        return false;
    s_source_t *s = self->sources[victim];
    log_debug("source %s epoch %" PRIu64 " forgotten to make room (its peer held %zu)", s->id,
              s->epoch, vheld);
    peers_hold(self->peers, s->peer, -1);
    self->missing -= s->missing;
    s_source_free(s);
    self->sources[victim] = self->sources[--self->nsources];
    return true;
}

/* The flood limits for a new state of the sender of `m` (HELLO): its
 * allowance of new sources, its own limit, and room among all. True when it
 * may be taken; otherwise counted and logged (once per peer). */
static bool s_room(collector_t *self, const wire_msg_t *m, int64_t now)
{
    uint64_t peer = self->peer_key;
    char what[WIRE_NAME_MAX + 160];
    if (!peers_admit(self->peers, peer, now)) {
        metrics_add(self->metrics, self->m.refused_hello_rate, 1);
        s_loss(self, m->source, "", "refused_hello_rate", 1);
        snprintf(what, sizeof what,
                 "HELLO of source %s: more than %u new sources a second (HELLO_RATE_PER_PEER)",
                 m->source, self->opts.hello_rate);
        rejects_note(&self->rejects, self->peer, REJECTS_HELLO_RATE, what, now);
        return false;
    }
    size_t held = peers_held(self->peers, peer);
    if (held >= self->opts.max_sources_per_peer && !s_evict(self, peer, true)) {
        metrics_add(self->metrics, self->m.refused_peer_limit, 1);
        s_loss(self, m->source, "", "refused_peer_limit", 1);
        snprintf(what, sizeof what,
                 "HELLO of source %s: this peer holds %zu sources, none ended "
                 "(MAX_SOURCES_PER_PEER)",
                 m->source, held);
        rejects_note(&self->rejects, self->peer, REJECTS_PEER_LIMIT, what, now);
        return false;
    }
    if (self->nsources == self->opts.max_sources && !s_evict(self, peer, false)) {
        metrics_add(self->metrics, self->m.refused_full, 1);
        s_loss(self, m->source, "", "refused_full", 1);
        snprintf(what, sizeof what,
                 "HELLO of source %s: %zu sources already, none that may make room "
                 "(MAX_SOURCES)",
                 m->source, self->nsources);
        rejects_note(&self->rejects, self->peer, REJECTS_FULL, what, now);
        return false; /* the agent retries its HELLO after its timeout */
    }
    return true;
}

static void s_queue_ack(s_source_t *s, uint64_t seq, uint16_t part)
{
    if (s->nacks == s->acks_cap) {
        size_t cap = s->acks_cap ? s->acks_cap * 2 : 64;
        wire_ack_entry_t *a = realloc(s->acks, cap * sizeof *a);
        if (!a) {
            log_error("source %s: out of memory for an acknowledgement (the batch will be "
                      "resent and acknowledged as a duplicate)",
                      s->id);
            return;
        }
        s->acks = a;
        s->acks_cap = cap;
    }
    s->acks[s->nacks++] = (wire_ack_entry_t){.seq = seq, .part = part};
}

/* ---- messages -------------------------------------------------------- */

static s_source_t *s_source_new(collector_t *self, const wire_msg_t *m, const uint32_t *ifid)
{
    s_source_t *s = calloc(1, sizeof *s);
    if (s)
        s->ifaces = malloc(m->hello.iface_count * sizeof *s->ifaces);
    if (!s || !s->ifaces) {
        free(s);
        return NULL;
    }
    snprintf(s->id, sizeof s->id, "%.64s", m->source);
    snprintf(s->description, sizeof s->description, "%.1024s", m->hello.description);
    s->epoch = m->epoch;
    s->nifaces = m->hello.iface_count;
    memcpy(s->ifaces, m->hello.ifaces, s->nifaces * sizeof *s->ifaces);
    memcpy(s->ifid, ifid, s->nifaces * sizeof *ifid);
    seqset_init(&s->seen, S_SEQSET_RANGES);
    seqset_init(&s->skipped, S_SKIPPED_RANGES);
    s->restored = self->opts.journal ? journal_take(self->opts.journal, s->id, s->epoch) : NULL;
    if (s->restored) {
        s->ended = s->restored->ended;
        /* what was written before the restart counts as taken */
        seqset_free(&s->seen);
        s->seen = s->restored->complete;
        seqset_init(&s->restored->complete, 1);
        uint64_t end = seqset_end(&s->seen);
        log_info("source %s epoch %" PRIu64 ": %" PRIu64 " batches (and %zu in part) were "
                 "written before a restart; their resends are acknowledged, not written again",
                 s->id, s->epoch, end - seqset_missing_below(&s->seen, end),
                 s->restored->npartials);
    }
    merge_lane_init(&s->lane, self->joined++);
    char labels[WIRE_NAME_MAX + 16];
    snprintf(labels, sizeof labels, "source=\"%s\"", s->id);
    s->m_packets = metrics_counter(self->metrics, "tapmesh_collect_source_packets_total",
                                   "Packets written, per source", labels);
    return s;
}

static void s_on_hello(collector_t *self, const route_t *route, int64_t now)
{
    /* §3.1: the tag asks for FEATURES; it is not part of the description */
    bool wants_zstd = wire_compress_tag_take(self->in.hello.description);
    const wire_msg_t *m = &self->in;
    s_source_t *s = s_find(self, m->source, m->epoch);
    if (s) {
        bool same = s->nifaces == m->hello.iface_count;
        for (unsigned i = 0; same && i < s->nifaces; i++)
            same = s->ifaces[i].linktype == m->hello.ifaces[i].linktype &&
                   strcmp(s->ifaces[i].name, m->hello.ifaces[i].name) == 0;
        if (!same) {
            metrics_add(self->metrics, self->m.refused_conflict, 1);
            s_loss(self, m->source, "", "refused_conflict", 1);
            log_warn("source %s epoch %" PRIu64 ": HELLO with other interfaces than before: "
                     "refused",
                     m->source, m->epoch);
            s_refuse(self, route, m->source, m->epoch, WIRE_REFUSE_CONFLICT,
                     "HELLO differs from an earlier HELLO of this source and epoch");
            return;
        }
    } else {
        if (!s_room(self, m, now))
            return; /* unanswered: nothing is written for it */
        uint32_t ifid[WIRE_IFACES_MAX];
        for (unsigned i = 0; i < m->hello.iface_count; i++) {
            char why[512];
            /* §3.1's tags become if_os and if_filter, not description */
            wire_iface_t f = m->hello.ifaces[i];
            char os[WIRE_TEXT_MAX + 1], filter[WIRE_TEXT_MAX + 1];
            wire_iface_tags_split(m->hello.ifaces[i].description, f.description, os, filter);
            int id = output_interface_info(self->output, m->source, m->hello.description, &f,
                                           filter, os, why, sizeof why);
            if (id == -ENOBUFS && s_commit(self, now) == 0) /* room for the IDB first */
                id = output_interface_info(self->output, m->source, m->hello.description, &f,
                                           filter, os, why, sizeof why);
            if (id == -EPROTOTYPE) {
                metrics_add(self->metrics, self->m.refused_linktype, 1);
                s_loss(self, m->source, f.name, "refused_linktype", 1);
                log_warn("source %s refused: %s", m->source, why);
                s_refuse(self, route, m->source, m->epoch, WIRE_REFUSE_LINKTYPE, why);
                return;
            }
            if (id < 0) {
                log_error("source %s: %s", m->source, why);
                return; /* no WELCOME: the agent asks again */
            }
            ifid[i] = (uint32_t)id;
        }
        if (!s_ifstats_grow(self, output_interfaces(self->output))) {
            log_error("source %s: out of memory", m->source);
            return;
        }
        s = s_source_new(self, m, ifid);
        if (!s) {
            log_error("source %s: out of memory", m->source);
            return;
        }
        s->peer = self->peer_key;
        s->joined_ms = now;
        peers_hold(self->peers, s->peer, 1);
        self->sources[self->nsources++] = s;
        log_info("source %s epoch %" PRIu64 " joined: %u interface(s), first %s link type %u",
                 s->id, s->epoch, s->nifaces, s->ifaces[0].name, s->ifaces[0].linktype);
        s_expect_join(self, s->id, now);
    }
    if (s->peer != self->peer_key) { /* the source came by another way */
        peers_hold(self->peers, s->peer, -1);
        s->peer = self->peer_key;
        peers_hold(self->peers, s->peer, 1);
    }
    s->route = *route;
    s->last_heard_ms = now;
    s->idle = false;
    s_settled(self, s, m->hello.settled);
    if (wants_zstd) { /* §3.8: before the WELCOME, so that it is known by then */
        wire_msg_init(&self->out, WIRE_FEATURES, s->id, s->epoch);
        self->out.features.flags = WIRE_FEATURE_ZSTD;
        s_reply(self, route);
    }
    wire_msg_init(&self->out, WIRE_WELCOME, s->id, s->epoch);
    s_reply(self, route);
}

/* The source of the message in `in`, or NULL after counting it and telling
 * the sender to say HELLO again. */
static s_source_t *s_lookup(collector_t *self, const route_t *route)
{
    const wire_msg_t *m = &self->in;
    s_source_t *s = s_find(self, m->source, m->epoch);
    if (!s) {
        s_reject(self, WIRE_ERR_SOURCE, m->source);
        s_refuse(self, route, m->source, m->epoch, WIRE_REFUSE_UNKNOWN_SOURCE,
                 "unknown source or epoch: send HELLO");
    }
    return s;
}

/* The source of a BATCH/HEARTBEAT/END (s_lookup), heard from now. */
static s_source_t *s_known(collector_t *self, const route_t *route, int64_t now)
{
    s_source_t *s = s_lookup(self, route);
    if (!s)
        return NULL;
    s->route = *route;
    s->last_heard_ms = now;
    s->progressed = true;
    if (s->idle)
        log_info("source %s epoch %" PRIu64 " is back", s->id, s->epoch);
    s->idle = false;
    return s;
}

/* True while `s` holds the merge back: not ended, not idle, and fed (or
 * just joined). */
static bool s_waited_for(const collector_t *self, const s_source_t *s, int64_t now)
{
    (void)self;
    return !s->ended && !s->idle && (s->progressed || now - s->joined_ms < S_HELLO_ONLY_HOLD_MS);
}

static bool s_in_queue(const s_source_t *s, uint64_t seq, uint16_t part)
{
    for (const s_batch_t *b = s->qhead; b; b = b->next)
        if (b->seq == seq && b->part == part)
            return true;
    return false;
}

/* A second lane of one source at this collector (two relays' shares of the
 * same batches ending here): deduplicated by (seq, part) in a set of its
 * own; its watermarks are not followed (the first lane's are). */
static bool s_other_lane_seen(const s_source_t *s, uint64_t seq, uint16_t part)
{
    return seqset_has(&s->other, seq * WIRE_PARTS_MAX + part);
}

static int s_other_lane_take(s_source_t *s, uint64_t seq, uint16_t part)
{
    if (!s->other.max)
        seqset_init(&s->other, S_SEQSET_RANGES);
    return seqset_add(&s->other, seq * WIRE_PARTS_MAX + part, NULL) < 0 ? -ENOMEM : 0;
}

/* "relay1>relay2" from the hop records, "direct" without any. */
static void s_path(const wire_msg_t *m, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < m->batch.hop_count && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? ">" : "", m->batch.hops[i].node);
    if (!m->batch.hop_count)
        snprintf(out, len, "direct");
}

/* Counts the batch's packets by the path it came along (per source, the
 * metric id of its last path is kept: paths rarely change). */
static void s_count_path(collector_t *self, s_source_t *s, const wire_msg_t *m)
{
    char path[sizeof s->path];
    s_path(m, path, sizeof path);
    if (strcmp(path, s->path) != 0) {
        char labels[sizeof path + 16];
        snprintf(labels, sizeof labels, "path=\"%s\"", path);
        s->m_path = metrics_counter(self->metrics, "tapmesh_collect_path_packets_total",
                                    "Packets taken, by the relays they came through", labels);
        snprintf(s->path, sizeof s->path, "%s", path);
    }
    metrics_add(self->metrics, s->m_path, m->batch.packet_count);
}

/* ANNOTATE=hops: "hops: relay1@<ns> relay2@<ns>" (receive times). */
static char *s_hops_comment(const wire_msg_t *m)
{
    size_t len = 8 + m->batch.hop_count * (WIRE_NAME_MAX + 24) + 16;
    char *c = malloc(len);
    if (!c)
        return NULL;
    size_t o = (size_t)snprintf(c, len, "hops:");
    for (unsigned i = 0; i < m->batch.hop_count; i++)
        o += (size_t)snprintf(c + o, len - o, " %s@%" PRIu64, m->batch.hops[i].node,
                              m->batch.hops[i].recv_ns);
    if (!m->batch.hop_count)
        snprintf(c + o, len - o, " direct");
    return c;
}

static void s_lane_refresh(collector_t *self, s_source_t *s)
{
    if (!s->qhead) {
        merge_remove(&self->merge, &s->lane);
        return;
    }
    s->lane.ts = s->qhead->head.ts_ns;
    if (merge_update(&self->merge, &s->lane) < 0)
        log_error("merge: out of memory");
}

/* Queues `b` in seq order (a resend may come after later batches), but
 * never before a head batch that is partly written. Batches usually arrive
 * in order: the walk stops at once. */
static void s_enqueue(s_source_t *s, s_batch_t *b)
{
    if (!s->qhead) {
        s->qhead = s->qtail = b;
        return;
    }
    if (s->qtail->seq < b->seq) {
        s->qtail->next = b;
        s->qtail = b;
        return;
    }
    if (b->seq < s->qhead->seq && s->qhead->left == s->qhead->total) {
        b->next = s->qhead;
        s->qhead = b;
        return;
    }
    s_batch_t *prev = s->qhead;
    while (prev->next && prev->next->seq < b->seq)
        prev = prev->next;
    b->next = prev->next;
    prev->next = b;
    if (!b->next)
        s->qtail = b;
}

/* Seqs below `limit` neither taken nor skipped (gaps). */
static uint64_t s_unfilled(const s_source_t *s, uint64_t limit)
{
    uint64_t missing = seqset_missing_below(&s->seen, limit);
    for (size_t i = 0; i < s->skipped.n && s->skipped.r[i].lo < limit; i++) {
        uint64_t lo = s->skipped.r[i].lo;
        uint64_t hi = s->skipped.r[i].hi < limit ? s->skipped.r[i].hi : limit;
        missing -= hi - lo - seqset_count_in(&s->seen, lo, hi);
    }
    return missing;
}

/* The source's gap count, and the gauge, after its sets changed. Returns
 * the new count. */
static uint64_t s_recount(collector_t *self, s_source_t *s)
{
    uint64_t missing = s_unfilled(s, seqset_end(&s->seen));
    self->missing = self->missing - s->missing + missing;
    s->missing = missing;
    metrics_set(self->metrics, self->m.missing, (double)self->missing);
    return missing;
}

/* Takes seq into the source's set, keeping the gap count. */
static int s_take_seq(collector_t *self, s_source_t *s, uint64_t seq)
{
    uint64_t given_up = 0;
    int rc = seqset_add(&s->seen, seq, &given_up);
    if (rc < 0)
        return rc;
    if (given_up) {
        metrics_add(self->metrics, self->m.dedup_given_up, given_up);
        log_warn("source %s: %" PRIu64 " missing batches no longer tracked", s->id, given_up);
    }
    uint64_t was = s->missing;
    if (s_recount(self, s) > was && was == 0)
        log_info("source %s epoch %" PRIu64 ": a gap: batch %" PRIu64
                 " came before some earlier ones (resends usually fill it)",
                 s->id, s->epoch, seq);
    return 0;
}

/* HELLO's `settled` (proto/wire-v2.md §3.1): the batches below it were
 * acknowledged — by this collector before a restart, or by another one a
 * relay sent them to — so they are not waited for, and one that still
 * comes is a duplicate. */
static void s_settled(collector_t *self, s_source_t *s, uint64_t settled)
{
    if (settled == 0 || (s->seen.n && s->seen.r[0].lo == 0 && s->seen.r[0].hi >= settled))
        return;
    int rc = seqset_add_range(&s->seen, 0, settled);
    if (rc < 0) {
        log_warn("source %s epoch %" PRIu64 ": batches below %" PRIu64
                 " are settled, but cannot be noted (%s): waited for as missing",
                 s->id, s->epoch, settled, strerror(-rc));
        return;
    }
    s_recount(self, s);
    s_settle(self, s);
}

/* Applies the source's newest promise once nothing below it is missing
 * (taken, or skipped: dead-lettered by the source). */
static void s_settle(collector_t *self, s_source_t *s)
{
    uint64_t prefix = seqset_prefix_union(&s->seen, &s->skipped);
    if (prefix < s->promise_seq) {
        log_debug("source %s: watermark waits for batch %" PRIu64 " (promise up to %" PRIu64
                  ", %zu ranges, first [%" PRIu64 ", %" PRIu64 "))",
                  s->id, prefix, s->promise_seq, s->seen.n, s->seen.n ? s->seen.r[0].lo : 0,
                  s->seen.n ? s->seen.r[0].hi : 0);
        return;
    }
    if (s->promise_wm > s->watermark)
        s->watermark = s->promise_wm;
    if (s->promise_end && !s->ended) {
        s->ended = true;
        log_info("source %s epoch %" PRIu64 " ended after %" PRIu64 " batches", s->id, s->epoch,
                 s->promise_seq);
        if (self->opts.journal && journal_end(self->opts.journal, s->id, s->epoch) < 0)
            log_warn("%s", journal_error(self->opts.journal));
    }
}

static void s_promise(collector_t *self, s_source_t *s, uint64_t wm, uint64_t next_seq, bool end)
{
    if (wm > s->promise_wm)
        s->promise_wm = wm;
    if (next_seq > s->promise_seq)
        s->promise_seq = next_seq;
    s->promise_end |= end;
    s_settle(self, s);
}

/* §3.9: seqs the source dead-lettered. Those not taken are noted as
 * skipped (bounded), so that the watermark does not wait for them; a
 * replay of one is still new. Those taken change nothing. */
static void s_on_dead(collector_t *self, const route_t *route)
{
    const wire_msg_t *m = &self->in;
    s_source_t *s = s_lookup(self, route);
    if (!s)
        return;
    uint64_t added = 0, refused = 0;
    for (unsigned i = 0; i < m->dead.count; i++) {
        const wire_range_t *d = &m->dead.ranges[i];
        uint64_t from = d->lo, lo, hi;
        while (seqset_next_gap(&s->seen, from, d->hi, &lo, &hi)) {
            uint64_t before = seqset_count_in(&s->skipped, lo, hi);
            int rc = seqset_add_range(&s->skipped, lo, hi);
            if (rc == 0) {
                added += hi - lo - before;
            } else {
                refused++;
                if (rc == -ENOMEM)
                    log_error("source %s: out of memory noting dead-lettered batches", s->id);
            }
            from = hi;
        }
    }
    metrics_add(self->metrics, self->m.dead_refused, refused);
    if (refused && !s->skipped_full_told) {
        s->skipped_full_told = true;
        log_warn("source %s epoch %" PRIu64 ": %" PRIu64 " ranges of dead-lettered batches not "
                 "noted (%d kept already): the merge waits for them as for gaps",
                 s->id, s->epoch, refused, S_SKIPPED_RANGES);
    }
    if (!added)
        return;
    metrics_add(self->metrics, self->m.dead_skipped, added);
    log_info("source %s epoch %" PRIu64 ": %" PRIu64 " batches dead-lettered by the source: not "
             "waited for (a replay of its dead-letter file is still written)",
             s->id, s->epoch, added);
    s_recount(self, s);
    s_settle(self, s);
}

/* Packets of this batch written before a restart (STATE_DIR), or 0. */
static uint32_t s_restored_written(s_source_t *s, uint64_t seq, uint16_t part)
{
    journal_state_t *st = s->restored;
    for (size_t i = 0; st && i < st->npartials; i++) {
        if (st->partials[i].seq == seq && st->partials[i].part == part) {
            uint32_t w = st->partials[i].written;
            st->partials[i] = st->partials[--st->npartials];
            return w;
        }
    }
    return 0;
}

/* A BATCH whose payload frame (PACKETS, taken over) passed the framing
 * and size checks. */
static void s_on_packets(collector_t *self, zmq_msg_t *payload, const route_t *route, int64_t now)
{
    const wire_msg_t *m = &self->in;
    size_t plen = zmq_msg_size(payload);
    s_source_t *s = s_known(self, route, now);
    if (!s)
        return;
    wire_err_t err = wire_packets_check(zmq_msg_data(payload), plen, m->batch.packet_count,
                                        s->nifaces, NULL, NULL);
    if (err != WIRE_OK) {
        s_reject(self, err, "in the payload");
        return;
    }
    /* the source's first lane (its own batches, or a relay's share of them)
     * carries its sequence; a second lane reaching this collector too is
     * only deduplicated (seq and part), see s_other_lane */
    if (!s->lane_set) {
        s->lane_set = true;
        s->lane_part = m->batch.part;
        s->lane_parts = m->batch.parts;
    }
    bool main_lane = m->batch.part == s->lane_part && m->batch.parts == s->lane_parts;
    uint64_t promise_wm = m->batch.watermark, promise_seq = m->batch.seq + 1;
    bool dup = main_lane ? seqset_has(&s->seen, m->batch.seq)
                         : s_other_lane_seen(s, m->batch.seq, m->batch.part);
    if (dup) {
        if (main_lane)
            s_promise(self, s, promise_wm, promise_seq, false);
        metrics_add(self->metrics, self->m.duplicates, 1);
        if (!s_in_queue(s, m->batch.seq, m->batch.part))
            s_queue_ack(s, m->batch.seq, m->batch.part); /* written before: settle it */
        return;
    }
    s_count_path(self, s, m);
    if (m->batch.packet_count == 0) {
        /* nothing to write (a relay's filter or split left none): taken and
         * settled at once */
        if ((main_lane ? s_take_seq(self, s, m->batch.seq)
                       : s_other_lane_take(s, m->batch.seq, m->batch.part)) < 0)
            return;
        s_queue_ack(s, m->batch.seq, m->batch.part);
        if (main_lane) {
            s_done_seq(self, s, m->batch.seq, m->batch.part, 0);
            s_promise(self, s, promise_wm, promise_seq, false);
        }
        return;
    }
    s_batch_t *b = calloc(1, sizeof *b);
    if (b && self->opts.annotate_hops)
        b->comment = s_hops_comment(m);
    if (!b || (main_lane ? s_take_seq(self, s, m->batch.seq)
                         : s_other_lane_take(s, m->batch.seq, m->batch.part)) < 0) {
        if (b)
            free(b->comment);
        free(b);
        log_error("out of memory for a batch of %s", s->id);
        return; /* not acknowledged: the source resends */
    }
    b->main_lane = main_lane;
    zmq_msg_init(&b->payload);
    zmq_msg_move(&b->payload, payload);
    b->seq = m->batch.seq;
    b->part = m->batch.part;
    b->total = b->left = m->batch.packet_count;
    b->arrived_ms = now;
    /* after the move: a small message's bytes live in the zmq_msg_t itself */
    b->data = zmq_msg_data(&b->payload);
    b->len = plen;
    b->off = wire_packet_at(b->data, WIRE_FRAME_HDR, &b->head);
    uint32_t skip = s_restored_written(s, b->seq, b->part);
    if (skip >= b->left) {
        skip = b->left - 1; /* cannot happen: a complete batch is in `seen` */
    }
    for (uint32_t i = 0; i < skip; i++) {
        b->off = wire_packet_at(b->data, b->off, &b->head);
        b->left--;
    }
    metrics_add(self->metrics, self->m.restored_skipped, skip);
    s_enqueue(s, b);
    s->queued_bytes += plen;
    self->queued_bytes += plen;
    self->queued_packets += b->left;
    metrics_add(self->metrics, self->m.batches, 1);
    if (s->qhead == b)
        s_lane_refresh(self, s); /* a new head: the lane's key changed */
    if (main_lane)
        s_promise(self, s, promise_wm, promise_seq, false);
}

static void s_on_batch(collector_t *self, frames_t *in, const route_t *route, int64_t now)
{
    const wire_msg_t *m = &self->in;
    zmq_msg_t *payload = frames_payload(in);
    if (!payload) {
        s_reject(self, WIRE_ERR_FRAMING, "BATCH without its payload frame");
        return;
    }
    size_t plen = zmq_msg_size(payload);
    if (plen != m->batch.payload_len) {
        s_reject(self, WIRE_ERR_FRAMING, "payload_len is not the payload's size");
        return;
    }
    const uint8_t *data = zmq_msg_data(payload);
    if (!compress_is_packed(data, plen)) {
        if (plen > self->opts.max_batch_bytes) {
            s_reject(self, WIRE_ERR_OVERSIZE, "larger than MAX_BATCH_MB");
            return;
        }
        s_on_packets(self, payload, route, now);
        return;
    }
    /* §4.1: the declared length is bounded before a buffer is sized by it */
    uint32_t declared;
    wire_err_t err = compress_peek(data, plen, &declared);
    if (err != WIRE_OK) {
        s_reject(self, err, "in the compressed payload's header");
        return;
    }
    if (declared > self->opts.max_batch_bytes) {
        s_reject(self, WIRE_ERR_OVERSIZE, "larger than MAX_BATCH_MB once decompressed");
        return;
    }
    if (!s_find(self, m->source, m->epoch)) {
        s_known(self, route, now); /* refused before any work: HELLO first */
        return;
    }
    zmq_msg_t plain;
    if (zmq_msg_init_size(&plain, declared) < 0) {
        log_error("out of memory decompressing a batch of %s", m->source);
        return; /* not acknowledged: the source resends */
    }
    err = compress_unpack(self->unpack, data, plen, zmq_msg_data(&plain), declared);
    if (err != WIRE_OK) {
        s_reject(self, err, "in the compressed payload");
    } else {
        metrics_add(self->metrics, self->m.zstd_batches, 1);
        metrics_add(self->metrics, self->m.zstd_bytes, plen);
        metrics_add(self->metrics, self->m.zstd_plain_bytes, declared);
        s_on_packets(self, &plain, route, now);
    }
    zmq_msg_close(&plain);
}

/* §3.7: the source's counters, kept per interface of the output for its
 * ISBs (the latest STATS wins). Nothing else of the source changes: STATS
 * carries no watermark. */
static void s_on_stats(collector_t *self, const route_t *route)
{
    const wire_msg_t *m = &self->in;
    s_source_t *s = s_lookup(self, route);
    if (!s)
        return;
    for (unsigned i = 0; i < m->stats.count; i++)
        if (m->stats.entries[i].ifindex >= s->nifaces) {
            s_reject(self, WIRE_ERR_RANGE, "STATS for an interface its HELLO did not announce");
            return;
        }
    for (unsigned i = 0; i < m->stats.count; i++) {
        const wire_stats_t *e = &m->stats.entries[i];
        uint32_t id = s->ifid[e->ifindex];
        if (id >= self->nifs)
            continue; /* cannot happen: grown at HELLO */
        s_ifstat_t *f = &self->ifs[id];
        /* the counts run from the epoch's start: what grew since the last */
        wire_stats_t was = {0};
        if (f->have_stats && f->epoch == s->epoch)
            was = f->st;
        const char *iface = s->ifaces[e->ifindex].name;
        if (e->flags & WIRE_STATS_KERNEL) {
            s_loss(self, s->id, iface, "kernel_drop", e->drop > was.drop ? e->drop - was.drop : 0);
            s_loss(self, s->id, iface, "if_drop",
                   e->ifdrop > was.ifdrop ? e->ifdrop - was.ifdrop : 0);
        }
        s_loss(self, s->id, iface, "dead_letter", e->dead > was.dead ? e->dead - was.dead : 0);
        f->have_stats = true;
        f->epoch = s->epoch;
        f->st = *e;
    }
}

void collector_on_message(collector_t *self, frames_t *in, int64_t now_ms)
{
    self->peer = rejects_peer(in);
    self->peer_key = frames_peer(in, self->peer_seed);
    self->now_ms = now_ms;
    route_t route;
    frames_route(in, &route);
    size_t len;
    const uint8_t *cmd = frames_command(in, &len);
    if (!cmd) {
        s_reject(self, WIRE_ERR_FRAMING, "not delimiter + command [+ payload]");
        return;
    }
    wire_msg_t *m = &self->in;
    wire_err_t err = wire_decode(cmd, len, m);
    if (err != WIRE_OK) {
        s_reject(self, err, NULL);
        return;
    }
    if (m->type != WIRE_BATCH && frames_payload(in)) {
        s_reject(self, WIRE_ERR_FRAMING, "payload frame after a command other than BATCH");
        return;
    }
    bool from_source = m->type == WIRE_HELLO || m->type == WIRE_BATCH ||
                       m->type == WIRE_HEARTBEAT || m->type == WIRE_END || m->type == WIRE_STATS ||
                       m->type == WIRE_DEAD;
    if (from_source && self->opts.trust &&
        !trust_allows(self->opts.trust, in->user_id, m->source)) {
        /* a spoofed source: unanswered (a REFUSE would tell the sender
         * something), and nothing of the real source's state changes */
        metrics_add(self->metrics, self->m.identity, 1);
        char what[WIRE_NAME_MAX + FRAMES_USER_ID_MAX + 96];
        snprintf(what, sizeof what, "key %s may not speak for source %s",
                 *in->user_id ? in->user_id : "(none)", m->source);
        rejects_note(&self->rejects, self->peer, REJECTS_IDENTITY, what, now_ms);
        return;
    }
    s_source_t *s;
    switch (m->type) {
    case WIRE_HELLO:
        s_on_hello(self, &route, now_ms);
        break;
    case WIRE_BATCH:
        s_on_batch(self, in, &route, now_ms);
        break;
    case WIRE_HEARTBEAT:
    case WIRE_END:
        if (!(s = s_known(self, &route, now_ms)))
            break;
        if (m->type == WIRE_END && !s->promise_end) {
            uint64_t never = s_unfilled(s, m->progress.next_seq);
            if (never)
                log_info("source %s epoch %" PRIu64 " says END after %" PRIu64 " batches; %" PRIu64
                         " of them have not arrived yet",
                         s->id, s->epoch, m->progress.next_seq, never);
        }
        s_promise(self, s, m->progress.watermark, m->progress.next_seq, m->type == WIRE_END);
        break;
    case WIRE_STATS:
        s_on_stats(self, &route);
        break;
    case WIRE_DEAD:
        s_on_dead(self, &route);
        break;
    default:
        s_reject(self, WIRE_ERR_TYPE, "a reply type sent towards the collector");
        break;
    }
}

/* ---- merge ----------------------------------------------------------- */

/* The merge may pass a packet with ts <= the returned bound: the smallest
 * watermark of sources that are still expected to send. While the
 * collector is young, sources may still connect: nothing passes. */
static uint64_t s_min_watermark(collector_t *self, int64_t now)
{
    uint64_t min = UINT64_MAX;
    size_t live = 0;
    for (size_t i = 0; i < self->nsources; i++) {
        s_source_t *s = self->sources[i];
        if (s->ended || s->idle)
            continue;
        if (now - s->last_heard_ms >= self->opts.source_idle_ms) {
            s->idle = true;
            log_info("source %s epoch %" PRIu64 " silent for %" PRId64 " ms: no longer waited for",
                     s->id, s->epoch, now - s->last_heard_ms);
            continue;
        }
        if (!s_waited_for(self, s, now))
            continue; /* only HELLOs so far */
        live++;
        if (s->watermark < min)
            min = s->watermark;
    }
    metrics_set(self->metrics, self->m.sources_live, (double)live);
    if (s_holding(self, now))
        return 0;
    /* after a restart, sources that were live before are expected back:
     * wait for them as for any silent source, up to SOURCE_IDLE_S (with
     * EXPECT_SOURCES too: it says who joins, this who comes back) */
    if (self->opts.journal && journal_expected(self->opts.journal) &&
        now - self->opts.start_ms < self->opts.source_idle_ms)
        return 0;
    return min;
}

static s_source_t *s_of_lane(const merge_lane_t *lane)
{
    return (s_source_t *)((char *)lane - offsetof(s_source_t, lane));
}

/* When `b`'s merge window starts: at its arrival, or, for a batch that
 * EXPECT_SOURCES held, when the wait ended (the source that ended it may
 * bring its older packets only a round trip after its HELLO). */
static int64_t s_window_start(const collector_t *self, const s_batch_t *b)
{
    return self->expect.want && b->arrived_ms < self->expect.released_ms ? self->expect.released_ms
                                                                         : b->arrived_ms;
}

/* Largest head timestamp among lanes whose head batch has waited a whole
 * merge window: everything up to it must go now, from any lane, so that the
 * overdue packets leave in timestamp order. 0 when none. */
static uint64_t s_overdue_bound(const collector_t *self, int64_t now)
{
    uint64_t bound = 0;
    for (size_t i = 0; i < self->merge.n; i++) {
        const merge_lane_t *lane = self->merge.heap[i];
        if (now - s_window_start(self, s_of_lane(lane)->qhead) >= self->opts.merge_window_ms &&
            lane->ts >= bound)
            bound = lane->ts;
    }
    return bound;
}

/* Remembers a completed batch of the first lane for the next intent. */
static void s_done_seq(collector_t *self, s_source_t *s, uint64_t seq, uint16_t part,
                       uint32_t total)
{
    if (!self->opts.journal)
        return;
    if (self->ndone == self->done_cap) {
        size_t cap = self->done_cap ? self->done_cap * 2 : 64;
        journal_entry_t *d = realloc(self->done, cap * sizeof *d);
        if (!d) {
            s_fail(self, -ENOMEM, "STATE_DIR: out of memory");
            return;
        }
        self->done = d;
        self->done_cap = cap;
    }
    self->done[self->ndone++] = (journal_entry_t){.source = s->id,
                                                  .epoch = s->epoch,
                                                  .seq = seq,
                                                  .part = part,
                                                  .written = total,
                                                  .complete = true};
}

/* Adds what the pass wrote so far to the metrics. */
static void s_publish(collector_t *self)
{
    if (!self->tally.packets)
        return;
    metrics_add(self->metrics, self->m.packets, self->tally.packets);
    metrics_add(self->metrics, self->m.bytes, self->tally.bytes);
    metrics_add(self->metrics, self->m.late, self->tally.late);
    metrics_add(self->metrics, self->m.forced, self->tally.forced);
    self->tally.packets = self->tally.bytes = self->tally.late = self->tally.forced = 0;
    for (size_t i = 0; i < self->nsources; i++) {
        s_source_t *s = self->sources[i];
        if (s->unpublished) {
            metrics_add(self->metrics, s->m_packets, s->unpublished);
            s->unpublished = 0;
        }
    }
}

/* Publishes the tally, then commits (the buffer or the file is full), so
 * that the counters are exact when the acknowledgements leave. */
static int s_commit_within(collector_t *self, int64_t now)
{
    s_publish(self);
    return s_commit(self, now);
}

/* A batch is wholly written: its acknowledgement waits for the flush. */
static void s_batch_done(collector_t *self, s_source_t *s, s_batch_t *b)
{
    s->queued_bytes -= b->len;
    self->queued_bytes -= b->len;
    s->qhead = b->next;
    if (!s->qtail || s->qtail == b)
        s->qtail = NULL;
    s_queue_ack(s, b->seq, b->part);
    if (b->main_lane)
        s_done_seq(self, s, b->seq, b->part, b->total);
    zmq_msg_close(&b->payload);
    free(b->comment);
    free(b);
}

typedef struct {
    int64_t now;
    bool drain;
    uint64_t min_wm;  /* s_min_watermark */
    uint64_t overdue; /* s_overdue_bound */
    bool expecting;   /* EXPECT_SOURCES holds: the merge window forces nothing */
} s_pass_t;

/* A run's counts, kept in registers and moved into the pass's tally when
 * the run ends or commits. */
typedef struct {
    uint64_t packets, bytes, late, forced;
    uint64_t last_ts; /* newest timestamp written */
} s_run_tally_t;

static void s_run_spill(collector_t *self, s_source_t *s, s_run_tally_t *t)
{
    self->last_ts = t->last_ts;
    self->tally.packets += t->packets;
    self->tally.bytes += t->bytes;
    self->tally.late += t->late;
    self->tally.forced += t->forced;
    self->queued_packets -= t->packets;
    s->unpublished += t->packets;
    t->packets = t->bytes = t->late = t->forced = 0;
}

static int s_write(output_t *out, uint32_t ifid, const wire_packet_t *h, const char *comment)
{
    if (!comment)
        return output_append(out, ifid, h);
    if (!output_room(out, h->caplen, comment) || output_full(out))
        return -ENOBUFS;
    return output_packet(out, ifid, h, comment);
}

/* Writes a run: the packets of `s` (the top lane) while it would stay on
 * top, i.e. before the rival lane's key (by ts, then lane order: the tie
 * rule of merge.h), and while the merge lets each go (due under the
 * watermark, or forced). Each packet is judged exactly as if the heap
 * were consulted for it; the heap moves once, at the end of the run.
 * Returns packets written (0: the top lane's head must wait), or a
 * negative errno. */
static int s_run(collector_t *self, s_source_t *s, const s_pass_t *p)
{
    const merge_lane_t *rival = merge_rival(&self->merge);
    uint64_t rival_ts = rival ? rival->ts : UINT64_MAX;
    bool rival_wins_tie = rival && rival->order < s->lane.order;
    s_run_tally_t t = {.last_ts = self->last_ts};
    uint64_t written = 0;
    int rc = 0;
    s_batch_t *b;
    while ((b = s->qhead)) {
        /* what forces this batch's packets out does not change within it */
        bool force =
            p->drain || self->queued_bytes > self->opts.merge_max_bytes ||
            (!p->expecting && p->now - s_window_start(self, b) >= self->opts.merge_window_ms);
        uint64_t overdue = p->expecting ? 0 : p->overdue;
        uint32_t before = b->left;
        if (before == b->total)
            b->mark = self->mark; /* stamped early rather than late: kept, not deleted */
        for (;;) {
            const wire_packet_t *h = &b->head;
            uint64_t ts = h->ts_ns;
            if (ts > rival_ts || (ts == rival_ts && rival_wins_tie))
                break;
            bool due = ts <= p->min_wm;
            bool forced = !due && (force || (overdue && ts <= overdue));
            if (!due && !forced)
                break;
            uint32_t ifid = s->ifid[h->ifindex];
            rc = s_write(self->output, ifid, h, b->comment);
            if (rc == -ENOBUFS) { /* buffer or file full: commit (rotate), go on */
                b->touched |= b->left != before;
                s_run_spill(self, s, &t);
                if ((rc = s_commit_within(self, p->now)) < 0)
                    break;
                before = b->left;
                rc = b->comment ? output_packet(self->output, ifid, h, b->comment)
                                : output_append(self->output, ifid, h);
            }
            if (rc < 0) {
                char what[600];
                snprintf(what, sizeof what, "OUTPUT: %s: %s", output_name(self->output),
                         strerror(-rc));
                rc = s_fail(self, rc, what);
                break;
            }
            if (self->opts.tap)
                self->opts.tap(self->opts.tap_ctx, s->id, s->ifaces[h->ifindex].name,
                               s->ifaces[h->ifindex].linktype, h);
            written++;
            t.packets++;
            t.bytes += h->caplen;
            s_ifstat_t *is = &self->ifs[ifid];
            if (!is->have_first) {
                is->have_first = true;
                is->start_ns = ts;
            }
            is->written++;
            if (ts < t.last_ts) {
                t.late++;
                is->late++;
                s_loss(self, s->id, s->ifaces[h->ifindex].name, "late", 1);
            } else {
                t.last_ts = ts;
            }
            t.forced += forced && !p->drain;
            is->forced += forced && !p->drain;
            if (--b->left == 0)
                break;
            b->off = wire_packet_at(b->data, b->off, &b->head);
        }
        if (b->left == before)
            break; /* nothing of it written: the run ends here */
        b->touched = true;
        if (b->left || rc < 0)
            break;
        s_batch_done(self, s, b);
    }
    if (written && self->buffered_since_ms < 0)
        self->buffered_since_ms = p->now;
    s_run_spill(self, s, &t);
    s_lane_refresh(self, s);
    return rc < 0 ? rc : (int)written;
}

int collector_emit(collector_t *self, int64_t now_ms, bool drain)
{
    if (self->broken)
        return -EIO;
    /* while EXPECT_SOURCES holds, the merge window forces nothing out
     * either: the sources it waits for may bring older packets (memory
     * still bounds the wait) */
    s_pass_t p = {.now = now_ms,
                  .drain = drain,
                  .min_wm = s_min_watermark(self, now_ms),
                  .overdue = s_overdue_bound(self, now_ms),
                  .expecting = self->expect.want && s_holding(self, now_ms)};
    int written = 0;
    merge_lane_t *lane;
    while ((lane = merge_top(&self->merge))) {
        int rc = s_run(self, s_of_lane(lane), &p);
        if (rc < 0) {
            s_publish(self);
            return rc;
        }
        if (rc == 0)
            break;
        written += rc;
    }
    s_publish(self);
    metrics_set(self->metrics, self->m.queued_bytes, (double)self->queued_bytes);
    metrics_set(self->metrics, self->m.queued_packets, (double)self->queued_packets);
    if (written && !self->wrote_any) {
        self->wrote_any = true;
        log_info("output: the first packets are written, %" PRId64 " ms after the start",
                 now_ms - self->opts.start_ms);
    }
    return written;
}

/* The intent of the coming flush: completed batches, and the head batch of
 * every source written into since the last commit. */
static int s_intent(collector_t *self)
{
    size_t n = self->ndone;
    for (size_t i = 0; i < self->nsources; i++) {
        s_batch_t *b = self->sources[i]->qhead;
        if (b && b->touched && b->main_lane)
            n++;
    }
    if (n > self->done_cap) {
        journal_entry_t *d = realloc(self->done, n * sizeof *d);
        if (!d)
            return -ENOMEM;
        self->done = d;
        self->done_cap = n;
    }
    n = self->ndone;
    for (size_t i = 0; i < self->nsources; i++) {
        s_source_t *s = self->sources[i];
        s_batch_t *b = s->qhead;
        if (!b || !b->touched || !b->main_lane)
            continue;
        self->done[n++] = (journal_entry_t){.source = s->id,
                                            .epoch = s->epoch,
                                            .seq = b->seq,
                                            .part = b->part,
                                            .written = b->total - b->left,
                                            .complete = false};
        b->touched = false;
    }
    return journal_intent(self->opts.journal, output_offset(self->output),
                          output_buffered(self->output), self->done, n);
}

/* Saves the live states in place of the grown journal. A source's `seen`
 * set also holds its queued batches, which are not (wholly) written: each
 * is saved as a partial with the packets written so far, and so taken out
 * of the complete set when restored. Restored partials not resent yet are
 * saved again. */
static int s_compact(collector_t *self)
{
    size_t n = self->nsources;
    journal_state_t *views = calloc(n ? n : 1, sizeof *views);
    const journal_state_t **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    int rc = views && ptrs ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        s_source_t *s = self->sources[i];
        journal_state_t *v = &views[i];
        ptrs[i] = v;
        snprintf(v->source, sizeof v->source, "%s", s->id);
        v->epoch = s->epoch;
        v->ended = s->ended;
        v->complete = s->seen; /* a read-only view */
        size_t np = s->restored ? s->restored->npartials : 0;
        for (const s_batch_t *b = s->qhead; b; b = b->next)
            np++;
        if (!np)
            continue;
        v->partials = calloc(np, sizeof *v->partials);
        if (!v->partials) {
            rc = -ENOMEM;
            break;
        }
        for (const s_batch_t *b = s->qhead; b; b = b->next)
            v->partials[v->npartials++] =
                (journal_partial_t){.seq = b->seq, .part = b->part, .written = b->total - b->left};
        for (size_t k = 0; s->restored && k < s->restored->npartials; k++)
            v->partials[v->npartials++] = s->restored->partials[k];
    }
    if (rc == 0)
        rc = journal_compact(self->opts.journal, output_path(self->output), ptrs, n);
    for (size_t i = 0; views && i < n; i++)
        free(views[i].partials);
    free(views);
    free(ptrs);
    return rc;
}

/* The one way out of a failure of the output or the journal: nothing is
 * acknowledged any more, and the output is left as the journal knows it.
 * What is buffered is thrown away (its intent is not recorded, or its
 * write failed), and a write that failed part-way is cut off the file, so
 * that the file ends with its last whole block: a reader reads it to its
 * end, and a restart with STATE_DIR finds in it exactly the flushes the
 * journal counts as done. */
static int s_fail(collector_t *self, int rc, const char *what)
{
    if (self->broken)
        return rc;
    self->broken = true;
    int cut = output_abort(self->output);
    if (cut < 0)
        snprintf(self->error, sizeof self->error,
                 "%s (and it could not be cut back to its last whole block: %s)", what,
                 strerror(-cut));
    else
        snprintf(self->error, sizeof self->error, "%s", what);
    if (cut > 0)
        log_warn("OUTPUT: %s: the failed write is cut off: the file ends with its last whole "
                 "block, %" PRIu64 " bytes written",
                 output_name(self->output), output_offset(self->output));
    return rc;
}

/* Counts what the output handed to the operating system since the last
 * count (bytes, and files created). */
static void s_count_output(collector_t *self)
{
    uint64_t bytes = output_bytes(self->output);
    unsigned files = output_files(self->output);
    metrics_add(self->metrics, self->m.output_bytes, bytes - self->output_bytes);
    metrics_add(self->metrics, self->m.output_files, files - self->output_files);
    self->output_bytes = bytes;
    self->output_files = files;
}

/* Records the intent (STATE_DIR), then hands the buffer to the operating
 * system. */
static int s_flush(collector_t *self)
{
    journal_t *j = self->opts.journal;
    bool wrote = output_buffered(self->output) > 0;
    int rc = j && (wrote || self->ndone) ? s_intent(self) : 0;
    if (rc < 0) /* the intent is not recorded: its flush must not happen */
        return s_fail(self, rc,
                      rc == -ENOMEM ? "STATE_DIR: out of memory for an intent" : journal_error(j));
    self->ndone = 0;
    rc = output_flush(self->output);
    s_count_output(self);
    if (rc < 0) {
        char what[600];
        snprintf(what, sizeof what, "OUTPUT: %s: %s", output_name(self->output), strerror(-rc));
        rc = s_fail(self, rc, what);
        /* the intent's bytes are cut off (or never arrived): said in the
         * journal too, for outputs whose size cannot tell (standard output);
         * when this fails as well, a file's size still tells */
        if (j && wrote && journal_undo(j) < 0)
            log_warn("%s", journal_error(j));
        return rc;
    }
    self->buffered_since_ms = -1;
    return 0;
}

/* The one path of every rotation, busy or idle: moves to the next file
 * when one is due, records it in the journal before anything is written to
 * it, writes its header blocks (so the file appears with every interface
 * in it), logs it and counts it. */
static int s_rotate(collector_t *self, int64_t now)
{
    int rc = output_rotate_if_due(self->output, now);
    if (rc < 0) {
        char what[600];
        snprintf(what, sizeof what, "OUTPUT: %s: cannot start the next file: %s",
                 output_name(self->output), strerror(-rc));
        return s_fail(self, rc, what);
    }
    if (rc == 0)
        return 0;
    journal_t *j = self->opts.journal;
    if (j && (rc = journal_file(j, output_path(self->output))) < 0)
        return s_fail(self, rc, journal_error(j));
    if (self->opts.retention && retention_begin(self->opts.retention, output_path(self->output),
                                                output_closed_bytes(self->output), self->mark) < 0)
        log_warn("output: out of memory: ROTATE_FILES and ROTATE_MAX_GB do not count %s",
                 output_path(self->output));
    rc = s_flush(self);
    if (rc < 0)
        return rc;
    log_info("output: now writing %s", output_path(self->output));
    return 0;
}

/* After a commit, its acknowledgements sent: the retention deletes the
 * oldest files it may. What is still unacknowledged is the packets written
 * of batches not wholly written (each source's head batch at most). */
static void s_retain(collector_t *self)
{
    if (!self->opts.retention)
        return;
    uint64_t unacked = UINT64_MAX;
    for (size_t i = 0; i < self->nsources; i++) {
        const s_batch_t *b = self->sources[i]->qhead;
        if (b && b->left < b->total && b->mark < unacked)
            unacked = b->mark;
    }
    retention_apply(self->opts.retention, output_offset(self->output), unacked);
}

static int s_commit(collector_t *self, int64_t now)
{
    if (self->broken)
        return -EIO;
    int rc = s_flush(self);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < self->nsources; i++) {
        s_source_t *s = self->sources[i];
        if (!s->nacks)
            continue;
        for (size_t done = 0; done < s->nacks;) {
            size_t n = s->nacks - done < WIRE_ACKS_MAX ? s->nacks - done : WIRE_ACKS_MAX;
            wire_msg_init(&self->out, WIRE_ACK, s->id, s->epoch);
            self->out.ack.count = (uint16_t)n;
            memcpy(self->out.ack.entries, s->acks + done, n * sizeof *s->acks);
            s_reply(self, &s->route);
            done += n;
        }
        metrics_add(self->metrics, self->m.acks, s->nacks);
        s->nacks = 0;
    }
    self->mark++;
    rc = s_rotate(self, now);
    if (rc < 0)
        return rc;
    s_retain(self);
    journal_t *j = self->opts.journal;
    if (j && journal_wants_compaction(j) && (rc = s_compact(self)) < 0)
        return s_fail(self, rc,
                      rc == -ENOMEM ? "STATE_DIR: out of memory rewriting the journal"
                                    : journal_error(j));
    return 0;
}

int collector_commit(collector_t *self, int64_t now_ms, bool force)
{
    if (self->broken)
        return -EIO;
    size_t buffered = output_buffered(self->output);
    bool acks = false;
    for (size_t i = 0; !acks && i < self->nsources; i++)
        acks = self->sources[i]->nacks > 0;
    if (!buffered && !acks) { /* idle: only a rotation may be due */
        int rc = s_rotate(self, now_ms);
        if (rc == 0)
            s_retain(self);
        return rc;
    }
    if (!force && buffered && self->opts.flush_ms > 0 && self->buffered_since_ms >= 0 &&
        now_ms - self->buffered_since_ms < self->opts.flush_ms)
        return 0; /* a little more may join this write */
    return s_commit(self, now_ms);
}

const char *collector_error(const collector_t *self)
{
    return self->error;
}

int64_t collector_next_deadline(const collector_t *self, int64_t now_ms)
{
    int64_t next = INT64_MAX;
    /* while EXPECT_SOURCES holds, only its bound (or a message) can change
     * anything: no merge window runs out, no idle source releases */
    bool expecting = self->expect.want && !self->expect.released && self->expect.first_ms >= 0;
    for (size_t i = 0; !expecting && i < self->merge.n; i++) {
        int64_t t = s_window_start(self, s_of_lane(self->merge.heap[i])->qhead) +
                    self->opts.merge_window_ms;
        if (t < next)
            next = t;
    }
    if (self->merge.n) {
        int64_t hold = s_hold_deadline(self, now_ms);
        if (hold < next)
            next = hold;
    }
    if (self->merge.n && !expecting) {
        int64_t expected = self->opts.start_ms + self->opts.source_idle_ms;
        if (self->opts.journal && journal_expected(self->opts.journal) && expected > now_ms &&
            expected < next)
            next = expected;
        /* a waited-for source may go idle and so release the merge, or
         * one that only said HELLO stop holding it */
        for (size_t i = 0; i < self->nsources; i++) {
            const s_source_t *s = self->sources[i];
            if (!s->ended && !s->idle) {
                int64_t t = s->last_heard_ms + self->opts.source_idle_ms;
                if (!s->progressed && s->joined_ms + S_HELLO_ONLY_HOLD_MS < t)
                    t = s->joined_ms + S_HELLO_ONLY_HOLD_MS;
                if (t < next)
                    next = t;
            }
        }
    }
    if (self->buffered_since_ms >= 0 && self->opts.flush_ms > 0) {
        int64_t t = self->buffered_since_ms + self->opts.flush_ms;
        if (t < next)
            next = t;
    }
    return next < now_ms ? now_ms : next;
}

size_t collector_queued_packets(const collector_t *self)
{
    return self->queued_packets;
}
