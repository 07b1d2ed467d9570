/* cmd-user.c — `bhatti user create|list|rotate-key|delete`: the local
 * administration of users and their API keys. Sits between the command
 * line and the daemon's store (daemon/store.c), which it opens directly as
 * <data_dir>/state.db — no daemon needs to run, and one that runs sees the
 * change at once (SQLite WAL). Reads the settings (daemon/settings.c) for
 * the data directory and a new user's default limits; creates the data
 * directory (0700) if it is missing; touches nothing else.
 *
 *   bhatti user create --name NAME [--max-sandboxes N] [--max-cpus N] [--max-memory MB]
 *   bhatti user list [--json]
 *   bhatti user rotate-key [--name] NAME
 *   bhatti user delete [--name] NAME
 *   common options: --data-dir DIR, --config FILE
 *
 * Exit status: 0 done, 1 failed ("bhatti: ..." and maybe "hint: ..." on
 * stderr), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "json.h"
#include "num.h"
#include "settings.h"
#include "store.h"

#define EXIT_USAGE 2

/* Options a subcommand accepts (besides --data-dir, --config, --help). */
enum {
	OPT_NAME = 1 << 0,   /* --name NAME, or NAME alone */
	OPT_LIMITS = 1 << 1, /* --max-sandboxes, --max-cpus, --max-memory */
	OPT_JSON = 1 << 2,
};

struct user_cmd {
	const char *name;
	const char *data_dir;     /* NULL: from the settings */
	const char *config;
	const char *max_sandboxes, *max_cpus, *max_memory;
	bool json;
	struct settings set;
	struct store *st;
};

struct user_sub {
	const char *verb;
	unsigned opts;
	const char *usage;
	int (*run)(struct user_cmd *c);
};

static int user_create(struct user_cmd *c);
static int user_list(struct user_cmd *c);
static int user_rotate_key(struct user_cmd *c);
static int user_delete(struct user_cmd *c);

static const struct user_sub subs[] = {
	{ "create", OPT_NAME | OPT_LIMITS,
	  "create --name NAME [--max-sandboxes N] [--max-cpus N] [--max-memory MB]", user_create },
	{ "list", OPT_JSON, "list [--json]", user_list },
	{ "rotate-key", OPT_NAME, "rotate-key [--name] NAME", user_rotate_key },
	{ "delete", OPT_NAME, "delete [--name] NAME", user_delete },
};

static void usage(FILE *f)
{
	fprintf(f, "usage:");
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
		fprintf(f, "%s bhatti user %s\n", i ? "      " : "", subs[i].usage);
	fprintf(f, "options of every command: --data-dir DIR (default: data_dir of the "
		"config), --config FILE\n");
}

static int usage_error(const char *fmt, ...) PRINTF(1, 2);

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bhatti: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nhint: run 'bhatti user --help' for the usage\n");
	return EXIT_USAGE;
}

static int fail(const struct err *e, const char *hint)
{
	fprintf(stderr, "bhatti: %s\n", err_str(e));
	if (hint)
		fprintf(stderr, "hint: %s\n", hint);
	return 1;
}

/* The hint for a store error, by its code. */
static const char *store_hint(int r)
{
	switch (-r) {
	case EBUSY:
		return "another process holds the database; try again";
	case ENOTSUP:
		return "the database was written by a newer bhatti: upgrade this one";
	case EACCES:
	case EPERM:
		return "run as the user that owns the data directory (often root), or pass "
		       "--data-dir DIR";
	default:
		return NULL;
	}
}

/* ---- options -------------------------------------------------------------- */

/* The long options; each string option fills a member of struct user_cmd.
 * getopt_long() returns OPT_BASE + the index in this table. */
#define OPT_BASE 256
static const struct user_opt {
	const char *name;
	unsigned need;    /* the OPT_* bit a subcommand must have; 0: every one */
	int has_arg;      /* required_argument: a string, else the flag --json */
	size_t off;       /* the string's const char * member of struct user_cmd */
} user_opts[] = {
	{ "name", OPT_NAME, required_argument, offsetof(struct user_cmd, name) },
	{ "data-dir", 0, required_argument, offsetof(struct user_cmd, data_dir) },
	{ "config", 0, required_argument, offsetof(struct user_cmd, config) },
	{ "max-sandboxes", OPT_LIMITS, required_argument,
	  offsetof(struct user_cmd, max_sandboxes) },
	{ "max-cpus", OPT_LIMITS, required_argument, offsetof(struct user_cmd, max_cpus) },
	{ "max-memory", OPT_LIMITS, required_argument, offsetof(struct user_cmd, max_memory) },
	{ "json", OPT_JSON, no_argument, 0 },
};

