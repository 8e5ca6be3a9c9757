/*
 * test_prom — the Prometheus text reader (services/top/prom.h): samples
 * with and without labels, escapes, special values, timestamps, comments,
 * CRLF and a last line without its newline; every kind of bad line counted
 * and skipped with its number and reason while the good lines around it
 * are read; the text read from a buffer of exactly its length (ASan).
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

typedef struct {
    size_t n;
    prom_sample_t s[16];
} s_seen_t;

static void s_keep(void *arg, const prom_sample_t *s)
{
    s_seen_t *seen = arg;
    assert_true(seen->n < 16);
    seen->s[seen->n++] = *s;
}

/* Parses `text` from a heap copy of exactly its length. */
static void s_parse(const char *text, s_seen_t *seen, prom_result_t *res)
{
    size_t len = strlen(text);
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    memset(seen, 0, sizeof *seen);
    prom_parse(copy, len, s_keep, seen, res);
    free(copy);
}

static void test_samples(void **state)
{
    (void)state;
    s_seen_t seen;
    prom_result_t res;
    s_parse("# HELP tapmesh_capture_packets_total Packets captured\n"
            "# TYPE tapmesh_capture_packets_total counter\n"
            "tapmesh_capture_packets_total 3744\n"
            "\n"
            "tapmesh_relay_next_hop_up{hop=\"tcp://127.0.0.1:5710\"} 1\n"
            "  x_y:z {a=\"1\" , b = \"q\\\"\\\\\\n\",} -2.5e3 1700000000000\r\n"
            "nan NaN\n"
            "inf +Inf\n"
            "ninf -Inf\n"
            "empty{} 0x10\n"
            "last 7",
            &seen, &res);
    assert_int_equal(res.bad_lines, 0);
    assert_int_equal(res.first_bad, 0);
    assert_int_equal(res.samples, 8);
    assert_int_equal(seen.n, 8);
    assert_string_equal(seen.s[0].name, "tapmesh_capture_packets_total");
    assert_int_equal(seen.s[0].nlabels, 0);
    assert_true(seen.s[0].value == 3744);
    assert_string_equal(seen.s[1].name, "tapmesh_relay_next_hop_up");
    assert_string_equal(prom_label(&seen.s[1], "hop"), "tcp://127.0.0.1:5710");
    assert_null(prom_label(&seen.s[1], "source"));
    assert_true(seen.s[1].value == 1);
    assert_string_equal(seen.s[2].name, "x_y:z");
    assert_int_equal(seen.s[2].nlabels, 2);
    assert_string_equal(prom_label(&seen.s[2], "a"), "1");
    assert_string_equal(prom_label(&seen.s[2], "b"), "q\"\\\n");
    assert_true(seen.s[2].value == -2500);
    assert_true(isnan(seen.s[3].value));
    assert_true(isinf(seen.s[4].value) && seen.s[4].value > 0);
    assert_true(isinf(seen.s[5].value) && seen.s[5].value < 0);
    assert_int_equal(seen.s[6].nlabels, 0);
    assert_true(seen.s[6].value == 16);
    assert_string_equal(seen.s[7].name, "last");
    assert_true(seen.s[7].value == 7);
}

/* One bad line between two good ones: the good ones read, the bad counted. */
static void s_bad(const char *line, const char *why)
{
    char text[2048];
    snprintf(text, sizeof text, "good_a 1\n%s\ngood_b 2\n", line);
    s_seen_t seen;
    prom_result_t res;
    s_parse(text, &seen, &res);
    if (res.bad_lines != 1)
        fail_msg("'%s': %zu bad lines", line, res.bad_lines);
    assert_int_equal(res.first_bad, 2);
    if (!strstr(res.why, why))
        fail_msg("'%s': why '%s', expected '%s'", line, res.why, why);
    assert_int_equal(res.samples, 2);
    assert_string_equal(seen.s[0].name, "good_a");
    assert_string_equal(seen.s[1].name, "good_b");
}

static void test_bad_lines(void **state)
{
    (void)state;
    s_bad("1abc 2", "no metric name");
    s_bad("name", "no value");
    s_bad("name ", "no value");
    s_bad("name one", "no number");
    s_bad("name 1x", "no number");
    s_bad("name 1 2 3", "text after the value");
    s_bad("name 1 12a", "timestamp");
    s_bad("name{a=\"1\" 2", "labels not terminated");
    s_bad("name{a=\"1", "not terminated");
    s_bad("name{a=\"1\\", "not terminated");
    s_bad("name{a=1} 2", "without quotes");
    s_bad("name{a} 2", "without '='");
    s_bad("name{9=\"1\"} 2", "no label name");
    s_bad("name{a:b=\"1\"} 2", "without '='");
    s_bad("name{a=\"\\t\"} 2", "unknown escape");
    s_bad("name{a=\"1\"}2", "no blank");
    s_bad("name{a=\"1\",b=\"2\",c=\"3\",d=\"4\",e=\"5\",f=\"6\",g=\"7\",h=\"8\",i=\"9\"} 1",
          "too many labels");
    char line[600];
    memset(line, 'a', 200);
    snprintf(line + 200, sizeof line - 200, " 1");
    s_bad(line, "name too long");
    snprintf(line, sizeof line, "name{a=\"%0300d\"} 1", 0);
    s_bad(line, "label value too long");
}

static void test_nul_and_long_lines(void **state)
{
    (void)state;
    s_seen_t seen;
    prom_result_t res;
    const char text[] = "a 1\nb\0 2\nc 3\n";
    memset(&seen, 0, sizeof seen);
    prom_parse(text, sizeof text - 1, s_keep, &seen, &res);
    assert_int_equal(res.samples, 2);
    assert_int_equal(res.bad_lines, 1);
    assert_int_equal(res.first_bad, 2);
    assert_string_equal(res.why, "NUL byte");

    size_t len = PROM_LINE_MAX + 100;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);
    memcpy(big, "a 1\n", 4);
    memcpy(big + len - 4, "\nb 2", 4);
    memset(&seen, 0, sizeof seen);
    prom_parse(big, len, s_keep, &seen, &res);
    free(big);
    assert_int_equal(res.samples, 2);
    assert_int_equal(res.bad_lines, 1);
    assert_string_equal(res.why, "line too long");
    assert_string_equal(seen.s[1].name, "b");
}

static void test_empty(void **state)
{
    (void)state;
    s_seen_t seen;
    prom_result_t res;
    s_parse("", &seen, &res);
    assert_int_equal(res.samples, 0);
    assert_int_equal(res.bad_lines, 0);
    s_parse("\n\n# only comments\n   \n", &seen, &res);
    assert_int_equal(res.samples, 0);
    assert_int_equal(res.bad_lines, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_nul_and_long_lines),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
