/* op-exec.c — EXEC: run a command with stdin streamed in and stdout/stderr
 * streamed out on separate channels, then report its exit. Sits between a
 * stream (conn.c) and a child process (child.c).
 *
 *   EXEC ──► EXEC_STARTED{pid} ──► DATA(out|err)... ──► EXIT{code} (END)
 *
 * The command leads its own process group. A timeout, a CLOSE from the
 * host or the host going away SIGKILLs the whole group, so nothing it
 * started is left behind. Output is read only while the stream has credit,
 * so a command printing 10 GB blocks on its pipe instead of filling memory.
 * After the leader exits, output is drained until EOF on both pipes or
 * until AGENT_EXIT_DRAIN_MS pass with nothing to read (a background
 * grandchild may keep a pipe open forever).
 *
 * DETACH runs the command with output appended to a file and ends the
 * stream at once; the process is reaped (and timed out) without a host.
 * Detached commands are listed with the PTY sessions (SESSION_LIST: id
 * "bg<pid>", no tty), running, then exited for agent.session_keep_ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

struct exec {
	struct stream *s;          /* NULL once the host is gone */
	struct child child;
	struct watch out, err, in;
	struct buf inbuf;          /* stdin bytes not yet written to the pipe */
	bool in_eof;
	bool exited;
	int status;
	uint32_t exit_flags;
	struct timer timeout, drain;
	bool detached;
	/* detached only: listed with the sessions (exec_bg_records) */
	struct exec *bg_next;
	char bg_id[24];
	char **argv;
	int64_t created;
};

static struct exec *bg_list;   /* detached commands, newest first */

static void exec_pump(struct exec *x);
static void exec_maybe_finish(struct exec *x);
static int exit_code_of(int status, int *ret_signal);

static void exec_free(void *p)
{
	struct exec *x = p;
	buf_release(&x->inbuf);
	strv_free(x->argv);
	free(x);
}

static void bg_unlink(struct exec *x)
{
	for (struct exec **p = &bg_list; *p; p = &(*p)->bg_next)
		if (*p == x) {
			*p = x->bg_next;
			return;
		}
}

size_t exec_bg_records(struct proto_session *r, size_t max)
{
	size_t n = 0;
	for (struct exec *x = bg_list; x && n < max; x = x->bg_next, n++) {
		int sig;
		r[n] = (struct proto_session){
			.id = x->bg_id, .argv = x->argv, .tty = (char *)"",
			.pid = (uint32_t)x->child.pid, .running = !x->exited,
			.exit_code = x->exited ? exit_code_of(x->status, &sig) : 0,
			.created = x->created,
		};
	}
	return n;
}

size_t exec_bg_count(void)
{
	size_t n = 0;
	for (struct exec *x = bg_list; x; x = x->bg_next)
		n++;
	return n;
}

static void exec_close_pipes(struct exec *x)
{
	watch_close(&x->out);
	watch_close(&x->err);
	watch_close(&x->in);
	buf_reset(&x->inbuf);
}

static void exec_destroy(struct exec *x)
{
	exec_close_pipes(x);
	timer_cancel(&x->timeout);
	timer_cancel(&x->drain);
	if (x->s)
		stream_detach_op(x->s);
	x->s = NULL;
	loop_defer_free(exec_free, x);
}

static int exit_code_of(int status, int *ret_signal)
{
	*ret_signal = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status)) {
		*ret_signal = WTERMSIG(status);
		return 128 + WTERMSIG(status);
	}
	return 255;
}

static void exec_maybe_finish(struct exec *x)
{
	if (!x->exited)
		return;
	if (x->s && (x->out.fd >= 0 || x->err.fd >= 0))
		return; /* still draining output */
	if (x->s) {
		struct proto_exit ex = { .flags = x->exit_flags };
		ex.exit_code = exit_code_of(x->status, &ex.signal);
		struct stream *s = x->s;
		x->s = NULL;
		stream_detach_op(s);
		stream_end(s, PROTO_EXIT, &ex);
	}
	exec_destroy(x);
}

static void on_child_exit(struct child *c, int status)
{
	struct exec *x = c->data;
	x->exited = true;
	x->status = status;
	agent.execs_running--;
	agent_touch();
	timer_cancel(&x->timeout);
	if (x->detached) {
		/* its status stays listed for a while, as a session's does */
		timer_arm(&x->drain, agent.session_keep_ms);
		return;
	}
	if (!x->s) {
		exec_destroy(x);
		return;
	}
	/* The leader is gone; nobody reads stdin any more. */
	watch_close(&x->in);
	buf_reset(&x->inbuf);
	if (x->out.fd >= 0 || x->err.fd >= 0)
		timer_arm(&x->drain, AGENT_EXIT_DRAIN_MS);
	exec_maybe_finish(x);
}

