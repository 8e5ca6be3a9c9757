/*
 * fuzz_cfg — libFuzzer target for the settings parser (common/cfg.c):
 * the environment and the command line are input too (a container's
 * environment, a unit file, a script).
 *
 * The input's first byte says how many of the strings that follow (split
 * at NUL bytes) are environment entries NAME=VALUE (its low 4 bits) and
 * whether the table has a required row (bit 4); the other strings are the
 * arguments. The table has a row of every type. Properties: cfg_load
 * answers OK, help or error; after OK every value keeps its row's rule
 * (integers within bounds, enums among their choices, names, texts,
 * endpoints and listener addresses that their checks accept); an error is
 * one line that names the program, and neither an error nor a warning
 * about the environment carries a control character (what the user typed
 * is shown escaped, so a terminal or a log reader is not driven by it).
 * A broken property calls abort(), so the fuzzer and replay.c both see it.
 */
#define _GNU_SOURCE /* clearenv */
#include "cfg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_ROWS_COMMON                                                                              \
    {"LABEL", CFG_STR, "", 0, 0, NULL, false, "any text"},                                         \
        {"DESCRIPTION", CFG_TEXT, "", 0, 0, NULL, false, "wire text"},                             \
        {"BATCH_MAX_BYTES", CFG_INT, "262144", 1024, 16777216, NULL, false, "an integer"},         \
        {"OFFSET", CFG_INT, "0", -5, 5, NULL, false, "a small signed integer"},                    \
        {"PROMISC", CFG_BOOL, "true", 0, 0, NULL, false, "a flag"},                                \
        {"LINKTYPE_POLICY", CFG_ENUM, "first", 0, 0, "first|mixed|x", false, "a choice"},          \
        {"NODE_ID", CFG_NAME, NULL, 0, 0, NULL, false, "a name"},                                  \
        {"RELAY_ENDPOINT", CFG_ENDPOINT, "tcp://127.0.0.1:5710", 0, 0, NULL, false, "endpoint"},   \
        {"NEXT_HOPS", CFG_ENDPOINTS, "", 0, 0, NULL, false, "endpoints"},                          \
        {"METRICS_ADDRPORT", CFG_ADDRPORT, ":9710", 0, 0, NULL, false, "a listener"},              \
        {"READ_FILE", CFG_FILE, NULL, 0, 0, NULL, false, "a file to read"},                        \
        {"SPOOL_DIR", CFG_DIR, NULL, 0, 0, NULL, false, "a directory"},                            \
    {                                                                                              \
        "OUTPUT", CFG_PATH, "-", 0, 0, NULL, false, "a path to create"                             \
    }

static const cfg_row_t s_rows[] = {S_ROWS_COMMON};
static const cfg_row_t s_rows_required[] = {
    S_ROWS_COMMON, {"COLLECTOR", CFG_ENDPOINT, NULL, 0, 0, NULL, true, "must be set"}};

#define S_NROWS(t) (sizeof(t) / sizeof *(t))
#define S_ARGS_MAX 64
#define S_ENUM_CHOICES 3

extern char **environ;

static void s_no_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            abort();
}

static void s_check_ok(const cfg_t *c, const cfg_row_t *rows, size_t nrows)
{
    char why[512];
    for (size_t i = 0; i < nrows; i++) {
        const cfg_row_t *r = &rows[i];
        const char *t = cfg_str(c, r->env);
        if (!t)
            abort();
        bool set = cfg_is_set(c, r->env);
        if (r->required && !set)
            abort();
        switch (r->type) {
        case CFG_INT: {
            int64_t v = cfg_int(c, r->env);
            if (v < r->min || v > r->max)
                abort();
            break;
        }
        case CFG_BOOL:
            (void)cfg_bool(c, r->env);
            break;
        case CFG_ENUM: {
            int v = cfg_enum(c, r->env);
            if (v < 0 || v >= S_ENUM_CHOICES)
                abort();
            break;
        }
        case CFG_NAME:
            if (set && !cfg_name_valid(t))
                abort();
            break;
        case CFG_TEXT:
            if (cfg_text_check(t, why, sizeof why) < 0)
                abort();
            break;
        case CFG_ENDPOINT:
            if (set && cfg_endpoint_check(t, why, sizeof why) < 0)
                abort();
            break;
        case CFG_ADDRPORT: {
            struct sockaddr_storage ss;
            socklen_t len;
            if (set && cfg_addrport_parse(t, &ss, &len, why, sizeof why) < 0)
                abort();
            break;
        }
        default:
            break;
        }
    }
    for (size_t i = 0; cfg_warning(c, i); i++) {
        s_no_control(cfg_warning(c, i));
        if (i > 4096)
            abort(); /* more warnings than variables */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        abort();
    if (size == 0)
        return 0;
    size_t nenv = data[0] & 15;
    bool required = data[0] & 16;
    /* the strings, NUL-terminated in a copy */
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *strings[S_ARGS_MAX + 16];
    size_t n = 0;
    for (char *p = text; p < text + size && n < S_ARGS_MAX + 16; p += strlen(p) + 1)
        strings[n++] = p;
    if (nenv > n)
        nenv = n;
    clearenv();
    for (size_t i = 0; i < nenv; i++) {
        char *eq = strchr(strings[i], '=');
        if (eq == strings[i])
            continue;
        if (eq)
            *eq = '\0';
        setenv(strings[i], eq ? eq + 1 : "", 1);
        if (eq)
            *eq = '=';
    }
    char *argv[S_ARGS_MAX + 16 + 2]; /* the program, the strings, NULL */
    int argc = 0;
    static char program[] = "fuzz_cfg";
    argv[argc++] = program;
    for (size_t i = nenv; i < n; i++)
        argv[argc++] = strings[i];
    argv[argc] = NULL;

    const cfg_row_t *rows = required ? s_rows_required : s_rows;
    size_t nrows = required ? S_NROWS(s_rows_required) : S_NROWS(s_rows);
    cfg_t *c = NULL;
    char err[1024] = "";
    cfg_result_t r = cfg_load(&c, "fuzz_cfg", "A table with a row of every type.", rows, nrows,
                              argc, argv, devnull, err, sizeof err);
    switch (r) {
    case CFG_OK:
        if (!c)
            abort();
        s_check_ok(c, rows, nrows);
        cfg_destroy(&c);
        break;
    case CFG_EXIT_HELP:
        if (c)
            abort();
        break;
    case CFG_EXIT_ERROR:
        if (c || strncmp(err, "fuzz_cfg: ", 10) != 0)
            abort();
        s_no_control(err);
        break;
    default:
        abort();
    }
    clearenv();
    free(text);
    return 0;
}
