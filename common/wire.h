/*
 * wire — codec for tapmesh wire protocol v2 (proto/wire-v2.md).
 *
 * Command frames decode into a wire_msg_t (strings copied and
 * NUL-terminated, everything bounds-checked); payload frames are checked as
 * a whole once, then walked without copying. Encoding is canonical: for any
 * frame that decodes, encoding the result gives back the same bytes.
 */
#ifndef TAPMESH_WIRE_H
#define TAPMESH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_SIGNATURE 0x544Du
#define WIRE_VERSION 2
#define WIRE_FRAME_HDR 4
#define WIRE_NAME_MAX 64
#define WIRE_TEXT_MAX 1024
#define WIRE_IFACES_MAX 64
#define WIRE_HOPS_MAX 16
#define WIRE_ACKS_MAX 1024
#define WIRE_PARTS_MAX 1024
#define WIRE_DEAD_MAX 1024 /* ranges in one DEAD (§3.9) */
#define WIRE_SNAPLEN_MAX 262144u
#define WIRE_PACKETS_MAX (1u << 20)
#define WIRE_PAYLOAD_MAX (64u << 20)
#define WIRE_PKT_HDR 20
/* Largest command frame: a HELLO with every field at its maximum. */
#define WIRE_COMMAND_MAX                                                                           \
    (WIRE_FRAME_HDR + 1 + WIRE_NAME_MAX + 8 + 8 + 2 + WIRE_TEXT_MAX + 1 +                          \
     WIRE_IFACES_MAX * (2 + 4 + 1 + WIRE_NAME_MAX + 2 + WIRE_TEXT_MAX))

typedef enum {
    WIRE_HELLO = 1,
    WIRE_WELCOME = 2,
    WIRE_REFUSE = 3,
    WIRE_BATCH = 4,
    WIRE_ACK = 5,
    WIRE_HEARTBEAT = 6,
    WIRE_END = 7,
    WIRE_PACKETS = 8, /* a payload frame (§4), never a command */
    WIRE_STATS = 9,
    WIRE_PACKETS_ZSTD = 10, /* a compressed payload frame (§4.1), never a command */
    WIRE_FEATURES = 11,
    WIRE_DEAD = 12,
} wire_type_t;

/* FEATURES flags (§3.8) */
#define WIRE_FEATURE_ZSTD 0x00000001u /* PACKETS_ZSTD payload frames are taken */
/* A PACKETS_ZSTD frame's fixed part: the header and the uncompressed length. */
#define WIRE_ZSTD_HDR (WIRE_FRAME_HDR + 4)

/* STATS entry flags (§3.7) */
#define WIRE_STATS_KERNEL 0x0001u /* recv, drop, ifdrop hold libpcap's counters */

/* REFUSE codes, §3.2 */
typedef enum {
    WIRE_REFUSE_UNKNOWN_SOURCE = 1,
    WIRE_REFUSE_LINKTYPE = 2,
    WIRE_REFUSE_CONFLICT = 3,
} wire_refuse_t;

/* Why a frame was rejected, §5. WIRE_OK is 0. */
typedef enum {
    WIRE_OK = 0,
    WIRE_ERR_TRUNCATED,
    WIRE_ERR_TRAILING,
    WIRE_ERR_SIGNATURE,
    WIRE_ERR_VERSION,
    WIRE_ERR_TYPE,
    WIRE_ERR_NAME,
    WIRE_ERR_TEXT,
    WIRE_ERR_RANGE,
    WIRE_ERR_CAPLEN,
    WIRE_ERR_FRAMING,
    WIRE_ERR_SOURCE,
    WIRE_ERR_OVERSIZE,
    WIRE_ERR_ZSTD,  /* a PACKETS_ZSTD frame zstd cannot turn into its declared length */
    WIRE_ERR_COUNT_ /* number of reasons */
} wire_err_t;

typedef struct {
    uint16_t linktype;
    uint32_t snaplen;
    char name[WIRE_NAME_MAX + 1];
    char description[WIRE_TEXT_MAX + 1];
} wire_iface_t;

/* One interface's counters in STATS (§3.7), cumulative since the source's
 * epoch began. */
typedef struct {
    uint16_t ifindex;
    uint16_t flags;  /* WIRE_STATS_KERNEL, or 0 (recv, drop, ifdrop then 0) */
    uint64_t recv;   /* libpcap ps_recv */
    uint64_t drop;   /* ps_drop: the kernel's buffer was full */
    uint64_t ifdrop; /* ps_ifdrop: the interface or driver dropped */
    uint64_t sent;   /* packets sent (first sends) */
    uint64_t dead;   /* packets written to the dead-letter file */
} wire_stats_t;

typedef struct {
    char node[WIRE_NAME_MAX + 1];
    uint64_t recv_ns;
    uint64_t relay_seq;
} wire_hop_t;

typedef struct {
    uint64_t seq;
    uint16_t part;
} wire_ack_entry_t;

/* A range of seqs [lo, hi) in DEAD (§3.9). */
typedef struct {
    uint64_t lo, hi;
} wire_range_t;

