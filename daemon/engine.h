/* engine — sandboxes as VMs: create (boot or clone from a template),
 * pause/resume, cold stop (snapshot to disk, memory freed) and start
 * (restore), destroy, and re-adoption after a restart.
 *
 * Sits between the daemon's core (and tests/benchmarks) and a VMM backend:
 * an ops table (struct engine_backend, engine-internal.h) that
 * engine_config names ("qemu": engine-qemu.c, the QEMU microvm backend) or
 * brings (the tests' fake, tests/fake-backend.c, which lets unit tests
 * drive the daemon's sandbox states without VMs). Everything runs on the
 * process event loop (shared/loop.h): operations are asynchronous and
 * report through a callback; the vm_*_sync() wrappers run the loop until
 * one finishes (tests, tools).
 *
 * VM states (engine.c holds the transition table):
 *
 *            create                      pause
 *   (none) ─────────► CREATING ──► RUNNING ◄────► PAUSED
 *                         │        │   ▲ start       │
 *                         │   stop │   └───────┐     │ stop
 *                         │        ▼           │     ▼
 *                         │      STOPPING ──► STOPPED (cold: on disk)
 *                         ▼
 *          any state ──QEMU dies / op fails──► FAILED ──destroy──► (gone)
 *          any state ──destroy──► DESTROYING ──► (gone)
 *
 * Ownership: engine_new()/engine_free(). VMs belong to the engine; a
 * `struct vm *` stays valid until its destroy completes (then the done
 * callback is the last use) or engine_free(). engine_free() leaves VMs
 * running (a restarted engine adopts them); vm_destroy() removes one.
 */
#ifndef BHATTI_ENGINE_H
#define BHATTI_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "agent-client.h"
#include "err.h"
#include "proto.h"

struct engine_backend;

struct engine_config {
	const char *backend_name; /* the VMM (the config's `engine`): NULL = "qemu" */
	const struct engine_backend *backend; /* this one instead (tests); NULL = by name */
	const char *data_dir;   /* owns sandboxes/ and templates/ */
	const char *images_dir; /* vmlinux, initramfs.cpio, rootfs-<image>.ext4 */
	const char *qemu;       /* NULL = "qemu-system-x86_64" */
	const char *accel;      /* "auto" (default), "kvm" or "tcg" */
	/* When the engine is root, each VM's QEMU runs as a uid (and gid) of
	 * its own from [vm_uid_first, vm_uid_first + vm_uid_count), which no
	 * user, group or subordinate id may use; root without them is refused
	 * (QEMU never runs as root). Not root: QEMU runs as the engine's user. */
	uint32_t vm_uid_first, vm_uid_count;
	const char *mem_dir;    /* tmpfs for running guests' memory; NULL = /dev/shm */
	uint64_t console_max;   /* a VM's console.log rotates at this size: 0 = 1 MiB */
	bool no_templates;      /* always cold-boot (no clone) */
	int pool_size;          /* ready clones kept per template (at most 8): 0 = none */
	unsigned spare_linger_ms; /* a template's spare memory copy stays this long
				   * after a create cloned it: 0 = 10 minutes */
	/* Guest RAM on tmpfs, everything together (sandboxes running, paused,
	 * being created or started; pool clones; template builds; memory
	 * spares), in bytes, counting each at its full memory size: a create
	 * or start that would go past it is refused (-EAGAIN), after the
	 * engine's own spares and pool clones have given way. 0 = the tmpfs's
	 * size, at most 3/4 of the host's memory. */
	uint64_t mem_budget;
	/* Encryption at rest of cold snapshots (memory and device state;
	 * docs/architecture.md): each sandbox gets a random key at create,
	 * kept in its vm.json as key_wrap made it, and given back by
	 * key_unwrap only while a stop or a start uses it. The daemon wraps
	 * with its age identity; the engine never sees that key or its
	 * format. NULL key_wrap: snapshots in plaintext (tests, benchmarks). */
	int (*key_wrap)(void *arg, const uint8_t key[32], char **ret_wrapped, struct err *e);
	int (*key_unwrap)(void *arg, const char *wrapped, uint8_t ret_key[32], struct err *e);
	void *key_arg;
	/* Guest networking (net.h): every VM has a NIC, a virtio-net device
	 * on a TAP the engine opens (as root) and gives QEMU as a descriptor;
	 * templates are snapshotted with it. A sandbox's TAP (bt<id>) joins
	 * the bridge its spec names; a pool clone's and a template build's
	 * stay down and on no bridge until a create takes the clone. */
	bool net;
};

