/* qemu-proc.c — a VM's runtime in the QEMU backend: its state (qvm_new),
 * the QEMU process (command line, spawn as a uid of its own, pidfd, kill),
 * the step timer, and failing a step
 * (step_fail, qemu_exited: what a failed operation or QEMU's death leaves
 * behind).
 *
 * QEMU is given every file it uses as a descriptor, opened here: the
 * sockets (bound here; QEMU listens), the disk (an fd set), its memory
 * file, kernel and initrd (as /proc/self/fd/N), qemu.log as its output.
 * So it needs no access to any directory, and a QEMU is known by its QMP
 * socket: the process that listens on it (qemu_by_socket).
 *
 * Sits between the backend's operations (engine-qemu.c, qemu-restore.c,
 * ...) and, per VM, one qemu-system-x86_64 process (its QMP connection:
 * qemu-qmp.c). Touches the VM's directory (qemu.log, the sockets, the disk),
 * the VM's memory file on tmpfs (through the memory dir's fd), and /proc
 * (a QEMU's start time and command line); never other VMs' files.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileops.h"
#include "net-link.h"
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

int q_key_make(struct qvm *q, struct err *e)
{
	struct engine_config *cfg = &q->vm->eng->cfg;
	if (!cfg->key_wrap || q->key_wrapped)
		return 0;
	uint8_t key[32];
	char *wrapped = NULL;
	randombytes_buf(key, sizeof(key));
	int r = cfg->key_wrap(cfg->key_arg, key, &wrapped, e);
	sodium_memzero(key, sizeof(key));
	if (r < 0) {
		err_prefix(e, "making the snapshot key of '%s'", q->vm->id);
		return r;
	}
	q->key_wrapped = wrapped;
	return 0;
}

int q_key_unwrap(struct engine *eng, const char *wrapped, uint8_t key[32], bool *ret_keyed,
		 struct err *e)
{
	struct engine_config *cfg = &eng->cfg;
	*ret_keyed = false;
	if (!wrapped)
		return 0;
	if (!cfg->key_unwrap)
		return err_set(e, ENOKEY, "the snapshot is encrypted, and this engine has no key "
			       "to open it");
	int r = cfg->key_unwrap(cfg->key_arg, wrapped, key, e);
	if (r < 0)
		return r;
	*ret_keyed = true;
	return 0;
}

int q_key_open(struct qvm *q, uint8_t key[32], bool *ret_keyed, struct err *e)
{
	int r = q_key_unwrap(q->vm->eng, q->key_wrapped, key, ret_keyed, e);
	if (r < 0)
		err_prefix(e, "opening the snapshot key of '%s'", q->vm->id);
	return r;
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

/* Is pid a QEMU (its program is qemu-system-*)? */
static bool is_qemu(pid_t pid)
{
	char path[64], cmd[512];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return false;
	cmd[n] = '\0';
	const char *slash = strrchr(cmd, '/');
	return strncmp(slash ? slash + 1 : cmd, "qemu-system", 11) == 0;
}

int qemu_by_socket(const char *qmp_path, struct qemu_found *ret)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd, pidfd = -1;
	if (unix_connect(qmp_path, &fd) < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.pid > 0 &&
	    is_qemu(cr.pid) && (pidfd = (int)syscall(SYS_pidfd_open, cr.pid, 0)) >= 0) {
		/* it still held the socket when the pidfd was taken (a dead
		 * listener resets our connection): the pid is not reused */
		struct pollfd p = { .fd = fd, .events = POLLRDHUP };
		if (poll(&p, 1, 0) == 0 || !(p.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
			fd_set_cloexec(pidfd);
			*ret = (struct qemu_found){ .pid = cr.pid, .uid = cr.uid, .pidfd = pidfd,
						    .qmp_fd = fd };
			return 1;
		}
		close(pidfd);
	}
	close(fd);
	return 0;
}

/* dir/qmp.sock, made after dir/vm.json was last written, that nobody
 * listens on yet: a QEMU spawned just before the last engine died (the
 * engine binds the socket, QEMU listens once it runs). A socket older
 * than vm.json belongs to a QEMU that is gone (a stop writes vm.json
 * after its QEMU quit; a create, start or boot writes it before the
 * spawn or once QEMU listens). */
