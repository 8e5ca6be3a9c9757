/*
 * test_snap — what tapmesh-top takes from a scrape (services/top/snap.h):
 * each kind of service recognised by its build_info, the numbers it shows
 * taken from real /metrics text (as the services write it), a relay's
 * next hops summed and counted; rates between two scrapes, a counter reset
 * (a restart) counted from zero, no rate without elapsed time; and the
 * table (render.h) naming a down service and its reason.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prom.h"
#include "render.h"
#include "snap.h"

static void s_snap(const char *text, snap_t *s)
{
    prom_result_t res;
    snap_reset(s);
    prom_parse(text, strlen(text), snap_feed, s, &res);
    assert_int_equal(res.bad_lines, 0);
}

static const char s_capture[] =
    "# HELP tapmesh_capture_build_info tapmesh version this process runs\n"
    "# TYPE tapmesh_capture_build_info gauge\n"
    "tapmesh_capture_build_info{version=\"0.1.0\"} 1\n"
    "process_cpu_seconds_total 0.05\n"
    "tapmesh_capture_source_info{source=\"edge1\"} 1\n"
    "tapmesh_capture_packets_total 1000\n"
    "tapmesh_capture_bytes_total 1250000\n"
    "tapmesh_capture_packet_size_bytes_bucket{family=\"ipv4\",le=\"64\"} 3\n"
    "tapmesh_capture_batches_resent_total 4\n"
    "tapmesh_capture_batches_dead_lettered_total 2\n"
    "tapmesh_capture_packets_dead_lettered_total 20\n"
    "tapmesh_capture_next_hop_up 1\n"
    "tapmesh_capture_kernel_received_packets_total 1010\n"
    "tapmesh_capture_kernel_dropped_packets_total 10\n";

static void test_capture(void **state)
{
    (void)state;
    snap_t s;
    s_snap(s_capture, &s);
    assert_int_equal(s.kind, SNAP_CAPTURE);
    assert_string_equal(s.version, "0.1.0");
    assert_string_equal(s.source, "edge1");
    assert_true(s.packets == 1000 && s.bytes == 1250000);
    assert_true(s.live);
    assert_true(s.kernel_drops == 10);
    assert_true(s.resent_batches == 4 && s.dead_letter_batches == 2);
    assert_true(s.dead_letter_packets == 20);
    assert_int_equal(s.next_hop_up, 1);

    /* a file agent: no kernel counters; next hop down */
    s_snap("tapmesh_capture_build_info{version=\"0.1.0\"} 1\n"
           "tapmesh_capture_next_hop_up 0\n",
           &s);
    assert_false(s.live);
    assert_int_equal(s.next_hop_up, 0);
    assert_string_equal(s.source, "");
    /* an older agent without next_hop_up */
    s_snap("tapmesh_capture_build_info{version=\"0.1.0\"} 1\n", &s);
    assert_int_equal(s.next_hop_up, -1);
}

static void test_relay_collect(void **state)
{
    (void)state;
    snap_t s;
    s_snap("tapmesh_relay_build_info{version=\"0.1.0\"} 1\n"
           "tapmesh_relay_packets_in_total 3992\n"
           "tapmesh_relay_next_hop_up{hop=\"tcp://a:1\"} 1\n"
           "tapmesh_relay_batches_out_total{hop=\"tcp://a:1\"} 192\n"
           "tapmesh_relay_packets_out_total{hop=\"tcp://a:1\"} 3000\n"
           "tapmesh_relay_next_hop_up{hop=\"tcp://b:1\"} 0\n"
           "tapmesh_relay_packets_out_total{hop=\"tcp://b:1\"} 900\n",
           &s);
    assert_int_equal(s.kind, SNAP_RELAY);
    assert_true(s.packets_in == 3992);
    assert_true(s.packets_out == 3900);
    assert_int_equal(s.hops, 2);
    assert_int_equal(s.hops_up, 1);

    s_snap("tapmesh_collect_build_info{version=\"0.1.0\"} 1\n"
           "tapmesh_collect_packets_total 3744\n"
           "tapmesh_collect_bytes_total 5091374\n"
           "tapmesh_collect_late_packets_total 3\n"
           "tapmesh_collect_merge_queued_packets 17\n"
           "tapmesh_collect_sources_live 2\n"
           "tapmesh_collect_output_bytes_total 5214512\n"
           "tapmesh_collect_source_packets_total{source=\"edge1\"} 3744\n",
           &s);
    assert_int_equal(s.kind, SNAP_COLLECT);
    assert_true(s.packets == 3744 && s.bytes == 5091374);
    assert_true(s.late_packets == 3 && s.queued_packets == 17 && s.sources_live == 2);
    assert_true(s.output_bytes == 5214512);

    s_snap("node_cpu_seconds_total{cpu=\"0\"} 5\n", &s);
    assert_int_equal(s.kind, SNAP_UNKNOWN);
}

