/* gen-seeds.c — writes one valid frame per message type into a directory,
 * as seeds for fuzz-proto (made with the real encoder, so they stay true
 * as the protocol changes). Usage: gen-seeds DIR */
#include <stdio.h>
#include <stdlib.h>

#include "proto.h"

static void put(const char *dir, const char *name, struct buf *b)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b->data, 1, b->len, f) != b->len) {
		perror(path);
		exit(1);
	}
	fclose(f);
	buf_reset(b);
}

int main(int argc, char **argv)
{
	struct buf b = BUF_INIT;
	char *argv_[] = { (char *)"sh", (char *)"-c", (char *)"echo hi", NULL };
	char *env[] = { (char *)"A=1", (char *)"B=two", NULL };
	if (argc != 2)
		return 2;

	struct proto_hello h = { PROTO_VERSION, (char *)"token", (char *)"seed" };
	proto_put_msg(&b, 0, PROTO_HELLO, 0, &h);
	put(argv[1], "hello", &b);

	struct proto_exec ex = { argv_, env, (char *)"/tmp", PROTO_EXEC_STDIN, 1000, (char *)"" };
	proto_put_msg(&b, 0, PROTO_HELLO, 0, &h);
	proto_put_msg(&b, 1, PROTO_EXEC, 0, &ex);
	proto_put_data(&b, 1, PROTO_CH_IN, "input", 5);
	struct proto_eof eof = { PROTO_CH_IN };
	proto_put_msg(&b, 1, PROTO_EOF, 0, &eof);
	struct proto_window w = { 65536 };
	proto_put_msg(&b, 1, PROTO_WINDOW_UPDATE, 0, &w);
	put(argv[1], "exec", &b);

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
	put(argv[1], "configure", &b);

	struct proto_session sess[2] = {
		{ (char *)"s1", argv_, (char *)"/dev/pts/0", 42, 1, 0, 0, 1700000000, 99, 24, 80 },
		{ (char *)"init", env, (char *)"/dev/pts/1", 43, 0, 1, 3, 1700000001, 5, 50, 132 },
	};
	struct proto_session_list sl = { sess, 2 };
	proto_put_msg(&b, 3, PROTO_SESSION_LIST_RESULT, PROTO_F_END, &sl);
	put(argv[1], "sessions", &b);

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
	put(argv[1], "mixed", &b);
	buf_release(&b);
	return 0;
}