static bool qmp_pending(const char *dir)
{
	struct buf sock = BUF_INIT, meta = BUF_INIT;
	struct stat ss, ms;
	buf_addf(&sock, "%s/qmp.sock", dir);
	buf_addf(&meta, "%s/vm.json", dir);
	bool pending = lstat(sock.data, &ss) == 0 && S_ISSOCK(ss.st_mode) &&
		       (lstat(meta.data, &ms) < 0 ||
			ss.st_ctim.tv_sec > ms.st_mtim.tv_sec ||
			(ss.st_ctim.tv_sec == ms.st_mtim.tv_sec &&
			 ss.st_ctim.tv_nsec > ms.st_mtim.tv_nsec));
	buf_release(&sock);
	buf_release(&meta);
	return pending;
}

int qemu_by_socket_in(const char *dir, struct qemu_found *ret)
{
	struct buf sock = BUF_INIT;
	buf_addf(&sock, "%s/qmp.sock", dir);
	int found = qemu_by_socket(sock.data, ret);
	/* up to 3 s for a QEMU that has yet to listen */
	for (int i = 0; !found && i < 30 && qmp_pending(dir); i++) {
		usleep(100 * 1000);
		found = qemu_by_socket(sock.data, ret);
	}
	buf_release(&sock);
	return found;
}

