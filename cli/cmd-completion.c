/* cmd-completion.c — what is generated from the command table (cli.h):
 *
 *   bhatti completion bash|zsh|fish   a shell completion script: commands,
 *                                     aliases, subcommands, flags, and
 *                                     names completed from the daemon
 *   bhatti __complete KIND            (hidden) the names the scripts
 *                                     complete: sandboxes or secrets, from
 *                                     a cache younger than CACHE_S, else
 *                                     the daemon (1 s to connect)
 *   bhatti __table                    (hidden) one line per command or
 *                                     subcommand: "NAME<TAB>FLAGS<TAB>KIND"
 *                                     (what tests compare with the docs)
 *   bhatti __man                      (hidden) the man page bhatti.1, made
 *                                     by `make` (build/bhatti.1)
 *
 * Sits between the table and stdout; __complete also reads the daemon
 * and writes its cache file ($XDG_RUNTIME_DIR or /tmp,
 * bhatti-complete-<uid>-<kind>, mode 0600).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define CACHE_S 10                 /* names are fresh enough for this long */
#define COMPLETE_CONNECT_MS 1000   /* a daemon that is not there: give up soon */

/* ---- the table, leaf by leaf ---------------------------------------------- */

/* What a positional argument of c completes to: "sandboxes", "secrets" or
 * NULL. */
static const char *name_kind(const char *group, const struct cli_cmd *c)
{
	if (c->complete)
		return c->complete;
	if (!(c->flags & (CLI_NAME | CLI_NAMES)))
		return NULL;
	return group && strcmp(group, "secret") == 0 ? "secrets" : "sandboxes";
}

typedef void (*leaf_fn)(const char *group, const struct cli_cmd *c, void *arg);

/* Every command a user types (the hidden ones not), and every
 * subcommand of a group, in the table's order. */
static void each_leaf(leaf_fn fn, void *arg)
{
	size_t n;
	const struct cli_cmd *const *cmds = cli_commands(&n);
	for (size_t i = 0; i < n; i++) {
		if (cmds[i]->flags & CLI_HIDDEN)
			continue;
		if (!cmds[i]->subs) {
			fn(NULL, cmds[i], arg);
			continue;
		}
		for (const struct cli_cmd *s = cmds[i]->subs; s->name; s++)
			fn(cmds[i]->name, s, arg);
	}
}

/* The flags of c, space-separated (values: only those taking a value). */
static void flags_of(const struct cli_cmd *c, bool values, struct buf *out)
{
	const struct opt *tables[] = { c->opts, c->flags & CLI_LOCAL ? NULL : cli_global_opts() };
	for (size_t t = 0; t < ARRAY_SIZE(tables); t++)
		for (const struct opt *o = tables[t]; o && o->name; o++) {
			if (values && o->kind == OPT_FLAG)
				continue;
			buf_addf(out, "%s%s", out->len ? " " : "", o->name);
			if (o->alias)
				buf_addf(out, " %s", o->alias);
		}
}

/* ---- bhatti __table --------------------------------------------------------- */

static void table_line(const char *group, const struct cli_cmd *c, void *arg UNUSED)
{
	struct buf f = BUF_INIT;
	flags_of(c, false, &f);
	const char *kind = name_kind(group, c);
	printf("%s%s%s\t%s\t%s\n", group ? group : "", group ? " " : "", c->name, f.data,
	       kind ? kind : "-");
	buf_release(&f);
}

static int table(struct cli *c UNUSED)
{
	each_leaf(table_line, NULL);
	return 0;
}

/* ---- bash (and zsh through bashcompinit) ------------------------------------ */

