/* net.c — guest networking, the daemon's side (see net.h): the subnet
 * pool, addresses, bridges, the nftables table and egress policies.
 * Sits between sandbox.c / the API and net-link.c, net-dns.c and `nft`;
 * touches the links bhbr*, the table inet bhatti and ip_forward.
 *
 * The table, as a packet sees it (made by ruleset()):
 *
 *   from a sandbox (iif bhbr*) to the host itself ── input ──► DNS on its own
 *        gateway (udp 53): accept; replies: accept; anything else: drop
 *   from a sandbox, routed ── forward ──► to its own bridge (same user):
 *        accept (network.same_user) │ to 169.254/16, to the subnet pool
 *        (other users): drop │ egress "deny": daddr in @eg_<id>: accept,
 *        else drop │ accept ──► postrouting: masquerade out of the host
 *   to a sandbox, routed (oif bhbr*) ── forward ──► replies: accept; else
 *        drop (nothing from outside, nor from other users)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "engine.h"
#include "json.h"
#include "log.h"
#include "net-dns.h"
#include "net-link.h"
#include "net.h"
#include "sandbox.h"
#include "util.h"

#define NET_LEARN_MAX 256     /* addresses a sandbox's allow_hosts may open */

/* Addresses the DNS forwarder let a sandbox reach (kept so that a new
 * ruleset keeps them). */
struct learned {
	char id[VALID_SANDBOX_ID_LEN + 1];
	uint32_t ips[NET_LEARN_MAX];
	size_t n;
	struct learned *next;
};

struct net {
	struct server *srv;
	uint32_t pool;              /* a.b.0.0 (host order) */
	bool up[256];               /* bridges made by this daemon (by index) */
	bool swept;                 /* stale bridges of earlier daemons looked for */
	char *rules;                /* the ruleset last applied */
	struct dns *dns;
	struct learned *learned;
};

/* ---- egress policies --------------------------------------------------------------- */

void egress_release(struct egress *eg)
{
	strv_free(eg->hosts);
	strv_free(eg->cidrs);
	memset(eg, 0, sizeof(*eg));
}

