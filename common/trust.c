/*
 * trust — a sorted array of keys, searched by bsearch for every message;
 * each entry keeps its patterns split once, so that a check is a few
 * fnmatch calls. A reload builds a new array beside the old one and swaps
 * them only when the whole directory read cleanly.
 */
#include "trust.h"

#include "log.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

/* A certificate is a few hundred bytes; anything much larger is no
 * certificate (and is not handed to the parser). */
#define S_FILE_MAX (64 * 1024)

typedef struct {
    char key[TRUST_KEY_LEN + 1];
    bool relay;
    char *node_ids; /* as given, for comparisons; NULL for none */
    char **pattern; /* node_ids split at the commas */
    size_t npatterns;
} s_entry_t;

struct trust_t {
    s_entry_t *v;
    size_t n, cap;
};

trust_t *trust_new(void)
{
    return calloc(1, sizeof(trust_t));
}

static void s_entry_free(s_entry_t *e)
{
    for (size_t i = 0; i < e->npatterns; i++)
        free(e->pattern[i]);
    free(e->pattern);
    free(e->node_ids);
}

static void s_clear(trust_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        s_entry_free(&self->v[i]);
    free(self->v);
    self->v = NULL;
    self->n = self->cap = 0;
}

void trust_destroy(trust_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_clear(*self_p);
    free(*self_p);
    *self_p = NULL;
}

size_t trust_count(const trust_t *self)
{
    return self->n;
}

static bool s_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One item of a node-id list, blanks around it trimmed: [a, b). */
static int s_item_check(const char *a, const char *b, char *why, size_t whylen)
{
    size_t len = (size_t)(b - a);
    if (len == 0) {
        snprintf(why, whylen, "an empty node id");
        return -EINVAL;
    }
    if (len > WIRE_NAME_MAX) {
        snprintf(why, whylen, "'%.*s...': longer than %d characters", 16, a, WIRE_NAME_MAX);
        return -EINVAL;
    }
    for (const char *p = a; p < b; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '*' || c == '?' || c == '[' ||
                  c == ']' || c == '!';
        if (!ok) {
            snprintf(why, whylen, "'%.*s': character 0x%02x is neither a node id's nor a pattern's",
                     (int)len, a, (unsigned char)c);
            return -EINVAL;
        }
    }
    return 0;
}

/* Calls `fn` for each item of a node-id list (trimmed); stops at the first
 * failure and returns it. */
static int s_items(const char *list, int (*fn)(const char *a, const char *b, void *arg), void *arg)
{
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && s_blank(*a))
            a++;
        while (b > a && s_blank(b[-1]))
            b--;
        int rc = fn(a, b, arg);
        if (rc < 0)
            return rc;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

typedef struct {
    char *why;
    size_t whylen;
} s_check_t;

static int s_check_one(const char *a, const char *b, void *arg)
{
    s_check_t *c = arg;
    return s_item_check(a, b, c->why, c->whylen);
}

int trust_patterns_check(const char *node_ids, char *why, size_t whylen)
{
    if (strlen(node_ids) > TRUST_NODE_IDS_MAX) {
        snprintf(why, whylen, "node-id is longer than %d bytes", TRUST_NODE_IDS_MAX);
        return -EINVAL;
    }
    s_check_t c = {why, whylen};
    return s_items(node_ids, s_check_one, &c);
}

static int s_split_one(const char *a, const char *b, void *arg)
{
    s_entry_t *e = arg;
    char *p = strndup(a, (size_t)(b - a));
    if (!p)
        return -ENOMEM;
    e->pattern[e->npatterns++] = p;
    return 0;
}

static bool s_key_valid(const char *key)
{
    uint8_t bin[32];
    return key && strlen(key) == TRUST_KEY_LEN && zmq_z85_decode(bin, key) != NULL;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(((const s_entry_t *)a)->key, ((const s_entry_t *)b)->key);
}

static s_entry_t *s_find(const trust_t *self, const char *key)
{
    if (!key || strlen(key) != TRUST_KEY_LEN || !self->n)
        return NULL;
    s_entry_t probe;
    memcpy(probe.key, key, TRUST_KEY_LEN + 1);
    return bsearch(&probe, self->v, self->n, sizeof *self->v, s_cmp);
}

