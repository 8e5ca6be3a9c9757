/*
 * dlq-read — the dead-letter file reader (proto/dead-letters-v1.md, cited
 * by §). pcapng in either byte order (pcapng §3: the section header says
 * which); every field through the bounds-checked reader of bytes.h, never
 * a struct cast over the buffer.
 *
 * Before the identity is found nothing is an error but a failing read:
 * a file that is not what dlq.c writes is handed back (0) to be read as a
 * plain capture, and libpcap says what it thinks of it. After it, the file
 * claims to be a dead-letter file, and anything malformed is an error.
 */
#include "dlq-read.h"

#include "bytes.h"
#include "pcapng.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_SHB 0x0A0D0D0Au
#define S_IDB 0x00000001u
#define S_PB 0x00000002u /* obsolete Packet Block */
#define S_SPB 0x00000003u
#define S_EPB 0x00000006u
#define S_OPT_END 0
#define S_IF_TSRESOL 9
#define S_SKIP_CHUNK 65536u
#define S_PAYLOAD_FIRST (64u << 10)

/* What reading a block gave. */
typedef enum {
    S_GOT_BLOCK, /* a whole block; its body when it is an IDB or EPB */
    S_GOT_END,   /* the end of the file, at a block boundary */
    S_GOT_TORN,  /* the end of the file inside a block */
    S_GOT_BAD,   /* lengths that break pcapng's rules (message set) */
    S_GOT_BIG,   /* an IDB or EPB larger than DLQ_READ_BLOCK_MAX (message set) */
    S_GOT_IOERR, /* the read failed (message set) */
} s_got_t;

/* §3.2 */
typedef struct {
    uint64_t seq;
    uint16_t part, parts;
    uint8_t state;
    uint64_t watermark;
    uint32_t index, count;
} s_letter_t;

/* A custom option of ours: version, kind and what follows (§2). */
typedef struct {
    uint8_t version, kind;
    bytes_t data;
} s_custom_t;

struct dlq_reader_t {
    FILE *file;
    bool owned; /* opened by dlq_reader_open: closed with the reader */
    char name[4096];
    bool big;     /* the section is big-endian */
    uint64_t pos; /* offset of the next byte to read */
    uint64_t at;  /* offset of the block being decoded */
    uint8_t *block;
    size_t block_cap;
    uint64_t ts_mul; /* EPB timestamp units to nanoseconds */
    uint8_t *payload;
    size_t payload_len, payload_cap;
    bool gathering; /* a batch is being gathered: `cur`, `have` packets so far */
    s_letter_t cur;
    uint32_t have;
    uint64_t skipped;
    bool done;
    int error; /* latched, 0 when fine */
    char message[4400];
};

