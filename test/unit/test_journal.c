/*
 * test_journal — the collector's delivery state on disk (STATE_DIR):
 * intents replayed on reopen, the last one only when the output file holds
 * its bytes (a short file cut back, and removed when no reader could open
 * what is left), an intent undone after its flush failed, an append that
 * fails part-way cut off again, torn tails ignored, END records, compaction
 * of live and restored states, set-up errors, and the modes of what it
 * creates (0750 directory, 0600 journal, the umask applied). Each test works in its own
 * temporary directory, removed afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "journal.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char dir[64];    /* the temporary directory */
    char state[128]; /* STATE_DIR in it */
    char out[128];   /* an output file in it */
    char out2[128];  /* another one */
    char jpath[160]; /* STATE_DIR/journal */
} s_env_t;

static int s_setup(void **state)
{
    s_env_t *env = calloc(1, sizeof *env);
    assert_non_null(env);
    snprintf(env->dir, sizeof env->dir, "/tmp/test_journal.XXXXXX");
    assert_non_null(mkdtemp(env->dir));
    snprintf(env->state, sizeof env->state, "%s/state", env->dir);
    snprintf(env->out, sizeof env->out, "%s/out.pcapng", env->dir);
    snprintf(env->out2, sizeof env->out2, "%s/out2.pcapng", env->dir);
    snprintf(env->jpath, sizeof env->jpath, "%s/journal", env->state);
    *state = env;
    return 0;
}

static int s_teardown(void **state)
{
    s_env_t *env = *state;
    tmpdir_remove(env->dir);
    free(env);
    return 0;
}

static journal_t *s_open(const char *dir)
{
    char err[512] = "";
    journal_t *j = journal_open(dir, err, sizeof err);
    if (!j)
        fail_msg("journal_open(%s): %s", dir, err);
    return j;
}

/* Size of `path`, or -1 when it does not exist. */
static long long s_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Byte i of a test capture: a pcapng section header's magic, then a
 * pattern (only the magic matters: the journal cuts back captures only). */
static uint8_t s_byte(size_t i)
{
    static const uint8_t magic[4] = {0x0a, 0x0d, 0x0d, 0x0a};
    return i < 4 ? magic[i] : (uint8_t)(i * 7);
}

