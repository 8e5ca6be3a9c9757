/*
 * fuzz_encap — libFuzzer target for what common/encap.c reads: captured
 * frames (encap_ip_payload, encap_raw_proto, encap_vlan_insert: they come
 * from the network) and the TUNNEL and VLAN_TAGS values. Properties: the
 * IP payload found lies inside the frame, after the MAC addresses, with an
 * IP protocol type; a tagged copy is the frame with the tag after its MAC
 * addresses, cut at the limit; a parsed tunnel's header has the length its
 * kind says and its payload limit fits under the MTU; parsed VLAN tags are
 * 1..4094 with distinct node ids. A broken property calls abort().
 */
#include "encap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t s_out[70000];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    size_t off;
    uint16_t proto;
    if (encap_ip_payload(data, size, &off, &proto) == 0) {
        if (off < ENCAP_ETHER_LEN || off > size || (off - ENCAP_ETHER_LEN) % 4 != 0 ||
            (proto != ENCAP_ETH_IPV4 && proto != ENCAP_ETH_IPV6))
            abort();
    }
    uint16_t raw = encap_raw_proto(data, size);
    if (raw != 0 && raw != ENCAP_ETH_IPV4 && raw != ENCAP_ETH_IPV6)
        abort();
    size_t max = size ? data[0] * 64u + 16 : 16;
    long n = encap_vlan_insert(s_out, sizeof s_out, data, size, 0x0123, max);
    if (n >= 0) {
        size_t want = size + 4 < max ? size + 4 : max;
        if ((size_t)n != want || memcmp(s_out, data, 12) != 0 || s_out[12] != 0x81 ||
            s_out[13] != 0 || s_out[14] != 0x01 || s_out[15] != 0x23 ||
            memcmp(s_out + 16, data + 12, (size_t)n - 16) != 0)
            abort();
    } else if (size >= 12) {
        abort();
    }
    /* the same bytes as text */
    char text[1024];
    size_t len = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, len);
    text[len] = '\0';
    char why[256];
    encap_tunnel_t t;
    if (encap_tunnel_parse(text, &t, why, sizeof why) == 0) {
        uint8_t h[ENCAP_HDR_MAX];
        size_t hl = encap_header(&t, ENCAP_ETH_IPV4, h);
        size_t want = t.kind == ENCAP_VXLAN || t.has_key ? 8 : 4;
        if (hl != want || t.host[0] == '\0' || t.vni > 0xFFFFFF)
            abort();
        for (size_t mtu = 0; mtu < 70000; mtu += 997)
            if (encap_payload_max(&t, mtu) + encap_overhead(&t) > (mtu > 65535 ? 65535 : mtu) &&
                encap_payload_max(&t, mtu) != 0)
                abort();
    }
    encap_vlan_tag_t tags[8];
    int nt = encap_vlan_tags_parse(text, tags, 8, why, sizeof why);
    for (int i = 0; i < nt; i++) {
        if (tags[i].vid < 1 || tags[i].vid > 4094)
            abort();
        for (int j = 0; j < i; j++)
            if (strcmp(tags[i].source, tags[j].source) == 0)
                abort();
    }
    return 0;
}
