/* api-sandboxes.c — the sandbox resource: create, list, inspect, rename,
 * destroy, stop, start (docs/api.md). Parses and answers; the work is in
 * sandbox.c. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "api.h"
#include "server.h"
#include "valid.h"

struct create_body {
	char *name;
	int64_t cpus, memory_mb;
	char *image;
	char **env;
	char *init;
	char **secrets;
	bool all_secrets;
	uint64_t disk_size;
};

static const struct json_field create_fields[] = {
	JSON_FIELD_STR("name", struct create_body, name, JSON_OPTIONAL, 63),
	JSON_FIELD_INT("cpus", struct create_body, cpus, JSON_OPTIONAL, 1, 64),
	JSON_FIELD_INT("memory_mb", struct create_body, memory_mb, JSON_OPTIONAL, 64, 65536),
	JSON_FIELD_STR("image", struct create_body, image, JSON_OPTIONAL, 63),
	JSON_FIELD_STRMAP("env", struct create_body, env, JSON_OPTIONAL, 32768, 256),
	JSON_FIELD_STR("init", struct create_body, init, JSON_OPTIONAL, 256 << 10),
	JSON_FIELD_STRV("secrets", struct create_body, secrets, JSON_OPTIONAL, 63, 256),
	JSON_FIELD_BOOL("all_secrets", struct create_body, all_secrets, JSON_OPTIONAL),
	JSON_FIELD_SIZE("disk_size", struct create_body, disk_size, JSON_OPTIONAL, 1ull << 44),
};

/* What the handler can refuse before any work (names: sbx_create). */
static int check_create(const struct create_body *b, struct err *e)
{
	int r = b->image ? valid_image(b->image, e) : 0;
	for (char **kv = b->env; r == 0 && kv && *kv; kv++)
		r = valid_env_entry(*kv, e);
	return r;
}

void api_sandbox_create(struct http_req *r)
{
	struct create_body b = { 0 };
	if (api_parse(r, create_fields, ARRAY_SIZE(create_fields), &b) < 0)
		return;
	struct err e = ERR_INIT;
	if (check_create(&b, &e) < 0) {
		http_reply_error(r, 400, "%s", err_str(&e));
		goto out;
	}
	/* an existing name answers without spending a create token */
	struct sbx *sb = b.name ? sbx_find(r->srv, &r->user, b.name) : NULL;
	if (sb && strcmp(sb->row.name, b.name) == 0) {
		http_header(r, "X-Bhatti-Existing", "true");
		http_reply_json(r, 200, api_sandbox_json(sb));
		goto out;
	}
	if (api_rate(r, RATE_CREATE) < 0)
		goto out;
	struct sbx_create req = {
		.name = b.name, .cpus = b.cpus, .memory_mb = b.memory_mb, .image = b.image,
		.env = b.env, .init = b.init, .secrets = b.secrets, .all_secrets = b.all_secrets,
		.disk_size = b.disk_size,
	};
	bool existing;
	void *w = api_wait(r, NULL, 201);
	int rc = sbx_create(r->srv, &r->user, &req, api_sandbox_done, w, &existing, &sb, &e);
	if (rc == 0 && existing) {
		http_header(r, "X-Bhatti-Existing", "true");
		http_reply_json(r, 200, api_sandbox_json(sb));
	} else if (rc == 0) {
		api_wait_on(r, sb);
	} else if (rc == -EDQUOT) {
		http_reply_error(r, 429, "%s", err_str(&e));
	} else {
		http_reply_err(r, rc == -ENOENT ? -EINVAL : rc, &e);
	}
out:
	json_release(create_fields, ARRAY_SIZE(create_fields), &b);
}

void api_sandbox_list(struct http_req *r)
{
	cJSON *a = cJSON_CreateArray();
	for (struct sbx *sb = r->srv->sandboxes; sb; sb = sb->next)
		if (sb->row.user_id == r->user.id && !sb->destroying)
			cJSON_AddItemToArray(a, api_sandbox_json(sb));
	http_reply_json(r, 200, a);
}

void api_sandbox_get(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (sb)
		http_reply_json(r, 200, api_sandbox_json(sb));
}

struct patch_body {
	char *name;
};

static const struct json_field patch_fields[] = {
	JSON_FIELD_STR("name", struct patch_body, name, JSON_REQUIRED, 63),
};

void api_sandbox_patch(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct patch_body b = { 0 };
	if (api_parse(r, patch_fields, ARRAY_SIZE(patch_fields), &b) < 0)
		return;
	struct err e = ERR_INIT;
	int rc = strcmp(b.name, sb->row.name) == 0 ? 0 : sbx_rename(sb, b.name, &e);
	if (rc < 0)
		http_reply_err(r, rc, &e);
	else
		http_reply_json(r, 200, api_sandbox_json(sb));
	json_release(patch_fields, ARRAY_SIZE(patch_fields), &b);
}

/* Run op on the caller's sandbox; answer when it ends. */
static void sandbox_op(struct http_req *r, int (*op)(struct sbx *, sbx_done_fn, void *, struct err *),
		       int status)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct err e = ERR_INIT;
	int rc = op(sb, api_sandbox_done, api_wait(r, sb, status), &e);
	if (rc < 0) {
		api_wait_failed(r);
		http_reply_err(r, rc, &e);
	}
}

void api_sandbox_delete(struct http_req *r)
{
	sandbox_op(r, sbx_destroy, 204);
}

void api_sandbox_stop(struct http_req *r)
{
	sandbox_op(r, sbx_stop, 200);
}

void api_sandbox_start(struct http_req *r)
{
	sandbox_op(r, sbx_start, 200);
}
