/*
 * event — one event of the event streams (events.h) and its two encodings:
 * a JSON object on one line (built with cJSON) and an InfluxDB line
 * protocol point. A pure module: no sockets, no clock; the strings an event
 * names are borrowed. README "Events" documents the schema.
 *
 * Three kinds: a packet (one per packet carried), a flow (packets of one
 * flow over an interval, EVENTS_UNIQUE_S) and a loss (what tapmesh lost:
 * kernel drops, dead letters, late packets, refused sources).
 */
#ifndef TAPMESH_EVENT_H
#define TAPMESH_EVENT_H

#include "decode.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { EVENT_PACKET = 0, EVENT_FLOW = 1, EVENT_LOSS = 2 } event_kind_t;

typedef enum { EVENT_JSON = 1, EVENT_INFLUX = 2 } event_format_t;

/* The longest line event_format writes (an event of the longest names,
 * every character escaped, fits). */
#define EVENT_LINE_MAX 2048

typedef struct {
    event_kind_t kind;
    const char *source;   /* node id; never NULL */
    const char *iface;    /* interface name; "" when none (a refused source) */
    const char *reason;   /* "captured", "flow", "kernel_drop", ... */
    const char *severity; /* "info", "warning", "error" */
    uint64_t ts_ns;       /* capture time (a flow: its first packet's; a loss: when seen) */
    /* EVENT_PACKET and EVENT_FLOW: the dissected headers */
    uint32_t caplen, len; /* EVENT_PACKET: bytes captured, on the wire */
    decode_eth_t eth;
    decode_flow_t flow;
    /* EVENT_FLOW */
    uint64_t packets, bytes, first_ns, last_ns;
    /* EVENT_LOSS */
    uint64_t count;
} event_t;

/* Writes `ev` as one line ending in '\n' into buf[cap] (no NUL added).
 * Returns its length, or -ENOSPC when it does not fit. Allocates nothing
 * from the heap (JSON: cJSON works in a fixed arena, see event.c). */
int event_format(event_format_t format, const event_t *ev, char *buf, size_t cap);

/* InfluxDB line protocol escaping (docs.influxdata.com, "Line protocol",
 * special characters), appended to buf[*len..cap) (no NUL). `what`: 'm' a
 * measurement (commas and spaces escaped with a backslash), 'k' a tag key,
 * tag value or field key (commas, equals signs, spaces), 's' a string
 * field value (double quotes and backslashes; the quotes around it are the
 * caller's). A control character (newline, tab, ...) would end or split
 * the line, and line protocol has no escape for it: it becomes '_'.
 * Returns 0, or -ENOSPC (then *len is unchanged). */
int event_influx_escape(char what, const char *text, char *buf, size_t *len, size_t cap);

/* "aa:bb:cc:dd:ee:ff" into out[18]. */
void event_mac_text(const uint8_t mac[6], char out[18]);

#endif
