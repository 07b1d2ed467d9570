/* test-engine.c — the VM engine with real QEMU microVMs (TCG here, KVM on
 * real hosts) booting the `tiny` image: boot and exec, clones with their
 * own identity, files, PTY sessions, pause/resume, cold stop/start with
 * processes and /tmp intact, named snapshots (restored as new sandboxes
 * after the source is gone) and forks with a running process in each
 * copy, failures of both leaving nothing, QEMU dying, re-adoption by a new engine,
 * confinement (each QEMU a uid of its own that can write nothing root
 * writes; the memory dir; a forged vm.json; a bounded console), errors,
 * and nothing left behind. Needs `make images`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "age.h"
#include <cjson/cJSON.h>
#include <sodium.h>

#include "engine.h"
#include "fileops.h"
#include "helpers.h"
#include "log.h"
#include "loop.h"

struct efix {
	char *data;
	struct age_identity age;   /* wraps the sandboxes' snapshot keys */
	struct engine *eng;
	int failed_events;
	char last_event_vm[64];
};

static struct efix *FX;

static void on_event(struct vm *vm, enum vm_state st, const struct err *e UNUSED, void *arg)
{
	struct efix *fx = arg;
	if (st == VM_FAILED) {
		fx->failed_events++;
		snprintf(fx->last_event_vm, sizeof(fx->last_event_vm), "%s", vm_id(vm));
	}
}

static const char *images_dir(void)
{
	const char *d = getenv("BHATTI_IMAGES");
	return d && d[0] ? d : "build/images";
}

/* Snapshot keys wrapped as the daemon wraps them (age, to an identity in
 * the data dir): the engine's cold snapshots are encrypted at rest. */
static int key_wrap(void *arg, const uint8_t key[32], char **ret, struct err *e)
{
	return age_wrap_key(((struct efix *)arg)->age.public, key, ret, e);
}

static int key_unwrap(void *arg, const char *wrapped, uint8_t key[32], struct err *e)
{
	return age_unwrap_key(&((struct efix *)arg)->age, wrapped, key, e);
}

static int open_engine_cfg(struct efix *fx, struct engine_config *cfg, struct engine **ret)
{
	struct err e = ERR_INIT;
	struct buf id = BUF_INIT;
	buf_addf(&id, "%s/age.key", fx->data);
	if (age_identity_load_or_create(id.data, &fx->age, &e) < 0)
		fail_msg("age identity: %s", err_str(&e));
	buf_release(&id);
	cfg->key_wrap = key_wrap;
	cfg->key_unwrap = key_unwrap;
	cfg->key_arg = fx;
	cfg->data_dir = fx->data;
	cfg->images_dir = images_dir();
	cfg->accel = getenv("BHATTI_ACCEL") ? getenv("BHATTI_ACCEL") : "auto";
	if (!cfg->vm_uid_count) { /* as root: each QEMU as a uid of its own */
		cfg->vm_uid_first = TEST_VM_UID_FIRST;
		cfg->vm_uid_count = TEST_VM_UID_COUNT;
	}
	int r = engine_new(cfg, on_event, fx, ret, &e);
	if (r < 0)
		fprintf(stderr, "engine: %s\n", err_str(&e));
	return r;
}

static int open_engine(struct efix *fx, bool no_templates, struct engine **ret)
{
	struct engine_config cfg = { .no_templates = no_templates, .pool_size = 1,
				     .console_max = 64 << 10 };
	return open_engine_cfg(fx, &cfg, ret);
}

static int setup(void **state)
{
	struct err e = ERR_INIT;
	struct efix *fx = xcalloc(1, sizeof(*fx));
	log_init("test-engine", LOG_WARN);
	if (loop_init() < 0 || fileops_init(&e) < 0)
		return -1;
	fx->data = test_tmpdir("engine");
	FX = fx;
	*state = fx;
	return open_engine(fx, false, &fx->eng);
}

static void destroy_each(struct vm *vm, void *arg UNUSED)
{
	struct err e = ERR_INIT;
	vm_destroy_sync(vm, &e);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

static int teardown(void **state)
{
	struct efix *fx = *state;
	int rc = 0;
	if (fx->eng) {
		engine_each(fx->eng, destroy_each, NULL);
		engine_free(fx->eng);
	}
	if (count_qemu_under(fx->data)) {
		fprintf(stderr, "QEMU processes left behind for %s\n", fx->data);
		rc = -1;
	}
	if (!getenv("KEEP_TEST_DIRS"))
		test_rmtree(fx->data);
	free(fx->data);
	free(fx);
	return rc;
}

/* ---- helpers ------------------------------------------------------------------ */

static struct vm *create(struct efix *fx, const char *id, char **env)
{
	struct vm *vm = NULL;
	struct err e = ERR_INIT;
	struct vm_spec spec = { .id = id, .env = env };
	if (vm_create_sync(fx->eng, &spec, &vm, &e) < 0)
		fail_msg("create '%s': %s", id, err_str(&e));
	assert_int_equal(vm_state(vm), VM_RUNNING);
	assert_non_null(vm_agent(vm));
	return vm;
}

/* Run sh -c cmd in the guest; returns stdout (caller frees). */
static char *sh(struct vm *vm, const char *cmd, int *ret_code)
{
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)cmd, NULL };
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
	struct ac_exec_result r;
	struct err e = ERR_INIT;
	if (ac_exec(vm_agent(vm), &req, NULL, 0, &r, 60000, &e) < 0)
		fail_msg("exec '%s': %s", cmd, err_str(&e));
	if (ret_code)
		*ret_code = r.exit_code;
	else if (r.exit_code != 0)
		fail_msg("exec '%s' exited %d: %s", cmd, r.exit_code, r.err.data);
	buf_release(&r.err);
	return buf_detach(&r.out, NULL);
}

static void destroy(struct vm *vm)
{
	struct err e = ERR_INIT;
	char *dir = xstrdup(vm_dir(vm));
	if (vm_destroy_sync(vm, &e) < 0)
		fail_msg("destroy: %s", err_str(&e));
	assert_int_equal(access(dir, F_OK), -1);
	free(dir);
}

/* Detached exec: a process that outlives the request. */
static int spawn_bg(struct vm *vm, const char *cmd)
{
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)cmd, NULL };
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .flags = PROTO_EXEC_DETACH,
				  .output_path = (char *)"/tmp/bg.log" };
	struct ac_exec_result r;
	struct err e = ERR_INIT;
	if (ac_exec(vm_agent(vm), &req, NULL, 0, &r, 30000, &e) < 0)
		fail_msg("detached exec: %s", err_str(&e));
	int pid = (int)r.pid;
	ac_exec_result_release(&r);
	return pid;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_boot_and_exec(void **state)
{
	struct efix *fx = *state;
	struct engine *cold;
	struct err e = ERR_INIT;
	/* a second engine on the same data dir would adopt fx's VMs; use its
	 * own dir: this one boots without templates */
	struct efix other = { .data = test_tmpdir("engine-boot") };
	assert_int_equal(open_engine(&other, true, &cold), 0);
	char *env[] = { (char *)"GREETING=hi there", NULL };
	struct vm_spec spec = { .id = "booted", .hostname = "bootbox", .env = env };
	struct vm *vm;
	if (vm_create_sync(cold, &spec, &vm, &e) < 0)
		fail_msg("create: %s", err_str(&e));
	assert_string_equal(vm_origin(vm), "boot");
	char *out = sh(vm, "echo \"$GREETING|$(hostname)|$(id -u)|$(pwd)|$(uname -s)\"", NULL);
	assert_string_equal(out, "hi there|bootbox|1000|/workspace|Linux\n");
	free(out);
	destroy(vm);
	engine_free(cold);
	assert_int_equal(count_qemu_under(other.data), 0);
	test_rmtree(other.data);
	free(other.data);
	(void)fx;
}

