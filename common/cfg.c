/*
 * cfg — the settings table: environment, then flags, then one validation
 * pass. Values are kept as text plus, for numbers and enums, the parsed
 * integer; nothing changes after cfg_load returns.
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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TAPMESH_VERSION
#define TAPMESH_VERSION "0.0.0"
#endif

struct cfg_t {
    const cfg_row_t *rows;
    size_t nrows;
    char **text;    /* value per row, NULL when unset */
    int64_t *value; /* parsed CFG_INT / CFG_BOOL / CFG_ENUM */
};

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
        break;
    }
    return "TEXT";
}

void cfg_help(FILE *out, const char *program, const char *summary, const cfg_row_t *rows,
              size_t nrows)
{
    fprintf(out, "Usage: %s [--setting VALUE]...\n%s\n\n", program, summary);
    fprintf(out, "Every setting is read from its environment variable first; the flag of the\n"
                 "same name overrides it.\n\n");
    for (size_t i = 0; i < nrows; i++) {
        const cfg_row_t *r = &rows[i];
        char flag[64];
        s_flag_name(r->env, flag, sizeof flag);
        fprintf(out, "  %s, --%s %s\n", r->env, flag, s_type_hint(r));
        fprintf(out, "      %s\n", r->help);
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
    fprintf(out, "\n  --help      this text\n  --version   print the version\n");
}

/* A node id travels as a wire name: one rule, the protocol's (ASCII, not
 * the locale's isalnum). */
bool cfg_name_valid(const char *text)
{
    return wire_name_valid(text);
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

    bool *from_flag = calloc(nrows ? nrows : 1, sizeof *from_flag);
    if (!from_flag)
        goto nomem;
    for (size_t i = 0; i < nrows; i++) {
        const char *env = getenv(rows[i].env);
        if (env)
            s_set(self, i, env);
        else if (rows[i].def)
            s_set(self, i, rows[i].def);
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cfg_help(out, program, summary, rows, nrows);
            free(from_flag);
            cfg_destroy(&self);
            return CFG_EXIT_HELP;
        }
        if (strcmp(arg, "--version") == 0) {
            fprintf(out, "%s %s\n", program, TAPMESH_VERSION);
            free(from_flag);
            cfg_destroy(&self);
            return CFG_EXIT_HELP;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "%s: unexpected argument '%s' (settings are --name VALUE)",
                     program, arg);
            goto fail;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        ssize_t i = s_row_by_flag(rows, nrows, name, nlen);
        if (i < 0) {
            snprintf(err, errlen, "%s: unknown option '%.*s' (see --help)", program,
                     (int)(nlen + 2), arg);
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
            snprintf(err, errlen, "%s: option '%s' needs a value", program, arg);
            goto fail;
        }
        s_set(self, (size_t)i, val);
        from_flag[i] = true;
    }
    for (size_t i = 0; i < nrows; i++) {
        const cfg_row_t *r = &rows[i];
        char flag[64], why[300];
        s_flag_name(r->env, flag, sizeof flag);
        char subject[160];
        if (from_flag[i])
            snprintf(subject, sizeof subject, "--%s (%s)", flag, r->env);
        else
            snprintf(subject, sizeof subject, "%s", r->env);
        if (!self->text[i] || (!*self->text[i] && r->required)) {
            if (r->required) {
                snprintf(err, errlen, "%s: %s is not set: %s", program, subject, r->help);
                goto fail;
            }
            continue;
        }
        if (!*self->text[i] && r->type != CFG_STR && r->type != CFG_ADDRPORT) {
            /* explicitly emptied: back to unset */
            free(self->text[i]);
            self->text[i] = NULL;
            if (!r->def || !*r->def)
                continue;
            s_set(self, i, r->def);
        }
        if (s_check(r, self->text[i], &self->value[i], why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s='%s': %s", program, subject, self->text[i], why);
            goto fail;
        }
    }
    free(from_flag);
    *self_p = self;
    return CFG_OK;
fail:
    free(from_flag);
    cfg_destroy(&self);
    return CFG_EXIT_ERROR;
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