/* Writes a file of `size` bytes: byte i is s_byte(i). */
static void s_make_file(const char *path, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    uint8_t buf[4096];
    for (size_t off = 0; off < size; off += sizeof buf) {
        size_t n = size - off < sizeof buf ? size - off : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = s_byte(off + i);
        assert_int_equal(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
    }
    close(fd);
    assert_int_equal(s_size(path), (long long)size);
}

/* True when the first `n` bytes of `path` are still those of s_make_file. */
static bool s_file_intact(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = fgetc(f) == s_byte(i);
    fclose(f);
    return ok;
}

static journal_entry_t s_done(const char *source, uint64_t epoch, uint64_t seq)
{
    return (journal_entry_t){
        .source = source, .epoch = epoch, .seq = seq, .written = 10, .complete = true};
}

static journal_entry_t s_begun(const char *source, uint64_t epoch, uint64_t seq, uint16_t part,
                               uint32_t written)
{
    return (journal_entry_t){
        .source = source, .epoch = epoch, .seq = seq, .part = part, .written = written};
}

/* `members` spells the set from 0: '1' present, '0' absent; nothing at or
 * past its length is present. */
static void s_assert_set(const seqset_t *s, const char *members)
{
    size_t n = strlen(members);
    for (size_t i = 0; i < n; i++)
        if (seqset_has(s, i) != (members[i] == '1'))
            fail_msg("seq %zu: expected %s (set \"%s\")", i,
                     members[i] == '1' ? "present" : "absent", members);
    assert_true(seqset_end(s) <= n);
}

static const journal_partial_t *s_partial(const journal_state_t *st, uint64_t seq, uint16_t part)
{
    for (size_t i = 0; i < st->npartials; i++)
        if (st->partials[i].seq == seq && st->partials[i].part == part)
            return &st->partials[i];
    return NULL;
}

static void s_assert_partial(const journal_state_t *st, uint64_t seq, uint16_t part,
                             uint32_t written)
{
    const journal_partial_t *p = s_partial(st, seq, part);
    if (!p)
        fail_msg("no partial (%llu, %u)", (unsigned long long)seq, part);
    assert_int_equal(p->written, written);
}

/* Takes (source, epoch), which must be there. */
static journal_state_t *s_take(journal_t *j, const char *source, uint64_t epoch)
{
    journal_state_t *st = journal_take(j, source, epoch);
    if (!st)
        fail_msg("no restored state for %s epoch %llu", source, (unsigned long long)epoch);
    assert_string_equal(st->source, source);
    assert_int_equal(st->epoch, epoch);
    return st;
}

/* CRC-32 as zlib, to forge records that pass the check. */
static uint32_t s_crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static size_t s_read_all(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void s_write_all(const char *path, const uint8_t *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* ---- opening ------------------------------------------------------- */

/* A missing STATE_DIR is created; an empty journal restores nothing. */
static void test_fresh_dir_created(void **state)
{
    s_env_t *env = *state;
    assert_int_equal(s_size(env->state), -1);
    journal_t *j = s_open(env->state);
    struct stat st;
    assert_int_equal(stat(env->state, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_true(s_size(env->jpath) >= 0);
    assert_int_equal(journal_restored(j), 0);
    assert_int_equal(journal_expected(j), 0);
    assert_null(journal_take(j, "edge1", 1));
    assert_false(journal_wants_compaction(j));
    journal_close(&j);
    assert_null(j);
    journal_close(&j); /* accepts NULL */

    j = s_open(env->state); /* and reopens */
    assert_int_equal(journal_restored(j), 0);
    journal_close(&j);
}

static unsigned s_mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

/* STATE_DIR says what was written where: the directory is made 0750 and
 * the journal 0600 (the umask may take more away), also when a journal or
 * a journal.tmp left by an earlier version was wider, and after a
 * compaction. */
static void test_file_modes(void **state)
{
    s_env_t *env = *state;
    static const struct {
        mode_t umask, dir, file;
    } cases[] = {{022, 0750, 0600}, {0, 0750, 0600}, {027, 0750, 0600}, {077, 0700, 0600}};
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", env->jpath);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dir[160], jpath[200];
        snprintf(dir, sizeof dir, "%s/state%zu", env->dir, i);
        snprintf(jpath, sizeof jpath, "%s/journal", dir);
        mode_t old = umask(cases[i].umask);
        journal_t *j = s_open(dir);
        umask(old);
        if (s_mode_of(dir) != cases[i].dir || s_mode_of(jpath) != cases[i].file)
            fail_msg("umask %03o: STATE_DIR %04o, journal %04o; expected %04o, %04o",
                     (unsigned)cases[i].umask, s_mode_of(dir), s_mode_of(jpath), cases[i].dir,
                     cases[i].file);
        journal_close(&j);
    }
    /* an earlier version's 0644 journal and journal.tmp */
    journal_t *j = s_open(env->state);
    journal_close(&j);
    assert_int_equal(chmod(env->jpath, 0644), 0);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0666), 0);
    close(fd);
    mode_t old = umask(022);
    j = s_open(env->state);
    assert_int_equal(journal_file(j, env->out), 0);
    const journal_state_t *none[1] = {NULL};
    assert_int_equal(journal_compact(j, env->out, none, 0), 0);
    umask(old);
    assert_int_equal(s_mode_of(env->jpath), 0600);
    assert_int_equal(s_size(tmp), -1);
    journal_close(&j);
}

/* The records follow the header: u32 length, u32 CRC-32 of the rest,
 * type, body, integers big-endian. */
static void test_record_layout(void **state)
{
    s_env_t *env = *state;
    journal_t *j = s_open(env->state);
    long long before = s_size(env->jpath);
    assert_int_equal(journal_end(j, "src", 0x0102030405060708ull), 0);
    journal_close(&j);
    uint8_t buf[256];
    size_t n = s_read_all(env->jpath, buf, sizeof buf);
    assert_true(before >= 0 && (size_t)before < n);
    const uint8_t *rec = buf + before;
    size_t len = n - (size_t)before;
    assert_int_equal(s_be32(rec), len - 8);
    assert_int_equal(s_be32(rec + 4), s_crc32(rec + 8, len - 8));
    static const uint8_t tail[] = {3, 's', 'r', 'c', 1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(len, 8 + 1 + sizeof tail);
    assert_memory_equal(rec + 9, tail, sizeof tail);
}

/* ---- intents ------------------------------------------------------- */

/* Intents come back on reopen: complete batches in the set, begun ones as
 * partials with the most written, a partial later completed no longer a
 * partial, per (source, epoch). The state survives the compaction that
 * journal_open does. */
static void s_check_ab(journal_t *j)
{
    assert_int_equal(journal_restored(j), 2);
    assert_int_equal(journal_expected(j), 2);
    assert_null(journal_take(j, "A", 2)); /* another epoch */
    assert_null(journal_take(j, "C", 1));

    journal_state_t *a = s_take(j, "A", 1);
    assert_false(a->ended);
    s_assert_set(&a->complete, "110101");
    assert_int_equal(a->npartials, 2);
    s_assert_partial(a, 2, 0, 8); /* 3, then 8, then 5: the most */
    s_assert_partial(a, 4, 1, 6);
    assert_null(s_partial(a, 3, 0)); /* completed later */
    journal_state_free(&a);
    assert_null(a);
    journal_state_free(&a); /* accepts NULL */

    journal_state_t *b = s_take(j, "B", 7);
    s_assert_set(&b->complete, "1");
    assert_int_equal(b->npartials, 0);
    journal_state_free(&b);
    assert_int_equal(journal_restored(j), 0);
    assert_int_equal(journal_expected(j), 0);
}

static void test_intents_applied_on_reopen(void **state)
{
    s_env_t *env = *state;
    s_make_file(env->out, 300);
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, env->out), 0);
    journal_entry_t e1[] = {s_done("A", 1, 0), s_done("A", 1, 1), s_begun("A", 1, 2, 0, 3)};
    assert_int_equal(journal_intent(j, 0, 100, e1, 3), 0);
    journal_entry_t e2[] = {s_begun("A", 1, 2, 0, 8), s_begun("A", 1, 3, 0, 2), s_done("B", 7, 0),
                            s_begun("A", 1, 4, 1, 6)};
    assert_int_equal(journal_intent(j, 100, 100, e2, 4), 0);
    journal_entry_t e3[] = {s_begun("A", 1, 2, 0, 5), s_done("A", 1, 5), s_done("A", 1, 3)};
    assert_int_equal(journal_intent(j, 200, 100, e3, 3), 0);
    journal_close(&j);

    j = s_open(env->state);
    s_check_ab(j);
    assert_null(journal_take(j, "A", 1)); /* taken: gone */
    journal_close(&j);
    assert_int_equal(s_size(env->out), 300);

    j = s_open(env->state); /* the compacted journal */
    s_check_ab(j);
    journal_close(&j);
}

/* The reader on bytes alone (journal_parse, for fuzzing): the same states
 * as journal_open restores, whatever the output file holds (here: not
 * there at all; the last intent counts), every state handed over once by
 * journal_take_next, and nothing written anywhere. */
static void test_parse_from_memory(void **state)
{
    s_env_t *env = *state;
    s_make_file(env->out, 300);
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, env->out), 0);
    journal_entry_t e1[] = {s_done("A", 1, 0), s_done("A", 1, 1), s_begun("A", 1, 2, 0, 3)};
    assert_int_equal(journal_intent(j, 0, 100, e1, 3), 0);
    journal_entry_t e2[] = {s_begun("A", 1, 2, 0, 8), s_begun("A", 1, 3, 0, 2), s_done("B", 7, 0),
                            s_begun("A", 1, 4, 1, 6)};
    assert_int_equal(journal_intent(j, 100, 100, e2, 4), 0);
    journal_entry_t e3[] = {s_begun("A", 1, 2, 0, 5), s_done("A", 1, 5), s_done("A", 1, 3)};
    assert_int_equal(journal_intent(j, 200, 100, e3, 3), 0);
    journal_close(&j);
    unlink(env->out); /* journal_open would not count the last intent now */
    FILE *f = fopen(env->jpath, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(len > 0 && len < sizeof buf);

    j = journal_parse(buf, len);
    assert_non_null(j);
    s_check_ab(j);
    journal_close(&j);

    j = journal_parse(buf, len);
    size_t n = 0;
    journal_state_t *st;
    bool a = false, b = false;
    while ((st = journal_take_next(j))) {
        a |= strcmp(st->source, "A") == 0 && st->epoch == 1;
        b |= strcmp(st->source, "B") == 0 && st->epoch == 7;
        journal_state_free(&st);
        n++;
    }
    assert_int_equal(n, 2);
    assert_true(a && b);
    assert_int_equal(journal_restored(j), 0);
    /* a journal in memory writes nothing */
    assert_true(journal_end(j, "A", 1) < 0);
    assert_true(journal_compact(j, env->out, NULL, 0) < 0);
    assert_int_equal(s_size(env->out), -1);
    journal_close(&j);
    /* cut anywhere: no more than the whole gives, and no crash */
    for (size_t cut = 0; cut < len; cut++) {
        j = journal_parse(buf, cut);
        assert_non_null(j);
        assert_true(journal_restored(j) <= 2);
        journal_close(&j);
    }
}

