/* load.c — what keeps the guest busy that the host cannot see, for the
 * thermal manager (docs/thermal.md): LOAD answers with the CPU time of
 * the guest's user processes, their established outbound TCP connections,
 * `lohar hold` and the open port forwards. Also the hold socket that
 * `lohar hold` talks to, and that command itself (hold_main).
 *
 * Sits between the ops table (op_load), the event loop (the hold socket)
 * and /proc. Reads /proc/<pid>/stat, /proc/<pid>/fd and /proc/net/tcp{,6}
 * only when asked (once per thermal.check_every at most, and only near
 * the idle limit), so an idle guest pays nothing between questions.
 *
 * "User processes": every process but lohar itself and kernel threads
 * (PF_KTHREAD); in test mode (not PID 1) only lohar's descendants. Their
 * CPU time: utime + stime + cutime + cstime of the live ones, plus
 * lohar's cutime + cstime (what its reaped children, and theirs, used). An outbound connection:
 * ESTABLISHED, its local port not one a socket listens on, held by a user
 * process (lohar's own forwards are counted as forwards). A live process's
 * cutime + cstime (what its reaped children used) counts with it: a shell
 * loop forking short commands is busy.
 *
 * Hold socket (PID 1: /run/lohar/hold.sock, mode 0666; test mode:
 * --hold-socket PATH): a client sends one line, "hold" (held while its
 * connection stays open) or "for MS" (held for MS from now), and gets
 * "ok". At most HOLD_MAX connections at once.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "num.h"

#define PF_KTHREAD_FLAG 0x00200000u
#define MAX_PROCS 4096
#define MAX_SOCKS 4096
#define HOLD_MAX 64
#define HOLD_FOR_MAX (7ull * 86400000)   /* a week */

struct proc {
	int pid, ppid;
	uint64_t ticks;   /* utime + stime + cutime + cstime: its own and its
			   * reaped children's */
	bool user;
};

/* The fields of /proc/<pid>/stat we want: after "(comm)" come state,
 * ppid (4), ..., flags (9), ..., utime (14), stime (15), cutime (16),
 * cstime (17). */
static int read_stat(int pid, int *ret_ppid, unsigned *ret_flags, uint64_t ret_t[4])
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	unsigned long long v[16] = { 0 };
	int field = 3;   /* the state, a letter, comes first */
	char *save = NULL;
	for (char *tok = strtok_r(p, " ", &save); tok && field <= 17;
	     tok = strtok_r(NULL, " ", &save), field++) {
		if (field >= 4 && field <= 17)
			v[field - 4] = strtoull(tok, NULL, 10);
	}
	*ret_ppid = (int)v[0];
	*ret_flags = (unsigned)v[9 - 4];
	ret_t[0] = v[14 - 4];
	ret_t[1] = v[15 - 4];
	ret_t[2] = v[16 - 4];
	ret_t[3] = v[17 - 4];
	return 0;
}

/* Every process; *ret_self_children: lohar's cutime + cstime. */
static size_t list_procs(struct proc *out, size_t cap, uint64_t *ret_self_children)
{
	int self = getpid();
	size_t n = 0;
	*ret_self_children = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < cap) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		int pid = (int)strtol(de->d_name, NULL, 10), ppid;
		unsigned flags;
		uint64_t t[4];
		if (read_stat(pid, &ppid, &flags, t) < 0)
			continue;
		if (pid == self) {
			*ret_self_children = t[2] + t[3];
			continue;
		}
		if (flags & PF_KTHREAD_FLAG)
			continue;
		out[n++] = (struct proc){ .pid = pid, .ppid = ppid, .ticks = t[0] + t[1] + t[2] + t[3],
					  .user = agent.pid1 };
	}
	closedir(d);
	if (!agent.pid1) {
		/* test mode: lohar's descendants only */
		for (size_t i = 0; i < n; i++) {
			int p = out[i].ppid;
			for (int hops = 0; p > 1 && hops < 64 && !out[i].user; hops++) {
				if (p == self) {
					out[i].user = true;
					break;
				}
				size_t j = 0;
				while (j < n && out[j].pid != p)
					j++;
				p = j < n ? out[j].ppid : 0;
			}
		}
	}
	return n;
}

