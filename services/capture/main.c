/*
 * tapmesh-capture — reads packets with libpcap (a live interface or a
 * capture file), batches them and pushes them upstream over a DEALER
 * socket; keeps every batch until the collector acknowledges it, resends
 * with backoff, and writes what stays unacknowledged for RETRY_TIMEOUT_S to
 * the dead-letter file (shared DESIGN "Delivery").
 *
 * This file keeps the socket, the signals and the loop; the agent's logic is
 * agent.c (source → outbox → sends, dead letters, replies).
 */
#include "agent.h"
#include "clock.h"
#include "compress.h"
#include "epoch.h"
#include "events.h"
#include "frames.h"
#include "link.h"
#include "log.h"
#include "privs.h"
#include "service.h"
#include "source.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

static const char s_summary[] =
    "Captures packets (a live interface, a capture file or a PCAP-over-IP stream) and sends\n"
    "them upstream to a tapmesh-relay or tapmesh-collect, keeping each batch until it is\n"
    "acknowledged. Set DEVICE, READ_FILE or READ_PCAP_OVER_IP. Exit status: 0 when everything was "
    "delivered, 1 when anything\n"
    "went to the dead-letter directory or capture failed, 2 for a bad setting.";

static const cfg_row_t s_rows[] = {
    SERVICE_ROWS(":9710"),
    {"DEVICE", CFG_STR, "", 0, 0, NULL, false,
     "Network interface to capture on (live capture), e.g. `eth0`."},
    {"READ_FILE", CFG_FILE, NULL, 0, 0, NULL, false,
     "A pcap or pcapng capture file to send instead, any link type libpcap reads; `-` is "
     "standard input, read as it comes (`tcpdump -U -w - | READ_FILE=- tapmesh-capture`: -U "
     "writes whole packets at once)."},
    {"READ_PCAP_OVER_IP", CFG_STR, "", 0, 0, NULL, false,
     "`HOST:PORT` (`[v6]:PORT` for an IPv6 address) of a PCAP-over-IP server to read a classic "
     "pcap stream from (`tcpdump -w - | nc -l PORT`, pcap-broker, a collector's "
     "`PCAP_OVER_IP`): the first stream's link type and snaplen are the interface's (start-up "
     "waits for it); a lost connection is made again (`READ_PCAP_OVER_IP_RETRY_MS`), each "
     "outage logged and counted as a gap (tapmesh_capture_pcap_over_ip_gaps_total); a stream "
     "with another link type is refused and tried again. Runs until SIGTERM, like `DEVICE`."},
    {"READ_PCAP_OVER_IP_RETRY_MS", CFG_INT, "1000", 10, 60000, NULL, false,
     "`READ_PCAP_OVER_IP`: wait before connecting again after a failed attempt or a lost "
     "connection; doubled at each failure up to 30 s, back to this once a stream arrives."},
    {"FILTER", CFG_STR, "", 0, 0, NULL, false,
     "BPF filter (tcpdump syntax), applied to the interface, the file or the PCAP-over-IP "
     "stream; one that does not compile stops start-up with libpcap's message."},
    {"SNAPLEN", CFG_INT, "262144", 1, 262144, NULL, false,
     "Bytes kept of each live or PCAP-over-IP packet (the default keeps jumbo frames whole)."},
    {"PROMISC", CFG_BOOL, "true", 0, 0, NULL, false, "Promiscuous mode on the interface."},
    {"IMMEDIATE_MODE", CFG_BOOL, "true", 0, 0, NULL, false,
     "Deliver each packet as it arrives instead of when the kernel's block fills."},
    {"PCAP_BUFFER_MB", CFG_INT, "32", 0, 4096, NULL, false,
     "Kernel capture buffer in MiB (`0`: libpcap's default)."},
    {"TSTAMP_TYPE", CFG_STR, "", 0, 0, NULL, false,
     "Timestamp source: `host`, `adapter`, `adapter_unsynced`... where the NIC offers it; the "
     "error names those it offers (unset: `host`)."},
    {"DECAP", CFG_ENUM, "off", 0, 0, "off|vxlan|gretap|gre|erspan|auto", false,
     "The interface receives mirrored traffic in a tunnel; send the frames inside it: `vxlan` "
     "(UDP 4789, as AWS VPC Traffic Mirroring sends it), `gretap` (GRE 0x6558), `gre` (GRE "
     "carrying IP: sent as raw IP, link type 101), `erspan` (types I, II and III), `auto` "
     "(any of them; an IP packet from GRE gets an Ethernet header with zero addresses). The "
     "capture filter passes only the tunnel (`udp dst port 4789`, `ip proto 47 or ip6 proto "
     "47`, and `FILTER` after it, which sees the outer frames); what still has no inner frame is "
     "counted (tapmesh_capture_decap_dropped_packets_total) and not sent. The interface's "
     "description says `decap KIND` and `DECAP_ID`."},
    {"DECAP_ID", CFG_INT, NULL, 0, 4294967295LL, NULL, false,
     "With `DECAP`: send only the tunnel with this VNI (vxlan), GRE key (gretap, gre) or ERSPAN "
     "session id, named in the interface's description; others are counted (reason `id`). "
     "Unset: every one, mixed in one interface."},
    {"TSTAMP_SOURCE", CFG_ENUM, "capture", 0, 0,
     "capture|erspan|trailer:arista7130|header:arista7280", false,
     "Where each packet's time comes from: `capture` (libpcap); `erspan` (with `DECAP=erspan` "
     "or `auto`): the switch's ERSPAN type III timestamp (100 us, 100 ns or IEEE 1588 "
     "granularity; the upper 32 bits from a platform sub-header when there is one, else the "
     "wrap nearest the capture time); `trailer:arista7130`: the Arista 7130 (Metamako) trailer "
     "at the end of the frame (after `DECAP`), the first switch's when several are stacked, "
     "recognised as Wireshark does (a time within 30 days of the capture's); "
     "`header:arista7280`: the Arista 7280 timestamp header (EtherType 0xD28B after the "
     "source address or one 802.1Q tag; after `DECAP`), 64-bit (a time within 30 days of the "
     "capture's) or 48-bit (seconds modulo 65536: the full seconds nearest the capture time), "
     "TAI or UTC; TAI is taken back to UTC by subtracting 37 s, the TAI-UTC offset since "
     "2017-01-01 (a new leap second would change it). A packet without one keeps its capture "
     "time and is counted (tapmesh_capture_switch_timestamp_missing_total)."},
    {"TRAILER", CFG_ENUM, "keep", 0, 0, "keep|strip", false,
     "What becomes of the switch's timestamp, trailers (`TSTAMP_SOURCE=trailer:...`) or the "
     "Arista 7280 header (`TSTAMP_SOURCE=header:arista7280`): `keep` sends frames whole, "
     "every trailer, FCS and header included; `strip` sends each as the switch received it, "
     "without its trailers and their FCS (as the first of stacked switches received it) or "
     "without the header."},
    {"REPLAY_SPEED", CFG_INT, "0", 0, 1000, NULL, false,
     "`READ_FILE`: `0` sends as fast as possible; N replays at N times the recorded pace."},
    {"DLQ_REPLAY", CFG_BOOL, "true", 0, 0, NULL, false,
     "`READ_FILE` is a tapmesh dead-letter file: send its batches again under their original "
     "source, epoch and seq, so that a collector with its `STATE_DIR` writes each packet once "
     "(`false`: read it as an ordinary capture)."},
    {"RELAY_ENDPOINT", CFG_ENDPOINT, "tcp://127.0.0.1:5710", 0, 0, NULL, false,
     "ZeroMQ endpoint of the next hop (a relay or the collector) to connect to."},
    {"CAPTURE_OWN_TRAFFIC", CFG_BOOL, "false", 0, 0, NULL, false,
     "`DEVICE`: also capture the agent's own connection to `RELAY_ENDPOINT` (by default the "
     "filter leaves it out, as rpcapd does, so that the agent does not capture what it "
     "sends). The filter in force is logged at start-up."},
    {"COMPRESS", CFG_STR, "off", 0, 0, NULL, false,
     "`zstd` or `zstd:LEVEL` (1..19; `zstd` is level 3): batches go to the next hop compressed "
     "with zstd, once the collector says (an answer to HELLO, through every relay on the way) "
     "that it takes them; until then, or with an older collector or relay, uncompressed. A "
     "batch that would not get smaller goes uncompressed. Dead letters stay uncompressed. "
     "`off`: never."},
    {"DESCRIPTION", CFG_TEXT, "", 0, 0, NULL, false,
     "Free text about this source, carried into the output's interface description: up to "
     "1024 bytes of UTF-8 without control characters (what the wire carries); anything else "
     "stops start-up."},
    {"BATCH_MAX_BYTES", CFG_INT, "262144", 1024, 16777216, NULL, false,
     "A batch is sent once it holds this many bytes."},
    {"BATCH_MAX_DELAY_MS", CFG_INT, "10", 1, 60000, NULL, false,
     "A batch is sent at the latest this long after its first packet: at a low rate, how "
     "long a packet may wait at the agent (the output's delay is this plus the other "
     "sources' delay, for the merge)."},
    {"INFLIGHT_BATCHES", CFG_INT, "8", 1, 4096, NULL, false,
     "Batches sent and not yet acknowledged, at most."},
    {"ACK_TIMEOUT_MS", CFG_INT, "2000", 10, 600000, NULL, false,
     "A batch not acknowledged after this long is sent again (the wait doubles each time, "
     "up to 30 s)."},
    {"RETRY_TIMEOUT_S", CFG_INT, "60", 1, 86400, NULL, false,
     "A batch unacknowledged this long goes to the dead-letter file; also how long a "
     "stopping agent waits for acknowledgements."},
    {"STATE_DIR", CFG_PATH, "", 0, 0, NULL, false,
     "`READ_FILE` only: where the agent keeps its progress through the file "
     "(`<node>.resume`), in step with what it sends and what is acknowledged. Killed and "
     "started again with the same `NODE_ID`, `READ_FILE` and `STATE_DIR`, the agent continues "
     "its epoch: what was in flight is built again from the file under its original seq (the "
     "collector drops what it already has), nothing acknowledged is sent again, and a file "
     "that went through is not sent again (remove the state file to send it again). The "
     "state survives the agent being killed, not the host losing power. Created if missing; "
     "unset, a restart is a new epoch that sends the file again from the start."},
    {"DLQ_DIR", CFG_PATH, "/var/lib/tapmesh/dlq", 0, 0, NULL, false,
     "Directory for dead-letter pcapng files (created if missing): "
     "`<node>-<UTC start time>-<8 random hex digits>.pcapng` (e.g. "
     "`edge1-20250102T030405Z-3fa9c21b.pcapng`), mode 0600, never overwritten; the epoch is "
     "not in the name, only inside the file."},
    {"RUN_AS_USER", CFG_STR, "", 0, 0, NULL, false,
     "Once `DEVICE` or `READ_FILE` is open, run as this user (a name or a uid): supplementary "
     "groups cleared, its primary group, then its uid, checked (or exit 1). Directories the "
     "agent creates (`DLQ_DIR`, `STATE_DIR` and missing parents) are given to that user; "
     "existing ones must be writable by it (or exit 2, naming them). Every capability is "
     "cleared after the open in any case, in every thread, and no_new_privs is set; reading "
     "a file as root without `RUN_AS_USER` logs a warning (empty: stay the user that started "
     "the agent)."},
    {"BUFFER_MAX_MB", CFG_INT, "64", 1, 65536, NULL, false,
     "Memory for batches not yet acknowledged; when full, reading pauses (a live interface's "
     "kernel buffer then fills and drops, counted)."},
    {"HEARTBEAT_MS", CFG_INT, "50", 10, 60000, NULL, false,
     "While idle, a heartbeat with the watermark is sent this often: a quiet source holds "
     "the merge of the others' packets this long at most."},
    EVENTS_ROWS,
};

