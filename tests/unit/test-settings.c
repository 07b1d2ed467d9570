/* test-settings.c — unit tests for daemon/settings.c: the defaults, a full
 * and a partial file (tests/data/settings/, run from the project root),
 * which file is read ($BHATTI_CONFIG, the default path), errors naming
 * file, line and key, the checks on string values, pool_size (0 = none)
 * and listen addresses.
 * Sits between cmocka and settings.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "settings.h"
#include "valid.h"

#define DATA "tests/data/settings/"

static void assert_defaults(const struct settings *s)
{
	assert_string_equal(s->listen, "127.0.0.1:8080");
	assert_string_equal(s->data_dir, "/var/lib/bhatti");
	assert_string_equal(s->images_dir, "/var/lib/bhatti/images");
	assert_string_equal(s->engine, "qemu");
	assert_string_equal(s->accel, "auto");
	assert_null(s->vm_uids);
	assert_string_equal(s->default_image, "tiny");
	assert_int_equal(s->pool_size, 1);
	assert_string_equal(s->log_level, "info");
	assert_int_equal(s->defaults.cpus, 1);
	assert_int_equal(s->defaults.memory_mb, 512);
	assert_int_equal(s->limits.max_sandboxes, 5);   /* the seed system's 5, 4, 4096 */
	assert_int_equal(s->limits.max_cpus, 4);
	assert_int_equal(s->limits.max_memory_mb, 4096);
	assert_int_equal(s->limits.creates_per_min, 10);
	assert_int_equal(s->limits.execs_per_min, 120);
	assert_int_equal(s->limits.max_secrets, 100);
	assert_int_equal(s->limits.max_snapshot_disk, 20ull << 30);
	assert_int_equal(s->limits.max_snapshots, 5);
	assert_int_equal(s->limits.memory_budget, 0);
	assert_int_equal(s->exec.timeout_ms, 300 * 1000);           /* the seed's 300 s */
	assert_int_equal(s->exec.max_timeout_ms, 24 * 3600 * 1000); /* and 24 h at most */
	assert_int_equal(s->limits.max_body, 100ull << 20);
	assert_int_equal(s->thermal.warm_after, 30000);
	assert_int_equal(s->thermal.cold_after, 30 * 60000);
	assert_int_equal(s->thermal.check_every, 5000);
	assert_int_equal(s->thermal.cpu_busy_percent, 5);
	assert_true(s->thermal.outbound_tcp);
	assert_int_equal(s->thermal.max_concurrent_wakes, 10);
	assert_null(s->public_proxy_listen);
	assert_null(s->domain);
	assert_int_equal(s->proxy.requests_per_ip_per_min, 1500);
	assert_int_equal(s->proxy.requests_per_alias_per_min, 5000);
	assert_int_equal(s->proxy.max_conns, 4096);
	assert_int_equal(s->proxy.max_conns_per_ip, 256);
	assert_null(s->proxy.transport);   /* auto */
	assert_null(s->tls.cert);
	assert_null(s->tls.key);
	assert_null(s->tls.acme.email);
	assert_string_equal(s->tls.acme.directory, "https://acme-v02.api.letsencrypt.org/directory");
	assert_null(s->tls.acme.ca);
	assert_null(s->tls.acme.names);
	assert_int_equal(s->tls.acme.renew_before, 30ull * 86400 * 1000);
	assert_false(settings_https(s));
}

static void test_defaults(void **state)
{
	(void)state;
	static const char *const texts[] = { "", "# nothing\n", "limits:\n", "{}\n" };
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct settings s;
		struct err e = ERR_INIT;
		assert_int_equal(settings_load_string("t.yaml", texts[i], &s, &e), 0);
		assert_defaults(&s);
		assert_string_equal(s.path, "t.yaml");
		settings_release(&s);
		assert_null(s.listen);
		assert_null(s.path);
		settings_release(&s);
	}
}

