/* cmd-version.c — `bhatti version` and `bhatti help`: what this binary is
 * and which commands it has. Talks to nothing yet (the server version comes
 * with the daemon). */
#include <stdio.h>

#include "cli.h"

int cmd_version(int argc UNUSED, char **argv UNUSED)
{
	printf("bhatti %s\n", BHATTI_VERSION);
	return 0;
}

int cmd_help(int argc UNUSED, char **argv UNUSED)
{
	size_t n;
	const struct cli_cmd *cmds = cli_commands(&n);
	printf("usage: bhatti <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < n; i++)
		printf("  %-10s %s\n", cmds[i].name, cmds[i].summary);
	return 0;
}
