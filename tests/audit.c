/* audit.c — what a private daemon holds and which of it is a leak (see
 * audit.h). Reads /proc, the data dir, the memory dir and state.db;
 * changes nothing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "audit.h"
#include "util.h"

void audit_init(struct audit *a)
{
	memset(a, 0, sizeof(*a));
	buf_init(&a->fd_kinds);
	buf_init(&a->leaks);
}

void audit_release(struct audit *a)
{
	buf_release(&a->fd_kinds);
	buf_release(&a->leaks);
}

static void leak(struct audit *a, const char *fmt, ...) PRINTF(2, 3);
static void leak(struct audit *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&a->leaks, fmt, ap);
	va_end(ap);
	buf_addch(&a->leaks, '\n');
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- the pieces ---------------------------------------------------------------- */

/* A small set of strings. */
struct names {
	char **v;
	size_t n;
};

static void names_add(struct names *s, const char *x)
{
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
	s->v[s->n++] = xstrdup(x);
}

static bool names_has(const struct names *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], x) == 0)
			return true;
	return false;
}

static void names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* The ids of the sandbox rows (every user's); -1 when unreadable. */
static int read_rows(const char *data, struct names *rows, struct audit *a)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/state.db", data);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_open_v2(p.data, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 2000);
		rc = sqlite3_prepare_v2(db, "SELECT id FROM sandboxes", -1, &st, NULL);
	}
	while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		names_add(rows, (const char *)sqlite3_column_text(st, 0));
	if (rc != SQLITE_OK)
		leak(a, "database: cannot read '%s': %s", p.data, db ? sqlite3_errmsg(db) : "?");
	sqlite3_finalize(st);
	sqlite3_close(db);
	buf_release(&p);
	return rc == SQLITE_OK ? 0 : -1;
}

/* A QEMU naming the data dir. */
struct qemu {
	int pid;
	char *cmd;
	bool owned;
};

static void find_qemus(const char *data, struct qemu **ret, size_t *ret_n)
{
	int pids[512];
	int n = qemu_pids(data, pids, 512);
	if (n > 512)
		n = 512;
	struct qemu *v = xcalloc((size_t)n + 1, sizeof(*v));
	for (int i = 0; i < n; i++)
		v[i] = (struct qemu){ .pid = pids[i], .cmd = proc_cmdline(pids[i]) };
	for (int i = 0; i < n; i++)
		if (!v[i].cmd)
			v[i].cmd = xstrdup("");   /* gone since */
	*ret = v;
	*ret_n = (size_t)n;
}

static struct qemu *qemu_by_pid(struct qemu *v, size_t n, int pid)
{
	for (size_t i = 0; pid > 0 && i < n; i++)
		if (v[i].pid == pid)
			return &v[i];
	return NULL;
}

static cJSON *read_json(const char *path)
{
	char *text = read_text(path);
	cJSON *j = text ? cJSON_Parse(text) : NULL;
	free(text);
	return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	return s ? s : "";
}

static const char *const sandbox_files[] = {
	"vm.json", "disk.ext4", "mem", "state", "qmp.sock", "agent.sock", "qemu.log", "console.log",
};

static void check_sandbox_files(struct audit *a, const char *dir, const char *id)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		bool known = false;
		for (size_t i = 0; i < ARRAY_SIZE(sandbox_files); i++)
			known |= strcmp(de->d_name, sandbox_files[i]) == 0;
		if (!known)
			leak(a, "file: sandbox '%s' holds a stray '%s'", id, de->d_name);
	}
	if (d)
		closedir(d);
}

/* sandboxes/: each directory with its row, its vm.json and (running) its
 * QEMU; ids of the running ones into `running`. */
