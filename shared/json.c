/* json.c — strict request parsing and response builders over cJSON (see
 * json.h). Sits between the daemon's HTTP handlers and cJSON; touches only
 * memory.
 *
 * cJSON alone is too lenient for request bodies: it stops at a NUL
 * (raw or \u0000), passes invalid UTF-8, keeps duplicate keys, and stores
 * every number as a double, which cannot hold every int64 and forgets
 * whether "1" was written "1.0". So a body goes through three steps:
 *
 *   1. scan():  one pass over the raw bytes: NUL, control characters,
 *      UTF-8, nesting depth; it also notes where each number token of the
 *      top-level object starts (depth 1), in order.
 *   2. cJSON_ParseWithLengthOpts(): syntax; the parse must end at the end
 *      of the text (only whitespace may follow).
 *   3. check_member() for each member, then store(): the k-th number
 *      member of the object is the k-th depth-1 number token, which is
 *      parsed exactly from the text. Nothing is written until every member
 *      has passed, so a failed parse leaves the struct as it was.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "num.h"

void json_init(void)
{
	cJSON_Hooks hooks = { .malloc_fn = xmalloc, .free_fn = free };
	cJSON_InitHooks(&hooks);
}

/* ---- raw text checks ----------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when the
 * bytes there are not one: overlong forms, surrogates and code points past
 * U+10FFFF are refused. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	uint32_t cp;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

struct span {
	size_t off, len;
};

struct scan {
	struct span *nums;   /* number tokens at depth 1, in text order */
	size_t nnums, cap;
};

static bool is_num_char(char c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
	       c == 'e' || c == 'E';
}

static int scan(const char *text, size_t len, struct scan *sc, struct err *e)
{
	const unsigned char *s = (const unsigned char *)text;
	bool in_str = false;
	size_t depth = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c == '\0')
			return err_set(e, EINVAL, "invalid JSON at byte %zu: NUL byte", i);
		if (in_str) {
			if (c == '"') {
				in_str = false;
			} else if (c == '\\') {
				if (i + 5 < len && s[i + 1] == 'u' &&
				    memcmp(s + i + 2, "0000", 4) == 0)
					return err_set(e, EINVAL, "invalid JSON at byte %zu: "
						       "strings must not contain \\u0000", i);
				i++; /* the escaped character; cJSON checks the rest */
			} else if (c < 0x20) {
				return err_set(e, EINVAL, "invalid JSON at byte %zu: "
					       "control character in a string", i);
			} else if (c >= 0x80) {
				size_t k = utf8_seq(s + i, len - i);
				if (!k)
					return err_set(e, EINVAL, "invalid JSON at byte %zu: "
						       "invalid UTF-8", i);
				i += k - 1;
			}
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > JSON_MAX_DEPTH)
				return err_set(e, EINVAL, "JSON nested deeper than %d levels",
					       JSON_MAX_DEPTH);
		} else if (c == '}' || c == ']') {
			if (depth)
				depth--;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t j = i;
			while (j < len && is_num_char(text[j]))
				j++;
			if (depth == 1) {
				if (sc->nnums == sc->cap) {
					sc->cap = sc->cap ? 2 * sc->cap : 8;
					sc->nums = xrealloc(sc->nums, sc->cap * sizeof(*sc->nums));
				}
				sc->nums[sc->nnums++] = (struct span){ i, j - i };
			}
			i = j - 1;
		} else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return err_set(e, EINVAL, "invalid JSON at byte %zu: control character", i);
		}
	}
	return 0;
}

/* An integer literal, -?(0|[1-9][0-9]*), to sign and magnitude. -EINVAL
 * when the token is anything else (fraction, exponent, leading zero),
 * -ERANGE when the magnitude does not fit 64 bits. */
static int int_token(const char *p, size_t n, bool *ret_neg, uint64_t *ret_mag)
{
	bool neg = n > 0 && p[0] == '-';
	size_t i = neg ? 1 : 0;
	uint64_t v = 0;

	if (i == n || (p[i] == '0' && n - i > 1))
		return -EINVAL;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10) {
			/* keep checking the rest is digits: 1e400 is not a range error */
			for (; i < n; i++)
				if (p[i] < '0' || p[i] > '9')
					return -EINVAL;
			return -ERANGE;
		}
		v = v * 10 + d;
	}
	*ret_neg = neg;
	*ret_mag = v;
	return 0;
}