/* An intent with no entries is harmless. */
static void test_empty_intent(void **state)
{
    s_env_t *env = *state;
    s_make_file(env->out, 10);
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, env->out), 0);
    assert_int_equal(journal_intent(j, 0, 10, NULL, 0), 0);
    journal_close(&j);
    j = s_open(env->state);
    assert_int_equal(journal_restored(j), 0);
    journal_close(&j);
}

/* A journal names the file it cuts back: only a capture, and not through a
 * symbolic link, whatever the journal says (someone who can write STATE_DIR
 * must not make the collector cut any file). */
static void test_cut_back_only_captures(void **state)
{
    s_env_t *env = *state;
    for (int kind = 0; kind < 2; kind++) {
        char dir[200], out[200], target[200];
        snprintf(dir, sizeof dir, "%s/statek%d", env->dir, kind);
        snprintf(out, sizeof out, "%s/victim%d", env->dir, kind);
        snprintf(target, sizeof target, "%s/target%d", env->dir, kind);
        journal_t *j = s_open(dir);
        assert_int_equal(journal_file(j, out), 0);
        journal_entry_t e1[] = {s_done("A", 1, 0)};
        assert_int_equal(journal_intent(j, 0, 100, e1, 1), 0);
        journal_entry_t e2[] = {s_done("A", 1, 1)};
        assert_int_equal(journal_intent(j, 100, 50, e2, 1), 0);
        journal_close(&j);
        if (kind == 0) { /* not a capture */
            FILE *f = fopen(out, "w");
            for (int i = 0; i < 149; i++)
                fputc('x', f);
            fclose(f);
        } else { /* a capture, but behind a symbolic link */
            s_make_file(target, 149);
            assert_int_equal(symlink(target, out), 0);
        }
        j = s_open(dir);
        journal_close(&j);
        assert_int_equal(s_size(kind ? target : out), 149);
    }
}

/* The last intent counts only when its bytes are in the file; a file cut
 * short inside the intent is truncated back to where it began; one that
 * does not reach it is left alone. The intent before counts regardless. */
