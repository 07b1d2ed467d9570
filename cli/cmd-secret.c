/* cmd-secret.c — `bhatti secret set|list|delete`: per-user secrets,
 * encrypted at rest by the daemon; a sandbox gets them as environment
 * variables (`bhatti create --secret NAME`). Values are read from the
 * command line (VALUE, as the seed system's, or --value) or stdin (never
 * echoed), and never printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sodium.h>

#include "cli.h"

static int read_value(struct buf *v)
{
	bool tty = isatty(0);
	struct termios old, quiet;
	if (tty) {
		fprintf(stderr, "value (not echoed): ");
		tcgetattr(0, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSANOW, &quiet);
	}
	char tmp[4096];
	ssize_t n;
	while ((n = read(0, tmp, sizeof(tmp))) > 0) {
		buf_add(v, tmp, (size_t)n);
		if (tty && memchr(tmp, '\n', (size_t)n))
			break;
		if (v->len > (64u << 10))
			break;
	}
	if (tty) {
		tcsetattr(0, TCSANOW, &old);
		fputc('\n', stderr);
	}
	/* one trailing newline is the end of the line, not the secret */
	if (v->len && v->data[v->len - 1] == '\n')
		buf_setlen(v, v->len - 1);
	if (v->len && v->data[v->len - 1] == '\r')
		buf_setlen(v, v->len - 1);
	sodium_memzero(tmp, sizeof(tmp));
	return 0;
}

static int secret_list(struct cli *c)
{
	cJSON *j, *s;
	int rc = cli_call_json(c, "GET", "/secrets", &j);
	if (rc)
		return rc;
	if (c->json) {
		cli_print_json(j);
	} else if (cJSON_GetArraySize(j) == 0) {
		puts("no secrets yet: bhatti secret set NAME");
	} else {
		printf("%-32s %s\n", "NAME", "UPDATED");
		cJSON_ArrayForEach(s, j)
			printf("%-32s %s\n", cli_jstr(s, "name"), cli_jstr(s, "updated_at"));
	}
	cJSON_Delete(j);
	return 0;
}

static int secret_set(struct cli *c)
{
	const char *name = c->args.pos[0], *value = args_get(&c->args, "--value");
	if (c->args.npos > 1) {
		if (value)
			return cli_usage_error(c, "give the value once: VALUE or --value");
		value = c->args.pos[1];
	}
	struct client_resp r;
	struct buf v = BUF_INIT;
	int rc = 0;
	if (value)
		buf_adds(&v, value);
	else
		read_value(&v);
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "name", name);
	cJSON_AddStringToObject(b, "value", v.data);
	if (cli_call(c, "POST", "/secrets", b, &r) < 0)
		rc = 1;
	else if (r.status != 200 && r.status != 201)
		rc = cli_fail(&r);
	else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddStringToObject(o, "status", r.status == 201 ? "set" : "replaced");
		cli_said(c, stderr, o, "secret '%s' %s\n", name, r.status == 201 ? "set" : "replaced");
	}
	sodium_memzero(v.data, v.len);
	buf_release(&v);
	cJSON_Delete(b);
	client_resp_release(&r);
	return rc;
}

static int secret_delete(struct cli *c)
{
	struct buf path = BUF_INIT;
	buf_addf(&path, "/secrets/%s", c->esc[0]);
	int rc = cli_delete(c, path.data, "secret", c->args.pos[0]);
	buf_release(&path);
	return rc;
}

static const struct opt set_opts[] = { { "--value", NULL, OPT_VALUE }, OPT_END };

static const struct cli_cmd subs[] = {
	{ .name = "set", .usage = "NAME [VALUE | --value V | < stdin] [--json]", .opts = set_opts,
	  .min_args = 1, .max_args = 2, .run = secret_set, .complete = "secrets",
	  .help = "The value from stdin is the safer way: a VALUE or --value on the command\n"
		  "line is seen by other users in ps and kept in your shell's history.\n"
		  "On a terminal the value is asked for and not echoed." },
	{ .name = "list", .usage = "[--json]", .run = secret_list },
	{ .name = "delete", .usage = "NAME [--json]", .min_args = 1, .max_args = 1, .flags = CLI_NAME,
	  .run = secret_delete },
	{ .name = NULL },
};

const struct cli_cmd cmd_secret_entry = {
	.name = "secret",
	.summary = "set, list or delete your secrets",
	.subs = subs,
};
