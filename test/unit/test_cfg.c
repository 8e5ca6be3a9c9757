/*
 * Unit tests for common/cfg: the settings table. Every cfg_type_t is fed
 * good and bad values from the environment and from flags; every error path
 * of cfg_load must return CFG_EXIT_ERROR with one line naming the variable
 * (and the flag, when the value came from one) and the offending value.
 * cfg_endpoint_check and cfg_addrport_parse are also tested directly.
 *
 * Every variable is named TT_* so that nothing from the caller's environment
 * leaks in (TT_* and TAPMESH_* are removed before the first test); the
 * teardown unsets every variable a test set. Tests of the warnings about
 * the environment run cfg_load in an environment of their own
 * (s_load_in_env), since those look at every variable.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "cfg.h"
#include "wire.h"

#define PROG "tapmesh-test"

/* argv for cfg_load: the program name, the arguments, a NULL sentinel. */
#define ARGV(...) ((const char *[]){PROG, __VA_ARGS__, NULL})
#define NOARGS ((const char *[]){PROG, NULL})
#define NROWS(rows) (sizeof(rows) / sizeof((rows)[0]))

/* ---- environment hygiene ---------------------------------------------- */

static char *s_envs[64];
static size_t s_nenvs;

/* Sets `name` and remembers it so that the teardown can unset it. */
static void s_setenv(const char *name, const char *value)
{
    bool known = false;
    for (size_t i = 0; i < s_nenvs; i++)
        known |= strcmp(s_envs[i], name) == 0;
    if (!known) {
        assert_true(s_nenvs < sizeof s_envs / sizeof s_envs[0]);
        s_envs[s_nenvs] = strdup(name);
        assert_non_null(s_envs[s_nenvs]);
        s_nenvs++;
    }
    assert_int_equal(setenv(name, value, 1), 0);
}

static void s_unsetenv_all(void)
{
    for (size_t i = 0; i < s_nenvs; i++) {
        unsetenv(s_envs[i]);
        free(s_envs[i]);
    }
    s_nenvs = 0;
}

/* Removes any TT_* or TAPMESH_* variable the caller of the test binary
 * happened to set (TAPMESH_TT_COUNT would be read as TT_COUNT). */
extern char **environ;

static int s_group_setup(void **state)
{
    (void)state;
    for (;;) {
        char name[128] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "TT_", 3) == 0 || strncmp(*e, "TAPMESH_", 8) == 0) {
                size_t n = strcspn(*e, "=");
                if (n < sizeof name) {
                    memcpy(name, *e, n);
                    name[n] = '\0';
                }
                break;
            }
        }
        if (!*name)
            return 0;
        unsetenv(name);
    }
}

static int s_teardown(void **state)
{
    (void)state;
    s_unsetenv_all();
    return 0;
}

/* ---- running cfg_load ------------------------------------------------- */

typedef struct {
    cfg_result_t rc;
    cfg_t *cfg;
    char err[1024]; /* as common/service.c */
    char *out;      /* what went to `out` (help, version) */
    size_t outlen;
} s_run_t;

static void s_run_free(s_run_t *r)
{
    cfg_destroy(&r->cfg);
    free(r->out);
    r->out = NULL;
}

/* Runs cfg_load on `rows` with a NULL-terminated argv (copied, so that
 * nothing can depend on argv outliving the call); captures `out`. */
static void s_load(s_run_t *r, const cfg_row_t *rows, size_t nrows, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    for (; args[argc]; argc++) {
        assert_true(argc + 1 < (int)(sizeof argv / sizeof argv[0]));
        argv[argc] = strdup(args[argc]);
        assert_non_null(argv[argc]);
    }
    argv[argc] = NULL;
    memset(r, 0, sizeof *r);
    FILE *out = open_memstream(&r->out, &r->outlen);
    assert_non_null(out);
    r->cfg = (cfg_t *)(uintptr_t)0x1; /* must be overwritten */
    r->rc = cfg_load(&r->cfg, PROG, "A test program.", rows, nrows, argc, argv, out, r->err,
                     sizeof r->err);
    assert_int_equal(fclose(out), 0);
    for (int i = 0; i < argc; i++) {
        memset(argv[i], '#', strlen(argv[i]));
        free(argv[i]);
    }
}

static void s_assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

static void s_assert_lacks(const char *hay, const char *needle)
{
    if (strstr(hay, needle))
        fail_msg("did not expect \"%s\" in \"%s\"", needle, hay);
}

static void s_assert_ok(s_run_t *r)
{
    if (r->rc != CFG_OK)
        fail_msg("cfg_load: rc %d, error \"%s\"", (int)r->rc, r->err);
    assert_non_null(r->cfg);
    assert_int_equal(r->outlen, 0);
}

/* An error: no cfg, nothing on `out`, one line in err naming everything in
 * the NULL-terminated list of needles. One line means no control character
 * at all: the value is shown escaped. */
static void s_assert_error(s_run_t *r, ...)
{
    if (r->rc != CFG_EXIT_ERROR)
        fail_msg("cfg_load: expected CFG_EXIT_ERROR, got %d", (int)r->rc);
    assert_null(r->cfg);
    assert_int_equal(r->outlen, 0);
    assert_null(strchr(r->err, '\n'));
    for (const unsigned char *p = (const unsigned char *)r->err; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            fail_msg("control character 0x%02x in the error \"%s\"", *p, r->err);
    s_assert_contains(r->err, PROG ": ");
    va_list ap;
    va_start(ap, r);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        s_assert_contains(r->err, n);
    va_end(ap);
}

/* One row, the value from the environment. */
static void s_env_one(s_run_t *r, const cfg_row_t *row, const char *value)
{
    s_setenv(row->env, value);
    s_load(r, row, 1, NOARGS);
}

/* Expects `value` in row's variable to be accepted; returns the run. */
static void s_env_ok(s_run_t *r, const cfg_row_t *row, const char *value)
{
    s_env_one(r, row, value);
    if (r->rc != CFG_OK)
        fail_msg("%s='%s' refused: %s", row->env, value, r->err);
    s_assert_ok(r);
    assert_string_equal(cfg_str(r->cfg, row->env), value);
}

/* Expects `value` to be refused, the error naming the variable, the value
 * and `reason`. */
static void s_env_bad(const cfg_row_t *row, const char *value, const char *reason)
{
    s_run_t r;
    char quoted[600];
    snprintf(quoted, sizeof quoted, "'%s'", value);
    s_env_one(&r, row, value);
    s_assert_error(&r, row->env, quoted, reason, NULL);
    s_run_free(&r);
}

/* ---- the table most tests use ----------------------------------------- */

static const cfg_row_t s_rows[] = {
    {"TT_COUNT", CFG_INT, "42", -10, 1000, NULL, false, "How many things."},
    {"TT_VERBOSE", CFG_BOOL, "false", 0, 0, NULL, false, "Say more."},
    {"TT_POLICY", CFG_ENUM, "mixed", 0, 0, "first|mixed|last", false, "Which one wins."},
    {"TT_NODE_ID", CFG_NAME, "node-1", 0, 0, NULL, false, "This node's name."},
    {"TT_ENDPOINT", CFG_ENDPOINT, "tcp://127.0.0.1:5710", 0, 0, NULL, false, "Where to connect."},
    {"TT_ENDPOINTS", CFG_ENDPOINTS, "tcp://127.0.0.1:5710,ipc:///tmp/tt.sock", 0, 0, NULL, false,
     "Where to send."},
    {"TT_METRICS_ADDRPORT", CFG_ADDRPORT, ":9108", 0, 0, NULL, false, "Prometheus listener."},
    {"TT_READ_FILE", CFG_FILE, NULL, 0, 0, NULL, false, "Capture to read."},
    {"TT_SPOOL_DIR", CFG_DIR, NULL, 0, 0, NULL, false, "Spool directory."},
    {"TT_OUTPUT", CFG_PATH, "-", 0, 0, NULL, false, "Where to write."},
    {"TT_DESCRIPTION", CFG_TEXT, "hello world", 0, 0, NULL, false, "Free text."},
    {"TT_BATCH_MAX_BYTES", CFG_INT, NULL, 1024, 16777216, NULL, false, "Batch size."},
    {"TT_FILTER", CFG_STR, "", 0, 0, NULL, false, "Any text."},
};

static const cfg_row_t *s_row(const char *env)
{
    for (size_t i = 0; i < NROWS(s_rows); i++)
        if (strcmp(s_rows[i].env, env) == 0)
            return &s_rows[i];
    fail_msg("no row %s", env);
    return NULL;
}

/* ---- defaults --------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), NOARGS);
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 42);
    assert_false(cfg_bool(r.cfg, "TT_VERBOSE"));
    assert_int_equal(cfg_enum(r.cfg, "TT_POLICY"), 1);
    assert_string_equal(cfg_str(r.cfg, "TT_NODE_ID"), "node-1");
    assert_string_equal(cfg_str(r.cfg, "TT_ENDPOINT"), "tcp://127.0.0.1:5710");
    assert_string_equal(cfg_str(r.cfg, "TT_ENDPOINTS"), "tcp://127.0.0.1:5710,ipc:///tmp/tt.sock");
    assert_string_equal(cfg_str(r.cfg, "TT_METRICS_ADDRPORT"), ":9108");
    assert_string_equal(cfg_str(r.cfg, "TT_OUTPUT"), "-");
    assert_string_equal(cfg_str(r.cfg, "TT_DESCRIPTION"), "hello world");
    assert_true(cfg_is_set(r.cfg, "TT_COUNT"));
    assert_true(cfg_is_set(r.cfg, "TT_DESCRIPTION"));
    /* rows without a default stay unset; cfg_str never returns NULL */
    assert_false(cfg_is_set(r.cfg, "TT_READ_FILE"));
    assert_false(cfg_is_set(r.cfg, "TT_SPOOL_DIR"));
    assert_false(cfg_is_set(r.cfg, "TT_BATCH_MAX_BYTES"));
    assert_string_equal(cfg_str(r.cfg, "TT_READ_FILE"), "");
    s_run_free(&r);
    assert_null(r.cfg);
}

static void test_env_values(void **state)
{
    (void)state;
    s_setenv("TT_COUNT", "7");
    s_setenv("TT_VERBOSE", "yes");
    s_setenv("TT_POLICY", "last");
    s_setenv("TT_NODE_ID", "edge-7");
    s_setenv("TT_DESCRIPTION", "from the environment");
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), NOARGS);
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 7);
    assert_true(cfg_bool(r.cfg, "TT_VERBOSE"));
    assert_int_equal(cfg_enum(r.cfg, "TT_POLICY"), 2);
    assert_string_equal(cfg_str(r.cfg, "TT_NODE_ID"), "edge-7");
    assert_string_equal(cfg_str(r.cfg, "TT_DESCRIPTION"), "from the environment");
    /* untouched rows keep their defaults */
    assert_string_equal(cfg_str(r.cfg, "TT_OUTPUT"), "-");
    s_run_free(&r);
}

/* An empty variable means "not set": back to the default, or unset. */
static void test_empty_env_falls_back_to_default(void **state)
{
    (void)state;
    s_setenv("TT_COUNT", "");
    s_setenv("TT_VERBOSE", "");
    s_setenv("TT_POLICY", "");
    s_setenv("TT_NODE_ID", "");
    s_setenv("TT_ENDPOINT", "");
    s_setenv("TT_OUTPUT", "");
    s_setenv("TT_READ_FILE", "");
    s_setenv("TT_BATCH_MAX_BYTES", "");
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), NOARGS);
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 42);
    assert_false(cfg_bool(r.cfg, "TT_VERBOSE"));
    assert_int_equal(cfg_enum(r.cfg, "TT_POLICY"), 1);
    assert_string_equal(cfg_str(r.cfg, "TT_NODE_ID"), "node-1");
    assert_string_equal(cfg_str(r.cfg, "TT_ENDPOINT"), "tcp://127.0.0.1:5710");
    assert_string_equal(cfg_str(r.cfg, "TT_OUTPUT"), "-");
    assert_false(cfg_is_set(r.cfg, "TT_READ_FILE"));
    assert_false(cfg_is_set(r.cfg, "TT_BATCH_MAX_BYTES"));
    s_run_free(&r);
}

