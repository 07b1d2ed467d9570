/* json — strict JSON request parsing and small response builders, over
 * cJSON.
 *
 * Sits between the daemon's HTTP handlers (request bodies in, response
 * bodies out) and cJSON; the core behind the handlers never sees JSON.
 * A request is described by a table of fields; json_parse() fills the
 * typed struct from a body and rejects anything the table does not allow:
 *
 *   struct create_req { char *name; int64_t cpus; char **env; };
 *   static const struct json_field create_fields[] = {
 *           JSON_FIELD_STR("name", struct create_req, name, JSON_REQUIRED, 63),
 *           JSON_FIELD_INT("cpus", struct create_req, cpus, JSON_OPTIONAL, 1, 64),
 *           JSON_FIELD_STRMAP("env", struct create_req, env, JSON_OPTIONAL, 4096, 256),
 *   };
 *   struct create_req req = { .cpus = 1 };            // defaults first
 *   if (json_parse(body, len, create_fields, ARRAY_SIZE(create_fields),
 *                  &req, NULL, &e) < 0) ... 400 with err_str(&e) ...
 *   json_release(create_fields, ARRAY_SIZE(create_fields), &req);
 *
 * Strict means: the body is exactly one JSON object (whitespace around it
 * is fine, anything else is not), valid UTF-8, nested at most
 * JSON_MAX_DEPTH deep, with no NUL byte or \u0000 anywhere; every key is
 * in the table and appears once; every value has the field's type (null
 * is not a value of any field); integers are written as integers (no
 * fraction or exponent) and are checked exactly against the range, not
 * through a double; strings and lists respect their caps.
 *
 * Member types: JSON_STR char * (heap), JSON_INT int64_t, JSON_UINT
 * uint64_t, JSON_BOOL bool, JSON_STRV and JSON_STRMAP char ** (heap,
 * NULL-terminated; a map is stored as "KEY=VALUE" entries in body order,
 * keys non-empty, without '=' and unique). The JSON_FIELD_* macros check
 * the member type at compile time. Pointer members are owned by the
 * struct: they must be NULL or heap memory before json_parse(), a value
 * in the body replaces (and frees) the old one, and json_release() frees
 * them all.
 */
#ifndef BHATTI_JSON_H
#define BHATTI_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "err.h"

#define JSON_MAX_DEPTH  16    /* nested objects/arrays in a body */
#define JSON_MAX_FIELDS 64    /* fields in one table (the present mask) */
#define JSON_MAX_STR    4096  /* string length when max_len is 0 */
#define JSON_MAX_ITEMS  1024  /* STRV/STRMAP entries when max_items is 0 */

enum json_kind {
	JSON_STR,     /* char *; at most max_len bytes */
	JSON_INT,     /* int64_t from min to max */
	JSON_UINT,    /* uint64_t from 0 to umax */
	JSON_SIZE,    /* uint64_t bytes from 0 to umax: a number, or a size string ("10G") */
	JSON_BOOL,    /* bool */
	JSON_STRV,    /* char **: array of strings */
	JSON_STRMAP,  /* char **: object of string to string, as "K=V" */
	JSON_OBJ,     /* char *: an object, as compact JSON text (its owner
		       * parses it further) */
};

#define JSON_REQUIRED true
#define JSON_OPTIONAL false

struct json_field {
	const char *key;
	enum json_kind kind;
	size_t off;          /* offset of the member in the struct */
	bool required;
	int64_t min, max;    /* JSON_INT: inclusive range */
	uint64_t umax;       /* JSON_UINT: largest value */
	size_t max_len;      /* strings, and each key/value/entry of a list
	                      * or map, in bytes; 0 = JSON_MAX_STR */
	size_t max_items;    /* JSON_STRV/JSON_STRMAP; 0 = JSON_MAX_ITEMS */
};

