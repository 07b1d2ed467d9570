/* test-config.c — unit tests for shared/config.c: YAML config loading by
 * key table, with errors naming file, line and key. Sits between cmocka,
 * config.h and the data-driven cases in tests/data/config/ (run from the
 * project root, as make and tests/run.sh do): each file's first line is
 * "# expect: ok" or "# expect: LINE: message". */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"

#define DATA_DIR "tests/data/config"

struct settings {
	char *listen;
	char *data_dir;
	int64_t max_sandboxes;
	int64_t max_cpus;
	bool tls;
	uint64_t memory;
	uint64_t idle_ms;
	uint64_t any_size;
	uint64_t any_wait;
	char **dns;
	int64_t deep;
	char *mode;
};

/* The string check of "mode": one of two words. */
static int check_mode(const char *v, struct err *e)
{
	if (strcmp(v, "fast") == 0 || strcmp(v, "safe") == 0)
		return 0;
	return err_set(e, EINVAL, "must be fast or safe");
}

static const struct config_key keys[] = {
	CONFIG_KEY_STR("listen", struct settings, listen),
	CONFIG_KEY_STR("data_dir", struct settings, data_dir),
	CONFIG_KEY_INT("limits.max_sandboxes", struct settings, max_sandboxes, 1, 1000),
	CONFIG_KEY_INT("limits.max_cpus", struct settings, max_cpus, 1, 64),
	CONFIG_KEY_BOOL("tls", struct settings, tls),
	CONFIG_KEY_SIZE("defaults.memory", struct settings, memory, 64ull << 20, 64ull << 30),
	CONFIG_KEY_DURATION("thermal.idle", struct settings, idle_ms, 1000, 86400000),
	CONFIG_KEY_SIZE("any_size", struct settings, any_size, 0, INT64_MAX),
	CONFIG_KEY_DURATION("any_wait", struct settings, any_wait, 0, INT64_MAX),
	CONFIG_KEY_STRV("network.dns", struct settings, dns),
	CONFIG_KEY_INT("a.b.c", struct settings, deep, INT64_MIN, INT64_MAX),
	CONFIG_KEY_STR_CHECK("x.mode", struct settings, mode, check_mode),
};

static void defaults(struct settings *s)
{
	memset(s, 0, sizeof(*s));
	s->listen = xstrdup("127.0.0.1:7070");
	s->max_sandboxes = 20;
	s->max_cpus = 2;
	s->memory = 512ull << 20;
	s->idle_ms = 30000;
	s->deep = 7;
}

static void assert_defaults(const struct settings *s)
{
	assert_string_equal(s->listen, "127.0.0.1:7070");
	assert_null(s->data_dir);
	assert_int_equal(s->max_sandboxes, 20);
	assert_int_equal(s->max_cpus, 2);
	assert_false(s->tls);
	assert_int_equal(s->memory, 512ull << 20);
	assert_int_equal(s->idle_ms, 30000);
	assert_int_equal(s->any_size, 0);
	assert_null(s->dns);
	assert_int_equal(s->deep, 7);
}

static int load(const char *text, struct settings *s, struct err *e)
{
	return config_load_string("t.yaml", text, strlen(text), keys, ARRAY_SIZE(keys), s, e);
}

/* text must fail with exactly msg and leave the defaults alone. */
static void check_error(const char *text, const char *msg)
{
	struct settings s;
	struct err e = ERR_INIT;

	defaults(&s);
	assert_int_equal(load(text, &s, &e), -EINVAL);
	assert_int_equal(e.code, EINVAL);
	assert_string_equal(e.msg, msg);
	assert_defaults(&s);
	config_release(keys, ARRAY_SIZE(keys), &s);
}

