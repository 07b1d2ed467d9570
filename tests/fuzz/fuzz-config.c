/* fuzz-config.c — libFuzzer target for the YAML configuration: the
 * daemon's settings (daemon/settings.c over shared/config.c) and the CLI's
 * ~/.bhatti/config.yaml (client/client.c), with the URL it names parsed by
 * client_new().
 *
 * The input is the file's text. The daemon reads it with
 * settings_load_string() (text up to a NUL, as a file read then handed
 * over as a string would be); the CLI's file gets every byte, NULs
 * included, in a private $HOME under /dev/shm, and is read by
 * client_settings_resolve() as `bhatti` does.
 *
 * Oracles beyond "no crash, no leak":
 *   - a settings load that succeeds gives values the daemon can use: a
 *     listen address settings_parse_listen() takes, absolute directories,
 *     the names and numbers within the key table's checks and ranges;
 *   - one that fails leaves a message naming the file;
 *   - an accepted config written back out as YAML (every key, strings
 *     double-quoted with escapes) loads to exactly the same settings.
 * Build and run: `make fuzz` (docs/testing.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "client.h"
#include "config.h"
#include "helpers.h"
#include "settings.h"

#define NAME "fuzz.yaml"

static char *cli_config;   /* $HOME/.bhatti/config.yaml */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *home;

static void remove_home(void)
{
	test_rmtree(home);
	free(home);
	free(cli_config);
}

int LLVMFuzzerInitialize(int *argc UNUSED, char ***argv UNUSED)
{
	setenv("TMPDIR", "/dev/shm", 1);
	home = test_tmpdir("fuzz-config");
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/.bhatti", home);
	if (mkdir(b.data, 0700) < 0)
		abort();
	buf_adds(&b, "/config.yaml");
	cli_config = buf_detach(&b, NULL);
	setenv("HOME", home, 1);
	unsetenv("BHATTI_URL");
	unsetenv("BHATTI_TOKEN");
	unsetenv("BHATTI_CONFIG");
	atexit(remove_home);
	return 0;
}

/* ---- writing settings back out as YAML ------------------------------------ */

/* One UTF-8 sequence at p (n bytes left): its code point and length, or
 * 0 when it is not one (libyaml hands out valid UTF-8 only). */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
	if (!len || len > n)
		return 0;
	*cp = p[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (p[i] & 0x3f);
	}
	return len;
}

/* s as a YAML double-quoted scalar: printable ASCII as it is, everything
 * else escaped (\xNN, \uNNNN, \UNNNNNNNN), so any value survives. */
/* s double-quoted with escapes, and a newline */
static void put_quoted(struct buf *out, const char *s)
{
	buf_addch(out, '"');
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	while (n) {
		uint32_t cp;
		size_t len = utf8_next(p, n, &cp);
		if (!len)
			abort();   /* a config string that is not UTF-8 */
		if (cp == '"' || cp == '\\')
			buf_addf(out, "\\%c", (char)cp);
		else if (cp < 0x20 || cp == 0x7f)
			buf_addf(out, "\\x%02x", cp);
		else if (cp < 0x7f)
			buf_addch(out, (char)cp);
		else if (cp <= 0xffff)
			buf_addf(out, "\\u%04x", cp);
		else
			buf_addf(out, "\\U%08x", cp);
		p += len;
		n -= len;
	}
	buf_adds(out, "\"\n");
}

static void put_str(struct buf *out, const char *key, const char *s, int indent)
{
	buf_addf(out, "%*s%s: ", indent, "", key);
	put_quoted(out, s);
}

