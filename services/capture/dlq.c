/*
 * dlq — the dead-letter pcapng writer of the capture agent, on top of the
 * shared pcapng writer; the format is proto/dead-letters-v1.md (§ below).
 *
 * A batch is written whole, then flushed and synced, so that a crash can
 * cut only the last batch; dlq-read.c counts such a batch as skipped.
 */
#include "dlq.h"

#include "pcapng.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Names tried, each with new random digits, before giving up (§1). */
#define S_NAME_TRIES 1000
/* §3.1: the identity record at its largest. */
#define S_IDENTITY_MAX                                                                             \
    (4 + 1 + WIRE_NAME_MAX + 8 + 2 + 4 + 1 + WIRE_NAME_MAX + 2 * (2 + WIRE_TEXT_MAX))

struct dlq_t {
    char path[4096 + WIRE_NAME_MAX + 64];
    char dir[4096];
    char source[WIRE_NAME_MAX + 1];
    uint64_t epoch;
    char started[32]; /* the UTC time of dlq_new, in the file name */
    uint16_t linktype;
    char idb_name[WIRE_NAME_MAX * 2 + 2];
    char idb_description[WIRE_TEXT_MAX + WIRE_NAME_MAX + 32];
    uint8_t identity[S_IDENTITY_MAX]; /* §3.1, encoded once */
    size_t identity_len;
    int fd;
    off_t good; /* the file's length after its last whole batch */
    pcapng_writer_t *writer;
    char error[4096 + WIRE_NAME_MAX + 300];
};

/* Big-endian, §2. */
static uint8_t *s_put(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return p + n;
}

static uint8_t *s_put_bytes(uint8_t *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* A wire text (proto/wire-v2.md §2): at most WIRE_TEXT_MAX bytes, a byte
 * HELLO could not carry replaced by '?'. */
static void s_text(char *out, const char *in)
{
    size_t n = in ? strnlen(in, WIRE_TEXT_MAX) : 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)in[i];
        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[n] = '\0';
}

/* §3.1: signature, version, kind, then the identity. */
static size_t s_identity(uint8_t *buf, const char *source, uint64_t epoch, uint16_t linktype,
                         uint32_t snaplen, const char *ifname, const char *if_description,
                         const char *hello_description)
{
    uint8_t *p = buf;
    size_t sl = strlen(source), il = strlen(ifname), dl = strlen(if_description),
           hl = strlen(hello_description);
    p = s_put(p, DLQ_SIGNATURE, 2);
    p = s_put(p, DLQ_VERSION, 1);
    p = s_put(p, DLQ_KIND_IDENTITY, 1);
    p = s_put(p, sl, 1);
    p = s_put_bytes(p, source, sl);
    p = s_put(p, epoch, 8);
    p = s_put(p, linktype, 2);
    p = s_put(p, snaplen, 4);
    p = s_put(p, il, 1);
    p = s_put_bytes(p, ifname, il);
    p = s_put(p, dl, 2);
    p = s_put_bytes(p, if_description, dl);
    p = s_put(p, hl, 2);
    p = s_put_bytes(p, hello_description, hl);
    return (size_t)(p - buf);
}

/* Eight hex digits nobody can predict, from getrandom(2). Should it fail
 * (it does not once the agent has drawn its epoch) the digits only need to
 * differ from one try to the next: the name must be free, not secret, and
 * O_EXCL sees to that. */
static uint32_t s_random32(void)
{
    static uint32_t tries;
    uint32_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
        return r;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)ts.tv_nsec ^ ++tries * 2654435761u;
}

/* §1: DLQ_DIR/<node>-<UTC start time>-<8 random hex digits>.pcapng. The
 * epoch stays inside the file: a name is seen by anyone who can list the
 * directory, and an epoch lets whoever knows it speak for the source. */
static void s_name(dlq_t *self)
{
    snprintf(self->path, sizeof self->path, "%s/%s-%s-%08" PRIx32 ".pcapng", self->dir,
             self->source, self->started, s_random32());
}

