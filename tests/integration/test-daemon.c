/* test-daemon.c — end to end: the real `bhatti` CLI (and curl for raw HTTP)
 * against a real `bhatti serve` in a temp data dir, booting real VMs (TCG
 * here). One daemon for the group; users made with `bhatti user create`.
 *
 * Covers: health and auth (401s, query-string tokens refused), create /
 * list / inspect / exec / destroy through the CLI, exec stdin/stdout/stderr
 * and exit codes, idempotent create, isolation between users (404 like a
 * missing sandbox), quotas (429 / 400), bad names, malformed JSON, oversized
 * bodies, unknown sandboxes, files (write/read/ls/head, 413 over 100 MiB),
 * secrets (names only, reach the sandbox as env, never plaintext in the
 * database, decryptable by Debian's `age`), stop/start keep a process
 * alive, rename, sessions list, setup with a wrong and a right key,
 * version.
 */
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "buf.h"
#include "helpers.h"
#include "json.h"

struct dfix {
	struct daemon_proc d;
	char *alice, *bob, *carol;   /* API keys; carol: 1 sandbox, 1 cpu, 256 MB */
};

static struct dfix *F;

static int setup(void **state)
{
	F = calloc(1, sizeof(*F));
	/* the default pool of one warmed clone: creates take from it, as for users */
	if (daemon_start(&F->d, "pool_size: 1\nlimits:\n  execs_per_min: 600\n  max_secrets: 3\n") < 0)
		return -1;
	F->alice = daemon_user(&F->d, "alice", NULL);
	F->bob = daemon_user(&F->d, "bob", NULL);
	F->carol = daemon_user(&F->d, "carol", "--max-sandboxes 1 --max-cpus 1 --max-memory 256");
	if (!F->alice || !F->bob || !F->carol)
		return -1;
	*state = F;
	return 0;
}

static int teardown(void **state UNUSED)
{
	int rc = daemon_stop(&F->d, true);
	free(F->alice);
	free(F->bob);
	free(F->carol);
	free(F);
	return rc;
}

/* Run the CLI as alice (or another key); out/err are reset first. */
#define CLI(key, in, ...) cli_run(key, in, __VA_ARGS__, (const char *)NULL)
static struct buf OUT = BUF_INIT, ERR = BUF_INIT;
static int cli_run(const char *key, const char *in, const char *arg0, ...)
{
	const char *a[32];
	int n = 0;
	va_list ap;
	va_start(ap, arg0);
	for (const char *s = arg0; s && n < 31; s = va_arg(ap, const char *))
		a[n++] = s;
	va_end(ap);
	a[n] = NULL;
	buf_reset(&OUT);
	buf_reset(&ERR);
	return bhatti_argv(&F->d, key, in, &OUT, &ERR, a);
}

static int HTTP(const char *method, const char *path, const char *key, const char *body,
		struct buf *out)
{
	if (out)
		buf_reset(out);
	return http_call(&F->d, method, path, key, body, out);
}

static cJSON *parse(const struct buf *b)
{
	cJSON *j = cJSON_ParseWithLength(b->data, b->len);
	if (!j)
		fail_msg("not JSON: %s", b->data);
	return j;
}

static void assert_error_json(const struct buf *b, const char *needle)
{
	cJSON *j = parse(b);
	const char *msg = json_get_str(j, "error", NULL);
	if (!msg || (needle && !strstr(msg, needle)))
		fail_msg("expected an error containing '%s', got: %s", needle ? needle : "", b->data);
	cJSON_Delete(j);
}

/* ---- tests ---- */

