/*
 * test_log — levels filter before arguments are evaluated; one line per
 * event on stderr with the program name and the level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int s_evaluated;

static int s_side_effect(void)
{
    return ++s_evaluated;
}

/* Runs `fn` with stderr redirected to a file; returns what it wrote. */
static void s_capture(void (*fn)(void), char *out, size_t len)
{
    char path[] = "/tmp/test_log.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, out, len - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
}

static void s_emit_some(void)
{
    log_init("tapmesh-test", LOG_LVL_WARN);
    log_debug("debug %d", s_side_effect());
    log_info("info %d", s_side_effect());
    log_warn("warn %d", 7);
    log_error("error %s", "here");
}

static void test_levels(void **state)
{
    (void)state;
    char out[4096];
    s_evaluated = 0;
    s_capture(s_emit_some, out, sizeof out);
    assert_int_equal(s_evaluated, 0); /* filtered before the arguments */
    assert_null(strstr(out, "debug"));
    assert_null(strstr(out, "info"));
    const char *w = strstr(out, " tapmesh-test[");
    assert_non_null(w);
    assert_non_null(strstr(out, "] warn: warn 7\n"));
    assert_non_null(strstr(out, "] error: error here\n"));
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    /* ISO 8601 UTC timestamp first */
    assert_int_equal(out[4], '-');
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[23], 'Z');
}

static void s_emit_long(void)
{
    log_init("t", LOG_LVL_DEBUG);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    errno = EPIPE;
    log_info("%s", big);
    assert_int_equal(errno, EPIPE); /* logging keeps errno */
}

static void test_long_line_cut_whole(void **state)
{
    (void)state;
    char out[8192];
    s_capture(s_emit_long, out, sizeof out);
    size_t n = strlen(out);
    assert_true(n < 2100);
    assert_int_equal(out[n - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + n - 1); /* one line */
}

static void test_parse(void **state)
{
    (void)state;
    log_level_t l;
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_LVL_DEBUG);
    assert_int_equal(log_level_parse("error", &l), 0);
    assert_int_equal(l, LOG_LVL_ERROR);
    assert_int_equal(log_level_parse("loud", &l), -EINVAL);
    assert_int_equal(log_level_parse("", &l), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_long_line_cut_whole),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
