/*
 * tapmesh-top — a live view of a running tapmesh pipeline: scrapes the
 * /metrics of the services it is given (capture agents, relays, the
 * collector) every interval and shows per source, relay and collector
 * what moves (packets/s, Mbit/s) and what goes wrong (kernel drops,
 * resends, dead letters, next hops down, late packets):
 *
 *   tapmesh-top [-i SECONDS] [-n COUNT] [--plain] HOST:PORT...
 *
 * In a terminal, a full-screen table redrawn in place (ANSI escapes, the
 * alternate screen); otherwise one block of plain text per refresh. This
 * file keeps the arguments, the loop, the clock and the terminal; scrape.c
 * fetches, prom.c reads, snap.c takes the numbers and rates, render.c
 * writes the table.
 */
#include "cfg.h"
#include "prom.h"
#include "render.h"
#include "scrape.h"
#include "snap.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#ifndef TAPMESH_VERSION
#define TAPMESH_VERSION "0.0.0"
#endif

#define S_INTERVAL_MIN 0.1
#define S_INTERVAL_MAX 3600.0
#define S_TIMEOUT_MAX_S 5.0

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static const cfg_item_t s_options[] = {
    {"HOST:PORT",
     "A service's `METRICS_ADDRPORT`: `HOST:PORT`, `:PORT` or `PORT` (on 127.0.0.1), "
     "`[V6]:PORT`, or a whole URL (`http://host:port/metrics`). Give every capture agent, relay "
     "and collector to watch, in any order: each is recognised by its metrics."},
    {"-i, --interval SECONDS",
     "Time between refreshes, 0.1 to 3600 (decimals allowed). Default: 1. A service that has "
     "not answered within the interval (at most 5 s) is shown as down."},
    {"-n, --count COUNT",
     "Exit after COUNT refreshes (for scripts). Default: 0, until interrupted."},
    {"--plain",
     "Plain text, one block per refresh, even on a terminal (the default when standard output "
     "is not a terminal)."},
    {NULL, NULL},
};

static const cfg_item_t s_exit_status[] = {
    {"0", "COUNT refreshes were shown, or it was interrupted (SIGINT, SIGTERM, SIGHUP). A "
          "service that is down is shown, not an error."},
    {"1", "libcurl could not be used."},
    {"2", "Bad arguments: no address, an address without a port, a bad interval or count."},
    {NULL, NULL},
};

static const cfg_item_t s_examples[] = {
    {"A pipeline of two agents, a relay and the collector, on their default metrics ports:",
     "tapmesh-top edge1:9710 edge2:9710 relay1:9711 collect:9712"},
    {"Three refreshes, two seconds apart, as text (for a script or a log):",
     "tapmesh-top -n 3 -i 2 :9710 :9711 :9712 >top.txt"},
    {NULL, NULL},
};

static const cfg_page_t s_page = {
    .program = "tapmesh-top",
    .section = 1,
    .purpose = "show a running tapmesh pipeline live, from its services' metrics",
    .synopsis = "[-i SECONDS] [-n COUNT] [--plain] HOST:PORT...",
    .summary = "Reads `GET /metrics` of every service given, every interval, and shows what "
               "each capture agent, relay and collector does, with rates from the last two "
               "reads. On a terminal the table is redrawn in place; otherwise a block of plain "
               "text is printed per refresh.",
    .description =
        "Sources (capture agents, named by their `NODE_ID`): packets/s and Mbit/s captured, "
        "packets captured, kernel drops and drops/s (live interfaces), batches resent, batches "
        "dead-lettered, and whether the next hop is up. Relays: packets/s in and out, packets "
        "in and out, next hops up of all. Collectors: packets/s and Mbit/s written, packets "
        "written, live sources, packets queued in the merge, late packets, bytes of output.\n"
        "\n"
        "Rates are the difference of two reads divided by the time between them; a counter "
        "that went down (the service restarted) counts from zero. A service that does not "
        "answer, answers with an HTTP error or with no tapmesh metrics is shown as down with "
        "the reason, and read again at the next refresh; lines of /metrics that cannot be "
        "read are counted and named under the table. The first block comes after the second "
        "read, one interval after the start.",
    .options = s_options,
    .exit_status = s_exit_status,
    .examples = s_examples,
    .see_also = "tapmesh-capture(8), tapmesh-relay(8), tapmesh-collect(8), top(1)",
};

