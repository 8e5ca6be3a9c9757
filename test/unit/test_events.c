/*
 * test_events — the event streams' pure parts: the Ethernet header from
 * decode_packet, the InfluxDB line protocol (every escape rule, tags vs
 * fields, the `i` suffix, the timestamp) against hand-written lines, the
 * JSON lines read back with cJSON's parser, the flow table (LRU order,
 * overflow, totals kept) and the packing of lines into datagrams; and the
 * sender end to end over a UDP socket of the test's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "decode.h"
#include "event.h"
#include "events.h"
#include "evsend.h"
#include "flowtab.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Ethernet, VLAN 100 (priority 5), IPv4 UDP 192.0.2.1:1234 -> 198.51.100.2:53 */
static const uint8_t s_vlan_udp[] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55,             /* dst */
    0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,             /* src */
    0x81, 0x00, 0xa0, 0x64, 0x08, 0x00,             /* 802.1Q: PCP 5, VID 100; IPv4 */
    0x45, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, /* IPv4 */
    0x40, 0x11, 0x00, 0x00, 192,  0,    2,    1,    /* */
    198,  51,   100,  2,                            /* */
    0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, /* UDP */
    'a',  'b',  'c',  'd'};

static void test_decode_eth(void **state)
{
    (void)state;
    decode_flow_t f;
    decode_eth_t e;
    assert_true(decode_packet(1, s_vlan_udp, sizeof s_vlan_udp, &f, &e));
    assert_true(e.present);
    static const uint8_t dst[6] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55};
    static const uint8_t src[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
    assert_memory_equal(e.dst, dst, 6);
    assert_memory_equal(e.src, src, 6);
    assert_true(e.has_vlan);
    assert_int_equal(e.vlan, 100);
    assert_int_equal(e.ethertype, 0x0800);
    assert_int_equal(f.family, DECODE_IPV4);
    assert_int_equal(f.sport, 1234);
    assert_int_equal(f.dport, 53);

    /* cut inside the tag: the MACs and the outer type, no VLAN */
    assert_false(decode_packet(1, s_vlan_udp, 15, &f, &e));
    assert_true(e.present);
    assert_false(e.has_vlan);
    assert_int_equal(e.ethertype, 0x8100);
    /* cut before the type: nothing */
    assert_false(decode_packet(1, s_vlan_udp, 13, &f, &e));
    assert_false(e.present);
    /* not Ethernet: no Ethernet header, the flow all the same */
    assert_true(decode_packet(228, s_vlan_udp + 18, sizeof s_vlan_udp - 18, &f, &e));
    assert_false(e.present);
    assert_int_equal(f.dport, 53);
}

static event_t s_packet_event(void)
{
    event_t ev = {.kind = EVENT_PACKET,
                  .source = "edge-1",
                  .iface = "eth0",
                  .reason = "captured",
                  .severity = "info",
                  .ts_ns = 1700000000123456789ull,
                  .caplen = 46,
                  .len = 1500};
    decode_packet(1, s_vlan_udp, sizeof s_vlan_udp, &ev.flow, &ev.eth);
    return ev;
}

static char s_line[EVENT_LINE_MAX + 1];

static const char *s_format(event_format_t fmt, const event_t *ev)
{
    int n = event_format(fmt, ev, s_line, sizeof s_line - 1);
    assert_true(n > 0);
    s_line[n] = '\0';
    return s_line;
}

static void test_influx_packet(void **state)
{
    (void)state;
    event_t ev = s_packet_event();
    assert_string_equal(
        s_format(EVENT_INFLUX, &ev),
        "tapmesh_packet,source=edge-1,iface=eth0,reason=captured,severity=info,ethertype=2048,"
        "vlan=100,ip_version=4,ip_src=192.0.2.1,ip_dst=198.51.100.2,ip_proto=17,src_port=1234,"
        "dst_port=53 caplen=46i,len=1500i,eth_src=\"02:aa:bb:cc:dd:ee\","
        "eth_dst=\"00:11:22:33:44:55\" 1700000000123456789\n");
    /* no IP, no Ethernet: those tags and fields are left out */
    ev.flow.family = DECODE_OTHER;
    ev.eth.present = false;
    ev.iface = "";
    assert_string_equal(s_format(EVENT_INFLUX, &ev),
                        "tapmesh_packet,source=edge-1,reason=captured,severity=info "
                        "caplen=46i,len=1500i 1700000000123456789\n");
}

