/* execstream — the decoder of a streamed exec's answer (POST
 * /sandboxes/:id/exec with Accept: application/x-ndjson, docs/api.md):
 * one JSON object per line, {"type":"stdout"|"stderr","data"|"data_b64"},
 * then {"type":"exit","exit_code":N[,"timed_out":true]} or
 * {"type":"error","error":"…"}. Fed the body in any pieces; calls back
 * per output chunk and once for the end; or given the messages one by one
 * (the WebSocket exec, whose text frames are the same objects).
 *
 * Sits between the CLI's `bhatti exec` / the TUI's exec prompt and the
 * body of the answer. No I/O. Embedded: execstream_init/_release.
 */
#ifndef BHATTI_CLIENT_EXECSTREAM_H
#define BHATTI_CLIENT_EXECSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct execstream_cb {
	/* fd 1 (stdout) or 2 (stderr): bytes as the command wrote them */
	void (*output)(int fd, const char *p, size_t n, void *arg);
	/* {"type":"exit"} */
	void (*exit)(int code, bool timed_out, void *arg);
	/* {"type":"error"}, or an exit without a code */
	void (*error)(const char *msg, void *arg);
};

struct execstream {
	struct buf line;          /* a line not ended yet */
	const struct execstream_cb *cb;
	void *arg;
	bool ended;               /* exit or error came */
};

void execstream_init(struct execstream *x, const struct execstream_cb *cb, void *arg);
void execstream_release(struct execstream *x);
void execstream_feed(struct execstream *x, const char *p, size_t n);

/* One message already parsed (the WebSocket's text frames carry the
 * same objects, one each: cli/cmd-exec.c). */
struct cJSON;
void execstream_message(struct execstream *x, const struct cJSON *msg);

/* The bytes of one output message's "data" (text) or "data_b64" (the
 * exec stream's, and GET /sandboxes/:id/execs's): true with *ret (caller
 * frees) and *ret_len, false when it has neither or bad base64. */
bool execstream_data(const struct cJSON *msg, char **ret, size_t *ret_len);

#endif