static void test_clones_have_their_own_identity(void **state)
{
	struct efix *fx = *state;
	struct vm *a = create(fx, "clone-a", NULL);
	struct vm *b = create(fx, "clone-b", NULL);
	assert_string_equal(vm_origin(a), "clone");
	assert_string_equal(vm_origin(b), "clone");
	char *ha = sh(a, "hostname", NULL), *hb = sh(b, "hostname", NULL);
	assert_string_equal(ha, "clone-a\n");
	assert_string_equal(hb, "clone-b\n");
	/* same template, different random state */
	char *ra = sh(a, "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'", NULL);
	char *rb = sh(b, "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'", NULL);
	assert_int_equal(strlen(ra), 64);
	assert_string_not_equal(ra, rb);
	/* and different agent tokens (vm.json holds them) */
	struct buf pa = BUF_INIT, pb = BUF_INIT;
	buf_addf(&pa, "%s/vm.json", vm_dir(a));
	buf_addf(&pb, "%s/vm.json", vm_dir(b));
	char *ja = read_text(pa.data), *jb = read_text(pb.data);
	char *ta = strstr(ja, "\"token\""), *tb = strstr(jb, "\"token\"");
	assert_non_null(ta);
	assert_non_null(tb);
	assert_true(strncmp(ta, tb, 80) != 0);
	/* the clock was set at create: close to the host's */
	char *now = sh(a, "date +%s", NULL);
	long long guest = strtoll(now, NULL, 10);
	assert_true(llabs(guest - (long long)wall_sec()) <= 5);
	free(ha); free(hb); free(ra); free(rb); free(ja); free(jb); free(now);
	buf_release(&pa);
	buf_release(&pb);
	destroy(a);
	destroy(b);
}

static void test_file_roundtrip_5mb(void **state)
{
	struct efix *fx = *state;
	struct vm *vm = create(fx, "files", NULL);
	size_t len = 5u << 20;
	uint8_t *data = xmalloc(len);
	assert_int_equal(getrandom(data, len, 0), (ssize_t)len);
	struct proto_file_write w = { .path = (char *)"/workspace/blob.bin", .mode = 0600, .size = len };
	struct err e = ERR_INIT;
	if (ac_write_file(vm_agent(vm), &w, data, len, 60000, &e) < 0)
		fail_msg("write: %s", err_str(&e));
	struct proto_file_read r = { .path = (char *)"/workspace/blob.bin" };
	struct buf got = BUF_INIT;
	struct proto_file_meta meta;
	if (ac_read_file(vm_agent(vm), &r, &got, &meta, NULL, 60000, &e) < 0)
		fail_msg("read: %s", err_str(&e));
	assert_int_equal(got.len, len);
	assert_memory_equal(got.data, data, len);
	assert_int_equal(meta.size, len);
	assert_int_equal(meta.mode, 0600);
	assert_int_equal(meta.uid, 1000);
	/* the guest agrees on the bytes */
	char *n = sh(vm, "wc -c < /workspace/blob.bin", NULL);
	assert_int_equal(strtoul(n, NULL, 10), len);
	free(n);
	proto_msg_release(PROTO_FILE_META, &meta);
	buf_release(&got);
	free(data);
	destroy(vm);
}

struct sess {
	struct buf out;
	bool ended;
	bool record;
};

static void s_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	if (f->type == PROTO_SESSION)
		((struct sess *)arg)->record = true;
}

static void s_data(struct ac_stream *s UNUSED, uint8_t ch UNUSED, const uint8_t *p, size_t n,
		   void *arg)
{
	buf_add(&((struct sess *)arg)->out, p, n);
}

static void s_closed(struct ac_stream *s UNUSED, const struct err *e UNUSED, void *arg)
{
	((struct sess *)arg)->ended = true;
}

static const struct ac_stream_cb s_cb = { .frame = s_frame, .data = s_data, .closed = s_closed };

static bool pump_for(struct ac *ac, struct sess *x, const char *text, bool want_end, int ms)
{
	struct err e = ERR_INIT;
	uint64_t end = now_ms() + (uint64_t)ms;
	while (now_ms() < end) {
		if (text && strstr(x->out.data, text))
			return true;
		if (want_end && x->ended)
			return true;
		if (ac_poll(ac, 20, &e) < 0)
			return false;
	}
	return false;
}

static void test_pty_session_reattach(void **state)
{
	struct efix *fx = *state;
	struct vm *vm = create(fx, "pty", NULL);
	struct ac *ac = vm_agent(vm);
	struct err e = ERR_INIT;
	char *empty[] = { NULL };
	struct proto_session_open open = { .id = (char *)"work", .argv = empty, .cwd = (char *)"",
					   .rows = 24, .cols = 80 };
	struct sess a = { BUF_INIT, false, false };
	struct ac_stream *s = ac_open(ac, PROTO_SESSION_OPEN, &open, &s_cb, &a, &e);
	assert_non_null(s);
	const char *typed = "echo marker-$((6*7))\n";
	ac_send_data(s, PROTO_CH_IN, typed, strlen(typed));
	assert_true(pump_for(ac, &a, "marker-42", false, 20000));
	ac_send_close(s); /* detach */
	assert_true(pump_for(ac, &a, NULL, true, 10000));

	struct proto_session_attach at = { .id = (char *)"work" };
	struct sess b = { BUF_INIT, false, false };
	s = ac_open(ac, PROTO_SESSION_ATTACH, &at, &s_cb, &b, &e);
	assert_non_null(s);
	assert_true(pump_for(ac, &b, "marker-42", false, 20000)); /* scrollback */
	typed = "echo after-$((1+1))\n";
	ac_send_data(s, PROTO_CH_IN, typed, strlen(typed));
	assert_true(pump_for(ac, &b, "after-2", false, 20000)); /* and live */
	typed = "exit\n";
	ac_send_data(s, PROTO_CH_IN, typed, strlen(typed));
	assert_true(pump_for(ac, &b, NULL, true, 20000));
	buf_release(&a.out);
	buf_release(&b.out);
	destroy(vm);
}

static long read_counter(struct vm *vm)
{
	char *c = sh(vm, "cat /tmp/counter", NULL);
	long v = strtol(c, NULL, 10);
	free(c);
	return v;
}

static void test_pause_stops_the_guest(void **state)
{
	struct efix *fx = *state;
	struct vm *vm = create(fx, "pauser", NULL);
	struct err e = ERR_INIT;
	spawn_bg(vm, "i=0; while :; do i=$((i+1)); echo $i > /tmp/counter.new; "
		 "mv /tmp/counter.new /tmp/counter; sleep 0.05; done");
	usleep(1000000);
	long c1 = read_counter(vm);
	assert_true(c1 > 0);
	assert_int_equal(vm_pause_sync(vm, &e), 0);
	assert_int_equal(vm_state(vm), VM_PAUSED);
	assert_null(vm_agent(vm)); /* nothing answers while paused */
	usleep(1500000);
	assert_int_equal(vm_resume_sync(vm, &e), 0);
	assert_int_equal(vm_state(vm), VM_RUNNING);
	long c2 = read_counter(vm);
	/* 1.5 s paused: ~30 ticks had it run; a few for the exec round trips */
	assert_true(c2 - c1 < 12);
	usleep(1000000);
	long c3 = read_counter(vm);
	assert_true(c3 - c2 >= 5); /* and it runs again */
	destroy(vm);
}

/* The ready spare memory file in the engine's tmpfs dir (spare-*.mem). */
static bool find_spare(const char *dir, char *out, size_t n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;
	while (d && !found && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (strncmp(de->d_name, "spare-", 6) == 0 && l > 4 &&
		    strcmp(de->d_name + l - 4, ".mem") == 0 && !strstr(de->d_name, ".part.")) {
			snprintf(out, n, "%s/%s", dir, de->d_name);
			found = true;
		}
	}
	if (d)
		closedir(d);
	return found;
}

