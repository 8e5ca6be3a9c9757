/*
 * event — the two encodings of an event: JSON (cJSON) and InfluxDB line
 * protocol. Field names are the same in both (README "Events").
 *
 * cJSON allocates a node per value. So that no event costs a heap
 * allocation, cJSON's allocator hooks (global to the process; nothing else
 * in tapmesh uses cJSON) hand out memory from a fixed arena while an event
 * is being built, and fall back to malloc/free otherwise; the arena is
 * emptied once the line is printed into the caller's buffer.
 */
#include "event.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

/* ---- cJSON's arena --------------------------------------------------- */

#define S_ARENA_BYTES 32768 /* an event's tree takes about 3 KiB */

static _Alignas(16) unsigned char s_arena[S_ARENA_BYTES];
static size_t s_arena_used;
static bool s_arena_on;

static void *s_alloc(size_t n)
{
    size_t at = (s_arena_used + 15) & ~(size_t)15;
    if (s_arena_on && n <= S_ARENA_BYTES && at <= S_ARENA_BYTES - n) {
        s_arena_used = at + n;
        return s_arena + at;
    }
    return malloc(n);
}

static void s_free(void *p)
{
    unsigned char *c = p;
    if (c >= s_arena && c < s_arena + S_ARENA_BYTES)
        return; /* the arena is emptied as a whole */
    free(p);
}

static void s_arena_begin(void)
{
    static bool hooked;
    if (!hooked) {
        cJSON_Hooks h = {.malloc_fn = s_alloc, .free_fn = s_free};
        cJSON_InitHooks(&h);
        hooked = true;
    }
    s_arena_used = 0;
    s_arena_on = true;
}

static void s_arena_end(cJSON *root)
{
    cJSON_Delete(root); /* frees what did not fit in the arena */
    s_arena_on = false;
    s_arena_used = 0;
}

/* ---- common ---------------------------------------------------------- */

static const char *const s_measurement[] = {"tapmesh_packet", "tapmesh_flow", "tapmesh_loss"};
static const char *const s_kind[] = {"packet", "flow", "loss"};

void event_mac_text(const uint8_t mac[6], char out[18])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
             mac[5]);
}

static void s_addr_text(const decode_flow_t *f, const uint8_t *addr, char out[INET6_ADDRSTRLEN])
{
    if (!inet_ntop(f->family == DECODE_IPV4 ? AF_INET : AF_INET6, addr, out, INET6_ADDRSTRLEN))
        out[0] = '\0';
}

static bool s_dissected(const event_t *ev)
{
    return ev->kind == EVENT_PACKET || ev->kind == EVENT_FLOW;
}

/* ---- JSON ------------------------------------------------------------ */

static bool s_json_u64(cJSON *o, const char *name, uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, v);
    /* raw: a double would round nanosecond timestamps (> 2^53) */
    return cJSON_AddRawToObject(o, name, text) != NULL;
}

static bool s_json_str(cJSON *o, const char *name, const char *v)
{
    return cJSON_AddStringToObject(o, name, v) != NULL;
}

static bool s_json_build(cJSON *o, const event_t *ev)
{
    bool ok = s_json_str(o, "event", s_kind[ev->kind]) && s_json_str(o, "source", ev->source);
    if (ev->iface[0])
        ok = ok && s_json_str(o, "iface", ev->iface);
    ok = ok && s_json_str(o, "reason", ev->reason) && s_json_str(o, "severity", ev->severity) &&
         s_json_u64(o, "ts_ns", ev->ts_ns);
    if (ev->kind == EVENT_PACKET)
        ok = ok && s_json_u64(o, "caplen", ev->caplen) && s_json_u64(o, "len", ev->len);
    if (ev->kind == EVENT_FLOW)
        ok = ok && s_json_u64(o, "packets", ev->packets) && s_json_u64(o, "bytes", ev->bytes) &&
             s_json_u64(o, "first_ns", ev->first_ns) && s_json_u64(o, "last_ns", ev->last_ns);
    if (ev->kind == EVENT_LOSS)
        ok = ok && s_json_u64(o, "count", ev->count);
    if (!s_dissected(ev))
        return ok;
    const decode_eth_t *e = &ev->eth;
    if (e->present) {
        char mac[18];
        event_mac_text(e->src, mac);
        ok = ok && s_json_str(o, "eth_src", mac);
        event_mac_text(e->dst, mac);
        ok = ok && s_json_str(o, "eth_dst", mac) && s_json_u64(o, "ethertype", e->ethertype);
        if (e->has_vlan)
            ok = ok && s_json_u64(o, "vlan", e->vlan);
    }
    const decode_flow_t *f = &ev->flow;
    if (f->family != DECODE_OTHER) {
        char addr[INET6_ADDRSTRLEN];
        ok = ok && s_json_u64(o, "ip_version", f->family == DECODE_IPV4 ? 4 : 6);
        s_addr_text(f, f->src, addr);
        ok = ok && s_json_str(o, "ip_src", addr);
        s_addr_text(f, f->dst, addr);
        ok = ok && s_json_str(o, "ip_dst", addr) && s_json_u64(o, "ip_proto", f->proto);
        if (f->has_ports)
            ok = ok && s_json_u64(o, "src_port", f->sport) && s_json_u64(o, "dst_port", f->dport);
    }
    return ok;
}

