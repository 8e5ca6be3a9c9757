/*
 * journal — append-only records with a CRC each; replay on open; compact
 * rewrite through journal.tmp and rename(2).
 */
#include "journal.h"

#include "bytes.h"
#include "crc32.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_FILE 1
#define S_INTENT 2
#define S_STATE 3
#define S_END 4
#define S_UNDO 5
#define S_COMPACT_BYTES (16u << 20)
#define S_RECORD_MAX (64u << 20)
#define S_RANGES_MAX 65536
/* The journal names the output's files and which sources' batches they
 * hold: for the collector's user alone (the umask may take more away). */
#define S_DIR_MODE 0750
#define S_FILE_MODE 0600

struct journal_t {
    char dir[4096];
    char path[4200];
    int fd;
    uint64_t size;
    uint64_t compacted; /* its size right after the last compaction */
    journal_state_t **restored;
    size_t nrestored, cap;
    uint8_t *buf; /* record being built */
    size_t len, bufcap;
    bool bad;      /* building failed (out of memory) */
    bool torn;     /* a record cut short could not be taken off: append nothing more */
    bool detached; /* journal_parse: no directory, no file, nothing written */
    char **files;  /* output files named, oldest first (journal_files) */
    size_t nfiles, files_cap;
    bool files_off; /* journal_keep_files(false): none named but the current */
    char error[4400];
};

/* ---- record building ------------------------------------------------ */

static void s_need(journal_t *self, size_t n)
{
    if (self->bad || self->len + n <= self->bufcap)
        return;
    size_t cap = self->bufcap ? self->bufcap : 4096;
    while (cap < self->len + n)
        cap *= 2;
    uint8_t *b = realloc(self->buf, cap);
    if (!b) {
        self->bad = true;
        return;
    }
    self->buf = b;
    self->bufcap = cap;
}

static void s_put(journal_t *self, uint64_t v, size_t n)
{
    s_need(self, n);
    if (self->bad)
        return;
    for (size_t i = 0; i < n; i++)
        self->buf[self->len++] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void s_put_bytes(journal_t *self, const void *p, size_t n)
{
    s_need(self, n);
    if (self->bad)
        return;
    memcpy(self->buf + self->len, p, n);
    self->len += n;
}

static void s_put_name(journal_t *self, const char *name)
{
    size_t n = strnlen(name, WIRE_NAME_MAX);
    s_put(self, n, 1);
    s_put_bytes(self, name, n);
}

static void s_begin(journal_t *self, uint8_t type)
{
    self->len = 0;
    self->bad = false;
    s_put(self, 0, 8); /* length and CRC, filled in by s_end */
    s_put(self, type, 1);
}

/* Completes the record and appends it to `fd`. A write that fails
 * part-way (STATE_DIR full) leaves part of a record: it is cut off again,
 * so that a later record cannot follow it (the replay stops at a damaged
 * record, and would miss everything after it). */
static int s_end(journal_t *self, int fd)
{
    if (self->bad) {
        snprintf(self->error, sizeof self->error, "STATE_DIR: %s: out of memory", self->path);
        return -ENOMEM;
    }
    if (fd == self->fd && self->torn) {
        snprintf(self->error, sizeof self->error,
                 "STATE_DIR: %s: ends with a record cut short by an earlier error", self->path);
        return -EIO;
    }
    uint32_t body = (uint32_t)(self->len - 8);
    uint32_t crc = crc32_ieee(self->buf + 8, body);
    for (int i = 0; i < 4; i++) {
        self->buf[i] = (uint8_t)(body >> (24 - 8 * i));
        self->buf[4 + i] = (uint8_t)(crc >> (24 - 8 * i));
    }
    const uint8_t *p = self->buf;
    size_t left = self->len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            snprintf(self->error, sizeof self->error, "STATE_DIR: %s: %s", self->path, strerror(e));
            if (fd == self->fd && left < self->len && ftruncate(fd, (off_t)self->size) < 0)
                self->torn = true;
            return -e;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fd == self->fd)
        self->size += self->len;
    return 0;
}

static void s_file_record(journal_t *self, const char *path)
{
    size_t n = strnlen(path, 4095);
    s_begin(self, S_FILE);
    s_put(self, n, 2);
    s_put_bytes(self, path, n);
}

