/* test-json.c — unit tests for shared/json.c: strict request parsing by
 * field table (types, ranges, caps, duplicates, NULs, depth, trailing
 * bytes), the response builders, and reading members of a parsed object.
 * Sits between cmocka and json.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"

struct req {
	char *name;
	int64_t cpus;
	int64_t delta;
	uint64_t bytes;
	bool keep;
	char **argv;
	char **env;
};

enum { F_NAME, F_CPUS, F_DELTA, F_BYTES, F_KEEP, F_ARGV, F_ENV };

static const struct json_field fields[] = {
	JSON_FIELD_STR("name", struct req, name, JSON_REQUIRED, 16),
	JSON_FIELD_INT("cpus", struct req, cpus, JSON_OPTIONAL, 1, 64),
	JSON_FIELD_INT("delta", struct req, delta, JSON_OPTIONAL, INT64_MIN, INT64_MAX),
	JSON_FIELD_UINT("bytes", struct req, bytes, JSON_OPTIONAL, UINT64_MAX),
	JSON_FIELD_BOOL("keep", struct req, keep, JSON_OPTIONAL),
	JSON_FIELD_STRV("argv", struct req, argv, JSON_OPTIONAL, 8, 3),
	JSON_FIELD_STRMAP("env", struct req, env, JSON_OPTIONAL, 8, 3),
};

/* Defaults a handler would fill in before parsing. */
static void req_defaults(struct req *r)
{
	memset(r, 0, sizeof(*r));
	r->cpus = 2;
	r->delta = -7;
	r->bytes = 99;
	r->keep = true;
}

static int parse_n(const char *text, size_t len, struct req *r, uint64_t *present,
		   struct err *e)
{
	return json_parse(text, len, fields, ARRAY_SIZE(fields), r, present, e);
}

static int parse(const char *text, struct req *r, uint64_t *present, struct err *e)
{
	return parse_n(text, strlen(text), r, present, e);
}

/* The body must fail with exactly msg and leave the defaults alone. */
static void check_error_n(const char *text, size_t len, const char *msg)
{
	struct req r;
	struct err e = ERR_INIT;
	uint64_t present = 12345;

	req_defaults(&r);
	assert_int_equal(parse_n(text, len, &r, &present, &e), -EINVAL);
	assert_int_equal(e.code, EINVAL);
	assert_string_equal(e.msg, msg);
	assert_int_equal(present, 12345);
	assert_null(r.name);
	assert_int_equal(r.cpus, 2);
	assert_int_equal(r.delta, -7);
	assert_int_equal(r.bytes, 99);
	assert_true(r.keep);
	assert_null(r.argv);
	assert_null(r.env);
}

static void check_error(const char *text, const char *msg)
{
	check_error_n(text, strlen(text), msg);
}

/* Syntax errors: cJSON picks the byte, which may move between versions. */
static void check_syntax_error(const char *text)
{
	struct req r;
	struct err e = ERR_INIT;

	req_defaults(&r);
	assert_int_equal(parse(text, &r, NULL, &e), -EINVAL);
	assert_int_equal(strncmp(e.msg, "invalid JSON at byte ", 21), 0);
	assert_null(r.name);
}

static void test_full_body(void **state)
{
	(void)state;
	struct req r;
	struct err e = ERR_INIT;
	uint64_t present = 0;

	req_defaults(&r);
	assert_int_equal(parse("{\"name\":\"web\",\"cpus\":4,\"delta\":-12,"
			       "\"bytes\":18446744073709551615,\"keep\":false,"
			       "\"argv\":[\"sh\",\"-c\",\"ls\"],"
			       "\"env\":{\"B\":\"2\",\"A\":\"x=y\"}}", &r, &present, &e), 0);
	assert_string_equal(r.name, "web");
	assert_int_equal(r.cpus, 4);
	assert_true(r.delta == -12);
	assert_true(r.bytes == UINT64_MAX);
	assert_false(r.keep);
	assert_int_equal(strv_len(r.argv), 3);
	assert_string_equal(r.argv[0], "sh");
	assert_string_equal(r.argv[1], "-c");
	assert_string_equal(r.argv[2], "ls");
	assert_int_equal(strv_len(r.env), 2);
	assert_string_equal(r.env[0], "B=2");   /* body order is kept */
	assert_string_equal(r.env[1], "A=x=y");
	assert_int_equal(present, (1u << ARRAY_SIZE(fields)) - 1);
	json_release(fields, ARRAY_SIZE(fields), &r);
	assert_null(r.name);
	assert_null(r.argv);
	assert_null(r.env);
}

