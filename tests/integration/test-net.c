/* test-net.c — guest networking end to end (issue 12): a real `bhatti
 * serve` with networking on, real VMs, real bridges, TAPs and nftables.
 *
 * Everything happens in two network namespaces the test makes and
 * removes: "host" (the daemon runs in it: this process enters it, so the
 * daemon, the CLI and curl are all there) and "world" (the internet: an
 * HTTP server, busybox httpd, on 198.51.100.1 and .2, and a DNS server on
 * 198.51.100.53, written below, answering example.test and other.test),
 * joined by a veth pair that is the host's uplink (203.0.113.0/24, the
 * host's default route). No packet leaves them. Needs root (skipped
 * otherwise).
 *
 * Covers: a fetch of http://example.test/ through NAT and the DNS
 * forwarder; ip, mac and egress in list/inspect; two users' sandboxes
 * cannot reach each other, one user's can (by address and by name); no
 * sandbox reaches the API port on its gateway or on the host's uplink
 * address, nor 169.254.169.254; --egress deny, --allow-host (exactly that
 * name), --allow-cidr, and a PATCH that opens egress; an allowed name's
 * address is in the sandbox's set before the answer reaches it (the first
 * SYN gets through); a destroyed sandbox's TAP and rules go at once;
 * clones get their own MAC and address; a pooled sandbox gets its owner's
 * network; a warm (paused) sandbox has its network when it wakes;
 * stop/start and a kill -9 of the daemon keep the address and the
 * network; the public proxy reaching a guest's port by its IP
 * (proxy.transport ip; the world cannot), waking a stopped sandbox, and
 * by the agent (transport agent); after destroy and after the suite no TAP, bridge, address or
 * table is left.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "helpers.h"
#include "netns.h"

static bool ready;
static struct daemon_proc D;
static int PPORT;   /* the public proxy's */
static char *alice, *bob;
static char *slow_dir;

/* ---- helpers ------------------------------------------------------------------------- */

/* `bhatti exec NAME [--root] -- sh -c SCRIPT` as key: the exit code,
 * output in out. */
static int vgsh(const char *key, const char *name, bool root, struct buf *out, const char *fmt,
		va_list ap)
{
	struct buf b = BUF_INIT;
	buf_vaddf(&b, fmt, ap);
	if (out)
		buf_reset(out);
	const char *args[] = { "exec", name, root ? "--root" : "--", root ? "--" : "sh",
			       root ? "sh" : "-c", root ? "-c" : b.data, root ? b.data : NULL, NULL };
	int rc = bhatti_argv(&D, key, NULL, out, NULL, args);
	buf_release(&b);
	return rc;
}

static int gsh(const char *key, const char *name, struct buf *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vgsh(key, name, false, out, fmt, ap);
	va_end(ap);
	return rc;
}

static int gsh_root(const char *key, const char *name, struct buf *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vgsh(key, name, true, out, fmt, ap);
	va_end(ap);
	return rc;
}

/* Does NAME fetch url (an HTTP server's page, within 5 s)? */
static bool fetches(const char *key, const char *name, const char *url)
{
	struct buf out = BUF_INIT;
	int rc = gsh(key, name, &out, "timeout 5 wget -O- %s 2>/dev/null", url);
	bool ok = rc == 0 && out.data && strstr(out.data, "hello");
	buf_release(&out);
	return ok;
}

/* Does NAME open a TCP connection to addr:port within 3 s? (nc runs
 * `true` once connected, and exits 0 only then) */
static bool connects(const char *key, const char *name, const char *addr, int port)
{
	return gsh(key, name, NULL, "timeout 5 nc -w 3 %s %d -e true </dev/null >/dev/null 2>&1",
		   addr, port) == 0;
}

static cJSON *inspect(const char *key, const char *name)
{
	struct buf out = BUF_INIT;
	const char *args[] = { "inspect", name, "--json", NULL };
	int rc = bhatti_argv(&D, key, NULL, &out, NULL, args);
	cJSON *j = rc == 0 && out.data ? cJSON_Parse(out.data) : NULL;
	buf_release(&out);
	return j;
}

