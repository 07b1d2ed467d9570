/* test-cli-main.c — the real `$BUILD/bhatti` binary's command table
 * (cli/main.c) and what it does once for every command: every command of
 * `bhatti help` (and every subcommand of a group) has its row in
 * docs/cli.md and every command documented there is in the table; --help
 * of each prints its usage on stdout and exits 0; usage errors exit 2
 * with "bhatti CMD: …" and the usage; the global options work before and
 * after the command; sandbox names are URL-escaped. Against a canned
 * daemon: `exec` and `ps` given an exit without a code (once a crash) fail
 * cleanly.
 * Sits between cmocka and the binary (run as a child process); no daemon,
 * no VM.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "helpers.h"

static char *home, *bin;

/* bhatti ARGS... (NULL-terminated): the exit status, stdout and stderr. */
static int run(struct buf *out, struct buf *err, const char *a0, ...)
{
	char *argv[32] = { bin, (char *)a0 };
	int n = a0 ? 2 : 1;
	va_list ap;
	va_start(ap, a0);
	for (const char *a = a0 ? va_arg(ap, const char *) : NULL; a && n < 31;
	     a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	buf_reset(out);
	buf_reset(err);
	return test_run(argv, NULL, NULL, 0, out, err, 20000);
}

/* The words that follow "bhatti " at the start of a table row of
 * docs/cli.md: "file read", "list", ... one per line. */
static void documented(struct buf *rows)
{
	char *md = read_text("docs/cli.md");
	assert_non_null(md);
	char *save = NULL;
	for (char *line = strtok_r(md, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "| `bhatti ", 10) != 0)
			continue;
		const char *w = line + 10;
		size_t l1 = strcspn(w, " `");
		const char *w2 = w + l1 + (w[l1] == ' ');
		size_t l2 = strcspn(w2, " `");
		buf_addf(rows, "%.*s\n", (int)l1, w);
		if (l2 && islower((unsigned char)w2[0]))   /* a subcommand, not NAME or [--x] */
			buf_addf(rows, "%.*s %.*s\n", (int)l1, w, (int)l2, w2);
	}
	free(md);
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static void test_table_matches_docs(void **state UNUSED)
{
	struct buf out = BUF_INIT, err = BUF_INIT, docs = BUF_INIT, table = BUF_INIT;
	documented(&docs);
	assert_int_equal(run(&out, &err, "help", NULL), 0);
	const char *p = strstr(out.data, "commands:\n");
	assert_non_null(p);
	for (p += 10; p[0] == ' ' && p[1] == ' '; p = strchr(p, '\n') + 1) {
		char name[32];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(p + 2, " "), p + 2);
		buf_addf(&table, "%s\n", name);
		if (!has_line(docs.data, name))
			fail_msg("'bhatti %s' is in the table but has no row in docs/cli.md", name);
		/* a group: its usage names its subcommands, one line each */
		struct buf o = BUF_INIT, e = BUF_INIT;
		assert_int_equal(run(&o, &e, name, "--help", NULL), 0);
		char lead[64];
		snprintf(lead, sizeof(lead), "bhatti %s", name);
		int lines = 0;
		struct buf subs = BUF_INIT;
		for (const char *l = o.data; *l; l = strchr(l, '\n') + 1) {
			const char *u = l + strspn(l, " ");
			if (strncmp(u, "usage: ", 7) == 0)
				u += 7;
			size_t ll = strlen(lead);
			if (strncmp(u, lead, ll) == 0 && (u[ll] == ' ' || u[ll] == '\n')) {
				lines++;
				const char *w = u + ll + (u[ll] == ' ');
				buf_addf(&subs, "%s %.*s\n", name, (int)strcspn(w, " \n"), w);
			}
			if (!strchr(l, '\n'))
				break;
		}
		assert_true(lines >= 1);   /* --help shows the usage */
		for (const char *s = subs.data; lines > 1 && *s; s = strchr(s, '\n') + 1) {
			char sub[64];
			snprintf(sub, sizeof(sub), "%.*s", (int)strcspn(s, "\n"), s);
			buf_addf(&table, "%s\n", sub);
			if (!has_line(docs.data, sub))
				fail_msg("'bhatti %s' has no row in docs/cli.md", sub);
		}
		buf_release(&subs);
		buf_release(&o);
		buf_release(&e);
	}
	/* and the reverse: everything documented is in the table */
	for (const char *d = docs.data; *d; d = strchr(d, '\n') + 1) {
		char row[64];
		snprintf(row, sizeof(row), "%.*s", (int)strcspn(d, "\n"), d);
		if (!has_line(table.data, row))
			fail_msg("docs/cli.md documents 'bhatti %s', which the table does not have", row);
	}
	buf_release(&out);
	buf_release(&err);
	buf_release(&docs);
	buf_release(&table);
}

