/*
 * cfg — settings from one table: environment first (containers), then
 * command-line flags, which override. Parsed and validated once at start-up,
 * read-only afterwards.
 *
 * Every row names an environment variable; its flag is derived from it
 * (BATCH_MAX_BYTES -> --batch-max-bytes), so the two can never disagree.
 * `--help` prints the same table. A bad value is reported in one line that
 * names the variable and the value; the caller exits with status 2.
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

typedef struct {
    const char *env;     /* environment variable */
    cfg_type_t type;     /* how the value is checked */
    const char *def;     /* default as text; NULL: no default */
    int64_t min, max;    /* CFG_INT only */
    const char *choices; /* CFG_ENUM only: "first|mixed" */
    bool required;       /* start-up fails when unset and no default */
    const char *help;    /* one sentence or two */
} cfg_row_t;

typedef struct cfg_t cfg_t;

typedef enum { CFG_OK = 0, CFG_EXIT_HELP = 1, CFG_EXIT_ERROR = 2 } cfg_result_t;

/* Reads `rows` from the environment, then from argv. On CFG_OK *self_p is a
 * new cfg_t the caller owns. On CFG_EXIT_HELP, help or the version went to
 * `out`. On CFG_EXIT_ERROR, `err` holds one line naming the variable and the
 * value, and the caller should exit with status 2. */
cfg_result_t cfg_load(cfg_t **self_p, const char *program, const char *summary,
                      const cfg_row_t *rows, size_t nrows, int argc, char **argv, FILE *out,
                      char *err, size_t errlen);

void cfg_destroy(cfg_t **self_p);

/* Accessors: `env` must be a row of the table (programmer error otherwise).
 * cfg_str returns "" for an unset value, never NULL. */
const char *cfg_str(const cfg_t *self, const char *env);
int64_t cfg_int(const cfg_t *self, const char *env);
bool cfg_bool(const cfg_t *self, const char *env);
int cfg_enum(const cfg_t *self, const char *env);
bool cfg_is_set(const cfg_t *self, const char *env);

/* Prints the usage text built from the table. */
void cfg_help(FILE *out, const char *program, const char *summary, const cfg_row_t *rows,
              size_t nrows);

/* Checks one endpoint; returns 0 or -EINVAL with the reason in `why`. */
int cfg_endpoint_check(const char *text, char *why, size_t whylen);

/* Parses "host:port", ":port", "[v6]:port" into a socket address; returns 0
 * or -EINVAL with the reason in `why`. */
int cfg_addrport_parse(const char *text, struct sockaddr_storage *ss, socklen_t *sslen, char *why,
                       size_t whylen);

/* True when `text` is a valid CFG_NAME value: a wire name (proto §2). */
bool cfg_name_valid(const char *text);

#endif