static void check_sandboxes(struct audit *a, const char *data, const struct names *rows,
			    struct qemu *q, size_t nq, struct names *running)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/sandboxes", data);
	DIR *d = opendir(p.data);
	struct dirent *de;
	struct names seen = { 0 };
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		const char *id = de->d_name;
		a->dirs++;
		names_add(&seen, id);
		struct buf dir = BUF_INIT, meta = BUF_INIT;
		buf_addf(&dir, "%s/%s", p.data, id);
		buf_addf(&meta, "%s/vm.json", dir.data);
		if (!names_has(rows, id))
			leak(a, "directory: sandboxes/%s has no database row", id);
		cJSON *m = read_json(meta.data);
		const char *state = jstr(m, "state");
		int pid = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(m, "pid"));
		if (!m) {
			leak(a, "file: sandboxes/%s has no readable vm.json", id);
		} else if (strcmp(state, "running") == 0 || strcmp(state, "paused") == 0) {
			a->running++;
			names_add(running, id);
			struct qemu *qm = qemu_by_pid(q, nq, pid);
			if (!qm)
				leak(a, "sandbox: '%s' is %s but its QEMU (pid %d) is gone", id, state, pid);
			else
				qm->owned = true;
		} else if (strcmp(state, "stopped") == 0) {
			struct buf mem = BUF_INIT, snap = BUF_INIT;
			buf_addf(&mem, "%s/mem", dir.data);
			buf_addf(&snap, "%s/state", dir.data);
			if (access(mem.data, F_OK) < 0 || access(snap.data, F_OK) < 0)
				leak(a, "sandbox: '%s' is stopped without its snapshot", id);
			buf_release(&mem);
			buf_release(&snap);
		} else if (strcmp(state, "failed") != 0) {
			leak(a, "sandbox: '%s' is still %s", id, state);   /* transient */
		}
		check_sandbox_files(a, dir.data, id);
		cJSON_Delete(m);
		buf_release(&dir);
		buf_release(&meta);
	}
	if (d)
		closedir(d);
	for (size_t i = 0; i < rows->n; i++)
		if (!names_has(&seen, rows->v[i]))
			leak(a, "row: sandbox '%s' has a database row and no directory", rows->v[i]);
	names_free(&seen);
	buf_release(&p);
}

/* pool/ and templates/: each pool clone with its QEMU; template builds
 * finished. Names of pool clones and templates out. */
static void check_pool_templates(struct audit *a, const char *data, struct qemu *q, size_t nq,
				 struct names *pool, struct names *tmpls)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/pool", data);
	DIR *d = opendir(p.data);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct buf needle = BUF_INIT;
		buf_addf(&needle, "%s/%s/", p.data, de->d_name);
		bool found = false;
		for (size_t i = 0; i < nq; i++)
			if (!q[i].owned && strstr(q[i].cmd, needle.data)) {
				q[i].owned = found = true;
				break;
			}
		if (found) {
			a->pool++;
			names_add(pool, de->d_name);
		} else {
			leak(a, "directory: pool/%s has no QEMU", de->d_name);   /* or being built */
		}
		buf_release(&needle);
	}
	if (d)
		closedir(d);
	buf_reset(&p);
	buf_addf(&p, "%s/templates", data);
	d = opendir(p.data);
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_name[0] == '.')
			leak(a, "directory: templates/%s (a template build)", de->d_name);
		else
			names_add(tmpls, de->d_name);
	}
	if (d)
		closedir(d);
	buf_release(&p);
}

/* The memory dir: every file owned by a running sandbox, a pool clone or
 * (a spare) a template. */
static void check_mem_dir(struct audit *a, const char *mem_dir, const struct names *running,
			  const struct names *pool, const struct names *tmpls)
{
	DIR *d = opendir(mem_dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		const char *f = de->d_name;
		if (strcmp(f, ".") == 0 || strcmp(f, "..") == 0)
			continue;
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s", mem_dir, f);
		struct stat st;
		long long bytes = stat(p.data, &st) == 0 ? (long long)st.st_blocks * 512 : 0;
		buf_release(&p);
		a->shm_files++;
		a->shm_bytes += bytes;
		char *base = ends_with(f, ".mem") ? xstrndup(f, strlen(f) - 4) : NULL;
		bool ok = base && (names_has(running, base) || names_has(pool, base) ||
				   (strncmp(base, "spare-", 6) == 0 && names_has(tmpls, base + 6)));
		if (!ok)
			leak(a, "memory: '%s/%s' (%lld bytes) belongs to no running VM or template",
			     mem_dir, f, bytes);
		free(base);
	}
	if (d)
		closedir(d);
}

