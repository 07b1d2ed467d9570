/* qemu-adopt.c — what a QEMU VM leaves for the next engine, and how that
 * engine takes it back: vm.json (written through the file worker, in order
 * with the snapshot files), adoption of every sandbox directory at
 * start-up (a running QEMU reconnected, a cold snapshot restorable, the
 * rest FAILED), and the QEMUs of pools and template builds nobody owns.
 *
 * Sits between engine_new() (through q_adopt) and what an earlier engine
 * left: sandbox directories, QEMU processes (/proc), their QMP and agent
 * sockets. Touches data_dir/sandboxes/<id>/vm.json, and removes memory
 * files on tmpfs that no running QEMU owns.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"

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
	cJSON_AddStringToObject(o, "token", q->token);
	cJSON_AddStringToObject(o, "origin", vm_origin(vm));
	if (q->base_key)
		cJSON_AddStringToObject(o, "template", q->base_key);
	cJSON_AddStringToObject(o, "accel", q->accel);
	cJSON_AddStringToObject(o, "error", vm->error);
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
void meta_write_now(struct vm *vm)
{
	if (vm->hidden)
		return;
	char *text = meta_text(vm, true);
	struct buf path = BUF_INIT, tmp = BUF_INIT;
	buf_addf(&path, "%s/vm.json", vm->dir);
	buf_addf(&tmp, "%s/vm.json.now", vm->dir);
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || rename(tmp.data, path.data) < 0)
		log_warn("vm '%s': writing vm.json: %s", vm->id, strerror(errno));
	if (fd >= 0)
		close(fd);
	buf_release(&path);
	buf_release(&tmp);
	free(text);
}

void meta_write(struct vm *vm)
{
	meta_record(vm, false);
}

cJSON *meta_read(const char *dir)
{
	struct buf path = BUF_INIT, text = BUF_INIT;
	char chunk[4096];
	buf_addf(&path, "%s/vm.json", dir);
	int fd = open(path.data, O_RDONLY | O_CLOEXEC);
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
	if (strcmp(st, "paused") == 0) {
		vm->state = VM_PAUSED;
	} else if (strcmp(st, "running") == 0) {
		vm->state = VM_RUNNING;
		if (qagent_open(q, q->token, &ae) == 0)
			q->on_hello = qagent_reconnected;
	} else {
		vm_fail(vm, "QEMU is in state '%s'", st);
	}
	log_info("vm '%s': adopted (%s)", vm->id, vm_state_name(vm->state));
}

static void adopt_one(struct engine *eng, const char *id)
{
	char *dir = qeng_path(eng, "sandboxes", id);
	cJSON *m = meta_read(dir);
	struct vm *vm = vm_new(eng, id, NULL, VM_FAILED, false);
	struct qvm *q = qvm_new(vm, json_get_str(m, "accel", QE(eng)->accel));
	struct err e = ERR_INIT;
	free(dir);
	if (!m) {
		snprintf(vm->error, sizeof(vm->error), "incomplete sandbox (no vm.json): destroy it");
		vm->unfinished = true;
		char *qmp = qvm_path(vm, "qmp.sock");
		pid_t pid = qemu_by_socket(qmp);
		free(qmp);
		if (pid > 0 && (q->pid_start = qemu_starttime(pid)) > 0) {
			q->pid = pid;
			q->our_child = false;
			qemu_watch(q, &e);
		}
		return;
	}
	free((char *)vm->spec.hostname);
	free((char *)vm->spec.image);
	vm->spec.hostname = xstrdup(json_get_str(m, "hostname", id));
	vm->spec.image = xstrdup(json_get_str(m, "image", "tiny"));
	vm->spec.cpus = (unsigned)json_get_num(m, "cpus");
	vm->spec.memory_mb = (unsigned)json_get_num(m, "memory_mb");
	snprintf(vm->origin, sizeof(vm->origin), "%s", json_get_str(m, "origin", "boot"));
	snprintf(q->token, sizeof(q->token), "%s", json_get_str(m, "token", ""));
	if (json_get_str(m, "template", NULL))
		q->base_key = xstrdup(json_get_str(m, "template", ""));
	snprintf(vm->error, sizeof(vm->error), "%s", json_get_str(m, "error", ""));
	const char *state = json_get_str(m, "state", "");
	vm->unfinished = strcmp(state, vm_state_name(VM_CREATING)) == 0;
	pid_t pid = (pid_t)json_get_num(m, "pid");
	uint64_t start = (uint64_t)json_get_num(m, "pid_start");
	bool alive = pid > 0 && start && qemu_starttime(pid) == start;
	if (!alive && vm->unfinished) {
		char *qmp = qvm_path(vm, "qmp.sock");
		if ((pid = qemu_by_socket(qmp)) > 0 && (start = qemu_starttime(pid)) > 0)
			alive = true;
		free(qmp);
	}

	if (alive && (strcmp(state, "running") == 0 || strcmp(state, "paused") == 0)) {
		char *qmp = qvm_path(vm, "qmp.sock");
		int fd;
		q->pid = pid;
		q->pid_start = start;
		q->our_child = false;
		if (qemu_watch(q, &e) < 0 || unix_connect(qmp, &fd) < 0) {
			snprintf(vm->error, sizeof(vm->error), "cannot reach QEMU (pid %d)", (int)pid);
		} else {
			vm->state = VM_STARTING; /* until QEMU answers */
			q->qmp = qmp_new(fd, qemu_on_qmp_event, qemu_on_qmp_closed, q);
			qmp_cmd(q->qmp, "query-status", NULL, -1, adopt_status, q);
		}
		free(qmp);
	} else if (strcmp(state, "stopped") == 0) {
		char *mem = qvm_path(vm, "mem"), *snap = qvm_path(vm, "state");
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
	} else if (alive) {
		snprintf(vm->error, sizeof(vm->error), "was %s when the engine stopped", state);
		q->pid = pid;
		q->pid_start = start;
		qemu_watch(q, &e);
	} else if (!vm->error[0]) {
		snprintf(vm->error, sizeof(vm->error), "QEMU exited while the engine was away");
	}
	if (vm->state == VM_FAILED)
		log_warn("vm '%s': %s", id, vm->error);
	cJSON_Delete(m);
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
	/* guest memory on tmpfs that no running QEMU owns (a crash during a
	 * stop or a create) is only taking RAM */
	d = opendir(QE(eng)->hot_dir);
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".mem") != 0)
			continue;
		char *id = xstrndup(de->d_name, n - 4);
		struct vm *vm = engine_find(eng, id);
		if (!vm || vm_pid(vm) <= 0) {
			struct buf p = BUF_INIT;
			buf_addf(&p, "%s/%s", QE(eng)->hot_dir, de->d_name);
			log_info("removing the memory of '%s' (no running QEMU)", id);
			unlink(p.data);
			buf_release(&p);
		}
		free(id);
	}
	if (d)
		closedir(d);
	return 0;
}