static void s_vfail(dlq_reader_t *r, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void s_vfail(dlq_reader_t *r, const char *fmt, va_list ap)
{
    int n = snprintf(r->message, sizeof r->message, "%s: offset %" PRIu64 ": ", r->name, r->at);
    if (n > 0 && (size_t)n < sizeof r->message)
        vsnprintf(r->message + n, sizeof r->message - (size_t)n, fmt, ap);
}

/* Records the error (the first one stays) and returns it. */
static int s_fail(dlq_reader_t *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(dlq_reader_t *r, int rc, const char *fmt, ...)
{
    if (r->error)
        return r->error;
    va_list ap;
    va_start(ap, fmt);
    s_vfail(r, fmt, ap);
    va_end(ap);
    r->error = rc;
    return rc;
}

/* An unsigned integer of `n` bytes in the section's byte order (pcapng
 * fields; our own records are big-endian and use bytes_be). */
static uint64_t s_uint(const dlq_reader_t *r, bytes_t *b, size_t n)
{
    if (r->big)
        return bytes_be(b, n);
    if (!bytes_need(b, n))
        return 0;
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | b->pos[i];
    b->pos += n;
    return v;
}

static size_t s_pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* ---- reading the file ------------------------------------------------------ */

/* Reads `n` bytes: 1 all of them, 0 none (the end), -1 some (cut short),
 * -2 a read error. */
static int s_fill(dlq_reader_t *r, void *buf, size_t n)
{
    size_t got = n ? fread(buf, 1, n, r->file) : 0;
    r->pos += got;
    if (got == n)
        return 1;
    if (ferror(r->file))
        return -2;
    return got == 0 ? 0 : -1;
}

static s_got_t s_ioerr(dlq_reader_t *r)
{
    s_fail(r, -EIO, "cannot read");
    return S_GOT_IOERR;
}

/* Reads and drops `n` bytes (pipes cannot seek). */
static s_got_t s_skip(dlq_reader_t *r, uint64_t n)
{
    uint8_t chunk[4096];
    while (n > 0) {
        size_t k = n < sizeof chunk ? (size_t)n : sizeof chunk;
        int rc = s_fill(r, chunk, k);
        if (rc == -2)
            return s_ioerr(r);
        if (rc != 1)
            return S_GOT_TORN;
        n -= k;
    }
    return S_GOT_BLOCK;
}

/* Makes the block buffer hold `n` bytes (n <= DLQ_READ_BLOCK_MAX). */
static bool s_block_room(dlq_reader_t *r, size_t n)
{
    if (r->block_cap >= n)
        return true;
    size_t cap = r->block_cap ? r->block_cap : 4096;
    while (cap < n)
        cap *= 2;
    if (cap > DLQ_READ_BLOCK_MAX)
        cap = DLQ_READ_BLOCK_MAX;
    uint8_t *b = realloc(r->block, cap);
    if (!b)
        return false;
    r->block = b;
    r->block_cap = cap;
    return true;
}

/* The next block of the section. An IDB's or EPB's body (after type and
 * length, before the trailing length) lands in *body; other blocks are
 * read past, their trailing length checked. An SHB is returned at once
 * with its type only: its byte order is its own. */
static s_got_t s_next_block(dlq_reader_t *r, uint32_t *type, bytes_t *body)
{
    uint8_t hdr[8];
    r->at = r->pos;
    *body = bytes_view(NULL, 0);
    int rc = s_fill(r, hdr, sizeof hdr);
    if (rc == 0)
        return S_GOT_END;
    if (rc == -1)
        return S_GOT_TORN;
    if (rc < 0)
        return s_ioerr(r);
    bytes_t h = bytes_view(hdr, sizeof hdr);
    *type = (uint32_t)s_uint(r, &h, 4);
    uint32_t total = (uint32_t)s_uint(r, &h, 4);
    if (*type == S_SHB)
        return S_GOT_BLOCK;
    if (total < 12 || total % 4) {
        s_fail(r, -EPROTO,
               "block type 0x%08" PRIx32 ": length %" PRIu32
               " (pcapng needs at least 12, a multiple of 4)",
               *type, total);
        return S_GOT_BAD;
    }
    uint8_t trailer[4];
    if (*type != S_IDB && *type != S_EPB) {
        s_got_t got = s_skip(r, total - 12u);
        if (got != S_GOT_BLOCK)
            return got;
        rc = s_fill(r, trailer, 4);
    } else {
        if (total > DLQ_READ_BLOCK_MAX) {
            s_fail(r, -EFBIG, "a block of %" PRIu32 " bytes (a dead-letter file has none above %u)",
                   total, DLQ_READ_BLOCK_MAX);
            return S_GOT_BIG;
        }
        if (!s_block_room(r, total - 8u)) {
            s_fail(r, -ENOMEM, "out of memory");
            return S_GOT_IOERR;
        }
        rc = s_fill(r, r->block, total - 8u);
        if (rc == 1)
            memcpy(trailer, r->block + total - 12u, 4);
        *body = bytes_view(r->block, total - 12u);
    }
    if (rc == -2)
        return s_ioerr(r);
    if (rc != 1)
        return S_GOT_TORN;
    bytes_t t = bytes_view(trailer, 4);
    uint32_t again = (uint32_t)s_uint(r, &t, 4);
    if (again != total) {
        s_fail(r, -EPROTO, "block length %" PRIu32 " but trailing length %" PRIu32, total, again);
        return S_GOT_BAD;
    }
    return S_GOT_BLOCK;
}

/* The next option of a block's option list: 1 (*code, *value set), 0 at
 * opt_endofopt or the end of the list, -1 when an option runs past it. */
static int s_next_option(const dlq_reader_t *r, bytes_t *opts, uint16_t *code, bytes_t *value)
{
    if (bytes_left(opts) == 0)
        return 0;
    *code = (uint16_t)s_uint(r, opts, 2);
    uint16_t len = (uint16_t)s_uint(r, opts, 2);
    if (opts->bad)
        return -1;
    if (*code == S_OPT_END)
        return 0;
    if (bytes_left(opts) < s_pad4(len))
        return -1;
    *value = bytes_view(opts->pos, len);
    opts->pos += s_pad4(len);
    return 1;
}

/* True when a custom option's value is ours (§2): PEN 32473 in the
 * section's byte order, then our signature; *c holds version and kind. */
static bool s_ours(const dlq_reader_t *r, uint16_t code, bytes_t value, s_custom_t *c)
{
    if (code != PCAPNG_OPT_CUSTOM_BINARY)
        return false;
    uint32_t pen = (uint32_t)s_uint(r, &value, 4);
    uint16_t signature = bytes_u16(&value);
    c->version = bytes_u8(&value);
    c->kind = bytes_u8(&value);
    c->data = value;
    return !value.bad && pen == DLQ_PEN && signature == DLQ_SIGNATURE;
}

/* ---- the identity (§3.1) ------------------------------------------------- */

static bool s_name_ok(const char *s)
{
    return wire_name_valid(s);
}

static bool s_ifname_ok(const char *s)
{
    char clean[WIRE_NAME_MAX + 1];
    wire_ifname_sanitize(s, clean);
    return *s && strcmp(clean, s) == 0;
}

/* A u8-length label of 1..WIRE_NAME_MAX bytes into `out`. */
static bool s_label(bytes_t *b, char *out)
{
    uint8_t n = bytes_u8(b);
    if (n < 1 || n > WIRE_NAME_MAX || !bytes_need(b, n))
        return false;
    bytes_copy(b, out, n);
    out[n] = '\0';
    return strlen(out) == n;
}

/* A u16-length wire text (no byte below 0x20, none 0x7f) into `out`. */
static bool s_text(bytes_t *b, char *out)
{
    uint16_t n = bytes_u16(b);
    if (n > WIRE_TEXT_MAX || !bytes_need(b, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if (b->pos[i] < 0x20 || b->pos[i] == 0x7f)
            return false;
    bytes_copy(b, out, n);
    out[n] = '\0';
    return true;
}

static int s_identity(dlq_reader_t *r, bytes_t d, uint16_t idb_linktype, dlq_info_t *info)
{
    memset(info, 0, sizeof *info);
    if (!s_label(&d, info->source) || !s_name_ok(info->source))
        return s_fail(r, -EPROTO, "dead-letter identity: the source is not a valid name");
    info->epoch = bytes_u64(&d);
    info->linktype = bytes_u16(&d);
    info->snaplen = bytes_u32(&d);
    if (!s_label(&d, info->ifname) || !s_ifname_ok(info->ifname))
        return s_fail(r, -EPROTO, "dead-letter identity: the interface name is not valid");
    if (!s_text(&d, info->if_description) || !s_text(&d, info->hello_description))
        return s_fail(r, -EPROTO, "dead-letter identity: a description is not valid text");
    if (d.bad || bytes_left(&d) != 0)
        return s_fail(r, -EPROTO, "dead-letter identity: %s",
                      d.bad ? "cut short" : "bytes after its last field");
    if (info->epoch == 0)
        return s_fail(r, -EPROTO, "dead-letter identity: epoch 0");
    if (info->snaplen < 1 || info->snaplen > WIRE_SNAPLEN_MAX)
        return s_fail(r, -EPROTO, "dead-letter identity: snaplen %" PRIu32 " outside 1..%u",
                      info->snaplen, WIRE_SNAPLEN_MAX);
    if (info->linktype != idb_linktype)
        return s_fail(r, -EPROTO,
                      "dead-letter identity: link type %u, but the interface block says %u",
                      info->linktype, idb_linktype);
    return 1;
}

/* The IDB: 1 with our identity (info filled), 0 without one, or an error
 * once it claims to be ours. */
static int s_idb(dlq_reader_t *r, bytes_t body, dlq_info_t *info)
{
    uint16_t linktype = (uint16_t)s_uint(r, &body, 2);
    bytes_skip(&body, 2); /* reserved */
    bytes_skip(&body, 4); /* snaplen: the file's, not the source's */
    if (body.bad)
        return 0;
    unsigned tsresol = 6; /* pcapng's default: microseconds */
    int found = 0, rc;
    uint16_t code;
    bytes_t value;
    while ((rc = s_next_option(r, &body, &code, &value)) == 1) {
        s_custom_t c;
        if (code == S_IF_TSRESOL && bytes_left(&value) >= 1)
            tsresol = value.pos[0];
        if (!s_ours(r, code, value, &c) || c.kind != DLQ_KIND_IDENTITY)
            continue;
        if (c.version != DLQ_VERSION)
            return s_fail(r, -EPROTO,
                          "dead-letter format version %u (this tapmesh reads version %u)",
                          c.version, DLQ_VERSION);
        if (found)
            return s_fail(r, -EPROTO, "two dead-letter identities in one interface block");
        found = s_identity(r, c.data, linktype, info);
        if (found < 0)
            return found;
    }
    if (rc < 0 && found)
        return s_fail(r, -EPROTO, "interface block: an option runs past the block");
    if (!found)
        return 0;
    /* §4: timestamps in a power of ten of a second, at most nanoseconds */
    if ((tsresol & 0x80) || tsresol > 9)
        return s_fail(r, -EPROTO, "if_tsresol 0x%02x: not a power of ten down to nanoseconds",
                      tsresol);
    r->ts_mul = 1;
    for (unsigned i = tsresol; i < 9; i++)
        r->ts_mul *= 10;
    return 1;
}

/* ---- opening ---------------------------------------------------------------- */

static void s_free(dlq_reader_t *r)
{
    if (r->owned && r->file)
        fclose(r->file);
    free(r->block);
    free(r->payload);
    free(r);
}

/* The section header: 1 (byte order known, read past), 0 when this is not
 * a pcapng section header, -1 on a read error. */
static int s_shb(dlq_reader_t *r)
{
    uint8_t head[16];
    r->at = r->pos;
    int rc = s_fill(r, head, sizeof head);
    if (rc == -2)
        return -1;
    if (rc != 1)
        return 0;
    static const uint8_t shb[4] = {0x0a, 0x0d, 0x0d, 0x0a};
    static const uint8_t be[4] = {0x1a, 0x2b, 0x3c, 0x4d}, le[4] = {0x4d, 0x3c, 0x2b, 0x1a};
    if (memcmp(head, shb, 4) != 0)
        return 0;
    if (memcmp(head + 8, be, 4) == 0)
        r->big = true;
    else if (memcmp(head + 8, le, 4) == 0)
        r->big = false;
    else
        return 0;
    bytes_t h = bytes_view(head + 4, 4);
    uint32_t total = (uint32_t)s_uint(r, &h, 4);
    h = bytes_view(head + 12, 2);
    uint16_t major = (uint16_t)s_uint(r, &h, 2);
    if (total < 28 || total % 4 || major != 1)
        return 0;
    s_got_t got = s_skip(r, total - 20u);
    if (got == S_GOT_IOERR)
        return -1;
    uint8_t trailer[4];
    rc = got == S_GOT_BLOCK ? s_fill(r, trailer, 4) : 0;
    if (rc == -2)
        return -1;
    h = bytes_view(trailer, 4);
    return rc == 1 && s_uint(r, &h, 4) == total ? 1 : 0;
}

int dlq_reader_fopen(FILE *file, const char *name, dlq_reader_t **out, dlq_info_t *info, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    dlq_reader_t *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -ENOMEM;
    }
    r->file = file;
    snprintf(r->name, sizeof r->name, "%s", name);
    int rc = s_shb(r);
    if (rc < 0)
        rc = s_fail(r, -EIO, "cannot read");
    /* blocks up to the first interface; a packet before it, or another
     * section, is not what dlq.c writes */
    while (rc == 1) {
        uint32_t type = 0;
        bytes_t body;
        s_got_t got = s_next_block(r, &type, &body);
        if (got == S_GOT_IOERR) {
            rc = r->error;
            break;
        }
        if (got != S_GOT_BLOCK || type == S_SHB || type == S_EPB || type == S_SPB || type == S_PB) {
            rc = 0;
            break;
        }
        if (type == S_IDB) {
            rc = s_idb(r, body, info);
            break;
        }
    }
    if (rc < 0)
        snprintf(err, errlen, "%s", r->message);
    if (rc != 1) {
        s_free(r);
        return rc;
    }
    *out = r;
    return 1;
}

int dlq_reader_open(const char *path, dlq_reader_t **out, dlq_info_t *info, char *err,
                    size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int rc = -errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
        return rc;
    }
    int rc = dlq_reader_fopen(f, path, out, info, err, errlen);
    if (rc == 1)
        (*out)->owned = true;
    else
        fclose(f);
    return rc;
}

void dlq_reader_close(dlq_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_free(*self_p);
    *self_p = NULL;
}

/* ---- batches (§3.2, §5) ------------------------------------------------------ */

static int s_letter(dlq_reader_t *r, bytes_t d, s_letter_t *l)
{
    l->seq = bytes_u64(&d);
    l->part = bytes_u16(&d);
    l->parts = bytes_u16(&d);
    l->state = bytes_u8(&d);
    l->watermark = bytes_u64(&d);
    l->index = bytes_u32(&d);
    l->count = bytes_u32(&d);
    if (d.bad || bytes_left(&d) != 0)
        return s_fail(r, -EPROTO, "dead-letter record: %s",
                      d.bad ? "cut short" : "bytes after its last field");
    if (l->parts < 1 || l->parts > WIRE_PARTS_MAX || l->part >= l->parts)
        return s_fail(r, -EPROTO, "dead-letter record: part %u of %u", l->part, l->parts);
    if (l->state != DLQ_UNACKED && l->state != DLQ_REFUSED)
        return s_fail(r, -EPROTO, "dead-letter record: state %u", l->state);
    if (l->count < 1 || l->count > WIRE_PACKETS_MAX || l->index >= l->count)
        return s_fail(r, -EPROTO, "dead-letter record: packet %" PRIu32 " of %" PRIu32, l->index,
                      l->count);
    return 0;
}

static bool s_same_batch(const s_letter_t *a, const s_letter_t *b)
{
    return a->seq == b->seq && a->part == b->part && a->parts == b->parts && a->state == b->state &&
           a->watermark == b->watermark && a->count == b->count;
}

/* Room for `n` more payload bytes, within WIRE_PAYLOAD_MAX. */
static int s_payload_room(dlq_reader_t *r, size_t n)
{
    if (n > WIRE_PAYLOAD_MAX - r->payload_len)
        return s_fail(r, -EFBIG,
                      "batch %" PRIu64 " is larger than a batch can be (%u bytes of payload)",
                      r->cur.seq, WIRE_PAYLOAD_MAX);
    size_t need = r->payload_len + n;
    if (need <= r->payload_cap)
        return 0;
    size_t cap = r->payload_cap ? r->payload_cap : S_PAYLOAD_FIRST;
    while (cap < need)
        cap *= 2;
    if (cap > WIRE_PAYLOAD_MAX)
        cap = WIRE_PAYLOAD_MAX;
    uint8_t *p = realloc(r->payload, cap);
    if (!p)
        return s_fail(r, -ENOMEM, "out of memory for batch %" PRIu64, r->cur.seq);
    r->payload = p;
    r->payload_cap = cap;
    return 0;
}

/* A packet with its record (§5): it continues the batch being gathered,
 * starts one, or is skipped. Returns 1 when a batch is whole, 0, or an
 * error. */
static int s_take(dlq_reader_t *r, const s_letter_t *l, const wire_packet_t *p)
{
    if (!r->gathering || !s_same_batch(&r->cur, l) || l->index != r->have) {
        if (r->gathering)
            r->skipped += r->have; /* a batch that is not whole */
        r->gathering = false;
        if (l->index != 0) {
            r->skipped++; /* the rest of a batch whose start is not here */
            return 0;
        }
        r->cur = *l;
        r->have = 0;
        r->payload_len = 0;
        int rc = s_payload_room(r, WIRE_FRAME_HDR);
        if (rc < 0)
            return rc;
        wire_packets_begin(r->payload, r->payload_cap, &r->payload_len);
        r->gathering = true;
    }
    int rc = s_payload_room(r, WIRE_PKT_HDR + (size_t)p->caplen);
    if (rc < 0)
        return rc;
    wire_packets_put(r->payload, r->payload_cap, &r->payload_len, p);
    if (++r->have < r->cur.count)
        return 0;
    r->gathering = false;
    return 1;
}

/* An EPB: its packet and its record, handed to s_take. */
static int s_epb(dlq_reader_t *r, bytes_t body)
{
    uint32_t ifid = (uint32_t)s_uint(r, &body, 4);
    uint64_t hi = s_uint(r, &body, 4), lo = s_uint(r, &body, 4);
    uint32_t caplen = (uint32_t)s_uint(r, &body, 4);
    uint32_t origlen = (uint32_t)s_uint(r, &body, 4);
    if (body.bad || caplen > bytes_left(&body) || s_pad4(caplen) > bytes_left(&body))
        return s_fail(
            r, -EPROTO,
            "enhanced packet block: captured length %" PRIu32 " does not fit in the block", caplen);
    if (ifid != 0)
        return s_fail(
            r, -EPROTO,
            "enhanced packet block: interface %" PRIu32 " (a dead-letter file has one, 0)", ifid);
    if (caplen > origlen || caplen > WIRE_SNAPLEN_MAX)
        return s_fail(r, -EPROTO,
                      "enhanced packet block: captured length %" PRIu32 " (original %" PRIu32
                      ", at most %u)",
                      caplen, origlen, WIRE_SNAPLEN_MAX);
    uint64_t units = hi << 32 | lo;
    if (units > UINT64_MAX / r->ts_mul)
        return s_fail(r, -EPROTO, "enhanced packet block: timestamp beyond 64-bit nanoseconds");
    wire_packet_t p = {.ts_ns = units * r->ts_mul,
                       .ifindex = 0,
                       .caplen = caplen,
                       .origlen = origlen,
                       .data = body.pos};
    bytes_skip(&body, s_pad4(caplen));
    s_letter_t l;
    bool found = false;
    int rc;
    uint16_t code;
    bytes_t value;
    while ((rc = s_next_option(r, &body, &code, &value)) == 1) {
        s_custom_t c;
        if (!s_ours(r, code, value, &c) || c.kind != DLQ_KIND_LETTER)
            continue;
        if (c.version != DLQ_VERSION)
            return s_fail(r, -EPROTO,
                          "dead-letter format version %u (this tapmesh reads version %u)",
                          c.version, DLQ_VERSION);
        if (found)
            return s_fail(r, -EPROTO, "two dead-letter records in one packet block");
        rc = s_letter(r, c.data, &l);
        if (rc < 0)
            return rc;
        found = true;
    }
    if (rc < 0)
        return s_fail(r, -EPROTO, "enhanced packet block: an option runs past the block");
    if (!found)
        return s_fail(r, -EPROTO, "a packet without its dead-letter record");
    return s_take(r, &l, &p);
}

int dlq_reader_next(dlq_reader_t *self, dlq_batch_t *b)
{
    dlq_reader_t *r = self;
    if (r->error)
        return r->error;
    while (!r->done) {
        uint32_t type = 0;
        bytes_t body;
        s_got_t got = s_next_block(r, &type, &body);
        if (got == S_GOT_END || got == S_GOT_TORN) {
            /* §5: a batch cut short by the end of the file is skipped */
            if (r->gathering)
                r->skipped += r->have;
            r->gathering = false;
            r->done = true;
            break;
        }
        if (got != S_GOT_BLOCK)
            return r->error;
        if (type == S_SHB)
            return s_fail(r, -EPROTO, "a second section (a dead-letter file has one)");
        if (type == S_IDB)
            return s_fail(r, -EPROTO, "a second interface block (a dead-letter file has one)");
        if (type != S_EPB)
            continue; /* §4: other blocks carry nothing to replay */
        int rc = s_epb(r, body);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            *b = (dlq_batch_t){.seq = r->cur.seq,
                               .part = r->cur.part,
                               .parts = r->cur.parts,
                               .state = (dlq_state_t)r->cur.state,
                               .watermark = r->cur.watermark,
                               .packets = r->cur.count,
                               .payload = r->payload,
                               .len = r->payload_len};
            return 1;
        }
    }
    return 0;
}

uint64_t dlq_reader_skipped(const dlq_reader_t *self)
{
    return self->skipped;
}

const char *dlq_reader_error(const dlq_reader_t *self)
{
    return self->message;
}
