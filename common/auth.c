/*
 * auth — a REP socket on libzmq's ZAP endpoint, and one monitor per CURVE
 * ROUTER. A monitor's handshake failure names no peer: the address comes
 * from the connection's descriptor, read when it was accepted, and the
 * failure is logged at that connection's disconnect, which libzmq reports
 * right after it (one I/O thread). Counting does not wait for it.
 */
#include "auth.h"

#include "log.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_WATCH_MAX 4
#define S_CONNS 64 /* accepted connections remembered, per socket */
#define S_SLOTS 1024
#define S_LINES_PER_SECOND 20
#define S_PASS_MAX 256 /* requests or events handled per call, per socket */
#define S_ZAP_PARTS 8

typedef enum {
    S_UNKNOWN_KEY = 0,
    S_PLAINTEXT,
    S_CRYPTO,
    S_PROTOCOL,
    S_HANDSHAKE,
    S_REASONS
} s_why_t;

static const char *const s_why_name[S_REASONS] = {"unknown_key", "plaintext", "crypto", "protocol",
                                                  "handshake"};

typedef struct {
    int fd; /* -1: free */
    char addr[INET6_ADDRSTRLEN];
} s_conn_t;

typedef struct {
    void *socket; /* watched; not ours */
    zsock_t *monitor;
    char endpoint[256];
    s_conn_t conn[S_CONNS];
    unsigned next; /* the slot the next accepted connection takes */
    int pending;   /* a failure waiting for its disconnect to be logged, or -1 */
} s_watch_t;

struct auth_t {
    const trust_t *trust;
    metrics_t *metrics;
    zsock_t *zap;
    s_watch_t watch[S_WATCH_MAX];
    size_t nwatch;
    metric_id_t count[S_REASONS];
    uint64_t refused;
    uint64_t seen[S_SLOTS]; /* (address, reason) keys logged; 0 = free */
    int64_t window_ms;
    unsigned lines;
    uint64_t suppressed;
};

auth_t *auth_new(const char *service, const trust_t *trust, metrics_t *metrics, char *err,
                 size_t errlen)
{
    auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->trust = trust;
    self->metrics = metrics;
    self->zap = zsock_new(ZMQ_REP);
    if (!self->zap || zsock_bind(self->zap, S_ZAP_ENDPOINT) < 0) {
        snprintf(err, errlen, "cannot start the CURVE authenticator (%s): %s", S_ZAP_ENDPOINT,
                 zmq_strerror(zmq_errno()));
        zsock_destroy(&self->zap);
        free(self);
        return NULL;
    }
    char name[96];
    snprintf(name, sizeof name, "tapmesh_%s_auth_failures_total", service);
    for (int i = 0; i < S_REASONS; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", s_why_name[i]);
        self->count[i] = metrics_counter(metrics, name, AUTH_FAILURES_HELP, labels);
    }
    return self;
}

void auth_destroy(auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    auth_t *self = *self_p;
    for (size_t i = 0; i < self->nwatch; i++) {
        zmq_socket_monitor(self->watch[i].socket, NULL, 0);
        zsock_destroy(&self->watch[i].monitor);
    }
    if (self->zap)
        zsock_unbind(self->zap, S_ZAP_ENDPOINT);
    zsock_destroy(&self->zap);
    free(self);
    *self_p = NULL;
}

int auth_watch(auth_t *self, void *socket, const char *endpoint, char *err, size_t errlen)
{
    if (self->nwatch == S_WATCH_MAX) {
        snprintf(err, errlen, "%s: more than %d CURVE sockets", endpoint, S_WATCH_MAX);
        return -ENOSPC;
    }
    s_watch_t *w = &self->watch[self->nwatch];
    memset(w, 0, sizeof *w);
    w->socket = socket;
    w->pending = -1;
    for (int i = 0; i < S_CONNS; i++)
        w->conn[i].fd = -1;
    snprintf(w->endpoint, sizeof w->endpoint, "%s", endpoint);
    /* a name of its own: a monitor of a socket closed just before may
     * still hold an earlier one (libzmq closes sockets in the background) */
    static unsigned s_monitors;
    char inproc[64];
    snprintf(inproc, sizeof inproc, "inproc://tapmesh-auth-%u", s_monitors++);
    w->monitor = zsock_new(ZMQ_PAIR);
    if (!w->monitor ||
        zmq_socket_monitor(socket, inproc,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) < 0 ||
        zsock_connect(w->monitor, "%s", inproc) < 0) {
        int e = zmq_errno();
        snprintf(err, errlen, "%s: cannot watch its handshakes: %s", endpoint, zmq_strerror(e));
        zmq_socket_monitor(socket, NULL, 0);
        zsock_destroy(&w->monitor);
        return -e;
    }
    self->nwatch++;
    return 0;
}