static char *field(const char *key, const char *name, const char *f)
{
	cJSON *j = inspect(key, name);
	const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, f) : NULL;
	char *s = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
	cJSON_Delete(j);
	return s;
}

static void create(const char *key, const char *name, const char *extra)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	char *cmd = test_strf("create --name %s %s", name, extra ? extra : "");
	char *args[16] = { 0 };
	int n = 0;
	for (char *save = NULL, *t = strtok_r(cmd, " ", &save); t && n < 15;
	     t = strtok_r(NULL, " ", &save))
		args[n++] = t;
	int rc = bhatti_argv(&D, key, NULL, &out, &err, (const char *const *)args);
	if (rc != 0)
		fprintf(stderr, "create %s: %s%s\n", name, out.data ? out.data : "",
			err.data ? err.data : "");
	assert_int_equal(rc, 0);
	free(cmd);
	buf_release(&out);
	buf_release(&err);
}

static void destroy(const char *key, const char *name)
{
	const char *args[] = { "destroy", "-y", name, NULL };
	assert_int_equal(bhatti_argv(&D, key, NULL, NULL, NULL, args), 0);
}

/* How many links whose name starts with prefix (in this namespace). */
static int links(const char *prefix)
{
	struct buf out = BUF_INIT;
	char *argv[] = { "ip", "-br", "link", NULL };
	test_run(argv, NULL, NULL, 0, &out, NULL, 10000);
	int n = 0;
	for (char *l = out.data; l && *l;) {
		if (strncmp(l, prefix, strlen(prefix)) == 0)
			n++;
		char *nl = strchr(l, '\n');
		l = nl ? nl + 1 : NULL;
	}
	buf_release(&out);
	return n;
}

static bool has_table(void)
{
	struct buf out = BUF_INIT;
	char *argv[] = { "nft", "list", "tables", NULL };
	test_run(argv, NULL, NULL, 0, &out, NULL, 10000);
	bool yes = out.data && strstr(out.data, "bhatti");
	buf_release(&out);
	return yes;
}

/* Does the ruleset (in this namespace) mention s? */
static bool ruleset_has(const char *s)
{
	struct buf out = BUF_INIT;
	char *argv[] = { "nft", "list", "ruleset", NULL };
	test_run(argv, NULL, NULL, 0, &out, NULL, 10000);
	bool yes = out.data && strstr(out.data, s);
	buf_release(&out);
	return yes;
}

/* The ifindex of the first link whose name starts with prefix (0: none). */
static unsigned link_index(const char *prefix)
{
	struct if_nameindex *v = if_nameindex(), *p;
	unsigned idx = 0;
	for (p = v; p && p->if_index && !idx; p++)
		if (strncmp(p->if_name, prefix, strlen(prefix)) == 0)
			idx = p->if_index;
	if_freenameindex(v);
	return idx;
}

/* Wait (up to ms) until NAME's thermal state is want. */
static void wait_thermal(const char *key, const char *name, const char *want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	char *t = NULL;
	for (;;) {
		free(t);
		t = field(key, name, "thermal");
		if ((t && strcmp(t, want) == 0) || now_ms() > end)
			break;
		usleep(250 * 1000);
	}
	if (!t || strcmp(t, want) != 0)
		fail_msg("'%s' is %s, not %s after %d ms", name, t ? t : "?", want, ms);
	free(t);
}

/* ---- fixture ------------------------------------------------------------------------- */

/* The daemon's `nft` (found on PATH): the real one, but a second late
 * for the forwarder's learning batches (input of `add element inet
 * bhatti eg_` lines only), so that a DNS answer released before its
 * addresses are in the set fails test_egress's first SYN for sure. */
