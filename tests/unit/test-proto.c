/* test-proto.c — unit tests for shared/proto.c: every message type round
 * trips through frame encoder, incremental decoder and body codec; the
 * decoder copes with any chunking and refuses corrupt streams (magic,
 * flags, sizes); bodies are decoded strictly. Sits between cmocka and
 * proto.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "wire.h"

/* Room for any message struct. */
typedef union {
	struct proto_configure configure;
	struct proto_session_open session_open;
	struct proto_session session;
	struct proto_ls_result ls;
	max_align_t align;
	unsigned char bytes[512];
} anymsg;

static bool covered[256];

/* Encode msg into a frame, take it back out of a decoder, decode the body
 * into out and check that re-encoding out gives the same bytes. The
 * caller compares the fields and releases out. */
static void roundtrip(uint8_t type, uint16_t flags, uint32_t stream, const void *msg,
		      void *out)
{
	struct buf b = BUF_INIT, again = BUF_INIT;
	struct proto_decoder d;
	struct proto_frame f;
	struct err e = ERR_INIT;

	assert_int_equal(proto_put_msg(&b, stream, type, flags, msg), 0);
	assert_true(b.len >= PROTO_HDR_SIZE);
	assert_int_equal(wire_le32((const uint8_t *)b.data), b.len - PROTO_HDR_SIZE);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, b.data, b.len);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(f.type, type);
	assert_int_equal(f.flags, flags);
	assert_int_equal(f.stream, stream);
	assert_int_equal(f.len, b.len - PROTO_HDR_SIZE);
	if (proto_decode(&f, out, &e) != 0)
		fail_msg("%s: %s", proto_type_name(type), e.msg);
	assert_int_equal(proto_put_msg(&again, stream, type, flags, out), 0);
	assert_int_equal(again.len, b.len);
	assert_memory_equal(again.data, b.data, b.len);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 0);
	assert_int_equal(proto_decoder_pending(&d), 0);
	proto_decoder_release(&d);
	buf_release(&b);
	buf_release(&again);
	covered[type] = true;
}

static void assert_strv_equal(char *const *a, char *const *b)
{
	assert_int_equal(strv_len(a), strv_len(b));
	for (size_t i = 0; i < strv_len(a); i++)
		assert_string_equal(a[i], b[i]);
}

static void assert_blob_equal(const struct proto_blob *a, const struct proto_blob *b)
{
	assert_int_equal(a->len, b->len);
	if (a->len)
		assert_memory_equal(a->data, b->data, a->len);
}

/* ---- every message ------------------------------------------------------- */

static void test_hello(void **state)
{
	(void)state;
	struct proto_hello h = { 1, "tok-0123456789abcdef", "bhatti-daemon 0.1.0" }, h2;
	roundtrip(PROTO_HELLO, 0, 0, &h, &h2);
	assert_int_equal(h2.version, 1);
	assert_string_equal(h2.token, h.token);
	assert_string_equal(h2.client, h.client);
	proto_msg_release(PROTO_HELLO, &h2);
	assert_null(h2.token);

	struct proto_hello_ok ok = { PROTO_VERSION, "lohar 0.1.0", PROTO_MAX_FRAME, PROTO_WINDOW,
				     PROTO_MAX_STREAMS, "sb-web-1", 1 }, ok2;
	roundtrip(PROTO_HELLO_OK, 0, 0, &ok, &ok2);
	assert_int_equal(ok2.version, PROTO_VERSION);
	assert_string_equal(ok2.agent_version, "lohar 0.1.0");
	assert_int_equal(ok2.max_frame, PROTO_MAX_FRAME);
	assert_int_equal(ok2.window, PROTO_WINDOW);
	assert_int_equal(ok2.max_streams, PROTO_MAX_STREAMS);
	assert_string_equal(ok2.hostname, "sb-web-1");
	assert_int_equal(ok2.configured, 1);
	proto_msg_release(PROTO_HELLO_OK, &ok2);
}

static void test_control(void **state)
{
	(void)state;
	struct proto_ping p = { 0xdeadbeefcafebabeull }, p2;
	roundtrip(PROTO_PING, 0, 77, &p, &p2);
	assert_true(p2.nonce == 0xdeadbeefcafebabeull);
	roundtrip(PROTO_PONG, PROTO_F_END, 77, &p, &p2);
	assert_true(p2.nonce == 0xdeadbeefcafebabeull);

	struct proto_error er = { EACCES, "permission denied: '/root'" }, er2;
	roundtrip(PROTO_ERROR, PROTO_F_END, 3, &er, &er2);
	assert_int_equal(er2.code, EACCES);
	assert_string_equal(er2.message, er.message);
	proto_msg_release(PROTO_ERROR, &er2);

	struct proto_eof eof = { PROTO_CH_ERR }, eof2;
	roundtrip(PROTO_EOF, 0, 9, &eof, &eof2);
	assert_int_equal(eof2.channel, PROTO_CH_ERR);

	struct proto_window w = { 0x7fff0001 }, w2;
	roundtrip(PROTO_WINDOW_UPDATE, 0, 0xffffffff, &w, &w2);
	assert_int_equal(w2.increment, 0x7fff0001);

	anymsg none;
	roundtrip(PROTO_CLOSE, 0, 5, NULL, &none);

	struct proto_ok ok = { (1ull << 40) + 5, PROTO_OK_TRUNCATED }, ok2;
	roundtrip(PROTO_OK, PROTO_F_END, 12, &ok, &ok2);
	assert_true(ok2.bytes == (1ull << 40) + 5);
	assert_int_equal(ok2.flags, PROTO_OK_TRUNCATED);
}

