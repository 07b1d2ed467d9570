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
#include "client.h"
#include "num.h"

static const char usage[] =
	"usage: bhatti file read NAME PATH [--offset LINES] [--limit LINES] [--max-bytes N]\n"
	"       bhatti file write NAME PATH [--mode 0644] [--from LOCAL_FILE | < stdin]\n"
	"       bhatti file ls NAME PATH [--json]\n";

static bool to_stdout(const char *p, size_t n, void *arg UNUSED)
{
	return write_all(1, p, n) == 0;
}

static char *files_path(const char *name, const char *path, const char *extra)
{
	char *a = cli_escape(name), *b = cli_escape(path);
	struct buf u = BUF_INIT;
	buf_addf(&u, "/sandboxes/%s/files?path=%s%s", a, b, extra ? extra : "");
	free(a);
	free(b);
	return buf_detach(&u, NULL);
}

static int file_read(char **pos, const char *offset, const char *limit, const char *maxb)
{
	struct buf q = BUF_INIT;
	const char *names[] = { "offset", "limit", "max_bytes" }, *vals[] = { offset, limit, maxb };
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
	char *path = files_path(pos[0], pos[1], q.data);
	buf_release(&q);
	struct cli_resp r;
	int rc = cli_stream("GET", path, NULL, NULL, to_stdout, NULL, &r) < 0 ? 1 : 0;
	if (!rc && r.status != 200)
		rc = cli_fail(&r);
	cli_resp_release(&r);
	free(path);
	return rc;
}

static int file_write(char **pos, const char *mode, const char *from)
{
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
	char *path = files_path(pos[0], pos[1], extra.data);
	buf_release(&extra);
	struct cli_resp r;
	int rc = cli_upload(path, fd, (size_t)st.st_size, &r) < 0 ? 1 : 0;
	if (!rc && r.status != 201 && r.status != 200)
		rc = cli_fail(&r);
	else if (!rc && !CLI.json)
		fprintf(stderr, "wrote %lld bytes to %s:%s\n", (long long)st.st_size, pos[0], pos[1]);
	else if (!rc)
		fwrite(r.body.data, 1, r.body.len, stdout);
	cli_resp_release(&r);
	free(path);
	if (fd != 0)
		close(fd);
	return rc;
}

static int file_ls(char **pos)
{
	char *path = files_path(pos[0], pos[1], "&ls=true");
	struct cli_resp r;
	int rc = cli_call("GET", path, NULL, &r) < 0 ? 1 : 0;
	free(path);
	if (rc)
		return rc;
	cJSON *j = r.status == 200 ? cli_json(&r) : NULL;
	if (r.status != 200)
		rc = cli_fail(&r);
	else if (!j)
		rc = 1;
	else if (CLI.json)
		cli_print_json(j);
	else {
		cJSON *d;
		cJSON_ArrayForEach(d, cJSON_GetObjectItem(j, "entries"))
		{
			const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(d, "type"));
			printf("%s %10.0f  %s  %s%s\n", cJSON_GetStringValue(cJSON_GetObjectItem(d, "mode")),
			       cJSON_GetNumberValue(cJSON_GetObjectItem(d, "size")),
			       cJSON_GetStringValue(cJSON_GetObjectItem(d, "mtime")),
			       cJSON_GetStringValue(cJSON_GetObjectItem(d, "name")),
			       type && type[0] == 'd' ? "/" : "");
		}
		if (cJSON_IsTrue(cJSON_GetObjectItem(j, "truncated")))
			printf("... (truncated: %d entries in all)\n",
			       cJSON_GetObjectItem(j, "total")->valueint);
	}
	cJSON_Delete(j);
	cli_resp_release(&r);
	return rc;
}

int cmd_file(int argc, char **argv)
{
	char *offset = NULL, *limit = NULL, *maxb = NULL, *mode = NULL, *from = NULL, **pos;
	const struct cli_opt opts[] = {
		{ "--offset", &offset, NULL, NULL }, { "--limit", &limit, NULL, NULL },
		{ "--max-bytes", &maxb, NULL, NULL }, { "--mode", &mode, NULL, NULL },
		{ "--from", &from, NULL, NULL },
	};
	if (cli_parse(argc, argv, opts, ARRAY_SIZE(opts), &pos, NULL) < 0)
		return 2;
	int rc;
	if (CLI.help) {
		fputs(usage, stdout);
		rc = 0;
	} else if (!pos[0] || !pos[1] || !pos[2] || pos[3]) {
		fputs(usage, stderr);
		rc = 2;
	} else {
		cli_settings();
		if (strcmp(pos[0], "read") == 0)
			rc = file_read(pos + 1, offset, limit, maxb);
		else if (strcmp(pos[0], "write") == 0)
			rc = file_write(pos + 1, mode, from);
		else if (strcmp(pos[0], "ls") == 0)
			rc = file_ls(pos + 1);
		else
			rc = cli_error(2, "unknown file command '%s' (read, write, ls)", pos[0]);
	}
	free(pos);
	return rc;
}
