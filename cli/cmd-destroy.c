/* cmd-destroy.c — `bhatti destroy NAME...`: stop the VM and remove every
 * file (DELETE /sandboxes/:id). Asks first on a terminal unless -y. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int run(struct cli *c)
{
	bool yes = args_has(&c->args, "--yes");
	if (!yes && !isatty(0))
		return cli_error(2, "refusing to destroy without confirmation\n"
				    "hint: add -y (stdin is not a terminal, so I cannot ask)");
	int rc = 0;
	cJSON *done = cJSON_CreateArray();   /* --json: the names destroyed */
	for (size_t i = 0; i < c->args.npos; i++) {
		const char *name = c->args.pos[i];
		if (!yes) {
			fprintf(stderr, "destroy sandbox '%s' and everything in it? [y/N] ", name);
			char line[16];
			if (!fgets(line, sizeof(line), stdin) || (line[0] != 'y' && line[0] != 'Y')) {
				fprintf(stderr, "kept '%s'\n", name);
				continue;
			}
		}
		struct buf path = BUF_INIT;
		buf_addf(&path, "/sandboxes/%s", c->esc[i]);
		struct client_resp r;
		if (cli_call(c, "DELETE", path.data, NULL, &r) < 0)
			rc = 1;
		else if (r.status != 204 && r.status != 200)
			rc = cli_fail(&r);
		else if (c->json)
			cJSON_AddItemToArray(done, cJSON_CreateString(name));
		else
			printf("destroyed %s\n", name);
		client_resp_release(&r);
		buf_release(&path);
	}
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "destroyed", done);
		cli_print_json(o);
		cJSON_Delete(o);
	} else {
		cJSON_Delete(done);
	}
	return rc;
}

static const struct opt opts[] = { { "--yes", "-y", OPT_FLAG }, OPT_END };

const struct cli_cmd cmd_destroy_entry = {
	.name = "destroy",
	.alias = "rm",
	.summary = "destroy sandboxes and everything in them",
	.usage = "[-y|--yes] NAME... [--json]",
	.opts = opts,
	.min_args = 1,
	.max_args = -1,
	.flags = CLI_NAMES,
	.run = run,
};
