/* fuzz-json.c — libFuzzer target for the JSON request bodies: the first
 * input byte picks a route whose handler parses its body with a json_field
 * table (json-routes.h: create, rename, exec, set a secret, and the shell's
 * text messages); the rest of the input is the body, sent after a fixed,
 * authenticated head as the client library writes it (for the shell: a
 * WebSocket upgrade, then the body as one text message) to the in-process
 * daemon of tests/fuzz/daemon.h. So what is fuzzed is the handlers' real
 * tables through shared/json.c, and everything a body that passes them
 * sets going (sandbox creates with quotas and secrets, renames, execs,
 * resizes) on the fake engine.
 *
 * Oracles beyond "no crash, no leak": every request is answered (the
 * request is whole: the daemon must say something before it settles),
 * and those of fuzz-http (the daemon settles, closes, and answers in
 * well-formed HTTP whose JSON bodies and text messages parse as JSON).
 * Build and run: `make fuzz` (docs/testing.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "daemon.h"
#include "json-routes.h"
#include "wsc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct client *client;

int LLVMFuzzerInitialize(int *argc UNUSED, char ***argv UNUSED)
{
	fzd_start();
	struct client_settings cs = { .url = (char *)"http://127.0.0.1:8080",
				      .token = (char *)FZD_KEY };
	client = client_new(&cs);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const struct json_route *r = &json_routes[data[0] % JR_COUNT];
	const uint8_t *body = data + 1;
	size_t n = size - 1;
	struct buf req = BUF_INIT;
	if (data[0] % JR_COUNT == JR_RESIZE) {
		char key[WSC_KEY_LEN], extra[256];
		wsc_key(key);
		snprintf(extra, sizeof(extra), "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key);
		client_head(client, &req, r->method, r->path, extra, -1);
		wsc_frame(&req, WSC_TEXT, body, n);
	} else {
		client_head(client, &req, r->method, r->path, "Content-Type: application/json\r\n",
			    (long long)n);
		buf_add(&req, body, n);
	}
	struct fzd_conn c;
	struct fzd_conn *one[] = { &c };
	fzd_open(&c);
	fzd_write(&c, req.data, req.len);
	buf_release(&req);
	fzd_serve(one, 1);
	if (!c.out.len) {
		fprintf(stderr, "fuzz-json: no answer to a whole request\n");
		abort();
	}
	fzd_check_answers(&c.out, false);
	fzd_close(one, 1);
	fzd_reset();
	return 0;
}
