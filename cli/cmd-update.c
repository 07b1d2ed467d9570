/* cmd-update.c — `bhatti update`: fetch the installer of the release this
 * install came from and run it (re-running install.sh is an update: the
 * config, data, users, keys and running sandboxes are kept). A server
 * install (its record, /etc/bhatti/install.conf, or $BHATTI_CONF_DIR's)
 * is updated as a server, as root; `--cli-only`, or a CLI-only install
 * (~/.bhatti/install.conf), updates this binary where it is.
 *
 * Talks to no daemon: it runs curl (the release) and bash (the installer).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* KEY=value of a record written by install.sh, or NULL. */
static char *record_get(const char *path, const char *key)
{
	FILE *f = fopen(path, "re");
	char line[4096];
	size_t klen = strlen(key);
	char *v = NULL;
	while (f && !v && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, key, klen) == 0 && line[klen] == '=' && line[klen + 1])
			v = xstrdup(line + klen + 1);
	}
	if (f)
		fclose(f);
	return v;
}

static int run_wait(char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0)
		return cli_error(1, "fork: %s", strerror(errno));
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "bhatti: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run(struct cli *c)
{
	const struct args *a = &c->args;
	bool cli_only = args_has(a, "--cli-only");
	const char *tiers = args_get(a, "--tiers");
	const char *conf_dir = getenv("BHATTI_CONF_DIR");
	struct buf server_rec = BUF_INIT, cli_rec = BUF_INIT;
	buf_addf(&server_rec, "%s/install.conf", conf_dir && conf_dir[0] ? conf_dir : "/etc/bhatti");
	buf_addf(&cli_rec, "%s/.bhatti/install.conf", getenv("HOME") ? getenv("HOME") : "");
	bool server = !cli_only && access(server_rec.data, R_OK) == 0;
	if (!server && !cli_only && access(server_rec.data, F_OK) == 0 && geteuid() != 0) {
		buf_release(&server_rec);
		buf_release(&cli_rec);
		return cli_error(1, "the server is updated as root: sudo bhatti update (or --cli-only)");
	}
	if (tiers && !server) {
		buf_release(&server_rec);
		buf_release(&cli_rec);
		return cli_error(2, "--tiers updates a server install (none recorded in %s)",
				 server_rec.data);
	}
	if (server && geteuid() != 0) {
		buf_release(&server_rec);
		buf_release(&cli_rec);
		return cli_error(1, "the server is updated as root: sudo bhatti update (or --cli-only)");
	}
	const char *rec = server ? server_rec.data : cli_rec.data;
	char *url = getenv("BHATTI_RELEASE_URL") && getenv("BHATTI_RELEASE_URL")[0]
			    ? xstrdup(getenv("BHATTI_RELEASE_URL"))
			    : record_get(rec, "RELEASE_URL");
	if (args_get(a, "--release-url")) {
		free(url);
		url = xstrdup(args_get(a, "--release-url"));
	}
	int rc;
	if (!url) {
		rc = cli_error(1, "no release to update from (%s names none: installed from a "
				  "checkout?); there: git pull && sudo ./install.sh, or set "
				  "BHATTI_RELEASE_URL", rec);
		goto out;
	}
	char tmp[] = "/tmp/bhatti-install-XXXXXX";
	int fd = mkstemp(tmp);
	if (fd < 0) {
		rc = cli_error(1, "mkstemp: %s", strerror(errno));
		goto out;
	}
	close(fd);
	struct buf src = BUF_INIT;
	buf_addf(&src, "%s/install.sh", url);
	printf("update: fetching %s\n", src.data);
	fflush(stdout);
	char *curl[] = { (char *)"curl", (char *)"-fsSL", (char *)"-o", tmp, src.data, NULL };
	rc = url[0] == '/' ? run_wait((char *[]){ (char *)"cp", src.data, tmp, NULL })
			   : run_wait(curl);
	if (rc) {
		rc = cli_error(1, "cannot fetch %s", src.data);
	} else {
		/* this binary's prefix: PREFIX/bin/bhatti */
		char self[PATH_MAX], prefix[PATH_MAX] = "";
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n > 0) {
			self[n] = '\0';
			char *s = strrchr(self, '/');
			if (s) {
				*s = '\0';
				s = strrchr(self, '/');
				if (s && strcmp(s, "/bin") == 0) {
					*s = '\0';
					snprintf(prefix, sizeof(prefix), "%s", self[0] ? self : "/");
				}
			}
		}
		char *argv[16];
		size_t i = 0;
		argv[i++] = (char *)"bash";
		argv[i++] = tmp;
		argv[i++] = (char *)"--yes";
		if (server) {
			argv[i++] = (char *)"--server";
			if (conf_dir && conf_dir[0]) {
				argv[i++] = (char *)"--conf-dir";
				argv[i++] = (char *)conf_dir;
			}
			if (tiers) {
				argv[i++] = (char *)"--tiers";
				argv[i++] = (char *)tiers;
			}
		} else {
			argv[i++] = (char *)"--cli";
			if (prefix[0]) {
				argv[i++] = (char *)"--prefix";
				argv[i++] = prefix;
			}
		}
		argv[i] = NULL;
		setenv("BHATTI_RELEASE_URL", url, 1);
		rc = run_wait(argv);
	}
	unlink(tmp);
	buf_release(&src);
out:
	free(url);
	buf_release(&server_rec);
	buf_release(&cli_rec);
	return rc;
}

static const struct opt opts[] = {
	{ "--cli-only", NULL, OPT_FLAG },
	{ "--tiers", NULL, OPT_VALUE },
	{ "--release-url", NULL, OPT_VALUE },
	OPT_END,
};

const struct cli_cmd cmd_update_entry = {
	.name = "update",
	.summary = "update bhatti with the installer of its release (keeps data and sandboxes)",
	.usage = "[--cli-only] [--tiers all|A,B] [--release-url URL]",
	.help = "A server install (/etc/bhatti/install.conf, or $BHATTI_CONF_DIR's) is updated\n"
		"as a server (as root); --cli-only updates only this binary. The release is\n"
		"--release-url, else $BHATTI_RELEASE_URL, else the one it was installed from.",
	.opts = opts,
	.run = run,
};
