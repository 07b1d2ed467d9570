/* serve.c — `bhatti serve`: the daemon. Loads the config, opens the store
 * and the secrets key, starts the engine (adopting the sandboxes that
 * still run), reconciles them with the store, and serves the HTTP API
 * until SIGTERM/SIGINT.
 *
 * Sits between main() (cli/main.c routes "serve" here through local.h,
 * with the options parsed against serve_opts) and everything the daemon
 * is made of (server.h). Stopping the daemon leaves sandboxes
 * running; the next start adopts them.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "buf.h"
#include "engine.h"
#include "events.h"
#include "fileops.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "local.h"
#include "loop.h"
#include "net.h"
#include "proxy.h"
#include "sandbox.h"
#include "server.h"
#include "thermal.h"
#include "snapshot.h"

static struct server S;
static struct watch sig_watch;

static void on_signal(struct watch *w, uint32_t events UNUSED)
{
	struct signalfd_siginfo si;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		log_info("signal %u: shutting down (sandboxes keep running)", si.ssi_signo);
		http_stop();
	}
}

static void on_vm_event(struct vm *vm, enum vm_state state, const struct err *e, void *arg UNUSED)
{
	log_warn("sandbox '%s': %s%s%s", vm_id(vm), vm_state_name(state), e ? ": " : "",
		 e ? err_str(e) : "");
}

/* A sandbox's snapshot key, as vm.json keeps it: age-encrypted to the
 * daemon's own identity (the one that keeps secrets). The engine calls
 * these; it never sees the identity. */
static int key_wrap(void *arg UNUSED, const uint8_t key[32], char **ret, struct err *e)
{
	return age_wrap_key(S.age.public, key, ret, e);
}

static int key_unwrap(void *arg UNUSED, const char *wrapped, uint8_t key[32], struct err *e)
{
	return age_unwrap_key(&S.age, wrapped, key, e);
}

const struct opt serve_opts[] = {
	{ "--config", NULL, OPT_VALUE },
	{ "--listen", NULL, OPT_VALUE },
	{ "--data-dir", NULL, OPT_VALUE },
	{ "--log", NULL, OPT_VALUE },
	OPT_END,
};

static int fail(const char *what, const struct err *e)
{
	fprintf(stderr, "bhatti serve: %s: %s\n", what, err_str(e));
	return 1;
}

static char *join(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s", dir, name);
	return buf_detach(&b, NULL);
}

/* One daemon per data dir: a second one would adopt the first one's VMs,
 * remove the memory of its template builds and drop rows of its creates
 * in flight before finding the port taken. An flock on data_dir/serve.lock
 * (held for the life of the process; close-on-exec, so QEMU does not
 * inherit it) says who owns the dir. */