static void test_full_file(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	assert_int_equal(settings_load(DATA "full.yaml", &s, &e), 0);
	assert_string_equal(s.path, DATA "full.yaml");
	assert_string_equal(s.listen, "[::1]:9090");
	assert_string_equal(s.data_dir, "/srv/bhatti");
	assert_string_equal(s.images_dir, "/srv/images");
	assert_string_equal(s.engine, "qemu");
	assert_string_equal(s.accel, "tcg");
	assert_string_equal(s.vm_uids, "300000-300999");
	assert_string_equal(s.default_image, "minimal");
	assert_int_equal(s.pool_size, 0);
	assert_string_equal(s.log_level, "debug");
	assert_int_equal(s.defaults.cpus, 2);
	assert_int_equal(s.defaults.memory_mb, 1024);
	assert_int_equal(s.limits.max_sandboxes, 50);
	assert_int_equal(s.limits.max_cpus, 8);
	assert_int_equal(s.limits.max_memory_mb, 16384);
	assert_int_equal(s.limits.creates_per_min, 0);
	assert_int_equal(s.limits.execs_per_min, 600);
	assert_int_equal(s.limits.max_secrets, 7);
	assert_int_equal(s.limits.max_snapshot_disk, 3ull << 30);
	assert_int_equal(s.limits.memory_budget, 6ull << 30);
	assert_int_equal(s.limits.max_body, 1ull << 30);
	assert_int_equal(s.thermal.warm_after, 45000);
	assert_true(s.thermal.cold_after == CONFIG_NEVER);
	assert_int_equal(s.thermal.check_every, 250);
	assert_int_equal(s.thermal.cpu_busy_percent, 20);
	assert_false(s.thermal.outbound_tcp);
	assert_int_equal(s.thermal.max_concurrent_wakes, 3);
	assert_false(s.network.enabled);
	assert_string_equal(s.network.subnet_pool, "10.77.0.0/16");
	assert_string_equal(s.network.dns_upstreams[0], "192.0.2.53");
	assert_null(s.network.dns_upstreams[1]);
	assert_string_equal(s.network.egress, "deny");
	assert_false(s.network.same_user);
	assert_string_equal(s.public_proxy_listen, ":8081");
	assert_string_equal(s.domain, "sb.example.com");
	assert_int_equal(s.proxy.requests_per_ip_per_min, 100);
	assert_int_equal(s.proxy.requests_per_alias_per_min, 200);
	assert_int_equal(s.proxy.max_conns, 300);
	assert_int_equal(s.proxy.max_conns_per_ip, 40);
	assert_string_equal(s.proxy.transport, "agent");
	assert_string_equal(s.tls.cert, "/etc/bhatti/tls.crt");
	assert_string_equal(s.tls.key, "/etc/bhatti/tls.key");
	assert_string_equal(s.tls.http_listen, ":80");
	assert_string_equal(s.tls.acme.email, "ops@example.com");
	assert_string_equal(s.tls.acme.directory, "https://127.0.0.1:14000/dir");
	assert_string_equal(s.tls.acme.ca, "/etc/bhatti/pebble-ca.pem");
	assert_string_equal(s.tls.acme.names[0], "api.example.com");
	assert_null(s.tls.acme.names[1]);
	assert_int_equal(s.tls.acme.renew_before, 10ull * 86400 * 1000);
	assert_true(settings_https(&s));
	settings_release(&s);

	/* a domain is a lower-case DNS name of two labels or more */
	static const char *const bad_domains[] = { "localhost", "Example.com", "a..b", ".a.b",
						   "a.b.", "-a.b", "a-.b", "a_b.c", "" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_domains); i++) {
		char text[128];
		snprintf(text, sizeof(text), "domain: \"%s\"\n", bad_domains[i]);
		if (settings_load_string("t.yaml", text, &s, &e) != -EINVAL)
			fail_msg("domain '%s' accepted", bad_domains[i]);
	}
	assert_int_equal(settings_load_string("t.yaml", "domain: a-1.b2.example\n", &s, &e), 0);
	settings_release(&s);

	/* a duration that may not be never, and one that is not a duration */
	assert_int_equal(settings_load_string("t.yaml", "thermal:\n  check_every: never\n", &s, &e),
			 -EINVAL);
	assert_non_null(strstr(e.msg, "check_every"));
	assert_int_equal(settings_load_string("t.yaml", "thermal:\n  warm_after: soon\n", &s, &e),
			 -EINVAL);
	assert_non_null(strstr(e.msg, "or never"));
}