static void bash_spec(const char *group, const struct cli_cmd *c, void *arg UNUSED)
{
	struct buf f = BUF_INIT, v = BUF_INIT;
	flags_of(c, false, &f);
	flags_of(c, true, &v);
	const char *kind = name_kind(group, c);
	printf("\t\"%s%s%s\") opts=\"%s\"; vopts=\"%s\"; kind=\"%s\"; many=%d ;;\n",
	       group ? group : "", group ? " " : "", c->name, f.data, v.data, kind ? kind : "",
	       (c->flags & CLI_NAMES) ? 1 : 0);
	if (!group && c->alias)
		printf("\t\"%s\") _bhatti_spec \"%s\" ;;\n", c->alias, c->name);
	buf_release(&f);
	buf_release(&v);
}

static void bash_script(void)
{
	size_t n;
	const struct cli_cmd *const *cmds = cli_commands(&n);
	struct buf words = BUF_INIT, groups = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (cmds[i]->flags & CLI_HIDDEN)
			continue;
		buf_addf(&words, "%s%s", words.len ? " " : "", cmds[i]->name);
		if (cmds[i]->alias)
			buf_addf(&words, " %s", cmds[i]->alias);
		if (cmds[i]->subs) {
			buf_addf(&groups, "%s%s", groups.len ? " " : "", cmds[i]->name);
		}
	}
	printf("# bash completion for bhatti (generated from its command table:\n"
	       "# bhatti completion bash). Names come from the daemon, cached %d s.\n"
	       "_bhatti_spec() {\n"
	       "\topts=\"\"; vopts=\"\"; kind=\"\"; many=0\n"
	       "\tcase \"$1\" in\n", CACHE_S);
	each_leaf(bash_spec, NULL);
	printf("\tesac\n}\n\n");
	printf("_bhatti_subs() {\n\tcase \"$1\" in\n");
	for (size_t i = 0; i < n; i++) {
		if (!cmds[i]->subs || (cmds[i]->flags & CLI_HIDDEN))
			continue;
		printf("\t%s) echo \"", cmds[i]->name);
		for (const struct cli_cmd *s = cmds[i]->subs; s->name; s++)
			printf("%s%s", s == cmds[i]->subs ? "" : " ", s->name);
		printf("\" ;;\n");
	}
	printf("\tesac\n}\n\n");
	printf("_bhatti() {\n"
	       "\tlocal cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
	       "\tlocal cmd=\"\" sub=\"\" npos=0 i w skip=0 opts vopts kind many\n"
	       "\tlocal groups=\" %s \"\n"
	       "\tCOMPREPLY=()\n"
	       "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	       "\t\tw=\"${COMP_WORDS[i]}\"\n"
	       "\t\tif ((skip)); then skip=0; continue; fi\n"
	       "\t\tcase \"$w\" in\n"
	       "\t\t--url|--token) skip=1; continue ;;\n"
	       "\t\t--) continue ;;\n"
	       "\t\t-*) [[ -n $cmd && \" $vopts \" == *\" $w \"* ]] && skip=1; continue ;;\n"
	       "\t\tesac\n"
	       "\t\tif [[ -z $cmd ]]; then\n"
	       "\t\t\tcmd=$w\n"
	       "\t\t\t[[ $groups != *\" $cmd \"* ]] && _bhatti_spec \"$cmd\"\n"
	       "\t\telif [[ $groups == *\" $cmd \"* && -z $sub ]]; then\n"
	       "\t\t\tsub=$w; _bhatti_spec \"$cmd $sub\"\n"
	       "\t\telse\n"
	       "\t\t\tnpos=$((npos + 1))\n"
	       "\t\tfi\n"
	       "\tdone\n"
	       "\tif [[ -z $cmd ]]; then\n"
	       "\t\tCOMPREPLY=($(compgen -W \"%s\" -- \"$cur\"))\n"
	       "\t\treturn\n"
	       "\tfi\n"
	       "\tif [[ $groups == *\" $cmd \"* && -z $sub ]]; then\n"
	       "\t\tCOMPREPLY=($(compgen -W \"$(_bhatti_subs \"$cmd\")\" -- \"$cur\"))\n"
	       "\t\treturn\n"
	       "\tfi\n"
	       "\tif [[ \" $vopts \" == *\" $prev \"* ]]; then\n"
	       "\t\tcase \"$prev\" in\n"
	       "\t\t--from|--config|--data-dir) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
	       "\t\tesac\n"
	       "\t\treturn\n"
	       "\tfi\n"
	       "\tif [[ $cur == -* ]]; then\n"
	       "\t\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
	       "\t\treturn\n"
	       "\tfi\n"
	       "\tif [[ -n $kind ]] && ((npos == 0 || many)); then\n"
	       "\t\tCOMPREPLY=($(compgen -W \"$(command bhatti __complete \"$kind\" 2>/dev/null)\" "
	       "-- \"$cur\"))\n"
	       "\tfi\n"
	       "}\n"
	       "complete -F _bhatti bhatti\n",
	       groups.data, words.data);
	buf_release(&words);
	buf_release(&groups);
}

