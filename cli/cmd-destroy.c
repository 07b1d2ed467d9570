/* cmd-destroy.c — `bhatti destroy NAME...`: stop the VM and remove every
 * file (DELETE /sandboxes/:id). Asks first on a terminal unless -y. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"

int cmd_destroy(int argc, char **argv)
{
	bool yes = false;
	char **pos;
	const struct cli_opt opts[] = { { "-y", NULL, &yes, NULL }, { "--yes", NULL, &yes, NULL } };
	if (cli_parse(argc, argv, opts, ARRAY_SIZE(opts), &pos, NULL) < 0)
		return 2;
	if (CLI.help || !pos[0]) {
		free(pos);
		fputs("usage: bhatti destroy [-y] NAME...\n", CLI.help ? stdout : stderr);
		return CLI.help ? 0 : 2;
	}
	if (!yes && !isatty(0)) {
		free(pos);
		return cli_error(2, "refusing to destroy without confirmation\n"
				    "hint: add -y (stdin is not a terminal, so I cannot ask)");
	}
	cli_settings();
	int rc = 0;
	for (char **p = pos; *p; p++) {
		if (!yes) {
			fprintf(stderr, "destroy sandbox '%s' and everything in it? [y/N] ", *p);
			char line[16];
			if (!fgets(line, sizeof(line), stdin) || (line[0] != 'y' && line[0] != 'Y')) {
				fprintf(stderr, "kept '%s'\n", *p);
				continue;
			}
		}
		char *esc = cli_escape(*p);
		struct buf path = BUF_INIT;
		buf_addf(&path, "/sandboxes/%s", esc);
		free(esc);
		struct cli_resp r;
		if (cli_call("DELETE", path.data, NULL, &r) < 0)
			rc = 1;
		else if (r.status != 204 && r.status != 200)
			rc = cli_fail(&r);
		else
			printf("destroyed %s\n", *p);
		cli_resp_release(&r);
		buf_release(&path);
	}
	free(pos);
	return rc;
}
