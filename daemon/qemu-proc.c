/* qemu-proc.c — a VM's runtime in the QEMU backend: its state (qvm_new),
 * the QEMU process (command line, spawn as vm_user, pidfd, kill), its QMP
 * connection and commands, the step timer, and failing a step (step_fail,
 * qemu_exited: what a failed operation or QEMU's death leaves behind).
 *
 * Sits between the backend's operations (engine-qemu.c, qemu-restore.c,
 * ...) and, per VM, one qemu-system-x86_64 process and its QMP socket
 * (qmp.c). Touches the VM's directory (qemu.log, the sockets, the owner of
 * the files QEMU opens), the VM's memory file on tmpfs, and /proc (a QEMU's
 * start time, a QEMU found by its command line); never other VMs' files.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"

/* ---- small helpers ------------------------------------------------------------ */

char *qvm_path(const struct vm *vm, const char *name)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s", vm->dir, name);
	return buf_detach(&b, NULL);
}

char *qeng_path(const struct engine *eng, const char *a, const char *b)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/%s%s%s", eng->cfg.data_dir, a, b ? "/" : "", b ? b : "");
	return buf_detach(&p, NULL);
}

char *qeng_image_path(const struct engine *eng, const char *name)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/%s", eng->cfg.images_dir, name);
	return buf_detach(&p, NULL);
}

void q_random_hex(char *out, size_t bytes)
{
	uint8_t r[32];
	if (bytes > sizeof(r))
		bytes = sizeof(r);
	randombytes_buf(r, bytes);
	sodium_bin2hex(out, bytes * 2 + 1, r, bytes);
	sodium_memzero(r, sizeof(r));
}

uint64_t qemu_starttime(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* after "pid (comm)": field 3 is the state; starttime is field 22 */
	unsigned long long v = 0;
	int field = 2;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (sscanf(p, "%llu", &v) != 1)
		return 0;
	return v;
}

/* The next QEMU process in the /proc listing d whose command line names
 * `needle` (a path); 0 at the end of the listing. */
pid_t qemu_naming_next(DIR *d, const char *needle)
{
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[300], cmd[8192];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (n <= 0)
			continue;
		for (ssize_t k = 0; k < n; k++)
			if (cmd[k] == '\0')
				cmd[k] = ' ';
		cmd[n] = '\0';
		if (strstr(cmd, "qemu-system") && strstr(cmd, needle))
			return (pid_t)strtol(de->d_name, NULL, 10);
	}
	return 0;
}

/* A QEMU whose pid we never recorded (a crash between its spawn and the
 * vm.json that names it): the process whose command line names this
 * sandbox's QMP socket. 0 if none. */
pid_t qemu_by_socket(const char *qmp_path)
{
	DIR *d = opendir("/proc");
	pid_t found = d ? qemu_naming_next(d, qmp_path) : 0;
	if (d)
		closedir(d);
	return found;
}

/* The memory a clone's cold snapshot is a delta against, or NULL. */
char *qvm_base_mem(struct qvm *q)
{
	if (!q->base_key)
		return NULL;
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/templates/%s/mem", q->vm->eng->cfg.data_dir, q->base_key);
	return buf_detach(&p, NULL);
}

/* ---- timers and steps ---------------------------------------------------------- */

static void on_qtimer(struct timer *t)
{
	struct qvm *q = t->data;
	qstep_fn fn = q->on_timer;
	q->on_timer = NULL;
	if (fn)
		fn(q);
}

void step_after(struct qvm *q, uint64_t ms, qstep_fn fn)
{
	q->on_timer = fn;
	timer_arm(&q->timer, ms);
}

bool step_past_deadline(struct qvm *q)
{
	return q->deadline && now_ms() > q->deadline;
}

/* ---- QEMU process ----------------------------------------------------------------- */

static void qemu_exited(struct qvm *q, int status);

static void on_pidfd(struct watch *w, uint32_t events UNUSED)
{
	struct qvm *q = w->data;
	int status = 0;
	if (q->our_child)
		waitpid(q->pid, &status, WNOHANG);
	watch_close(&q->pidw);
	qemu_exited(q, status);
}