static void test_defaults_and_present(void **state)
{
	(void)state;
	struct req r;
	struct err e = ERR_INIT;
	uint64_t present = 0;

	req_defaults(&r);
	assert_int_equal(parse(" \n\t{ \"keep\" : true , \"name\" : \"a\" }\r\n ",
			       &r, &present, &e), 0);
	assert_string_equal(r.name, "a");
	assert_int_equal(r.cpus, 2);       /* untouched */
	assert_true(r.delta == -7);
	assert_int_equal(r.bytes, 99);
	assert_true(r.keep);
	assert_true(JSON_PRESENT(present, F_NAME));
	assert_true(JSON_PRESENT(present, F_KEEP));
	assert_false(JSON_PRESENT(present, F_CPUS));
	assert_false(JSON_PRESENT(present, F_ENV));
	assert_int_equal(present, (1u << F_NAME) | (1u << F_KEEP));
	json_release(fields, ARRAY_SIZE(fields), &r);

	/* ret_present may be NULL; empty lists and maps are values too */
	req_defaults(&r);
	assert_int_equal(parse("{\"name\":\"\",\"argv\":[],\"env\":{}}", &r, NULL, &e), 0);
	assert_string_equal(r.name, "");
	assert_non_null(r.argv);
	assert_null(r.argv[0]);
	assert_non_null(r.env);
	assert_null(r.env[0]);
	json_release(fields, ARRAY_SIZE(fields), &r);
}

static void test_replaces_owned_values(void **state)
{
	(void)state;
	struct req r;
	struct err e = ERR_INIT;
	char *old_argv[] = { "old", NULL };

	req_defaults(&r);
	r.name = xstrdup("old-name");
	r.argv = strv_dup(old_argv);
	/* the old heap values are freed (ASan reports a leak otherwise) */
	assert_int_equal(parse("{\"name\":\"new\",\"argv\":[\"n\"]}", &r, NULL, &e), 0);
	assert_string_equal(r.name, "new");
	assert_string_equal(r.argv[0], "n");
	assert_null(r.argv[1]);
	json_release(fields, ARRAY_SIZE(fields), &r);
	json_release(fields, ARRAY_SIZE(fields), &r); /* twice is harmless */
}

static void test_failure_changes_nothing(void **state)
{
	(void)state;
	struct req r;
	struct err e = ERR_INIT;

	req_defaults(&r);
	r.name = xstrdup("keep-me");
	/* valid members before and after the bad one */
	assert_int_equal(parse("{\"name\":\"other\",\"cpus\":3,\"keep\":false,"
			       "\"delta\":\"x\",\"bytes\":1}", &r, NULL, &e), -EINVAL);
	assert_string_equal(e.msg, "field 'delta' must be an integer");
	assert_string_equal(r.name, "keep-me");
	assert_int_equal(r.cpus, 2);
	assert_true(r.keep);
	assert_int_equal(r.bytes, 99);
	json_release(fields, ARRAY_SIZE(fields), &r);
}

static void test_unknown_missing_duplicate(void **state)
{
	(void)state;
	check_error("{\"name\":\"a\",\"cpu\":1}", "unknown field 'cpu'");
	check_error("{\"Name\":\"a\"}", "unknown field 'Name'");
	check_error("{\"cpus\":1}", "missing field 'name'");
	check_error("{}", "missing field 'name'");
	check_error("{\"name\":\"a\",\"name\":\"b\"}", "duplicate field 'name'");
	check_error("{\"name\":\"a\",\"cpus\":1,\"cpus\":1}", "duplicate field 'cpus'");
	/* a long unknown key is quoted only in part */
	char body[300];
	memset(body, 0, sizeof(body));
	memcpy(body, "{\"", 2);
	memset(body + 2, 'k', 200);
	memcpy(body + 202, "\":1}", 4);
	struct req r;
	struct err e = ERR_INIT;
	req_defaults(&r);
	assert_int_equal(parse(body, &r, NULL, &e), -EINVAL);
	assert_int_equal(strlen(e.msg), strlen("unknown field ''") + 64);
}