static void test_full(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	defaults(&s);
	assert_int_equal(load("listen: 0.0.0.0:8080\n"
			      "data_dir: '/srv/b h'\n"
			      "tls: true\n"
			      "limits:\n"
			      "  max_sandboxes: 1000\n"
			      "  max_cpus: 1\n"
			      "defaults: {memory: 64M}\n"
			      "thermal:\n"
			      "  idle: 1d\n"
			      "any_size: 1T\n"
			      "any_wait: 250ms\n"
			      "network:\n"
			      "  dns: [1.1.1.1, \"8.8.8.8\", '']\n"
			      "a: {b: {c: -9223372036854775808}}\n", &s, &e), 0);
	assert_string_equal(s.listen, "0.0.0.0:8080");
	assert_string_equal(s.data_dir, "/srv/b h");
	assert_true(s.tls);
	assert_int_equal(s.max_sandboxes, 1000);
	assert_int_equal(s.max_cpus, 1);
	assert_int_equal(s.memory, 64ull << 20);
	assert_int_equal(s.idle_ms, 86400000);
	assert_int_equal(s.any_size, 1ull << 40);
	assert_int_equal(s.any_wait, 250);
	assert_int_equal(strv_len(s.dns), 3);
	assert_string_equal(s.dns[0], "1.1.1.1");
	assert_string_equal(s.dns[1], "8.8.8.8");
	assert_string_equal(s.dns[2], "");
	assert_true(s.deep == INT64_MIN);
	config_release(keys, ARRAY_SIZE(keys), &s);
	assert_null(s.listen);
	assert_null(s.data_dir);
	assert_null(s.dns);
	config_release(keys, ARRAY_SIZE(keys), &s);
}

static void test_empty_means_defaults(void **state)
{
	(void)state;
	static const char *const texts[] = {
		"", "\n\n", "# only a comment\n", "---\n", "---\n...\n", "~\n", "null",
		"limits:\n", "limits: ~\n", "{}\n", "limits: {}\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct settings s;
		struct err e = ERR_INIT;
		defaults(&s);
		assert_int_equal(load(texts[i], &s, &e), 0);
		assert_defaults(&s);
		config_release(keys, ARRAY_SIZE(keys), &s);
	}
}

static void test_partial_overrides(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	defaults(&s);
	assert_int_equal(load("limits:\n  max_cpus: 8\n", &s, &e), 0);
	assert_int_equal(s.max_cpus, 8);
	assert_int_equal(s.max_sandboxes, 20);
	assert_string_equal(s.listen, "127.0.0.1:7070");
	/* a second load replaces (and frees) owned values */
	assert_int_equal(load("listen: x\nnetwork:\n  dns: [a]\n", &s, &e), 0);
	assert_int_equal(load("listen: y\nnetwork:\n  dns: []\n", &s, &e), 0);
	assert_string_equal(s.listen, "y");
	assert_non_null(s.dns);
	assert_null(s.dns[0]);
	assert_int_equal(s.max_cpus, 8);
	config_release(keys, ARRAY_SIZE(keys), &s);
}

static void test_unknown_keys(void **state)
{
	(void)state;
	check_error("listen: a\ndata_dir: b\nlisen: c\n", "t.yaml:3: unknown key 'lisen'");
	check_error("limits:\n  max_cpus: 2\n  max_cpu: 4\n",
		    "t.yaml:3: unknown key 'limits.max_cpu'");
	check_error("a:\n  b:\n    d: 1\n", "t.yaml:3: unknown key 'a.b.d'");
	check_error("Listen: a\n", "t.yaml:1: unknown key 'Listen'");
	check_error("limits.max_cpus: 4\n",
		    "t.yaml:1: key 'limits.max_cpus' must not contain '.' (nest it under "
		    "its section)");
	check_error("\"\": 4\n", "t.yaml:1: unknown key ''");
	check_error("\"list\\0en\": 4\n", "t.yaml:1: unknown key 'list'");
	check_error("? [a]\n: b\n", "t.yaml:1: keys must be plain strings");
	check_error("? {a: b}\n: c\n", "t.yaml:1: keys must be plain strings");
	/* a key that is a prefix of a section is not a section */
	check_error("limit:\n  max_cpus: 2\n", "t.yaml:1: unknown key 'limit'");
}

