/* qemu.h — what the files of the QEMU backend share (engine-qemu.c and
 * qemu-*.c; the overview of the backend is at the top of engine-qemu.c):
 * per-engine and per-VM state, templates, and the functions one of these
 * files calls in another. Private to the backend: engine.c and everyone
 * else see engine.h and engine-internal.h.
 *
 * An operation is a chain of steps; each step starts one asynchronous
 * thing and names the step that continues when it is done (one
 * continuation per kind of wait in struct qvm, so waits cannot mix up).
 * A step that fails calls step_fail(), which leaves the VM as its
 * operation requires; QEMU's death ends up in qemu_exited().
 */
#ifndef BHATTI_QEMU_H
#define BHATTI_QEMU_H

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine-internal.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "qmp.h"

#define BOOT_TIMEOUT_MS     120000  /* TCG on a loaded 2-core box is slow */
#define RESTORE_TIMEOUT_MS  30000
#define STEP_TIMEOUT_MS     30000
#define PROBE_TIMEOUT_MS    8000    /* a working KVM answers in well under 1 s */
#define SYNC_TIMEOUT_MS     5000
#define RETRY_MS            2
#define SPARE_DELAY_MS      1000    /* a spare copy after a start or stop ("memory spares") */

struct tmpl;
struct qcopy;

/* Per engine. */
struct qeng {
	char accel[8];
	bool closing;               /* engine_free: no more pool refills */
	unsigned tsc_khz;           /* host TSC rate, told to TCG guests */
	char *hot_dir;              /* mem_dir/bhatti-XXXXXX (qemu-jail.c) */
	int hot_fd;                 /* hot_dir, verified: the loop's way in */
	uint64_t mem_budget;        /* bytes of guest RAM on tmpfs (qemu-mem.c) */
	bool drop_uids;             /* root: each QEMU as a uid of its own */
	uint32_t uid_first, uid_count, uid_next;
	int uid_lock;               /* the host's VM uid pickers take turns */
	gid_t kvm_gid;              /* /dev/kvm's group for QEMUs under KVM, or -1 */
	struct tmpl *tmpls;
};

struct qvm;
typedef void (*qstep_fn)(struct qvm *q);

/* What a VM is for. Only sandboxes are the engine's users' (registered,
 * recorded in vm.json, adopted after a restart); the others are hidden VMs
 * the backend makes for itself. */
enum qvm_role {
	QVM_SANDBOX,            /* a sandbox: created, cloned or taken from the pool */
	QVM_TEMPLATE_BUILD,     /* booted once, page cache warmed, cold-stopped: a template */
	QVM_PROBE,              /* booted once under KVM: does KVM work here? */
	QVM_POOL_CLONE,         /* a clone restored, warmed and paused in its template's
				 * pool until a create takes it (then a sandbox) */
};

