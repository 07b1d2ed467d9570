/* config.c — strict YAML config loading over libyaml's event parser (see
 * config.h). Sits between a config file and the caller's settings struct;
 * touches the file it is given and memory, nothing else.
 *
 * The loader walks the event stream with a recursive descent that mirrors
 * the accepted shape (one document, a mapping of keys and sections, scalar
 * values or lists of strings) and turns every event it does not expect
 * into an error carrying the event's line. Values are parsed into a
 * pending list first and stored only once the whole file has passed, so a
 * failed load leaves the struct as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "buf.h"
#include "config.h"
#include "num.h"

struct pending {
	const struct config_key *key;
	union {
		int64_t i;
		uint64_t u;
		bool b;
		char *s;
		char **v;
	} val;
};

struct loader {
	yaml_parser_t parser;
	const char *name;             /* the file, for messages */
	const char *text;
	size_t len;
	const struct config_key *keys;
	size_t nkeys;
	struct pending *set;          /* one per key at most (no duplicates) */
	size_t nset;
	char **seen;                  /* dotted paths met so far */
	size_t nseen, capseen;
	struct buf path;              /* dotted path of the current key */
	struct err *e;
};

static int fail(struct loader *ld, size_t line, const char *fmt, ...) PRINTF(3, 4);

static int fail(struct loader *ld, size_t line, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(ld->e, EINVAL, "%s:%zu: %s", ld->name, line, msg);
}

static size_t line_of(const yaml_event_t *ev)
{
	return ev->start_mark.line + 1;
}

static int syntax_error(struct loader *ld)
{
	const yaml_parser_t *p = &ld->parser;
	size_t line = p->problem_mark.line + 1;

	if (p->error == YAML_MEMORY_ERROR)
		return err_set(ld->e, ENOMEM, "%s: out of memory", ld->name);
	if (p->error == YAML_READER_ERROR) { /* no mark: count the lines */
		line = 1;
		for (size_t i = 0; i < p->problem_offset && i < ld->len; i++)
			line += ld->text[i] == '\n';
	}
	if (p->context)
		return fail(ld, line, "invalid YAML: %s %s", p->problem ? p->problem : "error",
			    p->context);
	return fail(ld, line, "invalid YAML: %s", p->problem ? p->problem : "error");
}

/* Next event; the caller deletes it. */
static int next(struct loader *ld, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&ld->parser, ev))
		return syntax_error(ld);
	return 0;
}

/* Refuse the YAML features a config has no use for. */
static int check_node(struct loader *ld, const yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return fail(ld, line_of(ev), "aliases are not supported");
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	default:
		break;
	}
	if (anchor)
		return fail(ld, line_of(ev), "anchors are not supported");
	if (tag)
		return fail(ld, line_of(ev), "tags are not supported");
	return 0;
}

/* `key:`, `key: ~` and `key: null` (unquoted). */
static bool is_null(const yaml_event_t *ev)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
		if (strcmp((const char *)ev->data.scalar.value, nulls[i]) == 0)
			return true;
	return false;
}

static const char *scalar(const yaml_event_t *ev)
{
	return (const char *)ev->data.scalar.value;
}

static bool has_nul(const yaml_event_t *ev)
{
	return memchr(ev->data.scalar.value, '\0', ev->data.scalar.length) != NULL;
}

/* ---- values -------------------------------------------------------------- */

static void fmt_size(char *out, size_t n, uint64_t v)
{
	static const struct { char unit; uint64_t mult; } units[] = {
		{ 'T', 1ull << 40 }, { 'G', 1ull << 30 }, { 'M', 1ull << 20 }, { 'K', 1ull << 10 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (v && v % units[i].mult == 0) {
			snprintf(out, n, "%" PRIu64 "%c", v / units[i].mult, units[i].unit);
			return;
		}
	}
	snprintf(out, n, "%" PRIu64, v);
}

void config_fmt_duration(char *out, size_t n, uint64_t ms)
{
	if (ms == CONFIG_NEVER) {
		snprintf(out, n, "never");
		return;
	}
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (ms && ms % units[i].mult == 0) {
			snprintf(out, n, "%" PRIu64 "%s", ms / units[i].mult, units[i].unit);
			return;
		}
	}
	snprintf(out, n, "%" PRIu64 "ms", ms);
}

