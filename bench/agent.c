/* agent.c — benchmark of the agent protocol over lohar's test-mode unix
 * socket (no VM): exec round trip, output/input/file throughput, and
 * concurrent execs. Starts its own lohar; prints p50/p99 (see
 * docs/benchmarks.md for recorded results).
 *
 *   build/bench/agent [RUNS]      (RUNS of exec `true`, default 500)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "stats.h"

#define MB (1024.0 * 1024.0)

static double ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

static void die(const char *what, const struct err *e)
{
	fprintf(stderr, "bench: %s: %s\n", what, err_str(e));
	exit(1);
}

static void bench_exec_true(struct ac *ac, size_t runs)
{
	double *v = calloc(runs, sizeof(*v));
	char *argv[] = { (char *)"true", NULL };
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
	struct err e = ERR_INIT;
	for (size_t i = 0; i < runs + 20; i++) {
		struct ac_exec_result r;
		uint64_t t0 = now_ns();
		if (ac_exec(ac, &req, NULL, 0, &r, 10000, &e) < 0 || r.exit_code != 0)
			die("exec true", &e);
		if (i >= 20) /* warm-up */
			v[i - 20] = ms_since(t0);
		ac_exec_result_release(&r);
	}
	stats_print("exec `true` round trip", v, runs, "ms");
	free(v);
}

/* The machine's own cost of running `true` (vfork, exec, wait — what
 * lohar does) with no agent in between: the floor under the exec round
 * trip. vfork, because this process holds a 100 MB buffer that fork would
 * have to map again. */
