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

/* --egress allow|deny, --allow-host H, --allow-cidr C: the "egress" object
 * (lists without --egress mean deny: the server says so too). */
static int add_egress(cJSON *b, const struct args *a)
{
	const char *policy = args_get(a, "--egress");
	char *const *hosts = args_list(a, "--allow-host"), *const *cidrs = args_list(a, "--allow-cidr");
	if (!policy && !hosts && !cidrs)
		return 0;
	if (policy && strcmp(policy, "allow") != 0 && strcmp(policy, "deny") != 0)
		return cli_error(2, "--egress wants allow or deny, not '%s'", policy);
	cJSON *eg = cJSON_AddObjectToObject(b, "egress");
	if (policy)
		cJSON_AddStringToObject(eg, "policy", policy);
	cJSON *h = cJSON_AddArrayToObject(eg, "allow_hosts");
	for (char *const *p = hosts; p && *p; p++)
		cJSON_AddItemToArray(h, cJSON_CreateString(*p));
	cJSON *cs = cJSON_AddArrayToObject(eg, "allow_cidrs");
	for (char *const *p = cidrs; p && *p; p++)
		cJSON_AddItemToArray(cs, cJSON_CreateString(*p));
	return 0;
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
	const char *disk = args_get(a, "--disk-size");
	uint64_t bytes;
	if (!rc && disk && num_parse_size(disk, &bytes, "--disk-size", &e) < 0)
		rc = cli_error(2, "%s", err_str(&e));
	else if (disk)
		cJSON_AddNumberToObject(b, "disk_size", (double)bytes);
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
	if (args_has(a, "--keep-hot"))
		cJSON_AddBoolToObject(b, "keep_hot", true);
	if (!rc)
		rc = add_egress(b, a);
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
	{ "--keep-hot", NULL, OPT_FLAG },
	{ "--egress", NULL, OPT_VALUE }, { "--allow-host", NULL, OPT_LIST },
	{ "--allow-cidr", NULL, OPT_LIST },
	{ "--label", NULL, OPT_LIST },
	{ "--disk-size", NULL, OPT_VALUE },
	OPT_END,
};

const struct cli_cmd cmd_create_entry = {
	.name = "create",
	.summary = "create a sandbox",
	.usage = "[--name NAME] [--cpus N] [--memory MB] [--image TIER]\n"
		 "                     [--env K=V,K2=V2]... [--init SCRIPT] [--secret NAME]...\n"
		 "                     [--all-secrets] [--keep-hot] [--egress allow|deny]\n"
		 "                     [--allow-host H]... [--allow-cidr CIDR]... [--label K=V]...\n"
		 "                     [--disk-size SIZE] [--json]",
	.opts = opts,
	.max_args = 1,
	.run = run,
};