/* ---- fish ---------------------------------------------------------------------- */

static void fish_leaf(const char *group, const struct cli_cmd *c, void *arg UNUSED)
{
	struct buf cond = BUF_INIT;
	if (group)
		buf_addf(&cond, "__fish_seen_subcommand_from %s; and __fish_seen_subcommand_from %s",
			 group, c->name);
	else
		buf_addf(&cond, "__fish_seen_subcommand_from %s%s%s", c->name, c->alias ? " " : "",
			 c->alias ? c->alias : "");
	const struct opt *tables[] = { c->opts, c->flags & CLI_LOCAL ? NULL : cli_global_opts() };
	for (size_t t = 0; t < ARRAY_SIZE(tables); t++)
		for (const struct opt *o = tables[t]; o && o->name; o++) {
			bool lng = o->name[1] == '-';
			printf("complete -c bhatti -n '%s' -%s %s%s%s%s\n", cond.data, lng ? "l" : "o",
			       o->name + (lng ? 2 : 1), o->kind == OPT_FLAG ? "" : " -r",
			       o->alias && o->alias[1] != '-' ? " -s " : "",
			       o->alias && o->alias[1] != '-' ? o->alias + 1 : "");
		}
	const char *kind = name_kind(group, c);
	if (kind)
		printf("complete -c bhatti -n '%s' -f -a '(bhatti __complete %s 2>/dev/null)'\n",
		       cond.data, kind);
	buf_release(&cond);
}

static void fish_script(void)
{
	size_t n;
	const struct cli_cmd *const *cmds = cli_commands(&n);
	printf("# fish completion for bhatti (generated from its command table:\n"
	       "# bhatti completion fish)\n"
	       "complete -c bhatti -f\n");
	for (size_t i = 0; i < n; i++) {
		const struct cli_cmd *c = cmds[i];
		if (c->flags & CLI_HIDDEN)
			continue;
		printf("complete -c bhatti -n '__fish_use_subcommand' -a %s -d '%s'\n", c->name,
		       c->summary);
		if (c->alias)
			printf("complete -c bhatti -n '__fish_use_subcommand' -a %s -d '%s'\n",
			       c->alias, c->summary);
		for (const struct cli_cmd *s = c->subs; s && s->name; s++)
			printf("complete -c bhatti -n '__fish_seen_subcommand_from %s' -a %s\n",
			       c->name, s->name);
	}
	each_leaf(fish_leaf, NULL);
}

static int completion(struct cli *c)
{
	const char *shell = c->args.pos[0];
	if (strcmp(shell, "bash") == 0) {
		bash_script();
	} else if (strcmp(shell, "zsh") == 0) {
		printf("# zsh completion for bhatti: the bash one through bashcompinit\n"
		       "autoload -U +X bashcompinit && bashcompinit\n");
		bash_script();
	} else if (strcmp(shell, "fish") == 0) {
		fish_script();
	} else {
		return cli_usage_error(c, "no completion for '%s' (bash, zsh or fish)", shell);
	}
	return 0;
}

/* ---- bhatti __complete KIND ------------------------------------------------------ */

