/*
 * dlq — the dead-letter file: batches that were never acknowledged within
 * RETRY_TIMEOUT_S (or that the collector refused) are written here, as
 * pcapng, packets whole with their original timestamps and interface, so
 * that nothing is lost without a trace. One file per agent run:
 * DLQ_DIR/<node>-<UTC start time>-<8 random hex digits>.pcapng, e.g.
 * edge1-20250102T030405Z-3fa9c21b.pcapng, created on first use with mode
 * 0600 (captured packets; the umask may take more away). The name does not
 * carry the epoch, which lets whoever knows it speak for the source: the
 * epoch is inside the file (a replay needs it), behind the file's mode.
 *
 * Every batch keeps its identity (source, epoch, seq, part) and its state
 * (refused: never written; unacknowledged: may have been written) in
 * pcapng custom options, proto/dead-letters-v1.md, so that dlq-read.h can
 * give the batches back for a replay under their original identity.
 */
#ifndef TAPMESH_DLQ_H
#define TAPMESH_DLQ_H

#include "outbox.h"

/* The file format, proto/dead-letters-v1.md §2: custom options (code
 * 2989, binary, copyable) under Private Enterprise Number 32473, the
 * number RFC 5612 reserves for documentation, until tapmesh has its own. */
#define DLQ_PEN 32473u
#define DLQ_SIGNATURE 0x544Du /* "TM", as the wire's frames */
#define DLQ_VERSION 1
#define DLQ_KIND_IDENTITY 1 /* in the IDB */
#define DLQ_KIND_LETTER 2   /* in every EPB */
#define DLQ_LETTER_LEN 33   /* a letter's bytes after the PEN, §3.2 */

/* §3.2: why a batch is here. */
typedef enum {
    DLQ_UNACKED = 1, /* unacknowledged: the collector may have written it */
    DLQ_REFUSED = 2, /* refused: the collector never wrote it */
} dlq_state_t;

/* What the agent said in its HELLO (agent.c s_hello), so that a replay
 * can say it again: the source id, the epoch, and the one interface
 * (link type, the source's own snaplen, name, description), and HELLO's
 * description. Strings are copied. */
typedef struct {
    const char *source;
    uint64_t epoch;
    uint16_t linktype;
    uint32_t snaplen;
    const char *ifname;
    const char *if_description;
    const char *hello_description;
} dlq_identity_t;

typedef struct dlq_t dlq_t;

/* Nothing is created yet. The identity is kept as the wire would carry it
 * (ifname sanitized as HELLO does, snaplen within 1..WIRE_SNAPLEN_MAX,
 * texts cut to WIRE_TEXT_MAX bytes, control bytes replaced by '?').
 * Returns NULL when out of memory. */
dlq_t *dlq_new(const char *dir, const dlq_identity_t *id);
void dlq_destroy(dlq_t **self_p);

/* Writes every packet of `b` (its payload frame b->buf/len; seq,
 * watermark; part 0 of 1) with its identity and `state`, flushed and
 * synced to disk. The first call creates the file under dlq_path(); when
 * that name exists, under another one with new random digits (up to 1000
 * tries); an existing file is never overwritten or appended to. A write
 * that fails leaves the file cut back to its last whole batch where the
 * file system allows.
 * A batch without packets writes nothing. Returns 0 or a negative errno
 * (then dlq_error() says why, naming the file); -EINVAL for a state
 * outside dlq_state_t or a payload frame that does not walk. */
int dlq_write(dlq_t *self, const batch_t *b, dlq_state_t state);

/* The file's path (the first name tried until the file is created), and
 * the last error. */
const char *dlq_path(const dlq_t *self);
const char *dlq_error(const dlq_t *self);

#endif
