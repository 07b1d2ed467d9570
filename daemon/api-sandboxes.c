/* api-sandboxes.c — the sandbox resource: create, list, inspect, rename,
 * destroy, stop, start (docs/api.md). Parses and answers; the work is in
 * sandbox.c. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "labels.h"
#include "net.h"
#include "server.h"
#include "util.h"
#include "valid.h"

struct create_body {
	char *name;
	int64_t cpus, memory_mb;
	char *image;
	char **env;
	char *init;
	char **secrets;
	bool all_secrets;
	bool keep_hot;
	char *egress;
	char **labels;
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
	JSON_FIELD_BOOL("keep_hot", struct create_body, keep_hot, JSON_OPTIONAL),
	JSON_FIELD_OBJ("egress", struct create_body, egress, JSON_OPTIONAL),
	JSON_FIELD_STRMAP("labels", struct create_body, labels, JSON_OPTIONAL, 512, 64),
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
	char *labels = NULL;
	if (check_create(&b, &e) < 0 || labels_edit(NULL, b.labels, NULL, &labels, &e) < 0) {
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
		.keep_hot = b.keep_hot,
		.egress = b.egress,
		.labels = labels,
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
	free(labels);
	json_release(create_fields, ARRAY_SIZE(create_fields), &b);
}

/* ?label=K=V (that value) or ?label=K (any value), repeated: all of them */
void api_sandbox_list(struct http_req *r)
{
	char *filter[VALID_LABELS_MAX + 2] = { NULL };
	unsigned n = 0;
	for (const char *f; n < VALID_LABELS_MAX + 1 && (f = http_query_nth(r, "label", n));)
		filter[n++] = (char *)f;
	if (n > VALID_LABELS_MAX) {
		http_reply_error(r, 400, "at most %d label filters", VALID_LABELS_MAX);
		return;
	}
	cJSON *a = cJSON_CreateArray();
	for (struct sbx *sb = r->srv->sandboxes; sb; sb = sb->next)
		if (sb->row.user_id == r->user.id && !sb->destroying &&
		    labels_match(sb->row.labels, filter))
			cJSON_AddItemToArray(a, api_sandbox_json(sb));
	http_reply_json(r, 200, a);
}

void api_sandbox_get(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	cJSON *o = api_sandbox_json(sb);
	api_sandbox_thermal_json(sb, o);
	http_reply_json(r, 200, o);
}

/* PATCH: each field its own block, checked all before any is applied. */
struct patch_body {
	char *name;
	char **labels;            /* set or replace these keys */
	char **unlabel;           /* remove these keys */
	bool keep_hot;
	char *egress;
};

/* bits of the present mask */
enum { PATCH_NAME, PATCH_LABELS, PATCH_UNLABEL, PATCH_KEEP_HOT, PATCH_EGRESS };

static const struct json_field patch_fields[] = {
	[PATCH_NAME] = JSON_FIELD_STR("name", struct patch_body, name, JSON_OPTIONAL, 63),
	[PATCH_LABELS] = JSON_FIELD_STRMAP("labels", struct patch_body, labels, JSON_OPTIONAL, 512, 64),
	[PATCH_UNLABEL] = JSON_FIELD_STRV("unlabel", struct patch_body, unlabel, JSON_OPTIONAL, 254, 64),
	[PATCH_KEEP_HOT] = JSON_FIELD_BOOL("keep_hot", struct patch_body, keep_hot, JSON_OPTIONAL),
	[PATCH_EGRESS] = JSON_FIELD_OBJ("egress", struct patch_body, egress, JSON_OPTIONAL),
};

/* keep_hot: true also wakes it (sbx_set_keep_hot) */
static int patch_keep_hot(struct sbx *sb, const struct patch_body *b, uint64_t present,
			  struct err *e)
{
	if (!(present & (1ull << PATCH_KEEP_HOT)))
		return 0;
	return sbx_set_keep_hot(sb, b->keep_hot, e);
}

/* PATCH's "egress", checked before anything is applied. */
static int patch_check_egress(struct server *srv, const struct patch_body *b, struct err *e)
{
	if (!b->egress)
		return 0;
	if (!srv->net)
		return err_set(e, EINVAL, "networking is off on this server");
	struct egress eg;
	int r = egress_parse(b->egress, false, &eg, e);
	if (r == 0)
		egress_release(&eg);
	return r;
}

/* PATCH's "egress": a new policy, applied at once. */
static int patch_egress(struct sbx *sb, const struct patch_body *b, struct err *e)
{
	return b->egress ? sbx_set_egress(sb, b->egress, e) : 0;
}

void api_sandbox_patch(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct patch_body b = { 0 };
	uint64_t present = 0;
	struct err e = ERR_INIT;
	char *labels = NULL;
	if (json_parse(r->body.len ? r->body.data : "{}", r->body.len ? r->body.len : 2,
		       patch_fields, ARRAY_SIZE(patch_fields), &b, &present, &e) < 0) {
		http_reply_error(r, 400, "%s", err_str(&e));
		goto out;
	}
	int rc = 0;
	if (b.name && strcmp(b.name, sb->row.name) != 0)
		rc = valid_sandbox_name(b.name, &e);
	if (rc == 0 && ((b.labels || b.unlabel) &&
			labels_edit(sb->row.labels, b.labels, b.unlabel, &labels, &e) < 0)) {
		http_reply_error(r, 400, "%s", err_str(&e));
		goto out;
	}
	if (rc == 0 && patch_check_egress(r->srv, &b, &e) < 0) {
		http_reply_error(r, 400, "%s", err_str(&e));
		goto out;
	}
	if (rc == 0 && b.name && strcmp(b.name, sb->row.name) != 0)
		rc = sbx_rename(sb, b.name, &e);
	if (rc == 0 && labels)
		rc = sbx_set_labels(sb, labels, &e);
	if (rc == 0)
		rc = patch_keep_hot(sb, &b, present, &e);
	if (rc == 0)
		rc = patch_egress(sb, &b, &e);
	if (rc < 0) {
		http_reply_err(r, rc, &e);
	} else {
		/* the object GET answers (bhatti edit prints it as inspect does) */
		cJSON *o = api_sandbox_json(sb);
		api_sandbox_thermal_json(sb, o);
		http_reply_json(r, 200, o);
	}
out:
	free(labels);
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

struct start_body {
	bool force;
};

static const struct json_field start_fields[] = {
	JSON_FIELD_BOOL("force", struct start_body, force, JSON_OPTIONAL),
};

/* {"force": true}: retry a failed wake (bhatti start --force) */
void api_sandbox_start(struct http_req *r)
{
	struct start_body b = { 0 };
	if (api_parse(r, start_fields, ARRAY_SIZE(start_fields), &b) < 0)
		return;
	struct sbx *sb = b.force ? sbx_find(r->srv, &r->user, r->params[0]) : NULL;
	if (sb)
		sbx_clear_wake_error(sb);
	sandbox_op(r, sbx_start, 200);
}