static void test_last_intent_checked_against_file(void **state)
{
    s_env_t *env = *state;
    static const struct {
        long long size; /* -1: no file */
        bool applied;
        long long after;
    } cases[] = {
        {150, true, 150},                     /* exactly offset + length */
        {400, true, 400},                     /* more (later writes not journaled) */
        {149, false, 100},                    /* one byte short: cut back */
        {101, false, 100}, {100, false, 100}, /* nothing of it written */
        {60, false, 60},                      /* shorter still: left alone */
        {-1, false, -1},                      /* the file is gone */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dir[200], out[200];
        snprintf(dir, sizeof dir, "%s/state%zu", env->dir, c);
        snprintf(out, sizeof out, "%s/out%zu.pcapng", env->dir, c);
        journal_t *j = s_open(dir);
        assert_int_equal(journal_file(j, out), 0);
        journal_entry_t e1[] = {s_done("A", 1, 0)};
        assert_int_equal(journal_intent(j, 0, 100, e1, 1), 0);
        journal_entry_t e2[] = {s_done("A", 1, 1), s_begun("A", 1, 2, 0, 4)};
        assert_int_equal(journal_intent(j, 100, 50, e2, 2), 0);
        journal_close(&j);
        if (cases[c].size >= 0)
            s_make_file(out, (size_t)cases[c].size);

        j = s_open(dir);
        journal_state_t *a = s_take(j, "A", 1);
        if (cases[c].applied) {
            s_assert_set(&a->complete, "11");
            assert_int_equal(a->npartials, 1);
            s_assert_partial(a, 2, 0, 4);
        } else {
            s_assert_set(&a->complete, "1");
            assert_int_equal(a->npartials, 0);
        }
        if (s_size(out) != cases[c].after)
            fail_msg("case %zu: file of %lld bytes is now %lld, expected %lld", c, cases[c].size,
                     s_size(out), cases[c].after);
        if (cases[c].after > 0)
            assert_true(s_file_intact(out, (size_t)cases[c].after));
        journal_state_free(&a);
        journal_close(&j);
    }
}

/* A FILE record after an intent means that intent was flushed (rotation):
 * it counts even though the new file is empty; the last intent is checked
 * against the new file. */
static void test_intent_before_rotation_counts(void **state)
{
    s_env_t *env = *state;
    s_make_file(env->out, 50); /* shorter than its intent: no matter */
    s_make_file(env->out2, 20);
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, env->out), 0);
    journal_entry_t e1[] = {s_done("A", 1, 0)};
    assert_int_equal(journal_intent(j, 0, 100, e1, 1), 0);
    assert_int_equal(journal_file(j, env->out2), 0);
    journal_entry_t e2[] = {s_done("A", 1, 1)};
    assert_int_equal(journal_intent(j, 0, 40, e2, 1), 0);
    journal_close(&j);

    j = s_open(env->state);
    journal_state_t *a = s_take(j, "A", 1);
    s_assert_set(&a->complete, "1");
    journal_state_free(&a);
    journal_close(&j);
    assert_int_equal(s_size(env->out), 50);
    assert_int_equal(s_size(env->out2), -1); /* cut back to nothing: removed */
}

/* A section header block (28 bytes) and an interface block (20 bytes), as
 * a pcapng writer starts a file. */
static size_t s_pcapng_start(uint8_t *buf, bool with_idb)
{
    static const uint8_t shb[28] = {0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0,    0,    0x4d, 0x3c,
                                    0x2b, 0x1a, 1,    0,    0,  0, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 28, 0, 0,    0};
    static const uint8_t idb[20] = {1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 4, 0, 20, 0, 0, 0};
    memcpy(buf, shb, sizeof shb);
    if (!with_idb)
        return sizeof shb;
    memcpy(buf + sizeof shb, idb, sizeof idb);
    return sizeof shb + sizeof idb;
}

/* The file being written when the collector stopped is one a reader
 * cannot open (empty, a section header alone, a header cut short): it is
 * removed on start-up, whether an intent was pending or not. A file with
 * its first interface block, and a file that is no capture at all, are
 * left alone. */
static void test_unreadable_file_removed(void **state)
{
    s_env_t *env = *state;
    static const struct {
        const char *what;
        int content; /* 0 empty, 1 SHB, 2 SHB + IDB, 3 SHB cut, 4 pcap header cut, 5 other */
        bool intent; /* a pending intent past the file's end */
        bool kept;
    } cases[] = {
        {"empty", 0, false, false},
        {"empty, intent pending", 0, true, false},
        {"section header alone", 1, false, false},
        {"section header, intent pending", 1, true, false},
        {"section header cut", 3, false, false},
        {"pcap file header cut", 4, false, false},
        {"section and interface", 2, false, true},
        {"section and interface, intent pending", 2, true, true},
        {"not a capture", 5, false, true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dir[200], out[200];
        snprintf(dir, sizeof dir, "%s/state%zu", env->dir, c);
        snprintf(out, sizeof out, "%s/out%zu.pcapng", env->dir, c);
        uint8_t buf[64];
        size_t n = 0;
        switch (cases[c].content) {
        case 1:
            n = s_pcapng_start(buf, false);
            break;
        case 2:
            n = s_pcapng_start(buf, true);
            break;
        case 3:
            n = s_pcapng_start(buf, false) - 5;
            break;
        case 4:
            memcpy(buf, (const uint8_t[]){0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0}, 8);
            n = 8;
            break;
        case 5:
            memcpy(buf, "not a capture", 13);
            n = 13;
            break;
        }
        s_write_all(out, buf, n);
        journal_t *j = s_open(dir);
        assert_int_equal(journal_file(j, out), 0);
        if (cases[c].intent) {
            journal_entry_t e[] = {s_done("A", 1, 0)};
            assert_int_equal(journal_intent(j, n, 100, e, 1), 0);
        }
        journal_close(&j);

        j = s_open(dir);
        journal_close(&j);
        long long want = cases[c].kept ? (long long)n : -1;
        if (s_size(out) != want)
            fail_msg("%s: the file is %lld bytes, expected %lld", cases[c].what, s_size(out), want);
    }
}

/* Standard output cannot be checked: its last intent counts as written. */
static void test_stdout_last_intent_counts(void **state)
{
    s_env_t *env = *state;
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, "-"), 0);
    journal_entry_t e1[] = {s_done("A", 1, 0)};
    assert_int_equal(journal_intent(j, 0, 100, e1, 1), 0);
    journal_entry_t e2[] = {s_done("A", 1, 1), s_begun("A", 1, 2, 0, 3)};
    assert_int_equal(journal_intent(j, 100, 100, e2, 2), 0);
    journal_close(&j);

    j = s_open(env->state);
    journal_state_t *a = s_take(j, "A", 1);
    s_assert_set(&a->complete, "11");
    assert_int_equal(a->npartials, 1);
    s_assert_partial(a, 2, 0, 3);
    journal_state_free(&a);
    journal_close(&j);
}

