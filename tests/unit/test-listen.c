/* test-listen.c — daemon/listen.c, the API's listening sockets, on real
 * loopback sockets and the real event loop: the port the kernel chose is
 * read back, a connection is handed on with TCP_NODELAY set (without it a
 * kept-alive client waited 40 ms for every answer: Nagle against its
 * delayed ACK), and the cap per client address refuses the one too many
 * with a 429. Sits between cmocka and listen.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"
#include "loop.h"

/* What the accept callback saw. */
struct taken {
	int n;
	int nodelay;         /* of the last one */
	int fds[4];
	struct listen_peer *peers[4];
};

static bool take(int fd, struct listen_peer *peer, void *arg)
{
	struct taken *t = arg;
	socklen_t len = sizeof(t->nodelay);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &t->nodelay, &len), 0);
	assert_true(t->n < 4);
	t->fds[t->n] = fd;
	t->peers[t->n] = peer;
	t->n++;
	return true;
}

static int dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Turn the loop until want connections were taken (or a second passed). */
static void turn_until(struct taken *t, int want)
{
	for (int i = 0; i < 100 && t->n < want; i++)
		loop_run_once(10);
}

static void test_nodelay_and_port(void **state)
{
	(void)state;
	assert_int_equal(loop_init(), 0);
	struct taken t = { 0 };
	struct listener *l;
	struct err e = { 0 };
	assert_int_equal(listen_start("127.0.0.1", 0, 0, take, &t, &l, &e), 0);
	int port = listen_port(l);
	assert_true(port > 0);
	int c = dial(port);
	turn_until(&t, 1);
	assert_int_equal(t.n, 1);
	assert_int_equal(t.nodelay, 1);
	close(c);
	close(t.fds[0]);
	listen_peer_done(t.peers[0]);
	listen_free(l);
}

static void test_cap_per_address(void **state)
{
	(void)state;
	struct taken t = { 0 };
	struct listener *l;
	struct err e = { 0 };
	assert_int_equal(listen_start("127.0.0.1", 0, 2, take, &t, &l, &e), 0);
	int port = listen_port(l);
	int c[3];
	for (int i = 0; i < 3; i++)
		c[i] = dial(port);
	turn_until(&t, 2);
	for (int i = 0; i < 10; i++)
		loop_run_once(10);
	assert_int_equal(t.n, 2);
	/* the third is answered 429 and closed */
	char buf[256] = { 0 };
	ssize_t n = read(c[2], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	assert_non_null(strstr(buf, " 429 "));
	for (int i = 0; i < 3; i++)
		close(c[i]);
	for (int i = 0; i < t.n; i++) {
		close(t.fds[i]);
		listen_peer_done(t.peers[i]);
	}
	listen_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nodelay_and_port),
		cmocka_unit_test(test_cap_per_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
