/* gen-seeds.c — writes the seeds of one fuzz target into a directory,
 * made with the real encoders (the agent protocol's, the client library's
 * request heads and WebSocket frames), so they stay true as the formats
 * change. Usage: gen-seeds TARGET DIR (tests/fuzz/run.sh runs it; the
 * YAML seeds of fuzz-config also come from tests/data/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "agent-input.h"
#include "buf.h"
#include "client.h"
#include "daemon.h"
#include "helpers.h"
#include "json-routes.h"
#include "wsc.h"
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

/* ---- fuzz-proxy-http: what the publish proxy reads ---------------------------- */

/* The first byte: bit 0 a response (bit 1: to a HEAD), else a request
 * (fuzz-proxy-http.c). */
static void proxy_http_seeds(void)
{
	answer("get", 0, "GET /app/x?y=1 HTTP/1.1\r\nHost: a.example.com\r\n"
		      "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
	answer("post-length", 0, "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET");
	answer("post-chunked", 0, "POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\nnext");
	answer("smuggle", 0, "POST / HTTP/1.1\r\nContent-Length: 4\r\n"
			  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
	answer("upgrade", 0, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
	answer("resp-length", 1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcX");
	answer("resp-chunked", 1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "a\r\n0123456789\r\n0\r\n\r\n");
	answer("resp-close", 1, "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
			     "data: 1\n\n");
	answer("resp-head", 3, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
	answer("resp-101", 1, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			   "Connection: Upgrade\r\n\r\n\x81\x02hi");
}

/* ---- fuzz-http: requests as the client library writes them ----------------------- */

static struct client *with_key, *without_key;

/* One request of c: the head from client_head(), then the body. */
static void req(struct buf *b, struct client *c, const char *method, const char *path,
		const char *extra, const char *body)
{
	client_head(c, b, method, path, extra, body ? (long long)strlen(body) : -1);
	if (body)
		buf_adds(b, body);
}

/* A WebSocket upgrade as async_ws_open() asks for it. */
static void upgrade(struct buf *b, struct client *c, const char *path)
{
	char key[WSC_KEY_LEN], extra[256];
	wsc_key(key);
	snprintf(extra, sizeof(extra), "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key);
	client_head(c, b, "GET", path, extra, -1);
}

static const struct {
	const char *name, *method, *path, *body, *extra;
} requests[] = {
	{ "health", "GET", "/health", NULL, NULL },
	{ "create", "POST", "/sandboxes",
	  "{\"name\":\"new\",\"cpus\":1,\"memory_mb\":512,\"image\":\"tiny\",\"env\":{\"A\":\"1\"},"
	  "\"init\":\"true\",\"secrets\":[\"TOKEN\"]}", NULL },
	{ "create-existing", "POST", "/sandboxes", "{\"name\":\"box\"}", NULL },
	{ "create-all-secrets", "POST", "/sandboxes", "{\"all_secrets\":true}", NULL },
	{ "list", "GET", "/sandboxes", NULL, NULL },
	{ "get", "GET", "/sandboxes/box", NULL, NULL },
	{ "rename", "PATCH", "/sandboxes/box", "{\"name\":\"box2\"}", NULL },
	{ "delete", "DELETE", "/sandboxes/off", NULL, NULL },
	{ "exec", "POST", "/sandboxes/box/exec",
	  "{\"cmd\":[\"sh\",\"-c\",\"cat\"],\"env\":{\"X\":\"y\"},\"cwd\":\"/tmp\",\"timeout_sec\":5,"
	  "\"stdin\":\"hello\",\"as_root\":false}", NULL },
	{ "exec-stream", "POST", "/sandboxes/box/exec", "{\"cmd\":[\"ls\"],\"stdin_b64\":\"aGk=\"}",
	  "Accept: application/x-ndjson\r\n" },
	{ "exec-off", "POST", "/sandboxes/off/exec", "{\"cmd\":[\"true\"]}", NULL },
	{ "sessions", "GET", "/sandboxes/box/sessions", NULL, NULL },
	{ "file-read", "GET", "/sandboxes/box/files?path=/etc/hosts&offset=1&limit=2&max_bytes=9",
	  NULL, NULL },
	{ "file-ls", "GET", "/sandboxes/box/files?path=/tmp&ls=true&as_root=true", NULL, NULL },
	{ "file-stat", "HEAD", "/sandboxes/box/files?path=/tmp/x", NULL, NULL },
	{ "file-write", "PUT", "/sandboxes/box/files?path=/tmp/x&mode=0600", "file contents\n",
	  NULL },
	{ "stop", "POST", "/sandboxes/box/stop", NULL, NULL },
	{ "start", "POST", "/sandboxes/off/start", "{}", NULL },
	{ "secrets", "GET", "/secrets", NULL, NULL },
	{ "secret-set", "POST", "/secrets", "{\"name\":\"NEW\",\"value\":\"v\"}", NULL },
	{ "secret-delete", "DELETE", "/secrets/TOKEN", NULL, NULL },
	{ "options", "OPTIONS", "/sandboxes", NULL, NULL },
	{ "query-key", "GET", "/sandboxes?token=" FZD_KEY, NULL, NULL },
	{ "chunked", "PUT", "/sandboxes/box/files?path=/x", NULL,
	  "Transfer-Encoding: chunked\r\n" },
	{ "two-lengths", "POST", "/secrets", "{}", "Content-Length: 2\r\n" },
};

static void http_seeds(void)
{
	struct buf b = BUF_INIT;
	char name[64];
	for (size_t i = 0; i < ARRAY_SIZE(requests); i++) {
		req(&b, with_key, requests[i].method, requests[i].path, requests[i].extra,
		    requests[i].body);
		put(requests[i].name, &b);
		req(&b, without_key, requests[i].method, requests[i].path, requests[i].extra,
		    requests[i].body);
		snprintf(name, sizeof(name), "%s-nokey", requests[i].name);
		put(name, &b);
	}
	/* keep-alive: several on one connection; a pipelined body */
	req(&b, with_key, "GET", "/sandboxes", NULL, NULL);
	req(&b, with_key, "POST", "/secrets", NULL, "{\"name\":\"A\",\"value\":\"1\"}");
	req(&b, with_key, "GET", "/secrets", NULL, NULL);
	req(&b, with_key, "DELETE", "/secrets/A", NULL, NULL);
	put("keep-alive", &b);
	req(&b, with_key, "PUT", "/sandboxes/box/files?path=/y", NULL, "abc");
	req(&b, with_key, "GET", "/health", NULL, NULL);
	put("pipelined", &b);
	/* shells: keys, a resize, a ping, a close; a new session and one to attach */
	upgrade(&b, with_key, "/sandboxes/box/ws?cols=100&rows=30");
	wsc_frame(&b, WSC_BINARY, "ls\r", 3);
	const char *rz = "{\"type\":\"resize\",\"cols\":120,\"rows\":40}";
	wsc_frame(&b, WSC_TEXT, rz, strlen(rz));
	wsc_frame(&b, WSC_PING, "p", 1);
	wsc_frame(&b, WSC_CLOSE, "\x03\xe8", 2);
	put("shell", &b);
	upgrade(&b, with_key, "/sandboxes/box/ws?session=s1");
	wsc_frame(&b, WSC_BINARY, "\x03", 1);
	put("shell-attach", &b);
	upgrade(&b, without_key, "/sandboxes/box/ws");
	put("shell-nokey", &b);
	upgrade(&b, with_key, "/sandboxes/nosuch/ws");
	put("shell-nosuch", &b);
	buf_release(&b);
}

/* ---- fuzz-json: a route's number, then a body for it ------------------------------ */

static void json_seeds(void)
{
	static const char *const bodies[][4] = {
		[JR_CREATE] = { "{\"name\":\"n1\",\"cpus\":2,\"memory_mb\":256,\"env\":{\"K\":\"V\"}}",
				"{\"image\":\"minimal\",\"init\":\"echo hi\",\"secrets\":[\"TOKEN\"]}",
				"{\"all_secrets\":true,\"name\":\"box\"}", "{}" },
		[JR_RENAME] = { "{\"name\":\"other\"}", "{\"name\":\"off\"}", "{\"name\":\"\"}", "{}" },
		[JR_EXEC] = { "{\"cmd\":[\"echo\",\"hi\"]}",
			      "{\"cmd\":[\"cat\"],\"stdin\":\"x\",\"env\":{\"A\":\"b\"},\"cwd\":\"/\"}",
			      "{\"cmd\":[\"sh\"],\"stdin_b64\":\"AAEC\",\"timeout_sec\":1,\"as_root\":true}",
			      "{\"cmd\":[]}" },
		[JR_SECRET] = { "{\"name\":\"API_KEY\",\"value\":\"s3cr3t\"}",
				"{\"name\":\"TOKEN\",\"value\":\"\"}", "{\"name\":\"1x\",\"value\":\"v\"}",
				"{\"value\":\"v\"}" },
		[JR_RESIZE] = { "{\"type\":\"resize\",\"cols\":80,\"rows\":24}",
				"{\"type\":\"resize\",\"cols\":1000,\"rows\":1}",
				"{\"type\":\"other\",\"cols\":1,\"rows\":1}", "{\"type\":\"resize\"}" },
		[JR_SNAPSHOT] = { "{\"name\":\"s1\",\"labels\":{\"team\":\"a\"}}", "{\"name\":\"s1\"}",
				  "{\"name\":\"a b\",\"labels\":{\"k\":\"\"}}", "{}" },
		[JR_FORK] = { "{\"name\":\"box2\"}", "{\"name\":\"box\"}", "{\"name\":\"\"}", "{}" },
		[JR_RESUME] = { "{\"name\":\"box3\"}", "{\"name\":\"off\"}", "{\"name\":7}", "{}" },
	};
	struct buf b = BUF_INIT;
	char name[64];
	for (int r = 0; r < JR_COUNT; r++)
		for (int i = 0; i < 4; i++) {
			buf_addch(&b, (char)r);
			buf_adds(&b, bodies[r][i]);
			snprintf(name, sizeof(name), "%s-%d", json_routes[r].name, i);
			put(name, &b);
		}
	buf_release(&b);
}

/* ---- fuzz-agent: the agent's frames, clients leaving, keys --------------------------- */

/* Records of agent-input.h. */
static void rec_agent(struct buf *b, struct buf *frames)
{
	for (size_t off = 0; off < frames->len;) {
		size_t n = MIN(frames->len - off, (size_t)0xffff);
		buf_addch(b, AI_AGENT);
		buf_addch(b, (char)(n & 0xff));
		buf_addch(b, (char)(n >> 8));
		buf_add(b, frames->data + off, n);
		off += n;
	}
	buf_reset(frames);
}

static void rec_leave(struct buf *b, int request)
{
	buf_addch(b, (char)(AI_LEAVE | request << 2));
}

static void rec_keys(struct buf *b, const char *keys)
{
	size_t n = strlen(keys);
	buf_addch(b, AI_KEYS);
	buf_addch(b, (char)(n & 0xff));
	buf_addch(b, (char)(n >> 8));
	buf_adds(b, keys);
}

static uint32_t sid(int request)
{
	return (uint32_t)request + 1;   /* agent-input.h: one stream per request, in order */
}

static void msg(struct buf *f, int request, uint8_t type, uint8_t flags, const void *m)
{
	proto_put_msg(f, sid(request), type, flags, m);
}

static void data(struct buf *f, int request, uint8_t ch, const char *p)
{
	proto_put_data(f, sid(request), ch, p, strlen(p));
}

static char *bash_argv[] = { (char *)"bash", (char *)"-l", NULL };

/* How each request's stream goes when all is well. */
static void happy(struct buf *f, int request)
{
	struct proto_exec_started st = { 42, (char *)"" };
	struct proto_exit ok_exit = { 0, 0, 0 }, bad_exit = { 2, 0, 0 };
	struct proto_window w = { 14 };
	struct proto_session sess = { (char *)"s1", bash_argv, (char *)"/dev/pts/0", 7, 1, 1, 0,
				      1700000000, 2, 24, 80 };
	struct proto_file_meta file = { PROTO_FT_FILE, 0644, 5, 1700000000, 0, 0, (char *)"" };
	struct proto_ok read_ok = { 5, 0 }, write_ok = { 14, 0 };
	struct proto_dirent ents[2] = { { (char *)"a.txt", PROTO_FT_FILE, 0644, 10, 1 },
					{ (char *)"d", PROTO_FT_DIR, 0755, 0, 2 } };
	struct proto_ls_result ls = { ents, 2, 2, 0 };
	struct proto_session_list sl = { &sess, 1 };
	switch (request) {
	case AR_EXEC:
		msg(f, request, PROTO_EXEC_STARTED, 0, &st);
		w.increment = 5;
		msg(f, request, PROTO_WINDOW_UPDATE, 0, &w);
		data(f, request, PROTO_CH_OUT, "input");
		data(f, request, PROTO_CH_ERR, "warning\n");
		msg(f, request, PROTO_EXIT, PROTO_F_END, &ok_exit);
		break;
	case AR_EXEC_STREAM:
		msg(f, request, PROTO_EXEC_STARTED, 0, &st);
		data(f, request, PROTO_CH_OUT, "total 0\n\xff\xfe");
		msg(f, request, PROTO_EXIT, PROTO_F_END, &bad_exit);
		break;
	case AR_SHELL:
		msg(f, request, PROTO_SESSION, 0, &sess);
		data(f, request, PROTO_CH_OUT, "\x1b[1m$ \x1b[0m");
		msg(f, request, PROTO_EXIT, PROTO_F_END, &ok_exit);
		break;
	case AR_READ:
		msg(f, request, PROTO_FILE_META, 0, &file);
		data(f, request, PROTO_CH_OUT, "hello");
		msg(f, request, PROTO_OK, PROTO_F_END, &read_ok);
		break;
	case AR_WRITE:
		msg(f, request, PROTO_WINDOW_UPDATE, 0, &w);
		msg(f, request, PROTO_OK, PROTO_F_END, &write_ok);
		break;
	case AR_STAT:
		msg(f, request, PROTO_FILE_META, PROTO_F_END, &file);
		break;
	case AR_LS:
		msg(f, request, PROTO_LS_RESULT, PROTO_F_END, &ls);
		break;
	case AR_SESSIONS:
		msg(f, request, PROTO_SESSION_LIST_RESULT, PROTO_F_END, &sl);
		break;
	}
}

static void agent_seeds(void)
{
	struct buf b = BUF_INIT, f = BUF_INIT;
	struct proto_error pe = { 2, (char *)"No such file or directory" };

	for (int r = 0; r < AR_COUNT; r++)
		happy(&f, r);
	rec_agent(&b, &f);
	put("happy", &b);

	for (int r = AR_COUNT - 1; r >= 0; r--) {
		happy(&f, r);
		rec_agent(&b, &f);
	}
	put("happy-stepwise", &b);

	for (int r = 0; r < AR_COUNT; r++)
		msg(&f, r, PROTO_ERROR, PROTO_F_END, &pe);
	rec_agent(&b, &f);
	put("errors", &b);

	for (int r = 0; r < AR_COUNT; r++)
		rec_leave(&b, r);
	for (int r = 0; r < AR_COUNT; r++)
		happy(&f, r);
	rec_agent(&b, &f);
	put("leave-then-answer", &b);

	for (int r = 0; r < AR_COUNT; r++) {
		struct buf one = BUF_INIT;
		happy(&one, r);
		/* the first frame, the client leaves, the rest */
		const uint8_t *h = (const uint8_t *)one.data;   /* len: little-endian */
		size_t first = PROTO_HDR_SIZE + ((uint32_t)h[0] | (uint32_t)h[1] << 8 |
						 (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24);
		if (first > one.len)
			first = one.len;
		buf_add(&f, one.data, first);
		rec_agent(&b, &f);
		rec_leave(&b, r);
		buf_add(&f, one.data + first, one.len - first);
		rec_agent(&b, &f);
		buf_release(&one);
	}
	put("leave-midway", &b);

	struct proto_session sess = { (char *)"s1", bash_argv, (char *)"/dev/pts/0", 7, 1, 1, 0,
				      1700000000, 2, 24, 80 };
	struct proto_exit ex = { 130, 2, 0 };
	msg(&f, AR_SHELL, PROTO_SESSION, 0, &sess);
	rec_agent(&b, &f);
	rec_keys(&b, "ls -l\r");
	data(&f, AR_SHELL, PROTO_CH_OUT, "ls -l\r\ntotal 0\r\n$ ");
	rec_agent(&b, &f);
	rec_keys(&b, "\x03");
	msg(&f, AR_SHELL, PROTO_EXIT, PROTO_F_END, &ex);
	rec_agent(&b, &f);
	put("shell-keys", &b);

	struct proto_exec_started st = { 42, (char *)"" };
	msg(&f, AR_EXEC, PROTO_EXEC_STARTED, 0, &st);
	msg(&f, AR_SHELL, PROTO_SESSION, 0, &sess);
	data(&f, AR_SHELL, PROTO_CH_OUT, "$ ");
	rec_agent(&b, &f);
	buf_addch(&b, AI_HANGUP);
	put("hangup-midway", &b);

	msg(&f, AR_SHELL, PROTO_SESSION, 0, &sess);
	msg(&f, AR_SHELL, PROTO_SESSION, 0, &sess);
	rec_agent(&b, &f);
	put("repeated-frame", &b);

	struct proto_window big = { 0xfffffff0u };
	msg(&f, AR_WRITE, PROTO_WINDOW_UPDATE, 0, &big);
	rec_agent(&b, &f);
	put("window-overflow", &b);

	proto_put_msg(&f, 0, PROTO_ERROR, PROTO_F_END, &pe);
	rec_agent(&b, &f);
	put("stream0-error", &b);

	proto_put_data(&f, 99, PROTO_CH_OUT, "x", 1);
	rec_agent(&b, &f);
	put("unknown-stream", &b);

	/* output larger than a window's worth, for flow control */
	static char chunk[PROTO_DATA_CHUNK];
	memset(chunk, 'o', sizeof(chunk));
	msg(&f, AR_EXEC_STREAM, PROTO_EXEC_STARTED, 0, &st);
	for (int i = 0; i < 3; i++)
		proto_put_data(&f, sid(AR_EXEC_STREAM), PROTO_CH_OUT, chunk, 4000);
	rec_agent(&b, &f);
	rec_leave(&b, AR_EXEC_STREAM);
	put("stream-then-leave", &b);
	buf_release(&b);
	buf_release(&f);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} targets[] = {
		{ "fuzz-proto", proto_seeds }, { "fuzz-config", config_seeds },
		{ "fuzz-wsc", wsc_seeds },     { "fuzz-httpc", httpc_seeds },
		{ "fuzz-http", http_seeds },   { "fuzz-json", json_seeds },
		{ "fuzz-agent", agent_seeds }, { "fuzz-proxy-http", proxy_http_seeds },
	};
	if (argc != 3) {
		fprintf(stderr, "usage: gen-seeds TARGET DIR\n");
		return 2;
	}
	dir = argv[2];
	if (sodium_init() < 0)
		return 1;
	struct client_settings cs = { .url = (char *)"http://127.0.0.1:8080", .token = (char *)FZD_KEY };
	with_key = client_new(&cs);
	cs.token = (char *)"";
	without_key = client_new(&cs);
	int rc = 2;
	for (size_t i = 0; i < ARRAY_SIZE(targets); i++)
		if (strcmp(argv[1], targets[i].name) == 0) {
			targets[i].fn();
			rc = 0;
		}
	if (rc)
		fprintf(stderr, "gen-seeds: no target '%s'\n", argv[1]);
	client_free(with_key);
	client_free(without_key);
	return rc;
}