int qemu_watch(struct qvm *q, struct err *e)
{
	int fd = (int)syscall(SYS_pidfd_open, q->pid, 0);
	if (fd < 0)
		return err_set(e, errno, "pidfd_open(%d): %s", (int)q->pid, strerror(errno));
	fd_set_cloexec(fd);
	watch_init(&q->pidw, on_pidfd, q);
	return watch_add(&q->pidw, fd, EPOLLIN);
}

void qemu_kill(struct qvm *q)
{
	if (q->pid > 0 && q->pidw.fd >= 0) {
		q->expect_exit = true;
		syscall(SYS_pidfd_send_signal, q->pidw.fd, SIGKILL, NULL, 0);
	}
}

/* The guest kernel's command line (caller frees). Part of a template's
 * key: a template booted with another command line is not reused.
 * Under TCG it also tells the host's TSC rate (see host_tsc_khz()). */
char *qemu_kernel_cmdline(struct engine *eng, bool kvm, bool for_key)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "console=ttyS0 quiet panic=-1 lohar.root=/dev/vda lohar.rootfstype=ext4");
	/* (the measured rate moves by a few kHz between runs: in a key it
	 * would make every restart build new templates) */
	if (!kvm && for_key)
		buf_addf(&b, " tsc_early_khz=N lpj=N tsc=reliable");
	else if (!kvm && QE(eng)->tsc_khz)
		buf_addf(&b, " tsc_early_khz=%u lpj=%u tsc=reliable", QE(eng)->tsc_khz,
			 QE(eng)->tsc_khz * 4);
	return buf_detach(&b, NULL);
}

static char **qemu_argv(struct qvm *q, bool incoming)
{
	struct vm *vm = q->vm;
	struct engine *eng = vm->eng;
	struct buf b = BUF_INIT;
	char **v = xcalloc(64, sizeof(*v));
	size_t n = 0;
#define ARG(s) (v[n++] = xstrdup(s))
#define ARGF(...) (buf_reset(&b), buf_addf(&b, __VA_ARGS__), v[n++] = xstrdup(b.data))
	bool kvm = strcmp(q->accel, "kvm") == 0;
	ARG(eng->cfg.qemu);
	ARG("-name");
	ARGF("bhatti-%s", vm->id);
	ARG("-M");
	ARG("microvm,memory-backend=mem");
	ARG("-accel");
	ARG(kvm ? "kvm" : "tcg,tb-size=128");
	ARG("-cpu");
	ARG(kvm ? "host" : "max");
	ARG("-smp");
	ARGF("%u", vm->spec.cpus);
	ARG("-m");
	ARGF("%uM", vm->spec.memory_mb);
	ARG("-object");
	ARGF("memory-backend-file,id=mem,size=%uM,mem-path=%s,share=on", vm->spec.memory_mb,
	     q->hot_mem);
	ARG("-nodefaults");
	ARG("-no-user-config");
	ARG("-display");
	ARG("none");
	ARG("-no-reboot");
	ARG("-serial");
	ARGF("file:%s/console.log", vm->dir);
	ARG("-kernel");
	ARGF("%s/vmlinux", eng->cfg.images_dir);
	ARG("-initrd");
	ARGF("%s/initramfs.cpio", eng->cfg.images_dir);
	ARG("-append");
	v[n++] = qemu_kernel_cmdline(eng, kvm, false);
	ARG("-drive");
	/* auto-read-only=off: otherwise a cold stop (migration inactivates the
	 * disk) reopens the file read-only by its path, and a sandbox taken
	 * from the pool no longer has the path QEMU was started with */
	ARGF("id=root,file=%s/disk.ext4,format=raw,if=none,discard=unmap,auto-read-only=off", vm->dir);
	ARG("-device");
	ARG("virtio-blk-device,drive=root");
	ARG("-device");
	ARG("virtio-serial-device,max_ports=2");
	ARG("-chardev");
	ARGF("socket,id=agent,path=%s/agent.sock,server=on,wait=off", vm->dir);
	ARG("-device");
	ARG("virtserialport,chardev=agent,name=bhatti.agent");
	ARG("-qmp");
	ARGF("unix:%s/qmp.sock,server=on,wait=off", vm->dir);
	ARG("-sandbox");
	ARG("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	if (incoming) {
		ARG("-incoming");
		ARG("defer");
	}
#undef ARG
#undef ARGF
	buf_release(&b);
	return v;
}