/* Per VM. Each wait has its own continuation, so they cannot mix up. */
struct qvm {
	struct vm *vm;
	char accel[8];
	pid_t pid;
	bool our_child;
	uint64_t pid_start;         /* /proc/<pid>/stat starttime: pid reuse guard */
	uid_t uid;                  /* the uid QEMU runs as (0: the engine's own) */
	struct watch pidw;          /* pidfd: readable when QEMU is gone */
	bool expect_exit;
	qstep_fn on_exit;           /* QEMU exited as expected (quit, kill) */
	struct qmp *qmp;
	qstep_fn on_qmp;            /* QMP socket connected */
	qstep_fn on_migrated;       /* MIGRATION completed */
	qstep_fn migrate_next;      /* qemu_migrate_out: the device state is in state_fd */
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
	char tap[16];               /* its TAP while QEMU runs (engine_config.net) */
	char *hot_mem;              /* the running guest's RAM on tmpfs (hot_dir/<id>.mem) */
	struct watch con_w;         /* the guest's console, read into console.log */
	int con_log;
	uint64_t con_size;
	char *base_key;             /* a clone's template: its memory is the base
				     * the cold snapshot is a delta against */
	char *key_wrapped;          /* its snapshot key as key_wrap made it (a
				     * sandbox of an engine that encrypts at rest) */
	int state_fd;
	bool paused;                /* vCPUs stopped by a pause */
	bool undoing;               /* a failed create is removing what it made:
				     * later failures are only logged */
	enum qvm_role role;
	struct tmpl *source;        /* the template a clone is being restored from
				     * (until its agent answers: the guest still
				     * has the template's token) */
	struct tmpl *waits_for;     /* the template a create waits for (its build) */
	bool start_qmp_up;          /* start/clone: QMP connected ... */
	bool start_mem_ready;       /* ... and memory loaded: now restore */
	bool cont_pending;          /* a start's "starting" record is being
				     * written: then cont (step_cleanup clears) */
	struct err step_err;
	uint64_t t0_ns;             /* when the operation began (step log) */
	/* a copy of a live VM (qemu-copy.c): the snapshot or fork this VM is
	 * the source or the new copy of */
	struct qcopy *copy;
	char restore_token[65];     /* a restored snapshot's or fork's guest still
				     * has this token until CONFIGURE */
	bool reidentify;            /* its CONFIGURE: a new identity only (the
				     * guest keeps its env, secrets, files) */
	char *restore_key;          /* the snapshot key of what it is restored from,
				     * wrapped (NULL: its own, q->key_wrapped) */
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
				     * clone or start of a stopped clone (its name
				     * in the memory dir), or NULL */
	bool spare_filling;
	struct timer spare_timer;
	uint64_t cloned_ms;         /* when a create last cloned it (0: never) */
	char token[65];
	char error[ERR_MSG_MAX];
	int code;
	struct tmpl_waiter *waiters;
	struct tmpl *next;
};

static inline struct qeng *QE(struct engine *eng)
{
	return eng->be_state;
}

static inline struct qvm *QV(struct vm *vm)
{
	return vm->be;
}

/* ---- engine-qemu.c: the operations begun there ---- */

/* A create (boot, clone or pool claim) is configured: RUNNING. */
void q_create_done(struct qvm *q);
/* The VM's directory (root's, 0700); its sockets' paths must fit. */
int q_prepare_dir(struct vm *vm, struct err *e);
/* Cold boot: copy the image, spawn, HELLO, then what the VM is for. */
void q_boot(struct vm *vm);
/* A create's disk copy is done (rc): false when the create is over (it
 * failed, or a destroy came); else vm.json records the VM. */
bool q_disk_copied(struct vm *vm, int rc, const struct err *e);
/* A VM the backend makes for itself (not registered, no vm.json), begun
 * as a create whose end goes to done. */
struct qvm *q_hidden_create(struct engine *eng, const struct vm_spec *spec, enum qvm_role role,
			    const char *accel, vm_done_fn done, void *arg);
void q_destroy(struct vm *vm);
/* Free a qvm that owns no runtime (a create's, replaced by a pool clone's). */
void q_vm_free_state(struct qvm *q);

/* ---- qemu-proc.c: a VM's runtime ---- */

struct qvm *qvm_new(struct vm *vm, const char *accel);
/* Paths (caller frees): vm->dir/name; data_dir/a[/b]; images_dir/name;
 * the memory a clone's cold snapshot is a delta against (NULL: none). */
char *qvm_path(const struct vm *vm, const char *name);
char *qeng_path(const struct engine *eng, const char *a, const char *b);
char *qeng_image_path(const struct engine *eng, const char *name);
char *qvm_base_mem(struct qvm *q);
/* bytes random bytes as hex into out (2 * bytes + 1 chars). */
void q_random_hex(char *out, size_t bytes);
/* A sandbox's snapshot key: q_key_make gives it one (q->key_wrapped) when
 * the engine encrypts at rest and it has none; q_key_open unwraps it
 * (*ret_keyed false: it has none, its snapshots are plaintext). Wipe the
 * key after use. */