static const cfg_item_t s_exit_status[] = {
    {"0", "Every packet read was acknowledged (a file went through, or a stop found nothing "
          "unacknowledged)."},
    {"1", "Anything went to the dead-letter directory (unacknowledged for `RETRY_TIMEOUT_S`, "
          "or refused by the collector, e.g. for its link type), or capture failed."},
    {"2", "A bad setting, or an interface or file that cannot be opened: one line on standard "
          "error names it."},
    {NULL, NULL},
};

static const cfg_item_t s_signals[] = {
    {"SIGTERM, SIGINT",
     "Stop capturing, wait up to `RETRY_TIMEOUT_S` for the acknowledgements of what was sent, "
     "dead-letter the rest and exit. A second one dead-letters the rest at once."},
    {"SIGHUP", "Logged; the agent has nothing to read again."},
    {"SIGPIPE", "Ignored."},
    {NULL, NULL},
};

static const cfg_item_t s_files[] = {
    {"DLQ_DIR/<node>-<UTC start time>-<8 hex digits>.pcapng",
     "Dead letters: batches that stayed unacknowledged, as pcapng that tcpdump, tshark and "
     "Wireshark read (one interface named `node/interface`, the packets with their original "
     "timestamps, a comment on the first packet of each batch), mode 0600, never overwritten. "
     "Each batch keeps its identity (source, epoch, seq, part) and whether the collector "
     "refused it or only did not acknowledge it, in pcapng options other tools skip. Each "
     "batch is synced to disk before the agent lets go of it."},
    {"STATE_DIR/<node>.resume",
     "With `READ_FILE`: the agent's progress through the file, mode 0600. Remove it to send "
     "the file again."},
    {NULL, NULL},
};