static int slow_nft(void)
{
	struct buf real = BUF_INIT;
	char *argv[] = { "sh", "-c", "command -v nft", NULL };
	if (test_run(argv, NULL, NULL, 0, &real, NULL, 10000) != 0 || !real.len)
		return -1;
	real.data[strcspn(real.data, "\n")] = '\0';
	slow_dir = test_tmpdir("slow-nft");
	char *path = test_strf("%s/nft", slow_dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "#!/bin/sh\nif [ \"$1 $2\" = \"-f -\" ]; then\n\tt=$(cat)\n"
		"\tif [ -z \"$(printf '%%s\\n' \"$t\" | grep -v '^add element inet bhatti eg_')\" ]; "
		"then sleep 1; fi\n\tprintf '%%s\\n' \"$t\" | exec %s \"$@\"\nfi\nexec %s \"$@\"\n",
		real.data, real.data);
	fclose(f);
	chmod(path, 0755);
	char *p = test_strf("%s:%s", slow_dir, getenv("PATH") ? getenv("PATH") : "/usr/sbin:/usr/bin");
	setenv("PATH", p, 1);
	free(p);
	free(path);
	buf_release(&real);
	return 0;
}

static int setup(void **state UNUSED)
{
	if (geteuid() != 0 || netns_sh("command -v nft >/dev/null && command -v ip >/dev/null") != 0)
		return 0;
	if (netns_up() < 0 || slow_nft() < 0) {
		netns_down();
		return -1;
	}
	/* every interface: the firewall, not the listen address, must keep
	 * guests from the API */
	/* idle sandboxes go warm (paused) after 4 s: test_pause. A paused
	 * sandbox answers no packet, so the servers here are keep_hot
	 * (traffic between sandboxes is not a thermal activity signal,
	 * docs/thermal.md); an exec wakes a client */
	PPORT = 20000 + (int)getpid() % 20000;
	char *cfg = test_strf("pool_size: 1\nlimits:\n  creates_per_min: 0\n"
			      "  execs_per_min: 0\nnetwork:\n  dns_upstreams: [198.51.100.53]\n"
			      "thermal:\n  warm_after: 4s\n  cold_after: never\n  check_every: 1s\n"
			      "public_proxy_listen: \"127.0.0.1:%d\"\nproxy:\n  transport: ip\n",
			      PPORT);
	int r = daemon_start_on(&D, "", cfg);
	free(cfg);
	if (r < 0) {
		netns_down();
		return -1;
	}
	alice = daemon_user(&D, "alice", NULL);
	bob = daemon_user(&D, "bob", NULL);
	ready = alice && bob;
	return ready ? 0 : -1;
}

static int teardown(void **state UNUSED)
{
	if (!ready)
		return 0;
	daemon_stop(&D, true);
	free(alice);
	free(bob);
	test_rmtree(slow_dir);
	free(slow_dir);
	/* after the suite, in the namespace the daemon had: no TAP (they go
	 * with their QEMU, killed by daemon_stop), bridge, pool address or
	 * table */
	bool left = true;
	for (int i = 0; i < 50 && left; i++) {
		struct buf out = BUF_INIT;
		char *argv[] = { "ip", "-4", "-o", "addr", NULL };
		test_run(argv, NULL, NULL, 0, &out, NULL, 10000);
		left = links("bhbr") || links("bt") || has_table() ||
		       (out.data && strstr(out.data, " 10.2"));
		buf_release(&out);
		if (left)
			usleep(100 * 1000);
	}
	netns_down();
	if (left) {
		fprintf(stderr, "test-net: a link, address or table was left in the daemon's "
			"namespace\n");
		return -1;
	}
	/* nothing of ours in the machine's namespace, ever */
	if (links("bhbr") || links("bt") || has_table()) {
		fprintf(stderr, "test-net: a link or table was left in the machine's namespace\n");
		return -1;
	}
	if (netns_left())
		return -1;
	return 0;
}

#define NEED_NET() do { if (!ready) skip(); } while (0)

/* ---- tests --------------------------------------------------------------------------- */