static void test_usage_errors(void **state UNUSED)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	static const struct { const char *args[4]; const char *msg; } cases[] = {
		{ { "exec", "dev" }, "bhatti exec: too few arguments\nusage: bhatti exec NAME " },
		{ { "inspect", "a", "b" }, "bhatti inspect: unexpected argument 'b'\nusage: bhatti inspect NAME" },
		{ { "list", "--bogus" }, "bhatti list: unknown option '--bogus'\nusage: bhatti list" },
		{ { "create", "--cpus" }, "bhatti create: option '--cpus' needs a value\n" },
		{ { "destroy", "--yes=1", "x" }, "bhatti destroy: option '--yes' takes no value\n" },
		{ { "file", "read", "dev" }, "bhatti file read: too few arguments\nusage: bhatti file read NAME PATH" },
		{ { "secret", "set" }, "bhatti secret set: too few arguments\n" },
		{ { "serve", "--log" }, "bhatti serve: option '--log' needs a value\n" },
		{ { "serve", "--url", "x" }, "bhatti serve: unknown option '--url'\n" },
		{ { "user", "list", "extra" }, "bhatti user list: unexpected argument 'extra'\n" },
		{ { "frob" }, "bhatti: unknown command 'frob'\nhint: run 'bhatti help'" },
		{ { "file", "frob" }, "bhatti: unknown command 'file frob'\nhint: run 'bhatti file --help'" },
		{ { "file" }, "usage: bhatti file read NAME PATH" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc = run(&out, &err, cases[i].args[0], cases[i].args[1], cases[i].args[2],
			     cases[i].args[3], NULL);
		if (rc != 2 || strncmp(err.data, cases[i].msg, strlen(cases[i].msg)) != 0)
			fail_msg("bhatti %s %s: want exit 2 and '%s', got %d: '%s'", cases[i].args[0],
				 cases[i].args[1] ? cases[i].args[1] : "", cases[i].msg, rc, err.data);
		assert_string_equal(out.data, "");
	}
	/* no command: the help, and a usage error */
	assert_int_equal(run(&out, &err, NULL), 2);
	assert_non_null(strstr(out.data, "commands:\n"));
	/* --help anywhere, and the ways to ask for a group's */
	assert_int_equal(run(&out, &err, "exec", "dev", "--help", NULL), 0);
	assert_non_null(strstr(out.data, "usage: bhatti exec NAME"));
	assert_non_null(strstr(out.data, "stdin is streamed"));
	assert_int_equal(run(&out, &err, "user", "help", NULL), 0);
	assert_non_null(strstr(out.data, "options of every command: --data-dir"));
	assert_int_equal(run(&out, &err, "-h", NULL), 0);
	assert_non_null(strstr(out.data, "commands:\n"));
	buf_release(&out);
	buf_release(&err);
}

static void test_globals_and_escaping(void **state UNUSED)
{
	static const char *const answer[] = { "HTTP/1.1 200 OK\r\nContent-Length: 23\r\n\r\n"
					      "{\"name\":\"a b\",\"cpus\":1}", NULL };
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct canned srv;
	struct canned_conn cc[3] = { { .pieces = answer }, { .pieces = answer }, { .pieces = answer } };
	canned_start(&srv, cc, 3);
	/* before the command, after it, and mixed with its arguments */
	assert_int_equal(run(&out, &err, "--url", srv.url, "--token", "bht_a", "inspect", "a b",
			     NULL), 0);
	assert_int_equal(run(&out, &err, "inspect", "--json", "a/b?", "--token=bht_b", "--url",
			     srv.url, NULL), 0);
	assert_non_null(strstr(out.data, "\"cpus\":"));   /* --json: the daemon's JSON */
	assert_int_equal(run(&out, &err, "--json", "--url", srv.url, "inspect", "c", NULL), 0);
	assert_non_null(strstr(out.data, "\"cpus\":"));
	canned_end(&srv);
	assert_memory_equal(cc[0].request, "GET /sandboxes/a%20b HTTP/1.1\r\n", 31);
	assert_non_null(strstr(cc[0].request, "\r\nAuthorization: Bearer bht_a\r\n"));
	assert_memory_equal(cc[1].request, "GET /sandboxes/a/b%3F HTTP/1.1\r\n", 32);
	assert_non_null(strstr(cc[1].request, "\r\nAuthorization: Bearer bht_b\r\n"));
	assert_memory_equal(cc[2].request, "GET /sandboxes/c HTTP/1.1\r\n", 27);
	for (size_t i = 0; i < ARRAY_SIZE(cc); i++)
		buf_release(&cc[i].rest);
	buf_release(&out);
	buf_release(&err);
}

