/*
 * tapmesh-capture — reads packets with libpcap (a live interface or a
 * capture file), batches them and pushes them upstream over a DEALER
 * socket; keeps every batch until the collector acknowledges it, resends
 * with backoff, and writes what stays unacknowledged for RETRY_TIMEOUT_S to
 * the dead-letter file (shared DESIGN "Delivery").
 *
 * Data flow: source (source-live.c / source-file.c) → outbox (outbox.c:
 * batches, custody, resends) → DEALER (this file: HELLO, BATCH, HEARTBEAT,
 * END out; WELCOME, REFUSE, ACK in) — and outbox → dlq.c when time runs out.
 * One thread runs the loop; libmicrohttpd serves /metrics.
 */
#include "clock.h"
#include "decode.h"
#include "dlq.h"
#include "frames.h"
#include "log.h"
#include "outbox.h"
#include "service.h"
#include "source.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

static const char s_summary[] =
    "Captures packets (a live interface, or a capture file) and sends them upstream to a\n"
    "tapmesh-relay or tapmesh-collect, keeping each batch until it is acknowledged.\n"
    "Set DEVICE or READ_FILE. Exit status: 0 when everything was delivered, 1 when anything\n"
    "went to the dead-letter directory or capture failed, 2 for a bad setting.";

static const cfg_row_t s_rows[] = {
    SERVICE_ROWS(":9710"),
    {"DEVICE", CFG_STR, "", 0, 0, NULL, false,
     "Network interface to capture on (live capture), e.g. eth0."},
    {"READ_FILE", CFG_FILE, NULL, 0, 0, NULL, false,
     "A pcap or pcapng capture file to send instead, any link type libpcap reads; - is "
     "standard input."},
    {"FILTER", CFG_STR, "", 0, 0, NULL, false,
     "BPF filter (tcpdump syntax), applied to the interface or the file."},
    {"SNAPLEN", CFG_INT, "262144", 1, 262144, NULL, false,
     "Bytes kept of each live packet (the default keeps jumbo frames whole)."},
    {"PROMISC", CFG_BOOL, "true", 0, 0, NULL, false, "Promiscuous mode on the interface."},
    {"IMMEDIATE_MODE", CFG_BOOL, "true", 0, 0, NULL, false,
     "Deliver each packet as it arrives instead of when the kernel's block fills."},
    {"PCAP_BUFFER_MB", CFG_INT, "32", 0, 4096, NULL, false,
     "Kernel capture buffer in MiB (0: libpcap's default)."},
    {"TSTAMP_TYPE", CFG_STR, "", 0, 0, NULL, false,
     "Timestamp source: host, adapter, adapter_unsynced... where the NIC offers it "
     "(default: host)."},
    {"REPLAY_SPEED", CFG_INT, "0", 0, 1000, NULL, false,
     "READ_FILE: 0 sends as fast as possible; N replays at N times the recorded pace."},
    {"RELAY_ENDPOINT", CFG_ENDPOINT, "tcp://127.0.0.1:5710", 0, 0, NULL, false,
     "ZeroMQ endpoint of the next hop (a relay or the collector) to connect to."},
    {"DESCRIPTION", CFG_STR, "", 0, 0, NULL, false,
     "Free text about this source, carried into the output's interface description."},
    {"BATCH_MAX_BYTES", CFG_INT, "262144", 1024, 16777216, NULL, false,
     "A batch is sent once it holds this many bytes."},
    {"BATCH_MAX_DELAY_MS", CFG_INT, "100", 1, 60000, NULL, false,
     "A batch is sent at the latest this long after its first packet."},
    {"INFLIGHT_BATCHES", CFG_INT, "8", 1, 4096, NULL, false,
     "Batches sent and not yet acknowledged, at most."},
    {"ACK_TIMEOUT_MS", CFG_INT, "2000", 10, 600000, NULL, false,
     "A batch not acknowledged after this long is sent again (the wait doubles each time, "
     "up to 30 s)."},
    {"RETRY_TIMEOUT_S", CFG_INT, "60", 1, 86400, NULL, false,
     "A batch unacknowledged this long goes to the dead-letter file; also how long a "
     "stopping agent waits for acknowledgements."},
    {"DLQ_DIR", CFG_PATH, "/var/lib/tapmesh/dlq", 0, 0, NULL, false,
     "Directory for dead-letter pcapng files (created if missing)."},
    {"BUFFER_MAX_MB", CFG_INT, "64", 1, 65536, NULL, false,
     "Memory for batches not yet acknowledged; when full, reading pauses (a live interface's "
     "kernel buffer then fills and drops, counted)."},
    {"HEARTBEAT_MS", CFG_INT, "250", 50, 60000, NULL, false,
     "While idle, a heartbeat with the watermark is sent this often."},
};