typedef struct {
    wire_type_t type;
    char source[WIRE_NAME_MAX + 1];
    uint64_t epoch;
    union {
        struct {
            uint64_t settled; /* every batch below was acknowledged (§3.1) */
            char description[WIRE_TEXT_MAX + 1];
            uint8_t iface_count;
            wire_iface_t ifaces[WIRE_IFACES_MAX];
        } hello;
        struct {
            uint8_t code;
            char reason[WIRE_TEXT_MAX + 1];
        } refuse;
        struct {
            uint64_t seq;
            uint16_t part, parts;
            uint64_t watermark;
            uint32_t packet_count;
            uint32_t payload_len;
            uint8_t hop_count;
            wire_hop_t hops[WIRE_HOPS_MAX];
        } batch;
        struct {
            uint16_t count;
            wire_ack_entry_t entries[WIRE_ACKS_MAX];
        } ack;
        struct {
            uint64_t watermark;
            uint64_t next_seq;
        } progress; /* HEARTBEAT and END */
        struct {
            uint8_t count;
            wire_stats_t entries[WIRE_IFACES_MAX];
        } stats;
        struct {
            uint32_t flags; /* WIRE_FEATURE_* */
        } features;
        struct {
            uint16_t count;                     /* 1..WIRE_DEAD_MAX */
            wire_range_t ranges[WIRE_DEAD_MAX]; /* lo < hi; each lo > the previous hi */
        } dead;                                 /* seqs dead-lettered by the source (§3.9) */
    };
} wire_msg_t;

/* One packet record of a payload frame; `data` points into the frame. */
typedef struct {
    uint64_t ts_ns;
    uint16_t ifindex;
    uint32_t caplen;
    uint32_t origlen;
    const uint8_t *data;
} wire_packet_t;

/* Starts a message to encode: type, source, epoch, and the fixed fields of
 * that type zeroed (counts, flags: nothing is left from an earlier use of
 * *msg). `source` may point into *msg. */
void wire_msg_init(wire_msg_t *msg, wire_type_t type, const char *source, uint64_t epoch);

/* The metric label of a reason: "truncated", "trailing", ... */
const char *wire_err_name(wire_err_t err);

/* Decodes one command frame (§3). Returns WIRE_OK and fills *msg, or the
 * reason the frame is malformed (msg is then partly written). */
wire_err_t wire_decode(const uint8_t *buf, size_t len, wire_msg_t *msg);

/* Encodes a command into buf; returns the length, or 0 when `cap` is too
 * small or a field breaks its rule (a programmer error). */
size_t wire_encode(const wire_msg_t *msg, uint8_t *buf, size_t cap);

/* Checks a whole payload frame (§4): header, exactly `packet_count`
 * records filling it, each caplen ≤ origlen and ≤ WIRE_SNAPLEN_MAX, each
 * ifindex < iface_count. On WIRE_OK, *min_ts / *max_ts (may be NULL) hold
 * the smallest and largest timestamps. */
wire_err_t wire_packets_check(const uint8_t *buf, size_t len, uint32_t packet_count,
                              unsigned iface_count, uint64_t *min_ts, uint64_t *max_ts);

/* Walks a checked payload frame: *off starts at 0; returns false at the end. */
bool wire_packets_next(const uint8_t *buf, size_t len, size_t *off, wire_packet_t *pkt);

/* Big-endian loads from a buffer the caller has bounds-checked. */
static inline uint16_t wire_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t wire_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t wire_be64(const uint8_t *p)
{
    return (uint64_t)wire_be32(p) << 32 | wire_be32(p + 4);
}

/* Reads the record at `off` of a payload frame that wire_packets_check
 * accepted, `off` being a record's start (WIRE_FRAME_HDR for the first);
 * returns the next record's offset (the frame's length after the last).
 * No bounds checks: the check did them once, so a receiver walks its
 * packets without a second parse. Never on a frame it did not accept. */
static inline size_t wire_packet_at(const uint8_t *buf, size_t off, wire_packet_t *pkt)
{
    const uint8_t *p = buf + off;
    pkt->ts_ns = wire_be64(p);
    pkt->ifindex = wire_be16(p + 8);
    pkt->caplen = wire_be32(p + 12);
    pkt->origlen = wire_be32(p + 16);
    pkt->data = p + WIRE_PKT_HDR;
    return off + WIRE_PKT_HDR + pkt->caplen;
}

/* Payload building: the header, then records appended at *off. Both return
 * false (and write nothing) when `cap` is too small. */
bool wire_packets_begin(uint8_t *buf, size_t cap, size_t *off);
bool wire_packets_put(uint8_t *buf, size_t cap, size_t *off, const wire_packet_t *pkt);

/* §3.1's interface description tags: splits `descr` (a HELLO interface's
 * description) into the free text before them (`plain`), the capture
 * host's OS (`os`, after "; if_os=") and the BPF filter in force (`filter`,
 * after "; if_filter=", always last); each output WIRE_TEXT_MAX + 1 bytes,
 * "" when absent. */
void wire_iface_tags_split(const char *descr, char *plain, char *os, char *filter);

/* Appends the tags to `descr` (WIRE_TEXT_MAX + 1 bytes): os and filter
 * with bytes outside §2's text set made spaces; either may be NULL or "".
 * Returns 0, or -ENOSPC when they do not fit (then the filter is left out,
 * and the OS too if it alone does not fit). */
int wire_iface_tags_append(char *descr, const char *os, const char *filter);

/* §3.1's source description tag "; compress=zstd" (always last): true
 * when `descr` ends with it, which is then cut off. */
bool wire_compress_tag_take(char *descr);

/* Appends the tag to `descr` (WIRE_TEXT_MAX + 1 bytes) unless it is there.
 * Returns 0, or -ENOSPC when it does not fit (descr unchanged). */
int wire_compress_tag_add(char *descr);

/* True when `text` is a valid name (§2). */
bool wire_name_valid(const char *text);

/* Copies `in` into `out` (WIRE_NAME_MAX + 1 bytes) as a valid ifname,
 * replacing bytes outside §2's set by '_'; "-" when `in` is empty. */
void wire_ifname_sanitize(const char *in, char *out);

#endif
