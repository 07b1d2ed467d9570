/* opt — the one command-line option parser of the host binary: every
 * `bhatti` command (cli/main.c) and the local commands `serve` and `user`
 * (daemon/local.h) declare their options in a table and get them back
 * parsed. Host only (not linked into lohar, which has its own few flags).
 *
 * Sits between argv and a command. Options may come before, between or
 * after the positional arguments; "--" ends them ("exec NAME -- ls -l");
 * "-" alone is positional. A value is "--name V" or "--name=V". -h and
 * --help are always known (args.help). Touches nothing but memory.
 *
 *   static const struct opt opts[] = {
 *           { "--cpus", NULL, OPT_VALUE }, { "--yes", "-y", OPT_FLAG },
 *           { "--env", NULL, OPT_LIST }, OPT_END,
 *   };
 *   const struct opt *tables[] = { opts, global_opts };
 *   struct args a;
 *   if (args_parse(&a, tables, 2, argc, argv, &e) < 0) ... usage error, e says why
 *   args_get(&a, "--cpus"), args_has(&a, "--yes"), args_list(&a, "--env")
 *   args_release(&a);
 */
#ifndef BHATTI_OPT_H
#define BHATTI_OPT_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum opt_kind {
	OPT_FLAG,    /* no value */
	OPT_VALUE,   /* one value; the last one given wins */
	OPT_LIST,    /* a value, repeatable: all are kept in order */
};

struct opt {
	const char *name;    /* as typed: "--cpus", "-n"; NULL ends a table */
	const char *alias;   /* another spelling ("-y" for "--yes"), or NULL */
	enum opt_kind kind;
};

#define OPT_END { NULL, NULL, OPT_FLAG }

/* What was given for one option of the tables. */
struct args_slot {
	const struct opt *o;
	bool set;
	char *value;         /* OPT_VALUE: points into argv */
	char **list;         /* OPT_LIST: NULL-terminated, pointers into argv */
	size_t nlist;
};

struct args {
	char **pos;          /* positional arguments, NULL-terminated (into argv) */
	size_t npos;
	int dashdash;        /* index in pos of the first one after "--", or -1 */
	bool help;           /* -h or --help */
	struct args_slot *slots;
	size_t nslots;
};

/* Parse argv[1..argc) (argv[0] is the command) against the tables (each
 * ends with OPT_END; a name is looked up in table order). On a usage error
 * returns -EINVAL with the message in e ("unknown option '--x'", "option
 * '--cpus' needs a value", "option '--root' takes no value"); a is then
 * released. */
int args_parse(struct args *a, const struct opt *const *tables, size_t ntables, int argc,
	       char **argv, struct err *e);
void args_release(struct args *a);

/* By the option's name (not its alias); the name must be in a table. */
bool args_has(const struct args *a, const char *name);
const char *args_get(const struct args *a, const char *name);   /* NULL: not given */
char *const *args_list(const struct args *a, const char *name); /* NULL: not given */

#endif