/* The socket inodes the user processes hold. */
static size_t user_sockets(const struct proc *procs, size_t n, unsigned long *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k < cap; i++) {
		if (!procs[i].user)
			continue;
		char dir[64];
		snprintf(dir, sizeof(dir), "/proc/%d/fd", procs[i].pid);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d)) && k < cap) {
			char link[64], path[384];
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			ssize_t m = readlink(path, link, sizeof(link) - 1);
			if (m <= 0)
				continue;
			link[m] = '\0';
			unsigned long ino;
			if (sscanf(link, "socket:[%lu]", &ino) == 1)
				out[k++] = ino;
		}
		closedir(d);
	}
	return k;
}

/* Parse one /proc/net/tcp{,6}: the local ports in LISTEN into listen[],
 * or (count) the ESTABLISHED sockets in socks[] whose local port is not
 * one of them. */
static unsigned scan_tcp(const char *file, bool count, unsigned *listen, size_t *nlisten,
			 size_t listen_cap, const unsigned long *socks, size_t nsocks)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return 0;
	char line[512];
	unsigned found = 0;
	if (!fgets(line, sizeof(line), f)) {   /* the header */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		char local[64], remote[64];
		unsigned st;
		unsigned long ino;
		if (sscanf(line, " %*s %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote, &st,
			   &ino) != 4)
			continue;
		char *colon = strrchr(local, ':');
		unsigned port = colon ? (unsigned)strtoul(colon + 1, NULL, 16) : 0;
		if (!count) {
			if (st == 0x0A && *nlisten < listen_cap)
				listen[(*nlisten)++] = port;
			continue;
		}
		if (st != 0x01 || !ino)
			continue;
		bool inbound = false;
		for (size_t i = 0; i < *nlisten && !inbound; i++)
			inbound = listen[i] == port;
		bool theirs = false;
		for (size_t i = 0; i < nsocks && !theirs; i++)
			theirs = socks[i] == ino;
		if (!inbound && theirs)
			found++;
	}
	fclose(f);
	return found;
}

static unsigned outbound_tcp(const struct proc *procs, size_t n)
{
	static unsigned long socks[MAX_SOCKS];
	static unsigned listen[1024];
	size_t nsocks = user_sockets(procs, n, socks, MAX_SOCKS), nlisten = 0;
	if (!nsocks)
		return 0;
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	for (size_t i = 0; i < 2; i++)
		scan_tcp(files[i], false, listen, &nlisten, 1024, NULL, 0);
	unsigned found = 0;
	for (size_t i = 0; i < 2; i++)
		found += scan_tcp(files[i], true, listen, &nlisten, 1024, socks, nsocks);
	return found;
}

/* ---- holds ------------------------------------------------------------------------ */

struct hold {
	struct watch w;
	struct buf in;
	bool holding;         /* "hold": counted while open */
};

static struct watch hold_listen;
static unsigned hold_conns, holds_open;
static uint64_t hold_until;   /* monotonic ms */

static void hold_free(void *p)
{
	struct hold *h = p;
	buf_release(&h->in);
	free(h);
}

static void hold_close(struct hold *h)
{
	if (h->holding)
		holds_open--;
	hold_conns--;
	watch_close(&h->w);
	loop_defer_free(hold_free, h);
}

static void hold_line(struct hold *h, const char *line)
{
	uint64_t ms;
	if (strcmp(line, "hold") == 0) {
		h->holding = true;
		holds_open++;
	} else if (strncmp(line, "for ", 4) == 0 &&
		   num_parse_u64(line + 4, 1, HOLD_FOR_MAX, &ms, "for", NULL) == 0) {
		if (now_ms() + ms > hold_until)
			hold_until = now_ms() + ms;
	} else {
		(void)!write(h->w.fd, "error\n", 6);
		hold_close(h);
		return;
	}
	agent_touch();
	(void)!write(h->w.fd, "ok\n", 3);
	if (!h->holding)
		hold_close(h);
}

static void on_hold(struct watch *w, uint32_t events UNUSED)
{
	struct hold *h = w->data;
	char b[128];
	ssize_t n = read(w->fd, b, sizeof(b));
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		hold_close(h);   /* the holder went away: its hold ends */
		return;
	}
	if (h->holding)
		return;           /* nothing more to say */
	buf_add(&h->in, b, (size_t)n);
	char *nl = memchr(h->in.data, '\n', h->in.len);
	if (!nl) {
		if (h->in.len > 64)
			hold_close(h);
		return;
	}
	*nl = '\0';
	hold_line(h, h->in.data);
}

