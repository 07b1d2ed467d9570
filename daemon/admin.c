/* admin.c — `bhatti user create|list|rotate-key|delete`: the local
 * administration of users and their API keys. Sits between the command
 * line (cli/main.c parses the options against the tables here, declared in
 * local.h) and the daemon's store (daemon/store.c), which it opens
 * directly as <data_dir>/state.db — no daemon needs to run, and one that
 * runs sees the change at once (SQLite WAL). Reads the settings
 * (daemon/settings.c) for the data directory and a new user's default
 * limits; creates the data directory (0700) if it is missing; touches
 * nothing else.
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
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "json.h"
#include "local.h"
#include "valid.h"
#include "num.h"
#include "settings.h"
#include "store.h"

#define EXIT_USAGE 2

#define COMMON_OPTS { "--data-dir", NULL, OPT_VALUE }, { "--config", NULL, OPT_VALUE }

const struct opt admin_create_opts[] = {
	{ "--name", NULL, OPT_VALUE },
	{ "--max-sandboxes", NULL, OPT_VALUE },
	{ "--max-cpus", NULL, OPT_VALUE },
	{ "--max-memory", NULL, OPT_VALUE },
	{ "--json", NULL, OPT_FLAG },
	COMMON_OPTS,
	OPT_END,
};

const struct opt admin_list_opts[] = { { "--json", NULL, OPT_FLAG }, COMMON_OPTS, OPT_END };

const struct opt admin_name_opts[] = {
	{ "--name", NULL, OPT_VALUE }, { "--json", NULL, OPT_FLAG }, COMMON_OPTS, OPT_END,
};

struct user_cmd {
	const struct args *a;
	const char *name;
	struct settings set;
	struct store *st;
};

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

/* The user's name: --name NAME, or NAME alone. -1 to go on, else an exit status. */
static int take_name(struct user_cmd *c, const char *verb)
{
	const char *opt = args_get(c->a, "--name"), *pos = c->a->pos[0];
	if (opt && pos)
		return usage_error("unexpected argument '%s'", pos);
	c->name = opt ? opt : pos;
	if (!c->name)
		return usage_error("'bhatti user %s' needs a user name (--name NAME)", verb);
	struct err e = ERR_INIT;
	if (valid_user_name(c->name, &e) < 0) {
		fprintf(stderr, "bhatti: %s\n", err_str(&e));
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

	r = settings_load(args_get(c->a, "--config"), &c->set, &e);
	if (r < 0)
		return fail(&e, "fix the configuration file, or name another with --config FILE");
	dir = args_get(c->a, "--data-dir") ? args_get(c->a, "--data-dir") : c->set.data_dir;
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

/* --json: {"name", "api_key"?, "max_*"?, "status"} on stdout. */
static void print_result(const char *name, const char *key, const struct user *u,
			 const char *status)
{
	struct buf out = BUF_INIT;
	json_init();
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	if (key)
		cJSON_AddStringToObject(o, "api_key", key);
	if (u) {
		cJSON_AddNumberToObject(o, "max_sandboxes", (double)u->max_sandboxes);
		cJSON_AddNumberToObject(o, "max_cpus", (double)u->max_cpus);
		cJSON_AddNumberToObject(o, "max_memory_mb", (double)u->max_memory_mb);
	}
	cJSON_AddStringToObject(o, "status", status);
	json_print(o, &out);
	cJSON_Delete(o);
	printf("%s\n", out.data);
	buf_release(&out);
}

static int user_create(struct user_cmd *c)
{
	int64_t max_sb = c->set.limits.max_sandboxes, max_cpus = c->set.limits.max_cpus;
	int64_t max_mem = c->set.limits.max_memory_mb;
	const char *sb = args_get(c->a, "--max-sandboxes"), *cpus = args_get(c->a, "--max-cpus");
	const char *mem = args_get(c->a, "--max-memory");
	struct err e = ERR_INIT;
	struct user u;
	char *key;
	int r;

	if ((sb && num_parse_i64(sb, 0, LIMIT_MAX_SANDBOXES, &max_sb, "--max-sandboxes", &e) < 0) ||
	    (cpus && num_parse_i64(cpus, 1, LIMIT_MAX_CPUS, &max_cpus, "--max-cpus", &e) < 0) ||
	    (mem && parse_memory_mb(mem, &max_mem, &e) < 0)) {
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
	if (args_has(c->a, "--json")) {
		print_result(u.name, key, &u, "created");
		user_release(&u);
		free(key);
		return 0;
	}
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
	if (r == 0 && args_has(c->a, "--json"))
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
	if (args_has(c->a, "--json")) {
		print_result(c->name, key, NULL, "rotated");
		free(key);
		return 0;
	}
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
	if (args_has(c->a, "--json"))
		print_result(c->name, NULL, NULL, "deleted");
	else
		printf("deleted user '%s'\n", c->name);
	return 0;
}

/* ---- entry ---------------------------------------------------------------- */

/* Check the name (verb: a subcommand that needs one), open the store, run. */
static int admin_run(const struct args *a, const char *verb, int (*fn)(struct user_cmd *c))
{
	struct user_cmd c = { .a = a };
	int r = verb ? take_name(&c, verb) : -1;
	if (r < 0)
		r = open_store(&c);
	if (r < 0)
		r = fn(&c);
	store_free(c.st);
	settings_release(&c.set);
	if (fflush(stdout) != 0 && r == 0) {
		fprintf(stderr, "bhatti: cannot write the output: %s\n", strerror(errno));
		r = 1;
	}
	return r;
}

int admin_user_create(const struct args *a)
{
	return admin_run(a, "create", user_create);
}

int admin_user_list(const struct args *a)
{
	return admin_run(a, NULL, user_list);
}

int admin_user_rotate_key(const struct args *a)
{
	return admin_run(a, "rotate-key", user_rotate_key);
}

int admin_user_delete(const struct args *a)
{
	return admin_run(a, "delete", user_delete);
}