static void test_cold_stop_and_start(void **state)
{
	struct efix *fx = *state;
	struct vm *vm = create(fx, "cold", NULL);
	struct err e = ERR_INIT;
	int bg = spawn_bg(vm, "exec sleep 100000");
	assert_true(bg > 1);
	char *x = sh(vm, "echo kept-in-ram > /tmp/note && echo on-disk > /workspace/note", NULL);
	free(x);
	int qemu = vm_pid(vm);
	assert_true(qemu > 0);
	char hot[512];
	struct buf mem = BUF_INIT;
	buf_addf(&mem, "%s/mem", vm_dir(vm));

	assert_int_equal(vm_stop_sync(vm, &e), 0);
	assert_int_equal(vm_state(vm), VM_STOPPED);
	assert_null(vm_agent(vm));
	assert_int_equal(vm_pid(vm), 0);
	assert_true(pid_wait_gone(qemu, 3000)); /* QEMU is gone: memory freed */
	assert_int_equal(access(mem.data, R_OK), 0); /* the snapshot is on disk */
	snprintf(hot, sizeof(hot), "%s/cold.mem", engine_mem_dir(fx->eng));
	/* and none of it on tmpfs: the file worker frees it right after */
	for (int i = 0; i < 200 && access(hot, F_OK) == 0; i++)
		loop_run_once(10);
	assert_int_equal(access(hot, F_OK), -1);

	assert_int_equal(vm_start_sync(vm, &e), 0);
	assert_int_equal(vm_state(vm), VM_RUNNING);
	char *note = sh(vm, "cat /tmp/note /workspace/note", NULL);
	assert_string_equal(note, "kept-in-ram\non-disk\n");
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "test -d /proc/%d && cat /proc/%d/comm", bg, bg);
	char *comm = sh(vm, cmd, NULL);
	assert_string_equal(comm, "sleep\n"); /* the process lived through it */
	/* the clock moved on with the host */
	char *now = sh(vm, "date +%s", NULL);
	assert_true(llabs(strtoll(now, NULL, 10) - (long long)wall_sec()) <= 5);
	/* stop/start are idempotent */
	assert_int_equal(vm_start_sync(vm, &e), 0);

	/* while it is stopped, a copy of its template's memory is made on
	 * tmpfs; a start takes it and writes only the sandbox's own pages
	 * over it: they must all win (random data, and zeroes) */
	const char *sums = "md5sum /tmp/r /tmp/z /tmp/note";
	char *sum1 = sh(vm, "head -c 4000000 /dev/urandom > /tmp/r && "
			    "dd if=/dev/zero of=/tmp/z bs=1M count=2 2>/dev/null && "
			    "md5sum /tmp/r /tmp/z /tmp/note", NULL);
	assert_int_equal(vm_stop_sync(vm, &e), 0);
	char spare[512] = "";
	for (int i = 0; i < 1000 && !find_spare(engine_mem_dir(fx->eng), spare, sizeof(spare)); i++)
		loop_run_once(10);
	assert_true(spare[0]);
	assert_int_equal(vm_start_sync(vm, &e), 0);
	assert_int_equal(access(spare, F_OK), -1); /* taken */
	char *sum2 = sh(vm, sums, NULL);
	assert_string_equal(sum1, sum2);
	char *comm2 = sh(vm, cmd, NULL);
	assert_string_equal(comm2, "sleep\n");
	/* a stop at once after a start: the start's clean-up of the stale
	 * snapshot must not take the new one */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(vm_stop_sync(vm, &e), 0);
		assert_int_equal(vm_start_sync(vm, &e), 0);
	}
	char *sum3 = sh(vm, sums, NULL);
	assert_string_equal(sum1, sum3);
	free(sum3);
	free(note); free(comm); free(now); free(sum1); free(sum2); free(comm2);
	buf_release(&mem);
	destroy(vm);
}

/* No file under dir holds text (grep's exit 1: an error proves nothing). */
static void assert_not_in_files(const char *text, const char *dir)
{
	struct buf o = BUF_INIT, ge = BUF_INIT;
	int rc = test_grep_absent(text, dir, &o, &ge);
	if (rc != 1)
		fail_msg("grep for '%s' in %s: exit %d, want 1 (not found); found in: %s; "
			 "errors: %s", text, dir, rc, o.data, ge.data);
	buf_release(&o);
	buf_release(&ge);
}

/* A cold snapshot is encrypted at rest: the guest's environment is in its
 * memory, and not in the file; one byte changed in the file and the start
 * is refused (the sandbox FAILED, with the reason), nothing crashes. */
static void test_tampered_snapshot_is_refused(void **state)
{
	struct efix *fx = *state;
	char *env[] = { (char *)"MARK=at-rest-marker-5f3a9c", NULL };
	struct vm *vm = create(fx, "tamper", env);
	struct err e = ERR_INIT;
	char *x = sh(vm, "echo \"$MARK\" > /tmp/mark; cat /tmp/mark", NULL);
	assert_string_equal(x, "at-rest-marker-5f3a9c\n");
	free(x);
	assert_int_equal(vm_stop_sync(vm, &e), 0);
	assert_not_in_files("at-rest-marker-5f3a9c", vm_dir(vm));
	/* one bit of the first page written */
	struct buf mem = BUF_INIT;
	buf_addf(&mem, "%s/mem", vm_dir(vm));
	int fd = open(mem.data, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	off_t data = lseek(fd, 0, SEEK_DATA);
	assert_true(data >= 0);
	unsigned char c;
	assert_int_equal(pread(fd, &c, 1, data + 100), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, data + 100), 1);
	close(fd);
	assert_int_equal(vm_start_sync(vm, &e), -EBADMSG);
	assert_int_equal(vm_state(vm), VM_FAILED);
	assert_non_null(strstr(vm_error(vm), "integrity check"));
	for (int i = 0; i < 300 && vm_pid(vm) > 0; i++) /* its QEMU is killed */
		loop_run_once(10);
	assert_int_equal(vm_pid(vm), 0);
	buf_release(&mem);
	destroy(vm);
}

/* A create leaves a copy of its template's memory on tmpfs (a spare) for
 * the next create, which takes that very file as its RAM: the clone made
 * from it is a clone of its own all the same (identity, random state,
 * cold stop and start against the template). The spare goes when no
 * create has cloned the template for the linger (here 2 s). */
static void test_clone_takes_the_spare(void **state UNUSED)
{
	struct efix other = { .data = test_tmpdir("engine-spare") };
	struct engine_config cfg = { .spare_linger_ms = 2000 }; /* no pool */
	struct engine *en;
	struct err e = ERR_INIT;
	assert_int_equal(open_engine_cfg(&other, &cfg, &en), 0);
	struct vm *a, *b;
	struct vm_spec sa = { .id = "first" }, sb = { .id = "second" };
	if (vm_create_sync(en, &sa, &a, &e) < 0)
		fail_msg("create: %s", err_str(&e));
	char spare[512] = "";
	for (int i = 0; i < 1000 && !find_spare(engine_mem_dir(en), spare, sizeof(spare)); i++)
		loop_run_once(10);
	assert_true(spare[0]);
	struct stat st_spare, st_b;
	assert_int_equal(stat(spare, &st_spare), 0);
	if (vm_create_sync(en, &sb, &b, &e) < 0)
		fail_msg("create: %s", err_str(&e));
	assert_string_equal(vm_origin(b), "clone");
	char hot[600];
	snprintf(hot, sizeof(hot), "%s/second.mem", engine_mem_dir(en));
	assert_int_equal(stat(hot, &st_b), 0);
	assert_true(st_b.st_ino == st_spare.st_ino); /* its RAM is the spare */
	char *ha = sh(a, "hostname", NULL), *hb = sh(b, "hostname", NULL);
	assert_string_equal(ha, "first\n");
	assert_string_equal(hb, "second\n");
	char *ra = sh(a, "head -c 32 /dev/urandom | od -An -tx1", NULL);
	char *rb = sh(b, "head -c 32 /dev/urandom | od -An -tx1", NULL);
	assert_string_not_equal(ra, rb);
	char *sum1 = sh(b, "head -c 3000000 /dev/urandom > /tmp/r && md5sum /tmp/r", NULL);
	assert_int_equal(vm_stop_sync(b, &e), 0);
	assert_int_equal(vm_start_sync(b, &e), 0);
	char *sum2 = sh(b, "md5sum /tmp/r", NULL);
	assert_string_equal(sum1, sum2);
	destroy(a);
	destroy(b);
	/* no create for the linger: the spare is removed */
	for (int i = 0; i < 500 && find_spare(engine_mem_dir(en), spare, sizeof(spare)); i++)
		loop_run_once(10);
	assert_false(find_spare(engine_mem_dir(en), spare, sizeof(spare)));
	engine_free(en);
	assert_int_equal(count_qemu_under(other.data), 0);
	test_rmtree(other.data);
	free(other.data);
	free(ha); free(hb); free(ra); free(rb); free(sum1); free(sum2);
}

