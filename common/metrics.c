/*
 * metrics — a fixed-capacity registry of entries. The event loop is the only
 * writer: it updates values with relaxed atomic stores (no lock, no
 * read-modify-write bus lock) and publishes new entries by bumping `count`
 * with release order. The HTTP thread reads `count` with acquire order and
 * renders only entries below it.
 */
#include "metrics.h"

#include "cfg.h"
#include "log.h"

#include <errno.h>
#include <math.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_MAX_ENTRIES 4096
#define S_NAME_MAX 96
#define S_LABELS_MAX 256
#define S_HELP_MAX 200

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_kind_t;

typedef struct {
    char name[S_NAME_MAX];
    char labels[S_LABELS_MAX];
    char help[S_HELP_MAX];
    s_kind_t kind;
    _Atomic uint64_t value; /* counter count, or gauge double bits */
    /* histogram */
    size_t nbounds;
    double bounds[METRICS_MAX_BUCKETS];
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1];
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t observations;
} s_entry_t;

struct metrics_t {
    s_entry_t *entries;
    _Atomic size_t count;
    struct MHD_Daemon *httpd;
    unsigned port;
};

static uint64_t s_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double s_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void s_store(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

static uint64_t s_load(const _Atomic uint64_t *p)
{
    return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed);
}

metrics_t *metrics_new(const char *service, const char *version)
{
    metrics_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->entries = calloc(S_MAX_ENTRIES, sizeof *self->entries);
    if (!self->entries) {
        free(self);
        return NULL;
    }
    char name[S_NAME_MAX], labels[S_LABELS_MAX], esc[64];
    snprintf(name, sizeof name, "tapmesh_%s_build_info", service);
    snprintf(labels, sizeof labels, "version=\"%s\"",
             metrics_label_escape(version, esc, sizeof esc));
    metrics_set(self, metrics_gauge(self, name, "tapmesh version this process runs", labels), 1);
    snprintf(name, sizeof name, "tapmesh_%s_process_start_time_seconds", service);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    metrics_set(self,
                metrics_gauge(self, name, "Start time of the process since the Unix epoch", NULL),
                (double)now.tv_sec + now.tv_nsec / 1e9);
    return self;
}

void metrics_destroy(metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    metrics_t *self = *self_p;
    if (self->httpd)
        MHD_stop_daemon(self->httpd);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

static metric_id_t s_register(metrics_t *self, s_kind_t kind, const char *name, const char *help,
                              const char *labels)
{
    size_t n = atomic_load_explicit(&self->count, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        s_entry_t *e = &self->entries[i];
        if (strcmp(e->name, name) == 0 && strcmp(e->labels, labels ? labels : "") == 0)
            return (metric_id_t)i;
    }
    if (n >= S_MAX_ENTRIES) {
        log_warn("metrics: registry full, %s{%s} not exported", name, labels ? labels : "");
        return -ENOSPC;
    }
    s_entry_t *e = &self->entries[n];
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->labels, sizeof e->labels, "%s", labels ? labels : "");
    snprintf(e->help, sizeof e->help, "%s", help);
    e->kind = kind;
    return (metric_id_t)n;
}

static void s_publish(metrics_t *self, metric_id_t id)
{
    size_t n = atomic_load_explicit(&self->count, memory_order_relaxed);
    if (id >= 0 && (size_t)id == n)
        atomic_store_explicit(&self->count, n + 1, memory_order_release);
}

metric_id_t metrics_counter(metrics_t *self, const char *name, const char *help, const char *labels)
{
    metric_id_t id = s_register(self, S_COUNTER, name, help, labels);
    s_publish(self, id);
    return id;
}

metric_id_t metrics_gauge(metrics_t *self, const char *name, const char *help, const char *labels)
{
    metric_id_t id = s_register(self, S_GAUGE, name, help, labels);
    if (id >= 0 && (size_t)id == atomic_load_explicit(&self->count, memory_order_relaxed))
        s_store(&self->entries[id].value, s_bits(0.0));
    s_publish(self, id);
    return id;
}

