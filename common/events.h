/*
 * events — the event streams (EVENTS=json|influx): an event per packet
 * carried, or per flow per EVENTS_UNIQUE_S seconds, and an event whenever
 * tapmesh loses packets (kernel drops, dead letters, late packets, refused
 * sources), sent to standard output, UDP or TCP (Telegraf's
 * socket_listener, InfluxDB's UDP listener). Ties event.h (encodings),
 * flowtab.h (the LRU of flows) and evsend.h (queue and socket) together;
 * a service feeds it packets and losses and pumps it from its loop.
 *
 * Settings: EVENTS_ROWS in a service's table, read by events_opts_read.
 * Metrics beside evsend's: tapmesh_<service>_events_flows_flushed_early_total,
 * tapmesh_<service>_events_flow_table_flows, tapmesh_<service>_events_total{event}.
 */
#ifndef TAPMESH_EVENTS_H
#define TAPMESH_EVENTS_H

#include "cfg.h"
#include "event.h"
#include "metrics.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct events_t events_t;

typedef struct {
    int format;            /* 0 off, EVENT_JSON, EVENT_INFLUX */
    const char *to;        /* EVENTS_TO */
    int64_t interval_ms;   /* EVENTS_INTERVAL_MS */
    unsigned batch;        /* EVENTS_BATCH */
    unsigned unique_s;     /* EVENTS_UNIQUE_S; 0: an event per packet */
    size_t flow_table;     /* EVENTS_FLOW_TABLE */
    size_t datagram_bytes; /* EVENTS_DATAGRAM_BYTES */
    size_t queue_bytes;    /* EVENTS_QUEUE_KB, in bytes */
} events_opts_t;

#define EVENTS_NROWS 8
#define EVENTS_ROWS                                                                                \
    {"EVENTS",                                                                                     \
     CFG_ENUM,                                                                                     \
     "off",                                                                                        \
     0,                                                                                            \
     0,                                                                                            \
     "off|json|influx",                                                                            \
     false,                                                                                        \
     "An event per packet (or per flow, `EVENTS_UNIQUE_S`) and per loss, sent to `EVENTS_TO`: "    \
     "`json` (one object a line) or `influx` (InfluxDB line protocol); see Events in README "      \
     "(`off`: none)."},                                                                            \
        {"EVENTS_TO",                                                                              \
         CFG_STR,                                                                                  \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         false,                                                                                    \
         "Where events go: `udp://HOST:PORT` (whole lines per datagram), `tcp://HOST:PORT` (a "    \
         "stream of lines; reconnects with backoff), or `-` (standard output, only when the "      \
         "capture does not go there). Needed with `EVENTS`."},                                     \
        {"EVENTS_INTERVAL_MS",                                                                     \
         CFG_INT,                                                                                  \
         "1000",                                                                                   \
         1,                                                                                        \
         3600000,                                                                                  \
         NULL,                                                                                     \
         false,                                                                                    \
         "Longest an event waits in the queue before it is sent."},                                \
        {"EVENTS_BATCH",                                                                           \
         CFG_INT,                                                                                  \
         "64",                                                                                     \
         1,                                                                                        \
         100000,                                                                                   \
         NULL,                                                                                     \
         false,                                                                                    \
         "Events per send (a datagram, a write): they are sent as soon as this many wait."},       \
        {"EVENTS_UNIQUE_S",                                                                        \
         CFG_INT,                                                                                  \
         "0",                                                                                      \
         0,                                                                                        \
         86400,                                                                                    \
         NULL,                                                                                     \
         false,                                                                                    \
         "`0`: an event per packet; N: an event per flow every N seconds, with its packet and "    \
         "byte counts."},                                                                          \
        {"EVENTS_FLOW_TABLE",                                                                      \
         CFG_INT,                                                                                  \
         "1024",                                                                                   \
         1,                                                                                        \
         10000000,                                                                                 \
         NULL,                                                                                     \
         false,                                                                                    \
         "Flows counted at once with `EVENTS_UNIQUE_S`: a new flow in a full table sends the "     \
         "least recently used one's event early (counted in "                                      \
         "`*_events_flows_flushed_early_total`); no packet is lost from the counts."},             \
        {"EVENTS_DATAGRAM_BYTES",                                                                  \
         CFG_INT,                                                                                  \
         "1472",                                                                                   \
         1024,                                                                                     \
         65507,                                                                                    \
         NULL,                                                                                     \
         false,                                                                                    \
         "Largest UDP datagram of events (whole lines only; 1472 fits a 1500-byte MTU without "    \
         "fragments)."},                                                                           \
    {                                                                                              \
        "EVENTS_QUEUE_KB", CFG_INT, "4096", 64, 1048576, NULL, false,                              \
            "Events waiting to be sent, at most; beyond, new ones are dropped and counted "        \
            "(`*_events_dropped_total{reason=\"queue_full\"}`): the service never waits for "      \
            "the receiver."                                                                        \
    }

/* Reads the EVENTS_ROWS settings: EVENTS_TO is needed with EVENTS, and
 * refused without it. Returns 0, or -EINVAL with err naming the setting. */
int events_opts_read(const cfg_t *cfg, events_opts_t *opts, char *err, size_t errlen);

/* NULL with err set (naming the setting) when EVENTS_TO is bad or memory
 * short. */
events_t *events_new(const events_opts_t *opts, metrics_t *metrics, const char *service, char *err,
                     size_t errlen);
void events_destroy(events_t **self_p);

/* A service's EVENTS_ROWS, read (events_opts_read) and, with EVENTS set,
 * the stream made (events_new) and logged. `stdout_busy`: the service
 * writes its capture to standard output, so EVENTS_TO=- is refused.
 * Returns 0 (*out NULL when EVENTS is off), or -1 with err naming the
 * setting. */
int events_from_cfg(const cfg_t *cfg, metrics_t *metrics, const char *service, bool stdout_busy,
                    events_t **out, char *err, size_t errlen);

/* One packet carried, of interface `iface` of `source`, of LINKTYPE_
 * `linktype`. */
void events_packet(events_t *self, const char *source, const char *iface, uint16_t linktype,
                   uint64_t ts_ns, uint32_t caplen, uint32_t origlen, const uint8_t *data,
                   int64_t now_ms);

/* tapmesh lost `count` packets for `reason` ("kernel_drop", "if_drop",
 * "dead_letter", "late", "refused_linktype", ...): an event (reason,
 * severity, count) goes with the next send; losses of one (source, iface,
 * reason) within an interval are summed into one event. */
void events_loss(events_t *self, const char *source, const char *iface, const char *reason,
                 uint64_t count, int64_t now_ms);

/* The severity of a loss reason: "warning" for late packets, "error"
 * otherwise. */
const char *events_severity(const char *reason);

/* Sends what is due, emits the flows whose interval has passed and the
 * losses summed. Call on every pass of the loop. */
void events_poll(events_t *self, int64_t now_ms);

/* When events_poll next has work, or INT64_MAX. */
int64_t events_next_deadline(const events_t *self, int64_t now_ms);

/* At exit: every flow and loss as an event, then sends for at most
 * timeout_ms. */
void events_finish(events_t *self, int64_t timeout_ms);

#endif
