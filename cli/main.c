/* main.c — entry point of the host binary `bhatti` and its one command
 * table. `bhatti serve` runs the daemon; every other command is the CLI.
 * Commands live in cli/cmd-<verb>.c and are registered in cli_cmds[]. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "serve.h"

static const struct cli_cmd cli_cmds[] = {
	{ "serve", "run the daemon (HTTP API, engine, store)", cmd_serve },
	{ "version", "print the CLI version", cmd_version },
	{ "user", "manage users and API keys (local, on the store)", cmd_user },
	{ "help", "show this help", cmd_help },
};

const struct cli_cmd *cli_commands(size_t *ret_n)
{
	*ret_n = ARRAY_SIZE(cli_cmds);
	return cli_cmds;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cmd_help(argc, argv);
		return 2;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)
		return cmd_version(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(argc - 1, argv + 1);
	for (size_t i = 0; i < ARRAY_SIZE(cli_cmds); i++)
		if (strcmp(argv[1], cli_cmds[i].name) == 0)
			return cli_cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "bhatti: unknown command '%s'\nhint: run 'bhatti help' for the list\n",
		argv[1]);
	return 2;
}
