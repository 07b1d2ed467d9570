/* pxserve.c — a small HTTP/1.1 server the proxy tests upload into a guest
 * (built static with musl-gcc: build/guest/pxserve). Not product code.
 *
 *   pxserve PORT [-f] [-n]   detach (fork, setsid) and serve 0.0.0.0:PORT,
 *                       one child per connection, one request per
 *                       connection (-f: in the foreground, for a host-side
 *                       run; -n: no child, each connection served in turn
 *                       by the server itself: the benchmark's /hello
 *                       without a fork's cost, not for /ws or /sse)
 *
 *   GET /               an HTML page whose script opens a WebSocket to
 *                       "ws" beside the page, sends a message and writes
 *                       the echo into <p id="out"> (the browser test)
 *   GET /slow?ms=N      an empty answer after N ms (the page's last image:
 *                       the browser's load event waits for it)
 *   GET /hello          "hello from the sandbox\n"
 *   GET /headers        the request head as text/plain
 *   GET /peer           the address the connection came from ("127.0.0.1":
 *                       the agent's forward; the bridge's gateway: the
 *                       daemon through the guest's IP)
 *   GET /ws             WebSocket: every text or binary message echoed
 *   GET /sse            text/event-stream: "data: 1" … "data: 5", one each
 *                       300 ms, then close
 *   GET /download?bytes=N   N bytes of xorshift64 (seed 1), Content-Length
 *   POST /upload        the body (Content-Length) read; answers
 *                       "bytes=N fnv=HEX" (FNV-1a 64 of the body)
 *
 * Sits between a guest's TCP port and nothing: only sockets and memory.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t k = write(fd, c, n);
		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

static int say(int fd, const char *s)
{
	return write_all(fd, s, strlen(s));
}

/* ---- SHA-1 and base64 (the WebSocket accept value) ---- */

static uint32_t rol(uint32_t v, int n)
{
	return v << n | v >> (32 - n);
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
	size_t total = ((len + 8) / 64 + 1) * 64;
	uint8_t *m = calloc(1, total);
	memcpy(m, msg, len);
	m[len] = 0x80;
	uint64_t bits = (uint64_t)len * 8;
	for (int i = 0; i < 8; i++)
		m[total - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (size_t off = 0; off < total; off += 64) {
		uint32_t w[80];
		for (int i = 0; i < 16; i++)
			w[i] = (uint32_t)m[off + 4 * i] << 24 | (uint32_t)m[off + 4 * i + 1] << 16 |
			       (uint32_t)m[off + 4 * i + 2] << 8 | m[off + 4 * i + 3];
		for (int i = 16; i < 80; i++)
			w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
		uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
		for (int i = 0; i < 80; i++) {
			uint32_t f, k;
			if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
			else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
			else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
			else { f = b ^ c ^ d; k = 0xCA62C1D6; }
			uint32_t t = rol(a, 5) + f + e + k + w[i];
			e = d; d = c; c = rol(b, 30); b = a; a = t;
		}
		h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
	}
	free(m);
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 4; j++)
			out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

static void base64(const uint8_t *p, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = '\0';
}

/* ---- requests ---- */

static char head[16384];
static size_t head_len, extra_len;   /* bytes after the head already read */

static const char *header(const char *name)
{
	static char v[1024];
	size_t nl = strlen(name);
	for (char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
			const char *s = p + 3 + nl;
			while (*s == ' ')
				s++;
			size_t l = strcspn(s, "\r\n");
			if (l >= sizeof(v))
				l = sizeof(v) - 1;
			memcpy(v, s, l);
			v[l] = '\0';
			return v;
		}
	}
	return NULL;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void download(int fd, uint64_t n)
{
	char h[256];
	snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
		 "Content-Length: %llu\r\nConnection: close\r\n\r\n", (unsigned long long)n);
	if (say(fd, h) < 0)
		return;
	uint64_t s = 1;
	static uint8_t b[65536];
	while (n) {
		size_t k = n < sizeof(b) ? (size_t)n : sizeof(b);
		for (size_t i = 0; i < k; i += 8) {
			uint64_t v = xorshift(&s);
			memcpy(b + i, &v, k - i < 8 ? k - i : 8);
		}
		if (write_all(fd, b, k) < 0)
			return;
		n -= k;
	}
}

static void upload(int fd)
{
	const char *cl = header("Content-Length");
	uint64_t left = cl ? strtoull(cl, NULL, 10) : 0, total = 0;
	uint64_t h = 1469598103934665603ull;
	static uint8_t b[65536];
	size_t have = extra_len;
	memcpy(b, head + head_len, have);
	for (;;) {
		for (size_t i = 0; i < have && left; i++, left--, total++)
			h = (h ^ b[i]) * 1099511628211ull;
		if (!left)
			break;
		ssize_t k = read(fd, b, sizeof(b));
		if (k <= 0)
			break;
		have = (size_t)k;
	}
	char body[128], out[256];
	snprintf(body, sizeof(body), "bytes=%llu fnv=%016llx\n", (unsigned long long)total,
		 (unsigned long long)h);
	snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body), body);
	say(fd, out);
}

static void sse(int fd)
{
	say(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
		"Connection: close\r\n\r\n");
	for (int i = 1; i <= 5; i++) {
		char ev[64];
		snprintf(ev, sizeof(ev), "data: %d\n\n", i);
		if (say(fd, ev) < 0)
			return;
		usleep(300000);
	}
}

