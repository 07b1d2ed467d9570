/* qemu-init.c — start and end of the QEMU backend: the images it needs,
 * its directories (root's, 0700: qemu-jail.c), the VM uids, the tmpfs
 * memory dir, the accelerator (configured, or a KVM probe boot whose
 * verdict is cached per kernel and QEMU), the host TSC rate for TCG
 * guests; at the end, builds are let finish and pools and spares dropped
 * (sandboxes keep running).
 *
 * Sits between engine_new()/engine_free() and the rest of the backend.
 * Touches data_dir (sandboxes/, templates/, pool/, accel-probe, mem-dir)
 * and the tmpfs memory dir.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"

/* ---- accelerator --------------------------------------------------------------------- */

struct probe_ctx {
	bool over;
	int rc;
};

static void probe_done(struct vm *vm UNUSED, int rc, const struct err *e UNUSED, void *arg)
{
	struct probe_ctx *c = arg;
	c->over = true;
	c->rc = rc;
}

static void probe_destroyed(struct vm *vm UNUSED, int rc UNUSED, const struct err *e UNUSED,
			    void *arg)
{
	((struct probe_ctx *)arg)->over = true;
}

/* Boot the tiny image under KVM once: does the guest answer? */
static bool probe_kvm(struct engine *eng)
{
	struct vm_spec spec = { .id = ".accel-probe", .image = "tiny", .cpus = 1, .memory_mb = 256 };
	struct probe_ctx c = { 0 };
	struct qvm *q = q_hidden_create(eng, &spec, QVM_PROBE, "kvm", probe_done, &c);
	struct vm *vm = q->vm;
	struct err e = ERR_INIT;
	fileop_remove_tree_now(vm->dir, NULL);
	q_random_hex(q->token, 32);
	if (q_prepare_dir(vm, &e) < 0) {
		vm_forget(vm);
		return false;
	}
	q_boot(vm);
	while (!c.over)
		loop_run_once(-1);
	bool ok = c.rc == 0;
	if (ok) {
		c.over = false;
		vm->op = OP_DESTROY;
		vm->done = probe_destroyed;
		vm->done_arg = &c;
		q_destroy(vm);
		while (!c.over)
			loop_run_once(-1);
	}
	/* a failed create removed itself; a destroyed one is forgotten */
	return ok;
}

static void accel_decide(struct engine *eng)
{
	struct qeng *qe = QE(eng);
	const char *want = eng->cfg.accel;
	if (strcmp(want, "kvm") == 0 || strcmp(want, "tcg") == 0) {
		snprintf(qe->accel, sizeof(qe->accel), "%s", want);
		log_info("accelerator: %s (configured)", want);
		return;
	}
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		snprintf(qe->accel, sizeof(qe->accel), "tcg");
		log_info("accelerator: tcg (no usable /dev/kvm)");
		return;
	}
	/* cached verdict for this kernel and QEMU? */
	char hash[17];
	tmpl_inputs_hash(eng, "tiny", hash);
	char *cache = qeng_path(eng, "accel-probe", NULL);
	char line[64] = "";
	int fd = open(cache, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, line, sizeof(line) - 1);
		line[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	if (strncmp(line, hash, 16) == 0 && (strcmp(line + 16, " kvm\n") == 0 ||
					      strcmp(line + 16, " tcg\n") == 0)) {
		snprintf(qe->accel, sizeof(qe->accel), "%.3s", line + 17);
		log_info("accelerator: %s (probed earlier for these images)", qe->accel);
		free(cache);
		return;
	}
	log_info("accelerator: probing KVM with a test boot (at most %d s)", PROBE_TIMEOUT_MS / 1000);
	uint64_t t0 = now_ms();
	bool kvm = probe_kvm(eng);
	snprintf(qe->accel, sizeof(qe->accel), "%s", kvm ? "kvm" : "tcg");
	log_info("accelerator: %s (KVM %s in %llu ms)", qe->accel,
		 kvm ? "booted the guest" : "could not boot the guest",
		 (unsigned long long)(now_ms() - t0));
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s %s\n", hash, qe->accel);
	unlink(cache);
	fd = open(cache, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (write_all(fd, b.data, b.len) < 0)
			log_warn("cannot cache the accelerator verdict");
		close(fd);
	}
	buf_release(&b);
	free(cache);
}

/* Under TCG the guest's TSC ticks at the host's rate, and the guest's own
 * calibration of it against an emulated PIT is fragile: on a busy host it
 * fails, the kernel then waits forever for timer ticks that calibration
 * needed. So measure the host TSC once and tell the guest (tsc_early_khz,
 * lpj for HZ=250, tsc=reliable so jitter does not demote the clocksource). */
static unsigned host_tsc_khz(void)
{
	struct timespec a, b, pause = { 0, 50 * 1000 * 1000 };
	clock_gettime(CLOCK_MONOTONIC_RAW, &a);
	uint64_t t0 = __builtin_ia32_rdtsc();
	nanosleep(&pause, NULL);
	uint64_t t1 = __builtin_ia32_rdtsc();
	clock_gettime(CLOCK_MONOTONIC_RAW, &b);
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	return ns > 0 ? (unsigned)((double)(t1 - t0) / ns * 1e6) : 0;
}

