/*
 * service — what every tapmesh process does the same way at start-up:
 * signals (SIGINT/SIGTERM set a flag, SIGHUP another, SIGPIPE ignored so a
 * closed pipe is an EPIPE we can report), czmq without its own signal
 * handler, the settings table, the log level, the metrics server, and
 * CurveZMQ on every hop when keys are set.
 *
 * CURVE (shared DESIGN "Every service"): off while no CURVE_* setting is
 * set; then every setting a service needs must be there, or start-up stops
 * (status 2) naming the one missing:
 *   CURVE_SECRET_KEY_FILE   this service's own certificate (zcert format,
 *                           the secret file tapmesh-keygen writes)
 *   CURVE_SERVER_PUBLIC_KEY a service that connects (capture, relay): the
 *                           next hop's public key, 40 characters of Z85 or
 *                           the path of its public certificate; with
 *                           several next hops (RELAY_ENDPOINT), one for all
 *                           or one per endpoint, comma-separated, in the
 *                           order of RELAY_ENDPOINT
 *   CURVE_ALLOWED_KEYS_DIR  a service that binds (relay, collect): the
 *                           public certificates allowed to connect, with
 *                           what each may speak for (trust.h); read again
 *                           on SIGHUP
 * service_dealer and service_router then secure every socket they make; a
 * ROUTER's refusals are counted by the authenticator (auth.h), which the
 * loop polls through service_pollitems / service_handle. A ROUTER bound
 * without CURVE to an endpoint that is not loopback logs a warning and
 * counts in tapmesh_<service>_plaintext_endpoints.
 */
#ifndef TAPMESH_SERVICE_H
#define TAPMESH_SERVICE_H

#include <czmq.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "cfg.h"
#include "link.h"
#include "metrics.h"
#include "trust.h"

/* Stop requests (SIGINT/SIGTERM) received so far: 0 while running; a
 * service may treat a second one as "stop now". */
extern volatile sig_atomic_t service_stop;

/* SIGHUPs received so far: service_handle reloads CURVE_ALLOWED_KEYS_DIR
 * when it changes. */
extern volatile sig_atomic_t service_reload;

/* ZMTP heartbeats on every connection, so that a dead peer is noticed in
 * seconds rather than after TCP's minutes (DESIGN "Sockets"), and quick
 * reconnects of the side that connects. */
#define SERVICE_HEARTBEAT_IVL_MS 1000
#define SERVICE_HEARTBEAT_TIMEOUT_MS 5000
/* ... and TCP_USER_TIMEOUT (ZMQ_TCP_MAXRT): libzmq arms the heartbeat
 * timeout only once a PING is encoded, and a PING waits behind bytes the
 * kernel will not take. A connection whose send buffer was full when its
 * link went away never timed out (measured: a relay's next hop stayed "up"
 * for as long as anyone watched); the kernel gives it up once nothing it
 * sent has been acknowledged for this long. A slow but live receiver still
 * acknowledges (zero-window probes), so it is not given up. */
#define SERVICE_TCP_MAXRT_MS 10000
#define SERVICE_RECONNECT_IVL_MS 100
#define SERVICE_RECONNECT_IVL_MAX_MS 1000

/* Leaves a socket option at libzmq's default. */
#define SERVICE_DEFAULT (-1)

typedef struct {
    int sndhwm, rcvhwm; /* messages; 0 unlimited; SERVICE_DEFAULT */
    int linger_ms;      /* how long unsent messages hold the exit */
} service_sock_opts_t;

/* Rows every service has: LOG_LEVEL, METRICS_ADDRPORT (default given),
 * NODE_ID (default: the host name), and the CURVE settings (above). Expand
 * at the top of a service's table; its page's nshared is SERVICE_NROWS, so
 * that --markdown-shared prints these and --markdown the service's own. */
#define SERVICE_NROWS 6
#define SERVICE_ROWS(metrics_default)                                                              \
    {"NODE_ID",                                                                                    \
     CFG_NAME,                                                                                     \
     NULL,                                                                                         \
     0,                                                                                            \
     0,                                                                                            \
     NULL,                                                                                         \
     false,                                                                                        \
     "This node's id: a capture agent's source id (in HELLO and in the output's interface "        \
     "names, `node/interface`), a relay's name in hop records (unset: the host name, up to its "   \
     "first dot)."},                                                                               \
        {"METRICS_ADDRPORT",                                                                       \
         CFG_ADDRPORT,                                                                             \
         metrics_default,                                                                          \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         false,                                                                                    \
         "Where `GET /metrics` (Prometheus text format) and `GET /healthz` listen: `HOST:PORT` "   \
         "or `:PORT`; `127.0.0.1:PORT` keeps them on this host; empty turns both off."},           \
        {"LOG_LEVEL", CFG_ENUM,                                                                    \
         "info",      0,                                                                           \
         0,           "error|warn|info|debug",                                                     \
         false,       "Lowest level logged; logs go to standard error, one line per event."},      \
        {"CURVE_SECRET_KEY_FILE",                                                                  \
         CFG_STR,                                                                                  \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         false,                                                                                    \
         "CurveZMQ: this service's own certificate, the secret file `tapmesh-keygen` writes "      \
         "(`PATH_secret`). Setting any `CURVE_*` turns encryption and authentication on for "      \
         "every connection of this service (unset: plaintext)."},                                  \
        {"CURVE_SERVER_PUBLIC_KEY",                                                                \
         CFG_STR,                                                                                  \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         false,                                                                                    \
         "CurveZMQ, capture and relay: the next hop's public key, 40 characters of Z85 or the "    \
         "path of its public certificate; with several `RELAY_ENDPOINT`s one for all, or one per " \
         "endpoint, comma-separated, in the same order."},                                         \
    {                                                                                              \
        "CURVE_ALLOWED_KEYS_DIR", CFG_STR, "", 0, 0, NULL, false,                                  \
            "CurveZMQ, relay and collect: a directory of the public certificates allowed to "      \
            "connect; each one's metadata names the node ids its holder may speak for "            \
            "(`node-id`) or makes it a relay (`role = relay`). Read again on SIGHUP."              \
    }

