/* gen-seeds.c — writes the seeds of one fuzz target into a directory,
 * made with the real encoders (the agent protocol's, the client library's
 * request heads and WebSocket frames), so they stay true as the formats
 * change. Usage: gen-seeds TARGET DIR (tests/fuzz/run.sh runs it; the
 * YAML seeds of fuzz-config also come from tests/data/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "helpers.h"
#include "proto.h"

static const char *dir;

static void put(const char *name, struct buf *b)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	buf_reset(b);
}

static void put_text(const char *name, const char *text)
{
	struct buf b = BUF_INIT;
	buf_adds(&b, text);
	put(name, &b);
	buf_release(&b);
}

/* ---- fuzz-proto: one valid frame per message type ------------------------- */

static void proto_seeds(void)
{
	struct buf b = BUF_INIT;
	char *argv_[] = { (char *)"sh", (char *)"-c", (char *)"echo hi", NULL };
	char *env[] = { (char *)"A=1", (char *)"B=two", NULL };

	struct proto_hello h = { PROTO_VERSION, (char *)"token", (char *)"seed" };
	proto_put_msg(&b, 0, PROTO_HELLO, 0, &h);
	put("hello", &b);

	struct proto_exec ex = { argv_, env, (char *)"/tmp", PROTO_EXEC_STDIN, 1000, (char *)"" };
	proto_put_msg(&b, 0, PROTO_HELLO, 0, &h);
	proto_put_msg(&b, 1, PROTO_EXEC, 0, &ex);
	proto_put_data(&b, 1, PROTO_CH_IN, "input", 5);
	struct proto_eof eof = { PROTO_CH_IN };
	proto_put_msg(&b, 1, PROTO_EOF, 0, &eof);
	struct proto_window w = { 65536 };
	proto_put_msg(&b, 1, PROTO_WINDOW_UPDATE, 0, &w);
	put("exec", &b);

	struct proto_cfg_file files[2] = {
		{ (char *)"/etc/a", 0644, 0, 0, { (uint8_t *)"abc", 3 } },
		{ (char *)"/etc/b", 0600, 1000, 1000, { (uint8_t *)"", 0 } },
	};
	struct proto_configure cfg = {
		.what = PROTO_CFG_ALL, .hostname = (char *)"box", .token = (char *)"t2",
		.env = env, .secrets = env, .files = files, .nfiles = 2, .init = (char *)"true",
		.net_ifname = (char *)"eth0", .net_address = (char *)"10.0.0.2/24",
		.net_gateway = (char *)"10.0.0.1", .net_dns = env, .net_mtu = 1500,
		.clock_ns = 123456789, .rng_seed = { (uint8_t *)"seedseed", 8 },
	};
	proto_put_msg(&b, 2, PROTO_CONFIGURE, 0, &cfg);
	put("configure", &b);

	struct proto_session sess[2] = {
		{ (char *)"s1", argv_, (char *)"/dev/pts/0", 42, 1, 0, 0, 1700000000, 99, 24, 80 },
		{ (char *)"init", env, (char *)"/dev/pts/1", 43, 0, 1, 3, 1700000001, 5, 50, 132 },
	};
	struct proto_session_list sl = { sess, 2 };
	proto_put_msg(&b, 3, PROTO_SESSION_LIST_RESULT, PROTO_F_END, &sl);
	put("sessions", &b);

	struct proto_dirent ents[2] = {
		{ (char *)"a.txt", PROTO_FT_FILE, 0644, 10, 1 },
		{ (char *)"dir", PROTO_FT_DIR, 0755, 0, 2 },
	};
	struct proto_ls_result ls = { ents, 2, 2, 0 };
	proto_put_msg(&b, 4, PROTO_LS_RESULT, PROTO_F_END, &ls);
	struct proto_file_read fr = { (char *)"/etc/hosts", 1, 2, 3, PROTO_FILE_ROOT };
	proto_put_msg(&b, 5, PROTO_FILE_READ, 0, &fr);
	struct proto_session_open so = { (char *)"x", argv_, env, (char *)"", 24, 80, 0, 60 };
	proto_put_msg(&b, 6, PROTO_SESSION_OPEN, 0, &so);
	struct proto_error pe = { 2, (char *)"no such file" };
	proto_put_msg(&b, 7, PROTO_ERROR, PROTO_F_END, &pe);
	put("mixed", &b);
	buf_release(&b);
}

/* ---- fuzz-config: the YAML files beyond tests/data/ ------------------------ */

