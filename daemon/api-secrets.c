/* api-secrets.c — /secrets: list names, set (encrypted at rest in the age
 * format to the daemon's key; at most limits.max_secrets per user), delete
 * (docs/api.md). Values never leave the daemon through the API; they reach
 * sandboxes as environment variables over the agent channel (sandbox.c).
 *
 * Sits between the HTTP request and the store + age (daemon/age.h).
 */
#include <errno.h>
#include <string.h>
#include <sodium.h>

#include "api.h"
#include "server.h"
#include "valid.h"

void api_secret_list(struct http_req *r)
{
	struct secret_meta *list;
	size_t n;
	struct err e = ERR_INIT;
	if (store_secret_list(r->srv->store, r->user.id, &list, &n, &e) < 0) {
		http_reply_err(r, -EIO, &e);
		return;
	}
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		char c[32], u[32];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", list[i].name);
		api_time(c, list[i].created_at);
		api_time(u, list[i].updated_at);
		cJSON_AddStringToObject(o, "created_at", c);
		cJSON_AddStringToObject(o, "updated_at", u);
		cJSON_AddItemToArray(a, o);
	}
	secret_meta_array_free(list, n);
	http_reply_json(r, 200, a);
}

struct secret_body {
	char *name;
	char *value;
};

static const struct json_field secret_fields[] = {
	JSON_FIELD_STR("name", struct secret_body, name, JSON_REQUIRED, 63),
	JSON_FIELD_STR("value", struct secret_body, value, JSON_REQUIRED, 64 << 10),
};

void api_secret_set(struct http_req *r)
{
	struct secret_body b = { 0 };
	if (api_parse(r, secret_fields, ARRAY_SIZE(secret_fields), &b) < 0)
		return;
	struct err e = ERR_INIT;
	struct buf ct = BUF_INIT;
	bool created = false;
	int64_t max = r->srv->cfg.limits.max_secrets;
	int rc;
	if (valid_secret_name(b.name, &e) < 0) {
		http_reply_error(r, 400, "%s", err_str(&e));
	} else if (age_encrypt(r->srv->age.public, b.value, strlen(b.value), &ct, &e) < 0) {
		http_reply_err(r, -EIO, &e);
	} else if ((rc = store_secret_put(r->srv->store, r->user.id, b.name, ct.data, ct.len, max,
					  &created, &e)) == -EDQUOT) {
		http_reply_error(r, 429, "quota: user '%s' may have at most %lld secrets (delete one "
					 "first; setting an existing name replaces it)",
				 r->user.name, (long long)max);
	} else if (rc < 0) {
		http_reply_err(r, -EIO, &e);
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", b.name);
		http_reply_json(r, created ? 201 : 200, o);
	}
	buf_release(&ct);
	if (b.value)
		sodium_memzero(b.value, strlen(b.value));
	json_release(secret_fields, ARRAY_SIZE(secret_fields), &b);
	sodium_memzero(r->body.data, r->body.len);
}

void api_secret_delete(struct http_req *r)
{
	struct err e = ERR_INIT;
	int rc = store_secret_delete(r->srv->store, r->user.id, r->params[0], &e);
	if (rc == -ENOENT)
		http_reply_error(r, 404, "no secret '%s'", r->params[0]);
	else if (rc < 0)
		http_reply_err(r, -EIO, &e);
	else
		http_reply_empty(r, 204);
}
