/* publish.c — published ports: aliases, rules in the store, URLs (see
 * publish.h). Touches the store's `publish` table and nothing else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "publish.h"
#include "sandbox.h"
#include "settings.h"
#include "util.h"
#include "valid.h"

#define ALIAS_SUFFIX 7      /* "-" + 6 hex */
#define ALIAS_TRIES 4

void pub_alias_base(const char *name, char *out, size_t size)
{
	size_t n = 0, max = VALID_NAME_MAX - ALIAS_SUFFIX;
	if (max > size - 1)
		max = size - 1;
	for (const char *p = name; *p && n < max; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			c = '-';
		if (c == '-' && (n == 0 || out[n - 1] == '-'))
			continue;   /* no leading or doubled '-' */
		out[n++] = c;
	}
	while (n > 0 && out[n - 1] == '-')
		n--;
	if (n == 0) {
		memcpy(out, "sb", 2);
		n = 2;
	}
	out[n] = '\0';
}

static int find_rule(struct sbx *sb, int64_t port, struct publish_row *ret, struct err *e)
{
	struct publish_row *v;
	size_t n;
	int r = pub_list(sb, &v, &n, e);
	if (r < 0)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (v[i].port == port) {
			*ret = v[i];
			memset(&v[i], 0, sizeof(v[i]));
			r = 0;
			break;
		}
	}
	publish_row_array_free(v, n);
	return r;
}

int pub_add(struct sbx *sb, int64_t port, const char *alias, struct publish_row *ret,
	    bool *ret_existing, struct err *e)
{
	struct server *srv = sb->srv;
	struct publish_row old = { 0 };
	int r;

	if (port < 1 || port > 65535)
		return err_set(e, EINVAL, "invalid port %" PRId64 ": use 1 to 65535", port);
	if (alias && (r = valid_alias(alias, e)) < 0)
		return r;
	r = find_rule(sb, port, &old, e);
	if (r == 0) {
		if (alias && strcmp(alias, old.alias) != 0) {
			r = err_set(e, EEXIST, "port %" PRId64 " of '%s' is published as '%s' "
				    "already; unpublish it first", port, sb->row.name, old.alias);
			publish_row_release(&old);
			return r;
		}
		*ret = old;
		*ret_existing = true;
		return 0;
	}
	if (r != -ENOENT)
		return r;

	struct publish_row p = {
		.sandbox_id = sb->row.id, .user_id = sb->row.user_id, .port = port,
		.created_at = wall_sec(),
	};
	char gen[VALID_NAME_MAX + 16];
	if (alias) {
		p.alias = (char *)alias;
		r = store_publish_insert(srv->store, &p, e);
		if (r == -EEXIST)
			r = err_set(e, EEXIST, "alias '%s' is taken; pick another", alias);
	} else {
		char base[VALID_NAME_MAX + 1];
		pub_alias_base(sb->row.name, base, sizeof(base));
		r = -EEXIST;
		for (int i = 0; i < ALIAS_TRIES && r == -EEXIST; i++) {
			unsigned char rnd[3];
			randombytes_buf(rnd, sizeof(rnd));
			snprintf(gen, sizeof(gen), "%s-%02x%02x%02x", base, rnd[0], rnd[1], rnd[2]);
			p.alias = gen;
			r = store_publish_insert(srv->store, &p, e);
		}
	}
	if (r < 0)
		return r;
	*ret = (struct publish_row){
		.alias = xstrdup(p.alias), .sandbox_id = xstrdup(p.sandbox_id),
		.user_id = p.user_id, .port = p.port, .created_at = p.created_at,
	};
	*ret_existing = false;
	return 0;
}

int pub_remove(struct sbx *sb, int64_t port, struct err *e)
{
	if (port < 1 || port > 65535)
		return err_set(e, EINVAL, "invalid port %" PRId64 ": use 1 to 65535", port);
	int r = store_publish_delete(sb->srv->store, sb->row.id, port, e);
	if (r == -ENOENT)
		return err_set(e, ENOENT, "port %" PRId64 " of '%s' is not published", port,
			       sb->row.name);
	return r;
}

int pub_list(struct sbx *sb, struct publish_row **ret, size_t *ret_n, struct err *e)
{
	struct publish_row *v;
	size_t n, k = 0;
	int r = store_publish_list(sb->srv->store, sb->row.user_id, &v, &n, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].sandbox_id, sb->row.id) == 0) {
			v[k++] = v[i];
		} else {
			publish_row_release(&v[i]);
		}
	}
	*ret = v;
	*ret_n = k;
	return 0;
}

/* The address clients reach a wildcard listener at: the first IPv4
 * address of an interface that is up and not loopback, else 127.0.0.1. */
static void host_address(char out[INET_ADDRSTRLEN])
{
	struct ifaddrs *ifs = NULL;
	snprintf(out, INET_ADDRSTRLEN, "127.0.0.1");
	if (getifaddrs(&ifs) < 0)
		return;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out,
			  INET_ADDRSTRLEN);
		break;
	}
	freeifaddrs(ifs);
}

/* "host:port" for a URL from a listen address. */
static void listen_authority(const char *listen, struct buf *out)
{
	char *host = NULL;
	int port = 0;
	if (settings_parse_listen(listen, &host, &port, NULL) < 0)
		return;
	if (!host || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
		char a[INET_ADDRSTRLEN];
		host_address(a);
		buf_addf(out, "%s:%d", a, port);
	} else if (strchr(host, ':')) {
		buf_addf(out, "[%s]:%d", host, port);
	} else {
		buf_addf(out, "%s:%d", host, port);
	}
	free(host);
}

void pub_url(struct server *srv, const struct publish_row *p, struct buf *out)
{
	const struct settings *cfg = &srv->cfg;
	if (cfg->domain) {
		char *host = NULL;
		int port = cfg->tls.cert ? 443 : 80;
		if (cfg->public_proxy_listen)
			settings_parse_listen(cfg->public_proxy_listen, &host, &port, NULL);
		free(host);
		bool tls = cfg->tls.cert != NULL;
		buf_addf(out, "%s://%s.%s", tls ? "https" : "http", p->alias, cfg->domain);
		if (port != (tls ? 443 : 80))
			buf_addf(out, ":%d", port);
		buf_adds(out, "/");
	} else if (cfg->public_proxy_listen) {
		buf_adds(out, cfg->tls.cert ? "https://" : "http://");
		listen_authority(cfg->public_proxy_listen, out);
		buf_addf(out, "/%s/", p->alias);
	} else {
		buf_adds(out, cfg->tls.cert ? "https://" : "http://");
		listen_authority(cfg->listen, out);
		buf_addf(out, "/sandboxes/%s/proxy/%" PRId64 "/", p->sandbox_id, p->port);
	}
}

int pub_resolve(struct server *srv, const char *alias, struct sbx **ret_sb, uint16_t *ret_port)
{
	struct publish_row p;
	if (valid_alias(alias, NULL) < 0 || store_publish_get(srv->store, alias, &p, NULL) < 0)
		return -ENOENT;
	struct sbx *found = NULL;
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next)
		if (!sb->destroying && strcmp(sb->row.id, p.sandbox_id) == 0)
			found = sb;
	uint16_t port = (uint16_t)p.port;
	publish_row_release(&p);
	if (!found)
		return -ENOENT;
	*ret_sb = found;
	*ret_port = port;
	return 0;
}
