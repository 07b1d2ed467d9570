/* fuzz-http.c — libFuzzer target for the daemon's HTTP front: the input is
 * everything a client sends on one connection (requests, bodies, a
 * WebSocket upgrade and its frames), written to the in-process daemon of
 * tests/fuzz/daemon.h (real lws, http.c, routes, handlers, store, rate
 * limits; sandboxes on the fake engine). "bht_KKK…" (FZD_KEY) in the input
 * stands for the user's key.
 *
 * This exercises libwebsockets' request parser and everything of ours
 * behind it: routing, authentication, Content-Length rules, body limits,
 * the handlers, WebSocket messages, a client that leaves at any point.
 *
 * Oracles beyond "no crash, no leak" (ASan's, at every input's end: every
 * request and context freed):
 *   - the daemon settles: no busy loop (fzd_serve aborts on a livelock);
 *   - it closes the connection once the client has gone;
 *   - what it wrote reads as HTTP/1.1 answers with the client library's
 *     parser, and after a 101 as WebSocket frames (fzd_check_answers).
 * Build and run: `make fuzz` (docs/testing.md).
 */
#include <stdint.h>
#include <string.h>

#include "daemon.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc UNUSED, char ***argv UNUSED)
{
	fzd_start();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fzd_conn c;
	struct fzd_conn *one[] = { &c };
	fzd_open(&c);
	fzd_write(&c, data, size);
	fzd_serve(one, 1);
	fzd_check_answers(&c.out, memmem(data, size, "HEAD", 4) != NULL);
	fzd_close(one, 1);
	fzd_reset();
	return 0;
}
