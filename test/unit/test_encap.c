/*
 * test_encap — the collector's VLAN tags and tunnel headers, byte for byte
 * against references written out by hand from IEEE 802.1Q, RFC 2784/2890
 * (GRE, key) and RFC 7348 (VXLAN); the sizes that decide truncation at
 * their boundaries; the TUNNEL and VLAN_TAGS parsers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "encap.h"

#include <errno.h>
#include <string.h>

/* dst 02:00:00:00:00:02, src 02:00:00:00:00:01, IPv4, then 6 payload bytes */
static const uint8_t s_frame[] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00,
                                  0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00, 0x14, 0xAA, 0xBB};

static void test_vlan_insert_exact(void **state)
{
    (void)state;
    uint8_t out[64];
    long n = encap_vlan_insert(out, sizeof out, s_frame, sizeof s_frame, 100, SIZE_MAX);
    static const uint8_t want[] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00,
                                   0x00, 0x00, 0x00, 0x01, 0x81, 0x00, 0x00, 0x64,
                                   0x08, 0x00, 0x45, 0x00, 0x00, 0x14, 0xAA, 0xBB};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(out, want, sizeof want);
    /* priority 5, VLAN 4094: the whole TCI as given */
    n = encap_vlan_insert(out, sizeof out, s_frame, sizeof s_frame, 0xAFFE, SIZE_MAX);
    assert_int_equal(n, sizeof want);
    assert_int_equal(out[14], 0xAF);
    assert_int_equal(out[15], 0xFE);
}

static void test_vlan_insert_truncates(void **state)
{
    (void)state;
    uint8_t out[64];
    memset(out, 0xEE, sizeof out);
    /* cut at 17: MACs, tag, one byte of the type */
    long n = encap_vlan_insert(out, sizeof out, s_frame, sizeof s_frame, 200, 17);
    assert_int_equal(n, 17);
    assert_int_equal(out[14], 0x00);
    assert_int_equal(out[15], 200);
    assert_int_equal(out[16], 0x08);
    assert_int_equal(out[17], 0xEE); /* nothing written past the cut */
    /* the smallest cut keeps the MACs and the tag */
    assert_int_equal(encap_vlan_insert(out, sizeof out, s_frame, sizeof s_frame, 200, 16), 16);
    assert_int_equal(encap_vlan_insert(out, sizeof out, s_frame, sizeof s_frame, 200, 15), -EINVAL);
    /* a max above the result changes nothing */
    assert_int_equal(
        encap_vlan_insert(out, sizeof out, s_frame, sizeof s_frame, 200, sizeof s_frame + 4),
        sizeof s_frame + 4);
    /* short frames, small buffers */
    assert_int_equal(encap_vlan_insert(out, sizeof out, s_frame, 11, 1, SIZE_MAX), -EINVAL);
    assert_int_equal(encap_vlan_insert(out, 12, s_frame, 12, 1, SIZE_MAX), -ENOBUFS);
    assert_int_equal(encap_vlan_insert(out, 16, s_frame, 12, 1, SIZE_MAX), 16);
    assert_int_equal(
        encap_vlan_insert(out, sizeof s_frame + 3, s_frame, sizeof s_frame, 1, SIZE_MAX), -ENOBUFS);
}

static void test_gre_headers(void **state)
{
    (void)state;
    encap_tunnel_t t;
    char why[200];
    uint8_t h[ENCAP_HDR_MAX];
    assert_int_equal(encap_tunnel_parse("gretap://192.0.2.7?key=305419896", &t, why, sizeof why),
                     0);
    assert_int_equal(t.kind, ENCAP_GRETAP);
    assert_string_equal(t.host, "192.0.2.7");
    assert_true(t.has_key);
    assert_int_equal(encap_header(&t, ENCAP_ETH_BRIDGE, h), 8);
    static const uint8_t keyed[] = {0x20, 0x00, 0x65, 0x58, 0x12, 0x34, 0x56, 0x78};
    assert_memory_equal(h, keyed, 8);
    assert_int_equal(encap_overhead(&t), 28);

    assert_int_equal(encap_tunnel_parse("gre://analysis.example", &t, why, sizeof why), 0);
    assert_int_equal(t.kind, ENCAP_GRE);
    assert_false(t.has_key);
    assert_int_equal(encap_header(&t, ENCAP_ETH_IPV6, h), 4);
    static const uint8_t plain[] = {0x00, 0x00, 0x86, 0xDD};
    assert_memory_equal(h, plain, 4);
    assert_int_equal(encap_overhead(&t), 24);

    /* key 0 is a key: sent, with the K bit */
    assert_int_equal(encap_tunnel_parse("gre://10.0.0.1?key=0", &t, why, sizeof why), 0);
    assert_int_equal(encap_header(&t, ENCAP_ETH_IPV4, h), 8);
    static const uint8_t zero[] = {0x20, 0x00, 0x08, 0x00, 0, 0, 0, 0};
    assert_memory_equal(h, zero, 8);
    assert_int_equal(encap_tunnel_parse("gre://10.0.0.1?key=4294967295", &t, why, sizeof why), 0);
    assert_int_equal(t.key, UINT32_MAX);
}

