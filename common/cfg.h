/*
 * cfg — settings from one table: environment first (containers), then
 * command-line flags, which override. Parsed and validated once at start-up,
 * read-only afterwards.
 *
 * Every row names an environment variable; its flag is derived from it
 * (BATCH_MAX_BYTES -> --batch-max-bytes), so the two can never disagree.
 * Each setting is also read as TAPMESH_<NAME> (TAPMESH_OUTPUT), which wins
 * over the plain NAME even when empty: generic names such as OUTPUT, FILTER
 * or DEVICE may be set for something else in a container's or a shell's
 * environment, and the prefixed name says "for tapmesh" without doubt. A
 * flag wins over both. `--help`, the manual page (`--man`, made at build
 * time) and the README's tables (`--markdown`) are printed from the same
 * table, so that none of them can drift from what is parsed. A bad value is
 * reported in one line that names the variable (TAPMESH_NAME when the value
 * came from there) and the value, control characters and bytes that are not
 * UTF-8 escaped (\n, \x01) and a long value cut ("..."); the caller exits
 * with status 2.
 *
 * Mistyped names: a setting whose name is mistyped is silently not set, so
 * cfg_load also collects warnings (cfg_warning) about the environment:
 *   - a TAPMESH_* variable that is no setting: "TAPMESH_DEVCE is no setting;
 *     did you mean TAPMESH_DEVICE?" when a setting is near (below), else
 *     "TAPMESH_X is no setting; see --help";
 *   - any other variable that is no setting but near one: "DEVCE is no
 *     setting; did you mean DEVICE?" (also near a TAPMESH_<NAME>: TAPMES_X).
 * Near: optimal-string-alignment Damerau-Levenshtein distance (one edit is
 * an insertion, a deletion, a substitution or a swap of two neighbours),
 * letters compared without case, of at most 2 from a setting's name of 6 or
 * more characters, at most 1 from a name of 4 or 5, never from a shorter one
 * (a distance of 2 from a 3-letter name matches half the environment); the
 * nearest setting is named, the first in the table on a tie. Never warned
 * about, whatever the settings: names of the usual environment (PATH, HOME,
 * USER, LOGNAME, TERM, SHELL, PWD, OLDPWD, SHLVL, LANG, LANGUAGE, HOSTNAME,
 * HOSTTYPE, OSTYPE, MAIL, TZ, TMPDIR, EDITOR, VISUAL, PAGER, DISPLAY,
 * COLUMNS, LINES, _, LC_*, XDG_*, SSH_*; Kubernetes' downward-API favourites
 * NODE_IP, NODE_NAME, HOST_IP, POD_IP, POD_NAME, POD_NAMESPACE) and the
 * variables Kubernetes derives from service names (X_SERVICE_HOST,
 * X_SERVICE_PORT[_*], X_PORT=tcp://..., X_PORT_<n>_TCP[_*] and UDP, SCTP),
 * which a service called tapmesh-collect turns into TAPMESH_COLLECT_*.
 */
#ifndef TAPMESH_CFG_H
#define TAPMESH_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

typedef enum {
    CFG_STR,       /* any text */
    CFG_TEXT,      /* free text carried on the wire (proto §2 text), see cfg_text_check */
    CFG_INT,       /* decimal integer within [min, max] */
    CFG_BOOL,      /* true/false, yes/no, on/off, 1/0 */
    CFG_ENUM,      /* one of `choices`, "a|b|c"; read back as an index */
    CFG_NAME,      /* 1..64 of [A-Za-z0-9._-]: node ids, metric-label safe */
    CFG_ENDPOINT,  /* one ZeroMQ endpoint: tcp://host:port, ipc://path, inproc://name */
    CFG_ENDPOINTS, /* comma-separated list of endpoints */
    CFG_ADDRPORT,  /* host:port, :port or [v6]:port for an HTTP listener; empty = off */
    CFG_FILE,      /* an existing readable file, or "-" for standard input */
    CFG_DIR,       /* an existing writable directory */
    CFG_PATH,      /* a path to create, or "-" for standard output */
} cfg_type_t;

/* Text in a row's help and in a page (below) is plain prose with one mark:
 * `backquotes` around a literal (a value, a setting's name, a command).
 * --help shows it without the quotes, the manual page in bold, the Markdown
 * table as code. */
typedef struct {
    const char *env;     /* environment variable */
    cfg_type_t type;     /* how the value is checked */
    const char *def;     /* default as text; NULL: no default */
    int64_t min, max;    /* CFG_INT only */
    const char *choices; /* CFG_ENUM only: "first|mixed" */
    bool required;       /* start-up fails when unset and no default */
    const char *help;    /* what it does, for --help, the manual and the README */
} cfg_row_t;

/* One entry of a list on a manual page: a term (an exit status, a signal,
 * a file) and what it means. A list ends with an entry whose term is NULL. */
typedef struct {
    const char *term;
    const char *text;
} cfg_item_t;

/* What a program says about itself besides its settings: --help's summary
 * and the rest of its manual page (cfg_man). In `description`, a blank line
 * separates paragraphs. Lists may be NULL. */
