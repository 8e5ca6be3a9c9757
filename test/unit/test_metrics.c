/*
 * Unit tests for common/metrics: registration (ids, families), updates,
 * the Prometheus text rendering line by line, label escaping, the series
 * metrics_new adds (build information and the standard process metrics),
 * and the HTTP server, fetched over a plain TCP socket: /metrics, /healthz
 * and a server full of idle connections. When promtool is on PATH the
 * rendered text also goes through `promtool check metrics`.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "metrics.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---------------------------------------------------------- */

static metrics_t *s_new(void)
{
    metrics_t *m = metrics_new("unit", "9.8.7");
    assert_non_null(m);
    return m;
}

/* Renders, checking that the reported length is the string's. */
static char *s_render(const metrics_t *m)
{
    size_t len = (size_t)-1;
    char *text = metrics_render(m, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_true(len > 0 && text[len - 1] == '\n');
    return text;
}

/* Where `line` appears as a whole line of `text`, or NULL. */
static const char *s_find_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return p;
    return NULL;
}

static const char *s_line(const char *text, const char *line)
{
    const char *at = s_find_line(text, line);
    if (!at)
        fail_msg("no line \"%s\" in:\n%s", line, text);
    return at;
}

static void s_no_line_starting(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, n) == 0)
            fail_msg("unexpected line starting \"%s\" in:\n%s", prefix, text);
}

static size_t s_count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The value of the sample line starting with `series` (name and labels). */
static double s_sample(const char *text, const char *series)
{
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s ", series);
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0) {
            char *end;
            double v = strtod(p + n, &end);
            if (end == p + n || *end != '\n')
                fail_msg("sample %s: not a number: \"%.*s\"", series, (int)strcspn(p, "\n"), p);
            return v;
        }
    }
    fail_msg("no sample %s in:\n%s", series, text);
    return 0;
}

/* `text` without the process metrics (a new copy): they are read from the
 * kernel at every rendering, so two renderings differ there. */
static char *s_without_process(const char *text)
{
    char *out = malloc(strlen(text) + 1);
    assert_non_null(out);
    size_t o = 0;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n") + (p[strcspn(p, "\n")] == '\n');
        if (strncmp(p, "process_", 8) != 0 && strncmp(p, "# HELP process_", 15) != 0 &&
            strncmp(p, "# TYPE process_", 15) != 0) {
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
    }
    out[o] = '\0';
    return out;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Descriptors this process has open, counted apart from the one counting. */
static int s_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
            n++;
    closedir(d);
    return n;
}

/* ---- what metrics_new adds -------------------------------------------- */

static void test_new_series(void **state)
{
    (void)state;
    struct timespec before, after;
    clock_gettime(CLOCK_REALTIME, &before);
    metrics_t *m = metrics_new("unit", "1.2.3");
    clock_gettime(CLOCK_REALTIME, &after);
    assert_non_null(m);
    assert_int_equal(metrics_port(m), 0);

    char *text = s_render(m);
    s_line(text, "# TYPE tapmesh_unit_build_info gauge");
    s_line(text, "tapmesh_unit_build_info{version=\"1.2.3\"} 1");
    assert_int_equal(s_count(text, "# HELP tapmesh_unit_build_info "), 1);
    /* the start time is the standard, unprefixed series, and only that */
    s_line(text, "# TYPE process_start_time_seconds gauge");
    assert_int_equal(s_count(text, "# HELP process_start_time_seconds "), 1);
    assert_null(strstr(text, "tapmesh_unit_process_"));
    /* this process started before metrics_new, and not long before */
    double t0 = (double)before.tv_sec + before.tv_nsec / 1e9;
    double t1 = (double)after.tv_sec + after.tv_nsec / 1e9;
    double start = s_sample(text, "process_start_time_seconds");
    if (start < t0 - 600 || start > t1 + 0.02)
        fail_msg("start time %.6f not within [%.6f - 600, %.6f]", start, t0, t1);
    free(text);

    /* the registry knows them: registering again gives their ids */
    metric_id_t info = metrics_gauge(m, "tapmesh_unit_build_info", "x", "version=\"1.2.3\"");
    assert_true(info >= 0);
    assert_true(metrics_value(m, info) == 1.0);
    metric_id_t st = metrics_gauge(m, "process_start_time_seconds", "x", NULL);
    assert_true(st >= 0 && st != info);
    assert_true(metrics_value(m, st) == start);
    text = s_render(m);
    assert_int_equal(s_count(text, "tapmesh_unit_build_info{"), 1);
    free(text);
    metrics_destroy(&m);
    assert_null(m);

    /* the version is a label value: escaped */
    m = metrics_new("relay", "1.0-\"rc\"\\x");
    assert_non_null(m);
    text = s_render(m);
    s_line(text, "tapmesh_relay_build_info{version=\"1.0-\\\"rc\\\"\\\\x\"} 1");
    s_no_line_starting(text, "tapmesh_unit_");
    free(text);
    metrics_destroy(&m);

    metrics_destroy(&m); /* NULL: nothing */
    metrics_destroy(NULL);
}

/* The process metrics every Prometheus client library exports: those names,
 * unprefixed, with those types, once each, and values that are this
 * process's own, read when rendered. */