static void test_configure(void **state)
{
	(void)state;
	char *env[] = { "LANG=C.UTF-8", "PATH=/usr/bin:/bin", "EMPTY=", NULL };
	char *secrets[] = { "API_KEY=s3cr3t", "TOKEN=a=b=c", NULL };
	char *dns[] = { "10.44.0.1", "9.9.9.9", NULL };
	uint8_t seed[32], bin[5] = { 0, 1, 0, 0xff, 0 };
	for (size_t i = 0; i < sizeof(seed); i++)
		seed[i] = (uint8_t)(0xa5 ^ i);
	struct proto_cfg_file files[] = {
		{ "/etc/motd", 0644, 0, 0, { (uint8_t *)"welcome\n", 8 } },
		{ "/home/u/.ssh/authorized_keys", 0600, 1000, 1000, { bin, sizeof(bin) } },
		{ "/tmp/empty", 0755, 1, 2, { NULL, 0 } },
	};
	struct proto_configure c = {
		.what = PROTO_CFG_ALL,
		.hostname = "sb-web",
		.token = "tok",
		.env = env,
		.secrets = secrets,
		.files = files,
		.nfiles = ARRAY_SIZE(files),
		.init = "#!/bin/sh\nset -e\necho hi\n",
		.net_ifname = "eth0",
		.net_address = "10.44.0.2/24",
		.net_gateway = "10.44.0.1",
		.net_dns = dns,
		.net_mtu = 1500,
		.clock_ns = 1795000000123456789ull,
		.rng_seed = { seed, sizeof(seed) },
	}, c2;

	roundtrip(PROTO_CONFIGURE, 0, 1, &c, &c2);
	assert_int_equal(c2.what, PROTO_CFG_ALL);
	assert_string_equal(c2.hostname, "sb-web");
	assert_string_equal(c2.token, "tok");
	assert_strv_equal(c2.env, env);
	assert_strv_equal(c2.secrets, secrets);
	assert_int_equal(c2.nfiles, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(c2.files[i].path, files[i].path);
		assert_int_equal(c2.files[i].mode, files[i].mode);
		assert_int_equal(c2.files[i].uid, files[i].uid);
		assert_int_equal(c2.files[i].gid, files[i].gid);
		assert_blob_equal(&c2.files[i].content, &files[i].content);
	}
	assert_string_equal(c2.init, c.init);
	assert_string_equal(c2.net_ifname, "eth0");
	assert_string_equal(c2.net_address, "10.44.0.2/24");
	assert_string_equal(c2.net_gateway, "10.44.0.1");
	assert_strv_equal(c2.net_dns, dns);
	assert_int_equal(c2.net_mtu, 1500);
	assert_true(c2.clock_ns == 1795000000123456789ull);
	assert_blob_equal(&c2.rng_seed, &c.rng_seed);
	proto_msg_release(PROTO_CONFIGURE, &c2);
	assert_null(c2.files);
	assert_int_equal(c2.nfiles, 0);
	assert_null(c2.env);

	/* the all-empty message: NULL strings and vectors decode as "" / {} */
	struct proto_configure empty = { .what = PROTO_CFG_CLOCK }, e2;
	roundtrip(PROTO_CONFIGURE, 0, 1, &empty, &e2);
	assert_string_equal(e2.hostname, "");
	assert_non_null(e2.env);
	assert_null(e2.env[0]);
	assert_int_equal(e2.nfiles, 0);
	assert_int_equal(e2.rng_seed.len, 0);
	proto_msg_release(PROTO_CONFIGURE, &e2);
}

static void test_activity(void **state)
{
	(void)state;
	anymsg none;
	roundtrip(PROTO_ACTIVITY, 0, 4, NULL, &none);
	roundtrip(PROTO_SYNC, 0, 5, NULL, &none);

	roundtrip(PROTO_LOAD, 0, 6, NULL, &none);
	struct proto_load_info l = { 98765432109ull, 2, 1, 600000, 3 }, l2;
	roundtrip(PROTO_LOAD_INFO, PROTO_F_END, 6, &l, &l2);
	assert_true(l2.cpu_ms == 98765432109ull);
	assert_int_equal(l2.tcp_out, 2);
	assert_int_equal(l2.holds, 1);
	assert_true(l2.hold_ms == 600000);
	assert_int_equal(l2.forwards, 3);

	struct proto_activity_info a = { 123456789012ull, 3, 2, 1, 4, 9, 86400000ull * 7 }, a2;
	roundtrip(PROTO_ACTIVITY_INFO, PROTO_F_END, 4, &a, &a2);
	assert_true(a2.idle_ms == 123456789012ull);
	assert_int_equal(a2.execs, 3);
	assert_int_equal(a2.sessions, 2);
	assert_int_equal(a2.attached, 1);
	assert_int_equal(a2.forwards, 4);
	assert_int_equal(a2.streams, 9);
	assert_true(a2.uptime_ms == 86400000ull * 7);
}

static void test_exec(void **state)
{
	(void)state;
	char *argv[] = { "sh", "-c", "echo \"$A\" > /tmp/x; exit 3", NULL };
	char *env[] = { "A=1", "B=two words", NULL };
	struct proto_exec x = { argv, env, "/work", PROTO_EXEC_ROOT | PROTO_EXEC_STDIN |
				PROTO_EXEC_DETACH, 30000, "/tmp/out.log" }, x2;
	roundtrip(PROTO_EXEC, 0, 11, &x, &x2);
	assert_strv_equal(x2.argv, argv);
	assert_strv_equal(x2.env, env);
	assert_string_equal(x2.cwd, "/work");
	assert_int_equal(x2.flags, PROTO_EXEC_ROOT | PROTO_EXEC_STDIN | PROTO_EXEC_DETACH);
	assert_int_equal(x2.timeout_ms, 30000);
	assert_string_equal(x2.output_path, "/tmp/out.log");
	proto_msg_release(PROTO_EXEC, &x2);

	struct proto_exec_started s = { 4242, "/tmp/bhatti-exec-4242.log" }, s2;
	roundtrip(PROTO_EXEC_STARTED, 0, 11, &s, &s2);
	assert_int_equal(s2.pid, 4242);
	assert_string_equal(s2.output_path, s.output_path);
	proto_msg_release(PROTO_EXEC_STARTED, &s2);

	struct proto_exit ex = { 137, 9, PROTO_EXIT_TIMEOUT | PROTO_EXIT_CANCELLED }, ex2;
	roundtrip(PROTO_EXIT, PROTO_F_END, 11, &ex, &ex2);
	assert_int_equal(ex2.exit_code, 137);
	assert_int_equal(ex2.signal, 9);
	assert_int_equal(ex2.flags, PROTO_EXIT_TIMEOUT | PROTO_EXIT_CANCELLED);
	struct proto_exit neg = { -1, INT32_MIN, 0 };
	roundtrip(PROTO_EXIT, PROTO_F_END, 11, &neg, &ex2);
	assert_int_equal(ex2.exit_code, -1);
	assert_int_equal(ex2.signal, INT32_MIN);
}

