/* ws.c — WebSocket client handshake and frame codec (see ws.h). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <libwebsockets.h>
#include <sodium.h>

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

static int dial(const char *host, const char *port, int *ret_fd, struct err *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return err_set(e, EHOSTUNREACH, "cannot resolve '%s': %s", host, gai_strerror(rc));
	int fd = -1, err = ECONNREFUSED;
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			err = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return err_set(e, err, "cannot reach the daemon at %s:%s: %s", host, port, strerror(err));
	*ret_fd = fd;
	return 0;
}

int ws_connect(const char *base_url, const char *path_query, const char *token, int *ret_fd,
	       struct buf *ret_leftover, struct err *e)
{
	if (strncmp(base_url, "http://", 7) != 0)
		return err_set(e, EINVAL, "'bhatti shell' speaks plain http:// only, not '%s'", base_url);
	const char *hp = base_url + 7;
	size_t hl = strcspn(hp, "/");
	char host[256], port[16] = "80";
	if (hl >= sizeof(host))
		return err_set(e, EINVAL, "URL host too long");
	memcpy(host, hp, hl);
	host[hl] = '\0';
	char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
	if (colon) {
		snprintf(port, sizeof(port), "%s", colon + (host[0] == '[' ? 2 : 1));
		*colon = host[0] == '[' ? ']' : '\0';
		if (host[0] == '[') {
			colon[1] = '\0';
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
	}
	int fd = -1;
	int rc = dial(host, port, &fd, e);
	if (rc < 0)
		return rc;
	uint8_t raw[16];
	char key[32], want[64], sha_in[128];
	unsigned char sha[20];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(key, sizeof(key), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
	snprintf(sha_in, sizeof(sha_in), "%s%s", key, WS_GUID);
	lws_SHA1((const unsigned char *)sha_in, strlen(sha_in), sha);
	lws_b64_encode_string((const char *)sha, 20, want, sizeof(want));
	struct buf req = BUF_INIT;
	buf_addf(&req, "GET %s HTTP/1.1\r\nHost: %.*s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		       "Authorization: Bearer %s\r\nUser-Agent: bhatti/" BHATTI_VERSION "\r\n\r\n",
		 path_query, (int)hl, hp, key, token);
	rc = write_all(fd, req.data, req.len);
	memset(req.data, 0, req.len);
	buf_release(&req);
	struct buf resp = BUF_INIT;
	char *end = NULL;
	while (rc == 0 && !end) {
		char tmp[4096];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n <= 0) {
			rc = err_set(e, ECONNRESET, "the daemon closed the connection during the upgrade");
			break;
		}
		buf_add(&resp, tmp, (size_t)n);
		end = strstr(resp.data, "\r\n\r\n");
		if (!end && resp.len > 65536)
			rc = err_set(e, EPROTO, "the daemon's upgrade answer is too long");
	}
	if (rc == 0) {
		*end = '\0';
		bool ok = strncmp(resp.data, "HTTP/1.1 101", 12) == 0;
		char *acc = strcasestr(resp.data, "\r\nSec-WebSocket-Accept:");
		if (!ok) {
			rc = err_set(e, EPROTO, "the daemon refused the WebSocket: %.*s",
				     (int)strcspn(resp.data, "\r\n"), resp.data);
		} else if (!acc || strncmp(acc + 23 + strspn(acc + 23, " "), want, strlen(want)) != 0) {
			rc = err_set(e, EPROTO, "bad Sec-WebSocket-Accept from the daemon");
		} else {
			size_t used = (size_t)(end - resp.data) + 4;
			buf_add(ret_leftover, resp.data + used, resp.len - used);
		}
	}
	buf_release(&resp);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	*ret_fd = fd;
	return 0;
}