static void on_drain_timeout(struct timer *t)
{
	struct exec *x = t->data;
	if (x->detached) {
		bg_unlink(x);   /* an exited detached command's time is up */
		exec_destroy(x);
		return;
	}
	/* Blocked on credit is not idle: only cut pipes that had nothing. */
	if (x->s && stream_room(x->s) == 0) {
		timer_arm(&x->drain, AGENT_EXIT_DRAIN_MS);
		return;
	}
	watch_close(&x->out);
	watch_close(&x->err);
	exec_maybe_finish(x);
}

static void on_timeout(struct timer *t)
{
	struct exec *x = t->data;
	log_info("exec %d: timed out, killing its process group", (int)x->child.pid);
	x->exit_flags |= PROTO_EXIT_TIMEOUT;
	child_kill_group(x->child.pid, SIGKILL);
}

/* Read one chunk from an output pipe, within the stream's credit. */
static void exec_read(struct exec *x, struct watch *w, uint8_t channel)
{
	ssize_t n = stream_read_fd(x->s, channel, w->fd);
	if (n > 0) {
		if (x->exited)
			timer_arm(&x->drain, AGENT_EXIT_DRAIN_MS);
		return;
	}
	if (n == -EAGAIN) {
		if (stream_room(x->s) == 0)
			watch_set(w, 0); /* wait for credit (exec_pump) */
		return;
	}
	watch_close(w); /* EOF or error */
	exec_maybe_finish(x);
}

static void on_out(struct watch *w, uint32_t events UNUSED)
{
	struct exec *x = w->data;
	if (x->s)
		exec_read(x, w, PROTO_CH_OUT);
}

static void on_err(struct watch *w, uint32_t events UNUSED)
{
	struct exec *x = w->data;
	if (x->s)
		exec_read(x, w, PROTO_CH_ERR);
}

/* Resume reading output when there is credit again. */
static void exec_pump(struct exec *x)
{
	if (!x->s || stream_room(x->s) == 0)
		return;
	watch_set(&x->out, EPOLLIN);
	watch_set(&x->err, EPOLLIN);
}

static void exec_write_stdin(struct exec *x)
{
	size_t done = 0;
	while (done < x->inbuf.len && x->in.fd >= 0) {
		ssize_t n = write(x->in.fd, x->inbuf.data + done, x->inbuf.len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			/* EPIPE: the command stopped reading; drop what is left */
			done = x->inbuf.len;
			watch_close(&x->in);
			break;
		}
		done += (size_t)n;
	}
	buf_consume(&x->inbuf, done);
	if (x->s)
		stream_consumed(x->s, done);
	if (x->in.fd < 0)
		return;
	if (x->inbuf.len) {
		watch_set(&x->in, EPOLLOUT);
	} else if (x->in_eof) {
		watch_close(&x->in);
	} else {
		watch_set(&x->in, 0);
	}
}

static void on_in(struct watch *w, uint32_t events UNUSED)
{
	exec_write_stdin(w->data);
}

static void exec_data(struct stream *s, uint8_t channel, const uint8_t *p, size_t n)
{
	struct exec *x = s->op;
	if (channel != PROTO_CH_IN || x->in.fd < 0 || x->in_eof) {
		stream_consumed(s, n); /* nowhere to put it: drop */
		return;
	}
	buf_add(&x->inbuf, p, n);
	exec_write_stdin(x);
}

static void exec_eof(struct stream *s, uint8_t channel)
{
	struct exec *x = s->op;
	if (channel != PROTO_CH_IN)
		return;
	x->in_eof = true;
	if (!x->inbuf.len)
		watch_close(&x->in);
}

static void exec_window(struct stream *s)
{
	exec_pump(s->op);
}

static void exec_close(struct stream *s)
{
	struct exec *x = s->op;
	x->exit_flags |= PROTO_EXIT_CANCELLED;
	child_kill_group(x->child.pid, SIGKILL);
	/* EXIT (137, CANCELLED) follows when the child is reaped; output that
	 * is still buffered is dropped. */
	watch_close(&x->out);
	watch_close(&x->err);
	watch_close(&x->in);
}

static void exec_lost(struct stream *s)
{
	struct exec *x = s->op;
	x->s = NULL;
	child_kill_group(x->child.pid, SIGKILL);
	exec_close_pipes(x);
	if (x->exited)
		exec_destroy(x);
	/* else freed when reaped */
}

static const struct stream_ops exec_ops = {
	.data = exec_data,
	.eof = exec_eof,
	.window = exec_window,
	.close = exec_close,
	.lost = exec_lost,
};

static int open_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	return 0;
}