static int lock_data_dir(const char *dir)
{
	char *path = join(dir, "serve.lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "bhatti serve: cannot open '%s': %s\n", path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		fprintf(stderr, "bhatti serve: another bhatti serve%s%s%s is using %s\n"
				"hint: stop it first, or give this one another data dir (--data-dir)\n",
			pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", dir);
		close(fd);
		free(path);
		return -1;
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
		log_warn("cannot write '%s': %s", path, strerror(errno));
	free(path);
	return 0;   /* fd stays open: the lock lives as long as we do */
}

static void replace(char **slot, const char *v)
{
	free(*slot);
	*slot = xstrdup(v);
}

int serve_main(const struct args *a)
{
	const char *config = args_get(a, "--config"), *listen = args_get(a, "--listen");
	const char *data_dir = args_get(a, "--data-dir"), *level = args_get(a, "--log");
	struct err e = ERR_INIT;
	log_init("bhatti", LOG_INFO);
	json_init();
	if (sodium_init() < 0) {
		fprintf(stderr, "bhatti serve: libsodium failed to initialise\n");
		return 1;
	}
	if (settings_load(config, &S.cfg, &e) < 0)
		return fail("config", &e);
	if (listen)
		replace(&S.cfg.listen, listen);
	if (data_dir) {
		/* images follow the data dir unless the config placed them */
		char *old_images = join(S.cfg.data_dir, "images");
		if (strcmp(S.cfg.images_dir, old_images) == 0) {
			free(S.cfg.images_dir);
			S.cfg.images_dir = join(data_dir, "images");
		}
		free(old_images);
		replace(&S.cfg.data_dir, data_dir);
	}
	enum log_level ll;
	if (log_parse_level(level ? level : S.cfg.log_level, &ll) < 0) {
		fprintf(stderr, "bhatti serve: unknown log level '%s'\n", level ? level : S.cfg.log_level);
		return 2;
	}
	log_set_level(ll);
	char *host = NULL;
	int port;
	if (settings_parse_listen(S.cfg.listen, &host, &port, &e) < 0)
		return fail("listen", &e);
	if (mkdir(S.cfg.data_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "bhatti serve: cannot create data dir '%s': %s\n", S.cfg.data_dir,
			strerror(errno));
		return 1;
	}
	if (lock_data_dir(S.cfg.data_dir) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	char *db = join(S.cfg.data_dir, "state.db"), *key = join(S.cfg.data_dir, "age.key");
	int rc = store_open(db, &S.store, &e);
	/* a write that finds `bhatti user` writing waits 100 ms, then the
	 * request is answered 503: the event loop serves everyone else */
	if (rc == 0)
		store_set_busy_timeout(S.store, STORE_DAEMON_BUSY_MS);
	free(db);
	if (rc < 0)
		return fail("store", &e);
	rc = age_identity_load_or_create(key, &S.age, &e);
	free(key);
	if (rc < 0)
		return fail("secrets key", &e);
	if (loop_init() < 0 || fileops_init(&e) < 0)
		return fail("event loop", &e);
	struct engine_config ec = {
		.backend_name = S.cfg.engine,
		.data_dir = S.cfg.data_dir,
		.images_dir = S.cfg.images_dir,
		.accel = S.cfg.accel,
		.pool_size = (int)S.cfg.pool_size,
		.mem_budget = S.cfg.limits.memory_budget,
		.key_wrap = key_wrap,
		.key_unwrap = key_unwrap,
	};
	if (net_new(&S, &S.net, &e) < 0)
		return fail("network", &e);
	ec.net = S.net != NULL;
	if (S.cfg.vm_uids && settings_parse_uids(S.cfg.vm_uids, &ec.vm_uid_first,
						 &ec.vm_uid_count, &e) < 0)
		return fail("vm_uids", &e);
	if (engine_new(&ec, on_vm_event, NULL, &S.eng, &e) < 0)
		return fail("engine", &e);
	if (events_new(&S, &S.events, &e) < 0)
		return fail("events", &e);
	if (sbx_init(&S, &e) < 0)
		return fail("sandboxes", &e);
	if (thermal_new(&S, &S.thermal, &e) < 0)
		return fail("thermal", &e);
	if (snap_init(&S, &e) < 0)
		return fail("snapshots", &e);
	/* bridges, forwarder and rules as the store says (after a reboot,
	 * or another daemon's crash) */
	if (S.net && net_sync(S.net, &e) < 0)
		return fail("network", &e);
	int64_t rates[RATE_KINDS] = { [RATE_CREATE] = S.cfg.limits.creates_per_min,
				      [RATE_EXEC] = S.cfg.limits.execs_per_min,
				      [RATE_READ] = S.cfg.limits.reads_per_min };
	S.rl = ratelimit_new(rates);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	watch_init(&sig_watch, on_signal, NULL);
	if (sfd < 0 || watch_add(&sig_watch, sfd, EPOLLIN) < 0) {
		fprintf(stderr, "bhatti serve: signalfd: %s\n", strerror(errno));
		return 1;
	}
	if (!S.cfg.tls.cert != !S.cfg.tls.key) {
		fprintf(stderr, "bhatti serve: tls.cert and tls.key go together: give both, or "
				"neither for plain HTTP\n");
		return 2;
	}
	/* the proxy first: it also ends the API's TLS, and sees each new API
	 * connection before libwebsockets (the owner's path) */
	if (proxy_start(&S, &e) < 0)
		return fail("public_proxy_listen", &e);
	if (http_start(&S, host, port, &e) < 0)
		return fail("listen", &e);
	log_info("listening on %s%s (accelerator %s, data in %s)", http_listening(),
		 S.cfg.tls.cert ? " (https)" : "", engine_accel(S.eng), S.cfg.data_dir);
	if (proxy_listening())
		log_info("public proxy of published ports on %s", proxy_listening());
	rc = http_run();
	proxy_stop();
	/* what the engine is making (a template, a memory spare) is finished
	 * while the API can still tell a client why it waits */
	thermal_free(S.thermal);
	engine_settle(S.eng);
	http_free();
	watch_close(&sig_watch);
	engine_free(S.eng); /* (its last loop turns free requests, which emit events) */
	events_free(S.events);
	S.events = NULL;
	net_free(S.net);
	sbx_release_all(&S);
	ratelimit_free(S.rl);
	store_free(S.store);
	sodium_memzero(&S.age, sizeof(S.age));
	settings_release(&S.cfg);
	free(host);
	return rc < 0 ? 1 : 0;
}