/* UNDO after an intent (its flush failed and was cut off): none of the
 * intent counts, even for standard output, whose size cannot tell; a file
 * longer than where the intent began (the cut failed) is cut back. The
 * intents before it count, and so do the ones after it. */
static void test_undo_drops_last_intent(void **state)
{
    s_env_t *env = *state;
    const char *files[] = {"-", env->out};
    for (size_t c = 0; c < 2; c++) {
        char dir[200];
        snprintf(dir, sizeof dir, "%s/state%zu", env->dir, c);
        journal_t *j = s_open(dir);
        assert_int_equal(journal_file(j, files[c]), 0);
        journal_entry_t e1[] = {s_done("A", 1, 0)};
        assert_int_equal(journal_intent(j, 0, 100, e1, 1), 0);
        journal_entry_t e2[] = {s_done("A", 1, 1), s_begun("A", 1, 2, 0, 3)};
        assert_int_equal(journal_intent(j, 100, 100, e2, 2), 0);
        assert_int_equal(journal_undo(j), 0);
        journal_close(&j);
        if (c == 1)
            s_make_file(env->out, 150); /* torn: the failed write was not cut */

        j = s_open(dir);
        journal_state_t *a = s_take(j, "A", 1);
        s_assert_set(&a->complete, "1");
        assert_int_equal(a->npartials, 0);
        journal_state_free(&a);
        if (c == 1) {
            assert_int_equal(s_size(env->out), 100);
            assert_true(s_file_intact(env->out, 100));
        }
        /* an UNDO with no intent before it (the reopen rewrote the
         * journal) changes nothing; what follows counts */
        assert_int_equal(journal_undo(j), 0);
        journal_entry_t e3[] = {s_done("B", 2, 0)};
        assert_int_equal(journal_intent(j, 100, 0, e3, 1), 0);
        journal_close(&j);
        j = s_open(dir);
        journal_state_t *b = s_take(j, "B", 2);
        s_assert_set(&b->complete, "1");
        journal_state_free(&b);
        journal_close(&j);
    }
}

/* STATE_DIR fills up in the middle of a record: the append fails, and the
 * part of the record that was written is cut off at once. Once there is
 * room again, a record appended after it is replayed (behind a torn record
 * it would be lost, with everything after it). */
static void test_failed_append_cut_off(void **state)
{
    s_env_t *env = *state;
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, "-"), 0);
    journal_entry_t e1[] = {s_done("A", 1, 0)};
    assert_int_equal(journal_intent(j, 0, 100, e1, 1), 0);
    long long whole = s_size(env->jpath);

    /* the disk is full a few bytes on */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved, rl;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    rl = saved;
    rl.rlim_cur = (rlim_t)whole + 7;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
    journal_entry_t e2[] = {s_done("A", 1, 1)};
    int rc = journal_intent(j, 100, 100, e2, 1);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    assert_int_equal(rc, -EFBIG);
    assert_non_null(strstr(journal_error(j), env->jpath));
    assert_int_equal(s_size(env->jpath), whole);

    journal_entry_t e3[] = {s_done("A", 1, 2)};
    assert_int_equal(journal_intent(j, 100, 100, e3, 1), 0);
    assert_int_equal(journal_end(j, "A", 1), 0);
    journal_close(&j);
    j = s_open(env->state);
    journal_state_t *a = s_take(j, "A", 1);
    s_assert_set(&a->complete, "101");
    assert_true(a->ended);
    journal_state_free(&a);
    journal_close(&j);
}

/* ---- torn tails ---------------------------------------------------- */

typedef enum {
    S_TORN_GARBAGE_SHORT,  /* fewer bytes than a record header */
    S_TORN_GARBAGE_LONG,   /* a header whose length runs past the end */
    S_TORN_CUT,            /* the last record cut short */
    S_TORN_CUT_HEADER,     /* cut inside the last record's header */
    S_TORN_FLIP_BODY,      /* a byte of the last record's body changed */
    S_TORN_FLIP_CRC,       /* a byte of its CRC changed */
    S_TORN_UNKNOWN_TYPE,   /* a valid CRC over an unknown record type */
    S_TORN_SHORT_BODY,     /* a valid CRC over a body too short for its type */
    S_TORN_FLIP_MIDDLE,    /* the second intent damaged: the third is lost too */
    S_TORN_UNKNOWN_MIDDLE, /* the second of an unknown type: the replay stops there */
    S_TORN_COUNT_
} s_torn_t;