static void test_ints(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"0", "65", "-1", "four", "0x10", "1_0", "+5", "4.0", "1e1", "''", "\" 4\"",
		"99999999999999999999",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char text[64];
		snprintf(text, sizeof(text), "\nlimits:\n  max_cpus: %s\n", bad[i]);
		check_error(text, "t.yaml:3: key 'limits.max_cpus' must be a whole number "
			    "from 1 to 64");
	}
	struct settings s;
	struct err e = ERR_INIT;
	defaults(&s);
	assert_int_equal(load("limits: {max_cpus: 64, max_sandboxes: \"7\"}\n"
			      "a: {b: {c: 9223372036854775807}}", &s, &e), 0);
	assert_int_equal(s.max_cpus, 64);
	assert_int_equal(s.max_sandboxes, 7);
	assert_true(s.deep == INT64_MAX);
	config_release(keys, ARRAY_SIZE(keys), &s);
	check_error("a: {b: {c: 9223372036854775808}}",
		    "t.yaml:1: key 'a.b.c' must be a whole number from -9223372036854775808 "
		    "to 9223372036854775807");
}

static void test_bools(void **state)
{
	(void)state;
	static const char *const yes[] = { "true", "True", "TRUE", "'true'" };
	static const char *const no[] = { "false", "False", "FALSE" };
	static const char *const bad[] = { "yes", "no", "on", "1", "0", "t", "tru", "truee" };
	struct settings s;
	struct err e = ERR_INIT;
	char text[64];

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		defaults(&s);
		snprintf(text, sizeof(text), "tls: %s", yes[i]);
		assert_int_equal(load(text, &s, &e), 0);
		assert_true(s.tls);
		config_release(keys, ARRAY_SIZE(keys), &s);
	}
	for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
		defaults(&s);
		s.tls = true;
		snprintf(text, sizeof(text), "tls: %s", no[i]);
		assert_int_equal(load(text, &s, &e), 0);
		assert_false(s.tls);
		config_release(keys, ARRAY_SIZE(keys), &s);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(text, sizeof(text), "tls: %s", bad[i]);
		check_error(text, "t.yaml:1: key 'tls' must be true or false");
	}
}

static void test_sizes_and_durations(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	defaults(&s);
	assert_int_equal(load("defaults: {memory: 64G}\nthermal: {idle: 1s}\n"
			      "any_size: 0\nany_wait: 0", &s, &e), 0);
	assert_int_equal(s.memory, 64ull << 30);
	assert_int_equal(s.idle_ms, 1000);
	assert_int_equal(s.any_size, 0);
	assert_int_equal(s.any_wait, 0);
	config_release(keys, ARRAY_SIZE(keys), &s);

	defaults(&s);
	assert_int_equal(load("defaults: {memory: 1536MiB}\nthermal: {idle: 90}\n"
			      "any_size: 8388607T\n", &s, &e), 0);
	assert_int_equal(s.memory, 1536ull << 20);
	assert_int_equal(s.idle_ms, 90000);
	assert_int_equal(s.any_size, 8388607ull << 40);
	config_release(keys, ARRAY_SIZE(keys), &s);

	static const char *const bad_size[] = { "63M", "65G", "lots", "1.5G", "-1G", "2 G", "G" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_size); i++) {
		char text[64];
		snprintf(text, sizeof(text), "defaults:\n  memory: %s\n", bad_size[i]);
		check_error(text, "t.yaml:2: key 'defaults.memory' must be a size from 64M "
			    "to 64G");
	}
	static const char *const bad_dur[] = { "999ms", "2d", "86401s", "soon", "1.5s", "5x" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_dur); i++) {
		char text[64];
		snprintf(text, sizeof(text), "thermal:\n  idle: %s\n", bad_dur[i]);
		check_error(text, "t.yaml:2: key 'thermal.idle' must be a duration from 1s "
			    "to 1d");
	}
	check_error("any_size: big", "t.yaml:1: key 'any_size' must be a size such as 512M");
	check_error("any_size: 8388608T", "t.yaml:1: key 'any_size' must be a size such as 512M");
	check_error("any_size: 16777216T", "t.yaml:1: key 'any_size' must be a size such as 512M");
	check_error("any_wait: later", "t.yaml:1: key 'any_wait' must be a duration such as 30s");
}