static void s_usage(FILE *out)
{
    fprintf(out, "Usage: tapmesh-top [-i SECONDS] [-n COUNT] [--plain] HOST:PORT...\n"
                 "Shows a running tapmesh pipeline live: reads GET /metrics of every service\n"
                 "given (capture agents, relays, the collector) every interval; rates from the\n"
                 "last two reads. A table redrawn in place on a terminal, else plain text.\n\n");
    for (const cfg_item_t *o = s_options; o->term; o++) {
        fprintf(out, "  %s\n     ", o->term);
        /* the help text without its `quotes`, wrapped at 78 columns */
        int col = 5;
        for (const char *p = o->text; *p;) {
            p += strspn(p, " ");
            size_t w = strcspn(p, " ");
            if (!w)
                break;
            if (col + 1 + (int)w > 78) {
                fprintf(out, "\n     ");
                col = 5;
            }
            fputc(' ', out);
            for (size_t k = 0; k < w; k++)
                if (p[k] != '`')
                    fputc(p[k], out);
            col += 1 + (int)w;
            p += w;
        }
        fputc('\n', out);
    }
    fprintf(out, "  --help, --version, --man\n      This help, the version, the manual page.\n");
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps until `when` (CLOCK_MONOTONIC seconds) or a signal to stop. */
static void s_sleep_until(double when)
{
    struct timespec ts = {.tv_sec = (time_t)when, .tv_nsec = (long)((when - floor(when)) * 1e9)};
    while (!s_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

typedef struct {
    render_target_t *targets;
} s_state_t;

/* One service's answer (scrape_fn): its numbers, its rates, or why it is down. */
static void s_answer(void *arg, size_t i, const char *body, size_t len, const char *error,
                     double at)
{
    s_state_t *st = arg;
    render_target_t *t = &st->targets[i];
    if (error) {
        t->up = false;
        t->downs++;
        snprintf(t->error, sizeof t->error, "%s", error);
        memset(&t->parse, 0, sizeof t->parse);
        return;
    }
    snap_t now;
    snap_reset(&now);
    prom_parse(body, len, snap_feed, &now, &t->parse);
    t->bad_lines_total += t->parse.bad_lines;
    if (now.kind == SNAP_UNKNOWN) {
        t->up = false;
        t->downs++;
        snprintf(t->error, sizeof t->error,
                 "answers, but with no tapmesh_*_build_info (%zu samples): not a tapmesh service",
                 t->parse.samples);
        return;
    }
    t->has_rates = t->has_cur && t->cur.kind == now.kind;
    if (t->has_rates) {
        t->prev = t->cur;
        snap_rates(&t->prev, &now, at - t->cur_at, &t->rates);
    }
    t->cur = now;
    t->cur_at = at;
    t->has_cur = true;
    t->kind = now.kind;
    t->up = true;
    t->error[0] = '\0';
}

static void s_title(char *out, size_t outlen, double interval)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, outlen, "tapmesh-top %s  every %g s", stamp, interval);
}

/* The block, drawn over the previous one from the top left corner: each
 * line cut to the terminal's width and cleared to its end, nothing below
 * the last line kept, never more lines than the screen has (no scroll). */
static void s_draw_tty(const char *text, size_t len)
{
    struct winsize ws = {0};
    int cols = 160, rows = 50;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
        cols = ws.ws_col;
        rows = ws.ws_row;
    }
    fputs("\033[H", stdout);
    const char *p = text, *end = text + len;
    for (int row = 0; p < end && row < rows; row++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t w = (size_t)((nl ? nl : end) - p);
        fwrite(p, 1, w < (size_t)cols ? w : (size_t)cols, stdout);
        fputs("\033[K", stdout);
        if (row + 1 < rows)
            fputs("\r\n", stdout);
        p = nl ? nl + 1 : end;
    }
    fputs("\033[J", stdout);
    fflush(stdout);
}

static int s_number(const char *opt, const char *v, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : NAN;
    if (!v || end == v || *end || errno || !(d >= min && d <= max)) {
        fprintf(stderr, "tapmesh-top: %s '%s': not a number from %g to %g\n", opt, v ? v : "", min,
                max);
        return -EINVAL;
    }
    *out = d;
    return 0;
}

