/*
 * tapmesh-collect — the end of the pipeline: a ROUTER that takes batches
 * from capture agents and relays, merges them by capture timestamp and
 * writes pcapng (or pcap) to standard output or a file, acknowledging each
 * batch once the output has it.
 *
 * Data flow: ROUTER (this file) → collector.c (sources, dedup, merge) →
 * output.c (writer, sink). One thread; libmicrohttpd serves /metrics.
 */
#include "clock.h"
#include "collector.h"
#include "encap.h"
#include "events.h"
#include "frames.h"
#include "inject.h"
#include "journal.h"
#include "retention.h"
#include "log.h"
#include "output.h"
#include "poip.h"
#include "service.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <string.h>
#include <unistd.h>

static const char s_summary[] =
    "Receives packets from tapmesh-capture agents and relays, merges them by capture\n"
    "timestamp and writes one pcapng stream (e.g. tapmesh-collect | tcpdump -r -).";

static const cfg_row_t s_rows[] = {
    SERVICE_ROWS(":9712"),
    {"COLLECT_ENDPOINT", CFG_ENDPOINT, "tcp://*:5710", 0, 0, NULL, false,
     "ZeroMQ endpoint to bind; sources and relays connect to it."},
    {"OUTPUT", CFG_PATH, "-", 0, 0, NULL, false,
     "Where the capture goes: `-` for standard output (refused when it is a terminal), `none` "
     "(no file: only the network readers, `PCAP_OVER_IP`, `OUTPUT_DEVICE` or `TUNNEL`, get the "
     "packets, and a batch is acknowledged once it is handed to them: nothing is kept, a reader "
     "not connected misses it; `./none` for a file of that name), or a "
     "file. With rotation or `STATE_DIR` a pattern: strftime conversions and `%i` (the file's "
     "index) are expanded for each file, and an index is added when the pattern has none; "
     "existing files are never overwritten. A file appears only with its first interface "
     "block in it: a collector that never had a source leaves no file. An existing FIFO or "
     "device is written in place."},
    {"ROTATE_MB", CFG_INT, "0", 0, 1048576, NULL, false,
     "Start a new output file once the current one holds this many MiB, like `tcpdump -C` "
     "(`0`: never)."},
    {"ROTATE_S", CFG_INT, "0", 0, 31536000, NULL, false,
     "Start a new output file this many seconds after the current one began, like "
     "`tcpdump -G`, also while idle: the new file starts with the header blocks and every "
     "interface (`0`: never)."},
    {"ROTATE_FILES", CFG_INT, "0", 0, 1000000, NULL, false,
     "Keep the newest this many output files, like `tcpdump -W`: after a rotation the oldest "
     "are deleted (logged, `tapmesh_collect_output_files_deleted_total{reason=\"count\"}`), "
     "each only once it is closed and everything in it is acknowledged. The file being "
     "written counts. Only files this collector wrote: those of this run and, with "
     "`STATE_DIR`, of the runs before; without `STATE_DIR` a restart forgets the older ones. "
     "Needs `ROTATE_MB` or `ROTATE_S` (`0`: keep all)."},
    {"ROTATE_MAX_GB", CFG_STR, "0", 0, 0, NULL, false,
     "Bound on the GiB the output files hold together, a decimal (`0.5`): the oldest are "
     "deleted by the same rule as `ROTATE_FILES` "
     "(`tapmesh_collect_output_files_deleted_total{reason=\"size\"}`). The file being "
     "written counts but is never deleted: when it alone holds more, every older file goes "
     "and the total stays above the bound until the next rotation. Gauge "
     "`tapmesh_collect_output_retained_bytes`. Needs `ROTATE_MB` or `ROTATE_S` (`0`: no "
     "bound)."},
    {"STATE_DIR", CFG_PATH, "", 0, 0, NULL, false,
     "Directory for the delivery state, kept in step with the output, so that a collector "
     "killed and started again writes no packet twice and loses none: it starts a new file, "
     "repairs the old one if the crash cut it, and removes it if no reader could open what is "
     "left (created if missing; unset: none)."},
    {"FLUSH_MS", CFG_INT, "0", 0, 60000, NULL, false,
     "Longest written packets wait in the output buffer (`0`: flushed after every pass)."},
    {"ANNOTATE", CFG_ENUM, "none", 0, 0, "none|hops", false,
     "`hops`: every packet's pcapng comment names the relays it came through, with their "
     "receive times."},
    {"MAX_BATCH_MB", CFG_INT, "64", 1, 64, NULL, false,
     "Larger batches are dropped and counted (`reason=\"oversize\"`)."},
    {"OUTPUT_FORMAT", CFG_ENUM, "pcapng", 0, 0, "pcapng|pcap", false,
     "`pcapng`, or classic `pcap` with nanosecond timestamps (one link type only)."},
    {"LINKTYPE_POLICY", CFG_ENUM, "first", 0, 0, "first|mixed", false,
     "`first`: the first link type is the output's, and sources with another are refused "
     "(counted; their agents dead-letter), so that tcpdump reads the output; `mixed`: any "
     "link type in one pcapng (tshark, Wireshark; not tcpdump)."},
    {"MERGE_WINDOW_MS", CFG_INT, "5000", 0, 600000, NULL, false,
     "Longest a packet waits for slower sources before it is written anyway (counted late); "
     "long enough for a relay restart (reconnect and resend); costs nothing while every "
     "source flows."},
    {"SOURCE_IDLE_S", CFG_INT, "10", 1, 86400, NULL, false,
     "A source silent this long no longer holds the merge back."},
    {"STARTUP_WAIT_MS", CFG_INT, "1000", 0, 600000, NULL, false,
     "After start, nothing is written for this long, so that sources connecting meanwhile "
     "(after a restart, all of them) are merged in timestamp order. With `EXPECT_SOURCES`: "
     "the longest wait for the expected sources, counted from the first one's arrival."},
    {"EXPECT_SOURCES", CFG_STR, "", 0, 0, NULL, false,
     "Sources to wait for before anything is written: a count (`4`: any four node ids) or a "
     "comma-separated list of node ids (`site1,site2`; only these count; one all-digit id is "
     "written `17,`). Writing starts the moment they have all joined, or `STARTUP_WAIT_MS` "
     "after the first one did (unset: `STARTUP_WAIT_MS` after the start); while it waits, "
     "`MERGE_WINDOW_MS` forces nothing out (`MERGE_MAX_MB` still does). After a restart with "
     "`STATE_DIR`, the sources that were sending are waited for as well, each up to "
     "`SOURCE_IDLE_S`. Gauge `tapmesh_collect_expected_sources_missing`."},
    {"MERGE_MAX_MB", CFG_INT, "256", 1, 65536, NULL, false,
     "Memory for packets waiting in the merge; when full, the oldest are written at once."},
    {"MAX_SOURCES", CFG_INT, "4096", 1, 1000000, NULL, false,
     "Source states (source, epoch) kept for merging and duplicate detection. When full, a "
     "state is forgotten from the peer holding the most (never one with batches not yet "
     "acknowledged)."},
    {"MAX_SOURCES_PER_PEER", CFG_INT, "256", 1, 1000000, NULL, false,
     "Source states one peer may hold: a peer is a CURVE key (without CURVE, a connection), "
     "and, behind a relay, each connection to that relay. Beyond, its new sources are refused "
     "(counted) until one of its own ends or goes idle. A key shared by many agents is one "
     "peer."},
    {"HELLO_RATE_PER_PEER", CFG_INT, "100", 0, 1000000, NULL, false,
     "New sources one peer may announce a second (a burst of as many); beyond, their HELLOs "
     "are refused and counted (`0`: no limit)."},
    {"OUTPUT_BUFFER_KB", CFG_INT, "1024", 512, 1048576, NULL, false,
     "Output buffer; it is flushed after every pass of the loop that wrote."},
    {"OUTPUT_DEVICE", CFG_STR, "", 0, 0, NULL, false,
     "Ethernet interfaces out of which every packet written is also sent, in the same merged "
     "order (libpcap `pcap_inject`; needs `CAP_NET_RAW`), beside `OUTPUT`: one (`eth1`), or "
     "several, each sent every packet (`eth1,eth2`: a tap replicated; at most 8). To send "
     "only, set `OUTPUT=none`. A batch is acknowledged once it is written and sent. A "
     "failed send is counted (`tapmesh_collect_output_device_errors_total{device,reason}`) "
     "and logged at most every 10 s per device, and never stops the collector, the other "
     "devices or the file output; packets of a source whose link type is not Ethernet are "
     "not sent (`reason=\"linktype\"`)."},
    {"VLAN_TAGS", CFG_STR, "", 0, 0, NULL, false,
     "An 802.1Q tag per source inserted after the MAC addresses of what `OUTPUT_DEVICE` and "
     "`TUNNEL` (gretap, vxlan) send, so that merged taps stay apart: `node:vid,...` "
     "(`edge-a:100,edge-b:200`; vid 1 to 4094). Sources not listed are sent untagged, as "
     "captured. The file output is never tagged."},
    {"OUTPUT_SNAPLEN", CFG_INT, "0", 0, 262144, NULL, false,
     "Longest frame `OUTPUT_DEVICE` and `TUNNEL` send, tag included: longer ones are cut "
     "(counted in `*_truncated_total`; `0`: no limit). The file output keeps whole packets."},
    {"TUNNEL", CFG_STR, "", 0, 0, NULL, false,
     "A remote host to which every packet written is also sent, over IPv4, in the same merged "
     "order: `gretap://HOST[?key=N]` (the Ethernet frame in GRE, protocol 0x6558, with a key "
     "when given; a raw socket: `CAP_NET_RAW`), `gre://HOST[?key=N]` (the IP packet alone, "
     "the Ethernet header removed; frames that carry no IP are counted, not sent) or "
     "`vxlan://HOST[:PORT][?vni=N]` (UDP, port 4789 and VNI 0 unless given). Frames are cut so "
     "that the outer packet fits `TUNNEL_MTU`, never fragmented (counted in "
     "`tapmesh_collect_tunnel_truncated_total`). Failures as for `OUTPUT_DEVICE`."},
    {"TUNNEL_MTU", CFG_INT, "1500", 68, 65535, NULL, false,
     "Largest outer IPv4 packet `TUNNEL` sends (headers included: 28 bytes for GRE with a key, "
     "24 without, 36 for VXLAN): each frame is cut to fit."},
    {"PCAP_OVER_IP", CFG_ADDRPORT, "", 0, 0, NULL, false,
     "A PCAP-over-IP server (as Arkime, Zeek, NetworkMiner and pcap-broker speak it) on "
     "`HOST:PORT` (`127.0.0.1:57012`, `[::1]:57012`, `:57012` for every address): each client "
     "that connects gets a classic pcap stream (nanosecond timestamps, the output's link type) "
     "of every packet written from then on, in the same merged order "
     "(`nc 127.0.0.1 57012 | tcpdump -r -`). Acknowledgements never wait for clients. Refused "
     "with `LINKTYPE_POLICY=mixed` (a pcap stream has one link type). No authentication, no "
     "encryption: keep it on loopback or a trusted network (unset: off)."},
    {"PCAP_OVER_IP_PRECISION", CFG_ENUM, "nano", 0, 0, "nano|micro", false,
     "Timestamps of the PCAP-over-IP stream: `nano` (magic 0xa1b23c4d; tcpdump "
     "`--time-stamp-precision=nano` shows them whole), or `micro` (0xa1b2c3d4, the nanoseconds "
     "cut off) for readers that take no other, such as Arkime's `pcap-over-ip-client`."},
    {"PCAP_OVER_IP_MAX_CLIENTS", CFG_INT, "16", 1, 1024, NULL, false,
     "PCAP-over-IP clients at once; a connection beyond is closed at once, counted "
     "(`tapmesh_collect_pcap_over_ip_clients_refused_total`) and logged."},
    {"PCAP_OVER_IP_BUFFER_MB", CFG_INT, "16", 1, 4096, NULL, false,
     "How far a PCAP-over-IP client may fall behind: one buffer of this size, shared by all "
     "clients. A client further behind is cut off (closed), counted "
     "(`tapmesh_collect_pcap_over_ip_clients_cut_total`) and logged with its address; the "
     "others, the file output and the acknowledgements never wait for it."},
    EVENTS_ROWS,
};