void qemu_found_release(struct qemu_found *f)
{
	if (f->pidfd >= 0)
		close(f->pidfd);
	if (f->qmp_fd >= 0)
		close(f->qmp_fd);
	f->pidfd = f->qmp_fd = -1;
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

int qemu_watch_fd(struct qvm *q, int pidfd, struct err *e)
{
	watch_init(&q->pidw, on_pidfd, q);
	int r = watch_add(&q->pidw, pidfd, EPOLLIN);
	return r < 0 ? err_set(e, -r, "epoll: %s", strerror(-r)) : 0;
}

int qemu_watch(struct qvm *q, struct err *e)
{
	int fd = (int)syscall(SYS_pidfd_open, q->pid, 0);
	if (fd < 0)
		return err_set(e, errno, "pidfd_open(%d): %s", (int)q->pid, strerror(errno));
	fd_set_cloexec(fd);
	return qemu_watch_fd(q, fd, e);
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

/* What QEMU is given, as the descriptors it has from its start. */
enum {
	FD_QMP = 3,         /* listening sockets, bound by the engine */
	FD_AGENT,
	FD_CONSOLE,
	FD_DISK_RW,         /* the disk: fd set 1 (read-write and read-only) */
	FD_DISK_RO,
	FD_MEM,             /* guest RAM, /proc/self/fd/N (memory-backend-file
			     * opens a path; QEMU reopens its own fd) */
	FD_KERNEL,          /* /proc/self/fd/N too */
	FD_INITRD,
	FD_TAP,             /* the NIC's TAP (engine_config.net), else closed */
	FD_END
};
#define NFDS (FD_END - FD_QMP)

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
	/* the VM's directory, for people (ps) and tests: QEMU opens nothing
	 * by a path (a ',' in QEMU's options is written ',,') */
	ARG("-name");
	buf_reset(&b);
	buf_addf(&b, "guest=bhatti:");
	for (const char *c = vm->dir; *c; c++)
		buf_add(&b, *c == ',' ? ",," : c, *c == ',' ? 2 : 1);
	v[n++] = xstrdup(b.data);
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
	ARGF("memory-backend-file,id=mem,size=%uM,mem-path=/proc/self/fd/%d,share=on",
	     vm->spec.memory_mb, FD_MEM);
	ARG("-nodefaults");
	ARG("-no-user-config");
	ARG("-display");
	ARG("none");
	ARG("-no-reboot");
	/* the console: read by the engine (qemu-console.c); dropped while
	 * nobody reads it, so a guest never waits for the daemon */
	ARG("-chardev");
	ARGF("socket,id=con,fd=%d,server=on,wait=off", FD_CONSOLE);
	ARG("-serial");
	ARG("chardev:con");
	ARG("-kernel");
	ARGF("/proc/self/fd/%d", FD_KERNEL);
	ARG("-initrd");
	ARGF("/proc/self/fd/%d", FD_INITRD);
	ARG("-append");
	v[n++] = qemu_kernel_cmdline(eng, kvm, false);
	ARG("-add-fd");
	ARGF("fd=%d,set=1", FD_DISK_RW);
	ARG("-add-fd");
	ARGF("fd=%d,set=1", FD_DISK_RO);
	ARG("-drive");
	/* auto-read-only=off: a cold stop (migration inactivates the disk)
	 * keeps it open read-write instead of reopening it */
	ARG("id=root,file=/dev/fdset/1,format=raw,if=none,discard=unmap,auto-read-only=off");
	ARG("-device");
	ARG("virtio-blk-device,drive=root");
	ARG("-device");
	ARG("virtio-serial-device,max_ports=2");
	ARG("-chardev");
	ARGF("socket,id=agent,fd=%d,server=on,wait=off", FD_AGENT);
	ARG("-device");
	ARG("virtserialport,chardev=agent,name=bhatti.agent");
	if (eng->cfg.net) {
		/* the same devices for a boot and every restore of its snapshot
		 * (a clone's MAC in the device state is its template's until
		 * CONFIGURE sets the sandbox's own: net.h) */
		ARG("-netdev");
		ARGF("tap,id=net0,fd=%d", FD_TAP);
		ARG("-device");
		ARGF("virtio-net-device,netdev=net0,mac=%s",
		     vm->spec.net.mac[0] ? vm->spec.net.mac : QEMU_TEMPLATE_MAC);
	}
	ARG("-chardev");
	ARGF("socket,id=qmp,fd=%d,server=on,wait=off", FD_QMP);
	ARG("-mon");
	ARG("chardev=qmp,mode=control");
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

/* A unix socket bound at dir/name, not listening (QEMU listens on it: so
 * SO_PEERCRED names QEMU to whoever connects). */
static int sock_bind(const char *dir, const char *name, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return err_set(e, ENAMETOOLONG, "'%s/%s' is too long for a socket", dir, name);
	unlink(sa.sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = err_set(e, errno, "cannot make the socket '%s': %s", sa.sun_path,
				strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

/* Open what QEMU is given (fds[i] becomes its fd FD_QMP + i). */
static int spawn_files(struct qvm *q, int fds[NFDS], struct err *e)
{
	struct vm *vm = q->vm;
	const char *socks[] = { "qmp.sock", "agent.sock", "console.sock" };
	for (int i = 0; i < 3; i++)
		if ((fds[i] = sock_bind(vm->dir, socks[i], e)) < 0)
			return fds[i];
	char *disk = qvm_path(vm, "disk.ext4");
	char *kernel = qeng_image_path(vm->eng, "vmlinux");
	char *initrd = qeng_image_path(vm->eng, "initramfs.cpio");
	struct { int slot; const char *path; int flags; } files[] = {
		{ FD_DISK_RW, disk, O_RDWR | O_NOFOLLOW },
		{ FD_DISK_RO, disk, O_RDONLY | O_NOFOLLOW },
		{ FD_KERNEL, kernel, O_RDONLY },
		{ FD_INITRD, initrd, O_RDONLY },
	};
	int r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(files) && r == 0; i++) {
		int fd = open(files[i].path, files[i].flags | O_CLOEXEC);
		fds[files[i].slot - FD_QMP] = fd;
		if (fd < 0)
			r = err_set(e, errno, "cannot open '%s': %s", files[i].path, strerror(errno));
	}
	if (r == 0 && (fds[FD_MEM - FD_QMP] = hot_open(QE(vm->eng), hot_name(q->hot_mem))) < 0)
		r = err_set(e, errno, "cannot open '%s': %s", q->hot_mem, strerror(errno));
	if (r == 0 && vm->eng->cfg.net) {
		int fd = qemu_tap_open(q, e);
		fds[FD_TAP - FD_QMP] = fd;
		r = fd < 0 ? fd : 0;
	}
	free(disk);
	free(kernel);
	free(initrd);
	return r;
}

/* The VM's TAP: a sandbox's is bt<id>, on its bridge and up; a hidden
 * VM's (a pool clone, a template build) has a random name, stays down and
 * on no bridge (a create that takes a pool clone renames it and puts it
 * on its bridge: qemu_tap_claim). It goes when QEMU does. */
int qemu_tap_open(struct qvm *q, struct err *e)
{
	struct vm *vm = q->vm;
	if (q->role == QVM_SANDBOX) {
		snprintf(q->tap, sizeof(q->tap), "bt%s", vm->id);
	} else {
		char hex[9];
		q_random_hex(hex, 4);
		snprintf(q->tap, sizeof(q->tap), "btx%s", hex);
	}
	int fd = link_tap_open(q->tap, e);
	if (fd >= 0 && q->role == QVM_SANDBOX && vm->spec.net.bridge[0]) {
		int r = link_tap_join(q->tap, NULL, vm->spec.net.bridge, e);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	return fd;
}

int qemu_tap_claim(struct qvm *q, struct err *e)
{
	char name[sizeof(q->tap)];
	if (!q->vm->eng->cfg.net || !q->tap[0] || !q->vm->spec.net.bridge[0])
		return 0;
	snprintf(name, sizeof(name), "bt%s", q->vm->id);
	int r = link_tap_join(q->tap, name, q->vm->spec.net.bridge, e);
	if (r == 0)
		memcpy(q->tap, name, sizeof(name));
	return r;
}

/* Why a child did not become QEMU, through its close-on-exec pipe. */
struct spawn_report {
	int dropping;   /* failed becoming its uid (else: exec) */
	int err;
};

/* The child: its descriptors in place (and nothing else past exec), its
 * own session (it outlives a daemon restart), a uid of its own. */
static void spawn_child(const struct qeng *qe, uid_t uid, bool kvm, int nullfd, int logfd,
			const int fds[NFDS], int report, char **argv)
{
	sigset_t none;
	int high[NFDS];
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	for (int i = 0; i < NFDS; i++) /* out of the way of the numbers they get */
		high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64);
	report = fcntl(report, F_DUPFD_CLOEXEC, 64);
	dup2(nullfd, 0);
	dup2(logfd, 1);
	dup2(logfd, 2);
	for (int i = 0; i < NFDS; i++)
		dup2(high[i], FD_QMP + i);
	close_range(FD_END, ~0U, CLOSE_RANGE_CLOEXEC);
	struct spawn_report rep = { .dropping = 1 };
	int r = qe->drop_uids ? jail_enter(qe, uid, kvm) : 0;
	if (r == 0) {
		rep.dropping = 0;
		execvp(argv[0], argv);
		r = -errno;
	}
	rep.err = -r;
	if (write(report, &rep, sizeof(rep)) < 0) {
		/* the parent sees a pipe closed without a report */
	}
	_exit(127);
}

int qemu_spawn(struct qvm *q, bool incoming, struct err *e)
{
	struct vm *vm = q->vm;
	struct qeng *qe = QE(vm->eng);
	int fds[NFDS], pipefd[2] = { -1, -1 };
	for (int i = 0; i < NFDS; i++)
		fds[i] = -1;
	char *log = qvm_path(vm, "qemu.log");
	char **argv = NULL;
	bool locked = false;
	uid_t uid = 0;
	int r = spawn_files(q, fds, e);
	int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (r == 0 && (logfd < 0 || nullfd < 0))
		r = err_set(e, errno, "cannot open %s: %s", log, strerror(errno));
	if (r == 0 && qe->drop_uids && (r = jail_pick_uid(qe, &uid, e)) == 0) {
		locked = true;
		/* its RAM is the one file the VM's uid owns (QEMU reopens it) */
		if (fchown(fds[FD_MEM - FD_QMP], uid, uid) < 0)
			r = err_set(e, errno, "chown '%s': %s", q->hot_mem, strerror(errno));
	}
	if (r == 0 && pipe2(pipefd, O_CLOEXEC) < 0)
		r = err_set(e, errno, "pipe: %s", strerror(errno));
	if (r < 0)
		goto out;
	argv = qemu_argv(q, incoming);
	pid_t pid = fork();
	if (pid < 0) {
		r = err_set(e, errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		spawn_child(qe, uid, strcmp(q->accel, "kvm") == 0, nullfd, logfd, fds, pipefd[1], argv);
	close(pipefd[1]);
	pipefd[1] = -1;
	struct spawn_report rep;
	ssize_t got;
	while ((got = read(pipefd[0], &rep, sizeof(rep))) < 0 && errno == EINTR)
		;
	if (got != 0) { /* no exec: the pipe did not just close */
		waitpid(pid, NULL, 0);
		if (got != (ssize_t)sizeof(rep))
			r = err_set(e, EIO, "cannot start QEMU");
		else if (rep.dropping)
			r = err_set(e, rep.err, "cannot run QEMU as uid %u: %s", (unsigned)uid,
				    strerror(rep.err));
		else
			r = err_set(e, rep.err, "cannot run '%s': %s", argv[0], strerror(rep.err));
		goto out;
	}
	STEP(q, "QEMU spawned");
	q->pid = pid;
	q->uid = uid;
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
	if (locked)
		jail_release(qe);
	for (int i = 0; i < NFDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (int i = 0; i < 2; i++)
		if (pipefd[i] >= 0)
			close(pipefd[i]);
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	strv_free(argv);
	free(log);
	return r;
}

/* ---- failing a step ------------------------------------------------------------------ */

/* Stop every wait of the current step: timers, QMP, agent, files. */
void step_cleanup(struct qvm *q)
{
	timer_cancel(&q->timer);
	q->on_timer = NULL;
	q->cont_pending = false;
	qagent_close(q);
	qemu_qmp_close(q);
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
	hot_unlink(QE(q->vm->eng), hot_name(q->hot_mem));
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
	if (vm->op == OP_CREATE && q->undoing) {
		/* the create failed already and is removing what it made: its
		 * first error stands (create_failed_removed reports it) */
		char late[256];
		va_start(ap, fmt);
		vsnprintf(late, sizeof(late), fmt, ap);
		va_end(ap);
		log_warn("vm '%s': %s (after the create had failed)", vm->id, late);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(q->step_err.msg, sizeof(q->step_err.msg), fmt, ap);
	va_end(ap);
	q->step_err.code = code > 0 ? code : EIO;
	struct err err = q->step_err;

	switch (vm->op) {
	case OP_CREATE:
		/* a create fails once: a second failure would remove and
		 * finish it again, on a VM the first finish had freed
		 * (soak-faults: a segfault in create_failed_removed) */
		q->undoing = true;
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
		hot_unlink(QE(vm->eng), hot_name(q->hot_mem)); /* the snapshot on disk is untouched */
		/* a snapshot that fails its check (tampered, damaged, of
		 * another key) or whose key is gone will never start: FAILED,
		 * with the reason; anything else may pass: STOPPED */
		bool never = err.code == EBADMSG || err.code == ENOKEY;
		vm->state = never ? VM_FAILED : VM_STOPPED;
		if (never)
			snprintf(vm->error, sizeof(vm->error), "%s", err.msg);
		meta_write(vm);
		vm_op_finish(vm, vm->state, -err.code, &err);
		return;
	case OP_STOP:
	case OP_PAUSE:
	case OP_RESUME:
	case OP_SNAPSHOT:
	case OP_FORK: {
		timer_cancel(&q->timer);
		q->on_migrated = NULL;
		qemu_close_state_fd(q);
		copy_detach(q, false); /* a snapshot's part goes, a fork's copy fails */
		if (q->pid <= 0 || !q->qmp) {
			vm->state = VM_FAILED;
			meta_write(vm);
			vm_op_finish(vm, VM_FAILED, -err.code, &err);
			return;
		}
		enum vm_state back = q->paused ? VM_PAUSED : VM_RUNNING;
		bool copy = vm->op == OP_SNAPSHOT || vm->op == OP_FORK;
		if ((vm->op == OP_STOP || copy) && !q->paused)
			qmp_cmd(q->qmp, "cont", NULL, -1, NULL, NULL);
		if (copy && q->paused) {
			/* a paused source's disk back from a migration (qemu-copy.c,
			 * src_resume): cont and stop again, in order */
			qmp_cmd(q->qmp, "cont", NULL, -1, NULL, NULL);
			qmp_cmd(q->qmp, "stop", NULL, -1, NULL, NULL);
		}
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
	qcon_close(q);
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
	copy_detach(q, false);
	vm_fail(vm, "QEMU %s unexpectedly (see %s/qemu.log)", why, vm->dir);
	meta_write(vm);
}

/* A new all-zero memory file for q's guest (root's until QEMU's spawn
 * gives it to QEMU's uid). 0, or -errno with the message in e. */
int qemu_mem_file(struct qvm *q, struct err *e)
{
	return hot_create(QE(q->vm->eng), hot_name(q->hot_mem), q->vm->spec.memory_mb, e);
}

/* ---- a VM's runtime state ------------------------------------------------------------ */

struct qvm *qvm_new(struct vm *vm, const char *accel)
{
	struct qvm *q = xcalloc(1, sizeof(*q));
	q->vm = vm;
	q->state_fd = -1;
	q->con_log = -1;
	snprintf(q->accel, sizeof(q->accel), "%s", accel);
	struct buf hot = BUF_INIT;
	buf_addf(&hot, "%s/%s.mem", QE(vm->eng)->hot_dir, vm->id);
	q->hot_mem = buf_detach(&hot, NULL);
	timer_init(&q->timer, on_qtimer, q);
	watch_init(&q->pidw, on_pidfd, q);
	watch_init(&q->agent_w, qagent_on_io, q);
	watch_init(&q->con_w, qcon_on_io, q);
	task_init(&q->agent_flush, qagent_flush_task, q);
	vm->be = q;
	return q;
}