static void test_process_metrics(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    static const struct {
        const char *name, *type;
    } std[] = {
        {"process_cpu_seconds_total", "counter"},
        {"process_resident_memory_bytes", "gauge"},
        {"process_virtual_memory_bytes", "gauge"},
        {"process_open_fds", "gauge"},
        {"process_max_fds", "gauge"},
        {"process_start_time_seconds", "gauge"},
    };
    char *text = s_render(m);
    for (size_t i = 0; i < NELEMS(std); i++) {
        char line[128];
        snprintf(line, sizeof line, "# TYPE %s %s", std[i].name, std[i].type);
        const char *type = s_line(text, line);
        snprintf(line, sizeof line, "# HELP %s ", std[i].name);
        const char *help = strstr(text, line);
        assert_non_null(help);
        assert_true(help < type);
        assert_int_equal(s_count(text, line), 1);
        snprintf(line, sizeof line, "# TYPE %s ", std[i].name);
        assert_int_equal(s_count(text, line), 1);
        /* the sample follows its TYPE line */
        const char *sample = strchr(type, '\n') + 1;
        snprintf(line, sizeof line, "%s ", std[i].name);
        assert_memory_equal(sample, line, strlen(line));
    }
    assert_null(strstr(text, "tapmesh_unit_process_"));

    /* plausible values */
    double now = s_now();
    double start = s_sample(text, "process_start_time_seconds");
    if (start > now || start < now - 600)
        fail_msg("process_start_time_seconds %.3f, now %.3f", start, now);
    double rss = s_sample(text, "process_resident_memory_bytes");
    double vsz = s_sample(text, "process_virtual_memory_bytes");
    assert_true(rss >= 4096 && fmod(rss, 4096) == 0);
    assert_true(vsz >= rss);
    double fds = s_sample(text, "process_open_fds");
    assert_true(fds >= 3);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(s_sample(text, "process_max_fds") == (double)rl.rlim_cur);
    double cpu0 = s_sample(text, "process_cpu_seconds_total");
    assert_true(cpu0 >= 0);
    free(text);

    /* they are read at every rendering: five more descriptors show as five
     * more, CPU spent shows, memory touched shows */
    int extra[5];
    for (size_t i = 0; i < NELEMS(extra); i++) {
        extra[i] = dup(0);
        assert_true(extra[i] >= 0);
    }
    size_t big = 64u << 20;
    char *mem = malloc(big);
    assert_non_null(mem);
    memset(mem, 1, big);
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    volatile double burn = 0;
    do {
        for (int i = 0; i < 100000; i++)
            burn += sqrt((double)i);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < 0.05);
    text = s_render(m);
    assert_true(s_sample(text, "process_open_fds") == fds + 5);
    assert_true(s_sample(text, "process_open_fds") == s_open_fds());
    double cpu1 = s_sample(text, "process_cpu_seconds_total");
    if (cpu1 < cpu0 + 0.04)
        fail_msg("process_cpu_seconds_total %.6f after %.6f and 50 ms of CPU", cpu1, cpu0);
    double rss1 = s_sample(text, "process_resident_memory_bytes");
    if (rss1 < rss + (double)big / 2)
        fail_msg("process_resident_memory_bytes %.0f after %.0f and 64 MiB touched", rss1, rss);
    free(text);

    /* registering one again gives its id; metrics_value reads it live */
    metric_id_t fd_id = metrics_gauge(m, "process_open_fds", "x", NULL);
    assert_true(fd_id >= 0);
    assert_true(metrics_value(m, fd_id) == fds + 5);
    for (size_t i = 0; i < NELEMS(extra); i++)
        close(extra[i]);
    assert_true(metrics_value(m, fd_id) == fds);
    metric_id_t cpu_id = metrics_counter(m, "process_cpu_seconds_total", "x", NULL);
    assert_true(metrics_value(m, cpu_id) >= cpu1);
    free(mem);
    text = s_render(m);
    assert_int_equal(s_count(text, "# TYPE process_open_fds "), 1);
    assert_int_equal(s_count(text, "\nprocess_open_fds "), 1);
    free(text);
    metrics_destroy(&m);
}

/* process_start_time_seconds is when the process started, not when its
 * registry was made: a child that waits 300 ms before metrics_new reports
 * the moment it was forked. */
static void test_process_start_time(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    double forked = s_now();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct timespec wait = {.tv_nsec = 300 * 1000000L};
        nanosleep(&wait, NULL);
        double v = NAN;
        metrics_t *m = metrics_new("unit", "1");
        if (m)
            v = metrics_value(m, metrics_gauge(m, "process_start_time_seconds", "x", NULL));
        metrics_destroy(&m);
        _exit(write(fds[1], &v, sizeof v) == (ssize_t)sizeof v ? 0 : 1);
    }
    close(fds[1]);
    double start = NAN;
    assert_int_equal(read(fds[0], &start, sizeof start), (ssize_t)sizeof start);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* the kernel counts in 10 ms ticks */
    if (!(start >= forked - 0.05 && start <= forked + 0.2))
        fail_msg("child forked at %.3f reports a start at %.3f", forked, start);
}

/* ---- counters --------------------------------------------------------- */

static void test_counter(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    metric_id_t id = metrics_counter(m, "tapmesh_unit_packets_total", "Packets seen.", NULL);
    assert_true(id >= 0);
    assert_true(metrics_value(m, id) == 0);

    char *text = s_render(m);
    const char *help = s_line(text, "# HELP tapmesh_unit_packets_total Packets seen.");
    const char *type = s_line(text, "# TYPE tapmesh_unit_packets_total counter");
    const char *zero = s_line(text, "tapmesh_unit_packets_total 0");
    assert_true(help < type && type < zero);
    free(text);

    metrics_add(m, id, 1);
    metrics_add(m, id, 41);
    metrics_add(m, id, 0);
    assert_true(metrics_value(m, id) == 42);
    text = s_render(m);
    s_line(text, "tapmesh_unit_packets_total 42");
    assert_null(s_find_line(text, "tapmesh_unit_packets_total 0"));
    free(text);

    /* integers, exactly, even beyond what a double holds */
    metric_id_t big = metrics_counter(m, "tapmesh_unit_bytes_total", "Bytes seen.", NULL);
    metrics_add(m, big, (UINT64_C(1) << 53) + 1);
    metrics_add(m, big, 2);
    metrics_add(m, big, UINT64_C(10000000000000000000) - (UINT64_C(1) << 53) - 3);
    text = s_render(m);
    s_line(text, "tapmesh_unit_bytes_total 10000000000000000000");
    free(text);
    metrics_destroy(&m);
}