static const cfg_item_t s_exit_status[] = {
    {"0", "Stopped by SIGTERM or SIGINT, having written and acknowledged what it held."},
    {"1", "A write failed (the reader went away, the disk is full): one line names what "
          "failed (`OUTPUT: <file>: No space left on device`, `STATE_DIR: <dir>/journal: ...`); "
          "nothing more was acknowledged, so the agents still hold what was not written. Or "
          "another failure while running (logged)."},
    {"2", "A bad setting, standard output on a terminal, an output or `STATE_DIR` that cannot "
          "be opened, or an endpoint that cannot be bound: one line on standard error names "
          "it."},
    {NULL, NULL},
};

static const cfg_item_t s_signals[] = {
    {"SIGTERM, SIGINT", "Write what the merge holds, flush, acknowledge, and exit 0."},
    {"SIGHUP",
     "Read `CURVE_ALLOWED_KEYS_DIR` again (how many keys it allows is logged); a directory "
     "that does not read cleanly leaves the list as it was (logged)."},
    {"SIGPIPE", "Ignored: a reader that goes away (`tcpdump -c 100`) is an error of the next write "
                "(EPIPE), which stops the collector with status 1."},
    {NULL, NULL},
};

static const cfg_item_t s_files[] = {
    {"OUTPUT",
     "The capture, mode 0640 (the umask may take more away). A file appears whole: its first "
     "blocks are written to an anonymous file that is then linked under its name. A write "
     "that fails leaves the file cut back to its last whole block, so that `tcpdump -r` reads "
     "it to the end."},
    {"STATE_DIR/journal",
     "The delivery state, mode 0600: what each output file holds, batch by batch. Leave the "
     "output files where they are until the collector has been started again with its "
     "`STATE_DIR`: the restart checks them."},
    {"CURVE_ALLOWED_KEYS_DIR/*",
     "Public certificates (tapmesh-keygen(1)) of the agents and relays allowed to connect."},
    {NULL, NULL},
};