static const cfg_item_t s_examples[] = {
    {"Capture on `eth0` and send to a site relay:",
     "NODE_ID=edge1 DEVICE=eth0 FILTER='not port 22' \\\n"
     "  RELAY_ENDPOINT=tcp://relay:5711 tapmesh-capture"},
    {"Send a capture file at its recorded pace, with flags instead of variables:",
     "tapmesh-capture --read-file trace.pcapng --replay-speed 1 \\\n"
     "  --relay-endpoint tcp://collector:5710"},
    {"Send what tcpdump captures, read from standard input:",
     "tcpdump -i eth1 -U -w - | NODE_ID=edge1 READ_FILE=- \\\n"
     "  RELAY_ENDPOINT=tcp://collector:5710 tapmesh-capture"},
    {"Encrypted and authenticated (keys from `tapmesh-keygen`), as an unprivileged user:",
     "NODE_ID=edge1 DEVICE=eth0 RUN_AS_USER=tapmesh \\\n"
     "  CURVE_SECRET_KEY_FILE=/etc/tapmesh/edge1_secret \\\n"
     "  CURVE_SERVER_PUBLIC_KEY=/etc/tapmesh/relay1 \\\n"
     "  RELAY_ENDPOINT=tcp://relay:5711 tapmesh-capture"},
    {"Read what tcpdump serves on TCP port 57012 of host `sensor1` (PCAP-over-IP), connecting "
     "again whenever the stream ends:",
     "# on sensor1: tcpdump -i eth0 -U -w - | nc -l 57012\n"
     "NODE_ID=sensor1 READ_PCAP_OVER_IP=sensor1:57012 \\\n"
     "  RELAY_ENDPOINT=tcp://collector:5710 tapmesh-capture"},
    {"Replay dead letters into a collector that runs with its `STATE_DIR`:",
     "cd /var/lib/tapmesh/dlq\n"
     "READ_FILE=edge1-20250102T030405Z-3fa9c21b.pcapng \\\n"
     "  RELAY_ENDPOINT=tcp://collector:5710 tapmesh-capture"},
    {NULL, NULL},
};