static void check_top(struct audit *a, const char *data)
{
	static const char *const known[] = { "state.db", "state.db-wal", "state.db-shm", "age.key",
					     "serve.lock", "sandboxes", "templates", "pool",
					     "accel-probe" };
	DIR *d = opendir(data);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		bool ok = false;
		for (size_t i = 0; i < ARRAY_SIZE(known); i++)
			ok |= strncmp(de->d_name, known[i], strlen(known[i])) == 0;
		if (!ok)
			leak(a, "file: '%s/%s' is unknown", data, de->d_name);
	}
	if (d)
		closedir(d);
}

/* The daemon's descriptors by kind, and its RSS. */
static void check_process(struct audit *a, int pid)
{
	a->fds = -1;
	if (pid <= 0)
		return;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	DIR *d = opendir(path);
	struct dirent *de;
	struct names kinds = { 0 };
	int *counts = NULL;
	a->fds = 0;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char link[600], target[512];
		snprintf(link, sizeof(link), "/proc/%d/fd/%s", pid, de->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		/* "socket:[123]" → "socket"; "anon_inode:[pidfd]" as it is; a
		 * path → its directory */
		char *br = strchr(target, '[');
		if (br && strncmp(target, "anon_inode:", 11) != 0)
			*br = '\0';
		else if (target[0] == '/' && strrchr(target, '/') != target)
			*strrchr(target, '/') = '\0';
		size_t i = 0;
		while (i < kinds.n && strcmp(kinds.v[i], target) != 0)
			i++;
		if (i == kinds.n) {
			names_add(&kinds, target);
			counts = xrealloc(counts, kinds.n * sizeof(*counts));
			counts[i] = 0;
		}
		counts[i]++;
		a->fds++;
	}
	if (d)
		closedir(d);
	buf_reset(&a->fd_kinds);
	for (size_t i = 0; i < kinds.n; i++)
		buf_addf(&a->fd_kinds, "%s%s %d", i ? ", " : "", kinds.v[i], counts[i]);
	free(counts);
	names_free(&kinds);
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	char *st = read_text(path);
	const char *rss = st ? strstr(st, "VmRSS:") : NULL;
	a->rss_kb = rss ? strtol(rss + 6, NULL, 10) : 0;
	free(st);
}

/* With a key: the API lists exactly the rows, nothing between states, and
 * every sandbox in error says why. */
static void check_api(struct audit *a, struct daemon_proc *d, const char *key,
		      const struct names *rows)
{
	struct buf b = BUF_INIT;
	int st = api_call(d, key, "GET", "/sandboxes", NULL, 0, &b);
	cJSON *list = st == 200 ? cJSON_Parse(b.data) : NULL, *it;
	if (!cJSON_IsArray(list)) {
		leak(a, "api: GET /sandboxes answered %d: %.200s", st, b.data ? b.data : "");
		goto out;
	}
	struct names ids = { 0 };
	cJSON_ArrayForEach(it, list)
	{
		const char *id = jstr(it, "id"), *state = jstr(it, "state");
		names_add(&ids, id);
		if (!names_has(rows, id))
			leak(a, "api: sandbox '%s' (%s) has no database row", id, state);
		if (strcmp(state, "error") == 0 && !jstr(it, "error")[0])
			leak(a, "api: sandbox '%s' is in state error without a reason", id);
		if (strcmp(state, "creating") == 0 || strcmp(state, "stopping") == 0 ||
		    strcmp(state, "starting") == 0 || strcmp(state, "destroying") == 0)
			leak(a, "api: sandbox '%s' is still %s", id, state);   /* transient */
	}
	for (size_t i = 0; i < rows->n; i++)
		if (!names_has(&ids, rows->v[i]))
			leak(a, "api: the row of sandbox '%s' is not in GET /sandboxes", rows->v[i]);
	names_free(&ids);
out:
	cJSON_Delete(list);
	buf_release(&b);
}