/* Three intents, then the journal damaged as a crash (or a disk) would:
 * a torn or damaged record is ignored, with everything after it, while the
 * records before it count; the reopen's rewrite drops the damage, so what
 * is appended next is read. */
static void test_torn_tail_ignored(void **state)
{
    s_env_t *env = *state;
    for (int t = 0; t < S_TORN_COUNT_; t++) {
        char dir[200], jpath[220], out[200];
        snprintf(dir, sizeof dir, "%s/state%d", env->dir, t);
        snprintf(jpath, sizeof jpath, "%s/journal", dir);
        snprintf(out, sizeof out, "%s/out%d.pcapng", env->dir, t);
        s_make_file(out, 300);
        journal_t *j = s_open(dir);
        assert_int_equal(journal_file(j, out), 0);
        journal_entry_t e1[] = {s_done("A", 1, 0)};
        assert_int_equal(journal_intent(j, 0, 100, e1, 1), 0);
        size_t second = (size_t)s_size(jpath);
        journal_entry_t e2[] = {s_done("A", 1, 1)};
        assert_int_equal(journal_intent(j, 100, 100, e2, 1), 0);
        size_t last = (size_t)s_size(jpath);
        journal_entry_t e3[] = {s_done("A", 1, 2)};
        assert_int_equal(journal_intent(j, 200, 100, e3, 1), 0);
        journal_close(&j);

        uint8_t buf[4096];
        size_t n = s_read_all(jpath, buf, sizeof buf);
        assert_true(n < sizeof buf - 64 && last < n);
        const char *expect = "11";
        switch ((s_torn_t)t) {
        case S_TORN_GARBAGE_SHORT:
            memcpy(buf + n, "\x00\x00\x01", 3);
            n += 3;
            expect = "111";
            break;
        case S_TORN_GARBAGE_LONG:
            memcpy(buf + n, "\x00\x00\x10\x00\xde\xad\xbe\xef\x02\x00\x00", 11);
            n += 11;
            expect = "111";
            break;
        case S_TORN_CUT:
            n -= 3;
            break;
        case S_TORN_CUT_HEADER:
            n = last + 5;
            break;
        case S_TORN_FLIP_BODY:
            buf[n - 8] ^= 0x40; /* the seq's low byte: 2 would read 66 */
            break;
        case S_TORN_FLIP_CRC:
            buf[last + 6] ^= 0x01;
            break;
        case S_TORN_UNKNOWN_TYPE:
        case S_TORN_UNKNOWN_MIDDLE:
        case S_TORN_SHORT_BODY: {
            uint8_t *rec = buf + (t == S_TORN_UNKNOWN_MIDDLE ? second : last);
            uint32_t len = s_be32(rec);
            if (t != S_TORN_SHORT_BODY) {
                rec[8] = 0xEE;
                if (t == S_TORN_UNKNOWN_MIDDLE)
                    expect = "1";
            } else {
                len = 1 + 8 + 3; /* type, offset, part of the length */
                n = last + 8 + len;
                for (int i = 0; i < 4; i++)
                    rec[i] = (uint8_t)(len >> (24 - 8 * i));
            }
            uint32_t crc = s_crc32(rec + 8, len);
            for (int i = 0; i < 4; i++)
                rec[4 + i] = (uint8_t)(crc >> (24 - 8 * i));
            break;
        }
        case S_TORN_FLIP_MIDDLE:
            buf[second + 8 + 10] ^= 0x01;
            expect = "1";
            break;
        case S_TORN_COUNT_:
            break;
        }
        s_write_all(jpath, buf, n);

        j = s_open(dir);
        journal_state_t *a = s_take(j, "A", 1);
        char got[8] = "";
        for (uint64_t seq = 0; seq < seqset_end(&a->complete) && seq < 7; seq++)
            got[seq] = seqset_has(&a->complete, seq) ? '1' : '0';
        if (strcmp(got, expect) != 0)
            fail_msg("damage %d: \"%s\", expected \"%s\"", t, got, expect);
        s_assert_set(&a->complete, expect);
        journal_state_free(&a);
        /* the reopen rewrote the journal: what follows is read again */
        journal_entry_t e4[] = {s_done("A", 1, 3)};
        assert_int_equal(journal_intent(j, 300, 0, e4, 1), 0);
        journal_close(&j);
        assert_int_equal(s_size(out), 300);

        j = s_open(dir);
        a = s_take(j, "A", 1);
        char want[8];
        snprintf(want, sizeof want, "%s", expect);
        while (strlen(want) < 3)
            strcat(want, "0");
        strcat(want, "1");
        s_assert_set(&a->complete, want);
        journal_state_free(&a);
        journal_close(&j);
    }
}

/* ---- END ----------------------------------------------------------- */