static void test_same_id(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    metric_id_t a = metrics_counter(m, "tapmesh_unit_batches_total", "Batches.", "source=\"a\"");
    metric_id_t b = metrics_counter(m, "tapmesh_unit_batches_total", "Batches.", "source=\"b\"");
    metric_id_t a2 =
        metrics_counter(m, "tapmesh_unit_batches_total", "Other help.", "source=\"a\"");
    metric_id_t n = metrics_counter(m, "tapmesh_unit_batches_total", "Batches.", NULL);
    metric_id_t n2 = metrics_counter(m, "tapmesh_unit_batches_total", "Batches.", "");
    metric_id_t o = metrics_counter(m, "tapmesh_unit_other_total", "Other.", "source=\"a\"");
    assert_true(a >= 0 && b >= 0 && n >= 0 && o >= 0);
    assert_int_equal(a2, a);
    assert_int_equal(n2, n);
    assert_int_not_equal(a, b);
    assert_int_not_equal(a, n);
    assert_int_not_equal(b, n);
    assert_int_not_equal(o, a);

    /* the ids address different values */
    metrics_add(m, a, 1);
    metrics_add(m, a2, 2);
    metrics_add(m, b, 10);
    metrics_add(m, n, 100);
    metrics_add(m, o, 1000);
    assert_true(metrics_value(m, a) == 3);
    assert_true(metrics_value(m, b) == 10);
    assert_true(metrics_value(m, n) == 100);
    assert_true(metrics_value(m, o) == 1000);

    metric_id_t g = metrics_gauge(m, "tapmesh_unit_sources", "Sources.", NULL);
    metrics_set(m, g, 5);
    /* registering an existing gauge again does not reset it */
    assert_int_equal(metrics_gauge(m, "tapmesh_unit_sources", "Sources.", NULL), g);
    assert_true(metrics_value(m, g) == 5);

    static const double bounds[] = {1, 2};
    metric_id_t h = metrics_histogram(m, "tapmesh_unit_size_bytes", "Sizes.", NULL, bounds, 2);
    metrics_observe(m, h, 1);
    assert_int_equal(metrics_histogram(m, "tapmesh_unit_size_bytes", "Sizes.", NULL, bounds, 2), h);
    assert_true(metrics_value(m, h) == 1);

    char *text = s_render(m);
    /* the first help wins; one family header */
    assert_int_equal(s_count(text, "# HELP tapmesh_unit_batches_total "), 1);
    assert_int_equal(s_count(text, "Other help."), 0);
    s_line(text, "tapmesh_unit_batches_total{source=\"a\"} 3");
    s_line(text, "tapmesh_unit_batches_total 100");
    s_line(text, "tapmesh_unit_sources 5");
    assert_int_equal(s_count(text, "\ntapmesh_unit_sources "), 1);
    free(text);
    metrics_destroy(&m);
}

/* Entries of one name form one family, whatever the registration order:
 * one HELP, one TYPE, then all its samples together. */
static void test_family(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    metric_id_t a = metrics_counter(m, "tapmesh_unit_drops_total", "Drops.", "reason=\"full\"");
    metric_id_t x = metrics_gauge(m, "tapmesh_unit_queue_depth", "Depth.", NULL);
    metric_id_t b = metrics_counter(m, "tapmesh_unit_drops_total", "Drops.", "reason=\"late\"");
    metric_id_t c = metrics_counter(m, "tapmesh_unit_drops_total", "Drops.", NULL);
    metrics_add(m, a, 1);
    metrics_add(m, b, 2);
    metrics_add(m, c, 3);
    metrics_set(m, x, 4);

    char *text = s_render(m);
    assert_int_equal(s_count(text, "# HELP tapmesh_unit_drops_total "), 1);
    assert_int_equal(s_count(text, "# TYPE tapmesh_unit_drops_total "), 1);
    assert_int_equal(s_count(text, "# HELP tapmesh_unit_queue_depth "), 1);
    const char *type = s_line(text, "# TYPE tapmesh_unit_drops_total counter");
    const char *la = s_line(text, "tapmesh_unit_drops_total{reason=\"full\"} 1");
    const char *lb = s_line(text, "tapmesh_unit_drops_total{reason=\"late\"} 2");
    const char *lc = s_line(text, "tapmesh_unit_drops_total 3");
    const char *other = s_line(text, "# HELP tapmesh_unit_queue_depth Depth.");
    s_line(text, "# TYPE tapmesh_unit_queue_depth gauge");
    s_line(text, "tapmesh_unit_queue_depth 4");
    /* the family is contiguous: its samples come before the next header */
    assert_true(type < la && la < lb && lb < lc);
    assert_true(lc < other);
    /* and there is nothing else in between */
    const char *after_type = strchr(type, '\n') + 1;
    assert_ptr_equal(after_type, la);
    assert_ptr_equal(strchr(la, '\n') + 1, lb);
    assert_ptr_equal(strchr(lb, '\n') + 1, lc);
    free(text);
    metrics_destroy(&m);
}

/* ---- gauges ----------------------------------------------------------- */