static int parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix)
{
	unsigned a, b, c, d, p = 32;
	char end;
	int n = sscanf(s, "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &p, &end);
	if (!(n == 5 || (n == 4 && !strchr(s, '/'))) || a > 255 || b > 255 || c > 255 ||
	    d > 255 || p > 32)
		return -EINVAL;
	*ret_addr = a << 24 | b << 16 | c << 8 | d;
	*ret_prefix = p;
	return 0;
}

/* A host name, or "*." and one: letters, digits, '-', '.' (lower case). */
static int check_host(char *h, struct err *e)
{
	const char *p = strncmp(h, "*.", 2) == 0 ? h + 2 : h;
	size_t n = strlen(p);
	bool ok = n > 0 && n <= 253 && p[0] != '.' && p[0] != '-' && p[n - 1] != '.';
	for (char *c = h; ok && *c; c++) {
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
		ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		     *c == '.' || (*c == '*' && c == h);
	}
	if (!ok || strstr(p, ".."))
		return err_set(e, EINVAL, "invalid host '%s' (a name such as github.com or "
			       "*.npmjs.org)", h);
	return 0;
}

struct egress_body {
	char *policy;
	char **allow_hosts;
	char **allow_cidrs;
};

static const struct json_field egress_fields[] = {
	JSON_FIELD_STR("policy", struct egress_body, policy, JSON_OPTIONAL, 8),
	JSON_FIELD_STRV("allow_hosts", struct egress_body, allow_hosts, JSON_OPTIONAL, 253, 64),
	JSON_FIELD_STRV("allow_cidrs", struct egress_body, allow_cidrs, JSON_OPTIONAL, 18, 64),
};

int egress_parse(const char *json, bool def_deny, struct egress *ret, struct err *e)
{
	struct egress_body b = { 0 };
	int r = json_parse(json, strlen(json), egress_fields, ARRAY_SIZE(egress_fields), &b, NULL, e);
	if (r < 0)
		return err_prefix(e, "egress");
	struct egress eg = { .deny = def_deny };
	if (b.policy && strcmp(b.policy, "deny") == 0)
		eg.deny = true;
	else if (b.policy && strcmp(b.policy, "allow") == 0)
		eg.deny = false;
	else if (b.policy)
		r = err_set(e, EINVAL, "egress: policy must be allow or deny, not '%s'", b.policy);
	else if (strv_len(b.allow_hosts) || strv_len(b.allow_cidrs))
		eg.deny = true;
	for (char **h = b.allow_hosts; r == 0 && h && *h; h++)
		r = check_host(*h, e);
	for (char **c = b.allow_cidrs; r == 0 && c && *c; c++) {
		uint32_t a;
		unsigned p;
		if (parse_cidr(*c, &a, &p) < 0)
			r = err_set(e, EINVAL, "egress: invalid cidr '%s' (a.b.c.d/n)", *c);
	}
	if (r == 0) {
		eg.hosts = b.allow_hosts;
		eg.cidrs = b.allow_cidrs;
		b.allow_hosts = b.allow_cidrs = NULL;
		*ret = eg;
	}
	json_release(egress_fields, ARRAY_SIZE(egress_fields), &b);
	return r;
}

char *egress_json(const struct egress *eg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "policy", eg->deny ? "deny" : "allow");
	cJSON *h = cJSON_AddArrayToObject(o, "allow_hosts");
	for (char **p = eg->hosts; p && *p; p++)
		cJSON_AddItemToArray(h, cJSON_CreateString(*p));
	cJSON *c = cJSON_AddArrayToObject(o, "allow_cidrs");
	for (char **p = eg->cidrs; p && *p; p++)
		cJSON_AddItemToArray(c, cJSON_CreateString(*p));
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* sb's policy (the stored one; a row without one: allow). */
static void sb_egress(const struct sbx *sb, struct egress *ret)
{
	struct err e = ERR_INIT;
	memset(ret, 0, sizeof(*ret));
	if (sb->row.egress && egress_parse(sb->row.egress, false, ret, &e) < 0) {
		log_warn("sandbox '%s': stored egress: %s: denying all", sb->row.id, err_str(&e));
		ret->deny = true;
	}
}

/* ---- addresses ---------------------------------------------------------------------- */

static uint32_t ip_of(const char *s)
{
	struct in_addr a;
	return s && inet_pton(AF_INET, s, &a) == 1 ? ntohl(a.s_addr) : 0;
}

static void ip_str(uint32_t ip, char out[16])
{
	snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, ip >> 16 & 255, ip >> 8 & 255, ip & 255);
}

/* The /24 index of an address in the pool (0: not in it). */
static unsigned index_of(const struct net *n, uint32_t ip)
{
	return (ip & 0xffff0000u) == n->pool ? (ip >> 8) & 255 : 0;
}

static unsigned user_index(const struct net *n, int64_t user_id)
{
	for (struct sbx *sb = n->srv->sandboxes; sb; sb = sb->next)
		if (sb->row.user_id == user_id && index_of(n, ip_of(sb->row.ip)))
			return index_of(n, ip_of(sb->row.ip));
	return 0;
}

int net_assign(struct net *n, int64_t user_id, char **ret_ip, struct err *e)
{
	bool used[256] = { [0] = true, [1] = true, [255] = true };
	unsigned idx = user_index(n, user_id);
	if (!idx) {
		bool taken[256] = { [0] = true, [255] = true };
		for (struct sbx *sb = n->srv->sandboxes; sb; sb = sb->next)
			taken[index_of(n, ip_of(sb->row.ip))] = true;
		for (idx = 1; idx < 255 && taken[idx]; idx++)
			;
		if (idx == 255)
			return err_set(e, EAGAIN, "no free /24 left in the subnet pool for a new user");
	}
	for (struct sbx *sb = n->srv->sandboxes; sb; sb = sb->next) {
		uint32_t ip = ip_of(sb->row.ip);
		if (index_of(n, ip) == idx)
			used[ip & 255] = true;
	}
	unsigned h;
	for (h = 2; h < 255 && used[h]; h++)
		;
	if (h == 255)
		return err_set(e, EAGAIN, "no free address left on this user's network (253 sandboxes)");
	char s[16];
	ip_str(n->pool | idx << 8 | h, s);
	*ret_ip = xstrdup(s);
	return 0;
}

