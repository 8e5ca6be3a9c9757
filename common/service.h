/*
 * service — what every tapmesh process does the same way at start-up:
 * signals (SIGINT/SIGTERM set a flag, SIGPIPE ignored so a closed pipe is an
 * EPIPE we can report), czmq without its own signal handler, the settings
 * table, the log level and the metrics server.
 */
#ifndef TAPMESH_SERVICE_H
#define TAPMESH_SERVICE_H

#include <czmq.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"
#include "metrics.h"

/* Stop requests (SIGINT/SIGTERM) received so far: 0 while running; a
 * service may treat a second one as "stop now". */
extern volatile sig_atomic_t service_stop;

/* ZMTP heartbeats on every connection, so that a dead peer is noticed in
 * seconds rather than after TCP's minutes (DESIGN "Sockets"), and quick
 * reconnects of the side that connects. */
#define SERVICE_HEARTBEAT_IVL_MS 1000
#define SERVICE_HEARTBEAT_TIMEOUT_MS 5000
#define SERVICE_RECONNECT_IVL_MS 100
#define SERVICE_RECONNECT_IVL_MAX_MS 1000

/* Leaves a socket option at libzmq's default. */
#define SERVICE_DEFAULT (-1)

typedef struct {
    int sndhwm, rcvhwm; /* messages; 0 unlimited; SERVICE_DEFAULT */
    int linger_ms;      /* how long unsent messages hold the exit */
} service_sock_opts_t;

/* Rows every service has: LOG_LEVEL, METRICS_ADDRPORT (default given),
 * NODE_ID (default: the host name). Expand inside a service's table. */
#define SERVICE_ROWS(metrics_default)                                                              \
    {"NODE_ID", CFG_NAME,                                                                          \
     NULL,      0,                                                                                 \
     0,         NULL,                                                                              \
     false,     "This node's id in HELLO, hop records and IDB names (default: the host name)."},   \
        {"METRICS_ADDRPORT",                                                                       \
         CFG_ADDRPORT,                                                                             \
         metrics_default,                                                                          \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         false,                                                                                    \
         "Where GET /metrics listens (HOST:PORT or :PORT); empty turns it off."},                  \
    {                                                                                              \
        "LOG_LEVEL", CFG_ENUM, "info", 0, 0, "error|warn|info|debug", false,                       \
            "Lowest level logged to stderr."                                                       \
    }

typedef struct {
    cfg_t *cfg;
    metrics_t *metrics;
    char node_id[65];
} service_t;

/* Parses the table, sets up logging, signals and czmq, and starts the
 * metrics server. Returns true with *svc filled when the service should
 * run; false with *status set to the exit status (0 after --help, 2 for a
 * bad setting, 1 for a run-time failure), having printed why. */
bool service_start(service_t *svc, const char *program, const char *service, const char *summary,
                   const cfg_row_t *rows, size_t nrows, int argc, char **argv, int *status);

void service_finish(service_t *svc);

/* A DEALER connected to `endpoint`, with heartbeats and quick reconnects.
 * Returns NULL with `err` naming `setting` and the endpoint. */
zsock_t *service_dealer(const char *setting, const char *endpoint, const service_sock_opts_t *o,
                        char *err, size_t errlen);

/* A ROUTER bound to `endpoint`, with heartbeats, ZMQ_ROUTER_MANDATORY (an
 * unroutable reply is an error to count, not silence) and messages larger
 * than the protocol allows refused by libzmq before they are allocated.
 * Returns NULL with `err` naming `setting` and the endpoint. */
zsock_t *service_router(const char *setting, const char *endpoint, const service_sock_opts_t *o,
                        char *err, size_t errlen);

/* What main() does in every service. */
typedef struct {
    const char *program; /* "tapmesh-capture" */
    const char *service; /* "capture": the metrics' prefix */
    const char *summary; /* --help's first lines */
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
