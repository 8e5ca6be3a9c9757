/*
 * encap — VLAN tags and tunnel headers for the collector's sent copies
 * (encap.h). Every header is written byte by byte in network order, never
 * through a struct laid over the buffer.
 */
#include "encap.h"

#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void s_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t s_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* A decimal number of at most `max`, the whole of [s, end). */
static int s_number(const char *s, const char *end, uint64_t max, uint64_t *v)
{
    if (s == end || end - s > 10)
        return -EINVAL;
    uint64_t n = 0;
    for (const char *p = s; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (n > max)
        return -EINVAL;
    *v = n;
    return 0;
}

const char *encap_kind_name(encap_kind_t kind)
{
    switch (kind) {
    case ENCAP_GRETAP:
        return "gretap";
    case ENCAP_GRE:
        return "gre";
    case ENCAP_VXLAN:
        return "vxlan";
    }
    return "?";
}

int encap_tunnel_parse(const char *text, encap_tunnel_t *t, char *why, size_t whylen)
{
    static const struct {
        const char *scheme;
        encap_kind_t kind;
    } schemes[] = {{"gretap://", ENCAP_GRETAP}, {"gre://", ENCAP_GRE}, {"vxlan://", ENCAP_VXLAN}};
    memset(t, 0, sizeof *t);
    const char *p = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++) {
        size_t n = strlen(schemes[i].scheme);
        if (strncmp(text, schemes[i].scheme, n) == 0) {
            t->kind = schemes[i].kind;
            p = text + n;
            break;
        }
    }
    if (!p) {
        snprintf(why, whylen,
                 "expected gretap://HOST[?key=N], gre://HOST[?key=N] or "
                 "vxlan://HOST[:PORT][?vni=N]");
        return -EINVAL;
    }
    const char *query = strchr(p, '?');
    const char *hend = query ? query : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(hend - p));
    if (t->kind == ENCAP_VXLAN) {
        t->port = ENCAP_VXLAN_PORT;
        if (colon) {
            uint64_t port;
            if (s_number(colon + 1, hend, 65535, &port) < 0 || port == 0) {
                snprintf(why, whylen, "port: expected 1..65535");
                return -EINVAL;
            }
            t->port = (uint16_t)port;
            hend = colon;
        }
    } else if (colon) {
        snprintf(why, whylen, "GRE has no port");
        return -EINVAL;
    }
    size_t hlen = (size_t)(hend - p);
    if (hlen == 0 || hlen > ENCAP_HOST_MAX) {
        snprintf(why, whylen, "expected a host (an IPv4 address or a name)");
        return -EINVAL;
    }
    for (const char *c = p; c < hend; c++) {
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_') {
            snprintf(why, whylen, "host: unexpected character '%c' (an IPv4 address or a name)",
                     isprint((unsigned char)*c) ? *c : '?');
            return -EINVAL;
        }
    }
    memcpy(t->host, p, hlen);
    t->host[hlen] = '\0';
    if (!query)
        return 0;
    /* one parameter: key for GRE and GRETAP, vni for VXLAN */
    const char *want = t->kind == ENCAP_VXLAN ? "vni=" : "key=";
    if (strncmp(query + 1, want, 4) != 0) {
        snprintf(why, whylen, "%s: the only parameter is %.3s", encap_kind_name(t->kind), want);
        return -EINVAL;
    }
    const char *v = query + 5;
    uint64_t n;
    if (t->kind == ENCAP_VXLAN) {
        if (s_number(v, v + strlen(v), 0xFFFFFF, &n) < 0) {
            snprintf(why, whylen, "vni: expected 0..16777215");
            return -EINVAL;
        }
        t->vni = (uint32_t)n;
    } else {
        if (s_number(v, v + strlen(v), UINT32_MAX, &n) < 0) {
            snprintf(why, whylen, "key: expected 0..4294967295");
            return -EINVAL;
        }
        t->has_key = true;
        t->key = (uint32_t)n;
    }
    return 0;
}

size_t encap_header(const encap_tunnel_t *t, uint16_t proto, uint8_t *out)
{
    if (t->kind == ENCAP_VXLAN) {
        s_put32(out, 0x08000000u); /* I: the VNI is valid; everything else reserved */
        s_put32(out + 4, (t->vni & 0xFFFFFFu) << 8);
        return ENCAP_VXLAN_LEN;
    }
    s_put16(out, t->has_key ? 0x2000 : 0); /* K bit; no checksum, no sequence, version 0 */
    s_put16(out + 2, proto);
    if (!t->has_key)
        return 4;
    s_put32(out + 4, t->key);
    return 8;
}

