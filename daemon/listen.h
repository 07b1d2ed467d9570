/* listen — the API's listening sockets: exactly the configured address,
 * checked after bind, and connections accepted with a cap per client
 * address, each handed to libwebsockets (http.c).
 *
 * Sits between the kernel's sockets and http.c. Owns the listening fds
 * (watched on the shared loop) and the count of open connections per
 * client address; touches nothing else.
 *
 * "127.0.0.1:8080" listens on 127.0.0.1 only, "[::1]:8080" on ::1 only,
 * "localhost:8080" on every address the name resolves to, ":8080" on
 * every interface, IPv4 and IPv6. After bind, each socket's address is
 * read back (getsockname) and must be the one asked for, or the daemon
 * does not start.
 */
#ifndef BHATTI_LISTEN_H
#define BHATTI_LISTEN_H

#include <stdbool.h>

#include "err.h"

struct listener;
struct listen_peer;

/* A new connection: hand it on (true), or it is closed (false). The
 * caller tells listen_peer_done(peer) when a connection it took ends. */
typedef bool (*listen_accept_fn)(int fd, struct listen_peer *peer, void *arg);

/* host NULL or "": every interface. max_per_peer 0: no cap; over the cap
 * a connection is answered 429 and closed. */
int listen_start(const char *host, int port, unsigned max_per_peer, listen_accept_fn fn,
		 void *arg, struct listener **ret, struct err *e);
void listen_free(struct listener *l);
void listen_peer_done(struct listen_peer *peer);
/* "127.0.0.1:8080, [::1]:8080" (for the log). */
const char *listen_describe(const struct listener *l);
/* The port (the kernel's choice when 0 was asked for: tests). */
int listen_port(const struct listener *l);

#endif
