/* cmd-exec.c — `bhatti exec NAME -- cmd args...`: run a command in a
 * sandbox, streaming its stdout and stderr to ours as it runs, and exit
 * with its exit code.
 *
 * Two ways, by stdin:
 * - stdin a terminal or /dev/null, or -n: no stdin; POST
 *   /sandboxes/:id/exec answered as ndjson lines (the fast path: no event
 *   loop);
 * - otherwise (a pipe, a file, an inherited CI stdin): GET
 *   /sandboxes/:id/exec/ws, stdin streamed while the command runs and
 *   closed at its EOF. The command's exit ends us, whatever stdin does (a
 *   pipe that never closes does not hang exec).
 * --json answers whole (POST, no stdin): {exit_code, stdout, stderr}.
 * --detach starts the command in the background in the guest (POST with
 *   "detach": output to a file there) and prints its pid and that file.
 *
 * Sits between the command table (cli.h) and the client library: the
 * synchronous calls (cli.c) for POST, the WebSocket (client/async.h) on
 * the process's one loop for the streamed stdin. Stdin is read only while
 * less than STDIN_HIGH bytes wait to be sent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "async.h"
#include "cli.h"
#include "execstream.h"
#include "loop.h"
#include "num.h"

#define STDIN_HIGH (256u << 10)

struct exec_out {
	struct execstream es;    /* the answer's messages, either way */
	int exit_code;
	bool exited;
	char error[512];
	int status;              /* ws: the HTTP status an error answer named */
};

static void on_output(int fd, const char *p, size_t n, void *arg UNUSED)
{
	write_all(fd, p, n);
}

static void on_exit_code(int code, bool timed_out, void *arg)
{
	struct exec_out *x = arg;
	x->exited = true;
	x->exit_code = code;
	if (timed_out)
		fprintf(stderr, "bhatti: the command timed out and was killed\n");
}

static void on_error(const char *msg, void *arg)
{
	struct exec_out *x = arg;
	snprintf(x->error, sizeof(x->error), "%s", msg);
}

static const struct execstream_cb exec_cb = {
	.output = on_output, .exit = on_exit_code, .error = on_error,
};

static bool on_chunk(const char *p, size_t n, void *arg)
{
	struct exec_out *x = arg;
	execstream_feed(&x->es, p, n);
	return true;
}

/* ---- over the WebSocket: stdin streamed ------------------------------------ */

struct wsx {
	struct exec_out out;
	struct async_ws *ws;
	struct watch in;
	struct task in_task;     /* stdin that epoll cannot watch (a file) */
	bool in_reading, in_paused;
	struct err err;
};

static void stdin_pause(struct wsx *w, bool pause)
{
	if (!w->in_reading || w->in_paused == pause)
		return;
	w->in_paused = pause;
	if (w->in.fd >= 0)
		watch_set(&w->in, pause ? 0 : EPOLLIN);
	else if (pause)
		task_cancel(&w->in_task);
	else
		task_post(&w->in_task);
}

static void stdin_stop(struct wsx *w)
{
	watch_del(&w->in);   /* the fd stays open: it is our stdin */
	task_cancel(&w->in_task);
	w->in_reading = false;
}

static void read_stdin(struct wsx *w)
{
	char tmp[65536];
	ssize_t n = read(0, tmp, sizeof(tmp));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* EOF (or an error reading it, which ends it as well) */
		stdin_stop(w);
		static const char eof[] = "{\"type\":\"eof\"}";
		async_ws_send(w->ws, false, eof, sizeof(eof) - 1);
		return;
	}
	async_ws_send(w->ws, true, tmp, (size_t)n);
	if (w->in.fd < 0)
		task_post(&w->in_task);
	if (async_ws_queued(w->ws) > STDIN_HIGH)
		stdin_pause(w, true);
}

static void on_stdin(struct watch *wt, uint32_t events UNUSED)
{
	read_stdin(wt->data);
}

static void on_stdin_task(struct task *tk)
{
	read_stdin(tk->data);
}