size_t encap_overhead(const encap_tunnel_t *t)
{
    if (t->kind == ENCAP_VXLAN)
        return ENCAP_IPV4_LEN + ENCAP_UDP_LEN + ENCAP_VXLAN_LEN;
    return ENCAP_IPV4_LEN + (t->has_key ? 8u : 4u);
}

size_t encap_payload_max(const encap_tunnel_t *t, size_t mtu)
{
    size_t over = encap_overhead(t);
    size_t max = mtu > over ? mtu - over : 0;
    /* the outer IPv4 total length field is 16 bits */
    return max > 65535 - over ? 65535 - over : max;
}

int encap_ip_payload(const uint8_t *frame, size_t len, size_t *off, uint16_t *proto)
{
    size_t at = ENCAP_MAC_LEN;
    for (;;) {
        if (len < at + 2)
            return -EINVAL;
        uint16_t type = s_get16(frame + at);
        at += 2;
        if (type == ENCAP_ETH_8021Q || type == ENCAP_ETH_8021AD) {
            at += 2; /* the TCI; the next type follows */
            continue;
        }
        if (type != ENCAP_ETH_IPV4 && type != ENCAP_ETH_IPV6)
            return -EPROTONOSUPPORT;
        *off = at;
        *proto = type;
        return 0;
    }
}

uint16_t encap_raw_proto(const uint8_t *pkt, size_t len)
{
    if (len < 1)
        return 0;
    switch (pkt[0] >> 4) {
    case 4:
        return ENCAP_ETH_IPV4;
    case 6:
        return ENCAP_ETH_IPV6;
    default:
        return 0;
    }
}

long encap_vlan_insert(uint8_t *out, size_t outcap, const uint8_t *frame, size_t len, uint16_t tci,
                       size_t max)
{
    if (len < ENCAP_MAC_LEN || max < ENCAP_MAC_LEN + ENCAP_VLAN_LEN)
        return -EINVAL;
    size_t total = len + ENCAP_VLAN_LEN;
    if (total > max)
        total = max;
    if (total > outcap)
        return -ENOBUFS;
    memcpy(out, frame, ENCAP_MAC_LEN);
    s_put16(out + ENCAP_MAC_LEN, ENCAP_ETH_8021Q);
    s_put16(out + ENCAP_MAC_LEN + 2, tci);
    size_t hdr = ENCAP_MAC_LEN + ENCAP_VLAN_LEN;
    memcpy(out + hdr, frame + ENCAP_MAC_LEN, total - hdr);
    return (long)total;
}

int encap_vlan_tags_parse(const char *text, encap_vlan_tag_t *tags, size_t max, char *why,
                          size_t whylen)
{
    size_t n = 0;
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *s = p, *e = end;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        p = *end ? end + 1 : end;
        if (s == e)
            continue;
        int ilen = (int)(e - s);
        const char *colon = memchr(s, ':', (size_t)(e - s));
        if (!colon) {
            snprintf(why, whylen, "'%.*s': expected node:vid (edge-a:100)", ilen, s);
            return -EINVAL;
        }
        char name[sizeof tags->source];
        size_t nlen = (size_t)(colon - s);
        if (nlen >= sizeof name) {
            snprintf(why, whylen, "'%.*s': the node id is longer than 64 bytes", ilen, s);
            return -EINVAL;
        }
        memcpy(name, s, nlen);
        name[nlen] = '\0';
        if (!cfg_name_valid(name)) {
            snprintf(why, whylen, "'%.*s': a node id is 1 to 64 of A-Z a-z 0-9 . _ -", ilen, s);
            return -EINVAL;
        }
        uint64_t vid;
        if (s_number(colon + 1, e, 4094, &vid) < 0 || vid == 0) {
            snprintf(why, whylen, "'%.*s': a VLAN id is 1..4094", ilen, s);
            return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            if (strcmp(tags[i].source, name) == 0) {
                snprintf(why, whylen, "'%s' is given twice", name);
                return -EINVAL;
            }
        }
        if (n == max) {
            snprintf(why, whylen, "more than %zu entries", max);
            return -EINVAL;
        }
        memcpy(tags[n].source, name, nlen + 1);
        tags[n].vid = (uint16_t)vid;
        n++;
    }
    return (int)n;
}
