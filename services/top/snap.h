/*
 * snap — what tapmesh-top shows of one service, taken from one scrape of
 * its /metrics (prom.h samples fed one by one), and the rates between two
 * scrapes. Which service it is comes from its tapmesh_<service>_build_info.
 * A relay's per-hop series are summed (packets out) and counted (hops up).
 * Pure: no I/O, no allocation.
 */
#ifndef TAPMESH_SNAP_H
#define TAPMESH_SNAP_H

#include "prom.h"

#include <stdbool.h>

typedef enum { SNAP_UNKNOWN, SNAP_CAPTURE, SNAP_RELAY, SNAP_COLLECT } snap_kind_t;

typedef struct {
    snap_kind_t kind;
    char source[64];  /* capture: tapmesh_capture_source_info's source, or "" */
    char version[32]; /* build_info's version, or "" */
    /* capture: captured; collect: written (packet data bytes) */
    double packets, bytes;
    /* capture */
    bool live; /* kernel counters exported: a live interface */
    double kernel_drops;
    double resent_batches, dead_letter_batches, dead_letter_packets;
    int next_hop_up; /* -1: not exported */
    /* relay: packets out summed over the next hops */
    double packets_in, packets_out;
    unsigned hops, hops_up;
    /* collect */
    double sources_live, queued_packets, late_packets, output_bytes;
} snap_t;

/* Rates per second between two scrapes of the same service. */
typedef struct {
    double pps, mbps;       /* capture: captured; collect: written */
    double kernel_drops_ps; /* capture, live only */
    double in_pps, out_pps; /* relay */
} snap_rates_t;

/* Empties `s` for a new scrape. */
void snap_reset(snap_t *s);

/* Takes what `s` means for tapmesh-top into `arg`, a snap_t; unknown
 * samples are ignored. Has the type of a prom_sample_fn. */
void snap_feed(void *arg, const prom_sample_t *s);

/* The per-second rate of a counter that went from `prev` to `cur` in `dt`
 * seconds; a counter that went down was reset (the service restarted), and
 * counts from 0. NaN when dt is not positive or a value is not finite. */
double snap_rate(double prev, double cur, double dt);

/* The rates of `cur` against `prev`, `dt` seconds earlier. */
void snap_rates(const snap_t *prev, const snap_t *cur, double dt, snap_rates_t *out);

#endif
