/*
 * retention — the list of output files kept, and the deletion of the
 * oldest past ROTATE_FILES / ROTATE_MAX_GB. Works only at commits and
 * rotations, never per packet: the list is short (the files kept), and a
 * commit that changes nothing costs a comparison.
 */
#include "retention.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_GB_MAX 1048576u

size_t retention_decide(const retention_file_t *files, size_t n, unsigned keep_files,
                        uint64_t max_bytes, retention_reason_t *why)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += files[i].bytes;
        why[i] = RETENTION_KEEP;
    }
    size_t gone = 0;
    for (size_t i = 0; i < n; i++) {
        size_t left = n - i;
        retention_reason_t r = RETENTION_KEEP;
        if (keep_files && left > keep_files)
            r = RETENTION_COUNT;
        else if (max_bytes && total > max_bytes)
            r = RETENTION_SIZE;
        if (r == RETENTION_KEEP || files[i].open || !files[i].acked)
            break;
        why[i] = r;
        total -= files[i].bytes;
        gone++;
    }
    return gone;
}

int retention_parse_gb(const char *text, uint64_t *bytes, char *why, size_t whylen)
{
    uint64_t whole = 0, frac = 0, scale = 1;
    const char *p = text;
    if (!*p || *p == '.') {
        snprintf(why, whylen, "a number of GiB is expected (0, 2, 0.5), not \"%s\"", text);
        return -EINVAL;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > S_GB_MAX) {
            snprintf(why, whylen, "\"%s\" is more than %u GiB", text, S_GB_MAX);
            return -EINVAL;
        }
    }
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) {
            snprintf(why, whylen, "a number of GiB is expected (0, 2, 0.5), not \"%s\"", text);
            return -EINVAL;
        }
        for (int digits = 0; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits == 9) {
                snprintf(why, whylen, "\"%s\": at most 9 digits after the point", text);
                return -EINVAL;
            }
            frac = frac * 10 + (uint64_t)(*p - '0');
            scale *= 10;
        }
    }
    if (*p) {
        snprintf(why, whylen, "a number of GiB is expected (0, 2, 0.5), not \"%s\"", text);
        return -EINVAL;
    }
    if (whole == S_GB_MAX && frac) {
        snprintf(why, whylen, "\"%s\" is more than %u GiB", text, S_GB_MAX);
        return -EINVAL;
    }
    /* frac / scale < 1 and scale <= 1e9: frac << 30 fits in 64 bits */
    *bytes = (whole << 30) + ((frac << 30) / scale);
    if (*bytes == 0 && (whole || frac)) {
        snprintf(why, whylen, "\"%s\" is less than a byte", text);
        return -EINVAL;
    }
    return 0;
}

typedef struct {
    char *path;
    uint64_t bytes;
    uint64_t mark; /* closed at this commit mark (below it: what it holds) */
    bool acked;
} s_file_t;

struct retention_t {
    unsigned keep_files;
    uint64_t max_bytes;
    journal_t *journal;
    metrics_t *metrics;
    s_file_t *files; /* oldest first; the last is being written once `writing` */
    size_t n, cap;
    bool writing;
    retention_file_t *view; /* the decision's input and output, sized with `files` */
    retention_reason_t *why;
    uint64_t total;
    metric_id_t m_count, m_size, m_errors, m_retained;
};

retention_t *retention_new(unsigned keep_files, uint64_t max_bytes, journal_t *journal,
                           metrics_t *metrics)
{
    retention_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->keep_files = keep_files;
    self->max_bytes = max_bytes;
    self->journal = journal;
    self->metrics = metrics;
    const char *help = "Output files deleted by ROTATE_FILES (count) or ROTATE_MAX_GB (size)";
    self->m_count = metrics_counter(metrics, "tapmesh_collect_output_files_deleted_total", help,
                                    "reason=\"count\"");
    self->m_size = metrics_counter(metrics, "tapmesh_collect_output_files_deleted_total", help,
                                   "reason=\"size\"");
    self->m_errors =
        metrics_counter(metrics, "tapmesh_collect_output_delete_errors_total",
                        "Output files retention could not delete (then no longer counted)", NULL);
    self->m_retained =
        metrics_gauge(metrics, "tapmesh_collect_output_retained_bytes",
                      "Bytes in the output files kept, the one being written included", NULL);
    return self;
}