static void s_state_record(journal_t *self, const journal_state_t *st)
{
    s_begin(self, S_STATE);
    s_put_name(self, st->source);
    s_put(self, st->epoch, 8);
    s_put(self, st->ended, 1);
    s_put(self, st->complete.n, 4);
    for (size_t i = 0; i < st->complete.n; i++) {
        s_put(self, st->complete.r[i].lo, 8);
        s_put(self, st->complete.r[i].hi, 8);
    }
    s_put(self, st->npartials, 4);
    for (size_t i = 0; i < st->npartials; i++) {
        s_put(self, st->partials[i].seq, 8);
        s_put(self, st->partials[i].part, 2);
        s_put(self, st->partials[i].written, 4);
    }
}

/* ---- output files ---------------------------------------------------- */

static void s_files_drop(journal_t *self, size_t i)
{
    free(self->files[i]);
    memmove(&self->files[i], &self->files[i + 1], (self->nfiles - i - 1) * sizeof *self->files);
    self->nfiles--;
}

/* Takes `path` out of the list. */
static void s_files_remove(journal_t *self, const char *path)
{
    for (size_t i = 0; i < self->nfiles; i++)
        if (strcmp(self->files[i], path) == 0) {
            s_files_drop(self, i);
            return;
        }
}

/* Appends `path` (standard output aside) as the newest file; a path named
 * before moves to the end. Out of memory, the list merely misses it. */
static void s_files_add(journal_t *self, const char *path)
{
    if (self->files_off || !path[0] || strcmp(path, "-") == 0)
        return;
    s_files_remove(self, path);
    if (self->nfiles == self->files_cap) {
        size_t cap = self->files_cap ? self->files_cap * 2 : 16;
        char **f = realloc(self->files, cap * sizeof *f);
        if (!f)
            return;
        self->files = f;
        self->files_cap = cap;
    }
    char *copy = strdup(path);
    if (copy)
        self->files[self->nfiles++] = copy;
}

/* ---- restored states ------------------------------------------------ */

void journal_state_free(journal_state_t **state_p)
{
    if (!state_p || !*state_p)
        return;
    seqset_free(&(*state_p)->complete);
    free((*state_p)->partials);
    free(*state_p);
    *state_p = NULL;
}

static journal_state_t *s_state(journal_t *self, const char *source, uint64_t epoch)
{
    for (size_t i = 0; i < self->nrestored; i++)
        if (self->restored[i]->epoch == epoch && strcmp(self->restored[i]->source, source) == 0)
            return self->restored[i];
    if (self->nrestored == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        journal_state_t **r = realloc(self->restored, cap * sizeof *r);
        if (!r)
            return NULL;
        self->restored = r;
        self->cap = cap;
    }
    journal_state_t *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    snprintf(st->source, sizeof st->source, "%s", source);
    st->epoch = epoch;
    seqset_init(&st->complete, S_RANGES_MAX);
    self->restored[self->nrestored++] = st;
    return st;
}

static journal_partial_t *s_partial(journal_state_t *st, uint64_t seq, uint16_t part, bool add)
{
    for (size_t i = 0; i < st->npartials; i++)
        if (st->partials[i].seq == seq && st->partials[i].part == part)
            return &st->partials[i];
    if (!add)
        return NULL;
    journal_partial_t *p = realloc(st->partials, (st->npartials + 1) * sizeof *p);
    if (!p)
        return NULL;
    st->partials = p;
    p = &st->partials[st->npartials++];
    *p = (journal_partial_t){.seq = seq, .part = part};
    return p;
}

static void s_apply(journal_t *self, const char *source, uint64_t epoch, uint64_t seq,
                    uint16_t part, uint32_t written, bool complete)
{
    journal_state_t *st = s_state(self, source, epoch);
    if (!st)
        return;
    journal_partial_t *p = s_partial(st, seq, part, !complete);
    if (complete) {
        seqset_add(&st->complete, seq, NULL);
        if (p)
            *p = st->partials[--st->npartials];
    } else if (p && written > p->written) {
        p->written = written;
    }
}

/* ---- replay --------------------------------------------------------- */

static void s_get_name(bytes_t *r, char *out)
{
    size_t n = (size_t)bytes_be(r, 1);
    if (r->bad || n > WIRE_NAME_MAX || (size_t)(r->end - r->pos) < n) {
        r->bad = true;
        out[0] = '\0';
        return;
    }
    memcpy(out, r->pos, n);
    out[n] = '\0';
    r->pos += n;
}