static const cfg_item_t s_examples[] = {
    {"Collect on port 5710 and read the stream with tcpdump:",
     "COLLECT_ENDPOINT='tcp://*:5710' tapmesh-collect | tcpdump -r - -nn"},
    {"Watch it live in Wireshark:", "tapmesh-collect | wireshark -k -i -"},
    {"Feed two tools at once:", "tapmesh-collect | tee >(tshark -r - -q -z conv,ip) \\\n"
                                "  | tcpdump -r - -nn 'tcp port 443'"},
    {"Files of at most an hour and 1 GiB each, kept in step across restarts, waiting for two "
     "sites:",
     "OUTPUT=/srv/capture/%Y%m%d-%H%M%S-%i.pcapng \\\n"
     "  ROTATE_S=3600 ROTATE_MB=1024 STATE_DIR=/var/lib/tapmesh/collect \\\n"
     "  EXPECT_SOURCES=site1,site2 tapmesh-collect"},
    {"Encrypted: only the relay's key may connect:",
     "mkdir allow && cp keys/relay1 allow/\n"
     "CURVE_SECRET_KEY_FILE=keys/collect_secret \\\n"
     "  CURVE_ALLOWED_KEYS_DIR=allow tapmesh-collect | tcpdump -r -"},
    {NULL, NULL},
};

