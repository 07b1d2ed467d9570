/* engine.c — benchmark of the VM engine with real QEMU microVMs: full boot,
 * create by clone to first exec, hot exec, warm resume + exec, cold stop,
 * cold resume + exec, 10 concurrent execs, and the baseline a user would
 * otherwise use: ssh into the same VM. Prints p50/p99 (docs/benchmarks.md
 * records them with the machine and accelerator).
 *
 *   build/bench/engine [DATA_DIR]        (default: a temp dir under /tmp)
 *
 * The ssh baseline needs the `minimal` image (make images-minimal): sshd
 * runs in the guest on 127.0.0.1:22 and ssh reaches it through a FORWARD
 * stream on the VM's virtio-serial agent port (ProxyCommand → a unix
 * socket this program relays).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "fileops.h"
#include "helpers.h"
#include "log.h"
#include "loop.h"
#include "num.h"
#include "stats.h"

static struct engine *eng;
static const char *images;

static double ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

static void die(const char *what, const struct err *e)
{
	fprintf(stderr, "bench: %s: %s\n", what, err_str(e));
	exit(1);
}

static struct vm *create(struct engine *en, const char *id, const char *image)
{
	struct vm *vm;
	struct err e = ERR_INIT;
	struct vm_spec spec = { .id = id, .image = image };
	if (vm_create_sync(en, &spec, &vm, &e) < 0)
		die("create", &e);
	return vm;
}

static void exec_argv(struct vm *vm, char **argv, int as_root)
{
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"",
				  .flags = as_root ? PROTO_EXEC_ROOT : 0 };
	struct ac_exec_result r;
	struct err e = ERR_INIT;
	if (ac_exec(vm_agent(vm), &req, NULL, 0, &r, 60000, &e) < 0)
		die("exec", &e);
	if (r.exit_code)
		fprintf(stderr, "bench: '%s' exited %d: %s\n", argv[0], r.exit_code, r.err.data);
	ac_exec_result_release(&r);
}

static void exec_true(struct vm *vm)
{
	char *argv[] = { (char *)"true", NULL };
	exec_argv(vm, argv, 0);
}

static void destroy(struct vm *vm)
{
	struct err e = ERR_INIT;
	if (vm_destroy_sync(vm, &e) < 0)
		die("destroy", &e);
}

/* ---- the measurements ------------------------------------------------------------ */

static void bench_boot(const char *data, int runs)
{
	struct engine *cold;
	struct err e = ERR_INIT;
	struct buf dir = BUF_INIT;
	buf_addf(&dir, "%s/boot", data);
	struct engine_config cfg = { .data_dir = dir.data, .images_dir = images, .no_templates = true };
	if (engine_new(&cfg, NULL, NULL, &cold, &e) < 0)
		die("engine", &e);
	double *v = calloc((size_t)runs, sizeof(*v));
	for (int i = 0; i < runs; i++) {
		char id[32];
		snprintf(id, sizeof(id), "boot%d", i);
		uint64_t t0 = now_ns();
		struct vm *vm = create(cold, id, "tiny");
		exec_true(vm);
		v[i] = ms_since(t0);
		destroy(vm);
	}
	stats_print("full boot to first exec (no template)", v, (size_t)runs, "ms");
	free(v);
	engine_free(cold);
	buf_release(&dir);
}

/* Back-to-back creates (create, first exec, destroy) with no pool: each a
 * clone made on demand; alternately on eng (the default: the template's
 * spare memory copy is taken) and on an engine of its own (data/n)
 * with no spare (a linger of 1 ms: each create copies the memory), so
 * both see the same machine noise. */
