/* qemu-template.c — templates of the QEMU backend: a VM booted once and
 * cold-snapshotted, one per image, shape, accelerator and inputs (the key);
 * built on demand (creates wait for it), found on disk after a restart,
 * cloned by creates, removed when stale.
 *
 * Sits between create (engine-qemu.c) and the template build (a hidden VM
 * driven through the engine's own operations), the restore of a clone
 * (qemu-restore.c) and each template's pool and spare (qemu-pool.c).
 * Touches data_dir/templates/ and a clone's disk copy. A template's files
 * are root's and read-only (0400): no QEMU opens them (a clone's disk and
 * memory are copies; its device state is read by the engine), and the
 * build's QEMU, which ran as a uid of its own, is gone before they are
 * put in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"
#include "valid.h"

/* ---- templates ---------------------------------------------------------------------- */

static void stat_into(crypto_generichash_state *h, const char *path)
{
	struct stat st;
	memset(&st, 0, sizeof(st));
	stat(path, &st);
	uint64_t v[4] = { (uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
			  (uint64_t)st.st_mtim.tv_nsec, (uint64_t)st.st_ino };
	crypto_generichash_update(h, (const uint8_t *)path, strlen(path));
	crypto_generichash_update(h, (const uint8_t *)v, sizeof(v));
}

/* The QEMU binary's path (resolved on PATH), or NULL. */
static char *qemu_binary(const struct engine *eng)
{
	if (strchr(eng->cfg.qemu, '/'))
		return xstrdup(eng->cfg.qemu);
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	for (const char *p = path; *p;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct buf c = BUF_INIT;
		buf_add(&c, p, len);
		buf_addf(&c, "/%s", eng->cfg.qemu);
		if (len && access(c.data, X_OK) == 0)
			return buf_detach(&c, NULL);
		buf_release(&c);
		if (!end)
			break;
		p = end + 1;
	}
	return NULL;
}

/* What a template depends on: kernel, initramfs (lohar), rootfs, QEMU. */
void tmpl_inputs_hash(struct engine *eng, const char *image, char *out /* 17 */)
{
	crypto_generichash_state h;
	uint8_t d[8];
	const char *files[] = { "vmlinux", "initramfs.cpio", NULL };
	struct buf p = BUF_INIT;
	crypto_generichash_init(&h, NULL, 0, sizeof(d));
	for (size_t i = 0; files[i]; i++) {
		buf_reset(&p);
		buf_addf(&p, "%s/%s", eng->cfg.images_dir, files[i]);
		stat_into(&h, p.data);
	}
	buf_reset(&p);
	buf_addf(&p, "%s/rootfs-%s.ext4", eng->cfg.images_dir, image);
	stat_into(&h, p.data);
	buf_release(&p);
	char *qemu = qemu_binary(eng);
	if (qemu)
		stat_into(&h, qemu);
	free(qemu);
	/* how a template is made: bump when that changes, so templates made
	 * the old way are rebuilt (2: the page cache is warmed first) */
	crypto_generichash_update(&h, (const uint8_t *)"recipe 2", 9);
	if (eng->cfg.net) /* its devices: a NIC */
		crypto_generichash_update(&h, (const uint8_t *)"nic", 4);
	for (int kvm = 0; kvm <= 1; kvm++) {
		char *cmdline = qemu_kernel_cmdline(eng, kvm, true);
		crypto_generichash_update(&h, (const uint8_t *)cmdline, strlen(cmdline) + 1);
		free(cmdline);
	}
	crypto_generichash_final(&h, d, sizeof(d));
	sodium_bin2hex(out, 17, d, sizeof(d));
}

/* A template key, <image>-<cpus>c-<mem>m-<accel>-<hash>, read from the
 * right (an image name may hold '-'): 0 with the image in image[64], or
 * -EINVAL. Any key from outside (a directory name, vm.json) is checked
 * before it becomes a path. */
int tmpl_key_parse(const char *key, char image[64])
{
	const char *end = key + strlen(key), *p[4];
	for (int i = 0; i < 4; i++) {
		const char *d = end;
		while (d > key && d[-1] != '-')
			d--;
		if (d == key)
			return -EINVAL;
		p[i] = d; /* the start of the i-th field from the right */
		end = d - 1;
	}
	size_t hash_len = strlen(p[0]), accel_len = (size_t)(p[0] - 1 - p[1]);
	bool ok = hash_len == 16 && strspn(p[0], "0123456789abcdef") == 16 && accel_len == 3 &&
		  (strncmp(p[1], "kvm", 3) == 0 || strncmp(p[1], "tcg", 3) == 0);
	for (int i = 2; i < 4 && ok; i++) { /* <mem>m, <cpus>c */
		size_t len = (size_t)(p[i - 1] - 1 - p[i]), digits = strspn(p[i], "0123456789");
		ok = len >= 2 && len <= 6 && digits == len - 1 && p[i][0] != '0' &&
		     p[i][len - 1] == (i == 2 ? 'm' : 'c');
	}
	size_t image_len = (size_t)(p[3] - 1 - key);
	if (!ok || image_len == 0 || image_len > 63)
		return -EINVAL;
	memcpy(image, key, image_len);
	image[image_len] = '\0';
	return valid_image(image, NULL);
}

char *tmpl_key_of(struct engine *eng, const struct vm_spec *shape)
{
	char hash[17];
	struct buf k = BUF_INIT;
	tmpl_inputs_hash(eng, shape->image, hash);
	buf_addf(&k, "%s-%uc-%um-%s-%s", shape->image, shape->cpus, shape->memory_mb,
		 QE(eng)->accel, hash);
	return buf_detach(&k, NULL);
}

struct tmpl *tmpl_find(struct engine *eng, const char *key)
{
	for (struct tmpl *t = QE(eng)->tmpls; t; t = t->next)
		if (strcmp(t->key, key) == 0)
			return t;
	return NULL;
}

/* A template built by an earlier run: its token file is written last. */
static bool tmpl_load(struct tmpl *t)
{
	struct buf p = BUF_INIT;
	char tok[80] = "";
	buf_addf(&p, "%s/token", t->dir);
	int fd = open(p.data, O_RDONLY | O_CLOEXEC);
	buf_release(&p);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, tok, sizeof(tok) - 1);
	close(fd);
	struct err e = ERR_INIT;
	if (n != 64 || jail_dir(t->dir, 0400, &e) < 0) {
		if (n == 64)
			log_warn("template '%s': %s", t->key, err_str(&e));
		return false;
	}
	tok[n] = '\0';
	memcpy(t->token, tok, sizeof(t->token));
	t->state = TMPL_READY;
	return true;
}

