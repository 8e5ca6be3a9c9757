/*
 * test_retention — which rotated files go (ROTATE_FILES, ROTATE_MAX_GB):
 * the pure decision (oldest first, never the file being written, never a
 * file with packets not acknowledged, and nothing newer than it), the
 * ROTATE_MAX_GB parser, and retention_t on real files in a temporary
 * directory: deletions by count and by size, the commit marks that hold a
 * closed file back until its packets are acknowledged, files of an earlier
 * run, a failed unlink (logged, counted, no longer counted in), the
 * metrics, and the journal told of what is gone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "journal.h"
#include "metrics.h"
#include "retention.h"
#include "tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GiB (1ull << 30)

/* ---- the decision ---------------------------------------------------- */

static void test_decide_count(void **state)
{
    (void)state;
    retention_file_t f[] = {{.bytes = 10, .acked = true},
                            {.bytes = 10, .acked = true},
                            {.bytes = 10, .acked = true},
                            {.bytes = 10, .acked = true},
                            {.bytes = 5, .open = true}};
    retention_reason_t why[5];
    assert_int_equal(retention_decide(f, 5, 3, 0, why), 2);
    assert_int_equal(why[0], RETENTION_COUNT);
    assert_int_equal(why[1], RETENTION_COUNT);
    assert_int_equal(why[2], RETENTION_KEEP);
    assert_int_equal(why[4], RETENTION_KEEP);
    /* within the bound, or no bound: nothing */
    assert_int_equal(retention_decide(f, 5, 5, 0, why), 0);
    assert_int_equal(retention_decide(f, 5, 0, 0, why), 0);
    /* the file being written is never deleted, even with a bound of 1 */
    assert_int_equal(retention_decide(f, 5, 1, 0, why), 4);
    assert_int_equal(why[4], RETENTION_KEEP);
}

static void test_decide_unacked_holds_back(void **state)
{
    (void)state;
    /* the second oldest holds packets not acknowledged: it and every newer
     * file stay, even past the bound; the oldest still goes */
    retention_file_t f[] = {{.bytes = 10, .acked = true},
                            {.bytes = 10, .acked = false},
                            {.bytes = 10, .acked = true},
                            {.bytes = 10, .open = true}};
    retention_reason_t why[4];
    assert_int_equal(retention_decide(f, 4, 1, 0, why), 1);
    assert_int_equal(why[0], RETENTION_COUNT);
    assert_int_equal(why[1], RETENTION_KEEP);
    assert_int_equal(why[2], RETENTION_KEEP);
    /* the same by size */
    assert_int_equal(retention_decide(f, 4, 0, 15, why), 1);
    assert_int_equal(why[0], RETENTION_SIZE);
    /* the oldest unacknowledged: nothing goes */
    f[0].acked = false;
    assert_int_equal(retention_decide(f, 4, 1, 15, why), 0);
}

static void test_decide_size(void **state)
{
    (void)state;
    retention_file_t f[] = {{.bytes = 40, .acked = true},
                            {.bytes = 30, .acked = true},
                            {.bytes = 20, .acked = true},
                            {.bytes = 10, .open = true}};
    retention_reason_t why[4];
    assert_int_equal(retention_decide(f, 4, 0, 100, why), 0); /* 100: at the bound */
    assert_int_equal(retention_decide(f, 4, 0, 99, why), 1);  /* 60 left */
    assert_int_equal(retention_decide(f, 4, 0, 30, why), 2);  /* 30 left */
    assert_int_equal(why[1], RETENTION_SIZE);
    assert_int_equal(why[2], RETENTION_KEEP);
    /* the file being written alone over the bound: all the others go, it stays */
    assert_int_equal(retention_decide(f, 4, 0, 5, why), 3);
    assert_int_equal(why[3], RETENTION_KEEP);
    /* count first, then size: reasons told apart */
    assert_int_equal(retention_decide(f, 4, 3, 25, why), 3);
    assert_int_equal(why[0], RETENTION_COUNT);
    assert_int_equal(why[1], RETENTION_SIZE);
    assert_int_equal(why[2], RETENTION_SIZE);
}

static void test_decide_empty(void **state)
{
    (void)state;
    retention_reason_t why[1];
    assert_int_equal(retention_decide(NULL, 0, 1, 1, why), 0);
}

/* ---- ROTATE_MAX_GB --------------------------------------------------- */