static void test_gauge(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    metric_id_t g = metrics_gauge(m, "tapmesh_unit_level", "Level.", "queue=\"in\"");
    assert_true(g >= 0);
    char *text = s_render(m);
    s_line(text, "# TYPE tapmesh_unit_level gauge");
    s_line(text, "tapmesh_unit_level{queue=\"in\"} 0");
    free(text);

    /* exact text for the plain cases */
    static const struct {
        double v;
        const char *line;
    } exact[] = {
        {3, "tapmesh_unit_level{queue=\"in\"} 3"},
        {-2.5, "tapmesh_unit_level{queue=\"in\"} -2.5"},
        {0.1, "tapmesh_unit_level{queue=\"in\"} 0.1"},
        {0, "tapmesh_unit_level{queue=\"in\"} 0"},
        {1e6, "tapmesh_unit_level{queue=\"in\"} 1000000"},
        {INFINITY, "tapmesh_unit_level{queue=\"in\"} +Inf"},
        {-INFINITY, "tapmesh_unit_level{queue=\"in\"} -Inf"},
    };
    for (size_t i = 0; i < NELEMS(exact); i++) {
        metrics_set(m, g, exact[i].v);
        assert_true(metrics_value(m, g) == exact[i].v);
        text = s_render(m);
        s_line(text, exact[i].line);
        free(text);
    }

    /* whatever the text, it reads back as the same double */
    static const double round_trip[] = {
        1712345678.125, 123456789012.345, 9007199254740992.0,    0.1 + 0.2,
        1e-9,           -7.25e-3,         1.7976931348623157e308};
    for (size_t i = 0; i < NELEMS(round_trip); i++) {
        metrics_set(m, g, round_trip[i]);
        text = s_render(m);
        double back = s_sample(text, "tapmesh_unit_level{queue=\"in\"}");
        if (back != round_trip[i])
            fail_msg("gauge %.17g rendered as %.17g", round_trip[i], back);
        free(text);
    }

    metrics_set(m, g, NAN);
    assert_true(isnan(metrics_value(m, g)));
    text = s_render(m);
    assert_true(isnan(s_sample(text, "tapmesh_unit_level{queue=\"in\"}")));
    free(text);

    /* set replaces */
    metrics_set(m, g, 5);
    metrics_set(m, g, 2);
    assert_true(metrics_value(m, g) == 2);
    metrics_destroy(&m);
}

/* ---- histograms ------------------------------------------------------- */

static void test_histogram(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    static const double bounds[] = {0.5, 1, 10};
    metric_id_t h = metrics_histogram(m, "tapmesh_unit_batch_seconds", "Batch latency.",
                                      "route=\"a\"", bounds, NELEMS(bounds));
    assert_true(h >= 0);

    char *text = s_render(m);
    s_line(text, "# TYPE tapmesh_unit_batch_seconds histogram");
    s_line(text, "tapmesh_unit_batch_seconds_bucket{route=\"a\",le=\"0.5\"} 0");
    s_line(text, "tapmesh_unit_batch_seconds_bucket{route=\"a\",le=\"+Inf\"} 0");
    s_line(text, "tapmesh_unit_batch_seconds_sum{route=\"a\"} 0");
    s_line(text, "tapmesh_unit_batch_seconds_count{route=\"a\"} 0");
    free(text);

    /* a bound is inclusive (le: less or equal) */
    static const double obs[] = {0.25, 0.5, 0.75, 4, 10, 100};
    for (size_t i = 0; i < NELEMS(obs); i++)
        metrics_observe(m, h, obs[i]);
    assert_true(metrics_value(m, h) == 6);

    text = s_render(m);
    static const char *const lines[] = {
        "# HELP tapmesh_unit_batch_seconds Batch latency.",
        "# TYPE tapmesh_unit_batch_seconds histogram",
        "tapmesh_unit_batch_seconds_bucket{route=\"a\",le=\"0.5\"} 2",
        "tapmesh_unit_batch_seconds_bucket{route=\"a\",le=\"1\"} 3",
        "tapmesh_unit_batch_seconds_bucket{route=\"a\",le=\"10\"} 5",
        "tapmesh_unit_batch_seconds_bucket{route=\"a\",le=\"+Inf\"} 6",
        "tapmesh_unit_batch_seconds_sum{route=\"a\"} 115.5",
        "tapmesh_unit_batch_seconds_count{route=\"a\"} 6",
    };
    /* these lines, in this order, one after the other */
    const char *at = s_line(text, lines[0]);
    for (size_t i = 1; i < NELEMS(lines); i++) {
        at = strchr(at, '\n') + 1;
        if (strncmp(at, lines[i], strlen(lines[i])) != 0 || at[strlen(lines[i])] != '\n')
            fail_msg("expected \"%s\", got \"%.*s\"", lines[i], (int)strcspn(at, "\n"), at);
    }
    free(text);
    metrics_destroy(&m);
}

static void test_histogram_unlabelled(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    static const double bounds[] = {0.001, 0.0025, 0.1};
    metric_id_t h = metrics_histogram(m, "tapmesh_unit_ack_seconds", "Ack delay.", NULL, bounds, 3);
    metrics_observe(m, h, 0.002);
    metrics_observe(m, h, 0.5);
    metrics_observe(m, h, 0.0005);
    char *text = s_render(m);
    s_line(text, "tapmesh_unit_ack_seconds_bucket{le=\"0.001\"} 1");
    s_line(text, "tapmesh_unit_ack_seconds_bucket{le=\"0.0025\"} 2");
    s_line(text, "tapmesh_unit_ack_seconds_bucket{le=\"0.1\"} 2");
    s_line(text, "tapmesh_unit_ack_seconds_bucket{le=\"+Inf\"} 3");
    s_line(text, "tapmesh_unit_ack_seconds_count 3");
    assert_true(s_sample(text, "tapmesh_unit_ack_seconds_sum") == 0.002 + 0.5 + 0.0005);
    free(text);

    /* two label sets of one histogram: one family */
    metric_id_t x =
        metrics_histogram(m, "tapmesh_unit_ack_seconds", "Ack delay.", "peer=\"x\"", bounds, 3);
    assert_true(x >= 0 && x != h);
    metrics_observe(m, x, 0.05);
    text = s_render(m);
    assert_int_equal(s_count(text, "# TYPE tapmesh_unit_ack_seconds histogram\n"), 1);
    s_line(text, "tapmesh_unit_ack_seconds_bucket{peer=\"x\",le=\"0.0025\"} 0");
    s_line(text, "tapmesh_unit_ack_seconds_bucket{peer=\"x\",le=\"0.1\"} 1");
    s_line(text, "tapmesh_unit_ack_seconds_count{peer=\"x\"} 1");
    s_line(text, "tapmesh_unit_ack_seconds_count 3");
    free(text);

    /* bounds keep their digits in le */
    static const double odd[] = {0.0001, 1234.5, 86400, 123456.789};
    metric_id_t w = metrics_histogram(m, "tapmesh_unit_idle_seconds", "Idle.", NULL, odd, 4);
    metrics_observe(m, w, 1234.5);
    metrics_observe(m, w, 123456.7);
    text = s_render(m);
    s_line(text, "tapmesh_unit_idle_seconds_bucket{le=\"0.0001\"} 0");
    s_line(text, "tapmesh_unit_idle_seconds_bucket{le=\"1234.5\"} 1");
    s_line(text, "tapmesh_unit_idle_seconds_bucket{le=\"86400\"} 1");
    s_line(text, "tapmesh_unit_idle_seconds_bucket{le=\"123456.789\"} 2");
    s_line(text, "tapmesh_unit_idle_seconds_bucket{le=\"+Inf\"} 2");
    s_line(text, "tapmesh_unit_idle_seconds_sum 124691.2");
    free(text);
    metrics_destroy(&m);
}