static void test_sessions(void **state)
{
	(void)state;
	char *argv[] = { "bash", "-l", NULL };
	char *env[] = { "TERM=xterm-256color", NULL };
	struct proto_session_open o = { "main", argv, env, "/home/u", 50, 200,
					PROTO_SESSION_ROOT, 3600 }, o2;
	roundtrip(PROTO_SESSION_OPEN, 0, 21, &o, &o2);
	assert_string_equal(o2.id, "main");
	assert_strv_equal(o2.argv, argv);
	assert_strv_equal(o2.env, env);
	assert_string_equal(o2.cwd, "/home/u");
	assert_int_equal(o2.rows, 50);
	assert_int_equal(o2.cols, 200);
	assert_int_equal(o2.flags, PROTO_SESSION_ROOT);
	assert_int_equal(o2.idle_timeout_sec, 3600);
	proto_msg_release(PROTO_SESSION_OPEN, &o2);

	struct proto_session_attach at = { "main", 65535, 1 }, at2;
	roundtrip(PROTO_SESSION_ATTACH, 0, 22, &at, &at2);
	assert_string_equal(at2.id, "main");
	assert_int_equal(at2.rows, 65535);
	assert_int_equal(at2.cols, 1);
	proto_msg_release(PROTO_SESSION_ATTACH, &at2);

	struct proto_resize rs = { 24, 80 }, rs2;
	roundtrip(PROTO_RESIZE, 0, 22, &rs, &rs2);
	assert_int_equal(rs2.rows, 24);
	assert_int_equal(rs2.cols, 80);

	anymsg none;
	roundtrip(PROTO_SESSION_LIST, 0, 23, NULL, &none);

	struct proto_session_ref ref = { "build-7", 15 }, ref2;
	roundtrip(PROTO_SESSION_INFO, 0, 24, &ref, &ref2);
	assert_string_equal(ref2.id, "build-7");
	assert_int_equal(ref2.signal, 15);
	proto_msg_release(PROTO_SESSION_INFO, &ref2);
	roundtrip(PROTO_SESSION_KILL, 0, 25, &ref, &ref2);
	assert_string_equal(ref2.id, "build-7");
	proto_msg_release(PROTO_SESSION_KILL, &ref2);

	struct proto_session one = { "main", argv, "/dev/pts/0", 101, 1, 0, 0,
				     1795000000, (1ull << 33) + 1, 50, 300 }, one2;
	roundtrip(PROTO_SESSION, 0, 21, &one, &one2);
	assert_string_equal(one2.id, "main");
	assert_strv_equal(one2.argv, argv);
	assert_string_equal(one2.tty, "/dev/pts/0");
	assert_int_equal(one2.pid, 101);
	assert_int_equal(one2.running, 1);
	assert_int_equal(one2.attached, 0);
	assert_true(one2.created == 1795000000);
	assert_true(one2.output_bytes == (1ull << 33) + 1);
	assert_int_equal(one2.rows, 50);
	assert_int_equal(one2.cols, 300);
	proto_msg_release(PROTO_SESSION, &one2);

	char *argv2[] = { "make", "-j8", "all", NULL };
	struct proto_session list[] = {
		one,
		{ "build-7", argv2, "/dev/pts/1", 202, 0, 1, 2, -5, 0, 24, 80 },
		{ "x", NULL, "", 0, 0, 0, -1, INT64_MIN, UINT64_MAX, 0, 0 },
	};
	struct proto_session_list l = { list, ARRAY_SIZE(list) }, l2;
	roundtrip(PROTO_SESSION_LIST_RESULT, PROTO_F_END, 23, &l, &l2);
	assert_int_equal(l2.count, 3);
	assert_string_equal(l2.sessions[0].id, "main");
	assert_string_equal(l2.sessions[1].id, "build-7");
	assert_strv_equal(l2.sessions[1].argv, argv2);
	assert_int_equal(l2.sessions[1].exit_code, 2);
	assert_true(l2.sessions[1].created == -5);
	assert_int_equal(l2.sessions[1].attached, 1);
	assert_int_equal(strv_len(l2.sessions[2].argv), 0);
	assert_int_equal(l2.sessions[2].exit_code, -1);
	assert_true(l2.sessions[2].created == INT64_MIN);
	assert_true(l2.sessions[2].output_bytes == UINT64_MAX);
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &l2);
	assert_null(l2.sessions);

	struct proto_session_list empty = { NULL, 0 };
	roundtrip(PROTO_SESSION_LIST_RESULT, PROTO_F_END, 23, &empty, &l2);
	assert_int_equal(l2.count, 0);
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &l2);
}