/* ---- members ------------------------------------------------------------- */

/* A member that passed its checks, waiting to be stored. */
struct found {
	const cJSON *item;
	int64_t i;
	uint64_t u;
};

#define KEYQ "%.64s"   /* keys from the body are quoted at most this long */

static size_t max_len(const struct json_field *f)
{
	return f->max_len ? f->max_len : JSON_MAX_STR;
}

static size_t max_items(const struct json_field *f)
{
	return f->max_items ? f->max_items : JSON_MAX_ITEMS;
}

static int check_int(const struct json_field *f, const char *text,
		     const struct span *sp, struct found *fd, struct err *e)
{
	bool neg = false;
	uint64_t mag = 0;
	int r = int_token(text + sp->off, sp->len, &neg, &mag);

	if (r == -EINVAL)
		return err_set(e, EINVAL, "field '%s' must be an integer", f->key);
	if (f->kind == JSON_UINT || f->kind == JSON_SIZE) {
		if (r < 0 || (neg && mag) || mag > f->umax)
			return err_set(e, EINVAL, "field '%s' must be an integer from 0 to %" PRIu64,
				       f->key, f->umax);
		fd->u = mag;
		return 0;
	}
	int64_t v = 0;
	if (r == 0 && !neg && mag <= (uint64_t)INT64_MAX)
		v = (int64_t)mag;
	else if (r == 0 && neg && mag <= (uint64_t)INT64_MAX + 1)
		v = (int64_t)(0 - mag);
	else
		r = -ERANGE;
	if (r < 0 || v < f->min || v > f->max)
		return err_set(e, EINVAL, "field '%s' must be an integer from %" PRId64
			       " to %" PRId64, f->key, f->min, f->max);
	fd->i = v;
	return 0;
}

static int check_str(const struct json_field *f, const char *what, const char *s,
		     struct err *e)
{
	if (strlen(s) > max_len(f))
		return err_set(e, EINVAL, "field '%s'%s is longer than %zu bytes",
			       f->key, what, max_len(f));
	return 0;
}

static int check_strv(const struct json_field *f, const cJSON *it, struct err *e)
{
	const cJSON *c;
	size_t n = 0;
	char what[32];

	if (!cJSON_IsArray(it))
		return err_set(e, EINVAL, "field '%s' must be an array of strings", f->key);
	cJSON_ArrayForEach(c, it) {
		if (++n > max_items(f))
			return err_set(e, EINVAL, "field '%s' has more than %zu entries",
				       f->key, max_items(f));
		if (!cJSON_IsString(c))
			return err_set(e, EINVAL, "field '%s' must be an array of strings", f->key);
		snprintf(what, sizeof(what), " entry %zu", n - 1);
		if (check_str(f, what, c->valuestring, e) < 0)
			return -EINVAL;
	}
	return 0;
}

static int check_strmap(const struct json_field *f, const cJSON *it, struct err *e)
{
	const cJSON *c, *d;
	size_t n = 0;

	if (!cJSON_IsObject(it))
		return err_set(e, EINVAL, "field '%s' must be an object of strings", f->key);
	cJSON_ArrayForEach(c, it) {
		if (++n > max_items(f))
			return err_set(e, EINVAL, "field '%s' has more than %zu entries",
				       f->key, max_items(f));
		if (!cJSON_IsString(c))
			return err_set(e, EINVAL, "field '%s' must be an object of strings", f->key);
		if (!c->string[0] || strchr(c->string, '='))
			return err_set(e, EINVAL, "field '%s' has an invalid key '" KEYQ "' "
				       "(empty or containing '=')", f->key, c->string);
		if (strlen(c->string) > max_len(f) || strlen(c->valuestring) > max_len(f))
			return err_set(e, EINVAL, "field '%s' entry '" KEYQ "' is longer "
				       "than %zu bytes", f->key, c->string, max_len(f));
		for (d = it->child; d != c; d = d->next)
			if (strcmp(d->string, c->string) == 0)
				return err_set(e, EINVAL, "field '%s' has a duplicate key '"
					       KEYQ "'", f->key, c->string);
	}
	return 0;
}

