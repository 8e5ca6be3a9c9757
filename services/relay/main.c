/*
 * tapmesh-relay — a hop between sources and the collector: a ROUTER bound
 * towards its sources (capture agents or other relays), one DEALER per next
 * hop, each watched by a socket monitor.
 *
 * This file keeps the sockets, the signals and the loop; what the relay
 * does with messages is relay.c (routing, fan-out, acknowledgements).
 */
#include "clock.h"
#include "compress.h"
#include "frames.h"
#include "hops.h"
#include "link.h"
#include "log.h"
#include "relay.h"
#include "service.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>

static const char s_summary[] =
    "Forwards batches from capture agents (or other relays) to the next hop(s) and routes the\n"
    "acknowledgements back; keeps no packets, so it may be restarted at any time.";

static const cfg_row_t s_rows[] = {
    SERVICE_ROWS(":9711"),
    {"COLLECT_ENDPOINT", CFG_ENDPOINT, "tcp://*:5711", 0, 0, NULL, false,
     "ZeroMQ endpoint to bind; capture agents and other relays connect to it."},
    {"RELAY_ENDPOINT", CFG_ENDPOINTS, "tcp://127.0.0.1:5710", 0, 0, NULL, false,
     "Next hop(s) to connect to (relays or collectors), comma-separated, in order of "
     "preference."},
    {"FANOUT", CFG_ENUM, "failover", 0, 0, "failover|duplicate|flowhash", false,
     "`failover`: one next hop at a time, the first that is connected and acknowledging (and "
     "back to it when it returns); `duplicate`: every next hop gets every batch, acknowledged "
     "upstream once all have it; `flowhash`: packets split by a symmetric hash of their flow "
     "(addresses, protocol, ports), so that both directions of a conversation take the same "
     "next hop; packets that are not IP take the first."},
    {"FILTER", CFG_STR, "", 0, 0, NULL, false,
     "BPF filter (tcpdump syntax): only matching packets are forwarded; the others count as "
     "delivered."},
    {"COMPRESS", CFG_STR, "off", 0, 0, NULL, false,
     "`zstd` or `zstd:LEVEL` (1..19; `zstd` is level 3), for every next hop: uncompressed "
     "batches go on compressed with zstd to each next hop that says (an answer to HELLO) it "
     "takes them; a batch that would not get smaller goes uncompressed. Batches that arrive "
     "compressed pass through as they are whatever this says, unless `FILTER` or "
     "`FANOUT=flowhash` needs their packets (they are then decompressed, and go on compressed "
     "only with this set). `off`: the relay compresses nothing."},
    {"HOP_TIMEOUT_MS", CFG_INT, "10000", 100, 600000, NULL, false,
     "A next hop that has not acknowledged a batch for this long is passed over (failover) "
     "until it acknowledges again, reconnects, or 30 s have passed. Keep it above the "
     "collector's `MERGE_WINDOW_MS`: a collector may hold acknowledgements that long while it "
     "waits for a slower source."},
    {"RETRY_TIMEOUT_S", CFG_INT, "10", 1, 86400, NULL, false,
     "`FANOUT=duplicate`: a next hop that has not acknowledged a batch after this long is "
     "counted as having lost it, and the batch is acknowledged upstream."},
    {"PENDING_MAX", CFG_INT, "65536", 16, 16777216, NULL, false,
     "Batches in flight tracked at once (beyond, batches are forwarded untracked)."},
    {"MAX_SOURCES", CFG_INT, "4096", 1, 1000000, NULL, false,
     "Sources remembered (routes, link types). When full, one is forgotten from the peer "
     "holding the most (never one with batches in flight)."},
    {"MAX_SOURCES_PER_PEER", CFG_INT, "256", 1, 1000000, NULL, false,
     "Sources one peer may announce at once: a peer is a CURVE key (without CURVE, a "
     "connection), and, behind another relay, each connection to that relay. Beyond, its own "
     "least recently heard source without batches in flight is forgotten, or the new one "
     "refused (counted)."},
    {"HELLO_RATE_PER_PEER", CFG_INT, "100", 0, 1000000, NULL, false,
     "New sources one peer may announce a second (a burst of as many); beyond, their messages "
     "are dropped and counted (`0`: no limit)."},
};