static const cfg_page_t s_page = {
    .program = "tapmesh-capture",
    .section = 8,
    .purpose = "capture packets and send them to a tapmesh relay or collector",
    .summary = s_summary,
    .description =
        "tapmesh moves captured packets from many capture points to one analysis point over "
        "ZeroMQ: whole, once, in timestamp order, with nanosecond timestamps. "
        "`tapmesh-capture` is its capture agent: it reads packets with libpcap, from a live "
        "interface (`DEVICE`, with a BPF `FILTER`), from a pcap or pcapng file "
        "(`READ_FILE`) or from a PCAP-over-IP server (`READ_PCAP_OVER_IP`), batches them and sends "
        "them over a DEALER socket to the next hop, a "
        "tapmesh-relay(8) or the tapmesh-collect(8) at the analysis host. The agent dials "
        "out: receivers need no change when agents join.\n"
        "\n"
        "Every batch carries the agent's source id (`NODE_ID`), an epoch (64 random bits, new "
        "whenever the agent starts afresh) and a sequence number. The agent keeps each batch "
        "until the collector has written it and the acknowledgement has come back along the "
        "same path; it sends it again after `ACK_TIMEOUT_MS` (then less and less often, and at "
        "once when a broken connection comes back), and writes what stays unacknowledged for "
        "`RETRY_TIMEOUT_S` to a dead-letter file in `DLQ_DIR`. Memory for unacknowledged "
        "batches is bounded (`BUFFER_MAX_MB`): when it is full the agent stops reading, and "
        "what the kernel then drops is counted. Started with `READ_FILE` set to a dead-letter "
        "file, the agent sends those batches again under their original identity, so that a "
        "collector with its `STATE_DIR` writes each packet exactly once.\n"
        "\n"
        "A live capture needs only the CAP_NET_RAW capability (CAP_NET_ADMIN for hardware "
        "timestamps). Once its source is open, the agent clears every capability and, with "
        "`RUN_AS_USER`, becomes that user.\n"
        "\n"
        "`GET /metrics` on `METRICS_ADDRPORT` answers in the Prometheus text format "
        "(`tapmesh_capture_*`), `GET /healthz` is a liveness probe.",
    .exit_status = s_exit_status,
    .signals = s_signals,
    .files = s_files,
    .examples = s_examples,
    .see_also = "tapmesh-relay(8), tapmesh-collect(8), tapmesh-keygen(1), tcpdump(8), "
                "pcap-filter(7)",
    .nshared = SERVICE_NROWS,
};

/* The loop passes at least this often (GET /healthz watches it). */
#define S_WAKE_MAX_MS 1000
/* At exit, the event stream gets at most this long to send what it holds. */
#define S_EVENTS_FINISH_MS 2000

typedef struct {
    service_t *svc;
    agent_t *agent;
    zsock_t *dealer;
    void *sock; /* libzmq handle of dealer */
    link_t *link;
    bool nothing_to_do; /* READ_FILE went through before (STATE_DIR) */
    dlq_info_t replay;  /* READ_FILE is a dead-letter file: whose */
    bool run_as;        /* RUN_AS_USER: `user` */
    privs_user_t user;
    struct stat input; /* READ_FILE as it was opened (STATE_DIR), when input_known */
    bool input_known;
    events_t *events; /* EVENTS, or NULL */
} capture_t;

/* ZeroMQ is done with a payload (its I/O thread, or this one when the send
 * failed): the loan goes back to the outbox. */
static void s_give_back(void *data, void *hint)
{
    (void)data;
    outbox_give_back(hint);
}

/* The agent's send callback: the command frame, and the batch's payload
 * without a copy: ZeroMQ sends it from the batch's own buffer, on a loan
 * (outbox.h) given back once it is written out. */
static int s_send(void *ctx, const uint8_t *cmd, size_t len, batch_t *batch, const uint8_t *packed,
                  size_t packed_len)
{
    capture_t *c = ctx;
    zmq_msg_t body;
    if (packed) { /* a compressed copy, small: copied, the batch stays held */
        if (zmq_msg_init_size(&body, packed_len) < 0)
            return -errno;
        memcpy(zmq_msg_data(&body), packed, packed_len);
    } else if (batch) {
        outbox_buf_t *loan = outbox_lend(batch);
        if (zmq_msg_init_data(&body, batch->buf, batch->len, s_give_back, loan) < 0) {
            int rc = -errno;
            outbox_give_back(loan);
            return rc;
        }
    }
    int rc = frames_send(c->sock, NULL, cmd, len, batch ? &body : NULL, ZMQ_DONTWAIT);
    if (batch)
        zmq_msg_close(&body); /* not sent: the loan comes back now */
    return rc;
}

/* The capture filter: with DECAP, only the tunnel's frames, then FILTER
 * (which sees the outer frames). */
static void s_filter(cfg_t *c, char *out, size_t len)
{
    const char *filter = cfg_str(c, "FILTER");
    const char *tunnel = decap_filter((decap_kind_t)cfg_enum(c, "DECAP"));
    if (!*tunnel)
        snprintf(out, len, "%s", filter);
    else if (!*filter)
        snprintf(out, len, "(%s)", tunnel);
    else
        snprintf(out, len, "(%s) and (%s)", tunnel, filter);
}

/* True when `env` holds something other than its default (the settings
 * table's). */
static bool s_changed(cfg_t *c, const char *env)
{
    for (size_t i = 0; i < sizeof s_rows / sizeof *s_rows; i++)
        if (strcmp(s_rows[i].env, env) == 0)
            return cfg_is_set(c, env) &&
                   strcmp(cfg_str(c, env), s_rows[i].def ? s_rows[i].def : "");
    return false;
}

/* Settings of a live interface or a file that mean nothing for a
 * PCAP-over-IP stream: set to anything but their default, they stop
 * start-up. Returns 0, or 2 after saying which. */
static int s_poip_settings(cfg_t *c)
{
    static const char *const not_for_poip[] = {
        "PROMISC",      "IMMEDIATE_MODE",      "PCAP_BUFFER_MB", "TSTAMP_TYPE",
        "REPLAY_SPEED", "CAPTURE_OWN_TRAFFIC", "STATE_DIR"};
    for (size_t i = 0; i < sizeof not_for_poip / sizeof *not_for_poip; i++) {
        if (s_changed(c, not_for_poip[i])) {
            fprintf(stderr,
                    "tapmesh-capture: %s=%s: not for READ_PCAP_OVER_IP (it applies to %s); "
                    "unset it\n",
                    not_for_poip[i], cfg_str(c, not_for_poip[i]),
                    i < 4    ? "a live interface, DEVICE"
                    : i == 5 ? "DEVICE, whose capture could see the agent's own traffic"
                             : "READ_FILE");
            return 2;
        }
    }
    return 0;
}