static void test_health_and_auth(void **state UNUSED)
{
	struct buf b = BUF_INIT;
	assert_int_equal(HTTP("GET", "/health", NULL, NULL, &b), 200);
	cJSON *j = parse(&b);
	assert_string_equal(json_get_str(j, "status", NULL), "ok");
	assert_string_equal(json_get_str(j, "accel", NULL), "tcg");
	cJSON_Delete(j);
	assert_int_equal(HTTP("GET", "/sandboxes", NULL, NULL, &b), 401);
	assert_error_json(&b, "API key");
	assert_int_equal(HTTP("GET", "/sandboxes", "bht_wrong", NULL, &b), 401);
	assert_error_json(&b, "invalid");
	char path[256];
	snprintf(path, sizeof(path), "/sandboxes?token=%s", F->alice);
	assert_int_equal(HTTP("GET", path, NULL, NULL, &b), 401);
	assert_error_json(&b, "query string");
	assert_int_equal(HTTP("GET", "/nope", F->alice, NULL, &b), 404);
	assert_error_json(&b, NULL);
	assert_int_equal(HTTP("PUT", "/sandboxes", F->alice, "{}", &b), 405);
	assert_int_equal(HTTP("GET", "/sandboxes", F->alice, NULL, &b), 200);
	assert_string_equal(b.data, "[]\n");
	buf_release(&b);
}

static void test_create_exec_destroy(void **state UNUSED)
{
	assert_int_equal(CLI(F->alice, NULL, "create", "--name", "dev", "--env", "FOO=bar,X=1"), 0);
	assert_int_equal(CLI(F->alice, NULL, "exec", "dev", "--", "sh", "-c", "echo $FOO$X; echo err >&2; exit 3"), 3);
	assert_string_equal(OUT.data, "bar1\n");
	assert_string_equal(ERR.data, "err\n");
	assert_int_equal(CLI(F->alice, NULL, "exec", "dev", "--", "id", "-u"), 0);
	assert_string_equal(OUT.data, "1000\n");
	/* stdin piped when not a TTY */
	assert_int_equal(CLI(F->alice, "hello world\n", "exec", "dev", "--", "wc", "-c"), 0);
	assert_string_equal(OUT.data, "12\n");
	/* binary output passes through unchanged */
	assert_int_equal(CLI(F->alice, NULL, "exec", "dev", "--", "printf", "\\377\\000\\001"), 0);
	assert_int_equal(OUT.len, 3);
	assert_memory_equal(OUT.data, "\377\000\001", 3);
	/* list / inspect with --json */
	assert_int_equal(CLI(F->alice, NULL, "list", "--json"), 0);
	cJSON *j = parse(&OUT);
	assert_int_equal(cJSON_GetArraySize(j), 1);
	assert_string_equal(json_get_str(cJSON_GetArrayItem(j, 0), "name", NULL), "dev");
	assert_string_equal(json_get_str(cJSON_GetArrayItem(j, 0), "state", NULL), "hot");
	cJSON_Delete(j);
	assert_int_equal(CLI(F->alice, NULL, "inspect", "dev", "--json"), 0);
	j = parse(&OUT);
	assert_string_equal(json_get_str(j, "image", NULL), "tiny");
	char id[64];
	snprintf(id, sizeof(id), "%s", json_get_str(j, "id", NULL));
	cJSON_Delete(j);
	/* by id too */
	assert_int_equal(CLI(F->alice, NULL, "exec", id, "--", "hostname"), 0);
	assert_string_equal(OUT.data, "dev\n");
	/* a command that does not exist */
	assert_int_not_equal(CLI(F->alice, NULL, "exec", "dev", "--", "no-such-cmd"), 0);
	assert_non_null(strstr(ERR.data, "no-such-cmd"));
	/* destroy refuses without -y when not on a TTY */
	int qemu = sandbox_qemu_pid(F->d.data, id);
	assert_true(qemu > 0);
	assert_int_not_equal(CLI(F->alice, NULL, "destroy", "dev"), 0);
	assert_int_equal(CLI(F->alice, NULL, "destroy", "-y", "dev"), 0);
	assert_int_not_equal(CLI(F->alice, NULL, "inspect", "dev"), 0);
	assert_non_null(strstr(ERR.data, "no sandbox 'dev'"));
	assert_true(kill(qemu, 0) < 0 && errno == ESRCH); /* its QEMU is gone */
}

