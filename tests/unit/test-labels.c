/* test-labels.c — daemon/labels.c: a sandbox's labels as sorted
 * "KEY=VALUE" lines: set, replace, remove, the rules (16 at most, the
 * reserved prefix, bad keys and values: nothing changes), filters. Memory
 * only. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "labels.h"
#include "util.h"

static void test_edit(void **state UNUSED)
{
	char *t = NULL;
	struct err e = ERR_INIT;
	char *set[] = { "team=b", "env=dev", NULL };
	assert_int_equal(labels_edit(NULL, set, NULL, &t, &e), 0);
	assert_string_equal(t, "env=dev\nteam=b\n");   /* sorted */
	char *t2 = NULL;
	char *set2[] = { "team=c", "x=", NULL }, *unset[] = { "env", "nope", NULL };
	assert_int_equal(labels_edit(t, set2, unset, &t2, &e), 0);
	assert_string_equal(t2, "team=c\nx=\n");   /* replaced, removed, empty value */
	free(t);
	char *none = NULL, *unset_all[] = { "team", "x", NULL };
	assert_int_equal(labels_edit(t2, NULL, unset_all, &none, &e), 0);
	assert_string_equal(none, "");
	free(none);
	char **v = labels_split(t2);
	assert_int_equal(strv_len(v), 2);
	assert_string_equal(v[0], "team=c");
	strv_free(v);
	free(t2);
}

static void test_rules(void **state UNUSED)
{
	char *t = (char *)"sentinel";
	struct err e = ERR_INIT;
	char *reserved[] = { "bhatti.sh/owner=me", NULL };
	assert_int_equal(labels_edit(NULL, reserved, NULL, &t, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "reserved"));
	char *bad_value[] = { "k=a b", NULL }, *bad_key[] = { "-k=v", NULL };
	assert_int_equal(labels_edit(NULL, bad_value, NULL, &t, &e), -EINVAL);
	assert_int_equal(labels_edit(NULL, bad_key, NULL, &t, &e), -EINVAL);
	char *bad_unset[] = { "a b", NULL };
	assert_int_equal(labels_edit(NULL, NULL, bad_unset, &t, &e), -EINVAL);
	assert_string_equal(t, "sentinel");   /* untouched on failure */
	/* 16 at most, counted after the edit */
	char *sixteen[17], buf[16][8];
	for (int i = 0; i < 16; i++) {
		snprintf(buf[i], sizeof(buf[i]), "k%d=v", i);
		sixteen[i] = buf[i];
	}
	sixteen[16] = NULL;
	char *full = NULL;
	assert_int_equal(labels_edit(NULL, sixteen, NULL, &full, &e), 0);
	char *one_more[] = { "z=1", NULL }, *replace[] = { "k3=w", NULL };
	assert_int_equal(labels_edit(full, one_more, NULL, &t, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "at most 16"));
	char *ok = NULL, *drop[] = { "k0", NULL };
	assert_int_equal(labels_edit(full, replace, NULL, &ok, &e), 0);   /* a replace fits */
	free(ok);
	assert_int_equal(labels_edit(full, one_more, drop, &ok, &e), 0);  /* one out, one in */
	free(ok);
	free(full);
}

static void test_match(void **state UNUSED)
{
	const char *t = "env=dev\nteam=b\n";
	char *f1[] = { "team=b", NULL }, *f2[] = { "team=b", "env=prod", NULL };
	char *f3[] = { "team", NULL }, *f4[] = { "owner", NULL }, *f5[] = { "tea=b", NULL };
	assert_true(labels_match(t, NULL));
	assert_true(labels_match(t, f1));
	assert_false(labels_match(t, f2));   /* all of them */
	assert_true(labels_match(t, f3));    /* any value */
	assert_false(labels_match(t, f4));
	assert_false(labels_match(t, f5));   /* a key is whole */
	assert_false(labels_match(NULL, f1));
	assert_true(labels_match(NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_edit),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
