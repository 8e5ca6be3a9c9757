/*
 * fuzz_journal — libFuzzer target for the collector's journal reader
 * (services/collect/journal.c): STATE_DIR is input too, whoever can write
 * there decides what a restarted collector believes it has written.
 *
 * The input is a whole journal file, replayed with journal_parse (which
 * touches no file: the output files it names are not looked at). Then
 * every restored state is taken. Properties: as many states are handed
 * over as journal_restored said, one per (source, epoch); journal_expected
 * is at most that; names fit the wire's length; every complete set is
 * sorted disjoint ranges [lo, hi) within its capacity; a partial's written
 * count is not 0; the output files it names (journal_files) are distinct,
 * none empty or "-", and each goes once forgotten; a journal made of memory
 * refuses to write.
 * A broken property calls abort(), so the fuzzer and replay.c both see it.
 */
#include "journal.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_state(journal_t *j, const journal_state_t *st)
{
    if (strnlen(st->source, sizeof st->source) > WIRE_NAME_MAX)
        abort();
    const seqset_t *c = &st->complete;
    if (c->n > c->cap || (c->max && c->n > c->max))
        abort();
    for (size_t i = 0; i < c->n; i++) {
        if (c->r[i].lo >= c->r[i].hi)
            abort();
        if (i && c->r[i - 1].hi >= c->r[i].lo)
            abort(); /* sorted, apart: touching ranges are one */
    }
    for (size_t i = 0; i < st->npartials; i++)
        if (st->partials[i].written == 0)
            abort();
    /* one state per (source, epoch): the one just taken was the only one */
    if (journal_take(j, st->source, st->epoch))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_init("fuzz_journal", LOG_LVL_ERROR);
        quiet = 1;
    }
    journal_t *j = journal_parse(data, size);
    if (!j)
        return 0; /* out of memory */
    size_t nfiles = journal_files(j);
    for (size_t i = 0; i < nfiles; i++) {
        const char *f = journal_file_at(j, i);
        if (!f || !f[0] || strcmp(f, "-") == 0 || strlen(f) >= 4096)
            abort();
        for (size_t k = 0; k < i; k++)
            if (strcmp(journal_file_at(j, k), f) == 0)
                abort();
    }
    if (journal_file_at(j, nfiles))
        abort();
    if (nfiles) {
        char first[4096];
        snprintf(first, sizeof first, "%s", journal_file_at(j, 0));
        journal_forget(j, first);
        if (journal_files(j) != nfiles - 1)
            abort();
        for (size_t i = 0; i < journal_files(j); i++)
            if (strcmp(journal_file_at(j, i), first) == 0)
                abort();
    }
    size_t restored = journal_restored(j);
    if (journal_expected(j) > restored)
        abort();
    size_t taken = 0;
    journal_state_t *st;
    while ((st = journal_take_next(j))) {
        s_check_state(j, st);
        journal_state_free(&st);
        if (++taken > restored)
            abort();
    }
    if (taken != restored || journal_restored(j) != 0 || journal_expected(j) != 0)
        abort();
    /* nothing is written anywhere */
    if (journal_end(j, "edge", 1) >= 0 || journal_compact(j, "/nowhere", NULL, 0) >= 0)
        abort();
    journal_close(&j);
    return 0;
}
