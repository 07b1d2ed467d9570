/* test-daemon-shell.c — end to end under tmux: `bhatti shell NAME` gives a
 * real terminal in the sandbox (over the daemon's WebSocket), Ctrl+\
 * detaches and says how to come back, `bhatti shell NAME` again reattaches
 * and shows the scrollback, a window resize reaches the guest, `bhatti
 * ps` lists the session, and the CLI exits 0 on a detach and with the
 * shell's status when it exits.
 *
 * Real tmux (a real terminal for the CLI), real daemon, real VM.
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

/* The test's daemon; stopped (and its VMs killed) even when a test fails. */
static struct daemon_proc d;

static int stop_daemon(void **state UNUSED)
{
	if (d.dir)
		daemon_stop(&d, true);
	return 0;
}

static char tmux_sock[256];

static int tmux(struct buf *out, const char *a0, ...)
{
	char *argv[32] = { "tmux", "-S", tmux_sock, (char *)a0 };
	int n = 4;
	va_list ap;
	va_start(ap, a0);
	for (const char *a = va_arg(ap, const char *); a && n < 31; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return test_run(argv, NULL, NULL, 0, out, NULL, 20000);
}

/* Wait until the pane shows needle; returns the screen (caller frees). */
static char *wait_screen(const char *needle, int ms)
{
	struct buf b = BUF_INIT;
	for (int waited = 0; waited <= ms; waited += 100) {
		buf_reset(&b);
		tmux(&b, "capture-pane", "-p", "-t", "t", NULL);
		if (strstr(b.data, needle))
			return buf_detach(&b, NULL);
		usleep(100 * 1000);
	}
	fail_msg("screen never showed '%s'; it shows:\n%s", needle, b.data);
	return NULL;
}

/* The pane's last "CLI-EXIT=N" is exactly want. */
static void assert_cli_exit(const char *screen, int want)
{
	char line[32];
	snprintf(line, sizeof(line), "CLI-EXIT=%d\n", want);
	if (!strstr(screen, line))
		fail_msg("want %s on the screen; it shows:\n%s", line, screen);
}

static void test_shell_detach_reattach(void **state UNUSED)
{
	assert_int_equal(daemon_start(&d, "pool_size: 0\n"), 0);
	char *key = daemon_user(&d, "u", NULL);
	assert_non_null(key);
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "dev", NULL), 0);

	snprintf(tmux_sock, sizeof(tmux_sock), "%s/tmux.sock", d.dir);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "env HOME=%s BHATTI_URL=%s BHATTI_TOKEN=%s %s/bhatti shell dev; echo CLI-EXIT=$?; "
		 "sleep 600",
		 d.home, d.url, key, test_build_dir());
	char cwd[1024];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(tmux(NULL, "new-session", "-d", "-s", "t", "-x", "100", "-y", "30", "-c",
			      cwd, cmd, NULL), 0);
	assert_true(test_wait_attached(&d, key, "dev", 30000));
	tmux(NULL, "send-keys", "-t", "t", "echo marker-$((6*7)); tty", "Enter", NULL);
	free(wait_screen("marker-42", 15000));
	free(wait_screen("/dev/pts/", 5000));
	/* the window size reached the guest */
	tmux(NULL, "send-keys", "-t", "t", "stty size", "Enter", NULL);
	free(wait_screen("30 100", 10000));
	/* Ctrl+\ detaches */
	tmux(NULL, "send-keys", "-t", "t", "C-\\", NULL);
	char *s = wait_screen("CLI-EXIT=", 10000);
	assert_cli_exit(s, 0);   /* a detach is not a failure */
	assert_non_null(strstr(s, "detached"));
	assert_non_null(strstr(s, "bhatti shell dev"));
	free(s);
	/* the session lives on */
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "ps", "dev", "--json", NULL), 0);
	cJSON *j = cJSON_Parse(o.data), *first = cJSON_GetArrayItem(j, 0);
	assert_non_null(first);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(first, "running")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(first, "attached")));
	cJSON_Delete(j);
	/* reattach in a fresh window: the scrollback comes back */
	tmux(NULL, "kill-server", NULL);
	/* the old server may still be on its way out: retry briefly */
	int rc = -1;
	for (int i = 0; i < 50 && rc != 0; i++) {
		rc = tmux(NULL, "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", "-c", cwd,
			  cmd, NULL);
		if (rc != 0)
			usleep(100 * 1000);
	}
	assert_int_equal(rc, 0);
	free(wait_screen("marker-42", 20000));
	/* and it is live, at the new size */
	tmux(NULL, "send-keys", "-t", "t", "clear; stty size", "Enter", NULL);
	free(wait_screen("40 120", 10000));
	/* the shell's exit status is the CLI's */
	tmux(NULL, "send-keys", "-t", "t", "exit 7", "Enter", NULL);
	s = wait_screen("CLI-EXIT=", 10000);
	assert_cli_exit(s, 7);
	free(s);
	tmux(NULL, "kill-server", NULL);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "destroy", "-y", "dev", NULL), 0);
	buf_release(&o);
	buf_release(&e);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_shell_detach_reattach, stop_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