int q_key_make(struct qvm *q, struct err *e);
int q_key_open(struct qvm *q, uint8_t key[32], bool *ret_keyed, struct err *e);
/* Unwrap the key `wrapped` (NULL: no key, *ret_keyed false). */
int q_key_unwrap(struct engine *eng, const char *wrapped, uint8_t key[32], bool *ret_keyed,
		 struct err *e);

/* The step's one timer (retries and deadlines): fn runs after ms. */
void step_after(struct qvm *q, uint64_t ms, qstep_fn fn);
bool step_past_deadline(struct qvm *q);
/* Stop every wait of the current step: timer, QMP, agent, state fd. */
void step_cleanup(struct qvm *q);
/* The operation failed: leave the VM as the operation requires. */
void step_fail(struct qvm *q, int code, const char *fmt, ...) PRINTF(3, 4);

/* /proc/<pid>/stat's start time (a pid reuse guard). */
uint64_t qemu_starttime(pid_t pid);
/* The QEMU serving the QMP socket qmp_path, found by the socket itself:
 * the process that listens on it (SO_PEERCRED; QEMU calls listen() on the
 * socket the engine bound), a qemu-system process, alive when pidfd was
 * taken. 1 with ret filled (its fds the caller's), 0 if none. */
struct qemu_found {
	pid_t pid;
	uid_t uid;
	int pidfd;
	int qmp_fd;                 /* connected to its QMP socket */
};
int qemu_by_socket(const char *qmp_path, struct qemu_found *ret);
/* The same for the VM directory dir, waiting (at most 3 s) for a QEMU
 * spawned just before the last engine died to listen on its socket. */
int qemu_by_socket_in(const char *dir, struct qemu_found *ret);
void qemu_found_release(struct qemu_found *f);
char *qemu_kernel_cmdline(struct engine *eng, bool kvm, bool for_key);
/* Start QEMU as a uid of its own (qemu-jail.c) with its files as fds:
 * the memory file hot_mem must exist (qemu_mem_file, or a spare). */
int qemu_spawn(struct qvm *q, bool incoming, struct err *e);
int qemu_watch(struct qvm *q, struct err *e);   /* its pidfd */
int qemu_watch_fd(struct qvm *q, int pidfd, struct err *e);
void qemu_kill(struct qvm *q);                  /* SIGKILL, exit expected */
/* The MAC of every template's NIC (a clone takes its own: CONFIGURE). */
#define QEMU_TEMPLATE_MAC "02:62:68:00:00:01"
/* The VM's TAP (spawn), and a pool clone's given to the sandbox that takes
 * it: renamed bt<id>, on its bridge, up. */
int qemu_tap_open(struct qvm *q, struct err *e);
int qemu_tap_claim(struct qvm *q, struct err *e);
/* A new all-zero memory file for q's guest, root's until QEMU's spawn. */
int qemu_mem_file(struct qvm *q, struct err *e);

/* ---- qemu-qmp.c: the QMP connection ----
 * Connect (retrying while QEMU starts), then commands whose failure fails
 * the step; qemu_qmp_close drops the connection (a failed step). */
void qemu_qmp_connect(struct qvm *q, qstep_fn next);
void qemu_on_qmp_event(struct qmp *qm, const char *ev, const cJSON *data, void *arg);
void qemu_on_qmp_closed(struct qmp *qm, const struct err *e, void *arg);
void qemu_cmd(struct qvm *q, const char *cmd, cJSON *args, int fd, qstep_fn next);
cJSON *qemu_migrate_caps(void);
/* The VM's vCPUs stopped: its device state into a new memfd (q->state_fd),
 * then next (failing the step if it does not come). */
void qemu_migrate_out(struct qvm *q, qstep_fn next);
cJSON *qemu_args_str(const char *k, const char *v);
void qemu_close_state_fd(struct qvm *q);
void qemu_qmp_close(struct qvm *q);

/* ---- qemu-agent.c: the agent channel ---- */