int qemu_spawn(struct qvm *q, bool incoming, struct err *e)
{
	struct vm *vm = q->vm;
	struct qeng *qe = QE(vm->eng);
	char **argv = qemu_argv(q, incoming);
	char *log = qvm_path(vm, "qemu.log");
	char *qmp = qvm_path(vm, "qmp.sock"), *agent = qvm_path(vm, "agent.sock");
	int r = 0;

	unlink(qmp);
	unlink(agent);
	int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0) {
		r = err_set(e, errno, "cannot open %s: %s", log, strerror(errno));
		goto out;
	}
	pid_t pid = fork();
	if (pid < 0) {
		r = err_set(e, errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		setsid(); /* its own session: it outlives a daemon restart */
		dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		if (qe->drop_user && (setgroups(0, NULL) < 0 || setgid(qe->vm_gid) < 0 ||
				      setuid(qe->vm_uid) < 0))
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	STEP(q, "QEMU spawned");
	q->pid = pid;
	q->our_child = true;
	q->expect_exit = false;
	q->pid_start = qemu_starttime(pid);
	r = qemu_watch(q, e);
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		q->pid = 0;
	}
out:
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	strv_free(argv);
	free(log);
	free(qmp);
	free(agent);
	return r;
}

/* ---- QMP ---------------------------------------------------------------------------- */

void qemu_on_qmp_event(struct qmp *qm UNUSED, const char *ev, const cJSON *data, void *arg)
{
	struct qvm *q = arg;
	if (strcmp(ev, "MIGRATION") != 0)
		return;
	const char *st = json_get_str(data, "status", "");
	bool ok = strcmp(st, "completed") == 0;
	if (!ok && strcmp(st, "failed") != 0 && strcmp(st, "cancelled") != 0)
		return;
	q->migrated = ok;
	qstep_fn next = q->on_migrated;
	if (!next)
		return; /* came before we asked; the step checks q->migrated */
	q->on_migrated = NULL;
	timer_cancel(&q->timer);
	if (ok)
		next(q);
	else
		step_fail(q, EIO, "migration %s (see %s/qemu.log)", st, q->vm->dir);
}

void qemu_on_qmp_closed(struct qmp *qm UNUSED, const struct err *e, void *arg)
{
	struct qvm *q = arg;
	log_debug("vm '%s': %s", q->vm->id, err_str(e));
}

static void qmp_connect_try(struct qvm *q)
{
	char *path = qvm_path(q->vm, "qmp.sock");
	int fd, r = unix_connect(path, &fd);
	free(path);
	if (r == 0) {
		qstep_fn next = q->on_qmp;
		q->on_qmp = NULL;
		q->qmp = qmp_new(fd, qemu_on_qmp_event, qemu_on_qmp_closed, q);
		next(q);
		return;
	}
	if (q->pid <= 0)
		return; /* QEMU is gone; qemu_exited reports it */
	if (step_past_deadline(q)) {
		q->on_qmp = NULL;
		step_fail(q, ETIMEDOUT, "QEMU did not open its control socket (see %s/qemu.log)",
			  q->vm->dir);
		return;
	}
	step_after(q, RETRY_MS, qmp_connect_try);
}

/* QEMU creates its sockets while it starts: retry until it has. */
void qemu_qmp_connect(struct qvm *q, qstep_fn next)
{
	q->on_qmp = next;
	q->deadline = now_ms() + STEP_TIMEOUT_MS;
	qmp_connect_try(q);
}

/* A QMP command whose failure fails the step; on success `next`. A step
 * that moves on (a destroy) closes QMP first: the replies still pending
 * then fail with -ECONNABORTED, which qcall_reply ignores. */
struct qcall {
	struct qvm *q;
	qstep_fn next;
	const char *what;
};

static void qcall_reply(struct qmp *qm UNUSED, int rc, const cJSON *ret UNUSED,
			const struct err *e, void *arg)
{
	struct qcall *c = arg;
	struct qvm *q = c->q;
	qstep_fn next = c->next;
	const char *what = c->what;
	free(c);
	if (!q)
		return;
	if (rc < 0) {
		if (rc != -ECONNABORTED) /* not our own qmp_free */
			step_fail(q, -rc, "%s: %s", what, err_str(e));
		return;
	}
	if (next)
		next(q);
}