size_t auth_pollitems(const auth_t *self, zmq_pollitem_t *items, size_t max)
{
    size_t n = 0;
    if (n < max)
        items[n++] = (zmq_pollitem_t){zsock_resolve(self->zap), 0, ZMQ_POLLIN, 0};
    for (size_t i = 0; i < self->nwatch && n < max; i++)
        items[n++] = (zmq_pollitem_t){zsock_resolve(self->watch[i].monitor), 0, ZMQ_POLLIN, 0};
    return n;
}

uint64_t auth_refused(const auth_t *self)
{
    return self->refused;
}

/* ---- counting and logging -------------------------------------------- */

static uint64_t s_hash(const char *addr, s_why_t why)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = addr; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return ((h ^ (uint64_t)why) * 1099511628211ull) | 1; /* never 0 */
}

static void s_count(auth_t *self, s_why_t why)
{
    metrics_add(self->metrics, self->count[why], 1);
    self->refused++;
}

/* Logs a refusal unless this (address, reason) was logged before or the
 * line budget of this second is spent. */
static void s_log(auth_t *self, const char *addr, s_why_t why, const char *what, int64_t now)
{
    uint64_t key = s_hash(addr, why);
    uint64_t *slot = &self->seen[(key * 0x9E3779B97F4A7C15ull) >> 54];
    if (*slot == key)
        return;
    if (now - self->window_ms >= 1000) {
        self->window_ms = now;
        self->lines = 0;
    }
    if (self->lines >= S_LINES_PER_SECOND) {
        self->suppressed++;
        return;
    }
    *slot = key;
    self->lines++;
    char also[64] = "";
    if (self->suppressed)
        snprintf(also, sizeof also, "; %" PRIu64 " other refusals not logged", self->suppressed);
    self->suppressed = 0;
    log_warn("refused a connection from %s: %s (%s; further ones from this address for this "
             "reason are only counted%s)",
             addr, what, s_why_name[why], also);
}

/* ---- ZAP ------------------------------------------------------------------ */

static void s_reply(void *zap, const zmq_msg_t *id, const char *code, const char *text,
                    const char *user)
{
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(zap, zmq_msg_data((zmq_msg_t *)id), zmq_msg_size((zmq_msg_t *)id), ZMQ_SNDMORE);
    zmq_send(zap, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(zap, "", 0, 0);
}

static bool s_part_is(zmq_msg_t *m, const char *text)
{
    size_t n = strlen(text);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), text, n) == 0;
}

/* One request: [version, request id, domain, address, identity, mechanism,
 * credentials...]. Returns false when none was waiting. */
static bool s_zap_one(auth_t *self, int64_t now)
{
    void *zap = zsock_resolve(self->zap);
    zmq_msg_t part[S_ZAP_PARTS];
    size_t n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t *m = &part[n < S_ZAP_PARTS ? n : S_ZAP_PARTS - 1];
        if (n >= S_ZAP_PARTS)
            zmq_msg_close(m);
        zmq_msg_init(m);
        if (zmq_msg_recv(m, zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(m);
            for (size_t i = 0; i < n && i < S_ZAP_PARTS; i++)
                zmq_msg_close(&part[i]);
            return false;
        }
        more = zmq_msg_more(m);
        n++;
    }
    size_t held = n < S_ZAP_PARTS ? n : S_ZAP_PARTS;
    if (n < 6 || !s_part_is(&part[0], "1.0")) {
        /* not from libzmq as we know it: an answer keeps the socket usable */
        zmq_msg_t none;
        zmq_msg_init(&none);
        s_reply(zap, n > 1 ? &part[1] : &none, "500", "bad request", "");
        zmq_msg_close(&none);
    } else {
        char addr[INET6_ADDRSTRLEN + 8];
        size_t alen = zmq_msg_size(&part[3]);
        snprintf(addr, sizeof addr, "%.*s", (int)(alen < sizeof addr ? alen : sizeof addr - 1),
                 (const char *)zmq_msg_data(&part[3]));
        if (!*addr)
            snprintf(addr, sizeof addr, "an unknown address");
        char key[TRUST_KEY_LEN + 1] = "";
        if (s_part_is(&part[5], "CURVE") && n >= 7 && zmq_msg_size(&part[6]) == 32)
            zmq_z85_encode(key, zmq_msg_data(&part[6]), 32);
        if (*key && trust_known(self->trust, key)) {
            s_reply(zap, &part[1], "200", "OK", key);
        } else if (*key) {
            s_count(self, S_UNKNOWN_KEY);
            char what[160];
            snprintf(what, sizeof what, "its key %s is not in CURVE_ALLOWED_KEYS_DIR", key);
            s_log(self, addr, S_UNKNOWN_KEY, what, now);
            s_reply(zap, &part[1], "400", "key not allowed", "");
        } else {
            s_count(self, S_PLAINTEXT);
            s_log(self, addr, S_PLAINTEXT, "it does not speak CURVE", now);
            s_reply(zap, &part[1], "400", "CURVE only", "");
        }
    }
    for (size_t i = 0; i < held; i++)
        zmq_msg_close(&part[i]);
    return true;
}

