/* test-cli.c — end to end: the seed system's CLI lines (issue 16) run
 * unchanged by the real `bhatti` CLI against a real `bhatti serve` in a
 * temp data dir, booting real VMs (TCG here). One daemon for the group
 * (exec.timeout 4 s, so the default timeout can be seen firing).
 *
 * Covers: `secret set NAME VALUE`; a config file in the seed's form
 * (api_url, auth_token) and what `setup` writes; `user create` defaults
 * (5 sandboxes, 4 cpus, 4096 MB); exec with stdin streamed while the
 * command runs (`printf x | bhatti exec dev -- wc -c`, 2 MiB through,
 * an open stdin that never closes, a terminal-less -n), the exec timeout
 * (the default fires, --timeout 0 is none, over the 24 h maximum is
 * refused); `exec --detach`; `bhatti version`'s seed lines; labels on
 * create, `list --label`, `-o wide`, `edit` (rename, labels, the rules),
 * the aliases ls, info, rm, sh; `shell --new` and the connection-lost
 * message (the daemon killed under an attached shell, then restarted);
 * the completion scripts (bash loads one and completes a sandbox name);
 * the commands of README.md and docs/quickstart.md, as written.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "helpers.h"
#include "json.h"

static struct daemon_proc D;
static char *KEY;
static struct buf OUT = BUF_INIT, ERR = BUF_INIT;

static int setup(void **state UNUSED)
{
	if (daemon_start(&D, "pool_size: 1\nlimits:\n  execs_per_min: 600\n"
			     "exec:\n  timeout: 4s\n") < 0)
		return -1;
	KEY = daemon_user(&D, "dev", NULL);
	if (!KEY)
		return -1;
	return 0;
}

static int teardown(void **state UNUSED)
{
	int rc = daemon_stop(&D, true);
	free(KEY);
	buf_release(&OUT);
	buf_release(&ERR);
	return rc;
}

#define CLI(in, ...) cli_run(in, __VA_ARGS__, (const char *)NULL)
static int cli_run(const char *in, const char *arg0, ...)
{
	const char *a[32];
	int n = 0;
	va_list ap;
	va_start(ap, arg0);
	for (const char *s = arg0; s && n < 31; s = va_arg(ap, const char *))
		a[n++] = s;
	va_end(ap);
	a[n] = NULL;
	buf_reset(&OUT);
	buf_reset(&ERR);
	return bhatti_argv(&D, KEY, in, &OUT, &ERR, a);
}

/* `sh -c SCRIPT` with the CLI as $B: what a shell line of the seed's
 * reference runs as. as_user: BHATTI_URL and BHATTI_TOKEN of the test's
 * user; else empty (only HOME, whose config file then counts). */
static int sh_run(const char *script, bool as_user, int timeout_ms)
{
	char *b = test_strf("B=%s/bhatti", test_build_dir());
	char *home = test_strf("HOME=%s", D.home);
	char *url = test_strf("BHATTI_URL=%s", as_user ? D.url : "");
	char *tok = test_strf("BHATTI_TOKEN=%s", as_user ? KEY : "");
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	char *env[] = { b, home, url, tok, NULL };
	buf_reset(&OUT);
	buf_reset(&ERR);
	int rc = test_run(argv, env, NULL, 0, &OUT, &ERR, timeout_ms);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "sh -c '%s' → %d\nstdout: %s\nstderr: %s\n", script, rc, OUT.data,
			ERR.data);
	free(b);
	free(home);
	free(url);
	free(tok);
	return rc;
}

static char *config_path(void)
{
	return test_strf("%s/.bhatti/config.yaml", D.home);
}

