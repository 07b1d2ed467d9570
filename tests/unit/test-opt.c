/* test-opt.c — unit tests for shared/opt.c, the one option parser of the
 * host binary: flags (and their alias), values as "--x V" and "--x=V",
 * repeatable values kept in order, options before, between and after the
 * positional arguments, "--" and "-", two tables (a command's and the
 * global one), -h/--help, and each usage error.
 * Sits between cmocka and opt.h; memory only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "opt.h"

static const struct opt cmd_opts[] = {
	{ "--cpus", NULL, OPT_VALUE },
	{ "--yes", "-y", OPT_FLAG },
	{ "--env", NULL, OPT_LIST },
	{ "-n", NULL, OPT_FLAG },
	OPT_END,
};

static const struct opt globals[] = {
	{ "--url", NULL, OPT_VALUE },
	{ "--json", NULL, OPT_FLAG },
	OPT_END,
};

static const struct opt *const tables[] = { cmd_opts, globals };

static int parse(struct args *a, struct err *e, char **argv)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	return args_parse(a, tables, ARRAY_SIZE(tables), argc, argv, e);
}

static void test_options_anywhere(void **state UNUSED)
{
	char *argv[] = { "exec", "--cpus", "2", "dev", "-y", "--env=A=1", "--url", "http://x",
			 "--env", "B=2", "--cpus=4", "-n", "--", "ls", "--json", "-", NULL };
	struct args a;
	struct err e = ERR_INIT;
	assert_int_equal(parse(&a, &e, argv), 0);
	assert_string_equal(args_get(&a, "--cpus"), "4");   /* the last one wins */
	assert_true(args_has(&a, "--yes"));                  /* given as -y */
	assert_true(args_has(&a, "-n"));
	assert_false(args_has(&a, "--json"));                /* after "--": an argument */
	assert_string_equal(args_get(&a, "--url"), "http://x");
	char *const *env = args_list(&a, "--env");
	assert_non_null(env);
	assert_string_equal(env[0], "A=1");
	assert_string_equal(env[1], "B=2");
	assert_null(env[2]);
	assert_int_equal(a.npos, 4);
	assert_string_equal(a.pos[0], "dev");
	assert_string_equal(a.pos[1], "ls");
	assert_string_equal(a.pos[2], "--json");
	assert_string_equal(a.pos[3], "-");
	assert_null(a.pos[4]);
	assert_int_equal(a.dashdash, 1);
	assert_false(a.help);
	args_release(&a);
}

static void test_nothing_given(void **state UNUSED)
{
	char *argv[] = { "list", NULL };
	struct args a;
	assert_int_equal(parse(&a, NULL, argv), 0);
	assert_int_equal(a.npos, 0);
	assert_null(a.pos[0]);
	assert_int_equal(a.dashdash, -1);
	assert_false(args_has(&a, "--yes"));
	assert_null(args_get(&a, "--cpus"));
	assert_null(args_list(&a, "--env"));
	assert_null(args_get(&a, "--no-such"));   /* not in a table: never given */
	args_release(&a);
}

static void test_help(void **state UNUSED)
{
	char *argv[] = { "exec", "dev", "-h", NULL };
	struct args a;
	assert_int_equal(parse(&a, NULL, argv), 0);
	assert_true(a.help);
	args_release(&a);
	char *argv2[] = { "exec", "--help", "--cpus", "1", NULL };
	assert_int_equal(parse(&a, NULL, argv2), 0);
	assert_true(a.help);
	args_release(&a);
	char *argv3[] = { "exec", "--", "--help", NULL };   /* an argument */
	assert_int_equal(parse(&a, NULL, argv3), 0);
	assert_false(a.help);
	assert_string_equal(a.pos[0], "--help");
	args_release(&a);
}

static void test_usage_errors(void **state UNUSED)
{
	static const struct { char *argv[4]; const char *msg; } cases[] = {
		{ { "x", "--bogus" }, "unknown option '--bogus'" },
		{ { "x", "--bogus=1" }, "unknown option '--bogus'" },
		{ { "x", "-q" }, "unknown option '-q'" },
		{ { "x", "--cpus" }, "option '--cpus' needs a value" },
		{ { "x", "dev", "--env" }, "option '--env' needs a value" },
		{ { "x", "--yes=1" }, "option '--yes' takes no value" },
		{ { "x", "--help=1" }, "unknown option '--help'" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct args a;
		struct err e = ERR_INIT;
		char *argv[5] = { 0 };
		memcpy(argv, cases[i].argv, sizeof(cases[i].argv));
		assert_int_equal(parse(&a, &e, argv), -EINVAL);
		assert_string_equal(e.msg, cases[i].msg);
		assert_null(a.pos);   /* released */
		args_release(&a);     /* and safe to release again */
	}
}

static void test_one_table(void **state UNUSED)
{
	/* a local command gets only its own table: the globals are unknown */
	const struct opt *only[] = { cmd_opts };
	char *argv[] = { "serve", "--url", "x", NULL };
	struct args a;
	struct err e = ERR_INIT;
	assert_int_equal(args_parse(&a, only, 1, 3, argv, &e), -EINVAL);
	assert_string_equal(e.msg, "unknown option '--url'");
	const struct opt *none[] = { NULL };
	char *argv2[] = { "help", "a", NULL };
	assert_int_equal(args_parse(&a, none, 1, 2, argv2, &e), 0);
	assert_int_equal(a.npos, 1);
	args_release(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_anywhere),
		cmocka_unit_test(test_nothing_given),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_one_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
