/* sandbox.c — the daemon's core for sandboxes: store rows matched with
 * engine VMs, creation with quotas and secrets, waking, stop/start,
 * destroy (see sandbox.h for the states).
 *
 * Sits between the API handlers and the store + engine + secrets key.
 * Crash safety: a row is written before its VM is created and removed
 * after its VM is destroyed, and marked (destroying) before the destroy
 * begins; at start-up sbx_init() reconciles the two (a VM without a row
 * is destroyed, a row without a VM directory is a create that never
 * finished and is dropped, a marked row's destroy is finished).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "engine.h"
#include "log.h"
#include "loop.h"
#include "exectee.h"
#include "sandbox.h"
#include "valid.h"

/* Who waits for what: the end of an engine operation (create, stop,
 * start), a wake (then the sandbox is looked at again), or a destroy
 * (which outlives the operations it preempts). */
enum wait_kind { WAIT_OP, WAIT_WAKE, WAIT_DESTROY };

struct sbx_waiter {
	struct sbx_waiter *next;
	enum wait_kind kind;
	sbx_done_fn fn;
	void *arg;
};

static void add_waiter(struct sbx *sb, enum wait_kind kind, sbx_done_fn fn, void *arg)
{
	struct sbx_waiter *w = xcalloc(1, sizeof(*w));
	w->kind = kind;
	w->fn = fn;
	w->arg = arg;
	struct sbx_waiter **pp = &sb->waiters;
	while (*pp)
		pp = &(*pp)->next;
	*pp = w;
}

void sbx_cancel_wait(struct sbx *sb, void *arg)
{
	for (struct sbx_waiter *w = sb->waiters; w; w = w->next)
		if (w->arg == arg)
			w->fn = NULL;
}

static void sbx_free(struct sbx *sb)
{
	exectee_forget(sb->row.id);
	while (sb->waiters) {
		struct sbx_waiter *w = sb->waiters;
		sb->waiters = w->next;
		free(w);
	}
	sandbox_row_release(&sb->row);
	free(sb);
}

static void unlink_sbx(struct sbx *sb)
{
	for (struct sbx **pp = &sb->srv->sandboxes; *pp; pp = &(*pp)->next)
		if (*pp == sb) {
			*pp = sb->next;
			return;
		}
}

void sbx_touch(struct sbx *sb)
{
	sb->last_used_ms = now_ms();
}

/* ---- states ---------------------------------------------------------------- */

const char *sbx_origin(const struct sbx *sb)
{
	return sb->vm ? vm_origin(sb->vm) : "";
}

const char *sbx_error(const struct sbx *sb)
{
	return sb->vm ? vm_error(sb->vm) : "the VM is gone";
}

const char *server_accel(const struct server *srv)
{
	return engine_accel(srv->eng);
}

const char *sbx_state(const struct sbx *sb)
{
	if (sb->destroying)
		return "destroying";
	if (!sb->vm)
		return "error";
	switch (vm_state(sb->vm)) {
	case VM_CREATING: return "creating";
	case VM_RUNNING: return "hot";
	case VM_PAUSED: return "warm";
	case VM_STOPPING: return "stopping";
	case VM_STOPPED: return sb->row.stopped ? "stopped" : "cold";
	case VM_STARTING: return "starting";
	case VM_FAILED: return "error";
	case VM_DESTROYING: return "destroying";
	}
	return "error";
}

struct ac *sbx_agent(struct sbx *sb)
{
	return sb->vm && vm_state(sb->vm) == VM_RUNNING ? vm_agent(sb->vm) : NULL;
}

struct sbx *sbx_find(struct server *srv, const struct user *u, const char *name_or_id)
{
	struct sbx *by_id = NULL;
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next) {
		if (sb->row.user_id != u->id || sb->destroying)
			continue;
		if (strcmp(sb->row.name, name_or_id) == 0)
			return sb;
		if (strcmp(sb->row.id, name_or_id) == 0)
			by_id = sb;
	}
	return by_id;
}

/* ---- operations and their waiters -------------------------------------------- */

