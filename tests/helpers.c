/* helpers.c — test support: temp dirs, a real lohar in test mode, the
 * real agent client, process checks (see helpers.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "client.h"
#include "helpers.h"
#include "wsc.h"
#include "util.h"

/* TEST_FILTER=test_name (a cmocka pattern, * and ?) runs only the tests
 * of a group that match: one test alone, e.g. to show it fails on an old
 * build (BUILD=old/build). Before main, for every test linking this file. */
/* (weak: the benchmarks link this file without cmocka) */
extern void cmocka_set_test_filter(const char *pattern) __attribute__((weak));

__attribute__((constructor)) static void test_filter_from_env(void)
{
	const char *f = getenv("TEST_FILTER");
	if (f && f[0] && cmocka_set_test_filter)
		cmocka_set_test_filter(f);
}

const char *test_build_dir(void)
{
	const char *b = getenv("BUILD");
	return b && b[0] ? b : "build";
}

static const char *tmp_root(void)
{
	const char *t = getenv("TMPDIR");
	return t && t[0] ? t : "/tmp";
}

char *test_tmpdir(const char *tag)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/bhatti-test-%s-XXXXXX", tmp_root(), tag);
	if (!mkdtemp(b.data)) {
		perror("mkdtemp");
		abort();
	}
	return buf_detach(&b, NULL);
}

void test_rmtree(const char *dir)
{
	if (!dir || strncmp(dir, tmp_root(), strlen(tmp_root())) != 0 ||
	    !strstr(dir, "/bhatti-test-"))
		return;
	pid_t pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

int lohar_start(struct lohar_proc *p, const char *token, const char *user)
{
	struct buf b = BUF_INIT;
	memset(p, 0, sizeof(*p));
	p->dir = test_tmpdir("lohar");
	chmod(p->dir, 0755);
	buf_addf(&b, "%s/agent.sock", p->dir);
	p->sock = buf_detach(&b, NULL);
	buf_addf(&b, "%s/workspace", p->dir);
	p->workspace = buf_detach(&b, NULL);
	buf_addf(&b, "%s/lohar.log", p->dir);
	p->log = buf_detach(&b, NULL);
	mkdir(p->workspace, 0777);
	chmod(p->workspace, 0777);
	buf_addf(&b, "%s/lohar", test_build_dir());
	char *bin = buf_detach(&b, NULL);
	buf_addf(&b, "unix:%s", p->sock);
	char *listen = buf_detach(&b, NULL);
	buf_addf(&b, "%s/hold.sock", p->dir);
	char *hold = buf_detach(&b, NULL);

	p->pid = fork();
	if (p->pid == 0) {
		/* a test that dies must not leave its agent running */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		execl(bin, "lohar", "--listen", listen, "--token", token ? token : "",
		      "--workspace", p->workspace, "--user", user ? user : "self",
		      "--log", getenv("LOHAR_LOG") ? getenv("LOHAR_LOG") : "info",
		      "--session-keep-ms", getenv("LOHAR_SESSION_KEEP_MS") ? getenv("LOHAR_SESSION_KEEP_MS") : "30000",
		      "--hold-socket", hold, (char *)NULL);
		_exit(127);
	}
	free(bin);
	free(listen);
	free(hold);
	for (int i = 0; i < 500; i++) {
		if (access(p->sock, F_OK) == 0)
			return 0;
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			fprintf(stderr, "lohar exited early; log: %s\n", p->log);
			p->pid = 0;
			return -1;
		}
		usleep(10000);
	}
	return -1;
}

int lohar_stop(struct lohar_proc *p)
{
	int status = 0, rc = 0;
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		for (int i = 0; i < 300; i++) {
			if (waitpid(p->pid, &status, WNOHANG) == p->pid)
				break;
			usleep(10000);
			if (i == 299) {
				kill(p->pid, SIGKILL);
				waitpid(p->pid, &status, 0);
			}
		}
		/* a clean agent exits 0 on SIGTERM; sanitizers report in its log */
		char *log = read_text(p->log);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
		    (log && (strstr(log, "Sanitizer") || strstr(log, "runtime error")))) {
			fprintf(stderr, "lohar (pid %d) did not exit cleanly (status 0x%x); its log:\n%s\n",
				(int)p->pid, status, log ? log : "(none)");
			rc = -1;
		}
		free(log);
	}
	if (getenv("KEEP_TEST_DIRS") == NULL)
		test_rmtree(p->dir);
	free(p->dir);
	free(p->sock);
	free(p->workspace);
	free(p->log);
	memset(p, 0, sizeof(*p));
	return rc;
}