/* ---- handshake events ----------------------------------------------------- */

static void s_peer_address(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    snprintf(out, outlen, "an unknown address");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)outlen);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)outlen);
    else if (ss.ss_family == AF_UNIX)
        snprintf(out, outlen, "a local (ipc) peer");
}

static const char *s_what(s_why_t why)
{
    switch (why) {
    case S_PLAINTEXT:
        return "it does not speak CURVE (no CURVE_SECRET_KEY_FILE and CURVE_SERVER_PUBLIC_KEY "
               "on its side?)";
    case S_CRYPTO:
        return "its CURVE handshake does not decrypt: it uses another server key than this "
               "service's (its CURVE_SERVER_PUBLIC_KEY)";
    case S_HANDSHAKE:
        return "it broke off the handshake (a peer without CURVE does, on seeing CURVE asked "
               "for)";
    default:
        return "its handshake broke the protocol";
    }
}

static s_why_t s_why_of(uint16_t event, uint32_t value)
{
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        return S_HANDSHAKE;
    if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return S_PLAINTEXT;
    if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC ||
        value == ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE)
        return S_CRYPTO;
    return S_PROTOCOL;
}

static s_conn_t *s_conn(s_watch_t *w, int fd)
{
    for (int i = 0; i < S_CONNS; i++)
        if (w->conn[i].fd == fd)
            return &w->conn[i];
    return NULL;
}

/* Logs the failure waiting for its address, from `fd`'s or without one. */
static void s_settle(auth_t *self, s_watch_t *w, int fd, int64_t now)
{
    if (w->pending < 0)
        return;
    s_conn_t *c = fd >= 0 ? s_conn(w, fd) : NULL;
    char what[512];
    snprintf(what, sizeof what, "%s, on %s", s_what((s_why_t)w->pending), w->endpoint);
    s_log(self, c ? c->addr : "an unknown address", (s_why_t)w->pending, what, now);
    w->pending = -1;
}

static bool s_event_one(auth_t *self, s_watch_t *w, int64_t now)
{
    void *mon = zsock_resolve(w->monitor);
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&ev);
        return false;
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&ev) >= 6) {
        memcpy(&event, zmq_msg_data(&ev), 2);
        memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
    }
    zmq_msg_init(&addr);
    if (zmq_msg_more(&ev))
        zmq_msg_recv(&addr, mon, 0);
    zmq_msg_close(&addr);
    zmq_msg_close(&ev);
    int fd = (int)value;
    log_debug("%s: handshake event 0x%04x, value 0x%x", w->endpoint, event, value);
    switch (event) {
    case ZMQ_EVENT_ACCEPTED: {
        s_conn_t *c = &w->conn[w->next++ % S_CONNS];
        c->fd = fd;
        s_peer_address(fd, c->addr, sizeof c->addr);
        break;
    }
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: {
        s_settle(self, w, -1, now); /* an earlier one whose disconnect never came */
        s_why_t why = s_why_of(event, value);
        s_count(self, why);
        w->pending = (int)why;
        break;
    }
    case ZMQ_EVENT_DISCONNECTED: {
        s_settle(self, w, fd, now);
        s_conn_t *c = s_conn(w, fd);
        if (c)
            c->fd = -1;
        break;
    }
    default:
        break;
    }
    return true;
}

void auth_handle(auth_t *self, int64_t now_ms)
{
    for (int i = 0; i < S_PASS_MAX && s_zap_one(self, now_ms); i++)
        ;
    for (size_t k = 0; k < self->nwatch; k++)
        for (int i = 0; i < S_PASS_MAX && s_event_one(self, &self->watch[k], now_ms); i++)
            ;
}