static void test_api_exec_whole_and_streamed(void **state UNUSED)
{
	struct buf b = BUF_INIT;
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"name\":\"api\"}", &b), 201);
	/* idempotent by name */
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"name\":\"api\"}", &b), 200);
	assert_int_equal(HTTP("POST", "/sandboxes/api/exec", F->alice,
			      "{\"cmd\":[\"sh\",\"-c\",\"echo out; echo err >&2; exit 7\"]}", &b), 200);
	cJSON *j = parse(&b);
	assert_int_equal(cJSON_GetObjectItem(j, "exit_code")->valueint, 7);
	assert_string_equal(json_get_str(j, "stdout", NULL), "out\n");
	assert_string_equal(json_get_str(j, "stderr", NULL), "err\n");
	cJSON_Delete(j);
	/* stdin and a timeout */
	assert_int_equal(HTTP("POST", "/sandboxes/api/exec", F->alice,
			      "{\"cmd\":[\"cat\"],\"stdin\":\"piped\"}", &b), 200);
	j = parse(&b);
	assert_string_equal(json_get_str(j, "stdout", NULL), "piped");
	cJSON_Delete(j);
	assert_int_equal(HTTP("POST", "/sandboxes/api/exec", F->alice,
			      "{\"cmd\":[\"sleep\",\"30\"],\"timeout_sec\":1}", &b), 200);
	j = parse(&b);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "timed_out")));
	assert_int_equal(cJSON_GetObjectItem(j, "exit_code")->valueint, 137);
	cJSON_Delete(j);
	/* errors before the command runs */
	assert_int_equal(HTTP("POST", "/sandboxes/api/exec", F->alice, "{\"cmd\":[]}", &b), 400);
	assert_int_equal(HTTP("POST", "/sandboxes/api/exec", F->alice, "{\"cmd\":\"ls\"}", &b), 400);
	assert_int_equal(HTTP("POST", "/sandboxes/api/exec", F->alice, "{\"cmd\":[\"ls\"],\"bogus\":1}", &b), 400);
	assert_error_json(&b, "bogus");
	assert_int_equal(HTTP("POST", "/sandboxes/api/exec", F->alice, "{\"cmd\":[\"ls\"", &b), 400);
	assert_int_equal(HTTP("POST", "/sandboxes/nope/exec", F->alice, "{\"cmd\":[\"ls\"]}", &b), 404);
	assert_error_json(&b, "no sandbox 'nope'");
	/* PATCH renames */
	assert_int_equal(HTTP("PATCH", "/sandboxes/api", F->alice, "{\"name\":\"api2\"}", &b), 200);
	assert_int_equal(HTTP("GET", "/sandboxes/api2", F->alice, NULL, &b), 200);
	assert_int_equal(HTTP("DELETE", "/sandboxes/api2", F->alice, NULL, &b), 204);
	assert_int_equal(HTTP("GET", "/sandboxes/api2", F->alice, NULL, &b), 404);
	buf_release(&b);
}