static void wake_step(struct sbx *sb, sbx_done_fn done, void *arg);

/* An engine operation ended: the op's waiters get its result, wake
 * waiters look again. */
/* The user's "stopped" is recorded before the VM stops (a crash in the
 * middle must not leave it to be woken); a stop that did not happen takes
 * it back. */
static void unstop(struct sbx *sb)
{
	struct err e = ERR_INIT;
	if (!sb->row.stopped || (sb->vm && vm_state(sb->vm) == VM_STOPPED))
		return;
	if (store_sandbox_set_stopped(sb->srv->store, sb->row.id, false, &e) < 0)
		log_warn("sandbox '%s': %s", sb->row.id, err_str(&e));
	else
		sb->row.stopped = false;
}

static void op_done(struct vm *vm UNUSED, int rc, const struct err *e, void *arg)
{
	struct sbx *sb = arg;
	sb->busy = false;
	if (sb->stopping) {
		sb->stopping = false;
		if (rc < 0)
			unstop(sb);
	}
	struct sbx_waiter *list = sb->waiters;
	sb->waiters = NULL;
	while (list) {
		struct sbx_waiter *w = list;
		list = w->next;
		if (w->kind == WAIT_DESTROY) {
			/* not this operation's: keep it */
			w->next = NULL;
			struct sbx_waiter **pp = &sb->waiters;
			while (*pp)
				pp = &(*pp)->next;
			*pp = w;
			continue;
		}
		if (w->fn) {
			if (w->kind == WAIT_OP)
				w->fn(sb, rc, e, w->arg);
			else
				wake_step(sb, w->fn, w->arg);
		}
		free(w);
	}
}

static void wake_step(struct sbx *sb, sbx_done_fn done, void *arg)
{
	struct err e = ERR_INIT;
	if (sb->destroying) {
		err_set(&e, ENOENT, "sandbox '%s' is being destroyed", sb->row.name);
		done(sb, -ENOENT, &e, arg);
		return;
	}
	if (!sb->vm) {
		err_set(&e, EIO, "sandbox '%s' is lost (its VM is gone); destroy it", sb->row.name);
		done(sb, -EIO, &e, arg);
		return;
	}
	if (sb->busy) {
		add_waiter(sb, WAIT_WAKE, done, arg);
		return;
	}
	int rc = 0;
	switch (vm_state(sb->vm)) {
	case VM_RUNNING:
		sbx_touch(sb);
		done(sb, 0, NULL, arg);
		return;
	case VM_PAUSED:
		rc = vm_resume(sb->vm, op_done, sb, &e);
		break;
	case VM_STOPPED:
		if (sb->row.stopped) {
			err_set(&e, ENOTCONN, "sandbox '%s' is stopped; start it with 'bhatti start %s'",
				sb->row.name, sb->row.name);
			done(sb, -ENOTCONN, &e, arg);
			return;
		}
		rc = vm_start(sb->vm, op_done, sb, &e);
		break;
	case VM_FAILED:
		err_set(&e, ENOTCONN, "sandbox '%s' failed: %s; destroy it", sb->row.name,
			vm_error(sb->vm));
		done(sb, -ENOTCONN, &e, arg);
		return;
	default:
		/* an engine operation we did not start (cannot happen) */
		err_set(&e, EBUSY, "sandbox '%s' is busy (%s)", sb->row.name, sbx_state(sb));
		done(sb, -EBUSY, &e, arg);
		return;
	}
	if (rc < 0) {
		done(sb, rc, &e, arg);
		return;
	}
	sb->busy = true;
	add_waiter(sb, WAIT_WAKE, done, arg);
}

void sbx_wake(struct sbx *sb, sbx_done_fn done, void *arg)
{
	wake_step(sb, done, arg);
}