static void bridge_name(unsigned idx, char out[LINK_NAME_MAX])
{
	snprintf(out, LINK_NAME_MAX, "bhbr%u", idx);
}

void net_vm(const struct net *n, const char *id, const char *ip, struct vm_net *ret)
{
	uint32_t a = ip_of(ip);
	unsigned idx = index_of(n, a);
	char gw[16];
	memset(ret, 0, sizeof(*ret));
	bridge_name(idx, ret->bridge);
	snprintf(ret->address, sizeof(ret->address), "%s/24", ip);
	ip_str(n->pool | idx << 8 | 1, gw);
	snprintf(ret->gateway, sizeof(ret->gateway), "%s", gw);
	net_mac(id, ret->mac);
}

void net_mac(const char *id, char out[18])
{
	snprintf(out, 18, "02:%.2s:%.2s:%.2s:%.2s:%.2s", id, id + 2, id + 4, id + 6, id + 8);
}

struct sbx *net_sandbox_by_ip(struct net *n, uint32_t ip)
{
	for (struct sbx *sb = n->srv->sandboxes; sb; sb = sb->next)
		if (!sb->destroying && ip_of(sb->row.ip) == ip)
			return sb;
	return NULL;
}

uint32_t net_address_of(struct net *n, int64_t user_id, const char *name)
{
	for (struct sbx *sb = n->srv->sandboxes; sb; sb = sb->next)
		if (!sb->destroying && sb->row.user_id == user_id && strcasecmp(sb->row.name, name) == 0)
			return ip_of(sb->row.ip);
	return 0;
}

/* ---- policy checks for the forwarder ------------------------------------------------ */

static bool host_match(const char *pattern, const char *name)
{
	if (strncmp(pattern, "*.", 2) != 0)
		return strcasecmp(pattern, name) == 0;
	size_t pl = strlen(pattern + 1), nl = strlen(name);  /* ".npmjs.org" */
	return nl > pl && strcasecmp(name + nl - pl, pattern + 1) == 0;
}

bool net_name_listed(struct net *n UNUSED, struct sbx *sb, const char *name)
{
	struct egress eg;
	bool yes = false;
	sb_egress(sb, &eg);
	for (char **h = eg.hosts; eg.deny && !yes && h && *h; h++)
		yes = host_match(*h, name);
	egress_release(&eg);
	return yes;
}

bool net_name_allowed(struct net *n, struct sbx *sb, const char *name)
{
	struct egress eg;
	sb_egress(sb, &eg);
	bool deny = eg.deny;
	egress_release(&eg);
	return !deny || net_name_listed(n, sb, name);
}

/* ---- nftables ---------------------------------------------------------------------- */