struct ac *lohar_connect(struct lohar_proc *p, const char *token)
{
	struct ac *ac = NULL;
	struct err e = ERR_INIT;
	if (ac_connect_unix(p->sock, token, "test", 5000, &ac, &e) < 0) {
		fprintf(stderr, "connect: %s\n", err_str(&e));
		return NULL;
	}
	return ac;
}

int test_exec(struct ac *ac, struct ac_exec_result *ret, const char *arg0, ...)
{
	char *argv[64];
	size_t n = 0;
	va_list ap;
	va_start(ap, arg0);
	for (const char *a = arg0; a && n < 63; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
	struct err e = ERR_INIT;
	int r = ac_exec(ac, &req, NULL, 0, ret, 30000, &e);
	if (r < 0)
		fprintf(stderr, "exec %s: %s\n", arg0, err_str(&e));
	return r;
}

bool pid_alive(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

bool pid_wait_gone(pid_t pid, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (!pid_alive(pid))
			return true;
		usleep(10000);
	}
	return !pid_alive(pid);
}

int count_zombies(pid_t ppid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char path[300], buf[512];
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t k = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (k <= 0)
			continue;
		buf[k] = '\0';
		char *rp = strrchr(buf, ')');
		char state;
		int pp;
		if (rp && sscanf(rp + 2, "%c %d", &state, &pp) == 2 && pp == ppid && state == 'Z')
			n++;
	}
	closedir(d);
	return n;
}

char *host_read_file(const char *path, size_t *ret_len)
{
	int fd = open(path, O_RDONLY);
	struct buf b = BUF_INIT;
	char chunk[65536];
	ssize_t n;
	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(fd);
	return buf_detach(&b, ret_len);
}

char *read_text(const char *path)
{
	return host_read_file(path, NULL);
}

int fixture_setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	signal(SIGPIPE, SIG_IGN);
	*state = fx;
	if (lohar_start(&fx->lohar, "tok", "self") < 0)
		return -1;
	fx->ac = lohar_connect(&fx->lohar, "tok");
	return fx->ac ? 0 : -1;
}

int fixture_teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = 0;
	if (!fx)
		return 0;
	ac_free(fx->ac);
	if (fx->lohar.pid > 0)
		rc |= lohar_stop(&fx->lohar);
	if (fx->other.pid > 0)
		rc |= lohar_stop(&fx->other);
	free(fx);
	return rc;
}

/* ---- processes and a private daemon ----------------------------------------- */

static void drain_into(int fd, struct buf *b)
{
	char tmp[65536];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n > 0 && b)
		buf_add(b, tmp, (size_t)n);
}