/* Free text is the exception: empty is a value (clears a description),
 * for CFG_TEXT as for CFG_STR. */
static void test_empty_str_is_a_value(void **state)
{
    (void)state;
    s_setenv("TT_DESCRIPTION", "");
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), NOARGS);
    s_assert_ok(&r);
    assert_string_equal(cfg_str(r.cfg, "TT_DESCRIPTION"), "");
    assert_false(cfg_is_set(r.cfg, "TT_DESCRIPTION"));
    s_run_free(&r);

    static const cfg_row_t str[] = {{"TT_STR", CFG_STR, "dflt", 0, 0, NULL, false, "Str."}};
    s_env_one(&r, str, "");
    s_assert_ok(&r);
    assert_string_equal(cfg_str(r.cfg, "TT_STR"), "");
    s_run_free(&r);
}

/* ---- CFG_INT ---------------------------------------------------------- */

static void test_int_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t value;
    } good[] = {{"0", 0}, {"-10", -10}, {"1000", 1000}, {"999", 999}, {"17", 17}};
    const cfg_row_t *row = s_row("TT_COUNT");
    for (size_t i = 0; i < NROWS(good); i++) {
        s_run_t r;
        s_env_ok(&r, row, good[i].text);
        assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), good[i].value);
        s_run_free(&r);
    }
    /* beyond 32 bits */
    static const cfg_row_t big[] = {
        {"TT_BIG", CFG_INT, NULL, INT64_MIN, INT64_MAX, NULL, false, "Big."}};
    s_run_t r;
    s_env_ok(&r, big, "1099511627776");
    assert_int_equal(cfg_int(r.cfg, "TT_BIG"), INT64_C(1099511627776));
    s_run_free(&r);
    s_env_ok(&r, big, "9223372036854775807");
    assert_true(cfg_int(r.cfg, "TT_BIG") == INT64_MAX);
    s_run_free(&r);
    s_env_ok(&r, big, "-9223372036854775808");
    assert_true(cfg_int(r.cfg, "TT_BIG") == INT64_MIN);
    s_run_free(&r);
}

static void test_int_rejects(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_COUNT");
    s_env_bad(row, "abc", "not an integer");
    s_env_bad(row, "12x", "not an integer");
    s_env_bad(row, "1.5", "not an integer");
    s_env_bad(row, "0x10", "not an integer");
    s_env_bad(row, "-", "not an integer");
    s_env_bad(row, "99999999999999999999", "not an integer");
    s_env_bad(row, "1001", "out of range -10..1000");
    s_env_bad(row, "-11", "out of range -10..1000");
    s_env_bad(s_row("TT_BATCH_MAX_BYTES"), "1023", "out of range 1024..16777216");
    s_env_bad(s_row("TT_BATCH_MAX_BYTES"), "16777217", "out of range 1024..16777216");
}

/* ---- CFG_BOOL --------------------------------------------------------- */

static void test_bool_accepts(void **state)
{
    (void)state;
    static const char *const yes[] = {"1", "true", "yes", "on", "TRUE", "Yes", "oN"};
    static const char *const no[] = {"0", "false", "no", "off", "FALSE", "No", "OFF"};
    const cfg_row_t *row = s_row("TT_VERBOSE");
    for (size_t i = 0; i < NROWS(yes); i++) {
        s_run_t r;
        s_env_ok(&r, row, yes[i]);
        assert_true(cfg_bool(r.cfg, "TT_VERBOSE"));
        s_run_free(&r);
    }
    /* a row defaulting to true, so that "false" must really be read */
    static const cfg_row_t on[] = {{"TT_ON", CFG_BOOL, "true", 0, 0, NULL, false, "On."}};
    for (size_t i = 0; i < NROWS(no); i++) {
        s_run_t r;
        s_env_ok(&r, on, no[i]);
        assert_false(cfg_bool(r.cfg, "TT_ON"));
        s_run_free(&r);
    }
}

static void test_bool_rejects(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_VERBOSE");
    static const char *const bad[] = {"2", "maybe", "y", "n", "truee", "yes please", "-1"};
    for (size_t i = 0; i < NROWS(bad); i++)
        s_env_bad(row, bad[i], "not a boolean");
}

/* ---- CFG_ENUM --------------------------------------------------------- */

static void test_enum_index(void **state)
{
    (void)state;
    static const char *const choices[] = {"first", "mixed", "last"};
    const cfg_row_t *row = s_row("TT_POLICY");
    for (size_t i = 0; i < NROWS(choices); i++) {
        s_run_t r;
        s_env_ok(&r, row, choices[i]);
        assert_int_equal(cfg_enum(r.cfg, "TT_POLICY"), (int)i);
        s_run_free(&r);
    }
    /* one choice only */
    static const cfg_row_t one[] = {{"TT_ONE", CFG_ENUM, NULL, 0, 0, "only", false, "One."}};
    s_run_t r;
    s_env_ok(&r, one, "only");
    assert_int_equal(cfg_enum(r.cfg, "TT_ONE"), 0);
    s_run_free(&r);
}

static void test_enum_rejects(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_POLICY");
    static const char *const bad[] = {"middle",      "firs",   "firstx", "FIRST",
                                      "first|mixed", "mixed ", "|",      "last|"};
    for (size_t i = 0; i < NROWS(bad); i++)
        s_env_bad(row, bad[i], "not one of first|mixed|last");
}

/* ---- CFG_NAME --------------------------------------------------------- */

static void test_name(void **state)
{
    (void)state;
    char max[66], over[67];
    memset(max, 'a', 64);
    max[64] = '\0';
    memset(over, 'b', 65);
    over[65] = '\0';

    const cfg_row_t *row = s_row("TT_NODE_ID");
    static const char *const good[] = {"a", "edge-1", "A.b_c-9", "0", "..", "node.example.org"};
    for (size_t i = 0; i < NROWS(good); i++) {
        s_run_t r;
        s_env_ok(&r, row, good[i]);
        s_run_free(&r);
        assert_true(cfg_name_valid(good[i]));
    }
    s_run_t r;
    s_env_ok(&r, row, max);
    s_run_free(&r);
    assert_true(cfg_name_valid(max));

    const char *why = "1 to 64 characters";
    static const char *const bad[] = {"has space", "semi;colon", "quo\"te", "a/b",
                                      "a=b",       "n\xc3\xa9",  "brace{x}"};
    for (size_t i = 0; i < NROWS(bad); i++) {
        s_env_bad(row, bad[i], why);
        assert_false(cfg_name_valid(bad[i]));
    }
    /* control characters and bytes that are not UTF-8 are shown escaped, so
     * that the message stays one line */
    static const struct {
        const char *text, *shown;
    } escaped[] = {
        {"tab\there", "'tab\\there'"},
        {"new\nline", "'new\\nline'"},
        {"cr\r", "'cr\\r'"},
        {"esc\x1b[0m", "'esc\\x1b[0m'"},
        {"del\x7f", "'del\\x7f'"},
        {"caf\xe9", "'caf\\xe9'"},
        {"nel\xc2\x85", "'nel\\xc2\\x85'"},
    };
    for (size_t i = 0; i < NROWS(escaped); i++) {
        s_env_one(&r, row, escaped[i].text);
        s_assert_error(&r, "TT_NODE_ID=", escaped[i].shown, why, NULL);
        s_run_free(&r);
        assert_false(cfg_name_valid(escaped[i].text));
    }
    s_env_bad(row, over, why);
    assert_false(cfg_name_valid(over));
    assert_false(cfg_name_valid(""));
}

/* An empty name is "unset"; when the row is required that is an error. */
static void test_name_empty_required(void **state)
{
    (void)state;
    static const cfg_row_t rows[] = {
        {"TT_NODE", CFG_NAME, NULL, 0, 0, NULL, true, "Unique id of this node."}};
    s_run_t r;
    s_env_one(&r, rows, "");
    s_assert_error(&r, "TT_NODE", "is not set", "Unique id of this node.", NULL);
    s_run_free(&r);
}

/* ---- CFG_ENDPOINT ----------------------------------------------------- */

static const char *const s_good_endpoints[] = {
    "tcp://127.0.0.1:5710",  "tcp://*:5710",       "tcp://relay.example.org:1",
    "tcp://localhost:65535", "tcp://[::1]:5710",   "tcp://[fe80::1%eth0]:5710",
    "tcp://127.0.0.1:*",     "tcp://eth0:5710",    "ipc:///tmp/tapmesh.sock",
    "ipc://@abstract",       "inproc://collector",
};

static const struct {
    const char *text;
    const char *why; /* a part of the reason */
} s_bad_endpoints[] = {
    {"tcp://127.0.0.1", "tcp://HOST:PORT"},
    {"tcp://", "tcp://HOST:PORT"},
    {"tcp://:5710", "tcp://HOST:PORT"},
    {"tcp://127.0.0.1:", "port ''"},
    {"tcp://127.0.0.1:0", "port '0'"},
    {"tcp://127.0.0.1:70000", "port '70000'"},
    {"tcp://127.0.0.1:65536", "port '65536'"},
    {"tcp://127.0.0.1:-1", "port '-1'"},
    {"tcp://127.0.0.1:57x", "port '57x'"},
    {"tcp://127.0.0.1:**", "port '**'"},
    {"tcp://[::1:5710", "brackets"},
    {"tcp://[::1]", "brackets"},
    {"tcp://::1:5710", "brackets"},
    {"tcp://fe80::1:5710", "brackets"},
    {"udp://127.0.0.1:5710", "expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"},
    {"http://127.0.0.1:5710", "expected tcp://"},
    {"TCP://127.0.0.1:5710", "expected tcp://"},
    {"127.0.0.1:5710", "expected tcp://"},
    {"", "expected tcp://"},
    {"ipc://", "missing path"},
    {"inproc://", "missing path"},
};

