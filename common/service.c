/*
 * service — common start-up and shutdown of the three programs.
 *
 * service_dealer and service_router keep their plain signatures (every
 * program calls them the same way): the CURVE settings they apply are the
 * running service's, which service_start records here. One service runs
 * per process.
 */
#include "service.h"

#include "log.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

volatile sig_atomic_t service_stop = 0;
volatile sig_atomic_t service_reload = 0;

/* Next hops a service may name keys for (a relay's HOPS_MAX). */
#define S_SERVER_KEYS_MAX 32
#define S_ENDPOINT_MAX 256

struct service_curve_t {
    zcert_t *cert; /* this service's, with its secret key */
    size_t nkeys;  /* CURVE_SERVER_PUBLIC_KEY's keys: one for all, or one per endpoint */
    char key[S_SERVER_KEYS_MAX][TRUST_KEY_LEN + 1];
    size_t nendpoints; /* RELAY_ENDPOINT's, in order */
    char endpoint[S_SERVER_KEYS_MAX][S_ENDPOINT_MAX];
};

/* The service started in this process (service_start to service_finish). */
static service_t *s_running;

static void s_on_signal(int sig)
{
    (void)sig;
    if (service_stop < 16)
        service_stop++;
}

static void s_on_hup(int sig)
{
    (void)sig;
    service_reload++;
}

/* ---- CURVE settings ------------------------------------------------------ */

static bool s_has_row(const cfg_row_t *rows, size_t nrows, const char *env)
{
    for (size_t i = 0; i < nrows; i++)
        if (strcmp(rows[i].env, env) == 0)
            return true;
    return false;
}

static bool s_z85_key(const char *text)
{
    uint8_t bin[32];
    return strlen(text) == TRUST_KEY_LEN && zmq_z85_decode(bin, text) != NULL;
}

/* One item of CURVE_SERVER_PUBLIC_KEY: a certificate file, else a Z85 key. */
static int s_server_key(const char *item, char *key, char *why, size_t whylen)
{
    struct stat st;
    if (stat(item, &st) == 0 && S_ISREG(st.st_mode)) {
        trust_cert_t *cert = malloc(sizeof *cert);
        char sub[256];
        int rc = cert ? trust_cert_read(item, cert, sub, sizeof sub) : -ENOMEM;
        if (rc == 0)
            snprintf(key, TRUST_KEY_LEN + 1, "%s", cert->public_key);
        else
            snprintf(why, whylen, "'%.200s': %.150s", item, cert ? sub : "out of memory");
        free(cert);
        return rc;
    }
    if (s_z85_key(item)) {
        snprintf(key, TRUST_KEY_LEN + 1, "%s", item);
        return 0;
    }
    snprintf(why, whylen,
             "'%.64s' is neither a public key (40 characters of Z85) nor a certificate file", item);
    return -EINVAL;
}

/* Splits a comma-separated list into `out` (blanks around items trimmed).
 * Returns the count, or -1 when there are more than `max`. */
static int s_split(const char *list, char (*out)[S_ENDPOINT_MAX], size_t max)
{
    size_t n = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *a = p, *b = comma ? comma : p + strlen(p);
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (n == max)
            return -1;
        snprintf(out[n++], S_ENDPOINT_MAX, "%.*s", (int)(b - a), a);
        if (!comma)
            break;
        p = comma + 1;
    }
    return (int)n;
}

/* Reads this service's own certificate. */
static int s_own_cert(service_curve_t *c, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "CURVE_SECRET_KEY_FILE='%s': %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "CURVE_SECRET_KEY_FILE='%s': not a file", path);
        return -1;
    }
    trust_cert_t *cert = malloc(sizeof *cert);
    char why[256];
    int rc = cert ? trust_cert_read(path, cert, why, sizeof why) : -ENOMEM;
    uint8_t pub[32], sec[32];
    if (rc < 0) {
        snprintf(err, errlen, "CURVE_SECRET_KEY_FILE='%s': %s", path, cert ? why : "out of memory");
    } else if (!*cert->secret_key) {
        snprintf(err, errlen,
                 "CURVE_SECRET_KEY_FILE='%s': no secret key in it (the public certificate? "
                 "give the secret one, %s_secret)",
                 path, path);
        rc = -EINVAL;
    } else {
        zmq_z85_decode(pub, cert->public_key);
        zmq_z85_decode(sec, cert->secret_key);
        c->cert = zcert_new_from(pub, sec);
        memset(sec, 0, sizeof sec);
        if (!c->cert) {
            snprintf(err, errlen, "CURVE_SECRET_KEY_FILE='%s': out of memory", path);
            rc = -ENOMEM;
        }
    }
    if (cert)
        memset(cert->secret_key, 0, sizeof cert->secret_key);
    free(cert);
    if (rc < 0)
        return -1;
    if (st.st_mode & 077)
        log_warn("CURVE_SECRET_KEY_FILE='%s': other users may read it (mode %03o); chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
    return 0;
}