int test_run(char *const *argv, char *const *env, const char *stdin_data, size_t stdin_len,
	     struct buf *out, struct buf *err, int timeout_ms)
{
	int in[2], o[2], e[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(o[1], 1);
		dup2(e[1], 2);
		setpgid(0, 0);
		for (char *const *p = env; p && *p; p++)
			putenv(*p);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(o[1]);
	close(e[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	size_t off = 0;
	if (!stdin_data) {
		close(in[1]);
		in[1] = -1;
	}
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms ? timeout_ms : 120000);
	bool o_open = true, e_open = true;
	while (o_open || e_open) {
		struct pollfd pf[3] = { { o[0], o_open ? POLLIN : 0, 0 },
					{ e[0], e_open ? POLLIN : 0, 0 },
					{ in[1], in[1] >= 0 ? POLLOUT : 0, 0 } };
		int left = (int)(deadline > now_ms() ? deadline - now_ms() : 0);
		if (left == 0 || poll(pf, 3, left) == 0) {
			kill(-pid, SIGKILL);
			break;
		}
		if (pf[0].revents) {
			char tmp[65536];
			ssize_t n = read(o[0], tmp, sizeof(tmp));
			if (n <= 0)
				o_open = false;
			else if (out)
				buf_add(out, tmp, (size_t)n);
		}
		if (pf[1].revents) {
			char tmp[65536];
			ssize_t n = read(e[0], tmp, sizeof(tmp));
			if (n <= 0)
				e_open = false;
			else if (err)
				buf_add(err, tmp, (size_t)n);
		}
		if (in[1] >= 0 && pf[2].revents) {
			ssize_t n = off < stdin_len ? write(in[1], stdin_data + off, stdin_len - off) : 0;
			if (n > 0)
				off += (size_t)n;
			if (n < 0 || off >= stdin_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
	}
	if (in[1] >= 0)
		close(in[1]);
	drain_into(o[0], out);
	close(o[0]);
	close(e[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	close(fd);
	return ntohs(a.sin_port);
}

char *test_strf(const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return buf_detach(&b, NULL);
}

int daemon_restart(struct daemon_proc *d)
{
	char *bin = test_strf("%s/bhatti", test_build_dir());
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execl(bin, bin, "serve", "--config", d->config, (char *)NULL);
		_exit(127);
	}
	free(bin);
	d->pid = pid;
	/* wait for /health */
	char *health = test_strf("%s/health", d->url);
	for (int i = 0; i < 300; i++) {
		char *argv[] = { "curl", "-fsS", "-o", "/dev/null", health, NULL };
		if (test_run(argv, NULL, NULL, 0, NULL, NULL, 2000) == 0) {
			free(health);
			return 0;
		}
		if (!pid_alive(pid))
			break;
		usleep(50 * 1000);
	}
	free(health);
	char *log = read_text(d->log);
	fprintf(stderr, "daemon did not come up; its log:\n%s\n", log ? log : "(none)");
	free(log);
	return -1;
}

int daemon_start(struct daemon_proc *d, const char *extra_config)
{
	return daemon_start_on(d, "127.0.0.1", extra_config);
}

int daemon_start_on(struct daemon_proc *d, const char *host, const char *extra_config)
{
	return daemon_start_at(d, host, NULL, extra_config);
}

int daemon_start_at(struct daemon_proc *d, const char *host, const char *data_dir,
		    const char *extra_config)
{
	memset(d, 0, sizeof(*d));
	d->dir = test_tmpdir("daemon");
	d->data = data_dir ? test_strf("%s", data_dir) : test_strf("%s/data", d->dir);
	d->config = test_strf("%s/config.yaml", d->dir);
	d->home = test_strf("%s/home", d->dir);
	d->log = test_strf("%s/serve.log", d->dir);
	d->port = free_port();
	d->url = test_strf("http://%s:%d", host[0] ? host : "127.0.0.1", d->port);
	mkdir(d->home, 0700);
	const char *img = getenv("BHATTI_IMAGES");
	char cwd[4096];
	if (!getcwd(cwd, sizeof(cwd)))
		return -1;
	char *images = img && img[0] == '/' ? test_strf("%s", img)
					    : test_strf("%s/%s", cwd, img && img[0] ? img : "build/images");
	FILE *f = fopen(d->config, "w");
	if (!f)
		return -1;
	/* no guest networking unless the test asks (test-net, in its own
	 * network namespaces: never in the machine's) */
	bool net = extra_config && strstr(extra_config, "network:");
	fprintf(f, "listen: \"%s:%d\"\ndata_dir: %s\nimages_dir: %s\naccel: tcg\n%s%s%s", host,
		d->port, d->data, images, geteuid() == 0 ? "vm_uids: " TEST_VM_UIDS "\n" : "",
		net ? "" : "network:\n  enabled: false\n", extra_config ? extra_config : "");
	fclose(f);
	free(images);
	return daemon_restart(d);
}

void daemon_kill9(struct daemon_proc *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
	}
	d->pid = 0;
}

char *proc_cmdline(int pid)
{
	char p[64];
	size_t len;
	snprintf(p, sizeof(p), "/proc/%d/cmdline", pid);
	char *cmd = host_read_file(p, &len);
	for (size_t i = 0; cmd && i + 1 < len; i++)
		if (!cmd[i])
			cmd[i] = ' ';
	return cmd;
}

int qemu_pids(const char *needle, int *pids, int max)
{
	int n = 0;
	DIR *pd = opendir("/proc");
	struct dirent *de;
	while (pd && (de = readdir(pd))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		int pid = (int)strtol(de->d_name, NULL, 10);
		char *cmd = proc_cmdline(pid);
		if (cmd && strstr(cmd, "qemu-system") && strstr(cmd, needle) && pid_alive(pid)) {
			if (n < max)
				pids[n] = pid;
			n++;
		}
		free(cmd);
	}
	if (pd)
		closedir(pd);
	return n;
}

int count_qemu_under(const char *dir)
{
	return qemu_pids(dir, NULL, 0);
}

long env_long(const char *name, long def)
{
	const char *v = getenv(name);
	return v && v[0] ? strtol(v, NULL, 0) : def;
}

uint64_t test_rng(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int sandbox_qemu_pid(const char *data_dir, const char *id)
{
	char p[600];
	size_t len;
	snprintf(p, sizeof(p), "%s/sandboxes/%s/vm.json", data_dir, id ? id : "-");
	char *meta = host_read_file(p, &len);
	cJSON *m = meta ? cJSON_Parse(meta) : NULL;
	free(meta);
	int pid = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(m, "pid"));
	cJSON_Delete(m);
	return pid > 0 ? pid : 0;
}

char *daemon_mem_dir(const struct daemon_proc *d)
{
	/* the engine records the tmpfs directory it made (qemu-jail.c) */
	char *rec = test_strf("%s/mem-dir", d->data);
	char *text = read_text(rec);
	free(rec);
	if (!text)
		return test_strf("/dev/shm/bhatti-none");
	text[strcspn(text, "\n")] = '\0';
	return text;
}

int daemon_stop(struct daemon_proc *d, bool remove)
{
	int rc = 0;
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		if (!pid_wait_gone(d->pid, 10000)) {
			kill(d->pid, SIGKILL);
			rc = -1;
		}
		int st;
		waitpid(d->pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			rc = -1;
		d->pid = 0;
	}
	char *log = read_text(d->log);
	if (log && (strstr(log, "ERROR: AddressSanitizer") || strstr(log, "runtime error:") ||
		    strstr(log, "LeakSanitizer"))) {
		fprintf(stderr, "daemon log has a sanitizer report:\n%s\n", log);
		rc = -1;
	}
	free(log);
	if (remove) {
		/* sandboxes outlive the daemon by design: end them here */
		char *argv[] = { "pkill", "-KILL", "-f", d->data, NULL };
		test_run(argv, NULL, NULL, 0, NULL, NULL, 5000);
		for (int i = 0; i < 50 && count_qemu_under(d->data) > 0; i++)
			usleep(100 * 1000);
		/* the running guests' memory on tmpfs (engine_mem_dir) */
		char *shm = daemon_mem_dir(d);
		if (!getenv("KEEP_TEST_DIRS"))
			test_rmtree(d->dir);
		char *rm[] = { "rm", "-rf", "--", shm, NULL };
		test_run(rm, NULL, NULL, 0, NULL, NULL, 5000);
		free(shm);
	}
	if (remove) {
		free(d->dir);
		free(d->data);
		free(d->config);
		free(d->home);
		free(d->log);
		free(d->url);
		memset(d, 0, sizeof(*d));
	}
	return rc;
}

static char *vbhatti_bin(void)
{
	return test_strf("%s/bhatti", test_build_dir());
}

char *daemon_user(struct daemon_proc *d, const char *name, const char *limits_args)
{
	char *bin = vbhatti_bin();
	char *argv[16] = { bin, "user", "create", "--config", d->config, "--name", (char *)name };
	int n = 7;
	/* the tests' users: room for many sandboxes (a new user's default is 5) */
	char *copy = xstrdup(limits_args ? limits_args : "--max-sandboxes 20");
	char *save = NULL;
	for (char *tok = strtok_r(copy, " ", &save); tok && n < 15;
	     tok = strtok_r(NULL, " ", &save))
		argv[n++] = tok;
	argv[n] = NULL;
	struct buf out = BUF_INIT;
	int rc = test_run(argv, NULL, NULL, 0, &out, NULL, 30000);
	free(bin);
	free(copy);
	char *key = NULL;
	char *p = rc == 0 ? strstr(out.data, "API key: ") : NULL;
	if (p) {
		p += 9;
		key = xstrndup(p, strcspn(p, "\n"));
	}
	buf_release(&out);
	return key;
}

int bhatti_argv(struct daemon_proc *d, const char *token, const char *stdin_data,
		struct buf *out, struct buf *err, const char *const *args)
{
	char *argv[64];
	int n = 0;
	argv[n++] = vbhatti_bin();
	for (const char *const *a = args; *a && n < 63; a++)
		argv[n++] = (char *)*a;
	argv[n] = NULL;
	char *env[4] = { test_strf("HOME=%s", d->home), test_strf("BHATTI_URL=%s", d->url),
			 token ? test_strf("BHATTI_TOKEN=%s", token) : test_strf("BHATTI_TOKEN="), NULL };
	/* (TEST_CLI_TIMEOUT_MS: the long tier tests' slow guests) */
	int rc = test_run(argv, env, stdin_data, stdin_data ? strlen(stdin_data) : 0, out, err,
			  (int)env_long("TEST_CLI_TIMEOUT_MS", 180000));
	free(argv[0]);
	for (int i = 0; i < 3; i++)
		free(env[i]);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "bhatti %s → %d\nstdout: %s\nstderr: %s\n", args[0], rc,
			out ? out->data : "", err ? err->data : "");
	return rc;
}

int bhatti(struct daemon_proc *d, const char *token, const char *stdin_data, struct buf *out,
	   struct buf *err, const char *arg0, ...)
{
	const char *args[64];
	int n = 0;
	va_list ap;
	va_start(ap, arg0);
	for (const char *a = arg0; a && n < 63; a = va_arg(ap, const char *))
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return bhatti_argv(d, token, stdin_data, out, err, args);
}

int http_call(struct daemon_proc *d, const char *method, const char *path, const char *token,
	      const char *body, struct buf *out)
{
	char *url = test_strf("%s%s", d->url, path);
	char *auth = token ? test_strf("Authorization: Bearer %s", token) : NULL;
	char *argv[20] = { "curl", "-sS", "-X", (char *)method, "-w", "\n%{http_code}" };
	int n = 6;
	if (strcmp(method, "HEAD") == 0) {
		argv[2] = "-I";   /* curl must know no body follows */
		argv[3] = "-o/dev/null";
	}
	if (auth) {
		argv[n++] = "-H";
		argv[n++] = auth;
	}
	if (body) {
		argv[n++] = "--data-binary";
		argv[n++] = "@-";
	}
	argv[n++] = url;
	argv[n] = NULL;
	struct buf o = BUF_INIT;
	int rc = test_run(argv, NULL, body, body ? strlen(body) : 0, &o, NULL, 180000);
	int status = -1;
	if (rc == 0) {
		char *nl = strrchr(o.data, '\n');
		if (nl) {
			status = (int)strtol(nl + 1, NULL, 10);
			buf_setlen(&o, (size_t)(nl - o.data));
		}
	}
	if (out)
		buf_add(out, o.data, o.len);
	buf_release(&o);
	free(url);
	free(auth);
	return status;
}

int api_call(struct daemon_proc *d, const char *token, const char *method, const char *path,
	     const void *body, size_t len, struct buf *out)
{
	struct client_settings s = { .url = d->url, .token = (char *)(token ? token : "") };
	struct client *c = client_new(&s);
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = method;
	rq.path = path;
	rq.body = body;
	rq.len = len;
	struct client_resp resp;
	struct err e = ERR_INIT;
	int status = -1;
	if (client_call(c, &rq, &resp, &e) == 0) {
		status = resp.status;
		if (out)
			buf_add(out, resp.body.data, resp.body.len);
		client_resp_release(&resp);
	} else if (out) {
		buf_addf(out, "%s", err_str(&e));
	}
	client_free(c);
	return status;
}

/* ---- a canned HTTP server --------------------------------------------------- */

static void canned_serve(struct canned_conn *cc, int fd)
{
	size_t got = 0;
	cc->request[0] = '\0';
	while (got < sizeof(cc->request) - 1 && !strstr(cc->request, "\r\n\r\n")) {
		ssize_t n = read(fd, cc->request + got, 1);   /* not a byte past the head */
		if (n <= 0)
			break;
		got += (size_t)n;
		cc->request[got] = '\0';
	}
	if (cc->serve)
		cc->serve(fd, cc->request, cc->arg);
	for (const char *const *p = cc->pieces; p && *p; p++) {
		if (write_all(fd, *p, strlen(*p)) < 0)
			break;
		usleep(2000);
	}
	char tmp[4096];
	ssize_t n;
	while (cc->read_rest && (n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_add(&cc->rest, tmp, (size_t)n);
	close(fd);
}

static void *canned_thread(void *arg)
{
	struct canned *c = arg;
	for (size_t i = 0; i < c->n; i++) {
		int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		canned_serve(&c->conns[i], fd);
	}
	return NULL;
}

void canned_start(struct canned *c, struct canned_conn *conns, size_t n)
{
	memset(c, 0, sizeof(*c));
	c->conns = conns;
	c->n = n;
	for (size_t i = 0; i < n; i++)
		buf_init(&conns[i].rest);
	c->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(c->lfd, 8) < 0 || getsockname(c->lfd, (struct sockaddr *)&a, &al) < 0) {
		fprintf(stderr, "canned_start: %s\n", strerror(errno));
		abort();
	}
	snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	if (pthread_create(&c->th, NULL, canned_thread, c) != 0)
		abort();
}

void canned_end(struct canned *c)
{
	shutdown(c->lfd, SHUT_RDWR);   /* a connection that never came: accept() returns */
	pthread_join(c->th, NULL);
	close(c->lfd);
}

void free_port_url(char *url, size_t n)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		abort();
	close(fd);
	snprintf(url, n, "http://127.0.0.1:%u", ntohs(a.sin_port));
}

/* ---- a canned WebSocket peer ------------------------------------------------ */

void ws_server_frame(struct buf *out, bool fin, int opcode, const void *p, size_t n)
{
	uint8_t h[10];
	size_t hl = 0;
	h[hl++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	if (n < 126) {
		h[hl++] = (uint8_t)n;
	} else if (n <= 0xffff) {
		h[hl++] = 126;
		h[hl++] = (uint8_t)(n >> 8);
		h[hl++] = (uint8_t)n;
	} else {
		h[hl++] = 127;
		for (int i = 7; i >= 0; i--)
			h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	buf_add(out, h, hl);
	buf_add(out, p, n);
}

int ws_client_frame(struct buf *in, int *ret_opcode, struct buf *out)
{
	const uint8_t *d = (const uint8_t *)in->data;
	if (in->len < 2)
		return 0;
	uint64_t len = d[1] & 0x7f;
	size_t hl = 2;
	if (len == 126 && in->len >= 4)
		len = (uint64_t)d[2] << 8 | d[3], hl = 4;
	else if (len == 127 && in->len >= 10) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | d[2 + i];
		hl = 10;
	} else if (len >= 126) {
		return 0;
	}
	if (in->len < hl + 4 + len)
		return 0;
	const uint8_t *mask = d + hl;
	for (uint64_t i = 0; i < len; i++)
		buf_addch(out, (char)(d[hl + 4 + i] ^ mask[i & 3]));
	*ret_opcode = d[0] & 0x0f;
	buf_consume(in, hl + 4 + (size_t)len);
	return 1;
}

void canned_ws_serve(int fd, const char *request, void *arg)
{
	struct canned_ws *w = arg;
	const char *k = strstr(request, "Sec-WebSocket-Key: ");
	char key[64] = "", accept[64] = "";
	if (k)
		snprintf(key, sizeof(key), "%.*s", (int)strcspn(k + 19, "\r\n"), k + 19);
	w->accept(key, accept);
	if (w->bad_accept)
		accept[0] = accept[0] == 'A' ? 'B' : 'A';
	if (w->delay_ms)
		usleep((useconds_t)w->delay_ms * 1000);
	char peek;
	w->early = recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
	struct buf b = BUF_INIT;
	buf_addf(&b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
	buf_add(&b, w->first.data, w->first.len);
	if (write_all(fd, b.data, b.len) < 0)
		w->wait_frames = 0;
	buf_release(&b);
	struct buf scan = BUF_INIT, payload = BUF_INIT;
	for (int got = 0; got < w->wait_frames;) {
		int op;
		if (ws_client_frame(&scan, &op, &payload)) {
			got++;
			continue;
		}
		char tmp[4096];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n <= 0)
			break;
		buf_add(&w->got, tmp, (size_t)n);
		buf_add(&scan, tmp, (size_t)n);
	}
	buf_release(&scan);
	buf_release(&payload);
	if (w->then.len && write_all(fd, w->then.data, w->then.len) < 0)
		return;
}

int test_grep_absent(const char *text, const char *dir, struct buf *found, struct buf *errs)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "grep -r -l -a %s %s", text, dir);
	char *argv[] = { "sh", "-c", cmd, NULL };
	int rc = 2;
	for (int i = 0; i < 3 && rc == 2; i++) {
		buf_reset(found);
		buf_reset(errs);
		rc = test_run(argv, NULL, NULL, 0, found, errs, 60000);
	}
	return rc;
}

/* ---- tmux ------------------------------------------------------------------ */

int tmux_at(const char *sock, struct buf *out, const char *a0, ...)
{
	char *argv[40] = { "tmux", "-S", (char *)sock, (char *)a0 };
	int n = 4;
	va_list ap;
	va_start(ap, a0);
	for (const char *a = va_arg(ap, const char *); a && n < 39; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return test_run(argv, NULL, NULL, 0, out, NULL, 20000);
}

static char *tmux_wait_for(const char *sock, const char *target, const char *needle, int ms,
			   bool present)
{
	struct buf b = BUF_INIT;
	for (int waited = 0; waited <= ms; waited += 100) {
		buf_reset(&b);
		tmux_at(sock, &b, "capture-pane", "-p", "-t", target, NULL);
		if (!!strstr(b.data, needle) == present)
			return buf_detach(&b, NULL);
		usleep(100 * 1000);
	}
	fprintf(stderr, "after %d ms the screen %s '%s'; it shows:\n%s\n", ms,
		present ? "does not show" : "still shows", needle, b.data);
	buf_release(&b);
	return NULL;
}

char *tmux_wait(const char *sock, const char *target, const char *needle, int ms)
{
	return tmux_wait_for(sock, target, needle, ms, true);
}

char *tmux_wait_gone(const char *sock, const char *target, const char *needle, int ms)
{
	return tmux_wait_for(sock, target, needle, ms, false);
}

bool test_wait_attached(struct daemon_proc *d, const char *key, const char *name, int ms)
{
	struct buf o = BUF_INIT, e = BUF_INIT;
	bool found = false;
	for (int waited = 0; waited <= ms && !found; waited += 200) {
		buf_reset(&o);
		if (bhatti(d, key, NULL, &o, &e, "ps", name, "--json", NULL) == 0) {
			cJSON *j = cJSON_Parse(o.data), *s;
			cJSON_ArrayForEach(s, j)
				found |= cJSON_IsTrue(cJSON_GetObjectItem(s, "running")) &&
					 cJSON_IsTrue(cJSON_GetObjectItem(s, "attached"));
			cJSON_Delete(j);
		}
		if (!found)
			usleep(200 * 1000);
	}
	if (!found)
		fprintf(stderr, "no attached session after %d ms; ps said: %s %s\n", ms, o.data, e.data);
	buf_release(&o);
	buf_release(&e);
	return found;
}

/* ---- raw WebSockets ------------------------------------------------------- */

int test_ws_upgrade(int fd, const char *path, const char *token, struct buf *in)
{
	char k[WSC_KEY_LEN], want[WSC_ACCEPT_LEN], req[1024];
	wsc_key(k);
	wsc_accept(k, want);
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
			 "Authorization: Bearer %s\r\n\r\n", path, k, token);
	if (write_all(fd, req, (size_t)n) < 0)
		return -1;
	char *end;
	while (!(end = in->len ? memmem(in->data, in->len, "\r\n\r\n", 4) : NULL)) {
		char tmp[4096];
		ssize_t r = read(fd, tmp, sizeof(tmp));
		if (r <= 0)
			return -1;
		buf_add(in, tmp, (size_t)r);
	}
	int status = (int)strtol(in->data + 9, NULL, 10);
	if (status == 101 && !strstr(in->data, want))
		status = -2;
	buf_consume(in, (size_t)(end - in->data) + 4);
	return status;
}
