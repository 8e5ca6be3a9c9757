/*
 * fuzz_resume — libFuzzer target for the capture agent's progress file
 * reader (services/capture/resume.c, resume_open on STATE_DIR/<node>.resume).
 *
 * The first byte of the input chooses what the rest is:
 *   even: the whole file, as it is (headers, damage, other files);
 *   odd:  records after a header this build writes (resume_start with the
 *         epoch in the next 8 bytes), each 24 bytes of the input followed
 *         by its CRC, so that the fuzzer reaches the records' meaning
 *         (the header's CRC, the input's identity and the boot id would
 *         stop it at the door).
 * Properties: resume_open gives a state or an error that names the file;
 * a state to continue has an epoch, a plan whose first batch is recorded
 * and not released (or none left), and every batch of the plan recorded
 * with a count; the plan comes back the same after the file is rewritten
 * (resume_open rewrites it) and read again; released batches then slide
 * the plan forward to its end.
 * A broken property calls abort(), so the fuzzer and replay.c both see it.
 * The file lives in a directory of its own under /tmp, removed at exit.
 */
#include "crc32.h"
#include "resume.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_RECORD 28
/* batches of a plan looked at one by one, at most */
#define S_LOOK_MAX 4096

static char s_dir[64];
static char s_path[128], s_tmp[140];
static struct stat s_input; /* READ_FILE's identity: made up, fixed */
static const resume_key_t s_key = {
    .path = "/fuzz/input.pcap", .filter = "tcp", .batch_bytes = 65536, .input = &s_input};

static void s_cleanup(void)
{
    unlink(s_path);
    unlink(s_tmp);
    rmdir(s_dir);
}

static void s_init(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/fuzz_resume.XXXXXX");
    if (!mkdtemp(s_dir))
        abort();
    snprintf(s_path, sizeof s_path, "%s/fuzz.resume", s_dir);
    snprintf(s_tmp, sizeof s_tmp, "%s.tmp", s_path);
    s_input.st_dev = 1;
    s_input.st_ino = 2;
    s_input.st_size = 3;
    s_input.st_mtim.tv_sec = 4;
    atexit(s_cleanup);
}

static resume_t *s_open(char *why, size_t whylen)
{
    char err[8192] = "";
    resume_t *r = resume_open(s_dir, "fuzz", &s_key, why, whylen, err, sizeof err);
    if (!r && !strstr(err, s_path))
        abort(); /* an error names the file */
    return r;
}

static void s_spill(const uint8_t *data, size_t size, int flags)
{
    int fd = open(s_path, O_WRONLY | O_CREAT | flags, 0600);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
}

typedef struct {
    resume_mode_t mode;
    uint64_t epoch, first, first_packet, next, dead_low, done;
} s_plan_t;

static s_plan_t s_plan(const resume_t *r)
{
    s_plan_t p = {.mode = resume_mode(r),
                  .epoch = resume_epoch(r),
                  .first = resume_first_seq(r),
                  .first_packet = resume_first_packet(r),
                  .next = resume_next_seq(r),
                  .dead_low = resume_dead_low(r),
                  .done = resume_done_packets(r)};
    return p;
}

/* The plan of a state to continue holds together. */
static void s_check(const resume_t *r, const s_plan_t *p)
{
    if (p->epoch == 0 || p->first > p->next)
        abort();
    uint32_t count;
    bool released;
    if (p->first < p->next) {
        if (!resume_batch_of(r, p->first, &count, &released) || released)
            abort(); /* the bottom batch is one still to send */
    }
    for (uint64_t s = p->first; s < p->next && s - p->first < S_LOOK_MAX; s++)
        if (!resume_batch_of(r, s, &count, &released) || count == 0)
            abort();
    if (resume_batch_of(r, p->next, &count, &released))
        abort();
    if (p->first > 0 && resume_batch_of(r, p->first - 1, &count, &released))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_dir[0])
        s_init();
    if (size == 0)
        return 0;
    bool built = data[0] & 1;
    data++;
    size--;
    unlink(s_path);
    char why[8192];
    if (!built) {
        s_spill(data, size, O_TRUNC);
    } else {
        uint64_t epoch = 0;
        for (size_t i = 0; i < 8 && i < size; i++)
            epoch = epoch << 8 | data[i];
        data += size < 8 ? size : 8;
        size -= size < 8 ? size : 8;
        resume_t *w = s_open(why, sizeof why);
        if (!w || resume_mode(w) != RESUME_FRESH || resume_start(w, epoch ? epoch : 1) < 0)
            abort();
        resume_close(&w);
        for (; size >= S_RECORD - 4; data += S_RECORD - 4, size -= S_RECORD - 4) {
            uint8_t rec[S_RECORD];
            memcpy(rec, data, S_RECORD - 4);
            uint32_t crc = crc32_ieee(rec, S_RECORD - 4);
            for (int k = 0; k < 4; k++)
                rec[S_RECORD - 4 + k] = (uint8_t)(crc >> (24 - 8 * k));
            s_spill(rec, sizeof rec, O_APPEND);
        }
    }
    resume_t *r = s_open(why, sizeof why);
    if (!r)
        return 0;
    s_plan_t p = s_plan(r);
    if (p.mode == RESUME_FRESH) {
        resume_close(&r);
        return 0;
    }
    s_check(r, &p);
    resume_close(&r);
    /* resume_open rewrote the file: read again, the same plan */
    r = s_open(why, sizeof why);
    if (!r)
        abort();
    s_plan_t again = s_plan(r);
    if (again.mode != p.mode || again.epoch != p.epoch || again.first != p.first ||
        again.first_packet != p.first_packet || again.next != p.next ||
        again.dead_low != p.dead_low || again.done != p.done)
        abort();
    s_check(r, &again);
    /* releasing the plan's batches in turn slides it to its end */
    if (p.mode == RESUME_CONTINUE && p.next - p.first <= S_LOOK_MAX) {
        for (uint64_t s = p.first; s < p.next; s++)
            if (resume_released(r, s, s % 2 == 0) < 0)
                abort();
        if (resume_first_seq(r) != p.next)
            abort();
    }
    resume_close(&r);
    return 0;
}