/* "a whole number from 1 to 64", "a size from 64M to 2G", ... */
static void describe(const struct config_key *k, char *out, size_t n)
{
	char lo[32], hi[32];
	bool unbounded = k->min <= 0 && k->max == INT64_MAX;

	switch (k->kind) {
	case CONFIG_STR:
		snprintf(out, n, "a string");
		break;
	case CONFIG_INT:
		snprintf(out, n, "a whole number from %" PRId64 " to %" PRId64, k->min, k->max);
		break;
	case CONFIG_BOOL:
		snprintf(out, n, "true or false");
		break;
	case CONFIG_SIZE:
	case CONFIG_DURATION:
		if (unbounded) {
			snprintf(out, n, k->kind == CONFIG_SIZE ? "a size such as 512M" :
				 "a duration such as 30s");
			break;
		}
		if (k->kind == CONFIG_SIZE) {
			fmt_size(lo, sizeof(lo), (uint64_t)MAX(k->min, 0));
			fmt_size(hi, sizeof(hi), (uint64_t)k->max);
		} else {
			config_fmt_duration(lo, sizeof(lo), (uint64_t)MAX(k->min, 0));
			config_fmt_duration(hi, sizeof(hi), (uint64_t)k->max);
		}
		snprintf(out, n, "a %s from %s to %s%s",
			 k->kind == CONFIG_SIZE ? "size" : "duration", lo, hi,
			 k->never ? ", or never" : "");
		break;
	case CONFIG_STRV:
		snprintf(out, n, "a list of strings");
		break;
	}
}

static int bad_value(struct loader *ld, const struct config_key *k, const yaml_event_t *ev)
{
	char what[128];
	describe(k, what, sizeof(what));
	return fail(ld, line_of(ev), "key '%s' must be %s", k->key, what);
}