/* Check one member against its field; numbers come with their token. */
static int check_member(const struct json_field *f, const cJSON *it, const char *text,
			const struct span *num, struct found *fd, struct err *e)
{
	switch (f->kind) {
	case JSON_STR:
		if (!cJSON_IsString(it))
			return err_set(e, EINVAL, "field '%s' must be a string", f->key);
		return check_str(f, "", it->valuestring, e);
	case JSON_INT:
	case JSON_UINT:
		if (!num)
			return err_set(e, EINVAL, "field '%s' must be an integer", f->key);
		return check_int(f, text, num, fd, e);
	case JSON_SIZE:
		if (cJSON_IsString(it)) {
			uint64_t v;
			if (num_parse_size(it->valuestring, &v, f->key, NULL) < 0 || v > f->umax)
				return err_set(e, EINVAL, "field '%s' must be a size in bytes or "
					       "with a unit (\"10G\"), at most %" PRIu64 " bytes",
					       f->key, f->umax);
			fd->u = v;
			return 0;
		}
		if (!num)
			return err_set(e, EINVAL, "field '%s' must be a size in bytes or with a "
				       "unit (\"10G\")", f->key);
		return check_int(f, text, num, fd, e);
	case JSON_BOOL:
		if (!cJSON_IsBool(it))
			return err_set(e, EINVAL, "field '%s' must be true or false", f->key);
		return 0;
	case JSON_STRV:
		return check_strv(f, it, e);
	case JSON_STRMAP:
		return check_strmap(f, it, e);
	case JSON_OBJ:
		if (!cJSON_IsObject(it))
			return err_set(e, EINVAL, "field '%s' must be an object", f->key);
		return 0;
	}
	return err_set(e, EINVAL, "field '%s' has an unknown kind", f->key);
}

#define MEMBER(obj, off, T) ((T *)((char *)(obj) + (off)))

static char **build_strv(const cJSON *it, bool map)
{
	char **v = xcalloc((size_t)cJSON_GetArraySize(it) + 1, sizeof(*v));
	const cJSON *c;
	size_t n = 0;

	cJSON_ArrayForEach(c, it) {
		if (map) {
			struct buf b = BUF_INIT;
			buf_addf(&b, "%s=%s", c->string, c->valuestring);
			v[n++] = buf_detach(&b, NULL);
		} else {
			v[n++] = xstrdup(c->valuestring);
		}
	}
	return v;
}

static void store(const struct json_field *f, const struct found *fd, void *obj)
{
	switch (f->kind) {
	case JSON_STR:
		free(*MEMBER(obj, f->off, char *));
		*MEMBER(obj, f->off, char *) = xstrdup(fd->item->valuestring);
		break;
	case JSON_INT:
		*MEMBER(obj, f->off, int64_t) = fd->i;
		break;
	case JSON_UINT:
	case JSON_SIZE:
		*MEMBER(obj, f->off, uint64_t) = fd->u;
		break;
	case JSON_BOOL:
		*MEMBER(obj, f->off, bool) = cJSON_IsTrue(fd->item);
		break;
	case JSON_STRV:
	case JSON_STRMAP:
		strv_free(*MEMBER(obj, f->off, char **));
		*MEMBER(obj, f->off, char **) = build_strv(fd->item, f->kind == JSON_STRMAP);
		break;
	case JSON_OBJ:
		free(*MEMBER(obj, f->off, char *));
		*MEMBER(obj, f->off, char *) = cJSON_PrintUnformatted(fd->item);
		break;
	}
}

static int check_object(const char *text, const cJSON *root, const struct scan *sc,
			const struct json_field *fields, size_t nfields,
			struct found *found, struct err *e)
{
	const cJSON *it;
	size_t k = 0;   /* number members seen so far = index into sc->nums */