static void test_fetch(void **state UNUSED)
{
	NEED_NET();
	create(alice, "web", NULL);
	assert_true(fetches(alice, "web", "http://example.test/"));
	char *ip = field(alice, "web", "ip"), *mac = field(alice, "web", "mac");
	assert_non_null(ip);
	assert_non_null(mac);
	assert_int_equal(strncmp(mac, "02:", 3), 0);
	/* the guest has that address and MAC, and the pool's resolver address
	 * (10.201.0.53: its gateway, through the table) */
	struct buf out = BUF_INIT;
	assert_int_equal(gsh(alice, "web", &out, "ip addr show eth0; cat /etc/resolv.conf"), 0);
	assert_non_null(strstr(out.data, ip));
	assert_non_null(strstr(out.data, mac));
	assert_non_null(strstr(out.data, "nameserver 10."));
	assert_non_null(strstr(out.data, ".0.53\n"));
	/* list shows the address */
	const char *args[] = { "list", NULL };
	assert_int_equal(bhatti_argv(&D, alice, NULL, &out, NULL, args), 0);
	assert_non_null(strstr(out.data, ip));
	buf_release(&out);
	free(ip);
	free(mac);
}

static void test_isolation(void **state UNUSED)
{
	NEED_NET();
	create(alice, "peer", "--keep-hot");
	create(bob, "other", "--keep-hot");
	char *peer_ip = field(alice, "peer", "ip"), *web_ip = field(alice, "web", "ip");
	char *other_ip = field(bob, "other", "ip");
	assert_non_null(peer_ip);
	assert_non_null(other_ip);
	/* another user: another /24 */
	assert_int_not_equal(strncmp(peer_ip, other_ip, strrchr(peer_ip, '.') - peer_ip), 0);
	/* a server in each */
	assert_int_equal(gsh(alice, "peer", NULL, "echo hello-peer > /tmp/index.html && "
			     "httpd -p 8000 -h /tmp"), 0);
	assert_int_equal(gsh(bob, "other", NULL, "echo hello-other > /tmp/index.html && "
			     "httpd -p 8000 -h /tmp"), 0);
	char *url = test_strf("http://%s:8000/", peer_ip);
	/* one user's sandboxes reach each other by address and by name */
	assert_true(fetches(alice, "web", url));
	assert_true(fetches(alice, "web", "http://peer:8000/"));
	assert_true(fetches(alice, "web", "http://peer.internal:8000/"));
	/* another user's cannot, either way; nor resolve the name */
	assert_false(fetches(bob, "other", url));
	assert_false(fetches(bob, "other", "http://peer.internal:8000/"));
	free(url);
	url = test_strf("http://%s:8000/", other_ip);
	assert_false(fetches(alice, "web", url));
	free(url);
	/* the host: not the API port on the gateway or the uplink address,
	 * nor the metadata address; the API is there (from the host) */
	char gw[32];
	snprintf(gw, sizeof(gw), "%.*s.1", (int)(strrchr(web_ip, '.') - web_ip), web_ip);
	char *health = test_strf("curl -fsS -m 3 -o /dev/null http://%s:%d/health", gw, D.port);
	assert_int_equal(netns_sh("%s", health), 0);
	free(health);
	assert_true(connects(alice, "web", peer_ip, 8000)); /* (connects can say yes) */
	assert_false(connects(alice, "web", gw, D.port));
	assert_false(connects(alice, "web", "203.0.113.2", D.port));
	assert_false(connects(alice, "web", "169.254.169.254", 80));
	/* but DNS on the gateway answers */
	assert_int_equal(gsh(alice, "web", NULL, "nslookup example.test %s | grep -q 198.51.100.1",
			     gw), 0);
	destroy(bob, "other");
	free(peer_ip);
	free(web_ip);
	free(other_ip);
}