/* A live source promises nothing older than this much before the moment it
 * found the kernel's buffer empty. */
#define S_LIVE_SLACK_NS 20000000u

typedef struct {
    metric_id_t packets, bytes, truncated, size[3], batches_sent, batches_acked, batches_resent,
        batches_dlq, packets_dlq, dlq_failed, backpressure, unacked_bytes, unacked_batches, rtt,
        malformed, refused, acks_unknown, kernel_drops, if_drops, received;
} s_metrics_t;

typedef struct {
    service_t svc;
    source_t *source;
    outbox_t *outbox;
    dlq_t *dlq;
    zsock_t *dealer;
    void *sock; /* libzmq handle of dealer */
    uint64_t epoch;
    uint64_t watermark;      /* nothing older will be read */
    uint64_t sent_watermark; /* the newest watermark of a batch sent */
    uint16_t linktype;
    bool live, wall_clock; /* timestamps comparable to this host's clock */
    int64_t batch_delay_ms, heartbeat_ms, retry_timeout_ms, ack_timeout_ms;
    int64_t last_send_ms, last_stats_ms;
    int64_t hello_sent_ms;
    bool hello_pending; /* HELLO sent, no WELCOME yet */
    bool rehello;       /* batches were refused as unknown: resend all on WELCOME */
    bool eof, failed, refused;
    bool send_failing; /* the last send failed (logged once) */
    uint64_t dead_batches, dead_packets;
    source_stats_t last_stats;
    s_metrics_t m;
} agent_t;

static wire_msg_t s_msg; /* encode/decode scratch: large, so not on the stack */
static uint8_t s_cmd[WIRE_COMMAND_MAX];