void retention_destroy(retention_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    retention_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++)
        free(self->files[i].path);
    free(self->files);
    free(self->view);
    free(self->why);
    free(self);
    *self_p = NULL;
}

static int s_add(retention_t *self, const char *path, uint64_t bytes, bool acked)
{
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        s_file_t *f = realloc(self->files, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        self->files = f;
        retention_file_t *v = realloc(self->view, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        self->view = v;
        retention_reason_t *w = realloc(self->why, cap * sizeof *w);
        if (!w)
            return -ENOMEM;
        self->why = w;
        self->cap = cap;
    }
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    self->files[self->n++] = (s_file_t){.path = copy, .bytes = bytes, .acked = acked};
    self->total += bytes;
    return 0;
}

static void s_drop(retention_t *self, size_t i)
{
    self->total -= self->files[i].bytes;
    free(self->files[i].path);
    memmove(&self->files[i], &self->files[i + 1], (self->n - i - 1) * sizeof *self->files);
    self->n--;
}

int retention_restore(retention_t *self, const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->files[i].path, path) == 0)
            return 0;
    return s_add(self, path, (uint64_t)st.st_size, true);
}

int retention_begin(retention_t *self, const char *path, uint64_t closed_bytes, uint64_t mark)
{
    if (self->writing) {
        s_file_t *f = &self->files[self->n - 1];
        self->total += closed_bytes - f->bytes;
        f->bytes = closed_bytes;
        f->mark = mark;
        f->acked = false;
        self->writing = false;
        if (closed_bytes == 0) /* never created: nothing to keep */
            s_drop(self, self->n - 1);
    }
    int rc = s_add(self, path, 0, false);
    if (rc == 0)
        self->writing = true;
    return rc;
}

size_t retention_apply(retention_t *self, uint64_t current_bytes, uint64_t unacked_mark)
{
    size_t n = self->n;
    if (self->writing) {
        s_file_t *f = &self->files[n - 1];
        self->total += current_bytes - f->bytes;
        f->bytes = current_bytes;
        if (current_bytes == 0)
            n--; /* not created yet: it does not count */
    }
    bool over = (self->keep_files && n > self->keep_files) ||
                (self->max_bytes && self->total > self->max_bytes);
    size_t gone = 0;
    if (over) {
        for (size_t i = 0; i < n; i++) {
            s_file_t *f = &self->files[i];
            if (!f->acked && f->mark <= unacked_mark && !(self->writing && i == self->n - 1))
                f->acked = true;
            self->view[i] = (retention_file_t){
                .bytes = f->bytes, .open = self->writing && i == self->n - 1, .acked = f->acked};
        }
        gone = retention_decide(self->view, n, self->keep_files, self->max_bytes, self->why);
        uint64_t kept_bytes = self->total;
        for (size_t i = 0; i < gone; i++) {
            const s_file_t *f = &self->files[0];
            kept_bytes -= f->bytes;
            if (unlink(f->path) == 0 || errno == ENOENT) {
                if (self->why[i] == RETENTION_COUNT) {
                    log_info("output: deleted %s (ROTATE_FILES=%u: the %u newest files are kept)",
                             f->path, self->keep_files, self->keep_files);
                    metrics_add(self->metrics, self->m_count, 1);
                } else {
                    log_info("output: deleted %s (ROTATE_MAX_GB: the files kept held more than "
                             "%" PRIu64 " bytes; now %" PRIu64 ")",
                             f->path, self->max_bytes, kept_bytes);
                    metrics_add(self->metrics, self->m_size, 1);
                }
            } else {
                log_warn("output: cannot delete %s (%s): %s; it is no longer counted in the "
                         "retention",
                         f->path,
                         self->why[i] == RETENTION_COUNT ? "ROTATE_FILES" : "ROTATE_MAX_GB",
                         strerror(errno));
                metrics_add(self->metrics, self->m_errors, 1);
            }
            if (self->journal)
                journal_forget(self->journal, f->path);
            s_drop(self, 0);
        }
    }
    metrics_set(self->metrics, self->m_retained, (double)self->total);
    return gone;
}

size_t retention_files(const retention_t *self)
{
    return self->n;
}

uint64_t retention_bytes(const retention_t *self)
{
    return self->total;
}
