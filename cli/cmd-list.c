/* cmd-list.c — `bhatti list` (your sandboxes, a table or --json) and
 * `bhatti inspect NAME` (one sandbox). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "client.h"

static const char *jget(cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* "3m ago" from an RFC 3339 time. */
static void ago(const char *when, char *out, size_t n)
{
	struct tm tm = { 0 };
	if (!strptime(when, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		snprintf(out, n, "%s", when);
		return;
	}
	long s = (long)(time(NULL) - timegm(&tm));
	if (s < 60)
		snprintf(out, n, "%lds ago", s < 0 ? 0 : s);
	else if (s < 3600)
		snprintf(out, n, "%ldm ago", s / 60);
	else if (s < 86400)
		snprintf(out, n, "%ldh ago", s / 3600);
	else
		snprintf(out, n, "%ldd ago", s / 86400);
}

int cmd_list(int argc, char **argv)
{
	char **pos;
	if (cli_parse(argc, argv, NULL, 0, &pos, NULL) < 0)
		return 2;
	free(pos);
	if (CLI.help) {
		puts("usage: bhatti list [--json]");
		return 0;
	}
	cli_settings();
	struct cli_resp r;
	if (cli_call("GET", "/sandboxes", NULL, &r) < 0)
		return 1;
	int rc = 0;
	cJSON *j = r.status == 200 ? cli_json(&r) : NULL;
	if (r.status != 200)
		rc = cli_fail(&r);
	else if (!j)
		rc = 1;
	else if (CLI.json)
		cli_print_json(j);
	else if (cJSON_GetArraySize(j) == 0)
		puts("no sandboxes yet: bhatti create --name NAME");
	else {
		printf("%-20s %-12s %-9s %4s %7s %-8s %s\n", "NAME", "ID", "STATE", "CPUS", "MEMORY",
		       "IMAGE", "CREATED");
		cJSON *s;
		cJSON_ArrayForEach(s, j)
		{
			char when[32];
			ago(jget(s, "created_at"), when, sizeof(when));
			printf("%-20s %-12s %-9s %4d %5dMB %-8s %s\n", jget(s, "name"), jget(s, "id"),
			       jget(s, "state"), cJSON_GetObjectItem(s, "cpus")->valueint,
			       cJSON_GetObjectItem(s, "memory_mb")->valueint, jget(s, "image"), when);
		}
	}
	cJSON_Delete(j);
	cli_resp_release(&r);
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	char **pos;
	if (cli_parse(argc, argv, NULL, 0, &pos, NULL) < 0)
		return 2;
	if (CLI.help || !pos[0] || pos[1]) {
		free(pos);
		fputs("usage: bhatti inspect NAME [--json]\n", CLI.help ? stdout : stderr);
		return CLI.help ? 0 : 2;
	}
	cli_settings();
	char *esc = cli_escape(pos[0]);
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s", esc);
	free(esc);
	free(pos);
	struct cli_resp r;
	int rc = cli_call("GET", path.data, NULL, &r) < 0 ? 1 : 0;
	buf_release(&path);
	if (rc)
		return rc;
	cJSON *j = r.status == 200 ? cli_json(&r) : NULL;
	if (r.status != 200)
		rc = cli_fail(&r);
	else if (!j)
		rc = 1;
	else if (CLI.json)
		cli_print_json(j);
	else {
		static const char *const keys[] = { "name", "id", "state", "image", "origin",
						    "created_at", "error" };
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
			if (jget(j, keys[i])[0])
				printf("%-10s %s\n", keys[i], jget(j, keys[i]));
		printf("%-10s %d\n%-10s %d MB\n", "cpus", cJSON_GetObjectItem(j, "cpus")->valueint,
		       "memory", cJSON_GetObjectItem(j, "memory_mb")->valueint);
	}
	cJSON_Delete(j);
	cli_resp_release(&r);
	return rc;
}