static void test_bad_input(void **state UNUSED)
{
	struct buf b = BUF_INIT;
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"name\":\"-bad\"}", &b), 400);
	assert_error_json(&b, "invalid sandbox name '-bad': it starts with '-'");
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"name\":\"a b\"}", &b), 400);
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"name\":", &b), 400);
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "[1]", &b), 400);
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"cpus\":\"two\"}", &b), 400);
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"image\":\"nope\"}", &b), 400);
	assert_error_json(&b, "nope");
	/* one rule for image names everywhere (shared/valid.c), and env names checked here */
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"image\":\"Tiny.v2\"}", &b), 400);
	assert_error_json(&b, "invalid image name 'Tiny.v2': 'T' is not allowed");
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"image\":\"my_img\"}", &b), 400);
	assert_error_json(&b, "invalid image name 'my_img': '_' is not allowed");
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"env\":{\"1BAD\":\"x\"}}", &b),
			 400);
	assert_error_json(&b, "invalid environment variable name '1BAD'");
	/* a 2 MiB JSON body */
	size_t n = 2u << 20;
	char *big = malloc(n + 32);
	memset(big, ' ', n + 32);
	memcpy(big, "{\"name\":\"x\"", 11);
	big[n] = '}';
	big[n + 1] = '\0';
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, big, &b), 413);
	free(big);
	assert_int_not_equal(CLI(F->alice, NULL, "create", "--name", "bad name!"), 0);
	assert_non_null(strstr(ERR.data, "invalid sandbox name 'bad name!'"));
	assert_int_not_equal(CLI(F->alice, NULL, "exec", "ghost", "--", "true"), 0);
	assert_non_null(strstr(ERR.data, "no sandbox 'ghost'"));
	/* nothing was created by any of it */
	assert_int_equal(HTTP("GET", "/sandboxes", F->alice, NULL, &b), 200);
	assert_string_equal(b.data, "[]\n");
	char sbx[600];
	snprintf(sbx, sizeof(sbx), "%s/sandboxes/", F->d.data);
	assert_int_equal(count_qemu_under(sbx), 0); /* (the pool's clone lives elsewhere) */
	buf_release(&b);
}

static void test_users_are_isolated(void **state UNUSED)
{
	struct buf b = BUF_INIT;
	assert_int_equal(CLI(F->alice, NULL, "create", "--name", "mine"), 0);
	/* bob: same name is his own, alice's is invisible */
	assert_int_equal(HTTP("GET", "/sandboxes/mine", F->bob, NULL, &b), 404);
	assert_error_json(&b, "no sandbox 'mine'");
	assert_int_equal(HTTP("POST", "/sandboxes/mine/exec", F->bob, "{\"cmd\":[\"true\"]}", &b), 404);
	assert_int_equal(HTTP("DELETE", "/sandboxes/mine", F->bob, NULL, &b), 404);
	assert_int_equal(HTTP("GET", "/sandboxes/mine/files?path=/etc/hostname", F->bob, NULL, &b), 404);
	assert_int_equal(HTTP("GET", "/sandboxes", F->bob, NULL, &b), 200);
	assert_string_equal(b.data, "[]\n");
	assert_int_equal(CLI(F->alice, NULL, "inspect", "mine", "--json"), 0);
	cJSON *j = parse(&OUT);
	char path[128];
	snprintf(path, sizeof(path), "/sandboxes/%s", json_get_str(j, "id", NULL));
	cJSON_Delete(j);
	assert_int_equal(HTTP("GET", path, F->bob, NULL, &b), 404);   /* by id too */
	/* secrets are per user */
	assert_int_equal(CLI(F->alice, "s3cret-alice", "secret", "set", "TOKEN_A"), 0);
	assert_int_equal(HTTP("GET", "/secrets", F->bob, NULL, &b), 200);
	assert_string_equal(b.data, "[]\n");
	assert_int_equal(HTTP("DELETE", "/secrets/TOKEN_A", F->bob, NULL, &b), 404);
	assert_int_equal(CLI(F->alice, NULL, "secret", "delete", "TOKEN_A"), 0);
	assert_int_equal(CLI(F->alice, NULL, "destroy", "-y", "mine"), 0);
	buf_release(&b);
}

