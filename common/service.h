/*
 * service — what every tapmesh process does the same way at start-up:
 * signals (SIGINT/SIGTERM set a flag, SIGPIPE ignored so a closed pipe is an
 * EPIPE we can report), czmq without its own signal handler, the settings
 * table, the log level and the metrics server.
 */
#ifndef TAPMESH_SERVICE_H
#define TAPMESH_SERVICE_H

#include <signal.h>
#include <stdbool.h>

#include "cfg.h"
#include "metrics.h"

extern volatile sig_atomic_t service_stop;

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

#endif
