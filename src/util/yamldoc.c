/*
 * yamldoc: strict YAML loading with positions, and emitting. See yamldoc.h.
 */
#include "util/yamldoc.h"
#include "util/mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each node may be referenced at most once: a second reference is an alias. */
static int s_check_tree(cohort_yaml_t *y, cohort_err_t *err)
{
    yaml_node_t *start = y->doc.nodes.start, *top = y->doc.nodes.top;
    size_t count = (size_t)(top - start);
    if (count > COHORT_YAML_MAX_NODES)
        return cohort_err_set(err, "%s: document has %zu nodes, more than the limit of %d", y->name,
                              count, COHORT_YAML_MAX_NODES);
    unsigned char *seen = cohort_calloc(count + 1, 1);
    /* The root (node 1) has no parent, so any reference to it is an alias
     * (`&a [*a]` makes a list that contains itself). */
    if (count)
        seen[1] = 1;
    int rc = 0;
    for (yaml_node_t *n = start; n < top && rc == 0; n++) {
        if (n->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = n->data.sequence.items.start;
                 it < n->data.sequence.items.top; it++) {
                if (seen[*it]++) {
                    rc = cohort_yaml_fail(y, cohort_yaml_at(y, *it), err,
                                          "aliases (*name) are not supported");
                    break;
                }
            }
        } else if (n->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
                 p++) {
                if (seen[p->key]++ || seen[p->value]++) {
                    rc = cohort_yaml_fail(y, cohort_yaml_at(y, p->value), err,
                                          "aliases (*name) are not supported");
                    break;
                }
            }
        }
    }
    free(seen);
    return rc;
}

/* The 1-based line and column of a parse problem. libyaml's reader (invalid
 * UTF-8, control characters) only records a byte offset and leaves
 * problem_mark at 0:0, so for UTF-8 input the position is counted here. */
static void s_problem_at(const yaml_parser_t *parser, const char *buf, size_t len, size_t *line,
                         size_t *col)
{
    *line = parser->problem_mark.line + 1;
    *col = parser->problem_mark.column + 1;
    if (parser->error != YAML_READER_ERROR || parser->encoding != YAML_UTF8_ENCODING)
        return;
    size_t end = parser->problem_offset < len ? parser->problem_offset : len;
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < end; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') {
            (*line)++;
            *col = 1;
        } else if ((c & 0xc0) != 0x80) { /* count characters, not continuation bytes */
            (*col)++;
        }
    }
}

/* The document API forgets where an alias stood, so a first pass over the
 * events finds aliases (and syntax errors) with their real position. */
static int s_scan_events(const char *name, const char *buf, size_t len, cohort_err_t *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    int rc = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            size_t line, col;
            s_problem_at(&parser, buf, len, &line, &col);
            rc = cohort_err_set(err, "%s:%zu:%zu: invalid YAML: %s%s%s", name, line, col,
                                parser.problem ? parser.problem : "parse error",
                                parser.context ? " " : "", parser.context ? parser.context : "");
            break;
        }
        if (ev.type == YAML_ALIAS_EVENT)
            rc = cohort_err_set(err, "%s:%zu:%zu: aliases (*name) are not supported", name,
                                ev.start_mark.line + 1, ev.start_mark.column + 1);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int cohort_yaml_load(cohort_yaml_t *y, const char *name, const char *buf, size_t len,
                     cohort_err_t *err)
{
    memset(y, 0, sizeof *y);
    y->name = name;
    if (s_scan_events(name, buf, len, err) < 0)
        return -1;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        abort(); /* only fails on OOM */
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    int rc = -1;
    size_t line, col;
    if (!yaml_parser_load(&parser, &y->doc)) {
        s_problem_at(&parser, buf, len, &line, &col);
        cohort_err_set(err, "%s:%zu:%zu: invalid YAML: %s%s%s", name, line, col,
                       parser.problem ? parser.problem : "parse error", parser.context ? " " : "",
                       parser.context ? parser.context : "");
        goto out;
    }
    y->loaded = true;
    /* A second document would be silently ignored by a naive loader. */
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        s_problem_at(&parser, buf, len, &line, &col);
        cohort_err_set(err, "%s:%zu:%zu: invalid YAML: %s", name, line, col,
                       parser.problem ? parser.problem : "parse error");
        goto out;
    }
    bool more = yaml_document_get_root_node(&extra) != NULL;
    yaml_mark_t mark = extra.start_mark;
    yaml_document_delete(&extra);
    if (more) {
        cohort_err_set(err, "%s:%zu:%zu: only one YAML document is allowed", name, mark.line + 1,
                       mark.column + 1);
        goto out;
    }
    rc = s_check_tree(y, err);
out:
    yaml_parser_delete(&parser);
    return rc;
}

void cohort_yaml_fini(cohort_yaml_t *y)
{
    if (y->loaded)
        yaml_document_delete(&y->doc);
    y->loaded = false;
}

yaml_node_t *cohort_yaml_root(cohort_yaml_t *y)
{
    return y->loaded ? yaml_document_get_root_node(&y->doc) : NULL;
}

yaml_node_t *cohort_yaml_at(cohort_yaml_t *y, int index)
{
    return yaml_document_get_node(&y->doc, index);
}

const char *cohort_yaml_where(cohort_yaml_t *y, const yaml_node_t *node, char *out, size_t cap)
{
    if (node)
        snprintf(out, cap, "%s:%zu:%zu", y->name, node->start_mark.line + 1,
                 node->start_mark.column + 1);
    else
        snprintf(out, cap, "%s", y->name);
    return out;
}