metric_id_t metrics_histogram(metrics_t *self, const char *name, const char *help,
                              const char *labels, const double *bounds, size_t nbounds)
{
    if (nbounds > METRICS_MAX_BUCKETS)
        nbounds = METRICS_MAX_BUCKETS;
    metric_id_t id = s_register(self, S_HISTOGRAM, name, help, labels);
    if (id >= 0 && (size_t)id == atomic_load_explicit(&self->count, memory_order_relaxed)) {
        s_entry_t *e = &self->entries[id];
        e->nbounds = nbounds;
        memcpy(e->bounds, bounds, nbounds * sizeof *bounds);
        s_store(&e->sum_bits, s_bits(0.0));
    }
    s_publish(self, id);
    return id;
}

void metrics_add(metrics_t *self, metric_id_t id, uint64_t n)
{
    if (id < 0)
        return;
    s_entry_t *e = &self->entries[id];
    s_store(&e->value, s_load(&e->value) + n);
}

void metrics_set(metrics_t *self, metric_id_t id, double value)
{
    if (id < 0)
        return;
    s_store(&self->entries[id].value, s_bits(value));
}

void metrics_observe(metrics_t *self, metric_id_t id, double value)
{
    if (id < 0)
        return;
    s_entry_t *e = &self->entries[id];
    size_t b = 0;
    while (b < e->nbounds && value > e->bounds[b])
        b++;
    s_store(&e->buckets[b], s_load(&e->buckets[b]) + 1);
    s_store(&e->sum_bits, s_bits(s_double(s_load(&e->sum_bits)) + value));
    atomic_store_explicit(&e->observations, s_load(&e->observations) + 1, memory_order_release);
}

double metrics_value(const metrics_t *self, metric_id_t id)
{
    if (id < 0)
        return 0;
    const s_entry_t *e = &self->entries[id];
    if (e->kind == S_COUNTER)
        return (double)s_load(&e->value);
    if (e->kind == S_GAUGE)
        return s_double(s_load(&e->value));
    return (double)s_load(&e->observations);
}

char *metrics_label_escape(const char *value, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = value; *p && o + 3 < outlen; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

/* A growing text buffer for the HTTP thread; on allocation failure it stops
 * growing and the caller sees `failed`. */
typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} s_text_t;

static void s_printf(s_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_printf(s_text_t *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *d = realloc(t->data, cap);
        if (!d) {
            t->failed = true;
            return;
        }
        t->data = d;
        t->cap = cap;
    }
}