static void test_strings(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	defaults(&s);
	assert_int_equal(load("listen: 8080\ndata_dir: \"null\"\n", &s, &e), 0);
	assert_string_equal(s.listen, "8080");   /* plain scalars are text */
	assert_string_equal(s.data_dir, "null"); /* quoted null is a string */
	config_release(keys, ARRAY_SIZE(keys), &s);

	defaults(&s);
	assert_int_equal(load("listen: |\n  two\n  lines\ndata_dir: \"\"\n", &s, &e), 0);
	assert_string_equal(s.listen, "two\nlines\n");
	assert_string_equal(s.data_dir, "");
	config_release(keys, ARRAY_SIZE(keys), &s);

	check_error("listen:\n", "t.yaml:1: key 'listen' has no value");
	check_error("listen: ~\n", "t.yaml:1: key 'listen' has no value");
	check_error("listen: null\n", "t.yaml:1: key 'listen' has no value");
	check_error("limits: {max_cpus: }\n", "t.yaml:1: key 'limits.max_cpus' has no value");
	check_error("listen: \"a\\0b\"\n", "t.yaml:1: key 'listen' must not contain a NUL "
		    "character");
	check_error("listen:\n  host: a\n", "t.yaml:2: key 'listen' must be a string");
	check_error("listen: [a]\n", "t.yaml:1: key 'listen' must be a string");
	check_error("tls: [true]\n", "t.yaml:1: key 'tls' must be true or false");
}

static void test_string_check(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	defaults(&s);
	assert_int_equal(load("x:\n  mode: safe\n", &s, &e), 0);
	assert_string_equal(s.mode, "safe");
	config_release(keys, ARRAY_SIZE(keys), &s);
	check_error("listen: a\nx:\n  mode: Fast\n", "t.yaml:3: key 'x.mode' must be fast or safe");
	check_error("x: {mode: ''}\n", "t.yaml:1: key 'x.mode' must be fast or safe");
	check_error("x: {mode: }\n", "t.yaml:1: key 'x.mode' has no value");
}

static void test_lists(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	defaults(&s);
	assert_int_equal(load("network:\n  dns:\n  - a\n  - 'b c'\n  - 5\n", &s, &e), 0);
	assert_int_equal(strv_len(s.dns), 3);
	assert_string_equal(s.dns[0], "a");
	assert_string_equal(s.dns[1], "b c");
	assert_string_equal(s.dns[2], "5");
	config_release(keys, ARRAY_SIZE(keys), &s);

	check_error("network:\n  dns: a\n", "t.yaml:2: key 'network.dns' must be a list of strings");
	check_error("network:\n  dns:\n", "t.yaml:2: key 'network.dns' has no value");
	check_error("network:\n  dns:\n    - a\n    - [b]\n",
		    "t.yaml:4: key 'network.dns' must be a list of strings");
	check_error("network:\n  dns:\n    - a\n    - {b: c}\n",
		    "t.yaml:4: key 'network.dns' must be a list of strings");
	check_error("network:\n  dns:\n    - a\n    -\n    - c\n",
		    "t.yaml:4: key 'network.dns' must be a list of strings");
	check_error("network:\n  dns: [a, \"\\0\"]\n",
		    "t.yaml:2: key 'network.dns' must not contain a NUL character");
	check_error("network: [a]\n", "t.yaml:1: key 'network' must be a mapping of keys");
	check_error("limits: 5\n", "t.yaml:1: key 'limits' must be a mapping of keys");
	check_error("- a\n- b\n", "t.yaml:1: the top level must be a mapping of keys");
	check_error("hello\n", "t.yaml:1: the top level must be a mapping of keys");
}

static void test_duplicates(void **state)
{
	(void)state;
	check_error("listen: a\nlisten: b\n", "t.yaml:2: duplicate key 'listen'");
	check_error("limits:\n  max_cpus: 1\nlimits:\n  max_sandboxes: 2\n",
		    "t.yaml:3: duplicate key 'limits'");
	check_error("limits: {max_cpus: 1, max_cpus: 1}\n",
		    "t.yaml:1: duplicate key 'limits.max_cpus'");
	check_error("listen: a\n\"listen\": b\n", "t.yaml:2: duplicate key 'listen'");
	/* the same name in different sections is no duplicate */
	static const struct config_key k2[] = {
		CONFIG_KEY_INT("x.n", struct settings, max_cpus, 0, 9),
		CONFIG_KEY_INT("y.n", struct settings, max_sandboxes, 0, 9),
	};
	struct settings s;
	struct err e = ERR_INIT;
	defaults(&s);
	assert_int_equal(config_load_string("t.yaml", "x: {n: 3}\ny: {n: 4}\n", 20, k2,
					    ARRAY_SIZE(k2), &s, &e), 0);
	assert_int_equal(s.max_cpus, 3);
	assert_int_equal(s.max_sandboxes, 4);
	config_release(keys, ARRAY_SIZE(keys), &s);
}