int trust_add(trust_t *self, const char *key, const char *node_ids, bool relay, char *err,
              size_t errlen)
{
    if (!s_key_valid(key)) {
        snprintf(err, errlen, "not a CURVE public key (40 characters of Z85)");
        return -EINVAL;
    }
    if (node_ids && !*node_ids)
        node_ids = NULL;
    if (node_ids && relay) {
        snprintf(err, errlen,
                 "both role = relay and node-id: a relay speaks for any source; "
                 "choose one");
        return -EINVAL;
    }
    char why[256];
    if (node_ids && trust_patterns_check(node_ids, why, sizeof why) < 0) {
        snprintf(err, errlen, "node-id: %s", why);
        return -EINVAL;
    }
    s_entry_t *old = s_find(self, key);
    if (old) {
        bool same = old->relay == relay && !old->node_ids == !node_ids &&
                    (!node_ids || strcmp(old->node_ids, node_ids) == 0);
        if (same)
            return 0; /* the same certificate twice (a copy) */
        snprintf(err, errlen, "key %s is in the list already, with other rights", key);
        return -EINVAL;
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        s_entry_t *v = realloc(self->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        self->v = v;
        self->cap = cap;
    }
    s_entry_t e = {.relay = relay};
    memcpy(e.key, key, TRUST_KEY_LEN + 1);
    if (node_ids) {
        size_t items = 1;
        for (const char *p = node_ids; *p; p++)
            items += *p == ',';
        e.node_ids = strdup(node_ids);
        e.pattern = calloc(items, sizeof *e.pattern);
        if (!e.node_ids || !e.pattern || s_items(node_ids, s_split_one, &e) < 0) {
            s_entry_free(&e);
            return -ENOMEM;
        }
    }
    /* keep the array sorted: insertion (lists are small, loaded rarely) */
    size_t at = self->n;
    while (at > 0 && strcmp(self->v[at - 1].key, key) > 0)
        at--;
    memmove(&self->v[at + 1], &self->v[at], (self->n - at) * sizeof *self->v);
    self->v[at] = e;
    self->n++;
    return 0;
}

bool trust_known(const trust_t *self, const char *key)
{
    return s_find(self, key) != NULL;
}

bool trust_allows(const trust_t *self, const char *key, const char *source)
{
    const s_entry_t *e = s_find(self, key);
    if (!e)
        return false;
    if (e->relay)
        return true;
    for (size_t i = 0; i < e->npatterns; i++)
        if (fnmatch(e->pattern[i], source, 0) == 0)
            return true;
    return false;
}

static bool s_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Copies a `name = value` line's value (quoted or bare) into `out`;
 * false when it is not such a line. */
static bool s_value(const char *p, char *name, size_t namelen, char *out, size_t outlen)
{
    size_t n = 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '-' || *p == '_' || *p == '.' || *p == '/') {
        if (n + 1 < namelen)
            name[n++] = *p;
        p++;
    }
    name[n] = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    if (n == 0 || *p != '=')
        return false;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *a = p, *b;
    if (*p == '"' || *p == '\'') {
        b = strchr(p + 1, *p);
        if (!b)
            return false;
        a = p + 1;
    } else {
        b = a + strcspn(a, " \t#");
    }
    size_t len = (size_t)(b - a);
    if (len >= outlen)
        return false;
    memcpy(out, a, len);
    out[len] = '\0';
    return true;
}

