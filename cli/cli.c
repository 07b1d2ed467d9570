/* cli.c — what the CLI's commands share (see cli.h): the client made on
 * first use, requests whose errors are printed, and the printing of
 * errors and JSON. Sits between the command files and client/ (which
 * never prints). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#include <sys/time.h>
#include <unistd.h>

struct client *cli_client(struct cli *c)
{
	if (c->client)
		return c->client;
	struct err warn = ERR_INIT;
	client_settings_resolve(&c->set, c->flag_url, c->flag_token, &warn);
	if (warn.code)
		fprintf(stderr, "bhatti: warning: %s\n", err_str(&warn));
	if (c->flag_ca) {
		free(c->set.ca);
		c->set.ca = xstrdup(c->flag_ca);
	}
	c->client = client_new(&c->set);
	return c->client;
}

/* Once per command: a daemon whose API is not the one this CLI speaks. */
static void check_api(const struct client_resp *r)
{
	static bool warned;
	if (warned || !r->api || r->api == BHATTI_API_VERSION)
		return;
	warned = true;
	fprintf(stderr, "bhatti: warning: the daemon (%s) speaks API %d, this CLI (%s) API %d; "
			"update the %s\n", r->server_version[0] ? r->server_version : "?", r->api,
		BHATTI_VERSION, BHATTI_API_VERSION, r->api > BHATTI_API_VERSION ? "CLI" : "daemon");
}

static int perform(struct cli *c, const struct client_req *rq, struct client_resp *ret)
{
	struct err e = ERR_INIT;
	if (client_call(cli_client(c), rq, ret, &e) < 0) {
		cli_report(&e);
		return -1;
	}
	check_api(ret);
	if (c->timing)
		fprintf(stderr, "timing: %s %s: connect %.1f ms, send %.1f ms, server %.1f ms, "
				"transfer %.1f ms, total %.1f ms\n", rq->method, rq->path,
			ret->t_connect / 1e3, (ret->t_sent - ret->t_connect) / 1e3,
			(ret->t_head - ret->t_sent) / 1e3, (ret->t_done - ret->t_head) / 1e3,
			ret->t_done / 1e3);
	return 0;
}

int cli_stream(struct cli *c, const char *method, const char *path, const cJSON *body,
	       const char *accept, bool (*fn)(const char *p, size_t n, void *arg), void *arg,
	       struct client_resp *ret)
{
	char *s = body ? cJSON_PrintUnformatted(body) : NULL;
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = method;
	rq.path = path;
	rq.body = s;
	rq.len = s ? strlen(s) : 0;
	rq.ctype = s ? "application/json" : NULL;
	rq.accept = accept;
	rq.on_body = fn;
	rq.arg = arg;
	int rc = perform(c, &rq, ret);
	free(s);
	return rc;
}

int cli_call(struct cli *c, const char *method, const char *path, const cJSON *body,
	     struct client_resp *ret)
{
	return cli_stream(c, method, path, body, NULL, NULL, NULL, ret);
}

int cli_call_json(struct cli *c, const char *method, const char *path, cJSON **ret)
{
	return cli_call_json_body(c, method, path, NULL, ret);
}

int cli_call_json_body(struct cli *c, const char *method, const char *path, const cJSON *body,
		       cJSON **ret)
{
	struct client_resp r;
	if (cli_call(c, method, path, body, &r) < 0)
		return 1;
	int rc = 0;
	cJSON *j = NULL;
	if (r.status != 200)
		rc = cli_fail(&r);
	else if (!(j = cli_json(&r)))
		rc = 1;
	client_resp_release(&r);
	if (rc == 0)
		*ret = j;
	return rc;
}

int cli_upload(struct cli *c, const char *path, int fd, size_t size, struct client_resp *ret)
{
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "PUT";
	rq.path = path;
	rq.body_fd = fd;
	rq.len = size;
	rq.ctype = "application/octet-stream";
	return perform(c, &rq, ret);
}

/* ---- errors and output ------------------------------------------------------ */

void cli_usage(FILE *f, const char *group, const struct cli_cmd *cmd, bool more)
{
	if (cmd->subs) {
		for (const struct cli_cmd *s = cmd->subs; s->name; s++)
			fprintf(f, "%s bhatti %s %s%s%s\n", s == cmd->subs ? "usage:" : "      ",
				cmd->name, s->name, s->usage[0] ? " " : "", s->usage);
	} else {
		fprintf(f, "usage: bhatti %s%s%s%s%s\n", group ? group : "", group ? " " : "",
			cmd->name, cmd->usage && cmd->usage[0] ? " " : "", cmd->usage ? cmd->usage : "");
	}
	if (more && cmd->help)
		fprintf(f, "%s\n", cmd->help);
}

int cli_usage_error(const struct cli *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bhatti %s%s%s: ", c->group ? c->group : "", c->group ? " " : "",
		c->cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cli_usage(stderr, c->group, c->cmd, false);
	return EXIT_USAGE;
}