static void test_rates(void **state)
{
    (void)state;
    assert_true(snap_rate(100, 300, 2) == 100);
    assert_true(snap_rate(300, 300, 1) == 0);
    /* reset: the service restarted and counted 50 since */
    assert_true(snap_rate(300, 50, 0.5) == 100);
    assert_true(isnan(snap_rate(1, 2, 0)));
    assert_true(isnan(snap_rate(1, 2, -1)));
    assert_true(isnan(snap_rate(NAN, 2, 1)));
    assert_true(isnan(snap_rate(1, INFINITY, 1)));

    snap_t a, b;
    s_snap(s_capture, &a);
    b = a;
    b.packets += 500;
    b.bytes += 250000; /* 2 Mbit in 0.5 s */
    b.kernel_drops += 5;
    snap_rates_t r;
    snap_rates(&a, &b, 0.5, &r);
    assert_true(r.pps == 1000);
    assert_true(fabs(r.mbps - 4.0) < 1e-9);
    assert_true(r.kernel_drops_ps == 10);
    /* a file agent has no kernel drops to rate */
    a.live = b.live = false;
    snap_rates(&a, &b, 0.5, &r);
    assert_true(isnan(r.kernel_drops_ps));
}

static void test_render(void **state)
{
    (void)state;
    render_target_t t[3];
    memset(t, 0, sizeof t);
    t[0].addr = "127.0.0.1:9710";
    s_snap(s_capture, &t[0].cur);
    t[0].kind = SNAP_CAPTURE;
    t[0].up = t[0].has_cur = t[0].has_rates = true;
    t[0].rates.pps = 1234.5;
    t[0].rates.mbps = 9.87;
    t[0].rates.kernel_drops_ps = 2;
    t[1].addr = "relay1:9711";
    t[1].kind = SNAP_RELAY;
    snap_reset(&t[1].cur);
    snprintf(t[1].error, sizeof t[1].error, "HTTP 404");
    t[2].addr = ":9999";
    snprintf(t[2].error, sizeof t[2].error, "Couldn't connect to server");

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    render_block(f, t, 3, "title");
    fclose(f);
    assert_non_null(strstr(text, "title  3 services, 2 down\n"));
    const char *row = strstr(text, "\nedge1 ");
    assert_non_null(row);
    const char *eol = strchr(row + 1, '\n');
    char line[256];
    snprintf(line, sizeof line, "%.*s", (int)(eol - row - 1), row + 1);
    assert_non_null(strstr(line, "127.0.0.1:9710"));
    assert_non_null(strstr(line, " up "));
    assert_non_null(strstr(line, " 1234.5 "));
    assert_non_null(strstr(line, " 9.87 "));
    assert_non_null(strstr(line, " 1000 "));
    assert_true(strlen(line) > 4 && strcmp(line + strlen(line) - 3, " up") == 0);
    assert_non_null(strstr(text, "relay1:9711           down"));
    assert_non_null(strstr(text, "relay1:9711: down: HTTP 404"));
    assert_non_null(strstr(text, ":9999                 down  Couldn't connect to server"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_relay_collect),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
