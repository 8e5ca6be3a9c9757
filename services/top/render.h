/*
 * render — tapmesh-top's table: one block per refresh, a section per kind
 * of service (sources, relays, collectors), a row per service, rates from
 * the last two scrapes, and the services that do not answer shown as down
 * with the reason. The same text goes to a terminal (redrawn in place by
 * main.c) and to a pipe. Writes only to the FILE it is given.
 */
#ifndef TAPMESH_RENDER_H
#define TAPMESH_RENDER_H

#include "prom.h"
#include "snap.h"

#include <stdbool.h>
#include <stdio.h>

/* One watched service, as main.c keeps it between refreshes. */
typedef struct {
    const char *addr; /* as the operator gave it */
    snap_kind_t kind; /* from its last good scrape; SNAP_UNKNOWN before one */
    bool up;          /* the last scrape answered, and with tapmesh metrics */
    char error[192];  /* when not up: why */
    snap_t cur;       /* the last good scrape */
    snap_t prev;      /* the good scrape before it, when has_rates */
    double cur_at;    /* when `cur` came, CLOCK_MONOTONIC seconds */
    bool has_cur;     /* `cur` holds a scrape */
    bool has_rates;   /* `rates` is `cur` against `prev` */
    snap_rates_t rates;
    prom_result_t parse;           /* the last scrape's unreadable lines */
    unsigned long bad_lines_total; /* unreadable lines over every scrape */
    unsigned long downs;           /* scrapes that failed */
} render_target_t;

/* Writes one block: a title line (`title`), then the sections. */
void render_block(FILE *out, const render_target_t *t, size_t n, const char *title);

#endif
