/*
 * metrics — a fixed-capacity registry of entries. The event loop is the only
 * writer: it updates values with relaxed atomic stores (no lock, no
 * read-modify-write bus lock) and publishes new entries by bumping `count`
 * with release order. The HTTP thread reads `count` with acquire order and
 * renders only entries below it. Process metrics are entries whose value is
 * read from the kernel at render time, so the event loop never pays for them.
 *
 * The HTTP server runs libmicrohttpd's one internal polling thread; the
 * connection bookkeeping below (which connections wait for a request, and in
 * what order) is touched only from its callbacks, so it needs no lock.
 */
#include "metrics.h"

#include "cfg.h"
#include "log.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_ENTRIES 4096
#define S_NAME_MAX 96
#define S_LABELS_MAX 256
#define S_HELP_MAX 200

/* HTTP connections: at most S_CONN_MAX, and never more than a quarter of
 * the descriptors the process may open (the rest belong to the service's
 * sockets and files); at least S_CONN_MIN. */
#define S_CONN_MAX 256u
#define S_CONN_MIN 8u
/* seconds a connection may stay silent before the server closes it */
#define S_CONN_IDLE_S 10u

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_kind_t;

/* Where a process metric's value comes from; S_PROC_NONE for the others. */
typedef enum {
    S_PROC_NONE,
    S_PROC_CPU,
    S_PROC_RSS,
    S_PROC_VSZ,
    S_PROC_FDS,
    S_PROC_MAXFDS,
    S_PROC_N
} s_proc_t;

typedef struct {
    char name[S_NAME_MAX];
    char labels[S_LABELS_MAX];
    char help[S_HELP_MAX];
    s_kind_t kind;
    s_proc_t proc;
    _Atomic uint64_t value; /* counter count, or gauge double bits */
    /* histogram */
    size_t nbounds;
    double bounds[METRICS_MAX_BUCKETS];
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1];
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t observations;
} s_entry_t;

/* One HTTP connection, from accept to close. */
typedef struct s_conn_t {
    struct s_conn_t *prev, *next; /* in the waiting list */
    int fd;
    bool waiting; /* no request in progress: in the waiting list */
    bool evicted; /* shut down to make room; libmicrohttpd closes it next */
} s_conn_t;

