/* op-session.c — PTY sessions: a login shell (or any command) on a pseudo
 * terminal that outlives host connections, with 64 KiB of scrollback.
 * Sits between streams (conn.c) and PTY masters + children (child.c).
 *
 * Lifecycle of a session:
 *
 *   SESSION_OPEN ──► running, attached ◄──── SESSION_ATTACH ───┐
 *                      │  CLOSE / host gone                     │
 *                      ▼                                        │
 *                    running, detached ───(idle timeout)──► SIGHUP, SIGKILL
 *                      │ leader exits                           │
 *                      ▼                                        │
 *                    exited: EXIT sent to the attached stream  ─┘ (replays, then EXIT)
 *                      │ after AGENT_SESSION_KEEP_MS
 *                      ▼
 *                    removed
 *
 * All PTY output goes into the scrollback ring first; the attached stream
 * is a reader at an absolute ring offset (`sent`). Attaching sets `sent`
 * to the oldest byte kept, so the replay and the live output that follows
 * have no gap and no duplicate. While attached, the PTY is read only when
 * the ring has room for unsent bytes (a slow host blocks the program, as a
 * slow terminal would); while detached, old output is overwritten.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "ring.h"
#include "valid.h"

#define SESSION_KILL_GRACE_MS 5000

struct session {
	char *id;
	char **argv;
	struct child child;
	struct watch pty;          /* the master; fd < 0 once drained */
	char tty[64];
	struct ring scroll;
	bool running;              /* leader not yet reaped */
	int exit_code;
	int64_t created;
	uint16_t rows, cols;
	uint32_t idle_timeout_sec;
	struct stream *att;        /* attached stream, or NULL */
	uint64_t sent;             /* ring offset sent to att */
	struct buf inbuf;          /* input not yet written to the master */
	struct timer idle;         /* detached too long: hang up, then kill */
	bool hung_up;
	struct timer expire;       /* drop the exit status */
	struct session *next;
};

static struct session *sessions;

static void session_update(struct session *ss);

/* ---- registry ------------------------------------------------------------ */

static struct session *session_find(const char *id)
{
	for (struct session *ss = sessions; ss; ss = ss->next)
		if (strcmp(ss->id, id) == 0)
			return ss;
	return NULL;
}

unsigned session_count_running(void)
{
	unsigned n = 0;
	for (struct session *ss = sessions; ss; ss = ss->next)
		n += ss->running;
	return n;
}

unsigned session_count_attached(void)
{
	unsigned n = 0;
	for (struct session *ss = sessions; ss; ss = ss->next)
		n += ss->att != NULL;
	return n;
}

static void session_free(void *p)
{
	struct session *ss = p;
	free(ss->id);
	strv_free(ss->argv);
	ring_release(&ss->scroll);
	buf_release(&ss->inbuf);
	free(ss);
}

static void session_remove(struct session *ss)
{
	for (struct session **pp = &sessions; *pp; pp = &(*pp)->next) {
		if (*pp == ss) {
			*pp = ss->next;
			break;
		}
	}
	watch_close(&ss->pty);
	timer_cancel(&ss->idle);
	timer_cancel(&ss->expire);
	if (ss->running)
		child_forget(&ss->child);
	loop_defer_free(session_free, ss);
}

static void fill_record(const struct session *ss, struct proto_session *r)
{
	r->id = ss->id;
	r->argv = ss->argv;
	r->tty = (char *)ss->tty;
	r->pid = (uint32_t)ss->child.pid;
	r->running = ss->running;
	r->attached = ss->att != NULL;
	r->exit_code = ss->running ? 0 : ss->exit_code;
	r->created = ss->created;
	r->output_bytes = ss->scroll.head;
	r->rows = ss->rows;
	r->cols = ss->cols;
}

/* ---- output: PTY → ring → attached stream -------------------------------- */

