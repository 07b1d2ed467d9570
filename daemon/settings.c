/* settings.c — bhatti serve's configuration (see settings.h). Sits between
 * the config file (read through shared/config.c, which reports the file,
 * line and key of anything wrong) and the daemon and CLI code that use the
 * typed struct; touches only that file. The key table below is the one
 * list of keys, their kinds, ranges and checks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "num.h"
#include "settings.h"
#include "valid.h"

/* ---- checks on string values (config.h: "key 'x' " + message) ------------ */

static int check_listen(const char *v, struct err *e)
{
	char *host = NULL;
	int port;

	if (settings_parse_listen(v, &host, &port, NULL) < 0)
		return err_set(e, EINVAL, "must be host:port, :port or [address]:port with a "
			       "port from 1 to 65535");
	free(host);
	return 0;
}

static int check_abs_path(const char *v, struct err *e)
{
	return v[0] == '/' ? 0 : err_set(e, EINVAL, "must be an absolute path");
}

static int check_engine(const char *v, struct err *e)
{
	return strcmp(v, "qemu") == 0 ? 0 : err_set(e, EINVAL, "must be qemu");
}

static int check_accel(const char *v, struct err *e)
{
	if (strcmp(v, "auto") == 0 || strcmp(v, "kvm") == 0 || strcmp(v, "tcg") == 0)
		return 0;
	return err_set(e, EINVAL, "must be auto, kvm or tcg");
}

static int check_transport(const char *v, struct err *e)
{
	if (strcmp(v, "auto") == 0 || strcmp(v, "agent") == 0 || strcmp(v, "ip") == 0)
		return 0;
	return err_set(e, EINVAL, "must be auto, agent or ip");
}

static int check_log_level(const char *v, struct err *e)
{
	enum log_level level;
	if (log_parse_level(v, &level) == 0)
		return 0;
	return err_set(e, EINVAL, "must be debug, info, warn, error or off");
}

static int check_image(const char *v, struct err *e)
{
	if (valid_image(v, NULL) == 0)
		return 0;
	return err_set(e, EINVAL, "must be an image name (%s)", VALID_IMAGE_RULE);
}

/* A DNS name of at least two labels, lower case ("example.com",
 * "sb.example.com"): published sandboxes are <alias>.<domain>. */
static int check_domain(const char *v, struct err *e)
{
	size_t n = strlen(v), label = 0, labels = 1;
	bool ok = n > 0 && n <= 200 && v[0] != '.' && v[n - 1] != '.' && v[0] != '-';
	for (size_t i = 0; ok && i < n; i++) {
		char c = v[i];
		if (c == '.') {
			ok = label > 0 && v[i - 1] != '-' && v[i + 1] != '-';
			label = 0;
			labels++;
		} else {
			ok = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') &&
			     ++label <= 63;
		}
	}
	if (!ok || labels < 2)
		return err_set(e, EINVAL, "must be a lower-case DNS name such as example.com "
			       "(published sandboxes are <alias>.<domain>)");
	return 0;
}

/* vm_user (one user for every VM) is gone: say what replaces it. */
static int check_vm_user(const char *v UNUSED, struct err *e)
{
	return err_set(e, EINVAL, "is no longer used: each VM now runs as its own uid from "
		       "'vm_uids' (e.g. vm_uids: 200000-299999); install.sh rewrites the config");
}

static int check_vm_uids(const char *v, struct err *e)
{
	uint32_t first, count;
	return settings_parse_uids(v, &first, &count, e);
}

static int check_egress(const char *v, struct err *e)
{
	if (strcmp(v, "allow") == 0 || strcmp(v, "deny") == 0)
		return 0;
	return err_set(e, EINVAL, "must be allow or deny");
}

