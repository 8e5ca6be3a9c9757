/*
 * service — common start-up and shutdown of the three programs.
 */
#include "service.h"

#include "log.h"

#include <czmq.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t service_stop = 0;

static void s_on_signal(int sig)
{
    (void)sig;
    service_stop = 1;
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