/* More bounds than METRICS_MAX_BUCKETS: the first ones are kept. */
static void test_histogram_too_many_bounds(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    double bounds[METRICS_MAX_BUCKETS + 6];
    for (size_t i = 0; i < NELEMS(bounds); i++)
        bounds[i] = (double)(i + 1);
    metric_id_t h =
        metrics_histogram(m, "tapmesh_unit_wide", "Wide.", NULL, bounds, NELEMS(bounds));
    assert_true(h >= 0);
    metrics_observe(m, h, METRICS_MAX_BUCKETS);
    metrics_observe(m, h, METRICS_MAX_BUCKETS + 1);
    char *text = s_render(m);
    assert_int_equal(s_count(text, "tapmesh_unit_wide_bucket{"), METRICS_MAX_BUCKETS + 1);
    char line[128];
    snprintf(line, sizeof line, "tapmesh_unit_wide_bucket{le=\"%d\"} 1", METRICS_MAX_BUCKETS);
    s_line(text, line);
    s_line(text, "tapmesh_unit_wide_bucket{le=\"+Inf\"} 2");
    snprintf(line, sizeof line, "tapmesh_unit_wide_bucket{le=\"%d\"}", METRICS_MAX_BUCKETS + 1);
    assert_null(strstr(text, line));
    free(text);
    metrics_destroy(&m);
}

/* ---- label escaping --------------------------------------------------- */

static void test_label_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"edge1", "edge1"},
        {"a\\b", "a\\\\b"},
        {"say \"hi\"", "say \\\"hi\\\""},
        {"two\nlines", "two\\nlines"},
        {"\\\"\n", "\\\\\\\"\\n"},
        {"tab\tstays", "tab\tstays"},
    };
    for (size_t i = 0; i < NELEMS(cases); i++) {
        char out[64];
        memset(out, '#', sizeof out);
        char *r = metrics_label_escape(cases[i].in, out, sizeof out);
        assert_ptr_equal(r, out);
        assert_string_equal(out, cases[i].out);
    }

    /* a short buffer: terminated, never overrun, never half an escape */
    for (size_t len = 1; len <= 12; len++) {
        char buf[32];
        memset(buf, '#', sizeof buf);
        metrics_label_escape("\"\"\"\"\"\"\"\"\"\"", buf, len);
        size_t n = strlen(buf);
        assert_true(n < len);
        assert_true(n % 2 == 0);
        for (size_t i = 0; i < n; i += 2)
            assert_memory_equal(buf + i, "\\\"", 2);
        for (size_t i = len; i < sizeof buf; i++)
            assert_int_equal(buf[i], '#');
    }

    /* escaped values render as given */
    metrics_t *m = s_new();
    char esc[64], labels[96];
    snprintf(labels, sizeof labels, "file=\"%s\"",
             metrics_label_escape("C:\\caps\\\"x\".pcap\n", esc, sizeof esc));
    metric_id_t id = metrics_counter(m, "tapmesh_unit_files_total", "Files.", labels);
    metrics_add(m, id, 1);
    char *text = s_render(m);
    s_line(text, "tapmesh_unit_files_total{file=\"C:\\\\caps\\\\\\\"x\\\".pcap\\n\"} 1");
    free(text);
    metrics_destroy(&m);
}

/* ---- failed registrations --------------------------------------------- */

static void test_negative_ids_ignored(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    metric_id_t c = metrics_counter(m, "tapmesh_unit_c_total", "C.", NULL);
    metrics_add(m, c, 5);
    char *before = s_render(m);
    static const metric_id_t bad[] = {-1, -ENOSPC, -1000000};
    for (size_t i = 0; i < NELEMS(bad); i++) {
        metrics_add(m, bad[i], 7);
        metrics_set(m, bad[i], 7);
        metrics_observe(m, bad[i], 7);
        assert_true(metrics_value(m, bad[i]) == 0);
    }
    char *after = s_render(m);
    char *a = s_without_process(after), *b = s_without_process(before);
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_true(metrics_value(m, c) == 5);
    free(before);
    free(after);
    metrics_destroy(&m);
}

