/* cmd-create.c — `bhatti create`: a new sandbox (POST /sandboxes). Prints
 * the sandbox when it answers; idempotent by name (says so when it
 * already existed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "num.h"

static const char usage[] =
	"usage: bhatti create [--name NAME] [--cpus N] [--memory MB] [--image TIER]\n"
	"                     [--env K=V,K2=V2]... [--init SCRIPT] [--secret NAME]...\n"
	"                     [--all-secrets] [--json]\n";

/* "K=V,K2=V2" entries (repeatable) into an object. */
static int add_env(cJSON *env, const char *spec)
{
	char *copy = xstrdup(spec), *save = NULL;
	int rc = 0;
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq || eq == kv) {
			rc = cli_error(2, "--env wants K=V, not '%s'", kv);
			break;
		}
		*eq = '\0';
		cJSON_DeleteItemFromObjectCaseSensitive(env, kv);
		cJSON_AddStringToObject(env, kv, eq + 1);
	}
	free(copy);
	return rc;
}

int cmd_create(int argc, char **argv)
{
	char *name = NULL, *cpus = NULL, *mem = NULL, *image = NULL, *init = NULL;
	char **env = NULL, **secrets = NULL, **pos;
	bool all = false;
	const struct cli_opt opts[] = {
		{ "--name", &name, NULL, NULL },	 { "--cpus", &cpus, NULL, NULL },
		{ "--memory", &mem, NULL, NULL },	 { "--image", &image, NULL, NULL },
		{ "--init", &init, NULL, NULL },	 { "--env", NULL, NULL, &env },
		{ "--secret", NULL, NULL, &secrets }, { "--all-secrets", NULL, &all, NULL },
	};
	if (cli_parse(argc, argv, opts, ARRAY_SIZE(opts), &pos, NULL) < 0)
		return 2;
	if (CLI.help) {
		fputs(usage, stdout);
		return 0;
	}
	if (pos[0] && !name)
		name = pos[0];   /* `bhatti create dev` works too */
	else if (pos[0])
		return cli_error(2, "unexpected argument '%s'\n%s", pos[0], usage);
	cJSON *b = cJSON_CreateObject();
	int rc = 0;
	if (name)
		cJSON_AddStringToObject(b, "name", name);
	uint32_t n;
	struct err e = ERR_INIT;
	if (cpus && num_parse_u32(cpus, 1, 64, &n, "--cpus", &e) < 0)
		rc = cli_error(2, "%s", err_str(&e));
	else if (cpus)
		cJSON_AddNumberToObject(b, "cpus", n);
	if (!rc && mem && num_parse_u32(mem, 64, 65536, &n, "--memory (MB)", &e) < 0)
		rc = cli_error(2, "%s", err_str(&e));
	else if (mem)
		cJSON_AddNumberToObject(b, "memory_mb", n);
	if (image)
		cJSON_AddStringToObject(b, "image", image);
	if (init)
		cJSON_AddStringToObject(b, "init", init);
	if (env) {
		cJSON *o = cJSON_AddObjectToObject(b, "env");
		for (char **p = env; *p && !rc; p++)
			rc = add_env(o, *p);
	}
	if (secrets) {
		cJSON *a = cJSON_AddArrayToObject(b, "secrets");
		for (char **p = secrets; *p; p++)
			cJSON_AddItemToArray(a, cJSON_CreateString(*p));
	}
	if (all)
		cJSON_AddBoolToObject(b, "all_secrets", true);
	struct cli_resp r;
	if (!rc) {
		cli_settings();
		if (cli_call("POST", "/sandboxes", b, &r) < 0)
			rc = 1;
		else if (r.status != 200 && r.status != 201)
			rc = cli_fail(&r);
		else {
			cJSON *j = cli_json(&r);
			if (!j)
				rc = 1;
			else if (CLI.json)
				cli_print_json(j);
			else
				printf("%s %s (%s, %s)\n", r.existing ? "exists:" : "created:",
				       cJSON_GetObjectItem(j, "name")->valuestring,
				       cJSON_GetObjectItem(j, "id")->valuestring,
				       cJSON_GetObjectItem(j, "state")->valuestring);
			cJSON_Delete(j);
		}
		cli_resp_release(&r);
	}
	cJSON_Delete(b);
	free(env);
	free(secrets);
	free(pos);
	return rc;
}
