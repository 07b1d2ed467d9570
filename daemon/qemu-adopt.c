/* qemu-adopt.c — what a QEMU VM leaves for the next engine, and how that
 * engine takes it back: vm.json (written through the file worker, in order
 * with the snapshot files), adoption of every sandbox directory at
 * start-up (a running QEMU reconnected, a cold snapshot restorable, the
 * rest FAILED), and the QEMUs of pools and template builds nobody owns.
 *
 * Nothing in vm.json is trusted as it is: every field is checked (a
 * template key before it becomes a path), and a QEMU is the process found
 * by its QMP socket (the one listening on it), never the pid vm.json
 * names: a vm.json whose pid or uid disagrees leaves the sandbox FAILED,
 * and no process it names is signalled.
 *
 * Sits between engine_new() (through q_adopt) and what an earlier engine
 * left: sandbox directories, QEMU processes (/proc), their QMP and agent
 * sockets. Touches data_dir/sandboxes/<id>/vm.json, and removes memory
 * files on tmpfs that no running QEMU owns; takes the memory files of
 * running guests from the memory dir of a version before the VM uids
 * (mem_dir/bhatti-<hash of data_dir>).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"
#include "valid.h"

/* ---- vm.json -------------------------------------------------------------------- */

static void meta_written(int rc, const struct err *e, void *arg)
{
	char *path = arg;
	if (rc < 0)
		log_warn("%s", err_str(e));
	free(path);
}

/* Record the VM in vm.json, through the file worker: its jobs run in
 * order, so this record lands after the snapshot files queued before it
 * are flushed (a record saying "stopped" never precedes the snapshot it
 * describes), and before the memory load queued after it (a restored
 * guest never runs while the record still says "stopped"). durable:
 * fsync it too. */
/* This boot of the host (so a record written without fsync can be
 * trusted after a daemon crash, but not after a host crash). */
static void boot_id(char out[64])
{
	out[0] = '\0';
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, 63);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

/* vm.json's text; caller frees. unflushed: the snapshot files are
 * complete but maybe not on disk yet (valid only on this boot). */
static char *meta_text(struct vm *vm, bool unflushed)
{
	struct qvm *q = QV(vm);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", vm->id);
	cJSON_AddStringToObject(o, "hostname", vm->spec.hostname);
	cJSON_AddStringToObject(o, "image", vm->spec.image);
	cJSON_AddNumberToObject(o, "cpus", vm->spec.cpus);
	cJSON_AddNumberToObject(o, "memory_mb", vm->spec.memory_mb);
	cJSON_AddStringToObject(o, "state", vm_state_name(vm->state));
	cJSON_AddNumberToObject(o, "pid", q->pid);
	cJSON_AddNumberToObject(o, "pid_start", (double)q->pid_start);
	cJSON_AddNumberToObject(o, "uid", q->uid);
	cJSON_AddStringToObject(o, "token", q->token);
	cJSON_AddStringToObject(o, "origin", vm_origin(vm));
	if (q->base_key)
		cJSON_AddStringToObject(o, "template", q->base_key);
	if (q->key_wrapped)
		cJSON_AddStringToObject(o, "key", q->key_wrapped);
	cJSON_AddStringToObject(o, "accel", q->accel);
	cJSON_AddStringToObject(o, "error", vm->error);
	if (vm->spec.net.bridge[0]) {
		cJSON *n = cJSON_AddObjectToObject(o, "net");
		cJSON_AddStringToObject(n, "bridge", vm->spec.net.bridge);
		cJSON_AddStringToObject(n, "address", vm->spec.net.address);
		cJSON_AddStringToObject(n, "gateway", vm->spec.net.gateway);
		cJSON_AddStringToObject(n, "mac", vm->spec.net.mac);
	}
	if (unflushed) {
		char id[64];
		boot_id(id);
		cJSON_AddBoolToObject(o, "unflushed", true);
		cJSON_AddStringToObject(o, "boot_id", id);
	}
	char *text = cJSON_Print(o);
	cJSON_Delete(o);
	return text;
}

