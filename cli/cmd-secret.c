/* cmd-secret.c — `bhatti secret set|list|delete`: per-user secrets,
 * encrypted at rest by the daemon; a sandbox gets them as environment
 * variables (`bhatti create --secret NAME`). Values are read from --value
 * or stdin (never echoed) and never printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sodium.h>

#include "cli.h"
#include "client.h"

static const char usage[] = "usage: bhatti secret set NAME [--value V | < stdin]\n"
			    "       bhatti secret list [--json]\n"
			    "       bhatti secret delete NAME\n";

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

int cmd_secret(int argc, char **argv)
{
	char *value = NULL, **pos;
	const struct cli_opt opts[] = { { "--value", &value, NULL, NULL } };
	if (cli_parse(argc, argv, opts, ARRAY_SIZE(opts), &pos, NULL) < 0)
		return 2;
	int rc = 0;
	const char *sub = pos[0];
	if (CLI.help || !sub) {
		fputs(usage, CLI.help ? stdout : stderr);
		free(pos);
		return CLI.help ? 0 : 2;
	}
	cli_settings();
	struct cli_resp r = { 0 };
	if (strcmp(sub, "list") == 0 && !pos[1]) {
		if (cli_call("GET", "/secrets", NULL, &r) < 0)
			rc = 1;
		else if (r.status != 200)
			rc = cli_fail(&r);
		else {
			cJSON *j = cli_json(&r), *s;
			if (j && CLI.json)
				cli_print_json(j);
			else if (j && cJSON_GetArraySize(j) == 0)
				puts("no secrets yet: bhatti secret set NAME");
			else if (j) {
				printf("%-32s %s\n", "NAME", "UPDATED");
				cJSON_ArrayForEach(s, j)
					printf("%-32s %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(s, "name")),
					       cJSON_GetStringValue(cJSON_GetObjectItem(s, "updated_at")));
			}
			rc = j ? rc : 1;
			cJSON_Delete(j);
		}
	} else if (strcmp(sub, "set") == 0 && pos[1] && !pos[2]) {
		struct buf v = BUF_INIT;
		if (value)
			buf_adds(&v, value);
		else
			read_value(&v);
		cJSON *b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "name", pos[1]);
		cJSON_AddStringToObject(b, "value", v.data);
		if (cli_call("POST", "/secrets", b, &r) < 0)
			rc = 1;
		else if (r.status != 200 && r.status != 201)
			rc = cli_fail(&r);
		else
			fprintf(stderr, "secret '%s' %s\n", pos[1], r.status == 201 ? "set" : "replaced");
		sodium_memzero(v.data, v.len);
		buf_release(&v);
		cJSON_Delete(b);
	} else if (strcmp(sub, "delete") == 0 && pos[1] && !pos[2]) {
		char *esc = cli_escape(pos[1]);
		struct buf path = BUF_INIT;
		buf_addf(&path, "/secrets/%s", esc);
		free(esc);
		if (cli_call("DELETE", path.data, NULL, &r) < 0)
			rc = 1;
		else if (r.status != 204)
			rc = cli_fail(&r);
		else
			fprintf(stderr, "secret '%s' deleted\n", pos[1]);
		buf_release(&path);
	} else {
		fputs(usage, stderr);
		rc = 2;
	}
	cli_resp_release(&r);
	free(pos);
	return rc;
}