int main(int argc, char **argv)
{
    double interval = 1, count = 0;
    bool plain = !isatty(STDOUT_FILENO);
    const char **addrs = calloc((size_t)argc, sizeof *addrs);
    size_t n = 0;
    if (!addrs)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            free(addrs);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("tapmesh-top %s\n", TAPMESH_VERSION);
            free(addrs);
            return 0;
        }
        if (strcmp(a, "--man") == 0) {
            cfg_man(stdout, &s_page, NULL, 0);
            free(addrs);
            return 0;
        }
        if (strcmp(a, "--plain") == 0) {
            plain = true;
        } else if (strcmp(a, "-i") == 0 || strcmp(a, "--interval") == 0 ||
                   strncmp(a, "--interval=", 11) == 0) {
            v = a[1] == '-' && a[10] == '=' ? a + 11 : (i + 1 < argc ? argv[++i] : NULL);
            if (s_number("--interval", v, S_INTERVAL_MIN, S_INTERVAL_MAX, &interval) < 0)
                goto usage;
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--count") == 0 ||
                   strncmp(a, "--count=", 8) == 0) {
            v = a[1] == '-' && a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            if (s_number("--count", v, 0, 1e9, &count) < 0 || count != floor(count)) {
                if (count != floor(count))
                    fprintf(stderr, "tapmesh-top: --count '%s': a whole number\n", v);
                goto usage;
            }
        } else if (a[0] == '-' && a[1] && strspn(a + 1, "0123456789") != strlen(a + 1)) {
            fprintf(stderr, "tapmesh-top: unknown option %s (see --help)\n", a);
            goto usage;
        } else {
            addrs[n++] = a;
        }
    }
    if (n == 0) {
        fprintf(stderr, "tapmesh-top: no service to watch: give HOST:PORT (a METRICS_ADDRPORT)\n");
        goto usage;
    }

    char **urls = calloc(n, sizeof *urls);
    render_target_t *targets = calloc(n, sizeof *targets);
    if (!urls || !targets)
        return 1;
    for (size_t i = 0; i < n; i++) {
        char url[1024], why[1100];
        if (scrape_url(addrs[i], url, sizeof url, why, sizeof why) < 0) {
            fprintf(stderr, "tapmesh-top: %s\n", why);
            goto usage;
        }
        urls[i] = strdup(url);
        targets[i].addr = addrs[i];
        snprintf(targets[i].error, sizeof targets[i].error, "not read yet");
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "tapmesh-top: libcurl cannot start\n");
        return 1;
    }
    double timeout = interval < S_TIMEOUT_MAX_S ? interval : S_TIMEOUT_MAX_S;
    char err[256];
    scrape_t *scrape =
        scrape_new((const char *const *)urls, n, (long)(timeout * 1000), err, sizeof err);
    if (!scrape) {
        fprintf(stderr, "tapmesh-top: %s\n", err);
        return 1;
    }

    struct sigaction sa = {.sa_handler = s_on_signal}; /* no SA_RESTART: sleeps end */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char *text = NULL;
    size_t textlen = 0;
    FILE *mem = open_memstream(&text, &textlen);
    if (!mem) {
        fprintf(stderr, "tapmesh-top: out of memory\n");
        return 1;
    }
    if (!plain)
        fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout); /* alternate screen, no cursor */

    s_state_t st = {.targets = targets};
    int rc = 0;
    double next = s_now();
    /* round 0 only starts the rates (drawn on a terminal, not printed);
     * each later round is one refresh of the COUNT */
    for (unsigned long round = 0; !s_stop; round++) {
        if (scrape_run(scrape, s_answer, &st) < 0) {
            fprintf(stderr, "tapmesh-top: libcurl failed\n");
            rc = 1;
            break;
        }
        char title[128];
        s_title(title, sizeof title, interval);
        rewind(mem);
        render_block(mem, targets, n, title);
        fflush(mem);
        if (!plain) {
            s_draw_tty(text, (size_t)ftell(mem));
        } else if (round > 0) {
            fwrite(text, 1, (size_t)ftell(mem), stdout);
            fputc('\n', stdout);
            if (fflush(stdout) != 0)
                break; /* the reader went away */
        }
        if (count > 0 && round >= (unsigned long)count)
            break;
        next += interval;
        double now = s_now();
        if (next < now)
            next = now; /* a slow scrape: no burst of refreshes to catch up */
        s_sleep_until(next);
    }
    if (!plain)
        fputs("\033[?25h\033[?1049l", stdout);
    fflush(stdout);
    fclose(mem);
    free(text);
    scrape_destroy(&scrape);
    curl_global_cleanup();
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
    free(targets);
    free(addrs);
    return rc;
usage:
    free(addrs);
    return 2;
}