int trust_cert_read(const char *path, trust_cert_t *cert, char *why, size_t whylen)
{
    memset(cert, 0, sizeof *cert);
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(why, whylen, "%s", strerror(e));
        return -e;
    }
    char line[TRUST_NODE_IDS_MAX + 256];
    char section[32] = "";
    size_t lineno = 0, bytes = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        bytes += len;
        if (bytes > S_FILE_MAX || (len == sizeof line - 1 && line[len - 1] != '\n')) {
            snprintf(why, whylen, "not a certificate (line %zu: too long)", lineno);
            rc = -EINVAL;
            break;
        }
        line[strcspn(line, "\r\n")] = '\0';
        size_t indent = strspn(line, " ");
        if (!line[indent] || line[indent] == '#')
            continue;
        char name[64], value[TRUST_NODE_IDS_MAX + 1];
        if (indent == 0) {
            size_t w = strspn(line, "abcdefghijklmnopqrstuvwxyz-_");
            if (w == 0 || w >= sizeof section || line[w + strspn(line + w, " ")] != '\0') {
                snprintf(why, whylen, "not a certificate (line %zu)", lineno);
                rc = -EINVAL;
                break;
            }
            snprintf(section, sizeof section, "%.*s", (int)w, line);
            continue;
        }
        if (indent != 4 || !*section ||
            !s_value(line + 4, name, sizeof name, value, sizeof value)) {
            snprintf(why, whylen, "not a certificate (line %zu)", lineno);
            rc = -EINVAL;
            break;
        }
        if (strcmp(section, "curve") == 0 && strcmp(name, "public-key") == 0)
            snprintf(cert->public_key, sizeof cert->public_key, "%.40s", value);
        else if (strcmp(section, "curve") == 0 && strcmp(name, "secret-key") == 0)
            snprintf(cert->secret_key, sizeof cert->secret_key, "%.40s", value);
        else if (strcmp(section, "metadata") == 0 && strcmp(name, "node-id") == 0)
            snprintf(cert->node_ids, sizeof cert->node_ids, "%s", value);
        else if (strcmp(section, "metadata") == 0 && strcmp(name, "role") == 0)
            snprintf(cert->role, sizeof cert->role, "%.31s", value);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(why, whylen, "%s", strerror(errno));
        rc = -EIO;
    }
    fclose(f);
    if (rc < 0)
        return rc;
    if (!s_key_valid(cert->public_key)) {
        snprintf(why, whylen, "not a certificate (no curve public-key of 40 characters of Z85)");
        return -EINVAL;
    }
    if (*cert->secret_key && !s_key_valid(cert->secret_key)) {
        snprintf(why, whylen, "its secret-key is not 40 characters of Z85");
        return -EINVAL;
    }
    return 0;
}

/* Adds the certificate in `path` to `into`. */
static int s_load_file(trust_t *into, const char *path, char *err, size_t errlen)
{
    trust_cert_t *cert = malloc(sizeof *cert);
    if (!cert) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    char why[512];
    int rc = trust_cert_read(path, cert, why, sizeof why);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        free(cert);
        return rc;
    }
    if (*cert->secret_key)
        log_warn("%s: a secret certificate in an allow-list: only its public key is used (keep "
                 "the secret one with its owner)",
                 path);
    bool relay = strcmp(cert->role, "relay") == 0;
    if (*cert->role && !relay && strcmp(cert->role, "agent") != 0) {
        snprintf(err, errlen, "%s: role = \"%s\": only \"relay\" (or \"agent\") is known", path,
                 cert->role);
        rc = -EINVAL;
    } else if ((rc = trust_add(into, cert->public_key, cert->node_ids, relay, why, sizeof why)) <
               0) {
        snprintf(err, errlen, "%s: %s", path, rc == -ENOMEM ? "out of memory" : why);
    } else if (!relay && !*cert->node_ids) {
        log_warn("%s: neither node-id nor role = relay: its holder may connect but speaks for "
                 "no source",
                 path);
    }
    free(cert);
    return rc;
}

int trust_load(trust_t *self, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(e));
        return -e;
    }
    trust_t *fresh = trust_new();
    int rc = fresh ? 0 : -ENOMEM;
    if (!fresh)
        snprintf(err, errlen, "%s: out of memory", dir);
    struct dirent *ent;
    while (rc == 0 && (ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, ent->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (s_ends_with(ent->d_name, "_secret")) {
            log_warn("%s: a secret certificate in an allow-list: skipped (the allow-list needs "
                     "only the public one; keep the secret one with its owner)",
                     path);
            continue;
        }
        rc = s_load_file(fresh, path, err, errlen);
    }
    closedir(d);
    if (rc < 0) {
        trust_destroy(&fresh);
        return rc;
    }
    s_clear(self);
    *self = *fresh;
    free(fresh);
    return (int)self->n;
}
