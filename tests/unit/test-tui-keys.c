/* test-tui-keys.c — every key of the TUI's key tables (each view's, a
 * pane's, the global ones: the tables the footer and the help are made
 * from) is in docs/tui.md's key table, written as the doc writes keys
 * (`Ctrl+\`, `Shift+PgUp`, `Esc`…), and each table has its help texts.
 * Run from the project root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "helpers.h"

/* The doc's name of a key label ("^\" → "Ctrl+\", "S-PgUp" → "Shift+PgUp"). */
static void doc_name(const char *label, char *out, size_t size)
{
	if (label[0] == '^' && label[1])
		snprintf(out, size, "`Ctrl+%s`", label + 1);
	else if (strncmp(label, "S-", 2) == 0)
		snprintf(out, size, "`Shift+%s`", label + 2);
	else
		snprintf(out, size, "`%s`", label);
}

static void check_table(const char *doc, const char *what, const struct key_def *keys)
{
	int n = 0;
	for (const struct key_def *k = keys; k->key; k++, n++) {
		assert_non_null(k->label);
		assert_true(k->help && k->help[0]);
		char name[64];
		doc_name(k->label, name, sizeof(name));
		if (!strstr(doc, name))
			fail_msg("%s: key %s (%s) is not in docs/tui.md", what, name, k->help);
	}
	assert_true(n > 0);
}

static void test_keys_documented(void **state UNUSED)
{
	char *doc = read_text("docs/tui.md");
	assert_non_null(doc);
	check_table(doc, "the list", view_dashboard.keys);
	check_table(doc, "the detail view", view_detail.keys);
	check_table(doc, "the exec log", view_exec.keys);
	check_table(doc, "the events log", view_events.keys);
	check_table(doc, "the help", view_help.keys);
	check_table(doc, "a pane", app_pane_keys);
	check_table(doc, "everywhere", app_global_keys);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_documented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
