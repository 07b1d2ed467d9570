/* cli.c — benchmark of the whole path a user takes: `bhatti exec NAME --
 * true` (a CLI process, HTTP, the daemon, the agent, the guest), the API
 * alone (one keep-alive HTTP client in this process), and the raw agent
 * round trip on an engine VM of the same image and shape in this process
 * (those three interleaved, one of each per round); `bhatti create` to
 * first exec; 10 and 20 concurrent CLI execs. Prints p50/p99
 * (docs/benchmarks.md).
 *
 *   build/bench/cli [RUNS]      (default 200)
 *
 * Starts its own `bhatti serve` in a temp dir (tests/helpers.c), as the
 * end-to-end tests do.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <curl/curl.h>

#include "engine.h"
#include "fileops.h"
#include "helpers.h"
#include "loop.h"
#include "stats.h"

static struct daemon_proc D;
static char *KEY;

static double ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	daemon_stop(&D, true);
	exit(1);
}

static pid_t spawn_cli(const char *const *args)
{
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[32];
		int n = 0;
		struct buf b = BUF_INIT;
		buf_addf(&b, "%s/bhatti", test_build_dir());
		argv[n++] = b.data;
		for (const char *const *a = args; *a; a++)
			argv[n++] = (char *)*a;
		argv[n] = NULL;
		setenv("BHATTI_URL", D.url, 1);
		setenv("BHATTI_TOKEN", KEY, 1);
		setenv("HOME", D.home, 1);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int wait_ok(pid_t pid)
{
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static double cli_once(const char *const *args)
{
	uint64_t t0 = now_ns();
	if (wait_ok(spawn_cli(args)) != 0)
		die("a CLI run failed");
	return ms_since(t0);
}

static size_t sink(char *p UNUSED, size_t s, size_t n, void *a UNUSED)
{
	return s * n;
}

/* The API alone: POST /exec on one keep-alive connection. */
struct api {
	CURL *c;
	struct curl_slist *h;
	struct buf url, auth;
};

