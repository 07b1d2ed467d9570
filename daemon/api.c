/* api.c — helpers shared by the API handlers (see api.h), and the
 * handlers that are one-liners: health. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "api.h"
#include "server.h"

struct sbx *api_sandbox(struct http_req *r)
{
	struct sbx *sb = sbx_find(r->srv, &r->user, r->params[0]);
	if (!sb)
		http_reply_error(r, 404, "no sandbox '%s'", r->params[0]);
	return sb;
}

void api_time(char out[32], int64_t unix_sec)
{
	time_t t = (time_t)unix_sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

cJSON *api_sandbox_json(struct sbx *sb)
{
	char when[32];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", sb->row.id);
	cJSON_AddStringToObject(o, "name", sb->row.name);
	const char *state = sbx_state(sb);
	cJSON_AddStringToObject(o, "state", state);
	cJSON_AddNumberToObject(o, "cpus", (double)sb->row.cpus);
	cJSON_AddNumberToObject(o, "memory_mb", (double)sb->row.memory_mb);
	cJSON_AddStringToObject(o, "image", sb->row.image);
	api_time(when, sb->row.created_at);
	cJSON_AddStringToObject(o, "created_at", when);
	if (sb->vm)
		cJSON_AddStringToObject(o, "origin", vm_origin(sb->vm));
	if (strcmp(state, "error") == 0)
		cJSON_AddStringToObject(o, "error", sb->vm ? vm_error(sb->vm) : "the VM is gone");
	return o;
}

int api_parse(struct http_req *r, const struct json_field *fields, size_t n, void *obj)
{
	struct err e = ERR_INIT;
	const char *text = r->body.len ? r->body.data : "{}";
	size_t len = r->body.len ? r->body.len : 2;
	if (json_parse(text, len, fields, n, obj, NULL, &e) < 0) {
		http_reply_error(r, 400, "%s", err_str(&e));
		return -EINVAL;
	}
	return 0;
}

/* Valid UTF-8 without NUL (so it can be a JSON string as is). */
static bool utf8_text(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
		if (len == 0 || c > 0xf4 || i + len > n)
			return false;
		uint32_t cp = c & (0x7f >> len);
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += len;
	}
	return true;
}

void api_add_bytes(cJSON *o, const char *key, const uint8_t *p, size_t n)
{
	if (utf8_text(p, n)) {
		char *s = xstrndup((const char *)p, n);
		cJSON_AddStringToObject(o, key, s);
		free(s);
		return;
	}
	size_t blen = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *b = xmalloc(blen);
	sodium_bin2base64(b, blen, p, n, sodium_base64_VARIANT_ORIGINAL);
	char k[64];
	snprintf(k, sizeof(k), "%s_b64", key);
	cJSON_AddStringToObject(o, k, b);
	free(b);
}

int api_rate(struct http_req *r, enum rate_kind k)
{
	unsigned retry;
	if (ratelimit_take(r->srv->rl, r->user.id, k, now_ms(), &retry))
		return 0;
	char v[16];
	snprintf(v, sizeof(v), "%u", retry);
	http_header(r, "Retry-After", v);
	http_reply_error(r, 429, "rate limit: at most %lld %s per minute; retry in %u s",
			 (long long)(k == RATE_CREATE ? r->srv->cfg.limits.creates_per_min
						      : r->srv->cfg.limits.execs_per_min),
			 k == RATE_CREATE ? "creates" : "execs", retry);
	return -EAGAIN;
}

void api_reply_sandbox(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct http_req *r = arg;
	if (rc < 0) {
		http_reply_err(r, rc, e);
		return;
	}
	int status = r->ctx ? (int)(intptr_t)r->ctx : 200;
	r->ctx = NULL;
	http_reply_json(r, status, api_sandbox_json(sb));
}

void api_health(struct http_req *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "ok");
	cJSON_AddStringToObject(o, "version", BHATTI_VERSION);
	cJSON_AddStringToObject(o, "accel", engine_accel(r->srv->eng));
	http_reply_json(r, 200, o);
}