static void test_quotas(void **state UNUSED)
{
	struct buf b = BUF_INIT;
	assert_int_equal(HTTP("POST", "/sandboxes", F->carol, "{\"name\":\"c1\",\"cpus\":2}", &b), 400);
	assert_error_json(&b, "cpus");
	assert_int_equal(HTTP("POST", "/sandboxes", F->carol, "{\"name\":\"c1\",\"memory_mb\":512}", &b), 400);
	assert_error_json(&b, "memory");
	assert_int_equal(HTTP("POST", "/sandboxes", F->carol, "{\"name\":\"c1\",\"memory_mb\":256}", &b), 201);
	assert_int_equal(HTTP("POST", "/sandboxes", F->carol, "{\"name\":\"c2\",\"memory_mb\":256}", &b), 429);
	assert_error_json(&b, "at most 1 sandboxes");
	assert_int_equal(HTTP("DELETE", "/sandboxes/c1", F->carol, NULL, &b), 204);
	buf_release(&b);
}

static void test_files(void **state UNUSED)
{
	struct buf b = BUF_INIT;
	assert_int_equal(CLI(F->alice, NULL, "create", "--name", "files"), 0);
	assert_int_equal(CLI(F->alice, "line1\nline2\nline3\n", "file", "write", "files", "/workspace/d/a.txt"), 0);
	assert_int_equal(CLI(F->alice, NULL, "file", "read", "files", "/workspace/d/a.txt"), 0);
	assert_string_equal(OUT.data, "line1\nline2\nline3\n");
	assert_int_equal(CLI(F->alice, NULL, "file", "read", "files", "/workspace/d/a.txt", "--offset", "1", "--limit", "1"), 0);
	assert_string_equal(OUT.data, "line2\n");
	assert_int_equal(CLI(F->alice, NULL, "file", "ls", "files", "/workspace/d", "--json"), 0);
	assert_non_null(strstr(OUT.data, "a.txt"));
	assert_int_equal(CLI(F->alice, NULL, "exec", "files", "--", "stat", "-c", "%u %a", "/workspace/d/a.txt"), 0);
	assert_string_equal(OUT.data, "1000 644\n");
	assert_int_not_equal(CLI(F->alice, NULL, "file", "read", "files", "/nope"), 0);
	assert_int_equal(HTTP("GET", "/sandboxes/files/files?path=/nope", F->alice, NULL, &b), 404);
	assert_int_equal(HTTP("GET", "/sandboxes/files/files?path=/etc", F->alice, NULL, &b), 400);
	assert_int_equal(HTTP("GET", "/sandboxes/files/files", F->alice, NULL, &b), 400);
	assert_int_equal(HTTP("HEAD", "/sandboxes/files/files?path=/workspace/d/a.txt", F->alice, NULL, &b), 200);
	assert_int_equal(HTTP("HEAD", "/sandboxes/files/files?path=/nope", F->alice, NULL, &b), 404);
	/* over 100 MiB: 413 before a byte is written */
	char *big = xstrdup("/tmp/bhatti-test-big-XXXXXX");
	int fd = mkstemp(big);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (101 << 20)), 0);
	close(fd);
	char *data = NULL;
	{
		struct buf p = BUF_INIT;
		buf_addf(&p, "@%s", big);
		data = buf_detach(&p, NULL);
	}
	char url[512], auth[256];
	snprintf(url, sizeof(url), "%s/sandboxes/files/files?path=/workspace/big", F->d.url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", F->alice);
	char *argv[] = { "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
			 "-H", auth, "--data-binary", data, url, NULL };
	buf_reset(&b);
	test_run(argv, NULL, NULL, 0, &b, NULL, 120000);
	assert_string_equal(b.data, "413");
	unlink(big);
	free(big);
	free(data);
	assert_int_not_equal(CLI(F->alice, NULL, "exec", "files", "--", "test", "-e", "/workspace/big"), 0);
	assert_int_equal(CLI(F->alice, NULL, "destroy", "-y", "files"), 0);
	buf_release(&b);
}

/* grep -r -a the whole data dir for text: it must answer "not found"
 * (exit 1; an error, exit 2, proves nothing), and each of `must_exist`
 * (paths under the data dir, "%s" standing for the sandbox id) must be
 * there and not empty, so that grep searched it. A file the daemon renames
 * or deletes under grep is such an error: that alone is retried. */