static const cfg_page_t s_page = {
    .program = "tapmesh-collect",
    .section = 8,
    .purpose = "merge the packets of tapmesh sources into one pcapng stream",
    .summary = s_summary,
    .description =
        "`tapmesh-collect` is the end of a tapmesh pipeline: a ROUTER socket bound at "
        "`COLLECT_ENDPOINT`, to which capture agents (tapmesh-capture(8)) and relays "
        "(tapmesh-relay(8)) connect. It acknowledges each batch once its packets are written "
        "(handed to the operating system), drops duplicates by (source, epoch, sequence "
        "number), reports gaps, and merges all sources into one stream ordered by capture "
        "timestamp: a packet is written once every live source has said that nothing older "
        "will follow (a watermark), or after `MERGE_WINDOW_MS` (then counted late). "
        "Timestamps are never altered; their resolution is a nanosecond end to end.\n"
        "\n"
        "The output is pcapng (classic pcap on request) on standard output, or in files that "
        "rotate by size or age. Each source's interface is an interface block named "
        "`node/interface`. Every interface block of one output has the same snaplen and, "
        "under `LINKTYPE_POLICY=first`, the same link type, so that tcpdump, tshark and "
        "Wireshark all read it.\n"
        "\n"
        "With `STATE_DIR`, a journal kept in step with the output lets a collector killed at "
        "any moment and started again write no packet twice and lose none. A write that fails "
        "stops acknowledgements at once: what was not written stays with the agents, which "
        "dead-letter it after their `RETRY_TIMEOUT_S`; replayed into the collector started "
        "again with its `STATE_DIR`, every packet is written once.\n"
        "\n"
        "`GET /metrics` on `METRICS_ADDRPORT` answers in the Prometheus text format "
        "(`tapmesh_collect_*`), `GET /healthz` is a liveness probe.",
    .exit_status = s_exit_status,
    .signals = s_signals,
    .files = s_files,
    .examples = s_examples,
    .see_also = "tapmesh-capture(8), tapmesh-relay(8), tapmesh-keygen(1), tcpdump(8), "
                "tshark(1), wireshark(1)",
    .nshared = SERVICE_NROWS,
};

/* The loop passes at least this often (GET /healthz watches it). */
#define S_WAKE_MAX_MS 1000
/* Messages handled per pass at most, then written and acknowledged. */
#define S_DRAIN_MAX 256
/* Sockets of the authenticator polled with the router (service_pollitems). */
#define S_AUTH_ITEMS 4

#define S_DEVICES_MAX 8
/* At exit, PCAP-over-IP clients get at most this long to take what they
 * have pending. */
#define S_POIP_FINISH_MS 2000
/* At exit, the event stream gets at most this long to send what it holds. */
#define S_EVENTS_FINISH_MS 2000

typedef struct {
    service_t *svc;
    inject_t *devices[S_DEVICES_MAX]; /* OUTPUT_DEVICE, in the order given */
    int ndevices;
    inject_t *tunnel;      /* TUNNEL, or NULL */
    poip_t *poip;          /* PCAP_OVER_IP, or NULL */
    events_t *events;      /* EVENTS, or NULL */
    zmq_pollitem_t *items; /* the loop's: router, authenticator, PCAP_OVER_IP */
    size_t nitems;
    journal_t *journal;
    retention_t *retention; /* ROTATE_FILES, ROTATE_MAX_GB, or NULL */
    output_t *output;
    collector_t *collector;
    zsock_t *router;
    void *sock;
} collect_t;

static int s_reply(void *ctx, const route_t *route, const uint8_t *cmd, size_t len)
{
    collect_t *c = ctx;
    return frames_send(c->sock, route, cmd, len, NULL, ZMQ_DONTWAIT);
}

