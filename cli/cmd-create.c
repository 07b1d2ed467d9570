/* cmd-create.c — `bhatti create`: a new sandbox (POST /sandboxes). Prints
 * the sandbox when it answers; idempotent by name (says so when it
 * already existed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "num.h"

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

static int run(struct cli *c)
{
	const struct args *a = &c->args;
	const char *name = args_get(a, "--name"), *cpus = args_get(a, "--cpus");
	const char *mem = args_get(a, "--memory"), *image = args_get(a, "--image");
	const char *init = args_get(a, "--init");
	char *const *env = args_list(a, "--env"), *const *secrets = args_list(a, "--secret");
	if (a->pos[0] && name)
		return cli_usage_error(c, "unexpected argument '%s'", a->pos[0]);
	if (a->pos[0])
		name = a->pos[0];   /* `bhatti create dev` works too */
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
		for (char *const *p = env; *p && !rc; p++)
			rc = add_env(o, *p);
	}
	if (secrets) {
		cJSON *arr = cJSON_AddArrayToObject(b, "secrets");
		for (char *const *p = secrets; *p; p++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(*p));
	}
	if (args_has(a, "--all-secrets"))
		cJSON_AddBoolToObject(b, "all_secrets", true);
	if (!rc)
		rc = cli_add_labels(c, b, "labels", args_list(a, "--label"));
	struct client_resp r;
	if (!rc) {
		/* the first create of an image and shape boots and snapshots its
		 * template (seconds); later ones clone it */
		cli_progress_start(c, "(the first create of an image and shape builds its template: "
				      "a few seconds)", "creating %s", name ? name : "a sandbox");
		int called = cli_call(c, "POST", "/sandboxes", b, &r);
		cli_progress_stop();
		if (called < 0)
			rc = 1;
		else if (r.status != 200 && r.status != 201)
			rc = cli_fail(&r);
		else {
			cJSON *j = cli_json(&r);
			if (!j)
				rc = 1;
			else if (c->json)
				cli_print_json(j);
			else
				printf("%s %s (%s, %s)\n", r.existing ? "exists:" : "created:",
				       cli_jstr(j, "name"), cli_jstr(j, "id"), cli_jstr(j, "state"));
			cJSON_Delete(j);
		}
		client_resp_release(&r);
	}
	cJSON_Delete(b);
	return rc;
}

static const struct opt opts[] = {
	{ "--name", NULL, OPT_VALUE },	 { "--cpus", NULL, OPT_VALUE },
	{ "--memory", NULL, OPT_VALUE }, { "--image", NULL, OPT_VALUE },
	{ "--init", NULL, OPT_VALUE },	 { "--env", NULL, OPT_LIST },
	{ "--secret", NULL, OPT_LIST },	 { "--all-secrets", NULL, OPT_FLAG },
	{ "--label", NULL, OPT_LIST },
	OPT_END,
};

const struct cli_cmd cmd_create_entry = {
	.name = "create",
	.summary = "create a sandbox",
	.usage = "[--name NAME] [--cpus N] [--memory MB] [--image TIER]\n"
		 "                     [--env K=V,K2=V2]... [--init SCRIPT] [--secret NAME]...\n"
		 "                     [--all-secrets] [--label K=V]... [--json]",
	.opts = opts,
	.max_args = 1,
	.run = run,
};