/* ---- init and fini ------------------------------------------------------------------- */

/* When the engine is root: its data dir must be no one else's to write
 * (root makes files in it), and the kernel and initrd everyone's to read
 * (QEMU, as a VM uid, reopens the descriptors it is given). */
static int check_modes(struct engine *eng, struct err *e)
{
	struct stat st;
	if (geteuid() != 0)
		return 0;
	if (stat(eng->cfg.data_dir, &st) < 0)
		return err_set(e, errno, "data dir '%s': %s", eng->cfg.data_dir, strerror(errno));
	if (st.st_uid != 0 || (st.st_mode & 022))
		return err_set(e, EPERM, "data dir '%s' is uid %u's with mode %04o: it must be "
			       "root's and writable by no one else", eng->cfg.data_dir,
			       (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	const char *need[] = { "vmlinux", "initramfs.cpio" };
	for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
		char *p = qeng_image_path(eng, need[i]);
		int r = stat(p, &st) == 0 && (st.st_mode & S_IROTH) ? 0 :
			err_set(e, EACCES, "'%s' must be readable by all (chmod a+r): QEMU runs as "
				"a VM uid", p);
		free(p);
		if (r < 0)
			return r;
	}
	return 0;
}

int q_init(struct engine *eng, struct err *e)
{
	struct qeng *qe = xcalloc(1, sizeof(*qe));
	eng->be_state = qe;
	qe->hot_fd = qe->uid_lock = -1;
	if (sodium_init() < 0)
		return err_set(e, EIO, "libsodium failed to initialise");
	const char *need[] = { "vmlinux", "initramfs.cpio" };
	for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
		char *p = qeng_image_path(eng, need[i]);
		int ok = access(p, R_OK);
		free(p);
		if (ok < 0)
			return err_set(e, ENOENT, "no %s in '%s' (run 'make images')", need[i],
				       eng->cfg.images_dir);
	}
	/* the data dir itself, as `bhatti serve` makes it (its parent must be
	 * there); an existing one is checked below */
	if (mkdir(eng->cfg.data_dir, 0700) < 0 && errno != EEXIST)
		return err_set(e, errno, "cannot create the data dir '%s': %s", eng->cfg.data_dir,
			       strerror(errno));
	int r = jail_init(eng, e);
	if (r == 0)
		r = check_modes(eng, e);
	/* root's, 0700 (an older install gave them 0711) */
	const char *dirs[] = { "sandboxes", "templates", "pool" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs) && r == 0; i++) {
		char *p = qeng_path(eng, dirs[i], NULL);
		r = jail_dir(p, 0, e);
		free(p);
	}
	if (r == 0)
		r = jail_hot_dir(eng, e);
	if (r < 0)
		return r;
	qmem_init(eng);
	tmpl_remove_stale(eng);
	if ((r = pool_sweep(eng, e)) < 0)
		return r;
	accel_decide(eng);
	snprintf(eng->accel, sizeof(eng->accel), "%s", qe->accel);
	if (strcmp(qe->accel, "tcg") == 0) {
		qe->tsc_khz = host_tsc_khz();
		log_debug("host TSC: %u kHz", qe->tsc_khz);
	}
	return 0;
}

/* No more pool refills or spares; let templates and pool clones being
 * built, and spares being copied, finish (a second or two; their file jobs
 * are in flight), so nothing is left half-made. Runs the event loop. */
void q_settle(struct engine *eng)
{
	struct qeng *qe = QE(eng);
	if (!qe)
		return;
	qe->closing = true;
	uint64_t until = now_ms() + 60000;
	for (;;) {
		bool busy = false;
		for (struct tmpl *t = qe->tmpls; t; t = t->next) {
			timer_cancel(&t->refill);
			timer_cancel(&t->spare_timer);
			busy |= t->build != NULL || t->state == TMPL_BUILDING || t->spare_filling;
		}
		if (!busy || now_ms() > until)
			break;
		loop_run_once(50);
	}
	loop_run_once(0); /* deferred frees of what just finished */
}

void q_fini(struct engine *eng)
{
	struct qeng *qe = QE(eng);
	if (!qe)
		return;
	q_settle(eng); /* (done already when the caller settled the engine) */
	while (qe->tmpls) {
		struct tmpl *t = qe->tmpls;
		qe->tmpls = t->next;
		pool_drain(t);
		spare_drop(t);
		free(t->image);
		while (t->waiters) {
			struct tmpl_waiter *w = t->waiters;
			t->waiters = w->next;
			free(w);
		}
		free(t->key);
		free(t->dir);
		free(t);
	}
	if (qe->hot_dir)
		rmdir(qe->hot_dir); /* only when empty: running guests keep theirs */
	jail_fini(qe);
	free(qe->hot_dir);
	free(qe);
	eng->be_state = NULL;
}