enum vm_state {
	VM_CREATING,
	VM_RUNNING,
	VM_PAUSED,
	VM_STOPPING,
	VM_STOPPED,
	VM_STARTING,
	VM_FAILED,
	VM_DESTROYING,
};

const char *vm_state_name(enum vm_state s);

/* A sandbox's place on its owner's network (engine_config.net). */
struct vm_net {
	char bridge[16];        /* the bridge its TAP joins ("" = none) */
	char address[20];       /* its address, CIDR: "10.201.3.7/24" */
	char gateway[16];       /* the bridge's address: route and resolver */
	char mac[18];           /* "02:..:..:..:..:.." */
};

struct vm_spec {
	const char *id;         /* [a-z0-9][a-z0-9-]{0,62}: directory name */
	const char *hostname;   /* NULL = id */
	const char *image;      /* tier: "tiny", "minimal"; NULL = "tiny" */
	unsigned cpus;          /* 0 = 1 */
	unsigned memory_mb;     /* 0 = 512 */
	char **env;             /* "K=V" */
	char **secrets;         /* "K=V": env for every process; never in vm.json (but
				 * in guest memory, which a cold stop saves) */
	const char *init;       /* shell script, run once as session "init" */
	uint64_t disk_bytes;    /* the root disk; 0 = the image's size; larger: the
				 * image's ext4 grown to it (a first boot: no template) */
	struct proto_cfg_file *files;
	size_t nfiles;
	/* create: restore this named snapshot (a directory vm_snapshot made)
	 * instead of a fresh clone: its processes and files, a new identity
	 * (hostname, agent token, RNG seed); the shape must be the snapshot's;
	 * env, secrets, files and init are not applied (the guest has its
	 * own). NULL: a fresh sandbox. */
	const char *snapshot;
	struct vm_net net;      /* (engine_config.net) */
};

struct engine;
struct vm;

typedef void (*vm_done_fn)(struct vm *vm, int rc, const struct err *e, void *arg);
/* Something happened to a VM by itself (today: QEMU died). */
typedef void (*vm_event_fn)(struct vm *vm, enum vm_state state, const struct err *e, void *arg);

/* Needs loop_init() and fileops_init() first. Probes the accelerator when
 * "auto" (cached per kernel and QEMU in data_dir). Adopts every sandbox
 * found in data_dir: running QEMUs are reconnected, cold ones stay
 * restorable, broken ones are FAILED. */
int engine_new(const struct engine_config *cfg, vm_event_fn on_event, void *arg,
	       struct engine **ret, struct err *e);
void engine_free(struct engine *eng);
/* Stop the engine's background work (pool refills, memory spares) and let
 * what is half made finish, running the event loop (at most a minute):
 * for a caller whose loop goes away before engine_free() (the daemon: its
 * HTTP layer closes the loop's fd). engine_free() does it too, when it
 * has not been done. VMs keep running. */
void engine_settle(struct engine *eng);
const char *engine_accel(const struct engine *eng);  /* "kvm" or "tcg" */
/* Where running guests' memory lives (on tmpfs); NULL if the backend has
 * no such place. */
const char *engine_mem_dir(const struct engine *eng);

struct vm *engine_find(struct engine *eng, const char *id);
/* Visit every VM (order unspecified). */
void engine_each(struct engine *eng, void (*fn)(struct vm *vm, void *arg), void *arg);