static void test_wrong_types(void **state)
{
	(void)state;
	check_error("{\"name\":5}", "field 'name' must be a string");
	check_error("{\"name\":null}", "field 'name' must be a string");
	check_error("{\"name\":[\"a\"]}", "field 'name' must be a string");
	check_error("{\"name\":\"a\",\"cpus\":\"4\"}", "field 'cpus' must be an integer");
	check_error("{\"name\":\"a\",\"cpus\":null}", "field 'cpus' must be an integer");
	check_error("{\"name\":\"a\",\"cpus\":true}", "field 'cpus' must be an integer");
	check_error("{\"name\":\"a\",\"cpus\":[4]}", "field 'cpus' must be an integer");
	check_error("{\"name\":\"a\",\"bytes\":{}}", "field 'bytes' must be an integer");
	check_error("{\"name\":\"a\",\"keep\":1}", "field 'keep' must be true or false");
	check_error("{\"name\":\"a\",\"keep\":\"true\"}", "field 'keep' must be true or false");
	check_error("{\"name\":\"a\",\"keep\":null}", "field 'keep' must be true or false");
	check_error("{\"name\":\"a\",\"argv\":\"ls\"}", "field 'argv' must be an array of strings");
	check_error("{\"name\":\"a\",\"argv\":[\"ls\",1]}", "field 'argv' must be an array of strings");
	check_error("{\"name\":\"a\",\"argv\":[null]}", "field 'argv' must be an array of strings");
	check_error("{\"name\":\"a\",\"argv\":{\"a\":\"b\"}}", "field 'argv' must be an array of strings");
	check_error("{\"name\":\"a\",\"env\":[\"A=1\"]}", "field 'env' must be an object of strings");
	check_error("{\"name\":\"a\",\"env\":{\"A\":1}}", "field 'env' must be an object of strings");
	check_error("{\"name\":\"a\",\"env\":{\"A\":{}}}", "field 'env' must be an object of strings");
}

