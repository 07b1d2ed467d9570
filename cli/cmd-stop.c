/* cmd-stop.c — `bhatti stop NAME` (cold: snapshot to disk, memory freed)
 * and `bhatti start NAME` (restore where it was): the two halves of one
 * verb pair, POST /sandboxes/:id/stop|start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"

static int power(int argc, char **argv, const char *what)
{
	char **pos;
	if (cli_parse(argc, argv, NULL, 0, &pos, NULL) < 0)
		return 2;
	if (CLI.help || !pos[0]) {
		free(pos);
		fprintf(CLI.help ? stdout : stderr, "usage: bhatti %s NAME... [--json]\n", what);
		return CLI.help ? 0 : 2;
	}
	cli_settings();
	int rc = 0;
	for (char **p = pos; *p; p++) {
		char *esc = cli_escape(*p);
		struct buf path = BUF_INIT;
		buf_addf(&path, "/sandboxes/%s/%s", esc, what);
		free(esc);
		struct cli_resp r;
		if (cli_call("POST", path.data, NULL, &r) < 0) {
			rc = 1;
		} else if (r.status != 200) {
			rc = cli_fail(&r);
		} else {
			cJSON *j = cli_json(&r);
			if (j && CLI.json)
				cli_print_json(j);
			else if (j)
				printf("%s: %s\n", *p,
				       cJSON_GetStringValue(cJSON_GetObjectItem(j, "state")));
			cJSON_Delete(j);
		}
		cli_resp_release(&r);
		buf_release(&path);
	}
	free(pos);
	return rc;
}

int cmd_stop(int argc, char **argv)
{
	return power(argc, argv, "stop");
}

int cmd_start(int argc, char **argv)
{
	return power(argc, argv, "start");
}
