/* api-publish.c — published ports and the guest's listening ports:
 * POST/GET /sandboxes/:id/publish, DELETE /sandboxes/:id/publish/:port,
 * GET /sandboxes/:id/ports (wakes the sandbox) and GET /ports (every
 * sandbox of the caller's that is hot; never wakes one) (docs/api.md).
 *
 * Sits between the HTTP request and publish.h (rules) + guest.h (ports).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "num.h"
#include "publish.h"
#include "server.h"

static cJSON *rule_json(struct server *srv, const struct sbx *sb, const struct publish_row *p)
{
	struct buf url = BUF_INIT;
	char when[32];
	cJSON *o = cJSON_CreateObject();
	pub_url(srv, p, &url);
	cJSON_AddStringToObject(o, "sandbox", sb->row.name);
	cJSON_AddStringToObject(o, "sandbox_id", sb->row.id);
	cJSON_AddNumberToObject(o, "port", (double)p->port);
	cJSON_AddStringToObject(o, "alias", p->alias);
	cJSON_AddStringToObject(o, "url", url.data ? url.data : "");
	api_time(when, p->created_at);
	cJSON_AddStringToObject(o, "created_at", when);
	buf_release(&url);
	return o;
}

struct publish_body {
	int64_t port;
	char *alias;
};

static const struct json_field publish_fields[] = {
	JSON_FIELD_INT("port", struct publish_body, port, JSON_REQUIRED, 1, 65535),
	JSON_FIELD_STR("alias", struct publish_body, alias, JSON_OPTIONAL, 256),
};

void api_publish_add(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct publish_body b = { 0 };
	if (api_parse(r, publish_fields, ARRAY_SIZE(publish_fields), &b) < 0)
		return;
	struct publish_row p;
	struct err e = ERR_INIT;
	bool existing = false;
	int rc = pub_add(sb, b.port, b.alias, &p, &existing, &e);
	free(b.alias);
	if (rc < 0) {
		http_reply_err(r, rc, &e);
		return;
	}
	if (existing)
		http_header(r, "X-Bhatti-Existing", "true");
	http_reply_json(r, existing ? 200 : 201, rule_json(r->srv, sb, &p));
	publish_row_release(&p);
}

void api_publish_list(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct publish_row *v;
	size_t n;
	struct err e = ERR_INIT;
	if (pub_list(sb, &v, &n, &e) < 0) {
		http_reply_err(r, -EIO, &e);
		return;
	}
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, rule_json(r->srv, sb, &v[i]));
	publish_row_array_free(v, n);
	http_reply_json(r, 200, a);
}

void api_publish_remove(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	int64_t port;
	struct err e = ERR_INIT;
	if (num_parse_i64(r->params[1], 1, 65535, &port, "port", &e) < 0) {
		http_reply_err(r, -EINVAL, &e);
		return;
	}
	int rc = pub_remove(sb, port, &e);
	if (rc < 0) {
		http_reply_err(r, rc, &e);
		return;
	}
	http_reply_empty(r, 204);
}

/* ---- ports ------------------------------------------------------------------------ */

/* One sandbox's ports asked of its agent (GET /ports asks several at once). */
struct ports_ask {
	struct sbx *sb;
	struct guest_op *op;
	struct guest_port *ports;   /* what it answered (copied) */
	size_t n;
	bool answered;              /* else: not hot, or it failed */
	struct ports_ctx *ctx;
};

struct ports_ctx {
	struct http_req *r;
	struct ports_ask *asks;
	size_t n, pending;
	bool all;                   /* GET /ports */
};

static void ports_ctx_free(void *p)
{
	struct ports_ctx *c = p;
	for (size_t i = 0; i < c->n; i++) {
		guest_op_free(c->asks[i].op);
		free(c->asks[i].ports);
	}
	free(c->asks);
	free(c);
}

/* The ports of one sandbox: listening ones (when known) and published
 * ones, by port. */