/* Guest memory on tmpfs has a budget: with room for two guests of 512 MB
 * (and not three), a third create and a start that would go past it are
 * refused at once (-EAGAIN, saying why) and leave nothing behind; the
 * engine's own spare gives way to a sandbox. */
static void test_memory_budget(void **state UNUSED)
{
	struct efix other = { .data = test_tmpdir("engine-budget") };
	struct engine_config cfg = { .mem_budget = 1100ull << 20 }; /* no pool */
	struct engine *en;
	struct err e = ERR_INIT;
	assert_int_equal(open_engine_cfg(&other, &cfg, &en), 0);
	struct vm *a, *b, *c;
	struct vm_spec sa = { .id = "a" }, sb = { .id = "b" }, sc = { .id = "c" };
	if (vm_create_sync(en, &sa, &a, &e) < 0 || vm_create_sync(en, &sb, &b, &e) < 0)
		fail_msg("create: %s", err_str(&e));
	char hot[600];
	snprintf(hot, sizeof(hot), "%s/c.mem", engine_mem_dir(en));
	assert_int_equal(vm_create_sync(en, &sc, &c, &e), -EAGAIN);
	assert_non_null(strstr(err_str(&e), "no room for 512 MB of guest memory"));
	assert_null(engine_find(en, "c"));
	assert_int_equal(access(hot, F_OK), -1);
	/* b's memory is freed by its stop (its spare may take it meanwhile:
	 * it gives way) */
	assert_int_equal(vm_stop_sync(b, &e), 0);
	for (int i = 0; i < 200; i++)
		loop_run_once(10);
	if (vm_create_sync(en, &sc, &c, &e) < 0)
		fail_msg("create after a stop: %s", err_str(&e));
	err_clear(&e);
	assert_int_equal(vm_start_sync(b, &e), -EAGAIN);
	assert_non_null(strstr(err_str(&e), "no room"));
	assert_int_equal(vm_state(b), VM_STOPPED);
	destroy(c);
	if (vm_start_sync(b, &e) < 0)
		fail_msg("start: %s", err_str(&e));
	char *x = sh(b, "echo up", NULL);
	assert_string_equal(x, "up\n");
	free(x);
	destroy(a);
	destroy(b);
	engine_free(en);
	assert_int_equal(count_qemu_under(other.data), 0);
	test_rmtree(other.data);
	free(other.data);
}

/* ---- named snapshots and forks ---------------------------------------------------- */

static char *snap_dir(struct efix *fx, const char *name)
{
	struct buf d = BUF_INIT;
	buf_addf(&d, "%s/snapshots", fx->data);
	mkdir(d.data, 0700);
	buf_addf(&d, "/%s", name);
	return buf_detach(&d, NULL);
}

static char *guest_random(struct vm *vm)
{
	return sh(vm, "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'", NULL);
}

/* a process started before the copy, alive in vm (its comm) */
static void assert_alive(struct vm *vm, int pid, const char *comm)
{
	char cmd[96], want[64];
	snprintf(cmd, sizeof(cmd), "test -d /proc/%d && cat /proc/%d/comm", pid, pid);
	snprintf(want, sizeof(want), "%s\n", comm);
	char *got = sh(vm, cmd, NULL);
	assert_string_equal(got, want);
	free(got);
}

/* A named snapshot of a running sandbox: the sandbox goes on; the
 * snapshot (encrypted at rest, the guest's environment not in its files)
 * outlives its source and restores as new sandboxes with the source's
 * files and processes and identities of their own; a restored one stops
 * and starts like any. */
static void test_snapshot_and_restore(void **state)
{
	struct efix *fx = *state;
	char *env[] = { (char *)"MARK=snap-marker-81d2e7", NULL };
	struct vm *src = create(fx, "snap-src", env);
	struct err e = ERR_INIT;
	int bg = spawn_bg(src, "exec sleep 100000");
	char *x = sh(src, "echo \"$MARK\" > /tmp/mark; echo on-disk > /workspace/note", NULL);
	free(x);
	char *dir = snap_dir(fx, "s1");
	uint64_t t0 = now_ns();
	assert_int_equal(vm_snapshot_sync(src, dir, &e), 0);
	fprintf(stderr, "# snapshot create: %.1f ms\n", (double)(now_ns() - t0) / 1e6);
	assert_int_equal(vm_state(src), VM_RUNNING);
	x = sh(src, "echo still-here", NULL); /* it went on */
	assert_string_equal(x, "still-here\n");
	free(x);
	const char *files[] = { "snap.json", "disk.ext4", "mem", "state" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		struct buf p = BUF_INIT;
		struct stat st;
		buf_addf(&p, "%s/%s", dir, files[i]);
		assert_int_equal(stat(p.data, &st), 0);
		assert_int_equal(st.st_uid, getuid()); /* root's (the engine's) */
		assert_int_equal(st.st_mode & 077, 0);
		buf_release(&p);
	}
	struct buf part = BUF_INIT;
	buf_addf(&part, "%s.part", dir);
	assert_int_equal(access(part.data, F_OK), -1);
	assert_not_in_files("snap-marker-81d2e7", dir);
	/* a snapshot of a paused sandbox leaves it paused */
	char *dir2 = snap_dir(fx, "s2");
	assert_int_equal(vm_pause_sync(src, &e), 0);
	assert_int_equal(vm_snapshot_sync(src, dir2, &e), 0);
	assert_int_equal(vm_state(src), VM_PAUSED);
	/* and it can be migrated again while still paused: a cold stop (QEMU
	 * 7.2 asserted in bdrv_inactivate_recurse and died when the copy had
	 * left its disk handed over) */
	assert_int_equal(vm_stop_sync(src, &e), 0);
	assert_int_equal(vm_start_sync(src, &e), 0);
	assert_alive(src, bg, "sleep");
	destroy(src); /* the snapshots outlive it */

	struct vm *a = NULL, *b = NULL;
	struct vm_spec sa = { .id = "snap-a", .snapshot = dir }, sb = { .id = "snap-b", .snapshot = dir };
	t0 = now_ns();
	if (vm_create_sync(fx->eng, &sa, &a, &e) < 0)
		fail_msg("restore: %s", err_str(&e));
	fprintf(stderr, "# snapshot resume: %.1f ms\n", (double)(now_ns() - t0) / 1e6);
	if (vm_create_sync(fx->eng, &sb, &b, &e) < 0)
		fail_msg("restore: %s", err_str(&e));
	assert_string_equal(vm_origin(a), "restore");
	char *na = sh(a, "cat /tmp/mark /workspace/note; hostname", NULL);
	char *nb = sh(b, "cat /tmp/mark /workspace/note; hostname", NULL);
	assert_string_equal(na, "snap-marker-81d2e7\non-disk\nsnap-a\n");
	assert_string_equal(nb, "snap-marker-81d2e7\non-disk\nsnap-b\n");
	assert_alive(a, bg, "sleep");
	assert_alive(b, bg, "sleep");
	char *ra = guest_random(a), *rb = guest_random(b);
	assert_string_not_equal(ra, rb);
	/* its own key: a cold stop and start of the restored sandbox */
	assert_int_equal(vm_stop_sync(a, &e), 0);
	assert_int_equal(vm_start_sync(a, &e), 0);
	assert_alive(a, bg, "sleep");
	/* the paused one restores too */
	struct vm *c = NULL;
	struct vm_spec sc = { .id = "snap-c", .snapshot = dir2 };
	if (vm_create_sync(fx->eng, &sc, &c, &e) < 0)
		fail_msg("restore of a paused snapshot: %s", err_str(&e));
	assert_alive(c, bg, "sleep");
	free(na); free(nb); free(ra); free(rb);
	buf_release(&part);
	destroy(a);
	destroy(b);
	destroy(c);
	assert_int_equal(access(dir, F_OK), 0); /* the engine never removes a snapshot */
	test_rmtree(dir);
	test_rmtree(dir2);
	free(dir);
	free(dir2);
}