static void s_check_ended(journal_t *j)
{
    assert_int_equal(journal_restored(j), 5);
    assert_int_equal(journal_expected(j), 3); /* A/2, B/1, C/2 */

    journal_state_t *b = s_take(j, "B", 1);
    assert_false(b->ended);
    assert_int_equal(journal_restored(j), 4);
    assert_int_equal(journal_expected(j), 2); /* taken: no longer expected */

    journal_state_t *a = s_take(j, "A", 1);
    assert_true(a->ended);
    s_assert_set(&a->complete, "1");
    assert_int_equal(journal_restored(j), 3);
    assert_int_equal(journal_expected(j), 2); /* it was not expected */

    journal_state_t *a2 = s_take(j, "A", 2);
    assert_false(a2->ended); /* END is per epoch */

    journal_state_t *d = s_take(j, "D", 3);
    assert_true(d->ended);
    assert_int_equal(seqset_end(&d->complete), 0);
    assert_int_equal(d->npartials, 0);
    assert_int_equal(journal_expected(j), 1);

    journal_state_t *c = s_take(j, "C", 2);
    assert_false(c->ended);
    assert_int_equal(journal_restored(j), 0);
    assert_int_equal(journal_expected(j), 0);

    journal_state_free(&a);
    journal_state_free(&a2);
    journal_state_free(&b);
    journal_state_free(&c);
    journal_state_free(&d);
}

/* END marks a source ended (even with nothing else journaled); expected
 * counts the restored states not ended and not taken; it survives the
 * compaction on open. */
static void test_end_marks_ended(void **state)
{
    s_env_t *env = *state;
    s_make_file(env->out, 100);
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, env->out), 0);
    journal_entry_t e[] = {s_done("A", 1, 0), s_done("A", 2, 0), s_done("B", 1, 0),
                           s_done("C", 2, 0)};
    assert_int_equal(journal_intent(j, 0, 100, e, 4), 0);
    assert_int_equal(journal_end(j, "A", 1), 0);
    assert_int_equal(journal_end(j, "D", 3), 0);
    journal_close(&j);

    j = s_open(env->state);
    s_check_ended(j);
    journal_close(&j);
    j = s_open(env->state);
    s_check_ended(j);
    journal_close(&j);
}

static void test_take_twice(void **state)
{
    s_env_t *env = *state;
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, "-"), 0);
    journal_entry_t e[] = {s_done("A", 1, 0)};
    assert_int_equal(journal_intent(j, 0, 10, e, 1), 0);
    journal_close(&j);
    j = s_open(env->state);
    journal_state_t *a = journal_take(j, "A", 1);
    assert_non_null(a);
    assert_null(journal_take(j, "A", 1));
    journal_state_free(&a);
    journal_close(&j);
}

/* ---- compaction ---------------------------------------------------- */

/* Live states are saved as given, with their partials out of the complete
 * set (kept as partials when begun); restored states not taken are carried
 * over; intents appended after the rewrite count. */
static void test_compact_live_and_restored(void **state)
{
    s_env_t *env = *state;
    s_make_file(env->out, 200);
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, env->out), 0);
    journal_entry_t e[] = {s_done("R", 1, 0), s_done("R", 1, 1), s_done("R", 1, 2),
                           s_begun("R", 1, 3, 2, 4)};
    assert_int_equal(journal_intent(j, 0, 100, e, 4), 0);
    journal_close(&j);

    j = s_open(env->state);
    assert_int_equal(journal_restored(j), 1);
    journal_partial_t partials[] = {
        {.seq = 3, .part = 0, .written = 0}, /* taken, nothing written */
        {.seq = 7, .part = 0, .written = 5}, /* half written */
        {.seq = 8, .part = 1, .written = 2},
    };
    journal_state_t live = {.source = "live", .epoch = 5, .ended = true};
    seqset_init(&live.complete, 16);
    assert_int_equal(seqset_add_range(&live.complete, 0, 10), 0);
    live.partials = partials;
    live.npartials = 3;
    journal_state_t other = {.source = "other", .epoch = 9};
    seqset_init(&other.complete, 16);
    assert_int_equal(seqset_add_range(&other.complete, 0, 3), 0);
    assert_int_equal(seqset_add_range(&other.complete, 5, 6), 0);
    const journal_state_t *states[] = {&live, &other};
    assert_int_equal(journal_compact(j, env->out, states, 2), 0);
    assert_false(journal_wants_compaction(j));
    journal_entry_t e2[] = {s_done("other", 9, 3)};
    assert_int_equal(journal_intent(j, 100, 100, e2, 1), 0);
    journal_close(&j);
    seqset_free(&live.complete);
    seqset_free(&other.complete);

    for (int round = 0; round < 2; round++) { /* and again after the reopen's rewrite */
        j = s_open(env->state);
        assert_int_equal(journal_restored(j), 3);
        assert_int_equal(journal_expected(j), 2); /* live had ended */

        journal_state_t *l = s_take(j, "live", 5);
        assert_true(l->ended);
        s_assert_set(&l->complete, "1110111001");
        assert_int_equal(l->npartials, 2);
        assert_null(s_partial(l, 3, 0));
        s_assert_partial(l, 7, 0, 5);
        s_assert_partial(l, 8, 1, 2);
        journal_state_free(&l);

        journal_state_t *o = s_take(j, "other", 9);
        assert_false(o->ended);
        s_assert_set(&o->complete, "111101");
        assert_int_equal(o->npartials, 0);
        journal_state_free(&o);

        journal_state_t *r = s_take(j, "R", 1);
        s_assert_set(&r->complete, "111");
        assert_int_equal(r->npartials, 1);
        s_assert_partial(r, 3, 2, 4);
        journal_state_free(&r);
        journal_close(&j);
    }
}