static void test_parse_gb(void **state)
{
    (void)state;
    char why[200];
    uint64_t b = 123;
    assert_int_equal(retention_parse_gb("0", &b, why, sizeof why), 0);
    assert_int_equal(b, 0);
    assert_int_equal(retention_parse_gb("2", &b, why, sizeof why), 0);
    assert_int_equal(b, 2 * GiB);
    assert_int_equal(retention_parse_gb("0.5", &b, why, sizeof why), 0);
    assert_int_equal(b, GiB / 2);
    assert_int_equal(retention_parse_gb("1.25", &b, why, sizeof why), 0);
    assert_int_equal(b, GiB + GiB / 4);
    assert_int_equal(retention_parse_gb("0.001", &b, why, sizeof why), 0);
    assert_int_equal(b, GiB / 1000);
    assert_int_equal(retention_parse_gb("0.000000001", &b, why, sizeof why), 0);
    assert_int_equal(b, 1);
    assert_int_equal(retention_parse_gb("1048576", &b, why, sizeof why), 0);
    assert_int_equal(b, 1048576ull * GiB);
    const char *bad[] = {"",    ".5",      "1.",        "-1",           "1e3",          "0x10",
                         "1,5", "1048577", "1048576.5", "0.0000000001", "0.0000000004", " 1",
                         "1 "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        assert_int_equal(retention_parse_gb(bad[i], &b, why, sizeof why), -EINVAL);
        assert_true(why[0] != '\0');
    }
}

/* ---- retention_t on files -------------------------------------------- */

typedef struct {
    char dir[64];
    metrics_t *metrics;
} s_env_t;

static int s_setup(void **state)
{
    s_env_t *env = calloc(1, sizeof *env);
    assert_non_null(env);
    snprintf(env->dir, sizeof env->dir, "/tmp/test_retention.XXXXXX");
    assert_non_null(mkdtemp(env->dir));
    env->metrics = metrics_new("collect", "test");
    assert_non_null(env->metrics);
    *state = env;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *env = *state;
    tmpdir_remove(env->dir);
    metrics_destroy(&env->metrics);
    free(env);
    return 0;
}

/* env->dir/f<i>.pcapng into `out`, made `size` bytes long. */
static const char *s_file(const s_env_t *env, int i, size_t size, char *out, size_t len)
{
    snprintf(out, len, "%s/f%d.pcapng", env->dir, i);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
    return out;
}

static bool s_exists(const s_env_t *env, int i)
{
    char p[128];
    snprintf(p, sizeof p, "%s/f%d.pcapng", env->dir, i);
    return access(p, F_OK) == 0;
}

static double s_metric(const s_env_t *env, const char *name, const char *labels)
{
    metric_id_t id = strstr(name, "retained") ? metrics_gauge(env->metrics, name, "", labels)
                                              : metrics_counter(env->metrics, name, "", labels);
    return metrics_value(env->metrics, id);
}

static void test_keeps_newest_by_count(void **state)
{
    s_env_t *env = *state;
    retention_t *r = retention_new(3, 0, NULL, env->metrics);
    assert_non_null(r);
    char p[128];
    assert_int_equal(retention_begin(r, s_file(env, 0, 0, p, sizeof p), 0, 0), 0);
    /* ten rotations, each file 100 bytes, every packet acknowledged */
    for (int i = 1; i <= 10; i++) {
        s_file(env, i - 1, 100, p, sizeof p);
        assert_int_equal(retention_begin(r, s_file(env, i, 0, p, sizeof p), 100, (uint64_t)i), 0);
        s_file(env, i, 24, p, sizeof p);
        retention_apply(r, 24, UINT64_MAX);
        assert_true(retention_files(r) <= 3);
    }
    for (int i = 0; i <= 10; i++)
        assert_int_equal(s_exists(env, i), i >= 8);
    assert_int_equal(retention_files(r), 3);
    assert_int_equal(retention_bytes(r), 224);
    assert_true(s_metric(env, "tapmesh_collect_output_files_deleted_total", "reason=\"count\"") ==
                8);
    assert_true(s_metric(env, "tapmesh_collect_output_files_deleted_total", "reason=\"size\"") ==
                0);
    assert_true(s_metric(env, "tapmesh_collect_output_retained_bytes", NULL) == 224);
    retention_destroy(&r);
    retention_destroy(&r); /* NULL: nothing */
}

/* A file closed while a batch begun in it is not wholly written (its
 * acknowledgement not sent) stays until that batch is acknowledged. */