/* Fork: a running copy of a running sandbox; a process started before runs
 * on in both, files are the same, hostnames and random state differ. */
static void test_fork(void **state)
{
	struct efix *fx = *state;
	struct vm *src = create(fx, "fork-src", NULL);
	struct err e = ERR_INIT;
	int bg = spawn_bg(src, "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done");
	char *x = sh(src, "echo shared > /workspace/f; sleep 0.5", NULL);
	free(x);
	struct vm *b = NULL;
	struct vm_spec spec = { .id = "fork-b" };
	uint64_t t0 = now_ns();
	if (vm_fork_sync(src, &spec, &b, &e) < 0)
		fail_msg("fork: %s", err_str(&e));
	fprintf(stderr, "# fork: %.1f ms\n", (double)(now_ns() - t0) / 1e6);
	assert_int_equal(vm_state(src), VM_RUNNING);
	assert_int_equal(vm_state(b), VM_RUNNING);
	assert_string_equal(vm_origin(b), "fork");
	assert_alive(src, bg, "sh");
	assert_alive(b, bg, "sh");
	char *fa = sh(src, "cat /workspace/f; hostname", NULL), *fb = sh(b, "cat /workspace/f; hostname", NULL);
	assert_string_equal(fa, "shared\nfork-src\n");
	assert_string_equal(fb, "shared\nfork-b\n");
	char *ra = guest_random(src), *rb = guest_random(b);
	assert_string_not_equal(ra, rb);
	/* the loop goes on in both */
	char *c1a = sh(src, "cat /tmp/count", NULL), *c1b = sh(b, "cat /tmp/count", NULL);
	char *c2a = sh(src, "sleep 1; cat /tmp/count", NULL), *c2b = sh(b, "sleep 1; cat /tmp/count", NULL);
	assert_true(strtol(c2a, NULL, 10) > strtol(c1a, NULL, 10));
	assert_true(strtol(c2b, NULL, 10) > strtol(c1b, NULL, 10));
	/* a fork of a fork, of a paused sandbox: it stays paused */
	struct vm *c = NULL;
	struct vm_spec sc = { .id = "fork-c" };
	assert_int_equal(vm_pause_sync(b, &e), 0);
	if (vm_fork_sync(b, &sc, &c, &e) < 0)
		fail_msg("fork of a paused one: %s", err_str(&e));
	assert_int_equal(vm_state(b), VM_PAUSED);
	assert_alive(c, bg, "sh");
	/* a copy stops and starts like any sandbox */
	assert_int_equal(vm_stop_sync(c, &e), 0);
	assert_int_equal(vm_start_sync(c, &e), 0);
	assert_alive(c, bg, "sh");
	free(fa); free(fb); free(ra); free(rb); free(c1a); free(c1b); free(c2a); free(c2b);
	destroy(src);
	destroy(b);
	destroy(c);
}

static void no_part_left(const char *dir)
{
	struct buf part = BUF_INIT;
	buf_addf(&part, "%s.part", dir);
	for (int i = 0; i < 300 && access(part.data, F_OK) == 0; i++)
		loop_run_once(10);
	assert_int_equal(access(part.data, F_OK), -1);
	assert_int_equal(access(dir, F_OK), -1);
	buf_release(&part);
}

static void fork_done(struct vm *vm UNUSED, int rc, const struct err *e UNUSED, void *arg)
{
	*(int *)arg = rc ? rc : 1;
}

/* What fails leaves nothing: no half-written snapshot, no VM, no files. */
static void test_copy_failures(void **state)
{
	struct efix *fx = *state;
	struct vm *src = create(fx, "copy-fail", NULL);
	struct err e = ERR_INIT;
	char *dir = snap_dir(fx, "f1");
	/* into a snapshot that exists */
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(vm_snapshot_sync(src, dir, &e), -EEXIST);
	assert_int_equal(vm_state(src), VM_RUNNING);
	rmdir(dir);
	/* of a stopped sandbox */
	assert_int_equal(vm_stop_sync(src, &e), 0);
	assert_int_equal(vm_snapshot_sync(src, dir, &e), -EINVAL);
	struct vm_spec fs = { .id = "copy-fail-b" };
	struct vm *b = NULL;
	assert_int_equal(vm_fork_sync(src, &fs, &b, &e), -EINVAL);
	assert_null(engine_find(fx->eng, "copy-fail-b"));
	assert_int_equal(vm_start_sync(src, &e), 0);
	/* a fork onto a name in use */
	struct vm_spec same = { .id = "copy-fail" };
	assert_int_equal(vm_fork_sync(src, &same, &b, &e), -EEXIST);
	/* the source destroyed in the middle of a snapshot: no part stays */
	struct vm *src2 = create(fx, "copy-fail-2", NULL);
	int src_rc = 0;
	assert_int_equal(vm_snapshot(src, dir, fork_done, &src_rc, &e), 0);
	destroy(src);
	assert_int_equal(src_rc, -ECANCELED);
	no_part_left(dir);
	/* ... in the middle of a fork: the copy fails, nothing of it stays */
	int child_rc = 0;
	src_rc = 0;
	assert_int_equal(vm_fork(src2, &fs, fork_done, &src_rc, fork_done, &child_rc, &b, &e), 0);
	char *bdir = xstrdup(vm_dir(b));
	destroy(src2);
	while (!child_rc)
		loop_run_once(100);
	assert_true(child_rc < 0);
	assert_null(engine_find(fx->eng, "copy-fail-b"));
	for (int i = 0; i < 300 && access(bdir, F_OK) == 0; i++)
		loop_run_once(10);
	assert_int_equal(access(bdir, F_OK), -1);
	/* a restore of no snapshot, and of a tampered one */
	struct vm *r = NULL;
	struct vm_spec rs = { .id = "copy-fail-r", .snapshot = dir };
	assert_true(vm_create_sync(fx->eng, &rs, &r, &e) < 0);
	assert_non_null(strstr(err_str(&e), "no snapshot"));
	assert_null(engine_find(fx->eng, "copy-fail-r"));
	struct vm *s3 = create(fx, "copy-fail-3", NULL);
	assert_int_equal(vm_snapshot_sync(s3, dir, &e), 0);
	destroy(s3);
	struct buf mem = BUF_INIT;
	buf_addf(&mem, "%s/mem", dir);
	int fd = open(mem.data, O_RDWR | O_CLOEXEC);
	off_t data = lseek(fd, 0, SEEK_DATA);
	unsigned char ch;
	assert_int_equal(pread(fd, &ch, 1, data + 100), 1);
	ch ^= 1;
	assert_int_equal(pwrite(fd, &ch, 1, data + 100), 1);
	close(fd);
	assert_int_equal(vm_create_sync(fx->eng, &rs, &r, &e), -EBADMSG);
	assert_null(engine_find(fx->eng, "copy-fail-r"));
	struct buf rdir = BUF_INIT;
	buf_addf(&rdir, "%s/sandboxes/copy-fail-r", fx->data);
	for (int i = 0; i < 300 && access(rdir.data, F_OK) == 0; i++)
		loop_run_once(10);
	assert_int_equal(access(rdir.data, F_OK), -1);
	test_rmtree(dir);
	buf_release(&mem);
	buf_release(&rdir);
	free(bdir);
	free(dir);
}