static void test_vxlan_header(void **state)
{
    (void)state;
    encap_tunnel_t t;
    char why[200];
    uint8_t h[ENCAP_HDR_MAX];
    assert_int_equal(encap_tunnel_parse("vxlan://10.1.2.3?vni=42", &t, why, sizeof why), 0);
    assert_int_equal(t.kind, ENCAP_VXLAN);
    assert_int_equal(t.port, 4789);
    assert_int_equal(t.vni, 42);
    assert_int_equal(encap_header(&t, 0, h), 8);
    static const uint8_t want[] = {0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A, 0x00};
    assert_memory_equal(h, want, 8);
    assert_int_equal(encap_tunnel_parse("vxlan://h:8472?vni=16777215", &t, why, sizeof why), 0);
    assert_int_equal(t.port, 8472);
    assert_string_equal(t.host, "h");
    encap_header(&t, 0, h);
    static const uint8_t top[] = {0x08, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x00};
    assert_memory_equal(h, top, 8);
    assert_int_equal(encap_overhead(&t), 36);
    assert_int_equal(encap_tunnel_parse("vxlan://h", &t, why, sizeof why), 0);
    assert_int_equal(t.vni, 0);
}

static void test_payload_max(void **state)
{
    (void)state;
    encap_tunnel_t t;
    char why[200];
    assert_int_equal(encap_tunnel_parse("gretap://h?key=1", &t, why, sizeof why), 0);
    assert_int_equal(encap_payload_max(&t, 1500), 1472); /* 1500 - 20 - 8 */
    assert_int_equal(encap_payload_max(&t, 28), 0);
    assert_int_equal(encap_payload_max(&t, 29), 1);
    assert_int_equal(encap_payload_max(&t, 9000), 8972);
    assert_int_equal(encap_payload_max(&t, 100000), 65535 - 28);
    assert_int_equal(encap_tunnel_parse("gretap://h", &t, why, sizeof why), 0);
    assert_int_equal(encap_payload_max(&t, 1500), 1476);
    assert_int_equal(encap_tunnel_parse("vxlan://h?vni=1", &t, why, sizeof why), 0);
    assert_int_equal(encap_payload_max(&t, 1500), 1464); /* 1500 - 20 - 8 - 8 */
    assert_int_equal(encap_payload_max(&t, 36), 0);
}

static void test_tunnel_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "gretap:/h",
        "udp://h",
        "gretap://",
        "gre://h:47",
        "gre://h?vni=1",
        "vxlan://h?key=1",
        "gre://h?key=4294967296",
        "gre://h?key=",
        "gre://h?key=1x",
        "vxlan://h?vni=16777216",
        "vxlan://h:0",
        "vxlan://h:65536",
        "vxlan://:4789",
        "gre://h/x",
        "gre://[::1]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        encap_tunnel_t t;
        char why[200] = "";
        if (encap_tunnel_parse(bad[i], &t, why, sizeof why) != -EINVAL)
            fail_msg("accepted: '%s'", bad[i]);
        assert_true(why[0] != '\0');
    }
}

static void test_ip_payload(void **state)
{
    (void)state;
    size_t off = 0;
    uint16_t proto = 0;
    assert_int_equal(encap_ip_payload(s_frame, sizeof s_frame, &off, &proto), 0);
    assert_int_equal(off, 14);
    assert_int_equal(proto, 0x0800);
    /* QinQ then 802.1Q then IPv6 */
    uint8_t q[40] = {0};
    memcpy(q + 12, (const uint8_t[]){0x88, 0xA8, 0x00, 0x0A, 0x81, 0x00, 0x00, 0x64, 0x86, 0xDD},
           10);
    assert_int_equal(encap_ip_payload(q, 22, &off, &proto), 0);
    assert_int_equal(off, 22);
    assert_int_equal(proto, 0x86DD);
    /* cut inside the tags */
    assert_int_equal(encap_ip_payload(q, 21, &off, &proto), -EINVAL);
    assert_int_equal(encap_ip_payload(q, 13, &off, &proto), -EINVAL);
    /* ARP */
    uint8_t arp[14] = {0};
    arp[12] = 0x08;
    arp[13] = 0x06;
    assert_int_equal(encap_ip_payload(arp, sizeof arp, &off, &proto), -EPROTONOSUPPORT);
    assert_int_equal(encap_raw_proto((const uint8_t[]){0x45}, 1), 0x0800);
    assert_int_equal(encap_raw_proto((const uint8_t[]){0x60}, 1), 0x86DD);
    assert_int_equal(encap_raw_proto((const uint8_t[]){0x50}, 1), 0);
    assert_int_equal(encap_raw_proto(NULL, 0), 0);
}

static void test_vlan_tags_parse(void **state)
{
    (void)state;
    encap_vlan_tag_t tags[4];
    char why[200];
    assert_int_equal(encap_vlan_tags_parse("edge-a:100, edge-b:200,", tags, 4, why, sizeof why), 2);
    assert_string_equal(tags[0].source, "edge-a");
    assert_int_equal(tags[0].vid, 100);
    assert_string_equal(tags[1].source, "edge-b");
    assert_int_equal(tags[1].vid, 200);
    assert_int_equal(encap_vlan_tags_parse("", tags, 4, why, sizeof why), 0);
    assert_int_equal(encap_vlan_tags_parse("a:1,b:4094", tags, 4, why, sizeof why), 2);
    static const char *bad[] = {
        "a", "a:0", "a:4095", "a:1,a:2", ":5", "a b:1", "a:1,b:2,c:3,d:4,e:5", "a:x", "a:"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        if (encap_vlan_tags_parse(bad[i], tags, 4, why, sizeof why) != -EINVAL)
            fail_msg("accepted: '%s'", bad[i]);
        assert_true(why[0] != '\0');
    }
    encap_vlan_tags_parse("a:1,a:2", tags, 4, why, sizeof why);
    assert_string_equal(why, "'a' is given twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vlan_insert_exact), cmocka_unit_test(test_vlan_insert_truncates),
        cmocka_unit_test(test_gre_headers),       cmocka_unit_test(test_vxlan_header),
        cmocka_unit_test(test_payload_max),       cmocka_unit_test(test_tunnel_refused),
        cmocka_unit_test(test_ip_payload),        cmocka_unit_test(test_vlan_tags_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
