/* main.c — entry point of the host binary `bhatti` and its one command
 * table. `bhatti serve` runs the daemon; every other command is the CLI.
 * Commands live in cli/cmd-<verb>.c and are registered in cli_cmds[]. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "serve.h"

static const struct cli_cmd cli_cmds[] = {
	{ "serve", "run the daemon (HTTP API, engine, store)", cmd_serve },
	{ "setup", "save the daemon's URL and your API key (~/.bhatti/config.yaml)", cmd_setup },
	{ "version", "CLI and daemon versions, the API URL in use", cmd_version },
	{ "create", "create a sandbox", cmd_create },
	{ "list", "list your sandboxes", cmd_list },
	{ "inspect", "show one sandbox", cmd_inspect },
	{ "exec", "run a command in a sandbox: exec NAME -- cmd args...", cmd_exec },
	{ "shell", "interactive shell in a sandbox (Ctrl+\\ detaches)", cmd_shell },
	{ "ps", "list the shell sessions in a sandbox", cmd_ps },
	{ "file", "read, write or list files in a sandbox", cmd_file },
	{ "secret", "set, list or delete your secrets", cmd_secret },
	{ "stop", "stop a sandbox (snapshot to disk, memory freed)", cmd_stop },
	{ "start", "start a stopped sandbox where it was", cmd_start },
	{ "destroy", "destroy sandboxes and everything in them", cmd_destroy },
	{ "user", "manage users and API keys (local, on the store)", cmd_user },
	{ "help", "show this help", cmd_help },
};

const struct cli_cmd *cli_commands(size_t *ret_n)
{
	*ret_n = ARRAY_SIZE(cli_cmds);
	return cli_cmds;
}

/* The global options may come before the command: "bhatti --url U list"
 * is "bhatti list --url U" (the command is moved to argv[1]). */
static void command_first(int argc, char **argv)
{
	int i = 1;
	while (i < argc) {
		const char *a = argv[i];
		if (strcmp(a, "--url") == 0 || strcmp(a, "--token") == 0)
			i += 2;
		else if (strncmp(a, "--url=", 6) == 0 || strncmp(a, "--token=", 8) == 0 ||
			 strcmp(a, "--json") == 0)
			i++;
		else
			break;
	}
	if (i == 1 || i >= argc)
		return;
	char *cmd = argv[i];
	memmove(argv + 2, argv + 1, (size_t)(i - 1) * sizeof(char *));
	argv[1] = cmd;
}

int main(int argc, char **argv)
{
	command_first(argc, argv);
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