static void emit(const struct settings *s, struct buf *out)
{
	put_str(out, "listen", s->listen, 0);
	put_str(out, "data_dir", s->data_dir, 0);
	put_str(out, "images_dir", s->images_dir, 0);
	put_str(out, "engine", s->engine, 0);
	put_str(out, "accel", s->accel, 0);
	if (s->vm_uids)
		put_str(out, "vm_uids", s->vm_uids, 0);
	put_str(out, "default_image", s->default_image, 0);
	buf_addf(out, "pool_size: %lld\n", (long long)s->pool_size);
	put_str(out, "log_level", s->log_level, 0);
	buf_addf(out, "defaults:\n  cpus: %lld\n  memory_mb: %lld\n", (long long)s->defaults.cpus,
		 (long long)s->defaults.memory_mb);
	buf_addf(out,
		 "limits:\n  max_sandboxes: %lld\n  max_cpus: %lld\n  max_memory_mb: %lld\n"
		 "  creates_per_min: %lld\n  execs_per_min: %lld\n  reads_per_min: %lld\n"
		 "  max_execs_per_user: %lld\n  max_execs: %lld\n  max_conns_per_ip: %lld\n"
		 "  max_secrets: %lld\n  max_body: %llu\n  max_snapshot_disk: %llu\n"
		 "  memory_budget: %llu\n  max_snapshots: %lld\n",
		 (long long)s->limits.max_sandboxes, (long long)s->limits.max_cpus,
		 (long long)s->limits.max_memory_mb, (long long)s->limits.creates_per_min,
		 (long long)s->limits.execs_per_min, (long long)s->limits.reads_per_min,
		 (long long)s->limits.max_execs_per_user, (long long)s->limits.max_execs,
		 (long long)s->limits.max_conns_per_ip, (long long)s->limits.max_secrets,
		 (unsigned long long)s->limits.max_body,
		 (unsigned long long)s->limits.max_snapshot_disk,
		 (unsigned long long)s->limits.memory_budget, (long long)s->limits.max_snapshots);
	char wa[32], ca[32];
	config_fmt_duration(wa, sizeof(wa), s->thermal.warm_after);
	config_fmt_duration(ca, sizeof(ca), s->thermal.cold_after);
	buf_addf(out,
		 "thermal:\n  warm_after: %s\n  cold_after: %s\n  check_every: %llums\n"
		 "  cpu_busy_percent: %lld\n  outbound_tcp: %s\n  max_concurrent_wakes: %lld\n",
		 wa, ca, (unsigned long long)s->thermal.check_every,
		 (long long)s->thermal.cpu_busy_percent, s->thermal.outbound_tcp ? "true" : "false",
		 (long long)s->thermal.max_concurrent_wakes);
	buf_addf(out, "network:\n  enabled: %s\n  same_user: %s\n", s->network.enabled ? "true" : "false",
		 s->network.same_user ? "true" : "false");
	if (s->network.subnet_pool)
		put_str(out, "subnet_pool", s->network.subnet_pool, 2);
	put_str(out, "egress", s->network.egress, 2);
	if (s->network.dns_upstreams && s->network.dns_upstreams[0]) {
		buf_adds(out, "  dns_upstreams:\n");
		for (char **u = s->network.dns_upstreams; *u; u++) {
			buf_adds(out, "    - ");
			put_quoted(out, *u);
		}
	}
	if (s->public_proxy_listen)
		put_str(out, "public_proxy_listen", s->public_proxy_listen, 0);
	if (s->domain)
		put_str(out, "domain", s->domain, 0);
	buf_addf(out,
		 "proxy:\n  requests_per_ip_per_min: %lld\n  requests_per_alias_per_min: %lld\n"
		 "  max_conns: %lld\n  max_conns_per_ip: %lld\n",
		 (long long)s->proxy.requests_per_ip_per_min,
		 (long long)s->proxy.requests_per_alias_per_min, (long long)s->proxy.max_conns,
		 (long long)s->proxy.max_conns_per_ip);
	if (s->proxy.transport)
		put_str(out, "transport", s->proxy.transport, 2);
	buf_adds(out, "tls:\n");
	if (s->tls.cert)
		put_str(out, "cert", s->tls.cert, 2);
	if (s->tls.key)
		put_str(out, "key", s->tls.key, 2);
	if (s->tls.http_listen)
		put_str(out, "http_listen", s->tls.http_listen, 2);
	buf_addf(out, "  acme:\n    renew_before: %llums\n",
		 (unsigned long long)s->tls.acme.renew_before);
	put_str(out, "directory", s->tls.acme.directory, 4);
	if (s->tls.acme.email)
		put_str(out, "email", s->tls.acme.email, 4);
	if (s->tls.acme.ca)
		put_str(out, "ca", s->tls.acme.ca, 4);
	if (s->tls.acme.names && s->tls.acme.names[0]) {
		buf_adds(out, "    names:\n");
		for (char **n = s->tls.acme.names; *n; n++) {
			buf_adds(out, "      - ");
			put_quoted(out, *n);
		}
	}
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_strv(char **a, char **b)
{
	size_t i = 0;
	for (; a && b && a[i] && b[i]; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return (!a || !a[i]) && (!b || !b[i]);
}

static bool same(const struct settings *a, const struct settings *b)
{
	return same_str(a->listen, b->listen) && same_str(a->data_dir, b->data_dir) &&
	       same_str(a->images_dir, b->images_dir) && same_str(a->engine, b->engine) &&
	       same_str(a->accel, b->accel) && same_str(a->vm_uids, b->vm_uids) &&
	       same_str(a->default_image, b->default_image) && a->pool_size == b->pool_size &&
	       same_str(a->log_level, b->log_level) &&
	       memcmp(&a->defaults, &b->defaults, sizeof(a->defaults)) == 0 &&
	       memcmp(&a->limits, &b->limits, sizeof(a->limits)) == 0 &&
	       a->thermal.warm_after == b->thermal.warm_after &&
	       a->thermal.cold_after == b->thermal.cold_after &&
	       a->thermal.check_every == b->thermal.check_every &&
	       a->thermal.cpu_busy_percent == b->thermal.cpu_busy_percent &&
	       a->thermal.outbound_tcp == b->thermal.outbound_tcp &&
	       a->thermal.max_concurrent_wakes == b->thermal.max_concurrent_wakes &&
	       a->network.enabled == b->network.enabled &&
	       a->network.same_user == b->network.same_user &&
	       same_str(a->network.subnet_pool, b->network.subnet_pool) &&
	       same_str(a->network.egress, b->network.egress) &&
	       same_strv(a->network.dns_upstreams, b->network.dns_upstreams) &&
	       same_str(a->public_proxy_listen, b->public_proxy_listen) &&
	       same_str(a->domain, b->domain) &&
	       a->proxy.requests_per_ip_per_min == b->proxy.requests_per_ip_per_min &&
	       a->proxy.requests_per_alias_per_min == b->proxy.requests_per_alias_per_min &&
	       a->proxy.max_conns == b->proxy.max_conns &&
	       a->proxy.max_conns_per_ip == b->proxy.max_conns_per_ip &&
	       same_str(a->proxy.transport, b->proxy.transport) &&
	       same_str(a->tls.cert, b->tls.cert) && same_str(a->tls.key, b->tls.key) &&
	       same_str(a->tls.http_listen, b->tls.http_listen) &&
	       same_str(a->tls.acme.email, b->tls.acme.email) &&
	       same_str(a->tls.acme.directory, b->tls.acme.directory) &&
	       same_str(a->tls.acme.ca, b->tls.acme.ca) &&
	       same_strv(a->tls.acme.names, b->tls.acme.names) &&
	       a->tls.acme.renew_before == b->tls.acme.renew_before;
}

/* ---- the daemon's settings -------------------------------------------------- */

static void check_usable(const struct settings *s)
{
	char *host = NULL;
	int port;
	if (settings_parse_listen(s->listen, &host, &port, NULL) < 0 || port < 1 || port > 65535)
		abort();
	free(host);
	if (s->data_dir[0] != '/' || s->images_dir[0] != '/')
		abort();
	uint32_t first, count;
	if (s->vm_user || (s->vm_uids && settings_parse_uids(s->vm_uids, &first, &count, NULL) < 0))
		abort();
	if (s->defaults.cpus < 1 || s->defaults.cpus > 64 || s->defaults.memory_mb < 64 ||
	    s->limits.max_cpus < 1 || s->limits.max_memory_mb < LIMIT_MIN_MEMORY_MB ||
	    s->limits.max_sandboxes < 0 || s->limits.max_secrets < 0 ||
	    s->limits.max_conns_per_ip < 0 || s->limits.max_body < 1024)
		abort();
}

static void daemon_settings(const uint8_t *data, size_t size)
{
	char *text = xmalloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	struct settings s;
	struct err e = ERR_INIT;
	if (settings_load_string(NAME, text, &s, &e) < 0) {
		if (strncmp(e.msg, NAME, strlen(NAME)) != 0 || e.code <= 0)
			abort();   /* an error must name the file */
		free(text);
		return;
	}
	check_usable(&s);
	struct buf y = BUF_INIT;
	emit(&s, &y);
	struct settings again;
	struct err e2 = ERR_INIT;
	if (settings_load_string(NAME, y.data, &again, &e2) < 0) {
		fprintf(stderr, "written back, the config no longer loads: %s\n---\n%s---\n",
			err_str(&e2), y.data);
		abort();
	}
	if (!same(&s, &again)) {
		fprintf(stderr, "written back, the config loads differently:\n---\n%s---\n", y.data);
		abort();
	}
	settings_release(&again);
	settings_release(&s);
	buf_release(&y);
	free(text);
}

/* ---- the CLI's file ----------------------------------------------------------- */

static void cli_settings(const uint8_t *data, size_t size)
{
	int fd = open(cli_config, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, data, size) < 0)
		abort();
	close(fd);
	struct client_settings s;
	struct err warning = ERR_INIT;
	client_settings_resolve(&s, NULL, NULL, &warning);
	if (!s.url || !s.token)
		abort();
	size_t n = strlen(s.url);
	if (n && s.url[n - 1] == '/')
		abort();   /* trailing slashes are taken off */
	if (warning.code && !strstr(warning.msg, cli_config))
		abort();   /* the warning names the file */
	struct client *c = client_new(&s);
	if (!c->url_err.code && (!c->name[0] || !c->port[0] || !c->host[0]))
		abort();   /* a URL taken has a host and a port */
	client_free(c);
	client_settings_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	daemon_settings(data, size);
	cli_settings(data, size);
	return 0;
}