void meta_record(struct vm *vm, bool durable)
{
	if (vm->hidden)
		return; /* template builders and probes are not adopted */
	char *text = meta_text(vm, false);
	char *path = qvm_path(vm, "vm.json");
	fileop_write(path, text, durable, meta_written, path);
	free(text);
}

/* Write vm.json now, from the loop, without fsync: a stop is answered
 * only once its record says "stopped", so a daemon crash right after the
 * answer still finds a restorable sandbox. Only when no record for this
 * VM is queued in the file worker (it would land after this one). */
int meta_write_now(struct vm *vm)
{
	if (vm->hidden)
		return 0;
	char *text = meta_text(vm, true);
	struct buf path = BUF_INIT, tmp = BUF_INIT;
	buf_addf(&path, "%s/vm.json", vm->dir);
	buf_addf(&tmp, "%s/vm.json.now", vm->dir);
	unlink(tmp.data);
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600), r = 0;
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || rename(tmp.data, path.data) < 0) {
		r = -errno;
		log_warn("vm '%s': writing vm.json: %s", vm->id, strerror(errno));
		unlink(tmp.data);
	}
	if (fd >= 0)
		close(fd);
	buf_release(&path);
	buf_release(&tmp);
	free(text);
	return r;
}

struct meta_then {
	struct qvm *q;
	qstep_fn next;
};

/* (the VM outlives the job: a destroy's removal is queued after it) */
static void meta_then_written(int rc, const struct err *e, void *arg)
{
	struct meta_then *mt = arg;
	struct qvm *q = mt->q;
	qstep_fn next = mt->next;
	free(mt);
	if (!q->cont_pending)
		return; /* the step failed meanwhile */
	q->cont_pending = false;
	if (rc < 0)
		step_fail(q, -rc, "writing vm.json: %s", err_str(e));
	else
		next(q);
}

void meta_record_then(struct qvm *q, qstep_fn next)
{
	struct meta_then *mt = xcalloc(1, sizeof(*mt));
	char *text = meta_text(q->vm, false), *path = qvm_path(q->vm, "vm.json");
	mt->q = q;
	mt->next = next;
	q->cont_pending = true;
	fileop_write(path, text, true, meta_then_written, mt);
	free(path);
	free(text);
}

void meta_write(struct vm *vm)
{
	meta_record(vm, false);
}

cJSON *meta_read(const char *dir)
{
	return meta_read_file(dir, "vm.json");
}

cJSON *meta_read_file(const char *dir, const char *name)
{
	struct buf path = BUF_INIT, text = BUF_INIT;
	char chunk[4096];
	buf_addf(&path, "%s/%s", dir, name);
	int fd = open(path.data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	buf_release(&path);
	if (fd < 0)
		return NULL;
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 && text.len < (1u << 20))
		buf_add(&text, chunk, (size_t)n);
	close(fd);
	cJSON *o = cJSON_Parse(text.data);
	buf_release(&text);
	return o;
}


/* ---- adopt ------------------------------------------------------------------------------ */

