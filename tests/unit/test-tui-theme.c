/* test-tui-theme.c — tui/theme.c: styles parsed and refused, the theme
 * files in themes/ (default and mono the same as the built-in ones, light
 * loads, every role set), a file with a bad key or style refused with its
 * line, names and paths, which theme is picked (flag, setting, NO_COLOR, a
 * terminal without colours). Run from the project root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "theme.h"

static const char *const repo_dirs[] = { "themes", NULL };

static void test_styles(void **state UNUSED)
{
	struct style s;
	struct err e = ERR_INIT;
	assert_int_equal(theme_parse_style("white on blue bold", &s, &e), 0);
	assert_int_equal(s.fg, 7);
	assert_int_equal(s.bg, 4);
	assert_int_equal(s.attrs, STYLE_BOLD);
	assert_int_equal(theme_parse_style("bright-red", &s, &e), 0);
	assert_int_equal(s.fg, 9);
	assert_int_equal(s.bg, COLOR_DEFAULT);
	assert_int_equal(theme_parse_style("236 on 17 dim reverse underline", &s, &e), 0);
	assert_int_equal(s.fg, 236);
	assert_int_equal(s.bg, 17);
	assert_int_equal(s.attrs, STYLE_DIM | STYLE_REVERSE | STYLE_UNDERLINE);
	assert_int_equal(theme_parse_style("default reverse", &s, &e), 0);
	assert_int_equal(s.fg, COLOR_DEFAULT);
	assert_int_equal(s.attrs, STYLE_REVERSE);
	static const char *const bad[] = { "", "purple", "red on", "red blue", "256", "on",
					   "bright-7", "red on bold", "-1", "red,, loud" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct err be = ERR_INIT;
		if (theme_parse_style(bad[i], &s, &be) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(strstr(be.msg, "must be a style"));
	}
}

static void assert_same(const struct theme *a, const struct theme *b)
{
	for (int r = 0; r < R_N; r++)
		if (a->s[r].fg != b->s[r].fg || a->s[r].bg != b->s[r].bg ||
		    a->s[r].attrs != b->s[r].attrs)
			fail_msg("role '%s' differs between '%s' and '%s'", theme_role_key(r), a->name,
				 b->name);
}

static void test_files(void **state UNUSED)
{
	struct theme file, builtin;
	struct err e = ERR_INIT;
	/* the files of themes/ are the built-in ones (so either can be edited alone) */
	assert_int_equal(theme_load("default", repo_dirs, &file, &e), 0);
	theme_builtin("default", &builtin);
	assert_same(&file, &builtin);
	assert_int_equal(theme_load("mono", repo_dirs, &file, &e), 0);
	theme_builtin("mono", &builtin);
	assert_same(&file, &builtin);
	for (int r = 0; r < R_N; r++)   /* mono has no colour at all */
		assert_true(builtin.s[r].fg == COLOR_DEFAULT && builtin.s[r].bg == COLOR_DEFAULT);
	assert_int_equal(theme_load("light", repo_dirs, &file, &e), 0);
	assert_string_equal(file.name, "light");
	/* every role of every file is set in the file (none falls back by accident) */
	static const char *const names[] = { "default", "light", "mono" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char path[64];
		snprintf(path, sizeof(path), "themes/%s.yaml", names[i]);
		char *text = read_text(path);
		assert_non_null(text);
		for (int r = 0; r < R_N; r++) {
			const char *key = theme_role_key(r);
			const char *dot = strchr(key, '.');
			char want[64];
			snprintf(want, sizeof(want), "%s%s:", dot ? "  " : "", dot ? dot + 1 : key);
			if (!strstr(text, want))
				fail_msg("%s has no '%s'", path, key);
		}
		free(text);
	}
}

static void test_bad_files(void **state UNUSED)
{
	char *dir = test_tmpdir("theme");
	char *p = test_strf("%s/t.yaml", dir);
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "header: white\nheadr: red\n", "t.yaml:2: unknown key 'headr'" },
		{ "state:\n  hot: purple\n", "t.yaml:2: key 'state.hot' must be a style" },
		{ "header: [red]\n", "t.yaml:1:" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		FILE *f = fopen(p, "w");
		fputs(cases[i].text, f);
		fclose(f);
		struct theme t;
		struct err e = ERR_INIT;
		assert_int_equal(theme_load(p, NULL, &t, &e), -EINVAL);
		if (!strstr(e.msg, cases[i].want))
			fail_msg("'%s' for %s", e.msg, cases[i].want);
	}
	/* a role left out keeps the default's style */
	FILE *f = fopen(p, "w");
	fputs("header: red\n", f);
	fclose(f);
	struct theme t, d;
	struct err e = ERR_INIT;
	assert_int_equal(theme_load(p, NULL, &t, &e), 0);
	assert_int_equal(t.s[R_HEADER].fg, 1);
	theme_builtin("default", &d);
	assert_int_equal(t.s[R_HOT].fg, d.s[R_HOT].fg);
	free(p);
	test_rmtree(dir);
	free(dir);
}

static void test_names(void **state UNUSED)
{
	struct theme t;
	struct err e = ERR_INIT;
	/* no files anywhere: default and mono are built in, others are not */
	static const char *const none[] = { "/nonexistent", NULL };
	assert_int_equal(theme_load("default", none, &t, &e), 0);
	assert_string_equal(t.name, "default");
	assert_int_equal(theme_load("mono", none, &t, &e), 0);
	assert_string_equal(t.name, "mono");
	assert_int_equal(theme_load("light", none, &t, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "no theme 'light'"));
	assert_int_equal(theme_load("Bad Name", none, &t, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "invalid theme name"));
	assert_int_equal(theme_load("themes/light.yaml", NULL, &t, &e), 0);
	assert_string_equal(t.name, "light.yaml");
	assert_int_equal(theme_load("themes/nope.yaml", NULL, &t, &e), -ENOENT);
}

static void test_pick(void **state UNUSED)
{
	assert_string_equal(theme_pick(NULL, NULL, false, true), "default");
	assert_string_equal(theme_pick(NULL, "light", false, true), "light");
	assert_string_equal(theme_pick("mono", "light", false, true), "mono");
	assert_string_equal(theme_pick(NULL, "light", true, true), "mono");      /* NO_COLOR */
	assert_string_equal(theme_pick("light", NULL, true, true), "light");     /* asked for */
	assert_string_equal(theme_pick("light", "light", false, false), "mono"); /* no colours */
	assert_string_equal(theme_pick("", NULL, false, true), "default");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_styles),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_pick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