static void test_influx_flow_loss(void **state)
{
    (void)state;
    event_t ev = s_packet_event();
    ev.kind = EVENT_FLOW;
    ev.reason = "flow";
    ev.packets = 3;
    ev.bytes = 4500;
    ev.first_ns = 10;
    ev.last_ns = 30;
    ev.ts_ns = 10;
    ev.eth.present = false;
    ev.flow.has_ports = false;
    assert_string_equal(s_format(EVENT_INFLUX, &ev),
                        "tapmesh_flow,source=edge-1,iface=eth0,reason=flow,severity=info,"
                        "ip_version=4,ip_src=192.0.2.1,ip_dst=198.51.100.2,ip_proto=17 "
                        "packets=3i,bytes=4500i,first_ns=10i,last_ns=30i 10\n");
    event_t loss = {.kind = EVENT_LOSS,
                    .source = "edge-1",
                    .iface = "eth0",
                    .reason = "kernel_drop",
                    .severity = "error",
                    .ts_ns = 99,
                    .count = 7};
    assert_string_equal(s_format(EVENT_INFLUX, &loss),
                        "tapmesh_loss,source=edge-1,iface=eth0,reason=kernel_drop,"
                        "severity=error count=7i 99\n");
}

static const char *s_esc(char what, const char *text)
{
    static char buf[256];
    size_t len = 0;
    assert_int_equal(event_influx_escape(what, text, buf, &len, sizeof buf - 1), 0);
    buf[len] = '\0';
    return buf;
}

static void test_influx_escape(void **state)
{
    (void)state;
    /* measurement: commas and spaces; '=' and quotes as they are */
    assert_string_equal(s_esc('m', "a,b c=d\"e"), "a\\,b\\ c=d\"e");
    /* tag keys, tag values, field keys: commas, equals signs, spaces */
    assert_string_equal(s_esc('k', "a,b c=d\"e\\f"), "a\\,b\\ c\\=d\"e\\f");
    /* string field values: double quotes and backslashes only */
    assert_string_equal(s_esc('s', "a,b c=d\"e\\f"), "a,b c=d\\\"e\\\\f");
    /* control characters would end the line: '_' in every position */
    assert_string_equal(s_esc('k', "a\nb\tc\x7f"), "a_b_c_");
    assert_string_equal(s_esc('s', "a\r\nb"), "a__b");
    assert_string_equal(s_esc('m', "x\ny"), "x_y");
    /* no room: nothing written, -ENOSPC */
    char small[4];
    size_t len = 1;
    assert_int_equal(event_influx_escape('k', "a b", small, &len, sizeof small), -ENOSPC);
    assert_int_equal(len, 1);
    len = 0;
    assert_int_equal(event_influx_escape('k', "a,", small, &len, 3), 0);
    assert_int_equal(len, 3);

    /* in a whole line: an interface name with every special character */
    event_t ev = {.kind = EVENT_LOSS,
                  .source = "s",
                  .iface = "my if,x=1",
                  .reason = "late",
                  .severity = "warning",
                  .ts_ns = 5,
                  .count = 1};
    assert_string_equal(s_format(EVENT_INFLUX, &ev),
                        "tapmesh_loss,source=s,iface=my\\ if\\,x\\=1,reason=late,"
                        "severity=warning count=1i 5\n");
    /* a line that does not fit */
    assert_int_equal(event_format(EVENT_INFLUX, &ev, s_line, 20), -ENOSPC);
}

