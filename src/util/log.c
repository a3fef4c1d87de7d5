/*
 * log: sink and level. See log.h.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static cohort_log_sink_fn *s_sink;
static void *s_sink_arg;
static atomic_int s_level = COHORT_LOG_ERROR + 1; /* silent until a sink is set */

void cohort_log_set_sink(cohort_log_sink_fn *sink, void *arg, cohort_log_level_t level)
{
    s_sink = sink;
    s_sink_arg = arg;
    atomic_store(&s_level, sink ? (int)level : COHORT_LOG_ERROR + 1);
}

void cohort_log_set_level(cohort_log_level_t level)
{
    if (s_sink)
        atomic_store(&s_level, (int)level);
}

bool cohort_log_enabled(cohort_log_level_t level)
{
    return (int)level >= atomic_load(&s_level);
}

void cohort_log_write(cohort_log_level_t level, const char *fmt, ...)
{
    if (!s_sink)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s_sink(s_sink_arg, level, line);
}

const char *cohort_log_level_name(cohort_log_level_t level)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return (unsigned)level < 4 ? names[level] : "?";
}