/* argv[0] is the subcommand. Returns -1 to go on, else an exit status. */
static int parse_opts(const struct user_sub *sub, int argc, char **argv, struct user_cmd *c)
{
	struct option longs[ARRAY_SIZE(user_opts) + 2] = { { 0 } };
	int opt;

	for (size_t i = 0; i < ARRAY_SIZE(user_opts); i++)
		longs[i] = (struct option){ user_opts[i].name, user_opts[i].has_arg, NULL,
					    OPT_BASE + (int)i };
	longs[ARRAY_SIZE(user_opts)] = (struct option){ "help", no_argument, NULL, 'h' };
	opterr = 0;
	optind = 0; /* glibc: start afresh */
	while ((opt = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
		const struct user_opt *o;
		if (opt == '?')
			return usage_error("unknown option '%s'", argv[optind - 1]);
		if (opt == ':')
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
		o = &user_opts[opt - OPT_BASE];
		if ((o->need & sub->opts) != o->need)
			return usage_error("'bhatti user %s' has no option '--%s'", sub->verb,
					   o->name);
		if (o->has_arg == required_argument)
			*(const char **)((char *)c + o->off) = optarg;
		else
			c->json = true;
	}
	if (optind < argc && (sub->opts & OPT_NAME) && !c->name)
		c->name = argv[optind++];
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if ((sub->opts & OPT_NAME) && !c->name)
		return usage_error("'bhatti user %s' needs a user name (--name NAME)", sub->verb);
	if (c->name && !name_valid(c->name)) {
		fprintf(stderr, "bhatti: invalid user name '%s'\nhint: a name is %s\n", c->name,
			NAME_RULE);
		return EXIT_USAGE;
	}
	return -1;
}

/* ---- the store ------------------------------------------------------------ */

static int open_store(struct user_cmd *c)
{
	const char *dir;
	struct buf path = BUF_INIT;
	struct err e = ERR_INIT;
	int r;

	r = settings_load(c->config, &c->set, &e);
	if (r < 0)
		return fail(&e, "fix the configuration file, or name another with --config FILE");
	dir = c->data_dir ? c->data_dir : c->set.data_dir;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int err = errno;
		err_set(&e, err, "cannot create data directory '%s': %s", dir, strerror(err));
		return fail(&e, store_hint(-err));
	}
	buf_addf(&path, "%s/state.db", dir);
	r = store_open(path.data, &c->st, &e);
	buf_release(&path);
	return r < 0 ? fail(&e, store_hint(r)) : -1;
}

/* ---- create --------------------------------------------------------------- */

/* --max-memory: megabytes ("4096"), or a size with a unit ("4G"). */
static int parse_memory_mb(const char *s, int64_t *ret, struct err *e)
{
	const int64_t min = LIMIT_MIN_MEMORY_MB, max = LIMIT_MAX_MEMORY_MB;
	uint64_t bytes;

	if (s[0] && strspn(s, "0123456789") == strlen(s))
		return num_parse_i64(s, min, max, ret, "--max-memory", e);
	if (num_parse_size(s, &bytes, "--max-memory", NULL) < 0 || bytes % (1 << 20) ||
	    bytes >> 20 < (uint64_t)min || bytes >> 20 > (uint64_t)max)
		return err_set(e, EINVAL, "--max-memory: '%s' must be megabytes from %" PRId64
			       " to %" PRId64 ", or a size such as 4G", s, min, max);
	*ret = (int64_t)(bytes >> 20);
	return 0;
}

static int user_create(struct user_cmd *c)
{
	int64_t max_sb = c->set.limits.max_sandboxes, max_cpus = c->set.limits.max_cpus;
	int64_t max_mem = c->set.limits.max_memory_mb;
	struct err e = ERR_INIT;
	struct user u;
	char *key;
	int r;

	if ((c->max_sandboxes && num_parse_i64(c->max_sandboxes, 0, LIMIT_MAX_SANDBOXES,
					       &max_sb, "--max-sandboxes", &e) < 0) ||
	    (c->max_cpus && num_parse_i64(c->max_cpus, 1, LIMIT_MAX_CPUS, &max_cpus,
					  "--max-cpus", &e) < 0) ||
	    (c->max_memory && parse_memory_mb(c->max_memory, &max_mem, &e) < 0)) {
		fail(&e, NULL);
		return EXIT_USAGE;
	}
	r = store_user_create(c->st, c->name, max_sb, max_cpus, max_mem, &key, &u, &e);
	if (r == -EEXIST) {
		struct buf hint = BUF_INIT;
		buf_addf(&hint, "pick another name, or give '%s' a new key with 'bhatti user "
			 "rotate-key %s'", c->name, c->name);
		fail(&e, hint.data);
		buf_release(&hint);
		return 1;
	}
	if (r < 0)
		return fail(&e, store_hint(r));
	printf("API key: %s\n", key);
	fflush(stdout);
	fprintf(stderr, "created user '%s' (limits: %" PRId64 " sandboxes, %" PRId64 " cpus, "
		"%" PRId64 " MB of memory)\n", u.name, u.max_sandboxes, u.max_cpus,
		u.max_memory_mb);
	fprintf(stderr, "note: the key is shown only this once; keep it somewhere safe\n");
	user_release(&u);
	free(key);
	return 0;
}

/* ---- list ----------------------------------------------------------------- */

