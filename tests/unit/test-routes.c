/* test-routes.c — the daemon's route table (daemon/routes.c) and its
 * reference (docs/api.md, read from the project root) agree: every route
 * has a heading under "## Routes" naming its method and pattern, and
 * every route a heading names is in the table (or is the owner's proxy
 * path, which daemon/proxy.c serves before the table). Sits between cmocka,
 * routes[] and the document.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"

#define DOC "docs/api.md"

/* As a client writes it: a WebSocket route is a GET with an upgrade. */
static const char *const method_names[] = {
	[HTTP_GET] = "GET", [HTTP_HEAD] = "HEAD", [HTTP_POST] = "POST", [HTTP_PUT] = "PUT",
	[HTTP_PATCH] = "PATCH", [HTTP_DELETE] = "DELETE", [HTTP_WS] = "GET",
};

/* "METHOD /pattern" of every backquoted route in the "### " headings of
 * the "## Routes" section, a query ("?...") cut off; NULL-terminated. */
static char **doc_routes(void)
{
	FILE *f = fopen(DOC, "r");
	assert_non_null(f);
	char line[1024];
	char **v = xcalloc(1, sizeof(*v));
	size_t n = 0;
	bool in_routes = false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "## ", 3) == 0)
			in_routes = strncmp(line, "## Routes", 9) == 0;
		if (!in_routes || strncmp(line, "### ", 4) != 0)
			continue;
		for (char *p = strchr(line, '`'); p; p = strchr(p, '`')) {
			char *end = strchr(p + 1, '`');
			if (!end)
				fail_msg(DOC ": unclosed ` in %s", line);
			size_t len = strcspn(p + 1, "?`");
			v = xrealloc(v, (n + 2) * sizeof(*v));
			v[n++] = xstrndup(p + 1, len);
			v[n] = NULL;
			p = end + 1;
		}
	}
	fclose(f);
	return v;
}

static bool in_list(char *const *v, const char *s)
{
	for (; *v; v++)
		if (strcmp(*v, s) == 0)
			return true;
	return false;
}

static void test_routes_documented(void **state UNUSED)
{
	char **doc = doc_routes();
	char **table = xcalloc(routes_count + 1, sizeof(*table));
	assert_true(routes_count > 0);
	for (size_t i = 0; i < routes_count; i++) {
		struct buf b = BUF_INIT;
		assert_true((size_t)routes[i].method < ARRAY_SIZE(method_names));
		buf_addf(&b, "%s %s", method_names[routes[i].method], routes[i].pattern);
		table[i] = buf_detach(&b, NULL);
		if (!in_list(doc, table[i]))
			fail_msg("route '%s' has no heading in " DOC, table[i]);
	}
	assert_true(strv_len(doc) > 0);
	/* served outside the table: daemon/proxy.c takes these connections
	 * before libwebsockets sees them (proxy_sniff) */
	char *const outside[] = { "ANY /sandboxes/:id/proxy/:port/*", NULL };
	for (char **d = doc; *d; d++) {
		if (!in_list(table, *d) && !in_list(outside, *d))
			fail_msg(DOC " documents '%s', which is not in routes[]", *d);
		for (char **o = d + 1; *o; o++)
			if (strcmp(*o, *d) == 0)
				fail_msg(DOC " documents '%s' twice", *d);
	}
	strv_free(table);
	strv_free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes_documented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
