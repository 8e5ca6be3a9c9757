/*
 * poip — the collector's PCAP-over-IP server (PCAP_OVER_IP), as Arkime,
 * Zeek, NetworkMiner and fox-it's pcap-broker speak it: a TCP listener;
 * every client that connects gets a classic libpcap stream, the 24-byte
 * file header (nanosecond magic 0xa1b23c4d, or microsecond 0xa1b2c3d4 on
 * request, the output's link type) and
 * then a record for every packet written from the moment it joined, in the
 * output's merged order. Clients send nothing; what they send is read and
 * dropped.
 *
 * A client never holds the collector back: packets are copied once into
 * one ring shared by every client, each client has its own position in it,
 * and sockets are written only when the loop finds them writable (never a
 * blocking call). A client more than the ring's size behind is cut off
 * (closed, counted, logged once with its address). Acknowledgements do not
 * wait for clients: they follow the durable output (collector.c).
 *
 * The header needs the link type, known from the first packet: a client
 * that connects before it gets the header with that packet. Under
 * LINKTYPE_POLICY=first every packet has the same link type; packets of
 * another are counted and not sent (main.c refuses PCAP_OVER_IP with
 * LINKTYPE_POLICY=mixed).
 */
#ifndef TAPMESH_POIP_H
#define TAPMESH_POIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "metrics.h"
#include "wire.h"

#define POIP_HEADER_SIZE 24
#define POIP_RECORD_HEADER_SIZE 16
#define POIP_MAGIC_NS 0xa1b23c4du
#define POIP_MAGIC_US 0xa1b2c3d4u

typedef struct poip_t poip_t;

typedef struct {
    const char *listen;  /* "HOST:PORT", ":PORT", "[v6]:PORT"; NULL or "": no listener */
    size_t max_clients;  /* beyond, a connection is closed at once (counted) */
    size_t buffer_bytes; /* the ring: how far one client may fall behind */
    /* microsecond timestamps (magic 0xa1b2c3d4, the nanoseconds cut off):
     * for readers that know no other, such as Arkime's pcap-over-ip
     * reader; else nanoseconds (0xa1b23c4d) */
    bool micro;
} poip_opts_t;

/* Binds the listener (non-blocking) and allocates the ring; registers the
 * tapmesh_collect_pcap_over_ip_* metrics. Returns NULL with `err` naming
 * PCAP_OVER_IP and the address. */
poip_t *poip_new(const poip_opts_t *opts, metrics_t *metrics, char *err, size_t errlen);

/* Closes every client and the listener, frees. Accepts NULL. */
void poip_destroy(poip_t **self_p);

/* The port the listener is bound to (useful with port 0), or 0. */
unsigned poip_port(const poip_t *self);

/* Takes a connected stream socket as a client (made non-blocking), named
 * `name` in logs. Returns 0, or -EBUSY when max_clients are connected:
 * then `fd` is closed, counted and logged (rate-limited), like a refused
 * connection. */
int poip_adopt(poip_t *self, int fd, const char *name);

/* Clients connected. */
size_t poip_clients(const poip_t *self);

/* One packet written to the output (collector_opts_t.tap): framed into the
 * ring for every client connected. A client that the ring would overrun is
 * first written to (non-blocking), then cut off if still too far behind.
 * Nothing is copied while no client is connected. */
void poip_packet(poip_t *self, uint16_t linktype, const wire_packet_t *pkt);

/* Poll items for the loop: the listener (POLLIN) and each client (POLLIN,
 * and POLLOUT while it has bytes to send). Written to `items`, at most
 * `max`; returns how many. Pass the polled items to poip_handle before
 * anything else changes the clients. */
size_t poip_pollitems(poip_t *self, zmq_pollitem_t *items, size_t max);

/* Acts on what the poll saw: accepts new connections, reads and drops what
 * clients send (closing those that went away), writes to writable ones. */
void poip_handle(poip_t *self, const zmq_pollitem_t *items, size_t n);

/* Writes what each client has pending, as far as its socket takes it now
 * (the loop calls it after every pass that wrote packets). */
void poip_send(poip_t *self);

/* At exit: goes on writing what clients have pending for at most
 * `timeout_ms`, then closes them all. */
void poip_finish(poip_t *self, int timeout_ms);

/* Classic pcap file header, host byte order (as libpcap writes it):
 * nanosecond magic (microsecond when `micro`), version 2.4, `snaplen`,
 * `linktype`. */
void poip_header(uint8_t out[POIP_HEADER_SIZE], uint16_t linktype, uint32_t snaplen, bool micro);

/* Classic pcap record header of `pkt`: seconds, nanoseconds (microseconds
 * when `micro`), caplen, origlen, host byte order. */
void poip_record_header(uint8_t out[POIP_RECORD_HEADER_SIZE], const wire_packet_t *pkt, bool micro);

#endif