static void test_files(void **state)
{
	(void)state;
	struct proto_file_read r = { "/var/log/syslog", 100, 50, 1 << 20, PROTO_FILE_ROOT }, r2;
	roundtrip(PROTO_FILE_READ, 0, 31, &r, &r2);
	assert_string_equal(r2.path, "/var/log/syslog");
	assert_int_equal(r2.offset, 100);
	assert_int_equal(r2.limit, 50);
	assert_int_equal(r2.max_bytes, 1 << 20);
	assert_int_equal(r2.flags, PROTO_FILE_ROOT);
	proto_msg_release(PROTO_FILE_READ, &r2);

	struct proto_file_write w = { "/tmp/upload.bin", 0600, PROTO_FILE_SIZE_UNKNOWN,
				      PROTO_FILE_ROOT }, w2;
	roundtrip(PROTO_FILE_WRITE, 0, 32, &w, &w2);
	assert_string_equal(w2.path, "/tmp/upload.bin");
	assert_int_equal(w2.mode, 0600);
	assert_true(w2.size == PROTO_FILE_SIZE_UNKNOWN);
	assert_int_equal(w2.flags, PROTO_FILE_ROOT);
	proto_msg_release(PROTO_FILE_WRITE, &w2);

	struct proto_path p = { "/etc/hostname", PROTO_FILE_ROOT }, p2;
	roundtrip(PROTO_FILE_STAT, 0, 33, &p, &p2);
	assert_string_equal(p2.path, "/etc/hostname");
	assert_int_equal(p2.flags, PROTO_FILE_ROOT);
	proto_msg_release(PROTO_FILE_STAT, &p2);

	struct proto_file_meta m = { PROTO_FT_LINK, 0777, 11, -86400, 1000, 100,
				     "../target" }, m2;
	roundtrip(PROTO_FILE_META, PROTO_F_END, 33, &m, &m2);
	assert_int_equal(m2.type, PROTO_FT_LINK);
	assert_int_equal(m2.mode, 0777);
	assert_int_equal(m2.size, 11);
	assert_true(m2.mtime == -86400);
	assert_int_equal(m2.uid, 1000);
	assert_int_equal(m2.gid, 100);
	assert_string_equal(m2.link_target, "../target");
	proto_msg_release(PROTO_FILE_META, &m2);

	struct proto_file_ls ls = { "/home/u", 5000, PROTO_FILE_ROOT }, ls2;
	roundtrip(PROTO_FILE_LS, 0, 34, &ls, &ls2);
	assert_string_equal(ls2.path, "/home/u");
	assert_int_equal(ls2.max_entries, 5000);
	assert_int_equal(ls2.flags, PROTO_FILE_ROOT);
	proto_msg_release(PROTO_FILE_LS, &ls2);

	struct proto_dirent ents[] = {
		{ ".bashrc", PROTO_FT_FILE, 0644, 3771, 1795000000 },
		{ "src", PROTO_FT_DIR, 0755, 4096, 1795000001 },
		{ "link", PROTO_FT_LINK, 0777, 6, -1 },
		{ "fifo", PROTO_FT_OTHER, 0600, 0, 0 },
	};
	struct proto_ls_result res = { ents, ARRAY_SIZE(ents), 1234, 1 }, res2;
	roundtrip(PROTO_LS_RESULT, PROTO_F_END, 34, &res, &res2);
	assert_int_equal(res2.count, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(res2.entries[i].name, ents[i].name);
		assert_int_equal(res2.entries[i].type, ents[i].type);
		assert_int_equal(res2.entries[i].mode, ents[i].mode);
		assert_int_equal(res2.entries[i].size, ents[i].size);
		assert_true(res2.entries[i].mtime == ents[i].mtime);
	}
	assert_int_equal(res2.total, 1234);
	assert_int_equal(res2.truncated, 1);
	proto_msg_release(PROTO_LS_RESULT, &res2);

	struct proto_forward fw = { 65535 }, fw2;
	roundtrip(PROTO_FORWARD, 0, 35, &fw, &fw2);
	assert_int_equal(fw2.port, 65535);

	anymsg none;
	roundtrip(PROTO_PORTS, 0, 36, NULL, &none);
	struct proto_port ports[] = {
		{ 22, PROTO_PORT_V4 | PROTO_PORT_V6 },
		{ 3000, PROTO_PORT_V4 | PROTO_PORT_LOOPBACK },
		{ 65535, PROTO_PORT_V6 },
	};
	struct proto_ports_result pr = { ports, ARRAY_SIZE(ports) }, pr2;
	roundtrip(PROTO_PORTS_RESULT, PROTO_F_END, 36, &pr, &pr2);
	assert_int_equal(pr2.count, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(pr2.ports[i].port, ports[i].port);
		assert_int_equal(pr2.ports[i].flags, ports[i].flags);
	}
	proto_msg_release(PROTO_PORTS_RESULT, &pr2);
}

/* The bytes on the wire, as docs/protocol.md describes them: a round trip
 * alone would not notice a field changing width on both sides. */
static void test_wire_format(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct proto_resize rs = { 0x0102, 0x0304 };
	struct proto_hello h = { 1, "tk", "c" };
	static const uint8_t resize[] = {
		4, 0, 0, 0, PROTO_MAGIC, PROTO_RESIZE, 0x01, 0x00, 5, 0, 0, 0,
		0x02, 0x01, 0x04, 0x03,
	};
	static const uint8_t hello[] = {
		15, 0, 0, 0, PROTO_MAGIC, PROTO_HELLO, 0, 0, 0, 0, 0, 0,
		1, 0, 0, 0, 2, 0, 0, 0, 't', 'k', 1, 0, 0, 0, 'c',
	};

	assert_int_equal(proto_put_msg(&b, 5, PROTO_RESIZE, PROTO_F_END, &rs), 0);
	assert_int_equal(b.len, sizeof(resize));
	assert_memory_equal(b.data, resize, sizeof(resize));
	buf_reset(&b);
	assert_int_equal(proto_put_msg(&b, 0, PROTO_HELLO, 0, &h), 0);
	assert_int_equal(b.len, sizeof(hello));
	assert_memory_equal(b.data, hello, sizeof(hello));
	buf_reset(&b);
	proto_put_data(&b, 0x01020304, PROTO_CH_ERR, "xy", 2);
	assert_int_equal(b.len, PROTO_HDR_SIZE + 3);
	assert_memory_equal(b.data, "\x03\0\0\0\xb7\x06\0\0\x04\x03\x02\x01\x02xy", 15);
	buf_release(&b);
}