static void test_unacked_file_kept(void **state)
{
    s_env_t *env = *state;
    retention_t *r = retention_new(1, 0, NULL, env->metrics);
    char p[128];
    retention_begin(r, s_file(env, 0, 0, p, sizeof p), 0, 0);
    s_file(env, 0, 100, p, sizeof p);
    /* file 0 closed at mark 5; a batch begun at mark 4 is still partly written */
    retention_begin(r, s_file(env, 1, 50, p, sizeof p), 100, 5);
    assert_int_equal(retention_apply(r, 50, 4), 0);
    assert_true(s_exists(env, 0));
    assert_int_equal(retention_files(r), 2);
    /* later commits: still that batch */
    assert_int_equal(retention_apply(r, 60, 4), 0);
    assert_true(s_exists(env, 0));
    /* a batch begun at mark 5 (in file 1) does not hold file 0 */
    assert_int_equal(retention_apply(r, 70, 5), 1);
    assert_false(s_exists(env, 0));
    assert_true(s_exists(env, 1)); /* being written */
    assert_true(s_metric(env, "tapmesh_collect_output_retained_bytes", NULL) == 70);
    retention_destroy(&r);
}

static void test_size_bound(void **state)
{
    s_env_t *env = *state;
    retention_t *r = retention_new(0, 250, NULL, env->metrics);
    char p[128];
    retention_begin(r, s_file(env, 0, 0, p, sizeof p), 0, 0);
    for (int i = 1; i <= 4; i++) {
        s_file(env, i - 1, 100, p, sizeof p);
        retention_begin(r, s_file(env, i, 10, p, sizeof p), 100, (uint64_t)i);
        retention_apply(r, 10, UINT64_MAX);
    }
    /* 100 + 100 + 10 within 250 */
    assert_false(s_exists(env, 0));
    assert_false(s_exists(env, 1));
    assert_true(s_exists(env, 2) && s_exists(env, 3) && s_exists(env, 4));
    assert_int_equal(retention_bytes(r), 210);
    /* the file being written grows alone past the bound: every older one
     * goes, it stays */
    assert_int_equal(retention_apply(r, 400, UINT64_MAX), 2);
    assert_true(s_exists(env, 4));
    assert_int_equal(retention_files(r), 1);
    assert_true(s_metric(env, "tapmesh_collect_output_files_deleted_total", "reason=\"size\"") ==
                4);
    retention_destroy(&r);
}

/* Files of an earlier run count and go first; a file that is not there
 * any more, or is a symbolic link, is not taken in. */
static void test_restored_files(void **state)
{
    s_env_t *env = *state;
    retention_t *r = retention_new(2, 0, NULL, env->metrics);
    char p[128], link[160];
    assert_int_equal(retention_restore(r, s_file(env, 0, 100, p, sizeof p)), 0);
    assert_int_equal(retention_restore(r, s_file(env, 1, 100, p, sizeof p)), 0);
    assert_int_equal(retention_restore(r, p), 0); /* named twice: once */
    snprintf(link, sizeof link, "%s/link.pcapng", env->dir);
    assert_int_equal(symlink(p, link), 0);
    assert_int_equal(retention_restore(r, link), 0);
    snprintf(p, sizeof p, "%s/gone.pcapng", env->dir);
    assert_int_equal(retention_restore(r, p), 0);
    assert_int_equal(retention_files(r), 2);
    assert_int_equal(retention_bytes(r), 200);
    /* the new run's file, not created yet: it does not count */
    snprintf(p, sizeof p, "%s/f2.pcapng", env->dir);
    retention_begin(r, p, 0, 0);
    assert_int_equal(retention_apply(r, 0, UINT64_MAX), 0);
    /* created: the oldest goes */
    s_file(env, 2, 30, p, sizeof p);
    assert_int_equal(retention_apply(r, 30, UINT64_MAX), 1);
    assert_false(s_exists(env, 0));
    assert_true(s_exists(env, 1));
    assert_true(access(link, F_OK) == 0);
    retention_destroy(&r);
}

/* An unlink that fails is logged and counted, the file no longer counted;
 * the next files still go. A file someone else removed is just gone. */