static const cfg_item_t s_exit_status[] = {
    {"0", "Stopped by SIGTERM or SIGINT."},
    {"1", "A failure while running (logged)."},
    {"2", "A bad setting, a filter that does not compile, or an endpoint that cannot be bound "
          "or connected: one line on standard error names it."},
    {NULL, NULL},
};

static const cfg_item_t s_signals[] = {
    {"SIGTERM, SIGINT",
     "Stop at once. Nothing is lost: the agents keep every batch until it is acknowledged and "
     "send what was in flight again, and the collector drops what it already has."},
    {"SIGHUP",
     "Read `CURVE_ALLOWED_KEYS_DIR` again (how many keys it allows is logged); a directory "
     "that does not read cleanly leaves the list as it was (logged)."},
    {"SIGPIPE", "Ignored."},
    {NULL, NULL},
};

static const cfg_item_t s_files[] = {
    {"CURVE_ALLOWED_KEYS_DIR/*",
     "Public certificates (tapmesh-keygen(1)) of the agents and relays allowed to connect."},
    {"CURVE_SECRET_KEY_FILE", "The relay's own certificate, with its secret key (mode 0600)."},
    {NULL, NULL},
};

static const cfg_item_t s_examples[] = {
    {"A site relay: agents connect to it on port 5711, it sends on to a core relay:",
     "NODE_ID=site1 COLLECT_ENDPOINT='tcp://*:5711' \\\n"
     "  RELAY_ENDPOINT=tcp://core:5711 tapmesh-relay"},
    {"Cross a DMZ: agents inside connect to the relay in the DMZ, which alone reaches the "
     "collector; encrypted on both sides, the agents' keys allowed in:",
     "CURVE_SECRET_KEY_FILE=keys/dmz_secret CURVE_ALLOWED_KEYS_DIR=allow \\\n"
     "  CURVE_SERVER_PUBLIC_KEY=keys/collect \\\n"
     "  RELAY_ENDPOINT=tcp://analysis:5710 tapmesh-relay"},
    {"Fail over to a second collector:",
     "RELAY_ENDPOINT=tcp://collect-a:5710,tcp://collect-b:5710 \\\n"
     "  tapmesh-relay"},
    {"Feed two collectors (two tools) the same packets:",
     "FANOUT=duplicate \\\n"
     "  RELAY_ENDPOINT=tcp://ids:5710,tcp://archive:5710 tapmesh-relay"},
    {"Scale out: three collectors, each writing its share of the flows:",
     "FANOUT=flowhash \\\n"
     "  RELAY_ENDPOINT=tcp://c0:5710,tcp://c1:5710,tcp://c2:5710 \\\n"
     "  tapmesh-relay"},
    {"Forward only DNS:", "FILTER='udp port 53' RELAY_ENDPOINT=tcp://dns:5710 tapmesh-relay"},
    {"Read the allow-list again after adding a key:",
     "cp keys/edge7 allow/ && kill -HUP $(pidof tapmesh-relay)"},
    {NULL, NULL},
};

static const cfg_page_t s_page = {
    .program = "tapmesh-relay",
    .section = 8,
    .purpose = "pass tapmesh batches on to the next hop and acknowledgements back",
    .summary = s_summary,
    .description =
        "`tapmesh-relay` is a hop between capture agents (tapmesh-capture(8)) and the "
        "collector (tapmesh-collect(8)): a ROUTER socket bound at `COLLECT_ENDPOINT` towards "
        "its sources, which connect to it, and a DEALER socket per next hop in "
        "`RELAY_ENDPOINT`. Relays chain: a site relay feeds a core relay, which feeds the "
        "collector; any number of sources fan in. Each batch goes on with the relay's hop "
        "record (its `NODE_ID` and the time it received the batch) appended, and each "
        "acknowledgement goes back the way its batch came. One port carries data, "
        "acknowledgements and heartbeats; the sources dial in, so that a firewall needs one "
        "rule per hop.\n"
        "\n"
        "With several next hops, `FANOUT` chooses: failover (one at a time), duplicate (every "
        "next hop gets every batch: two tools, or two sites) or flowhash (the flows split "
        "among several collectors). A dead next hop is noticed within seconds (ZeroMQ "
        "heartbeats) and passed over; the gauge `tapmesh_relay_next_hop_up` says which are "
        "up. A `FILTER` passes on only the packets that match.\n"
        "\n"
        "A relay keeps no packets: it only remembers where to route acknowledgements. It may be "
        "killed and restarted at any moment; the agents send again what was in flight and "
        "the collector drops what it already has.\n"
        "\n"
        "`GET /metrics` on `METRICS_ADDRPORT` answers in the Prometheus text format "
        "(`tapmesh_relay_*`), `GET /healthz` is a liveness probe.",
    .exit_status = s_exit_status,
    .signals = s_signals,
    .files = s_files,
    .examples = s_examples,
    .see_also = "tapmesh-capture(8), tapmesh-collect(8), tapmesh-keygen(1), pcap-filter(7)",
    .nshared = SERVICE_NROWS,
};

