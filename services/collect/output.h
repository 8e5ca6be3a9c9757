/*
 * output — where the merged stream goes: the pcapng (or classic pcap)
 * writer on top of a sink: standard output, one file, or a series of files
 * rotated by size and/or age (like tcpdump -C / -G).
 *
 * It owns the output's interface table: one IDB per (source, interface),
 * named "source/interface", all with the output's one snaplen, and applies
 * LINKTYPE_POLICY (shared DESIGN "Output readable by libpcap"). Every file
 * of a rotation starts with the header blocks and every interface again.
 *
 * No reader is ever handed a section header alone: nothing reaches the
 * operating system before the first interface block, and a file is created
 * (whole, atomically) by its first flush, so that an output that never had
 * a source, or a collector killed while starting, leaves no file behind.
 * Files are created with mode 0640 (captured packets: the owner writes, its
 * group reads), the umask applied; a FIFO or device OUTPUT names is
 * written as it is.
 *
 * Nothing reaches the operating system except through output_flush(): the
 * caller checks output_room() before each packet, so that it can record
 * what a flush will write before it writes it (STATE_DIR).
 */
#ifndef TAPMESH_OUTPUT_H
#define TAPMESH_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcapng.h"
#include "wire.h"

/* OUTPUT=none: the writer runs (interfaces, link type policy) but its
 * blocks go nowhere; for a collector whose only readers are on the network
 * (PCAP_OVER_IP, OUTPUT_DEVICE, TUNNEL). No rotation, no keep_existing.
 * Nothing is ever created; output_bytes and output_files stay 0. */
#define OUTPUT_NONE "none"

typedef enum { OUTPUT_LINKTYPE_FIRST = 0, OUTPUT_LINKTYPE_MIXED = 1 } output_policy_t;

typedef struct {
    const char *path; /* "-" for standard output, OUTPUT_NONE, a file, or a pattern (below) */
    pcapng_format_t format;
    output_policy_t policy;
    size_t bufsize;        /* the writer's buffer */
    uint64_t rotate_bytes; /* start a new file past this size; 0: never */
    int64_t rotate_ms;     /* ... or this long after it was opened; 0: never */
    bool keep_existing;    /* never overwrite a file: take the next index instead */
} output_opts_t;

typedef struct output_t output_t;

/* Opens the output. A path with a '%', or any path when rotating, is a
 * pattern: strftime conversions (%Y%m%d-%H%M%S...) are expanded when each
 * file is begun, and %i becomes the file's index (0000, 0001, ...); a
 * pattern without %i gets "-%i" before its extension. A pattern never
 * overwrites a file: it takes the next free index. A plain path replaces an
 * existing file (like tcpdump -w) when its first flush is written, unless
 * keep_existing: then, when it exists, it becomes such a pattern. An
 * existing FIFO or device is opened now and written in place. The name
 * is chosen now (output_path) and the directory checked, but the file only
 * appears with the first flush after an interface was added. Returns NULL
 * with `err` naming the path. */
output_t *output_open(const output_opts_t *opts, char *err, size_t errlen);

/* Flushes what is buffered (errors ignored: use output_flush first to
 * know; nothing after output_abort), closes, frees. Accepts NULL. */
void output_close(output_t **self_p);

/* The interface id for `source`'s interface, adding an IDB on first sight.
 * `source_descr` is the source's HELLO description. Returns the id, or
 * -EPROTOTYPE when the policy refuses the link type (`why` says why, naming
 * both link types and the setting), -ENOBUFS when the buffer must be
 * flushed first, or another negative errno. */
int output_interface(output_t *self, const char *source, const char *source_descr,
                     const wire_iface_t *iface, char *why, size_t whylen);

/* output_interface with the IDB's if_filter and if_os (either may be NULL
 * or "": left out); `iface->description` is written as given. Used on the
 * interface's first sight only. */
int output_interface_info(output_t *self, const char *source, const char *source_descr,
                          const wire_iface_t *iface, const char *filter, const char *os, char *why,
                          size_t whylen);

