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

static struct child *children;

enum spawn_stage { STAGE_SETUP = 1, STAGE_CWD, STAGE_USER, STAGE_EXEC };

struct spawn_failure {
	int stage;
	int err;
};

/* What the vfork child needs, prepared by the parent. */
struct spawn_ctx {
	const struct spawn *sp;
	const char *path;               /* resolved program */
	uid_t uid;
	gid_t gid;
	bool drop_user;
	volatile struct spawn_failure *fail; /* in the parent's frame (shared) */
};

/* In the vfork child: only syscalls, no heap, no globals written but
 * *fail. Never returns. */
__attribute__((noreturn)) static void child_setup(const struct spawn_ctx *cx)
{
	const struct spawn *sp = cx->sp;
	sigset_t none;

	cx->fail->stage = STAGE_SETUP;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL); /* the only disposition lohar changes */

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
	if (cx->drop_user) {
		cx->fail->stage = STAGE_USER;
		if (setgroups(0, NULL) < 0 || setgid(cx->gid) < 0 || setuid(cx->uid) < 0)
			goto fail;
	}
	cx->fail->stage = STAGE_CWD;
	if (sp->cwd && sp->cwd[0] && chdir(sp->cwd) < 0)
		goto fail;
	cx->fail->stage = STAGE_EXEC;
	execve(cx->path, sp->argv, sp->env);
fail:
	cx->fail->err = errno;
	_exit(127);
}

/* The PATH of env (or the default), searched like execvp does. Returns a
 * heap string, or NULL with *ret_err set. */
static char *resolve_program(const char *prog, char *const *env, int *ret_err)
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	struct buf b = BUF_INIT;
	int first_err = ENOENT;

	if (strchr(prog, '/'))
		return xstrdup(prog);
	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], "PATH=", 5) == 0)
			path = env[i] + 5;
	for (const char *p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		buf_reset(&b);
		buf_add(&b, len ? p : ".", len ? len : 1);
		buf_addf(&b, "/%s", prog);
		if (access(b.data, X_OK) == 0) {
			struct stat st;
			if (stat(b.data, &st) == 0 && S_ISREG(st.st_mode))
				return buf_detach(&b, NULL);
		} else if (errno == EACCES) {
			first_err = EACCES;
		}
		if (!end)
			break;
		p = end;
	}
	buf_release(&b);
	*ret_err = first_err;
	return NULL;
}

/* vfork in a frame of its own, so no local of child_spawn lives across it
 * (-Wclobbered). The parent sleeps until the child has exec'ed or died,
 * and no page tables are copied. */
__attribute__((noinline)) static pid_t spawn_vfork(const struct spawn_ctx *cx)
{
	pid_t pid = vfork();
	if (pid == 0)
		child_setup(cx);
	return pid;
}

int child_spawn(struct child *c, const struct spawn *sp, struct err *e)
{
	volatile struct spawn_failure fail = { 0, 0 };
	int err = 0;

	if (!sp->argv || !sp->argv[0] || !sp->argv[0][0])
		return err_set(e, EINVAL, "empty command");
	char *path = resolve_program(sp->argv[0], sp->env, &err);
	if (!path)
		return err_set(e, err, err == ENOENT ? "cannot run '%s': command not found" :
			       "cannot run '%s': permission denied", sp->argv[0]);
	struct spawn_ctx cx = {
		.sp = sp, .path = path, .uid = agent.uid, .gid = agent.gid,
		.drop_user = !sp->as_root && agent.switch_user, .fail = &fail,
	};
	/* The child reports failures through `fail`, in this (shared) frame. */
	pid_t pid = spawn_vfork(&cx);
	free(path);
	if (pid < 0)
		return err_set(e, errno, "fork: %s", strerror(errno));
	if (fail.err) {
		int status, code = fail.err;
		waitpid(pid, &status, 0);
		switch (fail.stage) {
		case STAGE_CWD:
			return err_set(e, code, "cannot enter directory '%s': %s", sp->cwd,
				       strerror(code));
		case STAGE_USER:
			return err_set(e, code, "cannot switch to uid %u: %s",
				       (unsigned)agent.uid, strerror(code));
		case STAGE_EXEC:
			return err_set(e, code, "cannot run '%s': %s", sp->argv[0], strerror(code));
		default:
			return err_set(e, code, "cannot set up the process: %s", strerror(code));
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

/* The passwd entry of a uid, looked up once: /etc/passwd does not change
 * under a running sandbox often enough to read it on every exec. */
struct user_info {
	bool cached;
	uid_t uid;
	char name[64], home[256], shell[128];
};

static const struct user_info *user_info(uid_t uid)
{
	static struct user_info cache[2];
	struct user_info *u = &cache[uid == 0 ? 0 : 1];
	if (u->cached && u->uid == uid)
		return u;
	struct passwd *pw = getpwuid(uid);
	u->cached = true;
	u->uid = uid;
	snprintf(u->name, sizeof(u->name), "%s", pw ? pw->pw_name : "");
	if (!u->name[0])
		snprintf(u->name, sizeof(u->name), "%u", (unsigned)uid);
	snprintf(u->home, sizeof(u->home), "%s", pw && pw->pw_dir[0] ? pw->pw_dir :
		 uid == 0 ? "/root" : agent.workspace);
	snprintf(u->shell, sizeof(u->shell), "%s", pw && pw->pw_shell[0] ? pw->pw_shell : "/bin/sh");
	return u;
}

char **agent_build_env(bool as_root, char *const *extra, const char *term)
{
	char **v = xcalloc(1, sizeof(*v));
	size_t n = 0;
	uid_t uid = (as_root || !agent.switch_user) ? getuid() : agent.uid;
	const struct user_info *u = user_info(uid);

	env_setf(&v, &n, "PATH",
		"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" LOHAR_RUN_DIR);
	env_setf(&v, &n, "HOME", u->home);
	env_setf(&v, &n, "USER", u->name);
	env_setf(&v, &n, "LOGNAME", u->name);
	env_setf(&v, &n, "SHELL", u->shell);
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
