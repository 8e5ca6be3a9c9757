/*
 * log — one line per event on stderr, with a level.
 *
 * The level test happens in the macro, before any argument is evaluated, so
 * a disabled LOG_DEBUG costs a compare. Nothing on the packet path logs per
 * packet: log per event (a peer joined, a batch was refused) and count the rest.
 */
#ifndef TAPMESH_LOG_H
#define TAPMESH_LOG_H

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG } log_level_t;

extern log_level_t log_threshold;

/* Sets the program name printed on every line and the level. */
void log_init(const char *program, log_level_t level);

/* Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int log_level_parse(const char *text, log_level_t *level);

void log_emit(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) <= log_threshold)                                                                \
            log_emit((lvl), __VA_ARGS__);                                                          \
    } while (0)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