typedef struct {
    char file[4096];
    bool pending; /* an intent not yet known to be applied */
    uint64_t offset, length;
    const uint8_t *entries; /* its body, from the entry count on */
    const uint8_t *end;
} s_replay_t;

/* Applies the entries of an intent body (count, then entries). */
static void s_apply_intent(journal_t *self, const uint8_t *p, const uint8_t *end)
{
    bytes_t r = bytes_view(p, (size_t)(end - p));
    uint32_t n = (uint32_t)bytes_be(&r, 4);
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        char source[WIRE_NAME_MAX + 1];
        s_get_name(&r, source);
        uint64_t epoch = bytes_be(&r, 8), seq = bytes_be(&r, 8);
        uint16_t part = (uint16_t)bytes_be(&r, 2);
        uint32_t written = (uint32_t)bytes_be(&r, 4);
        bool complete = bytes_be(&r, 1) != 0;
        if (!r.bad)
            s_apply(self, source, epoch, seq, part, written, complete);
    }
}

/* Cuts the pending intent's file back to where the intent began: what is
 * after it was never acknowledged, and may end in a torn block. `why`
 * says how it came to be there. */
/* True when the first bytes of `fd` are a pcapng or pcap file's. */
static bool s_is_capture(int fd)
{
    static const uint8_t magic[5][4] = {{0x0a, 0x0d, 0x0d, 0x0a}, /* pcapng SHB */
                                        {0xa1, 0xb2, 0xc3, 0xd4},
                                        {0xd4, 0xc3, 0xb2, 0xa1},
                                        {0xa1, 0xb2, 0x3c, 0x4d},
                                        {0x4d, 0x3c, 0xb2, 0xa1}};
    uint8_t b[4];
    if (pread(fd, b, sizeof b, 0) != (ssize_t)sizeof b)
        return false;
    for (int k = 0; k < 5; k++)
        if (memcmp(b, magic[k], 4) == 0)
            return true;
    return false;
}

/* Cuts the journal's file back to the intent's offset. Only a regular
 * file (not through a symbolic link) that is a capture: a journal that
 * someone else wrote must not make the collector cut any file it names. */
static void s_cut_back(const s_replay_t *rp, const char *why)
{
    if (strcmp(rp->file, "-") == 0 || !rp->file[0])
        return;
    int fd = open(rp->file, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !s_is_capture(fd)) {
        if (S_ISREG(st.st_mode) && st.st_size > 0)
            log_warn("STATE_DIR: %s is not a capture file: not cut back", rp->file);
        close(fd);
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size > rp->offset && ftruncate(fd, (off_t)rp->offset) == 0)
        log_warn("STATE_DIR: %s was cut short by %s: truncated to %" PRIu64
                 " bytes, its last %" PRIu64 " bytes were never acknowledged",
                 rp->file, why, rp->offset, size - rp->offset);
    close(fd);
}

/* Whether the last intent reached its file; cuts a torn tail off. */
static bool s_intent_written(const s_replay_t *rp)
{
    if (strcmp(rp->file, "-") == 0 || !rp->file[0])
        return true; /* a pipe cannot be checked: counted as written (no duplicate) */
    struct stat st;
    if (stat(rp->file, &st) < 0)
        return false;
    uint64_t size = (uint64_t)st.st_size;
    if (size >= rp->offset + rp->length)
        return true;
    s_cut_back(rp, "a crash");
    return false;
}

