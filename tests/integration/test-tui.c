/* test-tui.c — `bhatti tui` end to end under tmux (send-keys,
 * capture-pane) against a real daemon and a real VM: the dashboard lists a
 * created sandbox; a `bhatti stop` and `start` from another shell show up
 * by themselves; the daemon stopped is shown in the header and the TUI
 * reconnects by itself when it is back; the filter and the help; `s` opens a shell pane where
 * output appears with the dashboard still on screen; the pane's size is
 * the session's (`stty size`), and follows a resize of the terminal; a
 * full-screen program (busybox vi) draws in the pane and the shell's
 * screen comes back after it; `e` runs a command whose stdout and stderr
 * land in the exec log, Ctrl+C cancels one (its processes are gone), Up
 * recalls it; `x` shows the sandbox's earlier execs, then one run by the
 * CLI as it happens; Ctrl+\ detaches and returns to the
 * dashboard; `s` again reattaches and replays the earlier output; `q`
 * asks while a pane is open, `n` keeps the TUI, `y` quits, and the
 * terminal is as it was (the screen before the TUI, `stty -g` the same).
 *
 * The screens it checks are also saved as text, in $TUI_CAPTURES or
 * $BUILD/tui-captures (scripts/tui-captures.sh puts them in
 * docs/tui-captures/, so the pictures in the docs are what the test saw).
 *
 * test_tui_screen needs no VM (an empty daemon: the dashboard at 80x24,
 * the help scrolled, the filter, the daemon gone and back, a bad theme,
 * q): TEST_FILTER=test_tui_screen runs it without the VM lock.
 *
 * Real tmux, real `bhatti serve`, real VM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "helpers.h"

static struct daemon_proc d;
static char *key;
static char sock[512];

static int stop_daemon(void **state UNUSED)
{
	if (sock[0])
		tmux_at(sock, NULL, "kill-server", NULL);
	sock[0] = '\0';
	if (d.dir)
		daemon_stop(&d, true);
	memset(&d, 0, sizeof(d));
	free(key);
	key = NULL;
	return 0;
}

#define T "t"   /* the tmux target */

static void keys(const char *k)
{
	tmux_at(sock, NULL, "send-keys", "-t", T, k, NULL);
}

static void keys_enter(const char *line)
{
	tmux_at(sock, NULL, "send-keys", "-t", T, line, "Enter", NULL);
}

static char *wait_for(const char *needle, int ms)
{
	char *s = tmux_wait(sock, T, needle, ms);
	if (!s)
		fail_msg("the screen never showed '%s' (it is above)", needle);
	return s;
}

static void wait_gone(const char *needle, int ms)
{
	char *s = tmux_wait_gone(sock, T, needle, ms);
	if (!s)
		fail_msg("the screen still shows '%s' (it is above)", needle);
	free(s);
}