static void test_endpoint_check(void **state)
{
    (void)state;
    char why[200];
    for (size_t i = 0; i < NROWS(s_good_endpoints); i++) {
        strcpy(why, "untouched");
        if (cfg_endpoint_check(s_good_endpoints[i], why, sizeof why) != 0)
            fail_msg("'%s' refused: %s", s_good_endpoints[i], why);
    }
    for (size_t i = 0; i < NROWS(s_bad_endpoints); i++) {
        why[0] = '\0';
        if (cfg_endpoint_check(s_bad_endpoints[i].text, why, sizeof why) != -EINVAL)
            fail_msg("'%s' accepted", s_bad_endpoints[i].text);
        s_assert_contains(why, s_bad_endpoints[i].why);
    }
    /* a short reason buffer is truncated, never overrun */
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    assert_int_equal(cfg_endpoint_check("udp://x:1", tiny, sizeof tiny), -EINVAL);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static void test_endpoint_row(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_ENDPOINT");
    for (size_t i = 0; i < NROWS(s_good_endpoints); i++) {
        s_run_t r;
        s_env_ok(&r, row, s_good_endpoints[i]);
        s_run_free(&r);
    }
    for (size_t i = 0; i < NROWS(s_bad_endpoints); i++) {
        if (!*s_bad_endpoints[i].text)
            continue; /* empty is "unset", tested elsewhere */
        s_env_bad(row, s_bad_endpoints[i].text, s_bad_endpoints[i].why);
    }
}

/* ---- CFG_ENDPOINTS ---------------------------------------------------- */

static void test_endpoints(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_ENDPOINTS");
    static const char *const good[] = {
        "tcp://127.0.0.1:5710",
        "tcp://a:1,tcp://b:2",
        "tcp://[::1]:5710,ipc:///run/x.sock,inproc://y",
    };
    for (size_t i = 0; i < NROWS(good); i++) {
        s_run_t r;
        s_env_ok(&r, row, good[i]);
        s_run_free(&r);
    }
    /* the bad element is named inside the whole value */
    s_env_bad(row, "tcp://a:1,udp://b:2", "'udp://b:2'");
    s_env_bad(row, "tcp://a:1,tcp://b:0,tcp://c:3", "'tcp://b:0': port '0'");
    s_env_bad(row, "tcp://a:70000,tcp://b:2", "'tcp://a:70000'");
    s_env_bad(row, "tcp://a:1,tcp://::1:2", "brackets");
    s_env_bad(row, "tcp://a:1,", "'': expected");
    s_env_bad(row, "tcp://a:1,,tcp://b:2", "'': expected");
    s_env_bad(row, ",tcp://a:1", "'': expected");

    /* one element longer than any endpoint could be */
    char longer[700] = "tcp://a:1,tcp://";
    size_t n = strlen(longer);
    memset(longer + n, 'h', 600);
    strcpy(longer + n + 600, ":5");
    s_run_t r;
    s_env_one(&r, row, longer);
    s_assert_error(&r, "TT_ENDPOINTS", "endpoint too long", NULL);
    s_run_free(&r);
}

/* ---- CFG_ADDRPORT ----------------------------------------------------- */

static void test_addrport_parse(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    char why[200];

    /* ":port" and "*:port": every address, v6 socket (dual stack) */
    static const char *const any[] = {":9108", "*:9108"};
    for (size_t i = 0; i < NROWS(any); i++) {
        memset(&ss, 0xa5, sizeof ss);
        len = 0;
        assert_int_equal(cfg_addrport_parse(any[i], &ss, &len, why, sizeof why), 0);
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(len, sizeof(struct sockaddr_in6));
        assert_int_equal(ntohs(a6->sin6_port), 9108);
        assert_memory_equal(&a6->sin6_addr, &in6addr_any, sizeof in6addr_any);
    }

    assert_int_equal(cfg_addrport_parse("127.0.0.1:9108", &ss, &len, why, sizeof why), 0);
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(a4->sin_port), 9108);
    assert_int_equal(ntohl(a4->sin_addr.s_addr), 0x7f000001);

    assert_int_equal(cfg_addrport_parse("10.1.2.3:1", &ss, &len, why, sizeof why), 0);
    assert_int_equal(ntohl(a4->sin_addr.s_addr), 0x0a010203);
    assert_int_equal(ntohs(a4->sin_port), 1);

    assert_int_equal(cfg_addrport_parse("[::1]:9108", &ss, &len, why, sizeof why), 0);
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(a6->sin6_port), 9108);
    assert_memory_equal(&a6->sin6_addr, &in6addr_loopback, sizeof in6addr_loopback);

    /* port 0: the kernel picks one (tests) */
    assert_int_equal(cfg_addrport_parse("127.0.0.1:0", &ss, &len, why, sizeof why), 0);
    assert_int_equal(ntohs(a4->sin_port), 0);
    assert_int_equal(cfg_addrport_parse("127.0.0.1:65535", &ss, &len, why, sizeof why), 0);
    assert_int_equal(ntohs(a4->sin_port), 65535);

    static const struct {
        const char *text, *why;
    } bad[] = {
        {"9108", "HOST:PORT"},         {"", "HOST:PORT"},    {"127.0.0.1", "HOST:PORT"},
        {"127.0.0.1:", "port ''"},     {":", "port ''"},     {":65536", "port '65536'"},
        {":70000", "port '70000'"},    {":-1", "port '-1'"}, {":91o8", "port '91o8'"},
        {"[::1]:http", "port 'http'"},
    };
    for (size_t i = 0; i < NROWS(bad); i++) {
        why[0] = '\0';
        if (cfg_addrport_parse(bad[i].text, &ss, &len, why, sizeof why) != -EINVAL)
            fail_msg("'%s' accepted", bad[i].text);
        s_assert_contains(why, bad[i].why);
    }

    /* a host longer than any host name */
    char longer[400];
    memset(longer, 'h', 300);
    strcpy(longer + 300, ":80");
    assert_int_equal(cfg_addrport_parse(longer, &ss, &len, why, sizeof why), -EINVAL);
    s_assert_contains(why, "too long");
}

static void test_addrport_row(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_METRICS_ADDRPORT");
    static const char *const good[] = {":9108", "127.0.0.1:9108", "[::1]:9108", "*:0"};
    for (size_t i = 0; i < NROWS(good); i++) {
        s_run_t r;
        s_env_ok(&r, row, good[i]);
        assert_true(cfg_is_set(r.cfg, row->env));
        s_run_free(&r);
    }
    /* empty turns the listener off: it does not fall back to ":9108" */
    s_run_t r;
    s_env_one(&r, row, "");
    s_assert_ok(&r);
    assert_false(cfg_is_set(r.cfg, row->env));
    assert_string_equal(cfg_str(r.cfg, row->env), "");
    s_run_free(&r);

    s_env_bad(row, ":99999", "port '99999'");
    s_env_bad(row, "127.0.0.1:x", "port 'x'");
    s_env_bad(row, "9108", "HOST:PORT");
}

/* ---- CFG_FILE, CFG_DIR, CFG_PATH -------------------------------------- */

typedef struct {
    char dir[64];
    char file[96];
} s_paths_t;

static void s_paths_make(s_paths_t *p)
{
    strcpy(p->dir, "/tmp/tapmesh-test-cfg.XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->file, sizeof p->file, "%s/capture.pcap", p->dir);
    FILE *f = fopen(p->file, "w");
    assert_non_null(f);
    fputs("not really a capture", f);
    assert_int_equal(fclose(f), 0);
}

static void s_paths_remove(s_paths_t *p)
{
    chmod(p->file, 0600);
    chmod(p->dir, 0700);
    unlink(p->file);
    rmdir(p->dir);
}

static void test_file(void **state)
{
    (void)state;
    s_paths_t p;
    s_paths_make(&p);
    const cfg_row_t *row = s_row("TT_READ_FILE");
    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such.pcap", p.dir);

    s_run_t r;
    s_env_ok(&r, row, p.file);
    s_run_free(&r);
    s_env_ok(&r, row, "-");
    s_run_free(&r);

    s_env_bad(row, missing, strerror(ENOENT));
    s_env_bad(row, p.dir, "is a directory");
    char below_file[160];
    snprintf(below_file, sizeof below_file, "%s/x", p.file);
    s_env_bad(row, below_file, strerror(ENOTDIR));

    if (geteuid() != 0) { /* root reads everything */
        assert_int_equal(chmod(p.file, 0), 0);
        s_env_bad(row, p.file, strerror(EACCES));
    }
    s_paths_remove(&p);
}

static void test_file_required(void **state)
{
    (void)state;
    static const cfg_row_t rows[] = {
        {"TT_READ_FILE", CFG_FILE, NULL, 0, 0, NULL, true, "Capture file to read."}};
    s_run_t r;
    s_load(&r, rows, 1, NOARGS);
    s_assert_error(&r, "TT_READ_FILE", "is not set", "Capture file to read.", NULL);
    s_run_free(&r);

    /* empty from the environment is the same as missing */
    s_env_one(&r, rows, "");
    s_assert_error(&r, "TT_READ_FILE", "is not set", NULL);
    s_run_free(&r);

    /* and an empty flag names the flag */
    s_load(&r, rows, 1, ARGV("--tt-read-file="));
    s_assert_error(&r, "--tt-read-file", "TT_READ_FILE", "is not set", NULL);
    s_run_free(&r);

    s_load(&r, rows, 1, ARGV("--tt-read-file", "-"));
    s_assert_ok(&r);
    assert_string_equal(cfg_str(r.cfg, "TT_READ_FILE"), "-");
    s_run_free(&r);
}

static void test_dir(void **state)
{
    (void)state;
    s_paths_t p;
    s_paths_make(&p);
    const cfg_row_t *row = s_row("TT_SPOOL_DIR");
    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such-dir", p.dir);

    s_run_t r;
    s_env_ok(&r, row, p.dir);
    s_run_free(&r);
    s_env_ok(&r, row, "/tmp");
    s_run_free(&r);

    s_env_bad(row, missing, strerror(ENOENT));
    s_env_bad(row, p.file, "not a directory");
    s_env_bad(row, "-", strerror(ENOENT));

    if (geteuid() != 0) { /* root writes everywhere */
        assert_int_equal(chmod(p.dir, 0500), 0);
        s_env_bad(row, p.dir, "not writable");
    }
    s_paths_remove(&p);
}

static void test_path(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_OUTPUT");
    /* a path to create: it need not exist yet */
    static const char *const good[] = {"-", "/tmp/tapmesh-test-does-not-exist/out.pcapng",
                                       "relative/out.pcap", "out"};
    for (size_t i = 0; i < NROWS(good); i++) {
        s_run_t r;
        s_env_ok(&r, row, good[i]);
        s_run_free(&r);
    }
    /* empty: the default */
    s_run_t r;
    s_env_one(&r, row, "");
    s_assert_ok(&r);
    assert_string_equal(cfg_str(r.cfg, row->env), "-");
    s_run_free(&r);
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-output=", "--tt-count", "3"));
    s_assert_ok(&r);
    assert_string_equal(cfg_str(r.cfg, row->env), "-");
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 3);
    s_run_free(&r);
}

/* CFG_STR takes anything: interface names, BPF filters. */
static void test_str(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_FILTER");
    static const char *const good[] = {"x",        "rack 4, port 17", "ünïcödé", "a=b",
                                       "--dashes", "'quoted'",        "tab\tok", "caf\xe9"};
    for (size_t i = 0; i < NROWS(good); i++) {
        s_run_t r;
        s_env_ok(&r, row, good[i]);
        s_run_free(&r);
    }
}

/* ---- CFG_TEXT --------------------------------------------------------- */

/* `text` as a HELLO's description and an interface's: wire_encode takes
 * it, and wire_decode gives it back byte for byte. */
static void s_assert_encodes(const char *text)
{
    static wire_msg_t msg, back;
    static uint8_t frame[WIRE_COMMAND_MAX];
    wire_msg_init(&msg, WIRE_HELLO, "edge-1", 1);
    snprintf(msg.hello.description, sizeof msg.hello.description, "%s", text);
    msg.hello.iface_count = 1;
    msg.hello.ifaces[0].linktype = 1;
    msg.hello.ifaces[0].snaplen = 65535;
    snprintf(msg.hello.ifaces[0].name, sizeof msg.hello.ifaces[0].name, "eth0");
    snprintf(msg.hello.ifaces[0].description, sizeof msg.hello.ifaces[0].description, "%s", text);
    size_t len = wire_encode(&msg, frame, sizeof frame);
    if (len == 0)
        fail_msg("accepted text does not encode: '%s'", text);
    assert_int_equal(wire_decode(frame, len, &back), WIRE_OK);
    assert_string_equal(back.hello.description, text);
    assert_string_equal(back.hello.ifaces[0].description, text);
}

/* `copies` times `unit`, then `tail`, in a new string the caller frees. */
static char *s_repeat(const char *unit, size_t copies, const char *tail)
{
    size_t ul = strlen(unit), tl = strlen(tail);
    char *t = malloc(ul * copies + tl + 1);
    assert_non_null(t);
    for (size_t i = 0; i < copies; i++)
        memcpy(t + i * ul, unit, ul);
    memcpy(t + ul * copies, tail, tl + 1);
    return t;
}