/* The docs/cli.md table row of command name ("file read"), or NULL. */
static char *doc_row(const char *md, const char *name)
{
	char lead[80];
	snprintf(lead, sizeof(lead), "| `bhatti %s", name);
	size_t n = strlen(lead);
	for (const char *p = md; (p = strstr(p, lead)); p++)
		if ((p == md || p[-1] == '\n') && (p[n] == ' ' || p[n] == '`'))
			return strndup(p, strcspn(p, "\n"));
	return NULL;
}

/* Is flag in text as a word of its own ("--name" in "[--name N]", not in
 * "--name-x")? */
static bool has_flag(const char *text, const char *flag)
{
	size_t n = strlen(flag);
	for (const char *p = text; (p = strstr(p, flag)); p++) {
		bool before = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '-');
		bool after = !(isalnum((unsigned char)p[n]) || p[n] == '-');
		if (before && after)
			return true;
	}
	return false;
}

/* Every flag of the table (bhatti __table) is in the command's row of
 * docs/cli.md and in its --help, and every flag a row names is in the
 * table. The global options (--url, --token, --json, --timing, --ca) are documented once
 * (docs/cli.md and `bhatti help`); a group's common options (every
 * subcommand has them: user's --data-dir, --config) in docs/cli.md and
 * `bhatti GROUP --help`. */
static void test_flags_match_docs(void **state UNUSED)
{
	struct buf out = BUF_INIT, err = BUF_INIT, help = BUF_INIT, tab = BUF_INIT;
	char *md = read_text("docs/cli.md");
	assert_non_null(md);
	assert_int_equal(run(&tab, &err, "__table", NULL), 0);
	assert_int_equal(run(&help, &err, "help", NULL), 0);
	static const char *const globals[] = { "--url", "--token", "--json", "--timing", "--ca" };
	for (size_t i = 0; i < ARRAY_SIZE(globals); i++)
		if (!has_flag(md, globals[i]) || !has_flag(help.data, globals[i]))
			fail_msg("the global option %s is not in docs/cli.md or bhatti help", globals[i]);
	for (char *line = tab.data; *line; line = strchr(line, '\n') + 1) {
		char name[64], flags[512];
		size_t l1 = strcspn(line, "\t");
		snprintf(name, sizeof(name), "%.*s", (int)l1, line);
		const char *f = line + l1 + 1;
		snprintf(flags, sizeof(flags), "%.*s", (int)strcspn(f, "\t"), f);
		char *row = doc_row(md, name);
		if (!row)
			fail_msg("'bhatti %s' has no row in docs/cli.md", name);
		char *argv[8] = { NULL };
		int na = 0;
		char *copy = strdup(name), *save = NULL;
		for (char *w = strtok_r(copy, " ", &save); w && na < 4; w = strtok_r(NULL, " ", &save))
			argv[na++] = w;
		const char *group = na > 1 ? argv[0] : NULL;
		assert_int_equal(run(&out, &err, argv[0], na > 1 ? argv[1] : "--help",
				     na > 1 ? "--help" : NULL, NULL), 0);
		struct buf ghelp = BUF_INIT, e2 = BUF_INIT;
		if (group)
			assert_int_equal(run(&ghelp, &e2, group, "--help", NULL), 0);
		char *fs = strdup(flags);
		for (char *fl = strtok_r(fs, " ", &save); fl; fl = strtok_r(NULL, " ", &save)) {
			bool global = false;
			for (size_t i = 0; i < ARRAY_SIZE(globals); i++)
				global |= strcmp(fl, globals[i]) == 0;
			if (global && !has_flag(out.data, fl))
				continue;   /* documented once, checked above */
			if (group && has_flag(ghelp.data, fl) && has_flag(md, fl))
				continue;   /* the group's common option */
			if (!has_flag(row, fl))
				fail_msg("'bhatti %s': the table's %s is not in its row of docs/cli.md",
					 name, fl);
			if (!has_flag(out.data, fl))
				fail_msg("'bhatti %s': the table's %s is not in its --help", name, fl);
		}
		free(fs);
		/* the reverse: the flags the row's synopsis (its first cell) names
		 * are in the table */
		char *cell_end = strstr(row + 2, "` |");
		if (cell_end)
			cell_end[1] = '\0';
		for (const char *p = row; *p; p++) {
			if (*p != '-' || (p > row && !strchr(" [`(|", p[-1])))
				continue;
			size_t fn = strspn(p, "-abcdefghijklmnopqrstuvwxyz");
			if (fn < 2 || (p[1] == '-' && fn < 3))
				continue;
			char one[64];
			snprintf(one, sizeof(one), "%.*s", (int)fn, p);
			if (!has_flag(flags, one))
				fail_msg("docs/cli.md's row of 'bhatti %s' names %s, which the table does "
					 "not have", name, one);
			p += fn - 1;
		}
		buf_release(&ghelp);
		buf_release(&e2);
		free(copy);
		free(row);
		if (!strchr(line, '\n'))
			break;
	}
	free(md);
	buf_release(&out);
	buf_release(&err);
	buf_release(&help);
	buf_release(&tab);
}