dlq_t *dlq_new(const char *dir, const dlq_identity_t *id)
{
    dlq_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = -1;
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    snprintf(self->source, sizeof self->source, "%s", id->source);
    self->epoch = id->epoch;
    self->linktype = id->linktype;
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) ||
        !strftime(self->started, sizeof self->started, "%Y%m%dT%H%M%SZ", &tm))
        snprintf(self->started, sizeof self->started, "%lld", (long long)now);
    s_name(self);
    /* what HELLO carries (agent.c s_hello), so that a replay says it again */
    char ifname[WIRE_NAME_MAX + 1], if_description[WIRE_TEXT_MAX + 1],
        hello_description[WIRE_TEXT_MAX + 1];
    wire_ifname_sanitize(id->ifname ? id->ifname : "", ifname);
    s_text(if_description, id->if_description);
    s_text(hello_description, id->hello_description);
    uint32_t snaplen = id->snaplen;
    if (snaplen == 0 || snaplen > WIRE_SNAPLEN_MAX)
        snaplen = WIRE_SNAPLEN_MAX; /* 0: no limit */
    self->identity_len = s_identity(self->identity, self->source, self->epoch, self->linktype,
                                    snaplen, ifname, if_description, hello_description);
    /* for people: Wireshark's interface list, capinfos */
    snprintf(self->idb_name, sizeof self->idb_name, "%s/%s", self->source, ifname);
    snprintf(self->idb_description, sizeof self->idb_description, "dead letters of %s: %s",
             self->source, if_description);
    return self;
}

void dlq_destroy(dlq_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dlq_t *self = *self_p;
    pcapng_writer_destroy(&self->writer);
    if (self->fd >= 0)
        close(self->fd);
    free(self);
    *self_p = NULL;
}

static int s_fail(dlq_t *self, int rc, const char *what)
{
    snprintf(self->error, sizeof self->error, "DLQ_DIR: %s: %s: %s", self->path, what,
             strerror(-rc));
    return rc;
}

/* The directory entry of a new file survives a crash only once the
 * directory itself is synced. */
static void s_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)fsync(fd);
    close(fd);
}

/* Creates a free name; never opens an existing file. Dead letters hold
 * captured packets: 0600 (less when the umask says so). */