static void test_egress(void **state UNUSED)
{
	NEED_NET();
	create(alice, "shut", "--egress deny");
	assert_false(fetches(alice, "shut", "http://example.test/"));
	assert_false(fetches(alice, "shut", "http://198.51.100.1/"));
	/* nor by taking the address of a sibling whose egress is open */
	char *web_ip = field(alice, "web", "ip"), *shut_ip = field(alice, "shut", "ip");
	char gw[32];
	snprintf(gw, sizeof(gw), "%.*s.1", (int)(strrchr(web_ip, '.') - web_ip), web_ip);
	assert_int_not_equal(gsh_root(alice, "shut", NULL, "ip addr flush dev eth0 && "
				      "ip addr add %s/24 dev eth0 && ip route add default via %s && "
				      "timeout 5 wget -O- http://198.51.100.1/ 2>&1", web_ip, gw), 0);
	assert_int_equal(gsh_root(alice, "shut", NULL, "ip addr flush dev eth0 && "
				  "ip addr add %s/24 dev eth0 && ip route add default via %s",
				  shut_ip, gw), 0);
	assert_true(fetches(alice, "web", "http://example.test/"));
	free(web_ip);
	free(shut_ip);
	create(alice, "some", "--allow-host example.test --allow-cidr 203.0.113.1/32");
	struct buf out = BUF_INIT;
	const char *args[] = { "inspect", "some", NULL };
	assert_int_equal(bhatti_argv(&D, alice, NULL, &out, NULL, args), 0);
	assert_non_null(strstr(out.data, "egress     deny (hosts: example.test; cidrs: 203.0.113.1/32)"));
	/* the answer comes once the address is in the set (which takes a
	 * second here: slow_nft): the very first SYN after it gets through
	 * (nc -w 1 gives up before a resend) */
	assert_int_equal(gsh(alice, "some", NULL, "nslookup example.test >/dev/null && "
			     "nc -w 1 198.51.100.1 80 -e true </dev/null"), 0);
	/* exactly the allowed name, its address only */
	assert_true(fetches(alice, "some", "http://example.test/"));
	assert_false(fetches(alice, "some", "http://other.test/"));
	assert_false(fetches(alice, "some", "http://198.51.100.2/"));
	/* a CIDR: the world's end of the uplink (its web server answers there too) */
	assert_true(connects(alice, "some", "203.0.113.1", 80));
	assert_false(connects(alice, "some", "198.51.100.2", 80));
	/* PATCH opens it */
	char *id = field(alice, "shut", "id"), *path = test_strf("/sandboxes/%s", id);
	assert_int_equal(http_call(&D, "PATCH", path, alice, "{\"egress\":{\"policy\":\"allow\"}}",
				   &out), 200);
	assert_true(fetches(alice, "shut", "http://other.test/"));
	/* a destroy takes the sandbox's TAP and its rules at once */
	char *some_id = field(alice, "some", "id"), *tap = test_strf("bt%s", some_id);
	assert_true(ruleset_has(some_id));
	assert_int_equal(links(tap), 1);
	destroy(alice, "shut");
	destroy(alice, "some");
	assert_false(ruleset_has(some_id));
	assert_false(ruleset_has(id));
	assert_int_equal(links(tap), 0);
	free(some_id);
	free(tap);
	free(id);
	free(path);
	buf_release(&out);
}

static void test_clones(void **state UNUSED)
{
	NEED_NET();
	create(alice, "c1", NULL);
	create(alice, "c2", "--keep-hot");
	char *ip1 = field(alice, "c1", "ip"), *ip2 = field(alice, "c2", "ip");
	char *mac1 = field(alice, "c1", "mac"), *mac2 = field(alice, "c2", "mac");
	assert_string_not_equal(ip1, ip2);
	assert_string_not_equal(mac1, mac2);
	assert_int_equal(gsh(alice, "c2", NULL, "echo hello-c2 > /tmp/index.html && "
			     "httpd -p 8000 -h /tmp"), 0);
	char *url = test_strf("http://%s:8000/", ip2);
	assert_true(fetches(alice, "c1", url));
	free(url);
	destroy(alice, "c1");
	destroy(alice, "c2");
	free(ip1);
	free(ip2);
	free(mac1);
	free(mac2);
}