/* Runs after the tests above: each type with a layout was round-tripped. */
static void test_every_type_covered(void **state)
{
	(void)state;
	int known = 0;
	for (int t = 0; t < 256; t++) {
		if (!proto_type_known((uint8_t)t)) {
			assert_null(proto_type_name((uint8_t)t));
			continue;
		}
		known++;
		assert_non_null(proto_type_name((uint8_t)t));
		if (t != PROTO_DATA && !covered[t])
			fail_msg("type %d (%s) has no round-trip test", t,
				 proto_type_name((uint8_t)t));
	}
	assert_int_equal(known, 36);
	assert_string_equal(proto_type_name(PROTO_EXEC), "EXEC");
	assert_string_equal(proto_type_name(PROTO_SESSION_LIST_RESULT), "SESSION_LIST_RESULT");
	assert_false(proto_type_known(0));
}

/* ---- the incremental decoder --------------------------------------------- */

struct want {
	uint8_t type;
	uint16_t flags;
	uint32_t stream;
	size_t len;
};

/* Note the frame just appended to b (which started at `at`) in w[*n]. */
static void note(struct want *w, size_t *n, const struct buf *b, size_t at, uint8_t type,
		 uint16_t flags, uint32_t stream)
{
	w[(*n)++] = (struct want){ type, flags, stream, b->len - at - PROTO_HDR_SIZE };
}

/* A stream of several frames of several types. */
static size_t build_stream(struct buf *b, struct want *w)
{
	size_t n = 0, at;
	char *argv[] = { "ls", "-la", NULL };
	struct proto_hello h = { 1, "t", "c" };
	struct proto_exec x = { argv, NULL, "", 0, 0, "" };
	struct proto_window win = { 4096 };
	uint8_t big[3000];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	at = b->len;
	proto_put_msg(b, 0, PROTO_HELLO, 0, &h);
	note(w, &n, b, at, PROTO_HELLO, 0, 0);
	at = b->len;
	proto_put_msg(b, 7, PROTO_EXEC, 0, &x);
	note(w, &n, b, at, PROTO_EXEC, 0, 7);
	at = b->len;
	proto_put_data(b, 7, PROTO_CH_IN, big, sizeof(big));
	note(w, &n, b, at, PROTO_DATA, 0, 7);
	at = b->len;
	proto_put_data(b, 7, PROTO_CH_IN, NULL, 0);
	note(w, &n, b, at, PROTO_DATA, 0, 7);
	at = b->len;
	proto_put_msg(b, 7, PROTO_CLOSE, PROTO_F_END, NULL);
	note(w, &n, b, at, PROTO_CLOSE, PROTO_F_END, 7);
	at = b->len;
	proto_put_msg(b, 0xfffffffe, PROTO_WINDOW_UPDATE, 0, &win);
	note(w, &n, b, at, PROTO_WINDOW_UPDATE, 0, 0xfffffffe);
	at = b->len;
	proto_put_frame(b, 9, 200, PROTO_F_END, "zz", 2);
	note(w, &n, b, at, 200, PROTO_F_END, 9);
	return n;
}

/* Feed the stream in chunks of `step` bytes (0 = random sizes), taking
 * frames out after every feed; they must match w. */
static void feed_in_chunks(const struct buf *b, const struct want *w, size_t n, size_t step)
{
	struct proto_decoder d;
	struct proto_frame f;
	struct err e = ERR_INIT;
	size_t got = 0, pos = 0;
	uint32_t seed = 99;

	proto_decoder_init(&d);
	while (pos < b->len) {
		size_t k = step;
		if (!k) {
			seed = seed * 1103515245u + 12345u;
			k = 1 + (seed >> 16) % 700;
		}
		k = MIN(k, b->len - pos);
		proto_decoder_feed(&d, b->data + pos, k);
		pos += k;
		int r;
		while ((r = proto_decoder_next(&d, &f, &e)) == 1) {
			assert_true(got < n);
			assert_int_equal(f.type, w[got].type);
			assert_int_equal(f.flags, w[got].flags);
			assert_int_equal(f.stream, w[got].stream);
			assert_int_equal(f.len, w[got].len);
			if (f.type == PROTO_DATA) {
				struct proto_data dd;
				assert_int_equal(proto_decode_data(&f, &dd, &e), 0);
				for (size_t i = 0; i < dd.len; i++)
					assert_int_equal(dd.data[i], (uint8_t)i);
			}
			got++;
		}
		assert_int_equal(r, 0);
	}
	assert_int_equal(got, n);
	assert_int_equal(proto_decoder_pending(&d), 0);
	proto_decoder_release(&d);
}

static void test_decoder_chunking(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct want w[16];
	size_t n = build_stream(&b, w);

	assert_int_equal(n, 7);
	feed_in_chunks(&b, w, n, 1);        /* one byte at a time */
	feed_in_chunks(&b, w, n, b.len);    /* all frames in one feed */
	feed_in_chunks(&b, w, n, 5);
	feed_in_chunks(&b, w, n, PROTO_HDR_SIZE);
	feed_in_chunks(&b, w, n, 0);        /* random chunks */
	buf_release(&b);
}

static void test_decoder_pending(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct proto_decoder d;
	struct proto_frame f;
	struct err e = ERR_INIT;
	struct proto_ping p = { 1 };

	proto_put_msg(&b, 1, PROTO_PING, 0, &p);
	proto_put_msg(&b, 2, PROTO_PING, 0, &p);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, b.data, b.len - 3);   /* the second frame is cut */
	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(f.stream, 1);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 0);
	assert_int_equal(proto_decoder_pending(&d), PROTO_HDR_SIZE + 8 - 3);
	proto_decoder_feed(&d, b.data + b.len - 3, 3);
	assert_int_equal(proto_decoder_pending(&d), PROTO_HDR_SIZE + 8);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(f.stream, 2);
	assert_int_equal(proto_decoder_pending(&d), 0);
	proto_decoder_feed(&d, "", 0);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 0);
	proto_decoder_release(&d);
	buf_release(&b);
}

