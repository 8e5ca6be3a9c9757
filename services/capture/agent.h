/*
 * agent — the capture agent's engine, without sockets: reads packets from
 * its source into the outbox, sends batches upstream within the window,
 * resends them with backoff, writes what stays unacknowledged for
 * RETRY_TIMEOUT_S to the dead-letter file, and handles what comes back
 * (WELCOME, REFUSE, ACK) — shared DESIGN "Delivery".
 *
 * main.c owns the socket, the signals and the loop: it hands received
 * messages to agent_on_message, the connection state to agent_on_link,
 * calls agent_step once per pass and sleeps until agent_next_wake (or the
 * socket or agent_poll_fd is readable). The tests drive it directly.
 */
#ifndef TAPMESH_AGENT_H
#define TAPMESH_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decap.h"
#include "dlq-read.h"
#include "frames.h"
#include "metrics.h"
#include "outbox.h"
#include "resume.h"
#include "source.h"

typedef struct agent_t agent_t;

/* Sends one message upstream: a command frame, and for a BATCH the batch
 * whose payload frame follows (batch->buf, batch->len; `batch` NULL
 * otherwise). The command is the callee's only during the call; the
 * payload may be kept without a copy by taking a loan (outbox_lend, once
 * per send) and giving it back (outbox_give_back, from any thread) when
 * done: the buffer stays intact until then, even once acknowledged.
 * With `packed` (COMPRESS), the payload frame is instead those
 * `packed_len` bytes, the batch compressed (proto §4.1): the callee's only
 * during the call, so it copies them (no loan).
 * Returns 0, -EAGAIN when the next hop's queue is full (back-pressure: the
 * agent tries again on a later pass), or another negative errno; a loan
 * taken for a send that failed is given back before returning. */
typedef int (*agent_send_fn)(void *ctx, const uint8_t *cmd, size_t len, batch_t *batch,
                             const uint8_t *packed, size_t packed_len);

typedef struct {
    const char *node_id;     /* the source id */
    const char *description; /* HELLO's; "" for the program's name */
    const char *endpoint;    /* the next hop, named in log lines */
    uint64_t epoch;
    size_t batch_bytes;            /* a batch is closed at this size */
    size_t buffer_bytes;           /* bound on everything held */
    unsigned window;               /* batches in flight */
    int64_t batch_delay_ms;        /* a batch is closed this long after its first packet */
    int64_t heartbeat_ms;          /* a HEARTBEAT after this long without sending */
    int64_t ack_timeout_ms;        /* first resend; also how long HELLO waits for WELCOME */
    int64_t backoff_max_ms;        /* resend waits double up to this */
    int64_t retry_timeout_ms;      /* unacknowledged this long: dead-lettered */
    const char *dlq_dir;           /* an existing writable directory */
    bool live;                     /* a source that does not wait for us: a live interface
                                    * (kernel counters, wall-clock watermarks) or a
                                    * PCAP-over-IP stream; read up to buffer_bytes */
    bool wall_clock;               /* its timestamps are comparable to this host's clock */
    resume_t *resume;              /* READ_FILE with STATE_DIR, or NULL; taken by the agent.
                                    * RESUME_CONTINUE: `epoch` is resume_epoch() and the
                                    * agent continues it; else resume_start(epoch) was called */
    dlq_reader_t *replay;          /* READ_FILE is a dead-letter file: its batches go again
                                    * under their identity (then there is no source, and
                                    * node_id, epoch and description are the file's); taken */
    const dlq_info_t *replay_info; /* with `replay`: the interface HELLO names */
    /* DECAP: the source's packets are tunnelled mirror traffic; what is sent
     * is the inner frames (decap.h), the interface's link type and
     * description say so, what has no inner frame is counted and dropped.
     * DECAP_OFF: packets as captured. */
    decap_kind_t decap;
    bool decap_id_set; /* DECAP_ID: only the VNI, GRE key or ERSPAN session decap_id */
    uint32_t decap_id;
    bool tstamp_erspan; /* TSTAMP_SOURCE=erspan: an ERSPAN III frame's switch timestamp */
    /* TSTAMP_SOURCE=trailer:arista7130: the first switch's time from the
     * Metamako trailers (trailer.h) at the end of each frame (after DECAP);
     * trailer_strip (TRAILER=strip) cuts the frame back to what the first
     * switch received, without its FCS */
    bool tstamp_trailer;
    /* TSTAMP_SOURCE=header:arista7280: the switch's time from the Arista
     * 7280 timestamp header (trailer.h) after each Ethernet frame's
     * addresses (after DECAP); trailer_strip takes the header out */
    bool tstamp_header;
    bool trailer_strip;
    /* The BPF filter in force on the source ("" or NULL: none): HELLO
     * carries it, and this host's OS, as the interface description's tags
     * (proto/wire-v2.md §3.1) for the output's if_filter and if_os. */
    const char *if_filter;
    /* EVENTS (events.h), each NULL for none: `tap` sees every packet read
     * as it goes into a batch, as it is sent (after DECAP and
     * TSTAMP_SOURCE, cut to the wire's snaplen; not dead letters sent
     * again, nor packets a continued epoch skips); `loss` the growth of
     * what the agent lost: "kernel_drop" (ps_drop), "if_drop" (ps_ifdrop)
     * and "dead_letter" (packets written to the dead-letter file).
     * `source` is node_id, `iface` the interface HELLO names, `reason` a
     * string literal. */
    void (*tap)(void *tap_ctx, const char *source, const char *iface, uint16_t linktype,
                const wire_packet_t *pkt);
    void (*loss)(void *tap_ctx, const char *source, const char *iface, const char *reason,
                 uint64_t count);
    void *tap_ctx;
    /* COMPRESS: the zstd level (compress.h), 0 for off. HELLO then asks
     * for FEATURES (proto §3.1, §3.8); once the collector says it takes
     * them, batches go compressed when that makes them smaller. What is
     * held and dead-lettered stays uncompressed. */
    int compress_level;
} agent_opts_t;