static int run_op(struct sbx *sb, int (*op)(struct vm *, vm_done_fn, void *, struct err *),
		  sbx_done_fn done, void *arg, struct err *e)
{
	if (!sb->vm)
		return err_set(e, EIO, "sandbox '%s' is lost (its VM is gone); destroy it",
			       sb->row.name);
	if (sb->busy)
		return err_set(e, EBUSY, "sandbox '%s' is busy (%s); try again", sb->row.name,
			       sbx_state(sb));
	int rc = op(sb->vm, op_done, sb, e);
	if (rc < 0)
		return rc;
	sb->busy = true;
	add_waiter(sb, WAIT_OP, done, arg);
	return 0;
}

/* The disk the user's cold snapshots take. */
static uint64_t snapshot_bytes_of(struct server *srv, int64_t user_id)
{
	uint64_t n = 0;
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next)
		if (sb->row.user_id == user_id && sb->vm)
			n += vm_snapshot_bytes(sb->vm);
	return n;
}

/* Can the user's stop or start begin? Checked before the user's wish is
 * recorded: a refused one must not change it. */
static int check_op(struct sbx *sb, struct err *e)
{
	if (sb->vm && vm_state(sb->vm) == VM_FAILED)
		return err_set(e, ENOTCONN, "sandbox '%s' failed: %s; destroy it", sb->row.name,
			       vm_error(sb->vm));
	if (sb->busy)
		return err_set(e, EBUSY, "sandbox '%s' is busy (%s); try again", sb->row.name,
			       sbx_state(sb));
	return 0;
}

/* A stop that makes a snapshot may begin while the user's cold snapshots
 * take less than the quota (the size of this one is known only once it is
 * written: it may go past it by that much). */
static int check_snapshot_quota(struct sbx *sb, struct err *e)
{
	uint64_t quota = sb->srv->cfg.limits.max_snapshot_disk;
	bool makes_one = sb->vm && (vm_state(sb->vm) == VM_RUNNING || vm_state(sb->vm) == VM_PAUSED);
	if (!quota || !makes_one)
		return 0;
	uint64_t used = snapshot_bytes_of(sb->srv, sb->row.user_id);
	if (used < quota)
		return 0;
	return err_set(e, EDQUOT, "quota: your cold snapshots take %llu MB of disk, the most a "
		       "user may keep is %llu MB ('limits.max_snapshot_disk'); start or destroy "
		       "a stopped sandbox first", (unsigned long long)(used >> 20),
		       (unsigned long long)(quota >> 20));
}

int sbx_stop(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e)
{
	int rc = check_op(sb, e);
	if (rc == 0)
		rc = check_snapshot_quota(sb, e);
	if (rc == 0)
		rc = store_sandbox_set_stopped(sb->srv->store, sb->row.id, true, e);
	if (rc < 0)
		return rc;
	sb->row.stopped = true;
	rc = run_op(sb, vm_stop, done, arg, e);
	if (rc < 0)
		unstop(sb);
	else
		sb->stopping = true;
	return rc;
}

int sbx_start(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e)
{
	bool was_stopped = sb->row.stopped;
	int rc = check_op(sb, e);
	if (rc == 0)
		rc = store_sandbox_set_stopped(sb->srv->store, sb->row.id, false, e);
	if (rc < 0)
		return rc;
	sb->row.stopped = false;
	if (sb->vm && vm_state(sb->vm) == VM_PAUSED)
		return run_op(sb, vm_resume, done, arg, e);
	rc = run_op(sb, vm_start, done, arg, e);
	/* refused (no room in the memory budget): it stays as it was */
	struct err ignored = ERR_INIT;
	if (rc < 0 && was_stopped &&
	    store_sandbox_set_stopped(sb->srv->store, sb->row.id, true, &ignored) == 0)
		sb->row.stopped = true;
	return rc;
}

int sbx_rename(struct sbx *sb, const char *name, struct err *e)
{
	int rc = valid_sandbox_name(name, e);
	if (rc < 0)
		return rc;
	rc = store_sandbox_rename(sb->srv->store, sb->row.user_id, sb->row.id, name, e);
	if (rc == -EEXIST)
		return err_set(e, EEXIST, "you already have a sandbox named '%s'", name);
	if (rc < 0)
		return rc;
	free(sb->row.name);
	sb->row.name = xstrdup(name);
	return 0;
}

