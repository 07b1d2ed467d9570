/* net — guest networking, the daemon's side: every user has a bridge
 * (bhbr<N>) with a /24 of network.subnet_pool (10.201.N.0/24: gateway .1,
 * sandboxes .2 to .254), every sandbox an address there (kept in its
 * store row, so the same across stops and restarts) and a TAP on that
 * bridge (made by the engine: engine.h, net-link.h). One nftables table,
 * `inet bhatti`, holds every rule: made whole from the sandboxes the
 * daemon has (nft -f, one transaction, so it is idempotent and never half
 * applied), and only when its text changes (a user's first sandbox or
 * last one, an egress policy). The DNS forwarder (net-dns.c) answers on
 * each gateway.
 *
 * Addresses (docs/architecture.md, "Networking"):
 *
 *   10.201.0.0/16           network.subnet_pool (a /16 the host's routes miss)
 *   10.201.N.0/24           user's bridge bhbr<N>, N = 1..254 (first free)
 *   10.201.N.1              the bridge: gateway and DNS (NAME.internal)
 *   10.201.N.2-254          sandboxes, first free; MAC 02:<id bytes>
 *
 * Egress policy per sandbox ("allow", or "deny" but for allow_cidrs and
 * the addresses the forwarder saw for allow_hosts, added to that
 * sandbox's set eg_<id> before the guest gets the answer).
 *
 * Sits between the sandbox core (sandbox.c: addresses at create, sync at
 * create and destroy), the API (egress) and the kernel (net-link.c, nft).
 * Touches the links bhbr*, the table inet bhatti and ip_forward.
 */
#ifndef BHATTI_NET_H
#define BHATTI_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "server.h"

struct net;
struct sbx;
struct vm_net;

/* An egress policy. JSON (API, store):
 * {"policy":"allow"|"deny","allow_hosts":[..],"allow_cidrs":[..]} */
struct egress {
	bool deny;
	char **hosts;           /* "github.com", "*.npmjs.org" (lower case) */
	char **cidrs;           /* "192.0.2.0/24", "192.0.2.7" */
};

/* From the API's JSON: strict; lists without "policy" mean "deny";
 * neither means def_deny. */
int egress_parse(const char *json, bool def_deny, struct egress *ret, struct err *e);
/* The canonical JSON (caller frees). */
char *egress_json(const struct egress *eg);
void egress_release(struct egress *eg);

/* NULL *ret (no error) when networking is off (network.enabled false, or
 * not root: logged). Chooses or checks the subnet pool against the host's
 * routes, turns ip_forward on. */
int net_new(struct server *srv, struct net **ret, struct err *e);
/* Closes the forwarder; bridges, TAPs and rules stay for the sandboxes
 * that keep running (the next daemon makes them again from the store). */
void net_free(struct net *n);

/* A new address for a sandbox of user_id (its user's /24, or a free one):
 * "10.201.N.H" (caller frees). */
int net_assign(struct net *n, int64_t user_id, char **ret_ip, struct err *e);
/* A sandbox's MAC: locally administered, unicast, the rest its id's. */
void net_mac(const char *id, char out[18]);
/* The engine's view of a sandbox with address ip. */
void net_vm(const struct net *n, const char *id, const char *ip, struct vm_net *ret);
/* Make the links and rules match the sandboxes: bridges (and the
 * forwarder's sockets) of users who have sandboxes, no others; the
 * ruleset, when its text changed. */
int net_sync(struct net *n, struct err *e);

/* ---- for the DNS forwarder (net-dns.c) ---- */
struct sbx *net_sandbox_by_ip(struct net *n, uint32_t ip);
/* The address of user_id's sandbox named name (0: none). */
uint32_t net_address_of(struct net *n, int64_t user_id, const char *name);
/* May sb resolve name (its policy allows it, or names it)? */
bool net_name_allowed(struct net *n, struct sbx *sb, const char *name);
/* Is name one of sb's allow_hosts (so its answers open the way)? */
bool net_name_listed(struct net *n, struct sbx *sb, const char *name);
/* Let sb reach these addresses (the answers for an allowed name). */
int net_learn(struct net *n, struct sbx *sb, const uint32_t *ips, size_t nips, struct err *e);

#endif