/* offsetof(T, m), refusing to compile unless m has type `type`. */
#define JSON_OFF(T, m, type) \
	(offsetof(T, m) + 0 * sizeof(&((T *)0)->m == (type *)0))

#define JSON_FIELD_STR(key_, T, m, req, max_len_) \
	{ .key = (key_), .kind = JSON_STR, .off = JSON_OFF(T, m, char *), \
	  .required = (req), .max_len = (max_len_) }
#define JSON_FIELD_INT(key_, T, m, req, min_, max_) \
	{ .key = (key_), .kind = JSON_INT, .off = JSON_OFF(T, m, int64_t), \
	  .required = (req), .min = (min_), .max = (max_) }
#define JSON_FIELD_UINT(key_, T, m, req, umax_) \
	{ .key = (key_), .kind = JSON_UINT, .off = JSON_OFF(T, m, uint64_t), \
	  .required = (req), .umax = (umax_) }
#define JSON_FIELD_SIZE(key_, T, m, req, umax_) \
	{ .key = (key_), .kind = JSON_SIZE, .off = JSON_OFF(T, m, uint64_t), \
	  .required = (req), .umax = (umax_) }
#define JSON_FIELD_BOOL(key_, T, m, req) \
	{ .key = (key_), .kind = JSON_BOOL, .off = JSON_OFF(T, m, bool), \
	  .required = (req) }
#define JSON_FIELD_STRV(key_, T, m, req, max_len_, max_items_) \
	{ .key = (key_), .kind = JSON_STRV, .off = JSON_OFF(T, m, char **), \
	  .required = (req), .max_len = (max_len_), .max_items = (max_items_) }
#define JSON_FIELD_STRMAP(key_, T, m, req, max_len_, max_items_) \
	{ .key = (key_), .kind = JSON_STRMAP, .off = JSON_OFF(T, m, char **), \
	  .required = (req), .max_len = (max_len_), .max_items = (max_items_) }

#define JSON_FIELD_OBJ(key_, T, m, req) \
	{ .key = (key_), .kind = JSON_OBJ, .off = JSON_OFF(T, m, char *), .required = (req) }

/* Was fields[i] in the body? (the mask json_parse() returns) */
#define JSON_PRESENT(mask, i) ((((mask) >> (i)) & 1u) != 0)

/* Install xmalloc/free as cJSON's allocator, so building and printing
 * never fail (allocation failure aborts, as everywhere else). Call once
 * from main() before any other cJSON use. */
void json_init(void);

/* Parse text[0..len) (no NUL terminator needed) into *obj by the table.
 * Only members whose key is in the body are written, so pre-filled
 * defaults survive. On success *ret_present (may be NULL) gets bit i set
 * for each fields[i] in the body. On failure nothing in *obj has changed,
 * e says why ("unknown field 'cpu'", "field 'cpus' must be an integer
 * from 1 to 64") and the result is -EINVAL. nfields <= JSON_MAX_FIELDS. */
int json_parse(const char *text, size_t len, const struct json_field *fields,
	       size_t nfields, void *obj, uint64_t *ret_present, struct err *e);

/* Free the pointer members of *obj named by the table and set them NULL. */
void json_release(const struct json_field *fields, size_t nfields, void *obj);

/* Append s as a quoted JSON string; invalid UTF-8 becomes U+FFFD. */
void json_put_str(struct buf *out, const char *s);

/* Append {"error":"<msg>"}. */
void json_error_body(struct buf *out, const char *msg);

/* A member of a parsed object (o may be NULL): its string, or def when
 * it is missing or not a string; its number, or 0. For reading what we
 * wrote ourselves (vm.json) or what a trusted peer sends (QMP); request
 * bodies go through json_parse(). */
const char *json_get_str(const cJSON *o, const char *key, const char *def);
double json_get_num(const cJSON *o, const char *key);

/* Append obj compactly. 0, or -ENOMEM if cJSON could not allocate (only
 * without json_init()). */
int json_print(const cJSON *obj, struct buf *out);

#endif
