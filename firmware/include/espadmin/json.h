/* Strict JSON parser and bounded writer used by the protocol code.
 *
 * The parser enforces the protocol's well-formedness rules (docs/protocol.md §2): exactly one
 * value, valid UTF-8, no duplicate key in any object, nesting at most ESPADMIN_JSON_MAX_DEPTH
 * levels, no \u0000 escape and no unpaired surrogate escape. It keeps the raw text of every
 * value, so integers are told apart from numbers written with a fraction or an exponent and
 * 64-bit integers survive exactly. */
#ifndef ESPADMIN_JSON_H
#define ESPADMIN_JSON_H

#include "espadmin/profile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ESPADMIN_JSON_MAX_DEPTH 16

/* The parser's working memory is one block of (values × sizeof(ej_node_t)) + at most the
 * input's length + values bytes, sized by a first pass that allocates nothing. A document
 * with more values (objects, arrays, strings, numbers, literals) than this is refused with
 * EJ_ERR_TOO_LARGE before any allocation. With the default, a 16 KiB command takes at most
 * 768 × 44 + 16384 + 768 bytes (about 50 KB) on a 32-bit target. A build may set it with
 * -DESPADMIN_JSON_MAX_NODES=N when it compiles the core. */
#ifndef ESPADMIN_JSON_MAX_NODES
#define ESPADMIN_JSON_MAX_NODES 768
#endif

typedef enum {
    EJ_NULL,
    EJ_FALSE,
    EJ_TRUE,
    EJ_NUMBER,
    EJ_STRING,
    EJ_ARRAY,
    EJ_OBJECT,
} ej_type_t;

typedef struct ej_node {
    ej_type_t type;
    const char *key; /* member name (decoded, NUL-terminated); NULL for array items */
    size_t key_len;
    const char *str; /* strings: decoded value; numbers: the number's text (NUL-terminated) */
    size_t str_len;
    const char *raw; /* the value's bytes in the input */
    size_t raw_len;
    bool num_is_int; /* number written without fraction or exponent */
    size_t count;    /* number of children (arrays, objects) */
    struct ej_node *child;
    struct ej_node *next;
} ej_node_t;

typedef struct {
    ej_node_t *root;
    void *arena;
} ej_doc_t;

typedef enum {
    EJ_OK = 0,
    EJ_ERR_MALFORMED = -1,
    EJ_ERR_NO_MEMORY = -2,
    EJ_ERR_TOO_LARGE = -3, /* more than ESPADMIN_JSON_MAX_NODES values */
} ej_result_t;

/* Parses data[0..len). On success doc->root is the top value; free with ej_free. Nothing is
 * allocated unless the input is well formed (apart from duplicate keys, found while building)
 * and within ESPADMIN_JSON_MAX_NODES. */
ej_result_t ej_parse(ej_doc_t *doc, const char *data, size_t len);
void ej_free(ej_doc_t *doc);

/* Like ej_parse, but stores the tree only down to max_level (the top value is level 0): a
 * container at max_level keeps its raw text and its count, not its children, which are
 * checked (well-formedness, duplicate keys, by rescanning the text) but not stored. A tree of
 * more than max_nodes values is refused with EJ_ERR_TOO_LARGE before any allocation. This is
 * how a small device decodes a command as a stream (include/espadmin/profile.h). */
ej_result_t ej_parse_partial(ej_doc_t *doc, const char *data, size_t len, int max_level,
                             size_t max_nodes);

#ifdef ESPADMIN_PROFILE_SMALL
/* Walks the items of an array from its raw text (whether or not its children are stored):
 * *pos starts at 0; each call gives the next item's raw text. Returns false after the last. */
bool ej_next_raw(const ej_node_t *arr, size_t *pos, const char **item, size_t *item_len);
#endif

/* Member of an object by name, or NULL. */
const ej_node_t *ej_get(const ej_node_t *obj, const char *key);

/* Integer value of a number node written as an integer. Returns false when the node is not
 * an integer or does not fit in int64_t (*overflow is set then). */
bool ej_int(const ej_node_t *n, int64_t *out, bool *overflow);

/* Writes the value in compact form (whitespace outside strings removed) to out; returns the
 * compact length (which may exceed cap; out is then not complete). */
size_t ej_compact(const ej_node_t *n, char *out, size_t cap);

/* Reports whether s[0..len) is valid UTF-8 (no overlong forms, no surrogates). */
bool ej_utf8_valid(const char *s, size_t len);

/* Bounded writer. On overflow every later call is ignored and ejw_finish returns -1. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
    int depth;
    bool first[ESPADMIN_JSON_MAX_DEPTH];
    bool after_key;
} ej_writer_t;

void ejw_init(ej_writer_t *w, char *buf, size_t cap);
void ejw_obj_begin(ej_writer_t *w);
void ejw_obj_end(ej_writer_t *w);
void ejw_arr_begin(ej_writer_t *w);
void ejw_arr_end(ej_writer_t *w);
void ejw_key(ej_writer_t *w, const char *key);
void ejw_string(ej_writer_t *w, const char *s);
void ejw_string_n(ej_writer_t *w, const char *s, size_t len);
void ejw_int(ej_writer_t *w, int64_t v);
/* A member: ejw_key followed by ejw_string or ejw_int, in one call. */
void ejw_kstring(ej_writer_t *w, const char *key, const char *s);
void ejw_kint(ej_writer_t *w, const char *key, int64_t v);
void ejw_bool(ej_writer_t *w, bool v);
void ejw_raw(ej_writer_t *w, const char *json, size_t len);
/* NUL-terminates and returns the length, or -1 on overflow or unbalanced nesting. */
int ejw_finish(ej_writer_t *w);

#ifdef __cplusplus
}
#endif
#endif