static void header(uint8_t *h, uint32_t len, uint8_t magic, uint8_t type, uint16_t flags,
		   uint32_t stream)
{
	wire_set_le32(h, len);
	h[4] = magic;
	h[5] = type;
	h[6] = (uint8_t)flags;
	h[7] = (uint8_t)(flags >> 8);
	wire_set_le32(h + 8, stream);
}

static void test_bad_magic(void **state)
{
	(void)state;
	struct proto_decoder d;
	struct proto_frame f;
	struct err e = ERR_INIT;
	uint8_t h[PROTO_HDR_SIZE];

	header(h, 0, 0xb8, PROTO_CLOSE, 0, 1);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, h, sizeof(h));
	assert_int_equal(proto_decoder_next(&d, &f, &e), -EPROTO);
	assert_int_equal(e.code, EPROTO);
	assert_string_equal(e.msg, "bad frame magic (not a bhatti agent stream?)");
	/* sticky: later frames, even good ones, are not returned */
	header(h, 0, PROTO_MAGIC, PROTO_CLOSE, 0, 1);
	proto_decoder_feed(&d, h, sizeof(h));
	assert_int_equal(proto_decoder_next(&d, &f, &e), -EPROTO);
	proto_decoder_release(&d);

	/* garbage is caught as soon as byte 4 arrives, before a full header */
	proto_decoder_init(&d);
	proto_decoder_feed(&d, "GET /", 5);
	assert_int_equal(proto_decoder_next(&d, &f, &e), -EPROTO);
	proto_decoder_release(&d);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, "GET ", 4);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 0);
	proto_decoder_release(&d);

	/* a bad frame after a good one */
	struct buf b = BUF_INIT;
	proto_put_msg(&b, 1, PROTO_CLOSE, 0, NULL);
	header(h, 0, 0x00, PROTO_CLOSE, 0, 1);
	buf_add(&b, h, sizeof(h));
	proto_decoder_init(&d);
	proto_decoder_feed(&d, b.data, b.len);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(proto_decoder_next(&d, &f, &e), -EPROTO);
	proto_decoder_release(&d);
	buf_release(&b);
}

static void test_oversized(void **state)
{
	(void)state;
	struct proto_decoder d;
	struct proto_frame f;
	struct err e = ERR_INIT;
	uint8_t h[PROTO_HDR_SIZE], junk[4096];

	memset(junk, 0x41, sizeof(junk));
	header(h, PROTO_MAX_PAYLOAD + 1, PROTO_MAGIC, PROTO_DATA, 0, 1);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, h, sizeof(h));
	assert_int_equal(proto_decoder_next(&d, &f, &e), -EMSGSIZE);
	assert_int_equal(e.code, EMSGSIZE);
	assert_string_equal(e.msg, "frame of 1048577 bytes exceeds the 1048576 byte limit");
	/* the payload that follows is not buffered */
	for (int i = 0; i < 10; i++)
		proto_decoder_feed(&d, junk, sizeof(junk));
	assert_int_equal(proto_decoder_pending(&d), PROTO_HDR_SIZE);
	assert_int_equal(proto_decoder_next(&d, &f, &e), -EMSGSIZE);
	proto_decoder_release(&d);

	header(h, UINT32_MAX, PROTO_MAGIC, PROTO_EXEC, 0, 1);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, h, sizeof(h));
	assert_int_equal(proto_decoder_next(&d, &f, &e), -EMSGSIZE);
	proto_decoder_release(&d);

	/* exactly the limit is fine: the decoder waits for the payload */
	header(h, PROTO_MAX_PAYLOAD, PROTO_MAGIC, PROTO_DATA, 0, 1);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, h, sizeof(h));
	assert_int_equal(proto_decoder_next(&d, &f, &e), 0);
	uint8_t *payload = xcalloc(1, PROTO_MAX_PAYLOAD);
	proto_decoder_feed(&d, payload, PROTO_MAX_PAYLOAD);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(f.len, PROTO_MAX_PAYLOAD);
	free(payload);
	proto_decoder_release(&d);
}

static void test_unknown_flags(void **state)
{
	(void)state;
	static const uint16_t bad[] = { 0x0002, 0x0100, 0x8000, 0xffff, PROTO_F_END | 0x4 };
	struct proto_decoder d;
	struct proto_frame f;
	struct err e = ERR_INIT;
	uint8_t h[PROTO_HDR_SIZE];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		header(h, 0, PROTO_MAGIC, PROTO_CLOSE, bad[i], 1);
		proto_decoder_init(&d);
		proto_decoder_feed(&d, h, sizeof(h));
		assert_int_equal(proto_decoder_next(&d, &f, &e), -EPROTO);
		assert_true(strstr(e.msg, "unknown frame flags") != NULL);
		proto_decoder_release(&d);
	}
	header(h, 0, PROTO_MAGIC, PROTO_CLOSE, PROTO_F_END, 1);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, h, sizeof(h));
	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(f.flags, PROTO_F_END);
	proto_decoder_release(&d);
}

/* ---- body decoding ------------------------------------------------------- */

static struct proto_frame frame_of(uint8_t type, const void *payload, size_t len)
{
	struct proto_frame f = { 1, type, 0, payload, (uint32_t)len };
	return f;
}

static void test_trailing_bytes(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	anymsg m;

	wire_put_u64(&b, 5);
	wire_put_u8(&b, 0);
	struct proto_frame f = frame_of(PROTO_PING, b.data, b.len);
	assert_int_equal(proto_decode(&f, &m, &e), -EPROTO);
	assert_string_equal(e.msg, "malformed PING message (9 bytes)");
	f.len = 8;
	assert_int_equal(proto_decode(&f, &m, &e), 0);

	f = frame_of(PROTO_CLOSE, "x", 1);
	assert_int_equal(proto_decode(&f, &m, &e), -EPROTO);
	f = frame_of(PROTO_CLOSE, "", 0);
	assert_int_equal(proto_decode(&f, &m, &e), 0);
	assert_int_equal(proto_decode(&f, NULL, &e), 0);  /* no struct needed */

	/* a string field followed by junk: the string is freed (ASan) */
	buf_reset(&b);
	wire_put_str(&b, "/etc");
	wire_put_u8(&b, 1);
	f = frame_of(PROTO_FILE_STAT, b.data, b.len);
	assert_int_equal(proto_decode(&f, &m, &e), -EPROTO);
	buf_release(&b);
}

