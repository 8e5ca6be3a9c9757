/*
 * source — where packets come from, through libpcap: a live interface
 * (source-live.c), a capture file (source-file.c) or a PCAP-over-IP server
 * (source-poip.c). The agent's loop sees
 * only this interface: one packet at a time, nanosecond timestamps, never
 * blocking.
 */
#ifndef TAPMESH_SOURCE_H
#define TAPMESH_SOURCE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct source_t source_t;

typedef enum {
    SOURCE_PACKET = 1, /* *pkt holds a packet */
    SOURCE_IDLE = 0,   /* nothing now; see source_wait_ns and source_fd */
    SOURCE_EOF = -1,   /* no packet will follow */
    SOURCE_ERROR = -2, /* read failed; source_error says why, naming the interface */
} source_result_t;

typedef struct {
    uint64_t ts_ns;
    uint32_t caplen;
    uint32_t origlen;
    const uint8_t *data; /* valid until the next call */
} source_packet_t;

typedef struct {
    const char *device;      /* interface name */
    const char *filter;      /* BPF expression, "" for none */
    uint32_t snaplen;        /* bytes kept per packet */
    bool promisc;            /* promiscuous mode */
    bool immediate;          /* deliver packets as they arrive */
    unsigned buffer_mb;      /* kernel buffer; 0: libpcap's default */
    const char *tstamp_type; /* "host", "adapter"...; "" for the default */
    /* The agent's next hops (RELAY_ENDPOINT, comma-separated): its own
     * connections to them are left out of the capture (source_filter_build).
     * NULL or "" captures everything (CAPTURE_OWN_TRAFFIC=true). */
    const char *next_hops;
} source_live_opts_t;

typedef struct {
    uint64_t received;  /* packets the filter passed (pcap_stats ps_recv) */
    uint64_t dropped;   /* dropped by the kernel: no room in the buffer */
    uint64_t ifdropped; /* dropped by the interface or its driver */
} source_stats_t;

/* Opens a live capture. Returns NULL with `err` naming the setting and the
 * interface: "DEVICE=eth9: No such device exists", "FILTER='tcp port x':
 * ...", "TSTAMP_TYPE=adapter: eth0 offers host, adapter_unsynced",
 * "RELAY_ENDPOINT=tcp://nohost:5710: cannot resolve nohost ...". Logs the
 * filter in force (info). */
source_t *source_live_open(const source_live_opts_t *opts, char *err, size_t errlen);

/* The BPF program of a live capture into `out`: the user's `filter` ("" or
 * NULL for none) without the agent's own connections to `next_hops`
 * (comma-separated ZeroMQ endpoints): "(FILTER) and not (host H and tcp
 * port P)", one "and not (...)" for every address of every tcp:// next hop
 * (host names resolved here, all their addresses; "[::1]" and ZeroMQ's
 * "tcp://SOURCE;HOST:PORT" understood), "not (...)" without a user filter.
 * ipc:// and inproc:// add nothing; with nothing to leave out the program is
 * the user's filter as given ("" for none). Returns 0, or -EINVAL (an
 * endpoint that does not resolve or cannot be understood) or -ENOSPC with
 * `err` naming RELAY_ENDPOINT. */
int source_filter_build(const char *filter, const char *next_hops, char *out, size_t outlen,
                        char *err, size_t errlen);

/* Opens a capture file ("-" is standard input), any format and link type
 * libpcap reads. `speed` 0 reads as fast as possible; N > 0 replays at N
 * times the recorded pace. `filter` "" for none. Returns NULL with `err`
 * naming the setting and the file. */
source_t *source_file_open(const char *path, unsigned speed, const char *filter, char *err,
                           size_t errlen);

/* PCAP-over-IP: a classic pcap stream read from a TCP server. */
typedef struct {
    const char *addr;          /* READ_PCAP_OVER_IP: host:port, [v6]:port */
    const char *filter;        /* BPF expression, "" for none */
    uint32_t snaplen;          /* bytes kept per packet (SNAPLEN), at most the stream's */
    unsigned retry_ms;         /* first wait before a reconnection; doubles up to 30 s */
    struct metrics_t *metrics; /* the source's counters go there */
} source_poip_opts_t;

/* Splits READ_PCAP_OVER_IP's "host:port" or "[v6]:port" (no name lookup):
 * the host without brackets into `host`, the port (1..65535) into `port`.
 * Returns 0, or -EINVAL with the reason in `why`. */
int source_poip_addr_parse(const char *text, char *host, size_t hostlen, char *port, size_t portlen,
                           char *why, size_t whylen);

/* A PCAP-over-IP source, not connected yet: NULL with `err` naming
 * READ_PCAP_OVER_IP for an address that cannot be understood. Registers the
 * source's metrics. */
source_t *source_poip_open(const source_poip_opts_t *opts, char *err, size_t errlen);

/* Connects (and reconnects, with backoff) until the first stream's header
 * has arrived: its link type and snaplen become the source's. Polls `*stop`
 * and calls metrics_alive while it waits. Returns 0; 1 when `*stop` became
 * nonzero first; -EINVAL with `err` naming FILTER when the filter does not
 * compile for the stream's link type. */
int source_poip_wait_stream(source_t *self, volatile const sig_atomic_t *stop, char *err,
                            size_t errlen);

/* The next packet. Never blocks. */
source_result_t source_next(source_t *self, source_packet_t *pkt);

/* Nanoseconds until source_next may have a packet without the descriptor
 * becoming readable (paced replay), 0 when unknown. */
uint64_t source_wait_ns(const source_t *self);

/* A descriptor to poll for readability, or -1 when there is none. */
int source_fd(const source_t *self);

/* Timestamp of the next packet when it is already known (a paced replay
 * waiting for it), else 0: the source promises nothing older. */
uint64_t source_next_ts(const source_t *self);

/* Kernel counters of a live capture; -ENOTSUP for a file. */
int source_stats(source_t *self, source_stats_t *stats);
bool source_has_stats(const source_t *self); /* a kind with kernel counters */

int source_linktype(const source_t *self); /* a LINKTYPE_ value */
uint32_t source_snaplen(const source_t *self);
const char *source_name(const source_t *self);        /* interface name */
const char *source_description(const source_t *self); /* for the IDB */
const char *source_error(const source_t *self);

void source_close(source_t **self_p);

#endif