static bool session_done(const struct session *ss)
{
	return !ss->running && ss->pty.fd < 0;
}

/* Bytes of ring space that may be filled without losing unsent output. */
static size_t ring_room(const struct session *ss)
{
	if (!ss->att)
		return 16 << 10;
	uint64_t unsent = ss->scroll.head - MAX(ss->sent, ring_start(&ss->scroll));
	size_t room = ss->scroll.cap - (size_t)unsent;
	return MIN(room, (size_t)(16 << 10));
}

static void session_read_pty(struct session *ss)
{
	char chunk[16 << 10];
	for (int rounds = 0; rounds < 4 && ss->pty.fd >= 0; rounds++) {
		size_t room = ring_room(ss);
		if (!room)
			return;
		ssize_t n = read(ss->pty.fd, chunk, MIN(room, sizeof(chunk)));
		if (n > 0) {
			ring_write(&ss->scroll, chunk, (size_t)n);
			agent_touch();
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!ss->running) /* leader gone and nothing left: done */
				watch_close(&ss->pty);
			return;
		}
		watch_close(&ss->pty); /* EIO: every slave fd is closed */
		return;
	}
}

static void session_send_exit(struct session *ss)
{
	struct stream *s = ss->att;
	struct proto_exit ex = { .exit_code = ss->exit_code };
	if (ss->exit_code > 128)
		ex.signal = ss->exit_code - 128;
	ss->att = NULL;
	stream_detach_op(s);
	stream_end(s, PROTO_EXIT, &ex);
}

/* Send what the attached stream has not seen yet, within its credit. */
static void session_pump(struct session *ss)
{
	while (ss->att && ss->sent < ss->scroll.head) {
		size_t room = stream_room(ss->att);
		const uint8_t *p;
		uint64_t at;
		if (!room)
			break;
		size_t n = ring_peek(&ss->scroll, ss->sent, &p, &at);
		n = MIN(n, room);
		stream_data(ss->att, PROTO_CH_OUT, p, n);
		ss->sent = at + n;
	}
	if (ss->att && session_done(ss) && ss->sent >= ss->scroll.head)
		session_send_exit(ss);
}

/* Recompute what to wait for on the master. */
static void session_update(struct session *ss)
{
	session_pump(ss);
	if (ss->pty.fd < 0)
		return;
	uint32_t ev = 0;
	if (ring_room(ss))
		ev |= EPOLLIN;
	if (ss->inbuf.len)
		ev |= EPOLLOUT;
	watch_set(&ss->pty, ev);
}

static void session_write_input(struct session *ss)
{
	size_t done = 0;
	while (done < ss->inbuf.len && ss->pty.fd >= 0) {
		ssize_t n = write(ss->pty.fd, ss->inbuf.data + done, ss->inbuf.len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				done = ss->inbuf.len; /* the terminal is gone: drop */
			break;
		}
		done += (size_t)n;
	}
	buf_consume(&ss->inbuf, done);
	if (ss->att)
		stream_consumed(ss->att, done);
}

static void on_pty(struct watch *w, uint32_t events)
{
	struct session *ss = w->data;
	if (events & EPOLLOUT)
		session_write_input(ss);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		session_read_pty(ss);
	session_update(ss);
	if (session_done(ss) && !ss->att && !ss->expire.armed)
		timer_arm(&ss->expire, agent.session_keep_ms);
}

static void on_expire(struct timer *t)
{
	struct session *ss = t->data;
	if (ss->att) /* someone is reading the final output; wait */
		timer_arm(&ss->expire, agent.session_keep_ms);
	else
		session_remove(ss);
}

static void on_session_exit(struct child *c, int status)
{
	struct session *ss = c->data;
	ss->running = false;
	if (WIFEXITED(status))
		ss->exit_code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		ss->exit_code = 128 + WTERMSIG(status);
	else
		ss->exit_code = 255;
	log_info("session '%s' exited with %d", ss->id, ss->exit_code);
	agent_touch();
	timer_cancel(&ss->idle);
	/* Take what the program printed last, then finish. */
	session_read_pty(ss);
	session_update(ss);
	timer_arm(&ss->expire, agent.session_keep_ms);
}