/* READ_PCAP_OVER_IP: connects and waits for the first stream (SIGTERM
 * meanwhile: *stopped, and NULL). */
static source_t *s_open_poip(cfg_t *c, metrics_t *metrics, const char *filter, bool *stopped)
{
    char err[1024];
    if (s_poip_settings(c) != 0)
        return NULL;
    source_poip_opts_t o = {.addr = cfg_str(c, "READ_PCAP_OVER_IP"),
                            .filter = filter,
                            .snaplen = (uint32_t)cfg_int(c, "SNAPLEN"),
                            .retry_ms = (unsigned)cfg_int(c, "READ_PCAP_OVER_IP_RETRY_MS"),
                            .metrics = metrics};
    source_t *source = source_poip_open(&o, err, sizeof err);
    if (!source) {
        fprintf(stderr, "tapmesh-capture: %s\n", err);
        return NULL;
    }
    int rc = source_poip_wait_stream(source, &service_stop, err, sizeof err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "tapmesh-capture: %s\n", err);
        else
            *stopped = true;
        source_close(&source);
    }
    return source;
}

static source_t *s_open_source(cfg_t *c, metrics_t *metrics, bool *live, bool *wall_clock,
                               bool *stopped)
{
    char err[1024];
    const char *device = cfg_str(c, "DEVICE"), *file = cfg_str(c, "READ_FILE");
    const char *poip = cfg_str(c, "READ_PCAP_OVER_IP");
    if (*poip && (*device || *file)) {
        fprintf(stderr,
                "tapmesh-capture: READ_PCAP_OVER_IP=%s and %s=%s: set one source, not "
                "both\n",
                poip, *device ? "DEVICE" : "READ_FILE", *device ? device : file);
        return NULL;
    }
    if (!*poip && !*device == !*file) {
        fprintf(stderr, "tapmesh-capture: %s\n",
                *device ? "set DEVICE or READ_FILE, not both"
                        : "nothing to capture: set DEVICE (an interface), READ_FILE (a file) or "
                          "READ_PCAP_OVER_IP (a PCAP-over-IP server)");
        return NULL;
    }
    size_t flen = strlen(cfg_str(c, "FILTER")) + 128;
    char *filter = malloc(flen);
    if (!filter) {
        fprintf(stderr, "tapmesh-capture: out of memory\n");
        return NULL;
    }
    s_filter(c, filter, flen);
    source_t *source;
    if (*poip) {
        source = s_open_poip(c, metrics, filter, stopped);
        *live = true;        /* it does not wait for us */
        *wall_clock = false; /* another host's clock, and a stream that may lag behind it */
        free(filter);
        return source;
    }
    if (*device) {
        source_live_opts_t o = {
            .device = device,
            .filter = filter,
            .snaplen = (uint32_t)cfg_int(c, "SNAPLEN"),
            .promisc = cfg_bool(c, "PROMISC"),
            .immediate = cfg_bool(c, "IMMEDIATE_MODE"),
            .buffer_mb = (unsigned)cfg_int(c, "PCAP_BUFFER_MB"),
            .tstamp_type = cfg_str(c, "TSTAMP_TYPE"),
            .next_hops = cfg_bool(c, "CAPTURE_OWN_TRAFFIC") ? "" : cfg_str(c, "RELAY_ENDPOINT")};
        source = source_live_open(&o, err, sizeof err);
        *live = true;
        *wall_clock = strcmp(o.tstamp_type, "adapter_unsynced") != 0;
    } else {
        source =
            source_file_open(file, (unsigned)cfg_int(c, "REPLAY_SPEED"), filter, err, sizeof err);
    }
    free(filter);
    if (!source)
        fprintf(stderr, "tapmesh-capture: %s\n", err);
    return source;
}

/* DECAP, DECAP_ID, TSTAMP_SOURCE and TRAILER into the agent's options; 0, or 2
 * after saying why. */
static int s_decap(cfg_t *c, agent_opts_t *o)
{
    o->decap = (decap_kind_t)cfg_enum(c, "DECAP");
    o->decap_id_set = cfg_is_set(c, "DECAP_ID");
    o->decap_id = o->decap_id_set ? (uint32_t)cfg_int(c, "DECAP_ID") : 0;
    o->tstamp_erspan = cfg_enum(c, "TSTAMP_SOURCE") == 1;
    o->tstamp_trailer = cfg_enum(c, "TSTAMP_SOURCE") == 2;
    o->tstamp_header = cfg_enum(c, "TSTAMP_SOURCE") == 3;
    o->trailer_strip = cfg_enum(c, "TRAILER") == 1;
    if (o->trailer_strip && !o->tstamp_trailer && !o->tstamp_header) {
        fprintf(stderr, "tapmesh-capture: TRAILER=strip: needs TSTAMP_SOURCE=trailer:arista7130 "
                        "or header:arista7280 (the trailer or header to strip)\n");
        return 2;
    }
    if (o->decap_id_set && o->decap == DECAP_OFF) {
        fprintf(stderr,
                "tapmesh-capture: DECAP_ID=%" PRIu32 ": needs DECAP (a tunnel to pick "
                "the id of)\n",
                o->decap_id);
        return 2;
    }
    if (o->tstamp_erspan && o->decap != DECAP_ERSPAN && o->decap != DECAP_AUTO) {
        fprintf(stderr,
                "tapmesh-capture: TSTAMP_SOURCE=erspan: needs DECAP=erspan or "
                "DECAP=auto (DECAP=%s)\n",
                decap_kind_name(o->decap));
        return 2;
    }
    if (o->tstamp_erspan || o->tstamp_trailer || o->tstamp_header)
        o->wall_clock = false; /* the switch's clock, not this host's */
    return 0;
}