/* Save the screen as name.txt in $TUI_CAPTURES, else $BUILD/tui-captures. */
static void capture(const char *name)
{
	const char *env = getenv("TUI_CAPTURES");
	char *dir = env && env[0] ? xstrdup(env) : test_strf("%s/tui-captures", test_build_dir());
	mkdir_p(dir, 0755);
	struct buf b = BUF_INIT;
	tmux_at(sock, &b, "capture-pane", "-p", "-t", T, NULL);
	char *path = test_strf("%s/%s.txt", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fwrite(b.data, 1, b.len, f);
	fclose(f);
	free(path);
	/* and with its colours, for the pictures (scripts/ansi2html.py) */
	buf_reset(&b);
	tmux_at(sock, &b, "capture-pane", "-e", "-p", "-t", T, NULL);
	path = test_strf("%s/%s.ansi", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fwrite(b.data, 1, b.len, f);
	fclose(f);
	free(path);
	free(dir);
	buf_release(&b);
}

/* `bhatti tui` (with extra arguments) in a new tmux server of WxH, as
 * the test's user; before it, the terminal's modes are saved and a marker
 * printed; after it, its exit status and the modes again. */
static void start_tui(int w, int h, const char *args)
{
	snprintf(sock, sizeof(sock), "%s/tmux.sock", d.dir);
	char *cmd = test_strf("stty -g > %s/stty.before; echo BEFORE-TUI; "
			      "env HOME=%s BHATTI_URL=%s BHATTI_TOKEN=%s TERM=screen-256color %s/bhatti tui%s; "
			      "echo TUI-EXIT=$?; stty -g > %s/stty.after; sleep 600",
			      d.dir, d.home, d.url, key, test_build_dir(), args, d.dir);
	char cwd[1024], ws[16], hs[16];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(ws, sizeof(ws), "%d", w);
	snprintf(hs, sizeof(hs), "%d", h);
	/* a tmux server now and then exits as it starts ("server exited
	 * unexpectedly", seen here on a loaded machine): try again */
	int rc = -1;
	for (int i = 0; i < 5 && rc != 0; i++) {
		rc = tmux_at(sock, NULL, "new-session", "-d", "-s", T, "-x", ws, "-y", hs, "-c", cwd,
			     cmd, NULL);
		if (rc != 0)
			usleep(200 * 1000);
	}
	assert_int_equal(rc, 0);
	free(cmd);
}

/* After the TUI quit: the screen from before it is back and the
 * terminal's modes are the same. */
static void assert_terminal_restored(void)
{
	char *s = wait_for("TUI-EXIT=0", 10000);
	assert_non_null(strstr(s, "BEFORE-TUI"));   /* the screen from before is back */
	free(s);
	char *before = test_strf("%s/stty.before", d.dir), *after = test_strf("%s/stty.after", d.dir);
	for (int i = 0; i < 50; i++) {
		char *a = read_text(after);
		if (a && a[0]) {
			free(a);
			break;
		}
		free(a);
		usleep(100 * 1000);
	}
	char *tb = read_text(before), *ta = read_text(after);
	assert_non_null(tb);
	assert_non_null(ta);
	assert_string_equal(tb, ta);   /* the terminal's modes as they were */
	free(tb), free(ta), free(before), free(after);
}

/* No VM (it needs no VM lock): an empty dashboard at 80x24, the help in
 * full by scrolling, the filter, the exec prompt without a sandbox, the
 * daemon gone and back, a theme refused before the screen changes, q
 * without panes, the terminal restored. */
static void test_tui_screen(void **state UNUSED)
{
	assert_int_equal(daemon_start(&d, "pool_size: 0\n"), 0);
	key = daemon_user(&d, "u", NULL);
	assert_non_null(key);
	start_tui(80, 24, "");
	char *s = wait_for("no sandboxes yet", 15000);
	assert_non_null(strstr(s, "0 sandboxes"));
	assert_non_null(strstr(s, " live"));   /* kept by the events stream */
	assert_non_null(strstr(s, "s shell"));
	free(s);
	capture("empty-80x24");
	/* the help at 80x24: the rest by scrolling */
	keys("?");
	s = wait_for("sort by name", 5000);
	assert_null(strstr(s, "focus a pane"));   /* the last section is below */
	free(s);
	keys("PgDn");
	free(wait_for("focus a pane", 5000));
	keys("Escape");
	free(wait_for("no sandboxes yet", 5000));
	/* the keys of a sandbox, without one */
	keys("e");
	free(wait_for("no sandbox selected", 5000));
	keys("/");
	keys("abc");
	free(wait_for("/abc", 5000));
	keys("Escape");
	wait_gone("/abc", 5000);
	/* the daemon gone, and back */
	assert_int_equal(daemon_stop(&d, false), 0);
	free(wait_for("daemon gone: retrying", 10000));
	s = wait_for("cannot reach the daemon", 5000);
	free(s);
	assert_int_equal(daemon_restart(&d), 0);
	free(wait_for(" live", 30000));
	/* q with no panes: no question */
	keys("q");
	assert_terminal_restored();
	tmux_at(sock, NULL, "kill-server", NULL);

	/* a theme that is not there: said before the screen changes */
	start_tui(80, 24, " --theme nonesuch");
	s = wait_for("TUI-EXIT=1", 10000);
	assert_non_null(strstr(s, "no theme 'nonesuch'"));
	free(s);
	tmux_at(sock, NULL, "kill-server", NULL);
	sock[0] = '\0';
	assert_int_equal(daemon_stop(&d, true), 0);
	memset(&d, 0, sizeof(d));
	free(key);
	key = NULL;
}

static void test_tui(void **state UNUSED)
{
	/* a public proxy address: published ports get http://ADDR/ALIAS/ */
	char purl[64];
	free_port_url(purl, sizeof(purl));
	char *cfg = test_strf("pool_size: 0\npublic_proxy_listen: \"127.0.0.1:%s\"\n",
			      strrchr(purl, ':') + 1);
	assert_int_equal(daemon_start(&d, cfg), 0);
	free(cfg);
	key = daemon_user(&d, "u", NULL);
	assert_non_null(key);
	struct buf o = BUF_INIT, e = BUF_INIT;
	/* keep_hot: the thermal manager would make it warm while the test
	 * waits for "hot" (and the detail view shows it) */
	if (bhatti(&d, key, NULL, &o, &e, "create", "--name", "dev", "--keep-hot", "--label",
		   "team=tui", NULL) != 0)
		fail_msg("create: %s", e.data ? e.data : "");
	start_tui(100, 30, "");

	/* the dashboard lists the sandbox */
	char *s = wait_for(" hot ", 15000);
	assert_non_null(strstr(s, "dev"));
	assert_non_null(strstr(s, "1 sandbox"));
	assert_non_null(strstr(s, "s shell"));   /* the footer, from the key table */
	free(s);
	capture("dashboard");

	/* a stop from another shell shows up by itself, then the start */
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "stop", "dev", NULL), 0);
	free(wait_for(" stopped ", 10000));
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "start", "dev", NULL), 0);
	free(wait_for(" hot ", 10000));

	/* the daemon going away is shown; the TUI comes back by itself */
	assert_int_equal(daemon_stop(&d, false), 0);
	free(wait_for("daemon gone: retrying", 10000));
	assert_int_equal(daemon_restart(&d), 0);
	s = wait_for(" live", 30000);
	free(s);
	free(wait_for(" hot ", 30000));   /* keep_hot: woken after the restart */

	/* the filter */
	keys("/");
	keys("zzz");
	free(wait_for("no sandbox matches 'zzz'", 5000));
	keys("Escape");
	wait_gone("no sandbox matches", 5000);
	keys("/");
	keys("de");
	keys("Enter");
	free(wait_for(" hot ", 5000));

	/* the help, from the key tables */
	keys("?");
	s = wait_for("sort by name", 5000);
	assert_non_null(strstr(s, "detach"));
	free(s);
	capture("help");
	keys("Escape");
	wait_gone("sort by name", 5000);

	/* i: the detail view, from GET /sandboxes/:id and the events; its
	 * ports: a server listening in the guest (busybox httpd) */
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "dev", "--", "httpd", "-p", "8080",
				"-h", "/tmp", NULL), 0);
	keys("i");
	s = wait_for("8080   listening", 10000);
	free(s);
	s = wait_for("keep hot yes", 10000);
	assert_non_null(strstr(s, "labels: team=tui"));
	assert_non_null(strstr(s, "thermal hot"));
	assert_non_null(strstr(s, "recent events"));
	assert_non_null(strstr(s, " sandbox.state from="));   /* the stop and start above */
	free(s);
	/* p: publish it, with an alias; the view and the list show it */
	keys("p");
	free(wait_for("publish a port of 'dev' (PORT [ALIAS]):", 5000));
	keys("8080 tui-web");
	keys("Enter");
	free(wait_for("port 8080 published: http", 10000));
	s = wait_for("published  tui-web", 10000);
	assert_non_null(strstr(s, "8080   listening"));
	free(s);
	capture("detail");
	keys("Escape");
	s = wait_for("PUBLISHED", 5000);
	free(s);
	/* the list's published URLs (GET /ports), cut at the edge at 100 columns (after IDLE) */
	free(wait_for("   - http://127.0.0.", 10000));

		/* e: a command in the sandbox, its output in the exec log */
	keys("e");
	free(wait_for("exec in 'dev'>", 5000));
	keys("echo out-$((1+1)); echo err-$((2+2)) >&2; exit 3");
	keys("Enter");
	s = wait_for("[exit 3,", 20000);
	assert_non_null(strstr(s, "dev $ echo out-"));
	assert_non_null(strstr(s, "\nout-2\n"));
	assert_non_null(strstr(s, "\nerr-4\n"));
	free(s);
	capture("exec");
	/* Ctrl+C cancels a running one: its process group is killed */
	keys("e");
	free(wait_for("exec in 'dev'>", 5000));
	keys("sleep 4321");
	keys("Enter");
	free(wait_for("running", 10000));
	usleep(500 * 1000);
	keys("C-c");
	free(wait_for("[cancelled", 5000));
	bool gone = false;
	for (int i = 0; i < 50 && !gone; i++) {
		buf_reset(&o);
		assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "dev", "--", "ps", NULL), 0);
		gone = !strstr(o.data, "sleep 4321");
		if (!gone)
			usleep(100 * 1000);
	}
	assert_true(gone);
	/* Up in the prompt brings the last command back */
	keys("e");
	free(wait_for("exec in 'dev'>", 5000));
	keys("Up");
	free(wait_for("exec in 'dev'> sleep 4321", 5000));
	keys("Escape");
	/* x: every exec in the sandbox, the earlier ones first, then live
	 * ones from another client */
	keys("x");
	free(wait_for("watching: dev", 10000));
	/* the replay is above (the ps output of the checks above fills the
	 * screen): scroll back to it, then down again */
	bool earlier = false;
	for (int i = 0; i < 40 && !earlier; i++) {
		keys("PgUp");
		usleep(100 * 1000);
		struct buf scr = BUF_INIT;
		tmux_at(sock, &scr, "capture-pane", "-p", "-t", T, NULL);
		earlier = strstr(scr.data, "(earlier)") != NULL;
		buf_release(&scr);
	}
	assert_true(earlier);
	for (int i = 0; i < 60; i++)
		keys("PgDn");
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "dev", "--", "sh", "-c",
				"echo from-cli-$((5*5))", NULL), 0);
	s = wait_for("from-cli-25", 10000);
	assert_non_null(strstr(s, "watching: dev"));
	assert_non_null(strstr(s, "$ sh -c echo from-cli-$((5*5))\n"));   /* live: not (earlier) */
	free(s);
	capture("exec-watch");
	keys("x");
	free(wait_for("[stopped watching 'dev'", 5000));
	keys("Escape");   /* the exec log → the list */
	free(wait_for("PUBLISHED", 5000));

	/* l: the events log, from GET /events: the execs above among them */
	keys("l");
	s = wait_for("exec.finished", 5000);
	assert_non_null(strstr(s, "dev exec.started $ sh -c echo from-cli-$((5*5))"));
	free(s);
	capture("events");
	keys("Escape");
	free(wait_for("PUBLISHED", 5000));

	/* u in the detail view: unpublish; the list's URL goes */
	keys("i");
	free(wait_for("published  tui-web", 10000));
	keys("u");
	free(wait_for("unpublish a port of 'dev':", 5000));
	keys("8080");
	keys("Enter");
	free(wait_for("port 8080 unpublished", 10000));
	wait_gone("tui-web", 10000);
	keys("Escape");
	free(wait_for("PUBLISHED", 5000));
	wait_gone("   - http://127.0.0.", 10000);

	/* s: a shell pane, the dashboard still above it */
	keys("s");
	assert_true(test_wait_attached(&d, key, "dev", 30000));
	/* the prompt first: keys typed while the shell starts are echoed by
	 * the terminal before its banner (the picture showed them so) */
	free(wait_for("/workspace $", 15000));
	keys_enter("echo marker-$((6*7))");
	s = wait_for("marker-42", 15000);
	assert_non_null(strstr(s, "NAME"));
	assert_non_null(strstr(s, " dev "));
	free(s);
	/* the pane's size is the session's: 30 rows - header, footer, the
	 * dashboard's 9 rows, the pane's title = 18; 100 columns */
	keys_enter("stty size");
	free(wait_for("18 100", 10000));
	capture("pane");
	/* a resize of the terminal reaches the session */
	assert_int_equal(tmux_at(sock, NULL, "resize-window", "-t", T, "-x", "120", "-y", "40",
				 NULL), 0);
	keys_enter("clear; stty size");
	free(wait_for("25 120", 10000));
	/* a full-screen program draws in the pane, and leaves it as it was */
	keys_enter("echo before-vi; vi /tmp/tui-test-file");
	/* (not the file's name: the typed command line shows it before vi
	 * draws; the third run failed so) */
	s = wait_for("\n~", 10000);
	free(s);
	s = wait_for("- /tmp/tui-test-file", 10000);   /* vi's status line */
	free(s);
	capture("pane-vi");
	/* vi is in command mode already: no Escape (an Escape and ':' that
	 * arrive together read as one escape sequence to busybox vi, as they
	 * would from any terminal) */
	keys(":q!");
	keys("Enter");
	free(wait_for("before-vi", 10000));

	/* Ctrl+\ detaches: back to the dashboard, the session keeps running */
	keys("C-\\");
	s = wait_for("detached from session", 10000);
	assert_null(strstr(s, "before-vi"));
	free(s);
	/* the detail view lists the session, detached (it is hot: read) */
	keys("i");
	free(wait_for("detached   ", 10000));
	keys("Escape");
	free(wait_for("PUBLISHED", 5000));
		/* s again: the same session, its output replayed */
	keys("s");
	s = wait_for("before-vi", 20000);
	free(s);
	assert_true(test_wait_attached(&d, key, "dev", 10000));
	keys_enter("echo again-$((2*3))");
	free(wait_for("again-6", 10000));

	keys("C-]");   /* the focus to the dashboard */
	/* q with a pane open asks; n keeps the TUI */
	keys("q");
	free(wait_for("quit? 1 shell is open", 5000));
	capture("quit-dialog");
	keys("n");
	wait_gone("quit?", 5000);
	keys("q");
	free(wait_for("quit?", 5000));
	keys("y");
	assert_terminal_restored();

	tmux_at(sock, NULL, "kill-server", NULL);
	sock[0] = '\0';
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "destroy", "-y", "dev", NULL), 0);
	buf_release(&o);
	buf_release(&e);
	assert_int_equal(daemon_stop(&d, true), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_tui_screen, stop_daemon),
		cmocka_unit_test_teardown(test_tui, stop_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
