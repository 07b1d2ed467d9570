/* cmd-shell.c — `bhatti shell NAME`: an interactive terminal in a sandbox
 * over the daemon's WebSocket (GET /sandboxes/:id/ws). The local terminal
 * goes raw; keys go to the guest's PTY, its output comes back; window
 * resizes are forwarded. Ctrl+\ detaches (the shell keeps running);
 * `bhatti shell NAME` again reattaches to the one detached session (or
 * --session ID picks one) and the daemon replays its scrollback first.
 *
 * Sits between the local terminal and the session module (client/shell.c),
 * on the process's one event loop (shared/loop): watches on stdin, the
 * socket (inside the module) and a signalfd for SIGWINCH. Writes to the
 * socket never block the loop (the module queues them); reading stdin
 * pauses while more than INPUT_HIGH bytes wait to be sent. Output goes to
 * stdout as it comes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "loop.h"
#include "shell.h"

#define DETACH_KEY 0x1c          /* Ctrl+\ */
#define INPUT_HIGH (256u << 10)  /* stop reading stdin while this much waits */

static struct termios saved;
static bool raw_on;

static void term_restore(void)
{
	if (raw_on)
		tcsetattr(0, TCSAFLUSH, &saved);
	raw_on = false;
}

static void term_raw(void)
{
	if (!isatty(0) || tcgetattr(0, &saved) < 0)
		return;
	struct termios t = saved;
	cfmakeraw(&t);
	tcsetattr(0, TCSAFLUSH, &t);
	raw_on = true;
	atexit(term_restore);
}

static void win_size(unsigned *cols, unsigned *rows)
{
	struct winsize ws;
	*cols = 80, *rows = 24;
	if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row)
		*cols = ws.ws_col, *rows = ws.ws_row;
}

struct term {
	struct shell *s;
	struct watch in, winch;
	struct task in_task;     /* stdin that epoll cannot watch (a file, /dev/null) */
	bool in_reading;
	char session[128];
	int rc;
	bool detached, attached;
	struct err err;
};

/* ---- stdin ------------------------------------------------------------------ */

static void stdin_pause(struct term *t, bool pause)
{
	if (!t->in_reading)
		return;
	if (t->in.fd >= 0)
		watch_set(&t->in, pause ? 0 : EPOLLIN);
	else if (pause)
		task_cancel(&t->in_task);
	else
		task_post(&t->in_task);
}

static void stdin_stop(struct term *t)
{
	watch_del(&t->in);   /* the fd stays open: it is our stdin */
	task_cancel(&t->in_task);
	t->in_reading = false;
}

static void read_stdin(struct term *t)
{
	char tmp[4096];
	ssize_t n = read(0, tmp, sizeof(tmp));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		stdin_stop(t);   /* keep showing output until the end */
		return;
	}
	char *k = raw_on ? memchr(tmp, DETACH_KEY, (size_t)n) : NULL;
	shell_input(t->s, tmp, k ? (size_t)(k - tmp) : (size_t)n);
	if (k) {
		stdin_stop(t);
		shell_detach(t->s);
		return;
	}
	if (t->in.fd < 0)
		task_post(&t->in_task);
	if (shell_queued(t->s) > INPUT_HIGH)
		stdin_pause(t, true);
}

static void on_stdin(struct watch *w, uint32_t events UNUSED)
{
	read_stdin(w->data);
}

static void on_stdin_task(struct task *tk)
{
	read_stdin(tk->data);
}

static void stdin_start(struct term *t)
{
	t->in_reading = true;
	if (watch_add(&t->in, 0, EPOLLIN) < 0)
		task_post(&t->in_task);   /* EPERM: a regular file never blocks */
}

/* ---- the session's callbacks ------------------------------------------------ */

static void on_attached(struct shell *s UNUSED, const char *picked, void *arg)
{
	struct term *t = arg;
	t->attached = true;
	if (picked)
		fprintf(stderr, "[reattaching to session %s]\r\n", picked);
	term_raw();
	stdin_start(arg);
}

