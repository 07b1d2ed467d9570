/* proxy-up — the proxy's connection to a port of a sandbox, by one of two
 * transports behind one interface (guest.h's callback table):
 *
 *   agent  the agent's forward stream (guest_forward: FORWARD over the
 *          agent channel; works with or without guest networking)
 *   ip     a TCP connection from the daemon straight to the guest's
 *          address on its bridge (guest networking: docs/networking.md);
 *          the host's own connections to a guest are the one way in the
 *          nftables table lets through (net.c)
 *
 * Either wakes the sandbox first (sbx_wake: a warm one resumes, a cold or
 * stopped one restores), then connects; an open connection counts as
 * activity (sb->guest_ops, as an agent stream does) and every byte
 * touches the sandbox. The callbacks are guest.h's: started (connected),
 * data, room, eof (the guest finished sending), done (exactly once, last;
 * never from inside pup_open); their `op` argument is NULL for ip.
 *
 *   pup_open ──wake──► connecting ──connected──► open ──both closed / error──► done
 *        └──────────────── pup_free (at any time; no callback after it) ─────────┘
 *
 * Sits between proxy.c and guest.h / the sockets; touches only its own
 * socket and the sandbox's activity count.
 */
#ifndef BHATTI_PROXY_UP_H
#define BHATTI_PROXY_UP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest.h"

struct sbx;
struct pup;

/* How the proxy reaches a guest's port: proxy.transport. */
enum pup_transport { PUP_AUTO, PUP_AGENT, PUP_IP };

/* "auto", "agent", "ip" → the enum; -EINVAL for anything else. */
int pup_transport_parse(const char *s, enum pup_transport *ret);

/* Open a connection to port of sb: by its IP when the transport is ip or
 * auto and sb has an address (networking), else through its agent.
 * The caller owns the result (pup_free). */
struct pup *pup_open(struct sbx *sb, uint16_t port, enum pup_transport t,
		     const struct guest_cb *cb, void *arg);
/* "ip" or "agent": the transport it took. */
const char *pup_kind(const struct pup *u);
void pup_write(struct pup *u, const void *p, size_t n);
void pup_write_eof(struct pup *u);
size_t pup_write_queued(const struct pup *u);
/* Stop reading the guest (true) until the caller's consumer caught up. */
void pup_hold(struct pup *u, bool hold);
/* NULL is fine. Resets the connection when it is still open. */
void pup_free(struct pup *u);

#endif
