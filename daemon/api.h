/* api — helpers shared by the API handlers (daemon/api-*.c): the caller's
 * sandbox from the path, the sandbox object, JSON bodies, bytes as JSON.
 *
 * Sits between http.h (requests, responses) and the core (sandbox.h,
 * store.h). Handlers are listed in one table, daemon/routes.c.
 */
#ifndef BHATTI_API_H
#define BHATTI_API_H

#include <cjson/cJSON.h>

#include "guest.h"
#include "http.h"
#include "json.h"
#include "sandbox.h"

/* The caller's sandbox named by the first path parameter, or NULL after
 * answering 404. */
struct sbx *api_sandbox(struct http_req *r);
/* The sandbox object of docs/api.md. */
cJSON *api_sandbox_json(struct sbx *sb);
/* What inspect adds to it: the thermal timers and activity. */
void api_sandbox_thermal_json(struct sbx *sb, cJSON *o);
/* Parse the body by the table, or answer 400 and return -EINVAL. */
int api_parse(struct http_req *r, const struct json_field *fields, size_t n, void *obj);
/* RFC 3339 UTC. */
void api_time(char out[32], int64_t unix_sec);
/* Append "key":"text" to out, JSON-escaped, when p is valid UTF-8 without
 * NUL and escaping does not more than double it; else "key_b64":"…". */
void api_json_bytes(struct buf *out, const char *key, const uint8_t *p, size_t n);
/* Take a rate-limit token, or answer 429 with Retry-After. */
int api_rate(struct http_req *r, enum rate_kind k);

/* One of the caller's concurrent execs (limits.max_execs_per_user,
 * limits.max_execs): 0, or -EAGAIN after answering 429. Released by
 * api_slot_release (again: a no-op). */
struct api_slot {
	struct ratelimit *rl;
	int64_t user_id;
	bool held;
};
int api_slot_take(struct http_req *r, struct api_slot *s, enum rate_kind k);
void api_slot_release(struct api_slot *s);

/* The HTTP status for a guest operation that failed with rc (end->rc,
 * or a caller's mapping of it): the agent connection lost (the sandbox
 * stopped or went away meanwhile) is a conflict. */
int api_guest_status(const struct guest_end *end, int rc);

/* Answer r with the sandbox object (or 204 when status is 204) once an
 * operation on sb ends: pass api_sandbox_done and api_wait(r, sb, status)
 * as its done and arg (sb may be set later with api_wait_on: a create
 * learns it from sbx_create), and call api_wait_failed(r) when it did not
 * start. If r goes first (its client left), the wait is cancelled. */
void *api_wait(struct http_req *r, struct sbx *sb, int status);
void api_wait_on(struct http_req *r, struct sbx *sb);
void api_wait_failed(struct http_req *r);
void api_sandbox_done(struct sbx *sb, int rc, const struct err *e, void *arg);

/* handlers (routes.c) */
void api_health(struct http_req *r);
void api_sandbox_create(struct http_req *r);
void api_sandbox_list(struct http_req *r);
void api_sandbox_get(struct http_req *r);
void api_sandbox_patch(struct http_req *r);
void api_sandbox_delete(struct http_req *r);
void api_sandbox_stop(struct http_req *r);
void api_sandbox_start(struct http_req *r);
void api_exec(struct http_req *r);
void api_exec_ws(struct http_req *r);
void api_sessions(struct http_req *r);
void api_shell(struct http_req *r);
void api_execs(struct http_req *r);
void api_file_get(struct http_req *r);
void api_file_head(struct http_req *r);
void api_file_put(struct http_req *r);
void api_secret_list(struct http_req *r);
void api_secret_set(struct http_req *r);
void api_secret_delete(struct http_req *r);
void api_events(struct http_req *r);
void api_sandbox_snapshot(struct http_req *r);
void api_sandbox_fork(struct http_req *r);
void api_snapshot_list(struct http_req *r);
void api_snapshot_get(struct http_req *r);
void api_snapshot_delete(struct http_req *r);
void api_snapshot_resume(struct http_req *r);
void api_image_list(struct http_req *r);
void api_publish_add(struct http_req *r);
void api_publish_list(struct http_req *r);
void api_publish_remove(struct http_req *r);
void api_ports(struct http_req *r);
void api_ports_all(struct http_req *r);

#endif
