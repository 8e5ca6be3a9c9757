/*
 * pcapng — the output writer: pcapng (default) or classic pcap with
 * nanosecond timestamps (magic 0xa1b23c4d), for old tools.
 *
 * Blocks are built in one buffer, each complete before it is appended, and
 * handed to a sink function on flush; a block never straddles a flush. The
 * first sink error is latched: every later call returns it, so the caller
 * learns once and stops acknowledging.
 *
 * One output has one snaplen for every IDB (libpcap refuses IDBs that differ
 * from the first, see shared DESIGN "Output readable by libpcap"). Classic
 * pcap carries one link type: a second interface of another link type is
 * refused with -EPROTOTYPE.
 *
 * Options written (pcapng §4.1, §4.2, §4.6): SHB shb_os (3), shb_userappl
 * (4); IDB if_name (2), if_description (3), if_tsresol (9, = 9), if_filter
 * (11, first byte 0: a libpcap filter string), if_os (12), a custom
 * option; ISB (block type 5) opt_comment (1), isb_starttime (2),
 * isb_endtime (3), isb_ifrecv (4), isb_ifdrop (5), isb_osdrop (7),
 * isb_usrdeliv (8). Timestamps as in an EPB: high then low 32-bit word, in
 * the interface's units (nanoseconds); counters u64 in host byte order.
 * What tapmesh puts in an ISB's comment is the collector's business
 * (services/collect/collector.c, README "Statistics in the file").
 */
#ifndef TAPMESH_PCAPNG_H
#define TAPMESH_PCAPNG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum { PCAPNG_FORMAT_PCAPNG = 0, PCAPNG_FORMAT_PCAP = 1 } pcapng_format_t;

/* Writes all `len` bytes somewhere; returns 0 or a negative errno. */
typedef int (*pcapng_sink_fn)(void *ctx, const void *buf, size_t len);

typedef struct pcapng_writer_t pcapng_writer_t;

/* Custom option codes (pcapng specification, "Custom Options"): UTF-8 or
 * binary data, that a tool rewriting the file may copy or should not. */
#define PCAPNG_OPT_CUSTOM_UTF8 2988
#define PCAPNG_OPT_CUSTOM_BINARY 2989
#define PCAPNG_OPT_CUSTOM_UTF8_NOCOPY 19372
#define PCAPNG_OPT_CUSTOM_BINARY_NOCOPY 19373
/* The option length (16 bits) covers the 4-byte PEN and the data. */
#define PCAPNG_CUSTOM_DATA_MAX (65535u - 4u)

/* A custom option: its code (one of the four above), the Private
 * Enterprise Number of whoever defined it (written in the section's byte
 * order, as the specification requires) and `len` bytes of data, written
 * as they are (their own layout is their definer's business). */
typedef struct {
    uint16_t code;
    uint32_t pen;
    const void *data;
    size_t len;
} pcapng_custom_t;

/* Bytes a packet of `caplen` bytes takes in the output (the EPB or the pcap
 * record), without a comment. */
size_t pcapng_packet_size(pcapng_format_t format, uint32_t caplen);

/* A new writer. pcapng: the SHB is buffered at once; pcap: the file header
 * waits for the first interface (it needs the link type). `bufsize` is
 * raised to hold the largest block. Returns NULL when out of memory. */
pcapng_writer_t *pcapng_writer_new(pcapng_format_t format, uint32_t snaplen, const char *userappl,
                                   size_t bufsize, pcapng_sink_fn sink, void *ctx);

/* The same, with shb_os (`os` may be NULL or "": none). */
pcapng_writer_t *pcapng_writer_new_os(pcapng_format_t format, uint32_t snaplen,
                                      const char *userappl, const char *os, size_t bufsize,
                                      pcapng_sink_fn sink, void *ctx);

void pcapng_writer_destroy(pcapng_writer_t **self_p);

/* Adds an interface (pcapng: an IDB with if_name, if_description,
 * if_tsresol = 9). Returns its id (0, 1, ...), -EPROTOTYPE when classic
 * pcap already has another link type, -ENOSPC past 65535 interfaces, or a
 * latched sink error. */
int pcapng_writer_add_interface(pcapng_writer_t *self, uint16_t linktype, const char *name,
                                const char *description);

/* The same, with a custom option after if_tsresol (`custom` may be NULL:
 * then exactly as above). The writer keeps a copy: restart writes the IDB
 * again with it. pcapng only: classic pcap has nowhere to put it, so it is
 * refused (-EINVAL), as are an unknown code and data longer than
 * PCAPNG_CUSTOM_DATA_MAX. */
int pcapng_writer_add_interface_custom(pcapng_writer_t *self, uint16_t linktype, const char *name,
                                       const char *description, const pcapng_custom_t *custom);

