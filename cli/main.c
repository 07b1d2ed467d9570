/* main.c — entry point of the host binary `bhatti` and its one command
 * table. `bhatti serve` runs the daemon and `bhatti user` administers the
 * local store (both in daemon/, seen only through daemon/local.h); every
 * other command is the CLI (cli/cmd-<verb>.c).
 *
 * Done here once for every command, from its entry (cli.h): finding the
 * command (and a group's subcommand) among the global options, parsing
 * its options (shared/opt.h), --help, usage errors, and URL-escaping the
 * sandbox names. The commands get all of it parsed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../daemon/local.h"
#include "cli.h"
#include "httpc.h"

/* Options every command but the local ones takes, before or after it. */
static const struct opt global_opts[] = {
	{ "--url", NULL, OPT_VALUE },
	{ "--token", NULL, OPT_VALUE },
	{ "--json", NULL, OPT_FLAG },
	{ "--timing", NULL, OPT_FLAG },
	{ "--ca", NULL, OPT_VALUE },
	OPT_END,
};

static const struct cli_cmd cmd_serve_entry = {
	.name = "serve",
	.summary = "run the daemon (HTTP API, engine, store)",
	.usage = "[--config FILE] [--listen HOST:PORT] [--data-dir DIR]\n"
		 "                    [--log debug|info|warn|error]",
	.help = "\nRuns the daemon. Config: --config, else $BHATTI_CONFIG, else\n"
		"/etc/bhatti/config.yaml (all defaults when that file is missing).",
	.opts = serve_opts,
	.flags = CLI_LOCAL,
	.local = serve_main,
};

static const struct cli_cmd user_subs[] = {
	{ .name = "create",
	  .usage = "--name NAME [--max-sandboxes N] [--max-cpus N] [--max-memory MB] [--json]",
	  .opts = admin_create_opts, .max_args = 1, .flags = CLI_LOCAL,
	  .local = admin_user_create },
	{ .name = "list", .usage = "[--json]", .opts = admin_list_opts, .flags = CLI_LOCAL,
	  .local = admin_user_list },
	{ .name = "rotate-key", .usage = "[--name] NAME [--json]", .opts = admin_name_opts,
	  .max_args = 1, .flags = CLI_LOCAL, .local = admin_user_rotate_key },
	{ .name = "delete", .usage = "[--name] NAME [--json]", .opts = admin_name_opts,
	  .max_args = 1, .flags = CLI_LOCAL, .local = admin_user_delete },
	{ .name = NULL },
};

static const struct cli_cmd cmd_user_entry = {
	.name = "user",
	.summary = "manage users and API keys (local, on the store)",
	.help = "options of every command: --data-dir DIR (default: data_dir of the config), "
		"--config FILE",
	.flags = CLI_LOCAL,
	.subs = user_subs,
};

static const struct cli_cmd *const cli_cmds[] = {
	&cmd_serve_entry, &cmd_setup_entry, &cmd_version_entry, &cmd_create_entry,
	&cmd_list_entry, &cmd_inspect_entry, &cmd_edit_entry, &cmd_exec_entry, &cmd_shell_entry,
	&cmd_tui_entry,
	&cmd_ps_entry, &cmd_file_entry, &cmd_secret_entry, &cmd_stop_entry,
	&cmd_start_entry, &cmd_destroy_entry, &cmd_publish_entry, &cmd_unpublish_entry,
	&cmd_ports_entry, &cmd_snapshot_entry, &cmd_fork_entry,
	&cmd_events_entry, &cmd_images_entry, &cmd_update_entry, &cmd_user_entry,
	&cmd_completion_entry, &cmd_help_entry, &cmd_complete_entry, &cmd_table_entry,
	&cmd_man_entry,
};

const struct opt *cli_global_opts(void)
{
	return global_opts;
}

const struct cli_cmd *const *cli_commands(size_t *ret_n)
{
	*ret_n = ARRAY_SIZE(cli_cmds);
	return cli_cmds;
}

/* ---- finding the command ------------------------------------------------- */

/* The index of the first argument from i on that is not a global option
 * (or its value). */
static int skip_globals(int argc, char **argv, int i)
{
	while (i < argc) {
		const char *a = argv[i];
		size_t len = strcspn(a, "=");
		const struct opt *o = global_opts;
		while (o->name && !(strlen(o->name) == len && strncmp(o->name, a, len) == 0))
			o++;
		if (!o->name)
			break;
		i += o->kind == OPT_VALUE && !a[len] ? 2 : 1;
	}
	return i;
}