/* The collector's tap: every packet written goes out of OUTPUT_DEVICE and
 * into TUNNEL too (inject.h counts and logs what fails), to the
 * PCAP-over-IP clients (poip.h), and into the event stream (events.h). */
static void s_tap(void *ctx, const char *source, const char *iface, uint16_t linktype,
                  const wire_packet_t *pkt)
{
    collect_t *c = ctx;
    if (c->events)
        events_packet(c->events, source, iface, linktype, pkt->ts_ns, pkt->caplen, pkt->origlen,
                      pkt->data, clock_mono_ms());
    if (c->poip)
        poip_packet(c->poip, linktype, pkt);
    for (int i = 0; i < c->ndevices; i++)
        inject_packet(c->devices[i], source, linktype, pkt);
    if (c->tunnel)
        inject_packet(c->tunnel, source, linktype, pkt);
}

/* What the collector lost, into the event stream. */
static void s_loss(void *ctx, const char *source, const char *iface, const char *reason,
                   uint64_t count)
{
    collect_t *c = ctx;
    events_loss(c->events, source, iface, reason, count, clock_mono_ms());
}

/* EVENTS and the rest of EVENTS_ROWS. Returns 0, or 2 after a line on
 * standard error names the setting. */
static int s_setup_events(collect_t *c, cfg_t *cfg)
{
    char err[1024];
    if (events_from_cfg(cfg, c->svc->metrics, "collect", strcmp(cfg_str(cfg, "OUTPUT"), "-") == 0,
                        &c->events, err, sizeof err) < 0) {
        fprintf(stderr, "tapmesh-collect: %s\n", err);
        return 2;
    }
    return 0;
}

/* OUTPUT_DEVICE, VLAN_TAGS, OUTPUT_SNAPLEN, TUNNEL, TUNNEL_MTU. Returns 0, or 2
 * after a line on standard error names the setting. */
static int s_setup_inject(collect_t *c, cfg_t *cfg)
{
    char err[1024];
    encap_vlan_tag_t tags[256];
    int ntags = encap_vlan_tags_parse(cfg_str(cfg, "VLAN_TAGS"), tags, sizeof tags / sizeof *tags,
                                      err, sizeof err);
    if (ntags < 0) {
        fprintf(stderr, "tapmesh-collect: VLAN_TAGS: %s\n", err);
        return 2;
    }
    inject_opts_t io = {
        .tags = tags, .ntags = (size_t)ntags, .snaplen = (uint32_t)cfg_int(cfg, "OUTPUT_SNAPLEN")};
    if (cfg_is_set(cfg, "TUNNEL")) {
        encap_tunnel_t t;
        if (encap_tunnel_parse(cfg_str(cfg, "TUNNEL"), &t, err, sizeof err) < 0) {
            fprintf(stderr, "tapmesh-collect: TUNNEL=%s: %s\n", cfg_str(cfg, "TUNNEL"), err);
            return 2;
        }
        c->tunnel = inject_tunnel_new(&t, (unsigned)cfg_int(cfg, "TUNNEL_MTU"), &io,
                                      c->svc->metrics, err, sizeof err);
        if (!c->tunnel) {
            fprintf(stderr, "tapmesh-collect: %s\n", err);
            return 2;
        }
        log_info("sending every packet written into %s (outer packets of at most %lld bytes)",
                 inject_name(c->tunnel), (long long)cfg_int(cfg, "TUNNEL_MTU"));
    }
    if (cfg_is_set(cfg, "OUTPUT_DEVICE")) {
        const char *list = cfg_str(cfg, "OUTPUT_DEVICE");
        for (const char *at = list; *at;) {
            size_t n = strcspn(at, ",");
            if (n == 0) {
                fprintf(stderr, "tapmesh-collect: OUTPUT_DEVICE=%s: an empty name\n", list);
                return 2;
            }
            char name[IF_NAMESIZE + 8];
            snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name - 1 ? n : sizeof name - 1),
                     at);
            if (c->ndevices == S_DEVICES_MAX) {
                fprintf(stderr, "tapmesh-collect: OUTPUT_DEVICE=%s: at most %d devices\n", list,
                        S_DEVICES_MAX);
                return 2;
            }
            for (int i = 0; i < c->ndevices; i++)
                if (strcmp(inject_name(c->devices[i]) + strlen("OUTPUT_DEVICE="), name) == 0) {
                    fprintf(stderr, "tapmesh-collect: OUTPUT_DEVICE=%s: %s is named twice\n", list,
                            name);
                    return 2;
                }
            inject_t *d = inject_device_new(name, &io, c->svc->metrics, err, sizeof err);
            if (!d) {
                fprintf(stderr, "tapmesh-collect: %s\n", err);
                return 2;
            }
            c->devices[c->ndevices++] = d;
            log_info("sending every packet written out of %s", inject_name(d));
            at += n;
            if (*at == ',')
                at++;
        }
    }
    if (ntags && !c->ndevices && !c->tunnel) {
        fprintf(stderr, "tapmesh-collect: VLAN_TAGS: tags only what OUTPUT_DEVICE or TUNNEL "
                        "send; neither is set\n");
        return 2;
    }
    return 0;
}

