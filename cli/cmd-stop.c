/* cmd-stop.c — `bhatti stop NAME` (cold: snapshot to disk, memory freed)
 * and `bhatti start NAME` (restore where it was): the two halves of one
 * verb pair, POST /sandboxes/:id/stop|start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* POST {"force":true}: retry a sandbox whose wake failed */
static int call_force(struct cli *c, const char *path, cJSON **ret)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddBoolToObject(b, "force", true);
	int rc = cli_call_json_body(c, "POST", path, b, ret);
	cJSON_Delete(b);
	return rc;
}

static int power(struct cli *c, const char *what)
{
	int rc = 0;
	bool force = args_has(&c->args, "--force");
	for (size_t i = 0; i < c->args.npos; i++) {
		struct buf path = BUF_INIT;
		cJSON *j;
		buf_addf(&path, "/sandboxes/%s/%s", c->esc[i], what);
		cli_progress_start(c, what[2] == 'o' ? "(saving its memory to disk)" : NULL,
				   "%s %s", what[2] == 'o' ? "stopping" : "starting", c->args.pos[i]);
		int r = force ? call_force(c, path.data, &j) : cli_call_json(c, "POST", path.data, &j);
		cli_progress_stop();
		buf_release(&path);
		if (r) {
			rc = r;
			continue;
		}
		if (c->json)
			cli_print_json(j);
		else
			printf("%s: %s\n", c->args.pos[i], cli_jstr(j, "state"));
		cJSON_Delete(j);
	}
	return rc;
}

static int stop(struct cli *c)
{
	return power(c, "stop");
}

static int start(struct cli *c)
{
	return power(c, "start");
}

const struct cli_cmd cmd_stop_entry = {
	.name = "stop",
	.summary = "stop a sandbox (snapshot to disk, memory freed)",
	.usage = "NAME... [--json]",
	.min_args = 1,
	.max_args = -1,
	.flags = CLI_NAMES,
	.run = stop,
};

static const struct opt start_opts[] = {
	{ "--force", NULL, OPT_FLAG },
	OPT_END,
};

const struct cli_cmd cmd_start_entry = {
	.name = "start",
	.summary = "start a stopped sandbox where it was",
	.usage = "NAME... [--force] [--json]",
	.help = "--force: retry a sandbox whose wake failed (state error) from its snapshot",
	.opts = start_opts,
	.min_args = 1,
	.max_args = -1,
	.flags = CLI_NAMES,
	.run = start,
};
