/*
 * cfg — the settings table: environment (TAPMESH_NAME, else NAME), then
 * flags, then one validation pass, then a look at the rest of the
 * environment for mistyped names. Values are kept as text plus, for numbers
 * and enums, the parsed integer; nothing changes after cfg_load returns.
 */
#include "cfg.h"

#include "wire.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TAPMESH_VERSION
#define TAPMESH_VERSION "0.0.0"
#endif

extern char **environ;

/* The prefix that marks a variable as tapmesh's beyond doubt. */
#define S_PREFIX "TAPMESH_"
#define S_PREFIX_LEN (sizeof S_PREFIX - 1)

/* A value shown in a message is cut after this many bytes (escapes
 * included), so that the reason after it still fits the caller's line. */
#define S_SHOW_MAX 400

/* Names longer than this are never near a setting (none is half as long,
 * TAPMESH_ included). */
#define S_NEAR_NAME_MAX 96

struct cfg_t {
    const cfg_row_t *rows;
    size_t nrows;
    char **text;     /* value per row, NULL when unset */
    int64_t *value;  /* parsed CFG_INT / CFG_BOOL / CFG_ENUM */
    char **warnings; /* about the environment, for the caller to log */
    size_t nwarnings;
};

/* Where a row's value came from: names the subject of an error. */
typedef enum { S_FROM_DEFAULT = 0, S_FROM_ENV, S_FROM_PREFIXED, S_FROM_FLAG } s_from_t;

/* BATCH_MAX_BYTES -> batch-max-bytes (without the leading dashes) */
static void s_flag_name(const char *env, char *flag, size_t len)
{
    size_t i = 0;
    for (; env[i] && i + 1 < len; i++)
        flag[i] = env[i] == '_' ? '-' : (char)tolower((unsigned char)env[i]);
    flag[i] = '\0';
}

static const char *s_type_hint(const cfg_row_t *row)
{
    switch (row->type) {
    case CFG_INT:
        return "N";
    case CFG_BOOL:
        return "BOOL";
    case CFG_ENUM:
        return row->choices;
    case CFG_NAME:
        return "NAME";
    case CFG_ENDPOINT:
        return "ENDPOINT";
    case CFG_ENDPOINTS:
        return "ENDPOINT[,ENDPOINT...]";
    case CFG_ADDRPORT:
        return "HOST:PORT";
    case CFG_FILE:
    case CFG_DIR:
    case CFG_PATH:
        return "PATH";
    case CFG_STR:
    case CFG_TEXT:
        break;
    }
    return "TEXT";
}

static const char *s_utf8(const unsigned char *p, uint32_t *cp, size_t *len);

/* --help's text is wrapped to this many columns. */
#define S_HELP_WIDTH 80

/* Writes `text` without its backquotes, its words wrapped at S_HELP_WIDTH
 * columns, every line `indent` spaces in; ends with a newline. */
static void s_wrap(FILE *out, const char *text, int indent)
{
    int col = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (!*p)
            break;
        const char *w = p;
        int width = 0;
        for (; *p && *p != ' ' && *p != '\n'; p++)
            if (*p != '`' && ((unsigned char)*p & 0xc0) != 0x80)
                width++; /* a character, not a byte: UTF-8 continuations do not count */
        if (col > 0 && col + 1 + width > S_HELP_WIDTH) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0)
            col = fprintf(out, "%*s", indent, "");
        else
            col += fprintf(out, " ");
        for (const char *q = w; q < p; q++)
            if (*q != '`')
                fputc(*q, out);
        col += width;
    }
    if (col > 0)
        fputc('\n', out);
}

/* Writes `text` without its backquotes, as it is otherwise. */
static void s_plain(FILE *out, const char *text)
{
    for (; *text; text++)
        if (*text != '`')
            fputc(*text, out);
}

void cfg_help(FILE *out, const char *program, const char *summary, const cfg_row_t *rows,
              size_t nrows)
{
    fprintf(out, "Usage: %s [--setting VALUE]...\n", program);
    s_plain(out, summary);
    fprintf(out, "\n\n");
    fprintf(out, "Every setting is read from its environment variable NAME, or from\n"
                 "TAPMESH_NAME, which wins over NAME; the flag of the same name overrides\n"
                 "both. Variables that look like a mistyped setting (DEVCE) and TAPMESH_*\n"
                 "variables that are no setting are logged as warnings.\n\n");
    for (size_t i = 0; i < nrows; i++) {
        const cfg_row_t *r = &rows[i];
        char flag[64];
        s_flag_name(r->env, flag, sizeof flag);
        fprintf(out, "  %s, --%s %s\n", r->env, flag, s_type_hint(r));
        s_wrap(out, r->help, 6);
        if (r->def && *r->def)
            fprintf(out, "      default: %s", r->def);
        else if (r->required)
            fprintf(out, "      required");
        else
            fprintf(out, "      default: unset");
        if (r->type == CFG_INT)
            fprintf(out, "; range %" PRId64 "..%" PRId64, r->min, r->max);
        fprintf(out, "\n");
    }
    fprintf(out, "\n  --help      this text\n  --version   print the version\n"
                 "  --man       print the manual page (man -l FILE reads it)\n"
                 "  --markdown  print the settings as a Markdown table (--markdown-shared:\n"
                 "              those every program of the family has)\n");
}

/* ---- the manual page and the README's table ------------------------------ */

/* How a piece of text is written as roff. */
typedef enum {
    S_ROFF_PROSE,    /* filled: a newline is a space; `literal` in bold */
    S_ROFF_VERBATIM, /* lines kept (inside .nf); backquotes are text */
    S_ROFF_PLAIN,    /* filled, backquotes dropped (a term already in bold) */
} s_roff_mode_t;