static char *cache_path(const char *kind)
{
	const char *dir = getenv("XDG_RUNTIME_DIR");
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/bhatti-complete-%u-%s", dir && dir[0] ? dir : "/tmp", (unsigned)getuid(),
		 kind);
	return buf_detach(&b, NULL);
}

/* The cached names when the cache is ours and fresh; else NULL. */
static char *cache_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return NULL;
	struct buf b = BUF_INIT;
	if (fstat(fd, &st) == 0 && st.st_uid == getuid() && S_ISREG(st.st_mode) &&
	    time(NULL) - st.st_mtime < CACHE_S && st.st_size < (1 << 20)) {
		char tmp[4096];
		ssize_t k;
		while ((k = read(fd, tmp, sizeof(tmp))) > 0)
			buf_add(&b, tmp, (size_t)k);
	}
	close(fd);
	if (!b.len) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

static void cache_write(const char *path, const struct buf *names)
{
	struct buf tmp = BUF_INIT;
	buf_addf(&tmp, "%s.%d", path, (int)getpid());
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		bool ok = write_all(fd, names->data, names->len) == 0;
		close(fd);
		if (!ok || rename(tmp.data, path) < 0)
			unlink(tmp.data);
	}
	buf_release(&tmp);
}

static int complete(struct cli *c)
{
	const char *kind = c->args.pos[0];
	const char *path = strcmp(kind, "sandboxes") == 0 ? "/sandboxes"
			   : strcmp(kind, "secrets") == 0   ? "/secrets"
			   : strcmp(kind, "snapshots") == 0 ? "/snapshots"
							    : NULL;
	if (!path)
		return 2;
	char *cache = cache_path(kind), *names = cache_read(cache);
	if (names) {
		fputs(names, stdout);
	} else {
		struct err warn = ERR_INIT;
		client_settings_resolve(&c->set, c->flag_url, c->flag_token, &warn);
		c->set.connect_timeout_ms = COMPLETE_CONNECT_MS;
		c->client = client_new(&c->set);
		struct client_resp r;
		struct client_req rq = CLIENT_REQ_INIT;
		rq.method = "GET";
		rq.path = path;
		struct err e = ERR_INIT;
		if (client_call(c->client, &rq, &r, &e) == 0) {
			cJSON *j = r.status == 200 ? cJSON_ParseWithLength(r.body.data, r.body.len)
						   : NULL;
			cJSON *it;
			struct buf out = BUF_INIT;
			cJSON_ArrayForEach(it, j)
				if (cli_jstr(it, "name")[0])
					buf_addf(&out, "%s\n", cli_jstr(it, "name"));
			fputs(out.data, stdout);
			if (j)
				cache_write(cache, &out);
			buf_release(&out);
			cJSON_Delete(j);
			client_resp_release(&r);
		}
	}
	free(names);
	free(cache);
	return 0;
}

/* ---- bhatti __man --------------------------------------------------------------- */

/* s with roff's special characters escaped. */
static void roff(const char *s)
{
	for (bool bol = true; *s; s++) {
		if (bol && (*s == '.' || *s == '\''))
			fputs("\\&", stdout);
		if (*s == '\\')
			fputs("\\e", stdout);
		else if (*s == '-')
			fputs("\\-", stdout);
		else
			putchar(*s);
		bol = *s == '\n';
	}
}

/* A usage with its continuation lines' indentation squeezed. */
static void roff_usage(const char *u)
{
	for (; *u; u++) {
		if (*u == '\n') {
			putchar(' ');
			u += strspn(u + 1, " ");
			continue;
		}
		char one[2] = { *u, 0 };
		roff(one);
	}
}

static void man_leaf(const char *group, const struct cli_cmd *c, void *arg UNUSED)
{
	printf(".TP\n.B bhatti %s%s%s", group ? group : "", group ? " " : "", c->name);
	if (c->usage && c->usage[0]) {
		printf(" ");
		roff_usage(c->usage);
	}
	printf("\n");
	if (c->summary) {
		roff(c->summary);
		printf("%s\n", c->alias ? "" : ".");
	}
	if (c->alias)
		printf("(Also\n.BR %s .)\n", c->alias);
	if (c->help) {
		printf(".br\n");
		roff(c->help);
		printf("\n");
	}
}