/* Called before a file is closed: at a rotation (before the old file's
 * last flush) and in output_end, only for a pcapng output with
 * interfaces. It may append blocks with output_stats; they are written to
 * the file being closed. */
typedef void (*output_closing_fn)(void *ctx, output_t *output);
void output_on_closing(output_t *self, output_closing_fn fn, void *ctx);

/* Appends an ISB for interface `ifid` to the current file (pcapng only:
 * -EINVAL otherwise). Returns 0 or a negative errno. */
int output_stats(output_t *self, uint32_t ifid, const pcapng_stats_t *st);

/* Number of interfaces (IDBs) of the output. */
unsigned output_interfaces(const output_t *self);

/* True when a packet of `caplen` bytes (with `comment`) fits the buffer
 * without a flush. */
bool output_room(const output_t *self, uint32_t caplen, const char *comment);

/* Appends a packet (buffered; the caller checked output_room). `comment`
 * may be NULL. Returns 0 or a negative errno (the output is then broken
 * for good). */
int output_packet(output_t *self, uint32_t ifid, const wire_packet_t *pkt, const char *comment);

/* The same for a packet without a comment, with the room check in it:
 * appends when the packet fits the buffer and the file is not full
 * (output_room and !output_full), otherwise writes nothing and returns
 * -ENOBUFS, so that the caller commits (and rotates) first and tries
 * again. Other errors as output_packet. */
int output_append(output_t *self, uint32_t ifid, const wire_packet_t *pkt);

/* Bytes buffered that the next flush hands to the operating system (0
 * until the first interface). */
size_t output_buffered(const output_t *self);

/* Hands everything buffered to the operating system, creating the file on
 * its first flush; does nothing until the first interface. Returns 0 or a
 * negative errno. */
int output_flush(output_t *self);

/* The end of a clean run: flushes. Standard output (or a FIFO or device
 * that OUTPUT names) that never had an interface then gets a section header
 * and one interface block named "none" (Ethernet, no packets), so that a
 * reader on the pipe (tcpdump -r -) ends without an error; a file that never
 * had one is not created. Returns 0 or a negative errno. */
int output_end(output_t *self);

/* After a failed write (ENOSPC, EIO), or when what is buffered must not be
 * written (the journal failed): cuts the current file back to the end of
 * its last successful flush, so that it ends with a whole block (a failed
 * write may have left part of one after it), and makes the output write
 * nothing more: output_flush, output_end and output_rotate_if_due fail
 * with -ECANCELED, output_close discards the buffer. A pipe or device is
 * left as it is; standard output redirected to a regular file is cut like
 * a file. Returns 1 when bytes were cut off, 0 when there was nothing to
 * cut, or a negative errno when the file could not be cut. */
int output_abort(output_t *self);

/* True when the current file, with what is buffered, has reached its
 * rotation size: time to commit and move on before writing more. */
bool output_full(const output_t *self);

/* Moves to the next file when the current one is due (size, or age at
 * `now_ms`, counted from when the file was begun): the current one is
 * flushed and closed, the next one begun at `now_ms`. Returns 1 when it did
 * (the new file's header blocks and every interface are buffered; the file
 * appears with the next flush), 0 when not due or when the current file has
 * nothing in it yet, or a negative errno. Never for standard output. */
int output_rotate_if_due(output_t *self, int64_t now_ms);

/* The file being written or about to be created ("-" for standard
 * output) and the bytes handed to the operating system in it so far: where
 * the next flush starts. */
const char *output_path(const output_t *self);
uint64_t output_offset(const output_t *self);

/* The length of the file the last rotation closed, everything written to it
 * before it was closed (its statistics blocks too); 0 before any. */
uint64_t output_closed_bytes(const output_t *self);

/* "-" shown as "standard output": for messages. */
const char *output_name(const output_t *self);

/* Bytes handed to the operating system so far, all files together. */
uint64_t output_bytes(const output_t *self);

/* Files created so far (standard output: 1 once written to). */
unsigned output_files(const output_t *self);

#endif
