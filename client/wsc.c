/* wsc.c — WebSocket client frames, the message decoder and the handshake
 * key/accept values (see wsc.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <libwebsockets.h>
#include <sodium.h>

#include "wsc.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void wsc_init(struct wsc *w)
{
	buf_init(&w->partial);
	buf_init(&w->msg);
	w->partial_op = -1;
}

void wsc_release(struct wsc *w)
{
	buf_release(&w->partial);
	buf_release(&w->msg);
	w->partial_op = -1;
}

void wsc_frame(struct buf *out, int opcode, const void *p, size_t n)
{
	uint8_t h[14], mask[4];
	size_t hl = 0;
	h[hl++] = (uint8_t)(0x80 | (opcode & 0x0f));
	if (n < 126) {
		h[hl++] = (uint8_t)(0x80 | n);
	} else if (n <= 0xffff) {
		h[hl++] = 0x80 | 126;
		h[hl++] = (uint8_t)(n >> 8);
		h[hl++] = (uint8_t)n;
	} else {
		h[hl++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	randombytes_buf(mask, sizeof(mask));
	memcpy(h + hl, mask, 4);
	hl += 4;
	buf_add(out, h, hl);
	size_t start = out->len;
	buf_add(out, p, n);
	uint8_t *d = (uint8_t *)out->data + start;
	for (size_t i = 0; i < n; i++)
		d[i] ^= mask[i & 3];
}

int wsc_take(struct wsc *w, struct buf *in, int *ret_opcode)
{
	for (;;) {
		const uint8_t *d = (const uint8_t *)in->data;
		if (in->len < 2)
			return 0;
		bool fin = d[0] & 0x80;
		int op = d[0] & 0x0f;
		bool control = op >= 8;
		if (d[0] & 0x70)
			return -EPROTO;   /* no extension was negotiated */
		if ((op > WSC_BINARY && op < WSC_CLOSE) || op > WSC_PONG)
			return -EPROTO;   /* unknown opcode */
		if (d[1] & 0x80)
			return -EPROTO;   /* a server never masks */
		uint64_t len = d[1] & 0x7f;
		size_t hl = 2;
		if (control && (!fin || len > 125))
			return -EPROTO;
		if (len == 126) {
			if (in->len < 4)
				return 0;
			len = (uint64_t)d[2] << 8 | d[3];
			hl = 4;
		} else if (len == 127) {
			if (in->len < 10)
				return 0;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | d[2 + i];
			hl = 10;
		}
		if (len > WSC_MAX_MESSAGE)
			return -EMSGSIZE;
		if (!control && op == WSC_CONT && w->partial_op < 0)
			return -EPROTO;   /* a continuation of nothing */
		if (!control && op != WSC_CONT && w->partial_op >= 0)
			return -EPROTO;   /* a new message inside a fragmented one */
		if (!control && w->partial.len + len > WSC_MAX_MESSAGE)
			return -EMSGSIZE;
		if (in->len < hl + len)
			return 0;
		const char *payload = in->data + hl;
		if (control) {
			buf_reset(&w->msg);
			buf_add(&w->msg, payload, (size_t)len);
			buf_consume(in, hl + (size_t)len);
			*ret_opcode = op;
			return 1;
		}
		if (op != WSC_CONT)
			w->partial_op = op;
		buf_add(&w->partial, payload, (size_t)len);
		buf_consume(in, hl + (size_t)len);
		if (fin) {
			*ret_opcode = w->partial_op;
			w->partial_op = -1;
			struct buf t = w->msg;   /* the message is the joined fragments */
			w->msg = w->partial;
			w->partial = t;
			buf_reset(&w->partial);
			return 1;
		}
	}
}

void wsc_key(char key[WSC_KEY_LEN])
{
	uint8_t raw[16];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(key, WSC_KEY_LEN, raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
}

void wsc_accept(const char *key, char accept[WSC_ACCEPT_LEN])
{
	char in[128];
	unsigned char sha[20];
	snprintf(in, sizeof(in), "%s%s", key, WS_GUID);
	lws_SHA1((const unsigned char *)in, strlen(in), sha);
	sodium_bin2base64(accept, WSC_ACCEPT_LEN, sha, sizeof(sha), sodium_base64_VARIANT_ORIGINAL);
}