static void bench_clone(const char *data, int runs)
{
	struct engine *nospare;
	struct err e = ERR_INIT;
	struct buf dir = BUF_INIT;
	buf_addf(&dir, "%s/n", data); /* short: socket paths */
	struct engine_config cfg = { .data_dir = dir.data, .images_dir = images,
				     .spare_linger_ms = 1 };
	if (engine_new(&cfg, NULL, NULL, &nospare, &e) < 0)
		die("engine", &e);
	destroy(create(nospare, "warmup", "tiny")); /* its template */
	double *v[2], *c[2];
	for (int k = 0; k < 2; k++) {
		v[k] = calloc((size_t)runs, sizeof(double));
		c[k] = calloc((size_t)runs, sizeof(double));
	}
	for (int i = 0; i < 2 * runs; i++) {
		int k = i % 2;
		char id[32];
		snprintf(id, sizeof(id), "clone%d", i);
		uint64_t t0 = now_ns();
		struct vm *vm = create(k ? nospare : eng, id, "tiny");
		c[k][i / 2] = ms_since(t0);
		exec_true(vm);
		v[k][i / 2] = ms_since(t0);
		destroy(vm);
	}
	for (int k = 0; k < 2; k++) {
		printf("create by clone, back to back, no pool, %s:\n",
		       k ? "each create copying the memory" : "the spare memory copy (default)");
		stats_print("  create", c[k], (size_t)runs, "ms");
		stats_print("  create to first exec", v[k], (size_t)runs, "ms");
		free(v[k]);
		free(c[k]);
	}
	engine_free(nospare);
	buf_release(&dir);
}

/* Creates spaced out so the pool has refilled each time (how an agent
 * platform or a person creates sandboxes), run the event loop meanwhile. */
static void bench_clone_pooled(int runs)
{
	double *v = calloc((size_t)runs, sizeof(*v)), *c = calloc((size_t)runs, sizeof(*c));
	for (int i = 0; i < runs; i++) {
		uint64_t until = now_ms() + 3000;
		while (now_ms() < until)
			loop_run_once(50);
		char id[32];
		snprintf(id, sizeof(id), "pooled%d", i);
		uint64_t t0 = now_ns();
		struct vm *vm = create(eng, id, "tiny");
		c[i] = ms_since(t0);
		exec_true(vm);
		v[i] = ms_since(t0);
		destroy(vm);
	}
	stats_print("create from the pool (refilled)", c, (size_t)runs, "ms");
	stats_print("create from the pool to first exec", v, (size_t)runs, "ms");
	free(v);
	free(c);
}

static double bench_hot(struct vm *vm, int runs, const char *name)
{
	double *v = calloc((size_t)runs, sizeof(*v));
	for (int i = 0; i < 10; i++)
		exec_true(vm); /* warm */
	for (int i = 0; i < runs; i++) {
		uint64_t t0 = now_ns();
		exec_true(vm);
		v[i] = ms_since(t0);
	}
	stats_print(name, v, (size_t)runs, "ms");
	double p50 = stats_pct(v, (size_t)runs, 50);
	free(v);
	return p50;
}

struct conc {
	int done;
};

static void c_closed(struct ac_stream *s UNUSED, const struct err *e UNUSED, void *arg)
{
	((struct conc *)arg)->done++;
}

static const struct ac_stream_cb conc_cb = { .closed = c_closed };

static void bench_concurrent(struct vm *vm, int n, int runs)
{
	double *v = calloc((size_t)runs, sizeof(*v));
	char *argv[] = { (char *)"true", NULL };
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
	struct err e = ERR_INIT;
	for (int i = 0; i < runs; i++) {
		struct conc c = { 0 };
		uint64_t t0 = now_ns();
		for (int k = 0; k < n; k++)
			if (!ac_open(vm_agent(vm), PROTO_EXEC, &req, &conc_cb, &c, &e))
				die("open", &e);
		while (c.done < n)
			if (ac_poll(vm_agent(vm), 1000, &e) < 0)
				die("poll", &e);
		v[i] = ms_since(t0);
	}
	char name[64];
	snprintf(name, sizeof(name), "%d concurrent execs of `true`", n);
	stats_print(name, v, (size_t)runs, "ms");
	free(v);
}

/* Interleaved, so machine noise hits both sides alike: a hot exec, then
 * pause, 20 ms, resume + exec; the figure of merit is the difference. */