static int read_exact(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = read(fd, p, n);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void websocket(int fd)
{
	const char *key = header("Sec-WebSocket-Key");
	if (!key) {
		say(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
		return;
	}
	char cat[256], acc[64], out[512];
	uint8_t d[20];
	snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
	sha1((const uint8_t *)cat, strlen(cat), d);
	base64(d, 20, acc);
	snprintf(out, sizeof(out), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
	if (say(fd, out) < 0)
		return;
	for (;;) {
		uint8_t h2[2], ext[8], mask[4];
		if (read_exact(fd, h2, 2) < 0)
			return;
		int op = h2[0] & 0x0f;
		uint64_t len = h2[1] & 0x7f;
		if (len == 126) {
			if (read_exact(fd, ext, 2) < 0)
				return;
			len = (uint64_t)ext[0] << 8 | ext[1];
		} else if (len == 127) {
			if (read_exact(fd, ext, 8) < 0)
				return;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | ext[i];
		}
		if (len > (16u << 20) || !(h2[1] & 0x80) || read_exact(fd, mask, 4) < 0)
			return;
		uint8_t *p = malloc(len + 1);
		if (read_exact(fd, p, len) < 0)
			return;
		for (uint64_t i = 0; i < len; i++)
			p[i] ^= mask[i % 4];
		uint8_t fh[10];
		size_t fl = 2;
		fh[0] = (uint8_t)(0x80 | (op == 9 ? 10 : op));
		if (len < 126) {
			fh[1] = (uint8_t)len;
		} else if (len < 65536) {
			fh[1] = 126;
			fh[2] = (uint8_t)(len >> 8);
			fh[3] = (uint8_t)len;
			fl = 4;
		} else {
			fh[1] = 127;
			for (int i = 0; i < 8; i++)
				fh[2 + i] = (uint8_t)(len >> (56 - 8 * i));
			fl = 10;
		}
		if (write_all(fd, fh, fl) < 0 || write_all(fd, p, len) < 0)
			return;
		free(p);
		if (op == 8)
			return;
	}
}

static const char page[] =
	"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>pxserve</title></head>\n"
	"<body><p id=\"out\">waiting</p>\n<script>\n"
	"var u = new URL('ws', location.href); u.protocol = u.protocol.replace('http', 'ws');\n"
	"var ws = new WebSocket(u.href);\n"
	"ws.onopen = function () { ws.send('echo through the proxy'); };\n"
	"ws.onmessage = function (m) { document.getElementById('out').textContent = 'got: ' + m.data; "
	"document.title = 'done'; };\n"
	"ws.onerror = function () { document.getElementById('out').textContent = 'ws error'; };\n"
	"</script>\n<img src=\"slow?ms=3000\" alt=\"\"></body></html>\n";

static void serve(int fd)
{
	size_t n = 0;
	char *end = NULL;
	while (!end) {
		if (n == sizeof(head) - 1)
			return;
		ssize_t k = read(fd, head + n, sizeof(head) - 1 - n);
		if (k <= 0)
			return;
		n += (size_t)k;
		head[n] = '\0';
		end = strstr(head, "\r\n\r\n");
	}
	head_len = (size_t)(end - head) + 4;
	extra_len = n - head_len;
	char method[16], target[1024];
	if (sscanf(head, "%15s %1023s", method, target) != 2)
		return;
	char out[20000];
	if (strcmp(target, "/ws") == 0) {
		websocket(fd);
	} else if (strcmp(target, "/sse") == 0) {
		sse(fd);
	} else if (strncmp(target, "/download?bytes=", 16) == 0) {
		download(fd, strtoull(target + 16, NULL, 10));
	} else if (strcmp(target, "/upload") == 0 && strcmp(method, "POST") == 0) {
		upload(fd);
	} else if (strcmp(target, "/headers") == 0) {
		snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%.*s", head_len, (int)head_len,
			 head);
		say(fd, out);
	} else if (strcmp(target, "/peer") == 0) {
		struct sockaddr_in pa;
		socklen_t pl = sizeof(pa);
		char ip[INET_ADDRSTRLEN] = "?";
		if (getpeername(fd, (struct sockaddr *)&pa, &pl) == 0)
			inet_ntop(AF_INET, &pa.sin_addr, ip, sizeof(ip));
		snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(ip), ip);
		say(fd, out);
	} else if (strncmp(target, "/slow?ms=", 9) == 0) {
		usleep((useconds_t)strtoul(target + 9, NULL, 10) * 1000);
		say(fd, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
	} else if (strcmp(target, "/hello") == 0) {
		say(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n"
			"Connection: close\r\n\r\nhello from the sandbox\n");
	} else if (strcmp(target, "/") == 0) {
		snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(page), page);
		say(fd, out);
	} else {
		say(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
			"not found\n");
	}
}

/* One connection: its request answered, then what the client still
 * sends drained until it closes. */
static void serve_one(int c)
{
	serve(c);
	shutdown(c, SHUT_WR);
	char drain[4096];
	while (read(c, drain, sizeof(drain)) > 0)
		;
}

int main(int argc, char **argv)
{
	bool fg = false, nofork = false;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0)
			fg = true;
		else if (strcmp(argv[i], "-n") == 0)
			nofork = true;
		else
			return 2;
	}
	if (argc < 2)
		return 2;
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 64) < 0) {
		perror("pxserve");
		return 1;
	}
	if (!fg) {
		if (fork() > 0)
			return 0;   /* the caller's exec ends; we serve on */
		setsid();
	}
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		if (nofork) {
			serve_one(c);
			close(c);
			continue;
		}
		if (fork() == 0) {
			close(s);
			serve_one(c);
			_exit(0);
		}
		close(c);
	}
}