int cli_report(const struct err *e)
{
	fprintf(stderr, "bhatti: %s\n", err_str(e));
	if (client_unreachable(e))
		fprintf(stderr, "hint: is 'bhatti serve' running? Set the URL with "
				"'bhatti setup', --url or BHATTI_URL\n");
	return 1;
}

int cli_error(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("bhatti: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int cli_fail(const struct client_resp *r)
{
	cJSON *j = cJSON_ParseWithLength(r->body.data, r->body.len);
	cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
	if (cJSON_IsString(m))
		fprintf(stderr, "bhatti: %s\n", m->valuestring);
	else
		fprintf(stderr, "bhatti: the daemon answered %d%s%.*s\n", r->status,
			r->body.len ? ": " : "", (int)MIN(r->body.len, 200), r->body.data);
	if (r->status == 401)
		fprintf(stderr, "hint: check your API key ('bhatti setup', --token or BHATTI_TOKEN)\n");
	else if (r->status == 429 && r->retry_after[0])
		fprintf(stderr, "hint: try again in %s s\n", r->retry_after);
	else if (r->status == 404 && cJSON_IsString(m) && strstr(m->valuestring, "no sandbox"))
		fprintf(stderr, "hint: 'bhatti list' shows your sandboxes\n");
	cJSON_Delete(j);
	return 1;
}

cJSON *cli_json(const struct client_resp *r)
{
	cJSON *j = cJSON_ParseWithLength(r->body.data, r->body.len);
	if (!j)
		fprintf(stderr, "bhatti: the daemon sent something that is not JSON\n");
	return j;
}

void cli_print_json(const cJSON *j)
{
	char *s = cJSON_Print(j);
	if (s)
		puts(s);
	free(s);
}

const char *cli_jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

int cli_jint(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valueint : 0;
}

int cli_delete(struct cli *c, const char *path, const char *what, const char *name)
{
	struct client_resp r;
	int rc = 0;
	if (cli_call(c, "DELETE", path, NULL, &r) < 0)
		return 1;
	if (r.status != 204)
		rc = cli_fail(&r);
	else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddStringToObject(o, "status", "deleted");
		cli_said(c, stderr, o, "%s '%s' deleted\n", what, name);
	}
	client_resp_release(&r);
	return rc;
}

int cli_add_labels(struct cli *c, cJSON *body, const char *field, char *const *list)
{
	if (!list)
		return 0;
	cJSON *o = cJSON_AddObjectToObject(body, field);
	for (char *const *p = list; *p; p++) {
		const char *eq = strchr(*p, '=');
		if (!eq || eq == *p)
			return cli_usage_error(c, "--label wants KEY=VALUE, not '%s'", *p);
		char *k = xstrndup(*p, (size_t)(eq - *p));
		cJSON_DeleteItemFromObjectCaseSensitive(o, k);
		cJSON_AddStringToObject(o, k, eq + 1);
		free(k);
	}
	return 0;
}

void cli_said(const struct cli *c, FILE *f, cJSON *o, const char *fmt, ...)
{
	if (c->json) {
		cli_print_json(o);
	} else {
		va_list ap;
		va_start(ap, fmt);
		vfprintf(f, fmt, ap);
		va_end(ap);
	}
	cJSON_Delete(o);
}

/* ---- progress on a terminal ---------------------------------------------------- */

#define PROGRESS_TICK_MS 200

static struct {
	char line[160];      /* "creating 'dev'" */
	char hint[160];      /* said once the wait is long */
	unsigned ticks;
	bool on;
} progress;

/* SIGALRM: redraw the line (only write(2): async-signal-safe). */
static void progress_tick(int sig UNUSED)
{
	int saved = errno;
	char out[400];
	unsigned tenths = ++progress.ticks * PROGRESS_TICK_MS / 100;
	int n = snprintf(out, sizeof(out), "\r%s %u.%us%s%s\033[K", progress.line, tenths / 10,
			 tenths % 10, tenths >= 15 && progress.hint[0] ? " " : "",
			 tenths >= 15 ? progress.hint : "");
	if (n > 0)
		(void)!write(2, out, (size_t)MIN((size_t)n, sizeof(out) - 1));
	errno = saved;
}

void cli_progress_start(const struct cli *c, const char *hint, const char *fmt, ...)
{
	if (c->json || !isatty(1) || !isatty(2))
		return;   /* quiet under --json or without a terminal */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(progress.line, sizeof(progress.line), fmt, ap);
	va_end(ap);
	snprintf(progress.hint, sizeof(progress.hint), "%s", hint ? hint : "");
	progress.ticks = 0;
	struct sigaction sa = { .sa_handler = progress_tick, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, PROGRESS_TICK_MS * 1000 }, { 0, PROGRESS_TICK_MS * 1000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	progress.on = true;
}

void cli_progress_stop(void)
{
	if (!progress.on)
		return;
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_IGN);
	if (progress.ticks)
		(void)!write(2, "\r\033[K", 4);
	progress.on = false;
}