/* Takes the source (*source_p is set to NULL; NULL when replaying),
 * opts->resume and opts->replay. Registers the agent's metrics. Returns
 * NULL when out of memory (what it took is then closed). */
agent_t *agent_new(source_t **source_p, const agent_opts_t *opts, metrics_t *metrics,
                   agent_send_fn send, void *ctx);
void agent_destroy(agent_t **self_p);

/* Says HELLO. */
void agent_start(agent_t *self, int64_t now_ms);

/* Handles one message from upstream (WELCOME, REFUSE, ACK): a DEALER's
 * frames, delimiter + command, no payload. Anything else is counted as
 * malformed and dropped. */
void agent_on_message(agent_t *self, frames_t *in, int64_t now_ms);

/* The connection to the next hop went up or down. A batch held without a
 * connection for ACK_TIMEOUT_MS is reported once per outage, and the
 * connection's return too. */
void agent_on_link(agent_t *self, bool up, int64_t now_ms);

/* One pass: reads what there is room for, closes, dead-letters, sends,
 * says END or HEARTBEAT, reads the kernel's counters and, once WELCOMEd,
 * sends them in STATS (§3.7) when they changed: at most once a second, and
 * before the first END and once finished whatever the time. */
void agent_step(agent_t *self, int64_t now_ms);

/* A stop was asked for (the first SIGTERM/SIGINT): capturing stops, what
 * is held waits up to RETRY_TIMEOUT_S for acknowledgements. */
void agent_stop(agent_t *self, int64_t now_ms);

/* Stop at once (a second signal): everything held goes to the dead-letter
 * file now. */
void agent_abort(agent_t *self, int64_t now_ms);

/* True when the agent has nothing more to do: everything read was
 * acknowledged or dead-lettered. */
bool agent_finished(const agent_t *self);

/* When agent_step next has work without a message arriving: `now_ms` when
 * the source may have more packets right now. */
int64_t agent_next_wake(const agent_t *self, int64_t now_ms);

/* The descriptor to poll for the source's packets, or -1 when the agent
 * reads nothing now (no room, ended, or a source without one). */
int agent_poll_fd(const agent_t *self);

/* Logs the outcome and returns the exit status: 0 when every packet read
 * was acknowledged, 1 when any went to the dead-letter file, were lost or
 * capture failed. */
int agent_exit_status(agent_t *self);

/* Packets read so far. */
uint64_t agent_packets(const agent_t *self);

#endif