/* Run `nft -f -` on text; its complaint in e. */
static int nft_run(const char *text, struct err *e)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return err_set(e, errno, "pipe: %s", strerror(errno));
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return err_set(e, errno, "pipe: %s", strerror(errno));
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		execlp("nft", "nft", "-f", "-", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	size_t len = strlen(text), off = 0;
	while (pid > 0 && off < len) {
		ssize_t w = write(in[1], text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(in[1]);
	char msg[512];
	size_t got = 0;
	ssize_t r;
	while (got < sizeof(msg) - 1 && (r = read(out[0], msg + got, sizeof(msg) - 1 - got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		got += (size_t)r;
	}
	msg[got] = '\0';
	close(out[0]);
	int status = 0;
	if (pid < 0)
		return err_set(e, errno, "fork: %s", strerror(errno));
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return err_set(e, ENOENT, "cannot run 'nft' (install Debian's nftables)");
	msg[strcspn(msg, "\n")] = '\0';
	return err_set(e, EIO, "nft: %s", got ? msg : "failed");
}

static struct learned *learned_of(struct net *n, const char *id, bool make)
{
	for (struct learned *l = n->learned; l; l = l->next)
		if (strcmp(l->id, id) == 0)
			return l;
	if (!make)
		return NULL;
	struct learned *l = xcalloc(1, sizeof(*l));
	snprintf(l->id, sizeof(l->id), "%s", id);
	l->next = n->learned;
	n->learned = l;
	return l;
}

/* The whole table, from the sandboxes (caller frees). */
static char *ruleset(struct net *n, const bool bridges[256])
{
	struct server *srv = n->srv;
	struct buf b = BUF_INIT;
	char pool[16], br[LINK_NAME_MAX], gw[16], ip[16];
	ip_str(n->pool, pool);
	/* add-then-delete: one transaction whether or not it was there */
	buf_addf(&b, "table inet bhatti {}\ndelete table inet bhatti\n");
	buf_addf(&b, "table bridge bhatti {}\ndelete table bridge bhatti\n");
	bool any = false;
	for (unsigned i = 1; i < 255; i++)
		any = any || bridges[i];
	if (!any) /* no sandbox: no table */
		return buf_detach(&b, NULL);
	buf_addf(&b, "table inet bhatti {\n");
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next) {
		struct egress eg;
		if (!sb->row.ip)
			continue;
		sb_egress(sb, &eg);
		if (eg.deny) {
			buf_addf(&b, "\tset eg_%s {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
				 "\t\tauto-merge\n", sb->row.id);
			struct learned *l = learned_of(n, sb->row.id, false);
			const char *sep = "\t\telements = { ";
			for (char **c = eg.cidrs; c && *c; c++, sep = ", ")
				buf_addf(&b, "%s%s", sep, *c);
			for (size_t i = 0; l && i < l->n; i++, sep = ", ") {
				ip_str(l->ips[i], ip);
				buf_addf(&b, "%s%s", sep, ip);
			}
			if (strcmp(sep, ", ") == 0)
				buf_addf(&b, " }\n");
			buf_addf(&b, "\t}\n");
		}
		egress_release(&eg);
	}
	buf_addf(&b, "\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n"
		 "\t\tiifname != \"bhbr*\" accept\n\t\tct state established,related accept\n");
	for (unsigned i = 1; i < 255; i++) {
		if (!bridges[i])
			continue;
		bridge_name(i, br);
		ip_str(n->pool | i << 8 | 1, gw);
		buf_addf(&b, "\t\tiifname \"%s\" ip daddr %s udp dport 53 accept\n", br, gw);
	}
	buf_addf(&b, "\t\tdrop\n\t}\n");
	buf_addf(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter - 10; "
		 "policy accept;\n");
	for (unsigned i = 1; i < 255; i++) {
		if (!bridges[i])
			continue;
		bridge_name(i, br);
		buf_addf(&b, "\t\tiifname \"%s\" oifname \"%s\" %s\n", br, br,
			 srv->cfg.network.same_user ? "accept" : "drop");
	}
	buf_addf(&b, "\t\toifname \"bhbr*\" ct state established,related accept\n"
		 "\t\toifname \"bhbr*\" drop\n"
		 "\t\tiifname != \"bhbr*\" accept\n"
		 "\t\tip daddr { 169.254.0.0/16, %s/16 } drop\n", pool);
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next) {
		struct egress eg;
		if (!sb->row.ip)
			continue;
		sb_egress(sb, &eg);
		if (eg.deny)
			buf_addf(&b, "\t\tip saddr %s ip daddr @eg_%s accept\n\t\tip saddr %s drop\n",
				 sb->row.ip, sb->row.id, sb->row.ip);
		egress_release(&eg);
	}
	buf_addf(&b, "\t}\n");
	buf_addf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; "
		 "policy accept;\n\t\tip saddr %s/16 oifname != \"bhbr*\" masquerade\n\t}\n}\n", pool);
	/* layer 2: a sandbox whose egress is "deny" sends only from its own
	 * address (else it could take a sibling's, whose egress is open) */
	buf_addf(&b, "table bridge bhatti {\n\tchain prerouting {\n\t\ttype filter hook "
		 "prerouting priority filter; policy accept;\n");
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next) {
		struct egress eg;
		if (!sb->row.ip)
			continue;
		sb_egress(sb, &eg);
		if (eg.deny)
			buf_addf(&b, "\t\tiifname \"bt%s\" ether type ip ip saddr != %s drop\n"
				 "\t\tiifname \"bt%s\" ether type arp arp saddr ip != %s drop\n"
				 "\t\tiifname \"bt%s\" ether type != { ip, arp } drop\n",
				 sb->row.id, sb->row.ip, sb->row.id, sb->row.ip, sb->row.id);
		egress_release(&eg);
	}
	buf_addf(&b, "\t}\n");
	if (!srv->cfg.network.same_user)
		/* one bridge's ports do not talk to each other either */
		buf_addf(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter; "
			 "policy accept;\n\t\tiifname \"bt*\" oifname \"bt*\" drop\n\t}\n");
	buf_addf(&b, "}\n");
	return buf_detach(&b, NULL);
}

