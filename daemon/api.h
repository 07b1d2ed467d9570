/* api — helpers shared by the API handlers (daemon/api-*.c): the caller's
 * sandbox from the path, the sandbox object, JSON bodies, bytes as JSON.
 *
 * Sits between http.h (requests, responses) and the core (sandbox.h,
 * store.h). Handlers are listed in one table, daemon/routes.c.
 */
#ifndef BHATTI_API_H
#define BHATTI_API_H

#include <cjson/cJSON.h>

#include "http.h"
#include "json.h"
#include "sandbox.h"

/* The caller's sandbox named by the first path parameter, or NULL after
 * answering 404. */
struct sbx *api_sandbox(struct http_req *r);
/* The sandbox object of docs/api.md. */
cJSON *api_sandbox_json(struct sbx *sb);
/* Parse the body by the table, or answer 400 and return -EINVAL. */
int api_parse(struct http_req *r, const struct json_field *fields, size_t n, void *obj);
/* RFC 3339 UTC. */
void api_time(char out[32], int64_t unix_sec);
/* Add key (or key_b64 when p is not valid UTF-8 or has a NUL) to o. */
void api_add_bytes(cJSON *o, const char *key, const uint8_t *p, size_t n);
/* Take a rate-limit token, or answer 429 with Retry-After. */
int api_rate(struct http_req *r, enum rate_kind k);
/* An sbx_done_fn that answers r (the arg) with the sandbox object, or the
 * error; status for success in r->ctx as (intptr_t). */
void api_reply_sandbox(struct sbx *sb, int rc, const struct err *e, void *arg);

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
void api_sessions(struct http_req *r);
void api_shell(struct http_req *r);
void api_file_get(struct http_req *r);
void api_file_head(struct http_req *r);
void api_file_put(struct http_req *r);
void api_secret_list(struct http_req *r);
void api_secret_set(struct http_req *r);
void api_secret_delete(struct http_req *r);

#endif