void qagent_on_io(struct watch *w, uint32_t events);
void qagent_flush_task(struct task *t);
int qagent_open(struct qvm *q, const char *token, struct err *e);
void qagent_close(struct qvm *q);
/* Connect and wait for HELLO_OK, then next; the step fails after timeout_ms. */
void qagent_connect(struct qvm *q, const char *token, uint64_t timeout_ms, qstep_fn next);
/* (an on_hello that only logs: the channel is back) */
void qagent_reconnected(struct qvm *q);
/* One request; next runs when it ends, with q->agent_rc and q->agent_err. */
void qagent_request(struct qvm *q, uint8_t type, const void *msg, uint64_t timeout_ms,
		    qstep_fn next);
/* CONFIGURE: a new identity (token, hostname, env, secrets, files, init,
 * RNG seed) and the clock, or only the clock. */
void qagent_configure(struct qvm *q, bool identity, qstep_fn next);
/* CONFIGURE of a copy of a live guest (fork, restored snapshot): a new
 * hostname, token and RNG seed, and the clock; the rest it has. */
void qagent_reidentify(struct qvm *q, qstep_fn next);

/* ---- qemu-restore.c: restore and start ---- */

/* Spawn QEMU -incoming on the device state `state` while the file worker
 * fills the memory file from base (+ delta, encrypted with the key
 * key_wrapped wraps, if any); then restore. */
void restore_overlapped(struct qvm *q, const char *state, const char *base,
			const char *delta, const char *key_wrapped);
/* The same in two halves, for a fork: spawn QEMU -incoming on q->state_fd
 * (the disk is there); the memory file is filled (rc). The restore begins
 * when both are done. */
void restore_spawn(struct qvm *q);
void restore_mem_ready(struct qvm *q, int rc, const struct err *e);
/* Rename path to aside and let the file worker remove it; the same for
 * the file `name` of the memory dir. */
void q_remove_aside(const char *path, const char *aside);
void q_hot_remove_aside(struct engine *eng, const char *name, const char *aside);
void q_start(struct vm *vm);

/* ---- qemu-template.c: templates ---- */

void tmpl_inputs_hash(struct engine *eng, const char *image, char *out /* 17 */);
/* The key of the template of a shape (caller frees). */
char *tmpl_key_of(struct engine *eng, const struct vm_spec *shape);
/* A key <image>-<cpus>c-<mem>m-<accel>-<hash> read from the right: 0 with
 * its image, or -EINVAL (check any key from outside before it is a path). */
int tmpl_key_parse(const char *key, char image[64]);
struct tmpl *tmpl_find(struct engine *eng, const char *key);
/* Known, or found on disk (TMPL_READY), or new (TMPL_FAILED until built). */
struct tmpl *tmpl_obtain(struct vm *vm, const char *key);
/* A create's template: take a pool clone, clone it, or wait for its build. */
void tmpl_get(struct vm *vm);
void tmpl_unwait(struct qvm *q);
/* Clone vm (a create, or a pool clone) from the ready template t. */
void tmpl_clone(struct vm *vm, struct tmpl *t);
void tmpl_remove_stale(struct engine *eng);

/* ---- qemu-copy.c: named snapshots and forks of live VMs ---- */

void q_snapshot(struct vm *vm, const char *dir);
void q_fork(struct vm *src, struct vm *child);
/* A create of vm->spec.snapshot: restore that snapshot as a new sandbox. */
void q_restore_snapshot(struct vm *vm);
/* The VM goes away or fails (destroy, a failed step, QEMU's death): its
 * part in a copy ends. quiet (engine_free): only forget it. */
void copy_detach(struct qvm *q, bool quiet);
/* Is template `key` the base of a named snapshot in data_dir/snapshots? */
bool copy_template_in_use(struct engine *eng, const char *key);

/* ---- qemu-pool.c: the pool and the memory spares ---- */

