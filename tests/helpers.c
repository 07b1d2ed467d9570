/* helpers.c — test support: temp dirs, a real lohar in test mode, the
 * real agent client, process checks (see helpers.h). */
#include <dirent.h>
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

#include "helpers.h"

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
		      (char *)NULL);
		_exit(127);
	}
	free(bin);
	free(listen);
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
