/*
 * json: the JSON writer. See json.h.
 */
#include "util/json.h"
#include "util/mem.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_DEPTH 32

struct cohort_json {
    char *buf;
    size_t len, cap;
    int depth;
    bool need_comma[S_MAX_DEPTH]; /* per level: a value was written */
    bool after_key;               /* the next value follows a key */
};

cohort_json_t *cohort_json_new(void)
{
    cohort_json_t *self = cohort_calloc(1, sizeof *self);
    self->cap = 256;
    self->buf = cohort_malloc(self->cap);
    self->buf[0] = '\0';
    return self;
}

void cohort_json_destroy(cohort_json_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->buf);
    free(*self_p);
    *self_p = NULL;
}

static void s_append(cohort_json_t *self, const char *text, size_t len)
{
    if (self->len + len + 1 > self->cap) {
        while (self->len + len + 1 > self->cap)
            self->cap *= 2;
        self->buf = cohort_realloc(self->buf, self->cap);
    }
    memcpy(self->buf + self->len, text, len);
    self->len += len;
    self->buf[self->len] = '\0';
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 if the
 * bytes there are not one (overlong forms and surrogates included). */
static size_t s_utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* The escaped form of the character at text (n bytes left) into piece
 * (at least 8 bytes); *used gets how many input bytes it consumed. */
static size_t s_escape_one(const char *text, size_t n, char piece[8], size_t *used)
{
    unsigned char c = (unsigned char)text[0];
    *used = 1;
    switch (c) {
    case '"':
        memcpy(piece, "\\\"", 2);
        return 2;
    case '\\':
        memcpy(piece, "\\\\", 2);
        return 2;
    case '\n':
        memcpy(piece, "\\n", 2);
        return 2;
    case '\r':
        memcpy(piece, "\\r", 2);
        return 2;
    case '\t':
        memcpy(piece, "\\t", 2);
        return 2;
    default:
        break;
    }
    if (c < 0x20 || c == 0x7f) {
        snprintf(piece, 8, "\\u%04x", c);
        return 6;
    }
    size_t len = s_utf8_len((const unsigned char *)text, n);
    if (len == 0) {
        memcpy(piece, "\\ufffd", 6);
        return 6;
    }
    memcpy(piece, text, len);
    *used = len;
    return len;
}

size_t cohort_json_quote(char *out, size_t cap, const char *text, size_t len)
{
    if (cap == 0)
        return 0;
    if (cap < 3) {
        out[0] = '\0';
        return 0;
    }
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len;) {
        char piece[8];
        size_t used = 0, plen = s_escape_one(text + i, len - i, piece, &used);
        if (o + plen + 2 > cap) /* room for the closing quote and NUL */
            break;
        memcpy(out + o, piece, plen);
        o += plen;
        i += used;
    }
    out[o++] = '"';
    out[o] = '\0';
    return o;
}

/* Comma and state handling before any value. */
static void s_value(cohort_json_t *self)
{
    if (self->after_key) {
        self->after_key = false;
        return;
    }
    if (self->depth > 0) {
        if (self->need_comma[self->depth - 1])
            s_append(self, ",", 1);
        self->need_comma[self->depth - 1] = true;
    }
}

static void s_open(cohort_json_t *self, const char *bracket)
{
    assert(self->depth < S_MAX_DEPTH);
    s_value(self);
    s_append(self, bracket, 1);
    self->need_comma[self->depth++] = false;
}

static void s_close(cohort_json_t *self, const char *bracket)
{
    assert(self->depth > 0 && !self->after_key);
    self->depth--;
    s_append(self, bracket, 1);
}

void cohort_json_object_start(cohort_json_t *self)
{
    s_open(self, "{");
}

void cohort_json_object_end(cohort_json_t *self)
{
    s_close(self, "}");
}

void cohort_json_array_start(cohort_json_t *self)
{
    s_open(self, "[");
}

void cohort_json_array_end(cohort_json_t *self)
{
    s_close(self, "]");
}

static void s_string(cohort_json_t *self, const char *text, size_t len)
{
    s_append(self, "\"", 1);
    for (size_t i = 0; i < len;) {
        char piece[8];
        size_t used = 0, plen = s_escape_one(text + i, len - i, piece, &used);
        s_append(self, piece, plen);
        i += used;
    }
    s_append(self, "\"", 1);
}

void cohort_json_key(cohort_json_t *self, const char *key)
{
    assert(self->depth > 0 && !self->after_key);
    s_value(self);
    s_string(self, key, strlen(key));
    s_append(self, ":", 1);
    self->after_key = true;
}

void cohort_json_string(cohort_json_t *self, const char *text)
{
    if (!text) {
        s_value(self);
        s_append(self, "null", 4);
        return;
    }
    cohort_json_string_len(self, text, strlen(text));
}

void cohort_json_string_len(cohort_json_t *self, const char *text, size_t len)
{
    s_value(self);
    s_string(self, text, len);
}

void cohort_json_uint(cohort_json_t *self, uint64_t value)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%" PRIu64, value);
    s_value(self);
    s_append(self, text, (size_t)n);
}

void cohort_json_int(cohort_json_t *self, int64_t value)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%" PRId64, value);
    s_value(self);
    s_append(self, text, (size_t)n);
}

void cohort_json_double(cohort_json_t *self, double value)
{
    char text[40];
    /* JSON has no NaN or infinity: a figure that has none is null. */
    int n = isfinite(value) ? snprintf(text, sizeof text, "%.6g", value)
                            : snprintf(text, sizeof text, "null");
    s_value(self);
    s_append(self, text, (size_t)n);
}

void cohort_json_bool(cohort_json_t *self, bool value)
{
    s_value(self);
    s_append(self, value ? "true" : "false", value ? 4 : 5);
}

const char *cohort_json_text(const cohort_json_t *self, size_t *len)
{
    if (len)
        *len = self->len;
    return self->buf;
}