void pool_warmed(struct qvm *q);
void pool_fill_timer(struct timer *tm);
void pool_claim(struct vm *vm, struct tmpl *t);
void pool_drain(struct tmpl *t);
/* Kill one ready clone of t to free its memory: false if it has none. */
bool pool_drop_one(struct tmpl *t);
int pool_sweep(struct engine *eng, struct err *e);
void spare_want(struct tmpl *t, uint64_t delay_ms);
void spare_drop(struct tmpl *t);
void spare_timer_fired(struct timer *tm);
bool spare_take(struct qvm *q);
void spare_recheck(struct qvm *q);

/* ---- qemu-mem.c: guest memory on tmpfs, and its budget ---- */

void qmem_init(struct engine *eng);
/* Bytes held: every memory file in hot_dir at its full size. */
uint64_t qmem_used(struct engine *eng);
/* Background work (pool clones, spares): does memory_mb fit as things are? */
bool qmem_room(struct engine *eng, unsigned memory_mb);
/* Room for memory_mb more, the engine's spares and pool clones giving
 * way (never keep's pool clones; keep's spare last, and not when credit:
 * the bytes the request takes over from keep at once): reserved as the
 * file path (all zero, the guest's size) when there is; -EAGAIN when
 * there is not. */
int qmem_reserve(struct engine *eng, const char *path, unsigned memory_mb, struct tmpl *keep,
		 uint64_t credit, struct err *e);
int q_admit(struct engine *eng, const struct vm_spec *spec, struct vm *vm, struct err *e);

/* ---- qemu-console.c: the guest's console ---- */

/* Connect to the console socket of q's running QEMU and append what the
 * guest prints to console.log, rotated to console.log.1 at
 * cfg.console_max (a VM's console costs at most twice that on disk). */
void qcon_open(struct qvm *q);
void qcon_on_io(struct watch *w, uint32_t events);
void qcon_close(struct qvm *q);

/* ---- qemu-jail.c: uids, directories, the memory dir ---- */

int jail_init(struct engine *eng, struct err *e);
void jail_fini(struct qeng *qe);
/* Lock the host's VM uids and pick one no process has; the caller spawns
 * and then calls jail_release(). */
int jail_pick_uid(struct qeng *qe, uid_t *ret, struct err *e);
void jail_release(struct qeng *qe);
/* In a forked child: become uid (gid the same; /dev/kvm's group too when
 * kvm), no new privileges. 0 or -errno. */
int jail_enter(const struct qeng *qe, uid_t uid, bool kvm);
/* Make path a directory of ours, mode 0700, taking back one an older
 * install gave away (its symlinks removed, its files ours, file_mode on
 * them when not 0). */
int jail_dir(const char *path, mode_t file_mode, struct err *e);
/* The tmpfs memory dir: the one the last start recorded if it is still
 * ours, else a new one; its files by name through hot_fd. */
int jail_hot_dir(struct engine *eng, struct err *e);
const char *hot_name(const char *path);
int hot_create(struct qeng *qe, const char *name, unsigned memory_mb, struct err *e);
int hot_open(struct qeng *qe, const char *name);
int hot_rename(struct qeng *qe, const char *from, const char *to);
void hot_unlink(struct qeng *qe, const char *name);

/* ---- qemu-adopt.c: vm.json and adoption ---- */

/* vm.json through the file worker (durable: fsync'd), or now (0 or
 * -errno: a failure is logged too); meta_record_then: fsync'd, then next(q) unless the step was failed
 * meanwhile (q->cont_pending cleared). */
void meta_record(struct vm *vm, bool durable);
void meta_record_then(struct qvm *q, qstep_fn next);
void meta_write(struct vm *vm);
int meta_write_now(struct vm *vm);
cJSON *meta_read(const char *dir);
cJSON *meta_read_file(const char *dir, const char *name); /* (at most 1 MiB) */
int q_adopt(struct engine *eng, struct err *e);
/* Kill the QEMU of every directory in dir (found by its QMP socket): what
 * an earlier engine's pool or template build left. */
void qemu_kill_orphans(const char *dir, const char *what);

/* ---- qemu-init.c ---- */

int q_init(struct engine *eng, struct err *e);
void q_settle(struct engine *eng);
void q_fini(struct engine *eng);

#endif
