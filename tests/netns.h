/* netns — two network namespaces for the guest networking tests and
 * benchmark (tests/integration/test-net.c, bench/net.c): "host", which
 * this process enters (so a daemon it starts, the CLI and curl are all
 * there), and "world", the internet: busybox httpd on 198.51.100.1 and
 * .2 (port 80; "hello from the world"), a DNS server on 198.51.100.53
 * answering example.test (198.51.100.1) and other.test (.2), joined by a
 * veth pair that is the host's uplink (host 203.0.113.2, world .1, the
 * host's default route). No packet leaves them. Root only.
 */
#ifndef BHATTI_TEST_NETNS_H
#define BHATTI_TEST_NETNS_H

#include <stdbool.h>
#include <sys/types.h>

/* Make both, start the servers, enter "host": 0 or -1. */
int netns_up(void);
/* Back to the machine's namespace; stop the servers; remove both. */
void netns_down(void);
/* Is either still there (after netns_down)? */
bool netns_left(void);
/* The name of "world" (for `ip netns exec`). */
const char *netns_world(void);
/* Run argv in "world" (the caller kills and reaps it). */
pid_t netns_world_spawn(char *const *argv);
/* A TCP server in "world" on port (every address) that reads each
 * connection to its end (the caller kills and reaps it). */
pid_t netns_world_sink(int port);
/* sh -c on the formatted command (its stderr printed on failure): the
 * exit status. */
int netns_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