static void adopt_status(struct qmp *qm UNUSED, int rc, const cJSON *ret, const struct err *e,
			 void *arg)
{
	struct qvm *q = arg;
	struct vm *vm = q->vm;
	struct err ae = ERR_INIT;
	if (rc < 0) {
		vm_fail(vm, "cannot query QEMU: %s", err_str(e));
		return;
	}
	const char *st = json_get_str(ret, "status", "");
	/* "postmigrate": a stop cut short after its migration, before its
	 * record said "stopped" (that record comes only once the snapshot is
	 * whole): the snapshot is not to be trusted, the guest is whole in
	 * QEMU and `cont` takes it on from there (as after a failed save) */
	bool cut = strcmp(st, "postmigrate") == 0;
	if (cut) {
		log_info("vm '%s': its stop was cut short; the guest is kept, paused", vm->id);
		for (const char *const *n = (const char *const[]){ "mem.part", "state.part", NULL }; *n; n++) {
			char *part = qvm_path(vm, *n);
			unlink(part);
			free(part);
		}
	}
	if (strcmp(st, "paused") == 0 || strcmp(st, "running") == 0 || cut) {
		/* the agent channel either way: a paused guest answers its
		 * HELLO once resumed (without it, a resumed sandbox had no
		 * agent and every exec answered "not running") */
		vm->state = strcmp(st, "running") == 0 ? VM_RUNNING : VM_PAUSED;
		q->paused = vm->state == VM_PAUSED;
		if (qagent_open(q, q->token, &ae) == 0)
			q->on_hello = qagent_reconnected;
		else
			log_warn("vm '%s': %s", vm->id, err_str(&ae));
	} else {
		vm_fail(vm, "QEMU is in state '%s'", st);
	}
	log_info("vm '%s': adopted (%s)", vm->id, vm_state_name(vm->state));
}

/* A whole number in [min, max] under key (absent: def). */
static bool meta_num(const cJSON *m, const char *key, double min, double max, double def,
		     double *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
	double d = v ? (cJSON_IsNumber(v) ? v->valuedouble : -1) : def;
	if (!(d >= min && d <= max) || d != (double)(long long)d)
		return false;
	*ret = d;
	return true;
}

/* vm.json of the sandbox id, checked field by field: 0, or -EINVAL with
 * what is wrong in e. */
static int meta_check(const cJSON *m, const char *id, struct err *e)
{
	const char *v;
	double d;
	char image[64];
	if (!cJSON_IsObject(m))
		return err_set(e, EINVAL, "it is not a JSON object");
	if (strcmp(json_get_str(m, "id", id), id) != 0)
		return err_set(e, EINVAL, "it names another sandbox");
	if (valid_image(json_get_str(m, "image", ""), e) < 0)
		return -EINVAL;
	v = json_get_str(m, "hostname", id);
	if (strcmp(v, id) != 0 && valid_hostname(v, e) < 0)
		return -EINVAL;
	if (!meta_num(m, "cpus", 1, 64, -1, &d) || !meta_num(m, "memory_mb", 64, 65536, -1, &d))
		return err_set(e, EINVAL, "its shape (cpus, memory_mb) is not valid");
	if (!meta_num(m, "pid", 0, 4194304, 0, &d) || !meta_num(m, "uid", 0, 4294967294.0, 0, &d) ||
	    !meta_num(m, "pid_start", 0, 9e15, 0, &d))
		return err_set(e, EINVAL, "its pid, pid_start or uid is not valid");
	v = json_get_str(m, "token", "");
	if (strlen(v) != 64 || strspn(v, "0123456789abcdef") != 64)
		return err_set(e, EINVAL, "its token is not valid");
	v = json_get_str(m, "accel", "");
	if (strcmp(v, "kvm") != 0 && strcmp(v, "tcg") != 0)
		return err_set(e, EINVAL, "its accelerator is not valid");
	v = json_get_str(m, "origin", "boot");
	if (strcmp(v, "boot") != 0 && strcmp(v, "clone") != 0 && strcmp(v, "restore") != 0 &&
	    strcmp(v, "fork") != 0)
		return err_set(e, EINVAL, "its origin is not valid");
	v = json_get_str(m, "template", NULL);
	if (v && tmpl_key_parse(v, image) < 0)
		return err_set(e, EINVAL, "its template key '%.80s' is not valid", v);
	v = json_get_str(m, "key", NULL); /* the snapshot key, wrapped (base64) */
	if (v && (strlen(v) > 4096 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					   "0123456789+/=") != strlen(v)))
		return err_set(e, EINVAL, "its snapshot key is not valid");
	v = json_get_str(m, "state", "");
	for (enum vm_state st = VM_CREATING; st <= VM_DESTROYING; st++)
		if (strcmp(v, vm_state_name(st)) == 0)
			return 0;
	return err_set(e, EINVAL, "its state is not valid");
}

