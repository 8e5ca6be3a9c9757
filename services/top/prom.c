/*
 * prom — the Prometheus text format, read line by line (prom.h).
 */
#include "prom.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A position in one line and its end: every read checks `p < end`. */
typedef struct {
    const char *p, *end;
    const char *why; /* set by the step that failed */
} s_cursor_t;

static bool s_name_start(char c, bool metric)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':');
}

static bool s_name_char(char c, bool metric)
{
    return s_name_start(c, metric) || (c >= '0' && c <= '9');
}

static void s_blanks(s_cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static bool s_name(s_cursor_t *c, char *out, bool metric)
{
    size_t n = 0;
    if (c->p >= c->end || !s_name_start(*c->p, metric)) {
        c->why = metric ? "no metric name" : "no label name";
        return false;
    }
    while (c->p < c->end && s_name_char(*c->p, metric)) {
        if (n + 1 >= PROM_NAME_MAX) {
            c->why = "name too long";
            return false;
        }
        out[n++] = *c->p++;
    }
    out[n] = '\0';
    return true;
}

/* "value" with \\, \" and \n escapes, unescaped into `out`. */
static bool s_label_value(s_cursor_t *c, char *out)
{
    size_t n = 0;
    if (c->p >= c->end || *c->p != '"') {
        c->why = "label value without quotes";
        return false;
    }
    c->p++;
    for (;;) {
        if (c->p >= c->end) {
            c->why = "label value not terminated";
            return false;
        }
        char ch = *c->p++;
        if (ch == '"')
            break;
        if (ch == '\\') {
            if (c->p >= c->end) {
                c->why = "label value not terminated";
                return false;
            }
            char e = *c->p++;
            ch = e == 'n' ? '\n' : e;
            if (e != 'n' && e != '\\' && e != '"') {
                c->why = "unknown escape in a label value";
                return false;
            }
        }
        if (n + 1 >= PROM_VALUE_MAX) {
            c->why = "label value too long";
            return false;
        }
        out[n++] = ch;
    }
    out[n] = '\0';
    return true;
}

static bool s_labels(s_cursor_t *c, prom_sample_t *s)
{
    c->p++; /* '{' */
    for (;;) {
        s_blanks(c);
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            return true;
        }
        if (s->nlabels == PROM_LABELS_MAX) {
            c->why = "too many labels";
            return false;
        }
        prom_label_t *l = &s->labels[s->nlabels];
        if (!s_name(c, l->name, false))
            return false;
        s_blanks(c);
        if (c->p >= c->end || *c->p != '=') {
            c->why = "label without '='";
            return false;
        }
        c->p++;
        s_blanks(c);
        if (!s_label_value(c, l->value))
            return false;
        s->nlabels++;
        s_blanks(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            return true;
        }
        c->why = "labels not terminated";
        return false;
    }
}

/* One blank-delimited token into `out` (at most outlen - 1 bytes). */
static bool s_token(s_cursor_t *c, char *out, size_t outlen)
{
    size_t n = 0;
    while (c->p < c->end && *c->p != ' ' && *c->p != '\t') {
        if (n + 1 >= outlen)
            return false;
        out[n++] = *c->p++;
    }
    out[n] = '\0';
    return n > 0;
}

static bool s_value(s_cursor_t *c, double *value)
{
    char tok[64];
    if (!s_token(c, tok, sizeof tok)) {
        c->why = "no value";
        return false;
    }
    char *end;
    double v = strtod(tok, &end);
    if (end == tok || *end != '\0') {
        c->why = "value is no number";
        return false;
    }
    *value = v;
    return true;
}

static bool s_timestamp(s_cursor_t *c)
{
    char tok[32];
    if (!s_token(c, tok, sizeof tok)) {
        c->why = "timestamp is no integer";
        return false;
    }
    const char *t = tok[0] == '-' ? tok + 1 : tok;
    if (!*t || strspn(t, "0123456789") != strlen(t)) {
        c->why = "timestamp is no integer";
        return false;
    }
    return true;
}

/* A line that is neither blank nor a comment: one sample. */
static bool s_sample(s_cursor_t *c, prom_sample_t *s)
{
    s->nlabels = 0;
    if (!s_name(c, s->name, true))
        return false;
    const char *before = c->p;
    s_blanks(c);
    if (c->p < c->end && *c->p == '{') {
        if (!s_labels(c, s))
            return false;
        before = c->p;
        s_blanks(c);
    }
    if (c->p == before && c->p < c->end) {
        c->why = "no blank before the value";
        return false;
    }
    if (!s_value(c, &s->value))
        return false;
    s_blanks(c);
    if (c->p < c->end && !s_timestamp(c))
        return false;
    s_blanks(c);
    if (c->p < c->end) {
        c->why = "text after the value";
        return false;
    }
    return true;
}

void prom_parse(const char *text, size_t len, prom_sample_fn fn, void *arg, prom_result_t *res)
{
    memset(res, 0, sizeof *res);
    prom_sample_t s;
    const char *p = text, *end = text + len;
    size_t lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        lineno++;
        s_cursor_t c = {.p = p, .end = eol, .why = NULL};
        if (eol > p && eol[-1] == '\r')
            c.end--;
        p = nl ? nl + 1 : end;
        if ((size_t)(c.end - c.p) > PROM_LINE_MAX)
            c.why = "line too long";
        else if (memchr(c.p, '\0', (size_t)(c.end - c.p)))
            c.why = "NUL byte";
        if (!c.why) {
            s_blanks(&c);
            if (c.p == c.end || *c.p == '#')
                continue;
            if (s_sample(&c, &s)) {
                res->samples++;
                fn(arg, &s);
                continue;
            }
        }
        if (res->bad_lines++ == 0) {
            res->first_bad = lineno;
            snprintf(res->why, sizeof res->why, "%s", c.why ? c.why : "unreadable");
        }
    }
}

const char *prom_label(const prom_sample_t *s, const char *name)
{
    for (size_t i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    return NULL;
}