static void bench_warm(struct vm *vm, int runs)
{
	double *v = calloc((size_t)runs, sizeof(*v)), *p = calloc((size_t)runs, sizeof(*p));
	double *h = calloc((size_t)runs, sizeof(*h)), *d = calloc((size_t)runs, sizeof(*d));
	struct err e = ERR_INIT;
	for (int i = 0; i < runs; i++) {
		uint64_t t0 = now_ns();
		exec_true(vm);
		h[i] = ms_since(t0);
		t0 = now_ns();
		if (vm_pause_sync(vm, &e) < 0)
			die("pause", &e);
		p[i] = ms_since(t0);
		usleep(20000);
		t0 = now_ns();
		if (vm_resume_sync(vm, &e) < 0)
			die("resume", &e);
		exec_true(vm);
		v[i] = ms_since(t0);
		d[i] = v[i] - h[i];
	}
	stats_print("pause (warm)", p, (size_t)runs, "ms");
	stats_print("warm resume + exec `true`", v, (size_t)runs, "ms");
	stats_print("  hot exec in the same iterations", h, (size_t)runs, "ms");
	stats_print("  difference per iteration", d, (size_t)runs, "ms");
	free(v);
	free(p);
	free(h);
	free(d);
}

static void bench_cold(struct vm *vm, int runs, double hot)
{
	double *s = calloc((size_t)runs, sizeof(*s)), *r = calloc((size_t)runs, sizeof(*r));
	struct err e = ERR_INIT;
	for (int i = 0; i < runs; i++) {
		uint64_t t0 = now_ns();
		if (vm_stop_sync(vm, &e) < 0)
			die("stop", &e);
		s[i] = ms_since(t0);
		/* the memory left RAM (make sure the next start reads it back),
		 * and the engine has made its copy of the template's memory for
		 * a start (a second after a stop): a cold sandbox waits longer */
		usleep(1300000);
		t0 = now_ns();
		if (vm_start_sync(vm, &e) < 0)
			die("start", &e);
		exec_true(vm);
		r[i] = ms_since(t0);
	}
	stats_print("cold stop (QEMU gone, memory on disk)", s, (size_t)runs, "ms");
	stats_print("cold resume + exec `true`", r, (size_t)runs, "ms");
	printf("%-40s p50 = hot + %.1f ms\n", "", stats_pct(r, (size_t)runs, 50) - hot);
	free(s);
	free(r);
}

/* ---- ssh through a forward ----------------------------------------------------- */

/* The relay: each connection to the unix socket (ssh's ProxyCommand) gets
 * its own FORWARD stream to the guest's port 22. */
struct relay {
	struct watch listen;
	struct vm *vm;
};

struct relay_conn {
	struct watch client;
	struct ac_stream *s;
	struct buf to_client;
	bool client_eof;
};

static void rc_free(void *p)
{
	struct relay_conn *c = p;
	buf_release(&c->to_client);
	free(c);
}

static void rc_update(struct relay_conn *c)
{
	if (c->client.fd >= 0)
		watch_set(&c->client, (c->s && !c->client_eof && ac_send_room(c->s) ? EPOLLIN : 0) |
			  (c->to_client.len ? EPOLLOUT : 0));
}

static void r_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct relay_conn *c = arg;
	if (f->type == PROTO_EOF && c->client.fd >= 0 && !c->to_client.len)
		shutdown(c->client.fd, SHUT_WR);
	if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		if (proto_decode(f, &pe, NULL) == 0) {
			fprintf(stderr, "bench: forward: %s\n", pe.message);
			proto_msg_release(PROTO_ERROR, &pe);
		}
	}
}

static void r_data(struct ac_stream *s UNUSED, uint8_t ch UNUSED, const uint8_t *p, size_t n,
		   void *arg)
{
	struct relay_conn *c = arg;
	buf_add(&c->to_client, p, n);
	rc_update(c);
}

static void r_window(struct ac_stream *s UNUSED, void *arg)
{
	rc_update(arg);
}

static void r_closed(struct ac_stream *s UNUSED, const struct err *e UNUSED, void *arg)
{
	struct relay_conn *c = arg;
	c->s = NULL;
	watch_close(&c->client);
	loop_defer_free(rc_free, c);
}

