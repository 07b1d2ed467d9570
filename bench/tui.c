/* tui.c — benchmark of `bhatti tui` (docs/benchmarks.md, docs/tui.md):
 *
 *   1. frames: the dashboard with 100 sandboxes and 50 events a second
 *      for BENCH_TUI_SECONDS (10): frame time (mean, max) and bytes
 *      written to the terminal per second. The TUI's real model, view and
 *      curses drawing, in this process, on a pty this bench reads; the
 *      events come from a FAKE event source (a timer here making
 *      sandbox.state events, in GET /events's form, and giving them to the
 *      model as feed.c does): 100 sandboxes changing state 50 times a
 *      second is more than this machine's VMs can do, and this figure is
 *      about drawing, not the network. Nothing else in bench/ or tests/
 *      fakes events.
 *   2. keystroke to echo (a real daemon and VM): a key written to the
 *      terminal of `bhatti shell dev` and of `bhatti tui` with a pane on
 *      the same sandbox, alternately, until the key comes back on that
 *      terminal; BENCH_TUI_KEYS (200) keys each.
 *   3. idle: the same `bhatti tui` (live: on GET /events) left alone for
 *      BENCH_TUI_IDLE (60) s: its CPU time and the bytes it wrote to the
 *      terminal. The sandbox is keep_hot (nothing happens to it).
 *
 *   build/bench/tui            (BENCH_TUI_ECHO=0: only the first part, no VM)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"
#include "helpers.h"
#include "loop.h"
#include "stats.h"
#include "tui.h"

/* ---- 1. frames ------------------------------------------------------------------ */

struct fb {
	struct app *a;
	struct watch master;
	struct timer ev, stop;
	uint64_t bytes, seq, events;
	bool counting;
};

static void on_master(struct watch *w, uint32_t events UNUSED)
{
	struct fb *f = w->data;
	char tmp[65536];
	ssize_t n;
	while ((n = read(w->fd, tmp, sizeof(tmp))) > 0)
		if (f->counting)
			f->bytes += (uint64_t)n;
}

static void on_event(struct timer *t)
{
	struct fb *f = t->data;
	static const char *const states[] = { "hot", "warm", "cold", "hot", "stopped" };
	char ev[256];
	int i = (int)(f->seq * 37 % 100);
	int n = snprintf(ev, sizeof(ev),
			 "{\"seq\":%llu,\"type\":\"sandbox.state\",\"sandbox\":\"sbx-%03d\","
			 "\"sandbox_id\":\"id%03d\",\"time\":0,\"to\":\"%s\"}",
			 (unsigned long long)(f->seq + 1), i, i, states[(f->seq + f->seq / 100) % 5]);
	f->seq++;
	enum model_need need;
	struct err e = ERR_INIT;
	uint64_t gen = f->a->model.gen;
	model_apply_event(&f->a->model, ev, (size_t)n, &need, &e);
	if (f->a->model.gen != gen)
		app_redraw(f->a);
	f->events++;
	timer_arm(t, 20);   /* 50 a second */
}

static void on_stop(struct timer *t UNUSED)
{
	loop_stop();
}