static void on_idle(struct timer *t)
{
	struct session *ss = t->data;
	if (!ss->running || ss->att)
		return;
	if (!ss->hung_up) {
		log_info("session '%s': detached for %us, hanging up", ss->id, ss->idle_timeout_sec);
		ss->hung_up = true;
		child_kill_group(ss->child.pid, SIGHUP);
		child_kill_group(ss->child.pid, SIGCONT);
		timer_arm(&ss->idle, SESSION_KILL_GRACE_MS);
	} else {
		child_kill_group(ss->child.pid, SIGKILL);
	}
}

/* ---- stream side ------------------------------------------------------------ */

static void session_detach(struct session *ss)
{
	ss->att = NULL;
	if (ss->running) {
		ss->hung_up = false;
		timer_arm(&ss->idle, (uint64_t)ss->idle_timeout_sec * 1000);
	}
	buf_reset(&ss->inbuf);
	session_update(ss);
}

static void sess_data(struct stream *s, uint8_t channel, const uint8_t *p, size_t n)
{
	struct session *ss = s->op;
	if (channel != PROTO_CH_IN || ss->pty.fd < 0 || !ss->running) {
		stream_consumed(s, n);
		return;
	}
	buf_add(&ss->inbuf, p, n);
	session_write_input(ss);
	session_update(ss);
}

static void sess_window(struct stream *s)
{
	session_update(s->op);
}

static void set_winsize(struct session *ss, uint16_t rows, uint16_t cols)
{
	if (!rows || !cols)
		return;
	ss->rows = rows;
	ss->cols = cols;
	struct winsize ws = { .ws_row = rows, .ws_col = cols };
	if (ss->pty.fd >= 0 && ioctl(ss->pty.fd, TIOCSWINSZ, &ws) < 0)
		log_debug("session '%s': resize: %s", ss->id, strerror(errno));
}

static void sess_frame(struct stream *s, const struct proto_frame *f)
{
	struct session *ss = s->op;
	struct proto_resize rz;
	if (f->type != PROTO_RESIZE)
		return;
	if (proto_decode(f, &rz, NULL) < 0) {
		log_warn("session '%s': malformed RESIZE", ss->id);
		return;
	}
	set_winsize(ss, rz.rows, rz.cols);
}

static void sess_close(struct stream *s)
{
	struct session *ss = s->op;
	struct proto_ok ok = { 0 };
	session_detach(ss);
	stream_detach_op(s);
	stream_end(s, PROTO_OK, &ok);
}

static void sess_lost(struct stream *s)
{
	session_detach(s->op);
}

static const struct stream_ops session_ops = {
	.data = sess_data,
	.window = sess_window,
	.frame = sess_frame,
	.close = sess_close,
	.lost = sess_lost,
};

static void session_attach(struct session *ss, struct stream *s, uint16_t rows, uint16_t cols)
{
	struct proto_session rec;
	if (ss->att) {
		struct stream *old = ss->att;
		ss->att = NULL;
		stream_detach_op(old);
		stream_end_error(old, EBUSY, "session '%s' was attached by another client", ss->id);
	}
	timer_cancel(&ss->idle);
	set_winsize(ss, rows, cols);
	ss->att = s;
	ss->sent = ring_start(&ss->scroll);
	s->ops = &session_ops;
	s->op = ss;
	fill_record(ss, &rec);
	stream_msg(s, PROTO_SESSION, &rec);
	session_update(ss);
}

/* ---- creating sessions ----------------------------------------------------- */