void qemu_cmd(struct qvm *q, const char *cmd, cJSON *args, int fd, qstep_fn next)
{
	struct qcall *c = xcalloc(1, sizeof(*c));
	c->q = q;
	c->next = next;
	c->what = cmd;
	if (!q->qmp || qmp_cmd(q->qmp, cmd, args, fd, qcall_reply, c) < 0) {
		free(c);
		step_fail(q, ECONNRESET, "%s: QEMU's control socket is closed", cmd);
	}
}

cJSON *qemu_migrate_caps(void)
{
	cJSON *caps = cJSON_CreateArray();
	const char *names[] = { "x-ignore-shared", "events" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "capability", names[i]);
		cJSON_AddBoolToObject(c, "state", true);
		cJSON_AddItemToArray(caps, c);
	}
	cJSON *args = cJSON_CreateObject();
	cJSON_AddItemToObject(args, "capabilities", caps);
	return args;
}

cJSON *qemu_args_str(const char *k, const char *v)
{
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, k, v);
	return a;
}

void qemu_close_state_fd(struct qvm *q)
{
	if (q->state_fd >= 0)
		close(q->state_fd);
	q->state_fd = -1;
}

static void qmp_close_conn(struct qvm *q)
{
	if (q->qmp) {
		/* pending replies fail with -ECONNABORTED: qcall_reply ignores */
		qmp_free(q->qmp);
		q->qmp = NULL;
	}
	q->on_qmp = NULL;
	q->on_migrated = NULL;
}

/* ---- failing a step ------------------------------------------------------------------ */

/* Stop every wait of the current step: timers, QMP, agent, files. */
void step_cleanup(struct qvm *q)
{
	timer_cancel(&q->timer);
	q->on_timer = NULL;
	qagent_close(q);
	qmp_close_conn(q);
	qemu_close_state_fd(q);
}

static void create_failed_removed(int rc UNUSED, const struct err *e UNUSED, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	struct err err = q->step_err;
	vm_op_finish(vm, VM_FAILED, -err.code, &err);
}

static void create_failed_exit(struct qvm *q)
{
	unlink(q->hot_mem);
	fileop_remove_tree(q->vm->dir, create_failed_removed, q->vm);
}

/* A create that fails removes its directory, qemu.log with it: keep what
 * QEMU said (its last line) in the error instead of pointing at the file. */
static void quote_qemu_log(struct qvm *q)
{
	char *path = qvm_path(q->vm, "qemu.log"), tail[256] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(tail) - 1 ? size - (off_t)sizeof(tail) + 1 : 0;
	ssize_t n = pread(fd, tail, sizeof(tail) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	tail[n] = '\0';
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
		tail[--n] = '\0';
	char *line = strrchr(tail, '\n');
	line = line ? line + 1 : tail;
	if (!*line)
		return;
	char *at = strstr(q->step_err.msg, " (see ");
	if (at)
		*at = '\0';
	size_t len = strlen(q->step_err.msg);
	snprintf(q->step_err.msg + len, sizeof(q->step_err.msg) - len, ": QEMU said: %.200s", line);
}

/* The current operation failed; leave the VM as the operation requires:
 * a failed create (or template build) leaves nothing behind; a failed
 * start leaves it STOPPED; a failed pause/resume/stop leaves it as it was
 * (a stop that stopped the vCPUs continues them). */
void step_fail(struct qvm *q, int code, const char *fmt, ...)
{
	struct vm *vm = q->vm;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q->step_err.msg, sizeof(q->step_err.msg), fmt, ap);
	va_end(ap);
	q->step_err.code = code > 0 ? code : EIO;
	struct err err = q->step_err;

	switch (vm->op) {
	case OP_CREATE:
		step_cleanup(q);
		quote_qemu_log(q);
		if (q->pid > 0 && q->pidw.fd >= 0) {
			q->on_exit = create_failed_exit;
			qemu_kill(q);
		} else {
			create_failed_exit(q);
		}
		return;
	case OP_START:
		step_cleanup(q);
		if (q->pid > 0) {
			q->on_exit = NULL;
			qemu_kill(q);
		}
		unlink(q->hot_mem); /* the snapshot on disk is untouched */
		vm->state = VM_STOPPED;
		meta_write(vm);
		vm_op_finish(vm, VM_STOPPED, -err.code, &err);
		return;
	case OP_STOP:
	case OP_PAUSE:
	case OP_RESUME: {
		timer_cancel(&q->timer);
		q->on_migrated = NULL;
		qemu_close_state_fd(q);
		if (q->pid <= 0 || !q->qmp) {
			vm->state = VM_FAILED;
			meta_write(vm);
			vm_op_finish(vm, VM_FAILED, -err.code, &err);
			return;
		}
		enum vm_state back = q->paused ? VM_PAUSED : VM_RUNNING;
		if (vm->op == OP_STOP && !q->paused)
			qmp_cmd(q->qmp, "cont", NULL, -1, NULL, NULL);
		if (back == VM_RUNNING && !vm->agent) {
			struct err e = ERR_INIT;
			if (qagent_open(q, q->token, &e) == 0)
				q->on_hello = qagent_reconnected;
		}
		vm->state = back;
		meta_write(vm);
		vm_op_finish(vm, back, -err.code, &err);
		return;
	}
	default:
		step_cleanup(q);
		vm_fail(vm, "%s", err.msg);
		return;
	}
}