static void add_ports(cJSON *a, struct server *srv, const struct ports_ask *k, bool all)
{
	struct publish_row *v = NULL;
	size_t n = 0, i = 0, j = 0;
	struct err e = ERR_INIT;
	if (pub_list(k->sb, &v, &n, &e) < 0)
		n = 0;
	while (i < k->n || j < n) {
		int64_t pi = i < k->n ? k->ports[i].port : 65536;
		int64_t pj = j < n ? v[j].port : 65536;
		int64_t port = pi < pj ? pi : pj;
		cJSON *o = cJSON_CreateObject();
		if (all) {
			cJSON_AddStringToObject(o, "sandbox", k->sb->row.name);
			cJSON_AddStringToObject(o, "sandbox_id", k->sb->row.id);
		}
		cJSON_AddNumberToObject(o, "port", (double)port);
		if (k->answered)
			cJSON_AddBoolToObject(o, "listening", pi == port);
		if (pi == port && k->ports[i].loopback)
			cJSON_AddBoolToObject(o, "loopback_only", true);
		cJSON_AddBoolToObject(o, "published", pj == port);
		if (pj == port) {
			struct buf url = BUF_INIT;
			pub_url(srv, &v[j], &url);
			cJSON_AddStringToObject(o, "alias", v[j].alias);
			cJSON_AddStringToObject(o, "url", url.data ? url.data : "");
			buf_release(&url);
			j++;
		}
		if (pi == port)
			i++;
		cJSON_AddItemToArray(a, o);
	}
	publish_row_array_free(v, n);
}

static void ports_answer(struct ports_ctx *c)
{
	cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray();
	for (size_t i = 0; i < c->n; i++)
		add_ports(a, c->r->srv, &c->asks[i], c->all);
	cJSON_AddItemToObject(o, "ports", a);
	http_reply_json(c->r, 200, o);
}

static void ports_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct ports_ask *k = arg;
	struct ports_ctx *c = k->ctx;
	if (end->rc == 0 && end->ports) {
		k->answered = true;
		k->n = end->ports->count;
		k->ports = xcalloc(k->n + 1, sizeof(*k->ports));
		memcpy(k->ports, end->ports->list, k->n * sizeof(*k->ports));
	} else if (!c->all) {
		if (end->rc < 0)
			http_reply_error(c->r, api_guest_status(end, end->rc),
					 "cannot list ports: %s", err_str(end->err));
		else
			http_reply_error(c->r, 500, "cannot list ports: the agent did not answer");
		return;
	}
	if (--c->pending == 0)
		ports_answer(c);
}

static const struct guest_cb ports_cb = { .done = ports_done };

static struct ports_ctx *ports_ctx_new(struct http_req *r, size_t n, bool all)
{
	struct ports_ctx *c = xcalloc(1, sizeof(*c));
	c->r = r;
	c->all = all;
	c->asks = xcalloc(n + 1, sizeof(*c->asks));
	r->ctx = c;
	r->ctx_free = ports_ctx_free;
	return c;
}

void api_ports(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct ports_ctx *c = ports_ctx_new(r, 1, false);
	c->n = c->pending = 1;
	c->asks[0] = (struct ports_ask){ .sb = sb, .ctx = c };
	c->asks[0].op = guest_ports(sb, &ports_cb, &c->asks[0]);
}

void api_ports_all(struct http_req *r)
{
	size_t n = 0;
	for (struct sbx *sb = r->srv->sandboxes; sb; sb = sb->next)
		n += sb->row.user_id == r->user.id && !sb->destroying;
	struct ports_ctx *c = ports_ctx_new(r, n, true);
	for (struct sbx *sb = r->srv->sandboxes; sb; sb = sb->next) {
		if (sb->row.user_id != r->user.id || sb->destroying)
			continue;
		c->asks[c->n++] = (struct ports_ask){ .sb = sb, .ctx = c };
	}
	/* only hot ones are asked: asking wakes, and this never does */
	size_t hot = 0;
	for (size_t i = 0; i < c->n; i++)
		hot += strcmp(sbx_state(c->asks[i].sb), "hot") == 0;
	c->pending = hot;
	if (hot == 0) {
		ports_answer(c);
		return;
	}
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(sbx_state(c->asks[i].sb), "hot") == 0)
			c->asks[i].op = guest_ports(c->asks[i].sb, &ports_cb, &c->asks[i]);
}
