/* op-ports.c — PORTS: the guest's listening TCP ports, read from
 * /proc/net/tcp and /proc/net/tcp6 (what `bhatti ports` lists and the
 * publish proxy reaches through FORWARD). Sits between streams (conn.c)
 * and procfs; reads only those two files.
 *
 *   PORTS ──► PORTS_RESULT {ports: [{port, flags}]} END
 *
 * A port is listed once however many sockets listen on it; its flags say
 * which families listen and whether every one of them is bound to a
 * loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

#define TCP_LISTEN 0x0A

/* Per port: which families listen (V4, V6) and whether some socket on it
 * is not on loopback (kept apart, folded into LOOPBACK at the end). */
struct seen {
	uint8_t flags;
	bool any_public;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* n hex digits → n/8 words (procfs prints each 32-bit word of the
 * address as a native u32; loopback() reads their bytes back). */
static bool parse_hex(const char *s, size_t n, uint32_t *words)
{
	for (size_t w = 0; w < n / 8; w++) {
		uint32_t v = 0;
		for (size_t i = 0; i < 8; i++) {
			int h = hexval(s[w * 8 + i]);
			if (h < 0)
				return false;
			v = v << 4 | (uint32_t)h;
		}
		words[w] = v;
	}
	return true;
}

/* The first byte of the address in memory (the kernel printed the word as
 * a native u32: on every host we run on, little-endian, that is its low
 * byte). */
static uint8_t first_octet(uint32_t word)
{
	union { uint32_t w; uint8_t b[4]; } u = { .w = word };
	return u.b[0];
}

static bool loopback(const uint32_t *a, bool v6)
{
	if (!v6)
		return first_octet(a[0]) == 127;
	if (a[0] || a[1])
		return false;
	union { uint32_t w; uint8_t b[4]; } u = { .w = a[2] };
	if (a[2] == 0) {                       /* ::1 */
		union { uint32_t w; uint8_t b[4]; } l = { .w = a[3] };
		return l.b[0] == 0 && l.b[1] == 0 && l.b[2] == 0 && l.b[3] == 1;
	}
	/* ::ffff:127.x.y.z */
	return u.b[0] == 0 && u.b[1] == 0 && u.b[2] == 0xff && u.b[3] == 0xff &&
	       first_octet(a[3]) == 127;
}

/* Lines look like "  0: 0100007F:1F90 00000000:0000 0A ...". */
static void scan(const char *path, bool v6, struct seen *seen)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return;   /* no IPv6 in this kernel: nothing listens there */
	char line[512];
	size_t alen = v6 ? 32 : 8;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strchr(line, ':');
		if (!p)
			continue;
		p++;
		while (*p == ' ')
			p++;
		if (strlen(p) < alen + 5 + 1 + alen + 5 + 3 || p[alen] != ':')
			continue;   /* the header line */
		uint32_t addr[4];
		if (!parse_hex(p, alen, addr))
			continue;
		int h0 = hexval(p[alen + 1]), h1 = hexval(p[alen + 2]), h2 = hexval(p[alen + 3]),
		    h3 = hexval(p[alen + 4]);
		const char *st = p + alen + 5 + 1 + alen + 5 + 1;
		int s0 = hexval(st[0]), s1 = hexval(st[1]);
		if ((h0 | h1 | h2 | h3 | s0 | s1) < 0 || (s0 << 4 | s1) != TCP_LISTEN)
			continue;
		uint32_t port = (uint32_t)(h0 << 12 | h1 << 8 | h2 << 4 | h3);
		if (port == 0)
			continue;
		seen[port].flags |= v6 ? PROTO_PORT_V6 : PROTO_PORT_V4;
		if (!loopback(addr, v6))
			seen[port].any_public = true;
	}
	fclose(f);
}

void op_ports(struct stream *s, const struct proto_frame *f UNUSED)
{
	struct seen *seen = calloc(65536, sizeof(*seen));
	if (!seen) {
		stream_end_error(s, ENOMEM, "out of memory");
		return;
	}
	scan("/proc/net/tcp", false, seen);
	scan("/proc/net/tcp6", true, seen);
	struct proto_ports_result res = { 0 };
	size_t cap = 0;
	for (uint32_t port = 1; port < 65536; port++) {
		if (!seen[port].flags)
			continue;
		if (res.count == cap) {
			cap = cap ? cap * 2 : 16;
			res.ports = xrealloc(res.ports, cap * sizeof(*res.ports));
		}
		res.ports[res.count++] = (struct proto_port){
			.port = (uint16_t)port,
			.flags = (uint8_t)(seen[port].flags |
					   (seen[port].any_public ? 0 : PROTO_PORT_LOOPBACK)),
		};
	}
	free(seen);
	stream_end(s, PROTO_PORTS_RESULT, &res);
	free(res.ports);
}