/* Every truncation of a body fails cleanly: no overread (exact heap copy,
 * ASan), no leak of what was decoded before the cut. */
static void check_truncations(uint8_t type, const void *msg)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	anymsg m;

	assert_int_equal(proto_put_msg(&b, 1, type, 0, msg), 0);
	const uint8_t *body = (const uint8_t *)b.data + PROTO_HDR_SIZE;
	size_t len = b.len - PROTO_HDR_SIZE;
	for (size_t n = 0; n < len; n++) {
		uint8_t *p = xmalloc(n);
		memcpy(p, body, n);
		struct proto_frame f = frame_of(type, n ? p : NULL, n);
		if (proto_decode(&f, &m, &e) != -EPROTO)
			fail_msg("%s cut to %zu of %zu bytes was accepted",
				 proto_type_name(type), n, len);
		free(p);
	}
	struct proto_frame f = frame_of(type, body, len);
	assert_int_equal(proto_decode(&f, &m, &e), 0);
	proto_msg_release(type, &m);
	buf_release(&b);
}

static void test_truncated_bodies(void **state)
{
	(void)state;
	char *argv[] = { "a", "bc", NULL };
	uint8_t bytes[3] = { 1, 2, 3 };
	struct proto_cfg_file files[] = {
		{ "/f1", 1, 2, 3, { bytes, 3 } }, { "/f2", 4, 5, 6, { bytes, 2 } },
	};
	struct proto_configure c = { 1, "h", "t", argv, argv, files, 2, "i", "e", "a", "g",
				     argv, 9, 10, { bytes, 3 }, "m" };
	struct proto_session ss[] = {
		{ "s1", argv, "tty", 1, 1, 1, 1, 1, 1, 1, 1 },
		{ "s2", argv, "tty", 2, 0, 0, 2, 2, 2, 2, 2 },
	};
	struct proto_session_list sl = { ss, 2 };
	struct proto_dirent de[] = { { "n1", 1, 2, 3, 4 }, { "n2", 5, 6, 7, 8 } };
	struct proto_ls_result ls = { de, 2, 2, 0 };
	struct proto_exec x = { argv, argv, "/", 1, 2, "o" };
	struct proto_hello_ok ok = { 1, "v", 2, 3, 4, "h", 1 };

	check_truncations(PROTO_CONFIGURE, &c);
	check_truncations(PROTO_SESSION_LIST_RESULT, &sl);
	check_truncations(PROTO_LS_RESULT, &ls);
	struct proto_port pp[] = { { 80, PROTO_PORT_V4 }, { 443, PROTO_PORT_V6 } };
	struct proto_ports_result pr = { pp, 2 };
	check_truncations(PROTO_PORTS_RESULT, &pr);
	check_truncations(PROTO_EXEC, &x);
	check_truncations(PROTO_HELLO_OK, &ok);
}

static void test_list_counts_not_trusted(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	anymsg m;

	/* 4 billion sessions in 8 bytes */
	wire_put_u32(&b, UINT32_MAX);
	wire_put_u32(&b, 0);
	struct proto_frame f = frame_of(PROTO_SESSION_LIST_RESULT, b.data, b.len);
	assert_int_equal(proto_decode(&f, &m, &e), -EPROTO);
	assert_string_equal(e.msg, "malformed SESSION_LIST_RESULT message (8 bytes)");

	/* more entries than PROTO_LIST_MAX, with the bytes to claim them */
	buf_reset(&b);
	wire_put_u32(&b, 65537);
	for (int i = 0; i < 65537; i++)
		buf_addch(&b, 0);
	f = frame_of(PROTO_LS_RESULT, b.data, b.len);
	assert_int_equal(proto_decode(&f, &m, &e), -EPROTO);
	buf_release(&b);
}

static void test_unknown_type(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct proto_decoder d;
	struct proto_frame f;
	struct err e = ERR_INIT;
	anymsg m;

	proto_put_frame(&b, 3, 200, 0, "abc", 3);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, b.data, b.len);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);  /* framing is fine */
	assert_int_equal(f.type, 200);
	assert_int_equal(f.len, 3);
	assert_memory_equal(f.payload, "abc", 3);
	assert_false(proto_type_known(200));
	assert_null(proto_type_name(200));
	assert_int_equal(proto_decode(&f, &m, &e), -EPROTO);
	assert_string_equal(e.msg, "unknown message type 200");
	proto_msg_release(200, &m);  /* harmless */
	proto_decoder_release(&d);
	buf_release(&b);
}

