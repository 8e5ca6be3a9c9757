/*
 * resume — the state file: a header, then 28-byte records, big-endian,
 * each ending in the CRC-32 of what comes before it in the record. The
 * batches from the lowest one not released to the newest are kept in
 * memory (a sliding array), which is what a compaction writes back.
 */
#include "resume.h"

#include "bytes.h"
#include "crc32.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAGIC 0x544D5253u /* "TMRS" */
#define S_VERSION 1
#define S_RECORD 28
#define S_BOOT_ID 36
#define S_TEXT_MAX 4096
#define S_READ_MAX (256u << 20) /* a longer file is not a state this writes */
#define S_COMPACT_BYTES (1u << 20)

enum { S_BATCH = 1, S_ACKED = 2, S_DEAD = 3, S_MARK = 4, S_DONE = 5 };
enum { S_SENT = 1, S_ACKED_ = 2, S_DEAD_ = 3 }; /* a batch's state */

typedef struct {
    uint64_t first;
    uint32_t count;
    uint8_t state;
} s_entry_t;

struct resume_t {
    char path[4096];
    char tmp[4104];
    int fd;
    char error[4400];
    resume_mode_t mode;
    /* what the header holds */
    uint64_t epoch, dev, ino, size, mtime_ns, batch_bytes;
    char boot_id[S_BOOT_ID + 1];
    char input[S_TEXT_MAX + 1], filter[S_TEXT_MAX + 1];
    /* batches [base_seq, next_seq): e[head + (seq - base_seq)] */
    s_entry_t *e;
    size_t head, cap;
    uint64_t base_seq, base_index, next_seq, next_index;
    uint64_t dead_low, done_packets;
    bool done;
    size_t appended; /* bytes since the last rewrite */
};

/* ---- encoding ------------------------------------------------------------- */