static void ws_message(struct async_ws *ws UNUSED, bool binary, const char *p, size_t n,
		       void *arg)
{
	struct wsx *w = arg;
	if (binary) {
		if (n >= 1)
			write_all(p[0] == 2 ? 2 : 1, p + 1, n - 1);
		return;
	}
	cJSON *o = cJSON_ParseWithLength(p, n);
	if (o) {
		if (cJSON_GetObjectItemCaseSensitive(o, "status"))
			w->out.status = cli_jint(o, "status");
		execstream_message(&w->out.es, o);
	}
	cJSON_Delete(o);
}

static void ws_drained(struct async_ws *ws UNUSED, void *arg)
{
	stdin_pause(arg, false);
}

static void ws_closed(struct async_ws *ws UNUSED, const struct err *e, void *arg)
{
	struct wsx *w = arg;
	w->ws = NULL;
	if (e)
		w->err = *e;
	stdin_stop(w);
	loop_stop();
}

static const struct async_ws_cb ws_cb = {
	.message = ws_message, .drained = ws_drained, .closed = ws_closed,
};

static int exec_ws(struct cli *c, cJSON *b)
{
	if (loop_init() < 0)
		return cli_error(1, "cannot start the event loop: %s", strerror(errno));
	struct wsx w = { .err = ERR_INIT };
	execstream_init(&w.out.es, &exec_cb, &w.out);
	watch_init(&w.in, on_stdin, &w);
	task_init(&w.in_task, on_stdin_task, &w);
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/exec/ws", c->esc[0]);
	w.ws = async_ws_open(cli_client(c), path.data, &ws_cb, &w);
	buf_release(&path);
	char *req = cJSON_PrintUnformatted(b);
	async_ws_send(w.ws, false, req, strlen(req));
	free(req);
	w.in_reading = true;
	if (watch_add(&w.in, 0, EPOLLIN) < 0)
		task_post(&w.in_task);   /* EPERM: a regular file never blocks */
	loop_run();
	stdin_stop(&w);
	loop_run_once(0);   /* the deferred frees of the last turn */
	execstream_release(&w.out.es);
	if (w.out.exited)
		return w.out.exit_code;
	if (w.out.error[0]) {
		cli_error(1, "%s", w.out.error);
		if (w.out.status == 404 && strstr(w.out.error, "no sandbox"))
			fprintf(stderr, "hint: 'bhatti list' shows your sandboxes\n");
		return 1;
	}
	if (w.err.code)
		return cli_report(&w.err);
	return cli_error(1, "the connection ended before the command did");
}

/* ---- the command ------------------------------------------------------------- */

/* Is stdin /dev/null (as scripts and benchmarks give it)? Then there is
 * nothing to stream: the POST, without the WebSocket's round trip. */
static bool stdin_is_null(void)
{
	struct stat in, null;
	return fstat(0, &in) == 0 && S_ISCHR(in.st_mode) && stat("/dev/null", &null) == 0 &&
	       in.st_rdev == null.st_rdev;
}


static int detached(struct cli *c, const struct client_resp *r)
{
	cJSON *j = cli_json(r);
	if (!j)
		return 1;
	if (c->json)
		cli_print_json(j);
	else
		printf("started pid %d in the background, output in %s\n"
		       "(see it with: bhatti file read %s %s)\n",
		       cli_jint(j, "pid"), cli_jstr(j, "output_file"), c->args.pos[0],
		       cli_jstr(j, "output_file"));
	cJSON_Delete(j);
	return 0;
}

/* --json: the daemon's whole answer ({exit_code, stdout, stderr, …});
 * the command's exit code. */
static int whole(const struct client_resp *r)
{
	cJSON *j = cli_json(r);
	if (!j)
		return 1;
	cli_print_json(j);
	int rc = cli_jint(j, "exit_code");
	cJSON_Delete(j);
	return rc;
}