static void test_json(void **state)
{
    (void)state;
    event_t ev = s_packet_event();
    ev.iface = "we\"ird\\ \n,name";
    const char *line = s_format(EVENT_JSON, &ev);
    size_t n = strlen(line);
    assert_true(n > 1 && line[n - 1] == '\n');
    assert_null(memchr(line, '\n', n - 1)); /* one line */
    cJSON *o = cJSON_Parse(line);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "event")->valuestring, "packet");
    assert_string_equal(cJSON_GetObjectItem(o, "source")->valuestring, "edge-1");
    assert_string_equal(cJSON_GetObjectItem(o, "iface")->valuestring, "we\"ird\\ \n,name");
    assert_string_equal(cJSON_GetObjectItem(o, "eth_src")->valuestring, "02:aa:bb:cc:dd:ee");
    assert_string_equal(cJSON_GetObjectItem(o, "eth_dst")->valuestring, "00:11:22:33:44:55");
    assert_int_equal(cJSON_GetObjectItem(o, "ethertype")->valueint, 2048);
    assert_int_equal(cJSON_GetObjectItem(o, "vlan")->valueint, 100);
    assert_int_equal(cJSON_GetObjectItem(o, "ip_version")->valueint, 4);
    assert_string_equal(cJSON_GetObjectItem(o, "ip_src")->valuestring, "192.0.2.1");
    assert_string_equal(cJSON_GetObjectItem(o, "ip_dst")->valuestring, "198.51.100.2");
    assert_int_equal(cJSON_GetObjectItem(o, "ip_proto")->valueint, 17);
    assert_int_equal(cJSON_GetObjectItem(o, "src_port")->valueint, 1234);
    assert_int_equal(cJSON_GetObjectItem(o, "dst_port")->valueint, 53);
    assert_int_equal(cJSON_GetObjectItem(o, "caplen")->valueint, 46);
    assert_int_equal(cJSON_GetObjectItem(o, "len")->valueint, 1500);
    cJSON_Delete(o);
    /* the timestamp is written whole (a double would round it) */
    assert_non_null(strstr(line, "\"ts_ns\":1700000000123456789,"));

    /* IPv6, no ports, no Ethernet, a flow */
    event_t fl = {.kind = EVENT_FLOW,
                  .source = "a",
                  .iface = "b",
                  .reason = "flow",
                  .severity = "info",
                  .ts_ns = 1,
                  .packets = 2,
                  .bytes = 3,
                  .first_ns = 1,
                  .last_ns = 18446744073709551615ull};
    fl.flow.family = DECODE_IPV6;
    fl.flow.addr_len = 16;
    fl.flow.proto = 58;
    fl.flow.src[0] = 0x20;
    fl.flow.src[1] = 0x01;
    fl.flow.src[15] = 1;
    fl.flow.dst[15] = 1;
    assert_string_equal(s_format(EVENT_JSON, &fl),
                        "{\"event\":\"flow\",\"source\":\"a\",\"iface\":\"b\",\"reason\":\"flow\","
                        "\"severity\":\"info\",\"ts_ns\":1,\"packets\":2,\"bytes\":3,"
                        "\"first_ns\":1,\"last_ns\":18446744073709551615,\"ip_version\":6,"
                        "\"ip_src\":\"2001::1\",\"ip_dst\":\"::1\",\"ip_proto\":58}\n");
    /* too small a buffer */
    assert_int_equal(event_format(EVENT_JSON, &fl, s_line, 40), -ENOSPC);
    /* many events: the arena is emptied each time (no growth, no leak) */
    for (int i = 0; i < 10000; i++)
        assert_true(event_format(EVENT_JSON, &ev, s_line, sizeof s_line) > 0);
}