/* Messages read from one socket per pass at most, so that none starves. */
#define S_DRAIN_MAX 256
/* The loop wakes at least this often. */
#define S_WAKE_MAX_MS 1000
/* Sockets of the authenticator polled with the others (service_pollitems). */
#define S_AUTH_ITEMS 4

typedef struct {
    service_t *svc;
    relay_t *relay;
    zsock_t *router;
    void *down; /* libzmq handle of router: towards the sources */
    unsigned nhops;
    zsock_t *dealer[HOPS_MAX];
    void *up[HOPS_MAX]; /* libzmq handles of the dealers */
    link_t *link[HOPS_MAX];
} app_t;

static int s_send(void *ctx, int hop, const route_t *route, const uint8_t *cmd, size_t len,
                  zmq_msg_t *payload)
{
    app_t *a = ctx;
    void *sock = hop == RELAY_DOWN ? a->down : a->up[hop];
    return frames_send(sock, route, cmd, len, payload, ZMQ_DONTWAIT);
}

static int s_setup(void *app, service_t *svc)
{
    app_t *a = app;
    a->svc = svc;
    cfg_t *c = svc->cfg;
    char err[1024];
    char endpoints[HOPS_MAX][256];
    int n = hops_parse(cfg_str(c, "RELAY_ENDPOINT"), endpoints, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "tapmesh-relay: %s\n", err);
        return 2;
    }
    relay_opts_t o = {.node_id = svc->node_id,
                      .fanout = (relay_fanout_t)cfg_enum(c, "FANOUT"),
                      .hops = (const char(*)[256])endpoints,
                      .nhops = (unsigned)n,
                      .filter = cfg_str(c, "FILTER"),
                      .hop_timeout_ms = cfg_int(c, "HOP_TIMEOUT_MS"),
                      .retry_ms = cfg_int(c, "RETRY_TIMEOUT_S") * 1000,
                      .pending_max = (size_t)cfg_int(c, "PENDING_MAX"),
                      .max_sources = (size_t)cfg_int(c, "MAX_SOURCES"),
                      .trust = svc->trust,
                      .max_sources_per_peer = (size_t)cfg_int(c, "MAX_SOURCES_PER_PEER"),
                      .hello_rate = (unsigned)cfg_int(c, "HELLO_RATE_PER_PEER")};
    if (compress_parse(cfg_str(c, "COMPRESS"), &o.compress_level, err, sizeof err) < 0) {
        fprintf(stderr, "tapmesh-relay: COMPRESS: %s\n", err);
        return 2;
    }
    a->relay = relay_new(&o, svc->metrics, s_send, a, err, sizeof err);
    if (!a->relay) {
        fprintf(stderr, "tapmesh-relay: %s\n", err);
        return strstr(err, "FILTER") ? 2 : 1;
    }
    /* messages for a hop that is not connected yet are queued (a little:
     * the relay chooses connected hops when it has any) */
    service_sock_opts_t so = {.sndhwm = 100, .rcvhwm = SERVICE_DEFAULT, .linger_ms = 500};
    for (a->nhops = 0; a->nhops < (unsigned)n; a->nhops++) {
        unsigned i = a->nhops;
        a->dealer[i] =
            service_dealer("RELAY_ENDPOINT", endpoints[i], &so, &a->link[i], err, sizeof err);
        if (a->dealer[i])
            a->up[i] = zsock_resolve(a->dealer[i]);
        if (!a->dealer[i]) {
            fprintf(stderr, "tapmesh-relay: %s\n", err);
            a->nhops++; /* teardown closes what was opened */
            return 2;
        }
    }
    const char *bind = cfg_str(c, "COLLECT_ENDPOINT");
    service_sock_opts_t ro = {
        .sndhwm = SERVICE_DEFAULT, .rcvhwm = SERVICE_DEFAULT, .linger_ms = 500};
    a->router = service_router("COLLECT_ENDPOINT", bind, &ro, err, sizeof err);
    if (!a->router) {
        fprintf(stderr, "tapmesh-relay: %s\n", err);
        return 2;
    }
    a->down = zsock_resolve(a->router);
    const char *filter = cfg_str(c, "FILTER");
    log_info("relay %s: sources on %s, %u next hop(s) (%s)%s%s%s%s", svc->node_id, bind, a->nhops,
             cfg_str(c, "FANOUT"), *filter ? ", filter: " : "", filter,
             o.compress_level ? ", compress: " : "",
             o.compress_level ? cfg_str(c, "COMPRESS") : "");
    return 0;
}