static void test_qemu_killed_is_detected(void **state)
{
	struct efix *fx = *state;
	struct vm *vm = create(fx, "victim", NULL);
	struct err e = ERR_INIT;
	int before = fx->failed_events;
	int pid = vm_pid(vm);
	assert_true(pid > 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	uint64_t t0 = now_ms();
	while (fx->failed_events == before && now_ms() - t0 < 5000)
		loop_run_once(50);
	assert_int_equal(fx->failed_events, before + 1);
	assert_true(now_ms() - t0 < 2000); /* promptly */
	assert_string_equal(fx->last_event_vm, "victim");
	assert_int_equal(vm_state(vm), VM_FAILED);
	assert_non_null(strstr(vm_error(vm), "QEMU was killed by signal 9"));
	/* a failed sandbox refuses work but can be destroyed */
	assert_int_equal(vm_start_sync(vm, &e), -EINVAL);
	destroy(vm);
}

static void test_readopt_after_engine_restart(void **state)
{
	struct efix *fx = *state;
	struct err e = ERR_INIT;
	struct vm *hot = create(fx, "survivor", NULL);
	struct vm *cold = create(fx, "sleeper", NULL);
	struct vm *warm = create(fx, "dozer", NULL);
	char *x = sh(hot, "echo before > /tmp/mark", NULL);
	free(x);
	x = sh(warm, "echo dozing > /tmp/mark", NULL);
	free(x);
	int pid = vm_pid(hot);
	assert_int_equal(vm_stop_sync(cold, &e), 0);
	assert_int_equal(vm_pause_sync(warm, &e), 0);

	engine_free(fx->eng); /* the engine goes away; VMs do not */
	fx->eng = NULL;
	assert_true(pid_alive(pid));
	assert_int_equal(open_engine(fx, false, &fx->eng), 0);

	hot = engine_find(fx->eng, "survivor");
	cold = engine_find(fx->eng, "sleeper");
	assert_non_null(hot);
	assert_non_null(cold);
	assert_int_equal(vm_state(hot), VM_RUNNING);
	assert_int_equal(vm_pid(hot), pid);
	assert_int_equal(vm_state(cold), VM_STOPPED);
	/* a paused one is adopted paused, with its agent channel: it answers
	 * once resumed (before, the channel was opened only for running VMs,
	 * and an exec after the resume found no agent: "not running") */
	warm = engine_find(fx->eng, "dozer");
	assert_non_null(warm);
	for (int i = 0; i < 100 && vm_state(warm) == VM_STARTING; i++)
		loop_run_once(50);
	assert_int_equal(vm_state(warm), VM_PAUSED);
	assert_int_equal(vm_resume_sync(warm, &e), 0);
	for (int i = 0; i < 100 && !(vm_agent(warm) && ac_ready(vm_agent(warm))); i++)
		loop_run_once(50);
	assert_non_null(vm_agent(warm));
	char *d = sh(warm, "cat /tmp/mark", NULL);
	assert_string_equal(d, "dozing\n");
	free(d);
	destroy(warm);
	/* the agent reconnects as the engine settles */
	for (int i = 0; i < 100 && !(vm_agent(hot) && ac_ready(vm_agent(hot))); i++)
		loop_run_once(50);
	char *m = sh(hot, "cat /tmp/mark", NULL);
	assert_string_equal(m, "before\n");
	assert_int_equal(vm_start_sync(cold, &e), 0);
	char *h = sh(cold, "hostname", NULL);
	assert_string_equal(h, "sleeper\n");
	/* the new engine found the template on disk and no pool (the old
	 * engine's pool clones were killed): a create clones, and the pool
	 * fills again */
	struct vm *late = create(fx, "late", NULL);
	struct buf pool = BUF_INIT;
	buf_addf(&pool, "%s/pool", fx->data);
	for (int i = 0; i < 600 && count_qemu_under(pool.data) == 0; i++)
		loop_run_once(50);
	assert_int_equal(count_qemu_under(pool.data), 1);
	buf_release(&pool);
	free(m);
	free(h);
	destroy(late);
	destroy(hot);
	destroy(cold);
}

/* ---- confinement (issue 10, items 4 and 5) ------------------------------------------ */

/* /proc/<pid>/status's "Key:" line (without the key), or "" (caller frees). */
static char *status_line(int pid, const char *key)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	char *st = read_text(path), *line = NULL;
	char *p = st ? strstr(st, key) : NULL;
	if (p) {
		p += strlen(key);
		line = xstrndup(p, strcspn(p, "\n"));
	}
	free(st);
	return line ? line : xstrdup("");
}

/* The uid a VM's QEMU runs as: all four of its uids and gids that one
 * number from the tests' range, no supplementary group, seccomp on. */
static unsigned qemu_uid(struct vm *vm)
{
	int pid = vm_pid(vm);
	assert_true(pid > 0);
	char *uid = status_line(pid, "\nUid:\t"), *gid = status_line(pid, "\nGid:\t");
	char *groups = status_line(pid, "\nGroups:\t"), *sec = status_line(pid, "\nSeccomp:\t");
	char *nnp = status_line(pid, "\nNoNewPrivs:\t");
	unsigned u[4] = { 0 }, g[4] = { 0 };
	assert_int_equal(sscanf(uid, "%u %u %u %u", &u[0], &u[1], &u[2], &u[3]), 4);
	assert_int_equal(sscanf(gid, "%u %u %u %u", &g[0], &g[1], &g[2], &g[3]), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(u[i], u[0]);
		assert_int_equal(g[i], u[0]);
	}
	assert_true(u[0] >= TEST_VM_UID_FIRST && u[0] < TEST_VM_UID_FIRST + TEST_VM_UID_COUNT);
	assert_int_equal(strspn(groups, " "), strlen(groups)); /* none (TCG: no /dev/kvm) */
	assert_string_equal(sec, "2");   /* -sandbox on */
	assert_string_equal(nnp, "1");
	free(uid); free(gid); free(groups); free(sec); free(nnp);
	return u[0];
}

/* As uid (a fork), try each of paths: "w:<file>" opening it for writing,
 * "r:<file>" for reading, "c:<dir>" creating a file in it, "l:<dir>"
 * listing it, "m:<file>" renaming it. The index of the first that worked
 * + 1, or 0 when all were refused. */
static int try_as(unsigned uid, const char *const *paths)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(100);
		for (int i = 0; paths[i]; i++) {
			const char *p = paths[i] + 2;
			char other[4200];
			int ok = 0, fd;
			switch (paths[i][0]) {
			case 'w': ok = (fd = open(p, O_WRONLY | O_NOFOLLOW)) >= 0; break;
			case 'r': ok = (fd = open(p, O_RDONLY | O_NOFOLLOW)) >= 0; break;
			case 'c':
				snprintf(other, sizeof(other), "%s/planted", p);
				ok = (fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0;
				break;
			case 'l': ok = opendir(p) != NULL; fd = -1; break;
			case 'm':
				snprintf(other, sizeof(other), "%s.moved", p);
				ok = rename(p, other) == 0;
				fd = -1;
				break;
			default: _exit(101);
			}
			if (ok)
				_exit(i + 1);
			if (errno != EACCES && errno != EPERM)
				_exit(102);
		}
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void assert_refused(unsigned uid, const char *const *paths)
{
	int r = try_as(uid, paths);
	if (r >= 100)
		fail_msg("uid %u: the check itself failed (%d)", uid, r);
	if (r)
		fail_msg("uid %u could do '%s'", uid, paths[r - 1]);
}

/* The one template of a data dir (templates/<key>); caller frees. */
static char *template_dir(const char *data)
{
	char *dir = test_strf("%s/templates", data), *found = NULL;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && !found && (de = readdir(d)))
		if (de->d_name[0] != '.')
			found = test_strf("%s/%s", dir, de->d_name);
	if (d)
		closedir(d);
	free(dir);
	assert_non_null(found);
	return found;
}