static void s_key(flowtab_key_t *k, int n)
{
    decode_eth_t e = {0};
    decode_flow_t f = {.family = DECODE_IPV4, .addr_len = 4, .proto = 6, .has_ports = true};
    f.src[0] = 10;
    f.src[3] = (uint8_t)n;
    f.sport = (uint16_t)(1000 + n);
    f.dport = 80;
    flowtab_key(k, "src", "eth0", &e, &f);
}

static void test_flowtab(void **state)
{
    (void)state;
    flowtab_t *t = flowtab_new(3);
    assert_non_null(t);
    flowtab_key_t k;
    flowtab_flow_t out;
    uint64_t in_packets = 0, in_bytes = 0, out_packets = 0, out_bytes = 0;
    /* flows 1, 2, 3; then 1 again (2 is now the least recently used) */
    for (int n = 1; n <= 3; n++) {
        s_key(&k, n);
        assert_false(flowtab_add(t, &k, (uint64_t)n * 100, 10u * n, &out));
        in_packets++;
        in_bytes += 10u * n;
    }
    s_key(&k, 1);
    assert_false(flowtab_add(t, &k, 50, 5, &out)); /* an earlier timestamp */
    in_packets++;
    in_bytes += 5;
    assert_int_equal(flowtab_size(t), 3);
    /* flow 4: the table is full, flow 2 leaves whole */
    s_key(&k, 4);
    assert_true(flowtab_add(t, &k, 400, 40, &out));
    in_packets++;
    in_bytes += 40;
    assert_int_equal(out.key.flow.src[3], 2);
    assert_int_equal(out.packets, 1);
    assert_int_equal(out.bytes, 20);
    out_packets += out.packets;
    out_bytes += out.bytes;
    assert_int_equal(flowtab_size(t), 3);
    /* flow 2 again is a new flow: 3 goes */
    s_key(&k, 2);
    assert_true(flowtab_add(t, &k, 500, 20, &out));
    in_packets++;
    in_bytes += 20;
    assert_int_equal(out.key.flow.src[3], 3);
    out_packets += out.packets;
    out_bytes += out.bytes;
    /* the rest in LRU order: 1 (first/last kept), 4, 2 */
    assert_true(flowtab_pop(t, &out));
    assert_int_equal(out.key.flow.src[3], 1);
    assert_int_equal(out.packets, 2);
    assert_int_equal(out.bytes, 15);
    assert_int_equal(out.first_ns, 50);
    assert_int_equal(out.last_ns, 100);
    out_packets += out.packets;
    out_bytes += out.bytes;
    assert_true(flowtab_pop(t, &out));
    assert_int_equal(out.key.flow.src[3], 4);
    out_packets += out.packets;
    out_bytes += out.bytes;
    assert_true(flowtab_pop(t, &out));
    assert_int_equal(out.key.flow.src[3], 2);
    out_packets += out.packets;
    out_bytes += out.bytes;
    assert_false(flowtab_pop(t, &out));
    assert_int_equal(flowtab_size(t), 0);
    assert_int_equal(in_packets, out_packets);
    assert_int_equal(in_bytes, out_bytes);

    /* many flows through a small table: totals kept, every flow whole */
    uint64_t sum = 0, got = 0;
    for (int i = 0; i < 20000; i++) {
        s_key(&k, i % 37);
        k.iface[0] = (char)('a' + i % 5); /* 185 flows */
        if (flowtab_add(t, &k, (uint64_t)i, 1 + (uint64_t)i % 7, &out))
            got += out.bytes;
        sum += 1 + (uint64_t)i % 7;
    }
    while (flowtab_pop(t, &out))
        got += out.bytes;
    assert_int_equal(sum, got);
    flowtab_destroy(&t);
    assert_null(t);
    flowtab_destroy(&t);
    assert_null(flowtab_new(0));
}