static void test_registry_full(void **state)
{
    (void)state;
    log_level_t saved = log_threshold;
    log_threshold = LOG_LVL_ERROR; /* the "registry full" warnings are expected */
    metrics_t *m = s_new();
    metric_id_t last = -1, id = 0;
    int registered = 0;
    char labels[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(labels, sizeof labels, "n=\"%d\"", i);
        id = metrics_counter(m, "tapmesh_unit_fill_total", "Fill.", labels);
        if (id < 0)
            break;
        assert_true(id > last);
        last = id;
        registered++;
    }
    assert_int_equal(id, -ENOSPC);
    assert_true(registered >= 1000);

    /* every kind fails alike, and the failed id is harmless */
    static const double bounds[] = {1};
    assert_int_equal(metrics_gauge(m, "tapmesh_unit_g", "G.", NULL), -ENOSPC);
    assert_int_equal(metrics_histogram(m, "tapmesh_unit_h", "H.", NULL, bounds, 1), -ENOSPC);
    metrics_add(m, id, 1);

    /* what is in stays usable */
    snprintf(labels, sizeof labels, "n=\"%d\"", registered - 1);
    assert_int_equal(metrics_counter(m, "tapmesh_unit_fill_total", "Fill.", labels), last);
    metrics_add(m, last, 9);
    char *text = s_render(m);
    char line[96];
    snprintf(line, sizeof line, "tapmesh_unit_fill_total{n=\"%d\"} 9", registered - 1);
    s_line(text, line);
    snprintf(line, sizeof line, "tapmesh_unit_fill_total{n=\"%d\"}", registered);
    assert_null(strstr(text, line));
    assert_int_equal(s_count(text, "# TYPE tapmesh_unit_fill_total counter"), 1);
    assert_int_equal(s_count(text, "tapmesh_unit_fill_total{"), (size_t)registered);
    s_no_line_starting(text, "tapmesh_unit_g ");
    free(text);
    metrics_destroy(&m);
    log_threshold = saved;
}

static void test_render_len_optional(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    char *a = metrics_render(m, NULL);
    assert_non_null(a);
    char *b = s_render(m);
    char *sa = s_without_process(a), *sb = s_without_process(b);
    assert_string_equal(sa, sb);
    assert_true(strlen(sa) > 0);
    free(sa);
    free(sb);
    free(a);
    free(b);
    metrics_destroy(&m);
}

/* ---- HTTP ------------------------------------------------------------- */

typedef struct {
    char *raw;        /* the whole response */
    int status;       /* from the status line */
    const char *type; /* Content-Type value, or NULL */
    long length;      /* Content-Length, or -1 */
    const char *body; /* after the blank line */
    size_t body_len;
} s_http_t;

static int s_connect_within(unsigned port, int seconds)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = seconds};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int s_connect(unsigned port)
{
    return s_connect_within(port, 5);
}

/* Sends `method path` as HTTP/1.0 and reads the response to the end, each
 * step within `seconds`. */
static void s_http_within(unsigned port, const char *method, const char *path, s_http_t *res,
                          int seconds)
{
    memset(res, 0, sizeof *res);
    int fd = s_connect_within(port, seconds);
    if (fd < 0)
        fail_msg("connect to port %u: %s", port, strerror(-fd));
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);

    size_t cap = 4096, len = 0;
    char *raw = malloc(cap);
    assert_non_null(raw);
    for (;;) {
        if (cap - len < 1024) {
            cap *= 2;
            raw = realloc(raw, cap);
            assert_non_null(raw);
        }
        ssize_t got = recv(fd, raw + len, cap - len - 1, 0);
        if (got < 0)
            fail_msg("recv: %s", strerror(errno));
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    raw[len] = '\0';
    res->raw = raw;

    int minor = -1;
    if (sscanf(raw, "HTTP/1.%d %d ", &minor, &res->status) != 2)
        fail_msg("no status line: \"%.80s\"", raw);
    char *end = strstr(raw, "\r\n\r\n");
    if (!end)
        fail_msg("no end of headers in \"%s\"", raw);
    *end = '\0';
    res->body = end + 4;
    res->body_len = len - (size_t)(res->body - raw);
    res->length = -1;
    char *save = NULL;
    strtok_r(raw, "\r\n", &save); /* the status line */
    for (char *h = strtok_r(NULL, "\r\n", &save); h; h = strtok_r(NULL, "\r\n", &save)) {
        if (strncasecmp(h, "Content-Type:", 13) == 0)
            res->type = h + 13 + strspn(h + 13, " ");
        else if (strncasecmp(h, "Content-Length:", 15) == 0)
            res->length = strtol(h + 15, NULL, 10);
    }
}

static void s_http(unsigned port, const char *method, const char *path, s_http_t *res)
{
    s_http_within(port, method, path, res, 5);
}

static void test_http(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    metric_id_t c = metrics_counter(m, "tapmesh_unit_requests_total", "Requests.", NULL);
    metrics_add(m, c, 7);
    char err[256] = "";
    int rc = metrics_serve(m, "127.0.0.1:0", err, sizeof err);
    if (rc != 0)
        fail_msg("metrics_serve: %d %s", rc, err);
    unsigned port = metrics_port(m);
    assert_true(port > 0 && port <= 65535);

    s_http_t res;
    s_http(port, "GET", "/metrics", &res);
    assert_int_equal(res.status, 200);
    assert_non_null(res.type);
    if (strncmp(res.type, "text/plain; version=0.0.4", 25) != 0)
        fail_msg("Content-Type: %s", res.type);
    if (res.length >= 0)
        assert_int_equal((size_t)res.length, res.body_len);
    assert_int_equal(strlen(res.body), res.body_len);
    s_line(res.body, "tapmesh_unit_requests_total 7");
    s_line(res.body, "tapmesh_unit_build_info{version=\"9.8.7\"} 1");
    free(res.raw);

    /* a snapshot per request: later updates show */
    metrics_add(m, c, 5);
    metric_id_t late = metrics_gauge(m, "tapmesh_unit_late", "Registered while serving.", NULL);
    metrics_set(m, late, 3);
    s_http(port, "GET", "/metrics", &res);
    assert_int_equal(res.status, 200);
    s_line(res.body, "tapmesh_unit_requests_total 12");
    s_line(res.body, "tapmesh_unit_late 3");
    /* the body is what metrics_render says */
    char *text = s_render(m);
    char *want = s_without_process(text), *got = s_without_process(res.body);
    assert_string_equal(got, want);
    free(want);
    free(got);
    free(text);
    /* with the process metrics, read for this request */
    s_line(res.body, "# TYPE process_cpu_seconds_total counter");
    assert_true(s_sample(res.body, "process_open_fds") >= 3);
    free(res.raw);

    s_http(port, "HEAD", "/metrics", &res);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.body_len, 0);
    free(res.raw);

    static const char *const elsewhere[] = {"/other", "/", "/metrics/", "/metricsx"};
    for (size_t i = 0; i < NELEMS(elsewhere); i++) {
        s_http(port, "GET", elsewhere[i], &res);
        assert_int_equal(res.status, 404);
        assert_null(strstr(res.body, "tapmesh_unit_requests_total"));
        free(res.raw);
    }

    s_http(port, "POST", "/metrics", &res);
    assert_int_equal(res.status, 405);
    assert_null(strstr(res.body, "tapmesh_unit_requests_total"));
    free(res.raw);

    /* destroy stops the server */
    metrics_destroy(&m);
    int fd = s_connect(port);
    if (fd >= 0)
        close(fd);
    assert_int_equal(fd, -ECONNREFUSED);
}