static void test_partial_file(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	assert_int_equal(settings_load(DATA "partial.yaml", &s, &e), 0);
	assert_string_equal(s.listen, ":8080");
	assert_string_equal(s.data_dir, "/data/b");
	assert_string_equal(s.images_dir, "/data/b/images");  /* follows data_dir */
	assert_int_equal(s.limits.max_cpus, 2);
	assert_int_equal(s.limits.max_sandboxes, 5);
	assert_string_equal(s.accel, "auto");
	settings_release(&s);
}

static void check_file_error(const char *path, int code, const char *msg)
{
	struct settings s;
	struct err e = ERR_INIT;
	memset(&s, 0x5a, sizeof(s));
	assert_int_equal(settings_load(path, &s, &e), code);
	assert_string_equal(e.msg, msg);
	/* ret is left alone on failure */
	for (size_t i = 0; i < sizeof(s); i++)
		assert_int_equal(((unsigned char *)&s)[i], 0x5a);
}

static void test_file_errors(void **state)
{
	(void)state;
	check_file_error(DATA "bad-key.yaml", -EINVAL,
			 DATA "bad-key.yaml:5: unknown key 'limits.max_cpu'");
	check_file_error(DATA "bad-accel.yaml", -EINVAL,
			 DATA "bad-accel.yaml:3: key 'accel' must be auto, kvm or tcg");
	/* a file named explicitly must exist */
	check_file_error(DATA "missing.yaml", -ENOENT,
			 "cannot open '" DATA "missing.yaml': No such file or directory");
}

/* Which file: the argument, else $BHATTI_CONFIG, else the default path,
 * which alone may be missing. */
static void test_which_file(void **state)
{
	(void)state;
	struct settings s;
	struct err e = ERR_INIT;

	setenv(SETTINGS_ENV, DATA "full.yaml", 1);
	assert_int_equal(settings_load(NULL, &s, &e), 0);
	assert_string_equal(s.path, DATA "full.yaml");
	assert_string_equal(s.accel, "tcg");
	settings_release(&s);
	assert_int_equal(settings_load(DATA "partial.yaml", &s, &e), 0);
	assert_string_equal(s.path, DATA "partial.yaml");
	settings_release(&s);

	setenv(SETTINGS_ENV, DATA "missing.yaml", 1);
	assert_int_equal(settings_load(NULL, &s, &e), -ENOENT);
	assert_string_equal(e.msg, "cannot open '" DATA "missing.yaml': No such file or "
			    "directory");

	/* unset or empty: the default path */
	for (int i = 0; i < 2; i++) {
		if (i == 0)
			unsetenv(SETTINGS_ENV);
		else
			setenv(SETTINGS_ENV, "", 1);
		if (access(SETTINGS_DEFAULT_PATH, F_OK) == 0) {
			print_message("skipped: " SETTINGS_DEFAULT_PATH " exists here\n");
			continue;
		}
		assert_int_equal(settings_load(NULL, &s, &e), 0);
		assert_null(s.path);
		assert_defaults(&s);
		settings_release(&s);
	}
	unsetenv(SETTINGS_ENV);
}

#define VM_UIDS_MSG "t.yaml:1: key 'vm_uids' must be a range FIRST-LAST of uids from 1000 " \
	"to 2147483646, e.g. 200000-299999"