/* Writes one character (or UTF-8 sequence) at `p` as roff; returns how many
 * bytes it took. Backslashes and hyphens escaped, and any character beyond
 * ASCII as its glyph name, so that groff needs no input encoding. */
static size_t s_roff_char(FILE *out, const char *p)
{
    uint32_t cp;
    size_t len;
    if (s_utf8((const unsigned char *)p, &cp, &len)) {
        fputc('?', out); /* our own text: not expected */
        return 1;
    }
    if (cp == '\\')
        fputs("\\e", out);
    else if (cp == '-')
        fputs("\\-", out);
    else if (cp >= 0x80)
        fprintf(out, "\\[u%04" PRIX32 "]", cp);
    else
        fputc((int)cp, out);
    return len;
}

/* Writes `text` as roff text, from the start of a line or within one, with
 * no newline at the end. Prose: paragraphs (a blank line between them) are separated by
 * `para` (.PP at the top level, .IP inside a list entry). A line never
 * starts with a control character (. or ') that groff would take for a
 * request. */
static void s_roff(FILE *out, const char *text, s_roff_mode_t mode, const char *para)
{
    bool bol = true, bold = false;
    const char *p = text;
    if (mode != S_ROFF_VERBATIM)
        while (*p == ' ' || *p == '\n')
            p++;
    while (*p) {
        if (mode != S_ROFF_VERBATIM && *p == '\n') {
            const char *q = p;
            while (*q == '\n' || *q == ' ')
                q++;
            bool blank = memchr(p + 1, '\n', (size_t)(q - p - 1)) != NULL;
            if (!*q)
                break;
            if (blank) {
                if (bold) {
                    fputs("\\fR", out);
                    bold = false;
                }
                fprintf(out, "\n%s\n", para);
                bol = true;
            } else {
                fputc(' ', out);
            }
            p = q;
            continue;
        }
        if (mode == S_ROFF_VERBATIM && *p == '\n') {
            fputc('\n', out);
            bol = true;
            p++;
            continue;
        }
        if (mode != S_ROFF_VERBATIM && *p == '`') {
            if (mode == S_ROFF_PROSE) {
                fputs(bold ? "\\fR" : "\\fB", out);
                bold = !bold;
            }
            p++;
            continue;
        }
        if (bol && (*p == '.' || *p == '\''))
            fputs("\\&", out);
        bol = false;
        p += s_roff_char(out, p);
    }
    if (bold)
        fputs("\\fR", out);
}

/* A list of entries, each a .TP with its term in bold. */
static void s_roff_items(FILE *out, const char *heading, const cfg_item_t *items)
{
    if (!items || !items->term)
        return;
    fprintf(out, ".SH %s\n", heading);
    for (const cfg_item_t *it = items; it->term; it++) {
        fputs(".TP\n\\fB", out);
        s_roff(out, it->term, S_ROFF_PLAIN, ".IP");
        fputs("\\fR\n", out);
        s_roff(out, it->text, S_ROFF_PROSE, ".IP");
        fputc('\n', out);
    }
}

/* A flag's .TP entry under OPTIONS: "--name ARG" and what it does. */
static void s_roff_flag(FILE *out, const char *flag, const char *arg, const char *text)
{
    fputs(".TP\n\\fB", out);
    s_roff(out, flag, S_ROFF_PLAIN, ".IP");
    fputs("\\fR", out);
    if (arg) {
        fputs(" \\fI", out);
        s_roff(out, arg, S_ROFF_PLAIN, ".IP");
        fputs("\\fR", out);
    }
    fputc('\n', out);
    s_roff(out, text, S_ROFF_PROSE, ".IP");
    fputc('\n', out);
}

/* What a row's values look like, in words. */
static void s_type_words(FILE *out, const cfg_row_t *r)
{
    switch (r->type) {
    case CFG_INT: {
        char range[64]; /* a minus sign is \- in roff, not a hyphen */
        snprintf(range, sizeof range, "integer from %" PRId64 " to %" PRId64, r->min, r->max);
        for (const char *c = range; *c;)
            c += s_roff_char(out, c);
        return;
    }
    case CFG_BOOL:
        fputs("boolean: true or false (also yes/no, on/off, 1/0)", out);
        return;
    case CFG_ENUM:
        fputs("one of ", out);
        for (const char *c = r->choices; *c; c++) {
            if (*c == '|')
                fputs(", ", out);
            else
                s_roff_char(out, c);
        }
        return;
    case CFG_NAME:
        fputs("a name of 1 to 64 letters, digits, dots, underscores and hyphens", out);
        return;
    case CFG_ENDPOINT:
        fputs("ZeroMQ endpoint: tcp://HOST:PORT, ipc://PATH or inproc://NAME", out);
        return;
    case CFG_ENDPOINTS:
        fputs("ZeroMQ endpoints, comma\\-separated", out);
        return;
    case CFG_ADDRPORT:
        fputs("HOST:PORT, :PORT or [V6]:PORT; empty turns it off", out);
        return;
    case CFG_FILE:
        fputs("a readable file, or \\- for standard input", out);
        return;
    case CFG_DIR:
        fputs("an existing writable directory", out);
        return;
    case CFG_PATH:
        fputs("a path", out);
        return;
    case CFG_TEXT:
        fprintf(out, "text: at most %d bytes of UTF\\-8 without control characters", WIRE_TEXT_MAX);
        return;
    case CFG_STR:
        break;
    }
    fputs("text", out);
}

/* The first sentence of `text`, without its full stop: a NAME line for a
 * page that gives no purpose. */