static int s_create(dlq_t *self)
{
    for (unsigned n = 0; n < S_NAME_TRIES; n++) {
        if (n)
            s_name(self);
        self->fd = open(self->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (self->fd >= 0) {
            s_sync_dir(self->dir);
            return 0;
        }
        if (errno != EEXIST)
            return s_fail(self, -errno, "cannot create");
    }
    return s_fail(self, -EEXIST, "cannot create (every name tried exists)");
}

/* The file, its section header and its one interface, on disk before the
 * first batch: a file cut short still says whose dead letters it holds. */
static int s_open(dlq_t *self)
{
    int rc = s_create(self);
    if (rc < 0)
        return rc;
    self->writer = pcapng_writer_new(PCAPNG_FORMAT_PCAPNG, WIRE_SNAPLEN_MAX,
                                     "tapmesh-capture " TAPMESH_VERSION " dead letters", 0,
                                     pcapng_sink_fd, &self->fd);
    if (!self->writer)
        return s_fail(self, -ENOMEM, "cannot write");
    pcapng_custom_t identity = {.code = PCAPNG_OPT_CUSTOM_BINARY,
                                .pen = DLQ_PEN,
                                .data = self->identity,
                                .len = self->identity_len};
    rc = pcapng_writer_add_interface_custom(self->writer, self->linktype, self->idb_name,
                                            self->idb_description, &identity);
    if (rc >= 0)
        rc = pcapng_writer_flush(self->writer);
    if (rc < 0)
        return s_fail(self, rc, "cannot write");
    if (fsync(self->fd) < 0 && errno != EINVAL)
        return s_fail(self, -errno, "cannot sync");
    self->good = (off_t)pcapng_writer_file_bytes(self->writer);
    return 0;
}

static const char *s_state_text(dlq_state_t state)
{
    return state == DLQ_REFUSED ? "refused: never written"
                                : "unacknowledged: may have been written";
}

/* A failed write may have left part of a batch: cut it off, so that the
 * file ends with its last whole batch (best effort: the error stands). */
static int s_write_failed(dlq_t *self, int rc, const char *what)
{
    if (self->fd >= 0 && ftruncate(self->fd, self->good) == 0)
        (void)fsync(self->fd);
    return s_fail(self, rc, what);
}

/* §3.2: signature, version, kind, then the packet's place in its batch. */
static void s_letter(uint8_t *buf, const batch_t *b, dlq_state_t state, uint32_t index,
                     uint32_t count)
{
    uint8_t *p = buf;
    p = s_put(p, DLQ_SIGNATURE, 2);
    p = s_put(p, DLQ_VERSION, 1);
    p = s_put(p, DLQ_KIND_LETTER, 1);
    p = s_put(p, b->seq, 8);
    p = s_put(p, 0, 2); /* part: an agent's batches are whole (part 0 of 1) */
    p = s_put(p, 1, 2); /* parts */
    p = s_put(p, (uint64_t)state, 1);
    p = s_put(p, b->watermark, 8);
    p = s_put(p, index, 4);
    s_put(p, count, 4);
}

int dlq_write(dlq_t *self, const batch_t *b, dlq_state_t state)
{
    if (state != DLQ_UNACKED && state != DLQ_REFUSED)
        return s_fail(self, -EINVAL, "unknown dead-letter state");
    /* the records are the truth about the count (§3.2 index/count) */
    uint32_t count = 0;
    size_t off = 0;
    wire_packet_t p;
    while (wire_packets_next(b->buf, b->len, &off, &p))
        count++;
    if (off != b->len || b->len < WIRE_FRAME_HDR)
        return s_fail(self, -EINVAL, "a batch that is not a payload frame");
    if (count > WIRE_PACKETS_MAX || b->len > WIRE_PAYLOAD_MAX)
        return s_fail(self, -EINVAL, "a batch larger than the wire allows");
    if (count == 0)
        return 0;
    if (!self->writer) {
        /* a writer that could not be made once is not retried on the same file */
        int rc = self->fd < 0 ? s_open(self) : s_fail(self, -ENOMEM, "cannot write");
        if (rc < 0)
            return rc;
    }
    char comment[256];
    snprintf(comment, sizeof comment,
             "tapmesh dead letter: source %s epoch %" PRIu64 " batch %" PRIu64 " (%" PRIu32
             " packets), %s",
             self->source, self->epoch, b->seq, count, s_state_text(state));
    uint8_t letter[DLQ_LETTER_LEN];
    pcapng_custom_t custom = {
        .code = PCAPNG_OPT_CUSTOM_BINARY, .pen = DLQ_PEN, .data = letter, .len = sizeof letter};
    off = 0;
    for (uint32_t i = 0; wire_packets_next(b->buf, b->len, &off, &p); i++) {
        s_letter(letter, b, state, i, count);
        int rc = pcapng_writer_packet_custom(self->writer, 0, p.ts_ns, p.caplen, p.origlen, p.data,
                                             i == 0 ? comment : NULL, &custom);
        if (rc < 0)
            return s_write_failed(self, rc, "cannot write");
    }
    int rc = pcapng_writer_flush(self->writer);
    if (rc < 0)
        return s_write_failed(self, rc, "cannot write");
    if (fsync(self->fd) < 0 && errno != EINVAL)
        return s_write_failed(self, -errno, "cannot sync");
    self->good = (off_t)pcapng_writer_file_bytes(self->writer);
    return 0;
}

const char *dlq_path(const dlq_t *self)
{
    return self->path;
}

const char *dlq_error(const dlq_t *self)
{
    return self->error;
}