static void bench_frames(int rows, int cols, int seconds)
{
	int master, slave;
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
	if (openpty(&master, &slave, NULL, NULL, &ws) < 0) {
		perror("openpty");
		exit(1);
	}
	fd_set_nonblock(master, true);
	setenv("TERM", "xterm-256color", 1);
	loop_init();
	struct client_settings set = { .url = (char *)"http://bench" };
	struct tui_opts o = { .set = &set };
	struct app a;
	struct err e = ERR_INIT;
	struct fb f = { .a = &a };
	watch_init(&f.master, on_master, &f);
	watch_add(&f.master, master, EPOLLIN);
	if (app_start(&a, &o, slave, slave, &e) < 0) {
		fprintf(stderr, "bench: %s\n", err_str(&e));
		exit(1);
	}
	struct buf list = BUF_INIT;
	buf_addch(&list, '[');
	for (int i = 0; i < 100; i++)
		buf_addf(&list, "%s{\"id\":\"id%03d\",\"name\":\"sbx-%03d\",\"state\":\"hot\",\"cpus\":1,"
			 "\"memory_mb\":512,\"image\":\"tiny\",\"created_at\":\"2026-12-04T10:00:00Z\"}",
			 i ? "," : "", i, i);
	buf_addch(&list, ']');
	model_set_list(&a.model, list.data, list.len, &e);
	buf_release(&list);
	app_redraw(&a);
	for (int i = 0; i < 20; i++)   /* the first frame, drawn and read */
		loop_run_once(20);
	a.frames = a.frame_ns = a.frame_ns_max = 0;
	f.counting = true;
	timer_init(&f.ev, on_event, &f);
	timer_init(&f.stop, on_stop, &f);
	timer_arm(&f.ev, 20);
	timer_arm(&f.stop, (uint64_t)seconds * 1000);
	loop_run();
	timer_cancel(&f.ev);
	for (int i = 0; i < 5; i++)
		loop_run_once(10);
	printf("tui frames %dx%d, 100 sandboxes, %llu events in %d s (fake event source):\n"
	       "  %llu frames, frame time mean %.3f ms, max %.3f ms; %.0f bytes/s to the terminal\n",
	       cols, rows, (unsigned long long)f.events, seconds, (unsigned long long)a.frames,
	       a.frames ? (double)a.frame_ns / (double)a.frames / 1e6 : 0,
	       (double)a.frame_ns_max / 1e6, (double)f.bytes / seconds);
	app_stop(&a);
	watch_del(&f.master);
	close(master);
	close(slave);
}

/* ---- 2, 3. echo and idle, against a real daemon -------------------------------------- */

static struct daemon_proc D;
static char *KEY;

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	daemon_stop(&D, true);
	exit(1);
}

struct term {
	pid_t pid;
	int fd;
	struct buf seen;
};

static void term_spawn(struct term *t, const char *const *args)
{
	struct winsize ws = { .ws_row = 30, .ws_col = 100 };
	t->pid = forkpty(&t->fd, NULL, NULL, &ws);
	if (t->pid < 0)
		die("forkpty");
	if (t->pid == 0) {
		setenv("BHATTI_URL", D.url, 1);
		setenv("BHATTI_TOKEN", KEY, 1);
		setenv("HOME", D.home, 1);
		setenv("TERM", "xterm-256color", 1);
		char *bin = test_strf("%s/bhatti", test_build_dir());
		char *argv[8] = { bin };
		int n = 1;
		for (const char *const *a = args; *a && n < 7; a++)
			argv[n++] = (char *)*a;
		argv[n] = NULL;
		execv(bin, argv);
		_exit(127);
	}
	buf_init(&t->seen);
	fd_set_nonblock(t->fd, true);
}

/* Read what the terminal shows for up to ms; true once needle was seen
 * (the text read is kept in t->seen until term_drain()). */