static void test_integers(void **state)
{
	(void)state;
	struct req r;
	struct err e = ERR_INIT;

	/* not integers, however a double would see them */
	check_error("{\"name\":\"a\",\"cpus\":1.5}", "field 'cpus' must be an integer");
	check_error("{\"name\":\"a\",\"cpus\":2.0}", "field 'cpus' must be an integer");
	check_error("{\"name\":\"a\",\"cpus\":1e1}", "field 'cpus' must be an integer");
	check_error("{\"name\":\"a\",\"cpus\":1E1}", "field 'cpus' must be an integer");
	check_error("{\"name\":\"a\",\"cpus\":01}", "field 'cpus' must be an integer");
	check_error("{\"name\":\"a\",\"delta\":1e400}", "field 'delta' must be an integer");
	check_error("{\"name\":\"a\",\"delta\":-1e400}", "field 'delta' must be an integer");
	check_error("{\"name\":\"a\",\"bytes\":1.0000000000000000000001}",
		    "field 'bytes' must be an integer");

	/* ranges */
	check_error("{\"name\":\"a\",\"cpus\":0}", "field 'cpus' must be an integer from 1 to 64");
	check_error("{\"name\":\"a\",\"cpus\":65}", "field 'cpus' must be an integer from 1 to 64");
	check_error("{\"name\":\"a\",\"cpus\":-1}", "field 'cpus' must be an integer from 1 to 64");
	check_error("{\"name\":\"a\",\"cpus\":99999999999999999999999}",
		    "field 'cpus' must be an integer from 1 to 64");
	check_error("{\"name\":\"a\",\"delta\":9223372036854775808}",
		    "field 'delta' must be an integer from -9223372036854775808 to 9223372036854775807");
	check_error("{\"name\":\"a\",\"delta\":-9223372036854775809}",
		    "field 'delta' must be an integer from -9223372036854775808 to 9223372036854775807");
	check_error("{\"name\":\"a\",\"bytes\":18446744073709551616}",
		    "field 'bytes' must be an integer from 0 to 18446744073709551615");
	check_error("{\"name\":\"a\",\"bytes\":-1}",
		    "field 'bytes' must be an integer from 0 to 18446744073709551615");

	/* exact at the edges, including where a double is not */
	req_defaults(&r);
	assert_int_equal(parse("{\"name\":\"a\",\"cpus\":64,\"delta\":-9223372036854775808,"
			       "\"bytes\":0}", &r, NULL, &e), 0);
	assert_int_equal(r.cpus, 64);
	assert_true(r.delta == INT64_MIN);
	assert_int_equal(r.bytes, 0);
	json_release(fields, ARRAY_SIZE(fields), &r);

	req_defaults(&r);
	assert_int_equal(parse("{\"delta\":9223372036854775807,\"name\":\"a\","
			       "\"bytes\":9007199254740993,\"cpus\":1}", &r, NULL, &e), 0);
	assert_true(r.delta == INT64_MAX);
	assert_true(r.bytes == 9007199254740993ull);
	assert_int_equal(r.cpus, 1);
	json_release(fields, ARRAY_SIZE(fields), &r);

	req_defaults(&r);
	assert_int_equal(parse("{\"name\":\"a\",\"delta\":-0,\"bytes\":-0}", &r, NULL, &e), 0);
	assert_true(r.delta == 0);
	assert_true(r.bytes == 0);
	json_release(fields, ARRAY_SIZE(fields), &r);

	/* numbers nested in lists do not confuse the member/token pairing */
	req_defaults(&r);
	assert_int_equal(parse("{\"name\":\"a\",\"cpus\":3,\"argv\":[1,2]}", &r, NULL, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "field 'argv' must be an array of strings");
	assert_int_equal(parse("{\"name\":\"1\",\"cpus\":3,\"delta\":-5,\"bytes\":17}", &r, NULL,
			       &e), 0);
	assert_int_equal(r.cpus, 3);
	assert_true(r.delta == -5);
	assert_int_equal(r.bytes, 17);
	json_release(fields, ARRAY_SIZE(fields), &r);
}

static void test_not_an_object(void **state)
{
	(void)state;
	check_error("[]", "body must be a JSON object");
	check_error("[{\"name\":\"a\"}]", "body must be a JSON object");
	check_error("\"name\"", "body must be a JSON object");
	check_error("1", "body must be a JSON object");
	check_error("null", "body must be a JSON object");
	check_error("true", "body must be a JSON object");
	check_error("", "body is empty");
	check_error(" \n\t ", "body is empty");
}

static void test_syntax_and_trailing(void **state)
{
	(void)state;
	check_error("{\"name\":\"a\"} x", "invalid JSON at byte 13");
	check_error("{\"name\":\"a\"}{}", "invalid JSON at byte 12");
	check_error("{\"name\":\"a\"},", "invalid JSON at byte 12");
	check_error("{\"name\":\"a\"}\n\n]", "invalid JSON at byte 14");
	check_syntax_error("{\"name\":}");
	check_syntax_error("{\"name\":\"a\",}");
	check_syntax_error("{\"name\":\"a\"");
	check_syntax_error("{name:\"a\"}");
	check_syntax_error("{\"name\":'a'}");
	check_syntax_error("{\"name\":\"a\" // c\n}");
	check_error("\x01{\"name\":\"a\"}", "invalid JSON at byte 0: control character");

	/* the text needs no NUL terminator: bytes past len are not read */
	struct req r;
	struct err e = ERR_INIT;
	const char text[] = "{\"name\":\"ab\"}garbage";
	req_defaults(&r);
	assert_int_equal(parse_n(text, 13, &r, NULL, &e), 0);
	assert_string_equal(r.name, "ab");
	json_release(fields, ARRAY_SIZE(fields), &r);
	char *exact = xmalloc(13);  /* ASan checks nothing reads byte 13 */
	memcpy(exact, text, 13);
	req_defaults(&r);
	assert_int_equal(parse_n(exact, 13, &r, NULL, &e), 0);
	json_release(fields, ARRAY_SIZE(fields), &r);
	assert_int_equal(parse_n(exact, 12, &r, NULL, &e), -EINVAL);
	free(exact);
}

static void test_nul_and_control(void **state)
{
	(void)state;
	static const char raw[] = "{\"name\":\"a\0b\"}";
	check_error_n(raw, sizeof(raw) - 1, "invalid JSON at byte 10: NUL byte");
	static const char raw_out[] = "{\"name\":\"a\"}\0";
	check_error_n(raw_out, sizeof(raw_out) - 1, "invalid JSON at byte 12: NUL byte");
	check_error("{\"name\":\"a\\u0000b\"}",
		    "invalid JSON at byte 10: strings must not contain \\u0000");
	check_error("{\"na\\u0000me\":\"a\"}",
		    "invalid JSON at byte 4: strings must not contain \\u0000");
	check_error("{\"name\":\"a\tb\"}", "invalid JSON at byte 10: control character in a string");
	check_error("{\"name\":\"a\nb\"}", "invalid JSON at byte 10: control character in a string");

	/* an escaped backslash before u0000 is just text */
	struct req r;
	struct err e = ERR_INIT;
	req_defaults(&r);
	assert_int_equal(parse("{\"name\":\"\\\\u0000\\t\\u0041\"}", &r, NULL, &e), 0);
	assert_string_equal(r.name, "\\u0000\tA");
	json_release(fields, ARRAY_SIZE(fields), &r);
}

static void test_utf8(void **state)
{
	(void)state;
	struct req r;
	struct err e = ERR_INIT;

	req_defaults(&r);
	assert_int_equal(parse("{\"name\":\"h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
			       "\"env\":{\"\xc3\xa9\":\"\\u00e9\\ud83d\\ude00\"}}", &r, NULL, &e), 0);
	assert_string_equal(r.name, "h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	assert_string_equal(r.env[0], "\xc3\xa9=\xc3\xa9\xf0\x9f\x98\x80");
	json_release(fields, ARRAY_SIZE(fields), &r);

	check_error("{\"name\":\"\xff\"}", "invalid JSON at byte 9: invalid UTF-8");
	check_error("{\"name\":\"\xc0\xaf\"}", "invalid JSON at byte 9: invalid UTF-8");
	check_error("{\"name\":\"\xe0\x80\xaf\"}", "invalid JSON at byte 9: invalid UTF-8");
	check_error("{\"name\":\"\xed\xa0\x80\"}", "invalid JSON at byte 9: invalid UTF-8");
	check_error("{\"name\":\"\xf4\x90\x80\x80\"}", "invalid JSON at byte 9: invalid UTF-8");
	check_error("{\"name\":\"a\xc3\"}", "invalid JSON at byte 10: invalid UTF-8");
	/* a lone surrogate escape is refused by cJSON */
	check_syntax_error("{\"name\":\"\\udc00\"}");
}

static void test_caps(void **state)
{
	(void)state;
	struct req r;
	struct err e = ERR_INIT;

	req_defaults(&r);
	assert_int_equal(parse("{\"name\":\"0123456789abcdef\",\"argv\":[\"12345678\",\"\",\"x\"],"
			       "\"env\":{\"ABCDEFGH\":\"12345678\",\"B\":\"\",\"C\":\"c\"}}",
			       &r, NULL, &e), 0);
	assert_int_equal(strlen(r.name), 16);
	assert_int_equal(strv_len(r.argv), 3);
	assert_string_equal(r.env[0], "ABCDEFGH=12345678");
	assert_string_equal(r.env[1], "B=");
	json_release(fields, ARRAY_SIZE(fields), &r);

	check_error("{\"name\":\"0123456789abcdefg\"}", "field 'name' is longer than 16 bytes");
	/* length is in bytes, not characters */
	check_error("{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		    "\xc3\xa9\"}", "field 'name' is longer than 16 bytes");
	check_error("{\"name\":\"a\",\"argv\":[\"a\",\"b\",\"c\",\"d\"]}",
		    "field 'argv' has more than 3 entries");
	check_error("{\"name\":\"a\",\"argv\":[\"a\",\"123456789\"]}",
		    "field 'argv' entry 1 is longer than 8 bytes");
	check_error("{\"name\":\"a\",\"env\":{\"A\":\"1\",\"B\":\"2\",\"C\":\"3\",\"D\":\"4\"}}",
		    "field 'env' has more than 3 entries");
	check_error("{\"name\":\"a\",\"env\":{\"A\":\"123456789\"}}",
		    "field 'env' entry 'A' is longer than 8 bytes");
	check_error("{\"name\":\"a\",\"env\":{\"ABCDEFGHI\":\"1\"}}",
		    "field 'env' entry 'ABCDEFGHI' is longer than 8 bytes");
	check_error("{\"name\":\"a\",\"env\":{\"A=B\":\"1\"}}",
		    "field 'env' has an invalid key 'A=B' (empty or containing '=')");
	check_error("{\"name\":\"a\",\"env\":{\"\":\"1\"}}",
		    "field 'env' has an invalid key '' (empty or containing '=')");
	check_error("{\"name\":\"a\",\"env\":{\"A\":\"1\",\"B\":\"2\",\"A\":\"3\"}}",
		    "field 'env' has a duplicate key 'A'");
}

static void test_default_caps(void **state)
{
	(void)state;
	struct big { char *s; char **v; } b = { 0 };
	static const struct json_field bf[] = {
		JSON_FIELD_STR("s", struct big, s, JSON_OPTIONAL, 0),
		JSON_FIELD_STRV("v", struct big, v, JSON_OPTIONAL, 0, 0),
	};
	struct buf text = BUF_INIT;
	struct err e = ERR_INIT;

	buf_adds(&text, "{\"s\":\"");
	for (int i = 0; i < JSON_MAX_STR; i++)
		buf_addch(&text, 'x');
	buf_adds(&text, "\",\"v\":[");
	for (int i = 0; i < JSON_MAX_ITEMS; i++)
		buf_adds(&text, i ? ",\"\"" : "\"\"");
	buf_adds(&text, "]}");
	assert_int_equal(json_parse(text.data, text.len, bf, ARRAY_SIZE(bf), &b, NULL, &e), 0);
	assert_int_equal(strlen(b.s), JSON_MAX_STR);
	assert_int_equal(strv_len(b.v), JSON_MAX_ITEMS);
	json_release(bf, ARRAY_SIZE(bf), &b);

	/* one more entry */
	buf_setlen(&text, text.len - 2);
	buf_adds(&text, ",\"\"]}");
	assert_int_equal(json_parse(text.data, text.len, bf, ARRAY_SIZE(bf), &b, NULL, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "field 'v' has more than 1024 entries");
	assert_null(b.s);
	buf_release(&text);
}

static void test_depth(void **state)
{
	(void)state;
	struct buf text = BUF_INIT;

	/* 1 for the object + 15 arrays: parses, then fails on the type */
	buf_adds(&text, "{\"name\":\"a\",\"argv\":");
	for (int i = 0; i < JSON_MAX_DEPTH - 1; i++)
		buf_addch(&text, '[');
	for (int i = 0; i < JSON_MAX_DEPTH - 1; i++)
		buf_addch(&text, ']');
	buf_addch(&text, '}');
	check_error(text.data, "field 'argv' must be an array of strings");

	buf_reset(&text);
	buf_adds(&text, "{\"name\":\"a\",\"argv\":");
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		buf_addch(&text, '[');
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		buf_addch(&text, ']');
	buf_addch(&text, '}');
	check_error(text.data, "JSON nested deeper than 16 levels");

	/* brackets inside strings do not count */
	buf_reset(&text);
	buf_adds(&text, "{\"name\":\"[[[[[[[[[[[[[[[[[[[[\"}");
	check_error(text.data, "field 'name' is longer than 16 bytes");

	/* a deep body is refused before cJSON recurses into it */
	buf_reset(&text);
	for (int i = 0; i < 100000; i++)
		buf_addch(&text, '[');
	check_error(text.data, "JSON nested deeper than 16 levels");
	buf_release(&text);
}

static void test_put_str(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;

	json_put_str(&b, "");
	assert_string_equal(b.data, "\"\"");
	buf_reset(&b);
	json_put_str(&b, "a\"b\\c\nd\re\tf\x01g\x1f/\x7f");
	assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001f/\x7f\"");
	buf_reset(&b);
	json_put_str(&b, "\xc3\xa9\xf0\x9f\x98\x80");
	assert_string_equal(b.data, "\"\xc3\xa9\xf0\x9f\x98\x80\"");
	buf_reset(&b);
	json_put_str(&b, "a\xff" "b\xc3");
	assert_string_equal(b.data, "\"a\\ufffdb\\ufffd\"");
	buf_release(&b);
}

static void test_error_body(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	const char *msg = "field 'cpus' must be an integer from 1 to 64: \"x\"\n";

	buf_adds(&b, "prefix:");
	json_error_body(&b, msg);
	assert_string_equal(b.data, "prefix:{\"error\":\"field 'cpus' must be an integer "
			    "from 1 to 64: \\\"x\\\"\\n\"}");

	/* it is JSON that reads back to the message */
	cJSON *j = cJSON_Parse(b.data + strlen("prefix:"));
	assert_non_null(j);
	cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
	assert_true(cJSON_IsString(err));
	assert_string_equal(err->valuestring, msg);
	assert_int_equal(cJSON_GetArraySize(j), 1);
	cJSON_Delete(j);
	buf_release(&b);
}

static void test_print(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", "sb-1");
	cJSON_AddNumberToObject(o, "cpus", 2);
	cJSON_AddBoolToObject(o, "hot", 1);
	cJSON *a = cJSON_AddArrayToObject(o, "tags");
	cJSON_AddItemToArray(a, cJSON_CreateString("x\"y"));
	cJSON_AddNullToObject(o, "ip");

	buf_adds(&b, ">");
	assert_int_equal(json_print(o, &b), 0);
	assert_string_equal(b.data, ">{\"id\":\"sb-1\",\"cpus\":2,\"hot\":true,"
			    "\"tags\":[\"x\\\"y\"],\"ip\":null}");
	assert_int_equal(b.len, strlen(b.data));
	cJSON_Delete(o);
	buf_release(&b);
}

static void test_get(void **state)
{
	(void)state;
	cJSON *o = cJSON_Parse("{\"s\":\"x\",\"n\":42.5,\"b\":true,\"z\":null}");
	assert_non_null(o);
	assert_string_equal(json_get_str(o, "s", "def"), "x");
	assert_string_equal(json_get_str(o, "n", "def"), "def");   /* not a string */
	assert_string_equal(json_get_str(o, "S", "def"), "def");   /* keys are exact */
	assert_null(json_get_str(o, "missing", NULL));
	assert_null(json_get_str(NULL, "s", NULL));
	assert_true(json_get_num(o, "n") == 42.5);
	assert_true(json_get_num(o, "b") == 0);                   /* not a number */
	assert_true(json_get_num(o, "z") == 0);
	assert_true(json_get_num(NULL, "n") == 0);
	cJSON_Delete(o);
}

/* JSON_SIZE: bytes as a number or a string with a unit (issue 13's
 * "disk_size"); the same range check either way. */
struct sized {
	uint64_t disk;
};
static const struct json_field size_fields[] = {
	JSON_FIELD_SIZE("disk", struct sized, disk, JSON_OPTIONAL, 1ull << 40),
};

static void test_size(void **state)
{
	(void)state;
	struct sized z = { 0 };
	struct err e = ERR_INIT;
	const char *ok[][2] = { { "{\"disk\":1048576}", "1048576" }, { "{\"disk\":\"10G\"}", "10737418240" },
				{ "{\"disk\":\"512M\"}", "536870912" }, { "{\"disk\":\"1T\"}", "1099511627776" } };
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		assert_int_equal(json_parse(ok[i][0], strlen(ok[i][0]), size_fields, 1, &z, NULL, &e), 0);
		assert_true(z.disk == strtoull(ok[i][1], NULL, 10));
	}
	const char *bad[] = { "{\"disk\":\"10X\"}", "{\"disk\":\"2T\"}", "{\"disk\":1099511627777}",
			      "{\"disk\":-1}", "{\"disk\":true}", "{\"disk\":1.5}", "{\"disk\":\"\"}" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		e = (struct err)ERR_INIT;
		assert_int_equal(json_parse(bad[i], strlen(bad[i]), size_fields, 1, &z, NULL, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "field 'disk' must be"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_full_body),
		cmocka_unit_test(test_defaults_and_present),
		cmocka_unit_test(test_replaces_owned_values),
		cmocka_unit_test(test_failure_changes_nothing),
		cmocka_unit_test(test_unknown_missing_duplicate),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_syntax_and_trailing),
		cmocka_unit_test(test_nul_and_control),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_default_caps),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_put_str),
		cmocka_unit_test(test_error_body),
		cmocka_unit_test(test_print),
		cmocka_unit_test(test_get),
	};
	json_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