/* The next hops' keys, matched to RELAY_ENDPOINT. */
static int s_server_keys(service_curve_t *c, cfg_t *cfg, char *err, size_t errlen)
{
    const char *list = cfg_str(cfg, "CURVE_SERVER_PUBLIC_KEY");
    const char *endpoints = cfg_str(cfg, "RELAY_ENDPOINT");
    int ne = s_split(endpoints, c->endpoint, S_SERVER_KEYS_MAX);
    c->nendpoints = ne < 0 ? 0 : (size_t)ne;
    if (!*list) {
        snprintf(err, errlen,
                 "CURVE_SERVER_PUBLIC_KEY: not set: with CURVE, the next hop's public key is "
                 "needed (RELAY_ENDPOINT='%.200s')",
                 endpoints);
        return -1;
    }
    char items[S_SERVER_KEYS_MAX][S_ENDPOINT_MAX];
    int nk = s_split(list, items, S_SERVER_KEYS_MAX);
    if (nk < 0 || (nk != 1 && (size_t)nk != c->nendpoints)) {
        snprintf(err, errlen,
                 "CURVE_SERVER_PUBLIC_KEY='%.200s': %d keys for %zu endpoints of RELAY_ENDPOINT: "
                 "give one for all, or one per endpoint in the same order",
                 list, nk < 0 ? S_SERVER_KEYS_MAX + 1 : nk, c->nendpoints);
        return -1;
    }
    for (int i = 0; i < nk; i++) {
        char why[400];
        if (s_server_key(items[i], c->key[i], why, sizeof why) < 0) {
            snprintf(err, errlen, "CURVE_SERVER_PUBLIC_KEY='%.200s': %s", list, why);
            return -1;
        }
    }
    c->nkeys = (size_t)nk;
    return 0;
}

/* Reads the CURVE settings the service's rows have. Returns 0 (CURVE off,
 * or on and ready), or -1 with `err` naming the setting. */
static int s_curve_start(service_t *svc, const cfg_row_t *rows, size_t nrows, char *err,
                         size_t errlen)
{
    cfg_t *cfg = svc->cfg;
    bool connects = s_has_row(rows, nrows, "RELAY_ENDPOINT");
    bool binds = s_has_row(rows, nrows, "COLLECT_ENDPOINT");
    const char *secret = cfg_str(cfg, "CURVE_SECRET_KEY_FILE");
    const char *server = cfg_str(cfg, "CURVE_SERVER_PUBLIC_KEY");
    const char *dir = cfg_str(cfg, "CURVE_ALLOWED_KEYS_DIR");
    if (!*secret && !*server && !*dir)
        return 0;
    if (!*secret) {
        snprintf(err, errlen,
                 "CURVE_SECRET_KEY_FILE: not set, but %s is: with CURVE, this "
                 "service needs its own certificate (tapmesh-keygen makes one)",
                 *server ? "CURVE_SERVER_PUBLIC_KEY" : "CURVE_ALLOWED_KEYS_DIR");
        return -1;
    }
    if (!zsys_has_curve()) {
        snprintf(err, errlen, "CURVE_SECRET_KEY_FILE='%s': this libzmq was built without CURVE",
                 secret);
        return -1;
    }
    if (*server && !connects)
        log_warn("CURVE_SERVER_PUBLIC_KEY is not used: %s connects to no next hop", svc->program);
    if (*dir && !binds)
        log_warn("CURVE_ALLOWED_KEYS_DIR is not used: %s accepts no connections", svc->program);
    service_curve_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    svc->curve = c;
    if (s_own_cert(c, secret, err, errlen) < 0)
        return -1;
    if (connects && s_server_keys(c, cfg, err, errlen) < 0)
        return -1;
    if (!binds)
        return 0;
    if (!*dir) {
        snprintf(err, errlen,
                 "CURVE_ALLOWED_KEYS_DIR: not set: with CURVE, %s needs the public "
                 "certificates of the peers allowed to connect",
                 svc->program);
        return -1;
    }
    char why[1024];
    svc->trust = trust_new();
    int n = svc->trust ? trust_load(svc->trust, dir, why, sizeof why) : -ENOMEM;
    if (n < 0) {
        snprintf(err, errlen, "CURVE_ALLOWED_KEYS_DIR='%.200s': %.700s", dir,
                 n == -ENOMEM ? "out of memory" : why);
        return -1;
    }
    if (n == 0)
        log_warn("CURVE_ALLOWED_KEYS_DIR='%s' holds no certificate: every connection is refused",
                 dir);
    svc->auth = auth_new(svc->service, svc->trust, svc->metrics, why, sizeof why);
    if (!svc->auth) {
        snprintf(err, errlen, "CURVE_ALLOWED_KEYS_DIR='%.200s': %.700s", dir, why);
        return -1;
    }
    log_info("CURVE on: %d key(s) allowed from %s", n, dir);
    return 0;
}