static int exec_post(struct cli *c, cJSON *b, bool detach)
{
	int rc;
	bool stream = !detach && !c->json;
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/exec", c->esc[0]);
	struct exec_out x = { .exit_code = 0 };
	execstream_init(&x.es, &exec_cb, &x);
	struct client_resp r;
	if (cli_stream(c, "POST", path.data, b, stream ? "application/x-ndjson" : NULL,
		       stream ? on_chunk : NULL, &x, &r) < 0)
		rc = 1;
	else if (r.status != 200)
		rc = cli_fail(&r);
	else if (detach)
		rc = detached(c, &r);
	else if (c->json)
		rc = whole(&r);
	else if (x.exited)
		rc = x.exit_code;
	else
		rc = cli_error(1, "%s", x.error[0] ? x.error
						   : "the connection ended before the command did");
	client_resp_release(&r);
	execstream_release(&x.es);
	buf_release(&path);
	return rc;
}

static int run(struct cli *c)
{
	const struct args *a = &c->args;
	const char *cwd = args_get(a, "--cwd"), *timeout = args_get(a, "--timeout");
	char *const *env = args_list(a, "--env");
	bool detach = args_has(a, "--detach");
	int rc = 0;
	cJSON *b = cJSON_CreateObject(), *cmd = cJSON_AddArrayToObject(b, "cmd");
	for (size_t i = 1; i < a->npos; i++)
		cJSON_AddItemToArray(cmd, cJSON_CreateString(a->pos[i]));
	if (cwd)
		cJSON_AddStringToObject(b, "cwd", cwd);
	if (args_has(a, "--root"))
		cJSON_AddBoolToObject(b, "as_root", true);
	if (detach)
		cJSON_AddBoolToObject(b, "detach", true);
	if (timeout) {
		uint32_t t;
		struct err e = ERR_INIT;
		if (num_parse_u32(timeout, 0, 7 * 86400, &t, "--timeout (seconds; 0: none)", &e) < 0)
			rc = cli_usage_error(c, "%s", err_str(&e));
		else
			cJSON_AddNumberToObject(b, "timeout_sec", t);
	}
	if (env && !rc) {
		cJSON *o = cJSON_AddObjectToObject(b, "env");
		for (char *const *p = env; *p; p++) {
			char *eq = strchr(*p, '=');
			if (!eq || eq == *p) {
				rc = cli_usage_error(c, "--env wants K=V, not '%s'", *p);
				break;
			}
			char *k = xstrndup(*p, (size_t)(eq - *p));
			cJSON_AddStringToObject(o, k, eq + 1);
			free(k);
		}
	}
	if (!rc) {
		if (!detach && !c->json && !args_has(a, "-n") && !isatty(0) && !stdin_is_null())
			rc = exec_ws(c, b);
		else
			rc = exec_post(c, b, detach);
	}
	cJSON_Delete(b);
	return rc;
}

static const struct opt opts[] = {
	{ "--cwd", NULL, OPT_VALUE }, { "--timeout", NULL, OPT_VALUE },
	{ "--env", NULL, OPT_LIST },  { "--root", NULL, OPT_FLAG },
	{ "-n", NULL, OPT_FLAG },     { "--detach", "-d", OPT_FLAG },
	OPT_END,
};

const struct cli_cmd cmd_exec_entry = {
	.name = "exec",
	.summary = "run a command in a sandbox: exec NAME -- cmd args...",
	.usage = "NAME [--env K=V]... [--cwd DIR] [--timeout SEC] [--root] [-n] [--detach|-d]\n"
		 "                  [--json] -- COMMAND [ARGS...]",
	.help = "stdin is streamed to the command while it runs (closed at its end of\n"
		"file) unless it is a terminal or -n is given; exec ends when the command\n"
		"does. --timeout: seconds (default: the daemon's, 300; 0: none).\n"
		"--detach: run it in the background, output to a file in the guest.\n"
		"--json: no stdin; the whole answer as JSON when the command ends.",
	.opts = opts,
	.min_args = 2,
	.max_args = -1,
	.flags = CLI_NAME,
	.run = run,
};