static void assert_not_on_disk(const char *text, const char *id, const char *const *must_exist)
{
	char rel[256], path[1024];
	struct stat st;
	for (const char *const *f = must_exist; *f; f++) {
		snprintf(rel, sizeof(rel), *f, id);
		snprintf(path, sizeof(path), "%s/%s", F->d.data, rel);
		if (stat(path, &st) < 0 || st.st_size == 0)
			fail_msg("'%s' is missing or empty: grep would not search it", path);
	}
	struct buf o = BUF_INIT, ge = BUF_INIT;
	int rc = test_grep_absent(text, F->d.data, &o, &ge);
	if (rc != 1)
		fail_msg("grep for the secret in the data dir: exit %d, want 1 (not found); "
			 "found in: %s; errors: %s", rc, o.data, ge.data);
	buf_release(&o);
	buf_release(&ge);
}

static void test_secrets(void **state UNUSED)
{
	assert_int_equal(CLI(F->alice, "hunter2-very-secret", "secret", "set", "API_TOKEN"), 0);
	assert_int_equal(CLI(F->alice, NULL, "secret", "list", "--json"), 0);
	assert_non_null(strstr(OUT.data, "API_TOKEN"));
	assert_null(strstr(OUT.data, "hunter2"));
	assert_int_not_equal(CLI(F->alice, "x", "secret", "set", "bad-name"), 0);
	assert_non_null(strstr(ERR.data, "invalid secret name 'bad-name': '-' is not allowed"));
	/* the API and the store agree on the rule: a leading '_' is a valid
	 * environment name (the store used to refuse it, a 500) */
	struct buf hb = BUF_INIT;
	assert_int_equal(HTTP("POST", "/secrets", F->alice, "{\"name\":\"_UNDER\",\"value\":\"v\"}",
			      &hb), 201);
	assert_int_equal(HTTP("DELETE", "/secrets/_UNDER", F->alice, NULL, &hb), 204);
	/* at most limits.max_secrets per user (3 here, API_TOKEN one of them):
	 * a fourth is refused, replacing one is not a new one, others may */
	assert_int_equal(HTTP("POST", "/secrets", F->alice, "{\"name\":\"S2\",\"value\":\"v\"}", &hb),
			 201);
	assert_int_equal(HTTP("POST", "/secrets", F->alice, "{\"name\":\"S3\",\"value\":\"v\"}", &hb),
			 201);
	assert_int_equal(HTTP("POST", "/secrets", F->alice, "{\"name\":\"S4\",\"value\":\"v\"}", &hb),
			 429);
	assert_error_json(&hb, "quota: user 'alice' may have at most 3 secrets");
	assert_int_not_equal(CLI(F->alice, "v", "secret", "set", "S4"), 0);
	assert_non_null(strstr(ERR.data, "at most 3 secrets"));
	assert_int_equal(HTTP("POST", "/secrets", F->alice, "{\"name\":\"S3\",\"value\":\"w\"}", &hb),
			 200);
	assert_int_equal(HTTP("POST", "/secrets", F->bob, "{\"name\":\"S4\",\"value\":\"v\"}", &hb),
			 201);
	assert_int_equal(HTTP("DELETE", "/secrets/S4", F->bob, NULL, &hb), 204);
	assert_int_equal(HTTP("DELETE", "/secrets/S3", F->alice, NULL, &hb), 204);
	assert_int_equal(HTTP("DELETE", "/secrets/S2", F->alice, NULL, &hb), 204);
	buf_release(&hb);
	assert_int_equal(CLI(F->alice, NULL, "create", "--name", "sec", "--secret", "API_TOKEN"), 0);
	assert_int_equal(CLI(F->alice, NULL, "exec", "sec", "--", "sh", "-c", "echo \"$API_TOKEN\""), 0);
	assert_string_equal(OUT.data, "hunter2-very-secret\n");
	assert_int_not_equal(CLI(F->alice, NULL, "create", "--name", "sec2", "--secret", "MISSING"), 0);
	assert_non_null(strstr(ERR.data, "MISSING"));
	/* never in plaintext on disk: the database, the sandbox's files */
	assert_int_equal(CLI(F->alice, NULL, "inspect", "sec", "--json"), 0);
	cJSON *sj = parse(&OUT);
	char id[64];
	snprintf(id, sizeof(id), "%s", json_get_str(sj, "id", ""));
	cJSON_Delete(sj);
	const char *hot_files[] = { "state.db", "sandboxes/%s/disk.ext4", NULL };
	assert_not_on_disk("hunter2-very-secret", id, hot_files);
	/* nor once it is stopped: its memory and device state are on disk
	 * then, encrypted (the guest's environment holds the secret) */
	assert_int_equal(CLI(F->alice, NULL, "stop", "sec"), 0);
	const char *cold_files[] = { "state.db", "sandboxes/%s/disk.ext4", "sandboxes/%s/mem",
				     "sandboxes/%s/state", NULL };
	assert_not_on_disk("hunter2-very-secret", id, cold_files);
	assert_int_equal(CLI(F->alice, NULL, "start", "sec"), 0);
	assert_int_equal(CLI(F->alice, NULL, "exec", "sec", "--", "sh", "-c", "echo \"$API_TOKEN\""), 0);
	assert_string_equal(OUT.data, "hunter2-very-secret\n");
	char cmd[1024];
	char *argv[] = { "sh", "-c", cmd, NULL };
	struct buf o = BUF_INIT;
	struct stat st;
	/* and the stored value is real age: Debian's age decrypts it */
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 %s/state.db \"select writefile('%s/secret.age', ciphertext) from secrets "
		 "where name='API_TOKEN'\" >/dev/null && age -d -i %s/age.key %s/secret.age",
		 F->d.data, F->d.dir, F->d.data, F->d.dir);
	buf_reset(&o);
	assert_int_equal(test_run(argv, NULL, NULL, 0, &o, NULL, 60000), 0);
	assert_string_equal(o.data, "hunter2-very-secret");
	char key[512];
	snprintf(key, sizeof(key), "%s/age.key", F->d.data);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	buf_release(&o);
	assert_int_equal(CLI(F->alice, NULL, "secret", "delete", "API_TOKEN"), 0);
	assert_int_not_equal(CLI(F->alice, NULL, "secret", "delete", "API_TOKEN"), 0);
	assert_int_equal(CLI(F->alice, NULL, "destroy", "-y", "sec"), 0);
}