static char *default_output_path(void)
{
	uint8_t r[4] = { 0 };
	char path[64];
	if (getrandom(r, sizeof(r), GRND_NONBLOCK) < 0) {
		uint64_t t = now_ns();
		memcpy(r, &t, sizeof(r));
	}
	snprintf(path, sizeof(path), "/tmp/bhatti-exec-%02x%02x%02x%02x.log", r[0], r[1], r[2], r[3]);
	return xstrdup(path);
}

void op_exec(struct stream *s, const struct proto_frame *f)
{
	struct proto_exec req;
	struct err e = ERR_INIT;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 };
	char **env = NULL;
	char *cwd = NULL, *output_path = NULL;
	struct exec *x = NULL;
	int devnull = -1, r;

	if (op_decode(s, f, &req) < 0)
		return;
	if (!req.argv || !req.argv[0] || !req.argv[0][0]) {
		stream_end_error(s, EINVAL, "empty command");
		goto out;
	}
	bool detach = req.flags & PROTO_EXEC_DETACH;
	bool as_root = req.flags & PROTO_EXEC_ROOT;
	cwd = agent_resolve_path(req.cwd[0] ? req.cwd : agent.workspace);
	env = agent_build_env(as_root, req.env, NULL);

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		stream_end_error(s, errno, "cannot open /dev/null: %s", strerror(errno));
		goto out;
	}
	if (detach) {
		output_path = req.output_path[0] ? agent_resolve_path(req.output_path)
						 : default_output_path();
		out[1] = open(output_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
		if (out[1] < 0) {
			stream_end_error(s, errno, "cannot open output file '%s': %s", output_path,
					 strerror(errno));
			goto out;
		}
		if (!as_root && agent.switch_user && fchown(out[1], agent.uid, agent.gid) < 0)
			log_warn("chown '%s': %s", output_path, strerror(errno));
	} else if ((r = open_pipe(out)) < 0 || (r = open_pipe(errp)) < 0 ||
		   ((req.flags & PROTO_EXEC_STDIN) && (r = open_pipe(in)) < 0)) {
		stream_end_error(s, -r, "pipe: %s", strerror(-r));
		goto out;
	}

	x = xcalloc(1, sizeof(*x));
	x->s = s;
	x->detached = detach;
	buf_init(&x->inbuf);
	watch_init(&x->out, on_out, x);
	watch_init(&x->err, on_err, x);
	watch_init(&x->in, on_in, x);
	timer_init(&x->timeout, on_timeout, x);
	timer_init(&x->drain, on_drain_timeout, x);
	x->child.on_exit = on_child_exit;
	x->child.data = x;

	struct spawn sp = {
		.argv = req.argv,
		.env = env,
		.cwd = cwd,
		.as_root = as_root,
		.stdin_fd = in[0] >= 0 ? in[0] : devnull,
		.stdout_fd = out[1],
		.stderr_fd = detach ? out[1] : errp[1],
	};
	if (child_spawn(&x->child, &sp, &e) < 0) {
		stream_end_error(s, e.code, "%s", err_str(&e));
		free(x);
		x = NULL;
		goto out;
	}
	agent.execs_running++;
	agent_touch();
	log_debug("exec %d: %s%s", (int)x->child.pid, req.argv[0], detach ? " (detached)" : "");
	if (req.timeout_ms)
		timer_arm(&x->timeout, req.timeout_ms);

	struct proto_exec_started st = { .pid = (uint32_t)x->child.pid,
					 .output_path = output_path };
	if (detach) {
		x->s = NULL;
		snprintf(x->bg_id, sizeof(x->bg_id), "bg%d", (int)x->child.pid);
		x->argv = strv_dup(req.argv);
		x->created = wall_sec();
		x->bg_next = bg_list;
		bg_list = x;
		stream_end(s, PROTO_EXEC_STARTED, &st);
		goto out; /* x lives until reaped */
	}
	stream_msg(s, PROTO_EXEC_STARTED, &st);
	s->ops = &exec_ops;
	s->op = x;
	fd_set_nonblock(out[0], true);
	fd_set_nonblock(errp[0], true);
	watch_add(&x->out, out[0], EPOLLIN);
	watch_add(&x->err, errp[0], EPOLLIN);
	out[0] = errp[0] = -1;
	if (in[1] >= 0) {
		fd_set_nonblock(in[1], true);
		watch_add(&x->in, in[1], 0);
		in[1] = -1;
	}
out:
	for (int *fd = (int[]){ in[0], in[1], out[0], out[1], errp[0], errp[1], devnull, -2 };
	     *fd != -2; fd++)
		if (*fd >= 0)
			close(*fd);
	strv_free(env);
	free(cwd);
	free(output_path);
	proto_msg_release(PROTO_EXEC, &req);
}