/* A pooled sandbox (pool_size: 1: a clone waiting, its TAP btx<random>
 * down and on no bridge) gets its owner's network when a create takes it:
 * that TAP, renamed bt<id>, on the owner's bridge. */
static void test_pool(void **state UNUSED)
{
	NEED_NET();
	bool taken = false;
	for (int i = 0; i < 30 && !taken; i++) {
		unsigned pooled = link_index("btx");
		if (!pooled) {  /* the pool refills */
			sleep(2);
			continue;
		}
		create(alice, "pl", NULL);
		char *id = field(alice, "pl", "id"), *tap = test_strf("bt%s", id);
		taken = if_nametoindex(tap) == pooled;
		if (!taken) {   /* the clone was not ready yet: a template clone */
			destroy(alice, "pl");
			sleep(2);
		}
		free(id);
		free(tap);
	}
	assert_true(taken);
	char *web_ip = field(alice, "web", "ip"), *ip = field(alice, "pl", "ip");
	char *id = field(alice, "pl", "id");
	assert_int_equal(strncmp(web_ip, ip, strrchr(web_ip, '.') - web_ip + 1), 0);
	assert_int_equal(netns_sh("ip -o link show bt%s | grep ',UP' | grep -q 'master bhbr'", id), 0);
	assert_true(fetches(alice, "pl", "http://example.test/"));
	assert_int_equal(gsh(alice, "pl", NULL, "echo hello-pl > /tmp/index.html && "
			     "httpd -p 8000 -h /tmp"), 0);
	char *url = test_strf("http://%s:8000/", ip);
	assert_true(fetches(alice, "peer", url));
	destroy(alice, "pl");
	free(url);
	free(web_ip);
	free(ip);
	free(id);
}

/* A warm sandbox (paused when idle: docs/thermal.md) answers nobody; woken,
 * it has its network as before: out to the world, and in from a sibling
 * (the same address and MAC, its TAP on its bridge). */
static void test_pause(void **state UNUSED)
{
	NEED_NET();
	create(alice, "nap", NULL);
	char *ip = field(alice, "nap", "ip"), *mac = field(alice, "nap", "mac");
	char *id = field(alice, "nap", "id"), *url = test_strf("http://%s:8000/", ip);
	assert_int_equal(gsh(alice, "nap", NULL, "echo hello-nap > /tmp/index.html && "
			     "httpd -p 8000 -h /tmp"), 0);
	assert_true(fetches(alice, "peer", url));
	wait_thermal(alice, "nap", "warm", 40000);
	assert_false(fetches(alice, "peer", url));   /* paused indeed */
	/* woken (keep_hot wakes it, and keeps it hot while the sibling asks) */
	char *path = test_strf("/sandboxes/%s", id);
	assert_int_equal(http_call(&D, "PATCH", path, alice, "{\"keep_hot\":true}", NULL), 200);
	wait_thermal(alice, "nap", "hot", 30000);
	assert_true(fetches(alice, "peer", url));
	assert_true(fetches(alice, "nap", "http://example.test/"));
	char *ip2 = field(alice, "nap", "ip"), *mac2 = field(alice, "nap", "mac");
	assert_string_equal(ip, ip2);
	assert_string_equal(mac, mac2);
	destroy(alice, "nap");
	free(ip);
	free(ip2);
	free(mac);
	free(mac2);
	free(id);
	free(url);
	free(path);
}

static void test_lifecycle(void **state UNUSED)
{
	NEED_NET();
	char *ip = field(alice, "web", "ip");
	const char *stop[] = { "stop", "web", NULL }, *start[] = { "start", "web", NULL };
	assert_int_equal(bhatti_argv(&D, alice, NULL, NULL, NULL, stop), 0);
	assert_int_equal(bhatti_argv(&D, alice, NULL, NULL, NULL, start), 0);
	char *ip2 = field(alice, "web", "ip");
	assert_string_equal(ip, ip2);
	assert_true(fetches(alice, "web", "http://example.test/"));
	assert_true(fetches(alice, "web", "http://peer:8000/"));
	/* a crash of the daemon: the same address, the network as it was */
	daemon_kill9(&D);
	assert_int_equal(daemon_restart(&D), 0);
	free(ip2);
	ip2 = field(alice, "web", "ip");
	assert_string_equal(ip, ip2);
	assert_true(fetches(alice, "web", "http://example.test/"));
	assert_true(fetches(alice, "web", "http://peer:8000/"));
	free(ip);
	free(ip2);
}