static void test_text_accepts(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_DESCRIPTION");
    static const char *const good[] = {
        "x",
        "rack 4, port 17",
        "ünïcödé",
        "Zürich → rack 4 ✓",
        "日本語の説明",
        "\xf0\x9f\x98\x80 U+1F600",
        "~ \\ \" ' = , ; # { } | `",
        "\xc2\xa0 U+00A0, the first after the C1 controls",
        "\xdf\xbf U+07FF",
        "\xe0\xa0\x80 U+0800",
        "\xed\x9f\xbf U+D7FF",
        "\xee\x80\x80 U+E000",
        "\xef\xbf\xbd U+FFFD \xef\xbf\xbf U+FFFF",
        "\xf0\x90\x80\x80 U+10000",
        "\xf4\x8f\xbf\xbf U+10FFFF",
    };
    for (size_t i = 0; i < NROWS(good); i++) {
        s_run_t r;
        s_env_ok(&r, row, good[i]);
        s_run_free(&r);
        char why[200] = "untouched";
        if (cfg_text_check(good[i], why, sizeof why) != 0)
            fail_msg("'%s' refused: %s", good[i], why);
        s_assert_encodes(good[i]);
    }
    /* exactly what the wire carries: 1024 bytes, in 1-, 2-, 3- and 4-byte
     * characters */
    char *longest[] = {s_repeat("x", 1024, ""), s_repeat("\xc3\xa9", 512, ""),
                       s_repeat("\xe2\x82\xac", 341, "x"), s_repeat("\xf0\x9f\x98\x80", 256, "")};
    for (size_t i = 0; i < NROWS(longest); i++) {
        assert_int_equal(strlen(longest[i]), WIRE_TEXT_MAX);
        s_run_t r;
        s_env_ok(&r, row, longest[i]);
        s_run_free(&r);
        s_assert_encodes(longest[i]);
        free(longest[i]);
    }
    /* empty is a value, and encodes */
    s_run_t r;
    s_env_ok(&r, row, "");
    s_run_free(&r);
    s_assert_encodes("");
    assert_int_equal(cfg_text_check("", NULL, 0), 0);
}

/* Every class of value the wire or a reader cannot take, refused with one
 * line naming the variable, the value (escaped) and the reason. */
static const struct {
    const char *text, *shown, *why;
} s_bad_texts[] = {
    /* control characters: C0, DEL, C1 */
    {"a\x01z", "'a\\x01z'", "control character U+0001 at byte 1"},
    {"tab\there", "'tab\\there'", "control character U+0009 at byte 3"},
    {"two\nlines", "'two\\nlines'", "control character U+000A at byte 3"},
    {"cr\r", "'cr\\r'", "control character U+000D at byte 2"},
    {"red \x1b[31m", "'red \\x1b[31m'", "control character U+001B at byte 4"},
    {"del\x7f", "'del\\x7f'", "control character U+007F at byte 3"},
    {"nel \xc2\x85", "'nel \\xc2\\x85'", "control character U+0085 at byte 4"},
    {"\xc2\x80", "'\\xc2\\x80'", "control character U+0080 at byte 0"},
    {"csi \xc2\x9b", "'csi \\xc2\\x9b'", "control character U+009B at byte 4"},
    /* overlong forms */
    {"\xc0\xaf", "'\\xc0\\xaf'", "not UTF-8 at byte 0 (overlong form)"},
    {"\xc0\x80", "'\\xc0\\x80'", "not UTF-8 at byte 0 (overlong form)"},
    {"a\xc1\xbf", "'a\\xc1\\xbf'", "not UTF-8 at byte 1 (overlong form)"},
    {"\xe0\x80\xaf", "'\\xe0\\x80\\xaf'", "not UTF-8 at byte 0 (overlong form)"},
    {"\xe0\x9f\xbf", "'\\xe0\\x9f\\xbf'", "not UTF-8 at byte 0 (overlong form)"},
    {"\xf0\x80\x80\xaf", "'\\xf0\\x80\\x80\\xaf'", "not UTF-8 at byte 0 (overlong form)"},
    {"\xf0\x8f\xbf\xbf", "'\\xf0\\x8f\\xbf\\xbf'", "not UTF-8 at byte 0 (overlong form)"},
    /* surrogates, alone or paired (CESU-8) */
    {"\xed\xa0\x80", "'\\xed\\xa0\\x80'", "not UTF-8 at byte 0 (surrogate)"},
    {"x\xed\xbf\xbf", "'x\\xed\\xbf\\xbf'", "not UTF-8 at byte 1 (surrogate)"},
    {"\xed\xa0\xbd\xed\xb8\x80", "'\\xed\\xa0\\xbd\\xed\\xb8\\x80'", "(surrogate)"},
    /* above U+10FFFF */
    {"\xf4\x90\x80\x80", "'\\xf4\\x90\\x80\\x80'", "not UTF-8 at byte 0 (above U+10FFFF)"},
    {"\xf5\x80\x80\x80", "'\\xf5\\x80\\x80\\x80'", "not UTF-8 at byte 0 (above U+10FFFF)"},
    {"\xf7\xbf\xbf\xbf", "'\\xf7\\xbf\\xbf\\xbf'", "not UTF-8 at byte 0 (above U+10FFFF)"},
    {"\xf8\x88\x80\x80\x80", "'\\xf8\\x88\\x80\\x80\\x80'", "not UTF-8 at byte 0"},
    {"\xfe", "'\\xfe'", "not UTF-8 at byte 0"},
    {"\xff", "'\\xff'", "not UTF-8 at byte 0"},
    /* sequences cut short: at the end, by ASCII, by another lead byte */
    {"\xc3", "'\\xc3'", "not UTF-8 at byte 0 (sequence cut short)"},
    {"ab\xe2\x82", "'ab\\xe2\\x82'", "not UTF-8 at byte 2 (sequence cut short)"},
    {"\xf0\x9f\x98", "'\\xf0\\x9f\\x98'", "not UTF-8 at byte 0 (sequence cut short)"},
    {"\xe2\x82x", "'\\xe2\\x82x'", "not UTF-8 at byte 0 (sequence cut short)"},
    {"\xc3\xc3\xa9", "'\\xc3\xc3\xa9'", "not UTF-8 at byte 0 (sequence cut short)"},
    {"caf\xe9", "'caf\\xe9'", "not UTF-8 at byte 3 (sequence cut short)"},
    {"caf\xe9 au lait", "'caf\\xe9 au lait'", "not UTF-8 at byte 3 (sequence cut short)"},
    /* a continuation byte without a lead */
    {"\x80", "'\\x80'", "not UTF-8 at byte 0 (stray continuation byte)"},
    {"a\xbfz", "'a\\xbfz'", "not UTF-8 at byte 1 (stray continuation byte)"},
    {"\xc3\xa9\xa9", "'\xc3\xa9\\xa9'", "not UTF-8 at byte 2 (stray continuation byte)"},
};

static void test_text_rejects(void **state)
{
    (void)state;
    const cfg_row_t *row = s_row("TT_DESCRIPTION");
    for (size_t i = 0; i < NROWS(s_bad_texts); i++) {
        s_run_t r;
        s_env_one(&r, row, s_bad_texts[i].text);
        s_assert_error(&r, "TT_DESCRIPTION=", s_bad_texts[i].shown, s_bad_texts[i].why, NULL);
        s_run_free(&r);

        char why[200] = "";
        if (cfg_text_check(s_bad_texts[i].text, why, sizeof why) != -EINVAL)
            fail_msg("cfg_text_check accepted '%s'", s_bad_texts[i].shown);
        s_assert_contains(why, s_bad_texts[i].why);
    }
    /* from a flag, the flag is named too */
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-description=a\x01z"));
    s_assert_error(&r, "--tt-description (TT_DESCRIPTION)='a\\x01z': control character", NULL);
    s_run_free(&r);

    /* longer than the wire's 1024 bytes, however it is made up */
    char *longer[] = {s_repeat("x", 1025, ""), s_repeat("\xc3\xa9", 513, ""),
                      s_repeat("x", 1023, "\xc3\xa9"), s_repeat("y", 5000, "")};
    for (size_t i = 0; i < NROWS(longer); i++) {
        s_env_one(&r, row, longer[i]);
        s_assert_error(&r, "TT_DESCRIPTION=", "longer than 1024 bytes", NULL);
        s_run_free(&r);
        char why[200] = "";
        assert_int_equal(cfg_text_check(longer[i], why, sizeof why), -EINVAL);
        s_assert_contains(why, "longer than 1024 bytes");
        free(longer[i]);
    }

    /* a short reason buffer is truncated, never overrun */
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    assert_int_equal(cfg_text_check("\x01", tiny, sizeof tiny), -EINVAL);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

/* A long value is shown cut (at a character boundary), so that the reason
 * still fits the caller's line. */
static void test_error_value_cut(void **state)
{
    (void)state;
    char *name = s_repeat("a", 1000, "");
    s_run_t r;
    s_env_one(&r, s_row("TT_NODE_ID"), name);
    name[400] = '\0';
    char shown[512];
    snprintf(shown, sizeof shown, "TT_NODE_ID='%s...': must be 1 to 64 characters", name);
    s_assert_error(&r, shown, NULL);
    s_run_free(&r);
    free(name);

    /* cut between characters, never inside one */
    char *text = s_repeat("\xc3\xa9", 600, "");
    s_env_one(&r, s_row("TT_DESCRIPTION"), text);
    text[400] = '\0';
    snprintf(shown, sizeof shown, "TT_DESCRIPTION='%s...': longer than 1024", text);
    s_assert_error(&r, shown, NULL);
    s_run_free(&r);
    free(text);
    /* 'x' then escapes of 4 bytes each: the cut is at a whole escape */
    text = s_repeat("\x01", 600, "");
    text[0] = 'x';
    s_env_one(&r, s_row("TT_DESCRIPTION"), text);
    s_assert_error(&r, "TT_DESCRIPTION='x\\x01\\x01",
                   "\\x01...': control character U+0001 at byte 1", NULL);
    s_assert_lacks(r.err, "\\x0...");
    s_assert_lacks(r.err, "\\x...");
    s_assert_lacks(r.err, "\\...");
    s_run_free(&r);
    free(text);
}

/* ---- required rows ---------------------------------------------------- */

static void test_required(void **state)
{
    (void)state;
    static const cfg_row_t rows[] = {
        {"TT_COUNT", CFG_INT, "5", 0, 10, NULL, false, "Optional."},
        {"TT_NEEDED", CFG_STR, NULL, 0, 0, NULL, true, "Must be given."},
        {"TT_LIMIT", CFG_INT, NULL, 0, 10, NULL, true, "A limit."},
    };
    s_run_t r;
    s_load(&r, rows, NROWS(rows), NOARGS);
    s_assert_error(&r, "TT_NEEDED", "is not set", "Must be given.", NULL);
    s_run_free(&r);

    s_setenv("TT_NEEDED", "here");
    s_load(&r, rows, NROWS(rows), NOARGS);
    s_assert_error(&r, "TT_LIMIT", "is not set", "A limit.", NULL);
    s_assert_lacks(r.err, "TT_NEEDED");
    s_run_free(&r);

    s_load(&r, rows, NROWS(rows), ARGV("--tt-limit", "9"));
    s_assert_ok(&r);
    assert_string_equal(cfg_str(r.cfg, "TT_NEEDED"), "here");
    assert_int_equal(cfg_int(r.cfg, "TT_LIMIT"), 9);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 5);
    s_run_free(&r);

    /* an empty required string is not "given" */
    s_setenv("TT_NEEDED", "");
    s_setenv("TT_LIMIT", "1");
    s_load(&r, rows, NROWS(rows), NOARGS);
    s_assert_error(&r, "TT_NEEDED", "is not set", NULL);
    s_run_free(&r);
}

/* ---- the command line ------------------------------------------------- */

static void test_flag_overrides_env(void **state)
{
    (void)state;
    s_setenv("TT_COUNT", "5");
    s_setenv("TT_NODE_ID", "from-env");
    s_setenv("TT_POLICY", "first");
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows),
           ARGV("--tt-count", "7", "--tt-node-id=from-flag", "--tt-policy", "last"));
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 7);
    assert_string_equal(cfg_str(r.cfg, "TT_COUNT"), "7");
    assert_string_equal(cfg_str(r.cfg, "TT_NODE_ID"), "from-flag");
    assert_int_equal(cfg_enum(r.cfg, "TT_POLICY"), 2);
    s_run_free(&r);

    /* the last flag wins */
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-count=1", "--tt-count", "2", "--tt-count=3"));
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 3);
    s_run_free(&r);

    /* a bad environment value that a flag replaces is never checked */
    s_setenv("TT_COUNT", "garbage");
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-count", "8"));
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 8);
    s_run_free(&r);
    /* ... but without the flag it is refused */
    s_load(&r, s_rows, NROWS(s_rows), NOARGS);
    s_assert_error(&r, "TT_COUNT", "'garbage'", "not an integer", NULL);
    s_assert_lacks(r.err, "--tt-count");
    s_run_free(&r);
}