static void test_yaml_features_refused(void **state)
{
	(void)state;
	check_error("listen: &a x\ndata_dir: *a\n", "t.yaml:1: anchors are not supported");
	check_error("limits: &l {max_cpus: 1}\n", "t.yaml:1: anchors are not supported");
	check_error("listen: !!str 5\n", "t.yaml:1: tags are not supported");
	check_error("network:\n  dns: !!seq [a]\n", "t.yaml:2: tags are not supported");
	check_error("listen: a\n---\nlisten: b\n", "t.yaml:2: only one YAML document is allowed");
	check_error("listen: a\n...\n---\n", "t.yaml:3: only one YAML document is allowed");
}

static void test_syntax_errors(void **state)
{
	(void)state;
	check_error("listen: a\nlimits:\n  max_cpus: 1: 2\n",
		    "t.yaml:3: invalid YAML: mapping values are not allowed in this context");
	check_error("network:\n  dns: [a\n\nlisten: b\n",
		    "t.yaml:4: invalid YAML: did not find expected ',' or ']' while parsing a "
		    "flow sequence");
	check_error("listen: \"a\n", "t.yaml:2: invalid YAML: found unexpected end of stream "
		    "while scanning a quoted scalar");
	check_error("listen: a\n\tdata_dir: b\n",
		    "t.yaml:2: invalid YAML: found a tab character that violates indentation "
		    "while scanning a plain scalar");
	/* invalid UTF-8: the reader gives a byte offset, turned into a line */
	check_error("listen: a\ndata_dir: b\nx: \xff\n",
		    "t.yaml:3: invalid YAML: invalid leading UTF-8 octet");
	/* a NUL byte in the text itself */
	struct settings s;
	struct err e = ERR_INIT;
	defaults(&s);
	assert_int_equal(config_load_string("t.yaml", "listen: a\n\0x", 12, keys,
					    ARRAY_SIZE(keys), &s, &e), -EINVAL);
	assert_int_equal(strncmp(e.msg, "t.yaml:2: invalid YAML: ", 24), 0);
	assert_defaults(&s);
	config_release(keys, ARRAY_SIZE(keys), &s);
}

static void test_failure_changes_nothing(void **state)
{
	(void)state;
	/* good keys before the bad one are not applied either */
	check_error("listen: new\ndata_dir: /d\nlimits:\n  max_cpus: 9\nnetwork:\n"
		    "  dns: [a, b]\ntls: maybe\n", "t.yaml:7: key 'tls' must be true or false");
	check_error("listen: new\nnetwork:\n  dns: [a, b]\nlisten: again\n",
		    "t.yaml:4: duplicate key 'listen'");
}

static void test_no_text_terminator(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;
	const char text[] = "listen: abc\nlisen: x";
	char *exact = xmalloc(11);  /* ASan checks nothing reads past len */

	memcpy(exact, text, 11);
	defaults(&s);
	assert_int_equal(config_load_string("t.yaml", exact, 11, keys, ARRAY_SIZE(keys),
					    &s, &e), 0);
	assert_string_equal(s.listen, "abc");
	config_release(keys, ARRAY_SIZE(keys), &s);
	free(exact);
}