/* One record: false when it is damaged (the replay stops there). */
static bool s_replay_record(journal_t *self, s_replay_t *rp, uint8_t type, const uint8_t *body,
                            const uint8_t *end)
{
    bytes_t r = bytes_view(body, (size_t)(end - body));
    switch (type) {
    case S_FILE: {
        size_t n = (size_t)bytes_be(&r, 2);
        if (r.bad || n >= sizeof rp->file || (size_t)(end - r.pos) != n)
            return false;
        if (rp->pending)
            s_apply_intent(self, rp->entries, rp->end); /* followed by more: it was written */
        rp->pending = false;
        memcpy(rp->file, r.pos, n);
        rp->file[n] = '\0';
        s_files_add(self, rp->file);
        return true;
    }
    case S_INTENT: {
        uint64_t offset = bytes_be(&r, 8), length = bytes_be(&r, 8);
        if (r.bad)
            return false;
        if (rp->pending)
            s_apply_intent(self, rp->entries, rp->end);
        rp->pending = true;
        rp->offset = offset;
        rp->length = length;
        rp->entries = r.pos;
        rp->end = end;
        return true;
    }
    case S_UNDO:
        if (r.pos != end)
            return false;
        if (rp->pending) /* its flush failed: none of it is in the file */
            s_cut_back(rp, "a failed write");
        rp->pending = false;
        return true;
    case S_END: {
        char source[WIRE_NAME_MAX + 1];
        s_get_name(&r, source);
        uint64_t epoch = bytes_be(&r, 8);
        if (r.bad || r.pos != end)
            return false;
        journal_state_t *st = s_state(self, source, epoch);
        if (st)
            st->ended = true;
        return true;
    }
    case S_STATE: {
        char source[WIRE_NAME_MAX + 1];
        s_get_name(&r, source);
        uint64_t epoch = bytes_be(&r, 8);
        bool ended = bytes_be(&r, 1) != 0;
        uint32_t nranges = (uint32_t)bytes_be(&r, 4);
        if (r.bad)
            return false;
        journal_state_t *st = s_state(self, source, epoch);
        if (st && ended)
            st->ended = true;
        for (uint32_t i = 0; i < nranges && !r.bad; i++) {
            uint64_t lo = bytes_be(&r, 8), hi = bytes_be(&r, 8);
            if (st && !r.bad && lo < hi)
                seqset_add_range(&st->complete, lo, hi);
        }
        /* partials are batches taken but not wholly written: out of the
         * complete set, and resumed where they stopped */
        uint32_t np = (uint32_t)bytes_be(&r, 4);
        for (uint32_t i = 0; i < np && !r.bad; i++) {
            uint64_t seq = bytes_be(&r, 8);
            uint16_t part = (uint16_t)bytes_be(&r, 2);
            uint32_t written = (uint32_t)bytes_be(&r, 4);
            if (r.bad || !st)
                break;
            seqset_remove(&st->complete, seq);
            if (written)
                s_apply(self, source, epoch, seq, part, written, false);
        }
        return !r.bad;
    }
    default:
        return false;
    }
}

/* True when `path` is a capture file that no reader can open: empty, a
 * pcapng section header without a whole interface block after it, or a
 * pcap file header cut short (left by a collector stopped before its first
 * interface, or cut back to nothing). Anything else, a readable capture or
 * no capture at all, is not the journal's to judge. */
static bool s_unreadable_capture(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    if (st.st_size == 0)
        return true;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    uint8_t b[8192]; /* a section header and an interface block of ours fit */
    ssize_t got = pread(fd, b, sizeof b, 0);
    close(fd);
    if (got <= 0)
        return false;
    size_t n = (size_t)got, size = (size_t)st.st_size;
    static const uint8_t magic[5][4] = {{0x0a, 0x0d, 0x0d, 0x0a}, /* pcapng SHB */
                                        {0xa1, 0xb2, 0xc3, 0xd4},
                                        {0xd4, 0xc3, 0xb2, 0xa1},
                                        {0xa1, 0xb2, 0x3c, 0x4d},
                                        {0x4d, 0x3c, 0xb2, 0xa1}};
    int kind = -1;
    for (int k = 0; k < 5 && kind < 0; k++)
        if (memcmp(b, magic[k], n < 4 ? n : 4) == 0)
            kind = k;
    if (kind < 0)
        return false;
    if (kind > 0)
        return size < 24; /* the pcap file header */
    /* the section header's length and byte order, then the block after it */
    bytes_t r = bytes_view(b, n);
    bytes_skip(&r, 4);
    uint32_t shb = bytes_u32(&r), bom = bytes_u32(&r);
    bool le = bom == 0x4D3C2B1Au;
    if (!r.bad && !le && bom != 0x1A2B3C4Du)
        return false;
    if (le)
        shb = __builtin_bswap32(shb);
    if (!r.bad && (shb < 28 || shb % 4))
        return false;
    bytes_skip(&r, shb - 12);
    uint32_t type = bytes_u32(&r), len = bytes_u32(&r);
    if (r.bad)
        return size == n; /* the file ends inside the section header, or right after it */
    if (le) {
        type = __builtin_bswap32(type);
        len = __builtin_bswap32(len);
    }
    if (type != 1 || len < 20)
        return false;
    return size < shb + len; /* the first interface block cut short */
}

/* Replays the records in data[0, len): returns how many were whole; the
 * replay stops at the first damaged one. */
