/* proxy — the public proxy of published ports: an HTTP/1.1 reverse proxy
 * on `public_proxy_listen`, without authentication, that routes
 * `/<alias>/…` (path routing), `<alias>.<domain>` and
 * `<alias>.<a.b.c.d>.nip.io` (host routing) to the published port of a
 * sandbox, by the guest's IP or through the agent's forward stream
 * (proxy-up.h, proxy.transport), waking the sandbox first.
 *
 * The same code serves the owner's path on the API's listener,
 * `ANY /sandboxes/:id/proxy/:port/...` with the API key (proxy_sniff).
 *
 * Sits between the client sockets (accepted by listen.c, served on the
 * shared event loop: not through libwebsockets, so that bodies stream
 * byte for byte both ways) and publish.h (aliases) + proxy-up.h (the
 * guest side). Touches the client sockets, the rate-limit buckets of its
 * own, and nothing else.
 *
 * A client connection (one at a time per connection; a pipelined request
 * waits in the input buffer until the answer before it is out):
 *
 *   HEAD ──route, limits──► OPEN ──guest connected──► RELAY ──response done──► HEAD
 *    │ ▲ (keep-alive)        │ wake/refused/timeout     │ 101 Switching Protocols
 *    │ └─────────────────────┼──────────────────────────┤
 *    │                       ▼                          ▼
 *    └── bad request ──► CLOSING (an error page, then close)   TUNNEL (bytes both ways)
 *
 *   With tls.* an API connection starts in HEAD undecided: its first
 *   decrypted bytes make it the owner's path (as above) or BRIDGE: the
 *   plaintext both ways to libwebsockets over a socket pair, until
 *   either side closes.
 *
 * Flow control: the client is read only while less than PROXY_HIGH bytes
 * wait for the guest; the guest is held (pup_hold) while more than
 * PROXY_HIGH wait for the client. A 1 GB download never sits in memory.
 *
 * Each request goes to the guest on a new connection with `Connection:
 * close` (a WebSocket: `Connection: Upgrade`), so a response ends at its
 * Content-Length, its last chunk, or the guest's close; the client's
 * connection is kept alive whenever the response framing allows it.
 */
#ifndef BHATTI_PROXY_H
#define BHATTI_PROXY_H

#include <stdbool.h>

#include "err.h"

struct server;
struct listen_peer;

#define PROXY_HIGH (256u << 10)
#define PROXY_HEAD_TIMEOUT_MS 30000      /* a request head, once it began */
#define PROXY_IDLE_TIMEOUT_MS 120000     /* a kept-alive connection between requests */
#define PROXY_WAKE_TIMEOUT_MS 60000      /* wake + connect to the guest's port */
#define PROXY_RESPONSE_TIMEOUT_MS 60000  /* the guest's response head */
#define PROXY_BODY_IDLE_MS 120000        /* nothing moved in a body */
#define PROXY_TUNNEL_IDLE_MS 600000      /* an idle WebSocket */

/* Start serving: the owner's path on the API listener (proxy_sniff) and,
 * when srv->cfg.public_proxy_listen is set, the public proxy there. */
int proxy_start(struct server *srv, struct err *e);
/* "0.0.0.0:8081" (for the log), and the port; NULL / 0 when not serving. */
const char *proxy_listening(void);
int proxy_port(void);
/* The API listener's connections, before the API sees them: a connection
 * whose first request is `METHOD /sandboxes/:id/proxy/:port/...` (the
 * owner's path, with the API key) is served by the proxy; any other goes
 * to api(fd, peer) untouched (its bytes are only peeked at). Nothing
 * within timeout_ms: closed. Before proxy_start: straight to api. With
 * tls.*: TLS ends here, and api gets one end of a socket pair carrying
 * the plaintext (peer NULL). As
 * listen_accept_fn: false means fd was not taken, and was closed (api
 * must close it too when it does not take it). */
typedef bool (*proxy_accept_fn)(int fd, struct listen_peer *peer);
bool proxy_sniff(int fd, struct listen_peer *peer, proxy_accept_fn api, unsigned timeout_ms);

/* Close every connection and the listener. */
void proxy_stop(void);

#endif