int net_learn(struct net *n, struct sbx *sb, const uint32_t *ips, size_t nips, struct err *e)
{
	struct learned *l = learned_of(n, sb->row.id, true);
	struct buf b = BUF_INIT;
	char ip[16];
	const char *sep = "";
	buf_addf(&b, "add element inet bhatti eg_%s { ", sb->row.id);
	size_t added = 0;
	for (size_t i = 0; i < nips; i++) {
		bool known = false;
		for (size_t j = 0; j < l->n && !known; j++)
			known = l->ips[j] == ips[i];
		if (known)
			continue;
		if (l->n < NET_LEARN_MAX)
			l->ips[l->n++] = ips[i];
		ip_str(ips[i], ip);
		buf_addf(&b, "%s%s", sep, ip);
		sep = ", ";
		added++;
	}
	buf_addf(&b, " }\n");
	int r = added ? nft_run(b.data, e) : 0;
	buf_release(&b);
	return r;
}

/* ---- bridges and sync -------------------------------------------------------------- */

int net_sync(struct net *n, struct err *e)
{
	bool want[256] = { 0 };
	int r = 0;
	for (struct sbx *sb = n->srv->sandboxes; sb; sb = sb->next)
		want[index_of(n, ip_of(sb->row.ip))] = true;
	want[0] = false;
	for (unsigned i = 1; i < 255 && r == 0; i++) {
		char br[LINK_NAME_MAX];
		bridge_name(i, br);
		if (want[i] && !n->up[i]) {
			r = link_bridge_up(br, n->pool | i << 8 | 1, 24, e);
			if (r == 0 && (r = dns_listen(n->dns, n->pool | i << 8 | 1, e)) == 0)
				n->up[i] = true;
		} else if (!want[i] && (n->up[i] || !n->swept)) {
			if (n->up[i])
				dns_unlisten(n->dns, n->pool | i << 8 | 1);
			n->up[i] = false;
			if (link_exists(br))
				r = link_bridge_delete(br, e);
		}
	}
	n->swept = true;
	/* forget what the forwarder learned for sandboxes that are gone */
	for (struct learned **pp = &n->learned; *pp;) {
		struct learned *l = *pp;
		bool alive = false;
		for (struct sbx *sb = n->srv->sandboxes; sb && !alive; sb = sb->next)
			alive = strcmp(sb->row.id, l->id) == 0;
		if (alive) {
			pp = &l->next;
		} else {
			*pp = l->next;
			free(l);
		}
	}
	if (r < 0)
		return r;
	char *rules = ruleset(n, want);
	if (n->rules && strcmp(rules, n->rules) == 0) {
		free(rules);
		return 0;
	}
	r = nft_run(rules, e);
	if (r < 0) {
		free(rules);
		return err_prefix(e, "firewall");
	}
	free(n->rules);
	n->rules = rules;
	return 0;
}

/* ---- start-up ---------------------------------------------------------------------- */

