/* long-tiers.c — the Debian image tiers end to end: a real daemon (TCG),
 * `bhatti create --image TIER`, and what each tier promises, run as uid
 * 1000 through `bhatti exec`:
 *   minimal: passwordless sudo, the tools (git, a python venv with pip,
 *            node and npm, make and cc on a small C program, ...),
 *            /workspace owned by lohar, the sandbox's name resolving;
 *   browser: headless chromium renders a local page (--dump-dom shows
 *            what its script wrote), --no-sandbox as in CI (minutes
 *            under TCG; with --single-process it crashed, SIGTRAP);
 *   docker:  dockerd starts (start-docker: cgroup2, the guest modules) and
 *            `docker run` runs an image made here with `docker import`
 *            (nothing can be pulled), on the default bridge network.
 * Each tier's image must also be current by its inputs' record (one hash).
 * `make test-long` only (the images take minutes to build); a tier whose
 * image is not built is skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "helpers.h"
#include "util.h"

static struct daemon_proc D;
static char *KEY;
static struct buf OUT = BUF_INIT, ERR = BUF_INIT;
/* when the current tier's create began and ended (the timings printed) */
static uint64_t T_CREATE, T_READY;

static int setup(void **state UNUSED)
{
	/* chromium and dockerd start in minutes under TCG */
	setenv("TEST_CLI_TIMEOUT_MS", "900000", 0);
	if (daemon_start(&D, "pool_size: 0\nlimits:\n  max_memory_mb: 2048\n") < 0)
		return -1;
	KEY = daemon_user(&D, "tester", "--max-sandboxes 3 --max-memory 2048");
	return KEY ? 0 : -1;
}

static int teardown(void **state UNUSED)
{
	int rc = daemon_stop(&D, true);
	free(KEY);
	buf_release(&OUT);
	buf_release(&ERR);
	return rc;
}

/* `bhatti ARGS...` as the test's user; OUT and ERR are reset first
 * (TEST_VERBOSE=1 prints every run) */
#define cli(...) (buf_reset(&OUT), buf_reset(&ERR), \
		  bhatti(&D, KEY, NULL, &OUT, &ERR, __VA_ARGS__))

/* bash -lc SCRIPT in sandbox name as uid 1000; its exit code */
static int sh_in(const char *name, const char *script)
{
	return cli("exec", name, "--", "bash", "-lc", script, (const char *)NULL);
}

/* Skip unless the tier's image is built; else create a sandbox of it. */
static void create_tier(const char *tier, const char *memory)
{
	const char *img = getenv("BHATTI_IMAGES");
	char *path = test_strf("%s/rootfs-%s.ext4", img ? img : "build/images", tier);
	bool have = access(path, R_OK) == 0;
	free(path);
	if (!have) {
		fprintf(stderr, "no %s image: make images TIERS=%s\n", tier, tier);
		skip();
	}
	/* its inputs' record is one SHA-256, so the next make images finds
	 * it current (the docker tier's setup once overwrote the hash with a
	 * module list: the image was rebuilt every time) */
	char *rec_path = test_strf("%s/rootfs-%s.inputs", img ? img : "build/images", tier);
	char *rec = read_text(rec_path);
	assert_non_null(rec);
	assert_int_equal(strspn(rec, "0123456789abcdef"), 64);
	assert_string_equal(rec + 64, "\n");
	free(rec);
	free(rec_path);
	T_CREATE = now_ms();
	assert_int_equal(cli("create", "--name", tier, "--image", tier, "--memory", memory,
			     (const char *)NULL), 0);
	T_READY = now_ms();
	assert_int_equal(cli("inspect", tier, "--json", (const char *)NULL), 0);
	char *want = test_strf("\"image\":\"%s\"", tier);
	/* (the JSON is printed indented or not: compare without spaces) */
	struct buf flat = BUF_INIT;
	for (size_t i = 0; i < OUT.len; i++)
		if (OUT.data[i] != ' ' && OUT.data[i] != '\n' && OUT.data[i] != '\t')
			buf_add(&flat, &OUT.data[i], 1);
	assert_non_null(strstr(flat.data, want));
	buf_release(&flat);
	free(want);
}