static void test_unlink_fails(void **state)
{
    s_env_t *env = *state;
    char sub[128], moved[160], p[160];
    snprintf(sub, sizeof sub, "%s/sub", env->dir);
    snprintf(moved, sizeof moved, "%s/moved", env->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(p, sizeof p, "%s/locked.pcapng", sub);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 100), 0);
    close(fd);
    retention_t *r = retention_new(1, 0, NULL, env->metrics);
    retention_restore(r, p);
    char q[128];
    retention_restore(r, s_file(env, 1, 100, q, sizeof q));
    retention_begin(r, s_file(env, 2, 10, q, sizeof q), 0, 0);
    /* its directory replaced by a file: unlink fails (ENOTDIR), root or not */
    assert_int_equal(rename(sub, moved), 0);
    fd = open(sub, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(retention_apply(r, 10, UINT64_MAX), 2);
    assert_false(s_exists(env, 1));
    assert_true(s_metric(env, "tapmesh_collect_output_delete_errors_total", NULL) == 1);
    assert_true(s_metric(env, "tapmesh_collect_output_files_deleted_total", "reason=\"count\"") ==
                1);
    assert_int_equal(retention_files(r), 1);
    assert_int_equal(retention_bytes(r), 10);
    retention_destroy(&r);
}

/* The journal names the files it wrote across compactions and restarts,
 * forgets those deleted, and drops at open those gone. */
static void test_journal_told(void **state)
{
    s_env_t *env = *state;
    char sd[128], p[128];
    snprintf(sd, sizeof sd, "%s/state", env->dir);
    char err[512];
    journal_t *j = journal_open(sd, err, sizeof err);
    assert_non_null(j);
    for (int i = 0; i < 4; i++)
        assert_int_equal(journal_file(j, s_file(env, i, 100, p, sizeof p)), 0);
    assert_int_equal(journal_files(j), 4);
    assert_int_equal(journal_compact(j, p, NULL, 0), 0); /* f3 current */
    journal_close(&j);

    j = journal_open(sd, err, sizeof err);
    assert_non_null(j);
    assert_int_equal(journal_files(j), 4);
    assert_non_null(strstr(journal_file_at(j, 0), "/f0.pcapng"));
    assert_non_null(strstr(journal_file_at(j, 3), "/f3.pcapng"));
    assert_null(journal_file_at(j, 4));
    retention_t *r = retention_new(2, 0, j, env->metrics);
    for (size_t i = 0; i < journal_files(j); i++)
        retention_restore(r, journal_file_at(j, i));
    retention_begin(r, s_file(env, 4, 10, p, sizeof p), 0, 0);
    assert_int_equal(journal_file(j, p), 0);
    assert_int_equal(retention_apply(r, 10, UINT64_MAX), 3);
    assert_int_equal(journal_files(j), 2); /* f3 and f4 */
    assert_int_equal(journal_compact(j, p, NULL, 0), 0);
    retention_destroy(&r);
    journal_close(&j);

    /* f3 removed by hand meanwhile: no longer named */
    s_file(env, 3, 0, p, sizeof p);
    unlink(p);
    j = journal_open(sd, err, sizeof err);
    assert_non_null(j);
    assert_int_equal(journal_files(j), 1);
    assert_non_null(strstr(journal_file_at(j, 0), "/f4.pcapng"));
    journal_close(&j);
}

/* Without retention the journal names no earlier file: a compaction keeps
 * the current one alone. */
static void test_journal_files_off(void **state)
{
    s_env_t *env = *state;
    char sd[128], p[128], err[512];
    snprintf(sd, sizeof sd, "%s/state", env->dir);
    journal_t *j = journal_open(sd, err, sizeof err);
    assert_non_null(j);
    for (int i = 0; i < 3; i++)
        assert_int_equal(journal_file(j, s_file(env, i, 100, p, sizeof p)), 0);
    journal_keep_files(j, false);
    assert_int_equal(journal_files(j), 0);
    assert_int_equal(journal_file(j, s_file(env, 3, 100, p, sizeof p)), 0);
    assert_int_equal(journal_files(j), 0);
    assert_int_equal(journal_compact(j, p, NULL, 0), 0);
    journal_close(&j);
    j = journal_open(sd, err, sizeof err);
    assert_non_null(j);
    assert_int_equal(journal_files(j), 1);
    assert_non_null(strstr(journal_file_at(j, 0), "/f3.pcapng"));
    journal_close(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_count),
        cmocka_unit_test(test_decide_unacked_holds_back),
        cmocka_unit_test(test_decide_size),
        cmocka_unit_test(test_decide_empty),
        cmocka_unit_test(test_parse_gb),
        cmocka_unit_test_setup_teardown(test_keeps_newest_by_count, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unacked_file_kept, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_size_bound, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restored_files, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unlink_fails, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_journal_told, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_journal_files_off, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