static int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "True", "TRUE" };
	static const char *const no[] = { "false", "False", "FALSE" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* A scalar value for key k, into *p. */
static int load_scalar(struct loader *ld, const struct config_key *k,
		       const yaml_event_t *ev, struct pending *p)
{
	const char *s = scalar(ev);
	uint64_t u;
	int r = 0;

	switch (k->kind) {
	case CONFIG_STR:
		if (k->check) {
			struct err ce = ERR_INIT;
			if (k->check(s, &ce) < 0)
				return fail(ld, line_of(ev), "key '%s' %s", k->key, err_str(&ce));
		}
		p->val.s = xstrndup(s, ev->data.scalar.length);
		return 0;
	case CONFIG_INT:
		r = num_parse_i64(s, k->min, k->max, &p->val.i, k->key, NULL);
		break;
	case CONFIG_BOOL:
		r = parse_bool(s, &p->val.b);
		break;
	case CONFIG_SIZE:
	case CONFIG_DURATION:
		if (k->never && strcmp(s, "never") == 0) {
			p->val.u = CONFIG_NEVER;
			return 0;
		}
		r = k->kind == CONFIG_SIZE ? num_parse_size(s, &u, k->key, NULL) :
		    num_parse_duration_ms(s, &u, k->key, NULL);
		if (r == 0 && (u < (uint64_t)MAX(k->min, 0) || u > (uint64_t)k->max))
			r = -ERANGE;
		p->val.u = u;
		break;
	case CONFIG_STRV:
		r = -EINVAL;
		break;
	}
	return r < 0 ? bad_value(ld, k, ev) : 0;
}

/* The rest of a list of strings, after its SEQUENCE_START. */
static int load_list(struct loader *ld, const struct config_key *k, struct pending *p)
{
	char **v = xcalloc(1, sizeof(*v));
	size_t n = 0;
	int r;

	for (;;) {
		yaml_event_t ev;
		r = next(ld, &ev);
		if (r < 0)
			goto fail;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		r = check_node(ld, &ev);
		if (r == 0 && (ev.type != YAML_SCALAR_EVENT || is_null(&ev)))
			r = bad_value(ld, k, &ev);
		if (r == 0 && has_nul(&ev))
			r = fail(ld, line_of(&ev), "key '%s' must not contain a NUL character",
				 k->key);
		if (r == 0) {
			v = xrealloc(v, (n + 2) * sizeof(*v));
			v[n++] = xstrndup(scalar(&ev), ev.data.scalar.length);
			v[n] = NULL;
		}
		yaml_event_delete(&ev);
		if (r < 0)
			goto fail;
	}
	p->val.v = v;
	return 0;
fail:
	strv_free(v);
	return r;
}

/* The value of key k, starting with its first event. */
static int load_value(struct loader *ld, const struct config_key *k, const yaml_event_t *ev)
{
	struct pending *p = &ld->set[ld->nset];
	int r;

	if (is_null(ev))
		return fail(ld, line_of(ev), "key '%s' has no value", k->key);
	if (k->kind == CONFIG_STRV) {
		if (ev->type != YAML_SEQUENCE_START_EVENT)
			return bad_value(ld, k, ev);
		r = load_list(ld, k, p);
	} else {
		if (ev->type != YAML_SCALAR_EVENT)
			return bad_value(ld, k, ev);
		if (has_nul(ev))
			return fail(ld, line_of(ev), "key '%s' must not contain a NUL character",
				    k->key);
		r = load_scalar(ld, k, ev, p);
	}
	if (r < 0)
		return r;
	p->key = k;
	ld->nset++;
	return 0;
}

/* ---- keys ---------------------------------------------------------------- */

static const struct config_key *find_key(const struct loader *ld, const char *path)
{
	for (size_t i = 0; i < ld->nkeys; i++)
		if (strcmp(ld->keys[i].key, path) == 0)
			return &ld->keys[i];
	return NULL;
}

/* Is path a section, i.e. the start of some "path.key"? */
static bool is_section(const struct loader *ld, const char *path, size_t n)
{
	for (size_t i = 0; i < ld->nkeys; i++)
		if (strncmp(ld->keys[i].key, path, n) == 0 && ld->keys[i].key[n] == '.')
			return true;
	return false;
}

static bool seen(struct loader *ld, const char *path)
{
	for (size_t i = 0; i < ld->nseen; i++)
		if (strcmp(ld->seen[i], path) == 0)
			return true;
	if (ld->nseen == ld->capseen) {
		ld->capseen = ld->capseen ? 2 * ld->capseen : 16;
		ld->seen = xrealloc(ld->seen, ld->capseen * sizeof(*ld->seen));
	}
	ld->seen[ld->nseen++] = xstrdup(path);
	return false;
}

static int load_mapping(struct loader *ld);

/* One key of a mapping (its scalar event kev) and the value after it. */
static int load_entry(struct loader *ld, const yaml_event_t *kev)
{
	const char *name = scalar(kev);
	const struct config_key *k = NULL;
	size_t base = ld->path.len;
	yaml_event_t ev;
	int r;

	if (base)
		buf_addch(&ld->path, '.');
	buf_add(&ld->path, name, kev->data.scalar.length);
	if (strchr(name, '.'))
		return fail(ld, line_of(kev), "key '%s' must not contain '.' (nest it "
			    "under its section)", name);
	if (!name[0] || has_nul(kev))
		return fail(ld, line_of(kev), "unknown key '%s'", ld->path.data);
	k = find_key(ld, ld->path.data);
	if (!k && !is_section(ld, ld->path.data, ld->path.len))
		return fail(ld, line_of(kev), "unknown key '%s'", ld->path.data);
	if (seen(ld, ld->path.data))
		return fail(ld, line_of(kev), "duplicate key '%s'", ld->path.data);

	r = next(ld, &ev);
	if (r < 0)
		return r;
	r = check_node(ld, &ev);
	if (r == 0 && k) {
		r = load_value(ld, k, &ev);
	} else if (r == 0 && ev.type == YAML_MAPPING_START_EVENT) {
		r = load_mapping(ld);
	} else if (r == 0 && !is_null(&ev)) { /* an empty section is fine */
		r = fail(ld, line_of(&ev), "key '%s' must be a mapping of keys",
			 ld->path.data);
	}
	yaml_event_delete(&ev);
	buf_setlen(&ld->path, base);
	return r;
}

/* The rest of a mapping, after its MAPPING_START. */
static int load_mapping(struct loader *ld)
{
	for (;;) {
		yaml_event_t kev;
		int r = next(ld, &kev);
		if (r < 0)
			return r;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			return 0;
		}
		r = check_node(ld, &kev);
		if (r == 0 && kev.type != YAML_SCALAR_EVENT)
			r = fail(ld, line_of(&kev), "keys must be plain strings");
		if (r == 0)
			r = load_entry(ld, &kev);
		yaml_event_delete(&kev);
		if (r < 0)
			return r;
	}
}

/* Expect an event of type t (stream and document markers). */
static int expect(struct loader *ld, yaml_event_type_t t, yaml_event_t *ev)
{
	int r = next(ld, ev);
	if (r < 0)
		return r;
	if (ev->type != t) {
		r = fail(ld, line_of(ev), "unexpected YAML structure");
		yaml_event_delete(ev);
	}
	return r;
}

