/* cmd-snapshot.c — `bhatti snapshot create|list|delete|resume` (named
 * snapshots: a copy of a running sandbox, resumed later as a new one) and
 * `bhatti fork NAME` (a running copy of a running sandbox, at once):
 * POST /sandboxes/:id/snapshot, GET /snapshots, DELETE /snapshots/:name,
 * POST /snapshots/:name/resume, POST /sandboxes/:id/fork. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* POST path with body; a 201 answer's JSON into *ret (caller deletes),
 * else the exit code with the error printed. */
static int post_created(struct cli *c, const char *path, const cJSON *body, cJSON **ret)
{
	struct client_resp r;
	int rc = 0;
	*ret = NULL;
	if (cli_call(c, "POST", path, body, &r) < 0)
		return 1;
	if (r.status != 201)
		rc = cli_fail(&r);
	else if (!(*ret = cli_json(&r)))
		rc = 1;
	client_resp_release(&r);
	return rc;
}

/* The new sandbox of a resume or fork. */
static int print_sandbox(struct cli *c, const char *verb, cJSON *j)
{
	if (c->json)
		cli_print_json(j);
	else
		printf("%s: %s (%s, %s)\n", verb, cli_jstr(j, "name"), cli_jstr(j, "id"),
		       cli_jstr(j, "state"));
	cJSON_Delete(j);
	return 0;
}

static int snap_create(struct cli *c)
{
	char *const *labels = args_list(&c->args, "--label");
	cJSON *b = cJSON_CreateObject(), *j;
	cJSON_AddStringToObject(b, "name", args_get(&c->args, "--name"));
	int rc = 0;
	if (labels) {
		cJSON *o = cJSON_AddObjectToObject(b, "labels");
		for (char *const *p = labels; *p && !rc; p++) {
			const char *eq = strchr(*p, '=');
			if (!eq || eq == *p) {
				rc = cli_error(2, "--label wants KEY=VALUE, not '%s'", *p);
				break;
			}
			char *k = xstrndup(*p, (size_t)(eq - *p));
			cJSON_DeleteItemFromObjectCaseSensitive(o, k);
			cJSON_AddStringToObject(o, k, eq + 1);
			free(k);
		}
	}
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/snapshot", c->esc[0]);
	if (!rc)
		rc = post_created(c, path.data, b, &j);
	if (!rc && c->json)
		cli_print_json(j);
	else if (!rc)
		printf("snapshot: %s of %s (%d MB)\n", cli_jstr(j, "name"), c->args.pos[0],
		       cli_jint(j, "size_mb"));
	if (!rc)
		cJSON_Delete(j);
	buf_release(&path);
	cJSON_Delete(b);
	return rc;
}

static int snap_list(struct cli *c)
{
	cJSON *j, *s;
	int rc = cli_call_json(c, "GET", "/snapshots", &j);
	if (rc)
		return rc;
	if (c->json) {
		cli_print_json(j);
	} else if (cJSON_GetArraySize(j) == 0) {
		puts("no snapshots yet: bhatti snapshot create SANDBOX --name NAME");
	} else {
		printf("%-20s %-20s %-9s %4s %7s %8s %s\n", "NAME", "SOURCE", "STATUS", "CPUS",
		       "MEMORY", "SIZE", "CREATED");
		cJSON_ArrayForEach(s, j)
			printf("%-20s %-20s %-9s %4d %5dMB %6dMB %s\n", cli_jstr(s, "name"),
			       cli_jstr(s, "source_sandbox"), cli_jstr(s, "status"),
			       cli_jint(s, "cpus"), cli_jint(s, "memory_mb"), cli_jint(s, "size_mb"),
			       cli_jstr(s, "created_at"));
	}
	cJSON_Delete(j);
	return 0;
}

static int snap_delete(struct cli *c)
{
	struct buf path = BUF_INIT;
	buf_addf(&path, "/snapshots/%s", c->esc[0]);
	int rc = cli_delete(c, path.data, "snapshot", c->args.pos[0]);
	buf_release(&path);
	return rc;
}

/* A new sandbox from path (a resume or a fork), named by --name. */
static int copy_to_new(struct cli *c, const char *path, const char *verb)
{
	const char *name = args_get(&c->args, "--name");
	cJSON *b = cJSON_CreateObject(), *j;
	if (name)
		cJSON_AddStringToObject(b, "name", name);
	int rc = post_created(c, path, b, &j);
	cJSON_Delete(b);
	return rc ? rc : print_sandbox(c, verb, j);
}

static int snap_resume(struct cli *c)
{
	struct buf path = BUF_INIT;
	buf_addf(&path, "/snapshots/%s/resume", c->esc[0]);
	int rc = copy_to_new(c, path.data, "resumed");
	buf_release(&path);
	return rc;
}

static int fork_run(struct cli *c)
{
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/fork", c->esc[0]);
	int rc = copy_to_new(c, path.data, "forked");
	buf_release(&path);
	return rc;
}

static const struct opt create_opts[] = {
	{ "--name", NULL, OPT_VALUE }, { "--label", NULL, OPT_LIST }, OPT_END,
};
static const struct opt name_opts[] = { { "--name", NULL, OPT_VALUE }, OPT_END };

static int snap_create_checked(struct cli *c)
{
	if (!args_get(&c->args, "--name"))
		return cli_usage_error(c, "--name is required");
	return snap_create(c);
}

static const struct cli_cmd subs[] = {
	{ .name = "create", .usage = "SANDBOX --name NAME [--label K=V]... [--json]",
	  .help = "  a copy of the running sandbox (memory, processes, disk); it goes on\n",
	  .opts = create_opts, .min_args = 1, .max_args = 1, .flags = CLI_NAME,
	  .run = snap_create_checked },
	{ .name = "list", .usage = "[--json]", .run = snap_list },
	{ .name = "delete", .usage = "NAME", .min_args = 1, .max_args = 1, .flags = CLI_NAME,
	  .run = snap_delete },
	{ .name = "resume", .usage = "NAME [--name SANDBOX] [--json]",
	  .help = "  a new sandbox from the snapshot, with a new identity\n",
	  .opts = name_opts, .min_args = 1, .max_args = 1, .flags = CLI_NAME,
	  .run = snap_resume },
	{ .name = NULL },
};

const struct cli_cmd cmd_snapshot_entry = {
	.name = "snapshot",
	.summary = "named snapshots: create, list, delete, resume as a new sandbox",
	.subs = subs,
};

const struct cli_cmd cmd_fork_entry = {
	.name = "fork",
	.summary = "a running copy of a running sandbox",
	.usage = "NAME [--name NEW] [--json]",
	.opts = name_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CLI_NAME,
	.run = fork_run,
};