/* Creates `dir` when missing, for the user the agent runs as after the
 * drop; 0, or 2 after saying why. */
static int s_make_dir(capture_t *c, const char *setting, const char *dir)
{
    char err[4400];
    if (privs_mkdirs(setting, dir, c->run_as ? &c->user : NULL, err, sizeof err) < 0) {
        fprintf(stderr, "tapmesh-capture: %s\n", err);
        return 2;
    }
    return 0;
}

/* `dir` can be written by the user the agent now is; 0, or 2 after saying
 * why (naming `setting`). */
static int s_writable_dir(capture_t *c, const char *setting, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && access(dir, W_OK | X_OK) == 0)
        return 0;
    if (c->run_as)
        fprintf(stderr,
                "tapmesh-capture: %s='%s': not a directory RUN_AS_USER=%s (uid %u) can write: "
                "give it to that user, or name one tapmesh may create\n",
                setting, dir, c->user.name, (unsigned)c->user.uid);
    else
        fprintf(stderr, "tapmesh-capture: %s='%s': not a writable directory\n", setting, dir);
    return 2;
}

/* The source is open: what it took to open it is given up (privs.h).
 * Returns 0, or the exit status after saying why. */
static int s_drop(capture_t *c)
{
    const char *file = cfg_str(c->svc->cfg, "READ_FILE");
    if (*file && !c->run_as && geteuid() == 0)
        log_warn("READ_FILE=%s: reading a file as root: set RUN_AS_USER=<a user> (the file is "
                 "opened first), so that the agent does not parse it as root",
                 file);
    char err[1024];
    if (privs_drop(c->run_as ? &c->user : NULL, err, sizeof err) < 0) {
        log_error("%s", err);
        return 1;
    }
    if (c->run_as)
        log_info("running as RUN_AS_USER=%s (uid %u, gid %u) without capabilities", c->user.name,
                 (unsigned)c->user.uid, (unsigned)c->user.gid);
    else
        log_info("running as uid %u without capabilities", (unsigned)getuid());
    return 0;
}

/* STATE_DIR: the agent's progress through READ_FILE. Sets o->resume and
 * o->epoch (the recorded one when continuing). Returns 0, or the exit
 * status after saying why. */
static int s_resume(capture_t *c, agent_opts_t *o)
{
    cfg_t *cfg = c->svc->cfg;
    const char *dir = cfg_str(cfg, "STATE_DIR"), *file = cfg_str(cfg, "READ_FILE");
    if (!*dir)
        return 0;
    if (!*file || strcmp(file, "-") == 0) {
        fprintf(stderr,
                "tapmesh-capture: STATE_DIR='%s': only for READ_FILE, a file that can be "
                "read again after a restart (not DEVICE, not standard input)\n",
                dir);
        return 2;
    }
    int rc = s_writable_dir(c, "STATE_DIR", dir);
    if (rc)
        return rc;
    size_t flen = strlen(cfg_str(cfg, "FILTER")) + 256;
    char *filter = malloc(flen);
    if (!filter) {
        fprintf(stderr, "tapmesh-capture: out of memory\n");
        return 2;
    }
    s_filter(cfg, filter, flen);
    /* what else decides which packets and bytes make the batches: a run
     * with other values starts afresh */
    size_t used = strlen(filter);
    if (cfg_is_set(cfg, "DECAP_ID"))
        used +=
            (size_t)snprintf(filter + used, flen - used, " DECAP_ID=%s", cfg_str(cfg, "DECAP_ID"));
    if (cfg_enum(cfg, "TSTAMP_SOURCE") != 0 && used < flen)
        snprintf(filter + used, flen - used, " TSTAMP_SOURCE=%s TRAILER=%s",
                 cfg_str(cfg, "TSTAMP_SOURCE"), cfg_str(cfg, "TRAILER"));
    resume_key_t key = {.path = file,
                        .filter = filter,
                        .batch_bytes = (uint64_t)cfg_int(cfg, "BATCH_MAX_BYTES"),
                        .input = c->input_known ? &c->input : NULL};
    char why[5000], err[5000];
    o->resume = resume_open(dir, c->svc->node_id, &key, why, sizeof why, err, sizeof err);
    free(filter);
    if (!o->resume) {
        fprintf(stderr, "tapmesh-capture: %s\n", err);
        return 2;
    }
    if (*why)
        log_warn("%s", why);
    switch (resume_mode(o->resume)) {
    case RESUME_DONE:
        log_info("READ_FILE=%s went through before (epoch %" PRIu64 ", %" PRIu64
                 " packets, as %s records): nothing to do; remove that file to send it again",
                 file, resume_epoch(o->resume), resume_done_packets(o->resume),
                 resume_path(o->resume));
        c->nothing_to_do = true;
        return 0;
    case RESUME_CONTINUE:
        o->epoch = resume_epoch(o->resume);
        log_info("continuing epoch %" PRIu64 " from batch %" PRIu64 " (packet %" PRIu64
                 " of the file), as %s records",
                 o->epoch, resume_first_seq(o->resume), resume_first_packet(o->resume),
                 resume_path(o->resume));
        return 0;
    default:
        if (resume_start(o->resume, o->epoch) < 0) {
            log_error("%s", resume_error(o->resume));
            return 1;
        }
        return 0;
    }
}