static int s_setup(void *app, service_t *svc)
{
    collect_t *c = app;
    c->svc = svc;
    cfg_t *cfg = svc->cfg;
    char err[8192];
    const char *path = cfg_str(cfg, "OUTPUT");
    if (strcmp(path, "-") == 0 && isatty(STDOUT_FILENO)) {
        /* pcapng is binary: on a terminal it is noise, and it can upset the terminal */
        fprintf(stderr,
                "tapmesh-collect: OUTPUT=-: standard output is a terminal; pipe it "
                "into a reader (tapmesh-collect | tcpdump -r -) or set OUTPUT to a "
                "file (OUTPUT=none to only send with OUTPUT_DEVICE, TUNNEL or PCAP_OVER_IP)\n");
        return 2;
    }
    bool rotating = cfg_int(cfg, "ROTATE_MB") || cfg_int(cfg, "ROTATE_S");
    if (rotating && strcmp(path, "-") == 0) {
        fprintf(stderr, "tapmesh-collect: ROTATE_MB/ROTATE_S need OUTPUT to be a file "
                        "(pattern), not standard output\n");
        return 2;
    }
    bool none = strcmp(path, OUTPUT_NONE) == 0;
    if (none && rotating) {
        fprintf(stderr, "tapmesh-collect: ROTATE_MB/ROTATE_S need OUTPUT to be a file "
                        "(pattern), not none\n");
        return 2;
    }
    if (none && cfg_is_set(cfg, "STATE_DIR")) {
        fprintf(stderr, "tapmesh-collect: STATE_DIR keeps the delivery state in step with a "
                        "file output; OUTPUT=none writes none\n");
        return 2;
    }
    if (none && !cfg_is_set(cfg, "PCAP_OVER_IP") && !cfg_is_set(cfg, "OUTPUT_DEVICE") &&
        !cfg_is_set(cfg, "TUNNEL")) {
        fprintf(stderr, "tapmesh-collect: OUTPUT=none: nothing would get the packets; set "
                        "PCAP_OVER_IP, OUTPUT_DEVICE or TUNNEL, or OUTPUT to a file or - "
                        "(standard output)\n");
        return 2;
    }
    if (cfg_is_set(cfg, "PCAP_OVER_IP") && cfg_enum(cfg, "LINKTYPE_POLICY") == 1 &&
        cfg_enum(cfg, "OUTPUT_FORMAT") == 0) {
        fprintf(stderr,
                "tapmesh-collect: PCAP_OVER_IP=%s: a pcap stream has one link type, and "
                "LINKTYPE_POLICY=mixed lets sources of any link type in; use "
                "LINKTYPE_POLICY=first (the default)\n",
                cfg_str(cfg, "PCAP_OVER_IP"));
        return 2;
    }
    uint64_t max_bytes;
    if (retention_parse_gb(cfg_str(cfg, "ROTATE_MAX_GB"), &max_bytes, err, sizeof err) < 0) {
        fprintf(stderr, "tapmesh-collect: ROTATE_MAX_GB: %s\n", err);
        return 2;
    }
    unsigned keep_files = (unsigned)cfg_int(cfg, "ROTATE_FILES");
    if ((keep_files || max_bytes) && !rotating) {
        fprintf(stderr,
                "tapmesh-collect: %s deletes rotated files: it needs ROTATE_MB or "
                "ROTATE_S\n",
                keep_files ? "ROTATE_FILES" : "ROTATE_MAX_GB");
        return 2;
    }
    int rc = s_setup_inject(c, cfg);
    if (rc)
        return rc;
    if ((rc = s_setup_events(c, cfg)))
        return rc;
    size_t max_clients = 0;
    if (cfg_is_set(cfg, "PCAP_OVER_IP")) {
        max_clients = (size_t)cfg_int(cfg, "PCAP_OVER_IP_MAX_CLIENTS");
        poip_opts_t po = {.listen = cfg_str(cfg, "PCAP_OVER_IP"),
                          .max_clients = max_clients,
                          .buffer_bytes = (size_t)cfg_int(cfg, "PCAP_OVER_IP_BUFFER_MB") << 20,
                          .micro = cfg_enum(cfg, "PCAP_OVER_IP_PRECISION") == 1};
        c->poip = poip_new(&po, svc->metrics, err, sizeof err);
        if (!c->poip) {
            fprintf(stderr, "tapmesh-collect: %s\n", err);
            return 2;
        }
        log_info("PCAP_OVER_IP: serving a pcap stream on %s (at most %zu clients, each at most "
                 "%lld MiB behind)",
                 po.listen, max_clients, (long long)cfg_int(cfg, "PCAP_OVER_IP_BUFFER_MB"));
    }
    c->nitems = 1 + S_AUTH_ITEMS + (c->poip ? 1 + max_clients : 0);
    c->items = calloc(c->nitems, sizeof *c->items);
    if (!c->items) {
        log_error("out of memory");
        return 1;
    }
    if (cfg_is_set(cfg, "STATE_DIR")) {
        c->journal = journal_open(cfg_str(cfg, "STATE_DIR"), err, sizeof err);
        if (!c->journal) {
            fprintf(stderr, "tapmesh-collect: %s\n", err);
            return 2;
        }
    }
    output_opts_t oo = {.path = path,
                        .format = (pcapng_format_t)cfg_enum(cfg, "OUTPUT_FORMAT"),
                        .policy = (output_policy_t)cfg_enum(cfg, "LINKTYPE_POLICY"),
                        .bufsize = (size_t)cfg_int(cfg, "OUTPUT_BUFFER_KB") << 10,
                        .rotate_bytes = (uint64_t)cfg_int(cfg, "ROTATE_MB") << 20,
                        .rotate_ms = cfg_int(cfg, "ROTATE_S") * 1000,
                        .keep_existing = c->journal != NULL};
    c->output = output_open(&oo, err, sizeof err);
    if (!c->output) {
        fprintf(stderr, "tapmesh-collect: OUTPUT=%s\n", err);
        return 2;
    }
    if (c->journal && !keep_files && !max_bytes)
        journal_keep_files(c->journal, false); /* nothing would read the list */
    if (keep_files || max_bytes) {
        c->retention = retention_new(keep_files, max_bytes, c->journal, svc->metrics);
        /* the files of the runs before, as the journal names them */
        for (size_t i = 0; c->retention && c->journal && i < journal_files(c->journal); i++)
            if (retention_restore(c->retention, journal_file_at(c->journal, i)) < 0)
                retention_destroy(&c->retention);
        if (!c->retention || retention_begin(c->retention, output_path(c->output), 0, 0) < 0) {
            log_error("out of memory");
            return 1;
        }
        if (retention_files(c->retention) > 1)
            log_info("retention: %zu files of earlier runs (%" PRIu64 " bytes) count in "
                     "ROTATE_FILES/ROTATE_MAX_GB",
                     retention_files(c->retention) - 1, retention_bytes(c->retention));
    }
    if (c->journal && journal_file(c->journal, output_path(c->output)) < 0) {
        fprintf(stderr, "tapmesh-collect: %s\n", journal_error(c->journal));
        return 2;
    }
    char why[256];
    const char *expect = cfg_str(cfg, "EXPECT_SOURCES");
    int nexpect = collector_expect_check(expect, why, sizeof why);
    if (nexpect < 0) {
        fprintf(stderr, "tapmesh-collect: EXPECT_SOURCES: %s\n", why);
        return 2;
    }
    if (nexpect > cfg_int(cfg, "MAX_SOURCES")) {
        fprintf(stderr,
                "tapmesh-collect: EXPECT_SOURCES: %d sources, more than MAX_SOURCES (%lld)\n",
                nexpect, (long long)cfg_int(cfg, "MAX_SOURCES"));
        return 2;
    }
    collector_opts_t opts = {
        .merge_window_ms = cfg_int(cfg, "MERGE_WINDOW_MS"),
        .source_idle_ms = cfg_int(cfg, "SOURCE_IDLE_S") * 1000,
        .merge_max_bytes = (size_t)cfg_int(cfg, "MERGE_MAX_MB") << 20,
        .max_sources = (size_t)cfg_int(cfg, "MAX_SOURCES"),
        .max_batch_bytes = (size_t)cfg_int(cfg, "MAX_BATCH_MB") << 20,
        .flush_ms = cfg_int(cfg, "FLUSH_MS"),
        .start_ms = clock_mono_ms(),
        .start_grace_ms = cfg_int(cfg, "STARTUP_WAIT_MS"),
        .expect_sources = expect,
        .journal = c->journal,
        .retention = c->retention,
        .annotate_hops = cfg_enum(cfg, "ANNOTATE") == 1,
        .trust = svc->trust,
        .max_sources_per_peer = (size_t)cfg_int(cfg, "MAX_SOURCES_PER_PEER"),
        .hello_rate = (unsigned)cfg_int(cfg, "HELLO_RATE_PER_PEER"),
        .tap = c->ndevices || c->tunnel || c->poip || c->events ? s_tap : NULL,
        .tap_ctx = c,
        .loss = c->events ? s_loss : NULL,
    };
    c->collector = collector_new(c->output, &opts, svc->metrics, s_reply, c);
    if (!c->collector) {
        log_error("out of memory");
        return 1;
    }
    /* a message between MAX_BATCH_MB and the protocol's limit is counted
     * as "oversize" and dropped alone, so that one source's big batch does
     * not cut off a relay and everyone behind it */
    service_sock_opts_t so = {
        .sndhwm = 100000, .rcvhwm = 1000, .linger_ms = 1000 /* last acknowledgements on exit */};
    const char *endpoint = cfg_str(cfg, "COLLECT_ENDPOINT");
    c->router = service_router("COLLECT_ENDPOINT", endpoint, &so, err, sizeof err);
    if (!c->router) {
        log_error("%s", err);
        return 2;
    }
    c->sock = zsock_resolve(c->router);
    log_info("listening on %s, writing %s to %s%s", endpoint, cfg_str(cfg, "OUTPUT_FORMAT"),
             output_name(c->output), c->journal ? " (delivery state in STATE_DIR)" : "");
    if (nexpect > 0)
        log_info("EXPECT_SOURCES=%s: nothing is written until %d source%s %s joined, or "
                 "STARTUP_WAIT_MS (%lld ms) after the first one did",
                 expect, nexpect, nexpect == 1 ? "" : "s", nexpect == 1 ? "has" : "have",
                 (long long)cfg_int(cfg, "STARTUP_WAIT_MS"));
    return 0;
}

