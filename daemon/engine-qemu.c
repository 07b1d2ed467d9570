/* engine-qemu.c — the QEMU microvm backend of the engine (engine-internal.h).
 *
 * Sits between engine.c and, per VM, one qemu-system-x86_64 process: its
 * command line, its QMP socket (qmp.c), the agent channel (agent-client.c)
 * and the sandbox directory. File copies and flushes go to the file worker
 * (fileops.c); everything else runs on the event loop.
 *
 * A sandbox directory (data_dir/sandboxes/<id>/, mode 0700):
 *   vm.json      what a restarted engine needs to adopt it (0600)
 *   disk.ext4    the root disk: a copy of the image (or of the template's)
 *   mem          guest RAM of the last cold snapshot (only its allocated
 *                extents: a sparse file)
 *   state        device state of the last cold snapshot
 *   qmp.sock, agent.sock, qemu.log, console.log
 *
 * While a guest runs, its RAM is a file on tmpfs (mem_dir/bhatti-<hash of
 * data_dir>/<id>.mem, memory-backend-file share=on): page faults there are
 * cheap, and a running guest writes nothing to disk. Measured against the
 * same file on ext4 (docs/benchmarks.md): restore 90 vs 210-310 ms, first
 * exec after it 90 vs 130-450 ms under TCG. A cold stop saves the memory
 * to the sandbox directory and deletes the tmpfs file (memory freed); a
 * start loads it back. For a clone, `mem` holds only the pages that differ
 * from its template's memory (a few MB of ~100; fileops.h), so a template
 * stays as long as a stopped sandbox refers to it.
 *
 * Operations are chains of steps; each step starts one asynchronous thing
 * and names the step that continues when it is done:
 *
 *   boot:    copy image → spawn → QMP → agent HELLO (new token) → CONFIGURE
 *   clone:   template → copy disk → spawn while the template's memory
 *            fills the tmpfs file (or over the template's spare copy:
 *            see "memory spares") → restore → CONFIGURE (new identity)
 *   restore: spawn -incoming defer → QMP caps → getfd + migrate-incoming
 *            → MIGRATION completed → cont → agent HELLO
 *   start:   spawn -incoming defer while the file worker fills the tmpfs
 *            memory file (template + delta; or only the delta, over a
 *            spare copy of the template's memory: see "memory spares")
 *            → restore → CONFIGURE (clock) → the now stale mem and state
 *            are renamed aside for the worker to delete
 *   stop:    SYNC → QMP stop → getfd + migrate → completed → quit → exit
 *            → copy mem from tmpfs to disk, rename the tmpfs file aside for
 *            the worker to delete (then the disk copy is flushed and
 *            dropped from the page cache in the background)
 *   destroy: SIGKILL → exit → remove the directory
 *
 * The pool (data_dir/pool/<id>/): per template, pool_size clones restored,
 * warmed up (one exec, one CONFIGURE: TCG has translated those paths) and
 * paused, ahead of need. A create takes one: its directory and memory
 * file are renamed to the sandbox's, its vCPUs continue, and CONFIGURE
 * gives it its identity (token, hostname, env, secrets, clock, RNG seed);
 * a refill starts a second later (or a second after a create that found
 * the pool empty: after a restart, the template comes from disk). Pool
 * VMs are not adopted: a new engine kills what an old one left and builds
 * the pool again.
 *
 * Templates (data_dir/templates/<image>-<cpus>c-<mem>m-<accel>-<hash>/):
 * a VM booted once and cold-snapshotted, never run again; clones copy its
 * memory and disk (a reflink where the filesystem can) and restore its
 * device state. <hash> covers the kernel, initramfs, rootfs image and
 * QEMU binary, so changing any of them builds a new template.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine-internal.h"
#include "fileops.h"
#include "log.h"
#include "qmp.h"

#define BOOT_TIMEOUT_MS     120000  /* TCG on a loaded 2-core box is slow */
#define RESTORE_TIMEOUT_MS  30000
#define STEP_TIMEOUT_MS     30000
#define PROBE_TIMEOUT_MS    8000    /* a working KVM answers in well under 1 s */
#define SYNC_TIMEOUT_MS     5000
#define RETRY_MS            2
#define SPARE_DELAY_MS      1000    /* a spare copy after a start or stop ("memory spares") */

struct tmpl;

/* Per engine. */
struct qeng {
	char accel[8];
	bool closing;               /* engine_free: no more pool refills */
	unsigned tsc_khz;           /* host TSC rate, told to TCG guests */
	char *hot_dir;              /* mem_dir/bhatti-<hash of data_dir> */
	bool drop_user;
	uid_t vm_uid;
	gid_t vm_gid;
	struct tmpl *tmpls;
};

struct qvm;
typedef void (*qstep_fn)(struct qvm *q);

/* Per VM. Each wait has its own continuation, so they cannot mix up. */
struct qvm {
	struct vm *vm;
	char accel[8];
	pid_t pid;
	bool our_child;
	uint64_t pid_start;         /* /proc/<pid>/stat starttime: pid reuse guard */
	struct watch pidw;          /* pidfd: readable when QEMU is gone */
	bool expect_exit;
	qstep_fn on_exit;           /* QEMU exited as expected (quit, kill) */
	struct qmp *qmp;
	qstep_fn on_qmp;            /* QMP socket connected */
	qstep_fn on_migrated;       /* MIGRATION completed */
	bool migrated;
	struct watch agent_w;
	struct task agent_flush;
	qstep_fn on_hello;          /* agent answered HELLO */
	struct ac_stream *agent_req;
	qstep_fn on_req;            /* agent request ended (agent_rc) */
	int agent_rc;
	struct err agent_err;
	struct timer timer;         /* retries and deadlines of the current step */
	qstep_fn on_timer;
	uint64_t deadline;
	char token[65];
	char *hot_mem;              /* the running guest's RAM on tmpfs */
	char *base_key;             /* a clone's template: its memory is the base
				     * the cold snapshot is a delta against */
	int state_fd;
	bool paused;                /* vCPUs stopped by a pause */
	bool template_build;        /* a hidden VM that becomes a template */
	bool probe;                 /* a hidden VM that probes the accelerator */
	struct tmpl *pool_of;       /* a hidden clone waiting in a template's pool */
	struct tmpl *tmpl;          /* the template a clone restores */
	struct tmpl *waiting;       /* the template a create waits for */
	bool start_qmp_up;          /* start/clone: QMP connected ... */
	bool start_mem_ready;       /* ... and memory loaded: now restore */
	struct err step_err;
	uint64_t t0_ns;             /* when the operation began (step log) */
};

/* Debug log of how far an operation got, in ms since it began. */
#define STEP(q, what) log_debug("vm '%s': %s at +%.1f ms", (q)->vm->id, what, \
				(double)(now_ns() - (q)->t0_ns) / 1e6)

struct tmpl_waiter {
	struct vm *vm;
	struct tmpl_waiter *next;
};

enum tmpl_state { TMPL_BUILDING, TMPL_READY, TMPL_FAILED };

#define POOL_MAX 8

struct tmpl {
	char *key;
	char *dir;
	enum tmpl_state state;
	struct engine *eng;
	char *image;                /* the shape its clones (and pool) have */
	unsigned cpus, memory_mb;
	struct vm *ready[POOL_MAX]; /* pool: restored, warmed, paused clones */
	int nready;
	int building;
	struct vm *build;           /* the pool clone being made, or NULL */
	struct timer refill;
	char *spare;                /* a copy of its memory on tmpfs for the next
				     * clone or start of a stopped clone, or NULL */
	bool spare_filling;
	struct timer spare_timer;
	uint64_t cloned_ms;         /* when a create last cloned it (0: never) */
	char token[65];
	char error[ERR_MSG_MAX];
	int code;
	struct tmpl_waiter *waiters;
	struct tmpl *next;
};

static struct qeng *QE(struct engine *eng)
{
	return eng->be_state;
}

static struct qvm *QV(struct vm *vm)
{
	return vm->be;
}

static void step_fail(struct qvm *q, int code, const char *fmt, ...) PRINTF(3, 4);
static void clone_have_template(struct vm *vm, struct tmpl *t);
static void pool_fill(struct tmpl *t);
static void pool_fill_timer(struct timer *tm);
static void pool_claim(struct vm *vm, struct tmpl *t);
static void q_vm_free_state(struct qvm *q);
static bool spare_take(struct qvm *q);
static struct tmpl *tmpl_find(struct engine *eng, const char *key);
static void spare_want(struct tmpl *t, uint64_t delay_ms);
static void spare_timer_fired(struct timer *tm);

/* ---- small helpers ------------------------------------------------------------ */

static char *vpath(const struct vm *vm, const char *name)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s", vm->dir, name);
	return buf_detach(&b, NULL);
}

static char *epath(const struct engine *eng, const char *a, const char *b)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/%s%s%s", eng->cfg.data_dir, a, b ? "/" : "", b ? b : "");
	return buf_detach(&p, NULL);
}

static char *image_path(const struct engine *eng, const char *name)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/%s", eng->cfg.images_dir, name);
	return buf_detach(&p, NULL);
}