static int s_json(const event_t *ev, char *buf, size_t cap)
{
    if (cap < 2 || cap > INT32_MAX)
        return -ENOSPC;
    s_arena_begin();
    cJSON *o = cJSON_CreateObject();
    int rc = -ENOMEM;
    if (o && s_json_build(o, ev)) {
        rc = -ENOSPC;
        if (cJSON_PrintPreallocated(o, buf, (int)cap - 1, false)) {
            size_t n = strlen(buf);
            buf[n] = '\n';
            rc = (int)n + 1;
        }
    }
    s_arena_end(o);
    return rc;
}

/* ---- InfluxDB line protocol ------------------------------------------ */

int event_influx_escape(char what, const char *text, char *buf, size_t *len, size_t cap)
{
    size_t n = *len;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        unsigned char c = *p;
        bool esc;
        switch (what) {
        case 'm':
            esc = c == ',' || c == ' ';
            break;
        case 'k':
            esc = c == ',' || c == '=' || c == ' ';
            break;
        default:
            esc = c == '"' || c == '\\';
            break;
        }
        if (c < 0x20 || c == 0x7f)
            c = '_';
        if (n + esc + 1 > cap)
            return -ENOSPC;
        if (esc)
            buf[n++] = '\\';
        buf[n++] = (char)c;
    }
    *len = n;
    return 0;
}

typedef struct {
    char *buf;
    size_t len, cap;
    bool bad;
    bool first_field;
} s_line_t;

static void s_put(s_line_t *l, const char *text)
{
    size_t n = strlen(text);
    if (l->bad || l->len + n > l->cap) {
        l->bad = true;
        return;
    }
    memcpy(l->buf + l->len, text, n);
    l->len += n;
}

static void s_esc(s_line_t *l, char what, const char *text)
{
    if (!l->bad && event_influx_escape(what, text, l->buf, &l->len, l->cap) < 0)
        l->bad = true;
}

/* ",key=value", omitted when value is empty (line protocol has no empty
 * tag value) */
static void s_tag(s_line_t *l, const char *key, const char *value)
{
    if (!value[0])
        return;
    s_put(l, ",");
    s_esc(l, 'k', key);
    s_put(l, "=");
    s_esc(l, 'k', value);
}

static void s_tag_u(s_line_t *l, const char *key, uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, v);
    s_tag(l, key, text);
}

static void s_field_sep(s_line_t *l, const char *key)
{
    s_put(l, l->first_field ? " " : ",");
    l->first_field = false;
    s_esc(l, 'k', key);
    s_put(l, "=");
}

static void s_field_i(s_line_t *l, const char *key, uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64 "i", v > INT64_MAX ? (uint64_t)INT64_MAX : v);
    s_field_sep(l, key);
    s_put(l, text);
}

static void s_field_s(s_line_t *l, const char *key, const char *v)
{
    s_field_sep(l, key);
    s_put(l, "\"");
    s_esc(l, 's', v);
    s_put(l, "\"");
}

static int s_influx(const event_t *ev, char *buf, size_t cap)
{
    s_line_t l = {.buf = buf, .cap = cap, .first_field = true};
    const decode_eth_t *e = &ev->eth;
    const decode_flow_t *f = &ev->flow;
    bool dissected = s_dissected(ev);
    s_esc(&l, 'm', s_measurement[ev->kind]);
    /* tags: what an event is grouped by */
    s_tag(&l, "source", ev->source);
    s_tag(&l, "iface", ev->iface);
    s_tag(&l, "reason", ev->reason);
    s_tag(&l, "severity", ev->severity);
    if (dissected && e->present) {
        s_tag_u(&l, "ethertype", e->ethertype);
        if (e->has_vlan)
            s_tag_u(&l, "vlan", e->vlan);
    }
    if (dissected && f->family != DECODE_OTHER) {
        char addr[INET6_ADDRSTRLEN];
        s_tag_u(&l, "ip_version", f->family == DECODE_IPV4 ? 4 : 6);
        s_addr_text(f, f->src, addr);
        s_tag(&l, "ip_src", addr);
        s_addr_text(f, f->dst, addr);
        s_tag(&l, "ip_dst", addr);
        s_tag_u(&l, "ip_proto", f->proto);
        if (f->has_ports) {
            s_tag_u(&l, "src_port", f->sport);
            s_tag_u(&l, "dst_port", f->dport);
        }
    }
    /* fields: what is counted or shown */
    switch (ev->kind) {
    case EVENT_PACKET:
        s_field_i(&l, "caplen", ev->caplen);
        s_field_i(&l, "len", ev->len);
        break;
    case EVENT_FLOW:
        s_field_i(&l, "packets", ev->packets);
        s_field_i(&l, "bytes", ev->bytes);
        s_field_i(&l, "first_ns", ev->first_ns);
        s_field_i(&l, "last_ns", ev->last_ns);
        break;
    case EVENT_LOSS:
        s_field_i(&l, "count", ev->count);
        break;
    }
    if (dissected && e->present) {
        char mac[18];
        event_mac_text(e->src, mac);
        s_field_s(&l, "eth_src", mac);
        event_mac_text(e->dst, mac);
        s_field_s(&l, "eth_dst", mac);
    }
    char ts[24];
    snprintf(ts, sizeof ts, " %" PRIu64 "\n",
             ev->ts_ns > INT64_MAX ? (uint64_t)INT64_MAX : ev->ts_ns);
    s_put(&l, ts);
    return l.bad ? -ENOSPC : (int)l.len;
}

int event_format(event_format_t format, const event_t *ev, char *buf, size_t cap)
{
    if ((unsigned)ev->kind > EVENT_LOSS)
        return -EINVAL;
    return format == EVENT_JSON ? s_json(ev, buf, cap) : s_influx(ev, buf, cap);
}