static void s_number(s_text_t *t, double v)
{
    if (isinf(v))
        s_printf(t, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        s_printf(t, "%.0f", v);
    else {
        /* the shortest text that reads back as the same double: "%.9g"
         * alone rounds a Unix time in seconds to ten seconds */
        char buf[32];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
        s_printf(t, "%s", buf);
    }
}

static void s_sample(s_text_t *t, const char *name, const char *suffix, const char *labels,
                     const char *extra)
{
    bool any = (labels && *labels) || (extra && *extra);
    s_printf(t, "%s%s", name, suffix);
    if (any)
        s_printf(t, "{%s%s%s}", labels ? labels : "", labels && *labels && extra ? "," : "",
                 extra ? extra : "");
    s_printf(t, " ");
}

char *metrics_render(const metrics_t *self, size_t *len)
{
    size_t n = atomic_load_explicit((_Atomic size_t *)&self->count, memory_order_acquire);
    s_text_t t = {.data = malloc(16384), .cap = 16384};
    if (!t.data)
        return NULL;
    t.data[0] = '\0';
    bool *done = calloc(n ? n : 1, 1);
    if (!done) {
        free(t.data);
        return NULL;
    }
    static const char *const types[] = {"counter", "gauge", "histogram"};
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        const s_entry_t *f = &self->entries[i];
        s_printf(&t, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, types[f->kind]);
        for (size_t j = i; j < n; j++) {
            const s_entry_t *e = &self->entries[j];
            if (done[j] || strcmp(e->name, f->name) != 0)
                continue;
            done[j] = true;
            if (e->kind == S_COUNTER) {
                s_sample(&t, e->name, "", e->labels, NULL);
                s_printf(&t, "%llu\n", (unsigned long long)s_load(&e->value));
            } else if (e->kind == S_GAUGE) {
                s_sample(&t, e->name, "", e->labels, NULL);
                s_number(&t, s_double(s_load(&e->value)));
                s_printf(&t, "\n");
            } else {
                uint64_t count = atomic_load_explicit((_Atomic uint64_t *)&e->observations,
                                                      memory_order_acquire);
                uint64_t cum = 0;
                char le[64];
                for (size_t b = 0; b < e->nbounds; b++) {
                    cum += s_load(&e->buckets[b]);
                    if (cum > count)
                        cum = count; /* an observation in flight */
                    snprintf(le, sizeof le, "le=\"%.9g\"", e->bounds[b]);
                    s_sample(&t, e->name, "_bucket", e->labels, le);
                    s_printf(&t, "%llu\n", (unsigned long long)cum);
                }
                s_sample(&t, e->name, "_bucket", e->labels, "le=\"+Inf\"");
                s_printf(&t, "%llu\n", (unsigned long long)count);
                s_sample(&t, e->name, "_sum", e->labels, NULL);
                s_number(&t, s_double(s_load(&e->sum_bits)));
                s_printf(&t, "\n");
                s_sample(&t, e->name, "_count", e->labels, NULL);
                s_printf(&t, "%llu\n", (unsigned long long)count);
            }
        }
    }
    free(done);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    if (len)
        *len = t.len;
    return t.data;
}

static enum MHD_Result s_respond(struct MHD_Connection *conn, unsigned status, const char *type,
                                 char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result s_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    const metrics_t *self = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static char msg[] = "only GET\n";
        return s_respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", msg, sizeof msg - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/metrics") != 0) {
        static char msg[] = "tapmesh: metrics are at /metrics\n";
        return s_respond(conn, MHD_HTTP_NOT_FOUND, "text/plain", msg, sizeof msg - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    size_t len = 0;
    char *body = metrics_render(self, &len);
    if (!body) {
        static char msg[] = "out of memory\n";
        return s_respond(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", msg, sizeof msg - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    return s_respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
                     MHD_RESPMEM_MUST_FREE);
}

int metrics_serve(metrics_t *self, const char *addrport, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char why[200];
    if (cfg_addrport_parse(addrport, &ss, &sslen, why, sizeof why) < 0) {
        snprintf(err, errlen, "METRICS_ADDRPORT='%s': %s", addrport, why);
        return -EINVAL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    bool any6 = ss.ss_family == AF_INET6 && memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr,
                                                   &in6addr_any, sizeof(struct in6_addr)) == 0;
    if (any6)
        flags |= MHD_USE_DUAL_STACK;
    uint16_t port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                            : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    errno = 0;
    self->httpd = MHD_start_daemon(flags, port, NULL, NULL, s_handler, self, MHD_OPTION_SOCK_ADDR,
                                   (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT,
                                   (unsigned)10, MHD_OPTION_END);
    if (!self->httpd && any6) {
        /* no IPv6 on this host: all IPv4 addresses instead */
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        self->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, port, NULL, NULL, s_handler,
                                       self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    }
    if (!self->httpd) {
        int e = errno ? errno : EADDRINUSE;
        snprintf(err, errlen, "METRICS_ADDRPORT='%s': cannot listen: %s", addrport, strerror(e));
        return -e;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->httpd, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : port;
    return 0;
}

unsigned metrics_port(const metrics_t *self)
{
    return self->port;
}
