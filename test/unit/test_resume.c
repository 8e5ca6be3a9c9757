/*
 * test_resume — the capture agent's progress file: what is recorded comes
 * back as the plan of a continued epoch (first batch to build again, the
 * packets to skip, which batches were released, the lowest dead letter); a
 * record cut short is ignored; another input file, other settings or a
 * damaged header start afresh with a reason; DONE; compaction keeps the
 * plan and the file small; the file is 0600.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "resume.h"
#include "tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char dir[64];
    char input[128];
    char state[160];
    resume_key_t key;
    char why[4096], err[4096];
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_resume.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->input, sizeof f->input, "%s/in.pcap", f->dir);
    FILE *in = fopen(f->input, "w");
    assert_non_null(in);
    fputs("not really a capture, but a file with an identity", in);
    fclose(in);
    snprintf(f->state, sizeof f->state, "%s/edge1.resume", f->dir);
    f->key = (resume_key_t){.path = f->input, .filter = "tcp", .batch_bytes = 65536};
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static resume_t *s_open(fixture_t *f)
{
    resume_t *r =
        resume_open(f->dir, "edge1", &f->key, f->why, sizeof f->why, f->err, sizeof f->err);
    if (!r)
        fail_msg("resume_open: %s", f->err);
    return r;
}

/* Batches 0..n-1 of 10 packets each. */
static void s_batches(resume_t *r, uint64_t from, uint64_t n)
{
    for (uint64_t s = from; s < from + n; s++)
        assert_int_equal(resume_batch(r, s, s * 10, 10), 0);
}

static off_t s_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* What was recorded is the plan after a restart. */
static void test_continue(void **state)
{
    fixture_t *f = *state;
    resume_t *r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_FRESH);
    assert_string_equal(f->why, "");
    assert_int_equal(resume_start(r, 4242), 0);
    s_batches(r, 0, 10);
    assert_int_equal(resume_released(r, 0, true), 0);
    assert_int_equal(resume_released(r, 1, true), 0);
    assert_int_equal(resume_released(r, 3, true), 0);
    assert_int_equal(resume_released(r, 5, false), 0); /* dead-lettered */
    assert_int_equal(resume_released(r, 9, true), 0);
    resume_close(&r); /* the agent is killed */
    assert_null(r);

    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_CONTINUE);
    assert_string_equal(f->why, "");
    assert_int_equal(resume_epoch(r), 4242);
    assert_int_equal(resume_first_seq(r), 2);
    assert_int_equal(resume_first_packet(r), 20);
    assert_int_equal(resume_next_seq(r), 10);
    assert_int_equal(resume_dead_low(r), 5);
    static const bool released[10] = {0, 0, 0, 1, 0, 1, 0, 0, 0, 1};
    for (uint64_t s = 2; s < 10; s++) {
        uint32_t count;
        bool rel;
        assert_true(resume_batch_of(r, s, &count, &rel));
        assert_int_equal(count, 10);
        assert_int_equal(rel, released[s]);
    }
    uint32_t count;
    bool rel;
    assert_false(resume_batch_of(r, 1, &count, &rel)); /* below the plan */
    assert_false(resume_batch_of(r, 10, &count, &rel));
    /* the continued run records on: batches built again are not recorded twice */
    assert_int_equal(resume_batch(r, 2, 20, 10), 0);
    assert_int_equal(resume_batch(r, 10, 100, 7), 0);
    assert_int_equal(resume_batch(r, 12, 117, 7), -EINVAL); /* out of order */
    for (uint64_t s = 2; s <= 10; s++)
        if (s != 3 && s != 5 && s != 9)
            assert_int_equal(resume_released(r, s, true), 0);
    assert_int_equal(resume_done(r, 107), 0);
    resume_close(&r);

    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_DONE);
    assert_int_equal(resume_done_packets(r), 107);
    assert_int_equal(resume_epoch(r), 4242);
    resume_close(&r);
}

/* A record cut short by the crash is not believed; what came before is. */
static void test_torn_tail(void **state)
{
    fixture_t *f = *state;
    resume_t *r = s_open(f);
    assert_int_equal(resume_start(r, 7), 0);
    s_batches(r, 0, 3);
    resume_released(r, 0, true);
    resume_close(&r);
    off_t whole = s_size(f->state);
    /* a part of one more record, and then garbage */
    int fd = open(f->state, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    static const uint8_t part[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0};
    assert_int_equal(write(fd, part, sizeof part), (ssize_t)sizeof part);
    close(fd);
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_CONTINUE);
    assert_int_equal(resume_first_seq(r), 1);
    assert_int_equal(resume_next_seq(r), 3);
    resume_close(&r);
    /* rewritten without the torn part; batch 0 and its ack folded into the MARK */
    assert_int_equal(s_size(f->state), whole - 2 * 28);

    /* a damaged record in the middle ends what is believed */
    r = s_open(f);
    s_batches(r, 3, 2);
    resume_close(&r);
    off_t size = s_size(f->state);
    fd = open(f->state, O_RDWR);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, size - 28 - 10), 1);
    byte ^= 0xff;
    assert_int_equal(pwrite(fd, &byte, 1, size - 28 - 10), 1);
    close(fd);
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_CONTINUE);
    assert_int_equal(resume_next_seq(r), 3); /* batch 3's record is damaged, 4 after it */
    resume_close(&r);
}