/* ---- what an earlier engine left running --------------------------------------------- */

/* Is pid the QEMU of some sandbox (its vm.json says so)? A clone taken
 * from the pool keeps the pool path in its command line. */
static bool pid_of_a_sandbox(struct engine *eng, pid_t pid)
{
	char *dir = qeng_path(eng, "sandboxes", NULL);
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;
	while (d && !found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct buf sb = BUF_INIT;
		buf_addf(&sb, "%s/%s", dir, de->d_name);
		cJSON *m = meta_read(sb.data);
		found = m && (pid_t)json_get_num(m, "pid") == pid;
		cJSON_Delete(m);
		buf_release(&sb);
	}
	if (d)
		closedir(d);
	free(dir);
	return found;
}

/* Kill every QEMU an earlier engine left running from a path that starts
 * with `prefix` (the pool, a template build interrupted by a crash): no
 * sandbox is made of them. */
void qemu_kill_orphans(struct engine *eng, const char *prefix, const char *what)
{
	DIR *d = opendir("/proc");
	pid_t pid;
	while (d && (pid = qemu_naming_next(d, prefix)) > 0) {
		if (pid_of_a_sandbox(eng, pid))
			continue;
		log_info("killing %s QEMU left by an earlier engine (pid %d)", what, (int)pid);
		kill(pid, SIGKILL);
	}
	if (d)
		closedir(d);
}