/* Each VM's QEMU runs as a uid of its own from vm_uids (the gid the same,
 * no other group, seccomp), whether it was taken from the pool, cloned or
 * started again; no two share one; and that uid can write none of the
 * template's or the spare's files, nor any directory root writes into. */
static void test_each_vm_its_own_uid(void **state)
{
	struct efix *fx = *state;
	struct err e = ERR_INIT;
	if (geteuid() != 0)
		skip();
	struct vm *a = create(fx, "uid-a", NULL), *b = create(fx, "uid-b", NULL);
	struct vm *c = create(fx, "uid-c", NULL);
	unsigned ua = qemu_uid(a), ub = qemu_uid(b), uc = qemu_uid(c);
	assert_int_not_equal(ua, ub);
	assert_int_not_equal(ua, uc);
	assert_int_not_equal(ub, uc);
	/* a stopped clone: its template's spare memory is made for its start */
	assert_int_equal(vm_stop_sync(c, &e), 0);
	char spare[512] = "";
	for (int i = 0; i < 1000 && !find_spare(engine_mem_dir(fx->eng), spare, sizeof(spare)); i++)
		loop_run_once(10);
	assert_true(spare[0]);
	struct stat st;
	assert_int_equal(stat(spare, &st), 0);
	assert_int_equal(st.st_uid, 0); /* root's until a start takes it */
	char *tmpl = template_dir(fx->data);
	const char *mem = engine_mem_dir(fx->eng), *data = fx->data;
	char *paths[] = {
		test_strf("w:%s/mem", tmpl), test_strf("w:%s/disk.ext4", tmpl), test_strf("w:%s/state", tmpl),
		test_strf("c:%s", tmpl), test_strf("w:%s", spare), test_strf("m:%s", spare),
		test_strf("r:%s/uid-b.mem", mem), test_strf("l:%s", mem), test_strf("c:%s", mem),
		test_strf("c:%s", data), test_strf("c:%s/sandboxes", data), test_strf("c:%s/templates", data),
		test_strf("c:%s/pool", data), test_strf("c:%s/sandboxes/uid-a", data),
		test_strf("w:%s/sandboxes/uid-a/disk.ext4", data), NULL
	};
	assert_refused(ua, (const char *const *)paths);
	for (int i = 0; paths[i]; i++)
		free(paths[i]);
	free(tmpl);
	/* a start is a new QEMU, and a uid of its own again */
	assert_int_equal(vm_start_sync(c, &e), 0);
	unsigned uc2 = qemu_uid(c);
	assert_int_not_equal(uc2, ua);
	assert_int_not_equal(uc2, ub);
	/* its RAM (the spare it took) is the one file its uid owns */
	char *mem_c = test_strf("%s/uid-c.mem", engine_mem_dir(fx->eng));
	assert_int_equal(stat(mem_c, &st), 0);
	free(mem_c);
	assert_int_equal(st.st_uid, uc2);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *out = sh(c, "echo fine", NULL);
	assert_string_equal(out, "fine\n");
	free(out);
	destroy(a);
	destroy(b);
	destroy(c);
}

/* As root without VM uids, the engine refuses to start: QEMU never runs
 * as root. */
static void test_root_needs_vm_uids(void **state UNUSED)
{
	if (geteuid() != 0)
		skip();
	struct efix other = { .data = test_tmpdir("engine-nouids") };
	struct engine_config cfg = { .data_dir = other.data, .images_dir = images_dir(),
				     .accel = "tcg" };
	struct engine *en = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(engine_new(&cfg, NULL, NULL, &en, &e), -EPERM);
	assert_null(en);
	assert_string_equal(e.msg, "refusing to run QEMU as root: set 'vm_uids' in the config "
			    "(e.g. vm_uids: 200000-299999, a range no user or group uses) so that "
			    "each VM runs as a uid of its own");
	test_rmtree(other.data);
	free(other.data);
}

/* The tmpfs directory the engine used to keep guest memory in had a name
 * anyone could compute (/dev/shm/bhatti-<hash of data_dir>), and one that
 * existed was taken as it was: a user who made it first, world-writable,
 * with a symlink at the name of a guest's memory file, had root overwrite
 * the file the link names with the guest's RAM (and give it to the VM
 * user), and could list, rename and delete guests' RAM there. Made here as
 * `nobody`; the engine must leave both the directory and the root-only
 * file alone and keep guest memory where `nobody` cannot reach it. */
