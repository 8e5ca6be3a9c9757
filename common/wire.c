/*
 * wire — protocol v2 codec (proto/wire-v2.md). Every read goes through
 * s_rd_t, which carries a position and an end and latches the first error;
 * no struct is ever laid over a buffer.
 */
#include "wire.h"

#include "bytes.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---- §2 readers ------------------------------------------------------ */

/* The shared reader, plus the first reason a frame is malformed: running
 * past the end is WIRE_ERR_TRUNCATED; a field's own rule adds the others. */
typedef struct {
    bytes_t b;
    wire_err_t err;
} s_rd_t;

static s_rd_t s_reader(const uint8_t *buf, size_t len)
{
    return (s_rd_t){.b = bytes_view(buf, len), .err = WIRE_OK};
}

static bool s_need(s_rd_t *r, size_t n)
{
    if (r->err)
        return false;
    if (!bytes_need(&r->b, n)) {
        r->err = WIRE_ERR_TRUNCATED;
        return false;
    }
    return true;
}

static uint64_t s_get(s_rd_t *r, size_t n)
{
    return s_need(r, n) ? bytes_be(&r->b, n) : 0;
}

static uint8_t s_u8(s_rd_t *r)
{
    return (uint8_t)s_get(r, 1);
}

static uint16_t s_u16(s_rd_t *r)
{
    return (uint16_t)s_get(r, 2);
}

static uint32_t s_u32(s_rd_t *r)
{
    return (uint32_t)s_get(r, 4);
}

static uint64_t s_u64(s_rd_t *r)
{
    return s_get(r, 8);
}

static void s_fail(s_rd_t *r, wire_err_t err)
{
    if (!r->err)
        r->err = err;
}