/* GET url from here (the "host" namespace): the status, the body in out. */
static int http_get(const char *url, struct buf *out)
{
	char *argv[] = { "curl", "-sS", "-m", "60", "-o", "-", "-w", "\n%{http_code}", (char *)url,
			 NULL };
	buf_reset(out);
	if (test_run(argv, NULL, NULL, 0, out, NULL, 70000) != 0 || !out->data)
		return -1;
	char *nl = strrchr(out->data, '\n');
	if (!nl)
		return -1;
	int st = (int)strtol(nl + 1, NULL, 10);
	*nl = '\0';
	out->len = (size_t)(nl - out->data);
	return st;
}

/* Restart the daemon with proxy.transport: t (config.yaml's last line). */
static void restart_transport(const char *t)
{
	assert_int_equal(daemon_stop(&D, false), 0);
	char *old = read_text(D.config);
	assert_non_null(old);
	char *at = strstr(old, "\nproxy:\n  transport: ");
	assert_non_null(at);
	at[1] = '\0';
	FILE *f = fopen(D.config, "w");
	assert_non_null(f);
	fprintf(f, "%sproxy:\n  transport: %s\n", old, t);
	fclose(f);
	free(old);
	assert_int_equal(daemon_restart(&D), 0);
}

/* The public proxy through the guest's IP (proxy.transport ip): the
 * guest's server sees the daemon come from the bridge's gateway; a port
 * nothing listens on is a 502; a stopped sandbox is woken by a request
 * (then reached by its IP); nothing outside the host reaches the guest's
 * port (the world, routed to the sandbox's subnet through the host, is
 * dropped); with transport agent the same URL goes through the agent
 * (the server sees 127.0.0.1). */
static void test_proxy_ip(void **state UNUSED)
{
	NEED_NET();
	create(alice, "pub", NULL);
	char *px = test_strf("%s/guest/pxserve", test_build_dir());
	const char *up[] = { "file", "write", "pub", "/tmp/pxserve", "--mode", "0755", "--from", px,
			     NULL };
	assert_int_equal(bhatti_argv(&D, alice, NULL, NULL, NULL, up), 0);
	const char *run[] = { "exec", "pub", "--", "/tmp/pxserve", "3000", NULL };
	assert_int_equal(bhatti_argv(&D, alice, NULL, NULL, NULL, run), 0);
	const char *pub[] = { "publish", "pub", "-p", "3000", "-a", "pub-app", NULL };
	const char *pub2[] = { "publish", "pub", "-p", "3999", "-a", "pub-none", NULL };
	assert_int_equal(bhatti_argv(&D, alice, NULL, NULL, NULL, pub), 0);
	assert_int_equal(bhatti_argv(&D, alice, NULL, NULL, NULL, pub2), 0);
	char *ip = field(alice, "pub", "ip");
	assert_non_null(ip);
	char gw[32];
	snprintf(gw, sizeof(gw), "%.*s.1", (int)(strrchr(ip, '.') - ip), ip);
	char *peer = test_strf("http://127.0.0.1:%d/pub-app/peer", PPORT);
	char *hello = test_strf("http://127.0.0.1:%d/pub-app/hello", PPORT);
	char *none = test_strf("http://127.0.0.1:%d/pub-none/", PPORT);
	struct buf out = BUF_INIT;
	assert_int_equal(http_get(peer, &out), 200);
	assert_string_equal(out.data, gw);
	assert_int_equal(http_get(hello, &out), 200);
	assert_string_equal(out.data, "hello from the sandbox\n");
	assert_int_equal(http_get(none, &out), 502);
	assert_non_null(strstr(out.data, "nothing is listening on port 3999"));

	/* a stopped sandbox: woken by the request, then reached by its IP */
	const char *stop[] = { "stop", "pub", NULL };
	assert_int_equal(bhatti_argv(&D, alice, NULL, NULL, NULL, stop), 0);
	assert_int_equal(http_get(peer, &out), 200);
	assert_string_equal(out.data, gw);
	char *st = field(alice, "pub", "state");
	assert_string_equal(st, "hot");
	free(st);

	/* the world, given a route to the sandboxes through the host, is not
	 * let through to the guest's port: only the host's own connections are */
	char *w = test_strf("ip netns exec %s sh -c 'ip route add 10.0.0.0/8 via 203.0.113.2 && "
			    "timeout 5 nc -w 3 %s 3000 -e true </dev/null >/dev/null 2>&1'",
			    netns_world(), ip);
	assert_int_not_equal(netns_sh("%s", w), 0);
	free(w);

	/* the agent's forward, for the same URL */
	restart_transport("agent");
	assert_int_equal(http_get(peer, &out), 200);
	assert_string_equal(out.data, "127.0.0.1");
	restart_transport("ip");
	destroy(alice, "pub");
	buf_release(&out);
	free(peer);
	free(hello);
	free(none);
	free(ip);
	free(px);
}

