/* child.c — starting and reaping processes for execs and PTY sessions, and
 * building their environment. Sits between the ops (op-exec.c,
 * op-session.c) and fork/exec/waitpid.
 *
 * Every child is a process-group leader (setpgid, or setsid for a PTY) so
 * timeouts, cancels and kills reach its grandchildren too. lohar is a child
 * subreaper (PID 1 in a VM, PR_SET_CHILD_SUBREAPER in test mode): orphans
 * come back to it and child_reap_all() reaps them like everyone else.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

extern char **environ;

static struct child *children;

enum spawn_stage { STAGE_SETUP = 1, STAGE_CWD, STAGE_USER, STAGE_EXEC };

struct spawn_failure {
	int stage;
	int err;
};

/* In the child after fork: never returns. Reports failures on report_fd. */
static void child_setup(const struct spawn *sp, uid_t uid, gid_t gid, int report_fd)
{
	struct spawn_failure fail = { STAGE_SETUP, 0 };
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);

	if (sp->pty) {
		if (setsid() < 0 || ioctl(sp->stdin_fd, TIOCSCTTY, 0) < 0)
			goto fail;
	} else if (setpgid(0, 0) < 0) {
		goto fail;
	}
	if (dup2(sp->stdin_fd, 0) < 0 || dup2(sp->stdout_fd, 1) < 0 ||
	    dup2(sp->stderr_fd, 2) < 0)
		goto fail;
	/* 0..2 are dups (no CLOEXEC); everything else lohar opens is CLOEXEC */

	if (!sp->as_root && agent.switch_user) {
		fail.stage = STAGE_USER;
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			goto fail;
	}
	fail.stage = STAGE_CWD;
	if (sp->cwd && sp->cwd[0] && chdir(sp->cwd) < 0)
		goto fail;

	fail.stage = STAGE_EXEC;
	environ = sp->env; /* execvp searches the PATH of the new environment */
	execvp(sp->argv[0], sp->argv);
fail:
	fail.err = errno;
	if (write(report_fd, &fail, sizeof(fail)) < 0) {
		/* parent sees EOF and a 127 exit */
	}
	_exit(127);
}

int child_spawn(struct child *c, const struct spawn *sp, struct err *e)
{
	int report[2];
	struct spawn_failure fail;

	if (!sp->argv || !sp->argv[0] || !sp->argv[0][0])
		return err_set(e, EINVAL, "empty command");
	if (pipe2(report, O_CLOEXEC) < 0)
		return err_set(e, errno, "pipe: %s", strerror(errno));

	pid_t pid = fork();
	if (pid < 0) {
		int r = errno;
		close(report[0]);
		close(report[1]);
		return err_set(e, r, "fork: %s", strerror(r));
	}
	if (pid == 0) {
		close(report[0]);
		child_setup(sp, agent.uid, agent.gid, report[1]);
	}
	close(report[1]);
	if (!sp->pty)
		setpgid(pid, pid); /* also in the parent: no race with kill */

	/* Block until exec: the pipe closes on success (CLOEXEC) or carries
	 * the failure. This takes well under a millisecond. */
	ssize_t n;
	do {
		n = read(report[0], &fail, sizeof(fail));
	} while (n < 0 && errno == EINTR);
	close(report[0]);
	if (n == (ssize_t)sizeof(fail)) {
		int status;
		waitpid(pid, &status, 0);
		switch (fail.stage) {
		case STAGE_CWD:
			return err_set(e, fail.err, "cannot enter directory '%s': %s", sp->cwd,
				       strerror(fail.err));
		case STAGE_USER:
			return err_set(e, fail.err, "cannot switch to uid %u: %s",
				       (unsigned)agent.uid, strerror(fail.err));
		case STAGE_EXEC:
			return err_set(e, fail.err, "cannot run '%s': %s", sp->argv[0],
				       strerror(fail.err));
		default:
			return err_set(e, fail.err, "cannot set up the process: %s",
				       strerror(fail.err));
		}
	}
	c->pid = pid;
	c->next = children;
	children = c;
	return 0;
}

void child_forget(struct child *c)
{
	for (struct child **pp = &children; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	c->next = NULL;
}

void child_reap_all(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		struct child *c = NULL;
		for (struct child **pp = &children; *pp; pp = &(*pp)->next) {
			if ((*pp)->pid == pid) {
				c = *pp;
				*pp = c->next;
				c->next = NULL;
				break;
			}
		}
		if (c)
			c->on_exit(c, status);
		else
			log_debug("reaped orphan %d", (int)pid);
	}
}

void child_kill_group(pid_t pid, int sig)
{
	if (pid > 1) {
		kill(-pid, sig);
		kill(pid, sig); /* in case it left its group */
	}
}

void child_kill_all(int sig)
{
	for (struct child *c = children; c; c = c->next)
		child_kill_group(c->pid, sig);
}

/* ---- environment --------------------------------------------------------- */

static void env_set(char ***v, size_t *n, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
	if (!eq || klen == 0)
		return; /* not K=V: ignore */
	for (size_t i = 0; i < *n; i++) {
		if (strncmp((*v)[i], kv, klen) == 0 && (*v)[i][klen] == '=') {
			free((*v)[i]);
			(*v)[i] = xstrdup(kv);
			return;
		}
	}
	*v = xrealloc(*v, (*n + 2) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(kv);
	(*v)[*n] = NULL;
}

static void env_setf(char ***v, size_t *n, const char *k, const char *val)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s=%s", k, val);
	env_set(v, n, b.data);
	buf_release(&b);
}

char **agent_build_env(bool as_root, char *const *extra, const char *term)
{
	char **v = xcalloc(1, sizeof(*v));
	size_t n = 0;
	uid_t uid = (as_root || !agent.switch_user) ? getuid() : agent.uid;
	struct passwd *pw = getpwuid(uid);
	char uidbuf[32];

	snprintf(uidbuf, sizeof(uidbuf), "%u", (unsigned)uid);
	env_setf(&v, &n, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	env_setf(&v, &n, "HOME", pw && pw->pw_dir[0] ? pw->pw_dir : (uid == 0 ? "/root" : agent.workspace));
	env_setf(&v, &n, "USER", pw ? pw->pw_name : uidbuf);
	env_setf(&v, &n, "LOGNAME", pw ? pw->pw_name : uidbuf);
	env_setf(&v, &n, "SHELL", pw && pw->pw_shell[0] ? pw->pw_shell : "/bin/sh");
	env_setf(&v, &n, "LANG", "C.UTF-8");
	if (agent.hostname && agent.hostname[0])
		env_setf(&v, &n, "HOSTNAME", agent.hostname);
	if (term)
		env_setf(&v, &n, "TERM", term);
	for (size_t i = 0; agent.env && agent.env[i]; i++)
		env_set(&v, &n, agent.env[i]);
	for (size_t i = 0; agent.secrets && agent.secrets[i]; i++)
		env_set(&v, &n, agent.secrets[i]);
	for (size_t i = 0; extra && extra[i]; i++)
		env_set(&v, &n, extra[i]);
	return v;
}

char *agent_resolve_path(const char *path)
{
	struct buf b = BUF_INIT;
	if (path[0] == '/')
		buf_adds(&b, path);
	else
		buf_addf(&b, "%s/%s", agent.workspace, path);
	return buf_detach(&b, NULL);
}
