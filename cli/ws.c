/* ws.c — WebSocket client handshake and frame codec (see ws.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <libwebsockets.h>
#include <sodium.h>

#include "conn.h"
#include "util.h"
#include "ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void ws_frame(struct buf *out, int opcode, const void *p, size_t n)
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

int ws_take(struct buf *in, struct buf *partial, int *partial_op, int *ret_opcode,
	    struct buf *ret_msg)
{
	for (;;) {
		const uint8_t *d = (const uint8_t *)in->data;
		if (in->len < 2)
			return 0;
		bool fin = d[0] & 0x80;
		int op = d[0] & 0x0f;
		if (d[0] & 0x70)
			return -EPROTO;   /* no extensions were negotiated */
		bool masked = d[1] & 0x80;
		uint64_t len = d[1] & 0x7f;
		size_t hl = 2;
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
		if (len > WS_MAX_MESSAGE)
			return -EMSGSIZE;
		uint8_t mask[4] = { 0 };
		if (masked) {
			if (in->len < hl + 4)
				return 0;
			memcpy(mask, d + hl, 4);
			hl += 4;
		}
		if (in->len < hl + len)
			return 0;
		struct buf payload = BUF_INIT;
		buf_add(&payload, d + hl, (size_t)len);
		for (size_t i = 0; masked && i < len; i++)
			payload.data[i] ^= (char)mask[i & 3];
		buf_consume(in, hl + (size_t)len);
		bool control = op >= 8;
		if (control) {
			if (!fin || len > 125) {
				buf_release(&payload);
				return -EPROTO;
			}
			*ret_opcode = op;
			buf_reset(ret_msg);
			buf_add(ret_msg, payload.data, payload.len);
			buf_release(&payload);
			return 1;
		}
		if (op == WS_CONT) {
			if (*partial_op < 0) {
				buf_release(&payload);
				return -EPROTO;
			}
		} else {
			if (*partial_op >= 0) {
				buf_release(&payload);
				return -EPROTO;   /* a new message inside a fragmented one */
			}
			*partial_op = op;
			buf_reset(partial);
		}
		if (partial->len + payload.len > WS_MAX_MESSAGE) {
			buf_release(&payload);
			return -EMSGSIZE;
		}
		buf_add(partial, payload.data, payload.len);
		buf_release(&payload);
		if (fin) {
			*ret_opcode = *partial_op;
			*partial_op = -1;
			buf_reset(ret_msg);
			buf_add(ret_msg, partial->data, partial->len);
			buf_reset(partial);
			return 1;
		}
	}
}

/* Collect a refused upgrade's answer (the daemon's JSON error). */
static bool collect(const char *p, size_t n, void *arg)
{
	struct buf *b = arg;
	if (b->len < 4096)
		buf_add(b, p, n);
	return true;
}

int ws_connect(const char *base_url, const char *path_query, const char *token, int *ret_fd,
	       struct buf *ret_leftover, struct err *e)
{
	struct conn c;
	if (conn_open(&c, base_url, e) < 0) {
		conn_close(&c);
		return -1;
	}
	uint8_t raw[16];
	char key[32], want[64], sha_in[128];
	unsigned char sha[20];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(key, sizeof(key), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	snprintf(sha_in, sizeof(sha_in), "%s%s", key, WS_GUID);
	lws_SHA1((const unsigned char *)sha_in, strlen(sha_in), sha);
	lws_b64_encode_string((const char *)sha, 20, want, sizeof(want));
	struct buf h = BUF_INIT;
	buf_addf(&h, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n",
		 key, token);
	int rc = conn_send_head(&c, "GET", path_query, h.data, -1, e);
	memset(h.data, 0, h.len);
	buf_release(&h);
	struct conn_head hd;
	if (rc == 0)
		rc = conn_read_head(&c, &hd, e);
	if (rc == 0 && hd.status != 101) {
		struct buf body = BUF_INIT;
		struct err be = ERR_INIT;
		conn_read_body(&c, &hd, false, collect, &body, &be);
		cJSON *j = cJSON_ParseWithLength(body.data, body.len);
		cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "error");
		if (cJSON_IsString(m))
			rc = err_set(e, EPROTO, "%s", m->valuestring);
		else
			rc = err_set(e, EPROTO, "the daemon refused the WebSocket (HTTP %d)", hd.status);
		e->code = hd.status == 404 ? ENOENT : hd.status == 401 ? EACCES : EPROTO;
		cJSON_Delete(j);
		buf_release(&body);
	} else if (rc == 0 && strcmp(hd.ws_accept, want) != 0) {
		rc = err_set(e, EPROTO, "bad Sec-WebSocket-Accept from the daemon");
	}
	if (rc < 0) {
		conn_close(&c);
		return rc;
	}
	buf_add(ret_leftover, c.in.data, c.in.len);
	*ret_fd = c.fd;
	c.fd = -1;
	conn_close(&c);
	return 0;
}
