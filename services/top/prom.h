/*
 * prom — a reader of the Prometheus text exposition format (0.0.4), as
 * every tapmesh service serves it on GET /metrics:
 *
 *   # HELP name text          (comments: skipped)
 *   name{label="value",...} 1.5 [timestamp]
 *
 * One sample at a time is handed to a callback, in a structure the reader
 * owns and reuses: no allocation. A line it cannot read (a bad name, an
 * unterminated label, a value that is no number, more than PROM_LABELS_MAX
 * labels, a name or label longer than the limits below, a NUL byte) is
 * counted and skipped, the first one's number and reason kept: a scrape of
 * something that is not a tapmesh service is reported, never trusted. Pure:
 * nothing is read outside [text, text + len).
 */
#ifndef TAPMESH_PROM_H
#define TAPMESH_PROM_H

#include <stddef.h>

#define PROM_NAME_MAX 128         /* a metric or label name, with its NUL */
#define PROM_VALUE_MAX 256        /* a label value, unescaped, with its NUL */
#define PROM_LABELS_MAX 8         /* labels on one sample */
#define PROM_LINE_MAX (64 * 1024) /* a longer line is a bad line */

typedef struct {
    char name[PROM_NAME_MAX];
    char value[PROM_VALUE_MAX];
} prom_label_t;

typedef struct {
    char name[PROM_NAME_MAX];
    size_t nlabels;
    prom_label_t labels[PROM_LABELS_MAX];
    double value; /* NaN, +Inf and -Inf as the format writes them */
} prom_sample_t;

/* Called once per sample read; `s` is valid only during the call. */
typedef void (*prom_sample_fn)(void *arg, const prom_sample_t *s);

typedef struct {
    size_t samples;   /* samples handed to the callback */
    size_t bad_lines; /* lines skipped as unreadable */
    size_t first_bad; /* the first of them, from 1; 0: none */
    char why[96];     /* why the first one was skipped */
} prom_result_t;

/* Reads `len` bytes of exposition text (a last line without its newline
 * counts) and calls `fn` for each sample. Fills `res`. */
void prom_parse(const char *text, size_t len, prom_sample_fn fn, void *arg, prom_result_t *res);

/* The value of the label `name` of `s`, or NULL when it has none. */
const char *prom_label(const prom_sample_t *s, const char *name);

#endif