static void random_hex(char *out, size_t bytes)
{
	uint8_t r[32];
	if (bytes > sizeof(r))
		bytes = sizeof(r);
	randombytes_buf(r, bytes);
	sodium_bin2hex(out, bytes * 2 + 1, r, bytes);
	sodium_memzero(r, sizeof(r));
}

static uint64_t proc_starttime(pid_t pid)
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
static pid_t qemu_naming_next(DIR *d, const char *needle)
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
static pid_t qemu_by_socket(const char *qmp_path)
{
	DIR *d = opendir("/proc");
	pid_t found = d ? qemu_naming_next(d, qmp_path) : 0;
	if (d)
		closedir(d);
	return found;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char *dup = xstrdup(path);
	for (char *p = dup + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(dup, 0755);
		*p = '/';
	}
	int r = mkdir(dup, mode) < 0 && errno != EEXIST ? -errno : 0;
	free(dup);
	return r;
}

/* The memory a clone's cold snapshot is a delta against, or NULL. */
static char *base_mem(struct qvm *q)
{
	if (!q->base_key)
		return NULL;
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/templates/%s/mem", q->vm->eng->cfg.data_dir, q->base_key);
	return buf_detach(&p, NULL);
}

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

static void meta_record(struct vm *vm, bool durable)
{
	if (vm->hidden)
		return; /* template builders and probes are not adopted */
	char *text = meta_text(vm, false);
	char *path = vpath(vm, "vm.json");
	fileop_write(path, text, durable, meta_written, path);
	free(text);
}

/* Write vm.json now, from the loop, without fsync: a stop is answered
 * only once its record says "stopped", so a daemon crash right after the
 * answer still finds a restorable sandbox. Only when no record for this
 * VM is queued in the file worker (it would land after this one). */
static void meta_write_now(struct vm *vm)
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

static void meta_write(struct vm *vm)
{
	meta_record(vm, false);
}

static cJSON *meta_read(const char *dir)
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

static const char *jstr(const cJSON *o, const char *k, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : def;
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
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

static void after(struct qvm *q, uint64_t ms, qstep_fn fn)
{
	q->on_timer = fn;
	timer_arm(&q->timer, ms);
}

static bool past_deadline(struct qvm *q)
{
	return q->deadline && now_ms() > q->deadline;
}

/* ---- agent connection ----------------------------------------------------------- */

static void agent_client_free(void *p)
{
	ac_free(p);
}

/* Drop the agent connection. The engine's own pending request is orphaned
 * (its continuation is the caller's business); every other stream on the
 * connection (an exec, a shell, a file of the API) is told it ended, so no
 * owner keeps a pointer to it. The client itself is freed after this loop
 * turn, as we may be inside one of its calls. */
static void agent_close(struct qvm *q)
{
	struct ac *ac = q->vm->agent;
	if (ac) {
		if (q->agent_req)
			ac_stream_orphan(q->agent_req);
		ac_set_notify(ac, NULL, NULL);
		watch_del(&q->agent_w);
		task_cancel(&q->agent_flush);
		q->vm->agent = NULL;
		ac_close(ac, ECONNABORTED, "sandbox '%s' is %s", q->vm->id,
			 q->vm->op == OP_STOP ? "stopping" : q->vm->op == OP_DESTROY ? "being destroyed"
			 : "no longer running");
		loop_defer_free(agent_client_free, ac);
	}
	q->agent_req = NULL;
	q->on_req = NULL;
	q->on_hello = NULL;
}

static void agent_update(struct qvm *q)
{
	struct ac *ac = q->vm->agent;
	if (ac && !ac_dead(ac))
		watch_set(&q->agent_w, EPOLLIN | (ac_want_write(ac) ? EPOLLOUT : 0));
}

static void agent_flush_task(struct task *t)
{
	struct qvm *q = t->data;
	if (q->vm->agent && !ac_dead(q->vm->agent))
		ac_flush(q->vm->agent, NULL);
	agent_update(q);
}

static void agent_notify(void *arg)
{
	struct qvm *q = arg;
	task_post(&q->agent_flush);
}

static void agent_lost(struct qvm *q, const struct err *e);

static void on_agent_io(struct watch *w, uint32_t events)
{
	struct qvm *q = w->data;
	struct ac *ac = q->vm->agent;
	struct err e = ERR_INIT;
	int r = 0;
	if (!ac)
		return;
	if (events & EPOLLOUT)
		r = ac_flush(ac, &e);
	if (r == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		r = ac_on_readable(ac, &e);
	if (r < 0) {
		agent_lost(q, &e);
		return;
	}
	agent_update(q);
	if (q->on_hello && ac_ready(ac)) {
		qstep_fn next = q->on_hello;
		q->on_hello = NULL;
		timer_cancel(&q->timer);
		next(q);
	}
}

static void agent_retry(struct qvm *q);

/* The agent connection died by itself. A step waiting for HELLO fails
 * (a pending request already got its `closed` callback); otherwise a
 * RUNNING VM whose QEMU lives reconnects: the guest's lohar resets. */
static void agent_lost(struct qvm *q, const struct err *e)
{
	struct vm *vm = q->vm;
	bool waiting = q->on_hello != NULL;
	if (q->probe)
		log_debug("vm '%s': agent connection lost: %s", vm->id, err_str(e));
	else
		log_warn("vm '%s': agent connection lost: %s", vm->id, err_str(e));
	agent_close(q);
	if (waiting) {
		step_fail(q, EIO, "agent connection lost: %s", err_str(e));
		return;
	}
	if (vm->op == OP_NONE && vm->state == VM_RUNNING && q->pid > 0) {
		q->deadline = now_ms() + 10000;
		after(q, 100, agent_retry);
	}
}

static int agent_open(struct qvm *q, const char *token, struct err *e)
{
	char *path = vpath(q->vm, "agent.sock");
	int fd, r = unix_connect(path, &fd);
	free(path);
	if (r < 0)
		return err_set(e, -r, "cannot connect to the agent channel: %s", strerror(-r));
	struct ac *ac = ac_new(fd, token, "bhatti-engine");
	q->vm->agent = ac;
	watch_add(&q->agent_w, fd, EPOLLIN | EPOLLOUT);
	ac_set_notify(ac, agent_notify, q);
	return 0;
}

static void agent_reconnected(struct qvm *q)
{
	log_info("vm '%s': agent reconnected", q->vm->id);
}

static void agent_retry(struct qvm *q)
{
	struct err e = ERR_INIT;
	if (q->vm->state != VM_RUNNING || q->vm->op != OP_NONE || q->vm->agent)
		return;
	if (past_deadline(q)) {
		vm_fail(q->vm, "the agent in the sandbox stopped answering");
		meta_write(q->vm);
		return;
	}
	if (agent_open(q, q->token, &e) < 0)
		after(q, 200, agent_retry);
	else
		q->on_hello = agent_reconnected;
}

static void agent_hello_timeout(struct qvm *q)
{
	q->on_hello = NULL;
	step_fail(q, ETIMEDOUT, "the agent did not answer (see %s/console.log)", q->vm->dir);
}

/* Connect and wait for HELLO_OK, then `next`; fail after timeout_ms. */
static void agent_connect(struct qvm *q, const char *token, uint64_t timeout_ms, qstep_fn next)
{
	struct err e = ERR_INIT;
	if (agent_open(q, token, &e) < 0) {
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
	q->on_hello = next;
	after(q, timeout_ms, agent_hello_timeout);
}

/* One request to the agent; q->on_req runs when it ends, with q->agent_rc
 * (and q->agent_err) saying how. */
static void req_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct qvm *q = arg;
	if (!(f->flags & PROTO_F_END))
		return;
	if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		if (proto_decode(f, &pe, NULL) == 0) {
			q->agent_rc = err_set(&q->agent_err, pe.code ? pe.code : EIO, "%s", pe.message);
			proto_msg_release(PROTO_ERROR, &pe);
		} else {
			q->agent_rc = err_set(&q->agent_err, EPROTO, "malformed error from the agent");
		}
	} else {
		q->agent_rc = 0;
	}
}

static void req_end(struct qvm *q)
{
	qstep_fn next = q->on_req;
	q->on_req = NULL;
	q->agent_req = NULL;
	timer_cancel(&q->timer);
	if (next)
		next(q);
}

static void req_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct qvm *q = arg;
	if (e) {
		q->agent_rc = -e->code;
		q->agent_err = *e;
	}
	req_end(q);
}

static const struct ac_stream_cb req_cb = { .frame = req_frame, .closed = req_closed };

static void req_timeout(struct qvm *q)
{
	qstep_fn next = q->on_req;
	q->agent_rc = err_set(&q->agent_err, ETIMEDOUT, "the agent did not answer in time");
	if (q->agent_req)
		ac_send_close(q->agent_req);
	/* drop the connection: the next one starts a clean session */
	agent_close(q);
	if (next)
		next(q);
}

