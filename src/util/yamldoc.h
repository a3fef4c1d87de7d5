/*
 * yamldoc: libyaml documents with positions, for strict loaders and emitters.
 *
 * Loading parses one YAML document with libyaml's document API and refuses
 * what cohort never needs but an attacker could use: aliases (node sharing
 * turns walks exponential), several documents in one file, and more nodes
 * than a sane file holds. Errors carry `name:line:column:` so every loader
 * reports the place of the problem. Emitting writes block-style YAML into a
 * memory buffer through libyaml's event API.
 *
 * This module knows nothing of cohort's schemas; config and roster do.
 */
#ifndef COHORT_UTIL_YAMLDOC_H
#define COHORT_UTIL_YAMLDOC_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#define COHORT_YAML_MAX_NODES 100000

typedef struct cohort_yaml {
    yaml_document_t doc;
    const char *name; /* borrowed, for messages */
    bool loaded;
} cohort_yaml_t;

/* Parses buf (len bytes) into y. name is used in error texts and must outlive
 * y. An empty document has a NULL root. Call cohort_yaml_fini either way. */
int cohort_yaml_load(cohort_yaml_t *y, const char *name, const char *buf, size_t len,
                     cohort_err_t *err);
void cohort_yaml_fini(cohort_yaml_t *y);

/* The root node, or NULL for an empty document. Borrowed. */
yaml_node_t *cohort_yaml_root(cohort_yaml_t *y);
/* The node behind an index from a mapping pair or sequence item. Borrowed. */
yaml_node_t *cohort_yaml_at(cohort_yaml_t *y, int index);

/* Sets err to "NAME:LINE:COL: " + the formatted text, at node's start
 * (node may be NULL: then no line and column). Returns -1. */
int cohort_yaml_fail(cohort_yaml_t *y, const yaml_node_t *node, cohort_err_t *err, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

/* Writes "NAME:LINE:COL" for node into out. Returns out. */
const char *cohort_yaml_where(cohort_yaml_t *y, const yaml_node_t *node, char *out, size_t cap);

/* The scalar's text (NUL-terminated, borrowed) or NULL if not a scalar. */
const char *cohort_yaml_scalar(const yaml_node_t *node);
/* True for a plain scalar spelling null ("", "~", "null"). */
bool cohort_yaml_is_null(const yaml_node_t *node);
/* Human name of the node type ("a mapping", "a list", "a scalar"). */
const char *cohort_yaml_kind(const yaml_node_t *node);
/* A quoted, truncated, printable rendering of a node for error texts. */
const char *cohort_yaml_quote(const yaml_node_t *node, char *out, size_t cap);

/* Emitter into memory. */
typedef struct cohort_yemit cohort_yemit_t;

/* Starts a document. Never returns NULL. */
cohort_yemit_t *cohort_yemit_new(void);
void cohort_yemit_destroy(cohort_yemit_t **self_p);
void cohort_yemit_map_start(cohort_yemit_t *self);
void cohort_yemit_map_end(cohort_yemit_t *self);
/* flow: true for [a, b] on one line. */
void cohort_yemit_seq_start(cohort_yemit_t *self, bool flow);
void cohort_yemit_seq_end(cohort_yemit_t *self);
/* A plain-or-quoted scalar (libyaml picks safe quoting). */
void cohort_yemit_str(cohort_yemit_t *self, const char *value);
/* A literal block scalar (for PEM). */
void cohort_yemit_literal(cohort_yemit_t *self, const char *value);
/* A scalar that must stay plain (numbers, booleans). */
void cohort_yemit_plain(cohort_yemit_t *self, const char *value);
void cohort_yemit_kv(cohort_yemit_t *self, const char *key, const char *value);
/* Ends the document and hands out the text. Fails only if some scalar held
 * bytes YAML cannot carry (invalid UTF-8). *out: caller owns; free(). */
int cohort_yemit_finish(cohort_yemit_t *self, char **out, size_t *len, cohort_err_t *err);

#endif
