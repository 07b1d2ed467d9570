/* cli.c — benchmark of the whole path a user takes: `bhatti exec NAME --
 * true` (a CLI process, HTTP, the daemon, the agent, the guest), the API
 * alone (one keep-alive HTTP client in this process), and the raw agent
 * round trip on an engine VM of the same image and shape in this process;
 * `bhatti create` to first exec; 10 and 20 concurrent CLI execs. Prints
 * p50/p99 (docs/benchmarks.md).
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
static void bench_api(int runs, double *ret_p50)
{
	CURL *c = curl_easy_init();
	struct buf url = BUF_INIT, auth = BUF_INIT;
	buf_addf(&url, "%s/sandboxes/bench/exec", D.url);
	buf_addf(&auth, "Authorization: Bearer %s", KEY);
	struct curl_slist *h = curl_slist_append(NULL, auth.data);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url.data);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"cmd\":[\"true\"]}");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	double *v = calloc((size_t)runs, sizeof(double));
	for (int i = 0; i < runs; i++) {
		uint64_t t0 = now_ns();
		long code = 0;
		if (curl_easy_perform(c) != CURLE_OK ||
		    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200)
			die("API exec failed");
		v[i] = ms_since(t0);
	}
	*ret_p50 = stats_pct(v, (size_t)runs, 50);
	stats_print("API POST /exec `true` (keep-alive)", v, (size_t)runs, "ms");
	free(v);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	buf_release(&url);
	buf_release(&auth);
}

/* The raw agent round trip: an engine VM of the same image and shape in
 * this process (the daemon's VM channel takes one client, its own). */
static void bench_agent(int runs, double *ret_p50)
{
	char *dir = test_tmpdir("bench-cli-engine");
	struct err e = ERR_INIT;
	if (loop_init() < 0 || fileops_init(&e) < 0)
		die("loop");
	const char *img = getenv("BHATTI_IMAGES");
	struct engine_config cfg = { .data_dir = dir, .images_dir = img ? img : "build/images",
				     .accel = "tcg", .pool_size = -1 };
	struct engine *eng;
	struct vm *vm;
	struct vm_spec spec = { .id = "raw" };
	if (engine_new(&cfg, NULL, NULL, &eng, &e) < 0 || vm_create_sync(eng, &spec, &vm, &e) < 0)
		die(err_str(&e));
	char *argv[] = { "true", NULL };
	struct proto_exec req = { .argv = argv, .env = (char *[]){ NULL }, .cwd = (char *)"",
				  .output_path = (char *)"" };
	double *v = calloc((size_t)runs, sizeof(double));
	for (int i = 0; i < runs; i++) {
		struct ac_exec_result r;
		uint64_t t0 = now_ns();
		if (ac_exec(vm_agent(vm), &req, NULL, 0, &r, 30000, &e) < 0)
			die(err_str(&e));
		v[i] = ms_since(t0);
		ac_exec_result_release(&r);
	}
	*ret_p50 = stats_pct(v, (size_t)runs, 50);
	stats_print("raw agent exec `true` (engine, same shape)", v, (size_t)runs, "ms");
	free(v);
	vm_destroy_sync(vm, &e);
	engine_free(eng);
	test_rmtree(dir);
	free(dir);
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

	const char *exec[] = { "exec", "bench", "--", "true", NULL };
	for (int i = 0; i < 5; i++)
		cli_once(exec);   /* warm up */
	double *v = calloc((size_t)(runs > 50 ? runs : 50), sizeof(double));
	for (int i = 0; i < runs; i++)
		v[i] = cli_once(exec);
	double cli_p50 = stats_pct(v, (size_t)runs, 50);
	stats_print("`bhatti exec bench -- true` (CLI process)", v, (size_t)runs, "ms");
	const char *version[] = { "version", NULL };
	for (int i = 0; i < 50; i++)
		v[i] = cli_once(version);
	stats_print("`bhatti version` (CLI + GET /health)", v, 50, "ms");

	double api_p50, raw_p50;
	bench_api(runs, &api_p50);
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

	bench_agent(runs, &raw_p50);
	printf("\nCLI exec p50 - API exec p50   = %.2f ms\n", cli_p50 - api_p50);
	printf("CLI exec p50 - raw agent p50  = %.2f ms   (target <= 5 ms)\n", cli_p50 - raw_p50);
	printf("API exec p50 / raw agent p50  = %.2fx     (target <= 2x)\n", api_p50 / raw_p50);
	free(v);
	free(KEY);
	daemon_stop(&D, true);
	return 0;
}