/* A restored state taken before the rewrite is the caller's now: it is not
 * carried over. */
static void test_compact_drops_taken(void **state)
{
    s_env_t *env = *state;
    s_make_file(env->out, 100);
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, env->out), 0);
    journal_entry_t e[] = {s_done("R", 1, 0), s_done("S", 1, 0)};
    assert_int_equal(journal_intent(j, 0, 100, e, 2), 0);
    journal_close(&j);

    j = s_open(env->state);
    journal_state_t *r = s_take(j, "R", 1);
    assert_int_equal(journal_compact(j, env->out, NULL, 0), 0);
    journal_close(&j);
    journal_state_free(&r);

    j = s_open(env->state);
    assert_int_equal(journal_restored(j), 1);
    assert_null(journal_take(j, "R", 1));
    journal_state_t *s = s_take(j, "S", 1);
    s_assert_set(&s->complete, "1");
    journal_state_free(&s);
    journal_close(&j);
}

/* The rewrite keeps the output file's name (the compaction on open and an
 * explicit one with a new name): later intents are checked against it. */
static void test_compact_keeps_file(void **state)
{
    s_env_t *env = *state;
    s_make_file(env->out, 100);
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, env->out), 0);
    journal_entry_t e1[] = {s_done("A", 1, 0)};
    assert_int_equal(journal_intent(j, 0, 100, e1, 1), 0);
    journal_close(&j);

    j = s_open(env->state); /* rewritten: FILE out, STATE A */
    journal_entry_t e2[] = {s_done("A", 1, 1)};
    assert_int_equal(journal_intent(j, 100, 100, e2, 1), 0);
    journal_close(&j);
    s_make_file(env->out, 150); /* half of it written */

    j = s_open(env->state);
    assert_int_equal(s_size(env->out), 100);
    assert_int_equal(journal_compact(j, env->out2, NULL, 0), 0);
    s_make_file(env->out2, 90);
    journal_entry_t e3[] = {s_done("A", 1, 2)};
    assert_int_equal(journal_intent(j, 0, 80, e3, 1), 0);
    journal_entry_t e4[] = {s_done("A", 1, 3)};
    assert_int_equal(journal_intent(j, 80, 20, e4, 1), 0);
    journal_close(&j);

    j = s_open(env->state);
    journal_state_t *a = s_take(j, "A", 1);
    s_assert_set(&a->complete, "101");
    journal_state_free(&a);
    journal_close(&j);
    assert_int_equal(s_size(env->out), 100);
    assert_int_equal(s_size(env->out2), 80);
}

/* Small journals are left alone; one that grows large asks to be
 * rewritten, and no longer once it is. */
static void test_wants_compaction(void **state)
{
    s_env_t *env = *state;
    journal_t *j = s_open(env->state);
    assert_int_equal(journal_file(j, "-"), 0);
    enum { N = 1000 };
    static journal_entry_t e[N];
    for (int i = 0; i < N; i++)
        e[i] = s_done("a-rather-long-source-name-to-fill-the-journal", 1, (uint64_t)i);
    for (int i = 0; i < 5; i++)
        assert_int_equal(journal_intent(j, 0, 0, e, 10), 0);
    assert_false(journal_wants_compaction(j));
    int intents = 0;
    while (!journal_wants_compaction(j)) {
        assert_true(s_size(env->jpath) < (64ll << 20));
        assert_int_equal(journal_intent(j, 0, 0, e, N), 0);
        intents++;
    }
    assert_true(intents > 1);
    assert_true(s_size(env->jpath) >= (1ll << 20)); /* not for a small one */
    assert_int_equal(journal_compact(j, "-", NULL, 0), 0);
    assert_false(journal_wants_compaction(j));
    assert_true(s_size(env->jpath) < 4096);
    journal_close(&j);
}

/* ---- errors -------------------------------------------------------- */

static void s_expect_open_error(const char *dir, const char *needle)
{
    char err[512] = "";
    journal_t *j = journal_open(dir, err, sizeof err);
    assert_null(j);
    if (!strstr(err, "STATE_DIR") || !strstr(err, needle))
        fail_msg("error \"%s\" should name STATE_DIR and %s", err, needle);
}

static void test_open_errors(void **state)
{
    s_env_t *env = *state;
    char path[200];

    snprintf(path, sizeof path, "%s/a-file", env->dir);
    s_make_file(path, 10);
    s_expect_open_error(path, path); /* STATE_DIR is a regular file */
    assert_int_equal(s_size(path), 10);

    snprintf(path, sizeof path, "%s/missing/state", env->dir);
    s_expect_open_error(path, path); /* its parent is missing */

    assert_int_equal(mkdir(env->state, 0755), 0);
    assert_int_equal(mkdir(env->jpath, 0755), 0);
    s_expect_open_error(env->state, env->jpath); /* the journal is a directory */
}

int main(void)
{
    log_threshold = LOG_LVL_ERROR; /* replay warnings are expected */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_dir_created, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_file_modes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_record_layout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_intents_applied_on_reopen, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_empty_intent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_parse_from_memory, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cut_back_only_captures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_last_intent_checked_against_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_intent_before_rotation_counts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_file_removed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stdout_last_intent_counts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_undo_drops_last_intent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failed_append_cut_off, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_ignored, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_end_marks_ended, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_take_twice, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_compact_live_and_restored, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_compact_drops_taken, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_compact_keeps_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_wants_compaction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