typedef struct {
    const char *program;           /* "tapmesh-capture" */
    int section;                   /* 8: a service; 1: a command */
    const char *purpose;           /* NAME's line: "capture packets and ..." */
    const char *synopsis;          /* after the name; NULL: "[--setting VALUE]..." */
    const char *summary;           /* --help's lines after Usage; the manual's first paragraph */
    const char *description;       /* DESCRIPTION after the summary, or NULL */
    const cfg_item_t *options;     /* arguments that are no setting (a command's), or NULL */
    const cfg_item_t *exit_status; /* term: the status */
    const cfg_item_t *signals;     /* term: the signals */
    const cfg_item_t *files;       /* term: the file */
    const cfg_item_t *examples;    /* term: what it shows; text: commands, shown as they are */
    const char *see_also;          /* "tapmesh-relay(8), tcpdump(8)" */
    /* The first `nshared` rows are the settings every program of the family
     * has (tapmesh's SERVICE_ROWS): --markdown-shared prints those,
     * --markdown the others. */
    size_t nshared;
} cfg_page_t;

typedef struct cfg_t cfg_t;

typedef enum { CFG_OK = 0, CFG_EXIT_HELP = 1, CFG_EXIT_ERROR = 2 } cfg_result_t;

/* Reads `rows` from the environment, then from argv. On CFG_OK *self_p is a
 * new cfg_t the caller owns. On CFG_EXIT_HELP, what an argument asked for
 * went to `out`: --help (or -h), --version, --man (cfg_man), --markdown or
 * --markdown-shared (cfg_markdown of the program's own or its shared rows);
 * none of them needs valid settings. On CFG_EXIT_ERROR, `err` holds one line
 * naming the variable and the value, and the caller should exit with status
 * 2. `page` (not copied) says what the program is; rows and page outlive the
 * call. */
cfg_result_t cfg_load_page(cfg_t **self_p, const cfg_page_t *page, const cfg_row_t *rows,
                           size_t nrows, int argc, char **argv, FILE *out, char *err,
                           size_t errlen);

/* cfg_load_page with a page of only a program's name and summary. */
cfg_result_t cfg_load(cfg_t **self_p, const char *program, const char *summary,
                      const cfg_row_t *rows, size_t nrows, int argc, char **argv, FILE *out,
                      char *err, size_t errlen);

void cfg_destroy(cfg_t **self_p);

/* The i-th warning about the environment (see the top of this file), one
 * line without the program name, for the caller to log once logging is set
 * up; NULL when i is past the last. Owned by self. */
const char *cfg_warning(const cfg_t *self, size_t i);

/* Accessors: `env` must be a row of the table (programmer error otherwise).
 * cfg_str returns "" for an unset value, never NULL. */
const char *cfg_str(const cfg_t *self, const char *env);
int64_t cfg_int(const cfg_t *self, const char *env);
bool cfg_bool(const cfg_t *self, const char *env);
int cfg_enum(const cfg_t *self, const char *env);
bool cfg_is_set(const cfg_t *self, const char *env);

/* Prints the usage text built from the table: every row with its flag,
 * type, help (wrapped to 80 columns) and default. */
void cfg_help(FILE *out, const char *program, const char *summary, const cfg_row_t *rows,
              size_t nrows);

/* Prints the program's manual page (man(7) roff): NAME, SYNOPSIS,
 * DESCRIPTION (summary and description), OPTIONS, ENVIRONMENT (every row:
 * variable, flag, help, default, type), EXIT STATUS, SIGNALS, FILES,
 * EXAMPLES and SEE ALSO, each where the page or the table has something
 * for it. What it prints depends on nothing but its arguments (no date), so
 * that a build makes the same page every time. */
void cfg_man(FILE *out, const cfg_page_t *page, const cfg_row_t *rows, size_t nrows);

/* Prints `rows` as a Markdown table, | variable | default | meaning |, one
 * row per setting in table order (the README's tables are made with it). */
void cfg_markdown(FILE *out, const cfg_row_t *rows, size_t nrows);

/* Checks one endpoint; returns 0 or -EINVAL with the reason in `why`. */
int cfg_endpoint_check(const char *text, char *why, size_t whylen);

/* Parses "host:port", ":port", "[v6]:port" into a socket address; returns 0
 * or -EINVAL with the reason in `why`. */
int cfg_addrport_parse(const char *text, struct sockaddr_storage *ss, socklen_t *sslen, char *why,
                       size_t whylen);

/* Checks a CFG_TEXT value: what a wire `text` (proto/wire-v2.md §2) can
 * carry and a reader can show: at most WIRE_TEXT_MAX (1024) bytes of UTF-8
 * (no overlong form, no surrogate, nothing above U+10FFFF, no sequence cut
 * short) without control characters (C0, DEL, C1). Empty is valid. Returns
 * 0 or -EINVAL with the reason in `why` ("control character U+0001 at byte
 * 4"). Whatever it accepts wire_encode accepts as a description. */
int cfg_text_check(const char *text, char *why, size_t whylen);

/* True when `text` is a valid CFG_NAME value: a wire name (proto §2). */
bool cfg_name_valid(const char *text);

#endif