/* ---- a memory dir from before the VM uids -------------------------------------------- */

/* mem_dir/bhatti-<hash of data_dir>: where a version before the VM uids
 * kept guest memory. Opened only if it is a real directory no one but its
 * owner may write (that version made it 0700; one anybody can write was
 * made by somebody else, to be left alone); -1 otherwise. */
static int legacy_open(struct engine *eng, char **ret_path)
{
	uint8_t h[8];
	char hex[17];
	struct buf p = BUF_INIT;
	struct stat st;
	crypto_generichash(h, sizeof(h), (const uint8_t *)eng->cfg.data_dir,
			   strlen(eng->cfg.data_dir), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	buf_addf(&p, "%s/bhatti-%s", eng->cfg.mem_dir, hex);
	int fd = open(p.data, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &st) < 0 || (st.st_mode & 022) || strcmp(p.data, QE(eng)->hot_dir) == 0)) {
		close(fd);
		fd = -1;
	}
	if (fd >= 0 && ret_path)
		*ret_path = buf_detach(&p, NULL);
	buf_release(&p);
	return fd;
}

/* An adopted guest of that version: move its memory file (a plain file
 * of its QEMU's uid) into our memory dir, where a stop will look. */
static void legacy_take_mem(struct engine *eng, struct qvm *q)
{
	struct qeng *qe = QE(eng);
	const char *name = hot_name(q->hot_mem);
	struct stat st, now;
	int lfd;
	if (fstatat(qe->hot_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || (lfd = legacy_open(eng, NULL)) < 0)
		return;
	if (fstatat(lfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	    st.st_nlink == 1 && st.st_uid == q->uid && renameat(lfd, name, qe->hot_fd, name) == 0) {
		if (fstatat(qe->hot_fd, name, &now, AT_SYMLINK_NOFOLLOW) < 0 || now.st_ino != st.st_ino) {
			hot_unlink(qe, name); /* swapped on the way: not its memory */
			log_warn("vm '%s': its memory file changed while moving", q->vm->id);
		} else {
			log_info("vm '%s': its memory moved to '%s'", q->vm->id, qe->hot_dir);
		}
	}
	close(lfd);
}

/* ---- adopt ---------------------------------------------------------------------------- */

static void adopt_one(struct engine *eng, const char *id)
{
	struct err e = ERR_INIT, me = ERR_INIT;
	if (valid_vm_id(id, &me) < 0) {
		log_warn("not a sandbox: %s", err_str(&me));
		return;
	}
	char *dir = qeng_path(eng, "sandboxes", id);
	int owned = jail_dir(dir, 0, &me); /* an older install's: ours again */
	cJSON *m = owned == 0 ? meta_read(dir) : NULL;
	bool valid = m && meta_check(m, id, &me) == 0;
	struct vm *vm = vm_new(eng, id, NULL, VM_FAILED, false);
	struct qvm *q = qvm_new(vm, valid ? json_get_str(m, "accel", "") : QE(eng)->accel);
	/* its QEMU is the one listening on its socket, whatever vm.json says */
	struct qemu_found f = { .pidfd = -1, .qmp_fd = -1 };
	bool found = owned == 0 && qemu_by_socket_in(dir, &f);
	free(dir);
	if (found) {
		q->pid = f.pid;
		q->uid = f.uid;
		q->pid_start = qemu_starttime(f.pid);
		q->our_child = false;
	}
	const char *state = valid ? json_get_str(m, "state", "") : "";
	pid_t pid = valid ? (pid_t)json_get_num(m, "pid") : 0;
	bool has_uid = valid && cJSON_GetObjectItemCaseSensitive(m, "uid");
	uid_t uid = has_uid ? (uid_t)json_get_num(m, "uid") : 0;
	if (owned < 0) {
		snprintf(vm->error, sizeof(vm->error), "%s", err_str(&me));
	} else if (!m) {
		snprintf(vm->error, sizeof(vm->error), "incomplete sandbox (no vm.json): destroy it");
		vm->unfinished = true;
	} else if (!valid) {
		snprintf(vm->error, sizeof(vm->error), "its vm.json is not valid: %s", err_str(&me));
	} else {
		free((char *)vm->spec.hostname);
		free((char *)vm->spec.image);
		vm->spec.hostname = xstrdup(json_get_str(m, "hostname", id));
		vm->spec.image = xstrdup(json_get_str(m, "image", ""));
		vm->spec.cpus = (unsigned)json_get_num(m, "cpus");
		vm->spec.memory_mb = (unsigned)json_get_num(m, "memory_mb");
		snprintf(vm->origin, sizeof(vm->origin), "%s", json_get_str(m, "origin", "boot"));
		snprintf(q->token, sizeof(q->token), "%s", json_get_str(m, "token", ""));
		if (json_get_str(m, "template", NULL))
			q->base_key = xstrdup(json_get_str(m, "template", ""));
		if (json_get_str(m, "key", NULL))
			q->key_wrapped = xstrdup(json_get_str(m, "key", ""));
		snprintf(vm->error, sizeof(vm->error), "%s", json_get_str(m, "error", ""));
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "net");
		if (cJSON_IsObject(n)) {
			struct vm_net *vn = &vm->spec.net;
			snprintf(vn->bridge, sizeof(vn->bridge), "%s", json_get_str(n, "bridge", ""));
			snprintf(vn->address, sizeof(vn->address), "%s", json_get_str(n, "address", ""));
			snprintf(vn->gateway, sizeof(vn->gateway), "%s", json_get_str(n, "gateway", ""));
			snprintf(vn->mac, sizeof(vn->mac), "%s", json_get_str(n, "mac", ""));
		}
		vm->unfinished = strcmp(state, vm_state_name(VM_CREATING)) == 0;
	}
	/* "starting": a start's guest was about to run (qemu-restore.c) */
	bool live = strcmp(state, "running") == 0 || strcmp(state, "paused") == 0 ||
		    strcmp(state, "starting") == 0;
	if (valid && found && strcmp(state, "stopped") == 0) {
		/* a start interrupted before its guest ran: the snapshot is
		 * good, its QEMU (ours: it listens on our socket) goes */
		log_info("vm '%s': killing the QEMU of an unfinished start (pid %d)", id, (int)f.pid);
		syscall(SYS_pidfd_send_signal, f.pidfd, SIGKILL, NULL, 0);
		qemu_found_release(&f);
		found = false;
		q->pid = 0;
		q->uid = 0;
		q->pid_start = 0;
	}
	if (valid && live && !found) {
		snprintf(vm->error, sizeof(vm->error), "QEMU exited while the engine was away");
	} else if (valid && live && f.pid != pid) {
		snprintf(vm->error, sizeof(vm->error),
			 "its vm.json names pid %d, but the QEMU on its socket is pid %d", (int)pid,
			 (int)f.pid);
	} else if (valid && live && has_uid && f.uid != uid) {
		snprintf(vm->error, sizeof(vm->error),
			 "its QEMU runs as uid %u, not as uid %u (vm.json)", (unsigned)f.uid,
			 (unsigned)uid);
	} else if (valid && live) {
		vm->state = VM_STARTING; /* until QEMU answers */
		legacy_take_mem(eng, q);
		q->qmp = qmp_new(f.qmp_fd, qemu_on_qmp_event, qemu_on_qmp_closed, q);
		f.qmp_fd = -1;
		qmp_cmd(q->qmp, "query-status", NULL, -1, adopt_status, q);
		qcon_open(q);
	} else if (valid && strcmp(state, "stopped") == 0) {
		struct vm *v = vm;
		char *mem = qvm_path(v, "mem"), *snap = qvm_path(v, "state");
		char now[64];
		boot_id(now);
		const cJSON *unflushed = cJSON_GetObjectItemCaseSensitive(m, "unflushed");
		if (cJSON_IsTrue(unflushed) && strcmp(json_get_str(m, "boot_id", ""), now) != 0)
			snprintf(vm->error, sizeof(vm->error),
				 "the host restarted before its cold snapshot reached the disk");
		else if (access(mem, R_OK) == 0 && access(snap, R_OK) == 0)
			vm->state = VM_STOPPED;
		else
			snprintf(vm->error, sizeof(vm->error), "its cold snapshot is missing");
		free(mem);
		free(snap);
	} else if (valid && found) {
		snprintf(vm->error, sizeof(vm->error), "was %s when the engine stopped", state);
	} else if (valid && !vm->error[0]) {
		snprintf(vm->error, sizeof(vm->error), "QEMU exited while the engine was away");
	}
	/* a QEMU found by its socket is this sandbox's: a destroy kills it */
	if (found && f.pidfd >= 0 && qemu_watch_fd(q, f.pidfd, &e) == 0)
		f.pidfd = -1;
	if (found && q->pidw.fd < 0)
		q->pid = 0; /* (cannot watch it: never signalled) */
	qemu_found_release(&f);
	if (vm->state == VM_FAILED)
		log_warn("vm '%s': %s", id, vm->error);
	cJSON_Delete(m);
}

/* Remove the *.mem files of the memory dir dfd that no running QEMU of
 * ours maps: a crash during a stop or a create, spares, pool clones. */
static void sweep_mem(struct engine *eng, int dfd, const char *path)
{
	int dup_fd = dup(dfd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".mem") != 0)
			continue;
		char *id = xstrndup(de->d_name, n - 4);
		struct vm *vm = engine_find(eng, id);
		if (!vm || vm_pid(vm) <= 0) {
			log_info("removing %s/%s (no running QEMU)", path, de->d_name);
			unlinkat(dfd, de->d_name, 0);
		}
		free(id);
	}
	if (d)
		closedir(d);
	else if (dup_fd >= 0)
		close(dup_fd);
}