__attribute__((noinline)) static pid_t spawn_true(void)
{
	pid_t pid = vfork();
	if (pid == 0) {
		execl("/usr/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void bench_spawn_floor(size_t runs)
{
	double *v = calloc(runs, sizeof(*v));
	for (size_t i = 0; i < runs; i++) {
		uint64_t t0 = now_ns();
		pid_t pid = spawn_true();
		int st;
		waitpid(pid, &st, 0);
		v[i] = ms_since(t0);
	}
	stats_print("vfork+exec+wait `true` (no agent: floor)", v, runs, "ms");
	free(v);
}

static void bench_ping(struct ac *ac, size_t runs)
{
	double *v = calloc(runs, sizeof(*v));
	struct err e = ERR_INIT;
	for (size_t i = 0; i < runs; i++) {
		struct proto_ping p = { .nonce = i }, pong;
		uint64_t t0 = now_ns();
		if (ac_call(ac, PROTO_PING, &p, PROTO_PONG, &pong, 10000, &e) < 0)
			die("ping", &e);
		v[i] = ms_since(t0);
	}
	stats_print("ping round trip (protocol floor)", v, runs, "ms");
	free(v);
}

static void bench_cat(struct ac *ac, const char *path, size_t size, int runs)
{
	double *v = calloc((size_t)runs, sizeof(*v));
	char *argv[] = { (char *)"cat", (char *)path, NULL };
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
	struct err e = ERR_INIT;
	for (int i = 0; i < runs; i++) {
		struct ac_exec_result r;
		uint64_t t0 = now_ns();
		if (ac_exec(ac, &req, NULL, 0, &r, 60000, &e) < 0 || r.out.len != size)
			die("cat", &e);
		v[i] = (double)size / MB / (ms_since(t0) / 1000.0);
		ac_exec_result_release(&r);
	}
	/* for throughput the bad tail is the low end: report p50 and p1 */
	double p50 = stats_pct(v, (size_t)runs, 50);
	printf("%-40s n=%-5d p50=%10.1f MB/s  p1 =%10.1f MB/s  (%zu MB per run)\n",
	       "exec `cat` 100 MB (agent → host)", runs, p50, v[0], size >> 20);
	free(v);
}

static void bench_file_read(struct ac *ac, const char *path, size_t size, int runs)
{
	double *v = calloc((size_t)runs, sizeof(*v));
	struct proto_file_read req = { .path = (char *)path };
	struct err e = ERR_INIT;
	for (int i = 0; i < runs; i++) {
		struct buf out = BUF_INIT;
		uint64_t t0 = now_ns();
		if (ac_read_file(ac, &req, &out, NULL, NULL, 60000, &e) < 0 || out.len != size)
			die("file read", &e);
		v[i] = (double)size / MB / (ms_since(t0) / 1000.0);
		buf_release(&out);
	}
	double p50 = stats_pct(v, (size_t)runs, 50);
	printf("%-40s n=%-5d p50=%10.1f MB/s  p1 =%10.1f MB/s\n",
	       "FILE_READ 100 MB (agent → host)", runs, p50, v[0]);
	free(v);
}

static void bench_stdin(struct ac *ac, const char *data, size_t size, int runs)
{
	double *v = calloc((size_t)runs, sizeof(*v));
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"cat > /dev/null", NULL };
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"",
				  .flags = PROTO_EXEC_STDIN };
	struct err e = ERR_INIT;
	for (int i = 0; i < runs; i++) {
		struct ac_exec_result r;
		uint64_t t0 = now_ns();
		if (ac_exec(ac, &req, data, size, &r, 60000, &e) < 0 || r.exit_code != 0)
			die("stdin", &e);
		v[i] = (double)size / MB / (ms_since(t0) / 1000.0);
		ac_exec_result_release(&r);
	}
	double p50 = stats_pct(v, (size_t)runs, 50);
	printf("%-40s n=%-5d p50=%10.1f MB/s  p1 =%10.1f MB/s\n",
	       "exec stdin 100 MB (host → agent)", runs, p50, v[0]);
	free(v);
}

static void bench_file_write(struct ac *ac, const char *path, const char *data, size_t size,
			     int runs)
{
	double *v = calloc((size_t)runs, sizeof(*v));
	struct proto_file_write req = { .path = (char *)path, .mode = 0644, .size = size };
	struct err e = ERR_INIT;
	for (int i = 0; i < runs; i++) {
		uint64_t t0 = now_ns();
		if (ac_write_file(ac, &req, data, size, 60000, &e) < 0)
			die("file write", &e);
		v[i] = (double)size / MB / (ms_since(t0) / 1000.0);
	}
	double p50 = stats_pct(v, (size_t)runs, 50);
	printf("%-40s n=%-5d p50=%10.1f MB/s  p1 =%10.1f MB/s  (includes fsync)\n",
	       "FILE_WRITE 100 MB (host → agent)", runs, p50, v[0]);
	free(v);
}

struct conc {
	int done;
};

static void c_closed(struct ac_stream *s UNUSED, const struct err *e UNUSED, void *arg)
{
	((struct conc *)arg)->done++;
}

static const struct ac_stream_cb conc_cb = { .closed = c_closed };

static void bench_concurrent(struct ac *ac, int n, int runs)
{
	double *v = calloc((size_t)runs, sizeof(*v));
	char *argv[] = { (char *)"true", NULL };
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
	struct err e = ERR_INIT;
	for (int i = 0; i < runs; i++) {
		struct conc c = { 0 };
		uint64_t t0 = now_ns();
		for (int k = 0; k < n; k++)
			if (!ac_open(ac, PROTO_EXEC, &req, &conc_cb, &c, &e))
				die("open", &e);
		while (c.done < n)
			if (ac_poll(ac, 1000, &e) < 0)
				die("poll", &e);
		v[i] = ms_since(t0);
	}
	char name[64];
	snprintf(name, sizeof(name), "%d concurrent execs, all done", n);
	stats_print(name, v, (size_t)runs, "ms");
	free(v);
}

int main(int argc, char **argv)
{
	size_t runs = argc > 1 ? strtoul(argv[1], NULL, 10) : 500;
	struct lohar_proc lp;
	size_t big = 100u << 20;

	if (runs < 200)
		runs = 200;
	if (lohar_start(&lp, "bench", "self") < 0) {
		fprintf(stderr, "bench: cannot start lohar (is it built? make)\n");
		return 1;
	}
	struct ac *ac = lohar_connect(&lp, "bench");
	if (!ac)
		return 1;

	char *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)(i * 31 + 7);
	struct buf path = BUF_INIT;
	buf_addf(&path, "%s/big.bin", lp.workspace);
	int fd = open(path.data, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write_all(fd, data, big) < 0)
		return 1;
	close(fd);

	printf("bench/agent: lohar %s in test mode over a unix socket, %ld cpus\n",
	       BHATTI_VERSION, sysconf(_SC_NPROCESSORS_ONLN));
	bench_spawn_floor(runs);
	bench_ping(ac, runs);
	bench_exec_true(ac, runs);
	bench_concurrent(ac, 10, 50);
	bench_concurrent(ac, 20, 50);
	bench_cat(ac, path.data, big, 10);
	bench_file_read(ac, path.data, big, 10);
	bench_stdin(ac, data, big, 10);
	struct buf wpath = BUF_INIT;
	buf_addf(&wpath, "%s/written.bin", lp.workspace);
	bench_file_write(ac, wpath.data, data, big, 5);

	ac_free(ac);
	lohar_stop(&lp);
	free(data);
	buf_release(&path);
	buf_release(&wpath);
	return 0;
}