static void write_config(const char *text)
{
	char *dir = test_strf("%s/.bhatti", D.home), *path = config_path();
	mkdir(dir, 0700);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(dir);
	free(path);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_sandbox(const char *name)
{
	if (CLI(NULL, "create", "--name", name) != 0)
		fail_msg("create %s: %s", name, ERR.data);
}

/* ---- tests ---- */

/* bhatti secret set API_KEY sk-abc123def (exit 2 before: --value only) */
static void test_secret_positional(void **state UNUSED)
{
	assert_int_equal(CLI(NULL, "secret", "set", "API_KEY", "sk-abc123def"), 0);
	assert_int_equal(CLI(NULL, "secret", "list"), 0);
	assert_non_null(strstr(OUT.data, "API_KEY"));
	/* the value reaches a sandbox */
	assert_int_equal(CLI(NULL, "create", "--name", "sec", "--secret", "API_KEY"), 0);
	assert_int_equal(CLI(NULL, "exec", "sec", "--", "sh", "-c", "echo $API_KEY"), 0);
	assert_string_equal(OUT.data, "sk-abc123def\n");
	assert_int_equal(CLI(NULL, "destroy", "-y", "sec"), 0);
	/* both forms at once is a usage error; stdin still works */
	assert_int_equal(CLI(NULL, "secret", "set", "X", "a", "--value", "b"), 2);
	assert_int_equal(CLI("from-stdin\n", "secret", "set", "Y"), 0);
	assert_int_equal(CLI(NULL, "secret", "delete", "API_KEY"), 0);
	assert_int_equal(CLI(NULL, "secret", "delete", "Y"), 0);
	/* --help says why stdin is safer */
	assert_int_equal(CLI(NULL, "secret", "set", "--help"), 0);
	assert_non_null(strstr(OUT.data, "stdin is the safer way"));
}

/* ~/.bhatti/config.yaml in the seed's form: api_url, auth_token */
static void test_seed_config(void **state UNUSED)
{
	char *cfg = test_strf("api_url: %s\nauth_token: %s\n", D.url, KEY);
	write_config(cfg);
	free(cfg);
	assert_int_equal(sh_run("$B list", false, 60000), 0);
	assert_int_equal(sh_run("$B version", false, 60000), 0);
	assert_non_null(strstr(OUT.data, "(from config)"));
	/* the environment beats the file (a one-off BHATTI_URL wins) */
	assert_int_not_equal(sh_run("BHATTI_URL=http://127.0.0.1:1 $B list", false, 60000), 0);
	assert_non_null(strstr(ERR.data, "cannot reach"));
	/* a flag beats both */
	char *line = test_strf("BHATTI_URL=http://127.0.0.1:1 $B --url %s list", D.url);
	assert_int_equal(sh_run(line, false, 60000), 0);
	free(line);
	/* setup writes the seed's keys */
	char *path = config_path();
	unlink(path);
	assert_int_equal(CLI(NULL, "setup", "--url", D.url, "--token", KEY), 0);
	char *text = read_text(path);
	assert_non_null(text);
	assert_non_null(strstr(text, "api_url:"));
	assert_non_null(strstr(text, "auth_token:"));
	free(text);
	unlink(path);
	free(path);
}

/* sudo bhatti user create --name alice → the seed's defaults */
static void test_user_create_defaults(void **state UNUSED)
{
	char *k = daemon_user(&D, "alice", "");
	assert_non_null(k);
	free(k);
	char *line = test_strf("$B user list --config %s --json", D.config);
	assert_int_equal(sh_run(line, false, 60000), 0);
	free(line);
	cJSON *a = cJSON_Parse(OUT.data), *u;
	assert_non_null(a);
	bool seen = false;
	cJSON_ArrayForEach(u, a) {
		if (strcmp(json_get_str(u, "name", ""), "alice") != 0)
			continue;
		seen = true;
		assert_int_equal(cJSON_GetObjectItem(u, "max_sandboxes")->valueint, 5);
		assert_int_equal(cJSON_GetObjectItem(u, "max_cpus")->valueint, 4);
		assert_int_equal(cJSON_GetObjectItem(u, "max_memory_mb")->valueint, 4096);
	}
	assert_true(seen);
	cJSON_Delete(a);
}

/* printf x | bhatti exec dev -- wc -c; stdin streamed, an open stdin */
static void test_exec_stdin(void **state UNUSED)
{
	make_sandbox("dev");
	assert_int_equal(CLI("x", "exec", "dev", "--", "wc", "-c"), 0);
	assert_string_equal(OUT.data, "1\n");
	/* -n: no stdin at all (the POST path) */
	assert_int_equal(CLI("x", "exec", "-n", "dev", "--", "wc", "-c"), 0);
	assert_string_equal(OUT.data, "0\n");
	/* 2 MiB through, with flow control both ways */
	assert_int_equal(sh_run("head -c 2097152 /dev/zero | $B exec --timeout 60 dev -- wc -c", true, 120000), 0);
	assert_string_equal(OUT.data, "2097152\n");
	/* an open stdin that never closes: exec returns when the command
	 * exits (before: stdin was read to EOF first, a hang). The FIFO is
	 * held open for writing by the shell's fd 3, which the CLI inherits */
	char *dir = test_tmpdir("fifo");
	char *fifo = test_strf("%s/f", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	char *line = test_strf("exec 3<>%s; exec $B exec dev -- echo hi <%s", fifo, fifo);
	double t0 = now_s();
	assert_int_equal(sh_run(line, true, 30000), 0);
	assert_true(now_s() - t0 < 20);
	assert_string_equal(OUT.data, "hi\n");
	free(line);
	/* ... and a command that reads it sees the bytes as they come */
	line = test_strf("exec 3<>%s; (echo one; sleep 1; echo two) >&3 & "
			 "exec $B exec dev -- head -n 2 <%s", fifo, fifo);
	assert_int_equal(sh_run(line, true, 30000), 0);
	assert_string_equal(OUT.data, "one\ntwo\n");
	free(line);
	free(fifo);
	test_rmtree(dir);
	free(dir);
	/* the exit code and stderr come through */
	assert_int_equal(CLI("", "exec", "dev", "--", "sh", "-c", "echo err >&2; exit 3"), 3);
	assert_string_equal(ERR.data, "err\n");
	/* an unknown sandbox: one line and the hint */
	assert_int_equal(CLI("", "exec", "nope", "--", "true"), 1);
	assert_non_null(strstr(ERR.data, "no sandbox"));
}

/* the default timeout (exec.timeout, 4 s in this daemon; 300 s by
 * default), --timeout 0 for none, the 24 h maximum */
static void test_exec_timeout(void **state UNUSED)
{
	make_sandbox("dev");
	/* over the WebSocket (stdin a pipe), and the POST (-n; stdin /dev/null) */
	assert_int_equal(CLI("", "exec", "dev", "--", "sleep", "8"), 137);
	assert_non_null(strstr(ERR.data, "timed out"));
	assert_int_equal(CLI(NULL, "exec", "-n", "dev", "--", "sleep", "8"), 137);
	assert_int_equal(CLI(NULL, "exec", "--timeout", "0", "dev", "--", "sleep", "6"), 0);
	assert_int_equal(CLI(NULL, "exec", "--timeout", "1", "dev", "--", "sleep", "3"), 137);
	assert_int_equal(CLI(NULL, "exec", "--timeout", "86401", "dev", "--", "true"), 1);
	assert_non_null(strstr(ERR.data, "at most 86400"));
	assert_int_equal(CLI(NULL, "exec", "--timeout", "86400", "dev", "--", "true"), 0);
}

/* bhatti exec --detach: pid and output file; the output lands there */
static void test_exec_detach(void **state UNUSED)
{
	make_sandbox("dev");
	assert_int_equal(CLI(NULL, "exec", "--detach", "dev", "--", "sh", "-c",
			     "sleep 1; echo done-detached"), 0);
	char *p = strstr(OUT.data, "/tmp/bhatti-exec-");
	assert_non_null(p);
	char *path = xstrndup(p, strcspn(p, " \n)"));
	assert_int_equal(CLI(NULL, "--json", "exec", "-d", "dev", "--", "true"), 0);
	assert_non_null(strstr(OUT.data, "\"detached\":"));
	/* ps shows it (running, no terminal), and shell does not pick it */
	assert_int_equal(CLI(NULL, "ps", "dev", "--json"), 0);
	cJSON *j = cJSON_Parse(OUT.data), *s;
	bool seen = false;
	cJSON_ArrayForEach(s, j) {
		char *argv = cJSON_PrintUnformatted(cJSON_GetObjectItem(s, "argv"));
		seen |= strncmp(json_get_str(s, "id", ""), "bg", 2) == 0 && strstr(argv, "done-detached");
		free(argv);
	}
	cJSON_Delete(j);
	assert_true(seen);
	sleep(3);
	assert_int_equal(CLI(NULL, "file", "read", "dev", path), 0);
	assert_string_equal(OUT.data, "done-detached\n");
	free(path);
}

static cJSON *inspect_json(const char *name)
{
	if (CLI(NULL, "inspect", name, "--json") != 0)
		fail_msg("inspect %s: %s", name, ERR.data);
	cJSON *j = cJSON_Parse(OUT.data);
	assert_non_null(j);
	return j;
}

/* labels on create, list --label / -o wide, edit, the aliases ls, info, rm */
static void test_labels_edit_aliases(void **state UNUSED)
{
	assert_int_equal(CLI(NULL, "create", "--name", "la", "--label", "team=a", "--label",
			     "env=dev"), 0);
	assert_int_equal(CLI(NULL, "create", "--name", "lb", "--label", "team=b"), 0);
	assert_int_equal(CLI(NULL, "ls", "--label", "team=a"), 0);
	assert_non_null(strstr(OUT.data, "la "));
	assert_null(strstr(OUT.data, "lb "));
	assert_int_equal(CLI(NULL, "ls", "--label", "team"), 0);   /* any value */
	assert_non_null(strstr(OUT.data, "la "));
	assert_non_null(strstr(OUT.data, "lb "));
	assert_int_equal(CLI(NULL, "list", "--label", "team=a", "--label", "env=prod"), 0);
	assert_null(strstr(OUT.data, "la "));
	assert_int_equal(CLI(NULL, "list", "-o", "wide"), 0);
	assert_non_null(strstr(OUT.data, "LABELS"));
	assert_non_null(strstr(OUT.data, "env=dev,team=a"));
	assert_int_equal(CLI(NULL, "list", "-o", "tall"), 2);
	assert_int_equal(CLI(NULL, "info", "la"), 0);
	assert_non_null(strstr(OUT.data, "env=dev,team=a"));
	/* edit: rename, set, replace and remove labels in one PATCH */
	assert_int_equal(CLI(NULL, "edit", "la", "--name", "la2", "--label", "x=1", "--label",
			     "team=c", "--unlabel", "env"), 0);
	cJSON *j = inspect_json("la2");
	cJSON *l = cJSON_GetObjectItem(j, "labels");
	assert_int_equal(cJSON_GetArraySize(l), 2);
	assert_string_equal(json_get_str(l, "team", ""), "c");
	assert_string_equal(json_get_str(l, "x", ""), "1");
	cJSON_Delete(j);
	/* the rules: the reserved prefix, 16 at most, bad values; nothing changes */
	assert_int_equal(CLI(NULL, "edit", "la2", "--label", "bhatti.sh/owner=me"), 1);
	assert_non_null(strstr(ERR.data, "reserved"));
	assert_int_equal(CLI(NULL, "edit", "la2", "--label", "k=a b"), 1);
	const char *many[40] = { "edit", "la2", "--name", "la3" };
	int n = 4;
	char kv[17][16];
	for (int i = 0; i < 15; i++) {
		snprintf(kv[i], sizeof(kv[i]), "k%d=v", i);
		many[n++] = "--label";
		many[n++] = kv[i];
	}
	many[n] = NULL;
	buf_reset(&OUT);
	buf_reset(&ERR);
	assert_int_equal(bhatti_argv(&D, KEY, NULL, &OUT, &ERR, many), 1);
	assert_non_null(strstr(ERR.data, "at most 16"));
	j = inspect_json("la2");   /* not renamed either */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "labels")), 2);
	cJSON_Delete(j);
	assert_int_equal(CLI(NULL, "create", "--name", "lc", "--label", "bhatti.sh/x=1"), 1);
	assert_int_equal(CLI(NULL, "edit", "la2"), 2);   /* nothing to change */
	/* the API: repeated ?label= is AND */
	struct buf b = BUF_INIT;
	assert_int_equal(http_call(&D, "GET", "/sandboxes?label=team=c&label=x=1", KEY, NULL, &b),
			 200);
	assert_non_null(strstr(b.data, "\"la2\""));
	assert_null(strstr(b.data, "\"lb\""));
	buf_release(&b);
	/* rm is destroy */
	assert_int_equal(CLI(NULL, "rm", "-y", "la2", "lb", "--json"), 0);
	assert_non_null(strstr(OUT.data, "\"destroyed\""));
	assert_int_equal(CLI(NULL, "ls", "--json"), 0);
	assert_null(strstr(OUT.data, "la2"));
}

