/* netns.c — the network namespaces of the guest networking tests and
 * benchmark (netns.h). Touches the namespaces bhnet-*-<pid>, their veth
 * pair, a temp dir for the web root, and its own server processes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "helpers.h"
#include "netns.h"

static char host_ns[32], world_ns[32], veth[16], www[256];
static pid_t httpd_pid, dns_pid;
static int root_ns = -1;        /* the machine's namespace, to come back to */

int netns_sh(const char *fmt, ...)
{
	va_list ap;
	struct buf b = BUF_INIT;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	char *argv[] = { "sh", "-c", b.data, NULL };
	struct buf err = BUF_INIT;
	int rc = test_run(argv, NULL, NULL, 0, NULL, &err, 30000);
	if (rc != 0)
		fprintf(stderr, "'%s': exit %d: %s\n", b.data, rc, err.data ? err.data : "");
	buf_release(&b);
	buf_release(&err);
	return rc;
}

static int enter_ns(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/var/run/netns/%s", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = fd < 0 ? -1 : setns(fd, CLONE_NEWNET);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- the world's DNS server ---------------------------------------------------------- */

/* A names A record, else NXDOMAIN; the question copied back. */
static void dns_serve(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
	inet_pton(AF_INET, "198.51.100.53", &sa.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		_exit(1);
	for (;;) {
		uint8_t m[512], out[600];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, m, sizeof(m), 0, (struct sockaddr *)&from, &fl);
		if (n < 17)
			continue;
		char name[256] = "";
		size_t off = 12, o = 0;
		while (off < (size_t)n && m[off] && o < 200) {
			if (o)
				name[o++] = '.';
			memcpy(name + o, m + off + 1, m[off]);
			o += m[off];
			off += 1 + m[off];
		}
		name[o] = '\0';
		size_t qend = off + 5;
		if (qend > (size_t)n)
			continue;
		uint16_t type = (uint16_t)(m[off + 1] << 8 | m[off + 2]);
		const char *ip = strcmp(name, "example.test") == 0 ? "198.51.100.1"
			       : strcmp(name, "other.test") == 0 ? "198.51.100.2" : NULL;
		memcpy(out, m, qend);
		out[2] = 0x84 | (m[2] & 1);
		out[3] = ip ? 0x80 : 0x83;
		memset(out + 6, 0, 6);
		size_t len = qend;
		if (ip && type == 1) {
			struct in_addr a;
			inet_pton(AF_INET, ip, &a);
			uint8_t rr[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4 };
			memcpy(out + len, rr, sizeof(rr));
			memcpy(out + len + sizeof(rr), &a, 4);
			len += sizeof(rr) + 4;
			out[7] = 1;
		}
		sendto(fd, out, len, 0, (struct sockaddr *)&from, fl);
	}
}

static pid_t in_world(void (*fn)(void), char *const *argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (enter_ns(world_ns) < 0)
			_exit(1);
		if (fn)
			fn();
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* ---- namespaces ---------------------------------------------------------------------- */

const char *netns_world(void)
{
	return world_ns;
}

void netns_down(void)
{
	if (httpd_pid > 0) {
		kill(httpd_pid, SIGKILL);
		waitpid(httpd_pid, NULL, 0);
	}
	if (dns_pid > 0) {
		kill(dns_pid, SIGKILL);
		waitpid(dns_pid, NULL, 0);
	}
	httpd_pid = dns_pid = 0;
	if (root_ns >= 0) {
		setns(root_ns, CLONE_NEWNET);
		close(root_ns);
		root_ns = -1;
	}
	netns_sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; true", host_ns, world_ns);
	if (www[0])
		test_rmtree(www);
}

int netns_up(void)
{
	int p = (int)getpid() % 100000;
	snprintf(host_ns, sizeof(host_ns), "bhnet-host-%d", p);
	snprintf(world_ns, sizeof(world_ns), "bhnet-world-%d", p);
	snprintf(veth, sizeof(veth), "bhup%d", p);
	const char *H = host_ns, *W = world_ns;
	if (netns_sh("ip netns add %s && ip netns add %s", H, W) ||
	    netns_sh("ip -n %s link add %sa type veth peer name %sb netns %s", H, veth, veth, W) ||
	    netns_sh("ip -n %s link set lo up && ip -n %s link set lo up", H, W) ||
	    netns_sh("ip -n %s addr add 203.0.113.2/24 dev %sa && ip -n %s link set %sa up", H, veth, H, veth) ||
	    netns_sh("ip -n %s addr add 203.0.113.1/24 dev %sb && ip -n %s link set %sb up", W, veth, W, veth) ||
	    netns_sh("ip -n %s addr add 198.51.100.1/24 dev lo && ip -n %s addr add 198.51.100.2/24 dev lo "
	       "&& ip -n %s addr add 198.51.100.53/24 dev lo", W, W, W) ||
	    netns_sh("ip -n %s route add default via 203.0.113.1", H))
		return -1;
	char *dir = test_tmpdir("net-www");
	snprintf(www, sizeof(www), "%s", dir);
	free(dir);
	char *index = test_strf("%s/index.html", www);
	FILE *f = fopen(index, "w");
	free(index);
	if (!f)
		return -1;
	fputs("hello from the world\n", f);
	fclose(f);
	char *httpd[] = { "busybox", "httpd", "-f", "-p", "80", "-h", www, NULL };
	char *none[] = { "true", NULL };
	httpd_pid = in_world(NULL, httpd);
	dns_pid = in_world(dns_serve, none);
	root_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	return root_ns >= 0 && enter_ns(H) == 0 ? 0 : -1;
}


bool netns_left(void)
{
	return netns_sh("! ip netns list | grep -q '%s\\|%s'", host_ns, world_ns) != 0;
}

pid_t netns_world_spawn(char *const *argv)
{
	return in_world(NULL, argv);
}

pid_t netns_world_sink(int port)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd = enter_ns(world_ns) < 0 ? -1 : socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
		_exit(1);
	for (;;) {
		static char buf[65536];
		int c = accept(fd, NULL, NULL);
		while (c >= 0 && read(c, buf, sizeof(buf)) > 0)
			;
		if (c >= 0)
			close(c);
	}
}