static void test_serve_errors(void **state)
{
    (void)state;
    metrics_t *first = s_new();
    char err[256] = "";
    assert_int_equal(metrics_serve(first, "127.0.0.1:0", err, sizeof err), 0);
    unsigned port = metrics_port(first);
    assert_true(port > 0);

    /* the address in use */
    metrics_t *second = s_new();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    err[0] = '\0';
    int rc = metrics_serve(second, addr, err, sizeof err);
    assert_true(rc < 0);
    assert_int_equal(rc, -EADDRINUSE);
    assert_non_null(strstr(err, "METRICS_ADDRPORT"));
    assert_non_null(strstr(err, addr));
    assert_non_null(strstr(err, strerror(-rc)));
    assert_int_equal(metrics_port(second), 0);
    /* the first still serves */
    s_http_t res;
    s_http(port, "GET", "/metrics", &res);
    assert_int_equal(res.status, 200);
    free(res.raw);
    metrics_destroy(&second);

    /* malformed addresses */
    static const char *const bad[] = {"nonsense", ":99999", "127.0.0.1:", ""};
    for (size_t i = 0; i < NELEMS(bad); i++) {
        metrics_t *m = s_new();
        err[0] = '\0';
        assert_int_equal(metrics_serve(m, bad[i], err, sizeof err), -EINVAL);
        char quoted[80];
        snprintf(quoted, sizeof quoted, "METRICS_ADDRPORT='%s'", bad[i]);
        if (!strstr(err, quoted))
            fail_msg("expected \"%s\" in \"%s\"", quoted, err);
        assert_int_equal(metrics_port(m), 0);
        metrics_destroy(&m);
    }
    metrics_destroy(&first);
}

/* GET /healthz tells whether the event loop still turns: 200 before the
 * first metrics_alive (starting) and while the last is recent, 503 with a
 * one-line reason once it is older than the timeout. */
static void test_healthz(void **state)
{
    (void)state;
    metrics_t *m = s_new();
    char err[256] = "";
    assert_int_equal(metrics_serve(m, "127.0.0.1:0", err, sizeof err), 0);
    unsigned port = metrics_port(m);
    s_http_t res;

    /* starting: no pass yet, and none expected within the timeout */
    metrics_set_alive_timeout(m, 50);
    usleep(200 * 1000);
    s_http(port, "GET", "/healthz", &res);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "ok\n");
    assert_non_null(res.type);
    assert_int_equal(strncmp(res.type, "text/plain", 10), 0);
    free(res.raw);

    metrics_set_alive_timeout(m, 0); /* the default, 10 s */
    metrics_alive(m);
    s_http(port, "GET", "/healthz", &res);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "ok\n");
    free(res.raw);
    s_http(port, "HEAD", "/healthz", &res);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.body_len, 0);
    free(res.raw);

    /* the loop stops calling: 503 once the last call is older than 100 ms */
    metrics_set_alive_timeout(m, 100);
    usleep(300 * 1000);
    s_http(port, "GET", "/healthz", &res);
    assert_int_equal(res.status, 503);
    if (!strstr(res.body, "stalled") || !strstr(res.body, "timeout 0.1 s"))
        fail_msg("503 body: \"%s\"", res.body);
    assert_int_equal(s_count(res.body, "\n"), 1);
    assert_true(res.body[res.body_len - 1] == '\n');
    /* how long, in seconds: at least the 0.3 s slept */
    const char *for_ = strstr(res.body, "no pass for ");
    assert_non_null(for_);
    double stalled = strtod(for_ + 12, NULL);
    if (stalled < 0.25 || stalled > 30)
        fail_msg("stalled for %.3f s in \"%s\"", stalled, res.body);
    free(res.raw);
    s_http(port, "HEAD", "/healthz", &res);
    assert_int_equal(res.status, 503);
    free(res.raw);
    /* /metrics answers regardless: it is how one sees why */
    s_http(port, "GET", "/metrics", &res);
    assert_int_equal(res.status, 200);
    free(res.raw);

    /* the loop turns again */
    metrics_alive(m);
    s_http(port, "GET", "/healthz", &res);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.body, "ok\n");
    free(res.raw);
    /* a longer timeout covers the same silence */
    usleep(300 * 1000);
    metrics_set_alive_timeout(m, 5000);
    s_http(port, "GET", "/healthz", &res);
    assert_int_equal(res.status, 200);
    free(res.raw);

    static const char *const elsewhere[] = {"/healthz/", "/health", "/healthzx"};
    for (size_t i = 0; i < NELEMS(elsewhere); i++) {
        s_http(port, "GET", elsewhere[i], &res);
        assert_int_equal(res.status, 404);
        free(res.raw);
    }
    s_http(port, "POST", "/healthz", &res);
    assert_int_equal(res.status, 405);
    free(res.raw);
    metrics_destroy(&m);
}

