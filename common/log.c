/*
 * log — stderr lines: "2026-11-24T05:46:26.123Z tapmesh-collect[42] warn: text".
 * The whole line is formatted first and written with one write(2), so lines
 * from the HTTP thread and the main loop never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

log_level_t log_threshold = LOG_LVL_INFO;
static const char *s_program = "tapmesh";
static const char *const s_names[] = {"error", "warn", "info", "debug"};

void log_init(const char *program, log_level_t level)
{
    s_program = program;
    log_threshold = level;
}

int log_level_parse(const char *text, log_level_t *level)
{
    for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
        if (strcmp(text, s_names[i]) == 0) {
            *level = (log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_emit(log_level_t level, const char *fmt, ...)
{
    char line[2048];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now.tv_nsec / 1000000, s_program, (long)getpid(), s_names[level]);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    int saved = errno;
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    errno = saved;
}
