/*
 * log: one level-checked logging call for the whole library.
 *
 * The library is silent unless the embedder installs a sink (cohortd installs
 * one that writes to stderr). Lines are `event key=value ...`: the event name
 * first, then stable fields (documented in config/README.md#logs). The level
 * is checked before anything is formatted, so a debug line costs one branch
 * when debug is off. The sink is process-wide and may be called from any
 * cohort thread; it must be thread-safe (a single write(2) per line is).
 */
#ifndef COHORT_UTIL_LOG_H
#define COHORT_UTIL_LOG_H

#include <stdbool.h>

typedef enum {
    COHORT_LOG_DEBUG = 0,
    COHORT_LOG_INFO = 1,
    COHORT_LOG_WARN = 2,
    COHORT_LOG_ERROR = 3,
} cohort_log_level_t;

/* Receives one formatted line (no newline). Called on the logging thread. */
typedef void(cohort_log_sink_fn)(void *arg, cohort_log_level_t level, const char *line);

/* Installs the sink (NULL: silence) and the lowest level that is logged. */
void cohort_log_set_sink(cohort_log_sink_fn *sink, void *arg, cohort_log_level_t level);
void cohort_log_set_level(cohort_log_level_t level);
bool cohort_log_enabled(cohort_log_level_t level);
void cohort_log_write(cohort_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Name of a level ("debug", "info", "warn", "error"). */
const char *cohort_log_level_name(cohort_log_level_t level);

/* The one macro: checks the level before evaluating the arguments. */
#define COHORT_LOG(level, ...)                                                                     \
    do {                                                                                           \
        if (cohort_log_enabled(level))                                                             \
            cohort_log_write(level, __VA_ARGS__);                                                  \
    } while (0)

#endif