static void s_first_sentence(FILE *out, const char *text)
{
    const char *end = text;
    while (*end && !(end[0] == '.' && (end[1] == ' ' || end[1] == '\n' || !end[1])))
        end++;
    char *copy = strndup(text, (size_t)(end - text));
    if (copy) {
        for (char *c = copy; *c; c++)
            if (*c == '\n')
                *c = ' ';
        s_roff(out, copy, S_ROFF_PLAIN, ".PP");
        free(copy);
    }
}

/* "tapmesh-relay(8), tcpdump(8)" as .BR lines. */
static void s_roff_see_also(FILE *out, const char *list)
{
    fputs(".SH SEE ALSO\n", out);
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *paren = memchr(p, '(', (size_t)(end - p));
        const char *name_end = paren ? paren : end;
        fputs(".BR ", out);
        for (const char *c = p; c < name_end;)
            c += s_roff_char(out, c);
        fprintf(out, " \"%.*s%s\"\n", (int)(end - name_end), name_end, comma ? "," : "");
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
}

void cfg_man(FILE *out, const cfg_page_t *page, const cfg_row_t *rows, size_t nrows)
{
    int section = page->section > 0 ? page->section : 1;
    fprintf(out,
            ".\\\" %s(%d): made by `%s --man` from its table of settings and its page\n"
            ".\\\" (cfg_page_t); change those, not this file.\n",
            page->program, section, page->program);
    fputs(".TH \"", out);
    for (const char *c = page->program; *c; c++) {
        char up[2] = {(char)toupper((unsigned char)*c), '\0'};
        s_roff_char(out, up);
    }
    fprintf(out, "\" %d \"\" \"tapmesh %s\" \"tapmesh manual\"\n", section, TAPMESH_VERSION);
    fputs(".ad l\n.nh\n.SH NAME\n", out);
    for (const char *c = page->program; *c;)
        c += s_roff_char(out, c);
    fputs(" \\- ", out);
    if (page->purpose)
        s_roff(out, page->purpose, S_ROFF_PLAIN, ".PP");
    else
        s_first_sentence(out, page->summary ? page->summary : "");
    fputc('\n', out);

    fputs(".SH SYNOPSIS\n.B ", out);
    for (const char *c = page->program; *c;)
        c += s_roff_char(out, c);
    fputc('\n', out);
    s_roff(out, page->synopsis ? page->synopsis : "[--setting VALUE]...", S_ROFF_PLAIN, ".PP");
    fputc('\n', out);

    fputs(".SH DESCRIPTION\n", out);
    if (page->summary) {
        s_roff(out, page->summary, S_ROFF_PROSE, ".PP");
        fputc('\n', out);
    }
    if (page->description) {
        fputs(".PP\n", out);
        s_roff(out, page->description, S_ROFF_PROSE, ".PP");
        fputc('\n', out);
    }

    fputs(".SH OPTIONS\n", out);
    if (nrows > 0)
        s_roff_flag(out, "--setting", "VALUE",
                    "Every setting under ENVIRONMENT is also a flag: its name in lower case "
                    "with - for _ (`BATCH_MAX_BYTES`: `--batch-max-bytes`), as `--name VALUE` "
                    "or `--name=VALUE`. A flag overrides the environment. A boolean flag "
                    "without a value means true.");
    for (const cfg_item_t *it = page->options; it && it->term; it++) {
        const char *space = strchr(it->term, ' ');
        char *flag = space ? strndup(it->term, (size_t)(space - it->term)) : NULL;
        s_roff_flag(out, flag ? flag : it->term, flag ? space + 1 : NULL, it->text);
        free(flag);
    }
    s_roff_flag(out, "--help", NULL,
                nrows > 0 ? "Print the usage and every setting, and exit."
                          : "Print the usage, and exit.");
    s_roff_flag(out, "--version", NULL, "Print the version, and exit.");
    s_roff_flag(out, "--man", NULL, "Print this manual page, and exit.");
    if (nrows > 0) {
        s_roff_flag(out, "--markdown", NULL,
                    "Print the settings of this program as a Markdown table, as in the "
                    "README, and exit.");
        if (page->nshared > 0)
            s_roff_flag(out, "--markdown-shared", NULL,
                        "The same for the settings every tapmesh service has.");
    }

    if (nrows > 0) {
        fputs(".SH ENVIRONMENT\n", out);
        s_roff(out,
               "Every setting is read from its environment variable `NAME`, or from "
               "`TAPMESH_NAME`, which wins over `NAME` even when set empty; the flag of the "
               "same name overrides both. A bad value stops start-up with one line on standard "
               "error naming the variable and the value. At start-up, a variable within two "
               "edits of a setting's name (one for names of 4 or 5 characters) and a "
               "`TAPMESH_*` variable that is no setting are logged as warnings.",
               S_ROFF_PROSE, ".PP");
        fputc('\n', out);
    }
    for (size_t i = 0; i < nrows; i++) {
        const cfg_row_t *r = &rows[i];
        char flag[64];
        s_flag_name(r->env, flag, sizeof flag);
        fputs(".TP\n\\fB", out);
        s_roff(out, r->env, S_ROFF_PLAIN, ".IP");
        fputs("\\fR, \\fB\\-\\-", out);
        s_roff(out, flag, S_ROFF_PLAIN, ".IP");
        fputs("\\fR \\fI", out);
        s_roff(out, s_type_hint(r), S_ROFF_PLAIN, ".IP");
        fputs("\\fR\n", out);
        s_roff(out, r->help, S_ROFF_PROSE, ".IP");
        fputs("\n.br\n", out);
        if (r->def && *r->def) {
            fputs("Default: \\fB", out);
            for (const char *c = r->def; *c;)
                c += s_roff_char(out, c);
            fputs("\\fR.\n", out);
        } else {
            fputs(r->required ? "Required.\n" : "Default: unset.\n", out);
        }
        fputs(".br\nType: ", out);
        s_type_words(out, r);
        fputs(".\n", out);
    }

    s_roff_items(out, "EXIT STATUS", page->exit_status);
    s_roff_items(out, "SIGNALS", page->signals);
    s_roff_items(out, "FILES", page->files);
    if (page->examples && page->examples->term) {
        fputs(".SH EXAMPLES\n", out);
        for (const cfg_item_t *it = page->examples; it->term; it++) {
            fputs(".PP\n", out);
            s_roff(out, it->term, S_ROFF_PROSE, ".PP");
            fputs("\n.RS 4\n.nf\n", out);
            s_roff(out, it->text, S_ROFF_VERBATIM, "");
            fputs("\n.fi\n.RE\n", out);
        }
    }
    if (page->see_also && *page->see_also)
        s_roff_see_also(out, page->see_also);
}