/* ---- destroy ------------------------------------------------------------------- */

/* The store's record that a destroy began (so that a crash in its middle
 * does not leave half a sandbox: the next daemon finishes it). Best
 * effort: a destroy goes on without it (a full disk must not keep a
 * sandbox alive). */
static void mark_destroying(struct sbx *sb, bool on)
{
	struct err se = ERR_INIT;
	if (store_sandbox_set_destroying(sb->srv->store, sb->row.id, on, &se) < 0)
		log_warn("sandbox '%s': %s", sb->row.id, err_str(&se));
	sb->row.destroying = on;
}

static void destroyed(struct vm *vm UNUSED, int rc, const struct err *e, void *arg)
{
	struct sbx *sb = arg;
	struct err se = ERR_INIT;
	if (rc < 0) {
		log_warn("sandbox '%s': destroy: %s", sb->row.id, err_str(e));
		sb->destroying = false;
		mark_destroying(sb, false);
	} else {
		sb->vm = NULL;
		rc = store_sandbox_delete(sb->srv->store, sb->row.id, &se);
		if (rc < 0)
			log_error("sandbox '%s': %s", sb->row.id, err_str(&se));
		e = rc < 0 ? &se : NULL;
	}
	/* the destroy's waiters (those of a preempted operation were told
	 * already by op_done) */
	for (struct sbx_waiter **pp = &sb->waiters; *pp;) {
		struct sbx_waiter *w = *pp;
		if (w->kind != WAIT_DESTROY) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (w->fn)
			w->fn(sb, rc, e, w->arg);
		free(w);
	}
	if (!sb->destroying)
		return;
	unlink_sbx(sb);
	loop_defer_free((void (*)(void *))sbx_free, sb);
}

int sbx_destroy(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e)
{
	if (sb->destroying)
		return err_set(e, EBUSY, "sandbox '%s' is already being destroyed", sb->row.name);
	sb->destroying = true;
	add_waiter(sb, WAIT_DESTROY, done, arg);
	if (!sb->vm) {
		destroyed(NULL, 0, NULL, sb);
		return 0;
	}
	if (!sb->row.destroying)
		mark_destroying(sb, true);
	int rc = vm_destroy(sb->vm, destroyed, sb, e);
	if (rc < 0) {
		sb->destroying = false;
		mark_destroying(sb, false);
		sbx_cancel_wait(sb, arg);
	}
	return rc;
}

/* ---- create -------------------------------------------------------------------- */

/* Decrypt the secrets asked for into "NAME=value" (ret: NULL-terminated). */
static int gather_secrets(struct server *srv, const struct user *u, const struct sbx_create *req,
			  char ***ret, struct err *e)
{
	char **names = NULL;
	size_t n = 0;
	if (req->all_secrets) {
		struct secret_meta *list;
		size_t cnt;
		int rc = store_secret_list(srv->store, u->id, &list, &cnt, e);
		if (rc < 0)
			return rc;
		names = xcalloc(cnt + 1, sizeof(*names));
		for (size_t i = 0; i < cnt; i++) {
			names[n++] = list[i].name;
			list[i].name = NULL;
		}
		secret_meta_array_free(list, cnt);
	} else {
		names = strv_dup(req->secrets ? req->secrets : (char *[]){ NULL });
		n = strv_len(names);
	}
	char **out = xcalloc(n + 1, sizeof(*out));
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct buf ct = BUF_INIT, pt = BUF_INIT;
		rc = store_secret_get(srv->store, u->id, names[i], &ct, e);
		if (rc == -ENOENT)
			rc = err_set(e, EINVAL, "no secret '%s' (see 'bhatti secret list')", names[i]);
		if (rc == 0)
			rc = age_decrypt(&srv->age, ct.data, ct.len, &pt, e);
		if (rc == 0) {
			struct buf kv = BUF_INIT;
			buf_addf(&kv, "%s=", names[i]);
			buf_add(&kv, pt.data, pt.len);
			out[i] = buf_detach(&kv, NULL);
		}
		sodium_memzero(pt.data, pt.len);
		buf_release(&pt);
		buf_release(&ct);
	}
	strv_free(names);
	if (rc < 0) {
		for (char **p = out; *p; p++)
			sodium_memzero(*p, strlen(*p));
		strv_free(out);
		return rc;
	}
	*ret = out;
	return 0;
}

