/* qemu-mem.c — guest RAM on tmpfs and its budget in the QEMU backend.
 *
 * tmpfs reserves nothing: a guest's memory file takes pages as the guest
 * touches them, and when the tmpfs is full every QEMU whose guest touches
 * a new page dies of SIGBUS. So the engine keeps a budget: the memory
 * files in the memory dir (hot_dir) — running and paused sandboxes',
 * those of creates and starts under way, pool clones', template builds',
 * the memory spares — each counted at its full size (the guest may touch
 * all of it), must fit in engine_config.mem_budget (default: the tmpfs's
 * size, at most 3/4 of the host's memory).
 *
 * What holds the memory is read from the directory itself: a create or a
 * start that is let in makes its (sparse, all-zero) memory file at once,
 * so the files are the whole account, in flight included, and nothing can
 * drift from it. A file renamed aside to be freed (`-freed-`) no longer
 * counts.
 *
 * A user's create or start (or a build of the template a create waits
 * for) that does not fit takes room from the engine's own work made
 * ahead of need — memory spares first, then pool clones, never those of
 * the template it takes from — and is refused (-EAGAIN) only when that
 * is not enough. Background work (pool refills, spares) starts only when
 * it fits as things are: it yields, it never makes a user's request fail.
 *
 * Sits between the operations that put guest memory on tmpfs (create,
 * start, the pool, spares, template builds) and the memory dir. Touches
 * only that directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "qemu.h"

void qmem_init(struct engine *eng)
{
	struct qeng *qe = QE(eng);
	struct statvfs sv;
	uint64_t tmpfs = statvfs(qe->hot_dir, &sv) == 0 ? (uint64_t)sv.f_blocks * sv.f_frsize : 0;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t host = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
	uint64_t auto_budget = host / 4 * 3;
	if (tmpfs && (tmpfs < auto_budget || !auto_budget))
		auto_budget = tmpfs;
	qe->mem_budget = eng->cfg.mem_budget ? eng->cfg.mem_budget : auto_budget;
	log_info("memory budget for guests: %llu MB%s (tmpfs %llu MB, host memory %llu MB)",
		 (unsigned long long)(qe->mem_budget >> 20), eng->cfg.mem_budget ? "" : " (auto)",
		 (unsigned long long)(tmpfs >> 20), (unsigned long long)(host >> 20));
}

uint64_t qmem_used(struct engine *eng)
{
	int fd = openat(QE(eng)->hot_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (fd >= 0 && !d)
		close(fd);
	struct dirent *de;
	uint64_t used = 0;
	while (d && (de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' && (!de->d_name[1] || strcmp(de->d_name, "..") == 0))
			continue;
		if (strstr(de->d_name, "-freed-")) /* on its way out (the file worker) */
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			used += (uint64_t)st.st_size;
	}
	if (d)
		closedir(d);
	return used;
}

bool qmem_room(struct engine *eng, unsigned memory_mb)
{
	return qmem_used(eng) + ((uint64_t)memory_mb << 20) <= QE(eng)->mem_budget;
}

static void spare_gives_way(struct tmpl *t)
{
	log_info("template '%s': its memory spare gives way to a sandbox", t->key);
	spare_drop(t);
}

/* Free one thing the engine holds ahead of need: another template's
 * spare, else (unless keep_spare) keep's spare, else another template's
 * pool clone. false when there is nothing. */
static bool give_way_once(struct engine *eng, struct tmpl *keep, bool keep_spare)
{
	for (struct tmpl *t = QE(eng)->tmpls; t; t = t->next)
		if (t != keep && t->spare) {
			spare_gives_way(t);
			return true;
		}
	if (keep && keep->spare && !keep_spare) {
		spare_gives_way(keep);
		return true;
	}
	for (struct tmpl *t = QE(eng)->tmpls; t; t = t->next)
		if (t != keep && pool_drop_one(t)) {
			log_info("template '%s': a pool clone gives way to a sandbox", t->key);
			return true;
		}
	return false;
}

int qmem_reserve(struct engine *eng, const char *path, unsigned memory_mb, struct tmpl *keep,
		 uint64_t credit, struct err *e)
{
	struct qeng *qe = QE(eng);
	uint64_t need = (uint64_t)memory_mb << 20;
	uint64_t used = qmem_used(eng);
	while (used + need > qe->mem_budget + credit && give_way_once(eng, keep, credit > 0))
		used = qmem_used(eng);
	if (used + need > qe->mem_budget + credit)
		return err_set(e, EAGAIN, "no room for %u MB of guest memory: %llu of the host's "
			       "%llu MB memory budget for guests is in use; stop or destroy a "
			       "sandbox, or try again later", memory_mb,
			       (unsigned long long)(used >> 20),
			       (unsigned long long)(qe->mem_budget >> 20));
	return hot_create(qe, hot_name(path), memory_mb, e);
}

/* The backend's admit: a create (vm NULL) or a start of vm. What the
 * request takes over at once (in the same loop turn: a create's pool
 * clone, a start's spare) is credited: its file is renamed over the one
 * reserved here. (A create takes a spare only after its disk copy: its
 * template's spare is not counted on, and gives way last.) */
int q_admit(struct engine *eng, const struct vm_spec *spec, struct vm *vm, struct err *e)
{
	struct qeng *qe = QE(eng);
	struct tmpl *t = NULL;
	uint64_t credit = 0;
	char *key = NULL;
	if (vm) {
		struct qvm *q = QV(vm);
		t = q && q->base_key ? tmpl_find(eng, q->base_key) : NULL;
		if (t && t->spare)
			credit = (uint64_t)t->memory_mb << 20;
	} else if (!eng->cfg.no_templates && !spec->snapshot) {
		key = tmpl_key_of(eng, spec); /* (a pool clone is taken) */
		t = tmpl_find(eng, key);
		if (t && t->state == TMPL_READY && t->nready > 0)
			credit = (uint64_t)t->memory_mb << 20;
	}
	struct buf path = BUF_INIT;
	buf_addf(&path, "%s/%s.mem", qe->hot_dir, spec->id);
	int r = qmem_reserve(eng, path.data, spec->memory_mb, t, credit, e);
	buf_release(&path);
	free(key);
	return r;
}
