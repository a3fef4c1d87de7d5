/*
 * logline: log line formats. See logline.h.
 */
#include "util/logline.h"
#include "util/json.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void s_timestamp(int64_t unix_ms, char out[32])
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(unix_ms % 1000));
}

size_t cohort_logline_format(char *out, size_t cap, cohort_logline_format_t format, int64_t unix_ms,
                             cohort_log_level_t level, const char *line)
{
    assert(out && cap >= 64 && line);
    char ts[32];
    s_timestamp(unix_ms, ts);
    const char *lvl = cohort_log_level_name(level);
    size_t o;
    if (format == COHORT_LOGLINE_JSON) {
        o = (size_t)snprintf(out, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, lvl);
        /* leave room for "}\n" and the NUL */
        o += cohort_json_quote(out + o, cap - o - 2, line, strlen(line));
        memcpy(out + o, "}\n", 3);
        return o + 2;
    }
    o = (size_t)snprintf(out, cap, "%s %s ", ts, lvl);
    for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
        if (o + 6 > cap) /* room for \xNN, the newline and the NUL */
            break;
        if (*p < 0x20 || *p == 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
        else
            out[o++] = (char)*p;
    }
    out[o++] = '\n';
    out[o] = '\0';
    return o;
}