static void test_flag_names_derived(void **state)
{
    (void)state;
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows),
           ARGV("--tt-batch-max-bytes", "4096", "--tt-metrics-addrport", "127.0.0.1:1"));
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_BATCH_MAX_BYTES"), 4096);
    assert_string_equal(cfg_str(r.cfg, "TT_METRICS_ADDRPORT"), "127.0.0.1:1");
    s_run_free(&r);

    /* the environment spelling is not a flag, nor is the underscore form */
    static const char *const wrong[] = {"--TT_COUNT", "--tt_count", "--TT-COUNT", "--tt-coun",
                                        "--tt-countx"};
    for (size_t i = 0; i < NROWS(wrong); i++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "unknown option '%s'", wrong[i]);
        s_load(&r, s_rows, NROWS(s_rows), ARGV(wrong[i], "1"));
        s_assert_error(&r, quoted, NULL);
        s_run_free(&r);
    }
}

static void test_flag_equals_form(void **state)
{
    (void)state;
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows),
           ARGV("--tt-count=-3", "--tt-description=a=b c", "--tt-endpoint=tcp://[::1]:9"));
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), -3);
    assert_string_equal(cfg_str(r.cfg, "TT_DESCRIPTION"), "a=b c");
    assert_string_equal(cfg_str(r.cfg, "TT_ENDPOINT"), "tcp://[::1]:9");
    s_run_free(&r);

    /* "--x=" is an empty value: back to the default, and the next word is
     * not taken as its value */
    s_setenv("TT_COUNT", "9");
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-count=", "--tt-policy=first"));
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 42);
    assert_int_equal(cfg_enum(r.cfg, "TT_POLICY"), 0);
    s_run_free(&r);
}

static void test_flag_value_errors(void **state)
{
    (void)state;
    s_setenv("TT_COUNT", "5");
    const struct {
        const char *arg, *value, *flag, *env, *why;
    } bad[] = {
        {"--tt-count=abc", "'abc'", "--tt-count", "TT_COUNT", "not an integer"},
        {"--tt-count=2000", "'2000'", "--tt-count", "TT_COUNT", "out of range"},
        {"--tt-verbose=maybe", "'maybe'", "--tt-verbose", "TT_VERBOSE", "not a boolean"},
        {"--tt-policy=best", "'best'", "--tt-policy", "TT_POLICY", "not one of"},
        {"--tt-node-id=a b", "'a b'", "--tt-node-id", "TT_NODE_ID", "1 to 64"},
        {"--tt-endpoint=tcp://h:0", "'tcp://h:0'", "--tt-endpoint", "TT_ENDPOINT", "port '0'"},
        {"--tt-endpoints=tcp://h:1,x", "'tcp://h:1,x'", "--tt-endpoints", "TT_ENDPOINTS", "'x'"},
        {"--tt-metrics-addrport=:1x", "':1x'", "--tt-metrics-addrport", "TT_METRICS_ADDRPORT",
         "port"},
        {"--tt-read-file=/nonexistent/tt", "'/nonexistent/tt'", "--tt-read-file", "TT_READ_FILE",
         strerror(ENOENT)},
        {"--tt-spool-dir=/nonexistent/tt", "'/nonexistent/tt'", "--tt-spool-dir", "TT_SPOOL_DIR",
         strerror(ENOENT)},
    };
    for (size_t i = 0; i < NROWS(bad); i++) {
        s_run_t r;
        s_load(&r, s_rows, NROWS(s_rows), ARGV(bad[i].arg));
        s_assert_error(&r, bad[i].flag, bad[i].env, bad[i].value, bad[i].why, NULL);
        s_run_free(&r);
    }
    /* the separate-word form names the flag too */
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-count", "x7"));
    s_assert_error(&r, "--tt-count (TT_COUNT)", "'x7'", "not an integer", NULL);
    s_assert_lacks(r.err, "'5'");
    s_run_free(&r);
}

static void test_bare_bool_flag(void **state)
{
    (void)state;
    s_run_t r;
    /* last argument */
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-verbose"));
    s_assert_ok(&r);
    assert_true(cfg_bool(r.cfg, "TT_VERBOSE"));
    assert_string_equal(cfg_str(r.cfg, "TT_VERBOSE"), "true");
    s_run_free(&r);

    /* followed by another flag, which is not taken as its value */
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-verbose", "--tt-count", "3"));
    s_assert_ok(&r);
    assert_true(cfg_bool(r.cfg, "TT_VERBOSE"));
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 3);
    s_run_free(&r);

    /* an explicit value still works in both forms, and beats the env */
    s_setenv("TT_VERBOSE", "on");
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-verbose", "false"));
    s_assert_ok(&r);
    assert_false(cfg_bool(r.cfg, "TT_VERBOSE"));
    s_run_free(&r);
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-verbose=off"));
    s_assert_ok(&r);
    assert_false(cfg_bool(r.cfg, "TT_VERBOSE"));
    s_run_free(&r);

    /* a non-boolean flag has no bare form */
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-verbose", "--tt-count"));
    s_assert_error(&r, "option '--tt-count' needs a value", NULL);
    s_run_free(&r);
}

static void test_flag_without_value(void **state)
{
    (void)state;
    static const char *const flags[] = {"--tt-count", "--tt-node-id", "--tt-description",
                                        "--tt-read-file"};
    for (size_t i = 0; i < NROWS(flags); i++) {
        s_run_t r;
        char needle[80];
        snprintf(needle, sizeof needle, "option '%s' needs a value", flags[i]);
        s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-verbose", flags[i]));
        s_assert_error(&r, needle, NULL);
        s_run_free(&r);
    }
}

static void test_unknown_flag(void **state)
{
    (void)state;
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-count", "1", "--bogus", "2"));
    s_assert_error(&r, "unknown option '--bogus'", "--help", NULL);
    s_run_free(&r);

    /* the value of "--name=value" is not part of the name */
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--bogus=secret"));
    s_assert_error(&r, "unknown option '--bogus'", NULL);
    s_assert_lacks(r.err, "secret");
    s_run_free(&r);

    s_load(&r, s_rows, NROWS(s_rows), ARGV("--"));
    s_assert_error(&r, "unknown option '--'", NULL);
    s_run_free(&r);

    /* an empty table knows no flags at all */
    s_load(&r, s_rows, 0, ARGV("--tt-count", "1"));
    s_assert_error(&r, "unknown option '--tt-count'", NULL);
    s_run_free(&r);
}

static void test_positional_argument(void **state)
{
    (void)state;
    static const char *const words[] = {"extra", "-x", "-", "TT_COUNT=3", ""};
    for (size_t i = 0; i < NROWS(words); i++) {
        s_run_t r;
        char needle[80];
        snprintf(needle, sizeof needle, "unexpected argument '%s'", words[i]);
        s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-count", "1", words[i]));
        s_assert_error(&r, needle, NULL);
        s_run_free(&r);
    }
}

static void test_no_rows(void **state)
{
    (void)state;
    s_run_t r;
    s_load(&r, s_rows, 0, NOARGS);
    s_assert_ok(&r);
    s_run_free(&r);
}

/* A short error buffer is truncated and terminated, never overrun. */
static void test_error_truncated(void **state)
{
    (void)state;
    s_setenv("TT_COUNT", "a-rather-long-value-that-does-not-fit");
    char argv0[] = PROG;
    char *argv[] = {argv0, NULL};
    char err[16];
    memset(err, 'x', sizeof err);
    cfg_t *cfg = NULL;
    assert_int_equal(
        cfg_load(&cfg, PROG, "s", s_rows, NROWS(s_rows), 1, argv, stdout, err, sizeof err),
        CFG_EXIT_ERROR);
    assert_null(cfg);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_memory_equal(err, PROG ": ", 14);
}

/* ---- TAPMESH_<NAME> --------------------------------------------------- */

static void test_tapmesh_prefix(void **state)
{
    (void)state;
    s_setenv("TT_COUNT", "5");
    s_setenv("TAPMESH_TT_COUNT", "6");
    s_setenv("TAPMESH_TT_NODE_ID", "prefixed"); /* the plain name unset */
    s_setenv("TT_POLICY", "last");              /* the prefixed name unset */
    s_setenv("TT_DESCRIPTION", "plain text");
    s_setenv("TAPMESH_TT_DESCRIPTION", "prefixed text");
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), NOARGS);
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 6);
    assert_string_equal(cfg_str(r.cfg, "TT_COUNT"), "6");
    assert_string_equal(cfg_str(r.cfg, "TT_NODE_ID"), "prefixed");
    assert_int_equal(cfg_enum(r.cfg, "TT_POLICY"), 2);
    assert_string_equal(cfg_str(r.cfg, "TT_DESCRIPTION"), "prefixed text");
    s_run_free(&r);

    /* a flag wins over both */
    s_load(&r, s_rows, NROWS(s_rows),
           ARGV("--tt-count", "7", "--tt-node-id=flagged", "--tt-description", "flag text"));
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 7);
    assert_string_equal(cfg_str(r.cfg, "TT_NODE_ID"), "flagged");
    assert_string_equal(cfg_str(r.cfg, "TT_DESCRIPTION"), "flag text");
    s_run_free(&r);

    /* the plain value under a prefixed one is never checked */
    s_setenv("TT_COUNT", "garbage");
    s_load(&r, s_rows, NROWS(s_rows), NOARGS);
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 6);
    s_run_free(&r);

    /* a bad prefixed value is reported under its own name */
    s_setenv("TAPMESH_TT_COUNT", "x9");
    s_load(&r, s_rows, NROWS(s_rows), NOARGS);
    s_assert_error(&r, "TAPMESH_TT_COUNT='x9': not an integer", NULL);
    s_assert_lacks(r.err, "garbage");
    s_run_free(&r);
    /* ... unless a flag replaces it */
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-count", "x8"));
    s_assert_error(&r, "--tt-count (TT_COUNT)='x8': not an integer", NULL);
    s_assert_lacks(r.err, "TAPMESH_");
    s_run_free(&r);

    /* set but empty, the prefixed name still wins, as an empty flag does:
     * back to the default, or the empty text */
    s_setenv("TT_COUNT", "5");
    s_setenv("TAPMESH_TT_COUNT", "");
    s_setenv("TAPMESH_TT_DESCRIPTION", "");
    s_load(&r, s_rows, NROWS(s_rows), NOARGS);
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 42);
    assert_string_equal(cfg_str(r.cfg, "TT_DESCRIPTION"), "");
    s_run_free(&r);
}

static void test_tapmesh_prefix_required(void **state)
{
    (void)state;
    static const cfg_row_t rows[] = {
        {"TT_NEEDED", CFG_STR, NULL, 0, 0, NULL, true, "Must be given."}};
    s_setenv("TAPMESH_TT_NEEDED", "given");
    s_run_t r;
    s_load(&r, rows, NROWS(rows), NOARGS);
    s_assert_ok(&r);
    assert_string_equal(cfg_str(r.cfg, "TT_NEEDED"), "given");
    s_run_free(&r);
    /* an empty prefixed name hides the plain one: not given */
    s_setenv("TAPMESH_TT_NEEDED", "");
    s_setenv("TT_NEEDED", "plain");
    s_load(&r, rows, NROWS(rows), NOARGS);
    s_assert_error(&r, "TAPMESH_TT_NEEDED is not set", NULL);
    s_run_free(&r);
}

/* ---- warnings about the environment ----------------------------------- */

/* Runs cfg_load with exactly the "NAME=VALUE" strings of `env` (NULL at the
 * end) as the environment, and restores the process's own afterwards. */
static void s_load_in_env(s_run_t *r, const cfg_row_t *rows, size_t nrows, const char *const *env,
                          const char *const *args)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **saved = calloc(n + 1, sizeof *saved);
    assert_non_null(saved);
    for (size_t i = 0; i < n; i++) {
        saved[i] = strdup(environ[i]);
        assert_non_null(saved[i]);
    }
    assert_int_equal(clearenv(), 0);
    for (size_t i = 0; env[i]; i++) {
        char *pair = strdup(env[i]);
        assert_non_null(pair);
        char *eq = strchr(pair, '=');
        assert_non_null(eq);
        *eq = '\0';
        assert_int_equal(setenv(pair, eq + 1, 1), 0);
        free(pair);
    }
    s_load(r, rows, nrows, args);
    assert_int_equal(clearenv(), 0);
    for (size_t i = 0; i < n; i++) {
        char *eq = strchr(saved[i], '=');
        if (eq) {
            *eq = '\0';
            assert_int_equal(setenv(saved[i], eq + 1, 1), 0);
        }
        free(saved[i]);
    }
    free(saved);
}