/* Operations. Each returns 0 when started (done runs later, exactly once)
 * or -errno with e set when it cannot start (done does not run): bad spec,
 * wrong state (-EBUSY while another operation runs), no room for its
 * memory in the budget (-EAGAIN: a create, or a start of a stopped VM). */
int vm_create(struct engine *eng, const struct vm_spec *spec, vm_done_fn done, void *arg,
	      struct vm **ret, struct err *e);
int vm_pause(struct vm *vm, vm_done_fn done, void *arg, struct err *e);
int vm_resume(struct vm *vm, vm_done_fn done, void *arg, struct err *e);
int vm_stop(struct vm *vm, vm_done_fn done, void *arg, struct err *e);
int vm_start(struct vm *vm, vm_done_fn done, void *arg, struct err *e);
int vm_destroy(struct vm *vm, vm_done_fn done, void *arg, struct err *e);
/* Named snapshot of a running or paused VM: its vCPUs stop for the copy
 * (device state, memory, disk: a reflink where the filesystem can) into
 * dir, which must not exist (made as dir.part, renamed when whole; on
 * failure nothing stays), then go on; the VM ends in the state it had.
 * The files are root's and, when the engine encrypts at rest, encrypted
 * with a key of the snapshot's own. A template the snapshot's memory is a
 * delta against is kept while a snapshot names it. */
int vm_snapshot(struct vm *vm, const char *dir, vm_done_fn done, void *arg, struct err *e);
/* Fork: a new running VM (spec: its id and hostname; the shape is src's)
 * with src's processes, memory and disk, and a new identity. src's vCPUs
 * stop while its memory and disk are copied; src_done runs when src goes
 * on (in the state it had), done when the copy is RUNNING (or failed: then
 * nothing of it stays). Memory is admitted as for a create (-EAGAIN). */
int vm_fork(struct vm *src, const struct vm_spec *spec, vm_done_fn src_done, void *src_arg,
	    vm_done_fn done, void *arg, struct vm **ret, struct err *e);

/* Blocking convenience: start the operation and run the event loop until
 * it is over. For tests and tools, never from inside a loop callback. */
int vm_create_sync(struct engine *eng, const struct vm_spec *spec, struct vm **ret, struct err *e);
int vm_pause_sync(struct vm *vm, struct err *e);
int vm_resume_sync(struct vm *vm, struct err *e);
int vm_stop_sync(struct vm *vm, struct err *e);
int vm_start_sync(struct vm *vm, struct err *e);
int vm_destroy_sync(struct vm *vm, struct err *e);
int vm_snapshot_sync(struct vm *vm, const char *dir, struct err *e);
int vm_fork_sync(struct vm *src, const struct vm_spec *spec, struct vm **ret, struct err *e);

const char *vm_id(const struct vm *vm);
enum vm_state vm_state(const struct vm *vm);
/* The connected agent while RUNNING, else NULL. */
struct ac *vm_agent(struct vm *vm);
/* Where this VM's files live (sandboxes/<id>). */
const char *vm_dir(const struct vm *vm);
/* The VMM process's pid (QEMU's) while it runs, else 0. */
int vm_pid(const struct vm *vm);
/* Disk bytes of its cold snapshot (memory delta and device state) while
 * it is STOPPED, else 0. */
uint64_t vm_snapshot_bytes(const struct vm *vm);
/* The named snapshot directory it is being created from (spec.snapshot)
 * while it is CREATING, else NULL. */
const char *vm_restoring(const struct vm *vm);
/* Why the VM is FAILED (or ""). */
const char *vm_error(const struct vm *vm);
/* How the VM was created: "clone", "boot", "restore" (of a named
 * snapshot) or "fork". */
const char *vm_origin(const struct vm *vm);
/* Adopted after a crash in the middle of its create (it is FAILED): the
 * daemon never told anyone it exists, so it is to be destroyed. */
bool vm_create_unfinished(const struct vm *vm);

#endif
