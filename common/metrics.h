/*
 * metrics — counters, gauges and histograms, registered once by name and
 * updated by id from the service's one event-loop thread without locks; the
 * HTTP thread (libmicrohttpd) only reads snapshots and renders the
 * Prometheus text format 0.0.4 at GET /metrics, and answers GET /healthz
 * from the event loop's last sign of life (metrics_alive).
 *
 * Registration may happen while the server runs (a new source joins): an
 * entry is filled in before the published count moves past it, and never
 * changes name afterwards.
 *
 * Names follow tapmesh_<service>_<what>_<unit>; entries of one name with
 * different labels form one family (one HELP and TYPE line).
 */
#ifndef TAPMESH_METRICS_H
#define TAPMESH_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct metrics_t metrics_t;
typedef int metric_id_t; /* >= 0; negative when registration failed */

#define METRICS_MAX_BUCKETS 24

/* A registry for `service` ("capture", "relay", "collect"), with
 * tapmesh_<service>_build_info and the standard process metrics already in,
 * unprefixed and typed as Prometheus client libraries export them:
 * process_cpu_seconds_total (counter, user + system), process_resident_ and
 * process_virtual_memory_bytes, process_open_fds, process_max_fds (the soft
 * RLIMIT_NOFILE) and process_start_time_seconds (gauges). All but the start
 * time are read from the kernel when rendered, on the HTTP thread, so they
 * cost the event loop nothing; metrics_value reads them the same way.
 * Returns NULL when out of memory. */
metrics_t *metrics_new(const char *service, const char *version);

/* Stops the HTTP server, if any, and frees everything. Accepts NULL. */
void metrics_destroy(metrics_t **self_p);

/* Registration: `labels` is NULL or the inside of the braces, already
 * escaped (see metrics_label_escape), e.g. `source="edge1"`. Returns an id,
 * or -ENOSPC when the registry is full. Registering the same name and labels
 * twice returns the first id. */
metric_id_t metrics_counter(metrics_t *self, const char *name, const char *help,
                            const char *labels);
metric_id_t metrics_gauge(metrics_t *self, const char *name, const char *help, const char *labels);
/* `bounds`: increasing upper bounds, at most METRICS_MAX_BUCKETS (+Inf is implicit). */
metric_id_t metrics_histogram(metrics_t *self, const char *name, const char *help,
                              const char *labels, const double *bounds, size_t nbounds);

/* Updates; an id < 0 is ignored so that a failed registration costs nothing. */
void metrics_add(metrics_t *self, metric_id_t id, uint64_t n);
void metrics_set(metrics_t *self, metric_id_t id, double value);
void metrics_observe(metrics_t *self, metric_id_t id, double value);

/* Current value of a counter or gauge (tests, and services reading their own). */
double metrics_value(const metrics_t *self, metric_id_t id);

/* Liveness, for GET /healthz. The event loop calls metrics_alive on every
 * pass, busy or idle (a coarse monotonic clock read and one relaxed atomic
 * store: nothing to notice on the hot path). /healthz then answers
 *   200 "ok"  before the first call (the service is still starting), and
 *             while the last call is at most the timeout old;
 *   503       once the last call is older than the timeout, with one line
 *             saying for how long the loop has been stuck.
 * So a loop must wake at least once per timeout even with nothing to do;
 * tapmesh's loops never sleep longer than about a second. */
#define METRICS_ALIVE_TIMEOUT_MS 10000
void metrics_alive(metrics_t *self);

/* Sets the /healthz timeout (0: METRICS_ALIVE_TIMEOUT_MS). Any thread. */
void metrics_set_alive_timeout(metrics_t *self, unsigned timeout_ms);

/* Starts the HTTP server on "host:port" / ":port": GET /metrics, GET
 * /healthz, 404 elsewhere. The server polls with epoll (poll, or select
 * where neither exists) and holds at most min(256, RLIMIT_NOFILE / 4)
 * connections (at least 8), so that it never takes the descriptors the
 * service's own sockets need; a connection silent for 10 s is closed. A
 * connection that comes in when the server is nearly full closes the one
 * that has waited longest without a request, so idle connections cannot
 * keep a scrape out. Returns 0, or a negative errno with `err` naming the
 * address. */
int metrics_serve(metrics_t *self, const char *addrport, char *err, size_t errlen);

/* The port the server listens on (useful with port 0), or 0. */
unsigned metrics_port(const metrics_t *self);

/* Renders the text format into a new NUL-terminated buffer the caller frees. */
char *metrics_render(const metrics_t *self, size_t *len);

/* Escapes a label value (\\, \", \n) into `out`; returns `out`. */
char *metrics_label_escape(const char *value, char *out, size_t outlen);

#endif
