/* test-cli-user.c — the real `$BUILD/bhatti user …` binary against a
 * private data directory: create prints the key line (and the key works),
 * list as a table and as JSON, limits from the config file and from
 * options, rotate-key, delete refused while the user has a sandbox and
 * allowed once the row is gone, and the error and usage exits. Sits
 * between cmocka, the binary (run as a child process, its output captured
 * in files) and the store (opened directly to check and to add or remove
 * a sandbox row).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "helpers.h"
#include "store.h"

struct cli {
	char *dir;        /* private temp dir */
	char *data;       /* dir/data: the --data-dir, created by bhatti */
	char *config;     /* dir/config.yaml, also $BHATTI_CONFIG */
};

static struct cli *CLI;

/* One run of the binary. */
struct run {
	int status;       /* exit status, or 128 + signal */
	char *out;
	char *err;
};

static void run_release(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* bhatti user SUB --data-dir <data> ARGS... (NULL-terminated). */
static void user_cli(struct run *r, const char *sub, ...)
{
	const char *argv[32];
	struct buf bin = BUF_INIT, out = BUF_INIT, err = BUF_INIT;
	size_t n = 0;
	va_list ap;
	int status;

	argv[n++] = "bhatti";
	argv[n++] = "user";
	argv[n++] = sub;
	argv[n++] = "--data-dir";
	argv[n++] = CLI->data;
	va_start(ap, sub);
	for (const char *a = va_arg(ap, const char *); a; a = va_arg(ap, const char *)) {
		assert_true(n < ARRAY_SIZE(argv) - 1);
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;

	buf_addf(&bin, "%s/bhatti", test_build_dir());
	buf_addf(&out, "%s/stdout", CLI->dir);
	buf_addf(&err, "%s/stderr", CLI->dir);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fo = open(out.data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err.data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
			_exit(126);
		execv(bin.data, (char **)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r->out = host_read_file(out.data, NULL);
	r->err = host_read_file(err.data, NULL);
	assert_non_null(r->out);
	assert_non_null(r->err);
	if (r->status == 127)
		fail_msg("cannot run %s", bin.data);
	buf_release(&bin);
	buf_release(&out);
	buf_release(&err);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	struct cli *c = xcalloc(1, sizeof(*c));
	struct buf b = BUF_INIT;

	c->dir = test_tmpdir("cli-user");
	buf_addf(&b, "%s/data", c->dir);
	c->data = buf_detach(&b, NULL);
	buf_addf(&b, "%s/config.yaml", c->dir);
	c->config = buf_detach(&b, NULL);
	write_file(c->config, "limits:\n  max_sandboxes: 7\n  max_cpus: 3\n");
	/* never the machine's /etc/bhatti/config.yaml */
	setenv("BHATTI_CONFIG", c->config, 1);
	CLI = c;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct cli *c = *state;
	unsetenv("BHATTI_CONFIG");
	if (!getenv("KEEP_TEST_DIRS"))
		test_rmtree(c->dir);
	free(c->dir);
	free(c->data);
	free(c->config);
	free(c);
	CLI = NULL;
	return 0;
}

static struct store *open_store(void)
{
	struct buf path = BUF_INIT;
	struct err e = ERR_INIT;
	struct store *st;
	buf_addf(&path, "%s/state.db", CLI->data);
	if (store_open(path.data, &st, &e) < 0)
		fail_msg("store_open: %s", e.msg);
	buf_release(&path);
	return st;
}

/* The key from the one line "API key: bht_…\n". Caller frees. */
static char *key_of(const struct run *r)
{
	const char *prefix = "API key: ";
	size_t plen = strlen(prefix);
	assert_int_equal(strlen(r->out), plen + STORE_KEY_LEN + 1);
	assert_memory_equal(r->out, prefix, plen);
	assert_memory_equal(r->out + plen, STORE_KEY_PREFIX, strlen(STORE_KEY_PREFIX));
	assert_int_equal(r->out[plen + STORE_KEY_LEN], '\n');
	return xstrndup(r->out + plen, STORE_KEY_LEN);
}

/* The key authenticates as name (or, with name NULL, not at all). */
static void assert_key(const char *key, const char *name)
{
	struct store *st = open_store();
	struct err e = ERR_INIT;
	struct user u;
	int r = store_user_auth(st, key, &u, &e);
	if (name) {
		assert_int_equal(r, 0);
		assert_string_equal(u.name, name);
		user_release(&u);
	} else {
		assert_int_equal(r, -ENOENT);
	}
	store_free(st);
}

static void assert_failed(const struct run *r, int status, const char *msg)
{
	if (r->status != status || !strstr(r->err, msg))
		fail_msg("want exit %d and '%s' on stderr, got exit %d: %s", status, msg,
			 r->status, r->err);
	/* "bhatti: …", or "bhatti user SUB: …" for a usage error found by the
	 * command table */
	assert_true(strncmp(r->err, "bhatti: ", 8) == 0 ||
		    (status == 2 && strncmp(r->err, "bhatti user ", 12) == 0));
	assert_string_equal(r->out, "");
}

static void test_create_and_list(void **state)
{
	(void)state;
	struct run r;
	struct stat sb;

	user_cli(&r, "create", "--name", "alice", NULL);
	assert_int_equal(r.status, 0);
	char *key = key_of(&r);
	assert_non_null(strstr(r.err, "shown only this once"));
	run_release(&r);
	assert_key(key, "alice");
	assert_int_equal(stat(CLI->data, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);

	/* options beat the config's limits; the memory as a size */
	user_cli(&r, "create", "bob", "--max-sandboxes", "2", "--max-memory", "2G", NULL);
	assert_int_equal(r.status, 0);
	char *bob = key_of(&r);
	run_release(&r);
	assert_string_not_equal(key, bob);

	user_cli(&r, "list", NULL);
	assert_int_equal(r.status, 0);
	assert_int_equal(strncmp(r.out, "NAME ", 5), 0);
	assert_non_null(strstr(r.out, "SANDBOXES  MAX_SANDBOXES  MAX_CPUS  MAX_MEMORY  CREATED\n"));
	assert_non_null(strstr(r.out, "\nalice  0          7              3         4G"));
	assert_non_null(strstr(r.out, "\nbob    0          2              3         2G"));
	run_release(&r);

	user_cli(&r, "list", "--json", NULL);
	assert_int_equal(r.status, 0);
	cJSON *arr = cJSON_Parse(r.out);
	assert_non_null(arr);
	assert_true(cJSON_IsArray(arr));
	assert_int_equal(cJSON_GetArraySize(arr), 2);
	cJSON *a = cJSON_GetArrayItem(arr, 0);
	assert_string_equal(cJSON_GetObjectItem(a, "name")->valuestring, "alice");
	assert_int_equal(cJSON_GetObjectItem(a, "sandboxes")->valueint, 0);
	assert_int_equal(cJSON_GetObjectItem(a, "max_sandboxes")->valueint, 7);
	assert_int_equal(cJSON_GetObjectItem(a, "max_cpus")->valueint, 3);
	assert_int_equal(cJSON_GetObjectItem(a, "max_memory_mb")->valueint, 4096);
	assert_true(cJSON_GetObjectItem(a, "created_at")->valuedouble > 1.7e9);
	cJSON *b = cJSON_GetArrayItem(arr, 1);
	assert_string_equal(cJSON_GetObjectItem(b, "name")->valuestring, "bob");
	assert_int_equal(cJSON_GetObjectItem(b, "max_memory_mb")->valueint, 2048);
	cJSON_Delete(arr);
	run_release(&r);

	/* --config names another file */
	struct buf other = BUF_INIT;
	buf_addf(&other, "%s/other.yaml", CLI->dir);
	write_file(other.data, "limits:\n  max_memory_mb: 1024\n");
	user_cli(&r, "create", "--name", "carol", "--config", other.data, NULL);
	assert_int_equal(r.status, 0);
	run_release(&r);
	user_cli(&r, "list", NULL);
	assert_non_null(strstr(r.out, "\ncarol  0          5              4         1G"));
	run_release(&r);
	buf_release(&other);

	user_cli(&r, "create", "--name", "alice", NULL);
	assert_failed(&r, 1, "bhatti: user 'alice' already exists\nhint: ");
	run_release(&r);
	assert_key(key, "alice");
	free(key);
	free(bob);
}

static void test_rotate_key(void **state)
{
	(void)state;
	struct run r;

	user_cli(&r, "create", "--name", "alice", NULL);
	char *old = key_of(&r);
	run_release(&r);

	user_cli(&r, "rotate-key", "--name", "alice", NULL);
	assert_int_equal(r.status, 0);
	char *fresh = key_of(&r);
	assert_non_null(strstr(r.err, "no longer works"));
	run_release(&r);
	assert_key(old, NULL);
	assert_key(fresh, "alice");

	user_cli(&r, "rotate-key", "alice", NULL);  /* positional */
	assert_int_equal(r.status, 0);
	char *third = key_of(&r);
	run_release(&r);
	assert_key(fresh, NULL);
	assert_key(third, "alice");

	user_cli(&r, "rotate-key", "nobody", NULL);
	assert_failed(&r, 1, "bhatti: user 'nobody' not found\nhint: ");
	run_release(&r);
	free(old);
	free(fresh);
	free(third);
}

static void test_delete(void **state)
{
	(void)state;
	struct err e = ERR_INIT;
	struct user u;
	struct run r;

	user_cli(&r, "create", "--name", "alice", NULL);
	char *key = key_of(&r);
	run_release(&r);

	struct store *st = open_store();
	assert_int_equal(store_user_get(st, "alice", &u, &e), 0);
	struct sandbox_row row = { .id = "0123456789ab", .user_id = u.id, .name = "web" };
	assert_int_equal(store_sandbox_insert(st, &row, &e), 0);
	user_release(&u);
	store_free(st);

	user_cli(&r, "list", NULL);
	assert_non_null(strstr(r.out, "\nalice  1 "));
	run_release(&r);
	user_cli(&r, "delete", "--name", "alice", NULL);
	assert_failed(&r, 1, "bhatti: user 'alice' still has 1 sandbox\nhint: ");
	run_release(&r);
	assert_key(key, "alice");

	st = open_store();
	assert_int_equal(store_sandbox_delete(st, "0123456789ab", &e), 0);
	store_free(st);
	user_cli(&r, "delete", "alice", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "deleted user 'alice'\n");
	run_release(&r);
	assert_key(key, NULL);

	user_cli(&r, "list", "--json", NULL);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "[]\n");
	run_release(&r);
	user_cli(&r, "delete", "alice", NULL);
	assert_failed(&r, 1, "bhatti: user 'alice' not found");
	run_release(&r);
	free(key);
}

static void test_errors(void **state)
{
	(void)state;
	struct run r;
	static const struct { const char *args[4]; const char *msg; } usage[] = {
		{ { "create", "--name", "bad name" },
		  "bhatti: invalid user name 'bad name': ' ' is not allowed" },
		{ { "create", "--name", "-x" }, "bhatti: invalid user name '-x'" },
		{ { "create" }, "needs a user name" },
		{ { "create", "a", "b" }, "unexpected argument 'b'" },
		{ { "create", "a", "--max-cpus", "0" }, "--max-cpus: 0 is out of range" },
		{ { "create", "a", "--max-memory", "1.5G" }, "--max-memory: '1.5G' must be" },
		{ { "list", "--name", "a" }, "bhatti user list: unknown option '--name'" },
		{ { "list", "--bogus" }, "unknown option '--bogus'" },
		{ { "delete", "--name" }, "option '--name' needs a value" },
		{ { "frob" }, "unknown command 'user frob'" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(usage); i++) {
		user_cli(&r, usage[i].args[0], usage[i].args[1], usage[i].args[2], usage[i].args[3],
		       NULL);
		assert_failed(&r, 2, usage[i].msg);
		run_release(&r);
	}

	/* an explicitly named config that is missing or wrong */
	user_cli(&r, "list", "--config", "/nonexistent/config.yaml", NULL);
	assert_failed(&r, 1, "bhatti: cannot open '/nonexistent/config.yaml'");
	run_release(&r);
	write_file(CLI->config, "limits:\n  max_cpu: 3\n");
	user_cli(&r, "list", NULL);
	assert_failed(&r, 1, ":2: unknown key 'limits.max_cpu'\nhint: ");
	run_release(&r);

	/* a data directory that cannot be made */
	struct buf file = BUF_INIT;
	buf_addf(&file, "%s/a-file", CLI->dir);
	write_file(file.data, "x");
	write_file(CLI->config, "");
	free(CLI->data);
	buf_addf(&file, "/data");
	CLI->data = buf_detach(&file, NULL);
	user_cli(&r, "list", NULL);
	assert_failed(&r, 1, "bhatti: cannot create data directory '");
	run_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