/* An interface with every IDB option the writer knows; strings may be NULL
 * or "" (then the option is left out). */
typedef struct {
    uint16_t linktype;
    const char *name;
    const char *description;
    const char *filter; /* if_filter: a libpcap (BPF) filter string */
    const char *os;     /* if_os */
    const pcapng_custom_t *custom;
} pcapng_iface_t;

/* pcapng_writer_add_interface_custom with if_filter and if_os too; the
 * writer keeps a copy of everything. Same returns. */
int pcapng_writer_add_interface_opts(pcapng_writer_t *self, const pcapng_iface_t *iface);

/* Interface statistics (an ISB). `have` says which of the counters are
 * known (the others are left out); the timestamps are always written. */
#define PCAPNG_ISB_IFRECV 0x1u
#define PCAPNG_ISB_IFDROP 0x2u
#define PCAPNG_ISB_OSDROP 0x4u
#define PCAPNG_ISB_USRDELIV 0x8u
typedef struct {
    uint64_t ts_ns;    /* the block's own time, and isb_endtime */
    uint64_t start_ns; /* isb_starttime */
    unsigned have;     /* PCAPNG_ISB_* */
    uint64_t ifrecv, ifdrop, osdrop, usrdeliv;
    const char *comment; /* opt_comment, or NULL */
} pcapng_stats_t;

/* Bytes the ISB of `st` takes. */
size_t pcapng_stats_size(const pcapng_stats_t *st);

/* Appends an ISB for interface `ifid` (flushing first when the buffer is
 * full, as pcapng_writer_packet does). pcapng only: -EINVAL for classic
 * pcap or an unknown interface; else 0 or a latched sink error. */
int pcapng_writer_stats(pcapng_writer_t *self, uint32_t ifid, const pcapng_stats_t *st);

/* Appends one packet. `comment` may be NULL (pcapng only: opt_comment).
 * Returns 0, -EINVAL for an unknown interface or caplen > snaplen, or a
 * sink error. */
int pcapng_writer_packet(pcapng_writer_t *self, uint32_t ifid, uint64_t ts_ns, uint32_t caplen,
                         uint32_t origlen, const uint8_t *data, const char *comment);

/* The same without a comment, for a writer whose caller decides when to
 * flush: never hands anything to the sink, and returns -ENOBUFS (writing
 * nothing) when the packet does not fit the room left; -EINVAL and a
 * latched error as above. Byte for byte what pcapng_writer_packet writes. */
int pcapng_writer_append(pcapng_writer_t *self, uint32_t ifid, uint64_t ts_ns, uint32_t caplen,
                         uint32_t origlen, const uint8_t *data);

/* The same, with a custom option after the comment (`custom` may be NULL:
 * then exactly as above). pcapng only; -EINVAL as for
 * pcapng_writer_add_interface_custom. The EPB takes
 * pcapng_packet_size_custom() bytes. */
int pcapng_writer_packet_custom(pcapng_writer_t *self, uint32_t ifid, uint64_t ts_ns,
                                uint32_t caplen, uint32_t origlen, const uint8_t *data,
                                const char *comment, const pcapng_custom_t *custom);

/* Bytes the EPB of pcapng_writer_packet_custom() with these arguments
 * takes (`comment` and `custom` may be NULL). */
size_t pcapng_packet_size_custom(uint32_t caplen, const char *comment,
                                 const pcapng_custom_t *custom);

/* Hands everything buffered to the sink. Returns 0 or the sink's error. */
int pcapng_writer_flush(pcapng_writer_t *self);

/* Starts a new file on the same sink (after the sink changed files):
 * discards nothing, flushes first, then buffers the header blocks and every
 * interface again with the same ids. Returns 0 or an error. */
int pcapng_writer_restart(pcapng_writer_t *self);

/* Link type of interface `ifid`, or -1. */
int pcapng_writer_linktype(const pcapng_writer_t *self, uint32_t ifid);

/* Bytes that can be appended before the buffer must be handed to the sink:
 * a packet of pcapng_packet_size() bytes or less fits without a flush. */
size_t pcapng_writer_room(const pcapng_writer_t *self);

/* Number of interfaces; bytes buffered; bytes handed to the sink since new
 * or since the last restart. */
unsigned pcapng_writer_interfaces(const pcapng_writer_t *self);
size_t pcapng_writer_buffered(const pcapng_writer_t *self);
uint64_t pcapng_writer_file_bytes(const pcapng_writer_t *self);

/* A sink for a file descriptor (ctx: an int * ); loops over short writes and EINTR. */
int pcapng_sink_fd(void *ctx, const void *buf, size_t len);

#endif