/* Does a.b.0.0/16 overlap a route of the host's (not our bridges')? The
 * route's text in hit. */
static bool pool_collides(uint32_t pool, char hit[64])
{
	FILE *f = fopen("/proc/net/route", "re");
	char line[256];
	bool yes = false;
	if (!f)
		return false;
	while (!yes && fgets(line, sizeof(line), f)) {
		char ifname[32];
		unsigned dst, gw, flags, mask;
		if (sscanf(line, "%31s %x %x %x %*d %*d %*d %x", ifname, &dst, &gw, &flags, &mask) != 5)
			continue;
		dst = ntohl(dst);
		mask = ntohl(mask);
		if (mask == 0 || strncmp(ifname, "bhbr", 4) == 0)
			continue;   /* the default route; our own */
		uint32_t m = mask & 0xffff0000u;
		if ((dst & m) == (pool & m)) {
			char d[16];
			ip_str(dst, d);
			unsigned p = 0;
			while (p < 32 && (mask << p) & 0x80000000u)
				p++;
			snprintf(hit, 64, "%s/%u on '%s'", d, p, ifname);
			yes = true;
		}
	}
	fclose(f);
	return yes;
}

static void strv_push(char ***v, const char *s)
{
	size_t n = strv_len(*v);
	*v = xrealloc(*v, (n + 2) * sizeof(**v));
	(*v)[n] = xstrdup(s);
	(*v)[n + 1] = NULL;
}

/* The host's resolvers that are not loopback (those behind
 * systemd-resolved when it is the one listed). */
static char **host_resolvers(void)
{
	const char *files[] = { "/etc/resolv.conf", "/run/systemd/resolve/resolv.conf" };
	char **v = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(files) && strv_len(v) == 0; i++) {
		FILE *f = fopen(files[i], "re");
		char line[256], addr[64];
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "nameserver %63s", addr) == 1 && ip_of(addr) &&
			    (ip_of(addr) >> 24) != 127)
				strv_push(&v, addr);
		if (f)
			fclose(f);
	}
	return v;
}

int net_new(struct server *srv, struct net **ret, struct err *e)
{
	const struct settings *cfg = &srv->cfg;
	*ret = NULL;
	if (!cfg->network.enabled)
		return 0;
	if (geteuid() != 0) {
		log_warn("networking is off: the daemon is not root (set network.enabled: false "
			 "to say so)");
		return 0;
	}
	struct net *n = xcalloc(1, sizeof(*n));
	n->srv = srv;
	char hit[64] = "";
	if (cfg->network.subnet_pool) {
		unsigned p;
		parse_cidr(cfg->network.subnet_pool, &n->pool, &p);
		if (pool_collides(n->pool, hit)) {
			free(n);
			return err_set(e, EADDRINUSE, "network.subnet_pool '%s' overlaps the host's "
				       "route %s: choose another /16", cfg->network.subnet_pool, hit);
		}
	} else {
		unsigned b;
		for (b = 201; b < 255 && pool_collides(10u << 24 | b << 16, hit); b++)
			;
		if (b == 255) {
			free(n);
			return err_set(e, EADDRINUSE, "every /16 from 10.201.0.0 to 10.254.0.0 overlaps "
				       "a route of the host's: set network.subnet_pool");
		}
		n->pool = 10u << 24 | b << 16;
	}
	char **ups = cfg->network.dns_upstreams ? strv_dup(cfg->network.dns_upstreams)
						 : host_resolvers();
	int r = link_forwarding_on(e);
	if (r == 0)
		r = dns_new(n, ups, &n->dns, e);
	strv_free(ups);
	if (r < 0) {
		free(n);
		return r;
	}
	char pool[16];
	ip_str(n->pool, pool);
	log_info("networking: subnet pool %s/16", pool);
	*ret = n;
	return 0;
}

void net_free(struct net *n)
{
	if (!n)
		return;
	dns_free(n->dns);
	while (n->learned) {
		struct learned *l = n->learned;
		n->learned = l->next;
		free(l);
	}
	free(n->rules);
	free(n);
}