/* Writes what the merge allows, flushes, acknowledges. Returns 0, or 1
 * after logging the output's failure. */
static int s_commit(collect_t *c, bool drain)
{
    int64_t now = clock_mono_ms();
    int rc = collector_emit(c->collector, now, drain);
    if (rc >= 0)
        rc = collector_commit(c->collector, now, drain);
    if (rc < 0) {
        log_error("%s: nothing more is acknowledged; stopping", collector_error(c->collector));
        return 1;
    }
    return 0;
}

static int s_run(void *app)
{
    collect_t *c = app;
    while (!service_stop) {
        metrics_alive(c->svc->metrics);
        int64_t now = clock_mono_ms();
        int64_t wake = collector_next_deadline(c->collector, now);
        if (c->events) {
            int64_t ew = events_next_deadline(c->events, now);
            wake = ew < wake ? ew : wake;
        }
        long timeout = wake - now > S_WAKE_MAX_MS ? S_WAKE_MAX_MS
                       : wake < now               ? 0
                                                  : (long)(wake - now);
        zmq_pollitem_t *items = c->items;
        items[0] = (zmq_pollitem_t){c->sock, 0, ZMQ_POLLIN, 0};
        size_t na = service_pollitems(c->svc, items + 1, S_AUTH_ITEMS);
        size_t np = c->poip ? poip_pollitems(c->poip, items + 1 + na, c->nitems - 1 - na) : 0;
        if (zmq_poll(items, (int)(1 + na + np), timeout) < 0 && errno != EINTR) {
            log_error("poll: %s", zmq_strerror(errno));
            return 1;
        }
        if (c->poip)
            poip_handle(c->poip, items + 1 + na, np);
        service_handle(c->svc, clock_mono_ms()); /* connections first: then their messages */
        /* a bounded number of messages per pass, then write and acknowledge */
        for (int i = 0; i < S_DRAIN_MAX; i++) {
            frames_t f;
            if (frames_recv(&f, c->sock, ZMQ_DONTWAIT) < 0)
                break;
            collector_on_message(c->collector, &f, clock_mono_ms());
            frames_close(&f);
        }
        if (s_commit(c, false))
            return 1;
        if (c->poip)
            poip_send(c->poip);
        if (c->events)
            events_poll(c->events, clock_mono_ms());
    }
    log_info("stopping: writing the %zu packets still in the merge",
             collector_queued_packets(c->collector));
    if (s_commit(c, true))
        return 1;
    int rc = output_end(c->output);
    if (rc < 0) {
        log_error("OUTPUT: %s: %s", output_name(c->output), strerror(-rc));
        return 1;
    }
    if (c->poip)
        poip_finish(c->poip, S_POIP_FINISH_MS);
    if (c->events)
        events_finish(c->events, S_EVENTS_FINISH_MS);
    if (output_files(c->output) == 0 && strcmp(output_path(c->output), OUTPUT_NONE) != 0)
        log_info("no source joined: %s was not created", output_name(c->output));
    return 0;
}

static void s_teardown(void *app)
{
    collect_t *c = app;
    zsock_destroy(&c->router);
    collector_destroy(&c->collector);
    output_close(&c->output);
    retention_destroy(&c->retention);
    journal_close(&c->journal);
    for (int i = 0; i < c->ndevices; i++)
        inject_destroy(&c->devices[i]);
    inject_destroy(&c->tunnel);
    poip_destroy(&c->poip);
    events_destroy(&c->events);
    free(c->items);
}

int main(int argc, char **argv)
{
    static const service_def_t def = {.service = "collect",
                                      .page = &s_page,
                                      .rows = s_rows,
                                      .nrows = sizeof s_rows / sizeof *s_rows,
                                      .setup = s_setup,
                                      .run = s_run,
                                      .teardown = s_teardown};
    collect_t c;
    memset(&c, 0, sizeof c);
    return service_main(&def, &c, argc, argv);
}