/* Move argv[i] to argv[at], shifting those between up by one. */
static void to_front(char **argv, int at, int i)
{
	char *word = argv[i];
	memmove(argv + at + 1, argv + at, (size_t)(i - at) * sizeof(char *));
	argv[at] = word;
}

static const struct cli_cmd *find_sub(const struct cli_cmd *group, const char *name)
{
	for (const struct cli_cmd *s = group->subs; s->name; s++)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* ---- running it ------------------------------------------------------------- */

static int run(const char *group, const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli c = { .cmd = cmd, .group = group };
	const struct opt *tables[] = { cmd->opts, global_opts };
	size_t ntables = cmd->flags & CLI_LOCAL ? 1 : 2;
	struct err e = ERR_INIT;
	if (args_parse(&c.args, tables, ntables, argc, argv, &e) < 0)
		return cli_usage_error(&c, "%s", err_str(&e));
	int rc;
	if (c.args.help) {
		cli_usage(stdout, group, cmd, true);
		rc = 0;
	} else if (c.args.npos < (size_t)cmd->min_args) {
		rc = cli_usage_error(&c, "too few arguments");
	} else if (cmd->max_args >= 0 && c.args.npos > (size_t)cmd->max_args) {
		rc = cli_usage_error(&c, "unexpected argument '%s'", c.args.pos[cmd->max_args]);
	} else if (cmd->local) {
		rc = cmd->local(&c.args);
	} else {
		c.json = args_has(&c.args, "--json");
		c.timing = args_has(&c.args, "--timing");
		c.flag_url = args_get(&c.args, "--url");
		c.flag_token = args_get(&c.args, "--token");
		c.flag_ca = args_get(&c.args, "--ca");
		c.esc = xcalloc(c.args.npos + 1, sizeof(*c.esc));
		for (size_t i = 0; i < c.args.npos; i++)
			if ((cmd->flags & CLI_NAMES) || (i == 0 && (cmd->flags & CLI_NAME)))
				c.esc[i] = httpc_escape(c.args.pos[i]);
		rc = cmd->run(&c);
		for (size_t i = 0; i < c.args.npos; i++)
			free(c.esc[i]);
		free(c.esc);
	}
	client_free(c.client);
	client_settings_release(&c.set);
	args_release(&c.args);
	return rc;
}

int main(int argc, char **argv)
{
	int i = skip_globals(argc, argv, 1);
	size_t n;
	const struct cli_cmd *const *cmds = cli_commands(&n);
	if (i >= argc) {
		cli_print_help();
		return EXIT_USAGE;
	}
	to_front(argv, 1, i);
	const char *word = argv[1];
	if (strcmp(word, "--version") == 0 || strcmp(word, "-v") == 0)
		word = "version";
	else if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0)
		word = "help";
	const struct cli_cmd *cmd = NULL;
	for (size_t k = 0; k < n && !cmd; k++)
		if (strcmp(word, cmds[k]->name) == 0 ||
		    (cmds[k]->alias && strcmp(word, cmds[k]->alias) == 0))
			cmd = cmds[k];
	if (!cmd) {
		fprintf(stderr, "bhatti: unknown command '%s'\nhint: run 'bhatti help' for the list\n",
			word);
		return EXIT_USAGE;
	}
	argc--, argv++;
	if (!cmd->subs)
		return run(NULL, cmd, argc, argv);

	/* a group: its subcommand is the next word that is not a global option */
	int j = cmd->flags & CLI_LOCAL ? 1 : skip_globals(argc, argv, 1);
	const char *sw = j < argc ? argv[j] : NULL;
	if (!sw || strcmp(sw, "help") == 0 || strcmp(sw, "--help") == 0 || strcmp(sw, "-h") == 0) {
		cli_usage(sw ? stdout : stderr, NULL, cmd, true);
		return sw ? 0 : EXIT_USAGE;
	}
	const struct cli_cmd *sub = find_sub(cmd, sw);
	if (!sub) {
		fprintf(stderr, "bhatti: unknown command '%s %s'\nhint: run 'bhatti %s --help' for "
				"the usage\n", cmd->name, sw, cmd->name);
		return EXIT_USAGE;
	}
	to_front(argv, 1, j);
	return run(cmd->name, sub, argc - 1, argv + 1);
}