static int s_run(void *app)
{
    app_t *a = app;
    while (!service_stop) {
        zmq_pollitem_t items[1 + 2 * HOPS_MAX + S_AUTH_ITEMS];
        unsigned n = 0;
        items[n++] = (zmq_pollitem_t){a->down, 0, ZMQ_POLLIN, 0};
        for (unsigned i = 0; i < a->nhops; i++) {
            items[n++] = (zmq_pollitem_t){a->up[i], 0, ZMQ_POLLIN, 0};
            items[n++] = (zmq_pollitem_t){link_handle(a->link[i]), 0, ZMQ_POLLIN, 0};
        }
        n += (unsigned)service_pollitems(a->svc, items + n, S_AUTH_ITEMS);
        metrics_alive(a->svc->metrics);
        int64_t now = clock_mono_ms();
        int64_t wake = relay_next_deadline(a->relay);
        long timeout = wake <= now                  ? 0
                       : wake - now > S_WAKE_MAX_MS ? S_WAKE_MAX_MS
                                                    : (long)(wake - now);
        if (zmq_poll(items, (int)n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll: %s", zmq_strerror(errno));
            return 1;
        }
        now = clock_mono_ms();
        service_handle(a->svc, now); /* connections first: then their messages */
        for (unsigned i = 0; i < a->nhops; i++)
            if (link_update(a->link[i]))
                relay_on_link(a->relay, i, link_up(a->link[i]), now);
        frames_t f;
        for (unsigned i = 0; i < a->nhops; i++)
            for (int j = 0; j < S_DRAIN_MAX && frames_recv(&f, a->up[i], ZMQ_DONTWAIT) == 0; j++) {
                relay_on_downstream(a->relay, i, &f, now);
                frames_close(&f);
            }
        for (int j = 0; j < S_DRAIN_MAX && frames_recv(&f, a->down, ZMQ_DONTWAIT) == 0; j++) {
            relay_on_upstream(a->relay, &f, now);
            frames_close(&f);
        }
        if (relay_next_deadline(a->relay) <= now)
            relay_tick(a->relay, now);
    }
    log_info("stopping");
    return 0;
}

static void s_teardown(void *app)
{
    app_t *a = app;
    for (unsigned i = 0; i < a->nhops; i++) {
        link_destroy(&a->link[i]);
        zsock_destroy(&a->dealer[i]);
    }
    zsock_destroy(&a->router);
    relay_destroy(&a->relay);
}

int main(int argc, char **argv)
{
    static const service_def_t def = {.service = "relay",
                                      .page = &s_page,
                                      .rows = s_rows,
                                      .nrows = sizeof s_rows / sizeof *s_rows,
                                      .setup = s_setup,
                                      .run = s_run,
                                      .teardown = s_teardown};
    app_t a;
    memset(&a, 0, sizeof a);
    return service_main(&def, &a, argc, argv);
}