static void test_pack(void **state)
{
    (void)state;
    const char *q = "aaa\nbb\ncccc\n";
    unsigned n;
    /* whole lines within the bound */
    assert_int_equal(evsend_pack(q, strlen(q), 100, 100, &n), 12);
    assert_int_equal(n, 3);
    assert_int_equal(evsend_pack(q, strlen(q), 7, 100, &n), 7);
    assert_int_equal(n, 2);
    assert_int_equal(evsend_pack(q, strlen(q), 11, 100, &n), 7); /* never a line cut */
    assert_int_equal(n, 2);
    assert_int_equal(evsend_pack(q, strlen(q), 3, 100, &n), 0); /* the first alone is longer */
    assert_int_equal(n, 0);
    /* at most max_lines */
    assert_int_equal(evsend_pack(q, strlen(q), 100, 1, &n), 4);
    assert_int_equal(n, 1);
    /* a line not ended is not sent */
    assert_int_equal(evsend_pack("ab\ncd", 5, 100, 100, &n), 3);
    assert_int_equal(n, 1);
    assert_int_equal(evsend_pack("", 0, 100, 100, &n), 0);
}

/* The sender over UDP: datagrams of whole lines within the bound, sent
 * once a batch is queued or the interval has passed; a line longer than a
 * datagram and one past the queue dropped and counted. */
static void test_send_udp(void **state)
{
    (void)state;
    int rx = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(rx >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(rx, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(rx, (struct sockaddr *)&a, &al), 0);
    char to[64];
    snprintf(to, sizeof to, "udp://127.0.0.1:%u", ntohs(a.sin_port));
    metrics_t *m = metrics_new("test", "0");
    char err[256];
    evsend_opts_t o = {
        .to = to, .queue_bytes = 1100, .datagram_bytes = 1024, .batch = 3, .interval_ms = 100};
    evsend_t *s = evsend_new(&o, m, "test", err, sizeof err);
    assert_non_null(s);
    char line[1200];
    memset(line, 'x', sizeof line);
    line[399] = '\n'; /* 400-byte lines: two per datagram */
    assert_int_equal(evsend_line(s, line, 400, 0), 0);
    assert_int_equal(evsend_line(s, line, 400, 0), 0);
    evsend_pump(s, 50, false); /* neither a batch nor the interval */
    char buf[2048];
    assert_int_equal(recv(rx, buf, sizeof buf, MSG_DONTWAIT), -1);
    assert_int_equal(evsend_next_deadline(s, 50), 100);
    assert_int_equal(evsend_line(s, line, 400, 60), -ENOBUFS); /* 1200 > 1100 */
    line[599] = '\n';
    evsend_pump(s, 100, false); /* the interval */
    assert_int_equal(recv(rx, buf, sizeof buf, 0), 800);
    assert_int_equal(evsend_queued(s), 0);
    memset(line, 'x', sizeof line);
    line[1099] = '\n';
    assert_int_equal(evsend_line(s, line, 1100, 0), -EMSGSIZE);
    /* three 300-byte lines: a batch; datagrams of at most 1024 bytes */
    memset(line, 'y', sizeof line);
    line[299] = '\n';
    for (int i = 0; i < 3; i++)
        assert_int_equal(evsend_line(s, line, 300, 200), 0);
    evsend_pump(s, 200, false);
    assert_int_equal(recv(rx, buf, sizeof buf, 0), 900);
    assert_true(buf[899] == '\n');
    metrics_destroy(&m);
    evsend_destroy(&s);
    close(rx);

    /* bad destinations name the setting */
    m = metrics_new("test", "0");
    const char *bad[] = {"http://x:1", "udp://:5", "tcp://127.0.0.1", "udp://127.0.0.1:0",
                         "udp://no.such.host.invalid:5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o.to = bad[i];
        err[0] = '\0';
        assert_null(evsend_new(&o, m, "test", err, sizeof err));
        assert_non_null(strstr(err, "EVENTS_TO="));
    }
    metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_eth),
        cmocka_unit_test(test_influx_packet),
        cmocka_unit_test(test_influx_flow_loss),
        cmocka_unit_test(test_influx_escape),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_flowtab),
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_send_udp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