static const struct ac_stream_cb relay_cb = {
	.frame = r_frame, .data = r_data, .window = r_window, .closed = r_closed,
};

static void on_client(struct watch *w, uint32_t events)
{
	struct relay_conn *c = w->data;
	char chunk[65536];
	if ((events & EPOLLOUT) && c->to_client.len) {
		ssize_t n = write(w->fd, c->to_client.data, c->to_client.len);
		if (n > 0)
			buf_consume(&c->to_client, (size_t)n);
	}
	if ((events & (EPOLLIN | EPOLLHUP)) && c->s && !c->client_eof) {
		size_t room = ac_send_room(c->s);
		ssize_t n = room ? read(w->fd, chunk, MIN(room, sizeof(chunk))) : -1;
		if (n > 0) {
			ac_send_data(c->s, PROTO_CH_IN, chunk, (size_t)n);
		} else if (n == 0) {
			c->client_eof = true;
			ac_send_eof(c->s, PROTO_CH_IN);
		}
	}
	rc_update(c);
}

static void on_accept(struct watch *w, uint32_t events UNUSED)
{
	struct relay *r = w->data;
	struct err e = ERR_INIT;
	int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct relay_conn *c = xcalloc(1, sizeof(*c));
	struct proto_forward fw = { .port = 22 };
	buf_init(&c->to_client);
	watch_init(&c->client, on_client, c);
	c->s = ac_open(vm_agent(r->vm), PROTO_FORWARD, &fw, &relay_cb, c, &e);
	if (!c->s)
		die("forward", &e);
	watch_add(&c->client, fd, EPOLLIN);
}

/* ssh must run while the loop relays: spawn it and turn the loop. */
static int run_ssh(char **argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	for (;;) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		loop_run_once(1);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static void bench_ssh(const char *data, int runs)
{
	struct buf img = BUF_INIT;
	buf_addf(&img, "%s/rootfs-minimal.ext4", images);
	if (access(img.data, R_OK) < 0) {
		printf("%-40s skipped: no minimal image (make images-minimal)\n", "ssh baseline");
		buf_release(&img);
		return;
	}
	buf_release(&img);
	struct vm *vm = create(eng, "sshbox", "minimal");
	struct err e = ERR_INIT;
	struct buf key = BUF_INIT, sock = BUF_INIT, proxy = BUF_INIT;
	buf_addf(&key, "%s/id_ed25519", data);
	buf_addf(&sock, "%s/ssh-proxy.sock", data);
	unlink(key.data);
	char *kg[] = { (char *)"ssh-keygen", (char *)"-q", (char *)"-t", (char *)"ed25519",
		       (char *)"-N", (char *)"", (char *)"-f", key.data, NULL };
	if (run_ssh(kg) != 0) {
		fprintf(stderr, "bench: ssh-keygen failed\n");
		exit(1);
	}
	buf_addf(&proxy, "%s.pub", key.data);
	char *pub = read_text(proxy.data);
	struct proto_file_write w = { .path = (char *)"/home/lohar/.ssh/authorized_keys",
				      .mode = 0600, .size = strlen(pub) };
	if (ac_write_file(vm_agent(vm), &w, pub, strlen(pub), 30000, &e) < 0)
		die("authorized_keys", &e);
	char *sshd[] = { (char *)"sh", (char *)"-c",
			 (char *)"ssh-keygen -A >/dev/null && mkdir -p /run/sshd && "
				 "/usr/sbin/sshd -o ListenAddress=127.0.0.1 -o UseDNS=no && "
				 "until grep -q ':0016 00000000:0000 0A' /proc/net/tcp; do sleep 0.1; done",
			 NULL };
	exec_argv(vm, sshd, 1);

	/* the relay: ProxyCommand connects to sock; we forward to port 22 */
	struct relay r = { .vm = vm };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock.data);
	unlink(sock.data);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0) {
		perror("bench: relay socket");
		exit(1);
	}
	watch_init(&r.listen, on_accept, &r);
	watch_add(&r.listen, lfd, EPOLLIN);

	buf_reset(&proxy);
	buf_addf(&proxy, "ProxyCommand=socat - UNIX-CONNECT:%s", sock.data);
	char *ssh[] = { (char *)"ssh", (char *)"-F", (char *)"/dev/null", (char *)"-i", key.data,
			(char *)"-o", proxy.data, (char *)"-o", (char *)"StrictHostKeyChecking=no",
			(char *)"-o", (char *)"UserKnownHostsFile=/dev/null", (char *)"-o",
			(char *)"LogLevel=ERROR", (char *)"-o", (char *)"BatchMode=yes",
			(char *)"lohar@sandbox", (char *)"true", NULL };
	double *v = calloc((size_t)runs, sizeof(*v));
	for (int i = 0; i < runs + 1; i++) {
		uint64_t t0 = now_ns();
		int code = run_ssh(ssh);
		if (code != 0) {
			fprintf(stderr, "bench: ssh exited %d\n", code);
			exit(1);
		}
		if (i > 0)
			v[i - 1] = ms_since(t0);
	}
	stats_print("ssh lohar@sandbox true (minimal)", v, (size_t)runs, "ms");
	double ssh_p50 = stats_pct(v, (size_t)runs, 50);
	double hot = bench_hot(vm, 100, "hot exec `true` (minimal, same VM)");
	printf("%-40s ssh / exec = %.0fx\n", "", ssh_p50 / hot);
	watch_close(&r.listen);
	unlink(sock.data);
	free(v);
	free(pub);
	buf_release(&key);
	buf_release(&sock);
	buf_release(&proxy);
	destroy(vm);
}