static void on_hold_accept(struct watch *w, uint32_t events UNUSED)
{
	int fd;
	while ((fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (hold_conns >= HOLD_MAX) {
			close(fd);
			continue;
		}
		struct hold *h = xcalloc(1, sizeof(*h));
		buf_init(&h->in);
		watch_init(&h->w, on_hold, h);
		if (watch_add(&h->w, fd, EPOLLIN) < 0) {
			close(fd);
			free(h);
			continue;
		}
		hold_conns++;
	}
}

int load_hold_start(const char *path, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(e, ENAMETOOLONG, "hold socket path '%s' is too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, errno, "hold socket: %s", strerror(errno));
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 ||
	    listen(fd, 16) < 0) {
		int r = err_set(e, errno, "hold socket '%s': %s", path, strerror(errno));
		close(fd);
		return r;
	}
	watch_init(&hold_listen, on_hold_accept, NULL);
	return watch_add(&hold_listen, fd, EPOLLIN);
}

/* ---- LOAD -------------------------------------------------------------------------- */

void op_load(struct stream *s, const struct proto_frame *f UNUSED)
{
	static struct proc procs[MAX_PROCS];
	static long tck;
	if (!tck)
		tck = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
	uint64_t children, ticks = 0;
	size_t n = list_procs(procs, MAX_PROCS, &children);
	for (size_t i = 0; i < n; i++)
		if (procs[i].user)
			ticks += procs[i].ticks;
	ticks += children;
	uint64_t now = now_ms();
	struct proto_load_info li = {
		.cpu_ms = ticks * 1000 / (uint64_t)tck,
		.tcp_out = outbound_tcp(procs, n),
		.holds = holds_open,
		.hold_ms = hold_until > now ? hold_until - now : 0,
		.forwards = agent.forwards_open,
	};
	stream_end(s, PROTO_LOAD_INFO, &li);
}

/* ---- `lohar hold` ------------------------------------------------------------------ */

static int hold_usage(void)
{
	fprintf(stderr, "usage: lohar hold -- COMMAND [ARG]...   keep the sandbox hot while it runs\n"
			"       lohar hold --for DURATION         ... for that long (10m, 2h)\n");
	return 2;
}

/* Ask the agent; 0 and the connection (kept open for a "hold"), or -1. */
static int hold_ask(const char *line, int *ret_fd)
{
	const char *path = getenv("LOHAR_HOLD_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!path || !path[0])
		path = LOHAR_HOLD_SOCKET;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "lohar hold: cannot reach the agent at %s: %s\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char ok[8] = "";
	if (write_all(fd, line, strlen(line)) < 0 || read(fd, ok, sizeof(ok) - 1) < 3 ||
	    strncmp(ok, "ok\n", 3) != 0) {
		fprintf(stderr, "lohar hold: the agent refused\n");
		close(fd);
		return -1;
	}
	*ret_fd = fd;
	return 0;
}

int hold_main(int argc, char **argv)
{
	int fd;
	if (argc == 4 && strcmp(argv[2], "--for") == 0) {
		uint64_t ms;
		struct err e = ERR_INIT;
		if (num_parse_duration_ms(argv[3], &ms, "--for", &e) < 0 || !ms || ms > HOLD_FOR_MAX) {
			fprintf(stderr, "lohar hold: --for wants a duration up to 7d (10m, 2h)\n");
			return 2;
		}
		char line[64];
		snprintf(line, sizeof(line), "for %llu\n", (unsigned long long)ms);
		if (hold_ask(line, &fd) < 0)
			return 1;
		close(fd);
		return 0;
	}
	if (argc < 4 || strcmp(argv[2], "--") != 0)
		return hold_usage();
	if (hold_ask("hold\n", &fd) < 0)
		return 1;
	pid_t pid = fork();
	if (pid < 0) {
		perror("lohar hold: fork");
		return 1;
	}
	if (pid == 0) {
		execvp(argv[3], argv + 3);
		fprintf(stderr, "lohar hold: cannot run '%s': %s\n", argv[3], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	close(fd);   /* the hold ends with the command */
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