static char *new_id(void)
{
	char id[16];
	do {
		uint8_t r[4] = { 0 };
		if (getrandom(r, sizeof(r), GRND_NONBLOCK) < 0) {
			uint64_t t = now_ns();
			memcpy(r, &t, sizeof(r));
		}
		snprintf(id, sizeof(id), "s%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
	} while (session_find(id));
	return xstrdup(id);
}

static char **login_shell(void)
{
	const char *sh = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
	char *v[] = { (char *)sh, (char *)"-l", NULL };
	return strv_dup(v);
}

struct session_spec {
	const char *id;            /* NULL/"" = generate */
	char *const *argv;         /* NULL/empty = login shell */
	char *const *env;
	const char *cwd;
	uint16_t rows, cols;
	bool as_root;
	uint32_t idle_timeout_sec;
};

static int session_create(const struct session_spec *spec, struct session **ret,
			  struct err *e)
{
	int master = -1, slave = -1;
	char **env = NULL;
	char *cwd = NULL;
	struct session *ss;

	if (spec->id && spec->id[0] && valid_session_id(spec->id, e) < 0)
		return -EINVAL;
	if (spec->id && spec->id[0] && session_find(spec->id))
		return err_set(e, EEXIST, "session '%s' already exists", spec->id);
	if (session_count_running() >= AGENT_MAX_SESSIONS)
		return err_set(e, EMFILE, "too many sessions (limit %d)", AGENT_MAX_SESSIONS);

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
		int r = errno;
		if (master >= 0)
			close(master);
		return err_set(e, r, "cannot allocate a pty: %s", strerror(r));
	}
	ss = xcalloc(1, sizeof(*ss));
	if (ptsname_r(master, ss->tty, sizeof(ss->tty)) != 0 ||
	    (slave = open(ss->tty, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		int r = errno;
		close(master);
		free(ss);
		return err_set(e, r, "cannot open the pty: %s", strerror(r));
	}
	if (!spec->as_root && agent.switch_user) {
		if (fchown(slave, agent.uid, agent.gid) < 0 || fchmod(slave, 0620) < 0)
			log_debug("pty chown: %s", strerror(errno));
	}
	ss->id = spec->id && spec->id[0] ? xstrdup(spec->id) : new_id();
	ss->argv = spec->argv && spec->argv[0] ? strv_dup(spec->argv) : login_shell();
	ss->created = wall_sec();
	ss->running = true;
	ss->idle_timeout_sec = spec->idle_timeout_sec ? spec->idle_timeout_sec : AGENT_SESSION_IDLE_SEC;
	ring_init(&ss->scroll, AGENT_SCROLLBACK);
	buf_init(&ss->inbuf);
	watch_init(&ss->pty, on_pty, ss);
	timer_init(&ss->idle, on_idle, ss);
	timer_init(&ss->expire, on_expire, ss);
	ss->child.on_exit = on_session_exit;
	ss->child.data = ss;
	ss->rows = spec->rows ? spec->rows : 24;
	ss->cols = spec->cols ? spec->cols : 80;
	struct winsize ws = { .ws_row = ss->rows, .ws_col = ss->cols };
	ioctl(slave, TIOCSWINSZ, &ws);

	cwd = agent_resolve_path(spec->cwd && spec->cwd[0] ? spec->cwd : agent.workspace);
	env = agent_build_env(spec->as_root, spec->env, "xterm-256color");
	struct spawn sp = {
		.argv = ss->argv,
		.env = env,
		.cwd = cwd,
		.as_root = spec->as_root,
		.stdin_fd = slave,
		.stdout_fd = slave,
		.stderr_fd = slave,
		.pty = true,
	};
	int r = child_spawn(&ss->child, &sp, e);
	close(slave);
	strv_free(env);
	free(cwd);
	if (r < 0) {
		close(master);
		session_free(ss);
		return r;
	}
	fd_set_nonblock(master, true);
	watch_add(&ss->pty, master, EPOLLIN);
	ss->next = sessions;
	sessions = ss;
	agent_touch();
	log_info("session '%s' started: pid %d on %s", ss->id, (int)ss->child.pid, ss->tty);
	*ret = ss;
	return 0;
}

int session_start_init(const char *script, struct err *e)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)script, NULL };
	struct session_spec spec = { .id = "init", .argv = argv };
	struct session *ss;
	return session_create(&spec, &ss, e);
}