int q_adopt(struct engine *eng, struct err *e)
{
	char *dir = qeng_path(eng, "sandboxes", NULL);
	DIR *d = opendir(dir);
	struct dirent *de;
	free(dir);
	if (!d)
		return errno == ENOENT ? 0 : err_set(e, errno, "cannot list sandboxes: %s", strerror(errno));
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			adopt_one(eng, de->d_name);
	closedir(d);
	/* wait (briefly) for the adopted QEMUs to say how they are */
	uint64_t until = now_ms() + 5000;
	for (;;) {
		bool pending = false;
		for (struct vm *vm = eng->vms; vm; vm = vm->next)
			pending |= vm->state == VM_STARTING;
		if (!pending || now_ms() > until)
			break;
		loop_run_once(50);
	}
	for (struct vm *vm = eng->vms; vm; vm = vm->next)
		if (vm->state == VM_STARTING)
			vm_fail(vm, "QEMU (pid %d) does not answer on its control socket", vm_pid(vm));
	sweep_mem(eng, QE(eng)->hot_fd, QE(eng)->hot_dir);
	/* an older version's memory dir: what is left there (spares) goes */
	char *legacy = NULL;
	int lfd = legacy_open(eng, &legacy);
	if (lfd >= 0) {
		sweep_mem(eng, lfd, legacy);
		if (rmdir(legacy) == 0)
			log_info("removed '%s', the memory dir of an earlier version", legacy);
		close(lfd);
	}
	free(legacy);
	return 0;
}

/* ---- what an earlier engine left running --------------------------------------------- */

void qemu_kill_orphans(const char *dir, const char *what)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		struct buf p = BUF_INIT;
		struct qemu_found f;
		buf_addf(&p, "%s/%s", dir, de->d_name);
		if (qemu_by_socket_in(p.data, &f)) {
			log_info("killing %s QEMU left by an earlier engine (pid %d)", what, (int)f.pid);
			syscall(SYS_pidfd_send_signal, f.pidfd, SIGKILL, NULL, 0);
			qemu_found_release(&f);
		}
		buf_release(&p);
	}
	if (d)
		closedir(d);
}
