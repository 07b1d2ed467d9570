/* netprobe.c — a static (musl) program bench/net.c copies into a guest to
 * time its network from the inside (busybox has no clock finer than a
 * second there):
 *
 *   netprobe get IP PORT N      N sequential HTTP/1.0 GETs of /: one line
 *                               per request, nanoseconds (connect to close)
 *   netprobe send IP PORT BYTES BYTES of zeros on one connection: one line,
 *                               nanoseconds from connect to the peer's close
 *
 * Not part of the daemon or the agent; built by bench/net.c with musl-gcc.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int dial(const char *ip, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || inet_pton(AF_INET, ip, &sa.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return fd;
}

int main(int argc, char **argv)
{
	static char buf[65536];
	if (argc != 5)
		return 2;
	int port = (int)strtol(argv[3], NULL, 10);
	long long n = strtoll(argv[4], NULL, 10);
	if (strcmp(argv[1], "get") == 0) {
		for (long long i = 0; i < n; i++) {
			long long t0 = now();
			int fd = dial(argv[2], port);
			const char req[] = "GET / HTTP/1.0\r\n\r\n";
			if (fd < 0 || write(fd, req, sizeof(req) - 1) < 0)
				return 1;
			while (read(fd, buf, sizeof(buf)) > 0)
				;
			close(fd);
			printf("%lld\n", now() - t0);
		}
		return 0;
	}
	long long t0 = now();
	int fd = dial(argv[2], port);
	if (fd < 0)
		return 1;
	for (long long left = n; left > 0;) {
		ssize_t w = write(fd, buf, left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf));
		if (w <= 0)
			return 1;
		left -= w;
	}
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	printf("%lld\n", now() - t0);
	return 0;
}