/* The warnings are exactly `want` (NULL at the end), in any order, each
 * once. */
static void s_assert_warnings(const cfg_t *cfg, const char *const *want)
{
    size_t n = 0;
    while (cfg_warning(cfg, n))
        n++;
    size_t nwant = 0;
    while (want[nwant])
        nwant++;
    for (size_t w = 0; w < nwant; w++) {
        size_t seen = 0;
        for (size_t i = 0; i < n; i++)
            seen += strcmp(cfg_warning(cfg, i), want[w]) == 0;
        if (seen != 1) {
            char all[4096] = "";
            for (size_t i = 0; i < n; i++) {
                strncat(all, cfg_warning(cfg, i), sizeof all - strlen(all) - 1);
                strncat(all, " | ", sizeof all - strlen(all) - 1);
            }
            fail_msg("warning \"%s\" seen %zu times; all: %s", want[w], seen, all);
        }
    }
    if (n != nwant) {
        for (size_t i = 0; i < n; i++)
            print_message("warning: %s\n", cfg_warning(cfg, i));
        fail_msg("%zu warnings, expected %zu", n, nwant);
    }
}

#define S_ROW(name)                                                                                \
    {                                                                                              \
        name, CFG_STR, NULL, 0, 0, NULL, false, "A setting."                                       \
    }

/* Every setting of tapmesh-capture, -relay and -collect. */
static const cfg_row_t s_real_rows[] = {
    S_ROW("NODE_ID"),          S_ROW("METRICS_ADDRPORT"),
    S_ROW("LOG_LEVEL"),        S_ROW("DEVICE"),
    S_ROW("READ_FILE"),        S_ROW("FILTER"),
    S_ROW("SNAPLEN"),          S_ROW("PROMISC"),
    S_ROW("IMMEDIATE_MODE"),   S_ROW("PCAP_BUFFER_MB"),
    S_ROW("TSTAMP_TYPE"),      S_ROW("REPLAY_SPEED"),
    S_ROW("RELAY_ENDPOINT"),   S_ROW("DESCRIPTION"),
    S_ROW("BATCH_MAX_BYTES"),  S_ROW("BATCH_MAX_DELAY_MS"),
    S_ROW("INFLIGHT_BATCHES"), S_ROW("ACK_TIMEOUT_MS"),
    S_ROW("RETRY_TIMEOUT_S"),  S_ROW("DLQ_DIR"),
    S_ROW("BUFFER_MAX_MB"),    S_ROW("HEARTBEAT_MS"),
    S_ROW("COLLECT_ENDPOINT"), S_ROW("FANOUT"),
    S_ROW("HOP_TIMEOUT_MS"),   S_ROW("PENDING_MAX"),
    S_ROW("MAX_SOURCES"),      S_ROW("OUTPUT"),
    S_ROW("ROTATE_MB"),        S_ROW("ROTATE_S"),
    S_ROW("STATE_DIR"),        S_ROW("FLUSH_MS"),
    S_ROW("ANNOTATE"),         S_ROW("MAX_BATCH_MB"),
    S_ROW("OUTPUT_FORMAT"),    S_ROW("LINKTYPE_POLICY"),
    S_ROW("MERGE_WINDOW_MS"),  S_ROW("SOURCE_IDLE_S"),
    S_ROW("STARTUP_WAIT_MS"),  S_ROW("MERGE_MAX_MB"),
    S_ROW("OUTPUT_BUFFER_KB"), S_ROW("EXPECT_SOURCES"),
};

static void test_typo_warnings(void **state)
{
    (void)state;
    static const char *const env[] = {
        "DEVCE=lo",                  /* a letter left out */
        "OUPTUT=/tmp/out",           /* two swapped */
        "FILTRE=tcp",                /* two swapped */
        "LOG_LEVELS=debug",          /* one too many */
        "STATEDIR=/var/lib/x",       /* the underscore left out */
        "SNAPLNE=96",                /* swapped */
        "node_id=edge-1",            /* lower case */
        "DEVICE_=eth0",              /* trailing underscore */
        "TAPMESH_DEVCE=lo",          /* prefixed, mistyped */
        "TAPMESH_node_id=edge",      /* prefixed, lower case */
        "TAPMESH_BIN=/opt/bin",      /* prefixed, no setting near */
        "TAPMESH_=x",                /* the bare prefix */
        "TAPMESH_COLLECT_PORT=5710", /* not Kubernetes' tcp://... form */
        "TAPMES_OUTPUT=-",           /* the prefix mistyped */
        "TAPMESHOUTPUT=-",           /* the prefix's underscore left out */
        /* exact names: no warning */
        "DEVICE=eth0",
        "TAPMESH_OUTPUT=-",
        "FILTER=udp",
        "TAPMESH_LOG_LEVEL=warn",
        /* three edits or more away, or nothing like a setting: no warning */
        "DXVXCX=1",
        "OUTPUTXYZ=1",
        "FOO=1",
        "BAR_BAZ=1",
        "MY_APP_DEVICE_ID=1",
        "X=1",
        NULL,
    };
    static const char *const want[] = {
        "DEVCE is no setting; did you mean DEVICE?",
        "OUPTUT is no setting; did you mean OUTPUT?",
        "FILTRE is no setting; did you mean FILTER?",
        "LOG_LEVELS is no setting; did you mean LOG_LEVEL?",
        "STATEDIR is no setting; did you mean STATE_DIR?",
        "SNAPLNE is no setting; did you mean SNAPLEN?",
        "node_id is no setting; did you mean NODE_ID?",
        "DEVICE_ is no setting; did you mean DEVICE?",
        "TAPMESH_DEVCE is no setting; did you mean TAPMESH_DEVICE?",
        "TAPMESH_node_id is no setting; did you mean TAPMESH_NODE_ID?",
        "TAPMESH_BIN is no setting; see --help",
        "TAPMESH_ is no setting; see --help",
        "TAPMESH_COLLECT_PORT is no setting; see --help",
        "TAPMES_OUTPUT is no setting; did you mean TAPMESH_OUTPUT?",
        "TAPMESHOUTPUT is no setting; did you mean TAPMESH_OUTPUT?",
        NULL,
    };
    s_run_t r;
    s_load_in_env(&r, s_real_rows, NROWS(s_real_rows), env, NOARGS);
    s_assert_ok(&r); /* warnings do not stop start-up */
    s_assert_warnings(r.cfg, want);
    /* a mistyped name sets nothing */
    assert_string_equal(cfg_str(r.cfg, "DEVICE"), "eth0");
    assert_false(cfg_is_set(r.cfg, "NODE_ID"));
    assert_false(cfg_is_set(r.cfg, "STATE_DIR"));
    assert_string_equal(cfg_str(r.cfg, "OUTPUT"), "-");
    s_run_free(&r);
}

/* Names of 4 or 5 characters are near at one edit, of 3 or fewer never. */
static void test_typo_short_names(void **state)
{
    (void)state;
    static const cfg_row_t rows[] = {S_ROW("ZONE"), S_ROW("PEERS"), S_ROW("ABC"), S_ROW("SNAPLEN")};
    static const char *const env[] = {
        "ZONES=1", "PEER=1",  "SNPLN=1", /* near */
        "ZONXS=1", "PEARL=1", "ABD=1",   "AB=1", "ABCD=1", "NAPLX=1", "zone=1", NULL,
    };
    static const char *const want[] = {
        "ZONES is no setting; did you mean ZONE?",
        "PEER is no setting; did you mean PEERS?",
        "SNPLN is no setting; did you mean SNAPLEN?",
        "zone is no setting; did you mean ZONE?",
        NULL,
    };
    s_run_t r;
    s_load_in_env(&r, rows, NROWS(rows), env, NOARGS);
    s_assert_ok(&r);
    s_assert_warnings(r.cfg, want);
    s_run_free(&r);
}

/* The nearest setting is named; on a tie, the first in the table. */
static void test_typo_nearest(void **state)
{
    (void)state;
    static const cfg_row_t rows[] = {S_ROW("ROTATE_MB"), S_ROW("ROTATE_S"), S_ROW("OUTPUT_X"),
                                     S_ROW("OUTPUT_Y")};
    static const char *const env[] = {"ROTATE_SS=1", "ROTATE_M=1", "OUTPUT_Z=1", NULL};
    static const char *const want[] = {
        "ROTATE_SS is no setting; did you mean ROTATE_S?",
        "ROTATE_M is no setting; did you mean ROTATE_MB?",
        "OUTPUT_Z is no setting; did you mean OUTPUT_X?",
        NULL,
    };
    s_run_t r;
    s_load_in_env(&r, rows, NROWS(rows), env, NOARGS);
    s_assert_ok(&r);
    s_assert_warnings(r.cfg, want);
    s_run_free(&r);
}

/* No false alarm: a shell's, a container's and a Kubernetes pod's usual
 * environment, next to every real setting given both ways. */
static void test_no_warning_usual_environment(void **state)
{
    (void)state;
    static const char *const usual[] = {
        "PATH=/usr/bin",
        "HOME=/root",
        "USER=root",
        "LOGNAME=root",
        "TERM=xterm",
        "SHELL=/bin/sh",
        "PWD=/",
        "OLDPWD=/tmp",
        "SHLVL=1",
        "LANG=C.UTF-8",
        "LANGUAGE=en",
        "HOSTNAME=edge-1",
        "HOSTTYPE=x86_64",
        "OSTYPE=linux-gnu",
        "MAIL=/var/mail/root",
        "TZ=UTC",
        "TMPDIR=/tmp",
        "EDITOR=vi",
        "VISUAL=vi",
        "PAGER=less",
        "DISPLAY=:0",
        "COLUMNS=80",
        "LINES=24",
        "_=/usr/bin/env",
        "LC_ALL=C",
        "LC_CTYPE=C.UTF-8",
        "XDG_RUNTIME_DIR=/run/user/0",
        "SSH_AUTH_SOCK=/tmp/a",
        "SSH_TTY=/dev/pts/0",
        "NODE_IP=10.0.0.7",
        "NODE_NAME=worker-1",
        "HOST_IP=10.0.0.7",
        "POD_IP=10.1.0.9",
        "POD_NAME=capture-0",
        "POD_NAMESPACE=net",
        "http_proxy=http://p:3128",
        "no_proxy=localhost",
        "container=podman",
        "DEBIAN_FRONTEND=noninteractive",
        "ASAN_OPTIONS=detect_leaks=1",
        "CI=true",
        "LD_LIBRARY_PATH=/opt/lib",
        "MAKEFLAGS=-j2",
        /* Kubernetes' service variables, for a service named tapmesh-collect */
        "KUBERNETES_SERVICE_HOST=10.96.0.1",
        "KUBERNETES_SERVICE_PORT=443",
        "KUBERNETES_PORT=tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443",
        "TAPMESH_COLLECT_SERVICE_HOST=10.96.3.4",
        "TAPMESH_COLLECT_SERVICE_PORT=5710",
        "TAPMESH_COLLECT_SERVICE_PORT_DATA=5710",
        "TAPMESH_COLLECT_PORT=tcp://10.96.3.4:5710",
        "TAPMESH_COLLECT_PORT_5710_TCP=tcp://10.96.3.4:5710",
        "TAPMESH_COLLECT_PORT_5710_TCP_PROTO=tcp",
        "TAPMESH_COLLECT_PORT_5710_TCP_PORT=5710",
        "TAPMESH_COLLECT_PORT_5710_TCP_ADDR=10.96.3.4",
        "TAPMESH_RELAY_PORT_9710_UDP=udp://10.96.3.5:9710",
    };
    /* the usual environment, then every setting plain and prefixed */
    const size_t nusual = NROWS(usual), nrows = NROWS(s_real_rows);
    const char **env = calloc(nusual + 2 * nrows + 1, sizeof *env);
    char **made = calloc(2 * nrows, sizeof *made);
    assert_non_null(env);
    assert_non_null(made);
    size_t n = 0;
    for (size_t i = 0; i < nusual; i++)
        env[n++] = usual[i];
    for (size_t i = 0; i < nrows; i++) {
        made[2 * i] = malloc(128);
        made[2 * i + 1] = malloc(128);
        assert_non_null(made[2 * i]);
        assert_non_null(made[2 * i + 1]);
        snprintf(made[2 * i], 128, "%s=1", s_real_rows[i].env);
        snprintf(made[2 * i + 1], 128, "TAPMESH_%s=1", s_real_rows[i].env);
        env[n++] = made[2 * i];
        env[n++] = made[2 * i + 1];
    }
    env[n] = NULL;
    s_run_t r;
    s_load_in_env(&r, s_real_rows, nrows, env, NOARGS);
    s_assert_ok(&r);
    static const char *const none[] = {NULL};
    s_assert_warnings(r.cfg, none);
    s_run_free(&r);
    for (size_t i = 0; i < 2 * nrows; i++)
        free(made[i]);
    free(made);
    free(env);

    /* the exemptions matter: NODE_IP is one edit from NODE_ID */
    static const char *const near[] = {"NODE_IX=1", NULL};
    static const char *const want[] = {"NODE_IX is no setting; did you mean NODE_ID?", NULL};
    s_load_in_env(&r, s_real_rows, nrows, near, NOARGS);
    s_assert_ok(&r);
    s_assert_warnings(r.cfg, want);
    s_run_free(&r);
}

