/*
 * events — packets and losses in, lines out: builds each event (decode.h
 * dissects the packet), counts it in its flow with EVENTS_UNIQUE_S, sums
 * losses per (source, interface, reason) over an interval, encodes
 * (event.h) and queues the line (evsend.h). Nothing allocated per event.
 */
#include "events.h"

#include "clock.h"
#include "evsend.h"
#include "flowtab.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_LOSSES_MAX 64 /* (source, iface, reason) summed at once; beyond, sent alone */

typedef struct {
    char source[WIRE_NAME_MAX + 1];
    char iface[WIRE_NAME_MAX + 1];
    const char *reason; /* a literal of the caller's */
    uint64_t count;
} s_loss_t;

struct events_t {
    events_opts_t opts;
    evsend_t *send;
    flowtab_t *flows; /* EVENTS_UNIQUE_S, or NULL */
    int64_t flows_due_ms;
    s_loss_t losses[S_LOSSES_MAX];
    size_t nlosses;
    int64_t losses_since_ms;
    char line[EVENT_LINE_MAX];
    metrics_t *metrics;
    struct {
        metric_id_t early, table, kinds[3], unencoded;
    } m;
};

int events_opts_read(const cfg_t *cfg, events_opts_t *opts, char *err, size_t errlen)
{
    memset(opts, 0, sizeof *opts);
    int e = cfg_enum(cfg, "EVENTS");
    opts->format = e == 1 ? EVENT_JSON : e == 2 ? EVENT_INFLUX : 0;
    opts->to = cfg_str(cfg, "EVENTS_TO");
    opts->interval_ms = cfg_int(cfg, "EVENTS_INTERVAL_MS");
    opts->batch = (unsigned)cfg_int(cfg, "EVENTS_BATCH");
    opts->unique_s = (unsigned)cfg_int(cfg, "EVENTS_UNIQUE_S");
    opts->flow_table = (size_t)cfg_int(cfg, "EVENTS_FLOW_TABLE");
    opts->datagram_bytes = (size_t)cfg_int(cfg, "EVENTS_DATAGRAM_BYTES");
    opts->queue_bytes = (size_t)cfg_int(cfg, "EVENTS_QUEUE_KB") << 10;
    if (opts->format && !opts->to[0]) {
        snprintf(err, errlen,
                 "EVENTS=%s needs EVENTS_TO (udp://HOST:PORT, tcp://HOST:PORT or - for "
                 "standard output)",
                 cfg_str(cfg, "EVENTS"));
        return -EINVAL;
    }
    if (!opts->format && opts->to[0]) {
        snprintf(err, errlen, "EVENTS_TO=%s is set but EVENTS is off (json or influx?)", opts->to);
        return -EINVAL;
    }
    return 0;
}

events_t *events_new(const events_opts_t *opts, metrics_t *metrics, const char *service, char *err,
                     size_t errlen)
{
    events_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "EVENTS: out of memory");
        return NULL;
    }
    self->opts = *opts;
    self->metrics = metrics;
    self->losses_since_ms = -1;
    evsend_opts_t so = {.to = opts->to,
                        .queue_bytes = opts->queue_bytes,
                        .datagram_bytes = opts->datagram_bytes,
                        .batch = opts->batch,
                        .interval_ms = opts->interval_ms};
    self->send = evsend_new(&so, metrics, service, err, errlen);
    if (!self->send)
        goto err;
    if (opts->unique_s) {
        self->flows = flowtab_new(opts->flow_table);
        if (!self->flows) {
            snprintf(err, errlen, "EVENTS_FLOW_TABLE=%zu: out of memory", opts->flow_table);
            goto err;
        }
        self->flows_due_ms = clock_mono_ms() + (int64_t)opts->unique_s * 1000;
    }
    char name[128];
    snprintf(name, sizeof name, "tapmesh_%s_events_flows_flushed_early_total", service);
    self->m.early = metrics_counter(metrics, name,
                                    "Flow events sent before their interval ended: the flow "
                                    "table (EVENTS_FLOW_TABLE) was full",
                                    NULL);
    snprintf(name, sizeof name, "tapmesh_%s_events_flow_table_flows", service);
    self->m.table = metrics_gauge(metrics, name, "Flows in the flow table (EVENTS_UNIQUE_S)", NULL);
    snprintf(name, sizeof name, "tapmesh_%s_events_total", service);
    static const char *const kinds[] = {"packet", "flow", "loss"};
    for (int i = 0; i < 3; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "event=\"%s\"", kinds[i]);
        self->m.kinds[i] =
            metrics_counter(metrics, name, "Events made, by kind (before the queue)", labels);
    }
    return self;