static void test_bad_values(void **state)
{
	(void)state;
	static const struct { const char *text, *msg; } cases[] = {
		{ "listen: 8080", "t.yaml:1: key 'listen' must be host:port, :port or "
		  "[address]:port with a port from 1 to 65535" },
		{ "listen: '[::1]:0'", "t.yaml:1: key 'listen' must be host:port, :port or "
		  "[address]:port with a port from 1 to 65535" },
		{ "data_dir: var/lib/bhatti", "t.yaml:1: key 'data_dir' must be an absolute path" },
		{ "\nimages_dir: ''", "t.yaml:2: key 'images_dir' must be an absolute path" },
		{ "engine: firecracker", "t.yaml:1: key 'engine' must be qemu" },
		{ "accel: KVM", "t.yaml:1: key 'accel' must be auto, kvm or tcg" },
		{ "accel: ''", "t.yaml:1: key 'accel' must be auto, kvm or tcg" },
		{ "proxy:\n  transport: tcp", "t.yaml:2: key 'proxy.transport' must be auto, agent or ip" },
		{ "log_level: verbose",
		  "t.yaml:1: key 'log_level' must be debug, info, warn, error or off" },
		{ "default_image: ../etc", "t.yaml:1: key 'default_image' must be an image name "
		  "(" VALID_IMAGE_RULE ")" },
		/* the API's rule too (shared/valid.c): no capitals, dots or '_' */
		{ "default_image: Tiny.v2", "t.yaml:1: key 'default_image' must be an image name "
		  "(" VALID_IMAGE_RULE ")" },
		{ "default_image: my_img", "t.yaml:1: key 'default_image' must be an image name "
		  "(" VALID_IMAGE_RULE ")" },
		/* one uid for every VM is gone (issue 10 item 5): say what replaces it */
		{ "vm_user: bhatti-vm", "t.yaml:1: key 'vm_user' is no longer used: each VM now "
		  "runs as its own uid from 'vm_uids' (e.g. vm_uids: 200000-299999); install.sh "
		  "rewrites the config" },
		{ "vm_uids: 200000", VM_UIDS_MSG },
		{ "vm_uids: 299999-200000", VM_UIDS_MSG },
		{ "vm_uids: 0-99", VM_UIDS_MSG },
		{ "vm_uids: 200000-x", VM_UIDS_MSG },
		{ "vm_uids: 200000-2147483647", VM_UIDS_MSG },
		{ "pool_size: 9", "t.yaml:1: key 'pool_size' must be a whole number from -1 "
		  "to 8" },
		{ "defaults:\n  cpus: 0", "t.yaml:2: key 'defaults.cpus' must be a whole number "
		  "from 1 to 64" },
		{ "limits:\n  max_body: 10", "t.yaml:2: key 'limits.max_body' must be a size "
		  "from 1K to 16G" },
		{ "limits:\n  max_sandboxes: -1", "t.yaml:2: key 'limits.max_sandboxes' must be a "
		  "whole number from 0 to 100000" },
		{ "limits:\n  max_secrets: -1", "t.yaml:2: key 'limits.max_secrets' must be a "
		  "whole number from 0 to 100000" },
		{ "engine: qemu\nengine: qemu", "t.yaml:2: duplicate key 'engine'" },
		{ "network:\n  subnet_pool: 10.0.0.0/8", "t.yaml:2: key 'network.subnet_pool' must "
		  "be a /16 such as 10.201.0.0/16" },
		{ "network:\n  subnet_pool: 10.1.2.0/16", "t.yaml:2: key 'network.subnet_pool' must "
		  "be a /16 such as 10.201.0.0/16" },
		{ "network:\n  egress: open", "t.yaml:2: key 'network.egress' must be allow or deny" },
		{ "tls:\n  acme:\n    email: nobody", "t.yaml:3: key 'tls.acme.email' must be an "
		  "e-mail address" },
		{ "tls:\n  acme:\n    directory: http://ca.example/dir", "t.yaml:3: key "
		  "'tls.acme.directory' must be an https:// URL" },
		{ "tls:\n  acme:\n    ca: pebble.pem", "t.yaml:3: key 'tls.acme.ca' must be an "
		  "absolute path" },
		{ "tls:\n  acme:\n    renew_before: 1s", "t.yaml:3: key 'tls.acme.renew_before' "
		  "must be a duration from 10s to 365d" },
		{ "tls:\n  acme:\n    names: [api.example.com, Bad_Name]", "t.yaml: tls.acme.names: "
		  "'Bad_Name' must be a lower-case DNS name such as api.example.com" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct settings s;
		struct err e = ERR_INIT;
		assert_int_equal(settings_load_string("t.yaml", cases[i].text, &s, &e), -EINVAL);
		assert_string_equal(e.msg, cases[i].msg);
	}
}

/* pool_size: 0 is none, as for the engine; older configs said -1 */
static void test_pool_size(void **state)
{
	(void)state;
	static const struct { const char *text; int64_t want; } cases[] = {
		{ "pool_size: 0", 0 }, { "pool_size: -1", 0 }, { "pool_size: 3", 3 },
		{ "log_level: info", 1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct settings s;
		struct err e = ERR_INIT;
		assert_int_equal(settings_load_string("t.yaml", cases[i].text, &s, &e), 0);
		assert_int_equal(s.pool_size, cases[i].want);
		settings_release(&s);
	}
}

static void test_parse_uids(void **state UNUSED)
{
	uint32_t first = 0, count = 0;
	assert_int_equal(settings_parse_uids("200000-299999", &first, &count, NULL), 0);
	assert_int_equal(first, 200000);
	assert_int_equal(count, 100000);
	assert_int_equal(settings_parse_uids("5000-5000", &first, &count, NULL), 0);
	assert_int_equal(first, 5000);
	assert_int_equal(count, 1);
	assert_int_equal(settings_parse_uids("999-5000", &first, &count, NULL), -EINVAL);
	assert_int_equal(settings_parse_uids("-5000", &first, &count, NULL), -EINVAL);
	assert_int_equal(settings_parse_uids(NULL, &first, &count, NULL), -EINVAL);
}

static void test_parse_listen(void **state)
{
	(void)state;
	static const struct { const char *in, *host; int port; } good[] = {
		{ "127.0.0.1:8080", "127.0.0.1", 8080 },
		{ ":8080", NULL, 8080 },
		{ "[::1]:9000", "::1", 9000 },
		{ "[fe80::a:B:1]:65535", "fe80::a:B:1", 65535 },
		{ "localhost:1", "localhost", 1 },
		{ "my-host.example:443", "my-host.example", 443 },
		{ "0.0.0.0:80", "0.0.0.0", 80 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct err e = ERR_INIT;
		char *host = (char *)"unset";
		int port = 0;
		if (settings_parse_listen(good[i].in, &host, &port, &e) < 0)
			fail_msg("'%s': %s", good[i].in, e.msg);
		if (good[i].host)
			assert_string_equal(host, good[i].host);
		else
			assert_null(host);
		assert_int_equal(port, good[i].port);
		free(host);
	}

	static const char *const bad[] = {
		"", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:99999999999", ":http", "host:+80", "host: 80", "host:80 ",
		"::1:8080", "[::1]8080", "[::1]", "[]:80", "[1.2.3.4]:80", "[::1]:80x",
		"[::g]:80", "a b:80", "a_b:80", "[::1:80",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct err e = ERR_INIT;
		char *host = (char *)"unset";
		int port = -7;
		if (settings_parse_listen(bad[i], &host, &port, &e) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
		assert_string_equal(host, "unset");  /* ret_* only on success */
		assert_int_equal(port, -7);
		assert_true(e.msg[0] != '\0');
	}

	struct err e = ERR_INIT;
	char *host;
	int port;
	assert_int_equal(settings_parse_listen("::1:8080", &host, &port, &e), -EINVAL);
	assert_string_equal(e.msg, "listen address '::1:8080': put an IPv6 address in "
			    "brackets, as in [::1]:8080");
	assert_int_equal(settings_parse_listen("x:0", &host, &port, &e), -EINVAL);
	assert_string_equal(e.msg, "listen address 'x:0' must end in a port from 1 to 65535");
	assert_int_equal(settings_parse_listen("8080", &host, &port, &e), -EINVAL);
	assert_string_equal(e.msg, "listen address '8080' must be host:port or :port");
	assert_int_equal(settings_parse_listen(NULL, &host, &port, &e), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_partial_file),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_which_file),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_pool_size),
		cmocka_unit_test(test_parse_uids),
		cmocka_unit_test(test_parse_listen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