static void test_warning_accessor(void **state)
{
    (void)state;
    static const char *const quiet[] = {"TT_COUNT=3", NULL};
    s_run_t r;
    s_load_in_env(&r, s_rows, NROWS(s_rows), quiet, NOARGS);
    s_assert_ok(&r);
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 3);
    assert_null(cfg_warning(r.cfg, 0));
    assert_null(cfg_warning(r.cfg, SIZE_MAX));
    s_run_free(&r);

    static const char *const one[] = {"TT_COUNTT=3", NULL};
    s_load_in_env(&r, s_rows, NROWS(s_rows), one, NOARGS);
    s_assert_ok(&r);
    assert_string_equal(cfg_warning(r.cfg, 0), "TT_COUNTT is no setting; did you mean TT_COUNT?");
    assert_null(cfg_warning(r.cfg, 1));
    assert_null(cfg_warning(r.cfg, SIZE_MAX));
    assert_int_equal(cfg_int(r.cfg, "TT_COUNT"), 42);
    s_run_free(&r);

    /* --help ignores the environment's names */
    s_load_in_env(&r, s_rows, NROWS(s_rows), one, ARGV("--help"));
    assert_int_equal(r.rc, CFG_EXIT_HELP);
    s_assert_contains(r.out, "TAPMESH_");
    s_run_free(&r);
}

/* ---- --help and --version --------------------------------------------- */

/* What --help must say about each row of s_rows, in table order: the env
 * name, the derived flag, the value hint, the help, the default. */
static const char *const s_help_blocks[] = {
    "  TT_COUNT, --tt-count N\n      How many things.\n      default: 42; range -10..1000\n",
    "  TT_VERBOSE, --tt-verbose BOOL\n      Say more.\n      default: false\n",
    "  TT_POLICY, --tt-policy first|mixed|last\n      Which one wins.\n      default: mixed\n",
    "  TT_NODE_ID, --tt-node-id NAME\n      This node's name.\n      default: node-1\n",
    "  TT_ENDPOINT, --tt-endpoint ENDPOINT\n      Where to connect.\n"
    "      default: tcp://127.0.0.1:5710\n",
    "  TT_ENDPOINTS, --tt-endpoints ENDPOINT[,ENDPOINT...]\n      Where to send.\n"
    "      default: tcp://127.0.0.1:5710,ipc:///tmp/tt.sock\n",
    "  TT_METRICS_ADDRPORT, --tt-metrics-addrport HOST:PORT\n      Prometheus listener.\n"
    "      default: :9108\n",
    "  TT_READ_FILE, --tt-read-file PATH\n      Capture to read.\n      default: unset\n",
    "  TT_SPOOL_DIR, --tt-spool-dir PATH\n      Spool directory.\n      default: unset\n",
    "  TT_OUTPUT, --tt-output PATH\n      Where to write.\n      default: -\n",
    "  TT_DESCRIPTION, --tt-description TEXT\n      Free text.\n      default: hello world\n",
    "  TT_BATCH_MAX_BYTES, --tt-batch-max-bytes N\n      Batch size.\n"
    "      default: unset; range 1024..16777216\n",
    "  TT_FILTER, --tt-filter TEXT\n      Any text.\n      default: unset\n",
};
_Static_assert(NROWS(s_help_blocks) == NROWS(s_rows), "one help block per row");

static void s_assert_help(const char *out)
{
    assert_non_null(out);
    s_assert_contains(out, "Usage: " PROG " ");
    s_assert_contains(out, "\nA test program.\n");
    const char *from = out;
    for (size_t i = 0; i < NROWS(s_help_blocks); i++) {
        const char *at = strstr(from, s_help_blocks[i]);
        if (!at)
            fail_msg("help lacks, after the previous row:\n%s--- in ---\n%s", s_help_blocks[i],
                     out);
        from = at + strlen(s_help_blocks[i]);
    }
    s_assert_contains(out, "  --help ");
    s_assert_contains(out, "  --version ");
}

static void test_help(void **state)
{
    (void)state;
    static const char *const asks[] = {"--help", "-h"};
    for (size_t i = 0; i < NROWS(asks); i++) {
        s_run_t r;
        s_load(&r, s_rows, NROWS(s_rows), ARGV(asks[i]));
        assert_int_equal(r.rc, CFG_EXIT_HELP);
        assert_null(r.cfg);
        s_assert_help(r.out);
        s_run_free(&r);
    }

    /* help needs no valid settings: bad environment, flags before it */
    s_setenv("TT_COUNT", "not-a-number");
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--tt-count", "x", "--help", "--bogus"));
    assert_int_equal(r.rc, CFG_EXIT_HELP);
    assert_null(r.cfg);
    s_assert_help(r.out);
    s_run_free(&r);

    /* cfg_help itself prints the same text */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cfg_help(f, PROG, "A test program.", s_rows, NROWS(s_rows));
    assert_int_equal(fclose(f), 0);
    s_assert_help(text);
    free(text);
}

static void test_help_required_row(void **state)
{
    (void)state;
    static const cfg_row_t rows[] = {
        {"TT_NEEDED", CFG_FILE, NULL, 0, 0, NULL, true, "Needed."},
        {"TT_EMPTY", CFG_STR, "", 0, 0, NULL, false, "Empty default."},
    };
    s_run_t r;
    s_load(&r, rows, NROWS(rows), ARGV("--help"));
    assert_int_equal(r.rc, CFG_EXIT_HELP);
    s_assert_contains(r.out, "  TT_NEEDED, --tt-needed PATH\n      Needed.\n      required\n");
    s_assert_contains(r.out, "  TT_EMPTY, --tt-empty TEXT\n      Empty default.\n"
                             "      default: unset\n");
    s_run_free(&r);
}

static void test_version(void **state)
{
    (void)state;
    s_setenv("TT_COUNT", "not-a-number");
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--version"));
    assert_int_equal(r.rc, CFG_EXIT_HELP);
    assert_null(r.cfg);
    assert_string_equal(r.out, PROG " " TAPMESH_VERSION "\n");
    s_run_free(&r);
}

/* ---- the manual page and the README's table --------------------------- */

/* A table as a service's: two shared rows, then its own, with help that
 * uses every mark and every character the writers must take care of. */
static const cfg_row_t s_doc_rows[] = {
    {"TT_NODE_ID", CFG_NAME, NULL, 0, 0, NULL, false, "This node's id (unset: the host name)."},
    {"TT_LEVEL", CFG_ENUM, "info", 0, 0, "error|info", false, "Lowest level logged."},
    {"TT_COUNT", CFG_INT, "42", -10, 1000, NULL, false,
     "How many things; `0` means none, `-1` is refused."},
    {"TT_PIPE", CFG_STR, "", 0, 0, NULL, false,
     "Read with `tcpdump -w - | prog`; a*b <node> \\ back.\n.dot and 'quote at a line start; "
     "caf\xc3\xa9 \xe2\x80\x94 done."},
    {"TT_OUT", CFG_PATH, "-", 0, 0, NULL, false, "Where it goes."},
    {"TT_BIND", CFG_ENDPOINT, "tcp://*:5710", 0, 0, NULL, false, "Bound."},
};

static const cfg_item_t s_doc_exit[] = {
    {"0", "All went well."},
    {"2", "A bad setting.\n\nA second paragraph."},
    {NULL, NULL},
};

static const cfg_item_t s_doc_examples[] = {
    {"Run it with `TT_COUNT`:", "TT_COUNT=3 prog \\\n  --tt-out file\n.hidden"},
    {NULL, NULL},
};

static const cfg_page_t s_doc_page = {
    .program = PROG,
    .section = 8,
    .purpose = "test the manual page",
    .summary = "A test program.\nIt does `nothing`.",
    .description = "First paragraph.\n\nSecond paragraph,\nover two lines.",
    .exit_status = s_doc_exit,
    .signals = (const cfg_item_t[]){{"SIGHUP", "Reads `TT_OUT` again."}, {NULL, NULL}},
    .files = (const cfg_item_t[]){{"TT_OUT/state", "Kept."}, {NULL, NULL}},
    .examples = s_doc_examples,
    .see_also = "tapmesh-relay(8), tcpdump(8)",
    .nshared = 2,
};

/* A stream into memory, for what a writer prints. */
typedef struct {
    char *text;
    size_t len;
    FILE *f;
} s_mem_t;

static FILE *s_mem_open(s_mem_t *m)
{
    memset(m, 0, sizeof *m);
    m->f = open_memstream(&m->text, &m->len);
    assert_non_null(m->f);
    return m->f;
}

/* What was printed; the caller frees it. */
static char *s_mem_close(s_mem_t *m)
{
    assert_int_equal(fclose(m->f), 0);
    return m->text;
}

static void test_markdown(void **state)
{
    (void)state;
    s_mem_t m;
    cfg_markdown(s_mem_open(&m), s_doc_rows, NROWS(s_doc_rows));
    char *md = s_mem_close(&m);
    assert_string_equal(
        md,
        "| variable | default | meaning |\n"
        "|---|---|---|\n"
        "| `TT_NODE_ID` | | This node's id (unset: the host name). |\n"
        "| `TT_LEVEL` | `info` | Lowest level logged. |\n"
        "| `TT_COUNT` | `42` | How many things; `0` means none, `-1` is refused. |\n"
        "| `TT_PIPE` | | Read with `tcpdump -w - \\| prog`; a\\*b &lt;node> \\\\ back. .dot and "
        "'quote at a line start; caf\xc3\xa9 \xe2\x80\x94 done. |\n"
        "| `TT_OUT` | `-` | Where it goes. |\n"
        "| `TT_BIND` | `tcp://*:5710` | Bound. |\n");
    free(md);
}

/* --markdown prints the program's own rows, --markdown-shared the first
 * nshared; neither needs valid settings; both as cfg_markdown. */
