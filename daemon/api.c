/* api.c — helpers shared by the API handlers (see api.h), and the
 * handlers that are one-liners: health. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "api.h"
#include "config.h"
#include "net.h"
#include "labels.h"
#include "server.h"
#include "thermal.h"

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

/* Networking: "ip", "mac", "egress" (when it has an address). */
static void api_sandbox_net_json(struct sbx *sb, cJSON *o)
{
	if (!sb->row.ip)
		return;
	char mac[18];
	net_mac(sb->row.id, mac);
	cJSON_AddStringToObject(o, "ip", sb->row.ip);
	cJSON_AddStringToObject(o, "mac", mac);
	cJSON *eg = sb->row.egress ? cJSON_Parse(sb->row.egress) : NULL;
	if (eg)
		cJSON_AddItemToObject(o, "egress", eg);
}

/* "labels": {"K": "V", …} from labels.h's text (an empty object: none) */
static void api_labels_json(cJSON *o, const char *text)
{
	cJSON *l = cJSON_AddObjectToObject(o, "labels");
	char **v = labels_split(text);
	for (char **p = v; *p; p++) {
		char *eq = strchr(*p, '=');
		*eq = '\0';
		cJSON_AddStringToObject(l, *p, eq + 1);
	}
	strv_free(v);
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
	if (sb->row.disk_size)
		cJSON_AddNumberToObject(o, "disk_size", (double)sb->row.disk_size);
	api_time(when, sb->row.created_at);
	cJSON_AddStringToObject(o, "created_at", when);
	if (sb->vm)
		cJSON_AddStringToObject(o, "origin", sbx_origin(sb));
	if (strcmp(state, "error") == 0)
		cJSON_AddStringToObject(o, "error", sbx_error(sb));
	cJSON_AddStringToObject(o, "thermal", sbx_thermal(sb));
	cJSON_AddBoolToObject(o, "keep_hot", sb->row.keep_hot);
	/* how long nothing has kept it busy (the list's IDLE; the TUI's) */
	cJSON_AddNumberToObject(o, "idle_ms", strcmp(sbx_thermal(sb), "hot") == 0 ?
				(double)sbx_idle_ms(sb) :
				(double)(wall_ms() - sb->row.thermal.last_activity));
	api_sandbox_net_json(sb, o);
	api_labels_json(o, sb->row.labels);
	return o;
}

