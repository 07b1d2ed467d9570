/* cmd-ps.c — `bhatti ps NAME`: the PTY sessions in a sandbox
 * (GET /sandboxes/:id/sessions). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "client.h"

int cmd_ps(int argc, char **argv)
{
	char **pos;
	if (cli_parse(argc, argv, NULL, 0, &pos, NULL) < 0)
		return 2;
	if (CLI.help || !pos[0] || pos[1]) {
		free(pos);
		fputs("usage: bhatti ps NAME [--json]\n", CLI.help ? stdout : stderr);
		return CLI.help ? 0 : 2;
	}
	cli_settings();
	char *esc = cli_escape(pos[0]);
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/sessions", esc);
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
		printf("%-12s %-8s %-9s %-11s %s\n", "SESSION", "STATE", "ATTACHED", "TTY", "COMMAND");
		cJSON *s;
		cJSON_ArrayForEach(s, j)
		{
			char state[16], cmd[256] = "";
			if (cJSON_IsTrue(cJSON_GetObjectItem(s, "running")))
				snprintf(state, sizeof(state), "running");
			else
				snprintf(state, sizeof(state), "exit %d",
					 cJSON_GetObjectItem(s, "exit_code")->valueint);
			cJSON *a;
			size_t n = 0;
			cJSON_ArrayForEach(a, cJSON_GetObjectItem(s, "argv"))
				n += (size_t)snprintf(cmd + n, n < sizeof(cmd) ? sizeof(cmd) - n : 0,
						      "%s%s", n ? " " : "", a->valuestring);
			printf("%-12s %-8s %-9s %-11s %s\n",
			       cJSON_GetStringValue(cJSON_GetObjectItem(s, "id")), state,
			       cJSON_IsTrue(cJSON_GetObjectItem(s, "attached")) ? "yes" : "no",
			       cJSON_GetStringValue(cJSON_GetObjectItem(s, "tty")), cmd);
		}
	}
	cJSON_Delete(j);
	cli_resp_release(&r);
	return rc;
}