/* READ_FILE a dead-letter file (and DLQ_REPLAY): its batches go again
 * under the identity it records. Sets o->replay; 0, or the exit status
 * after saying why. */
static int s_open_replay(capture_t *c, agent_opts_t *o)
{
    cfg_t *cfg = c->svc->cfg;
    const char *file = cfg_str(cfg, "READ_FILE");
    if (!*file || strcmp(file, "-") == 0 || !cfg_bool(cfg, "DLQ_REPLAY"))
        return 0;
    char err[1024];
    int rc = dlq_reader_open(file, &o->replay, &c->replay, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "tapmesh-capture: READ_FILE=%s: %s\n", file, err);
        return 2;
    }
    if (rc == 0)
        return 0; /* an ordinary capture */
    o->replay_info = &c->replay;
    o->node_id = c->replay.source;
    o->epoch = c->replay.epoch;
    o->description = c->replay.hello_description;
    log_info("READ_FILE=%s: dead letters of source %s epoch %" PRIu64 ": sending them again "
             "under that identity (DLQ_REPLAY=false reads the file as a capture)",
             file, c->replay.source, c->replay.epoch);
    if (*cfg_str(cfg, "FILTER") || cfg_int(cfg, "REPLAY_SPEED") || *cfg_str(cfg, "STATE_DIR"))
        log_warn("FILTER, REPLAY_SPEED and STATE_DIR do not apply to dead letters sent again");
    return 0;
}

/* EVENTS (events.h): every packet sent and every loss, into the event
 * stream. */
static void s_tap(void *ctx, const char *source, const char *iface, uint16_t linktype,
                  const wire_packet_t *pkt)
{
    capture_t *c = ctx;
    events_packet(c->events, source, iface, linktype, pkt->ts_ns, pkt->caplen, pkt->origlen,
                  pkt->data, clock_mono_ms());
}

static void s_loss(void *ctx, const char *source, const char *iface, const char *reason,
                   uint64_t count)
{
    capture_t *c = ctx;
    events_loss(c->events, source, iface, reason, count, clock_mono_ms());
}

/* EVENTS and the rest of EVENTS_ROWS; standard output is free (the agent
 * writes no capture there), so EVENTS_TO=- is allowed. Sets o's tap.
 * Returns 0, or 2 after a line on standard error names the setting. */
static int s_setup_events(capture_t *c, agent_opts_t *o)
{
    char err[1024];
    if (events_from_cfg(c->svc->cfg, c->svc->metrics, "capture", false, &c->events, err,
                        sizeof err) < 0) {
        fprintf(stderr, "tapmesh-capture: %s\n", err);
        return 2;
    }
    if (c->events) {
        o->tap = s_tap;
        o->loss = s_loss;
        o->tap_ctx = c;
    }
    return 0;
}

static int s_setup(void *app, service_t *svc)
{
    capture_t *c = app;
    c->svc = svc;
    cfg_t *cfg = svc->cfg;
    char err[1024];
    const char *dir = cfg_str(cfg, "DLQ_DIR"), *run_as = cfg_str(cfg, "RUN_AS_USER");
    const char *file = cfg_str(cfg, "READ_FILE"), *state = cfg_str(cfg, "STATE_DIR");
    if (*run_as && privs_lookup(run_as, &c->user, err, sizeof err) < 0) {
        fprintf(stderr, "tapmesh-capture: %s\n", err);
        return 2;
    }
    c->run_as = *run_as != '\0';
    int rc = s_make_dir(c, "DLQ_DIR", dir);
    if (rc == 0 && *state && *file && strcmp(file, "-") != 0)
        rc = s_make_dir(c, "STATE_DIR", state);
    if (rc)
        return rc;
    agent_opts_t o = {.node_id = svc->node_id,
                      .description = cfg_str(cfg, "DESCRIPTION"),
                      .endpoint = cfg_str(cfg, "RELAY_ENDPOINT"),
                      .batch_bytes = (size_t)cfg_int(cfg, "BATCH_MAX_BYTES"),
                      .buffer_bytes = (size_t)cfg_int(cfg, "BUFFER_MAX_MB") << 20,
                      .window = (unsigned)cfg_int(cfg, "INFLIGHT_BATCHES"),
                      .batch_delay_ms = cfg_int(cfg, "BATCH_MAX_DELAY_MS"),
                      .heartbeat_ms = cfg_int(cfg, "HEARTBEAT_MS"),
                      .ack_timeout_ms = cfg_int(cfg, "ACK_TIMEOUT_MS"),
                      .backoff_max_ms = 30000,
                      .retry_timeout_ms = cfg_int(cfg, "RETRY_TIMEOUT_S") * 1000,
                      .dlq_dir = dir};
    if ((rc = s_setup_events(c, &o)) != 0)
        return rc;
    char why[160];
    if (compress_parse(cfg_str(cfg, "COMPRESS"), &o.compress_level, why, sizeof why) < 0) {
        fprintf(stderr, "tapmesh-capture: COMPRESS: %s\n", why);
        return 2;
    }
    source_t *source = NULL;
    char what[600];
    /* a new epoch unless a dead-letter replay or STATE_DIR gives one back */
    if (epoch_new(&o.epoch, err, sizeof err) < 0) {
        fprintf(stderr, "tapmesh-capture: %s\n", err);
        return 1;
    }
    if ((rc = s_open_replay(c, &o)) != 0)
        return rc;
    bool stopped = false;
    if (!o.replay &&
        !(source = s_open_source(cfg, svc->metrics, &o.live, &o.wall_clock, &stopped))) {
        if (!stopped)
            return 2;
        log_info("stopped before the first stream: nothing was read");
        c->nothing_to_do = true;
        return 0;
    }
    if (!o.replay && s_decap(cfg, &o) != 0) {
        source_close(&source);
        return 2;
    }
    c->input_known = *file && strcmp(file, "-") != 0 && stat(file, &c->input) == 0;
    if ((rc = s_drop(c)) != 0 || (rc = s_writable_dir(c, "DLQ_DIR", dir)) != 0) {
        source_close(&source);
        dlq_reader_close(&o.replay);
        return rc;
    }
    if (o.replay) {
        snprintf(what, sizeof what, "dead letters of %s epoch %" PRIu64 " from %s (link type %u)",
                 c->replay.source, c->replay.epoch, cfg_str(cfg, "READ_FILE"), c->replay.linktype);
    } else {
        if ((rc = s_resume(c, &o)) != 0 || c->nothing_to_do) {
            source_close(&source);
            resume_close(&o.resume);
            return rc;
        }
        snprintf(what, sizeof what, "%s (link type %d)", source_description(source),
                 source_linktype(source));
    }
    /* every batch goes out as a zmq_msg lent its buffer: at most `sndhwm`
     * messages wait in libzmq's queue before sends report back-pressure.
     * Batches go out only while the connection is up (agent.c): one the
     * agent holds while there is none, and may dead-letter, is not also
     * queued to reach the collector later. Not ZMQ_IMMEDIATE: with it, a
     * connection that ends takes the acknowledgements not yet read with it
     * (seen: batches written and acknowledged, then dead-lettered) */
    service_sock_opts_t so = {.sndhwm = 1000, .rcvhwm = 0, .linger_ms = 2000 /* END leaves */};
    c->dealer = service_dealer("RELAY_ENDPOINT", o.endpoint, &so, &c->link, err, sizeof err);
    if (!c->dealer) {
        source_close(&source);
        resume_close(&o.resume);
        dlq_reader_close(&o.replay);
        fprintf(stderr, "tapmesh-capture: %s\n", err);
        return 2;
    }
    c->sock = zsock_resolve(c->dealer);
    /* the output's if_filter: FILTER (after DECAP's tunnel part), as
     * compiled; not the exclusion of the agent's own connections */
    size_t flen = strlen(cfg_str(cfg, "FILTER")) + 128;
    char *filter = o.replay ? NULL : malloc(flen);
    if (filter)
        s_filter(cfg, filter, flen);
    o.if_filter = filter;
    c->agent = agent_new(&source, &o, svc->metrics, s_send, c);
    free(filter);
    if (!c->agent) {
        log_error("out of memory");
        return 1;
    }
    log_info("source %s epoch %" PRIu64 ": %s towards %s", o.node_id, o.epoch, what, o.endpoint);
    return 0;
}