static void agent_request(struct qvm *q, uint8_t type, const void *msg, uint64_t timeout_ms,
			  qstep_fn next)
{
	struct err e = ERR_INIT;
	q->agent_rc = -EIO;
	err_clear(&q->agent_err);
	q->agent_req = q->vm->agent ? ac_open(q->vm->agent, type, msg, &req_cb, q, &e) : NULL;
	if (!q->agent_req) {
		q->agent_rc = err_set(&q->agent_err, e.code ? e.code : ENOTCONN, "%s",
				      e.code ? err_str(&e) : "no agent connection");
		next(q);
		return;
	}
	q->on_req = next;
	q->on_timer = NULL;
	after(q, timeout_ms, req_timeout);
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

static int watch_pid(struct qvm *q, struct err *e)
{
	int fd = (int)syscall(SYS_pidfd_open, q->pid, 0);
	if (fd < 0)
		return err_set(e, errno, "pidfd_open(%d): %s", (int)q->pid, strerror(errno));
	fd_set_cloexec(fd);
	watch_init(&q->pidw, on_pidfd, q);
	return watch_add(&q->pidw, fd, EPOLLIN);
}

static void kill_qemu(struct qvm *q)
{
	if (q->pid > 0 && q->pidw.fd >= 0) {
		q->expect_exit = true;
		syscall(SYS_pidfd_send_signal, q->pidw.fd, SIGKILL, NULL, 0);
	}
}

/* The guest kernel's command line (caller frees). Part of a template's
 * key: a template booted with another command line is not reused.
 * Under TCG it also tells the host's TSC rate (see host_tsc_khz()). */
static char *kernel_cmdline(struct engine *eng, bool kvm, bool for_key)
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
	v[n++] = kernel_cmdline(eng, kvm, false);
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

static int spawn_qemu(struct qvm *q, bool incoming, struct err *e)
{
	struct vm *vm = q->vm;
	struct qeng *qe = QE(vm->eng);
	char **argv = qemu_argv(q, incoming);
	char *log = vpath(vm, "qemu.log");
	char *qmp = vpath(vm, "qmp.sock"), *agent = vpath(vm, "agent.sock");
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
	q->pid_start = proc_starttime(pid);
	r = watch_pid(q, e);
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

static void on_qmp_event(struct qmp *qm UNUSED, const char *ev, const cJSON *data, void *arg)
{
	struct qvm *q = arg;
	if (strcmp(ev, "MIGRATION") != 0)
		return;
	const char *st = jstr(data, "status", "");
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

static void on_qmp_closed(struct qmp *qm UNUSED, const struct err *e, void *arg)
{
	struct qvm *q = arg;
	log_debug("vm '%s': %s", q->vm->id, err_str(e));
}

static void qmp_connect_try(struct qvm *q)
{
	char *path = vpath(q->vm, "qmp.sock");
	int fd, r = unix_connect(path, &fd);
	free(path);
	if (r == 0) {
		qstep_fn next = q->on_qmp;
		q->on_qmp = NULL;
		q->qmp = qmp_new(fd, on_qmp_event, on_qmp_closed, q);
		next(q);
		return;
	}
	if (q->pid <= 0)
		return; /* QEMU is gone; qemu_exited reports it */
	if (past_deadline(q)) {
		q->on_qmp = NULL;
		step_fail(q, ETIMEDOUT, "QEMU did not open its control socket (see %s/qemu.log)",
			  q->vm->dir);
		return;
	}
	after(q, RETRY_MS, qmp_connect_try);
}

/* QEMU creates its sockets while it starts: retry until it has. */
static void qmp_connect(struct qvm *q, qstep_fn next)
{
	q->on_qmp = next;
	q->deadline = now_ms() + STEP_TIMEOUT_MS;
	qmp_connect_try(q);
}

/* A QMP command whose failure fails the step; on success `next`. The
 * reply may come after the VM moved on (destroy): `gen` tells. */
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

static void qcmd(struct qvm *q, const char *cmd, cJSON *args, int fd, qstep_fn next)
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

static cJSON *migrate_caps(void)
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

static cJSON *args_str(const char *k, const char *v)
{
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, k, v);
	return a;
}

static void close_state_fd(struct qvm *q)
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
static void cleanup_runtime(struct qvm *q)
{
	timer_cancel(&q->timer);
	q->on_timer = NULL;
	agent_close(q);
	qmp_close_conn(q);
	close_state_fd(q);
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
	char *path = vpath(q->vm, "qemu.log"), tail[256] = "";
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
static void step_fail(struct qvm *q, int code, const char *fmt, ...)
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
		cleanup_runtime(q);
		quote_qemu_log(q);
		if (q->pid > 0 && q->pidw.fd >= 0) {
			q->on_exit = create_failed_exit;
			kill_qemu(q);
		} else {
			create_failed_exit(q);
		}
		return;
	case OP_START:
		cleanup_runtime(q);
		if (q->pid > 0) {
			q->on_exit = NULL;
			kill_qemu(q);
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
		close_state_fd(q);
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
			if (agent_open(q, q->token, &e) == 0)
				q->on_hello = agent_reconnected;
		}
		vm->state = back;
		meta_write(vm);
		vm_op_finish(vm, back, -err.code, &err);
		return;
	}
	default:
		cleanup_runtime(q);
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
		cleanup_runtime(q);
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
	cleanup_runtime(q);
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
static void give_to_vm_user(struct vm *vm, const char *path, int fd)
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
static int make_mem_file(struct engine *eng, const char *path, unsigned memory_mb, struct err *e)
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

/* ---- configure ---------------------------------------------------------------------- */

/* identity: the whole setup (first boot, or a clone taking its own
 * identity: new token, RNG seed, ...); otherwise just the clock (a start
 * restores the same VM: its RNG state is its own, no other copy has it). */
static void configure(struct qvm *q, bool identity, qstep_fn next)
{
	struct vm *vm = q->vm;
	uint8_t seed[64];
	struct timespec ts;
	struct proto_configure c = {
		.what = PROTO_CFG_CLOCK,
		.hostname = (char *)"", .token = (char *)"", .init = (char *)"",
		.net_ifname = (char *)"", .net_address = (char *)"", .net_gateway = (char *)"",
		.rng_seed = { seed, sizeof(seed) },
	};
	randombytes_buf(seed, sizeof(seed));
	clock_gettime(CLOCK_REALTIME, &ts);
	c.clock_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (identity) {
		c.what |= PROTO_CFG_HOSTNAME | PROTO_CFG_TOKEN | PROTO_CFG_ENV | PROTO_CFG_SECRETS |
			  PROTO_CFG_FILES | PROTO_CFG_INIT | PROTO_CFG_RNG;
		c.hostname = (char *)vm->spec.hostname;
		c.token = q->token;
		c.env = vm->spec.env;
		c.secrets = vm->spec.secrets;
		c.files = vm->spec.files;
		c.nfiles = vm->spec.nfiles;
		c.init = (char *)(vm->spec.init ? vm->spec.init : "");
	}
	agent_request(q, PROTO_CONFIGURE, &c, STEP_TIMEOUT_MS, next);
	sodium_memzero(seed, sizeof(seed));
}

/* ---- create ------------------------------------------------------------------------ */

static void create_done(struct qvm *q)
{
	struct vm *vm = q->vm;
	STEP(q, "configured");
	if (q->agent_rc < 0) {
		step_fail(q, q->agent_err.code, "configuring the guest: %s", err_str(&q->agent_err));
		return;
	}
	vm->state = VM_RUNNING;
	meta_write(vm);
	/* a clone: copy its template's memory again for the next create */
	struct tmpl *t = q->base_key ? tmpl_find(vm->eng, q->base_key) : NULL;
	vm_op_finish(vm, VM_RUNNING, 0, NULL);
	if (t)
		spare_want(t, 0);
}

static void template_warmed(struct qvm *q)
{
	/* only an optimisation: an image without a shell still makes a
	 * template (a broken guest fails the stop that comes next) */
	if (q->agent_rc < 0)
		log_warn("template build '%s': warming the page cache: %s", q->vm->id,
			 err_str(&q->agent_err));
	vm_op_finish(q->vm, VM_RUNNING, 0, NULL);
}

static void boot_agent_ready(struct qvm *q)
{
	if (q->template_build) {
		/* the template keeps the boot token. Before it is snapshotted,
		 * a shell and `true` are read from disk once: every clone then
		 * has them in its page cache, and its first exec does not go
		 * through the block device (~100 ms of a first exec under TCG) */
		char *argv[] = { (char *)"sh", (char *)"-c", (char *)"true; /bin/true", NULL };
		struct proto_exec ex = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
		agent_request(q, PROTO_EXEC, &ex, STEP_TIMEOUT_MS, template_warmed);
		return;
	}
	if (q->probe) { /* it only wanted to know */
		vm_op_finish(q->vm, VM_RUNNING, 0, NULL);
		return;
	}
	configure(q, true, create_done);
}

static void boot_qmp_ready(struct qvm *q)
{
	agent_connect(q, q->token, q->probe ? PROBE_TIMEOUT_MS : BOOT_TIMEOUT_MS,
		      boot_agent_ready);
}

static void boot_disk_ready(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	struct err se = ERR_INIT;
	if (vm->op != OP_CREATE)
		return; /* destroyed meanwhile */
	if (rc < 0) {
		step_fail(q, -rc, "%s", err_str(e));
		return;
	}
	meta_write(vm);
	char *disk = vpath(vm, "disk.ext4");
	give_to_vm_user(vm, disk, -1);
	free(disk);
	if (spawn_qemu(q, false, &se) < 0) {
		step_fail(q, se.code, "%s", err_str(&se));
		return;
	}
	qmp_connect(q, boot_qmp_ready);
}

static int prepare_dir(struct vm *vm, struct err *e)
{
	struct qeng *qe = QE(vm->eng);
	if (strlen(vm->dir) + sizeof("/agent.sock") > 107)
		return err_set(e, ENAMETOOLONG, "sandbox directory '%s' is too long for its sockets",
			       vm->dir);
	int r = mkdir_p(vm->dir, 0700);
	if (r < 0)
		return err_set(e, -r, "cannot create '%s': %s", vm->dir, strerror(-r));
	if (qe->drop_user && chown(vm->dir, qe->vm_uid, qe->vm_gid) < 0)
		return err_set(e, errno, "chown '%s': %s", vm->dir, strerror(errno));
	return 0;
}

static void boot_begin(struct vm *vm)
{
	struct qvm *q = QV(vm);
	char *src, *dst = vpath(vm, "disk.ext4");
	struct buf name = BUF_INIT;
	buf_addf(&name, "rootfs-%s.ext4", vm->spec.image);
	src = image_path(vm->eng, name.data);
	snprintf(vm->origin, sizeof(vm->origin), "boot");
	if (access(src, R_OK) < 0)
		step_fail(q, ENOENT, "no image '%s' (%s is missing; run 'make images')",
			  vm->spec.image, src);
	else
		fileop_copy(src, dst, boot_disk_ready, vm);
	free(src);
	free(dst);
	buf_release(&name);
}

static struct qvm *qvm_new(struct vm *vm, const char *accel)
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
	watch_init(&q->agent_w, on_agent_io, q);
	task_init(&q->agent_flush, agent_flush_task, q);
	vm->be = q;
	return q;
}

static void tmpl_get(struct vm *vm);
static struct tmpl *tmpl_obtain(struct vm *vm, const char *key);

static void q_create(struct vm *vm)
{
	struct qeng *qe = QE(vm->eng);
	struct qvm *q = qvm_new(vm, qe->accel);
	q->t0_ns = now_ns();
	struct err e = ERR_INIT;
	random_hex(q->token, 32);
	if (prepare_dir(vm, &e) < 0) {
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
	if (vm->eng->cfg.no_templates || vm->hidden)
		boot_begin(vm);
	else
		tmpl_get(vm);
}

/* ---- restore (clone and start) ------------------------------------------------------ */

static void restore_agent_ready(struct qvm *q);

static void restore_cont(struct qvm *q)
{
	STEP(q, "vCPUs running");
	/* a clone's guest still knows the template's token */
	const char *token = q->tmpl ? q->tmpl->token : q->token;
	agent_connect(q, token, RESTORE_TIMEOUT_MS, restore_agent_ready);
}

static void restore_migrated(struct qvm *q)
{
	STEP(q, "snapshot loaded");
	close_state_fd(q);
	qcmd(q, "cont", NULL, -1, restore_cont);
}

static void restore_migrate_timeout(struct qvm *q)
{
	q->on_migrated = NULL;
	step_fail(q, ETIMEDOUT, "restoring the snapshot timed out (see %s/qemu.log)", q->vm->dir);
}

static void restore_incoming_sent(struct qvm *q)
{
	if (q->migrated) { /* the event came before the reply */
		restore_migrated(q);
		return;
	}
	q->on_migrated = restore_migrated;
	after(q, RESTORE_TIMEOUT_MS, restore_migrate_timeout);
}

static void restore_getfd_done(struct qvm *q)
{
	qcmd(q, "migrate-incoming", args_str("uri", "fd:snapshot"), -1, restore_incoming_sent);
}

static void restore_caps_done(struct qvm *q)
{
	qcmd(q, "getfd", args_str("fdname", "snapshot"), q->state_fd, restore_getfd_done);
}

static void restore_qmp_ready(struct qvm *q)
{
	STEP(q, "QMP connected");
	q->migrated = false;
	qcmd(q, "migrate-set-capabilities", migrate_caps(), -1, restore_caps_done);
}

/* Rename path to `aside` now and let the worker remove it: freeing a big
 * file takes milliseconds (tmpfs pages; ext4 with discard), and the name is
 * free at once for a new file (a start right after a stop; a stop right
 * after a start, whose device state the loop renames into place itself,
 * not through the worker). */
static void remove_aside(const char *path, const char *aside)
{
	if (rename(path, aside) == 0)
		fileop_remove_tree(aside, NULL, NULL);
	else if (errno != ENOENT)
		unlink(path);
}

/* The sandbox's file `name` is stale: away with it. */
static void discard_file(struct vm *vm, const char *name)
{
	char *path = vpath(vm, name);
	struct buf aside = BUF_INIT;
	buf_addf(&aside, "%s.stale", path);
	remove_aside(path, aside.data);
	buf_release(&aside);
	free(path);
}

static void start_done(struct qvm *q)
{
	struct vm *vm = q->vm;
	STEP(q, "configured");
	if (q->agent_rc < 0) {
		step_fail(q, q->agent_err.code, "resetting the guest clock: %s", err_str(&q->agent_err));
		return;
	}
	q->paused = false;
	vm->state = VM_RUNNING;
	meta_write(vm);
	/* the cold snapshot is stale now that the guest runs again (vm.json
	 * no longer trusts it): remove it in the background, so the next stop
	 * does not pay for freeing it when it writes the new one (an unlink on
	 * ext4 mounted with discard cost ~50 ms of a stop here) */
	discard_file(vm, "mem");
	discard_file(vm, "state");
	/* stopped clones left: their template's memory again, for the next
	 * start (not at once: see "memory spares") */
	struct tmpl *t = q->base_key ? tmpl_find(vm->eng, q->base_key) : NULL;
	vm_op_finish(vm, VM_RUNNING, 0, NULL);
	if (t)
		spare_want(t, SPARE_DELAY_MS);
}

static void pool_warmed(struct qvm *q);

static void pool_exec_done(struct qvm *q)
{
	if (q->agent_rc < 0) {
		step_fail(q, q->agent_err.code, "warming up: %s", err_str(&q->agent_err));
		return;
	}
	configure(q, false, pool_warmed);
}

static void restore_agent_ready(struct qvm *q)
{
	STEP(q, "agent answered");
	if (q->pool_of) {
		/* translate the exec and configure paths once, now */
		char *argv[] = { (char *)"true", NULL };
		struct proto_exec ex = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
		q->tmpl = NULL;
		agent_request(q, PROTO_EXEC, &ex, STEP_TIMEOUT_MS, pool_exec_done);
		return;
	}
	if (q->vm->op == OP_CREATE) {
		/* a clone: its own token, hostname, env, clock and random seed */
		q->tmpl = NULL;
		configure(q, true, create_done);
	} else {
		configure(q, false, start_done);
	}
}

/* A start runs two things at once: QEMU starting (it maps the memory
 * file, empty) and the file worker filling that file with the template's
 * memory and the delta. The restore begins when both are done. A clone
 * does the same with the template's memory alone. */
static void start_both_ready(struct qvm *q)
{
	if (q->start_qmp_up && q->start_mem_ready)
		restore_qmp_ready(q);
}

static void start_qmp_up(struct qvm *q)
{
	STEP(q, "QEMU up");
	q->start_qmp_up = true;
	start_both_ready(q);
}

static void mem_filled(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	if (vm->op != OP_START && vm->op != OP_CREATE)
		return;
	STEP(q, "memory loaded");
	if (rc < 0) {
		step_fail(q, -rc, "loading the guest memory: %s", err_str(e));
		return;
	}
	q->start_mem_ready = true;
	start_both_ready(q);
}

/* Spawn QEMU -incoming on the device state `state` while the file worker
 * fills the memory file from base (+ delta). */
static void restore_overlapped(struct qvm *q, const char *state, const char *base,
			       const char *delta)
{
	struct vm *vm = q->vm;
	struct err e = ERR_INIT;
	q->start_qmp_up = q->start_mem_ready = false;
	/* a clone or a start of one: its template's memory may be waiting
	 * already (a pool clone is made in the background: it leaves the
	 * spare to a create or start someone waits for) */
	bool spare = base && !q->pool_of && spare_take(q);
	if ((q->state_fd = open(state, O_RDONLY | O_CLOEXEC)) < 0) {
		step_fail(q, errno, "cannot open the snapshot '%s': %s", state, strerror(errno));
		return;
	}
	if (spare && delta) {
		fileop_patch_delta(delta, q->hot_mem, mem_filled, vm);
	} else if (spare) {
		q->start_mem_ready = true; /* a clone of the spare as it is */
		STEP(q, "memory loaded");
	} else if (make_mem_file(vm->eng, q->hot_mem, vm->spec.memory_mb, &e) == 0) {
		fileop_fill_delta(base, delta, q->hot_mem, mem_filled, vm);
	} else {
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
	if (spawn_qemu(q, true, &e) < 0)
		step_fail(q, e.code, "%s", err_str(&e));
	else
		qmp_connect(q, start_qmp_up);
}

static void q_start(struct vm *vm)
{
	struct qvm *q = QV(vm);
	char *mem = vpath(vm, "mem"), *base = base_mem(q), *state = vpath(vm, "state");
	q->t0_ns = now_ns();
	q->tmpl = NULL;
	if (base && access(base, R_OK) < 0) {
		step_fail(q, ENOENT, "the template it was cloned from is gone ('%s')", base);
	} else {
		/* once the guest runs, the disk moves on from the snapshot:
		 * vm.json must not say "stopped" any more, even after a crash */
		meta_record(vm, true);
		restore_overlapped(q, state, base, mem);
	}
	free(mem);
	free(base);
	free(state);
}

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
static void inputs_hash(struct engine *eng, const char *image, char *out /* 17 */)
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
	for (int kvm = 0; kvm <= 1; kvm++) {
		char *cmdline = kernel_cmdline(eng, kvm, true);
		crypto_generichash_update(&h, (const uint8_t *)cmdline, strlen(cmdline) + 1);
		free(cmdline);
	}
	crypto_generichash_final(&h, d, sizeof(d));
	sodium_bin2hex(out, 17, d, sizeof(d));
}

static char *tmpl_key(struct vm *vm)
{
	char hash[17];
	struct buf k = BUF_INIT;
	inputs_hash(vm->eng, vm->spec.image, hash);
	buf_addf(&k, "%s-%uc-%um-%s-%s", vm->spec.image, vm->spec.cpus, vm->spec.memory_mb,
		 QE(vm->eng)->accel, hash);
	return buf_detach(&k, NULL);
}

static struct tmpl *tmpl_find(struct engine *eng, const char *key)
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
	if (n != 64)
		return false;
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
		QV(w->vm)->waiting = NULL;
		clone_have_template(w->vm, t);
		free(w);
	}
}

