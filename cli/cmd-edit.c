/* cmd-edit.c — `bhatti edit NAME [--name NEW] [--label K=V]... [--unlabel
 * K]... [--keep-hot=BOOL] [--egress allow|deny] [--allow-host H]...
 * [--allow-cidr C]...`: change a sandbox in place with one PATCH
 * /sandboxes/:id (docs/api.md); prints the sandbox as it is then.
 *
 * Sits between the command table and the client; each flag maps to one
 * field of the PATCH body, and the daemon checks them all before it
 * changes anything. (keep_hot and egress are the thermal manager's and
 * the network's: a daemon without them refuses the field.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void add_strings(cJSON *body, const char *field, char *const *list)
{
	if (!list)
		return;
	cJSON *arr = cJSON_AddArrayToObject(body, field);
	for (char *const *p = list; *p; p++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(*p));
}

/* The PATCH body from the flags; EXIT_USAGE (said) on a bad one. */
static int body_from_flags(struct cli *c, cJSON *b)
{
	const struct args *a = &c->args;
	const char *name = args_get(a, "--name"), *hot = args_get(a, "--keep-hot");
	const char *egress = args_get(a, "--egress");
	if (name)
		cJSON_AddStringToObject(b, "name", name);
	int rc = cli_add_labels(c, b, "labels", args_list(a, "--label"));
	if (rc)
		return rc;
	add_strings(b, "unlabel", args_list(a, "--unlabel"));
	if (hot) {
		if (strcmp(hot, "true") != 0 && strcmp(hot, "false") != 0)
			return cli_usage_error(c, "--keep-hot wants true or false, not '%s'", hot);
		cJSON_AddBoolToObject(b, "keep_hot", hot[0] == 't');
	}
	char *const *hosts = args_list(a, "--allow-host"), *const *cidrs = args_list(a, "--allow-cidr");
	if (egress && strcmp(egress, "allow") != 0 && strcmp(egress, "deny") != 0)
		return cli_usage_error(c, "--egress wants allow or deny, not '%s'", egress);
	if (egress || hosts || cidrs) {
		cJSON *o = cJSON_AddObjectToObject(b, "egress");
		if (egress)
			cJSON_AddStringToObject(o, "policy", egress);
		add_strings(o, "allow_hosts", hosts);
		add_strings(o, "allow_cidrs", cidrs);
	}
	if (cJSON_GetArraySize(b) == 0)
		return cli_usage_error(c, "nothing to change");
	return 0;
}

static int run(struct cli *c)
{
	cJSON *b = cJSON_CreateObject();
	int rc = body_from_flags(c, b);
	if (!rc)
		rc = cli_sandbox_call(c, "PATCH", b);
	cJSON_Delete(b);
	return rc;
}

static const struct opt opts[] = {
	{ "--name", NULL, OPT_VALUE },	    { "--label", NULL, OPT_LIST },
	{ "--unlabel", NULL, OPT_LIST },    { "--keep-hot", NULL, OPT_VALUE },
	{ "--egress", NULL, OPT_VALUE },    { "--allow-host", NULL, OPT_LIST },
	{ "--allow-cidr", NULL, OPT_LIST }, OPT_END,
};

const struct cli_cmd cmd_edit_entry = {
	.name = "edit",
	.summary = "rename a sandbox, change its labels and settings",
	.usage = "NAME [--name NEW] [--label K=V]... [--unlabel K]... [--keep-hot=BOOL]\n"
		 "                  [--egress allow|deny] [--allow-host H]... [--allow-cidr C]... [--json]",
	.help = "--label sets or replaces a label, --unlabel removes one (16 at most; keys\n"
		"[prefix/]name, the prefix 'bhatti.sh/' reserved; values [A-Za-z0-9._-]).\n"
		"--keep-hot=true keeps it from being paused or snapshotted when idle.\n"
		"--egress deny with --allow-host/--allow-cidr: only those are reachable.",
	.opts = opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CLI_NAME,
	.run = run,
};
