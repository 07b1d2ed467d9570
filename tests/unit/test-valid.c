/* test-valid.c — unit tests for shared/valid.c, driven by one table of
 * accepted and refused inputs (tests/data/valid.tsv, run from the project
 * root): every row's verdict and message, every kind with rows of both
 * verdicts, NULL inputs, and a NULL struct err. Sits between cmocka and
 * valid.h.
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

#include "buf.h"
#include "valid.h"

#define TABLE "tests/data/valid.tsv"

/* The table's "labels" rows are KEY=VALUE entries separated by ','. */
static int labels_csv(const char *s, struct err *e)
{
	char *dup = xstrdup(s);
	char **v = xcalloc(strlen(s) + 2, sizeof(*v));
	size_t n = 0;
	for (char *p = dup; *dup;) {   /* "" is no entry at all */
		v[n++] = p;
		char *comma = strchr(p, ',');
		if (!comma)
			break;
		*comma = '\0';
		p = comma + 1;
	}
	int r = valid_labels(v, e);
	free(v);
	free(dup);
	return r;
}

static const struct kind {
	const char *name;
	int (*check)(const char *s, struct err *e);
	int ok, refused;     /* rows seen */
} kinds_init[] = {
	{ "user", valid_user_name, 0, 0 },
	{ "sandbox", valid_sandbox_name, 0, 0 },
	{ "snapshot", valid_snapshot_name, 0, 0 },
	{ "secret", valid_secret_name, 0, 0 },
	{ "sandbox-id", valid_sandbox_id, 0, 0 },
	{ "vm-id", valid_vm_id, 0, 0 },
	{ "image", valid_image, 0, 0 },
	{ "alias", valid_alias, 0, 0 },
	{ "env", valid_env_name, 0, 0 },
	{ "env-entry", valid_env_entry, 0, 0 },
	{ "hostname", valid_hostname, 0, 0 },
	{ "label-key", valid_label_key, 0, 0 },
	{ "label-value", valid_label_value, 0, 0 },
	{ "labels", labels_csv, 0, 0 },
	{ "session-id", valid_session_id, 0, 0 },
};

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The table's escapes: \\ \t \xHH. */
static void unescape(const char *s, struct buf *out, int line)
{
	for (const char *p = s; *p; p++) {
		if (*p != '\\') {
			buf_add(out, p, 1);
			continue;
		}
		char c;
		if (p[1] == '\\') {
			c = '\\';
			p++;
		} else if (p[1] == 't') {
			c = '\t';
			p++;
		} else if (p[1] == 'x' && hex(p[2]) >= 0 && hex(p[3]) >= 0) {
			c = (char)(hex(p[2]) * 16 + hex(p[3]));
			p += 3;
		} else {
			fail_msg("%s:%d: bad escape in '%s'", TABLE, line, s);
			return;
		}
		buf_add(out, &c, 1);
	}
}

static void test_table(void **state UNUSED)
{
	struct kind kinds[ARRAY_SIZE(kinds_init)];
	memcpy(kinds, kinds_init, sizeof(kinds));
	FILE *f = fopen(TABLE, "r");
	assert_non_null(f);
	char line[4096];
	int lineno = 0, rows = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
		if (!tab2)
			fail_msg("%s:%d: want kind<TAB>input<TAB>expected", TABLE, lineno);
		*tab1 = *tab2 = '\0';
		const char *want = tab2 + 1;
		struct kind *k = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
			if (strcmp(kinds[i].name, line) == 0)
				k = &kinds[i];
		if (!k)
			fail_msg("%s:%d: unknown kind '%s'", TABLE, lineno, line);
		struct buf in = BUF_INIT;
		unescape(tab1 + 1, &in, lineno);
		struct err e = ERR_INIT;
		int r = k->check(in.data, &e);
		if (strcmp(want, "ok") == 0) {
			k->ok++;
			if (r != 0)
				fail_msg("%s:%d: %s '%s' refused: %s", TABLE, lineno, k->name, tab1 + 1,
					 e.msg);
		} else if (strncmp(want, "refused: ", 9) == 0) {
			k->refused++;
			if (r != -EINVAL)
				fail_msg("%s:%d: %s '%s' accepted (%d)", TABLE, lineno, k->name,
					 tab1 + 1, r);
			assert_int_equal(e.code, EINVAL);
			if (!strstr(e.msg, want + 9))
				fail_msg("%s:%d: message\n  %s\nlacks\n  %s", TABLE, lineno, e.msg,
					 want + 9);
			/* the same verdict without a struct err */
			assert_int_equal(k->check(in.data, NULL), -EINVAL);
		} else {
			fail_msg("%s:%d: expected is 'ok' or 'refused: TEXT', not '%s'", TABLE,
				 lineno, want);
		}
		buf_release(&in);
		rows++;
	}
	fclose(f);
	assert_true(rows > 100);
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (!kinds[i].ok || !kinds[i].refused)
			fail_msg("%s: kind '%s' needs accepted and refused rows (%d, %d)", TABLE,
				 kinds[i].name, kinds[i].ok, kinds[i].refused);
}

/* NULL is refused like "" (labels: NULL is the empty list). */
static void test_null(void **state UNUSED)
{
	for (size_t i = 0; i < ARRAY_SIZE(kinds_init); i++) {
		struct err e = ERR_INIT;
		if (kinds_init[i].check == labels_csv) {
			assert_int_equal(valid_labels(NULL, &e), 0);
			continue;
		}
		int want = kinds_init[i].check("", NULL) == 0 ? 0 : -EINVAL;
		assert_int_equal(kinds_init[i].check(NULL, &e), want);
	}
}

/* A secret's value never reaches a message, whatever is wrong with its name. */
static void test_env_entry_hides_value(void **state UNUSED)
{
	struct err e = ERR_INIT;
	assert_int_equal(valid_env_entry("9X=hunter2", &e), -EINVAL);
	assert_null(strstr(e.msg, "hunter2"));
	assert_int_equal(valid_env_entry("A-B=hunter2", &e), -EINVAL);
	assert_null(strstr(e.msg, "hunter2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_env_entry_hides_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