static void config_seeds(void)
{
	put_text("every-key",
		 "listen: \"[::1]:9000\"\ndata_dir: /srv/bhatti\nimages_dir: /srv/images\n"
		 "engine: qemu\naccel: tcg\nvm_user: bhatti\ndefault_image: minimal\n"
		 "pool_size: 2\nlog_level: debug\ndefaults:\n  cpus: 2\n  memory_mb: 1024\n"
		 "limits:\n  max_sandboxes: 5\n  max_cpus: 8\n  max_memory_mb: 8192\n"
		 "  creates_per_min: 0\n  execs_per_min: 60\n  reads_per_min: 600\n"
		 "  max_execs_per_user: 4\n  max_execs: 16\n  max_conns_per_ip: 8\n"
		 "  max_secrets: 10\n  max_body: 1G\n");
	put_text("flow-style", "{listen: ':8080', limits: {max_cpus: 2, max_body: 64M}}\n");
	put_text("escapes", "vm_user: \"a\\tb\\u00e9\\U0001F600\"\ndata_dir: '/x''y'\n");
	put_text("cli", "url: http://127.0.0.1:8080/\ntoken: bht_0123456789abcdef\n");
	put_text("cli-v6", "url: \"http://[::1]:9999/prefix//\"\ntoken: ''\n");
}

/* ---- fuzz-wsc: frames as a server sends them --------------------------------- */

static void frame(struct buf *b, bool fin, int op, const void *p, size_t n)
{
	ws_server_frame(b, fin, op, p, n);
}

static void wsc_seeds(void)
{
	struct buf b = BUF_INIT;
	static char big[70000];
	memset(big, 'x', sizeof(big));
	const char *hello = "{\"type\":\"session\",\"id\":\"s1\",\"new\":true}";
	frame(&b, true, 1, hello, strlen(hello));
	frame(&b, true, 2, "\x1b[0m$ ", 6);
	frame(&b, true, 1, "{\"type\":\"exit\",\"exit_code\":0}", 29);
	frame(&b, true, 8, "\x03\xe8", 2);
	put("session", &b);

	frame(&b, false, 2, "abc", 3);
	frame(&b, true, 9, "ping", 4);
	frame(&b, false, 0, "def", 3);
	frame(&b, true, 0, "ghi", 3);
	frame(&b, true, 10, "", 0);
	put("fragments", &b);

	frame(&b, true, 2, big, 300);
	frame(&b, true, 2, big, sizeof(big));
	put("lengths", &b);

	frame(&b, true, 1, "{\"error\":\"message too large\",\"type\":\"error\",\"status\":400}", 55);
	frame(&b, true, 8, "\x03\xe8" "bye", 5);
	put("error-close", &b);
	buf_release(&b);
}

/* ---- fuzz-httpc: answers as the daemon (libwebsockets) writes them ------------ */

/* The first byte: bit 0 the request was HEAD, bit 1 the connection closes
 * after the bytes (fuzz-httpc.c). */
static void answer(const char *name, int flags, const char *text)
{
	struct buf b = BUF_INIT;
	buf_addch(&b, (char)flags);
	buf_adds(&b, text);
	put(name, &b);
	buf_release(&b);
}

static void httpc_seeds(void)
{
	answer("json", 0,
	       "HTTP/1.1 200 OK\r\nserver: bhatti\r\ncontent-type: application/json\r\n"
	       "content-length: 16\r\n\r\n{\"status\":\"ok\"}\n");
	answer("ndjson-close", 2,
	       "HTTP/1.1 200 OK\r\nserver: bhatti\r\ncontent-type: application/x-ndjson\r\n"
	       "connection: close\r\n\r\n{\"type\":\"stdout\",\"data\":\"hi\\n\"}\n"
	       "{\"type\":\"exit\",\"exit_code\":0}\n");
	answer("chunked", 2,
	       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
	       "6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n");
	answer("head", 1,
	       "HTTP/1.1 200 OK\r\nx-bhatti-size: 10\r\nx-bhatti-mode: 0644\r\n"
	       "x-bhatti-type: file\r\ncontent-length: 10\r\n\r\n");
	answer("rate", 0,
	       "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\ncontent-type: application/json\r\n"
	       "content-length: 37\r\n\r\n{\"error\":\"rate limit: retry in 7 s\"}\n");
	answer("upgrade", 0,
	       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi");
	answer("existing", 0,
	       "HTTP/1.1 200 OK\r\nX-Bhatti-Existing: true\r\ncontent-length: 2\r\n\r\n{}");
	answer("no-content", 0, "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} targets[] = {
		{ "fuzz-proto", proto_seeds }, { "fuzz-config", config_seeds },
		{ "fuzz-wsc", wsc_seeds },     { "fuzz-httpc", httpc_seeds },
	};
	if (argc != 3) {
		fprintf(stderr, "usage: gen-seeds TARGET DIR\n");
		return 2;
	}
	dir = argv[2];
	for (size_t i = 0; i < ARRAY_SIZE(targets); i++)
		if (strcmp(argv[1], targets[i].name) == 0) {
			targets[i].fn();
			return 0;
		}
	fprintf(stderr, "gen-seeds: no target '%s'\n", argv[1]);
	return 2;
}