	cJSON_ArrayForEach(it, root) {
		const struct span *num = NULL;
		size_t i;

		if (cJSON_IsNumber(it)) {
			if (k >= sc->nnums) /* cannot happen: scan() saw every token */
				return err_set(e, EINVAL, "invalid JSON number");
			num = &sc->nums[k++];
		}
		for (i = 0; i < nfields; i++)
			if (strcmp(fields[i].key, it->string) == 0)
				break;
		if (i == nfields)
			return err_set(e, EINVAL, "unknown field '" KEYQ "'", it->string);
		if (found[i].item)
			return err_set(e, EINVAL, "duplicate field '%s'", fields[i].key);
		found[i].item = it;
		if (check_member(&fields[i], it, text, num, &found[i], e) < 0)
			return -EINVAL;
	}
	for (size_t i = 0; i < nfields; i++)
		if (fields[i].required && !found[i].item)
			return err_set(e, EINVAL, "missing field '%s'", fields[i].key);
	return 0;
}

static size_t skip_ws(const char *text, size_t len, size_t i)
{
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' ||
			   text[i] == '\r'))
		i++;
	return i;
}

int json_parse(const char *text, size_t len, const struct json_field *fields,
	       size_t nfields, void *obj, uint64_t *ret_present, struct err *e)
{
	struct found found[JSON_MAX_FIELDS] = { 0 };
	struct scan sc = { 0 };
	const char *end = NULL;
	cJSON *root = NULL;
	uint64_t present = 0;
	size_t at;
	int r;

	if (nfields > JSON_MAX_FIELDS)
		abort(); /* programming error: split the table */
	r = scan(text, len, &sc, e);
	if (r < 0)
		goto out;
	if (skip_ws(text, len, 0) == len) {
		r = err_set(e, EINVAL, "body is empty");
		goto out;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
	if (root)
		at = skip_ws(text, len, at);
	if (!root || at != len) {
		r = err_set(e, EINVAL, "invalid JSON at byte %zu", at);
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		r = err_set(e, EINVAL, "body must be a JSON object");
		goto out;
	}
	r = check_object(text, root, &sc, fields, nfields, found, e);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < nfields; i++) {
		if (!found[i].item)
			continue;
		store(&fields[i], &found[i], obj);
		present |= (uint64_t)1 << i;
	}
	if (ret_present)
		*ret_present = present;
out:
	cJSON_Delete(root);
	free(sc.nums);
	return r;
}

void json_release(const struct json_field *fields, size_t nfields, void *obj)
{
	for (size_t i = 0; i < nfields; i++) {
		const struct json_field *f = &fields[i];
		if (f->kind == JSON_STR || f->kind == JSON_OBJ) {
			free(*MEMBER(obj, f->off, char *));
			*MEMBER(obj, f->off, char *) = NULL;
		} else if (f->kind == JSON_STRV || f->kind == JSON_STRMAP) {
			strv_free(*MEMBER(obj, f->off, char **));
			*MEMBER(obj, f->off, char **) = NULL;
		}
	}
}

/* ---- builders ------------------------------------------------------------ */

void json_put_str(struct buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	buf_addch(out, '"');
	for (size_t i = 0; i < n; ) {
		unsigned char c = p[i];
		size_t k;
		switch (c) {
		case '"': buf_adds(out, "\\\""); i++; continue;
		case '\\': buf_adds(out, "\\\\"); i++; continue;
		case '\n': buf_adds(out, "\\n"); i++; continue;
		case '\r': buf_adds(out, "\\r"); i++; continue;
		case '\t': buf_adds(out, "\\t"); i++; continue;
		default: break;
		}
		if (c < 0x20) {
			buf_addf(out, "\\u%04x", c);
			i++;
		} else if ((k = utf8_seq(p + i, n - i)) != 0) {
			buf_add(out, p + i, k);
			i += k;
		} else {
			buf_adds(out, "\\ufffd");
			i++;
		}
	}
	buf_addch(out, '"');
}

void json_error_body(struct buf *out, const char *msg)
{
	buf_adds(out, "{\"error\":");
	json_put_str(out, msg);
	buf_addch(out, '}');
}

int json_print(const cJSON *obj, struct buf *out)
{
	char *s = cJSON_PrintUnformatted(obj);
	if (!s)
		return -ENOMEM;
	buf_adds(out, s);
	cJSON_free(s);
	return 0;
}

const char *json_get_str(const cJSON *o, const char *key, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : def;
}

double json_get_num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}