/* stream-start [document-start root document-end] stream-end */
static int load_stream(struct loader *ld)
{
	yaml_event_t ev;
	int r;

	if ((r = expect(ld, YAML_STREAM_START_EVENT, &ev)) < 0)
		return r;
	yaml_event_delete(&ev);
	if ((r = next(ld, &ev)) < 0)
		return r;
	if (ev.type == YAML_STREAM_END_EVENT) { /* empty file */
		yaml_event_delete(&ev);
		return 0;
	}
	yaml_event_delete(&ev); /* document start */

	if ((r = next(ld, &ev)) < 0)
		return r;
	r = check_node(ld, &ev);
	if (r == 0 && ev.type == YAML_MAPPING_START_EVENT)
		r = load_mapping(ld);
	else if (r == 0 && !is_null(&ev))
		r = fail(ld, line_of(&ev), "the top level must be a mapping of keys");
	yaml_event_delete(&ev);
	if (r < 0)
		return r;

	if ((r = expect(ld, YAML_DOCUMENT_END_EVENT, &ev)) < 0)
		return r;
	yaml_event_delete(&ev);
	if ((r = next(ld, &ev)) < 0)
		return r;
	if (ev.type != YAML_STREAM_END_EVENT)
		r = fail(ld, line_of(&ev), "only one YAML document is allowed");
	yaml_event_delete(&ev);
	return r;
}

static void *member(void *obj, size_t off)
{
	return (char *)obj + off;
}

static void store(const struct pending *p, void *obj)
{
	void *m = member(obj, p->key->off);

	switch (p->key->kind) {
	case CONFIG_STR:
		free(*(char **)m);
		*(char **)m = p->val.s;
		break;
	case CONFIG_INT:
		*(int64_t *)m = p->val.i;
		break;
	case CONFIG_BOOL:
		*(bool *)m = p->val.b;
		break;
	case CONFIG_SIZE:
	case CONFIG_DURATION:
		*(uint64_t *)m = p->val.u;
		break;
	case CONFIG_STRV:
		strv_free(*(char ***)m);
		*(char ***)m = p->val.v;
		break;
	}
}

int config_load_string(const char *name, const char *text, size_t len,
		       const struct config_key *keys, size_t nkeys, void *obj,
		       struct err *e)
{
	struct loader ld = {
		.name = name, .text = text, .len = len, .keys = keys, .nkeys = nkeys,
		.path = BUF_INIT, .e = e,
	};
	int r;

	if (!yaml_parser_initialize(&ld.parser))
		return err_set(e, ENOMEM, "%s: out of memory", name);
	yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
	yaml_parser_set_encoding(&ld.parser, YAML_UTF8_ENCODING);
	ld.set = xcalloc(nkeys ? nkeys : 1, sizeof(*ld.set));

	r = load_stream(&ld);
	for (size_t i = 0; i < ld.nset; i++) {
		if (r == 0) {
			store(&ld.set[i], obj);
		} else if (ld.set[i].key->kind == CONFIG_STR) {
			free(ld.set[i].val.s);
		} else if (ld.set[i].key->kind == CONFIG_STRV) {
			strv_free(ld.set[i].val.v);
		}
	}
	free(ld.set);
	for (size_t i = 0; i < ld.nseen; i++)
		free(ld.seen[i]);
	free(ld.seen);
	buf_release(&ld.path);
	yaml_parser_delete(&ld.parser);
	return r;
}

int config_load_file(const char *path, const struct config_key *keys,
		     size_t nkeys, void *obj, struct err *e)
{
	struct buf text = BUF_INIT;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		return err_set(e, err, "cannot open '%s': %s", path, strerror(err));
	}
	for (;;) {
		buf_grow(&text, 64 << 10);
		ssize_t n = read(fd, text.data + text.len, text.cap - text.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			r = err_set(e, err, "cannot read '%s': %s", path, strerror(err));
			break;
		}
		if (n == 0)
			break;
		buf_setlen(&text, text.len + (size_t)n);
		if (text.len > CONFIG_MAX_FILE) {
			r = err_set(e, EFBIG, "'%s' is larger than %u bytes", path,
				    CONFIG_MAX_FILE);
			break;
		}
	}
	close(fd);
	if (r == 0)
		r = config_load_string(path, text.data, text.len, keys, nkeys, obj, e);
	buf_release(&text);
	return r;
}

void config_release(const struct config_key *keys, size_t nkeys, void *obj)
{
	for (size_t i = 0; i < nkeys; i++) {
		void *m = member(obj, keys[i].off);
		if (keys[i].kind == CONFIG_STR) {
			free(*(char **)m);
			*(char **)m = NULL;
		} else if (keys[i].kind == CONFIG_STRV) {
			strv_free(*(char ***)m);
			*(char ***)m = NULL;
		}
	}
}