static int s_run(void *app)
{
    capture_t *c = app;
    if (c->nothing_to_do)
        return 0;
    agent_t *a = c->agent;
    agent_start(a, clock_mono_ms());
    int stops = 0; /* stop requests handled */
    for (;;) {
        int64_t now = clock_mono_ms();
        if (link_update(c->link))
            agent_on_link(a, link_up(c->link), now);
        frames_t f;
        while (frames_recv(&f, c->sock, ZMQ_DONTWAIT) == 0) {
            agent_on_message(a, &f, now);
            frames_close(&f);
        }
        int asked = service_stop;
        if (asked > stops) {
            if (stops == 0)
                agent_stop(a, now);
            if (asked >= 2)
                agent_abort(a, now);
            stops = asked;
        }
        agent_step(a, now);
        if (c->events)
            events_poll(c->events, clock_mono_ms());
        if (agent_finished(a))
            break;

        metrics_alive(c->svc->metrics);
        int64_t wake = agent_next_wake(a, now);
        if (c->events) {
            int64_t ew = events_next_deadline(c->events, now);
            wake = ew < wake ? ew : wake;
        }
        long timeout = wake <= now                  ? 0
                       : wake - now > S_WAKE_MAX_MS ? S_WAKE_MAX_MS
                                                    : (long)(wake - now);
        zmq_pollitem_t items[3] = {{c->sock, 0, ZMQ_POLLIN, 0},
                                   {link_handle(c->link), 0, ZMQ_POLLIN, 0},
                                   {NULL, agent_poll_fd(a), ZMQ_POLLIN, 0}};
        int n = items[2].fd >= 0 ? 3 : 2;
        if (zmq_poll(items, n, timeout) < 0 && errno != EINTR) {
            log_error("poll: %s", zmq_strerror(errno));
            return 1;
        }
    }
    /* END and the last heartbeats may wait in the queue for linger's time;
     * without a connection, or when told to stop now, nothing is waited for */
    if (!link_up(c->link) || service_stop >= 2)
        zsock_set_linger(c->dealer, 0);
    int status = agent_exit_status(a); /* its last kernel counters are losses too */
    if (c->events)
        events_finish(c->events, S_EVENTS_FINISH_MS);
    return status;
}

static void s_teardown(void *app)
{
    capture_t *c = app;
    agent_destroy(&c->agent);
    link_destroy(&c->link);
    zsock_destroy(&c->dealer);
    events_destroy(&c->events);
}

int main(int argc, char **argv)
{
    static const service_def_t def = {.service = "capture",
                                      .page = &s_page,
                                      .rows = s_rows,
                                      .nrows = sizeof s_rows / sizeof *s_rows,
                                      .setup = s_setup,
                                      .run = s_run,
                                      .teardown = s_teardown};
    capture_t c;
    memset(&c, 0, sizeof c);
    return service_main(&def, &c, argc, argv);
}