static void test_markdown_flags(void **state)
{
    (void)state;
    s_setenv("TT_COUNT", "not-a-number");
    static const char *const flags[] = {"--markdown", "--markdown-shared"};
    for (size_t i = 0; i < NROWS(flags); i++) {
        char *argv[] = {(char *)PROG, (char *)flags[i], NULL};
        char err[256] = "";
        cfg_t *cfg = (cfg_t *)(uintptr_t)0x1;
        s_mem_t m;
        cfg_result_t rc = cfg_load_page(&cfg, &s_doc_page, s_doc_rows, NROWS(s_doc_rows), 2, argv,
                                        s_mem_open(&m), err, sizeof err);
        char *out = s_mem_close(&m);
        assert_int_equal(rc, CFG_EXIT_HELP);
        assert_null(cfg);
        if (i == 0)
            cfg_markdown(s_mem_open(&m), s_doc_rows + 2, NROWS(s_doc_rows) - 2);
        else
            cfg_markdown(s_mem_open(&m), s_doc_rows, 2);
        char *want = s_mem_close(&m);
        assert_string_equal(out, want);
        if (i == 0)
            s_assert_lacks(out, "TT_NODE_ID");
        else
            s_assert_lacks(out, "TT_COUNT");
        free(want);
        free(out);
    }
}

static void test_man(void **state)
{
    (void)state;
    s_mem_t m;
    cfg_man(s_mem_open(&m), &s_doc_page, s_doc_rows, NROWS(s_doc_rows));
    char *man = s_mem_close(&m);
    /* every line a request, a comment or text that groff takes as text */
    s_assert_contains(man, ".TH \"TAPMESH\\-TEST\" 8 \"\" \"tapmesh " TAPMESH_VERSION
                           "\" \"tapmesh manual\"\n");
    s_assert_contains(man, "\n.SH NAME\ntapmesh\\-test \\- test the manual page\n");
    s_assert_contains(man, "\n.SH SYNOPSIS\n.B tapmesh\\-test\n[\\-\\-setting VALUE]...\n");
    /* the summary and the description, paragraphs kept, lines joined */
    s_assert_contains(man, "\n.SH DESCRIPTION\nA test program. It does \\fBnothing\\fR.\n.PP\n"
                           "First paragraph.\n.PP\nSecond paragraph, over two lines.\n");
    /* every row: variable, flag, type; help; default; type in words */
    s_assert_contains(man, "\n.TP\n\\fBTT_NODE_ID\\fR, \\fB\\-\\-tt\\-node\\-id\\fR \\fINAME\\fR\n"
                           "This node's id (unset: the host name).\n.br\nDefault: unset.\n");
    s_assert_contains(man, "\\fBTT_LEVEL\\fR, \\fB\\-\\-tt\\-level\\fR \\fIerror|info\\fR\n"
                           "Lowest level logged.\n.br\nDefault: \\fBinfo\\fR.\n.br\n"
                           "Type: one of error, info.\n");
    s_assert_contains(man, "\\fBTT_COUNT\\fR, \\fB\\-\\-tt\\-count\\fR \\fIN\\fR\n"
                           "How many things; \\fB0\\fR means none, \\fB\\-1\\fR is refused.\n"
                           ".br\nDefault: \\fB42\\fR.\n.br\nType: integer from \\-10 to 1000.\n");
    /* backslashes, hyphens and what is not ASCII escaped; a line never
     * starts with . or ' (groff would take it for a request) */
    s_assert_contains(man, "Read with \\fBtcpdump \\-w \\- | prog\\fR; a*b <node> \\e back. "
                           ".dot and 'quote at a line start; caf\\[u00E9] \\[u2014] done.\n");
    s_assert_contains(man, "\\fBTT_OUT\\fR, \\fB\\-\\-tt\\-out\\fR \\fIPATH\\fR\n");
    s_assert_contains(man, "\n.SH OPTIONS\n.TP\n\\fB\\-\\-setting\\fR \\fIVALUE\\fR\n");
    s_assert_contains(man, "\n.TP\n\\fB\\-\\-markdown\\-shared\\fR\n");
    s_assert_contains(man, "\n.SH ENVIRONMENT\n");
    /* lists: the term in bold, paragraphs within an entry as .IP */
    s_assert_contains(man, "\n.SH EXIT STATUS\n.TP\n\\fB0\\fR\nAll went well.\n"
                           ".TP\n\\fB2\\fR\nA bad setting.\n.IP\nA second paragraph.\n");
    s_assert_contains(man, "\n.SH SIGNALS\n.TP\n\\fBSIGHUP\\fR\nReads \\fBTT_OUT\\fR again.\n");
    s_assert_contains(man, "\n.SH FILES\n.TP\n\\fBTT_OUT/state\\fR\nKept.\n");
    /* examples as they are, but for escapes */
    s_assert_contains(man, "\n.SH EXAMPLES\n.PP\nRun it with \\fBTT_COUNT\\fR:\n.RS 4\n.nf\n"
                           "TT_COUNT=3 prog \\e\n  \\-\\-tt\\-out file\n\\&.hidden\n.fi\n.RE\n");
    s_assert_contains(man, "\n.SH SEE ALSO\n.BR tapmesh\\-relay \"(8),\"\n.BR tcpdump \"(8)\"\n");
    /* no text line starts with a dot or a quote that is no request */
    for (const char *line = man; *line; line = strchr(line, '\n') + 1) {
        if (*line == '\'')
            fail_msg("a line starts with a quote: %.40s", line);
        if (*line == '.' && !strchr("\\TSPBRIabnfr", line[1]))
            fail_msg("a text line starts with a dot: %.40s", line);
        if (!strchr(line, '\n'))
            fail_msg("the page does not end with a newline");
    }
    /* nothing outside ASCII: groff reads it whatever the locale */
    for (const unsigned char *c = (const unsigned char *)man; *c; c++)
        if (*c >= 0x80)
            fail_msg("byte 0x%02x in the page at %.20s", *c, (const char *)c);
    free(man);

    /* the same from --man, whatever the environment holds */
    s_setenv("TT_COUNT", "not-a-number");
    char *argv[] = {(char *)PROG, (char *)"--man", NULL};
    char err[256] = "";
    cfg_t *cfg = (cfg_t *)(uintptr_t)0x1;
    cfg_result_t rc = cfg_load_page(&cfg, &s_doc_page, s_doc_rows, NROWS(s_doc_rows), 2, argv,
                                    s_mem_open(&m), err, sizeof err);
    char *out = s_mem_close(&m);
    assert_int_equal(rc, CFG_EXIT_HELP);
    assert_null(cfg);
    cfg_man(s_mem_open(&m), &s_doc_page, s_doc_rows, NROWS(s_doc_rows));
    man = s_mem_close(&m);
    assert_string_equal(out, man);
    free(out);
    free(man);
}

/* A page with no settings (a command such as tapmesh-keygen) and only what
 * cfg_load knows: no ENVIRONMENT, no --markdown; NAME from the summary. */
static void test_man_minimal(void **state)
{
    (void)state;
    static const cfg_item_t options[] = {{"--relay", "A relay."}, {"PATH", "Where."}, {NULL, NULL}};
    const cfg_page_t page = {.program = "tt-keygen",
                             .section = 1,
                             .purpose = "make keys",
                             .synopsis = "PATH [--relay]",
                             .summary = "Makes keys.",
                             .options = options};
    s_mem_t m;
    cfg_man(s_mem_open(&m), &page, NULL, 0);
    char *man = s_mem_close(&m);
    s_assert_contains(man, ".TH \"TT\\-KEYGEN\" 1 ");
    s_assert_contains(man, "\n.B tt\\-keygen\nPATH [\\-\\-relay]\n");
    s_assert_contains(man, "\n.SH OPTIONS\n.TP\n\\fB\\-\\-relay\\fR\nA relay.\n"
                           ".TP\n\\fBPATH\\fR\nWhere.\n");
    s_assert_lacks(man, "ENVIRONMENT");
    s_assert_lacks(man, "markdown");
    s_assert_lacks(man, "\\-\\-setting");
    s_assert_lacks(man, "EXIT STATUS");
    free(man);

    /* cfg_load's page: the NAME line is the summary's first sentence */
    s_run_t r;
    s_load(&r, s_rows, NROWS(s_rows), ARGV("--man"));
    assert_int_equal(r.rc, CFG_EXIT_HELP);
    s_assert_contains(r.out, "\n.SH NAME\ntapmesh\\-test \\- A test program\n");
    s_assert_contains(r.out, "\\fBTT_COUNT\\fR, \\fB\\-\\-tt\\-count\\fR \\fIN\\fR\n");
    s_run_free(&r);
}

/* --help: a long help wrapped within 80 columns, 6 spaces in, no word cut,
 * backquotes gone; a word longer than a line stands alone. */
static void test_help_wraps(void **state)
{
    (void)state;
    static const char long_help[] =
        "The `first` sentence is long enough to need wrapping, and the second one adds "
        "several more words so that the help runs over three lines of the terminal, with a "
        "caf\xc3\xa9 in it and "
        "a_word_of_ninety_characters_that_fits_no_line_at_all_whatever_the_width_of_the_"
        "terminal_is at the end.";
    static const cfg_row_t rows[] = {{"TT_LONG", CFG_STR, "", 0, 0, NULL, false, long_help}};
    s_mem_t m;
    cfg_help(s_mem_open(&m), PROG, "Sum `mary`.", rows, 1);
    char *help = s_mem_close(&m);
    s_assert_contains(help, "\nSum mary.\n");
    const char *at = strstr(help, "  TT_LONG, --tt-long TEXT\n");
    assert_non_null(at);
    at = strchr(at, '\n') + 1;
    char joined[1024] = "";
    int lines = 0;
    while (strncmp(at, "      default:", 14) != 0) {
        const char *end = strchr(at, '\n');
        assert_non_null(end);
        assert_memory_equal(at, "      ", 6);
        assert_true(at[6] != ' ');
        size_t chars = 0;
        for (const char *c = at; c < end; c++)
            chars += ((unsigned char)*c & 0xc0) != 0x80;
        if (chars > 80 && strncmp(at + 6, "a_word_of", 9) != 0)
            fail_msg("line of %zu characters: %.*s", chars, (int)(end - at), at);
        if (*joined)
            strcat(joined, " ");
        strncat(joined, at + 6, (size_t)(end - at - 6));
        lines++;
        at = end + 1;
    }
    assert_true(lines >= 4);
    char want[1024];
    size_t n = 0;
    for (const char *c = long_help; *c; c++)
        if (*c != '`')
            want[n++] = *c;
    want[n] = '\0';
    assert_string_equal(joined, want);
    s_assert_contains(help, "\n      a_word_of_ninety_characters_that_fits_no_line_at_all_"
                            "whatever_the_width_of_the_terminal_is\n");
    s_assert_contains(help, "  --man ");
    s_assert_contains(help, "  --markdown ");
    free(help);
}

static void test_destroy_null(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    cfg_destroy(&cfg);
    cfg_destroy(NULL);
    assert_null(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_teardown(name, s_teardown)
        T(test_defaults),
        T(test_env_values),
        T(test_empty_env_falls_back_to_default),
        T(test_empty_str_is_a_value),
        T(test_int_accepts),
        T(test_int_rejects),
        T(test_bool_accepts),
        T(test_bool_rejects),
        T(test_enum_index),
        T(test_enum_rejects),
        T(test_name),
        T(test_name_empty_required),
        T(test_endpoint_check),
        T(test_endpoint_row),
        T(test_endpoints),
        T(test_addrport_parse),
        T(test_addrport_row),
        T(test_file),
        T(test_file_required),
        T(test_dir),
        T(test_path),
        T(test_str),
        T(test_text_accepts),
        T(test_text_rejects),
        T(test_error_value_cut),
        T(test_required),
        T(test_flag_overrides_env),
        T(test_flag_names_derived),
        T(test_flag_equals_form),
        T(test_flag_value_errors),
        T(test_bare_bool_flag),
        T(test_flag_without_value),
        T(test_unknown_flag),
        T(test_positional_argument),
        T(test_no_rows),
        T(test_error_truncated),
        T(test_tapmesh_prefix),
        T(test_tapmesh_prefix_required),
        T(test_typo_warnings),
        T(test_typo_short_names),
        T(test_typo_nearest),
        T(test_no_warning_usual_environment),
        T(test_warning_accessor),
        T(test_help),
        T(test_help_required_row),
        T(test_version),
        T(test_destroy_null),
        T(test_markdown),
        T(test_markdown_flags),
        T(test_man),
        T(test_man_minimal),
        T(test_help_wraps),
#undef T
    };
    return cmocka_run_group_tests_name("cfg", tests, s_group_setup, NULL);
}