static void s_put(uint8_t **p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        (*p)[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    *p += n;
}

static void s_put_text(uint8_t **p, const char *s)
{
    size_t n = strlen(s);
    s_put(p, n, 2);
    memcpy(*p, s, n);
    *p += n;
}

/* The header into `buf` (at least 64 + 2 * S_TEXT_MAX bytes); its length. */
static size_t s_header(const resume_t *self, uint8_t *buf)
{
    uint8_t *p = buf;
    s_put(&p, S_MAGIC, 4);
    s_put(&p, S_VERSION, 2);
    uint8_t *len_at = p;
    s_put(&p, 0, 2);
    s_put(&p, self->epoch, 8);
    s_put(&p, self->dev, 8);
    s_put(&p, self->ino, 8);
    s_put(&p, self->size, 8);
    s_put(&p, self->mtime_ns, 8);
    s_put(&p, self->batch_bytes, 8);
    memcpy(p, self->boot_id, S_BOOT_ID);
    p += S_BOOT_ID;
    s_put_text(&p, self->input);
    s_put_text(&p, self->filter);
    size_t len = (size_t)(p - buf) + 4;
    s_put(&len_at, len, 2);
    s_put(&p, crc32_ieee(buf, len - 4), 4);
    return len;
}

static void s_record(uint8_t *r, unsigned type, uint64_t seq, uint64_t x, uint32_t y)
{
    uint8_t *p = r;
    s_put(&p, type, 1);
    s_put(&p, 0, 3);
    s_put(&p, seq, 8);
    s_put(&p, x, 8);
    s_put(&p, y, 4);
    s_put(&p, crc32_ieee(r, S_RECORD - 4), 4);
}

/* ---- the batches in memory ----------------------------------------------- */

static s_entry_t *s_at(const resume_t *self, uint64_t seq)
{
    if (seq < self->base_seq || seq >= self->next_seq)
        return NULL;
    return &self->e[self->head + (seq - self->base_seq)];
}

/* Makes room for batch next_seq. */
static int s_grow(resume_t *self)
{
    size_t used = (size_t)(self->next_seq - self->base_seq);
    if (self->head + used < self->cap)
        return 0;
    if (self->head > 0) { /* slide down first */
        memmove(self->e, self->e + self->head, used * sizeof *self->e);
        self->head = 0;
        if (used < self->cap)
            return 0;
    }
    size_t cap = self->cap ? self->cap * 2 : 256;
    s_entry_t *e = realloc(self->e, cap * sizeof *e);
    if (!e)
        return -ENOMEM;
    self->e = e;
    self->cap = cap;
    return 0;
}

/* Forgets the released batches at the bottom: what a restart skips. */
static void s_slide(resume_t *self)
{
    while (self->base_seq < self->next_seq && self->e[self->head].state != S_SENT) {
        self->base_index = self->e[self->head].first + self->e[self->head].count;
        self->base_seq++;
        self->head++;
    }
    if (self->base_seq == self->next_seq)
        self->head = 0;
}

/* Applies one record; false when it contradicts what came before. */
static bool s_apply(resume_t *self, unsigned type, uint64_t seq, uint64_t x, uint32_t y)
{
    s_entry_t *e;
    switch (type) {
    case S_MARK:
        if (seq < self->next_seq || x < self->next_index)
            return false;
        self->base_seq = self->next_seq = seq;
        self->base_index = self->next_index = x;
        self->head = 0;
        return true;
    case S_BATCH:
        if (seq != self->next_seq || x != self->next_index || y == 0 || s_grow(self) < 0)
            return false;
        self->next_seq++;
        self->next_index = x + y;
        e = s_at(self, seq);
        *e = (s_entry_t){.first = x, .count = y, .state = S_SENT};
        return true;
    case S_ACKED:
    case S_DEAD:
        if (type == S_DEAD && seq < self->dead_low)
            self->dead_low = seq;
        if ((e = s_at(self, seq)))
            e->state = type == S_DEAD ? S_DEAD_ : S_ACKED_;
        else if (seq >= self->next_seq)
            return false; /* released before it was recorded */
        s_slide(self);
        return true;
    case S_DONE:
        self->done = true;
        self->done_packets = x;
        return true;
    default:
        return false;
    }
}

/* ---- the file ----------------------------------------------------------- */

static int s_fail(resume_t *self, int rc, const char *what)
{
    snprintf(self->error, sizeof self->error, "STATE_DIR: %s: %s: %s", self->path, what,
             strerror(-rc));
    return rc;
}

static int s_write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int s_append(resume_t *self, unsigned type, uint64_t seq, uint64_t x, uint32_t y);

/* Writes the whole state anew (header, MARK, the batches kept, DONE) and
 * puts it in place of the old file. */
static int s_rewrite(resume_t *self)
{
    size_t kept = (size_t)(self->next_seq - self->base_seq);
    size_t cap = 64 + 2 * (S_TEXT_MAX + 2) + S_RECORD * (3 + 2 * kept);
    uint8_t *buf = malloc(cap);
    if (!buf)
        return s_fail(self, -ENOMEM, "cannot write");
    size_t len = s_header(self, buf);
    s_record(buf + len, S_MARK, self->base_seq, self->base_index, 0);
    len += S_RECORD;
    if (self->dead_low < self->base_seq) {
        s_record(buf + len, S_DEAD, self->dead_low, 0, 0);
        len += S_RECORD;
    }
    for (uint64_t seq = self->base_seq; seq < self->next_seq; seq++) {
        const s_entry_t *e = s_at(self, seq);
        s_record(buf + len, S_BATCH, seq, e->first, e->count);
        len += S_RECORD;
        if (e->state != S_SENT) {
            s_record(buf + len, e->state == S_DEAD_ ? S_DEAD : S_ACKED, seq, 0, 0);
            len += S_RECORD;
        }
    }
    if (self->done) {
        s_record(buf + len, S_DONE, 0, self->done_packets, 0);
        len += S_RECORD;
    }
    /* a fresh file, so that it has this mode whatever an earlier one had:
     * the state names the input and the epoch, for the agent's user alone */
    int fd = unlink(self->tmp) < 0 && errno != ENOENT
                 ? -1
                 : open(self->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : s_write_all(fd, buf, len);
    free(buf);
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(self->tmp, self->path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(self->tmp);
        return s_fail(self, rc, "cannot write");
    }
    if (self->fd >= 0)
        close(self->fd);
    self->fd = open(self->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (self->fd < 0)
        return s_fail(self, -errno, "cannot open");
    self->appended = 0;
    return 0;
}

static int s_append(resume_t *self, unsigned type, uint64_t seq, uint64_t x, uint32_t y)
{
    if (self->fd < 0)
        return s_fail(self, -EBADF, "not open");
    uint8_t r[S_RECORD];
    s_record(r, type, seq, x, y);
    int rc = s_write_all(self->fd, r, sizeof r);
    if (rc < 0)
        return s_fail(self, rc, "cannot write");
    self->appended += sizeof r;
    if (self->appended >= S_COMPACT_BYTES)
        return s_rewrite(self);
    return 0;
}

/* Reads this host's boot id; "" when there is none to read. */
static void s_boot_id(char out[S_BOOT_ID + 1])
{
    memset(out, 0, S_BOOT_ID + 1);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return;
    if (!fgets(out, S_BOOT_ID + 1, f))
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

/* Parses a state file; RESUME_FRESH with `why` when it cannot be continued. */
static resume_mode_t s_parse(resume_t *self, const uint8_t *buf, size_t len, char *why,
                             size_t whylen)
{
    bytes_t b = bytes_view(buf, len);
    uint32_t magic = bytes_u32(&b);
    uint16_t version = bytes_u16(&b);
    uint16_t hlen = bytes_u16(&b);
    if (b.bad || magic != S_MAGIC || version != S_VERSION || hlen < 8 || hlen > len ||
        crc32_ieee(buf, hlen - 4u) !=
            ((uint32_t)buf[hlen - 4] << 24 | (uint32_t)buf[hlen - 3] << 16 |
             (uint32_t)buf[hlen - 2] << 8 | buf[hlen - 1])) {
        snprintf(why, whylen, "the state in %s is damaged", self->path);
        return RESUME_FRESH;
    }
    uint64_t epoch = bytes_u64(&b), dev = bytes_u64(&b), ino = bytes_u64(&b), size = bytes_u64(&b),
             mtime = bytes_u64(&b), batch_bytes = bytes_u64(&b);
    char boot[S_BOOT_ID + 1] = "", input[S_TEXT_MAX + 1] = "", filter[S_TEXT_MAX + 1] = "";
    bytes_copy(&b, boot, S_BOOT_ID);
    size_t n = bytes_u16(&b);
    if (n > S_TEXT_MAX)
        b.bad = true;
    bytes_copy(&b, input, b.bad ? 0 : n);
    n = bytes_u16(&b);
    if (n > S_TEXT_MAX)
        b.bad = true;
    bytes_copy(&b, filter, b.bad ? 0 : n);
    if (b.bad || epoch == 0) {
        snprintf(why, whylen, "the state in %s is damaged", self->path);
        return RESUME_FRESH;
    }
    if (dev != self->dev || ino != self->ino || size != self->size || mtime != self->mtime_ns) {
        snprintf(why, whylen,
                 "%s holds the state of another file (%s), or it changed since: starting afresh",
                 self->path, input);
        return RESUME_FRESH;
    }
    if (batch_bytes != self->batch_bytes || strcmp(filter, self->filter) != 0) {
        snprintf(why, whylen,
                 "FILTER or BATCH_MAX_BYTES differ from the run recorded in %s: starting afresh "
                 "(batches would not be the same)",
                 self->path);
        return RESUME_FRESH;
    }
    if (!*self->boot_id || strcmp(boot, self->boot_id) != 0) {
        snprintf(why, whylen,
                 "%s was written before this host last started (it may have lost its last "
                 "records): starting afresh",
                 self->path);
        return RESUME_FRESH;
    }
    self->epoch = epoch;
    size_t off = hlen;
    for (; off + S_RECORD <= len; off += S_RECORD) {
        const uint8_t *r = buf + off;
        uint32_t crc = (uint32_t)r[24] << 24 | (uint32_t)r[25] << 16 | (uint32_t)r[26] << 8 | r[27];
        if (crc32_ieee(r, S_RECORD - 4) != crc)
            break; /* a record cut short by the crash, or damage: the end */
        bytes_t rb = bytes_view(r, S_RECORD - 4);
        unsigned type = bytes_u8(&rb);
        bytes_skip(&rb, 3);
        uint64_t seq = bytes_u64(&rb), x = bytes_u64(&rb);
        uint32_t y = bytes_u32(&rb);
        if (!s_apply(self, type, seq, x, y)) {
            snprintf(why, whylen, "the state in %s is inconsistent at byte %zu: starting afresh",
                     self->path, off);
            return RESUME_FRESH;
        }
    }
    return self->done ? RESUME_DONE : RESUME_CONTINUE;
}

static void s_reset(resume_t *self)
{
    self->head = 0;
    self->base_seq = self->base_index = self->next_seq = self->next_index = 0;
    self->dead_low = UINT64_MAX;
    self->done = false;
    self->done_packets = 0;
}

resume_t *resume_open(const char *dir, const char *node, const resume_key_t *key, char *why,
                      size_t whylen, char *err, size_t errlen)
{
    resume_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "STATE_DIR: out of memory");
        return NULL;
    }
    self->fd = -1;
    s_reset(self);
    why[0] = '\0';
    snprintf(self->path, sizeof self->path, "%s/%s.resume", dir, node);
    snprintf(self->tmp, sizeof self->tmp, "%s.tmp", self->path);
    snprintf(self->input, sizeof self->input, "%s", key->path);
    snprintf(self->filter, sizeof self->filter, "%s", key->filter ? key->filter : "");
    self->batch_bytes = key->batch_bytes;
    s_boot_id(self->boot_id);
    struct stat st;
    if (key->input)
        st = *key->input;
    else if (stat(key->path, &st) < 0) {
        snprintf(err, errlen, "READ_FILE=%s: %s", key->path, strerror(errno));
        goto err;
    }
    self->dev = (uint64_t)st.st_dev;
    self->ino = (uint64_t)st.st_ino;
    self->size = (uint64_t)st.st_size;
    self->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;

    int fd = open(self->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        snprintf(err, errlen, "STATE_DIR: %s: cannot open: %s", self->path, strerror(errno));
        goto err;
    }
    self->mode = RESUME_FRESH;
    if (fd >= 0) {
        struct stat fs;
        uint8_t *buf = NULL;
        ssize_t got = -1;
        if (fstat(fd, &fs) == 0 && (uint64_t)fs.st_size <= S_READ_MAX &&
            (buf = malloc((size_t)fs.st_size + 1)))
            got = pread(fd, buf, (size_t)fs.st_size, 0);
        close(fd);
        if (got < 0) {
            free(buf);
            snprintf(err, errlen, "STATE_DIR: %s: cannot read: %s", self->path,
                     buf ? strerror(errno) : "too large");
            goto err;
        }
        if (got > 0)
            self->mode = s_parse(self, buf, (size_t)got, why, whylen);
        free(buf);
        if (self->mode == RESUME_FRESH)
            s_reset(self);
    }
    /* continuing: the file is rewritten whole, without a torn last record */
    if (self->mode != RESUME_FRESH && s_rewrite(self) < 0) {
        snprintf(err, errlen, "%s", self->error);
        goto err;
    }
    return self;
err:
    resume_close(&self);
    return NULL;
}

void resume_close(resume_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    resume_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    free(self->e);
    free(self);
    *self_p = NULL;
}

resume_mode_t resume_mode(const resume_t *self)
{
    return self->mode;
}

int resume_start(resume_t *self, uint64_t epoch)
{
    s_reset(self);
    self->epoch = epoch;
    self->mode = RESUME_CONTINUE; /* from now on, what is recorded is this run's */
    return s_rewrite(self);
}

uint64_t resume_epoch(const resume_t *self)
{
    return self->epoch;
}

uint64_t resume_first_seq(const resume_t *self)
{
    return self->base_seq; /* the bottom batch is never released: s_slide */
}

uint64_t resume_first_packet(const resume_t *self)
{
    return self->base_index;
}

uint64_t resume_next_seq(const resume_t *self)
{
    return self->next_seq;
}

uint64_t resume_dead_low(const resume_t *self)
{
    return self->dead_low;
}

uint64_t resume_done_packets(const resume_t *self)
{
    return self->done_packets;
}

bool resume_batch_of(const resume_t *self, uint64_t seq, uint32_t *count, bool *released)
{
    const s_entry_t *e = s_at(self, seq);
    if (!e)
        return false;
    *count = e->count;
    *released = e->state != S_SENT;
    return true;
}

int resume_batch(resume_t *self, uint64_t seq, uint64_t first_packet, uint32_t count)
{
    if (seq < self->next_seq)
        return 0; /* recorded before the restart: built again, the same */
    if (seq != self->next_seq || first_packet != self->next_index || count == 0)
        return s_fail(self, -EINVAL, "batches out of order");
    if (!s_apply(self, S_BATCH, seq, first_packet, count))
        return s_fail(self, -ENOMEM, "cannot record");
    return s_append(self, S_BATCH, seq, first_packet, count);
}

int resume_released(resume_t *self, uint64_t seq, bool acked)
{
    s_apply(self, acked ? S_ACKED : S_DEAD, seq, 0, 0);
    return s_append(self, acked ? S_ACKED : S_DEAD, seq, 0, 0);
}

int resume_done(resume_t *self, uint64_t packets)
{
    s_apply(self, S_DONE, 0, packets, 0);
    self->mode = RESUME_DONE;
    return s_append(self, S_DONE, 0, packets, 0);
}

const char *resume_path(const resume_t *self)
{
    return self->path;
}

const char *resume_error(const resume_t *self)
{
    return self->error;
}