/* The sessions of sandbox name as `ps --json` says: how many run, how many
 * of those are attached. */
static void sessions(const char *name, int *ret_running, int *ret_attached)
{
	*ret_running = *ret_attached = 0;
	if (CLI(NULL, "ps", name, "--json") != 0)
		return;
	cJSON *j = cJSON_Parse(OUT.data), *s;
	cJSON_ArrayForEach(s, j) {
		if (!cJSON_IsTrue(cJSON_GetObjectItem(s, "running")))
			continue;
		(*ret_running)++;
		*ret_attached += cJSON_IsTrue(cJSON_GetObjectItem(s, "attached"));
	}
	cJSON_Delete(j);
}

static void wait_sessions(const char *name, int running, int attached)
{
	int r = -1, a = -1;
	for (int i = 0; i < 150 && (r != running || a != attached); i++) {
		if (i)
			usleep(200 * 1000);
		sessions(name, &r, &a);
	}
	if (r != running || a != attached)
		fail_msg("want %d running, %d attached sessions; have %d, %d", running, attached, r, a);
}

/* bhatti shell --new (sh is shell): a new session, not the detached one;
 * a dropped connection says the session runs on and how to come back */
static void test_shell_new_and_connection_lost(void **state UNUSED)
{
	make_sandbox("shl");
	char *dir = test_tmpdir("shell");
	char *fifo = test_strf("%s/in", dir), *errf = test_strf("%s/err", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* a shell whose stdin stays open (no terminal: keys are plain bytes) */
	char *line = test_strf("exec 3<>%s; $B sh shl <%s >/dev/null 2>%s &", fifo, fifo, errf);
	assert_int_equal(sh_run(line, true, 30000), 0);
	free(line);
	wait_sessions("shl", 1, 1);
	/* the connection drops (the daemon dies): the message, then the
	 * daemon comes back and the session is there, detached */
	daemon_kill9(&D);
	char *text = NULL;
	for (int i = 0; i < 100; i++) {
		free(text);
		text = read_text(errf);
		if (text && strstr(text, "reattach with"))
			break;
		usleep(100 * 1000);
	}
	assert_non_null(text);
	if (!strstr(text, "connection lost; the session is still running — reattach with: "
			  "bhatti shell shl"))
		fail_msg("the CLI said: %s", text);
	free(text);
	assert_int_equal(daemon_restart(&D), 0);
	wait_sessions("shl", 1, 0);
	/* --new: another session; the detached one is left alone (without
	 * --new, `exit 7` would have gone to it) */
	assert_int_equal(CLI("exit 7\n", "sh", "--new", "shl"), 7);
	wait_sessions("shl", 1, 0);
	/* and without: reattached to it */
	assert_int_equal(CLI("exit 5\n", "shell", "shl"), 5);
	wait_sessions("shl", 0, 0);
	assert_int_equal(CLI(NULL, "rm", "-y", "shl"), 0);
	free(fifo);
	free(errf);
	test_rmtree(dir);
	free(dir);
}

/* bhatti completion bash: loaded by bash (complete -p bhatti), it offers
 * commands, subcommands, flags, and names from the daemon */
static void test_completion(void **state UNUSED)
{
	make_sandbox("dev");
	assert_int_equal(CLI(NULL, "secret", "set", "TOKEN_X", "v"), 0);
	char *dir = test_tmpdir("compl");
	char *script = test_strf("%s/t.bash", dir);
	FILE *f = fopen(script, "w");
	assert_non_null(f);
	fprintf(f, "export PATH=\"$(dirname \"$B\"):$PATH\" XDG_RUNTIME_DIR=%s\n"
		   "source <(bhatti completion bash) || exit 9\n"
		   "complete -p bhatti || exit 8\n"
		   "c() { COMP_WORDS=(\"$@\"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _bhatti;\n"
		   "      echo \"$*: ${COMPREPLY[*]}\"; }\n"
		   "c bhatti ed\nc bhatti exec ''\nc bhatti rm -y ''\nc bhatti edit dev --unl\n"
		   "c bhatti secret del\nc bhatti secret delete ''\nc bhatti create --name ''\n"
		   "c bhatti exec dev ''\n", dir);
	fclose(f);
	char *line = test_strf("bash %s", script);
	assert_int_equal(sh_run(line, true, 60000), 0);
	assert_non_null(strstr(OUT.data, "complete -F _bhatti bhatti"));
	assert_non_null(strstr(OUT.data, "bhatti ed: edit\n"));
	assert_non_null(strstr(OUT.data, "bhatti exec : dev"));
	assert_non_null(strstr(OUT.data, "bhatti rm -y : dev"));
	assert_non_null(strstr(OUT.data, "bhatti edit dev --unl: --unlabel\n"));
	assert_non_null(strstr(OUT.data, "bhatti secret del: delete\n"));
	assert_non_null(strstr(OUT.data, "bhatti secret delete : TOKEN_X\n"));
	assert_non_null(strstr(OUT.data, "bhatti create --name : \n"));   /* a new name */
	assert_non_null(strstr(OUT.data, "bhatti exec dev : \n"));        /* the command */
	/* the names were cached: a daemon that is gone still completes them */
	free(line);
	line = test_strf("BHATTI_URL=http://127.0.0.1:1 XDG_RUNTIME_DIR=%s $B __complete sandboxes",
			 dir);
	assert_int_equal(sh_run(line, true, 60000), 0);
	assert_non_null(strstr(OUT.data, "dev\n"));
	/* zsh and fish: generated from the same table */
	assert_int_equal(CLI(NULL, "completion", "zsh"), 0);
	assert_non_null(strstr(OUT.data, "bashcompinit"));
	assert_int_equal(CLI(NULL, "completion", "fish"), 0);
	assert_non_null(strstr(OUT.data, "complete -c bhatti -n '__fish_seen_subcommand_from edit' "
					 "-l unlabel -r"));
	assert_int_equal(CLI(NULL, "completion", "tcsh"), 2);
	assert_int_equal(CLI(NULL, "secret", "delete", "TOKEN_X"), 0);
	free(line);
	free(script);
	test_rmtree(dir);
	free(dir);
}

/* The commands of README.md and docs/quickstart.md run as written: each
 * indented line that starts with bhatti (or pipes into it), through sh,
 * with this build's bhatti first on PATH and the test user's key. The
 * only lines not run are the installers (they set up this machine;
 * check-install.sh runs the piped ones) and `make test` (this is it); any other command line fails the test,
 * so a new one is either run here or named. */
static void test_readme_commands(void **state UNUSED)
{
	static const char *const files[] = { "README.md", "docs/quickstart.md" };
	/* the piped installer is run as written, but from a loopback server
	 * serving `make dist` instead of the release URL, by
	 * tests/check-install.sh */
	static const char *const not_run[] = {
		"sudo ./install.sh", "make test",
		"curl -fsSL https://bhatti.sh/release/latest/install.sh | sudo bash -s -- --server --tier minimal",
		"curl -fsSL https://bhatti.sh/release/latest/install.sh | bash -s -- --cli",
	};
	int ran = 0;
	CLI(NULL, "rm", "-y", "dev", "test");   /* the tour makes its own */
	for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
		char *text = read_text(files[f]);
		assert_non_null(text);
		char *save = NULL;
		for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			if (strncmp(l, "    ", 4) != 0 || l[4] == ' ')
				continue;
			const char *cmd = l + 4;
			bool skip = false;
			for (size_t i = 0; i < ARRAY_SIZE(not_run); i++)
				skip |= strcmp(cmd, not_run[i]) == 0;
			if (skip)
				continue;
			if (strncmp(cmd, "bhatti ", 7) != 0 && !strstr(cmd, "| bhatti "))
				fail_msg("%s: '%s' is neither run by this test nor named in not_run",
					 files[f], cmd);
			char *line = test_strf("PATH=\"$(dirname \"$B\"):$PATH\"; %s", cmd);
			int rc = sh_run(line, true, 120000);
			if (rc != 0)
				fail_msg("%s: '%s' exited %d: %s%s", files[f], cmd, rc, OUT.data, ERR.data);
			free(line);
			ran++;
		}
		free(text);
	}
	assert_true(ran >= 15);
}

/* bhatti version → "bhatti v0.1.0", "api: URL" */
static void test_version(void **state UNUSED)
{
	assert_int_equal(CLI(NULL, "version"), 0);
	assert_non_null(strstr(OUT.data, "bhatti v0.1.0\n"));
	char *api = test_strf("api: %s", D.url);
	assert_non_null(strstr(OUT.data, api));
	free(api);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_secret_positional),
		cmocka_unit_test(test_seed_config),
		cmocka_unit_test(test_user_create_defaults),
		cmocka_unit_test(test_exec_stdin),
		cmocka_unit_test(test_exec_timeout),
		cmocka_unit_test(test_exec_detach),
		cmocka_unit_test(test_labels_edit_aliases),
		cmocka_unit_test(test_shell_new_and_connection_lost),
		cmocka_unit_test(test_completion),
		cmocka_unit_test(test_readme_commands),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