/* Writes `text` as one Markdown table cell: `literals` kept as code, and
 * what Markdown or a table would take for syntax escaped (| even in code:
 * it would end the cell). `code`: all of it is within a code span. */
static void s_md_cell(FILE *out, const char *text, bool code)
{
    for (const char *p = text; *p; p++) {
        if (*p == '`')
            code = !code;
        if (*p == '|')
            fputs("\\|", out);
        else if (*p == '\n')
            fputc(' ', out);
        else if (!code && (*p == '\\' || *p == '*'))
            fprintf(out, "\\%c", *p);
        else if (!code && *p == '<')
            fputs("&lt;", out);
        else
            fputc(*p, out);
    }
}

void cfg_markdown(FILE *out, const cfg_row_t *rows, size_t nrows)
{
    fputs("| variable | default | meaning |\n|---|---|---|\n", out);
    for (size_t i = 0; i < nrows; i++) {
        const cfg_row_t *r = &rows[i];
        fprintf(out, "| `%s` | ", r->env);
        if (r->def && *r->def) {
            fputc('`', out);
            s_md_cell(out, r->def, true);
            fputs("` ", out);
        } else if (r->required) {
            fputs("(required) ", out);
        }
        fputs("| ", out);
        s_md_cell(out, r->help, false);
        fputs(" |\n", out);
    }
}

/* A node id travels as a wire name: one rule, the protocol's (ASCII, not
 * the locale's isalnum). */
bool cfg_name_valid(const char *text)
{
    return wire_name_valid(text);
}

/* Decodes the UTF-8 character at `p` (within a NUL-terminated string):
 * returns NULL with its code point and length, or why it is not UTF-8
 * (then *len is 1: the one byte to skip or show escaped). Table 3-7 of the
 * Unicode standard: the second byte's range rules out overlong forms,
 * surrogates and code points above U+10FFFF. */
static const char *s_utf8(const unsigned char *p, uint32_t *cp, size_t *len)
{
    unsigned char c = p[0];
    *len = 1;
    *cp = c;
    if (c < 0x80)
        return NULL;
    if (c < 0xc0)
        return "stray continuation byte";
    if (c < 0xc2)
        return "overlong form";
    if (c > 0xf7)
        return "no UTF-8 byte";
    if (c > 0xf4)
        return "above U+10FFFF";
    size_t more = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
    unsigned char lo = 0x80, hi = 0xbf;
    const char *below = NULL, *above = NULL;
    if (c == 0xe0) {
        lo = 0xa0;
        below = "overlong form";
    } else if (c == 0xed) {
        hi = 0x9f;
        above = "surrogate";
    } else if (c == 0xf0) {
        lo = 0x90;
        below = "overlong form";
    } else if (c == 0xf4) {
        hi = 0x8f;
        above = "above U+10FFFF";
    }
    /* a NUL ends the string and is no continuation byte: never read past */
    for (size_t i = 1; i <= more; i++)
        if ((p[i] & 0xc0) != 0x80)
            return "sequence cut short";
    if (p[1] < lo)
        return below;
    if (p[1] > hi)
        return above;
    uint32_t v = c & (0x3f >> more);
    for (size_t i = 1; i <= more; i++)
        v = (v << 6) | (p[i] & 0x3f);
    *cp = v;
    *len = more + 1;
    return NULL;
}

/* C0, DEL and C1: what a terminal or a log reader acts on instead of showing. */
static bool s_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

int cfg_text_check(const char *text, char *why, size_t whylen)
{
    size_t n = strlen(text);
    if (n > WIRE_TEXT_MAX) {
        snprintf(why, whylen, "longer than %d bytes (%zu), the most the wire carries",
                 WIRE_TEXT_MAX, n);
        return -EINVAL;
    }
    const unsigned char *start = (const unsigned char *)text;
    for (const unsigned char *p = start; *p;) {
        uint32_t cp;
        size_t len;
        const char *bad = s_utf8(p, &cp, &len);
        if (bad) {
            snprintf(why, whylen, "not UTF-8 at byte %zu (%s)", (size_t)(p - start), bad);
            return -EINVAL;
        }
        if (s_control(cp)) {
            snprintf(why, whylen, "control character U+%04X at byte %zu", (unsigned)cp,
                     (size_t)(p - start));
            return -EINVAL;
        }
        p += len;
    }
    return 0;
}

/* `text` made fit for a one-line message: control characters and bytes
 * that are not UTF-8 escaped (\t \n \r, else \xNN per byte), cut after
 * S_SHOW_MAX bytes (or what `outlen` leaves) at a whole character or escape,
 * with "..." where it was cut. */
