/* fuzz-httpc.c — libFuzzer target for the client library's HTTP/1.1
 * response parser (client/httpc.c). The first input byte says whether the
 * answer is to a HEAD request (bit 0) and whether the connection closes
 * after the bytes (bit 1, then httpc_eof()); the rest is what the server
 * sent. It is parsed three ways: whole through httpc_feed(), one byte at a
 * time, and in pieces whose sizes the input picks.
 *
 * Oracles beyond "no crash, no leak":
 *   - the three give the same result: the end (done, more wanted, the same
 *     error), the head (at most one), the body bytes, and the bytes used;
 *   - HTTPC_MORE means every byte given was used; a body piece lies within
 *     the bytes given; after HTTPC_DONE the parser uses nothing more;
 *   - a complete Content-Length answer has exactly that many body bytes.
 * Build and run: `make fuzz` (docs/testing.md).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "httpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
	int rc;
	int heads;
	struct httpc_head head;
	struct buf body;
	size_t used;
	int code;
};

static void on_head(struct result *r, const struct httpc *p)
{
	if (++r->heads > 1)
		abort();   /* one head per answer */
	r->head = p->head;
}

/* Parse in pieces from step(); httpc_eof() at the end when eof. */
static void parse(const char *in, size_t n, size_t (*step)(size_t off, void *arg), void *arg,
		  bool head_req, bool eof, struct result *r)
{
	struct httpc p;
	struct err e = ERR_INIT;
	memset(r, 0, sizeof(*r));
	buf_init(&r->body);
	httpc_init(&p, head_req);
	int rc = HTTPC_MORE;
	size_t off = 0;
	while (off < n && rc != HTTPC_DONE && rc >= 0) {
		size_t chunk = MIN(step(off, arg), n - off), pos = 0;
		for (;;) {
			size_t used, len;
			const char *piece;
			rc = httpc_parse(&p, in + off + pos, chunk - pos, &used, &piece, &len, &e);
			if (used > chunk - pos)
				abort();
			pos += used;
			if (rc < 0 || rc == HTTPC_DONE || rc == HTTPC_MORE)
				break;
			if (rc == HTTPC_HEAD) {
				on_head(r, &p);
			} else if (rc == HTTPC_BODY) {
				if (piece < in + off || piece + len > in + off + chunk)
					abort();   /* a piece outside the bytes given */
				buf_add(&r->body, piece, len);
			} else {
				abort();
			}
		}
		if (rc == HTTPC_MORE && pos != chunk)
			abort();   /* MORE: everything was used */
		off += pos;
	}
	if (rc == HTTPC_DONE) {
		size_t used, len;
		const char *piece;
		if (httpc_parse(&p, "x", 1, &used, &piece, &len, &e) != HTTPC_DONE || used)
			abort();   /* done is done */
	}
	if (rc == HTTPC_MORE && eof)
		rc = httpc_eof(&p, &e);
	r->rc = rc;
	r->used = off;
	r->code = rc < 0 ? e.code : 0;
	httpc_release(&p);
}

static bool sink_head(void *arg, const struct httpc_head *h)
{
	struct result *r = arg;
	if (++r->heads > 1)
		abort();
	r->head = *h;
	return true;
}

static bool sink_body(void *arg, const char *p, size_t n)
{
	struct result *r = arg;
	buf_add(&r->body, p, n);
	return true;
}

/* All at once through httpc_feed(). */
static void feed_whole(const char *in, size_t n, bool head_req, bool eof, struct result *r)
{
	static const struct httpc_sink sink = { .head = sink_head, .body = sink_body };
	struct httpc p;
	struct err e = ERR_INIT;
	memset(r, 0, sizeof(*r));
	buf_init(&r->body);
	httpc_init(&p, head_req);
	size_t used;
	int rc = httpc_feed(&p, in, n, &sink, r, &used, &e);
	if (used > n || (rc == HTTPC_MORE && used != n))
		abort();
	if (rc == HTTPC_MORE && eof)
		rc = httpc_eof(&p, &e);
	r->rc = rc;
	r->used = used;
	r->code = rc < 0 ? e.code : 0;
	httpc_release(&p);
}

static size_t one(size_t off UNUSED, void *arg UNUSED)
{
	return 1;
}

static size_t picked(size_t off, void *arg)
{
	return (size_t)((const uint8_t *)arg)[off] % 64 + 1;
}

static bool same_head(const struct httpc_head *a, const struct httpc_head *b)
{
	return a->status == b->status && a->clen == b->clen && a->chunked == b->chunked &&
	       a->existing == b->existing && strcmp(a->retry_after, b->retry_after) == 0 &&
	       strcmp(a->ws_accept, b->ws_accept) == 0;
}

static void compare(const struct result *a, const struct result *b, const char *how)
{
	if (a->rc != b->rc || a->code != b->code || a->heads != b->heads ||
	    (a->heads && !same_head(&a->head, &b->head)) || a->body.len != b->body.len ||
	    memcmp(a->body.data, b->body.data, a->body.len) != 0 ||
	    (a->rc >= 0 && a->used != b->used)) {
		fprintf(stderr, "whole: rc %d (%d), %d heads, %zu body bytes, %zu used; %s: rc %d "
				"(%d), %d heads, %zu body bytes, %zu used\n",
			a->rc, a->code, a->heads, a->body.len, a->used, how, b->rc, b->code, b->heads,
			b->body.len, b->used);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool head_req = data[0] & 1, eof = data[0] & 2;
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	struct result a, b, c;
	feed_whole(in, n, head_req, eof, &a);
	parse(in, n, one, NULL, head_req, eof, &b);
	parse(in, n, picked, (void *)in, head_req, eof, &c);
	compare(&a, &b, "bytewise");
	compare(&a, &c, "in pieces");
	if (a.rc == HTTPC_DONE && a.heads && !a.head.chunked && a.head.clen >= 0 && !head_req &&
	    a.head.status >= 200 && a.head.status != 204 && a.head.status != 304 &&
	    a.body.len != (size_t)a.head.clen)
		abort();   /* Content-Length says how much body there is */
	buf_release(&a.body);
	buf_release(&b.body);
	buf_release(&c.body);
	return 0;
}