/* a.b.c.d/16 (the per-user /24s are taken from it) */
static int check_subnet_pool(const char *v, struct err *e)
{
	unsigned a, b, c, d, p;
	char end;
	if (sscanf(v, "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &p, &end) != 5 || a > 255 ||
	    b > 255 || c || d || p != 16)
		return err_set(e, EINVAL, "must be a /16 such as 10.201.0.0/16");
	return 0;
}

static int check_email(const char *v, struct err *e)
{
	const char *at = strchr(v, '@');
	if (!at || at == v || !at[1] || strpbrk(v, " \t,;<>\"'\\") || strchr(at + 1, '@'))
		return err_set(e, EINVAL, "must be an e-mail address");
	return 0;
}

static int check_https_url(const char *v, struct err *e)
{
	if (strncmp(v, "https://", 8) != 0 || !v[8] || strpbrk(v, " \t\"'\\"))
		return err_set(e, EINVAL, "must be an https:// URL");
	return 0;
}

#define S struct settings
static const struct config_key keys[] = {
	CONFIG_KEY_STR_CHECK("listen", S, listen, check_listen),
	CONFIG_KEY_STR_CHECK("data_dir", S, data_dir, check_abs_path),
	CONFIG_KEY_STR_CHECK("images_dir", S, images_dir, check_abs_path),
	CONFIG_KEY_STR_CHECK("engine", S, engine, check_engine),
	CONFIG_KEY_STR_CHECK("accel", S, accel, check_accel),
	CONFIG_KEY_STR_CHECK("vm_user", S, vm_user, check_vm_user),
	CONFIG_KEY_STR_CHECK("vm_uids", S, vm_uids, check_vm_uids),
	CONFIG_KEY_STR_CHECK("default_image", S, default_image, check_image),
	CONFIG_KEY_INT("pool_size", S, pool_size, -1, 8),   /* the engine keeps at most 8 */
	CONFIG_KEY_STR_CHECK("log_level", S, log_level, check_log_level),
	CONFIG_KEY_INT("defaults.cpus", S, defaults.cpus, 1, 64),
	CONFIG_KEY_INT("defaults.memory_mb", S, defaults.memory_mb, 64, 1 << 20),
	CONFIG_KEY_INT("limits.max_sandboxes", S, limits.max_sandboxes, 0, LIMIT_MAX_SANDBOXES),
	CONFIG_KEY_INT("limits.max_cpus", S, limits.max_cpus, 1, LIMIT_MAX_CPUS),
	CONFIG_KEY_INT("limits.max_memory_mb", S, limits.max_memory_mb, LIMIT_MIN_MEMORY_MB,
		       LIMIT_MAX_MEMORY_MB),
	CONFIG_KEY_INT("limits.creates_per_min", S, limits.creates_per_min, 0, 1000000),
	CONFIG_KEY_INT("limits.execs_per_min", S, limits.execs_per_min, 0, 1000000),
	CONFIG_KEY_INT("limits.reads_per_min", S, limits.reads_per_min, 0, 1000000),
	CONFIG_KEY_INT("limits.max_execs_per_user", S, limits.max_execs_per_user, 0, 1000000),
	CONFIG_KEY_INT("limits.max_execs", S, limits.max_execs, 0, 1000000),
	CONFIG_KEY_INT("limits.max_conns_per_ip", S, limits.max_conns_per_ip, 0, 1000000),
	CONFIG_KEY_INT("limits.max_secrets", S, limits.max_secrets, 0, LIMIT_MAX_SECRETS),
	CONFIG_KEY_SIZE("limits.max_body", S, limits.max_body, 1 << 10, 16ull << 30),
	CONFIG_KEY_SIZE("limits.max_snapshot_disk", S, limits.max_snapshot_disk, 0, 1ull << 50),
	CONFIG_KEY_SIZE("limits.memory_budget", S, limits.memory_budget, 0, 1ull << 50),
	CONFIG_KEY_DURATION_NEVER("thermal.warm_after", S, thermal.warm_after, 1000, 365ull * 86400000),
	CONFIG_KEY_DURATION_NEVER("thermal.cold_after", S, thermal.cold_after, 1000, 365ull * 86400000),
	CONFIG_KEY_DURATION("thermal.check_every", S, thermal.check_every, 200, 3600000),
	CONFIG_KEY_INT("thermal.cpu_busy_percent", S, thermal.cpu_busy_percent, 0, 100),
	CONFIG_KEY_BOOL("thermal.outbound_tcp", S, thermal.outbound_tcp),
	CONFIG_KEY_INT("thermal.max_concurrent_wakes", S, thermal.max_concurrent_wakes, 1, 100000),
	CONFIG_KEY_INT("limits.max_snapshots", S, limits.max_snapshots, 0, 10000),
	CONFIG_KEY_BOOL("network.enabled", S, network.enabled),
	CONFIG_KEY_STR_CHECK("network.subnet_pool", S, network.subnet_pool, check_subnet_pool),
	CONFIG_KEY_STRV("network.dns_upstreams", S, network.dns_upstreams),
	CONFIG_KEY_STR_CHECK("network.egress", S, network.egress, check_egress),
	CONFIG_KEY_BOOL("network.same_user", S, network.same_user),
	CONFIG_KEY_DURATION("exec.timeout", S, exec.timeout_ms, 0, SETTINGS_EXEC_TIMEOUT_MAX_MS),
	CONFIG_KEY_DURATION("exec.max_timeout", S, exec.max_timeout_ms, 1000,
			    SETTINGS_EXEC_TIMEOUT_MAX_MS),
	/* images */
	CONFIG_KEY_SIZE("defaults.disk_size", S, defaults.disk_size, 0, 1ull << 44),
	CONFIG_KEY_SIZE("limits.max_disk_size", S, limits.max_disk_size, 1ull << 20, 1ull << 44),
	CONFIG_KEY_STR_CHECK("public_proxy_listen", S, public_proxy_listen, check_listen),
	CONFIG_KEY_STR_CHECK("domain", S, domain, check_domain),
	CONFIG_KEY_INT("proxy.requests_per_ip_per_min", S, proxy.requests_per_ip_per_min, 0,
		       100000000),
	CONFIG_KEY_INT("proxy.requests_per_alias_per_min", S, proxy.requests_per_alias_per_min, 0,
		       100000000),
	CONFIG_KEY_INT("proxy.max_conns", S, proxy.max_conns, 0, 1000000),
	CONFIG_KEY_INT("proxy.max_conns_per_ip", S, proxy.max_conns_per_ip, 0, 1000000),
	CONFIG_KEY_STR_CHECK("proxy.transport", S, proxy.transport, check_transport),
	CONFIG_KEY_STR_CHECK("tls.cert", S, tls.cert, check_abs_path),
	CONFIG_KEY_STR_CHECK("tls.key", S, tls.key, check_abs_path),
	CONFIG_KEY_STR_CHECK("tls.http_listen", S, tls.http_listen, check_listen),
	CONFIG_KEY_STR_CHECK("tls.acme.email", S, tls.acme.email, check_email),
	CONFIG_KEY_STR_CHECK("tls.acme.directory", S, tls.acme.directory, check_https_url),
	CONFIG_KEY_STR_CHECK("tls.acme.ca", S, tls.acme.ca, check_abs_path),
	CONFIG_KEY_STRV("tls.acme.names", S, tls.acme.names),
	CONFIG_KEY_DURATION("tls.acme.renew_before", S, tls.acme.renew_before, 10000,
			    365ull * 86400000),
};
#undef S

static void defaults(struct settings *s)
{
	*s = (struct settings){
		.listen = xstrdup("127.0.0.1:8080"),
		.data_dir = xstrdup("/var/lib/bhatti"),
		.engine = xstrdup("qemu"),
		.accel = xstrdup("auto"),
		.default_image = xstrdup("tiny"),
		.pool_size = 1,
		.log_level = xstrdup("info"),
		.defaults = { .cpus = 1, .memory_mb = 512 },
		.limits = {
			.max_sandboxes = 5,   /* the seed system's user defaults: 5, 4, 4096 */
			.max_cpus = 4,
			.max_memory_mb = 4096,
			.creates_per_min = 10,
			.execs_per_min = 120,
			.reads_per_min = 1200,
			.max_execs_per_user = 32,
			.max_execs = 256,
			.max_conns_per_ip = 128,
			.max_secrets = 100,
			.max_body = 100ull << 20,
			.max_snapshot_disk = 20ull << 30,
			.max_snapshots = 5,
			.max_disk_size = 20ull << 30,
		},
		.thermal = {
			.warm_after = 30000,
			.cold_after = 30 * 60000,
			.check_every = 5000,
			.cpu_busy_percent = 5,
			.outbound_tcp = true,
			.max_concurrent_wakes = 10,
		},
		.network = { .enabled = true, .egress = xstrdup("allow"), .same_user = true },
		/* the seed system's: 300 s unless said, 24 h at most */
		.exec = { .timeout_ms = 300 * 1000, .max_timeout_ms = 24 * 3600 * 1000 },
		.tls.acme = {
			.directory = xstrdup(SETTINGS_ACME_DIRECTORY),
			.renew_before = 30ull * 86400000,
		},
		.proxy = {
			.requests_per_ip_per_min = 1500,
			.requests_per_alias_per_min = 5000,
			.max_conns = 4096,
			.max_conns_per_ip = 256,
		},
	};
}

/* What one key cannot say alone. */
static int check_all(const struct settings *s, const char *path, struct err *e)
{
	struct err ee = ERR_INIT;
	for (char **n = s->tls.acme.names; n && *n; n++)
		if (check_domain(*n, &ee) < 0)
			return err_set(e, EINVAL, "%s: tls.acme.names: '%s' must be a lower-case "
				       "DNS name such as api.example.com", path, *n);
	return 0;
}

/* Defaults that depend on other keys; then hand s over. */
static void finish(struct settings *s, const char *path, struct settings *ret)
{
	if (!s->images_dir) {
		struct buf b = BUF_INIT;
		buf_addf(&b, "%s/images", s->data_dir);
		s->images_dir = buf_detach(&b, NULL);
	}
	if (s->pool_size < 0)
		s->pool_size = 0; /* older configs said -1 for none */
	if (s->exec.timeout_ms > s->exec.max_timeout_ms)
		s->exec.timeout_ms = s->exec.max_timeout_ms;   /* the default is a timeout one may name */
	s->path = path ? xstrdup(path) : NULL;
	*ret = *s;
}

int settings_load(const char *path_or_null, struct settings *ret, struct err *e)
{
	const char *path = path_or_null, *env = getenv(SETTINGS_ENV);
	bool named = true;
	struct settings s;
	int r;

	if (!path && env && env[0]) {
		path = env;
	} else if (!path) {
		path = SETTINGS_DEFAULT_PATH;
		named = false;
	}
	defaults(&s);
	r = config_load_file(path, keys, ARRAY_SIZE(keys), &s, e);
	if (r == -ENOENT && !named) {
		finish(&s, NULL, ret);
		return 0;
	}
	if (r == 0)
		r = check_all(&s, path, e);
	if (r < 0) {
		settings_release(&s);
		return r;
	}
	finish(&s, path, ret);
	return 0;
}

int settings_load_string(const char *name, const char *text, struct settings *ret,
			 struct err *e)
{
	struct settings s;
	int r;

	defaults(&s);
	r = config_load_string(name, text, strlen(text), keys, ARRAY_SIZE(keys), &s, e);
	if (r == 0)
		r = check_all(&s, name, e);
	if (r < 0) {
		settings_release(&s);
		return r;
	}
	finish(&s, name, ret);
	return 0;
}

void settings_release(struct settings *s)
{
	if (!s)
		return;
	config_release(keys, ARRAY_SIZE(keys), s);
	free(s->path);
	s->path = NULL;
}

/* ---- listen addresses ----------------------------------------------------- */

static bool host_char(char c, bool v6)
{
	if ((c >= '0' && c <= '9') || c == '.')
		return true;
	if (v6)
		return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':';
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

int settings_parse_listen(const char *listen, char **ret_host, int *ret_port,
			  struct err *e)
{
	const char *host, *port_str;
	size_t hlen;
	bool v6;
	int port;

	if (!listen)
		return err_set(e, EINVAL, "missing listen address");
	v6 = listen[0] == '[';
	if (v6) {
		const char *rb = strchr(listen, ']');
		host = listen + 1;
		if (!rb || rb[1] != ':' || rb == host ||
		    !memchr(host, ':', (size_t)(rb - host)))
			return err_set(e, EINVAL, "listen address '%s' must be [address]:port "
				       "with an IPv6 address", listen);
		hlen = (size_t)(rb - host);
		port_str = rb + 2;
	} else {
		const char *colon = strrchr(listen, ':');
		if (!colon)
			return err_set(e, EINVAL, "listen address '%s' must be host:port or :port",
				       listen);
		host = listen;
		hlen = (size_t)(colon - listen);
		if (memchr(host, ':', hlen))
			return err_set(e, EINVAL, "listen address '%s': put an IPv6 address in "
				       "brackets, as in [::1]:8080", listen);
		port_str = colon + 1;
	}
	for (size_t i = 0; i < hlen; i++)
		if (!host_char(host[i], v6))
			return err_set(e, EINVAL, "listen address '%s' has an invalid host",
				       listen);
	if (num_parse_int(port_str, 1, 65535, &port, "port", NULL) < 0)
		return err_set(e, EINVAL, "listen address '%s' must end in a port from 1 to "
			       "65535", listen);
	*ret_host = hlen ? xstrndup(host, hlen) : NULL;
	*ret_port = port;
	return 0;
}

/* ---- VM uids ---------------------------------------------------------------- */

int settings_parse_uids(const char *v, uint32_t *ret_first, uint32_t *ret_count, struct err *e)
{
	const char *dash = v ? strchr(v, '-') : NULL;
	int64_t first = 0, last = 0;
	char *a = dash ? xstrndup(v, (size_t)(dash - v)) : NULL;
	bool ok = a && num_parse_i64(a, SETTINGS_UID_MIN, SETTINGS_UID_MAX, &first, "uid", NULL) == 0 &&
		  num_parse_i64(dash + 1, SETTINGS_UID_MIN, SETTINGS_UID_MAX, &last, "uid", NULL) == 0 &&
		  first <= last;
	free(a);
	if (!ok)
		return err_set(e, EINVAL, "must be a range FIRST-LAST of uids from %d to %d, e.g. "
			       "200000-299999", SETTINGS_UID_MIN, SETTINGS_UID_MAX);
	*ret_first = (uint32_t)first;
	*ret_count = (uint32_t)(last - first + 1);
	return 0;
}
