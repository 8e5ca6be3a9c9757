/*
 * runstat — runs one or more commands side by side and reports how long
 * they took, from before the first is started to after the last has
 * exited (CLOCK_MONOTONIC), with each one's CPU time and peak RSS from
 * wait4(). The benchmark times both sides of a comparison with it, so that
 * both pay the same start-up cost.
 *
 *   runstat OUT CMD [ARGS...] [::: CMD [ARGS...]]...
 *
 * OUT gets one line "wall_s user_s sys_s maxrss_kib worst_status" (CPU
 * summed over the commands, RSS the largest, status the first non-zero
 * one), then one line per command "pid wall_s user_s sys_s maxrss_kib
 * status". Standard input, output and error are inherited. runstat exits
 * 0 once OUT is written, whatever the commands returned.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    double wall, user, sys;
    long rss_kib;
    int status;
} s_child_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double s_tv(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: runstat OUT CMD [ARGS...] [::: CMD [ARGS...]]...\n");
        return 2;
    }
    int n = 1;
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], ":::") == 0)
            n++;
    s_child_t *kids = calloc((size_t)n, sizeof *kids);
    if (!kids)
        return 1;
    double t0 = s_now();
    int k = 0, first = 2;
    for (int i = 2; i <= argc; i++) {
        if (i < argc && strcmp(argv[i], ":::") != 0)
            continue;
        argv[i < argc ? i : argc] = NULL; /* argv[argc] is NULL already */
        if (first == i) {
            fprintf(stderr, "runstat: empty command\n");
            return 2;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("runstat: fork");
            return 1;
        }
        if (pid == 0) {
            execvp(argv[first], argv + first);
            fprintf(stderr, "runstat: %s: %s\n", argv[first], strerror(errno));
            _exit(127);
        }
        kids[k++].pid = pid;
        first = i + 1;
    }
    double total_user = 0, total_sys = 0, last = t0;
    long max_rss = 0;
    int worst = 0;
    for (int done = 0; done < n;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, 0, &ru);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            perror("runstat: wait4");
            return 1;
        }
        double t = s_now();
        for (int j = 0; j < n; j++) {
            if (kids[j].pid != pid)
                continue;
            kids[j].wall = t - t0;
            kids[j].user = s_tv(ru.ru_utime);
            kids[j].sys = s_tv(ru.ru_stime);
            kids[j].rss_kib = ru.ru_maxrss;
            kids[j].status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            total_user += kids[j].user;
            total_sys += kids[j].sys;
            if (ru.ru_maxrss > max_rss)
                max_rss = ru.ru_maxrss;
            if (!worst)
                worst = kids[j].status;
            last = t;
            done++;
        }
    }
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        fprintf(stderr, "runstat: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    fprintf(out, "%.6f %.6f %.6f %ld %d\n", last - t0, total_user, total_sys, max_rss, worst);
    for (int j = 0; j < n; j++)
        fprintf(out, "%d %.6f %.6f %.6f %ld %d\n", (int)kids[j].pid, kids[j].wall, kids[j].user,
                kids[j].sys, kids[j].rss_kib, kids[j].status);
    if (fclose(out) != 0) {
        fprintf(stderr, "runstat: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    free(kids);
    return 0;
}