/* QEMU is gone. Expected (quit, kill): continue the operation. Otherwise
 * the sandbox has failed. */
static void qemu_exited(struct qvm *q, int status)
{
	struct vm *vm = q->vm;
	qstep_fn cont = q->on_exit;
	bool expected = q->expect_exit;
	q->pid = 0;
	q->pid_start = 0;
	q->expect_exit = false;
	q->on_exit = NULL;
	if (expected) {
		step_cleanup(q);
		if (cont)
			cont(q);
		return;
	}
	char why[128];
	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "was killed by signal %d", WTERMSIG(status));
	else if (q->our_child && WIFEXITED(status))
		snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(why, sizeof(why), "exited");
	step_cleanup(q);
	if (vm->op == OP_CREATE || vm->op == OP_START) {
		step_fail(q, EIO, "QEMU %s during %s (see %s/qemu.log)", why,
			  vm->op == OP_CREATE ? "create" : "start", vm->dir);
		return;
	}
	if (vm->op == OP_DESTROY)
		return;
	vm_fail(vm, "QEMU %s unexpectedly (see %s/qemu.log)", why, vm->dir);
	meta_write(vm);
}

/* Files QEMU opens itself belong to the user it runs as. */
void qemu_chown(struct vm *vm, const char *path, int fd)
{
	struct qeng *qe = QE(vm->eng);
	if (!qe->drop_user)
		return;
	int r = fd >= 0 ? fchown(fd, qe->vm_uid, qe->vm_gid) : chown(path, qe->vm_uid, qe->vm_gid);
	if (r < 0)
		log_warn("vm '%s': chown '%s': %s", vm->id, path, strerror(errno));
}

/* A new all-zero guest-memory file of memory_mb, QEMU's to map (owned by
 * vm_user). 0, or -errno with the message in e. */
int qemu_mem_file(struct engine *eng, const char *path, unsigned memory_mb, struct err *e)
{
	struct qeng *qe = QE(eng);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = 0;
	if (fd < 0 || ftruncate(fd, (off_t)memory_mb << 20) < 0 ||
	    (qe->drop_user && fchown(fd, qe->vm_uid, qe->vm_gid) < 0))
		r = err_set(e, errno, "cannot create '%s': %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return r;
}

/* ---- a VM's runtime state ------------------------------------------------------------ */

struct qvm *qvm_new(struct vm *vm, const char *accel)
{
	struct qvm *q = xcalloc(1, sizeof(*q));
	q->vm = vm;
	q->state_fd = -1;
	snprintf(q->accel, sizeof(q->accel), "%s", accel);
	struct buf hot = BUF_INIT;
	buf_addf(&hot, "%s/%s.mem", QE(vm->eng)->hot_dir, vm->id);
	q->hot_mem = buf_detach(&hot, NULL);
	timer_init(&q->timer, on_qtimer, q);
	watch_init(&q->pidw, on_pidfd, q);
	watch_init(&q->agent_w, qagent_on_io, q);
	task_init(&q->agent_flush, qagent_flush_task, q);
	vm->be = q;
	return q;
}