/* ---- ops ------------------------------------------------------------------- */

void op_session_open(struct stream *s, const struct proto_frame *f)
{
	struct proto_session_open req;
	struct session *ss;
	struct err e = ERR_INIT;

	if (op_decode(s, f, &req) < 0)
		return;
	struct session_spec spec = {
		.id = req.id, .argv = req.argv, .env = req.env, .cwd = req.cwd,
		.rows = req.rows, .cols = req.cols,
		.as_root = req.flags & PROTO_SESSION_ROOT,
		.idle_timeout_sec = req.idle_timeout_sec,
	};
	if (session_create(&spec, &ss, &e) < 0)
		stream_end_error(s, e.code, "%s", err_str(&e));
	else
		session_attach(ss, s, 0, 0);
	proto_msg_release(PROTO_SESSION_OPEN, &req);
}

void op_session_attach(struct stream *s, const struct proto_frame *f)
{
	struct proto_session_attach req;
	if (op_decode(s, f, &req) < 0)
		return;
	struct session *ss = session_find(req.id);
	if (!ss)
		stream_end_error(s, ENOENT, "no session '%s'", req.id);
	else
		session_attach(ss, s, req.rows, req.cols);
	proto_msg_release(PROTO_SESSION_ATTACH, &req);
}

void op_session_list(struct stream *s, const struct proto_frame *f UNUSED)
{
	struct proto_session_list list = { 0 };
	size_t n = 0, bg = exec_bg_count();
	for (struct session *ss = sessions; ss; ss = ss->next)
		n++;
	list.sessions = xcalloc(n + bg ? n + bg : 1, sizeof(*list.sessions));
	for (struct session *ss = sessions; ss; ss = ss->next)
		fill_record(ss, &list.sessions[list.count++]);
	/* and the detached commands (op-exec.c) */
	list.count += exec_bg_records(list.sessions + list.count, bg);
	stream_end(s, PROTO_SESSION_LIST_RESULT, &list);
	free(list.sessions); /* the records borrow the sessions' strings */
}

void op_session_info(struct stream *s, const struct proto_frame *f)
{
	struct proto_session_ref req;
	if (op_decode(s, f, &req) < 0)
		return;
	struct session *ss = session_find(req.id);
	if (!ss) {
		stream_end_error(s, ENOENT, "no session '%s'", req.id);
	} else {
		struct proto_session rec;
		struct proto_session_list list = { .sessions = &rec, .count = 1 };
		fill_record(ss, &rec);
		stream_end(s, PROTO_SESSION_LIST_RESULT, &list);
	}
	proto_msg_release(PROTO_SESSION_INFO, &req);
}

void op_session_kill(struct stream *s, const struct proto_frame *f)
{
	struct proto_session_ref req;
	if (op_decode(s, f, &req) < 0)
		return;
	struct session *ss = session_find(req.id);
	int sig = req.signal ? (int)req.signal : SIGTERM;
	if (!ss) {
		stream_end_error(s, ENOENT, "no session '%s'", req.id);
	} else if (sig <= 0 || sig >= NSIG) {
		stream_end_error(s, EINVAL, "invalid signal %u", req.signal);
	} else {
		struct proto_ok ok = { 0 };
		if (ss->running) {
			child_kill_group(ss->child.pid, sig);
			if (sig != SIGCONT)
				child_kill_group(ss->child.pid, SIGCONT);
		}
		stream_end(s, PROTO_OK, &ok);
	}
	proto_msg_release(PROTO_SESSION_KILL, &req);
}