static void s_show(const char *text, char *out, size_t outlen)
{
    assert(outlen > 4);
    size_t cap = outlen - 4 < S_SHOW_MAX ? outlen - 4 : S_SHOW_MAX;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        char piece[32];
        size_t plen = 0, len;
        uint32_t cp;
        const char *bad = s_utf8(p, &cp, &len);
        if (!bad && !s_control(cp)) {
            memcpy(piece, p, len);
            plen = len;
        } else if (*p == '\t' || *p == '\n' || *p == '\r') {
            piece[0] = '\\';
            piece[1] = *p == '\t' ? 't' : *p == '\n' ? 'n' : 'r';
            plen = 2;
        } else {
            for (size_t i = 0; i < len; i++)
                plen += (size_t)snprintf(piece + plen, sizeof piece - plen, "\\x%02x", p[i]);
        }
        if (n + plen > cap) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(out + n, piece, plen);
        n += plen;
        p += len;
    }
    out[n] = '\0';
}

static int s_port(const char *text, bool wildcard_ok, char *why, size_t whylen)
{
    if (wildcard_ok && strcmp(text, "*") == 0)
        return 0;
    char *end;
    errno = 0;
    long p = strtol(text, &end, 10);
    if (!*text || *end || errno || p < 1 || p > 65535) {
        snprintf(why, whylen, "port '%s' is not 1..65535", text);
        return -EINVAL;
    }
    return 0;
}

int cfg_endpoint_check(const char *text, char *why, size_t whylen)
{
    if (strncmp(text, "tcp://", 6) == 0) {
        const char *hp = text + 6;
        const char *colon = strrchr(hp, ':');
        if (!colon || colon == hp) {
            snprintf(why, whylen, "expected tcp://HOST:PORT");
            return -EINVAL;
        }
        /* Unbracketed, "::1:5710" is ambiguous (a port, or part of the
         * address?). Only the destination after a ZeroMQ "source;" counts. */
        const char *host = strrchr(hp, ';');
        host = host ? host + 1 : hp;
        if ((hp[0] == '[' && colon[-1] != ']') ||
            (host[0] != '[' && colon > host && memchr(host, ':', (size_t)(colon - host)))) {
            snprintf(why, whylen, "an IPv6 address goes in brackets: tcp://[::1]:PORT");
            return -EINVAL;
        }
        return s_port(colon + 1, true, why, whylen);
    }
    if (strncmp(text, "ipc://", 6) == 0 || strncmp(text, "inproc://", 9) == 0) {
        const char *rest = strstr(text, "://") + 3;
        if (!*rest) {
            snprintf(why, whylen, "missing path after ://");
            return -EINVAL;
        }
        return 0;
    }
    snprintf(why, whylen, "expected tcp://HOST:PORT, ipc://PATH or inproc://NAME");
    return -EINVAL;
}

int cfg_addrport_parse(const char *text, struct sockaddr_storage *ss, socklen_t *sslen, char *why,
                       size_t whylen)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    if (!colon) {
        snprintf(why, whylen, "expected HOST:PORT or :PORT");
        return -EINVAL;
    }
    size_t hlen = (size_t)(colon - text);
    if (hlen >= sizeof host) {
        snprintf(why, whylen, "host too long");
        return -EINVAL;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || errno || port < 0 || port > 65535) {
        snprintf(why, whylen, "port '%s' is not 0..65535", colon + 1);
        return -EINVAL;
    }
    memset(ss, 0, sizeof *ss);
    if (!*host || strcmp(host, "*") == 0) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_any;
        a->sin6_port = htons((uint16_t)port);
        *sslen = sizeof *a;
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(why, whylen, "host '%s': %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    return 0;
}

static int s_bool(const char *t, int64_t *v)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(t, yes[i]) == 0) {
            *v = 1;
            return 0;
        }
        if (strcasecmp(t, no[i]) == 0) {
            *v = 0;
            return 0;
        }
    }
    return -EINVAL;
}

static int s_enum(const char *choices, const char *t, int64_t *v)
{
    size_t tl = strlen(t);
    int index = 0;
    for (const char *p = choices; *p; index++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == tl && strncmp(p, t, len) == 0) {
            *v = index;
            return 0;
        }
        if (!bar)
            break;
        p = bar + 1;
    }
    return -EINVAL;
}

/* Checks one value; on failure writes the reason (without the name). */
static int s_check(const cfg_row_t *r, const char *t, int64_t *v, char *why, size_t wl)
{
    switch (r->type) {
    case CFG_STR:
        return 0;
    case CFG_TEXT:
        return cfg_text_check(t, why, wl);
    case CFG_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(t, &end, 10);
        if (!*t || *end || errno) {
            snprintf(why, wl, "not an integer");
            return -EINVAL;
        }
        if (n < r->min || n > r->max) {
            snprintf(why, wl, "out of range %" PRId64 "..%" PRId64, r->min, r->max);
            return -ERANGE;
        }
        *v = n;
        return 0;
    }
    case CFG_BOOL:
        if (s_bool(t, v) < 0) {
            snprintf(why, wl, "not a boolean (true/false, yes/no, on/off, 1/0)");
            return -EINVAL;
        }
        return 0;
    case CFG_ENUM:
        if (s_enum(r->choices, t, v) < 0) {
            snprintf(why, wl, "not one of %s", r->choices);
            return -EINVAL;
        }
        return 0;
    case CFG_NAME:
        if (!cfg_name_valid(t)) {
            snprintf(why, wl, "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
            return -EINVAL;
        }
        return 0;
    case CFG_ENDPOINT:
        return cfg_endpoint_check(t, why, wl);
    case CFG_ENDPOINTS: {
        char one[512];
        const char *p = t;
        do {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len >= sizeof one) {
                snprintf(why, wl, "endpoint too long");
                return -EINVAL;
            }
            memcpy(one, p, len);
            one[len] = '\0';
            char sub[200];
            if (cfg_endpoint_check(one, sub, sizeof sub) < 0) {
                snprintf(why, wl, "'%.64s': %s", one, sub);
                return -EINVAL;
            }
            p = comma ? comma + 1 : NULL;
        } while (p);
        return 0;
    }
    case CFG_ADDRPORT: {
        if (!*t)
            return 0;
        struct sockaddr_storage ss;
        socklen_t len;
        return cfg_addrport_parse(t, &ss, &len, why, wl);
    }
    case CFG_FILE: {
        if (strcmp(t, "-") == 0)
            return 0;
        struct stat st;
        if (stat(t, &st) < 0 || access(t, R_OK) < 0) {
            snprintf(why, wl, "%s", strerror(errno));
            return -EINVAL;
        }
        if (S_ISDIR(st.st_mode)) {
            snprintf(why, wl, "is a directory");
            return -EINVAL;
        }
        return 0;
    }
    case CFG_DIR: {
        struct stat st;
        if (stat(t, &st) < 0) {
            snprintf(why, wl, "%s", strerror(errno));
            return -EINVAL;
        }
        if (!S_ISDIR(st.st_mode)) {
            snprintf(why, wl, "not a directory");
            return -EINVAL;
        }
        if (access(t, W_OK) < 0) {
            snprintf(why, wl, "not writable: %s", strerror(errno));
            return -EINVAL;
        }
        return 0;
    }
    case CFG_PATH:
        if (!*t) {
            snprintf(why, wl, "empty path");
            return -EINVAL;
        }
        return 0;
    }
    return 0;
}