void api_sandbox_thermal_json(struct sbx *sb, cJSON *o)
{
	const struct settings *c = &sb->srv->cfg;
	const struct sandbox_thermal *t = &sb->row.thermal;
	char d[32];
	cJSON_AddNumberToObject(o, "last_activity", (double)t->last_activity);
	config_fmt_duration(d, sizeof(d), c->thermal.warm_after);
	cJSON_AddStringToObject(o, "warm_after", d);
	config_fmt_duration(d, sizeof(d), c->thermal.cold_after);
	cJSON_AddStringToObject(o, "cold_after", d);
	if (t->warm_since)
		cJSON_AddNumberToObject(o, "thermal_since", (double)t->warm_since);
	cJSON_AddNumberToObject(o, "wake_count", (double)t->wake_count);
	cJSON_AddNumberToObject(o, "last_wake_ms", (double)t->last_wake_ms);
	struct thermal_info ti;
	thermal_info(sb, &ti);
	cJSON *a = cJSON_AddObjectToObject(o, "activity");
	cJSON_AddNumberToObject(a, "guest_streams", sb->guest_ops);
	if (ti.known) {
		cJSON_AddNumberToObject(a, "cpu_percent", ti.cpu_percent);
		cJSON_AddNumberToObject(a, "tcp_out", ti.tcp_out);
		cJSON_AddNumberToObject(a, "holds", ti.holds);
		cJSON_AddNumberToObject(a, "hold_ms", (double)ti.hold_ms);
		cJSON_AddNumberToObject(a, "forwards", ti.forwards);
		if (ti.busy)
			cJSON_AddStringToObject(a, "busy", ti.busy);
	}
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

/* The length of p as the inside of a JSON string. */
static size_t escaped_len(const uint8_t *p, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += p[i] == '"' || p[i] == '\\' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t' ? 2
		       : p[i] < 0x20 ? 6 : 1;
	return len;
}

void api_json_bytes(struct buf *out, const char *key, const uint8_t *p, size_t n)
{
	if (utf8_text(p, n) && escaped_len(p, n) <= 2 * n + 16) {
		buf_addf(out, "\"%s\":\"", key);
		buf_grow(out, n + n / 8 + 2);
		for (size_t i = 0; i < n; i++) {
			uint8_t c = p[i];
			if (c == '"' || c == '\\') {
				buf_addch(out, '\\');
				buf_addch(out, (char)c);
			} else if (c == '\n') {
				buf_add(out, "\\n", 2);
			} else if (c == '\r') {
				buf_add(out, "\\r", 2);
			} else if (c == '\t') {
				buf_add(out, "\\t", 2);
			} else if (c < 0x20) {
				buf_addf(out, "\\u%04x", c);
			} else {
				buf_addch(out, (char)c);
			}
		}
		buf_addch(out, '"');
		return;
	}
	size_t blen = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	buf_addf(out, "\"%s_b64\":\"", key);
	buf_grow(out, blen + 1);
	sodium_bin2base64(out->data + out->len, blen, p, n, sodium_base64_VARIANT_ORIGINAL);
	buf_setlen(out, out->len + blen - 1);
	buf_addch(out, '"');
}

int api_rate(struct http_req *r, enum rate_kind k)
{
	return http_rate(r, k);
}

int api_slot_take(struct http_req *r, struct api_slot *s, enum rate_kind k UNUSED)
{
	const struct settings *c = &r->srv->cfg;
	if (!ratelimit_hold(r->srv->rl, r->user.id, c->limits.max_execs_per_user,
			    c->limits.max_execs)) {
		http_header(r, "Retry-After", "1");
		http_reply_error(r, 429, "too many commands running at once: at most %lld per user, "
					 "%lld in all; retry when one has ended",
				 (long long)c->limits.max_execs_per_user, (long long)c->limits.max_execs);
		return -EAGAIN;
	}
	*s = (struct api_slot){ .rl = r->srv->rl, .user_id = r->user.id, .held = true };
	return 0;
}

void api_slot_release(struct api_slot *s)
{
	if (s->held)
		ratelimit_unhold(s->rl, s->user_id);
	s->held = false;
}

int api_guest_status(const struct guest_end *end, int rc)
{
	return end->lost ? 409 : http_status_for(rc);
}

/* ---- waiting for a sandbox operation ---- */

struct wait_ctx {
	struct http_req *r;
	struct sbx *sb;          /* while the wait is ours */
	int status;
};

static void wait_ctx_free(void *p)
{
	struct wait_ctx *w = p;
	if (w->sb)
		sbx_cancel_wait(w->sb, w);
	free(w);
}

void *api_wait(struct http_req *r, struct sbx *sb, int status)
{
	struct wait_ctx *w = xcalloc(1, sizeof(*w));
	w->r = r;
	w->sb = sb;
	w->status = status;
	r->ctx = w;
	r->ctx_free = wait_ctx_free;
	return w;
}

void api_wait_on(struct http_req *r, struct sbx *sb)
{
	struct wait_ctx *w = r->ctx;
	w->sb = sb;
}

void api_wait_failed(struct http_req *r)
{
	struct wait_ctx *w = r->ctx;
	w->sb = NULL;
}

void api_sandbox_done(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct wait_ctx *w = arg;
	struct http_req *r = w->r;
	w->sb = NULL;
	if (rc < 0)
		http_reply_err(r, rc, e);
	else if (w->status == 204)
		http_reply_empty(r, 204);
	else
		http_reply_json(r, w->status, api_sandbox_json(sb));
}

void api_health(struct http_req *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "ok");
	cJSON_AddStringToObject(o, "version", BHATTI_VERSION);
	cJSON_AddStringToObject(o, "accel", server_accel(r->srv));
	http_reply_json(r, 200, o);
}