static void api_open(struct api *a)
{
	a->c = curl_easy_init();
	buf_init(&a->url);
	buf_init(&a->auth);
	buf_addf(&a->url, "%s/sandboxes/bench/exec", D.url);
	buf_addf(&a->auth, "Authorization: Bearer %s", KEY);
	a->h = curl_slist_append(NULL, a->auth.data);
	a->h = curl_slist_append(a->h, "Content-Type: application/json");
	curl_easy_setopt(a->c, CURLOPT_URL, a->url.data);
	curl_easy_setopt(a->c, CURLOPT_HTTPHEADER, a->h);
	curl_easy_setopt(a->c, CURLOPT_POSTFIELDS, "{\"cmd\":[\"true\"]}");
	curl_easy_setopt(a->c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(a->c, CURLOPT_TCP_NODELAY, 1L);
}

static double api_once(struct api *a)
{
	uint64_t t0 = now_ns();
	long code = 0;
	if (curl_easy_perform(a->c) != CURLE_OK ||
	    curl_easy_getinfo(a->c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200)
		die("API exec failed");
	return ms_since(t0);
}

static void api_close(struct api *a)
{
	curl_slist_free_all(a->h);
	curl_easy_cleanup(a->c);
	buf_release(&a->url);
	buf_release(&a->auth);
}

/* The raw agent round trip: an engine VM of the same image and shape in
 * this process (the daemon's VM channel takes one client, its own). */
struct raw {
	char *dir;
	struct engine *eng;
	struct vm *vm;
};

static void raw_open(struct raw *r)
{
	struct err e = ERR_INIT;
	r->dir = test_tmpdir("bench-cli-engine");
	if (loop_init() < 0 || fileops_init(&e) < 0)
		die("loop");
	const char *img = getenv("BHATTI_IMAGES");
	struct engine_config cfg = { .data_dir = r->dir, .images_dir = img ? img : "build/images",
				     .accel = "tcg" };
	struct vm_spec spec = { .id = "raw" };
	if (engine_new(&cfg, NULL, NULL, &r->eng, &e) < 0 ||
	    vm_create_sync(r->eng, &spec, &r->vm, &e) < 0)
		die(err_str(&e));
}

static double raw_once(struct raw *r)
{
	char *argv[] = { "true", NULL };
	struct proto_exec req = { .argv = argv, .env = (char *[]){ NULL }, .cwd = (char *)"",
				  .output_path = (char *)"" };
	struct ac_exec_result res;
	struct err e = ERR_INIT;
	uint64_t t0 = now_ns();
	if (ac_exec(vm_agent(r->vm), &req, NULL, 0, &res, 30000, &e) < 0)
		die(err_str(&e));
	double ms = ms_since(t0);
	ac_exec_result_release(&res);
	return ms;
}

static void raw_close(struct raw *r)
{
	struct err e = ERR_INIT;
	vm_destroy_sync(r->vm, &e);
	engine_free(r->eng);
	test_rmtree(r->dir);
	free(r->dir);
}

static void bench_concurrent(int n, int rounds)
{
	double *v = calloc((size_t)rounds, sizeof(double));
	const char *args[] = { "exec", "bench", "--", "true", NULL };
	pid_t *pids = calloc((size_t)n, sizeof(pid_t));
	for (int r = 0; r < rounds; r++) {
		uint64_t t0 = now_ns();
		for (int i = 0; i < n; i++)
			pids[i] = spawn_cli(args);
		for (int i = 0; i < n; i++)
			if (wait_ok(pids[i]) != 0)
				die("a concurrent CLI exec failed");
		v[r] = ms_since(t0);
	}
	char name[64];
	snprintf(name, sizeof(name), "%d concurrent `bhatti exec` (all done)", n);
	stats_print(name, v, (size_t)rounds, "ms");
	free(v);
	free(pids);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 200;
	if (runs < 10)
		runs = 10;
	/* generous limits: this measures speed, not the rate limiter */
	if (daemon_start(&D, "limits:\n  execs_per_min: 0\n  creates_per_min: 0\n"
			     "  max_sandboxes: 100\n") < 0)
		die("daemon did not start");
	KEY = daemon_user(&D, "bench", "--max-sandboxes 100");
	if (!KEY)
		die("user create failed");
	printf("bench/cli: daemon %s, data in %s\n", D.url, D.data);
	const char *create[] = { "create", "--name", "bench", NULL };
	double first = cli_once(create);
	printf("%-40s %.1f ms (template build + clone)\n", "first create", first);

	/* the CLI, the API and the raw agent in turn, one of each per round,
	 * so the three rows see the same machine (its speed drifts by 2x over
	 * minutes here) */
	const char *exec[] = { "exec", "bench", "--", "true", NULL };
	struct api api;
	struct raw raw;
	api_open(&api);
	raw_open(&raw);
	for (int i = 0; i < 5; i++) { /* warm up */
		cli_once(exec);
		api_once(&api);
		raw_once(&raw);
	}
	double *vc = calloc((size_t)runs, sizeof(double)), *va = calloc((size_t)runs, sizeof(double));
	double *vr = calloc((size_t)runs, sizeof(double));
	for (int i = 0; i < runs; i++) {
		vc[i] = cli_once(exec);
		va[i] = api_once(&api);
		vr[i] = raw_once(&raw);
	}
	double cli_p50 = stats_pct(vc, (size_t)runs, 50), api_p50 = stats_pct(va, (size_t)runs, 50);
	double raw_p50 = stats_pct(vr, (size_t)runs, 50);
	stats_print("`bhatti exec bench -- true` (CLI process)", vc, (size_t)runs, "ms");
	stats_print("API POST /exec `true` (keep-alive)", va, (size_t)runs, "ms");
	stats_print("raw agent exec `true` (engine, same shape)", vr, (size_t)runs, "ms");
	free(vc);
	free(va);
	free(vr);
	api_close(&api);
	raw_close(&raw);

	double *v = calloc(50, sizeof(double));
	const char *version[] = { "version", NULL };
	for (int i = 0; i < 50; i++)
		v[i] = cli_once(version);
	stats_print("`bhatti version` (CLI + GET /health)", v, 50, "ms");

	bench_concurrent(10, 20);
	bench_concurrent(20, 20);

	/* create (from the pool when it has one ready) to first exec */
	int nc = 10;
	for (int i = 0; i < nc; i++) {
		char name[32];
		snprintf(name, sizeof(name), "c%d", i);
		const char *cr[] = { "create", "--name", name, NULL };
		const char *ex[] = { "exec", name, "--", "true", NULL };
		const char *ds[] = { "destroy", "-y", name, NULL };
		usleep(1500 * 1000); /* let the pool refill, as between real creates */
		uint64_t t0 = now_ns();
		cli_once(cr);
		cli_once(ex);
		v[i] = ms_since(t0);
		cli_once(ds);
	}
	stats_print("`bhatti create` + first `bhatti exec`", v, (size_t)nc, "ms");

	/* the image a user would ssh into: bench/engine measures ssh on it
	 * (the daemon has no port forward to reach a sandbox's sshd yet) */
	const char *images = getenv("BHATTI_IMAGES") ? getenv("BHATTI_IMAGES") : "build/images";
	struct buf mimg = BUF_INIT;
	buf_addf(&mimg, "%s/rootfs-minimal.ext4", images);
	if (access(mimg.data, R_OK) == 0) {
		const char *cm[] = { "create", "--name", "mini", "--image", "minimal", NULL };
		const char *em[] = { "exec", "mini", "--", "true", NULL };
		cli_once(cm);
		for (int i = 0; i < 3; i++)
			cli_once(em);
		for (int i = 0; i < 50; i++)
			v[i] = cli_once(em);
		stats_print("`bhatti exec mini -- true` (minimal)", v, 50, "ms");
		printf("%-40s compare: ssh into the same image, bench/engine\n", "");
	} else {
		printf("%-40s skipped: no minimal image (make images-minimal)\n", "CLI exec on minimal");
	}
	buf_release(&mimg);

	printf("\nCLI exec p50 - API exec p50   = %.2f ms\n", cli_p50 - api_p50);
	printf("CLI exec p50 - raw agent p50  = %.2f ms   (target <= 5 ms)\n", cli_p50 - raw_p50);
	printf("API exec p50 / raw agent p50  = %.2fx     (target <= 2x)\n", api_p50 / raw_p50);
	free(v);
	free(KEY);
	daemon_stop(&D, true);
	return 0;
}