static void test_shm_squat_is_ignored(void **state UNUSED)
{
	if (geteuid() != 0)
		skip();
	struct efix other = { .data = test_tmpdir("engine-squat") };
	char secret[600], squat[600], link[700];
	uint8_t h[8];
	char hex[17];
	crypto_generichash(h, sizeof(h), (const uint8_t *)other.data, strlen(other.data), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(squat, sizeof(squat), "/dev/shm/bhatti-%s", hex);
	snprintf(link, sizeof(link), "%s/victim.mem", squat);
	snprintf(secret, sizeof(secret), "%s/root-only", other.data);
	int fd = open(secret, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, "root only\n", 10), 0);
	close(fd);
	pid_t pid = fork();
	if (pid == 0) { /* nobody */
		if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0 || mkdir(squat, 0777) < 0 ||
		    chmod(squat, 0777) < 0 || symlink(secret, link) < 0)
			_exit(1);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	struct engine_config cfg = { 0 }; /* no pool */
	struct engine *en;
	struct err e = ERR_INIT;
	assert_int_equal(open_engine_cfg(&other, &cfg, &en), 0);
	struct vm *vm;
	struct vm_spec spec = { .id = "victim" };
	if (vm_create_sync(en, &spec, &vm, &e) < 0)
		fail_msg("create: %s", err_str(&e));
	char *out = sh(vm, "echo up", NULL);
	assert_string_equal(out, "up\n");
	free(out);
	/* the file the link names is as it was, and root's */
	struct stat sb;
	assert_int_equal(lstat(secret, &sb), 0);
	assert_int_equal(sb.st_size, 10);
	assert_int_equal(sb.st_uid, 0);
	char *text = read_text(secret);
	assert_string_equal(text, "root only\n");
	free(text);
	/* the squatted directory was not used */
	const char *mem_dir = engine_mem_dir(en);
	assert_string_not_equal(mem_dir, squat);
	assert_int_equal(count_entries(squat), 1);
	assert_int_equal(stat(mem_dir, &sb), 0);
	assert_int_equal(sb.st_uid, 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	/* and nobody can list, rename or remove the guest's memory */
	char l[600], m[700], c[600];
	snprintf(l, sizeof(l), "l:%s", mem_dir);
	snprintf(m, sizeof(m), "m:%s/victim.mem", mem_dir);
	snprintf(c, sizeof(c), "c:%s", mem_dir);
	const char *paths[] = { l, m, c, NULL };
	assert_refused(65534, paths);
	destroy(vm);
	engine_free(en);
	unlink(link);
	rmdir(squat);
	test_rmtree(other.data);
	free(other.data);
}

/* /proc/<pid>/stat's start time (field 22). */
static unsigned long long proc_starttime(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	char *st = read_text(path);
	char *p = st ? strrchr(st, ')') : NULL;
	unsigned long long v = 0;
	for (int field = 2; p && *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (p)
		sscanf(p, "%llu", &v);
	free(st);
	return v;
}

/* Replace key's value in dir/vm.json (a number, or a string when str). */
static void forge(const char *dir, const char *key, double num, const char *str)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/vm.json", dir);
	char *text = read_text(path);
	cJSON *m = cJSON_Parse(text);
	assert_non_null(m);
	cJSON_DeleteItemFromObject(m, key);
	if (str)
		cJSON_AddStringToObject(m, key, str);
	else
		cJSON_AddNumberToObject(m, key, num);
	char *out = cJSON_Print(m);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(out, f);
	fclose(f);
	free(out);
	free(text);
	cJSON_Delete(m);
}

/* vm.json is not trusted at adoption: one naming the pid of an unrelated
 * process (with its start time, so that it looks alive) leaves the
 * sandbox FAILED, and destroying it kills its real QEMU (the one on its
 * socket), not that process; a template key that climbs out of templates/
 * is refused before it becomes a path. */
static void test_forged_vm_json(void **state)
{
	struct efix *fx = *state;
	struct err e = ERR_INIT;
	struct vm *a = create(fx, "forged-pid", NULL), *b = create(fx, "forged-tmpl", NULL);
	assert_int_equal(vm_stop_sync(b, &e), 0);
	int qemu = vm_pid(a);
	char da[600], db[600];
	snprintf(da, sizeof(da), "%s", vm_dir(a));
	snprintf(db, sizeof(db), "%s", vm_dir(b));
	pid_t bystander = fork();
	if (bystander == 0) {
		execlp("sleep", "sleep", "1000", (char *)NULL);
		_exit(127);
	}
	usleep(100 * 1000);
	engine_free(fx->eng);
	fx->eng = NULL;
	forge(da, "pid", bystander, NULL);
	forge(da, "pid_start", (double)proc_starttime(bystander), NULL);
	forge(db, "template", 0, "../../sandboxes/forged-pid");
	assert_int_equal(open_engine(fx, false, &fx->eng), 0);
	a = engine_find(fx->eng, "forged-pid");
	b = engine_find(fx->eng, "forged-tmpl");
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(vm_state(a), VM_FAILED);
	char want[128];
	snprintf(want, sizeof(want), "its vm.json names pid %d, but the QEMU on its socket is pid %d",
		 (int)bystander, qemu);
	assert_string_equal(vm_error(a), want);
	assert_int_equal(vm_state(b), VM_FAILED);
	assert_non_null(strstr(vm_error(b), "its template key '../../sandboxes/forged-pid' is not valid"));
	destroy(a);
	assert_true(pid_wait_gone(qemu, 5000)); /* its own QEMU went */
	assert_true(pid_alive(bystander));      /* and nothing else */
	destroy(b);
	assert_true(pid_alive(bystander));
	kill(bystander, SIGKILL);
	waitpid(bystander, NULL, 0);
}

/* A guest that prints without end fills its console log only up to the
 * engine's console_max (64 KiB here), twice: console.log and the one
 * before it, console.log.1; the newest output is kept. */
static void test_console_is_bounded(void **state)
{
	struct efix *fx = *state;
	struct vm *vm = create(fx, "chatty", NULL);
	char *argv[] = { (char *)"sh", (char *)"-c",
			 (char *)"head -c 500000 /dev/zero | tr '\\0' x > /dev/ttyS0; "
				 "echo END-OF-CHATTER > /dev/ttyS0", NULL };
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"",
				  .flags = PROTO_EXEC_ROOT | PROTO_EXEC_DETACH };
	struct ac_exec_result r;
	struct err e = ERR_INIT;
	if (ac_exec(vm_agent(vm), &req, NULL, 0, &r, 30000, &e) < 0)
		fail_msg("exec: %s", err_str(&e));
	ac_exec_result_release(&r);
	char log[600], old[600];
	snprintf(log, sizeof(log), "%s/console.log", vm_dir(vm));
	snprintf(old, sizeof(old), "%s/console.log.1", vm_dir(vm));
	bool done = false;
	/* the engine reads the console on the loop */
	for (uint64_t end = now_ms() + 60000; !done && now_ms() < end;) {
		loop_run_once(50);
		char *t = read_text(log);
		done = t && strstr(t, "END-OF-CHATTER");
		free(t);
	}
	assert_true(done);
	struct stat a, b;
	assert_int_equal(stat(log, &a), 0);
	assert_int_equal(stat(old, &b), 0);
	assert_true(a.st_size <= 64 << 10);
	assert_int_equal(b.st_size, 64 << 10);
	destroy(vm);
}

static void test_errors(void **state)
{
	struct efix *fx = *state;
	struct err e = ERR_INIT;
	struct vm *vm;
	struct vm_spec bad = { .id = "Bad_Name" };
	assert_int_equal(vm_create(fx->eng, &bad, NULL, NULL, &vm, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "invalid VM id 'Bad_Name'"));
	struct vm_spec noimg = { .id = "noimg", .image = "nope" };
	assert_int_equal(vm_create(fx->eng, &noimg, NULL, NULL, &vm, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "no image 'nope' (available: "));
	assert_non_null(strstr(e.msg, "tiny"));
	assert_null(engine_find(fx->eng, "noimg")); /* nothing left behind */
	struct vm_spec big = { .id = "big", .cpus = 65 };
	assert_int_equal(vm_create(fx->eng, &big, NULL, NULL, &vm, &e), -EINVAL);

	vm = create(fx, "dup", NULL);
	struct vm *other;
	struct vm_spec dup = { .id = "dup" };
	assert_int_equal(vm_create(fx->eng, &dup, NULL, NULL, &other, &e), -EEXIST);
	assert_int_equal(vm_stop_sync(vm, &e), 0);
	assert_int_equal(vm_pause_sync(vm, &e), -EINVAL);
	assert_string_equal(e.msg, "cannot pause sandbox 'dup': it is stopped");
	assert_int_equal(vm_stop_sync(vm, &e), 0); /* already stopped: fine */
	destroy(vm);
}

static void test_nothing_left_behind(void **state)
{
	struct efix *fx = *state;
	engine_each(fx->eng, destroy_each, NULL);
	struct buf sb = BUF_INIT;
	buf_addf(&sb, "%s/sandboxes", fx->data);
	assert_int_equal(count_entries(sb.data), 0);
	/* what stays in the memory dir is the templates' spare memory
	 * (the engine's own, for the next create), until the engine closes */
	char *mem_dir = xstrdup(engine_mem_dir(fx->eng)), spare[512];
	int spares = find_spare(mem_dir, spare, sizeof(spare)) ? 1 : 0;
	assert_int_equal(count_entries(mem_dir), spares);
	assert_int_equal(count_qemu_under(fx->data), 0);
	engine_free(fx->eng);
	fx->eng = NULL;
	assert_int_equal(count_entries(mem_dir), 0);
	free(mem_dir);
	buf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_boot_and_exec),
		cmocka_unit_test(test_clones_have_their_own_identity),
		cmocka_unit_test(test_file_roundtrip_5mb),
		cmocka_unit_test(test_pty_session_reattach),
		cmocka_unit_test(test_pause_stops_the_guest),
		cmocka_unit_test(test_cold_stop_and_start),
		cmocka_unit_test(test_tampered_snapshot_is_refused),
		cmocka_unit_test(test_clone_takes_the_spare),
		cmocka_unit_test(test_memory_budget),
		cmocka_unit_test(test_snapshot_and_restore),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_copy_failures),
		cmocka_unit_test(test_qemu_killed_is_detected),
		cmocka_unit_test(test_readopt_after_engine_restart),
		cmocka_unit_test(test_each_vm_its_own_uid),
		cmocka_unit_test(test_root_needs_vm_uids),
		cmocka_unit_test(test_shm_squat_is_ignored),
		cmocka_unit_test(test_forged_vm_json),
		cmocka_unit_test(test_console_is_bounded),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nothing_left_behind),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