static void wipe_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		sodium_memzero(*p, strlen(*p));
	strv_free(v);
}

static void created(struct vm *vm UNUSED, int rc, const struct err *e, void *arg)
{
	struct sbx *sb = arg;
	if (rc == 0) {
		sbx_touch(sb);
		op_done(vm, 0, NULL, sb);
		return;
	}
	if (sb->destroying) {
		/* a destroy preempted the create: its waiters are told; the
		 * VM, the row and sb go when the destroy is done (destroyed) */
		op_done(vm, rc, e, sb);
		return;
	}
	/* the engine has forgotten the VM; the row goes too */
	log_warn("sandbox '%s': create failed: %s", sb->row.id, err_str(e));
	sb->vm = NULL;
	struct err se = ERR_INIT;
	if (store_sandbox_delete(sb->srv->store, sb->row.id, &se) < 0)
		log_error("sandbox '%s': %s", sb->row.id, err_str(&se));
	sb->destroying = true;   /* invisible from now on */
	op_done(vm, rc, e, sb);
	unlink_sbx(sb);
	loop_defer_free((void (*)(void *))sbx_free, sb);
}

void sbx_new_id(char out[VALID_SANDBOX_ID_LEN + 1])
{
	unsigned char r[VALID_SANDBOX_ID_LEN / 2];
	if (sodium_init() < 0)
		abort(); /* no usable random source: nothing can be created safely */
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(out, VALID_SANDBOX_ID_LEN + 1, r, sizeof(r));
}

static int count_for(struct server *srv, int64_t user_id)
{
	int n = 0;
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next)
		if (sb->row.user_id == user_id && !sb->destroying)
			n++;
	return n;
}

static struct sbx *sbx_add(struct server *srv, struct sandbox_row *row)
{
	struct sbx *sb = xcalloc(1, sizeof(*sb));
	sb->srv = srv;
	sb->row = *row;
	memset(row, 0, sizeof(*row));
	struct sbx **pp = &srv->sandboxes;
	while (*pp)
		pp = &(*pp)->next;
	*pp = sb;
	return sb;
}

int sbx_create(struct server *srv, const struct user *u, const struct sbx_create *req,
	       sbx_done_fn done, void *arg, bool *ret_existing, struct sbx **ret, struct err *e)
{
	*ret_existing = false;
	if (req->name && valid_sandbox_name(req->name, e) < 0)
		return -EINVAL;
	if (req->name) {
		struct sbx *old = sbx_find(srv, u, req->name);
		if (old && strcmp(old->row.name, req->name) == 0) {
			*ret_existing = true;
			*ret = old;
			return 0;
		}
	}
	if (count_for(srv, u->id) >= u->max_sandboxes)
		return err_set(e, EDQUOT, "quota: user '%s' may have at most %lld sandboxes",
			       u->name, (long long)u->max_sandboxes);
	int64_t cpus = req->cpus ? req->cpus : srv->cfg.defaults.cpus;
	int64_t mem = req->memory_mb ? req->memory_mb : srv->cfg.defaults.memory_mb;
	if (cpus > u->max_cpus)
		return err_set(e, EINVAL, "quota: at most %lld cpus per sandbox for user '%s'",
			       (long long)u->max_cpus, u->name);
	if (mem > u->max_memory_mb)
		return err_set(e, EINVAL, "quota: at most %lld MB of memory per sandbox for user '%s'",
			       (long long)u->max_memory_mb, u->name);
	char **secrets = NULL;
	int rc = gather_secrets(srv, u, req, &secrets, e);
	if (rc < 0)
		return rc;

	char id[VALID_SANDBOX_ID_LEN + 1];
	do
		sbx_new_id(id);
	while (engine_find(srv->eng, id));
	struct buf nb = BUF_INIT;
	if (req->name)
		buf_adds(&nb, req->name);
	else
		buf_addf(&nb, "sb-%s", id);
	struct sandbox_row row = {
		.id = xstrdup(id),
		.user_id = u->id,
		.name = buf_detach(&nb, NULL),
		.cpus = cpus,
		.memory_mb = mem,
		.image = xstrdup(req->image ? req->image : srv->cfg.default_image),
		.created_at = wall_sec(),
	};
	rc = store_sandbox_insert(srv->store, &row, e);
	if (rc < 0) {
		sandbox_row_release(&row);
		wipe_strv(secrets);
		return rc;
	}
	struct sbx *sb = sbx_add(srv, &row);
	struct vm_spec spec = {
		.id = sb->row.id,
		.hostname = valid_hostname(sb->row.name, NULL) == 0 ? sb->row.name : sb->row.id,
		.image = sb->row.image,
		.cpus = (unsigned)cpus,
		.memory_mb = (unsigned)mem,
		.env = req->env,
		.secrets = secrets,
		.init = req->init,
	};
	sb->busy = true;
	rc = vm_create(srv->eng, &spec, created, sb, &sb->vm, e);
	wipe_strv(secrets);
	if (rc < 0) {
		struct err se = ERR_INIT;
		store_sandbox_delete(srv->store, sb->row.id, &se);
		unlink_sbx(sb);
		sbx_free(sb);
		return rc;
	}
	add_waiter(sb, WAIT_OP, done, arg);
	*ret = sb;
	return 0;
}

