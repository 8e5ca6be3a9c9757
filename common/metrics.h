/*
 * metrics — counters, gauges and histograms, registered once by name and
 * updated by id from the service's one event-loop thread without locks; the
 * HTTP thread (libmicrohttpd) only reads snapshots and renders the
 * Prometheus text format 0.0.4 at GET /metrics.
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
 * tapmesh_<service>_build_info and _process_start_time_seconds already in.
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

/* Starts the HTTP server on "host:port" / ":port". Returns 0, or a negative
 * errno with `err` naming the address. */
int metrics_serve(metrics_t *self, const char *addrport, char *err, size_t errlen);

/* The port the server listens on (useful with port 0), or 0. */
unsigned metrics_port(const metrics_t *self);

/* Renders the text format into a new NUL-terminated buffer the caller frees. */
char *metrics_render(const metrics_t *self, size_t *len);

/* Escapes a label value (\\, \", \n) into `out`; returns `out`. */
char *metrics_label_escape(const char *value, char *out, size_t outlen);

#endif