err:
    events_destroy(&self);
    return NULL;
}

int events_from_cfg(const cfg_t *cfg, metrics_t *metrics, const char *service, bool stdout_busy,
                    events_t **out, char *err, size_t errlen)
{
    *out = NULL;
    events_opts_t eo;
    if (events_opts_read(cfg, &eo, err, errlen) < 0)
        return -1;
    if (!eo.format)
        return 0;
    if (stdout_busy && strcmp(eo.to, "-") == 0) {
        snprintf(err, errlen,
                 "EVENTS_TO=-: the capture goes to standard output (OUTPUT=-); "
                 "send the events elsewhere (udp://HOST:PORT, tcp://HOST:PORT) or "
                 "set OUTPUT to a file");
        return -1;
    }
    if (!(*out = events_new(&eo, metrics, service, err, errlen)))
        return -1;
    log_info("EVENTS=%s: an event per %s and per loss to %s", cfg_str(cfg, "EVENTS"),
             eo.unique_s ? "flow and interval" : "packet", eo.to);
    return 0;
}

void events_destroy(events_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    events_t *self = *self_p;
    evsend_destroy(&self->send);
    flowtab_destroy(&self->flows);
    free(self);
    *self_p = NULL;
}

const char *events_severity(const char *reason)
{
    return strcmp(reason, "late") == 0 ? "warning" : "error";
}

static void s_emit(events_t *self, const event_t *ev, int64_t now_ms)
{
    metrics_add(self->metrics, self->m.kinds[ev->kind], 1);
    int n = event_format((event_format_t)self->opts.format, ev, self->line, sizeof self->line);
    if (n > 0)
        evsend_line(self->send, self->line, (size_t)n, now_ms);
}

static void s_emit_flow(events_t *self, const flowtab_flow_t *f, int64_t now_ms)
{
    event_t ev = {.kind = EVENT_FLOW,
                  .source = f->key.source,
                  .iface = f->key.iface,
                  .reason = "flow",
                  .severity = "info",
                  .ts_ns = f->first_ns,
                  .eth = f->key.eth,
                  .flow = f->key.flow,
                  .packets = f->packets,
                  .bytes = f->bytes,
                  .first_ns = f->first_ns,
                  .last_ns = f->last_ns};
    s_emit(self, &ev, now_ms);
}

void events_packet(events_t *self, const char *source, const char *iface, uint16_t linktype,
                   uint64_t ts_ns, uint32_t caplen, uint32_t origlen, const uint8_t *data,
                   int64_t now_ms)
{
    event_t ev = {.kind = EVENT_PACKET,
                  .source = source,
                  .iface = iface,
                  .reason = "captured",
                  .severity = "info",
                  .ts_ns = ts_ns,
                  .caplen = caplen,
                  .len = origlen};
    decode_packet(linktype, data, caplen, &ev.flow, &ev.eth);
    if (!self->flows) {
        s_emit(self, &ev, now_ms);
        return;
    }
    flowtab_key_t key;
    flowtab_key(&key, source, iface, &ev.eth, &ev.flow);
    flowtab_flow_t out;
    if (flowtab_add(self->flows, &key, ts_ns, origlen, &out)) {
        metrics_add(self->metrics, self->m.early, 1);
        s_emit_flow(self, &out, now_ms);
    }
}

