/* cmd-exec.c — `bhatti exec NAME -- cmd args...`: run a command in a
 * sandbox, streaming its stdout and stderr to ours as it runs (ndjson from
 * POST /sandboxes/:id/exec), and exit with its exit code. Stdin is sent
 * when it is not a terminal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "cli.h"
#include "execstream.h"
#include "num.h"

#define STDIN_CAP (48u << 20)

struct exec_out {
	struct execstream es;
	int exit_code;
	bool exited;
	char error[512];
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

static int read_stdin(struct buf *in)
{
	char tmp[65536];
	for (;;) {
		ssize_t n = read(0, tmp, sizeof(tmp));
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return cli_error(1, "cannot read stdin: %s", strerror(errno));
		}
		if (in->len + (size_t)n > STDIN_CAP)
			return cli_error(1, "stdin is larger than %u MiB; copy it in with "
					    "'bhatti file write' instead", STDIN_CAP >> 20);
		buf_add(in, tmp, (size_t)n);
	}
}

static int run(struct cli *c)
{
	const struct args *a = &c->args;
	const char *cwd = args_get(a, "--cwd"), *timeout = args_get(a, "--timeout");
	char *const *env = args_list(a, "--env");
	int rc = 0;
	cJSON *b = cJSON_CreateObject(), *cmd = cJSON_AddArrayToObject(b, "cmd");
	for (size_t i = 1; i < a->npos; i++)
		cJSON_AddItemToArray(cmd, cJSON_CreateString(a->pos[i]));
	if (cwd)
		cJSON_AddStringToObject(b, "cwd", cwd);
	if (args_has(a, "--root"))
		cJSON_AddBoolToObject(b, "as_root", true);
	if (timeout) {
		uint32_t t;
		struct err e = ERR_INIT;
		if (num_parse_u32(timeout, 1, 7 * 86400, &t, "--timeout (seconds)", &e) < 0)
			rc = cli_error(2, "%s", err_str(&e));
		else
			cJSON_AddNumberToObject(b, "timeout_sec", t);
	}
	if (env && !rc) {
		cJSON *o = cJSON_AddObjectToObject(b, "env");
		for (char *const *p = env; *p; p++) {
			char *eq = strchr(*p, '=');
			if (!eq || eq == *p) {
				rc = cli_error(2, "--env wants K=V, not '%s'", *p);
				break;
			}
			char *k = xstrndup(*p, (size_t)(eq - *p));
			cJSON_AddStringToObject(o, k, eq + 1);
			free(k);
		}
	}
	if (!rc && !args_has(a, "-n") && !isatty(0)) {
		struct buf in = BUF_INIT;
		rc = read_stdin(&in);
		if (!rc) {
			size_t blen = sodium_base64_ENCODED_LEN(in.len, sodium_base64_VARIANT_ORIGINAL);
			char *s = xmalloc(blen);
			sodium_bin2base64(s, blen, (const uint8_t *)in.data, in.len,
					  sodium_base64_VARIANT_ORIGINAL);
			cJSON_AddStringToObject(b, "stdin_b64", s);
			free(s);
		}
		buf_release(&in);
	}
	if (!rc) {
		struct buf path = BUF_INIT;
		buf_addf(&path, "/sandboxes/%s/exec", c->esc[0]);
		struct exec_out x = { .exit_code = 0 };
		execstream_init(&x.es, &exec_cb, &x);
		struct client_resp r;
		if (cli_stream(c, "POST", path.data, b, "application/x-ndjson", on_chunk, &x, &r) < 0)
			rc = 1;
		else if (r.status != 200)
			rc = cli_fail(&r);
		else if (x.exited)
			rc = x.exit_code;
		else
			rc = cli_error(1, "%s", x.error[0] ? x.error
							   : "the connection ended before the command did");
		client_resp_release(&r);
		execstream_release(&x.es);
		buf_release(&path);
	}
	cJSON_Delete(b);
	return rc;
}

static const struct opt opts[] = {
	{ "--cwd", NULL, OPT_VALUE }, { "--timeout", NULL, OPT_VALUE },
	{ "--env", NULL, OPT_LIST },  { "--root", NULL, OPT_FLAG },
	{ "-n", NULL, OPT_FLAG },     OPT_END,
};

const struct cli_cmd cmd_exec_entry = {
	.name = "exec",
	.summary = "run a command in a sandbox: exec NAME -- cmd args...",
	.usage = "NAME [--env K=V]... [--cwd DIR] [--timeout SEC] [--root] [-n]\n"
		 "                  -- COMMAND [ARGS...]",
	.help = "stdin is sent to the command unless it is a terminal (or -n is given)",
	.opts = opts,
	.min_args = 2,
	.max_args = -1,
	.flags = CLI_NAME,
	.run = run,
};