/* A daemon whose API (X-Bhatti-API) is not this CLI's: one warning, the
 * command still runs. */
static void test_api_version_warning(void **state UNUSED)
{
	static const char *const newer[] = {
		"HTTP/1.1 200 OK\r\nX-Bhatti-Version: 9.0.0\r\nX-Bhatti-API: 2\r\n"
		"Content-Length: 2\r\n\r\n[]", NULL
	};
	static const char *const same[] = {
		"HTTP/1.1 200 OK\r\nX-Bhatti-Version: 0.1.0\r\nX-Bhatti-API: 1\r\n"
		"Content-Length: 2\r\n\r\n[]", NULL
	};
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct canned srv;
	struct canned_conn cc[2] = { { .pieces = newer }, { .pieces = same } };
	canned_start(&srv, cc, 2);
	assert_int_equal(run(&out, &err, "list", "--url", srv.url, NULL), 0);
	assert_string_equal(err.data, "bhatti: warning: the daemon (9.0.0) speaks API 2, this CLI "
				      "(" BHATTI_VERSION ") API 1; update the CLI\n");
	assert_int_equal(run(&out, &err, "list", "--url", srv.url, NULL), 0);
	assert_string_equal(err.data, "");
	canned_end(&srv);
	buf_release(&out);
	buf_release(&err);
}

/* An exit message without a code: a clean error, never a crash. */
static void test_exit_without_code(void **state UNUSED)
{
	static const char *const exec_answer[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 48\r\n\r\n"
		"{\"type\":\"stdout\",\"data\":\"hi\\n\"}\n{\"type\":\"exit\"}\n", NULL
	};
	static const char *const exec_good[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n{\"type\":\"exit\",\"exit_code\":3}\n", NULL
	};
	static const char *const ps_answer[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"
		"[{\"id\":\"s1\",\"running\":false,\"argv\":[1]}]", NULL
	};
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct canned srv;
	/* the server reads the request's body (else its close resets the connection) */
	struct canned_conn cc[3] = { { .pieces = exec_answer, .read_rest = true },
				     { .pieces = exec_good, .read_rest = true },
				     { .pieces = ps_answer } };
	canned_start(&srv, cc, 3);
	assert_int_equal(run(&out, &err, "exec", "--url", srv.url, "-n", "dev", "--", "true", NULL),
			 1);
	assert_string_equal(out.data, "hi\n");
	assert_string_equal(err.data,
			    "bhatti: the daemon said the command exited but not with which code\n");
	assert_int_equal(run(&out, &err, "exec", "--url", srv.url, "-n", "dev", "true", NULL), 3);
	assert_int_equal(run(&out, &err, "ps", "--url", srv.url, "dev", NULL), 0);
	assert_non_null(strstr(out.data, "\ns1 "));
	assert_non_null(strstr(out.data, " exited "));
	canned_end(&srv);
	assert_memory_equal(cc[0].request, "POST /sandboxes/dev/exec HTTP/1.1\r\n", 35);
	for (size_t i = 0; i < ARRAY_SIZE(cc); i++)
		buf_release(&cc[i].rest);
	buf_release(&out);
	buf_release(&err);
}

static int setup(void **state UNUSED)
{
	signal(SIGPIPE, SIG_IGN);
	home = test_tmpdir("cli-main");
	setenv("HOME", home, 1);   /* never the user's ~/.bhatti/config.yaml */
	unsetenv("BHATTI_URL");
	unsetenv("BHATTI_TOKEN");
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/bhatti", test_build_dir());
	bin = buf_detach(&b, NULL);
	return 0;
}

static int teardown(void **state UNUSED)
{
	test_rmtree(home);
	free(home);
	free(bin);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_matches_docs),
		cmocka_unit_test(test_flags_match_docs),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_globals_and_escaping),
		cmocka_unit_test(test_exit_without_code),
		cmocka_unit_test(test_api_version_warning),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
