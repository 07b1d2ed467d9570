/* cmd-ps.c — `bhatti ps NAME`: the PTY sessions in a sandbox
 * (GET /sandboxes/:id/sessions). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static int run(struct cli *c)
{
	struct buf path = BUF_INIT;
	cJSON *j;
	buf_addf(&path, "/sandboxes/%s/sessions", c->esc[0]);
	int rc = cli_call_json(c, "GET", path.data, &j);
	buf_release(&path);
	if (rc)
		return rc;
	if (c->json)
		cli_print_json(j);
	else {
		printf("%-12s %-8s %-9s %-11s %s\n", "SESSION", "STATE", "ATTACHED", "TTY", "COMMAND");
		cJSON *s;
		cJSON_ArrayForEach(s, j)
		{
			char state[16];
			struct buf cmd = BUF_INIT;
			if (cJSON_IsTrue(cJSON_GetObjectItem(s, "running")))
				snprintf(state, sizeof(state), "running");
			else if (cJSON_IsNumber(cJSON_GetObjectItem(s, "exit_code")))
				snprintf(state, sizeof(state), "exit %d", cli_jint(s, "exit_code"));
			else
				snprintf(state, sizeof(state), "exited");
			cJSON *a;
			cJSON_ArrayForEach(a, cJSON_GetObjectItem(s, "argv"))
				if (cJSON_IsString(a))
					buf_addf(&cmd, "%s%s", cmd.len ? " " : "", a->valuestring);
			printf("%-12s %-8s %-9s %-11s %.255s\n", cli_jstr(s, "id"), state,
			       cJSON_IsTrue(cJSON_GetObjectItem(s, "attached")) ? "yes" : "no",
			       cli_jstr(s, "tty")[0] ? cli_jstr(s, "tty") : "-", cmd.data);
			buf_release(&cmd);
		}
	}
	cJSON_Delete(j);
	return 0;
}

const struct cli_cmd cmd_ps_entry = {
	.name = "ps",
	.summary = "list the shell sessions in a sandbox",
	.usage = "NAME [--json]",
	.min_args = 1,
	.max_args = 1,
	.flags = CLI_NAME,
	.run = run,
};
