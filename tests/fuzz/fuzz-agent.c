/* fuzz-agent.c — libFuzzer target for the agent channel with the real API
 * callbacks attached: the host side of the protocol (daemon/agent-client.c)
 * under the guest core (daemon/guest.c) and the handlers (daemon/api-*.c),
 * with the tenant playing the agent.
 *
 * For every input, the in-process daemon of tests/fuzz/daemon.h gets a new
 * agent channel for its hot sandbox "box" (a socketpair, watched as the
 * QEMU backend watches a VM's channel, made ready with a real HELLO_OK);
 * then the API requests of agent-input.h are opened through the HTTP front
 * (exec answered whole and streamed, a shell WebSocket, file read, write,
 * stat and listing, the session list), so each has its stream with the
 * real callbacks on it; then the input plays the agent's bytes, clients
 * leaving, keys typed into the shell and the agent hanging up, in any
 * order (agent-input.h), the daemon served after each step. At the end the
 * clients leave, the channel is taken away, and everything must be freed.
 *
 * Oracles beyond "no crash, no leak": ASan catches a callback that reaches
 * freed memory (the use-after-free of issue 10 item 1 was one); the daemon
 * settles and closes every connection; what it answers is well-formed
 * HTTP, ndjson, WebSocket and JSON (fzd_check_answers).
 * Build and run: `make fuzz` (docs/testing.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent-input.h"
#include "client.h"
#include "daemon.h"
#include "proto.h"
#include "wsc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct client *client;
static struct buf hello_ok = BUF_INIT;

int LLVMFuzzerInitialize(int *argc UNUSED, char ***argv UNUSED)
{
	fzd_start();
	struct client_settings cs = { .url = (char *)"http://127.0.0.1:8080",
				      .token = (char *)FZD_KEY };
	client = client_new(&cs);
	struct proto_hello_ok h = {
		.version = PROTO_VERSION, .agent_version = (char *)"fuzz", .max_frame = PROTO_MAX_FRAME,
		.window = PROTO_WINDOW, .max_streams = 64, .hostname = (char *)"box", .configured = 1,
	};
	proto_put_msg(&hello_ok, 0, PROTO_HELLO_OK, 0, &h);
	return 0;
}

/* The client's request i, as the client library writes it. */
static void request(struct buf *b, int i)
{
	const struct agent_request *r = &agent_requests[i];
	if (r->ws) {
		char key[WSC_KEY_LEN], extra[256];
		wsc_key(key);
		snprintf(extra, sizeof(extra), "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key);
		client_head(client, b, r->method, r->path, extra, -1);
		return;
	}
	struct buf extra = BUF_INIT;
	if (r->extra)
		buf_adds(&extra, r->extra);
	client_head(client, b, r->method, r->path, extra.data,
		    r->body ? (long long)strlen(r->body) : -1);
	if (r->body)
		buf_adds(b, r->body);
	buf_release(&extra);
}

/* The next record's payload: a little-endian u16 length, cut to the end. */
static const uint8_t *payload(const uint8_t *data, size_t size, size_t *off, size_t *ret_len)
{
	size_t len = 0;
	if (*off + 2 <= size)
		len = (size_t)data[*off] | (size_t)data[*off + 1] << 8;
	*off = MIN(*off + 2, size);
	len = MIN(len, size - *off);
	*ret_len = len;
	const uint8_t *p = data + *off;
	*off += len;
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fzd_agent ag;
	struct fzd_conn conns[AR_COUNT];
	struct fzd_conn *all[AR_COUNT + 1];
	fzd_agent_attach(&ag, fzd_box(), hello_ok.data, hello_ok.len);
	all[AR_COUNT] = &ag.c;
	for (int i = 0; i < AR_COUNT; i++) {
		struct buf b = BUF_INIT;
		fzd_open(&conns[i]);
		all[i] = &conns[i];
		request(&b, i);
		fzd_write(&conns[i], b.data, b.len);
		buf_release(&b);
		struct fzd_conn *both[] = { &conns[i], &ag.c };
		fzd_serve(both, 2);   /* one at a time: request i is stream i + 1 */
	}
	for (size_t off = 0; off < size;) {
		uint8_t op = data[off++];
		size_t len;
		const uint8_t *p;
		switch (op & 3) {
		case AI_AGENT:
			p = payload(data, size, &off, &len);
			if (ag.c.fd >= 0)
				fzd_write(&ag.c, p, len);
			break;
		case AI_LEAVE: {
			struct fzd_conn *c = &conns[(op >> 2) % AR_COUNT];
			if (c->fd >= 0)
				close(c->fd);
			c->fd = -1;
			break;
		}
		case AI_KEYS: {
			p = payload(data, size, &off, &len);
			struct buf f = BUF_INIT;
			wsc_frame(&f, WSC_BINARY, p, len);
			if (conns[AR_SHELL].fd >= 0)
				fzd_write(&conns[AR_SHELL], f.data, f.len);
			buf_release(&f);
			break;
		}
		case AI_HANGUP:
			fzd_agent_hangup(&ag);
			break;
		}
		fzd_serve(all, AR_COUNT + 1);
	}
	for (int i = 0; i < AR_COUNT; i++)
		fzd_check_answers(&conns[i].out, i == AR_STAT);
	fzd_close(all, AR_COUNT);
	fzd_agent_detach(&ag);
	fzd_reset();
	return 0;
}
