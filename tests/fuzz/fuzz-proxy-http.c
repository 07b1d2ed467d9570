/* fuzz-proxy-http.c — libFuzzer target for the publish proxy's HTTP/1.1
 * heads and body framing (daemon/proxy-http.c): what a client sends the
 * public proxy and what a guest's server answers it. The first input
 * byte says which (bit 0: a response, answering a HEAD when bit 1), the
 * rest is the message: the head is found and parsed, then its body
 * followed three ways: whole, one byte at a time, and in pieces whose
 * sizes the input picks.
 *
 * Oracles beyond "no crash, no leak":
 *   - the three ways take the same number of bytes, end alike (done, more
 *     wanted, the same error);
 *   - pbody_take never takes more than it is given, and nothing once done;
 *   - a Content-Length body takes exactly that many bytes when they are
 *     there;
 *   - a parsed head's header names and values hold no CR, LF or NUL, and
 *     names no ':' (what the proxy writes on is what it parsed).
 * Build and run: `make fuzz` (docs/testing.md).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy-http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct way {
	size_t taken;
	int rc;           /* 0, or -EINVAL */
	bool done;
};

/* Feed n bytes in pieces of at most step (0: sizes from the input). */
static struct way follow(const struct pbody *start, const uint8_t *p, size_t n, size_t step,
			 const uint8_t *sizes, size_t nsizes)
{
	struct pbody b = *start;
	struct way w = { 0 };
	size_t k = 0;
	while (w.taken < n && !w.done) {
		size_t piece = step ? step : (size_t)(nsizes ? sizes[k++ % nsizes] % 64 + 1 : 1);
		if (piece > n - w.taken)
			piece = n - w.taken;
		bool done = false;
		ssize_t t = pbody_take(&b, p + w.taken, piece, &done);
		if (t < 0) {
			w.rc = (int)t;
			return w;
		}
		if ((size_t)t > piece)
			abort();
		w.taken += (size_t)t;
		w.done = done;
		if ((size_t)t < piece && !done)
			abort();   /* it stops early only at the end */
		if (b.kind == PBODY_CLOSE && done)
			abort();
	}
	if (w.done) {
		bool again = false;
		if (n > w.taken && b.kind != PBODY_CLOSE &&
		    pbody_take(&b, p + w.taken, n - w.taken, &again) != 0)
			abort();   /* nothing more once done */
	}
	return w;
}

static void check_head(const struct phead *h)
{
	for (size_t i = 0; i < h->nh; i++) {
		if (strpbrk(h->h[i].name, "\r\n:") || strpbrk(h->h[i].value, "\r\n") ||
		    !h->h[i].name[0])
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool response = data[0] & 1, head_req = data[0] & 2;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	ssize_t hl = phead_end(p, n, PHEAD_MAX);
	if (hl <= 0)
		return 0;
	struct phead h;
	struct err e = ERR_INIT;
	int r = response ? phead_parse_response(p, (size_t)hl, &h, &e)
			 : phead_parse_request(p, (size_t)hl, &h, &e);
	if (r < 0) {
		phead_release(&h);
		return 0;
	}
	check_head(&h);
	struct pbody b;
	r = response ? pbody_response(&h, head_req ? "HEAD" : "GET", &b, &e)
		     : pbody_request(&h, &b, &e);
	phead_release(&h);
	if (r < 0)
		return 0;
	const uint8_t *body = data + 1 + hl;
	size_t blen = n - (size_t)hl;
	struct way whole = follow(&b, body, blen, blen ? blen : 1, NULL, 0);
	struct way bytes = follow(&b, body, blen, 1, NULL, 0);
	struct way pieces = follow(&b, body, blen, 0, data, size < 16 ? size : 16);
	if (whole.rc != bytes.rc || whole.rc != pieces.rc)
		abort();
	if (whole.rc == 0 && (whole.taken != bytes.taken || whole.taken != pieces.taken ||
			      whole.done != bytes.done || whole.done != pieces.done))
		abort();
	if (b.kind == PBODY_LENGTH && blen >= b.left && (whole.taken != b.left || !whole.done))
		abort();
	return 0;
}