struct metrics_t {
    s_entry_t *entries;
    _Atomic size_t count;
    _Atomic uint64_t alive_ns; /* monotonic time of the last metrics_alive; 0: never */
    _Atomic unsigned alive_timeout_ms;
    struct MHD_Daemon *httpd;
    unsigned port;
    /* the HTTP thread's own */
    unsigned conn_limit;                   /* libmicrohttpd refuses beyond this */
    unsigned conn_room;                    /* beyond this, a newcomer evicts the longest waiting */
    unsigned conns;                        /* open and not evicted */
    s_conn_t *waiting_head, *waiting_tail; /* oldest first */
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

/* Reads a small /proc file whole; returns its length, or -1. */
static ssize_t s_read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

static double s_seconds(struct timespec ts)
{
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* When this process started, in seconds since the Unix epoch: the kernel
 * keeps its start in clock ticks since boot (field 22 of /proc/self/stat),
 * so it is now minus the process's age. The time metrics_new runs when that
 * cannot be read. */
static double s_start_time(void)
{
    struct timespec real, boot;
    clock_gettime(CLOCK_REALTIME, &real);
    double now = s_seconds(real);
    char buf[2048];
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0 || s_read_small("/proc/self/stat", buf, sizeof buf) <= 0 ||
        clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
        return now;
    /* the command name (field 2) may hold spaces and parentheses */
    char *p = strrchr(buf, ')');
    for (int field = 2; p && field < 22; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (!p)
        return now;
    char *end;
    errno = 0;
    unsigned long long ticks = strtoull(p, &end, 10);
    if (end == p || errno)
        return now;
    double age = s_seconds(boot) - (double)ticks / (double)hz;
    return age > 0 ? now - age : now;
}

/* One reading of the process metrics; `ok` is false where the kernel would
 * not tell. */
typedef struct {
    double v[S_PROC_N];
    bool ok[S_PROC_N];
} s_procstat_t;

static void s_procstat_read(s_procstat_t *ps)
{
    memset(ps, 0, sizeof *ps);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        ps->v[S_PROC_CPU] = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                            (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        ps->ok[S_PROC_CPU] = true;
    }
    char buf[256];
    unsigned long long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    if (page > 0 && s_read_small("/proc/self/statm", buf, sizeof buf) > 0 &&
        sscanf(buf, "%llu %llu", &size, &resident) == 2) {
        ps->v[S_PROC_VSZ] = (double)size * (double)page;
        ps->v[S_PROC_RSS] = (double)resident * (double)page;
        ps->ok[S_PROC_VSZ] = ps->ok[S_PROC_RSS] = true;
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int own = dirfd(d); /* open only to count: not the service's */
        double n = 0;
        for (struct dirent *de; (de = readdir(d)) != NULL;)
            if (de->d_name[0] != '.' && atoi(de->d_name) != own)
                n++;
        closedir(d);
        ps->v[S_PROC_FDS] = n;
        ps->ok[S_PROC_FDS] = true;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        ps->v[S_PROC_MAXFDS] = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
        ps->ok[S_PROC_MAXFDS] = true;
    }
}

static void s_process_metric(metrics_t *self, s_kind_t kind, const char *name, const char *help,
                             s_proc_t proc);

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
    atomic_init(&self->alive_timeout_ms, METRICS_ALIVE_TIMEOUT_MS);

    /* the names and types every Prometheus client library exports, so that
     * dashboards made for any process work unchanged */
    s_process_metric(self, S_COUNTER, "process_cpu_seconds_total",
                     "Total user and system CPU time spent in seconds.", S_PROC_CPU);
    s_process_metric(self, S_GAUGE, "process_resident_memory_bytes",
                     "Resident memory size in bytes.", S_PROC_RSS);
    s_process_metric(self, S_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                     S_PROC_VSZ);
    s_process_metric(self, S_GAUGE, "process_open_fds", "Number of open file descriptors.",
                     S_PROC_FDS);
    s_process_metric(self, S_GAUGE, "process_max_fds", "Maximum number of open file descriptors.",
                     S_PROC_MAXFDS);
    metrics_set(self,
                metrics_gauge(self, "process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.", NULL),
                s_start_time());
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

/* A metric read from the kernel when rendered (see s_procstat_read). */
static void s_process_metric(metrics_t *self, s_kind_t kind, const char *name, const char *help,
                             s_proc_t proc)
{
    metric_id_t id = s_register(self, kind, name, help, NULL);
    if (id >= 0 && (size_t)id == atomic_load_explicit(&self->count, memory_order_relaxed))
        self->entries[id].proc = proc;
    s_publish(self, id);
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
    if (e->proc != S_PROC_NONE) {
        s_procstat_t ps;
        s_procstat_read(&ps);
        return ps.ok[e->proc] ? ps.v[e->proc] : NAN;
    }
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
    s_procstat_t ps;
    s_procstat_read(&ps);
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
            if (e->proc != S_PROC_NONE) {
                if (ps.ok[e->proc]) { /* else no sample: better none than a wrong one */
                    s_sample(&t, e->name, "", e->labels, NULL);
                    s_number(&t, ps.v[e->proc]);
                    s_printf(&t, "\n");
                }
            } else if (e->kind == S_COUNTER) {
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

/* ---- liveness --------------------------------------------------------- */

static uint64_t s_monotonic_ns(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    /* a few nanoseconds per loop pass; milliseconds of resolution are
     * plenty against a timeout of seconds */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_alive(metrics_t *self)
{
    uint64_t now = s_monotonic_ns();
    s_store(&self->alive_ns, now ? now : 1); /* 0 means "never" */
}

void metrics_set_alive_timeout(metrics_t *self, unsigned timeout_ms)
{
    atomic_store_explicit(&self->alive_timeout_ms,
                          timeout_ms ? timeout_ms : METRICS_ALIVE_TIMEOUT_MS, memory_order_relaxed);
}

/* ---- HTTP ------------------------------------------------------------- */

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

static enum MHD_Result s_healthz(const metrics_t *self, struct MHD_Connection *conn)
{
    uint64_t last = s_load(&self->alive_ns);
    uint64_t timeout_ms =
        atomic_load_explicit((_Atomic unsigned *)&self->alive_timeout_ms, memory_order_relaxed);
    uint64_t now = s_monotonic_ns();
    if (last == 0 || now <= last || now - last <= timeout_ms * 1000000u) {
        static char ok[] = "ok\n";
        return s_respond(conn, MHD_HTTP_OK, "text/plain", ok, sizeof ok - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    char msg[160];
    int n = snprintf(msg, sizeof msg,
                     "tapmesh: event loop stalled: no pass for %.1f s (timeout %.1f s)\n",
                     (double)(now - last) / 1e9, (double)timeout_ms / 1e3);
    return s_respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", msg, (size_t)n,
                     MHD_RESPMEM_MUST_COPY);
}

static void s_waiting_push(metrics_t *self, s_conn_t *c)
{
    if (c->waiting || c->evicted)
        return;
    c->waiting = true;
    c->next = NULL;
    c->prev = self->waiting_tail;
    if (self->waiting_tail)
        self->waiting_tail->next = c;
    else
        self->waiting_head = c;
    self->waiting_tail = c;
}

static void s_waiting_remove(metrics_t *self, s_conn_t *c)
{
    if (!c->waiting)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        self->waiting_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        self->waiting_tail = c->prev;
    c->prev = c->next = NULL;
    c->waiting = false;
}

static s_conn_t *s_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* A new connection past the room: the ones that have waited longest without
 * a request are shut down (libmicrohttpd then sees them end and closes them).
 * Without this, connections that never ask fill the server until their
 * timeout, and a scrape behind them waits in the listen queue. One that is
 * being answered is never cut. */
static void s_make_room(metrics_t *self, const s_conn_t *newcomer)
{
    while (self->conns > self->conn_room && self->waiting_head && self->waiting_head != newcomer) {
        s_conn_t *old = self->waiting_head;
        s_waiting_remove(self, old);
        old->evicted = true;
        self->conns--;
        shutdown(old->fd, SHUT_RDWR);
    }
}

static void s_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode code)
{
    metrics_t *self = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        s_conn_t *c = info ? calloc(1, sizeof *c) : NULL;
        *socket_context = c;
        if (!c)
            return; /* untracked; libmicrohttpd's limit still holds */
        c->fd = info->connect_fd;
        self->conns++;
        s_waiting_push(self, c);
        s_make_room(self, c);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        s_conn_t *c = *socket_context;
        if (!c)
            return;
        s_waiting_remove(self, c);
        if (!c->evicted)
            self->conns--;
        free(c);
        *socket_context = NULL;
    }
}

/* A request is over: a connection kept alive waits for the next one, and
 * is the newest to wait. */
static void s_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)con_cls;
    (void)toe;
    s_conn_t *c = s_conn_of(conn);
    if (c)
        s_waiting_push(cls, c);
}

static enum MHD_Result s_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    metrics_t *self = cls;
    s_conn_t *c = s_conn_of(conn);
    if (c)
        s_waiting_remove(self, c); /* being answered: not to be evicted */
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static char msg[] = "only GET\n";
        return s_respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", msg, sizeof msg - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/healthz") == 0)
        return s_healthz(self, conn);
    if (strcmp(url, "/metrics") != 0) {
        static char msg[] = "tapmesh: metrics are at /metrics, liveness at /healthz\n";
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

/* epoll, else poll: select() cannot watch a descriptor past FD_SETSIZE, and
 * a busy service has more. */
static unsigned s_polling_flags(void)
{
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
        return MHD_USE_EPOLL_INTERNAL_THREAD;
    if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
        return MHD_USE_POLL_INTERNAL_THREAD;
    return MHD_USE_INTERNAL_POLLING_THREAD;
}

static unsigned s_conn_limit(void)
{
    unsigned limit = S_CONN_MAX;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 4 < limit)
        limit = (unsigned)(rl.rlim_cur / 4);
    return limit < S_CONN_MIN ? S_CONN_MIN : limit;
}

static struct MHD_Daemon *s_start(metrics_t *self, unsigned flags, uint16_t port,
                                  const struct sockaddr_storage *ss)
{
    return MHD_start_daemon(
        flags | s_polling_flags(), port, NULL, NULL, s_handler, self, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)ss, MHD_OPTION_CONNECTION_TIMEOUT, S_CONN_IDLE_S,
        MHD_OPTION_CONNECTION_LIMIT, self->conn_limit, MHD_OPTION_NOTIFY_CONNECTION,
        s_on_connection, self, MHD_OPTION_NOTIFY_COMPLETED, s_on_completed, self, MHD_OPTION_END);
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
    self->conn_limit = s_conn_limit();
    /* room for a burst of newcomers accepted before the evicted are closed */
    self->conn_room = self->conn_limit - (self->conn_limit / 8 ? self->conn_limit / 8 : 1);
    unsigned flags = 0;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    bool any6 = ss.ss_family == AF_INET6 && memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr,
                                                   &in6addr_any, sizeof(struct in6_addr)) == 0;
    if (any6)
        flags |= MHD_USE_DUAL_STACK;
    uint16_t port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                            : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    errno = 0;
    self->httpd = s_start(self, flags, port, &ss);
    if (!self->httpd && any6) {
        /* no IPv6 on this host: all IPv4 addresses instead */
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        self->httpd = s_start(self, 0, port, &ss);
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