int main(int argc, char **argv)
{
	struct err e = ERR_INIT;
	char *data = argc > 1 ? xstrdup(argv[1]) : test_tmpdir("bench-engine");
	images = getenv("BHATTI_IMAGES") ? getenv("BHATTI_IMAGES") : "build/images";
	int boots = 5, n = 20;
	if (getenv("BENCH_BOOTS"))
		num_parse_int(getenv("BENCH_BOOTS"), 1, 1000, &boots, "BENCH_BOOTS", NULL);
	if (getenv("BENCH_RUNS"))
		num_parse_int(getenv("BENCH_RUNS"), 5, 100000, &n, "BENCH_RUNS", NULL);

	log_init("bench", LOG_WARN);
	signal(SIGPIPE, SIG_IGN);
	if (loop_init() < 0 || fileops_init(&e) < 0)
		die("init", &e);
	/* no pool first: a create that found a pool clone ready would not be
	 * a clone made on demand (the pool refills a second after a claim) */
	struct engine_config cfg = { .data_dir = data, .images_dir = images }; /* pool_size 0 */
	uint64_t t0 = now_ns();
	if (engine_new(&cfg, NULL, NULL, &eng, &e) < 0)
		die("engine", &e);
	printf("bench/engine: accelerator %s (engine up in %.0f ms), data in %s, memory in %s\n",
	       engine_accel(eng), ms_since(t0), data, engine_mem_dir(eng));
	t0 = now_ns();
	destroy(create(eng, "warmup", "tiny")); /* builds the template */
	printf("%-40s %.0f ms (once per image and shape)\n", "template build + first clone", ms_since(t0));

	bench_boot(data, boots);
	bench_clone(data, n);
	engine_free(eng);
	cfg.pool_size = 1;
	if (engine_new(&cfg, NULL, NULL, &eng, &e) < 0)
		die("engine", &e);
	bench_clone_pooled(n / 2 > 5 ? n / 2 : 5);
	struct vm *vm = create(eng, "hot", "tiny");
	double hot = bench_hot(vm, 200, "hot exec `true` (tiny)");
	bench_concurrent(vm, 10, n);
	bench_warm(vm, n);
	bench_cold(vm, n / 2 > 5 ? n / 2 : 5, hot);
	destroy(vm);
	bench_ssh(data, n);

	engine_free(eng);
	if (argc <= 1)
		test_rmtree(data);
	free(data);
	return 0;
}