static size_t s_replay_bytes(journal_t *self, s_replay_t *rp, const uint8_t *data, size_t len)
{
    size_t off = 0, records = 0;
    while (off + 9 <= len) {
        uint32_t rlen = (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 |
                        (uint32_t)data[off + 2] << 8 | data[off + 3];
        uint32_t crc = (uint32_t)data[off + 4] << 24 | (uint32_t)data[off + 5] << 16 |
                       (uint32_t)data[off + 6] << 8 | data[off + 7];
        if (rlen < 1 || rlen > S_RECORD_MAX || rlen > len - off - 8 ||
            crc32_ieee(data + off + 8, rlen) != crc)
            break;
        const uint8_t *body = data + off + 8;
        if (!s_replay_record(self, rp, body[0], body + 1, body + rlen))
            break;
        off += 8 + rlen;
        records++;
    }
    if (off < len)
        log_warn("STATE_DIR: %s: %zu bytes at the end are incomplete (a crash while "
                 "appending): ignored",
                 self->path, len - off);
    return records;
}

static int s_replay(journal_t *self, s_replay_t *rp)
{
    int fd = open(self->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size ? size : 1);
    size_t got = 0;
    while (data && got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!data)
        return -ENOMEM;
    size_t records = s_replay_bytes(self, rp, data, got);
    if (rp->pending && s_intent_written(rp))
        s_apply_intent(self, rp->entries, rp->end);
    rp->pending = false;
    /* the file being written holds no packets (the collector stopped
     * before its first interface block, or the crash cut it back to
     * nothing): no reader could open it, so it goes */
    if (strcmp(rp->file, "-") != 0 && rp->file[0] && s_unreadable_capture(rp->file) &&
        unlink(rp->file) == 0)
        log_warn("STATE_DIR: %s held no interface block, so no reader could open it: removed",
                 rp->file);
    /* files gone since (deleted by retention, or by someone else) or no
     * longer regular files are no longer the journal's */
    for (size_t i = self->nfiles; i-- > 0;) {
        struct stat fst;
        if (lstat(self->files[i], &fst) < 0 || !S_ISREG(fst.st_mode))
            s_files_drop(self, i);
    }
    free(data);
    log_info("STATE_DIR: replayed %zu records: %zu sources' delivery state", records,
             self->nrestored);
    return 0;
}

/* ---- public --------------------------------------------------------- */

journal_t *journal_parse(const uint8_t *data, size_t len)
{
    journal_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = -1;
    self->detached = true;
    snprintf(self->path, sizeof self->path, "(journal in memory)");
    s_replay_t rp;
    memset(&rp, 0, sizeof rp);
    s_replay_bytes(self, &rp, data, len);
    if (rp.pending) /* no file to look at: taken as written */
        s_apply_intent(self, rp.entries, rp.end);
    return self;
}

journal_state_t *journal_take_next(journal_t *self)
{
    if (self->nrestored == 0)
        return NULL;
    journal_state_t *st = self->restored[0];
    self->restored[0] = self->restored[--self->nrestored];
    return st;
}

journal_t *journal_open(const char *dir, char *err, size_t errlen)
{
    journal_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "STATE_DIR=%s: out of memory", dir);
        return NULL;
    }
    self->fd = -1;
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    snprintf(self->path, sizeof self->path, "%s/journal", dir);
    if (mkdir(dir, S_DIR_MODE) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "STATE_DIR=%s: cannot create: %s", dir, strerror(errno));
        goto fail;
    }
    s_replay_t rp;
    memset(&rp, 0, sizeof rp);
    int rc = s_replay(self, &rp);
    if (rc < 0) {
        snprintf(err, errlen, "STATE_DIR=%s: cannot read %s: %s", dir, self->path, strerror(-rc));
        goto fail;
    }
    if (journal_compact(self, rp.file, NULL, 0) < 0) {
        snprintf(err, errlen, "%s", self->error);
        goto fail;
    }
    return self;
fail:
    journal_close(&self);
    return NULL;
}

void journal_close(journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    journal_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    for (size_t i = 0; i < self->nrestored; i++)
        journal_state_free(&self->restored[i]);
    free(self->restored);
    for (size_t i = 0; i < self->nfiles; i++)
        free(self->files[i]);
    free(self->files);
    free(self->buf);
    free(self);
    *self_p = NULL;
}