static void fmt_memory(char *out, size_t n, int64_t mb)
{
	if (mb >= 1024 && mb % 1024 == 0)
		snprintf(out, n, "%" PRId64 "G", mb / 1024);
	else
		snprintf(out, n, "%" PRId64 "M", mb);
}

static void fmt_time(char *out, size_t n, int64_t sec)
{
	time_t t = (time_t)sec;
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M", &tm))
		snprintf(out, n, "%" PRId64, sec);
}

static void print_json(const struct user *users, const int64_t *counts, size_t n)
{
	struct buf out = BUF_INIT;
	cJSON *arr;

	json_init();
	arr = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", users[i].name);
		cJSON_AddNumberToObject(o, "sandboxes", (double)counts[i]);
		cJSON_AddNumberToObject(o, "max_sandboxes", (double)users[i].max_sandboxes);
		cJSON_AddNumberToObject(o, "max_cpus", (double)users[i].max_cpus);
		cJSON_AddNumberToObject(o, "max_memory_mb", (double)users[i].max_memory_mb);
		cJSON_AddNumberToObject(o, "created_at", (double)users[i].created_at);
		cJSON_AddItemToArray(arr, o);
	}
	json_print(arr, &out);
	cJSON_Delete(arr);
	printf("%s\n", out.data);
	buf_release(&out);
}

static void print_table(const struct user *users, const int64_t *counts, size_t n)
{
	int w = 4;
	for (size_t i = 0; i < n; i++)
		w = MAX(w, (int)strlen(users[i].name));
	printf("%-*s  %-9s  %-13s  %-8s  %-10s  %s\n", w, "NAME", "SANDBOXES", "MAX_SANDBOXES",
	       "MAX_CPUS", "MAX_MEMORY", "CREATED");
	for (size_t i = 0; i < n; i++) {
		char mem[32], created[64];
		fmt_memory(mem, sizeof(mem), users[i].max_memory_mb);
		fmt_time(created, sizeof(created), users[i].created_at);
		printf("%-*s  %-9" PRId64 "  %-13" PRId64 "  %-8" PRId64 "  %-10s  %s\n", w,
		       users[i].name, counts[i], users[i].max_sandboxes, users[i].max_cpus, mem,
		       created);
	}
}

static int user_list(struct user_cmd *c)
{
	struct err e = ERR_INIT;
	struct user *users = NULL;
	int64_t *counts;
	size_t n = 0;
	int r;

	r = store_user_list(c->st, &users, &n, &e);
	if (r < 0)
		return fail(&e, store_hint(r));
	counts = xcalloc(n ? n : 1, sizeof(*counts));
	for (size_t i = 0; i < n && r == 0; i++)
		r = store_sandbox_count(c->st, users[i].id, &counts[i], &e);
	if (r == 0 && c->json)
		print_json(users, counts, n);
	else if (r == 0 && n)
		print_table(users, counts, n);
	else if (r == 0)
		fprintf(stderr, "no users yet\nhint: bhatti user create --name NAME\n");
	free(counts);
	user_array_free(users, n);
	return r < 0 ? fail(&e, store_hint(r)) : 0;
}

/* ---- rotate-key, delete --------------------------------------------------- */

static int user_rotate_key(struct user_cmd *c)
{
	struct err e = ERR_INIT;
	char *key;
	int r = store_user_rotate_key(c->st, c->name, &key, &e);

	if (r < 0)
		return fail(&e, r == -ENOENT ? "'bhatti user list' shows the users" :
			    store_hint(r));
	printf("API key: %s\n", key);
	fflush(stdout);
	fprintf(stderr, "note: the old key of '%s' no longer works; the new one is shown only "
		"this once\n", c->name);
	free(key);
	return 0;
}

static int user_delete(struct user_cmd *c)
{
	struct err e = ERR_INIT;
	int r = store_user_delete(c->st, c->name, &e);

	if (r == -EBUSY && strstr(e.msg, "sandbox"))
		return fail(&e, "destroy the user's sandboxes first, then delete the user");
	if (r < 0)
		return fail(&e, r == -ENOENT ? "'bhatti user list' shows the users" :
			    store_hint(r));
	printf("deleted user '%s'\n", c->name);
	return 0;
}

/* ---- entry ---------------------------------------------------------------- */

int cmd_user(int argc, char **argv)
{
	const struct user_sub *sub = NULL;
	struct user_cmd c = { 0 };
	int r;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
		if (strcmp(argv[1], subs[i].verb) == 0)
			sub = &subs[i];
	if (!sub)
		return usage_error("unknown command 'user %s'", argv[1]);
	r = parse_opts(sub, argc - 1, argv + 1, &c);
	if (r < 0)
		r = open_store(&c);
	if (r < 0)
		r = sub->run(&c);
	store_free(c.st);
	settings_release(&c.set);
	if (fflush(stdout) != 0 && r == 0) {
		fprintf(stderr, "bhatti: cannot write the output: %s\n", strerror(errno));
		r = 1;
	}
	return r;
}