static bool s_name_byte(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static bool s_ifname_byte(uint8_t c)
{
    return c >= 0x21 && c <= 0x7e && c != '/' && c != '"' && c != '\\';
}

static bool s_text_byte(uint8_t c)
{
    return c >= 0x20 && c != 0x7f;
}

/* A u8-length string of 1..WIRE_NAME_MAX bytes accepted by `ok`. */
static void s_label(s_rd_t *r, char *out, bool (*ok)(uint8_t))
{
    out[0] = '\0';
    uint8_t n = s_u8(r);
    if (r->err)
        return;
    if (n < 1 || n > WIRE_NAME_MAX) {
        s_fail(r, WIRE_ERR_NAME);
        return;
    }
    if (!s_need(r, n))
        return;
    for (size_t i = 0; i < n; i++) {
        if (!ok(r->b.pos[i])) {
            s_fail(r, WIRE_ERR_NAME);
            return;
        }
    }
    memcpy(out, r->b.pos, n);
    out[n] = '\0';
    r->b.pos += n;
}

static void s_text(s_rd_t *r, char *out)
{
    out[0] = '\0';
    uint16_t n = s_u16(r);
    if (r->err)
        return;
    if (n > WIRE_TEXT_MAX) {
        s_fail(r, WIRE_ERR_TEXT);
        return;
    }
    if (!s_need(r, n))
        return;
    for (size_t i = 0; i < n; i++) {
        if (!s_text_byte(r->b.pos[i])) {
            s_fail(r, WIRE_ERR_TEXT);
            return;
        }
    }
    memcpy(out, r->b.pos, n);
    out[n] = '\0';
    r->b.pos += n;
}

static void s_range(s_rd_t *r, bool ok)
{
    if (!ok)
        s_fail(r, WIRE_ERR_RANGE);
}

/* ---- §2 writers ------------------------------------------------------ */

typedef struct {
    uint8_t *pos;
    uint8_t *end;
    bool bad;
} s_wr_t;

static void s_put(s_wr_t *w, uint64_t v, size_t n)
{
    if (w->bad || (size_t)(w->end - w->pos) < n) {
        w->bad = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        w->pos[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    w->pos += n;
}

static void s_put_bytes(s_wr_t *w, const char *s, size_t n)
{
    if (w->bad || (size_t)(w->end - w->pos) < n) {
        w->bad = true;
        return;
    }
    memcpy(w->pos, s, n);
    w->pos += n;
}

static void s_put_label(s_wr_t *w, const char *s, bool (*ok)(uint8_t))
{
    size_t n = strnlen(s, WIRE_NAME_MAX + 1);
    if (n < 1 || n > WIRE_NAME_MAX) {
        w->bad = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!ok((uint8_t)s[i]))
            w->bad = true;
    s_put(w, n, 1);
    s_put_bytes(w, s, n);
}

static void s_put_text(s_wr_t *w, const char *s)
{
    size_t n = strnlen(s, WIRE_TEXT_MAX + 1);
    if (n > WIRE_TEXT_MAX) {
        w->bad = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!s_text_byte((uint8_t)s[i]))
            w->bad = true;
    s_put(w, n, 2);
    s_put_bytes(w, s, n);
}

/* ---- public ---------------------------------------------------------- */

const char *wire_err_name(wire_err_t err)
{
    static const char *const names[WIRE_ERR_COUNT_] = {
        "ok",   "truncated", "trailing", "signature", "version", "type",     "name",
        "text", "range",     "caplen",   "framing",   "source",  "oversize", "zstd",
    };
    return err < WIRE_ERR_COUNT_ ? names[err] : "unknown";
}

void wire_msg_init(wire_msg_t *m, wire_type_t type, const char *source, uint64_t epoch)
{
    char id[WIRE_NAME_MAX + 1];
    snprintf(id, sizeof id, "%s", source);
    memset(m, 0, offsetof(wire_msg_t, hello));
    switch (type) {
    case WIRE_HELLO:
        m->hello.settled = 0;
        m->hello.description[0] = '\0';
        m->hello.iface_count = 0;
        break;
    case WIRE_REFUSE:
        m->refuse.code = 0;
        m->refuse.reason[0] = '\0';
        break;
    case WIRE_BATCH:
        memset(&m->batch, 0, offsetof(__typeof__(m->batch), hops));
        m->batch.parts = 1;
        break;
    case WIRE_ACK:
        m->ack.count = 0;
        break;
    case WIRE_STATS:
        m->stats.count = 0;
        break;
    case WIRE_FEATURES:
        m->features.flags = 0;
        break;
    case WIRE_DEAD:
        m->dead.count = 0;
        break;
    default:
        memset(&m->progress, 0, sizeof m->progress);
        break;
    }
    m->type = type;
    memcpy(m->source, id, sizeof id);
    m->epoch = epoch;
}

bool wire_name_valid(const char *text)
{
    size_t n = strnlen(text, WIRE_NAME_MAX + 1);
    if (n < 1 || n > WIRE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s_name_byte((uint8_t)text[i]))
            return false;
    return true;
}

void wire_ifname_sanitize(const char *in, char *out)
{
    size_t n = 0;
    for (; in[n] && n < WIRE_NAME_MAX; n++)
        out[n] = s_ifname_byte((uint8_t)in[n]) ? in[n] : '_';
    if (n == 0)
        out[n++] = '-';
    out[n] = '\0';
}

/* §3.7: an entry's rules; `prev` is the entry before it, or NULL. */
static bool s_stats_valid(const wire_stats_t *e, const wire_stats_t *prev)
{
    if (e->ifindex >= WIRE_IFACES_MAX || (prev && e->ifindex <= prev->ifindex))
        return false;
    if (e->flags & ~WIRE_STATS_KERNEL)
        return false;
    return (e->flags & WIRE_STATS_KERNEL) || (e->recv == 0 && e->drop == 0 && e->ifdrop == 0);
}

/* §3.9: a range is not empty and lies above the one before it, apart */
static bool s_dead_valid(const wire_range_t *e, const wire_range_t *prev)
{
    return e->lo < e->hi && (!prev || e->lo > prev->hi);
}

#define S_TAG_OS "; if_os="
#define S_TAG_FILTER "; if_filter="

/* The last occurrence of `tag` in `s`, or NULL. */
static const char *s_last(const char *s, const char *tag)
{
    const char *found = NULL;
    for (const char *p = strstr(s, tag); p; p = strstr(p + 1, tag))
        found = p;
    return found;
}

void wire_iface_tags_split(const char *descr, char *plain, char *os, char *filter)
{
    snprintf(plain, WIRE_TEXT_MAX + 1, "%s", descr);
    os[0] = filter[0] = '\0';
    char *t = (char *)s_last(plain, S_TAG_FILTER);
    if (t) {
        snprintf(filter, WIRE_TEXT_MAX + 1, "%s", t + strlen(S_TAG_FILTER));
        *t = '\0';
    }
    t = (char *)s_last(plain, S_TAG_OS);
    if (t) {
        snprintf(os, WIRE_TEXT_MAX + 1, "%s", t + strlen(S_TAG_OS));
        *t = '\0';
    }
}

/* Appends `tag` and `value` (bytes outside the text set made spaces) when
 * they fit; returns false otherwise, leaving `descr` as it was. */
static bool s_tag(char *descr, const char *tag, const char *value)
{
    size_t used = strlen(descr), tl = strlen(tag), vl = strlen(value);
    if (used + tl + vl > WIRE_TEXT_MAX)
        return false;
    memcpy(descr + used, tag, tl);
    for (size_t i = 0; i < vl; i++)
        descr[used + tl + i] = s_text_byte((uint8_t)value[i]) ? value[i] : ' ';
    descr[used + tl + vl] = '\0';
    return true;
}

int wire_iface_tags_append(char *descr, const char *os, const char *filter)
{
    bool ok = true;
    if (os && *os)
        ok = s_tag(descr, S_TAG_OS, os);
    if (filter && *filter)
        ok = s_tag(descr, S_TAG_FILTER, filter) && ok;
    return ok ? 0 : -ENOSPC;
}

#define S_TAG_COMPRESS "; compress=zstd"

bool wire_compress_tag_take(char *descr)
{
    size_t n = strlen(descr), tl = strlen(S_TAG_COMPRESS);
    if (n < tl || strcmp(descr + n - tl, S_TAG_COMPRESS) != 0)
        return false;
    descr[n - tl] = '\0';
    return true;
}

int wire_compress_tag_add(char *descr)
{
    size_t n = strlen(descr), tl = strlen(S_TAG_COMPRESS);
    if (n >= tl && strcmp(descr + n - tl, S_TAG_COMPRESS) == 0)
        return 0;
    if (n + tl > WIRE_TEXT_MAX)
        return -ENOSPC;
    memcpy(descr + n, S_TAG_COMPRESS, tl + 1);
    return 0;
}

/* §2: the frame header */
static void s_header(s_rd_t *r, wire_type_t *type)
{
    uint16_t sig = s_u16(r);
    uint8_t version = s_u8(r);
    uint8_t t = s_u8(r);
    if (r->err)
        return;
    if (sig != WIRE_SIGNATURE)
        s_fail(r, WIRE_ERR_SIGNATURE);
    else if (version != WIRE_VERSION)
        s_fail(r, WIRE_ERR_VERSION);
    *type = (wire_type_t)t;
}

wire_err_t wire_decode(const uint8_t *buf, size_t len, wire_msg_t *m)
{
    s_rd_t r = s_reader(buf, len);
    wire_type_t type = 0;
    s_header(&r, &type);
    if (r.err)
        return r.err;
    if (type < WIRE_HELLO || type > WIRE_DEAD || type == WIRE_PACKETS || type == WIRE_PACKETS_ZSTD)
        return WIRE_ERR_TYPE;
    m->type = type;
    s_label(&r, m->source, s_name_byte);
    m->epoch = s_u64(&r);
    s_range(&r, m->epoch != 0);
    switch (type) {
    case WIRE_HELLO: /* §3.1 */
        m->hello.settled = s_u64(&r);
        s_text(&r, m->hello.description);
        m->hello.iface_count = s_u8(&r);
        s_range(&r, m->hello.iface_count >= 1 && m->hello.iface_count <= WIRE_IFACES_MAX);
        for (unsigned i = 0; !r.err && i < m->hello.iface_count; i++) {
            wire_iface_t *f = &m->hello.ifaces[i];
            f->linktype = s_u16(&r);
            f->snaplen = s_u32(&r);
            s_range(&r, f->snaplen >= 1 && f->snaplen <= WIRE_SNAPLEN_MAX);
            s_label(&r, f->name, s_ifname_byte);
            s_text(&r, f->description);
        }
        break;
    case WIRE_WELCOME: /* §3.2 */
        break;
    case WIRE_REFUSE:
        m->refuse.code = s_u8(&r);
        s_range(&r, m->refuse.code >= WIRE_REFUSE_UNKNOWN_SOURCE &&
                        m->refuse.code <= WIRE_REFUSE_CONFLICT);
        s_text(&r, m->refuse.reason);
        break;
    case WIRE_BATCH: /* §3.3 */
        m->batch.seq = s_u64(&r);
        m->batch.part = s_u16(&r);
        m->batch.parts = s_u16(&r);
        s_range(&r, m->batch.parts >= 1 && m->batch.parts <= WIRE_PARTS_MAX &&
                        m->batch.part < m->batch.parts);
        m->batch.watermark = s_u64(&r);
        m->batch.packet_count = s_u32(&r);
        s_range(&r, m->batch.packet_count <= WIRE_PACKETS_MAX);
        m->batch.payload_len = s_u32(&r);
        s_range(&r,
                m->batch.payload_len >= WIRE_FRAME_HDR && m->batch.payload_len <= WIRE_PAYLOAD_MAX);
        m->batch.hop_count = s_u8(&r);
        s_range(&r, m->batch.hop_count <= WIRE_HOPS_MAX);
        for (unsigned i = 0; !r.err && i < m->batch.hop_count; i++) {
            s_label(&r, m->batch.hops[i].node, s_name_byte);
            m->batch.hops[i].recv_ns = s_u64(&r);
            m->batch.hops[i].relay_seq = s_u64(&r);
        }
        break;
    case WIRE_ACK: /* §3.5 */
        m->ack.count = s_u16(&r);
        s_range(&r, m->ack.count >= 1 && m->ack.count <= WIRE_ACKS_MAX);
        for (unsigned i = 0; !r.err && i < m->ack.count; i++) {
            m->ack.entries[i].seq = s_u64(&r);
            m->ack.entries[i].part = s_u16(&r);
        }
        break;
    case WIRE_HEARTBEAT: /* §3.6 */
    case WIRE_END:
        m->progress.watermark = s_u64(&r);
        m->progress.next_seq = s_u64(&r);
        break;
    case WIRE_STATS: /* §3.7 */
        m->stats.count = s_u8(&r);
        s_range(&r, m->stats.count >= 1 && m->stats.count <= WIRE_IFACES_MAX);
        for (unsigned i = 0; !r.err && i < m->stats.count; i++) {
            wire_stats_t *e = &m->stats.entries[i];
            e->ifindex = s_u16(&r);
            e->flags = s_u16(&r);
            e->recv = s_u64(&r);
            e->drop = s_u64(&r);
            e->ifdrop = s_u64(&r);
            e->sent = s_u64(&r);
            e->dead = s_u64(&r);
            s_range(&r, s_stats_valid(e, i ? &m->stats.entries[i - 1] : NULL));
        }
        break;
    case WIRE_FEATURES: /* §3.8: unknown bits are kept, and ignored by their users */
        m->features.flags = s_u32(&r);
        break;
    case WIRE_DEAD: /* §3.9 */
        m->dead.count = s_u16(&r);
        s_range(&r, m->dead.count >= 1 && m->dead.count <= WIRE_DEAD_MAX);
        for (unsigned i = 0; !r.err && i < m->dead.count; i++) {
            wire_range_t *e = &m->dead.ranges[i];
            e->lo = s_u64(&r);
            e->hi = s_u64(&r);
            s_range(&r, s_dead_valid(e, i ? &m->dead.ranges[i - 1] : NULL));
        }
        break;
    default:
        return WIRE_ERR_TYPE;
    }
    if (!r.err && r.b.pos != r.b.end)
        r.err = WIRE_ERR_TRAILING;
    return r.err;
}

size_t wire_encode(const wire_msg_t *m, uint8_t *buf, size_t cap)
{
    s_wr_t w = {.pos = buf, .end = buf + cap};
    s_put(&w, WIRE_SIGNATURE, 2);
    s_put(&w, WIRE_VERSION, 1);
    s_put(&w, m->type, 1);
    s_put_label(&w, m->source, s_name_byte);
    s_put(&w, m->epoch, 8);
    if (m->epoch == 0)
        w.bad = true;
    switch (m->type) {
    case WIRE_HELLO:
        s_put(&w, m->hello.settled, 8);
        s_put_text(&w, m->hello.description);
        if (m->hello.iface_count < 1 || m->hello.iface_count > WIRE_IFACES_MAX)
            w.bad = true;
        s_put(&w, m->hello.iface_count, 1);
        for (unsigned i = 0; !w.bad && i < m->hello.iface_count; i++) {
            const wire_iface_t *f = &m->hello.ifaces[i];
            s_put(&w, f->linktype, 2);
            if (f->snaplen < 1 || f->snaplen > WIRE_SNAPLEN_MAX)
                w.bad = true;
            s_put(&w, f->snaplen, 4);
            s_put_label(&w, f->name, s_ifname_byte);
            s_put_text(&w, f->description);
        }
        break;
    case WIRE_WELCOME:
        break;
    case WIRE_REFUSE:
        if (m->refuse.code < WIRE_REFUSE_UNKNOWN_SOURCE || m->refuse.code > WIRE_REFUSE_CONFLICT)
            w.bad = true;
        s_put(&w, m->refuse.code, 1);
        s_put_text(&w, m->refuse.reason);
        break;
    case WIRE_BATCH:
        s_put(&w, m->batch.seq, 8);
        s_put(&w, m->batch.part, 2);
        s_put(&w, m->batch.parts, 2);
        s_put(&w, m->batch.watermark, 8);
        s_put(&w, m->batch.packet_count, 4);
        s_put(&w, m->batch.payload_len, 4);
        if (m->batch.parts < 1 || m->batch.parts > WIRE_PARTS_MAX ||
            m->batch.part >= m->batch.parts || m->batch.packet_count > WIRE_PACKETS_MAX ||
            m->batch.payload_len < WIRE_FRAME_HDR || m->batch.payload_len > WIRE_PAYLOAD_MAX ||
            m->batch.hop_count > WIRE_HOPS_MAX)
            w.bad = true;
        s_put(&w, m->batch.hop_count, 1);
        for (unsigned i = 0; !w.bad && i < m->batch.hop_count; i++) {
            s_put_label(&w, m->batch.hops[i].node, s_name_byte);
            s_put(&w, m->batch.hops[i].recv_ns, 8);
            s_put(&w, m->batch.hops[i].relay_seq, 8);
        }
        break;
    case WIRE_ACK:
        if (m->ack.count < 1 || m->ack.count > WIRE_ACKS_MAX)
            w.bad = true;
        s_put(&w, m->ack.count, 2);
        for (unsigned i = 0; !w.bad && i < m->ack.count; i++) {
            s_put(&w, m->ack.entries[i].seq, 8);
            s_put(&w, m->ack.entries[i].part, 2);
        }
        break;
    case WIRE_HEARTBEAT:
    case WIRE_END:
        s_put(&w, m->progress.watermark, 8);
        s_put(&w, m->progress.next_seq, 8);
        break;
    case WIRE_STATS:
        if (m->stats.count < 1 || m->stats.count > WIRE_IFACES_MAX)
            w.bad = true;
        s_put(&w, m->stats.count, 1);
        for (unsigned i = 0; !w.bad && i < m->stats.count; i++) {
            const wire_stats_t *e = &m->stats.entries[i];
            if (!s_stats_valid(e, i ? &m->stats.entries[i - 1] : NULL))
                w.bad = true;
            s_put(&w, e->ifindex, 2);
            s_put(&w, e->flags, 2);
            s_put(&w, e->recv, 8);
            s_put(&w, e->drop, 8);
            s_put(&w, e->ifdrop, 8);
            s_put(&w, e->sent, 8);
            s_put(&w, e->dead, 8);
        }
        break;
    case WIRE_FEATURES:
        s_put(&w, m->features.flags, 4);
        break;
    case WIRE_DEAD:
        if (m->dead.count < 1 || m->dead.count > WIRE_DEAD_MAX)
            w.bad = true;
        s_put(&w, m->dead.count, 2);
        for (unsigned i = 0; !w.bad && i < m->dead.count; i++) {
            const wire_range_t *e = &m->dead.ranges[i];
            if (!s_dead_valid(e, i ? &m->dead.ranges[i - 1] : NULL))
                w.bad = true;
            s_put(&w, e->lo, 8);
            s_put(&w, e->hi, 8);
        }
        break;
    default:
        w.bad = true;
    }
    return w.bad ? 0 : (size_t)(w.pos - buf);
}

/* ---- §4 payload ------------------------------------------------------ */

/* The walk of a payload frame reads each record's fixed header once, with
 * one bounds check per record (not one per field): this runs for every
 * packet on receipt, so its cost is the receiver's per-packet floor. */
wire_err_t wire_packets_check(const uint8_t *buf, size_t len, uint32_t packet_count,
                              unsigned iface_count, uint64_t *min_ts, uint64_t *max_ts)
{
    s_rd_t r = s_reader(buf, len);
    wire_type_t type = 0;
    s_header(&r, &type);
    if (r.err)
        return r.err;
    if (type != WIRE_PACKETS)
        return WIRE_ERR_TYPE;
    if (iface_count > WIRE_IFACES_MAX)
        iface_count = WIRE_IFACES_MAX;
    const uint8_t *p = buf + WIRE_FRAME_HDR, *end = buf + len;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint32_t i = 0; i < packet_count; i++) {
        if ((size_t)(end - p) < WIRE_PKT_HDR)
            return WIRE_ERR_TRUNCATED;
        uint64_t ts = wire_be64(p);
        uint16_t ifindex = wire_be16(p + 8);
        uint16_t flags = wire_be16(p + 10);
        uint32_t caplen = wire_be32(p + 12);
        uint32_t origlen = wire_be32(p + 16);
        if (flags != 0)
            return WIRE_ERR_RANGE;
        if (ifindex >= iface_count || caplen > origlen || caplen > WIRE_SNAPLEN_MAX)
            return WIRE_ERR_CAPLEN;
        p += WIRE_PKT_HDR;
        if ((size_t)(end - p) < caplen)
            return WIRE_ERR_TRUNCATED;
        p += caplen;
        lo = ts < lo ? ts : lo;
        hi = ts > hi ? ts : hi;
    }
    if (p != end)
        return WIRE_ERR_TRAILING;
    if (min_ts)
        *min_ts = lo;
    if (max_ts)
        *max_ts = hi;
    return WIRE_OK;
}

bool wire_packets_next(const uint8_t *buf, size_t len, size_t *off, wire_packet_t *pkt)
{
    if (*off == 0)
        *off = WIRE_FRAME_HDR;
    if (*off > len || len - *off < WIRE_PKT_HDR)
        return false;
    size_t next = wire_packet_at(buf, *off, pkt);
    if (len - *off - WIRE_PKT_HDR < pkt->caplen)
        return false;
    *off = next;
    return true;
}

bool wire_packets_begin(uint8_t *buf, size_t cap, size_t *off)
{
    if (cap < WIRE_FRAME_HDR)
        return false;
    s_wr_t w = {.pos = buf, .end = buf + cap};
    s_put(&w, WIRE_SIGNATURE, 2);
    s_put(&w, WIRE_VERSION, 1);
    s_put(&w, WIRE_PACKETS, 1);
    *off = WIRE_FRAME_HDR;
    return true;
}

bool wire_packets_put(uint8_t *buf, size_t cap, size_t *off, const wire_packet_t *pkt)
{
    if (*off > cap || cap - *off < (size_t)WIRE_PKT_HDR + pkt->caplen)
        return false;
    s_wr_t w = {.pos = buf + *off, .end = buf + cap};
    s_put(&w, pkt->ts_ns, 8);
    s_put(&w, pkt->ifindex, 2);
    s_put(&w, 0, 2);
    s_put(&w, pkt->caplen, 4);
    s_put(&w, pkt->origlen, 4);
    if (pkt->caplen)
        memcpy(w.pos, pkt->data, pkt->caplen);
    *off += WIRE_PKT_HDR + pkt->caplen;
    return true;
}