static int man(struct cli *c UNUSED)
{
	printf(".\\\" bhatti.1 — generated from the command table by `bhatti __man`; do not edit\n"
	       ".TH BHATTI 1 \"\" \"bhatti %s\" \"User Commands\"\n"
	       ".SH NAME\nbhatti \\- self\\-hosted microVM sandboxes for AI coding agents\n"
	       ".SH SYNOPSIS\n.B bhatti\n.I command\n[\n.I options\n]\n"
	       ".SH DESCRIPTION\n"
	       "One binary: \\fBbhatti serve\\fR is the daemon; every other command is a client\n"
	       "of its HTTP API, except \\fBbhatti user\\fR, which administers the local store.\n"
	       "Sandboxes are named by name or id. Options may come before, between or after\n"
	       "the arguments; \\fB\\-\\-\\fR ends them. \\fB\\-\\-url\\fR, \\fB\\-\\-token\\fR and "
	       "\\fB\\-\\-json\\fR\n(and \\fB\\-\\-timing\\fR, \\fB\\-\\-ca\\fR) work on every client command.\n"
	       ".SH COMMANDS\n", BHATTI_VERSION);
	each_leaf(man_leaf, NULL);
	printf(".SH SETTINGS\n"
	       "Where the daemon is and which key to use, highest first: the flags\n"
	       "\\fB\\-\\-url\\fR and \\fB\\-\\-token\\fR; the environment \\fBBHATTI_URL\\fR and\n"
	       "\\fBBHATTI_TOKEN\\fR; \\fI~/.bhatti/config.yaml\\fR (\\fBapi_url\\fR,\n"
	       "\\fBauth_token\\fR, written by \\fBbhatti setup\\fR); the default\n"
	       "http://127.0.0.1:8080. The environment beats the file so that one command\n"
	       "or one CI job can point elsewhere without touching the saved settings.\n"
	       ".SH EXIT STATUS\n"
	       "0 success; 1 an error from the daemon or the system; 2 a usage error;\n"
	       "\\fBexec\\fR and \\fBshell\\fR exit with the command's code (137 after a timeout).\n"
	       ".SH FILES\n.TP\n.I ~/.bhatti/config.yaml\nthe CLI's settings (mode 0600)\n"
	       ".TP\n.I /etc/bhatti/config.yaml\nthe daemon's configuration\n"
	       ".SH SEE ALSO\nThe documents in \\fIdocs/\\fR of the source: cli.md, api.md,\n"
	       "concepts.md, quickstart.md.\n");
	return 0;
}

/* ---- entries ---------------------------------------------------------------------- */

const struct cli_cmd cmd_completion_entry = {
	.name = "completion",
	.summary = "print a shell completion script (bash, zsh or fish)",
	.usage = "bash|zsh|fish",
	.help = "bash: source <(bhatti completion bash), or save it as\n"
		"/usr/share/bash-completion/completions/bhatti (install.sh does).\n"
		"Sandbox and secret names come from the daemon, cached for 10 s.",
	.min_args = 1,
	.max_args = 1,
	.run = completion,
};

const struct cli_cmd cmd_complete_entry = {
	.name = "__complete",
	.summary = "names for the completion scripts",
	.usage = "sandboxes|secrets|snapshots",
	.min_args = 1,
	.max_args = 1,
	.flags = CLI_HIDDEN,
	.run = complete,
};

const struct cli_cmd cmd_table_entry = {
	.name = "__table",
	.summary = "the command table, one line per command",
	.usage = "",
	.flags = CLI_HIDDEN,
	.run = table,
};

const struct cli_cmd cmd_man_entry = {
	.name = "__man",
	.summary = "the man page bhatti.1",
	.usage = "",
	.flags = CLI_HIDDEN,
	.run = man,
};
