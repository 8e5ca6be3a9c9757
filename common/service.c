/*
 * service — common start-up and shutdown of the three programs.
 */
#include "service.h"

#include "log.h"
#include "wire.h"

#include <czmq.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t service_stop = 0;

static void s_on_signal(int sig)
{
    (void)sig;
    if (service_stop < 16)
        service_stop++;
}

bool service_start(service_t *svc, const char *program, const char *service, const char *summary,
                   const cfg_row_t *rows, size_t nrows, int argc, char **argv, int *status)
{
    memset(svc, 0, sizeof *svc);
    char err[1024];
    cfg_result_t r =
        cfg_load(&svc->cfg, program, summary, rows, nrows, argc, argv, stdout, err, sizeof err);
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
    return true;
}

void service_finish(service_t *svc)
{
    metrics_destroy(&svc->metrics);
    cfg_destroy(&svc->cfg);
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
}

zsock_t *service_dealer(const char *setting, const char *endpoint, const service_sock_opts_t *o,
                        char *err, size_t errlen)
{
    zsock_t *s = zsock_new(ZMQ_DEALER);
    if (!s) {
        snprintf(err, errlen, "cannot create a ZeroMQ socket");
        return NULL;
    }
    s_common(s, o);
    zsock_set_reconnect_ivl(s, SERVICE_RECONNECT_IVL_MS);
    zsock_set_reconnect_ivl_max(s, SERVICE_RECONNECT_IVL_MAX_MS);
    if (zsock_connect(s, "%s", endpoint) < 0) {
        snprintf(err, errlen, "%s=%s: cannot connect: %s", setting, endpoint,
                 zmq_strerror(zmq_errno()));
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
    if (zsock_bind(s, "%s", endpoint) < 0) {
        snprintf(err, errlen, "%s=%s: cannot bind: %s", setting, endpoint,
                 zmq_strerror(zmq_errno()));
        zsock_destroy(&s);
    }
    return s;
}

int service_main(const service_def_t *def, void *app, int argc, char **argv)
{
    service_t svc; /* lives as long as the app runs: setup keeps a pointer */
    int status;
    if (!service_start(&svc, def->program, def->service, def->summary, def->rows, def->nrows, argc,
                       argv, &status))
        return status;
    status = def->setup(app, &svc);
    if (status == 0)
        status = def->run(app);
    def->teardown(app);
    service_finish(&svc);
    zsys_shutdown();
    return status;
}