static void s_curve_finish(service_t *svc)
{
    auth_destroy(&svc->auth);
    trust_destroy(&svc->trust);
    if (svc->curve) {
        zcert_destroy(&svc->curve->cert);
        free(svc->curve);
        svc->curve = NULL;
    }
}

/* The shared rows are counted by hand in SERVICE_NROWS: checked here. */
_Static_assert(sizeof((cfg_row_t[]){SERVICE_ROWS("")}) / sizeof(cfg_row_t) == SERVICE_NROWS,
               "SERVICE_NROWS counts the rows of SERVICE_ROWS");

bool service_start(service_t *svc, const char *service, const cfg_page_t *page,
                   const cfg_row_t *rows, size_t nrows, int argc, char **argv, int *status)
{
    const char *program = page->program;
    memset(svc, 0, sizeof *svc);
    svc->program = program;
    svc->service = service;
    svc->m_plaintext = -1;
    char err[1024];
    cfg_result_t r =
        cfg_load_page(&svc->cfg, page, rows, nrows, argc, argv, stdout, err, sizeof err);
    if (r == CFG_EXIT_HELP) {
        *status = 0;
        return false;
    }
    if (r != CFG_OK) {
        fprintf(stderr, "%s\n", err);
        *status = 2;
        return false;
    }
    log_level_t level = LOG_LVL_INFO;
    log_level_parse(cfg_str(svc->cfg, "LOG_LEVEL"), &level);
    log_init(program, level);
    /* mistyped or stray names in the environment: logged, not fatal */
    for (size_t i = 0; cfg_warning(svc->cfg, i); i++)
        log_warn("%s", cfg_warning(svc->cfg, i));

    if (cfg_is_set(svc->cfg, "NODE_ID")) {
        snprintf(svc->node_id, sizeof svc->node_id, "%s", cfg_str(svc->cfg, "NODE_ID"));
    } else {
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        char *dot = strchr(host, '.');
        if (dot)
            *dot = '\0';
        if (!cfg_name_valid(host)) {
            fprintf(stderr,
                    "%s: NODE_ID is not set and the host name '%s' is not a valid id; "
                    "set NODE_ID\n",
                    program, host);
            cfg_destroy(&svc->cfg);
            *status = 2;
            return false;
        }
        snprintf(svc->node_id, sizeof svc->node_id, "%s", host);
    }

    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct sigaction hup = {.sa_handler = s_on_hup};
    sigemptyset(&hup.sa_mask);
    sigaction(SIGHUP, &hup, NULL);
    signal(SIGPIPE, SIG_IGN);
    zsys_handler_set(NULL);
    zsys_init();
    zsys_set_logstream(stderr); /* never stdout: it may carry the capture */

    svc->metrics = metrics_new(service, TAPMESH_VERSION);
    if (!svc->metrics) {
        log_error("out of memory");
        cfg_destroy(&svc->cfg);
        *status = 1;
        return false;
    }
    /* before the metrics server says anything: a bad setting is one line */
    if (s_curve_start(svc, rows, nrows, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", program, err);
        service_finish(svc);
        *status = 2;
        return false;
    }
    const char *addr = cfg_str(svc->cfg, "METRICS_ADDRPORT");
    if (*addr) {
        if (metrics_serve(svc->metrics, addr, err, sizeof err) < 0) {
            log_error("%s", err);
            service_finish(svc);
            *status = 2;
            return false;
        }
        log_info("metrics at http://%s/metrics (port %u)", addr, metrics_port(svc->metrics));
    }
    s_running = svc;
    return true;
}

void service_finish(service_t *svc)
{
    if (s_running == svc)
        s_running = NULL;
    s_curve_finish(svc);
    metrics_destroy(&svc->metrics);
    cfg_destroy(&svc->cfg);
}

size_t service_pollitems(service_t *svc, zmq_pollitem_t *items, size_t max)
{
    return svc->auth ? auth_pollitems(svc->auth, items, max) : 0;
}

void service_handle(service_t *svc, int64_t now_ms)
{
    if (svc->auth)
        auth_handle(svc->auth, now_ms);
    sig_atomic_t asked = service_reload;
    if (asked == svc->reloaded)
        return;
    svc->reloaded = asked;
    if (!svc->trust) {
        log_info("SIGHUP: nothing to read again (no CURVE_ALLOWED_KEYS_DIR)");
        return;
    }
    const char *dir = cfg_str(svc->cfg, "CURVE_ALLOWED_KEYS_DIR");
    char why[1024];
    size_t before = trust_count(svc->trust);
    int n = trust_load(svc->trust, dir, why, sizeof why);
    if (n < 0)
        log_error("SIGHUP: CURVE_ALLOWED_KEYS_DIR='%s': %s; the %zu key(s) read before stay", dir,
                  n == -ENOMEM ? "out of memory" : why, before);
    else
        log_info("SIGHUP: CURVE_ALLOWED_KEYS_DIR='%s' read again: %d key(s) allowed (%zu "
                 "before)",
                 dir, n, before);
}

bool service_endpoint_local(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    const char *semi = strchr(host, ';'); /* tcp://source;host:port */
    if (semi)
        host = semi + 1;
    const char *colon = strrchr(host, ':');
    size_t len = colon ? (size_t)(colon - host) : strlen(host);
    char h[S_ENDPOINT_MAX];
    snprintf(h, sizeof h, "%.*s", (int)(len < sizeof h ? len : sizeof h - 1), host);
    return strncmp(h, "127.", 4) == 0 || strcmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0 ||
           strcmp(h, "::1") == 0 || strcmp(h, "lo") == 0;
}

static void s_common(zsock_t *s, const service_sock_opts_t *o)
{
    if (o->sndhwm != SERVICE_DEFAULT)
        zsock_set_sndhwm(s, o->sndhwm);
    if (o->rcvhwm != SERVICE_DEFAULT)
        zsock_set_rcvhwm(s, o->rcvhwm);
    zsock_set_linger(s, o->linger_ms);
    zsock_set_heartbeat_ivl(s, SERVICE_HEARTBEAT_IVL_MS);
    zsock_set_heartbeat_timeout(s, SERVICE_HEARTBEAT_TIMEOUT_MS);
    zsock_set_tcp_maxrt(s, SERVICE_TCP_MAXRT_MS);
}

zsock_t *service_dealer(const char *setting, const char *endpoint, const service_sock_opts_t *o,
                        link_t **link, char *err, size_t errlen)
{
    zsock_t *s = zsock_new(ZMQ_DEALER);
    if (!s) {
        snprintf(err, errlen, "cannot create a ZeroMQ socket");
        return NULL;
    }
    s_common(s, o);
    zsock_set_reconnect_ivl(s, SERVICE_RECONNECT_IVL_MS);
    zsock_set_reconnect_ivl_max(s, SERVICE_RECONNECT_IVL_MAX_MS);
    service_curve_t *c = s_running ? s_running->curve : NULL;
    if (c) {
        const char *key = c->nkeys == 1 ? c->key[0] : NULL;
        for (size_t i = 0; !key && i < c->nkeys && i < c->nendpoints; i++)
            if (strcmp(c->endpoint[i], endpoint) == 0)
                key = c->key[i];
        if (!key) {
            snprintf(err, errlen, "%s=%s: no CURVE_SERVER_PUBLIC_KEY for this endpoint", setting,
                     endpoint);
            zsock_destroy(&s);
            return NULL;
        }
        zcert_apply(c->cert, s);
        zsock_set_curve_serverkey(s, key);
    }
    /* the monitor first: a handshake done before it was watched is never told */
    if (link && !(*link = link_new(zsock_resolve(s), endpoint, err, errlen))) {
        zsock_destroy(&s);
        return NULL;
    }
    if (zsock_connect(s, "%s", endpoint) < 0) {
        snprintf(err, errlen, "%s=%s: cannot connect: %s", setting, endpoint,
                 zmq_strerror(zmq_errno()));
        if (link)
            link_destroy(link);
        zsock_destroy(&s);
    }
    return s;
}

zsock_t *service_router(const char *setting, const char *endpoint, const service_sock_opts_t *o,
                        char *err, size_t errlen)
{
    zsock_t *s = zsock_new(ZMQ_ROUTER);
    if (!s) {
        snprintf(err, errlen, "cannot create a ZeroMQ socket");
        return NULL;
    }
    s_common(s, o);
    zsock_set_router_mandatory(s, 1);
    /* a message beyond anything the protocol allows is refused by libzmq
     * before it is allocated (and its sender disconnected) */
    zsock_set_maxmsgsize(s, (int)(WIRE_PAYLOAD_MAX + (1 << 20)));
    service_t *svc = s_running;
    if (svc && svc->curve) {
        zcert_apply(svc->curve->cert, s);
        zsock_set_curve_server(s, 1);
        zsock_set_zap_domain(s, AUTH_ZAP_DOMAIN);
    }
    if (zsock_bind(s, "%s", endpoint) < 0) {
        snprintf(err, errlen, "%s=%s: cannot bind: %s", setting, endpoint,
                 zmq_strerror(zmq_errno()));
        zsock_destroy(&s);
        return NULL;
    }
    if (svc && svc->auth && auth_watch(svc->auth, zsock_resolve(s), endpoint, err, errlen) < 0) {
        zsock_destroy(&s);
        return NULL;
    }
    if (svc) {
        char name[96];
        snprintf(name, sizeof name, "tapmesh_%s_plaintext_endpoints", svc->service);
        svc->m_plaintext = metrics_gauge(svc->metrics, name,
                                         "Endpoints bound without CURVE where other hosts can "
                                         "reach them",
                                         NULL);
        if (!svc->curve && !service_endpoint_local(endpoint)) {
            svc->plaintext++;
            log_warn("anyone who reaches %s can %s; set CURVE_SECRET_KEY_FILE and "
                     "CURVE_ALLOWED_KEYS_DIR (or bind %s to 127.0.0.1)",
                     endpoint,
                     strcmp(svc->service, "collect") == 0 ? "write into this output"
                                                          : "send packets through this relay",
                     setting);
        }
        metrics_set(svc->metrics, svc->m_plaintext, (double)svc->plaintext);
    }
    return s;
}

/* Batches of 256 KiB are allocated and freed at a high rate, received ones
 * by libzmq's I/O thread: above glibc's default thresholds (128 KiB, then
 * growing) each would be a fresh mmap whose pages the kernel faults in and
 * zeroes, and gives back on free (6 % of a relay's time on jumbo frames).
 * They stay in the heap and are reused; what a burst leaves free above
 * 16 MiB is still given back. */
static void s_malloc_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
}

int service_main(const service_def_t *def, void *app, int argc, char **argv)
{
    service_t svc; /* lives as long as the app runs: setup keeps a pointer */
    int status;
    s_malloc_tune();
    if (!service_start(&svc, def->service, def->page, def->rows, def->nrows, argc, argv, &status))
        return status;
    status = def->setup(app, &svc);
    if (status == 0)
        status = def->run(app);
    def->teardown(app);
    service_finish(&svc);
    zsys_shutdown();
    return status;
}