void audit_take(struct daemon_proc *d, const char *key, struct audit *a)
{
	buf_reset(&a->leaks);
	struct buf keep = a->fd_kinds;
	memset(a, 0, sizeof(*a));
	a->fd_kinds = keep;
	buf_init(&a->leaks);
	struct names rows = { 0 }, running = { 0 }, pool = { 0 }, tmpls = { 0 };
	struct qemu *q;
	size_t nq;
	read_rows(d->data, &rows, a);
	a->rows = (int)rows.n;
	find_qemus(d->data, &q, &nq);
	a->qemu = (int)nq;
	check_sandboxes(a, d->data, &rows, q, nq, &running);
	check_pool_templates(a, d->data, q, nq, &pool, &tmpls);
	for (size_t i = 0; i < nq; i++)
		if (!q[i].owned)
			leak(a, "qemu: pid %d belongs to no sandbox or pool clone: %.300s", q[i].pid,
			     q[i].cmd);
	char *mem_dir = daemon_mem_dir(d);
	check_mem_dir(a, mem_dir, &running, &pool, &tmpls);
	free(mem_dir);
	check_top(a, d->data);
	check_process(a, d->pid);
	if (key && d->pid > 0)
		check_api(a, d, key, &rows);
	for (size_t i = 0; i < nq; i++)
		free(q[i].cmd);
	free(q);
	names_free(&rows);
	names_free(&running);
	names_free(&pool);
	names_free(&tmpls);
}

bool audit_settle(struct daemon_proc *d, const char *key, int pool, int timeout_ms,
		  struct audit *a)
{
	uint64_t until = now_ms() + (uint64_t)timeout_ms;
	struct buf last = BUF_INIT, now = BUF_INIT;
	int same = 0;
	for (;;) {
		audit_take(d, key, a);
		/* quiet: no leak, the pool full, and the same picture three
		 * looks in a row (background work: a spare being copied, a
		 * pool clone being warmed, a file being removed) */
		buf_reset(&now);
		buf_addf(&now, "%d %d %d %lld %s", a->qemu, a->pool, a->shm_files, a->shm_bytes,
			 a->fd_kinds.data ? a->fd_kinds.data : "");
		bool quiet = a->leaks.len == 0 && (pool < 0 || a->pool == pool);
		same = quiet && last.len && strcmp(now.data, last.data) == 0 ? same + 1 : 0;
		buf_reset(&last);
		buf_add(&last, now.data, now.len);
		if (same >= 2 || now_ms() >= until) {
			if (same < 2 && a->leaks.len == 0)
				leak(a, "not settled: pool %d (want %d); %s", a->pool, pool, now.data);
			buf_release(&last);
			buf_release(&now);
			return same >= 2;
		}
		usleep(300 * 1000);
	}
}

/* ---- watchdog --------------------------------------------------------------------- */

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static char wd_what[512];
static uint64_t wd_kicked;
static int wd_seconds;
static struct daemon_proc *wd_daemon;
static bool wd_running;

static void *watchdog_thread(void *arg UNUSED)
{
	for (;;) {
		sleep(1);
		pthread_mutex_lock(&wd_lock);
		bool fired = wd_seconds > 0 && now_ms() > wd_kicked + (uint64_t)wd_seconds * 1000;
		char what[512];
		snprintf(what, sizeof(what), "%s", wd_what);
		struct daemon_proc *d = wd_daemon;
		pthread_mutex_unlock(&wd_lock);
		if (!fired)
			continue;
		fprintf(stderr, "watchdog: no progress for %d s; last step: %s\n", wd_seconds, what);
		if (d && d->pid > 0) {
			fprintf(stderr, "watchdog: daemon log %s, temp dir %s kept\n", d->log, d->dir);
			kill(d->pid, SIGKILL);
		}
		if (d && d->data) {
			char *argv[] = { "pkill", "-KILL", "-f", d->data, NULL };
			test_run(argv, NULL, NULL, 0, NULL, NULL, 5000);
		}
		_exit(1);
	}
	return NULL;
}

void watchdog_start(struct daemon_proc *d, int seconds)
{
	pthread_mutex_lock(&wd_lock);
	wd_daemon = d;
	wd_seconds = seconds;
	wd_kicked = now_ms();
	bool start = !wd_running && seconds > 0;
	wd_running |= start;
	pthread_mutex_unlock(&wd_lock);
	pthread_t th;
	if (start && pthread_create(&th, NULL, watchdog_thread, NULL) == 0)
		pthread_detach(th);
}

void watchdog_step(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&wd_lock);
	va_start(ap, fmt);
	vsnprintf(wd_what, sizeof(wd_what), fmt, ap);
	va_end(ap);
	wd_kicked = now_ms();
	pthread_mutex_unlock(&wd_lock);
}
