/*
 * logline: turns one log line (from util/log's sink) into the bytes cohortd
 * writes: `TIMESTAMP LEVEL line` or, for log.format=json, one JSON object
 * {"ts":..,"level":..,"msg":..} per line.
 *
 * Kept apart from the sink so the formats can be tested without a daemon.
 * Output is always exactly one line: control bytes in text mode are written
 * as \xNN, and JSON strings are escaped by util/json (invalid UTF-8 becomes
 * U+FFFD). It does no I/O.
 */
#ifndef COHORT_UTIL_LOGLINE_H
#define COHORT_UTIL_LOGLINE_H

#include "util/log.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { COHORT_LOGLINE_TEXT, COHORT_LOGLINE_JSON } cohort_logline_format_t;

/* Room that always holds a formatted line of util/log's longest line. */
#define COHORT_LOGLINE_MAX (16 * 1024)

/* Writes the formatted line, ending in '\n', into out (cap bytes, at least
 * 64) and returns its length (without a NUL, which is also written). A line
 * that does not fit is cut short but stays well formed. unix_ms is wall-clock
 * time in milliseconds since the epoch; the timestamp is UTC, RFC 3339 with
 * milliseconds. Pure: any thread may call it. */
size_t cohort_logline_format(char *out, size_t cap, cohort_logline_format_t format, int64_t unix_ms,
                             cohort_log_level_t level, const char *line);

#endif