/* Destroy the tier's sandbox; print how long its create and checks took
 * ("# " lines: tests/run.sh's log keeps them for docs/benchmarks.md). */
static void destroy_tier(const char *tier)
{
	uint64_t checked = now_ms();
	assert_int_equal(cli("destroy", "-y", tier, (const char *)NULL), 0);
	printf("# %s: create %.1f s, checks %.1f s\n", tier, (T_READY - T_CREATE) / 1000.0,
	       (checked - T_READY) / 1000.0);
}

static void test_minimal(void **state UNUSED)
{
	create_tier("minimal", "512");
	assert_int_equal(sh_in("minimal", "id; sudo true && echo sudo-ok; stat -c %U /workspace"), 0);
	assert_non_null(strstr(OUT.data, "uid=1000(lohar) gid=1000(lohar)"));
	assert_non_null(strstr(OUT.data, "sudo-ok\nlohar\n"));
	/* the name resolves for sudo (NSS myhostname): no warning */
	assert_null(strstr(ERR.data, "unable to resolve"));
	assert_int_equal(sh_in("minimal",
			       "cd /workspace && git --version && git init -q repo && "
			       "python3 -m venv venv && venv/bin/pip --version >/dev/null && echo venv-ok && "
			       "node -e 'console.log(\"node\", 6 * 7)' && npm --version >/dev/null && "
			       "mkdir -p c && cd c && "
			       "printf '#include <stdio.h>\\nint main(void) { puts(\"built\"); return 0; }\\n' > hello.c && "
			       "printf 'hello: hello.c\\n\\tcc -O2 -o hello hello.c\\n' > Makefile && "
			       "make -s && ./hello && "
			       "for t in curl wget jq unzip ssh less ps ip vim.tiny nano; do "
			       "command -v $t >/dev/null || echo missing $t; done; "
			       "test -f /etc/ssl/certs/ca-certificates.crt && echo certs"),
			 0);
	assert_non_null(strstr(OUT.data, "git version 2."));
	assert_non_null(strstr(OUT.data, "venv-ok\nnode 42\n"));
	assert_non_null(strstr(OUT.data, "built\n"));
	assert_non_null(strstr(OUT.data, "certs\n"));
	assert_null(strstr(OUT.data, "missing"));
	destroy_tier("minimal");
}

static void test_browser(void **state UNUSED)
{
	create_tier("browser", "1024");
	assert_int_equal(sh_in("browser",
			       "printf '<html><body><p>static</p><script>"
			       "document.body.innerHTML = \"<p id=x>rendered-by-\" + \"script</p>\";"
			       "</script></body></html>' > /workspace/page.html && "
			       "{ time timeout 800 chromium --headless --disable-gpu --no-first-run "
			       "--no-sandbox --dump-dom file:///workspace/page.html 2>/tmp/chromium.err || "
			       "{ echo \"chromium: exit $?\" >&2; tail -n 30 /tmp/chromium.err >&2; false; }; } && "
			       "chromedriver --version"),
			 0);
	assert_non_null(strstr(OUT.data, "<p id=\"x\">rendered-by-script</p>"));
	assert_null(strstr(OUT.data, "static"));
	assert_non_null(strstr(OUT.data, "ChromeDriver"));
	destroy_tier("browser");
}

static void test_docker(void **state UNUSED)
{
	create_tier("docker", "1024");
	/* an image made here: a static program, tarred, docker import */
	assert_int_equal(sh_in("docker",
			       "set -e; start-docker; mkdir -p /workspace/img && cd /workspace/img && "
			       "printf '#include <stdio.h>\\nint main(void) { puts(\"hello from a container\"); return 0; }\\n' > hello.c && "
			       "cc -static -O2 -o hello hello.c && tar -c hello | docker import - hello:local >/dev/null && "
			       "docker run --rm hello:local /hello && docker images --format '{{.Repository}}:{{.Tag}}'"),
			 0);
	assert_non_null(strstr(OUT.data, "hello from a container\nhello:local\n"));
	destroy_tier("docker");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_browser),
		cmocka_unit_test(test_docker),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
