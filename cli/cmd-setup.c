/* cmd-setup.c — `bhatti setup`: ask for (or take --url/--token) the
 * daemon's URL and an API key, check them against the daemon, and save
 * them in ~/.bhatti/config.yaml (mode 0600). Nothing is saved when the
 * check fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

static char *ask(const char *prompt, const char *dflt, bool secret)
{
	char line[512];
	fprintf(stderr, "%s%s%s%s: ", prompt, dflt ? " [" : "", dflt ? dflt : "", dflt ? "]" : "");
	struct termios old, quiet;
	bool tty = secret && tcgetattr(0, &old) == 0;
	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSANOW, &quiet);
	}
	char *got = fgets(line, sizeof(line), stdin);
	if (tty) {
		tcsetattr(0, TCSANOW, &old);
		fputc('\n', stderr);
	}
	if (!got)
		return NULL;
	line[strcspn(line, "\r\n")] = '\0';
	return xstrdup(line[0] ? line : dflt ? dflt : "");
}

static int run(struct cli *c)
{
	char *url = c->flag_url ? xstrdup(c->flag_url) : NULL;
	char *token = c->flag_token ? xstrdup(c->flag_token) : NULL;
	if ((!url || !token) && !isatty(0)) {
		free(url);
		free(token);
		return cli_error(2, "give --url and --token (stdin is not a terminal, so I cannot ask)");
	}
	if (!url)
		url = ask("API URL", CLIENT_DEFAULT_URL, false);
	if (url && !token)
		token = ask("API key (bht_...)", NULL, true);
	if (!url || !token || !token[0]) {
		free(url);
		free(token);
		return cli_error(2, "setup needs a URL and an API key");
	}
	c->flag_url = url;
	c->flag_token = token;
	struct client *cl = cli_client(c);
	struct client_resp r;
	int rc = 0;
	if (cli_call(c, "GET", "/sandboxes", NULL, &r) < 0) {
		rc = 1;
	} else if (r.status != 200) {
		rc = cli_fail(&r);
		fprintf(stderr, "bhatti: nothing saved\n");
	}
	client_resp_release(&r);
	if (rc == 0) {
		char *path = client_config_path();
		struct buf dir = BUF_INIT, tmp = BUF_INIT, body = BUF_INIT;
		buf_add(&dir, path, (size_t)(strrchr(path, '/') - path));
		mkdir(dir.data, 0700);
		buf_addf(&tmp, "%s.tmp", path);
		buf_addf(&body, "# written by bhatti setup\napi_url: \"%s\"\nauth_token: \"%s\"\n", cl->url,
			 cl->token);
		if (cl->ca)   /* --ca (or BHATTI_CA): an https daemon's own CA */
			buf_addf(&body, "ca: \"%s\"\n", cl->ca);
		/* the file's theme (bhatti tui) stays */
		const char *th = c->set.file_theme;
		if (th && strspn(th, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-~") ==
			    strlen(th))
			buf_addf(&body, "theme: \"%s\"\n", th);
		int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || write_all(fd, body.data, body.len) < 0 || fsync(fd) < 0 ||
		    rename(tmp.data, path) < 0)
			rc = cli_error(1, "cannot write %s: %s", path, strerror(errno));
		else {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "saved", path);
			cJSON_AddStringToObject(o, "api_url", cl->url);
			cli_said(c, stdout, o, "saved %s (API %s)\n", path, cl->url);
		}
		if (fd >= 0)
			close(fd);
		client_scrub(&body);
		buf_release(&tmp);
		buf_release(&dir);
		free(path);
	}
	free(url);
	free(token);
	return rc;
}

const struct cli_cmd cmd_setup_entry = {
	.name = "setup",
	.summary = "save the daemon's URL and your API key (~/.bhatti/config.yaml)",
	.usage = "[--url URL] [--token KEY] [--ca FILE] [--json]",
	.help = "Checks the key against the daemon and saves both in ~/.bhatti/config.yaml.",
	.run = run,
};