static void test_stop_start_sessions(void **state UNUSED)
{
	/* the init script runs as session "init", which must outlive the stop */
	assert_int_equal(CLI(F->alice, NULL, "create", "--name", "cold", "--init", "sleep 1000"), 0);
	assert_int_equal(CLI(F->alice, NULL, "exec", "cold", "--", "sh", "-c",
			     "echo kept > /tmp/t; (sleep 1000 & echo $! > /tmp/pid)"), 0);
	assert_int_equal(CLI(F->alice, NULL, "stop", "cold"), 0);
	assert_int_equal(CLI(F->alice, NULL, "inspect", "cold", "--json"), 0);
	assert_non_null(strstr(OUT.data, "\"stopped\""));
	/* (an exec would wake it: test-daemon-thermal) */
	assert_int_equal(CLI(F->alice, NULL, "start", "cold"), 0);
	assert_int_equal(CLI(F->alice, NULL, "exec", "cold", "--", "sh", "-c",
			     "cat /tmp/t; kill -0 $(cat /tmp/pid) && echo alive"), 0);
	assert_string_equal(OUT.data, "kept\nalive\n");
	assert_int_equal(CLI(F->alice, NULL, "ps", "cold", "--json"), 0);
	cJSON *j = parse(&OUT), *ss, *init = NULL;
	assert_true(cJSON_IsArray(j));
	cJSON_ArrayForEach(ss, j)
		if (strcmp(json_get_str(ss, "id", ""), "init") == 0)
			init = ss;
	if (!init)
		fail_msg("no session 'init' after stop/start: %s", OUT.data);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(init, "running")));
	cJSON_Delete(j);
	assert_int_equal(CLI(F->alice, NULL, "destroy", "-y", "cold"), 0);
}

