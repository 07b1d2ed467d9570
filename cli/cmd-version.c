/* cmd-version.c — `bhatti version` (the CLI's and the daemon's versions,
 * the API URL in use) and `bhatti help` (the command table). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "client.h"

int cmd_version(int argc, char **argv)
{
	char **pos;
	if (cli_parse(argc, argv, NULL, 0, &pos, NULL) < 0)
		return 2;
	free(pos);
	cli_settings();
	struct cli_resp r;
	int rc = cli_call("GET", "/health", NULL, &r) < 0 || r.status != 200 ? 1 : 0;
	cJSON *j = rc == 0 ? cli_json(&r) : NULL;
	const char *sv = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "version")) : NULL;
	const char *acc = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "accel")) : NULL;
	if (CLI.json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "cli", BHATTI_VERSION);
		if (sv)
			cJSON_AddStringToObject(o, "server", sv);
		if (acc)
			cJSON_AddStringToObject(o, "accel", acc);
		cJSON_AddStringToObject(o, "url", CLI.url);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		printf("bhatti %s\nserver %s%s%s%s\napi    %s (from %s)\n", BHATTI_VERSION,
		       sv ? sv : "unreachable", acc ? " (accelerator " : "", acc ? acc : "",
		       acc ? ")" : "", CLI.url, CLI.url_from);
	}
	cJSON_Delete(j);
	cli_resp_release(&r);
	return rc;
}

int cmd_help(int argc UNUSED, char **argv UNUSED)
{
	size_t n;
	const struct cli_cmd *cmds = cli_commands(&n);
	printf("usage: bhatti <command> [options]   (bhatti <command> --help for more)\n\n"
	       "commands:\n");
	for (size_t i = 0; i < n; i++)
		printf("  %-10s %s\n", cmds[i].name, cmds[i].summary);
	printf("\nsettings: --url/--token > BHATTI_URL/BHATTI_TOKEN > ~/.bhatti/config.yaml\n");
	return 0;
}