void events_loss(events_t *self, const char *source, const char *iface, const char *reason,
                 uint64_t count, int64_t now_ms)
{
    if (!count)
        return;
    for (size_t i = 0; i < self->nlosses; i++) {
        s_loss_t *l = &self->losses[i];
        if (l->reason == reason && strncmp(l->source, source, WIRE_NAME_MAX) == 0 &&
            strncmp(l->iface, iface, WIRE_NAME_MAX) == 0) {
            l->count += count;
            return;
        }
    }
    if (self->nlosses == S_LOSSES_MAX) { /* no room to sum: an event now */
        event_t ev = {.kind = EVENT_LOSS,
                      .source = source,
                      .iface = iface,
                      .reason = reason,
                      .severity = events_severity(reason),
                      .ts_ns = clock_wall_ns(),
                      .count = count};
        s_emit(self, &ev, now_ms);
        return;
    }
    s_loss_t *l = &self->losses[self->nlosses++];
    snprintf(l->source, sizeof l->source, "%s", source);
    snprintf(l->iface, sizeof l->iface, "%s", iface);
    l->reason = reason;
    l->count = count;
    if (self->losses_since_ms < 0)
        self->losses_since_ms = now_ms;
}

static void s_losses_flush(events_t *self, int64_t now_ms)
{
    uint64_t ts = clock_wall_ns();
    for (size_t i = 0; i < self->nlosses; i++) {
        const s_loss_t *l = &self->losses[i];
        event_t ev = {.kind = EVENT_LOSS,
                      .source = l->source,
                      .iface = l->iface,
                      .reason = l->reason,
                      .severity = events_severity(l->reason),
                      .ts_ns = ts,
                      .count = l->count};
        s_emit(self, &ev, now_ms);
    }
    self->nlosses = 0;
    self->losses_since_ms = -1;
}

static void s_flows_flush(events_t *self, int64_t now_ms)
{
    flowtab_flow_t f;
    while (flowtab_pop(self->flows, &f))
        s_emit_flow(self, &f, now_ms);
}

void events_poll(events_t *self, int64_t now_ms)
{
    if (self->nlosses && now_ms - self->losses_since_ms >= self->opts.interval_ms)
        s_losses_flush(self, now_ms);
    if (self->flows && now_ms >= self->flows_due_ms) {
        s_flows_flush(self, now_ms);
        int64_t step = (int64_t)self->opts.unique_s * 1000;
        self->flows_due_ms += step * ((now_ms - self->flows_due_ms) / step + 1);
    }
    if (self->flows)
        metrics_set(self->metrics, self->m.table, (double)flowtab_size(self->flows));
    evsend_pump(self->send, now_ms, false);
}

int64_t events_next_deadline(const events_t *self, int64_t now_ms)
{
    int64_t next = evsend_next_deadline(self->send, now_ms);
    if (self->nlosses && self->losses_since_ms + self->opts.interval_ms < next)
        next = self->losses_since_ms + self->opts.interval_ms;
    if (self->flows && self->flows_due_ms < next)
        next = self->flows_due_ms;
    return next;
}

void events_finish(events_t *self, int64_t timeout_ms)
{
    int64_t now = clock_mono_ms();
    s_losses_flush(self, now);
    if (self->flows) {
        s_flows_flush(self, now);
        metrics_set(self->metrics, self->m.table, 0);
    }
    int64_t end = now + timeout_ms;
    for (;;) {
        evsend_pump(self->send, now, true);
        if (!evsend_queued(self->send) || now >= end)
            break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        now = clock_mono_ms();
    }
    if (evsend_queued(self->send))
        log_warn("EVENTS_TO=%s: %zu events not sent at exit", self->opts.to,
                 evsend_queued(self->send));
}