/* Connections that never send a request do not keep a scrape out, and do
 * not take more than a share of the process's descriptors: with the soft
 * limit at 128, the server holds at most 32 connections, and a newcomer
 * closes the one that has waited longest. */
static void test_idle_connections(void **state)
{
    (void)state;
    struct rlimit saved, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    if (saved.rlim_cur < 600) {
        print_message("RLIMIT_NOFILE %llu: check skipped\n", (unsigned long long)saved.rlim_cur);
        skip();
    }
    low = saved;
    low.rlim_cur = 128;
    metrics_t *m = s_new();
    char err[256] = "";
    /* the server sizes itself from the limit when it starts */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int rc = metrics_serve(m, "127.0.0.1:0", err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    assert_int_equal(rc, 0);
    unsigned port = metrics_port(m);

    int before = s_open_fds();
    enum { IDLE = 300 };
    int idle[IDLE];
    for (int i = 0; i < IDLE; i++) {
        idle[i] = s_connect(port);
        assert_true(idle[i] >= 0);
    }
    /* a scrape and a probe, answered within 2 s */
    s_http_t res;
    s_http_within(port, "GET", "/metrics", &res, 2);
    assert_int_equal(res.status, 200);
    s_line(res.body, "tapmesh_unit_build_info{version=\"9.8.7\"} 1");
    free(res.raw);
    /* the server's side of them: at most 32 descriptors, not 300 */
    int server_side = s_open_fds() - before - IDLE;
    if (server_side > 32)
        fail_msg("the server holds %d connections, limit 32", server_side);
    s_http_within(port, "GET", "/healthz", &res, 2);
    assert_int_equal(res.status, 200);
    free(res.raw);
    /* the oldest were closed by the server (end of stream, no response);
     * the newest still wait */
    char c;
    assert_int_equal(recv(idle[0], &c, 1, 0), 0);
    struct timeval short_tv = {.tv_usec = 200 * 1000};
    setsockopt(idle[IDLE - 1], SOL_SOCKET, SO_RCVTIMEO, &short_tv, sizeof short_tv);
    errno = 0;
    assert_int_equal(recv(idle[IDLE - 1], &c, 1, 0), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    /* and the newest can still ask */
    static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
    assert_int_equal(send(idle[IDLE - 1], req, sizeof req - 1, MSG_NOSIGNAL), sizeof req - 1);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(idle[IDLE - 1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    ssize_t got = recv(idle[IDLE - 1], buf, sizeof buf - 1, 0);
    assert_true(got > 0);
    buf[got] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d ", &status) != 1 || status != 200)
        fail_msg("the newest idle connection got \"%s\"", buf);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]);
    metrics_destroy(&m);
}

/* ---- promtool --------------------------------------------------------- */

static bool s_on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    while (*path) {
        size_t n = strcspn(path, ":");
        char full[512];
        snprintf(full, sizeof full, "%.*s/%s", (int)n, path, prog);
        if (n > 0 && access(full, X_OK) == 0)
            return true;
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

static void test_promtool(void **state)
{
    (void)state;
    if (!s_on_path("promtool")) {
        print_message("promtool not on PATH (Debian package prometheus): check skipped\n");
        skip();
    }
    metrics_t *m = s_new();
    char esc[64], labels[128];
    snprintf(labels, sizeof labels, "source=\"%s\"",
             metrics_label_escape("edge \"1\"\\\nb", esc, sizeof esc));
    metrics_add(m, metrics_counter(m, "tapmesh_unit_packets_total", "Packets.", labels), 3);
    metrics_add(m, metrics_counter(m, "tapmesh_unit_packets_total", "Packets.", NULL), 4);
    metrics_add(m, metrics_counter(m, "tapmesh_unit_bytes_total", "Bytes.", NULL), UINT64_MAX);
    metrics_set(m, metrics_gauge(m, "tapmesh_unit_queue_ratio", "Fill.", labels), 0.1 + 0.2);
    metrics_set(m, metrics_gauge(m, "tapmesh_unit_queue_ratio", "Fill.", NULL), INFINITY);
    metrics_set(m, metrics_gauge(m, "tapmesh_unit_lag_seconds", "Lag.", NULL), NAN);
    static const double bounds[] = {0.001, 0.01, 0.1, 1, 10};
    metric_id_t h =
        metrics_histogram(m, "tapmesh_unit_batch_seconds", "Latency.", labels, bounds, 5);
    metric_id_t h2 =
        metrics_histogram(m, "tapmesh_unit_batch_seconds", "Latency.", "source=\"b\"", bounds, 5);
    for (int i = 0; i < 50; i++) {
        metrics_observe(m, h, i * 0.37);
        metrics_observe(m, h2, i * 0.0013);
    }
    char *text = s_render(m);

    /* `promtool check metrics` lints too: problems exit non-zero */
    FILE *p = popen("promtool check metrics", "w");
    assert_non_null(p);
    assert_int_equal(fwrite(text, 1, strlen(text), p), strlen(text));
    int status = pclose(p);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("promtool check metrics: status %d on:\n%s", status, text);
    free(text);
    metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_series),
        cmocka_unit_test(test_process_metrics),
        cmocka_unit_test(test_process_start_time),
        cmocka_unit_test(test_counter),
        cmocka_unit_test(test_same_id),
        cmocka_unit_test(test_family),
        cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_unlabelled),
        cmocka_unit_test(test_histogram_too_many_bounds),
        cmocka_unit_test(test_label_escape),
        cmocka_unit_test(test_negative_ids_ignored),
        cmocka_unit_test(test_registry_full),
        cmocka_unit_test(test_render_len_optional),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_serve_errors),
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_idle_connections),
        cmocka_unit_test(test_promtool),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
