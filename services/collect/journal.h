/*
 * journal — the collector's delivery state on disk (STATE_DIR), kept in
 * step with the output so that a collector killed at any moment (SIGKILL)
 * and started again writes no packet twice and loses none.
 *
 * Before each flush of the output, the collector appends an INTENT record:
 * "the bytes [offset, offset + length) of file F will hold these batches
 * (source, epoch, seq, part) up to these packet counts". Then it writes the
 * output, then it acknowledges. On start-up the journal is replayed; the
 * last intent counts only if the file really holds its bytes (a crash
 * between the record and the write leaves it short: the file is cut back
 * to where the intent began). Every earlier intent was followed by its
 * write, because the next intent is only written after the flush succeeded.
 *
 * Records: u32 length, u32 CRC-32 of the rest, u8 type, body; integers
 * big-endian. A torn last record (the process died while appending) is
 * dropped. An append that fails part-way (STATE_DIR full) is cut off at
 * once, so that no record ever follows a torn one; the intent it was is
 * then not written, and the caller must not flush what it announced. The journal is rewritten
 * compactly (a FILE record per output file still kept, the current one last, and one STATE record
 * per source) when it grows past a limit, through a rename. The FILE records of earlier files name
 * what this collector wrote, for retention (ROTATE_FILES, ROTATE_MAX_GB) after a restart.
 *
 * What it guards against is the process dying; for power loss the output
 * and the journal would have to be synced, which they are not.
 */
#ifndef TAPMESH_JOURNAL_H
#define TAPMESH_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seqset.h"
#include "wire.h"

typedef struct journal_t journal_t;

/* One batch in an intent: `written` packets of it are in the output after
 * this flush; `complete` when that is all of them. */
typedef struct {
    const char *source;
    uint64_t epoch;
    uint64_t seq;
    uint16_t part;
    uint32_t written;
    bool complete;
} journal_entry_t;

/* A batch partly written before a restart: skip `written` packets of it. */
typedef struct {
    uint64_t seq;
    uint16_t part;
    uint32_t written;
} journal_partial_t;

/* The state of one (source, epoch), restored or to be saved. Restored:
 * `complete` holds the batches wholly in the output, `partials` those begun.
 * To be saved, `complete` may also hold batches that are not (yet) written
 * as long as each of them is listed in `partials` (with written = 0 when
 * none of it is): a partial is taken out of the complete set on restore. */
typedef struct {
    char source[WIRE_NAME_MAX + 1];
    uint64_t epoch;
    bool ended; /* the source said END: it will not come back */
    seqset_t complete;
    journal_partial_t *partials;
    size_t npartials;
} journal_state_t;

/* Opens (creating) STATE_DIR/journal, replays it, checks the last intent
 * against its output file (cutting a torn tail off that file; removing the
 * file when what is left holds no interface block, so that no reader could
 * open it), and rewrites the journal compactly. STATE_DIR is made 0750
 * when missing and the journal is 0600 (the umask applied). Returns NULL
 * with `err` naming STATE_DIR or the file. */
journal_t *journal_open(const char *dir, char *err, size_t errlen);
void journal_close(journal_t **self_p);

/* Replays `len` bytes of a journal as journal_open replays STATE_DIR/
 * journal, into a journal that touches no file: the output files the
 * records name are neither looked at nor cut (the last intent counts as
 * written), and appends and compaction fail (-EBADF). For tests and for
 * fuzzing the reader: STATE_DIR is input too. NULL when out of memory. */
journal_t *journal_parse(const uint8_t *data, size_t len);

/* Hands over the restored state of (source, epoch), or NULL when there is
 * none. The caller owns it (journal_state_free). */
journal_state_t *journal_take(journal_t *self, const char *source, uint64_t epoch);
void journal_state_free(journal_state_t **state_p);

/* Hands over any restored state not taken yet, or NULL when none is left
 * (tests, fuzzing). The caller owns it (journal_state_free). */
journal_state_t *journal_take_next(journal_t *self);

/* Restored states not taken yet (tests, messages). */
size_t journal_restored(const journal_t *self);

/* Restored states not taken yet of sources that had not ended: sources
 * expected back, which the merge should wait for. */
size_t journal_expected(const journal_t *self);

/* Records that (source, epoch) sent END. */
int journal_end(journal_t *self, const char *source, uint64_t epoch);

/* Records that the output now writes to `path`, from offset 0. */
int journal_file(journal_t *self, const char *path);

/* The output files the journal names, oldest first: those of earlier runs
 * that still exist as regular files (checked by journal_open), then every
 * file journal_file named since, the file being written last. Files taken
 * out by journal_forget are not among them. `i` < journal_files(). */
size_t journal_files(const journal_t *self);
const char *journal_file_at(const journal_t *self, size_t i);

/* Takes `path` out of the files the journal names (it was deleted): the
 * next compaction leaves it out. Nothing is appended: a replay before then
 * still names it, and journal_open drops it, since it no longer exists. */
void journal_forget(journal_t *self, const char *path);

/* Records an intent (see above). Returns 0 or a negative errno. */
int journal_intent(journal_t *self, uint64_t offset, uint64_t length,
                   const journal_entry_t *entries, size_t n);

/* Records that the flush of the last intent failed and what it wrote was
 * cut off the output: on replay none of it counts (and its file is cut back
 * to where the intent began, should the cut have failed). Without it the
 * replay judges by the file's size, which standard output does not have. */
int journal_undo(journal_t *self);

/* True when the journal has grown enough since its last rewrite to be
 * rewritten again. */
bool journal_wants_compaction(const journal_t *self);

/* Whether the journal names the earlier files at all (true when opened):
 * false forgets them and names none but the current one from then on, so
 * that a collector without retention does not carry every file it ever
 * wrote through each compaction. */
void journal_keep_files(journal_t *self, bool keep);

/* Rewrites the journal as: the files it names (journal_files), the
 * current file `path` last, then `states` (the caller's
 * live states), then the restored states not taken yet. Call right after a
 * flush, when every intent is applied. */
int journal_compact(journal_t *self, const char *path, const journal_state_t *const *states,
                    size_t n);

/* The last error, naming the file. */
const char *journal_error(const journal_t *self);

#endif