static void s_metrics_register(agent_t *a)
{
    metrics_t *r = a->svc.metrics;
    s_metrics_t *m = &a->m;
    m->packets = metrics_counter(r, "tapmesh_capture_packets_total", "Packets captured", NULL);
    m->bytes = metrics_counter(r, "tapmesh_capture_bytes_total",
                               "Bytes of packet data captured (captured length)", NULL);
    m->truncated = metrics_counter(r, "tapmesh_capture_truncated_packets_total",
                                   "Packets cut to 262144 bytes, the protocol's limit", NULL);
    static const double size_bounds[] = {64, 128, 256, 512, 1024, 1518, 2048, 4096, 9216, 65535};
    static const char *const families[] = {"family=\"other\"", "family=\"ipv4\"",
                                           "family=\"ipv6\""};
    for (int f = 0; f < 3; f++)
        m->size[f] = metrics_histogram(r, "tapmesh_capture_packet_size_bytes",
                                       "Packet length on the wire, by address family", families[f],
                                       size_bounds, sizeof size_bounds / sizeof *size_bounds);
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
    m->unacked_bytes = metrics_gauge(r, "tapmesh_capture_unacked_bytes",
                                     "Bytes held for batches not yet acknowledged", NULL);
    m->unacked_batches = metrics_gauge(r, "tapmesh_capture_unacked_batches",
                                       "Batches held, not yet acknowledged", NULL);
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
    if (a->live) {
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
}

/* Sends one command frame (and a copy of `payload` when not NULL). */
static int s_send(agent_t *a, size_t len, const uint8_t *payload, size_t plen)
{
    zmq_msg_t body;
    if (payload) {
        if (zmq_msg_init_size(&body, plen) < 0)
            return -errno;
        memcpy(zmq_msg_data(&body), payload, plen);
    }
    int rc = frames_send(a->sock, NULL, s_cmd, len, payload ? &body : NULL, ZMQ_DONTWAIT);
    if (payload)
        zmq_msg_close(&body);
    return rc;
}

static void s_header(agent_t *a, wire_type_t type)
{
    wire_msg_init(&s_msg, type, a->svc.node_id, a->epoch);
}

static void s_hello(agent_t *a)
{
    s_header(a, WIRE_HELLO);
    const char *descr = cfg_str(a->svc.cfg, "DESCRIPTION");
    snprintf(s_msg.hello.description, sizeof s_msg.hello.description, "%s",
             *descr ? descr : "tapmesh-capture " TAPMESH_VERSION);
    s_msg.hello.iface_count = 1;
    wire_iface_t *f = &s_msg.hello.ifaces[0];
    f->linktype = a->linktype;
    uint32_t snaplen = source_snaplen(a->source);
    f->snaplen = snaplen > WIRE_SNAPLEN_MAX ? WIRE_SNAPLEN_MAX : snaplen;
    wire_ifname_sanitize(source_name(a->source), f->name);
    snprintf(f->description, sizeof f->description, "%s", source_description(a->source));
    size_t len = wire_encode(&s_msg, s_cmd, sizeof s_cmd);
    a->hello_pending = true;
    a->hello_sent_ms = clock_mono_ms();
    if (len == 0 || s_send(a, len, NULL, 0) < 0)
        log_warn("HELLO not sent (queue full); will retry");
    else
        log_debug("HELLO sent: %s epoch %" PRIu64, s_msg.source, a->epoch);
}

/* HEARTBEAT or END: what has been sent, and the watermark that holds for
 * it. Packets read but not sent yet (an open batch, batches waiting for the
 * window) are older than the read watermark: then only the watermark of the
 * last batch sent may be promised. */
static void s_progress(agent_t *a, wire_type_t type)
{
    s_header(a, type);
    bool pending = outbox_open_batch(a->outbox) || outbox_unsent(a->outbox);
    s_msg.progress.watermark = pending ? a->sent_watermark : a->watermark;
    s_msg.progress.next_seq = outbox_next_unsent(a->outbox);
    size_t len = wire_encode(&s_msg, s_cmd, sizeof s_cmd);
    if (len)
        s_send(a, len, NULL, 0);
}

/* Puts due batches on the wire, resends first, within the window. */
static void s_send_batches(agent_t *a, int64_t now)
{
    batch_t *b;
    while ((b = outbox_next_send(a->outbox, now))) {
        s_header(a, WIRE_BATCH);
        s_msg.batch.seq = b->seq;
        s_msg.batch.parts = 1;
        s_msg.batch.watermark = b->watermark;
        s_msg.batch.packet_count = b->packets;
        s_msg.batch.payload_len = (uint32_t)b->len;
        size_t len = wire_encode(&s_msg, s_cmd, sizeof s_cmd);
        int rc = len ? s_send(a, len, b->buf, b->len) : -EINVAL;
        if (rc == -EAGAIN) {
            metrics_add(a->svc.metrics, a->m.backpressure, 1);
            return; /* the next hop's queue is full: keep it, try on the next pass */
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
        metrics_add(a->svc.metrics, b->sends ? a->m.batches_resent : a->m.batches_sent, 1);
        if (b->watermark > a->sent_watermark)
            a->sent_watermark = b->watermark;
        if (b->sends)
            log_debug("batch %" PRIu64 " resent (send %u)", b->seq, b->sends + 1);
        outbox_sent(a->outbox, b, now);
        a->last_send_ms = now;
    }
}

/* Moves the oldest held batch to the dead-letter file and forgets it. */
static void s_dead_letter_oldest(agent_t *a)
{
    batch_t *b = outbox_oldest(a->outbox);
    if (!b)
        return;
    if (dlq_write(a->dlq, b) < 0) {
        metrics_add(a->svc.metrics, a->m.dlq_failed, 1);
        log_error("batch %" PRIu64 " (%u packets) lost: %s", b->seq, b->packets, dlq_error(a->dlq));
        a->failed = true;
    } else {
        if (a->dead_batches == 0)
            log_warn("writing unacknowledged batches to the dead-letter file %s", dlq_path(a->dlq));
        a->dead_batches++;
        a->dead_packets += b->packets;
        metrics_add(a->svc.metrics, a->m.batches_dlq, 1);
        metrics_add(a->svc.metrics, a->m.packets_dlq, b->packets);
    }
    outbox_release(a->outbox, b->seq);
}

static void s_on_message(agent_t *a, const uint8_t *cmd, size_t len)
{
    wire_err_t err = wire_decode(cmd, len, &s_msg);
    if (err != WIRE_OK || s_msg.epoch != a->epoch || strcmp(s_msg.source, a->svc.node_id) != 0) {
        metrics_add(a->svc.metrics, a->m.malformed, 1);
        log_debug("dropped a message from upstream: %s",
                  err ? wire_err_name(err) : "not for this source/epoch");
        return;
    }
    int64_t now = clock_mono_ms();
    switch (s_msg.type) {
    case WIRE_ACK:
        for (unsigned i = 0; i < s_msg.ack.count; i++) {
            int64_t rtt;
            if (outbox_ack(a->outbox, s_msg.ack.entries[i].seq, now, &rtt)) {
                metrics_add(a->svc.metrics, a->m.batches_acked, 1);
                metrics_observe(a->svc.metrics, a->m.rtt, (double)rtt / 1000.0);
            } else {
                metrics_add(a->svc.metrics, a->m.acks_unknown, 1);
            }
        }
        break;
    case WIRE_WELCOME:
        log_info("collector accepted source %s (epoch %" PRIu64 ")", a->svc.node_id, a->epoch);
        a->hello_pending = false;
        if (a->rehello) {
            a->rehello = false;
            outbox_resend_all(a->outbox); /* what it dropped before it knew us */
        }
        break;
    case WIRE_REFUSE:
        metrics_add(a->svc.metrics, a->m.refused, 1);
        if (s_msg.refuse.code == WIRE_REFUSE_UNKNOWN_SOURCE) {
            /* every batch in flight draws this answer: one HELLO per episode,
             * none while a HELLO is on its way */
            a->rehello = true;
            if (!a->hello_pending) {
                log_info("collector does not know this source (it restarted?): sending HELLO, "
                         "then everything unacknowledged again");
                s_hello(a);
            }
        } else if (!a->refused) {
            log_error("collector refused this source: %s", s_msg.refuse.reason);
            a->refused = true;
        }
        break;
    default:
        metrics_add(a->svc.metrics, a->m.malformed, 1);
        break;
    }
}

static void s_drain(agent_t *a)
{
    frames_t f;
    while (frames_recv(&f, a->sock, ZMQ_DONTWAIT) == 0) {
        size_t len;
        const uint8_t *cmd = frames_command(&f, &len);
        if (cmd && !frames_payload(&f))
            s_on_message(a, cmd, len);
        else
            metrics_add(a->svc.metrics, a->m.malformed, 1);
        frames_close(&f);
    }
}

/* Stops reading for good: the open batch is closed and sent. */
static void s_end_of_input(agent_t *a)
{
    a->eof = true;
    outbox_close(a->outbox);
}

/* Reads what the outbox has room for, a bounded amount per pass. Returns
 * true when the source may have more right now. */
static bool s_read(agent_t *a, int64_t now)
{
    for (int i = 0; i < 4096; i++) {
        if (!outbox_has_room(a->outbox, WIRE_SNAPLEN_MAX))
            return false;
        source_packet_t p;
        source_result_t r = source_next(a->source, &p);
        if (r == SOURCE_IDLE) {
            /* nothing older than what is due next, or than "now" for a live
             * interface whose kernel buffer is empty */
            uint64_t next = source_next_ts(a->source);
            if (next > a->watermark + 1)
                a->watermark = next - 1;
            if (a->live && a->wall_clock) {
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
            }
            s_end_of_input(a);
            return false;
        }
        wire_packet_t w = {.ts_ns = p.ts_ns,
                           .ifindex = 0,
                           .caplen = p.caplen,
                           .origlen = p.origlen,
                           .data = p.data};
        if (w.caplen > WIRE_SNAPLEN_MAX) {
            w.caplen = WIRE_SNAPLEN_MAX;
            metrics_add(a->svc.metrics, a->m.truncated, 1);
        }
        if (w.origlen < w.caplen)
            w.origlen = w.caplen; /* a malformed record: the wire needs caplen <= origlen */
        if (p.ts_ns > a->watermark)
            a->watermark = p.ts_ns;
        if (outbox_add(a->outbox, &w, a->watermark, now) < 0) {
            log_error("out of memory for batches");
            a->failed = true;
            s_end_of_input(a);
            return false;
        }
        metrics_add(a->svc.metrics, a->m.packets, 1);
        metrics_add(a->svc.metrics, a->m.bytes, w.caplen);
        metrics_observe(a->svc.metrics, a->m.size[decode_family(a->linktype, p.data, p.caplen)],
                        (double)p.origlen);
    }
    return true;
}

/* The kernel's counters, as deltas into monotonic counters. */
static void s_stats(agent_t *a)
{
    source_stats_t st;
    if (!a->live || source_stats(a->source, &st) < 0)
        return;
    metrics_t *r = a->svc.metrics;
    if (st.received >= a->last_stats.received)
        metrics_add(r, a->m.received, st.received - a->last_stats.received);
    if (st.dropped >= a->last_stats.dropped)
        metrics_add(r, a->m.kernel_drops, st.dropped - a->last_stats.dropped);
    if (st.ifdropped >= a->last_stats.ifdropped)
        metrics_add(r, a->m.if_drops, st.ifdropped - a->last_stats.ifdropped);
    if (st.dropped > a->last_stats.dropped)
        log_warn("%s: the kernel dropped %" PRIu64 " packets (buffer full)", source_name(a->source),
                 st.dropped - a->last_stats.dropped);
    a->last_stats = st;
}

/* mkdir -p */
static int s_mkdirs(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -1;
        *q = '/';
    }
    return mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int s_setup(agent_t *a)
{
    cfg_t *c = a->svc.cfg;
    char err[1024];
    const char *device = cfg_str(c, "DEVICE"), *file = cfg_str(c, "READ_FILE");
    if (!*device == !*file) {
        fprintf(stderr, "tapmesh-capture: %s\n",
                *device ? "set DEVICE or READ_FILE, not both"
                        : "nothing to capture: set DEVICE (an interface) or READ_FILE (a file)");
        return 2;
    }
    const char *filter = cfg_str(c, "FILTER");
    if (*device) {
        source_live_opts_t o = {.device = device,
                                .filter = filter,
                                .snaplen = (uint32_t)cfg_int(c, "SNAPLEN"),
                                .promisc = cfg_bool(c, "PROMISC"),
                                .immediate = cfg_bool(c, "IMMEDIATE_MODE"),
                                .buffer_mb = (unsigned)cfg_int(c, "PCAP_BUFFER_MB"),
                                .tstamp_type = cfg_str(c, "TSTAMP_TYPE")};
        a->source = source_live_open(&o, err, sizeof err);
        a->live = true;
        a->wall_clock = strcmp(o.tstamp_type, "adapter_unsynced") != 0;
    } else {
        a->source =
            source_file_open(file, (unsigned)cfg_int(c, "REPLAY_SPEED"), filter, err, sizeof err);
    }
    if (!a->source) {
        fprintf(stderr, "tapmesh-capture: %s\n", err);
        return 2;
    }
    a->linktype = (uint16_t)source_linktype(a->source);
    a->ack_timeout_ms = cfg_int(c, "ACK_TIMEOUT_MS");
    a->outbox =
        outbox_new((size_t)cfg_int(c, "BATCH_MAX_BYTES"), (size_t)cfg_int(c, "BUFFER_MAX_MB") << 20,
                   (unsigned)cfg_int(c, "INFLIGHT_BATCHES"), a->ack_timeout_ms, 30000);
    a->batch_delay_ms = cfg_int(c, "BATCH_MAX_DELAY_MS");
    a->heartbeat_ms = cfg_int(c, "HEARTBEAT_MS");
    a->retry_timeout_ms = cfg_int(c, "RETRY_TIMEOUT_S") * 1000;
    a->epoch = clock_wall_ns();

    const char *dir = cfg_str(c, "DLQ_DIR");
    if (s_mkdirs(dir) < 0) {
        fprintf(stderr, "tapmesh-capture: DLQ_DIR='%s': cannot create: %s\n", dir, strerror(errno));
        return 2;
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) < 0) {
        fprintf(stderr, "tapmesh-capture: DLQ_DIR='%s': not a writable directory\n", dir);
        return 2;
    }
    a->dlq = dlq_new(dir, a->svc.node_id, a->epoch, a->linktype, source_name(a->source),
                     source_description(a->source));
    if (!a->outbox || !a->dlq) {
        log_error("out of memory");
        return 1;
    }

    a->dealer = zsock_new(ZMQ_DEALER);
    if (!a->dealer) {
        log_error("cannot create a ZeroMQ socket");
        return 1;
    }
    zsock_set_linger(a->dealer, 2000); /* so that END leaves before exit */
    zsock_set_sndhwm(a->dealer, 1000);
    zsock_set_rcvhwm(a->dealer, 0);
    zsock_set_heartbeat_ivl(a->dealer, 1000);
    zsock_set_heartbeat_timeout(a->dealer, 5000);
    zsock_set_reconnect_ivl(a->dealer, 100);
    zsock_set_reconnect_ivl_max(a->dealer, 1000);
    const char *endpoint = cfg_str(c, "RELAY_ENDPOINT");
    if (zsock_connect(a->dealer, "%s", endpoint) < 0) {
        fprintf(stderr, "tapmesh-capture: RELAY_ENDPOINT='%s': cannot connect: %s\n", endpoint,
                zmq_strerror(zmq_errno()));
        return 2;
    }
    a->sock = zsock_resolve(a->dealer);
    s_metrics_register(a);
    log_info("source %s epoch %" PRIu64 ": %s (link type %u) towards %s", a->svc.node_id, a->epoch,
             source_description(a->source), a->linktype, endpoint);
    return 0;
}

/* The main loop. Returns the exit status. */
static int s_run(agent_t *a)
{
    s_hello(a);
    int64_t stop_deadline = 0;
    bool end_sent = false;
    a->last_send_ms = clock_mono_ms();
    for (;;) {
        int64_t now = clock_mono_ms();
        s_drain(a);
        if (a->refused) {
            /* nothing will be accepted: keep what we hold, in the dead-letter file */
            s_end_of_input(a);
            while (outbox_held(a->outbox))
                s_dead_letter_oldest(a);
            break;
        }
        if (service_stop && !stop_deadline) {
            log_info("stopping: no more capturing; waiting up to %" PRId64
                     " ms for acknowledgements",
                     a->retry_timeout_ms);
            stop_deadline = now + a->retry_timeout_ms;
            s_end_of_input(a);
        }
        if (a->hello_pending && now - a->hello_sent_ms >= a->ack_timeout_ms)
            s_hello(a); /* no WELCOME yet: ask again */
        bool more = !a->eof && s_read(a, now);
        const batch_t *open = outbox_open_batch(a->outbox);
        if (open && now - open->opened_ms >= a->batch_delay_ms)
            outbox_close(a->outbox);
        const batch_t *oldest;
        while ((oldest = outbox_oldest(a->outbox)) &&
               now - oldest->opened_ms >= a->retry_timeout_ms)
            s_dead_letter_oldest(a);
        s_send_batches(a, now);
        if (a->eof && !end_sent && !outbox_open_batch(a->outbox) && outbox_unsent(a->outbox) == 0) {
            s_progress(a, WIRE_END);
            end_sent = true;
            a->last_send_ms = now;
        }
        if (now - a->last_send_ms >= a->heartbeat_ms) {
            s_progress(a, end_sent ? WIRE_END : WIRE_HEARTBEAT);
            a->last_send_ms = now;
        }
        if (now - a->last_stats_ms >= 1000) {
            s_stats(a);
            a->last_stats_ms = now;
        }
        metrics_set(a->svc.metrics, a->m.unacked_bytes, (double)outbox_held_bytes(a->outbox));
        metrics_set(a->svc.metrics, a->m.unacked_batches, (double)outbox_held(a->outbox));
        if (a->eof && outbox_held(a->outbox) == 0 && !outbox_open_batch(a->outbox))
            break;
        if (stop_deadline && now >= stop_deadline) {
            while (outbox_held(a->outbox))
                s_dead_letter_oldest(a);
            break;
        }

        /* sleep until something is due */
        int64_t wake = a->last_send_ms + a->heartbeat_ms;
        if (more)
            wake = now;
        open = outbox_open_batch(a->outbox);
        if (open && open->opened_ms + a->batch_delay_ms < wake)
            wake = open->opened_ms + a->batch_delay_ms;
        int64_t d = outbox_next_deadline(a->outbox);
        if (d < wake)
            wake = d;
        if ((oldest = outbox_oldest(a->outbox)) && oldest->opened_ms + a->retry_timeout_ms < wake)
            wake = oldest->opened_ms + a->retry_timeout_ms;
        if (a->hello_pending && a->hello_sent_ms + a->ack_timeout_ms < wake)
            wake = a->hello_sent_ms + a->ack_timeout_ms;
        bool can_read = !a->eof && outbox_has_room(a->outbox, WIRE_SNAPLEN_MAX);
        if (can_read && !more && source_wait_ns(a->source)) {
            int64_t w = now + (int64_t)(source_wait_ns(a->source) / 1000000u);
            if (w < wake)
                wake = w;
        }
        if (a->live && a->last_stats_ms + 1000 < wake)
            wake = a->last_stats_ms + 1000;
        if (stop_deadline && stop_deadline < wake)
            wake = stop_deadline;
        long timeout = wake > now ? (long)(wake - now) : 0;
        zmq_pollitem_t items[2] = {{a->sock, 0, ZMQ_POLLIN, 0},
                                   {NULL, source_fd(a->source), ZMQ_POLLIN, 0}};
        int n = items[1].fd >= 0 && can_read ? 2 : 1;
        if (zmq_poll(items, n, timeout) < 0 && errno != EINTR) {
            log_error("poll: %s", zmq_strerror(errno));
            return 1;
        }
    }
    s_stats(a);
    double packets = metrics_value(a->svc.metrics, a->m.packets);
    if (a->dead_batches) {
        log_error("%" PRIu64 " of %.0f packets (%" PRIu64
                  " batches) were not acknowledged and are in the dead-letter file %s",
                  a->dead_packets, packets, a->dead_batches, dlq_path(a->dlq));
        return 1;
    }
    if (a->failed)
        return 1;
    log_info("done: %.0f packets sent and acknowledged", packets);
    return 0;
}

int main(int argc, char **argv)
{
    agent_t a;
    memset(&a, 0, sizeof a);
    int status;
    if (!service_start(&a.svc, "tapmesh-capture", "capture", s_summary, s_rows,
                       sizeof s_rows / sizeof *s_rows, argc, argv, &status))
        return status;
    status = s_setup(&a);
    if (status == 0)
        status = s_run(&a);
    zsock_destroy(&a.dealer);
    dlq_destroy(&a.dlq);
    outbox_destroy(&a.outbox);
    source_close(&a.source);
    service_finish(&a.svc);
    zsys_shutdown();
    return status;
}