/* ---- names in the environment that are no setting --------------------- */

static int s_warn(cfg_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int s_warn(cfg_t *self, const char *fmt, ...)
{
    char line[2 * S_SHOW_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char **w = realloc(self->warnings, (self->nwarnings + 1) * sizeof *w);
    if (!w)
        return -ENOMEM;
    self->warnings = w;
    if (!(w[self->nwarnings] = strdup(line)))
        return -ENOMEM;
    self->nwarnings++;
    return 0;
}

/* Optimal-string-alignment distance between a[0..al) and b[0..bl), letters
 * without case; anything above `max` comes back as max + 1. */
static int s_distance(const char *a, size_t al, const char *b, size_t bl, int max)
{
    if (al > S_NEAR_NAME_MAX || bl > S_NEAR_NAME_MAX)
        return max + 1;
    if ((al > bl ? al - bl : bl - al) > (size_t)max)
        return max + 1;
    int rows[3][S_NEAR_NAME_MAX + 1];
    int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= bl; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= al; i++) {
        cur[0] = (int)i;
        int lowest = cur[0];
        char ai = (char)toupper((unsigned char)a[i - 1]);
        for (size_t j = 1; j <= bl; j++) {
            char bj = (char)toupper((unsigned char)b[j - 1]);
            int d = prev[j - 1] + (ai != bj);
            if (prev[j] + 1 < d)
                d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            if (i > 1 && j > 1 && ai == (char)toupper((unsigned char)b[j - 2]) &&
                (char)toupper((unsigned char)a[i - 2]) == bj && prev2[j - 2] + 1 < d)
                d = prev2[j - 2] + 1;
            cur[j] = d;
            if (d < lowest)
                lowest = d;
        }
        if (lowest > max)
            return max + 1;
        int *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[bl] > max ? max + 1 : prev[bl];
}

/* How many edits away from a setting's name a variable still looks like a
 * mistake for it: -1 for never. */
static int s_near_max(size_t setting_len)
{
    return setting_len >= 6 ? 2 : setting_len >= 4 ? 1 : -1;
}

/* The shell's, the locale's, a container's and a Kubernetes pod's usual
 * names: never taken for a mistyped setting (NODE_IP is one edit from
 * NODE_ID). */
static bool s_usual_name(const char *name, size_t len)
{
    static const char *const names[] = {
        "PATH",     "HOME",      "USER",    "LOGNAME", "TERM",     "SHELL",
        "PWD",      "OLDPWD",    "SHLVL",   "LANG",    "LANGUAGE", "HOSTNAME",
        "HOSTTYPE", "OSTYPE",    "MAIL",    "TZ",      "TMPDIR",   "EDITOR",
        "VISUAL",   "PAGER",     "DISPLAY", "COLUMNS", "LINES",    "_",
        "NODE_IP",  "NODE_NAME", "HOST_IP", "POD_IP",  "POD_NAME", "POD_NAMESPACE",
    };
    static const char *const prefixes[] = {"LC_", "XDG_", "SSH_"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return true;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

static bool s_ends_with(const char *name, size_t len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return len >= sl && memcmp(name + len - sl, suffix, sl) == 0;
}

/* What Kubernetes derives from a service's name (a service tapmesh-collect
 * gives TAPMESH_COLLECT_SERVICE_HOST, TAPMESH_COLLECT_PORT=tcp://...,
 * TAPMESH_COLLECT_PORT_5710_TCP_ADDR and more). */
static bool s_kubernetes_name(const char *name, size_t len, const char *value)
{
    if (s_ends_with(name, len, "_SERVICE_HOST") || s_ends_with(name, len, "_SERVICE_PORT"))
        return true;
    const char *p = strstr(name, "_SERVICE_PORT_");
    if (p && (size_t)(p - name) < len)
        return true;
    if (s_ends_with(name, len, "_PORT") &&
        (strncmp(value, "tcp://", 6) == 0 || strncmp(value, "udp://", 6) == 0 ||
         strncmp(value, "sctp://", 7) == 0))
        return true;
    for (p = strstr(name, "_PORT_"); p && (size_t)(p - name) < len; p = strstr(p + 1, "_PORT_")) {
        const char *q = p + 6;
        if (!isdigit((unsigned char)*q))
            continue;
        while (isdigit((unsigned char)*q))
            q++;
        static const char *const protos[] = {"_TCP", "_UDP", "_SCTP"};
        for (size_t i = 0; i < 3; i++) {
            size_t pl = strlen(protos[i]);
            if (strncmp(q, protos[i], pl) == 0 && (q[pl] == '=' || q[pl] == '_' || !q[pl]))
                return true;
        }
    }
    return false;
}

/* The row nearest `name` (compared with the prefixed names too when
 * `prefixed`), within each row's s_near_max; -1 when none. */
static ssize_t s_nearest(const cfg_t *self, const char *name, size_t len, bool prefixed,
                         bool *as_prefixed)
{
    ssize_t best = -1;
    int best_d = INT32_MAX;
    for (size_t i = 0; i < self->nrows; i++) {
        const char *env = self->rows[i].env;
        size_t el = strlen(env);
        int max = s_near_max(el);
        if (max < 0)
            continue;
        int d = s_distance(name, len, env, el, max);
        if (d <= max && d < best_d) {
            best = (ssize_t)i;
            best_d = d;
            *as_prefixed = false;
        }
        if (!prefixed)
            continue;
        char full[S_NEAR_NAME_MAX + 1];
        int fl = snprintf(full, sizeof full, S_PREFIX "%s", env);
        if (fl < 0 || (size_t)fl >= sizeof full)
            continue;
        d = s_distance(name, len, full, (size_t)fl, max);
        if (d <= max && d < best_d) {
            best = (ssize_t)i;
            best_d = d;
            *as_prefixed = true;
        }
    }
    return best;
}

static bool s_is_row(const cfg_t *self, const char *name, size_t len)
{
    for (size_t i = 0; i < self->nrows; i++)
        if (strlen(self->rows[i].env) == len && memcmp(self->rows[i].env, name, len) == 0)
            return true;
    return false;
}

/* Collects a warning for every TAPMESH_* variable that is no setting and
 * every other variable near a setting (the rule is in cfg.h). */
static int s_check_environment(cfg_t *self)
{
    for (char **e = environ; e && *e; e++) {
        const char *name = *e;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : "";
        if (s_usual_name(name, len) || s_kubernetes_name(name, len, value))
            continue;
        char shown[S_SHOW_MAX + 4], near[S_NEAR_NAME_MAX + 1];
        char *copy = strndup(name, len);
        if (!copy)
            return -ENOMEM;
        s_show(copy, shown, sizeof shown);
        free(copy);
        bool prefixed = false;
        int rc = 0;
        if (len >= S_PREFIX_LEN && memcmp(name, S_PREFIX, S_PREFIX_LEN) == 0) {
            const char *rest = name + S_PREFIX_LEN;
            size_t rl = len - S_PREFIX_LEN;
            if (s_is_row(self, rest, rl))
                continue;
            ssize_t i = s_nearest(self, rest, rl, false, &prefixed);
            if (i >= 0)
                rc = s_warn(self, "%s is no setting; did you mean " S_PREFIX "%s?", shown,
                            self->rows[i].env);
            else
                rc = s_warn(self, "%s is no setting; see --help", shown);
        } else {
            if (s_is_row(self, name, len))
                continue;
            ssize_t i = s_nearest(self, name, len, true, &prefixed);
            if (i < 0)
                continue;
            snprintf(near, sizeof near, "%s%s", prefixed ? S_PREFIX : "", self->rows[i].env);
            rc = s_warn(self, "%s is no setting; did you mean %s?", shown, near);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- loading ----------------------------------------------------------- */

static void s_set(cfg_t *self, size_t i, const char *text)
{
    free(self->text[i]);
    self->text[i] = strdup(text);
}

static ssize_t s_row_by_flag(const cfg_row_t *rows, size_t nrows, const char *flag, size_t len)
{
    for (size_t i = 0; i < nrows; i++) {
        char f[64];
        s_flag_name(rows[i].env, f, sizeof f);
        if (strlen(f) == len && strncmp(f, flag, len) == 0)
            return (ssize_t)i;
    }
    return -1;
}

cfg_result_t cfg_load(cfg_t **self_p, const char *program, const char *summary,
                      const cfg_row_t *rows, size_t nrows, int argc, char **argv, FILE *out,
                      char *err, size_t errlen)
{
    const cfg_page_t page = {.program = program, .section = 1, .summary = summary};
    return cfg_load_page(self_p, &page, rows, nrows, argc, argv, out, err, errlen);
}

/* Answers an argument that asks the program about itself (--help, --man...)
 * on `out`; false when `arg` is none of them. */
static bool s_about(const char *arg, const cfg_page_t *page, const cfg_row_t *rows, size_t nrows,
                    FILE *out)
{
    size_t nshared = page->nshared < nrows ? page->nshared : nrows;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
        cfg_help(out, page->program, page->summary ? page->summary : "", rows, nrows);
    else if (strcmp(arg, "--version") == 0)
        fprintf(out, "%s %s\n", page->program, TAPMESH_VERSION);
    else if (strcmp(arg, "--man") == 0)
        cfg_man(out, page, rows, nrows);
    else if (strcmp(arg, "--markdown") == 0)
        cfg_markdown(out, rows + nshared, nrows - nshared);
    else if (strcmp(arg, "--markdown-shared") == 0)
        cfg_markdown(out, rows, nshared);
    else
        return false;
    return true;
}

cfg_result_t cfg_load_page(cfg_t **self_p, const cfg_page_t *page, const cfg_row_t *rows,
                           size_t nrows, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
    const char *program = page->program;
    *self_p = NULL;
    cfg_t *self = calloc(1, sizeof *self);
    if (!self)
        goto nomem;
    self->rows = rows;
    self->nrows = nrows;
    self->text = calloc(nrows, sizeof *self->text);
    self->value = calloc(nrows, sizeof *self->value);
    if (!self->text || !self->value)
        goto nomem;

    s_from_t *from = calloc(nrows ? nrows : 1, sizeof *from);
    if (!from)
        goto nomem;
    for (size_t i = 0; i < nrows; i++) {
        /* set, even empty, TAPMESH_NAME wins: as an empty flag does */
        char prefixed[128];
        int pl = snprintf(prefixed, sizeof prefixed, S_PREFIX "%s", rows[i].env);
        assert(pl > 0 && (size_t)pl < sizeof prefixed);
        (void)pl;
        const char *env;
        if ((env = getenv(prefixed))) {
            s_set(self, i, env);
            from[i] = S_FROM_PREFIXED;
        } else if ((env = getenv(rows[i].env))) {
            s_set(self, i, env);
            from[i] = S_FROM_ENV;
        } else if (rows[i].def) {
            s_set(self, i, rows[i].def);
        }
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (s_about(arg, page, rows, nrows, out)) {
            free(from);
            cfg_destroy(&self);
            return CFG_EXIT_HELP;
        }
        char shown[S_SHOW_MAX + 4];
        if (strncmp(arg, "--", 2) != 0) {
            s_show(arg, shown, sizeof shown);
            snprintf(err, errlen, "%s: unexpected argument '%s' (settings are --name VALUE)",
                     program, shown);
            goto fail;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        ssize_t i = s_row_by_flag(rows, nrows, name, nlen);
        if (i < 0) {
            char *opt = strndup(arg, nlen + 2);
            if (!opt)
                goto nomem_from;
            s_show(opt, shown, sizeof shown);
            free(opt);
            snprintf(err, errlen, "%s: unknown option '%s' (see --help)", program, shown);
            goto fail;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (rows[i].type == CFG_BOOL && (a + 1 >= argc || strncmp(argv[a + 1], "--", 2) == 0))
            val = "true";
        else if (a + 1 < argc)
            val = argv[++a];
        else {
            s_show(arg, shown, sizeof shown);
            snprintf(err, errlen, "%s: option '%s' needs a value", program, shown);
            goto fail;
        }
        s_set(self, (size_t)i, val);
        from[i] = S_FROM_FLAG;
    }
    for (size_t i = 0; i < nrows; i++) {
        const cfg_row_t *r = &rows[i];
        char flag[64], why[300], shown[S_SHOW_MAX + 4];
        s_flag_name(r->env, flag, sizeof flag);
        char subject[160];
        if (from[i] == S_FROM_FLAG)
            snprintf(subject, sizeof subject, "--%s (%s)", flag, r->env);
        else if (from[i] == S_FROM_PREFIXED)
            snprintf(subject, sizeof subject, S_PREFIX "%s", r->env);
        else
            snprintf(subject, sizeof subject, "%s", r->env);
        if (!self->text[i] || (!*self->text[i] && r->required)) {
            if (r->required) {
                snprintf(err, errlen, "%s: %s is not set: %s", program, subject, r->help);
                goto fail;
            }
            continue;
        }
        if (!*self->text[i] && r->type != CFG_STR && r->type != CFG_TEXT &&
            r->type != CFG_ADDRPORT) {
            /* explicitly emptied: back to unset */
            free(self->text[i]);
            self->text[i] = NULL;
            if (!r->def || !*r->def)
                continue;
            s_set(self, i, r->def);
        }
        if (s_check(r, self->text[i], &self->value[i], why, sizeof why) < 0) {
            char because[S_SHOW_MAX + 4]; /* `why` may quote part of the value */
            s_show(self->text[i], shown, sizeof shown);
            s_show(why, because, sizeof because);
            snprintf(err, errlen, "%s: %s='%s': %s", program, subject, shown, because);
            goto fail;
        }
    }
    free(from);
    if (s_check_environment(self) < 0)
        goto nomem;
    *self_p = self;
    return CFG_OK;
fail:
    free(from);
    cfg_destroy(&self);
    return CFG_EXIT_ERROR;
nomem_from:
    free(from);
nomem:
    cfg_destroy(&self);
    snprintf(err, errlen, "%s: out of memory", program);
    return CFG_EXIT_ERROR;
}

void cfg_destroy(cfg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cfg_t *self = *self_p;
    if (self->text)
        for (size_t i = 0; i < self->nrows; i++)
            free(self->text[i]);
    free(self->text);
    free(self->value);
    for (size_t i = 0; i < self->nwarnings; i++)
        free(self->warnings[i]);
    free(self->warnings);
    free(self);
    *self_p = NULL;
}

static size_t s_index(const cfg_t *self, const char *env)
{
    for (size_t i = 0; i < self->nrows; i++)
        if (strcmp(self->rows[i].env, env) == 0)
            return i;
    assert(!"cfg: no such row");
    abort();
}

const char *cfg_str(const cfg_t *self, const char *env)
{
    const char *t = self->text[s_index(self, env)];
    return t ? t : "";
}

int64_t cfg_int(const cfg_t *self, const char *env)
{
    size_t i = s_index(self, env);
    assert(self->rows[i].type == CFG_INT);
    return self->value[i];
}

bool cfg_bool(const cfg_t *self, const char *env)
{
    size_t i = s_index(self, env);
    assert(self->rows[i].type == CFG_BOOL);
    return self->value[i] != 0;
}

int cfg_enum(const cfg_t *self, const char *env)
{
    size_t i = s_index(self, env);
    assert(self->rows[i].type == CFG_ENUM);
    return (int)self->value[i];
}

bool cfg_is_set(const cfg_t *self, const char *env)
{
    const char *t = self->text[s_index(self, env)];
    return t && *t;
}

const char *cfg_warning(const cfg_t *self, size_t i)
{
    return i < self->nwarnings ? self->warnings[i] : NULL;
}