static void test_setup_and_version(void **state UNUSED)
{
	char cfg[512];
	snprintf(cfg, sizeof(cfg), "%s/.bhatti/config.yaml", F->d.home);
	unlink(cfg);
	assert_int_not_equal(CLI(NULL, NULL, "setup", "--url", F->d.url, "--token", "bht_wrong"), 0);
	assert_int_not_equal(access(cfg, F_OK), 0);
	assert_int_equal(CLI(NULL, NULL, "setup", "--url", F->d.url, "--token", F->alice), 0);
	struct stat st;
	assert_int_equal(stat(cfg, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* now without BHATTI_TOKEN: the config file is used */
	assert_int_equal(CLI(NULL, NULL, "list", "--json"), 0);
	/* the environment comes before the file, a flag before both */
	assert_int_not_equal(CLI("bht_wrong", NULL, "list", "--json"), 0);
	assert_non_null(strstr(ERR.data, "invalid API key"));
	assert_int_equal(CLI("bht_wrong", NULL, "--token", F->alice, "list", "--json"), 0);
	assert_int_equal(CLI(NULL, NULL, "version"), 0);
	assert_non_null(strstr(OUT.data, "0.1.0"));
	assert_non_null(strstr(OUT.data, F->d.url));
	unlink(cfg);
	/* a daemon that is not there: one clear line, non-zero */
	struct buf o = BUF_INIT, e = BUF_INIT;
	char *bin = NULL;
	{
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/bhatti", test_build_dir());
		bin = buf_detach(&p, NULL);
	}
	char *argv[] = { bin, "list", NULL };
	char home[512];
	snprintf(home, sizeof(home), "HOME=%s", F->d.home);   /* not the user's config */
	char *env[] = { home, "BHATTI_URL=http://127.0.0.1:1", "BHATTI_TOKEN=bht_x", NULL };
	assert_int_not_equal(test_run(argv, env, NULL, 0, &o, &e, 30000), 0);
	assert_non_null(strstr(e.data, "cannot reach"));
	free(bin);
	buf_release(&o);
	buf_release(&e);
}

static size_t discard(char *p UNUSED, size_t s, size_t n, void *a UNUSED)
{
	return s * n;
}

/* A keep-alive client sends its next request the moment it has a body:
 * 100 POSTs on one connection all answer (lws once took the next request
 * for more of the previous body and spun). */
static void test_keep_alive(void **state UNUSED)
{
	struct buf b = BUF_INIT;
	assert_int_equal(HTTP("POST", "/sandboxes", F->alice, "{\"name\":\"ka\"}", &b), 201);
	CURL *c = curl_easy_init();
	char url[256], auth[256];
	snprintf(url, sizeof(url), "%s/sandboxes/ka/exec", F->d.url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", F->alice);
	struct curl_slist *h = curl_slist_append(NULL, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"cmd\":[\"true\"]}");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	long connects = 0;
	for (int i = 0; i < 100; i++) {
		long code = 0, n = 0;
		assert_int_equal(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n);
		assert_int_equal(code, 200);
		connects += n;
	}
	assert_int_equal(connects, 1);   /* one connection for all of them */
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	assert_int_equal(HTTP("DELETE", "/sandboxes/ka", F->alice, NULL, &b), 204);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health_and_auth),
		cmocka_unit_test(test_create_exec_destroy),
		cmocka_unit_test(test_api_exec_whole_and_streamed),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_users_are_isolated),
		cmocka_unit_test(test_quotas),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_stop_start_sessions),
		cmocka_unit_test(test_setup_and_version),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