int cohort_yaml_fail(cohort_yaml_t *y, const yaml_node_t *node, cohort_err_t *err, const char *fmt,
                     ...)
{
    char where[512], what[COHORT_ERR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cohort_err_set(err, "%s: %s", cohort_yaml_where(y, node, where, sizeof where), what);
}

const char *cohort_yaml_scalar(const yaml_node_t *node)
{
    if (!node || node->type != YAML_SCALAR_NODE)
        return NULL;
    return (const char *)node->data.scalar.value;
}

bool cohort_yaml_is_null(const yaml_node_t *node)
{
    if (!node || node->type != YAML_SCALAR_NODE)
        return false;
    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)node->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

const char *cohort_yaml_kind(const yaml_node_t *node)
{
    if (!node)
        return "nothing";
    switch (node->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

const char *cohort_yaml_quote(const yaml_node_t *node, char *out, size_t cap)
{
    const char *s = cohort_yaml_scalar(node);
    if (!s) {
        snprintf(out, cap, "%s", cohort_yaml_kind(node));
        return out;
    }
    return cohort_err_quote(out, cap, s, node->data.scalar.length);
}

/* ---- emitter ---- */

struct cohort_yemit {
    yaml_emitter_t emitter;
    char *buf;
    size_t len, cap;
    bool failed;
};

static int s_write(void *data, unsigned char *bytes, size_t size)
{
    cohort_yemit_t *self = data;
    if (self->len + size + 1 > self->cap) {
        while (self->len + size + 1 > self->cap)
            self->cap = self->cap ? self->cap * 2 : 4096;
        self->buf = cohort_realloc(self->buf, self->cap);
    }
    memcpy(self->buf + self->len, bytes, size);
    self->len += size;
    return 1;
}

static void s_emit(cohort_yemit_t *self, yaml_event_t *ev)
{
    if (self->failed) {
        yaml_event_delete(ev);
        return;
    }
    if (!yaml_emitter_emit(&self->emitter, ev))
        self->failed = true;
}

cohort_yemit_t *cohort_yemit_new(void)
{
    cohort_yemit_t *self = cohort_calloc(1, sizeof *self);
    if (!yaml_emitter_initialize(&self->emitter))
        abort();
    yaml_emitter_set_output(&self->emitter, s_write, self);
    yaml_emitter_set_unicode(&self->emitter, 1);
    yaml_emitter_set_width(&self->emitter, -1);
    yaml_emitter_set_indent(&self->emitter, 2);
    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    s_emit(self, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    s_emit(self, &ev);
    return self;
}

void cohort_yemit_destroy(cohort_yemit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_yemit_t *self = *self_p;
    yaml_emitter_delete(&self->emitter);
    free(self->buf);
    free(self);
    *self_p = NULL;
}

void cohort_yemit_map_start(cohort_yemit_t *self)
{
    yaml_event_t ev;
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    s_emit(self, &ev);
}

void cohort_yemit_map_end(cohort_yemit_t *self)
{
    yaml_event_t ev;
    yaml_mapping_end_event_initialize(&ev);
    s_emit(self, &ev);
}

void cohort_yemit_seq_start(cohort_yemit_t *self, bool flow)
{
    yaml_event_t ev;
    yaml_sequence_start_event_initialize(
        &ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    s_emit(self, &ev);
}

void cohort_yemit_seq_end(cohort_yemit_t *self)
{
    yaml_event_t ev;
    yaml_sequence_end_event_initialize(&ev);
    s_emit(self, &ev);
}

static void s_scalar(cohort_yemit_t *self, const char *value, int plain_ok, int quoted_ok,
                     yaml_scalar_style_t style)
{
    yaml_event_t ev;
    /* libyaml copies the value but its prototype is not const-correct. */
    yaml_char_t *text = (yaml_char_t *)(uintptr_t)value;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, text, (int)strlen(value), plain_ok,
                                      quoted_ok, style)) {
        self->failed = true;
        return;
    }
    s_emit(self, &ev);
}

void cohort_yemit_str(cohort_yemit_t *self, const char *value)
{
    /* Plain only when it cannot be misread as another type. */
    bool plain = *value && strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_-./:") == strlen(value);
    static const char *const words[] = {"true", "false", "yes", "no",   "on",
                                        "off",  "null",  "~",   "True", "False"};
    for (size_t i = 0; plain && i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(value, words[i]))
            plain = false;
    if (plain && strspn(value, "0123456789.-") == strlen(value))
        plain = false;
    s_scalar(self, value, 1, 1, plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

void cohort_yemit_literal(cohort_yemit_t *self, const char *value)
{
    s_scalar(self, value, 0, 1, YAML_LITERAL_SCALAR_STYLE);
}

void cohort_yemit_plain(cohort_yemit_t *self, const char *value)
{
    s_scalar(self, value, 1, 0, YAML_PLAIN_SCALAR_STYLE);
}

void cohort_yemit_kv(cohort_yemit_t *self, const char *key, const char *value)
{
    cohort_yemit_str(self, key);
    cohort_yemit_str(self, value);
}

int cohort_yemit_finish(cohort_yemit_t *self, char **out, size_t *len, cohort_err_t *err)
{
    yaml_event_t ev;
    yaml_document_end_event_initialize(&ev, 1);
    s_emit(self, &ev);
    yaml_stream_end_event_initialize(&ev);
    s_emit(self, &ev);
    if (self->failed || !yaml_emitter_flush(&self->emitter))
        return cohort_err_set(err, "cannot write YAML: %s",
                              self->emitter.problem ? self->emitter.problem
                                                    : "a value is not valid UTF-8 text");
    if (!self->buf) /* nothing was written: still hand out a string */
        self->buf = cohort_malloc(self->cap = 1);
    self->buf[self->len] = '\0';
    *out = self->buf;
    *len = self->len;
    self->buf = NULL;
    self->len = self->cap = 0;
    return 0;
}
