/* publish — published ports: which sandbox port an alias names, made and
 * removed by its owner, looked up by the public proxy.
 *
 * Sits between the API handlers (api-publish.c), the public proxy
 * (proxy.c) and the store (store.h: the `publish` table, aliases unique
 * across all users, a sandbox's rows deleted with it). Never sees HTTP.
 *
 * Aliases: [a-z0-9][a-z0-9-]{0,62}, not a reserved word (valid_alias);
 * generated as <sandbox name, made alias-safe>-<6 hex> when not given.
 * A rule lives in the store, so it survives restarts, stop/start and
 * thermal changes; a destroy removes it.
 */
#ifndef BHATTI_PUBLISH_H
#define BHATTI_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "store.h"

struct sbx;
struct server;

/* Publish port of sb as alias (NULL: a generated one). When the port is
 * published already, *ret is that rule and *ret_existing is true (an
 * alias given that differs from it: -EEXIST). -EINVAL bad port or alias,
 * -EEXIST the alias is taken (by anyone). */
int pub_add(struct sbx *sb, int64_t port, const char *alias, struct publish_row *ret,
	    bool *ret_existing, struct err *e);
/* -ENOENT when that port is not published. The proxy answers 404 for it
 * from the next request on. */
int pub_remove(struct sbx *sb, int64_t port, struct err *e);
/* sb's rules by port (publish_row_array_free). */
int pub_list(struct sbx *sb, struct publish_row **ret, size_t *ret_n, struct err *e);
/* The URL a rule is reached at, appended to out: https?://<alias>.<domain>/
 * with a domain, else http://<proxy host>:<port>/<alias>/ with a public
 * proxy, else the owner path on the API (/sandboxes/<id>/proxy/<port>/). */
void pub_url(struct server *srv, const struct publish_row *p, struct buf *out);
/* The sandbox and port an alias names (for the proxy); -ENOENT when
 * nobody published it or its sandbox is being destroyed. */
int pub_resolve(struct server *srv, const char *alias, struct sbx **ret_sb,
		uint16_t *ret_port);

/* The alias a sandbox name gives before its random suffix ("My_App" →
 * "my-app"), written to out (at least 57 bytes). For tests. */
void pub_alias_base(const char *name, char *out, size_t size);

#endif
