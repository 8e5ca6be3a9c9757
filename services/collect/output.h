/*
 * output — where the merged stream goes: the pcapng (or classic pcap)
 * writer on top of a sink (standard output, or a file).
 *
 * It owns the output's interface table: one IDB per (source, interface),
 * named "source/interface", all with the output's one snaplen, and applies
 * LINKTYPE_POLICY (shared DESIGN "Output readable by libpcap").
 */
#ifndef TAPMESH_OUTPUT_H
#define TAPMESH_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "pcapng.h"
#include "wire.h"

typedef enum { OUTPUT_LINKTYPE_FIRST = 0, OUTPUT_LINKTYPE_MIXED = 1 } output_policy_t;

typedef struct output_t output_t;

/* Opens `path` ("-": standard output) for `format`. Returns NULL with `err`
 * naming the path. */
output_t *output_open(const char *path, pcapng_format_t format, output_policy_t policy,
                      size_t bufsize, char *err, size_t errlen);

/* Flushes what is buffered (errors ignored: use output_flush first to
 * know), closes, frees. Accepts NULL. */
void output_close(output_t **self_p);

/* The interface id for `source`'s interface, adding an IDB on first sight.
 * `source_descr` is the source's HELLO description. Returns the id, or
 * -EPROTOTYPE when the policy refuses the link type (`why` says why, naming
 * both link types and the setting), or another negative errno. */
int output_interface(output_t *self, const char *source, const char *source_descr,
                     const wire_iface_t *iface, char *why, size_t whylen);

/* Appends a packet (buffered). `comment` may be NULL. Returns 0 or a
 * negative errno (the output is then broken for good). */
int output_packet(output_t *self, uint32_t ifid, const wire_packet_t *pkt, const char *comment);

/* Hands everything buffered to the operating system. Returns 0 or a
 * negative errno. */
int output_flush(output_t *self);

/* "-" shown as "standard output": for messages. */
const char *output_name(const output_t *self);

/* Bytes handed to the operating system so far. */
uint64_t output_bytes(const output_t *self);

#endif
