/* cli.h — the CLI command table type and the command entry points.
 * Each command is `int cmd_<verb>(int argc, char **argv)` in
 * cli/cmd-<verb>.c; argv[0] is the verb. Returns the process exit code. */
#ifndef BHATTI_CLI_H
#define BHATTI_CLI_H

#include <stddef.h>

#include "util.h"

struct cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

const struct cli_cmd *cli_commands(size_t *ret_n);

int cmd_setup(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_destroy(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_shell(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_file(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_user(int argc, char **argv);

#endif