static bool term_wait(struct term *t, const char *needle, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	for (;;) {
		if (needle && memmem(t->seen.data, t->seen.len, needle, strlen(needle)))
			return true;
		uint64_t now = now_ms();
		if (now >= end)
			return false;
		struct pollfd p = { .fd = t->fd, .events = POLLIN };
		if (poll(&p, 1, (int)(end - now)) <= 0)
			continue;
		char tmp[65536];
		ssize_t n = read(t->fd, tmp, sizeof(tmp));
		if (n > 0)
			buf_add(&t->seen, tmp, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return false;
	}
}

static size_t term_drain(struct term *t, int quiet_ms)
{
	size_t total = 0;
	for (;;) {
		buf_reset(&t->seen);
		term_wait(t, NULL, quiet_ms);
		if (!t->seen.len)
			return total;
		total += t->seen.len;
	}
}

static void term_write(struct term *t, const char *s)
{
	if (write_all(t->fd, s, strlen(s)) < 0)
		die("write to a terminal");
}

static double proc_cpu_ms(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	char *s = read_text(path);
	if (!s)
		return 0;
	char *p = strrchr(s, ')');
	unsigned long ut = 0, st = 0;
	/* after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (p)
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
	free(s);
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static void bench_echo(int nkeys, int idle_s)
{
	if (daemon_start(&D, "pool_size: 0\n") < 0)
		die("daemon_start");
	KEY = daemon_user(&D, "bench", NULL);
	struct buf o = BUF_INIT, e = BUF_INIT;
	if (!KEY || bhatti(&D, KEY, NULL, &o, &e, "create", "--name", "dev", "--keep-hot", NULL) != 0)
		die("create");
	struct term sh, tui;
	const char *sh_args[] = { "shell", "dev", NULL };
	term_spawn(&sh, sh_args);
	if (!term_wait(&sh, "$ ", 30000))
		die("no prompt from bhatti shell");
	const char *tui_args[] = { "tui", NULL };
	term_spawn(&tui, tui_args);
	if (!term_wait(&tui, " live", 15000))
		die("the tui is not live (GET /events)");
	if (!term_wait(&tui, "dev", 15000))
		die("the tui shows no sandbox");
	term_drain(&tui, 300);
	term_write(&sh, "\x1c");   /* bhatti shell detaches: the tui's pane takes the session */
	waitpid(sh.pid, NULL, 0);
	close(sh.fd);
	term_write(&tui, "s");
	if (!term_wait(&tui, "$ ", 30000))
		die("no prompt in the tui's pane");
	term_spawn(&sh, (const char *const[]){ "shell", "dev", NULL });   /* a second session */
	if (!term_wait(&sh, "$ ", 30000))
		die("no prompt from the second bhatti shell");
	double *lat_sh = xcalloc((size_t)nkeys, sizeof(double));
	double *lat_tui = xcalloc((size_t)nkeys, sizeof(double));
	struct term *ts[2] = { &sh, &tui };
	double *lat[2] = { lat_sh, lat_tui };
	for (int i = 0; i < nkeys; i++) {
		for (int k = 0; k < 2; k++) {
			struct term *t = ts[k];
			if (i % 20 == 0) {
				term_write(t, "\x15");   /* Ctrl+U: an empty line again */
				term_drain(t, 50);
			}
			term_drain(t, 0);
			/* letters no escape sequence of curses ends with */
			static const char letters[] = "qwyzvxuoi";
			char key[2] = { letters[i % (int)(sizeof(letters) - 1)], 0 };
			uint64_t t0 = now_ns();
			term_write(t, key);
			if (!term_wait(t, key, 5000))
				die("a key did not come back");
			lat[k][i] = (double)(now_ns() - t0) / 1e6;
		}
	}
	stats_print("keystroke to echo: bhatti shell", lat_sh, (size_t)nkeys, "ms");
	stats_print("keystroke to echo: bhatti tui pane", lat_tui, (size_t)nkeys, "ms");

	/* idle: the pane detached, the dashboard alone */
	term_write(&tui, "\x15\x1c");
	term_drain(&tui, 1000);
	double c0 = proc_cpu_ms(tui.pid);
	size_t bytes = 0;
	uint64_t end = now_ms() + (uint64_t)idle_s * 1000;
	while (now_ms() < end)
		bytes += term_drain(&tui, 1000);
	double c1 = proc_cpu_ms(tui.pid);
	printf("tui idle for %d s: %.0f ms of CPU, %zu bytes to the terminal\n", idle_s, c1 - c0,
	       bytes);

	term_write(&tui, "q");
	waitpid(tui.pid, NULL, 0);
	term_write(&sh, "\x1c");
	waitpid(sh.pid, NULL, 0);
	free(lat_sh);
	free(lat_tui);
	bhatti(&D, KEY, NULL, &o, &e, "destroy", "-y", "dev", NULL);
	buf_release(&o);
	buf_release(&e);
	daemon_stop(&D, true);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	int seconds = (int)env_long("BENCH_TUI_SECONDS", 10);
	bench_frames(40, 120, seconds);
	bench_frames(24, 80, seconds);
	if (env_long("BENCH_TUI_ECHO", 1))
		bench_echo((int)env_long("BENCH_TUI_KEYS", 200), (int)env_long("BENCH_TUI_IDLE", 60));
	return 0;
}