typedef struct service_curve_t service_curve_t;

typedef struct {
    cfg_t *cfg;
    metrics_t *metrics;
    char node_id[65];
    const char *program; /* "tapmesh-relay" */
    const char *service; /* "relay" */
    /* CURVE_ALLOWED_KEYS_DIR, for the engines' checks of who speaks for
     * which source; NULL without CURVE (nothing is checked). Reloaded in
     * place by service_handle. */
    trust_t *trust;
    auth_t *auth;            /* the ROUTERs' authenticator, or NULL */
    service_curve_t *curve;  /* this service's own keys, or NULL */
    sig_atomic_t reloaded;   /* service_reload when last handled */
    metric_id_t m_plaintext; /* tapmesh_<service>_plaintext_endpoints */
    unsigned plaintext;
} service_t;

/* Parses the table, sets up logging, signals and czmq, and starts the
 * metrics server. `page` names the program and says what it does (--help,
 * --man). Returns true with *svc filled when the service should run; false
 * with *status set to the exit status (0 after --help or --man, 2 for a bad
 * setting, 1 for a run-time failure), having printed why. */
bool service_start(service_t *svc, const char *service, const cfg_page_t *page,
                   const cfg_row_t *rows, size_t nrows, int argc, char **argv, int *status);

void service_finish(service_t *svc);

/* A DEALER connected to `endpoint`, with heartbeats and quick reconnects;
 * a CURVE client with the next hop's key for `endpoint` when the running
 * service has CURVE. With `link` (may be NULL), *link watches the
 * connection from before it is made, so that no change is missed. Returns
 * NULL with `err` naming `setting` and the endpoint. */
zsock_t *service_dealer(const char *setting, const char *endpoint, const service_sock_opts_t *o,
                        link_t **link, char *err, size_t errlen);

/* A ROUTER bound to `endpoint`, with heartbeats, ZMQ_ROUTER_MANDATORY (an
 * unroutable reply is an error to count, not silence) and messages larger
 * than the protocol allows refused by libzmq before they are allocated; a
 * CURVE server, its handshakes watched, when the running service has
 * CURVE, else a warning when `endpoint` is not loopback. Returns NULL with
 * `err` naming `setting` and the endpoint. */
zsock_t *service_router(const char *setting, const char *endpoint, const service_sock_opts_t *o,
                        char *err, size_t errlen);

/* The sockets service_handle needs to hear from (the authenticator's),
 * for the loop's zmq_poll: written to `items`, at most `max`; returns how
 * many. */
size_t service_pollitems(service_t *svc, zmq_pollitem_t *items, size_t max);

/* Answers authentication requests, counts refused connections, and reads
 * CURVE_ALLOWED_KEYS_DIR again after a SIGHUP (a directory that does not
 * read cleanly leaves the list as it was, logged). Call on every pass. */
void service_handle(service_t *svc, int64_t now_ms);

/* True when `endpoint` can be reached from this host only (loopback
 * addresses, ipc://, inproc://). */
bool service_endpoint_local(const char *endpoint);

/* What main() does in every service. */
typedef struct {
    const char *service;    /* "capture": the metrics' prefix */
    const cfg_page_t *page; /* the program's name, --help's summary, the manual page */
    const cfg_row_t *rows;
    size_t nrows;
    /* Reads the settings into `app` and opens what it needs. Returns 0 to
     * run, else the exit status (2 for a bad setting, having said why). */
    int (*setup)(void *app, service_t *svc);
    /* The loop; returns the exit status. */
    int (*run)(void *app);
    /* Frees what setup made, whatever it returned. */
    void (*teardown)(void *app);
} service_def_t;

/* Starts the service (service_start), runs setup, run and teardown, and
 * shuts everything down. Returns the exit status for main(). */
int service_main(const service_def_t *def, void *app, int argc, char **argv);

#endif