static void test_data(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct proto_decoder d;
	struct proto_frame f;
	struct proto_data dd;
	struct err e = ERR_INIT;
	uint8_t *big = xmalloc(PROTO_DATA_CHUNK);
	anymsg m;

	for (size_t i = 0; i < PROTO_DATA_CHUNK; i++)
		big[i] = (uint8_t)(i * 31);
	proto_put_data(&b, 5, PROTO_CH_OUT, "hello", 5);
	proto_put_data(&b, 5, PROTO_CH_ERR, NULL, 0);
	proto_put_data(&b, 6, PROTO_CH_IN, big, PROTO_DATA_CHUNK);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, b.data, b.len);

	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(f.type, PROTO_DATA);
	assert_int_equal(f.len, 6);
	assert_int_equal(proto_decode_data(&f, &dd, &e), 0);
	assert_int_equal(dd.channel, PROTO_CH_OUT);
	assert_int_equal(dd.len, 5);
	assert_memory_equal(dd.data, "hello", 5);
	assert_int_equal(proto_decode(&f, &m, &e), -EPROTO);  /* no layout */

	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(proto_decode_data(&f, &dd, &e), 0);
	assert_int_equal(dd.channel, PROTO_CH_ERR);
	assert_int_equal(dd.len, 0);

	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(f.stream, 6);
	assert_int_equal(proto_decode_data(&f, &dd, &e), 0);
	assert_int_equal(dd.len, PROTO_DATA_CHUNK);
	assert_memory_equal(dd.data, big, PROTO_DATA_CHUNK);
	proto_decoder_release(&d);

	/* no channel byte; too long; not DATA */
	f = frame_of(PROTO_DATA, "", 0);
	assert_int_equal(proto_decode_data(&f, &dd, &e), -EPROTO);
	assert_string_equal(e.msg, "malformed DATA message (0 bytes)");
	uint8_t *huge = xcalloc(1, PROTO_DATA_CHUNK + 2);
	f = frame_of(PROTO_DATA, huge, PROTO_DATA_CHUNK + 2);
	assert_int_equal(proto_decode_data(&f, &dd, &e), -EPROTO);
	f = frame_of(PROTO_EOF, "\x01", 1);
	assert_int_equal(proto_decode_data(&f, &dd, &e), -EPROTO);
	free(huge);
	free(big);
	buf_release(&b);
}

static void test_put_msg_too_large(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	char *huge = xmalloc(PROTO_MAX_PAYLOAD + 1);
	char *argv[] = { huge, NULL };
	struct proto_exec x = { argv, NULL, "", 0, 0, "" };

	memset(huge, 'a', PROTO_MAX_PAYLOAD);
	huge[PROTO_MAX_PAYLOAD] = '\0';
	buf_adds(&b, "already queued");
	assert_int_equal(proto_put_msg(&b, 1, PROTO_EXEC, 0, &x), -EMSGSIZE);
	assert_int_equal(b.len, 14);
	assert_string_equal(b.data, "already queued");

	/* a body of exactly PROTO_MAX_PAYLOAD fits, and decodes (u32 length,
	 * the path, u32 flags) */
	huge[PROTO_MAX_PAYLOAD - 8] = '\0';
	struct proto_path p = { huge, PROTO_FILE_ROOT }, p2;
	buf_reset(&b);
	assert_int_equal(proto_put_msg(&b, 1, PROTO_FILE_STAT, 0, &p), 0);
	assert_int_equal(b.len, PROTO_MAX_FRAME);
	roundtrip(PROTO_FILE_STAT, 0, 1, &p, &p2);
	assert_int_equal(strlen(p2.path), PROTO_MAX_PAYLOAD - 8);
	assert_int_equal(p2.flags, PROTO_FILE_ROOT);
	proto_msg_release(PROTO_FILE_STAT, &p2);
	/* one byte more does not */
	huge[PROTO_MAX_PAYLOAD - 8] = 'a';
	huge[PROTO_MAX_PAYLOAD - 7] = '\0';
	assert_int_equal(proto_put_msg(&b, 1, PROTO_FILE_STAT, 0, &p), -EMSGSIZE);
	assert_int_equal(b.len, PROTO_MAX_FRAME);
	free(huge);
	buf_release(&b);
}

static void test_put_error_and_frame(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct proto_decoder d;
	struct proto_frame f;
	struct err e = ERR_INIT;
	struct proto_error er;

	proto_put_error(&b, 7, -ENOENT, "no such file '%s'", "/x");
	proto_put_frame(&b, 8, PROTO_PING, 0, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	proto_decoder_init(&d);
	proto_decoder_feed(&d, b.data, b.len);
	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	assert_int_equal(f.type, PROTO_ERROR);
	assert_int_equal(f.flags, PROTO_F_END);
	assert_int_equal(f.stream, 7);
	assert_int_equal(proto_decode(&f, &er, &e), 0);
	assert_int_equal(er.code, ENOENT);
	assert_string_equal(er.message, "no such file '/x'");
	proto_msg_release(PROTO_ERROR, &er);

	assert_int_equal(proto_decoder_next(&d, &f, &e), 1);
	struct proto_ping p;
	assert_int_equal(proto_decode(&f, &p, &e), 0);
	assert_true(p.nonce == 0x0807060504030201ull);
	proto_decoder_release(&d);
	buf_release(&b);
}

/* Mutated streams: whatever comes out of the decoder is decoded and
 * released without crashing or leaking (a small stand-in for the fuzzer). */
static void test_mutations(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct want w[16];
	uint32_t seed = 7;

	build_stream(&b, w);
	for (int round = 0; round < 3000; round++) {
		uint8_t *p = xmalloc(b.len);
		memcpy(p, b.data, b.len);
		for (int k = 0; k < 1 + round % 4; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % b.len;
			seed = seed * 1103515245u + 12345u;
			p[at] = (uint8_t)(seed >> 16);
		}
		struct proto_decoder d;
		struct proto_frame f;
		struct err e = ERR_INIT;
		proto_decoder_init(&d);
		proto_decoder_feed(&d, p, b.len);
		int r;
		while ((r = proto_decoder_next(&d, &f, &e)) == 1) {
			anymsg m;
			struct proto_data dd;
			if (f.type == PROTO_DATA)
				proto_decode_data(&f, &dd, &e);
			else if (proto_decode(&f, &m, &e) == 0)
				proto_msg_release(f.type, &m);
		}
		assert_true(r == 0 || r == -EPROTO || r == -EMSGSIZE);
		proto_decoder_release(&d);
		free(p);
	}
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_control),
		cmocka_unit_test(test_configure),
		cmocka_unit_test(test_activity),
		cmocka_unit_test(test_exec),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_wire_format),
		cmocka_unit_test(test_every_type_covered),
		cmocka_unit_test(test_decoder_chunking),
		cmocka_unit_test(test_decoder_pending),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_unknown_flags),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_truncated_bodies),
		cmocka_unit_test(test_list_counts_not_trusted),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_data),
		cmocka_unit_test(test_put_msg_too_large),
		cmocka_unit_test(test_put_error_and_frame),
		cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
