/* agent-input.h — the shape of fuzz-agent's inputs, shared with gen-seeds.
 *
 * fuzz-agent opens these API requests through the HTTP front, one after
 * the other, each on its own connection, so request i runs on agent stream
 * i + 1. Then the input is played as records, the daemon served after each:
 *
 *   op byte & 3 == AI_AGENT   u16 (little-endian) length, then that many
 *                             bytes from the agent (frames, or anything)
 *               == AI_LEAVE   the client of request (op >> 2) % AR_COUNT
 *                             goes away (its connection closed)
 *               == AI_KEYS    u16 length, then bytes the shell's client
 *                             sends as one binary message (keys)
 *               == AI_HANGUP  the agent closes its end of the channel
 *
 * A length past the end of the input is cut to what is there. Not product
 * code. */
#ifndef BHATTI_FUZZ_AGENT_INPUT_H
#define BHATTI_FUZZ_AGENT_INPUT_H

#include <stdbool.h>

enum { AI_AGENT, AI_LEAVE, AI_KEYS, AI_HANGUP };

enum {
	AR_EXEC,          /* exec answered whole, with stdin */
	AR_EXEC_STREAM,   /* exec streamed as ndjson */
	AR_SHELL,         /* a shell WebSocket (a new session) */
	AR_READ,          /* GET a file */
	AR_WRITE,         /* PUT a file */
	AR_STAT,          /* HEAD a file */
	AR_LS,            /* GET a directory listing */
	AR_SESSIONS,      /* GET the session list */
	AR_COUNT
};

static const struct agent_request {
	const char *method, *path, *body, *extra;
	bool ws;
} agent_requests[AR_COUNT] = {
	[AR_EXEC] = { "POST", "/sandboxes/box/exec", "{\"cmd\":[\"cat\"],\"stdin\":\"input\"}", NULL,
		      false },
	[AR_EXEC_STREAM] = { "POST", "/sandboxes/box/exec", "{\"cmd\":[\"ls\",\"-l\"]}",
			     "Accept: application/x-ndjson\r\n", false },
	[AR_SHELL] = { "GET", "/sandboxes/box/ws?cols=80&rows=24", NULL, NULL, true },
	[AR_READ] = { "GET", "/sandboxes/box/files?path=/etc/motd", NULL, NULL, false },
	[AR_WRITE] = { "PUT", "/sandboxes/box/files?path=/tmp/f&mode=0600", "file contents\n", NULL,
		       false },
	[AR_STAT] = { "HEAD", "/sandboxes/box/files?path=/tmp/f", NULL, NULL, false },
	[AR_LS] = { "GET", "/sandboxes/box/files?path=/tmp&ls=true", NULL, NULL, false },
	[AR_SESSIONS] = { "GET", "/sandboxes/box/sessions", NULL, NULL, false },
};

#endif
