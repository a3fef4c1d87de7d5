/*
 * err: formatting of error texts. See err.h.
 */
#include "util/err.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cohort_err_clear(cohort_err_t *err)
{
    if (err)
        err->text[0] = '\0';
}

int cohort_err_set(cohort_err_t *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return -1;
}

int cohort_err_prefix(cohort_err_t *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[COHORT_ERR_TEXT_MAX];
    char rest[COHORT_ERR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(rest, err->text, sizeof rest);
    snprintf(err->text, sizeof err->text, "%s: %s", prefix, rest);
    return -1;
}

int cohort_err_openssl(cohort_err_t *err, const char *fmt, ...)
{
    char what[COHORT_ERR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);

    unsigned long code = ERR_peek_last_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    ERR_clear_error();
    if (reason)
        return cohort_err_set(err, "%s: %s", what, reason);
    return cohort_err_set(err, "%s", what);
}

const char *cohort_err_text(const cohort_err_t *err)
{
    return err ? err->text : "";
}

const char *cohort_err_quote(char *out, size_t cap, const char *bytes, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap < 8) {
        if (cap)
            out[0] = '\0';
        return out;
    }
    out[o++] = '\'';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        size_t need = (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') ? 1 : 4;
        if (o + need + 5 > cap) { /* room for "...'" and NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (need == 1) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o++] = '\'';
    out[o] = '\0';
    return out;
}
