/*
 * snap — one service's numbers from one scrape, and rates (snap.h).
 */
#include "snap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void snap_reset(snap_t *s)
{
    memset(s, 0, sizeof *s);
    s->next_hop_up = -1;
}

static void s_build_info(snap_t *snap, snap_kind_t kind, const prom_sample_t *s)
{
    snap->kind = kind;
    const char *v = prom_label(s, "version");
    snprintf(snap->version, sizeof snap->version, "%s", v ? v : "");
}

static void s_capture(snap_t *snap, const char *n, const prom_sample_t *s)
{
    double v = s->value;
    if (strcmp(n, "build_info") == 0) {
        s_build_info(snap, SNAP_CAPTURE, s);
    } else if (strcmp(n, "source_info") == 0) {
        const char *src = prom_label(s, "source");
        snprintf(snap->source, sizeof snap->source, "%s", src ? src : "");
    } else if (strcmp(n, "packets_total") == 0) {
        snap->packets = v;
    } else if (strcmp(n, "bytes_total") == 0) {
        snap->bytes = v;
    } else if (strcmp(n, "kernel_dropped_packets_total") == 0) {
        snap->live = true;
        snap->kernel_drops = v;
    } else if (strcmp(n, "batches_resent_total") == 0) {
        snap->resent_batches = v;
    } else if (strcmp(n, "batches_dead_lettered_total") == 0) {
        snap->dead_letter_batches = v;
    } else if (strcmp(n, "packets_dead_lettered_total") == 0) {
        snap->dead_letter_packets = v;
    } else if (strcmp(n, "next_hop_up") == 0) {
        snap->next_hop_up = v > 0;
    }
}

static void s_relay(snap_t *snap, const char *n, const prom_sample_t *s)
{
    double v = s->value;
    if (strcmp(n, "build_info") == 0) {
        s_build_info(snap, SNAP_RELAY, s);
    } else if (strcmp(n, "packets_in_total") == 0) {
        snap->packets_in = v;
    } else if (strcmp(n, "packets_out_total") == 0) {
        snap->packets_out += v; /* one series per next hop */
    } else if (strcmp(n, "next_hop_up") == 0) {
        snap->hops++;
        snap->hops_up += v > 0;
    }
}

static void s_collect(snap_t *snap, const char *n, const prom_sample_t *s)
{
    double v = s->value;
    if (strcmp(n, "build_info") == 0)
        s_build_info(snap, SNAP_COLLECT, s);
    else if (strcmp(n, "packets_total") == 0)
        snap->packets = v;
    else if (strcmp(n, "bytes_total") == 0)
        snap->bytes = v;
    else if (strcmp(n, "sources_live") == 0)
        snap->sources_live = v;
    else if (strcmp(n, "merge_queued_packets") == 0)
        snap->queued_packets = v;
    else if (strcmp(n, "late_packets_total") == 0)
        snap->late_packets = v;
    else if (strcmp(n, "output_bytes_total") == 0)
        snap->output_bytes = v;
}

void snap_feed(void *arg, const prom_sample_t *s)
{
    snap_t *snap = arg;
    static const char capture[] = "tapmesh_capture_", relay[] = "tapmesh_relay_",
                      collect[] = "tapmesh_collect_";
    if (strncmp(s->name, capture, sizeof capture - 1) == 0)
        s_capture(snap, s->name + sizeof capture - 1, s);
    else if (strncmp(s->name, relay, sizeof relay - 1) == 0)
        s_relay(snap, s->name + sizeof relay - 1, s);
    else if (strncmp(s->name, collect, sizeof collect - 1) == 0)
        s_collect(snap, s->name + sizeof collect - 1, s);
}

double snap_rate(double prev, double cur, double dt)
{
    if (!(dt > 0) || !isfinite(prev) || !isfinite(cur))
        return NAN;
    double d = cur >= prev ? cur - prev : cur;
    return d / dt;
}

void snap_rates(const snap_t *prev, const snap_t *cur, double dt, snap_rates_t *out)
{
    out->pps = snap_rate(prev->packets, cur->packets, dt);
    out->mbps = snap_rate(prev->bytes, cur->bytes, dt) * 8 / 1e6;
    out->kernel_drops_ps =
        cur->live && prev->live ? snap_rate(prev->kernel_drops, cur->kernel_drops, dt) : NAN;
    out->in_pps = snap_rate(prev->packets_in, cur->packets_in, dt);
    out->out_pps = snap_rate(prev->packets_out, cur->packets_out, dt);
}