/* ---- start-up ------------------------------------------------------------------ */

static void orphan_destroyed(struct vm *vm, int rc, const struct err *e, void *arg UNUSED)
{
	if (rc < 0)
		log_warn("vm '%s': destroying an orphan: %s", vm_id(vm), err_str(e));
}

static void destroy_orphan(struct vm *vm, void *arg)
{
	struct server *srv = arg;
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next)
		if (sb->vm == vm)
			return;
	struct err e = ERR_INIT;
	log_warn("vm '%s': no sandbox row (a create interrupted by a crash): destroying it",
		 vm_id(vm));
	if (vm_destroy(vm, orphan_destroyed, NULL, &e) < 0)
		log_warn("vm '%s': %s", vm_id(vm), err_str(&e));
}

int sbx_init(struct server *srv, struct err *e)
{
	struct sandbox_row *rows;
	size_t n;
	int rc = store_sandbox_list(srv->store, -1, &rows, &n, e);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct vm *vm = engine_find(srv->eng, rows[i].id);
		if (vm && vm_create_unfinished(vm)) {
			/* the create was cut short by a crash: nobody was told it
			 * exists; destroy_orphan() below removes the VM */
			vm = NULL;
		}
		if (!vm) {
			struct err se = ERR_INIT;
			log_warn("sandbox '%s' (%s): no VM (%s interrupted by a crash): dropping it",
				 rows[i].name, rows[i].id, rows[i].destroying ? "a destroy" : "a create");
			if (store_sandbox_delete(srv->store, rows[i].id, &se) < 0)
				log_error("%s", err_str(&se));
			sandbox_row_release(&rows[i]);
			continue;
		}
		struct sbx *sb = sbx_add(srv, &rows[i]);
		sb->vm = vm;
		sbx_touch(sb);
		if (sb->row.destroying) {
			struct err de = ERR_INIT;
			log_warn("sandbox '%s' (%s): finishing a destroy a crash interrupted",
				 sb->row.name, sb->row.id);
			if (sbx_destroy(sb, NULL, NULL, &de) < 0)
				log_warn("sandbox '%s': %s", sb->row.id, err_str(&de));
		}
	}
	free(rows);
	engine_each(srv->eng, destroy_orphan, srv);
	return 0;
}

void sbx_release_all(struct server *srv)
{
	while (srv->sandboxes) {
		struct sbx *sb = srv->sandboxes;
		srv->sandboxes = sb->next;
		sbx_free(sb);
	}
}