static void test_load_file_errors(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;
	char dir[] = "/tmp/test-config-XXXXXX";
	char path[64];

	defaults(&s);
	assert_int_equal(config_load_file("/nonexistent/config.yaml", keys, ARRAY_SIZE(keys),
					  &s, &e), -ENOENT);
	assert_string_equal(e.msg, "cannot open '/nonexistent/config.yaml': No such file "
			    "or directory");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(config_load_file(dir, keys, ARRAY_SIZE(keys), &s, &e), -EISDIR);

	/* too large */
	snprintf(path, sizeof(path), "%s/big.yaml", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (unsigned i = 0; i <= CONFIG_MAX_FILE / 16; i++)
		fputs("# padding.....\n\n", f);
	fclose(f);
	assert_int_equal(config_load_file(path, keys, ARRAY_SIZE(keys), &s, &e), -EFBIG);
	assert_true(strstr(e.msg, "is larger than 1048576 bytes") != NULL);
	assert_defaults(&s);

	/* just under the limit is fine, and the path names the file */
	f = fopen(path, "w");
	assert_non_null(f);
	for (unsigned i = 0; i < CONFIG_MAX_FILE / 16 - 2; i++)
		fputs("# padding.....\n\n", f);
	fputs("listen: big\nlisen: x\n", f);
	fclose(f);
	assert_int_equal(config_load_file(path, keys, ARRAY_SIZE(keys), &s, &e), -EINVAL);
	char want[128];
	snprintf(want, sizeof(want), "%s:%u: unknown key 'lisen'", path,
		 (CONFIG_MAX_FILE / 16 - 2) * 2 + 2);
	assert_string_equal(e.msg, want);
	unlink(path);
	rmdir(dir);
	config_release(keys, ARRAY_SIZE(keys), &s);
}

/* Every file in tests/data/config/ against its "# expect:" line. */
static void test_data_files(void **state)
{
	(void)state;
	DIR *d = opendir(DATA_DIR);
	struct dirent *de;
	int nfiles = 0, nok = 0;

	assert_non_null(d); /* run from the project root */
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char path[512], first[512], want[1100];
		if (n < 5 || strcmp(de->d_name + n - 5, ".yaml") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", DATA_DIR, de->d_name);
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		assert_non_null(fgets(first, sizeof(first), f));
		fclose(f);
		first[strcspn(first, "\n")] = '\0';
		assert_int_equal(strncmp(first, "# expect: ", 10), 0);

		struct settings s;
		struct err e = ERR_INIT;
		defaults(&s);
		int r = config_load_file(path, keys, ARRAY_SIZE(keys), &s, &e);
		if (strcmp(first + 10, "ok") == 0) {
			if (r != 0)
				fail_msg("%s: %s", path, e.msg);
			nok++;
		} else {
			snprintf(want, sizeof(want), "%s:%s", path, first + 10);
			if (r != -EINVAL || strcmp(e.msg, want) != 0)
				fail_msg("%s: got %d '%s', want '%s'", path, r, e.msg, want);
			assert_defaults(&s);
		}
		config_release(keys, ARRAY_SIZE(keys), &s);
		nfiles++;
	}
	closedir(d);
	assert_true(nfiles >= 15);
	assert_true(nok >= 2);
}

static void test_data_good_values(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	defaults(&s);
	assert_int_equal(config_load_file(DATA_DIR "/good.yaml", keys, ARRAY_SIZE(keys),
					  &s, &e), 0);
	assert_string_equal(s.listen, "127.0.0.1:8080");
	assert_string_equal(s.data_dir, "/var/lib/bhatti");
	assert_true(s.tls);
	assert_int_equal(s.max_sandboxes, 200);
	assert_int_equal(s.max_cpus, 16);
	assert_int_equal(s.memory, 2ull << 30);
	assert_int_equal(s.idle_ms, 300000);
	assert_int_equal(strv_len(s.dns), 2);
	assert_string_equal(s.dns[0], "10.0.0.1");
	assert_string_equal(s.dns[1], "9.9.9.9");
	assert_true(s.deep == -42);
	config_release(keys, ARRAY_SIZE(keys), &s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_empty_means_defaults),
		cmocka_unit_test(test_partial_overrides),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_ints),
		cmocka_unit_test(test_bools),
		cmocka_unit_test(test_sizes_and_durations),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_string_check),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_yaml_features_refused),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_failure_changes_nothing),
		cmocka_unit_test(test_no_text_terminator),
		cmocka_unit_test(test_load_file_errors),
		cmocka_unit_test(test_data_files),
		cmocka_unit_test(test_data_good_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