static void test_cleanup(void **state UNUSED)
{
	NEED_NET();
	/* sandboxes' TAPs: bt<id>; pool clones': btx<random> (down, on no bridge) */
	assert_int_equal(links("bt") - links("btx"), 2); /* web, peer */
	destroy(alice, "web");
	destroy(alice, "peer");
	assert_int_equal(links("bhbr"), 0);
	assert_int_equal(links("bt") - links("btx"), 0);
	assert_false(has_table());
	struct buf out = BUF_INIT;
	char *argv[] = { "ip", "-4", "addr", NULL };
	test_run(argv, NULL, NULL, 0, &out, NULL, 10000);
	assert_null(strstr(out.data, "10.2"));
	buf_release(&out);
	/* the daemon's stop takes the pool clone and its TAP */
	assert_int_equal(daemon_stop(&D, false), 0);
	assert_int_equal(links("bt"), 0);
	assert_int_equal(daemon_restart(&D), 0);
}

/* A subnet pool that overlaps a route of the host's is refused at start,
 * naming the route (here the uplink's 203.0.113.0/24). */
static void test_pool_overlap(void **state UNUSED)
{
	NEED_NET();
	char *dir = test_tmpdir("net-overlap"), *cfg = test_strf("%s/config.yaml", dir);
	FILE *f = fopen(cfg, "w");
	assert_non_null(f);
	fprintf(f, "listen: 127.0.0.1:1\ndata_dir: %s/data\nvm_uids: 1000300000-1000300099\n"
		"network:\n  subnet_pool: 203.0.0.0/16\n", dir);
	fclose(f);
	char *bin = test_strf("%s/bhatti", test_build_dir());
	char *argv[] = { bin, "serve", "--config", cfg, NULL };
	struct buf err = BUF_INIT;
	assert_int_equal(test_run(argv, NULL, NULL, 0, NULL, &err, 30000), 1);
	assert_non_null(strstr(err.data, "bhatti serve: network: network.subnet_pool "
				"'203.0.0.0/16' overlaps the host's route 203.0.113.0/24 on "));
	buf_release(&err);
	test_rmtree(dir);
	free(dir);
	free(cfg);
	free(bin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fetch),
		cmocka_unit_test(test_isolation),
		cmocka_unit_test(test_egress),
		cmocka_unit_test(test_clones),
		cmocka_unit_test(test_pool),
		cmocka_unit_test(test_pause),
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_proxy_ip),
		cmocka_unit_test(test_cleanup),
		cmocka_unit_test(test_pool_overlap),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
