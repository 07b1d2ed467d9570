/* config — strict YAML configuration loading over libyaml.
 *
 * Sits between a config file (bhatti serve's config.yaml) and the typed
 * struct its caller keeps the settings in. A table of keys says what may
 * appear; nested keys are written with dots, so "limits.max_sandboxes" is
 *
 *   limits:
 *     max_sandboxes: 20
 *
 *   struct settings { char *listen; int64_t max_sb; uint64_t mem; ... };
 *   static const struct config_key keys[] = {
 *           CONFIG_KEY_STR("listen", struct settings, listen),
 *           CONFIG_KEY_INT("limits.max_sandboxes", struct settings, max_sb, 1, 1000),
 *           CONFIG_KEY_SIZE("defaults.memory", struct settings, mem, 64 << 20, 64ull << 30),
 *   };
 *   struct settings s = { .listen = xstrdup("127.0.0.1:8080"), ... };  // defaults
 *   if (config_load_file(path, keys, ARRAY_SIZE(keys), &s, &e) < 0) ...
 *   config_release(keys, ARRAY_SIZE(keys), &s);
 *
 * The caller fills in the defaults; the loader only overwrites keys that
 * appear, so an empty file means all defaults. Strict: unknown keys,
 * duplicate keys, values of the wrong kind or out of range, nulls
 * (`key:` with nothing after it), lists where a list is not expected,
 * anchors, aliases, tags and second documents are all errors naming the
 * file, the line and the key:
 *
 *   config.yaml:7: unknown key 'lisen'
 *   config.yaml:3: key 'limits.max_cpus' must be a whole number from 1 to 64
 *
 * Member types: CONFIG_STR char * (heap), CONFIG_INT int64_t, CONFIG_BOOL
 * bool (true/false, True/False, TRUE/FALSE), CONFIG_SIZE uint64_t bytes
 * (num_parse_size: "512M"), CONFIG_DURATION uint64_t milliseconds
 * (num_parse_duration_ms: "30s"), CONFIG_STRV char ** (heap,
 * NULL-terminated; a YAML list of strings). The CONFIG_KEY_* macros check
 * the member type at compile time. CONFIG_KEY_STR_CHECK adds a check on
 * the value, so a bad one is reported with its line like any other:
 *
 *   static int check_accel(const char *v, struct err *e)  // "must be ..."
 *   CONFIG_KEY_STR_CHECK("accel", struct settings, accel, check_accel),
 *   config.yaml:4: key 'accel' must be auto, kvm or tcg
 * Pointer members are owned by the
 * struct: NULL or heap memory before loading; a value in the file replaces
 * (and frees) the old one; config_release() frees them all.
 */
#ifndef BHATTI_CONFIG_H
#define BHATTI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CONFIG_MAX_FILE (1u << 20)   /* bytes in a config file */

enum config_kind {
	CONFIG_STR,
	CONFIG_INT,       /* int64_t from min to max */
	CONFIG_BOOL,
	CONFIG_SIZE,      /* uint64_t bytes from min to max */
	CONFIG_DURATION,  /* uint64_t milliseconds from min to max */
	CONFIG_STRV,
};

/* A check on a CONFIG_STR value: 0, or -EINVAL with e->msg saying what the
 * value must be ("must be auto, kvm or tcg"); the loader puts "file:line:
 * key 'name' " in front. */
typedef int (*config_check_fn)(const char *value, struct err *e);

struct config_key {
	const char *key;   /* dotted path, e.g. "limits.max_sandboxes" */
	enum config_kind kind;
	size_t off;        /* offset of the member in the struct */
	int64_t min, max;  /* CONFIG_INT, CONFIG_SIZE, CONFIG_DURATION: range */
	config_check_fn check;  /* CONFIG_STR: NULL or a check on the value */
	bool never;        /* CONFIG_DURATION: "never" is a value (CONFIG_NEVER) */
};

/* The value of a duration given as "never". */
#define CONFIG_NEVER UINT64_MAX

/* offsetof(T, m), refusing to compile unless m has type `type`. */
#define CONFIG_OFF(T, m, type) \
	(offsetof(T, m) + 0 * sizeof(&((T *)0)->m == (type *)0))

#define CONFIG_KEY_STR(key_, T, m) \
	{ .key = (key_), .kind = CONFIG_STR, .off = CONFIG_OFF(T, m, char *) }
#define CONFIG_KEY_STR_CHECK(key_, T, m, check_) \
	{ .key = (key_), .kind = CONFIG_STR, .off = CONFIG_OFF(T, m, char *), \
	  .check = (check_) }
#define CONFIG_KEY_INT(key_, T, m, min_, max_) \
	{ .key = (key_), .kind = CONFIG_INT, .off = CONFIG_OFF(T, m, int64_t), \
	  .min = (min_), .max = (max_) }
#define CONFIG_KEY_BOOL(key_, T, m) \
	{ .key = (key_), .kind = CONFIG_BOOL, .off = CONFIG_OFF(T, m, bool) }
#define CONFIG_KEY_SIZE(key_, T, m, min_, max_) \
	{ .key = (key_), .kind = CONFIG_SIZE, .off = CONFIG_OFF(T, m, uint64_t), \
	  .min = (int64_t)(min_), .max = (int64_t)(max_) }
#define CONFIG_KEY_DURATION(key_, T, m, min_, max_) \
	{ .key = (key_), .kind = CONFIG_DURATION, .off = CONFIG_OFF(T, m, uint64_t), \
	  .min = (int64_t)(min_), .max = (int64_t)(max_) }
/* A duration that may also be "never" (CONFIG_NEVER). */
#define CONFIG_KEY_DURATION_NEVER(key_, T, m, min_, max_) \
	{ .key = (key_), .kind = CONFIG_DURATION, .off = CONFIG_OFF(T, m, uint64_t), \
	  .min = (int64_t)(min_), .max = (int64_t)(max_), .never = true }
#define CONFIG_KEY_STRV(key_, T, m) \
	{ .key = (key_), .kind = CONFIG_STRV, .off = CONFIG_OFF(T, m, char **) }

/* A duration as a config file writes it: "30s", "5m", "250ms", "never". */
void config_fmt_duration(char *out, size_t n, uint64_t ms);

/* Load the file at path (at most CONFIG_MAX_FILE bytes) into *obj. On
 * failure nothing in *obj has changed and e holds "path:line: message"
 * (without a line when the file cannot be read): -EINVAL for content,
 * -EFBIG for size, else the negative errno of open/read. */
int config_load_file(const char *path, const struct config_key *keys,
		     size_t nkeys, void *obj, struct err *e);

/* The same for text[0..len); name stands for the file in messages. */
int config_load_string(const char *name, const char *text, size_t len,
		       const struct config_key *keys, size_t nkeys, void *obj,
		       struct err *e);

/* Free the pointer members of *obj named by the table and set them NULL. */
void config_release(const struct config_key *keys, size_t nkeys, void *obj);

#endif