/* Another input (or the same one changed), other settings, a damaged
 * header: not continued, and the reason is given. */
static void test_fresh_with_reason(void **state)
{
    fixture_t *f = *state;
    resume_t *r = s_open(f);
    assert_int_equal(resume_start(r, 9), 0);
    s_batches(r, 0, 2);
    resume_close(&r);

    f->key.filter = "udp";
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_FRESH);
    assert_non_null(strstr(f->why, "FILTER or BATCH_MAX_BYTES"));
    resume_close(&r);
    f->key.filter = "tcp";
    f->key.batch_bytes = 1024;
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_FRESH);
    assert_non_null(strstr(f->why, "FILTER or BATCH_MAX_BYTES"));
    resume_close(&r);
    f->key.batch_bytes = 65536;
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_CONTINUE); /* nothing was written over it */
    resume_close(&r);

    FILE *in = fopen(f->input, "a");
    fputs(" and more", in);
    fclose(in);
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_FRESH);
    assert_non_null(strstr(f->why, "another file"));
    assert_int_equal(resume_start(r, 10), 0); /* a new epoch replaces the state */
    resume_close(&r);
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_CONTINUE);
    assert_int_equal(resume_epoch(r), 10);
    assert_int_equal(resume_next_seq(r), 0);
    resume_close(&r);

    int fd = open(f->state, O_RDWR);
    assert_int_equal(pwrite(fd, "XX", 2, 0), 2);
    close(fd);
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_FRESH);
    assert_non_null(strstr(f->why, "damaged"));
    resume_close(&r);

    /* an input that is not there: an error naming READ_FILE */
    unlink(f->input);
    assert_null(
        resume_open(f->dir, "edge1", &f->key, f->why, sizeof f->why, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, "READ_FILE="));
}

/* A long run: the file is rewritten small, and the plan survives it. */
static void test_compaction(void **state)
{
    fixture_t *f = *state;
    resume_t *r = s_open(f);
    assert_int_equal(resume_start(r, 11), 0);
    const uint64_t n = 60000; /* 120000 records of 28 bytes: past 1 MiB */
    for (uint64_t s = 0; s < n; s++) {
        assert_int_equal(resume_batch(r, s, s * 10, 10), 0);
        if (s != 59990 && s != 59995)
            assert_int_equal(resume_released(r, s, s != 100), 0);
    }
    resume_close(&r);
    assert_true(s_size(f->state) < 1 << 20);
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_CONTINUE);
    assert_int_equal(resume_first_seq(r), 59990);
    assert_int_equal(resume_first_packet(r), 599900);
    assert_int_equal(resume_next_seq(r), n);
    assert_int_equal(resume_dead_low(r), 100);
    uint32_t count;
    bool rel;
    assert_true(resume_batch_of(r, 59995, &count, &rel));
    assert_false(rel);
    assert_true(resume_batch_of(r, 59994, &count, &rel));
    assert_true(rel);
    resume_close(&r);
}

/* The input's identity may be handed over (an agent that opened READ_FILE
 * and then became a user that cannot reach it): it is what counts, not
 * what the path says now. */
static void test_input_identity_given(void **state)
{
    fixture_t *f = *state;
    struct stat st;
    assert_int_equal(stat(f->input, &st), 0);
    resume_t *r = s_open(f);
    assert_int_equal(resume_start(r, 21), 0);
    s_batches(r, 0, 3);
    resume_close(&r);
    char moved[200];
    snprintf(moved, sizeof moved, "%s.gone", f->input);
    assert_int_equal(rename(f->input, moved), 0); /* the path no longer leads to it */
    f->key.input = &st;
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_CONTINUE);
    assert_int_equal(resume_epoch(r), 21);
    assert_int_equal(resume_next_seq(r), 3);
    resume_close(&r);
    struct stat other = st;
    other.st_ino++;
    f->key.input = &other;
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_FRESH);
    assert_non_null(strstr(f->why, "another file"));
    resume_close(&r);
    f->key.input = NULL; /* the path again: not there */
    assert_null(
        resume_open(f->dir, "edge1", &f->key, f->why, sizeof f->why, f->err, sizeof f->err));
    assert_non_null(strstr(f->err, f->input));
}

static unsigned s_mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

/* The state names the input file and the epoch: 0600 (the umask may take
 * more away), from the start, after a compaction, and when an earlier
 * version left a wider file or a wider .tmp behind. */
static void test_file_mode(void **state)
{
    fixture_t *f = *state;
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->state);
    mode_t old = umask(022);
    resume_t *r = s_open(f);
    assert_int_equal(resume_start(r, 11), 0);
    assert_int_equal(s_mode_of(f->state), 0600);
    for (uint64_t s = 0; s < 60000; s++) /* past a compaction */
        assert_int_equal(resume_batch(r, s, s * 10, 10), 0);
    assert_int_equal(s_mode_of(f->state), 0600);
    resume_close(&r);
    assert_int_equal(chmod(f->state, 0644), 0);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0666), 0);
    close(fd);
    r = s_open(f);
    assert_int_equal(resume_mode(r), RESUME_CONTINUE);
    for (uint64_t s = 60000; s < 120000; s++)
        assert_int_equal(resume_batch(r, s, s * 10, 10), 0);
    assert_int_equal(s_mode_of(f->state), 0600);
    resume_close(&r);
    umask(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_continue, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_fresh_with_reason, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_compaction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_file_mode, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_input_identity_given, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