static void on_output(struct shell *s UNUSED, const char *p, size_t n, void *arg UNUSED)
{
	write_all(1, p, n);
}

static void on_drained(struct shell *s UNUSED, void *arg)
{
	stdin_pause(arg, false);
}

static void finish(struct term *t)
{
	snprintf(t->session, sizeof(t->session), "%s", shell_session_id(t->s));
	stdin_stop(t);
	shell_free(t->s);
	t->s = NULL;
	loop_stop();
}

static void on_exit_code(struct shell *s UNUSED, int code, void *arg)
{
	struct term *t = arg;
	t->rc = code;
	finish(t);
}

static void on_error(struct shell *s UNUSED, const struct err *e, void *arg)
{
	struct term *t = arg;
	t->err = *e;
	finish(t);
}

static void on_detached(struct shell *s UNUSED, bool asked, void *arg)
{
	struct term *t = arg;
	t->detached = asked;   /* by the daemon: the end, without a word (as before) */
	finish(t);
}

static const struct shell_cb shell_cb = {
	.attached = on_attached,
	.output = on_output,
	.drained = on_drained,
	.exit = on_exit_code,
	.error = on_error,
	.detached = on_detached,
};

/* ---- window size ------------------------------------------------------------- */

static void on_winch(struct watch *w, uint32_t events UNUSED)
{
	struct term *t = w->data;
	struct signalfd_siginfo si;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si))
		;
	unsigned cols, rows;
	win_size(&cols, &rows);
	if (t->s)
		shell_resize(t->s, cols, rows);
}

/* ---- the command ---------------------------------------------------------------- */

static int run(struct cli *c)
{
	if (loop_init() < 0)
		return cli_error(1, "cannot start the event loop: %s", strerror(errno));
	struct term t = { .err = ERR_INIT };
	watch_init(&t.in, on_stdin, &t);
	watch_init(&t.winch, on_winch, &t);
	task_init(&t.in_task, on_stdin_task, &t);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd >= 0 && watch_add(&t.winch, sfd, EPOLLIN) < 0)
		close(sfd);
	struct shell_opts o = {
		.name = c->args.pos[0],
		.session = args_get(&c->args, "--session"),
		.pick = !args_has(&c->args, "--new"),
	};
	win_size(&o.cols, &o.rows);
	t.s = shell_open(cli_client(c), &o, &shell_cb, &t);
	loop_run();
	term_restore();
	watch_close(&t.winch);
	loop_run_once(0);   /* the deferred frees of the last turn */
	if (t.detached) {
		fprintf(stderr, "\n[detached from session %s; reattach with: bhatti shell %s "
				"(or --session %s)]\n",
			t.session, c->args.pos[0], t.session);
		return 0;
	}
	if (t.err.code && t.attached && t.err.code != EIO && t.session[0]) {
		/* the network or the daemon went away, not the session (EIO: the
		 * daemon's own error message) */
		fprintf(stderr, "\nbhatti: connection lost; the session is still running — "
				"reattach with: bhatti shell %s\n(%s)\n", c->args.pos[0],
			err_str(&t.err));
		return 1;
	}
	if (t.err.code)
		return cli_report(&t.err);
	return t.rc;
}

static const struct opt opts[] = {
	{ "--session", NULL, OPT_VALUE }, { "--new", NULL, OPT_FLAG }, OPT_END,
};

const struct cli_cmd cmd_shell_entry = {
	.name = "shell",
	.alias = "sh",
	.summary = "interactive shell in a sandbox (Ctrl+\\ detaches)",
	.usage = "NAME [--session ID | --new]",
	.complete = "sandboxes",
	.help = "Ctrl+\\ detaches; 'bhatti shell NAME' reattaches to the one detached session\n"
		"(scrollback first); --new opens a new session instead.",
	.opts = opts,
	.min_args = 1,
	.max_args = 1,
	.run = run,
};