static void tmpl_unwait(struct qvm *q)
{
	struct tmpl *t = q->waiting;
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
	q->waiting = NULL;
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
	int fd = open(p.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write_all(fd, q->token, 64) == 0 && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	buf_release(&p);
	if (!ok || rename(b->dir, t->dir) < 0) {
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
	struct vm *b = vm_new(eng, id.data, &spec, VM_CREATING, true);
	buf_release(&id);
	log_info("building template '%s' (one cold boot)", t->key);
	t->state = TMPL_BUILDING;
	fileop_remove_tree_now(b->dir, NULL); /* a leftover from a crash */
	b->op = OP_CREATE;
	b->done = tmpl_booted;
	b->done_arg = t;
	struct qvm *q = qvm_new(b, QE(eng)->accel);
	struct err e = ERR_INIT;
	q->template_build = true;
	random_hex(q->token, 32);
	if (prepare_dir(b, &e) < 0)
		step_fail(q, e.code, "%s", err_str(&e));
	else
		boot_begin(b);
}

/* The template `key` of vm's shape: known, or loaded from disk (state
 * TMPL_READY), or new (TMPL_FAILED until a build). */
static struct tmpl *tmpl_obtain(struct vm *vm, const char *key)
{
	struct engine *eng = vm->eng;
	struct qeng *qe = QE(eng);
	struct tmpl *t = tmpl_find(eng, key);
	if (t)
		return t;
	t = xcalloc(1, sizeof(*t));
	t->key = xstrdup(key);
	t->dir = epath(eng, "templates", key);
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

static void tmpl_get(struct vm *vm)
{
	char *key = tmpl_key(vm);
	struct tmpl *t = tmpl_obtain(vm, key);
	free(key);
	if (t->state == TMPL_READY) {
		if (t->nready) {
			pool_claim(vm, t);
		} else {
			clone_have_template(vm, t);
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
	QV(vm)->waiting = t;
	if (t->state == TMPL_FAILED)
		tmpl_build(vm->eng, t, &vm->spec);
}

/* ---- pool ---------------------------------------------------------------------------- */

static void pool_warmed_paused(struct qvm *q)
{
	q->paused = true;
	vm_op_finish(q->vm, VM_PAUSED, 0, NULL);
}

static void pool_warmed(struct qvm *q)
{
	if (q->agent_rc < 0) {
		step_fail(q, q->agent_err.code, "warming up: %s", err_str(&q->agent_err));
		return;
	}
	STEP(q, "warmed up");
	qcmd(q, "stop", NULL, -1, pool_warmed_paused);
}

static void pool_built(struct vm *p, int rc, const struct err *e, void *arg)
{
	struct tmpl *t = arg;
	t->building--;
	t->build = NULL;
	if (rc < 0) {
		log_warn("pool for '%s': %s", t->key, err_str(e));
		return; /* a failed create removed itself; the next claim refills */
	}
	if (t->nready < POOL_MAX)
		t->ready[t->nready++] = p;
	log_debug("pool for '%s': %d ready", t->key, t->nready);
}

static void pool_build(struct tmpl *t)
{
	static unsigned seq;
	struct engine *eng = t->eng;
	char id[64];
	snprintf(id, sizeof(id), "pool-%u-%u", (unsigned)getpid(), ++seq);
	struct vm_spec spec = { .id = id, .image = t->image, .cpus = t->cpus,
				.memory_mb = t->memory_mb, .hostname = "bhatti" };
	struct vm *p = vm_new(eng, id, &spec, VM_CREATING, true);
	free(p->dir);
	p->dir = epath(eng, "pool", id);
	p->op = OP_CREATE;
	p->done = pool_built;
	p->done_arg = t;
	struct qvm *q = qvm_new(p, QE(eng)->accel);
	struct err e = ERR_INIT;
	q->pool_of = t;
	q->t0_ns = now_ns();
	memcpy(q->token, t->token, sizeof(q->token)); /* until a claim */
	t->building++;
	t->build = p;
	if (prepare_dir(p, &e) < 0)
		step_fail(q, e.code, "%s", err_str(&e));
	else
		clone_have_template(p, t);
}

static void pool_fill(struct tmpl *t)
{
	int want = t->eng->cfg.pool_size;
	if (QE(t->eng)->closing)
		return;
	if (t->state != TMPL_READY || want > POOL_MAX)
		want = t->state == TMPL_READY ? POOL_MAX : 0;
	/* one at a time: a refill must not starve the sandboxes in use */
	if (t->nready + t->building < want && t->building == 0)
		pool_build(t);
}

static void pool_fill_timer(struct timer *tm)
{
	struct tmpl *t = tm->data;
	pool_fill(t);
	if (t->nready + t->building < t->eng->cfg.pool_size)
		timer_arm(&t->refill, 1000);
}

static void pool_claim_cont(struct qvm *q)
{
	q->paused = false;
	STEP(q, "vCPUs running");
	configure(q, true, create_done);
}

/* Give vm (a create that just began) the runtime of a pooled clone: the
 * QEMU, its QMP and agent connections, its files renamed. */
static void pool_claim(struct vm *vm, struct tmpl *t)
{
	struct vm *p = t->ready[--t->nready];
	struct qvm *q = QV(p), *fresh = QV(vm);
	if (rename(p->dir, vm->dir) < 0 || rename(q->hot_mem, fresh->hot_mem) < 0) {
		log_warn("pool for '%s': cannot take a clone: %s", t->key, strerror(errno));
		clone_have_template(vm, t);
		return;
	}
	free(q->hot_mem);
	q->hot_mem = fresh->hot_mem;
	fresh->hot_mem = NULL;
	vm->be = q;
	q->vm = vm;
	vm->agent = p->agent;
	p->agent = NULL;
	p->be = NULL;
	q->pool_of = NULL;
	q->t0_ns = now_ns();
	free(q->base_key);
	q->base_key = xstrdup(t->key);
	snprintf(vm->origin, sizeof(vm->origin), "clone");
	random_hex(q->token, 32);
	fresh->vm = vm;
	q_vm_free_state(fresh);
	vm_free_now(p);
	STEP(q, "taken from the pool");
	qcmd(q, "cont", NULL, -1, pool_claim_cont);
	timer_arm(&t->refill, 1000);
}

static void pool_kill_now(struct vm *p)
{
	struct qvm *q = QV(p);
	if (q) {
		cleanup_runtime(q);
		if (q->pid > 0 && q->pidw.fd >= 0) {
			syscall(SYS_pidfd_send_signal, q->pidw.fd, SIGKILL, NULL, 0);
			if (q->our_child)
				waitpid(q->pid, NULL, 0);
		}
		unlink(q->hot_mem);
	}
	fileop_remove_tree_now(p->dir, NULL);
	vm_free_now(p);
}

/* Kill and remove every pool clone (engine shutdown; q_fini has let a
 * clone being built finish first). */
static void pool_drain(struct tmpl *t)
{
	timer_cancel(&t->refill);
	for (int i = 0; i < t->nready; i++)
		pool_kill_now(t->ready[i]);
	t->nready = 0;
}

/* ---- memory spares ------------------------------------------------------------------ */

/* A clone's RAM on tmpfs starts as a copy of its template's memory, and a
 * start of a stopped clone rebuilds it as that copy plus the clone's delta.
 * Copying the template's part (~70 MB for `tiny`, ~55 ms here) was the
 * longest step before the restore: QEMU is up in ~35 ms. So one copy of a
 * template's memory waits on tmpfs (hot_dir/spare-<key>.mem) while it is
 * likely to be wanted:
 *
 *   - while the template has stopped clones (their next start), and
 *   - for spare_linger_ms (10 minutes) after a create last cloned it
 *     (scripts and agents create sandboxes in bursts: create, use,
 *     destroy, again).
 *
 * A create renames the spare to its own memory file and restores over it
 * as it is; a start writes only its delta over it. A new copy is made once
 * the create is done, or SPARE_DELAY_MS after a start or a stop (not at
 * once: a start that follows a stop, as in a script's stop && start, would
 * queue its memory load behind the copy: the worker runs jobs in order).
 * Pool clones are made in the background and leave the spare alone.
 * Costs the template's resident memory once per template in use; the
 * spare goes when the reasons do. Leftovers after a crash end in .mem and
 * are removed by the next engine's adoption like any memory no QEMU owns.
 *
 *   no spare ──(wanted: timer)──▶ filling ──(copied, still wanted)──▶ ready
 *      ▲                                        │ (not wanted: removed)   │
 *      └───────────── taken by a create or start, or dropped ◀────────────┘
 *                     (timer at the linger's end, destroy, shutdown)
 */
static char *spare_path(struct tmpl *t, bool part)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/spare-%s%s.mem", QE(t->eng)->hot_dir, t->key, part ? ".part" : "");
	return buf_detach(&b, NULL);
}

static bool tmpl_has_stopped_clone(struct tmpl *t)
{
	for (struct vm *vm = t->eng->vms; vm; vm = vm->next) {
		struct qvm *q = QV(vm);
		if (vm->state == VM_STOPPED && q && q->base_key && strcmp(q->base_key, t->key) == 0)
			return true;
	}
	return false;
}

static bool spare_lingers(struct tmpl *t)
{
	return t->cloned_ms && now_ms() < t->cloned_ms + t->eng->cfg.spare_linger_ms;
}

static bool spare_wanted(struct tmpl *t)
{
	return !QE(t->eng)->closing && t->state == TMPL_READY &&
	       (spare_lingers(t) || tmpl_has_stopped_clone(t));
}

static void spare_want(struct tmpl *t, uint64_t delay_ms)
{
	if (t->spare || t->spare_filling || !spare_wanted(t))
		return;
	timer_arm(&t->spare_timer, delay_ms);
}

/* While only the linger keeps a ready spare, look again when it ends. */
static void spare_arm_linger_end(struct tmpl *t)
{
	if (t->spare && spare_lingers(t))
		timer_arm(&t->spare_timer, t->cloned_ms + t->eng->cfg.spare_linger_ms - now_ms() + 1);
}

static void spare_filled(int rc, const struct err *e, void *arg)
{
	struct tmpl *t = arg;
	char *part = spare_path(t, true), *path = spare_path(t, false);
	t->spare_filling = false;
	if (rc < 0) {
		log_warn("template '%s': copying its memory for the next clone: %s", t->key,
			 err_str(e));
		unlink(part);
	} else if (!spare_wanted(t) || rename(part, path) < 0) {
		unlink(part);
	} else {
		t->spare = path;
		path = NULL;
		spare_arm_linger_end(t);
	}
	free(part);
	free(path);
}

/* At engine shutdown, or when it is no longer wanted. */
static void spare_drop(struct tmpl *t)
{
	timer_cancel(&t->spare_timer);
	if (t->spare)
		unlink(t->spare);
	free(t->spare);
	t->spare = NULL;
}

static void spare_timer_fired(struct timer *tm)
{
	struct tmpl *t = tm->data;
	if (!spare_wanted(t)) {
		spare_drop(t);
		return;
	}
	if (t->spare) {
		spare_arm_linger_end(t);
		return;
	}
	if (t->spare_filling)
		return;
	char *part = spare_path(t, true);
	struct buf base = BUF_INIT;
	struct err e = ERR_INIT;
	buf_addf(&base, "%s/mem", t->dir);
	if (make_mem_file(t->eng, part, t->memory_mb, &e) < 0) {
		log_warn("template '%s': %s", t->key, err_str(&e));
		unlink(part);
	} else {
		t->spare_filling = true;
		fileop_fill_delta(base.data, NULL, part, spare_filled, t);
	}
	buf_release(&base);
	free(part);
}

/* Move the spare of q's template (if one is ready) to q's memory file. */
static bool spare_take(struct qvm *q)
{
	struct tmpl *t = q->base_key ? tmpl_find(q->vm->eng, q->base_key) : NULL;
	if (!t || !t->spare)
		return false;
	timer_cancel(&t->spare_timer);
	bool ok = rename(t->spare, q->hot_mem) == 0;
	if (!ok)
		log_warn("vm '%s': rename '%s': %s", q->vm->id, t->spare, strerror(errno));
	free(t->spare);
	t->spare = NULL;
	return ok;
}

/* A clone of t went away: is the spare still wanted? */
static void spare_recheck(struct qvm *q)
{
	struct tmpl *t = q->base_key ? tmpl_find(q->vm->eng, q->base_key) : NULL;
	if (t && !spare_wanted(t))
		spare_drop(t);
}

/* ---- clone -------------------------------------------------------------------------- */

static void clone_disk_copied(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	if (vm->op != OP_CREATE)
		return;
	STEP(q, "disk copied");
	if (rc < 0) {
		step_fail(q, -rc, "%s", err_str(e));
		return;
	}
	meta_write(vm);
	char *disk = vpath(vm, "disk.ext4");
	give_to_vm_user(vm, disk, -1);
	free(disk);
	struct buf state = BUF_INIT, base = BUF_INIT;
	buf_addf(&state, "%s/state", q->tmpl->dir);
	buf_addf(&base, "%s/mem", q->tmpl->dir);
	restore_overlapped(q, state.data, base.data, NULL);
	buf_release(&state);
	buf_release(&base);
}

static void clone_have_template(struct vm *vm, struct tmpl *t)
{
	struct qvm *q = QV(vm);
	if (vm->op != OP_CREATE)
		return;
	if (t->state != TMPL_READY) {
		step_fail(q, t->code, "building the '%s' template failed: %s", vm->spec.image, t->error);
		return;
	}
	q->tmpl = t;
	free(q->base_key);
	q->base_key = xstrdup(t->key);
	if (!q->pool_of)
		t->cloned_ms = now_ms(); /* keeps a spare for the next create */
	snprintf(vm->origin, sizeof(vm->origin), "clone");
	/* QEMU opens the disk when it starts: copy it first (it is small and
	 * a reflink where it can be), then memory and QEMU in parallel */
	struct buf src = BUF_INIT;
	char *dst = vpath(vm, "disk.ext4");
	buf_addf(&src, "%s/disk.ext4", t->dir);
	fileop_copy(src.data, dst, clone_disk_copied, vm);
	buf_release(&src);
	free(dst);
}

/* ---- pause / resume ------------------------------------------------------------------ */

static void paused(struct qvm *q)
{
	q->paused = true;
	q->vm->state = VM_PAUSED;
	meta_write(q->vm);
	vm_op_finish(q->vm, VM_PAUSED, 0, NULL);
}

static void resumed(struct qvm *q)
{
	q->paused = false;
	q->vm->state = VM_RUNNING;
	meta_write(q->vm);
	vm_op_finish(q->vm, VM_RUNNING, 0, NULL);
}

static void q_pause(struct vm *vm)
{
	qcmd(QV(vm), "stop", NULL, -1, paused);
}

static void q_resume(struct vm *vm)
{
	qcmd(QV(vm), "cont", NULL, -1, resumed);
}

/* ---- stop (cold snapshot) ---------------------------------------------------------------- */

static void stop_flushed(int rc, const struct err *e, void *arg)
{
	char *vmid = arg;
	if (rc < 0)
		log_warn("sandbox '%s': flushing its memory: %s", vmid, err_str(e));
	free(vmid);
}

/* The guest's memory is on disk: free the tmpfs copy; STOPPED. Then, in
 * the background and in this order: the snapshot is flushed to disk and
 * dropped from the page cache, and only then does vm.json say "stopped". */
static void stop_mem_saved(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	STEP(q, "memory saved");
	if (rc < 0) {
		/* the tmpfs copy is still whole: the snapshot is not lost yet */
		struct err err = ERR_INIT;
		err_set(&err, -rc, "saving the guest memory: %s", err_str(e));
		vm->state = VM_FAILED;
		meta_write(vm);
		vm_op_finish(vm, VM_FAILED, -err.code, &err);
		return;
	}
	/* freeing ~100 MB of tmpfs pages takes ~10 ms (the aside name ends in
	 * .mem: a crash leftover is removed at the next adoption) */
	static unsigned trash_seq;
	struct buf trash = BUF_INIT;
	buf_addf(&trash, "%s/%s-freed-%u.mem", QE(vm->eng)->hot_dir, vm->id, ++trash_seq);
	remove_aside(q->hot_mem, trash.data);
	buf_release(&trash);
	q->paused = false;
	vm->state = VM_STOPPED;
	/* a template keeps its pages (clones read them soon) and its files
	 * are renamed into place, durably, by tmpl_build_stopped */
	if (!q->template_build) {
		char *mem = vpath(vm, "mem"), *state = vpath(vm, "state");
		/* the save above was the last job of this VM in the worker */
		meta_write_now(vm);
		fileop_flush_drop(mem, stop_flushed, xstrdup(vm->id));
		fileop_flush_drop(state, stop_flushed, xstrdup(vm->id));
		meta_record(vm, true);
		free(mem);
		free(state);
	}
	/* (a sandbox adopted after a restart names a template this engine
	 * has not used yet) */
	struct tmpl *t = q->base_key && !q->template_build ? tmpl_obtain(vm, q->base_key) : NULL;
	vm_op_finish(vm, VM_STOPPED, 0, NULL);
	/* not at once: a start right after this stop would queue its memory
	 * load behind the copy (the worker runs jobs in order) */
	if (t)
		spare_want(t, SPARE_DELAY_MS);
}

static void stop_exited(struct qvm *q)
{
	char *mem = vpath(q->vm, "mem"), *base = base_mem(q);
	STEP(q, "QEMU exited");
	fileop_save_delta(q->hot_mem, base, mem, stop_mem_saved, q->vm);
	free(mem);
	free(base);
}

static void stop_migrated(struct qvm *q)
{
	STEP(q, "snapshot saved");
	char *part = vpath(q->vm, "state.part"), *state = vpath(q->vm, "state");
	close_state_fd(q);
	if (rename(part, state) < 0) {
		step_fail(q, errno, "cannot store the snapshot: %s", strerror(errno));
	} else {
		q->on_exit = stop_exited;
		q->expect_exit = true;
		qcmd(q, "quit", NULL, -1, NULL);
	}
	free(part);
	free(state);
}

static void stop_migrate_timeout(struct qvm *q)
{
	q->on_migrated = NULL;
	step_fail(q, ETIMEDOUT, "saving the snapshot timed out");
}

static void stop_migrate_sent(struct qvm *q)
{
	if (q->migrated) {
		stop_migrated(q);
		return;
	}
	q->on_migrated = stop_migrated;
	after(q, STEP_TIMEOUT_MS, stop_migrate_timeout);
}

static void stop_getfd_done(struct qvm *q)
{
	qcmd(q, "migrate", args_str("uri", "fd:snapshot"), -1, stop_migrate_sent);
}

static void stop_caps_done(struct qvm *q)
{
	char *part = vpath(q->vm, "state.part");
	q->state_fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (q->state_fd < 0)
		step_fail(q, errno, "cannot create '%s': %s", part, strerror(errno));
	else
		qcmd(q, "getfd", args_str("fdname", "snapshot"), q->state_fd, stop_getfd_done);
	free(part);
}

static void stop_cpus_stopped(struct qvm *q)
{
	STEP(q, "vCPUs stopped");
	q->migrated = false;
	/* the agent session ends here: a restore starts a new one */
	agent_close(q);
	qcmd(q, "migrate-set-capabilities", migrate_caps(), -1, stop_caps_done);
}

static void stop_synced(struct qvm *q)
{
	STEP(q, "guest synced");
	if (q->agent_rc < 0 && !q->paused && !q->template_build)
		log_warn("vm '%s': sync in the guest: %s", q->vm->id, err_str(&q->agent_err));
	qcmd(q, "stop", NULL, -1, stop_cpus_stopped);
}

static void q_stop(struct vm *vm)
{
	struct qvm *q = QV(vm);
	q->t0_ns = now_ns();
	/* a paused guest cannot answer, and a template has nothing to sync */
	if (!q->paused && !q->template_build && vm->agent && ac_ready(vm->agent))
		agent_request(q, PROTO_SYNC, NULL, SYNC_TIMEOUT_MS, stop_synced);
	else
		stop_synced(q);
}

/* ---- destroy ------------------------------------------------------------------------------ */

static void destroy_removed(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	if (rc < 0)
		log_warn("sandbox '%s': removing its files: %s", vm->id, err_str(e));
	vm_op_finish(vm, VM_DESTROYING, 0, NULL);
}

static void destroy_exited(struct qvm *q)
{
	unlink(q->hot_mem);
	spare_recheck(q);
	fileop_remove_tree(q->vm->dir, destroy_removed, q->vm);
}

static void q_destroy(struct vm *vm)
{
	struct qvm *q = QV(vm);
	if (!q)
		q = qvm_new(vm, QE(vm->eng)->accel);
	cleanup_runtime(q);
	tmpl_unwait(q);
	q->tmpl = NULL;
	if (q->pid > 0 && q->pidw.fd >= 0) {
		q->on_exit = destroy_exited;
		kill_qemu(q);
	} else {
		destroy_exited(q);
	}
}

/* Free a qvm that owns no runtime (a create's fresh state, replaced by a
 * pool clone's). */
static void q_vm_free_state(struct qvm *q)
{
	timer_cancel(&q->timer);
	tmpl_unwait(q);
	free(q->hot_mem);
	free(q->base_key);
	free(q);
}

static void q_vm_free(struct vm *vm)
{
	struct qvm *q = QV(vm);
	if (!q)
		return;
	cleanup_runtime(q);
	tmpl_unwait(q);
	watch_close(&q->pidw);
	/* QEMU keeps running (and its memory file): a restarted engine adopts it */
	free(q->hot_mem);
	free(q->base_key);
	free(q);
	vm->be = NULL;
}

const char *engine_mem_dir(const struct engine *eng)
{
	return QE((struct engine *)eng)->hot_dir;
}

int vm_pid(const struct vm *vm)
{
	const struct qvm *q = vm->be;
	return q ? (int)q->pid : 0;
}

/* ---- adopt ------------------------------------------------------------------------------ */

struct adopt_ctx {
	bool over;
};

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
	const char *st = jstr(ret, "status", "");
	if (strcmp(st, "paused") == 0) {
		vm->state = VM_PAUSED;
	} else if (strcmp(st, "running") == 0) {
		vm->state = VM_RUNNING;
		if (agent_open(q, q->token, &ae) == 0)
			q->on_hello = agent_reconnected;
	} else {
		vm_fail(vm, "QEMU is in state '%s'", st);
	}
	log_info("vm '%s': adopted (%s)", vm->id, vm_state_name(vm->state));
}

static void adopt_one(struct engine *eng, const char *id)
{
	char *dir = epath(eng, "sandboxes", id);
	cJSON *m = meta_read(dir);
	struct vm *vm = vm_new(eng, id, NULL, VM_FAILED, false);
	struct qvm *q = qvm_new(vm, jstr(m, "accel", QE(eng)->accel));
	struct err e = ERR_INIT;
	free(dir);
	if (!m) {
		snprintf(vm->error, sizeof(vm->error), "incomplete sandbox (no vm.json): destroy it");
		vm->unfinished = true;
		char *qmp = vpath(vm, "qmp.sock");
		pid_t pid = qemu_by_socket(qmp);
		free(qmp);
		if (pid > 0 && (q->pid_start = proc_starttime(pid)) > 0) {
			q->pid = pid;
			q->our_child = false;
			watch_pid(q, &e);
		}
		return;
	}
	free((char *)vm->spec.hostname);
	free((char *)vm->spec.image);
	vm->spec.hostname = xstrdup(jstr(m, "hostname", id));
	vm->spec.image = xstrdup(jstr(m, "image", "tiny"));
	vm->spec.cpus = (unsigned)jnum(m, "cpus");
	vm->spec.memory_mb = (unsigned)jnum(m, "memory_mb");
	snprintf(vm->origin, sizeof(vm->origin), "%s", jstr(m, "origin", "boot"));
	snprintf(q->token, sizeof(q->token), "%s", jstr(m, "token", ""));
	if (jstr(m, "template", NULL))
		q->base_key = xstrdup(jstr(m, "template", ""));
	snprintf(vm->error, sizeof(vm->error), "%s", jstr(m, "error", ""));
	const char *state = jstr(m, "state", "");
	vm->unfinished = strcmp(state, vm_state_name(VM_CREATING)) == 0;
	pid_t pid = (pid_t)jnum(m, "pid");
	uint64_t start = (uint64_t)jnum(m, "pid_start");
	bool alive = pid > 0 && start && proc_starttime(pid) == start;
	if (!alive && vm->unfinished) {
		char *qmp = vpath(vm, "qmp.sock");
		if ((pid = qemu_by_socket(qmp)) > 0 && (start = proc_starttime(pid)) > 0)
			alive = true;
		free(qmp);
	}

	if (alive && (strcmp(state, "running") == 0 || strcmp(state, "paused") == 0)) {
		char *qmp = vpath(vm, "qmp.sock");
		int fd;
		q->pid = pid;
		q->pid_start = start;
		q->our_child = false;
		if (watch_pid(q, &e) < 0 || unix_connect(qmp, &fd) < 0) {
			snprintf(vm->error, sizeof(vm->error), "cannot reach QEMU (pid %d)", (int)pid);
		} else {
			vm->state = VM_STARTING; /* until QEMU answers */
			q->qmp = qmp_new(fd, on_qmp_event, on_qmp_closed, q);
			qmp_cmd(q->qmp, "query-status", NULL, -1, adopt_status, q);
		}
		free(qmp);
	} else if (strcmp(state, "stopped") == 0) {
		char *mem = vpath(vm, "mem"), *snap = vpath(vm, "state");
		char now[64];
		boot_id(now);
		const cJSON *unflushed = cJSON_GetObjectItemCaseSensitive(m, "unflushed");
		if (cJSON_IsTrue(unflushed) && strcmp(jstr(m, "boot_id", ""), now) != 0)
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
		watch_pid(q, &e);
	} else if (!vm->error[0]) {
		snprintf(vm->error, sizeof(vm->error), "QEMU exited while the engine was away");
	}
	if (vm->state == VM_FAILED)
		log_warn("vm '%s': %s", id, vm->error);
	cJSON_Delete(m);
}

static int q_adopt(struct engine *eng, struct err *e)
{
	char *dir = epath(eng, "sandboxes", NULL);
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

/* ---- init: directories, user, accelerator -------------------------------------------------- */

/* Is template `key` the base of some sandbox's cold snapshot? */
static bool template_in_use(struct engine *eng, const char *key)
{
	char *dir = epath(eng, "sandboxes", NULL);
	DIR *d = opendir(dir);
	struct dirent *de;
	bool used = false;
	while (d && !used && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s", dir, de->d_name);
		cJSON *m = meta_read(p.data);
		used = m && strcmp(jstr(m, "template", ""), key) == 0;
		cJSON_Delete(m);
		buf_release(&p);
	}
	if (d)
		closedir(d);
	free(dir);
	return used;
}

/* Is pid the QEMU of some sandbox (its vm.json says so)? A clone taken
 * from the pool keeps the pool path in its command line. */
static bool pid_of_a_sandbox(struct engine *eng, pid_t pid)
{
	char *dir = epath(eng, "sandboxes", NULL);
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;
	while (d && !found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct buf sb = BUF_INIT;
		buf_addf(&sb, "%s/%s", dir, de->d_name);
		cJSON *m = meta_read(sb.data);
		found = m && (pid_t)jnum(m, "pid") == pid;
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
static void kill_orphans_under(struct engine *eng, const char *prefix, const char *what)
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

/* What an earlier engine's pool left: its QEMUs and directories. */
static void pool_sweep(struct engine *eng)
{
	char *dir = epath(eng, "pool", NULL);
	struct buf needle = BUF_INIT;
	buf_addf(&needle, "%s/", dir);
	kill_orphans_under(eng, needle.data, "a pool");
	fileop_remove_tree_now(dir, NULL);
	buf_release(&needle);
	free(dir);
}

static void remove_stale_templates(struct engine *eng)
{
	char *dir = epath(eng, "templates", NULL);
	/* a template build a crash interrupted (templates/.build-<key>/) may
	 * still be booting: kill it before its directory goes */
	struct buf needle = BUF_INIT;
	buf_addf(&needle, "%s/.", dir);
	kill_orphans_under(eng, needle.data, "a template build");
	buf_release(&needle);
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
		bool stale = de->d_name[0] == '.'; /* an interrupted build */
		if (!stale) {
			/* <image>-<cpus>c-<mem>m-<accel>-<hash>: stale if the inputs changed */
			const char *dash = strchr(de->d_name, '-');
			const char *last = strrchr(de->d_name, '-');
			char hash[17];
			if (dash && last) {
				char *image = xstrndup(de->d_name, (size_t)(dash - de->d_name));
				inputs_hash(eng, image, hash);
				stale = strcmp(last + 1, hash) != 0;
				free(image);
			}
		}
		if (stale && de->d_name[0] != '.' && template_in_use(eng, de->d_name)) {
			log_info("keeping stale template %s: a stopped sandbox was cloned from it",
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
	struct vm *vm = vm_new(eng, spec.id, &spec, VM_CREATING, true);
	struct probe_ctx c = { 0 };
	struct err e = ERR_INIT;
	fileop_remove_tree_now(vm->dir, NULL);
	vm->op = OP_CREATE;
	vm->done = probe_done;
	vm->done_arg = &c;
	struct qvm *q = qvm_new(vm, "kvm");
	random_hex(q->token, 32);
	q->probe = true;
	if (prepare_dir(vm, &e) < 0) {
		vm_forget(vm);
		return false;
	}
	boot_begin(vm);
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
	inputs_hash(eng, "tiny", hash);
	char *cache = epath(eng, "accel-probe", NULL);
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
	fd = open(cache, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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

static int q_init(struct engine *eng, struct err *e)
{
	struct qeng *qe = xcalloc(1, sizeof(*qe));
	eng->be_state = qe;
	if (sodium_init() < 0)
		return err_set(e, EIO, "libsodium failed to initialise");
	const char *need[] = { "vmlinux", "initramfs.cpio" };
	for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
		char *p = image_path(eng, need[i]);
		int ok = access(p, R_OK);
		free(p);
		if (ok < 0)
			return err_set(e, ENOENT, "no %s in '%s' (run 'make images')", need[i],
				       eng->cfg.images_dir);
	}
	char *sb = epath(eng, "sandboxes", NULL), *tp = epath(eng, "templates", NULL);
	char *pl = epath(eng, "pool", NULL);
	int r = mkdir_p(sb, 0700);
	if (r == 0)
		r = mkdir_p(tp, 0700);
	if (r == 0)
		r = mkdir_p(pl, 0700);
	/* QEMU as another user must get through them (not list them) */
	mode_t through = eng->cfg.vm_user && eng->cfg.vm_user[0] && geteuid() == 0 ? 0711 : 0700;
	chmod(sb, through);
	chmod(tp, through);
	chmod(pl, through);
	free(pl);
	free(sb);
	free(tp);
	if (r < 0)
		return err_set(e, -r, "cannot create directories in '%s': %s", eng->cfg.data_dir,
			       strerror(-r));
	if (eng->cfg.vm_user && eng->cfg.vm_user[0] && geteuid() == 0) {
		struct passwd *pw = getpwnam(eng->cfg.vm_user);
		if (!pw)
			return err_set(e, ENOENT, "no user '%s' to run QEMU as", eng->cfg.vm_user);
		qe->drop_user = true;
		qe->vm_uid = pw->pw_uid;
		qe->vm_gid = pw->pw_gid;
	}
	/* running guests' memory: one tmpfs directory per data_dir */
	uint8_t h[8];
	char hex[17];
	struct buf hd = BUF_INIT;
	crypto_generichash(h, sizeof(h), (const uint8_t *)eng->cfg.data_dir,
			   strlen(eng->cfg.data_dir), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	buf_addf(&hd, "%s/bhatti-%s", eng->cfg.mem_dir, hex);
	qe->hot_dir = buf_detach(&hd, NULL);
	if ((r = mkdir_p(qe->hot_dir, 0700)) < 0)
		return err_set(e, -r, "cannot create '%s': %s", qe->hot_dir, strerror(-r));
	if (qe->drop_user && chown(qe->hot_dir, qe->vm_uid, qe->vm_gid) < 0)
		return err_set(e, errno, "chown '%s': %s", qe->hot_dir, strerror(errno));
	remove_stale_templates(eng);
	pool_sweep(eng);
	accel_decide(eng);
	snprintf(eng->accel, sizeof(eng->accel), "%s", qe->accel);
	if (strcmp(qe->accel, "tcg") == 0) {
		qe->tsc_khz = host_tsc_khz();
		log_debug("host TSC: %u kHz", qe->tsc_khz);
	}
	return 0;
}

static void q_fini(struct engine *eng)
{
	struct qeng *qe = QE(eng);
	if (!qe)
		return;
	/* let templates and pool clones being built finish (a second or two;
	 * their file jobs are in flight), so nothing is left half-made */
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
	rmdir(qe->hot_dir); /* only when empty: running guests keep theirs */
	free(qe->hot_dir);
	free(qe);
	eng->be_state = NULL;
}

/* The images there are (rootfs-<name>.ext4), for error messages. */
static void list_images(struct engine *eng, struct buf *out)
{
	DIR *d = opendir(eng->cfg.images_dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > 12 && strncmp(de->d_name, "rootfs-", 7) == 0 &&
		    strcmp(de->d_name + n - 5, ".ext4") == 0)
			buf_addf(out, "%s%.*s", out->len ? ", " : "", (int)(n - 12), de->d_name + 7);
	}
	if (d)
		closedir(d);
}

static int q_check(struct engine *eng, const struct vm_spec *spec, struct err *e)
{
	const char *image = spec->image && spec->image[0] ? spec->image : "tiny";
	struct buf p = BUF_INIT, have = BUF_INIT;
	for (const char *c = image; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return err_set(e, EINVAL, "invalid image name '%s'", image);
	buf_addf(&p, "%s/rootfs-%s.ext4", eng->cfg.images_dir, image);
	int r = 0;
	if (access(p.data, R_OK) < 0) {
		list_images(eng, &have);
		r = err_set(e, ENOENT, "no image '%s' (available: %s)", image,
			    have.len ? have.data : "none; run 'make images'");
	}
	buf_release(&p);
	buf_release(&have);
	return r;
}

const struct engine_backend engine_qemu = {
	.name = "qemu",
	.init = q_init,
	.check = q_check,
	.adopt = q_adopt,
	.fini = q_fini,
	.create = q_create,
	.pause = q_pause,
	.resume = q_resume,
	.stop = q_stop,
	.start = q_start,
	.destroy = q_destroy,
	.vm_free = q_vm_free,
};
