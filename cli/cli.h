/* cli.h — the CLI's command entries and what a command gets to run.
 *
 * Each command is a `struct cli_cmd` defined in cli/cmd-<verb>.c (as
 * tmux's cmd_entry): its usage, its options (shared/opt.h), how many
 * positional arguments it takes, and its run function. cli/main.c holds
 * the one table of entries and does, once for every command: --help/-h,
 * usage errors (exit 2, "bhatti CMD: …" and the usage), the global
 * options --url, --token, --json (before or after the command), and the
 * URL escaping of sandbox names. A group (file, secret, user) lists its
 * subcommands as entries of their own.
 *
 * Sits between main.c and the command files; the helpers in cli.c print
 * errors and JSON for the commands (nothing in client/ prints).
 */
#ifndef BHATTI_CLI_H
#define BHATTI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <cjson/cJSON.h>

#include "client.h"
#include "opt.h"

#define EXIT_USAGE 2

enum {
	CLI_LOCAL = 1 << 0,   /* no daemon, no global options (serve, user) */
	CLI_NAME = 1 << 1,    /* the first positional is a name that goes into the URL */
	CLI_NAMES = 1 << 2,   /* every positional is */
	CLI_HIDDEN = 1 << 3,  /* not in help, completion or the man page (__complete …) */
};

struct cli;

struct cli_cmd {
	const char *name;
	const char *alias;            /* another name (the seed's: ls, rm, info, sh), or NULL */
	const char *summary;          /* one line for `bhatti help` */
	const char *usage;            /* what follows "bhatti <name> " */
	const char *help;             /* more lines for --help, or NULL */
	const struct opt *opts;       /* NULL: none */
	int min_args, max_args;       /* positional arguments; max -1: any number */
	unsigned flags;
	int (*run)(struct cli *c);    /* returns the exit code */
	int (*local)(const struct args *a);   /* CLI_LOCAL: daemon/local.h */
	const struct cli_cmd *subs;   /* a group: its subcommands, ending with a NULL name */
	const char *complete;         /* what its names complete to ("sandboxes", "secrets",
				       * "snapshots"); NULL: sandboxes for CLI_NAME(S), the
				       * secret group's secrets (cmd-completion.c) */
};

/* What a command gets. */
struct cli {
	const struct cli_cmd *cmd;
	const char *group;            /* the group cmd is a subcommand of, or NULL */
	struct args args;             /* its options and positional arguments */
	char **esc;                   /* esc[i]: args.pos[i] URL-escaped, when it is a name */
	bool json;                    /* --json */
	bool timing;                  /* --timing: where each request's time went, on stderr */
	const char *flag_url, *flag_token;
	const char *flag_ca;          /* --ca FILE: the CA of an https:// daemon */
	struct client_settings set;   /* resolved by cli_client() */
	struct client *client;
};

/* The command table (main.c), in the order `bhatti help` shows it. */
const struct cli_cmd *const *cli_commands(size_t *ret_n);

extern const struct cli_cmd cmd_setup_entry, cmd_version_entry, cmd_create_entry,
	cmd_list_entry, cmd_inspect_entry, cmd_exec_entry, cmd_shell_entry, cmd_ps_entry,
	cmd_file_entry, cmd_secret_entry, cmd_stop_entry, cmd_start_entry, cmd_destroy_entry,
	cmd_help_entry, cmd_events_entry, cmd_snapshot_entry, cmd_fork_entry, cmd_edit_entry,
	cmd_images_entry, cmd_update_entry, cmd_completion_entry, cmd_complete_entry,
	cmd_table_entry, cmd_man_entry, cmd_publish_entry, cmd_unpublish_entry, cmd_ports_entry,
	cmd_tui_entry;

/* The options every command but the local ones takes (--url, --token,
 * --json, --timing, --ca). */
const struct opt *cli_global_opts(void);

/* The command list of `bhatti help`, on stdout (cmd-version.c). */
void cli_print_help(void);

/* ---- helpers for the commands (cli.c) ---- */

/* The client, made on first use from the settings (flags > environment >
 * ~/.bhatti/config.yaml > default; a config file that cannot be read is
 * warned about on stderr). */
struct client *cli_client(struct cli *c);

/* A request with an optional JSON body. 0 when an answer came back (any
 * status); -1 with the error printed (cli_report) when not. */
int cli_call(struct cli *c, const char *method, const char *path, const cJSON *body,
	     struct client_resp *ret);
/* The same, a 2xx body streamed to fn (return false to stop). */
int cli_stream(struct cli *c, const char *method, const char *path, const cJSON *body,
	       const char *accept, bool (*fn)(const char *p, size_t n, void *arg), void *arg,
	       struct client_resp *ret);
/* A call whose answer must be 200 and JSON: 0 with the JSON in *ret
 * (caller deletes), else the exit code, the error printed. */
int cli_call_json(struct cli *c, const char *method, const char *path, cJSON **ret);
/* The same with a JSON body (NULL: none). */
int cli_call_json_body(struct cli *c, const char *method, const char *path, const cJSON *body,
		       cJSON **ret);
/* DELETE path, which must answer 204: "<what> '<name>' deleted" on
 * stderr; the exit code. */
int cli_delete(struct cli *c, const char *path, const char *what, const char *name);
/* PUT size bytes read from fd. */
int cli_upload(struct cli *c, const char *path, int fd, size_t size, struct client_resp *ret);

/* METHOD /sandboxes/<the first argument> (body may be NULL) answered by
 * a sandbox object, shown as --json or `inspect`'s lines; the exit code
 * (cmd-list.c). */
int cli_sandbox_call(struct cli *c, const char *method, const cJSON *body);

/* body[field] = {"K": "V", …} from a list of KEY=VALUE (NULL: nothing
 * added); EXIT_USAGE, said, for an entry without a key or '='. The
 * daemon checks the rules (valid.h). */
int cli_add_labels(struct cli *c, cJSON *body, const char *field, char *const *list);

/* On a terminal (stdout and stderr), unless --json: a line on stderr
 * that counts the seconds of a long request (SIGALRM, every 200 ms; the
 * client retries what it interrupts), with hint added after 1.5 s;
 * stop clears it. */
void cli_progress_start(const struct cli *c, const char *hint, const char *fmt, ...)
	PRINTF(3, 4);
void cli_progress_stop(void);

/* The usage of cmd (a subcommand of group, or NULL): every subcommand's
 * for a group; with more, also its help lines. */
void cli_usage(FILE *f, const char *group, const struct cli_cmd *cmd, bool more);
/* "bhatti CMD: message" and the usage on stderr; EXIT_USAGE. */
int cli_usage_error(const struct cli *c, const char *fmt, ...) PRINTF(2, 3);
/* "bhatti: message" (+ a hint when the daemon cannot be reached); 1. */
int cli_report(const struct err *e);
/* The API error of r ("bhatti: message" + a hint); 1. */
int cli_fail(const struct client_resp *r);
/* "bhatti: message"; returns code. */
int cli_error(int code, const char *fmt, ...) PRINTF(2, 3);
/* r's body as JSON (NULL, said on stderr, when it is not). */
cJSON *cli_json(const struct client_resp *r);
/* What a command did: o (taken) as JSON on stdout under --json, else the
 * text on f. */
void cli_said(const struct cli *c, FILE *f, cJSON *o, const char *fmt, ...) PRINTF(4, 5);
/* A JSON value as the --json output. */
void cli_print_json(const cJSON *j);
/* o[k] as a string ("" when missing) or an int (0 when missing). */
const char *cli_jstr(const cJSON *o, const char *k);
int cli_jint(const cJSON *o, const char *k);

#endif
