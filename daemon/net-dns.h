/* net-dns — the DNS forwarder: a UDP socket on each bridge's gateway
 * (port 53) on the daemon's one event loop. NAME.internal (and NAME alone,
 * through the guests' `search internal`) is answered from the asking
 * sandbox's own user's sandboxes; anything else is forwarded to the
 * upstream resolvers (network.dns_upstreams) under a fresh query id, and
 * the answer relayed. A sandbox whose egress is "deny" may resolve only
 * its allow_hosts (others: REFUSED); the addresses in their answers are
 * added to its nftables set (net_learn) before it sees the answer.
 *
 * Sits between guests (UDP) and the upstream resolvers, and net.c. TCP
 * DNS is not served (guests' resolvers fall back to it only for answers
 * over 512 bytes).
 */
#ifndef BHATTI_NET_DNS_H
#define BHATTI_NET_DNS_H

#include <stdint.h>

#include "err.h"

struct dns;
struct net;

/* upstreams: IPv4 addresses (port 53). */
int dns_new(struct net *n, char *const *upstreams, struct dns **ret, struct err *e);
void dns_free(struct dns *d);
/* Serve on gw:53 (already: 0); stop serving there. */
int dns_listen(struct dns *d, uint32_t gw, struct err *e);
void dns_unlisten(struct dns *d, uint32_t gw);

#endif
