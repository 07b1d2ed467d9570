/* cmd-file.c — `bhatti file read|write|ls NAME PATH`: files in a sandbox
 * (GET/PUT /sandboxes/:id/files). Reads stream to stdout; writes stream
 * from a local file or stdin and are atomic in the guest. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "httpc.h"
#include "num.h"

static bool to_stdout(const char *p, size_t n, void *arg UNUSED)
{
	return write_all(1, p, n) == 0;
}

/* The files URL of NAME PATH (the first two positionals) and more query
 * (--root: with root's permissions in the guest). */
static char *files_path(const struct cli *c, const char *extra)
{
	char *p = httpc_escape(c->args.pos[1]);
	struct buf u = BUF_INIT;
	buf_addf(&u, "/sandboxes/%s/files?path=%s%s%s", c->esc[0], p, extra ? extra : "",
		 args_has(&c->args, "--root") ? "&as_root=true" : "");
	free(p);
	return buf_detach(&u, NULL);
}

static int file_read(struct cli *c)
{
	struct buf q = BUF_INIT;
	const char *names[] = { "offset", "limit", "max_bytes" };
	const char *vals[] = { args_get(&c->args, "--offset"), args_get(&c->args, "--limit"),
			       args_get(&c->args, "--max-bytes") };
	for (int i = 0; i < 3; i++) {
		uint64_t v;
		struct err e = ERR_INIT;
		if (!vals[i])
			continue;
		if (num_parse_u64(vals[i], 0, UINT64_MAX, &v, names[i], &e) < 0) {
			buf_release(&q);
			return cli_error(2, "%s", err_str(&e));
		}
		buf_addf(&q, "&%s=%llu", names[i], (unsigned long long)v);
	}
	char *path = files_path(c, q.data);
	buf_release(&q);
	struct client_resp r;
	int rc = cli_stream(c, "GET", path, NULL, NULL, to_stdout, NULL, &r) < 0 ? 1 : 0;
	if (!rc && r.status != 200)
		rc = cli_fail(&r);
	client_resp_release(&r);
	free(path);
	return rc;
}

static int file_write(struct cli *c)
{
	const char *mode = args_get(&c->args, "--mode"), *from = args_get(&c->args, "--from");
	int fd = 0;
	if (from && (fd = open(from, O_RDONLY | O_CLOEXEC)) < 0)
		return cli_error(1, "cannot open '%s': %s", from, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		/* a pipe: spool it so the daemon gets a Content-Length */
		char t[] = "/tmp/bhatti-upload-XXXXXX";
		int tfd = mkstemp(t);
		if (tfd < 0)
			return cli_error(1, "cannot make a temp file: %s", strerror(errno));
		unlink(t);
		char buf[65536];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write_all(tfd, buf, (size_t)n) < 0)
				return cli_error(1, "cannot spool stdin: %s", strerror(errno));
		if (fd != 0)
			close(fd);
		fd = tfd;
		lseek(fd, 0, SEEK_SET);
		fstat(fd, &st);
	}
	struct buf extra = BUF_INIT;
	if (mode)
		buf_addf(&extra, "&mode=%s", mode);
	char *path = files_path(c, extra.data);
	buf_release(&extra);
	struct client_resp r;
	int rc = cli_upload(c, path, fd, (size_t)st.st_size, &r) < 0 ? 1 : 0;
	if (!rc && r.status != 201 && r.status != 200)
		rc = cli_fail(&r);
	else if (!rc && !c->json)
		fprintf(stderr, "wrote %lld bytes to %s:%s\n", (long long)st.st_size, c->args.pos[0],
			c->args.pos[1]);
	else if (!rc)
		fwrite(r.body.data, 1, r.body.len, stdout);
	client_resp_release(&r);
	free(path);
	if (fd != 0)
		close(fd);
	return rc;
}

static int file_ls(struct cli *c)
{
	char *path = files_path(c, "&ls=true");
	cJSON *j;
	int rc = cli_call_json(c, "GET", path, &j);
	free(path);
	if (rc)
		return rc;
	if (c->json)
		cli_print_json(j);
	else {
		cJSON *d;
		cJSON_ArrayForEach(d, cJSON_GetObjectItem(j, "entries"))
		{
			const char *type = cli_jstr(d, "type");
			printf("%s %10.0f  %s  %s%s\n", cli_jstr(d, "mode"),
			       cJSON_GetNumberValue(cJSON_GetObjectItem(d, "size")), cli_jstr(d, "mtime"),
			       cli_jstr(d, "name"), type[0] == 'd' ? "/" : "");
		}
		if (cJSON_IsTrue(cJSON_GetObjectItem(j, "truncated")))
			printf("... (truncated: %d entries in all)\n", cli_jint(j, "total"));
	}
	cJSON_Delete(j);
	return 0;
}

static const struct opt read_opts[] = {
	{ "--offset", NULL, OPT_VALUE },
	{ "--limit", NULL, OPT_VALUE },
	{ "--max-bytes", NULL, OPT_VALUE },
	{ "--root", NULL, OPT_FLAG },
	OPT_END,
};

static const struct opt write_opts[] = {
	{ "--mode", NULL, OPT_VALUE },
	{ "--from", NULL, OPT_VALUE },
	{ "--root", NULL, OPT_FLAG },
	OPT_END,
};

static const struct opt ls_opts[] = {
	{ "--root", NULL, OPT_FLAG },
	OPT_END,
};

static const struct cli_cmd subs[] = {
	{ .name = "read",
	  .usage = "NAME PATH [--offset LINES] [--limit LINES] [--max-bytes N] [--root]",
	  .opts = read_opts, .min_args = 2, .max_args = 2, .flags = CLI_NAME, .run = file_read },
	{ .name = "write", .usage = "NAME PATH [--mode 0644] [--from LOCAL_FILE | < stdin] [--root]",
	  .opts = write_opts, .min_args = 2, .max_args = 2, .flags = CLI_NAME, .run = file_write },
	{ .name = "ls", .usage = "NAME PATH [--json] [--root]", .opts = ls_opts, .min_args = 2,
	  .max_args = 2, .flags = CLI_NAME, .run = file_ls },
	{ .name = NULL },
};

const struct cli_cmd cmd_file_entry = {
	.name = "file",
	.summary = "read, write or list files in a sandbox",
	.subs = subs,
};