static void tmpl_notify(struct tmpl *t)
{
	while (t->waiters) {
		struct tmpl_waiter *w = t->waiters;
		t->waiters = w->next;
		QV(w->vm)->waits_for = NULL;
		tmpl_clone(w->vm, t);
		free(w);
	}
}

void tmpl_unwait(struct qvm *q)
{
	struct tmpl *t = q->waits_for;
	if (!t)
		return;
	for (struct tmpl_waiter **pp = &t->waiters; *pp; pp = &(*pp)->next) {
		if ((*pp)->vm == q->vm) {
			struct tmpl_waiter *w = *pp;
			*pp = w->next;
			free(w);
			break;
		}
	}
	q->waits_for = NULL;
}

static void tmpl_fail(struct tmpl *t, const struct err *e)
{
	t->state = TMPL_FAILED; /* the next create tries again */
	t->code = e && e->code ? e->code : EIO;
	snprintf(t->error, sizeof(t->error), "%s", err_str(e));
	log_warn("template '%s': %s", t->key, t->error);
	tmpl_notify(t);
}

static void tmpl_build_stopped(struct vm *b, int rc, const struct err *e, void *arg)
{
	struct tmpl *t = arg;
	struct qvm *q = QV(b);
	struct err we = ERR_INIT;
	if (rc < 0) {
		fileop_remove_tree(b->dir, NULL, NULL);
		vm_forget(b);
		tmpl_fail(t, e);
		return;
	}
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/token", b->dir);
	unlink(p.data);
	int fd = open(p.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	bool ok = fd >= 0 && write_all(fd, q->token, 64) == 0 && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	buf_release(&p);
	/* root's and read-only from now on (its QEMU is gone) */
	if (ok && jail_dir(b->dir, 0400, &we) < 0)
		errno = we.code;
	if (!ok || we.code || rename(b->dir, t->dir) < 0) {
		err_set(&we, errno, "cannot store the template in '%s': %s", t->dir, strerror(errno));
		fileop_remove_tree(b->dir, NULL, NULL);
		vm_forget(b);
		tmpl_fail(t, &we);
		return;
	}
	memcpy(t->token, q->token, sizeof(t->token));
	t->state = TMPL_READY;
	log_info("template '%s' is ready", t->key);
	vm_forget(b);
	tmpl_notify(t);
	timer_arm(&t->refill, 1000);
}

static void tmpl_booted(struct vm *b, int rc, const struct err *e, void *arg)
{
	struct tmpl *t = arg;
	struct err se = ERR_INIT;
	if (rc < 0) {
		tmpl_fail(t, e); /* the failed create removed its files already */
		return;
	}
	if (vm_stop(b, tmpl_build_stopped, t, &se) < 0)
		tmpl_fail(t, &se);
}

static void tmpl_build(struct engine *eng, struct tmpl *t, const struct vm_spec *like)
{
	struct buf id = BUF_INIT;
	buf_addf(&id, ".build-%s", t->key);
	struct vm_spec spec = { .id = id.data, .image = like->image, .cpus = like->cpus,
				.memory_mb = like->memory_mb, .hostname = "bhatti" };
	struct qvm *q = q_hidden_create(eng, &spec, QVM_TEMPLATE_BUILD, QE(eng)->accel, tmpl_booted, t);
	struct vm *b = q->vm;
	struct err e = ERR_INIT;
	buf_release(&id);
	log_info("building template '%s' (one cold boot)", t->key);
	t->state = TMPL_BUILDING;
	fileop_remove_tree_now(b->dir, NULL); /* a leftover from a crash */
	q_random_hex(q->token, 32);
	/* it boots for a create that waits: its memory is reserved as a
	 * create's (the engine's spares and pool clones give way) */
	if (qmem_reserve(eng, q->hot_mem, t->memory_mb, t, 0, &e) < 0)
		step_fail(q, e.code, "%s", err_str(&e));
	else if (q_prepare_dir(b, &e) < 0)
		step_fail(q, e.code, "%s", err_str(&e));
	else
		q_boot(b);
}

/* The template `key` of vm's shape: known, or loaded from disk (state
 * TMPL_READY), or new (TMPL_FAILED until a build). */
struct tmpl *tmpl_obtain(struct vm *vm, const char *key)
{
	struct engine *eng = vm->eng;
	struct qeng *qe = QE(eng);
	struct tmpl *t = tmpl_find(eng, key);
	if (t)
		return t;
	t = xcalloc(1, sizeof(*t));
	t->key = xstrdup(key);
	t->dir = qeng_path(eng, "templates", key);
	t->state = TMPL_FAILED;
	t->eng = eng;
	t->image = xstrdup(vm->spec.image);
	t->cpus = vm->spec.cpus;
	t->memory_mb = vm->spec.memory_mb;
	timer_init(&t->refill, pool_fill_timer, t);
	timer_init(&t->spare_timer, spare_timer_fired, t);
	t->next = qe->tmpls;
	qe->tmpls = t;
	if (tmpl_load(t))
		log_debug("template '%s' found on disk", key);
	return t;
}

void tmpl_get(struct vm *vm)
{
	char *key = tmpl_key_of(vm->eng, &vm->spec);
	struct tmpl *t = tmpl_obtain(vm, key);
	free(key);
	if (t->state == TMPL_READY) {
		if (t->nready) {
			pool_claim(vm, t);
		} else {
			tmpl_clone(vm, t);
			/* the pool is empty: a template loaded from disk (after a
			 * restart) has had no claim or build to start it */
			if (!t->building && t->eng->cfg.pool_size > 0)
				timer_arm(&t->refill, 1000);
		}
		return;
	}
	struct tmpl_waiter *w = xcalloc(1, sizeof(*w));
	w->vm = vm;
	w->next = t->waiters;
	t->waiters = w;
	QV(vm)->waits_for = t;
	if (t->state == TMPL_FAILED)
		tmpl_build(vm->eng, t, &vm->spec);
}

/* ---- clone -------------------------------------------------------------------------- */

static void clone_disk_copied(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	if (!q_disk_copied(vm, rc, e))
		return;
	struct buf state = BUF_INIT, base = BUF_INIT;
	buf_addf(&state, "%s/state", q->source->dir);
	buf_addf(&base, "%s/mem", q->source->dir);
	restore_overlapped(q, state.data, base.data, NULL, NULL);
	buf_release(&state);
	buf_release(&base);
}

void tmpl_clone(struct vm *vm, struct tmpl *t)
{
	struct qvm *q = QV(vm);
	if (vm->op != OP_CREATE)
		return;
	if (t->state != TMPL_READY) {
		step_fail(q, t->code, "building the '%s' template failed: %s", vm->spec.image, t->error);
		return;
	}
	q->source = t;
	free(q->base_key);
	q->base_key = xstrdup(t->key);
	if (q->role != QVM_POOL_CLONE)
		t->cloned_ms = now_ms(); /* keeps a spare for the next create */
	snprintf(vm->origin, sizeof(vm->origin), "clone");
	/* QEMU opens the disk when it starts: copy it first (it is small and
	 * a reflink where it can be), then memory and QEMU in parallel */
	struct buf src = BUF_INIT;
	char *dst = qvm_path(vm, "disk.ext4");
	buf_addf(&src, "%s/disk.ext4", t->dir);
	fileop_copy(src.data, dst, clone_disk_copied, vm);
	buf_release(&src);
	free(dst);
}

/* ---- stale templates ----------------------------------------------------------------- */

/* Is template `key` the base of some sandbox's cold snapshot? */
static bool template_in_use(struct engine *eng, const char *key)
{
	char *dir = qeng_path(eng, "sandboxes", NULL);
	DIR *d = opendir(dir);
	struct dirent *de;
	bool used = false;
	while (d && !used && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s", dir, de->d_name);
		cJSON *m = meta_read(p.data);
		used = m && strcmp(json_get_str(m, "template", ""), key) == 0;
		cJSON_Delete(m);
		buf_release(&p);
	}
	if (d)
		closedir(d);
	free(dir);
	return used || copy_template_in_use(eng, key);
}

void tmpl_remove_stale(struct engine *eng)
{
	char *dir = qeng_path(eng, "templates", NULL);
	/* a template build a crash interrupted (templates/.build-<key>/) may
	 * still be booting: kill it before its directory goes */
	qemu_kill_orphans(dir, "a template build");
	DIR *d = opendir(dir);
	struct dirent *de;
	if (!d) {
		free(dir);
		return;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s", dir, de->d_name);
		/* an interrupted build, not a template's name, or the inputs of
		 * <image>-<cpus>c-<mem>m-<accel>-<hash> changed */
		char image[64], hash[17];
		bool stale = de->d_name[0] == '.' || tmpl_key_parse(de->d_name, image) < 0;
		if (!stale) {
			tmpl_inputs_hash(eng, image, hash);
			stale = strcmp(strrchr(de->d_name, '-') + 1, hash) != 0;
		}
		if (stale && de->d_name[0] != '.' && template_in_use(eng, de->d_name)) {
			log_info("keeping stale template %s: a stopped sandbox or a snapshot needs it",
				 de->d_name);
			stale = false;
		}
		if (stale) {
			log_info("removing stale template %s", de->d_name);
			fileop_remove_tree_now(p.data, NULL);
		}
		buf_release(&p);
	}
	closedir(d);
	free(dir);
}
