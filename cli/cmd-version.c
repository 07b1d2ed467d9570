/* cmd-version.c — `bhatti version` (the CLI's and the daemon's versions,
 * the API URL in use) and `bhatti help` (the command table). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static int version(struct cli *c)
{
	struct client_resp r;
	int rc = cli_call(c, "GET", "/health", NULL, &r) < 0 || r.status != 200 ? 1 : 0;
	cJSON *j = rc == 0 ? cli_json(&r) : NULL;
	const char *sv = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "version")) : NULL;
	const char *acc = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "accel")) : NULL;
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "cli", BHATTI_VERSION);
		if (sv)
			cJSON_AddStringToObject(o, "server", sv);
		if (acc)
			cJSON_AddStringToObject(o, "accel", acc);
		cJSON_AddStringToObject(o, "url", c->client->url);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		/* the seed system's two lines first, then ours */
		printf("bhatti v%s\napi: %s (from %s)\nserver: %s%s%s%s\n", BHATTI_VERSION,
		       c->client->url, c->set.url_from, sv ? sv : "unreachable",
		       acc ? " (accelerator " : "", acc ? acc : "", acc ? ")" : "");
	}
	cJSON_Delete(j);
	client_resp_release(&r);
	return rc;
}

void cli_print_help(void)
{
	size_t n;
	const struct cli_cmd *const *cmds = cli_commands(&n);
	printf("usage: bhatti <command> [options]   (bhatti <command> --help for more)\n\n"
	       "commands:\n");
	for (size_t i = 0; i < n; i++) {
		if (cmds[i]->flags & CLI_HIDDEN)
			continue;
		char name[32];
		snprintf(name, sizeof(name), "%s%s%s%s", cmds[i]->name, cmds[i]->alias ? " (" : "",
			 cmds[i]->alias ? cmds[i]->alias : "", cmds[i]->alias ? ")" : "");
		printf("  %-15s %s\n", name, cmds[i]->summary);
	}
	printf("\noptions of every command but serve and user: --url URL, --token KEY, --json,\n"
	       "--timing (where each request's time went: connect, send, server, transfer),\n"
	       "--ca FILE (the CA of an https:// daemon with a certificate of its own CA)\n"
	       "settings: --url/--token/--ca > BHATTI_URL/BHATTI_TOKEN/BHATTI_CA > "
	       "~/.bhatti/config.yaml\n");
}

static int help(struct cli *c UNUSED)
{
	cli_print_help();
	return 0;
}

const struct cli_cmd cmd_version_entry = {
	.name = "version",
	.summary = "CLI and daemon versions, the API URL in use",
	.usage = "[--json]",
	.run = version,
};

const struct cli_cmd cmd_help_entry = {
	.name = "help",
	.summary = "show this help",
	.usage = "",
	.max_args = -1,
	.run = help,
};