journal_state_t *journal_take(journal_t *self, const char *source, uint64_t epoch)
{
    for (size_t i = 0; i < self->nrestored; i++) {
        journal_state_t *st = self->restored[i];
        if (st->epoch == epoch && strcmp(st->source, source) == 0) {
            self->restored[i] = self->restored[--self->nrestored];
            return st;
        }
    }
    return NULL;
}

size_t journal_restored(const journal_t *self)
{
    return self->nrestored;
}

size_t journal_expected(const journal_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nrestored; i++)
        n += !self->restored[i]->ended;
    return n;
}

int journal_end(journal_t *self, const char *source, uint64_t epoch)
{
    s_begin(self, S_END);
    s_put_name(self, source);
    s_put(self, epoch, 8);
    return s_end(self, self->fd);
}

int journal_undo(journal_t *self)
{
    s_begin(self, S_UNDO);
    return s_end(self, self->fd);
}

int journal_file(journal_t *self, const char *path)
{
    s_file_record(self, path);
    int rc = s_end(self, self->fd);
    if (rc == 0)
        s_files_add(self, path);
    return rc;
}

size_t journal_files(const journal_t *self)
{
    return self->nfiles;
}

const char *journal_file_at(const journal_t *self, size_t i)
{
    return i < self->nfiles ? self->files[i] : NULL;
}

void journal_forget(journal_t *self, const char *path)
{
    s_files_remove(self, path);
}

void journal_keep_files(journal_t *self, bool keep)
{
    self->files_off = !keep;
    while (!keep && self->nfiles)
        s_files_drop(self, self->nfiles - 1);
}

int journal_intent(journal_t *self, uint64_t offset, uint64_t length,
                   const journal_entry_t *entries, size_t n)
{
    s_begin(self, S_INTENT);
    s_put(self, offset, 8);
    s_put(self, length, 8);
    s_put(self, n, 4);
    for (size_t i = 0; i < n; i++) {
        const journal_entry_t *e = &entries[i];
        s_put_name(self, e->source);
        s_put(self, e->epoch, 8);
        s_put(self, e->seq, 8);
        s_put(self, e->part, 2);
        s_put(self, e->written, 4);
        s_put(self, e->complete, 1);
    }
    return s_end(self, self->fd);
}

bool journal_wants_compaction(const journal_t *self)
{
    /* what compaction keeps (live states, files) does not count: it could
     * not shrink that */
    return self->size - self->compacted >= S_COMPACT_BYTES;
}

int journal_compact(journal_t *self, const char *path, const journal_state_t *const *states,
                    size_t n)
{
    if (self->detached) {
        snprintf(self->error, sizeof self->error, "%s: not a file", self->path);
        return -EBADF;
    }
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", self->path);
    /* a fresh file, so that it has this mode whatever an earlier one had */
    if (unlink(tmp) < 0 && errno != ENOENT) {
        int e = errno;
        snprintf(self->error, sizeof self->error, "STATE_DIR: %s: %s", tmp, strerror(e));
        return -e;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, S_FILE_MODE);
    if (fd < 0) {
        snprintf(self->error, sizeof self->error, "STATE_DIR: %s: %s", tmp, strerror(errno));
        return -errno;
    }
    uint64_t size = 0;
    int rc = 0;
    /* the earlier files first: the replay takes the last FILE as current */
    for (size_t i = 0; rc == 0 && i < self->nfiles; i++) {
        if (path && strcmp(self->files[i], path) == 0)
            continue;
        s_file_record(self, self->files[i]);
        rc = s_end(self, fd);
        size += self->len;
    }
    if (rc == 0 && path && *path) {
        s_file_record(self, path);
        rc = s_end(self, fd);
        size += self->len;
    }
    for (size_t i = 0; rc == 0 && i < n + self->nrestored; i++) {
        s_state_record(self, i < n ? states[i] : self->restored[i - n]);
        rc = s_end(self, fd);
        size += self->len;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, self->path) < 0)
        rc = -errno;
    if (rc < 0) {
        snprintf(self->error, sizeof self->error, "STATE_DIR: %s: %s", self->path, strerror(-rc));
        unlink(tmp);
        return rc;
    }
    int dfd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    if (self->fd >= 0)
        close(self->fd);
    self->fd = open(self->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (self->fd < 0) {
        snprintf(self->error, sizeof self->error, "STATE_DIR: %s: %s", self->path, strerror(errno));
        return -errno;
    }
    self->size = size;
    self->compacted = size;
    return 0;
}

const char *journal_error(const journal_t *self)
{
    return self->error;
}
