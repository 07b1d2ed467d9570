/* qemu-jail.c — what confines the QEMU backend's VMs, and what keeps root
 * from trusting files that others can write (issue 10, items 4 and 5):
 *
 *   - VM uids: when the engine runs as root, every QEMU runs as a uid of
 *     its own (the same number as its gid, no supplementary group but
 *     /dev/kvm's under KVM) from the configured range, picked at its spawn
 *     among those no process has, under a host-wide lock held until QEMU
 *     has exec'd (so two daemons may share a range). The range is checked
 *     at start-up against the host's users, groups and subordinate ids.
 *   - directories root writes into (data_dir/sandboxes, templates, pool and
 *     each VM's): root's, mode 0700; those of an older install (given to
 *     one VM user for all) are taken back, their symlinks removed.
 *   - the tmpfs memory dir: a fresh name nobody can guess (mkdtemp) under
 *     mem_dir, recorded in data_dir/mem-dir and verified (a real directory,
 *     root's, mode 0700) before it is used again; the loop reaches its
 *     files through one directory fd, with O_NOFOLLOW and O_EXCL.
 *
 * QEMU opens no file the daemon wrote by its path: disk, memory, sockets,
 * kernel and initrd are descriptors (qemu-proc.c), so a VM's uid owns
 * nothing but its RAM file while its QEMU runs, and can write no
 * directory.
 *
 * Sits between q_init()/qemu_spawn() and the host. Touches /etc/passwd,
 * /etc/group, /etc/subuid, /etc/subgid (read), /proc/<pid>/status (read),
 * /run/bhatti/vm-uids.lock, mem_dir, data_dir/mem-dir and the directories
 * it is given.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qemu.h"

#define RUN_DIR "/run/bhatti"
#define UID_LOCK RUN_DIR "/vm-uids.lock"
#define MEM_RECORD "mem-dir"

/* ---- the range ------------------------------------------------------------------------ */

static bool in_range(const struct qeng *qe, unsigned long long id)
{
	return id >= qe->uid_first && id - qe->uid_first < qe->uid_count;
}

/* A line of /etc/subuid or /etc/subgid ("name:first:count") that overlaps
 * the range, into who; one that is exactly the range reserves it for us
 * (install.sh writes it) and is fine. */
static bool subid_overlaps(const struct qeng *qe, const char *file, char *who, size_t n)
{
	FILE *f = fopen(file, "re");
	char line[512];
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		unsigned long long s = strtoull(c1 + 1, NULL, 10), k = strtoull(c2 + 1, NULL, 10);
		if (k == 0 || (s == qe->uid_first && k == qe->uid_count))
			continue;
		if (s < (unsigned long long)qe->uid_first + qe->uid_count && qe->uid_first < s + k) {
			snprintf(who, n, "the subordinate ids %llu-%llu of '%.*s' (%s)", s, s + k - 1,
				 (int)(c1 - line), line, file);
			found = true;
		}
	}
	if (f)
		fclose(f);
	return found;
}

/* Nothing else may have a VM uid: no user, no group, no subordinate id
 * (a user namespace could map it, and its processes would own a guest's
 * memory). */
static int range_check(const struct qeng *qe, struct err *e)
{
	char who[300] = "";
	struct passwd *pw;
	struct group *gr;
	setpwent();
	while (!who[0] && (pw = getpwent()))
		if (in_range(qe, pw->pw_uid))
			snprintf(who, sizeof(who), "user '%s' (uid %u)", pw->pw_name, (unsigned)pw->pw_uid);
	endpwent();
	setgrent();
	while (!who[0] && (gr = getgrent()))
		if (in_range(qe, gr->gr_gid))
			snprintf(who, sizeof(who), "group '%s' (gid %u)", gr->gr_name, (unsigned)gr->gr_gid);
	endgrent();
	if (!who[0] && !subid_overlaps(qe, "/etc/subuid", who, sizeof(who)))
		subid_overlaps(qe, "/etc/subgid", who, sizeof(who));
	if (who[0])
		return err_set(e, EEXIST, "vm_uids %u-%u is not free: %s is in it; give the VMs a "
			       "range no user, group or subordinate id uses", qe->uid_first,
			       qe->uid_first + qe->uid_count - 1, who);
	return 0;
}

/* The host-wide lock of the pickers: /run/bhatti is root's and no one
 * else's to write. */
static int lock_open(struct qeng *qe, struct err *e)
{
	struct stat st;
	if (mkdir(RUN_DIR, 0700) < 0 && errno != EEXIST)
		return err_set(e, errno, "cannot create '%s': %s", RUN_DIR, strerror(errno));
	if (lstat(RUN_DIR, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022))
		return err_set(e, EPERM, "'%s' must be a directory of root's that no one else "
			       "can write", RUN_DIR);
	qe->uid_lock = open(UID_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (qe->uid_lock < 0)
		return err_set(e, errno, "cannot open '%s': %s", UID_LOCK, strerror(errno));
	return 0;
}

int jail_init(struct engine *eng, struct err *e)
{
	struct qeng *qe = QE(eng);
	struct stat st;
	qe->uid_lock = -1;
	qe->kvm_gid = (gid_t)-1;
	if (geteuid() != 0)
		return 0; /* QEMU runs as the engine's own user */
	if (!eng->cfg.vm_uid_count)
		return err_set(e, EPERM, "refusing to run QEMU as root: set 'vm_uids' in the "
			       "config (e.g. vm_uids: 200000-299999, a range no user or group "
			       "uses) so that each VM runs as a uid of its own");
	qe->drop_uids = true;
	qe->uid_first = eng->cfg.vm_uid_first;
	qe->uid_count = eng->cfg.vm_uid_count;
	/* start somewhere in the range: engines sharing it walk apart */
	uint32_t r;
	randombytes_buf(&r, sizeof(r));
	qe->uid_next = qe->uid_first + r % qe->uid_count;
	int rc = range_check(qe, e);
	if (rc == 0)
		rc = lock_open(qe, e);
	/* QEMU under KVM opens /dev/kvm: its group, unless everyone may */
	if (rc == 0 && stat("/dev/kvm", &st) == 0 && (st.st_mode & 06) != 06)
		qe->kvm_gid = st.st_gid;
	return rc;
}

/* ---- picking a uid --------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The uids of the range that some process has (real, effective, saved or
 * filesystem: /proc/<pid>/status, which a process cannot hide), sorted. */
static size_t uids_in_use(const struct qeng *qe, uint32_t **ret)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	uint32_t *v = NULL;
	size_t n = 0, cap = 0;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[300], buf[4096];
		snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		char *p = strstr(buf, "\nUid:");
		unsigned long long u[4];
		if (!p || sscanf(p + 5, "%llu %llu %llu %llu", &u[0], &u[1], &u[2], &u[3]) != 4)
			continue;
		for (int i = 0; i < 4; i++) {
			if (!in_range(qe, u[i]))
				continue;
			if (n == cap)
				v = xrealloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));
			v[n++] = (uint32_t)u[i];
		}
	}
	if (d)
		closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_u32);
	*ret = v;
	return n;
}

int jail_pick_uid(struct qeng *qe, uid_t *ret, struct err *e)
{
	while (flock(qe->uid_lock, LOCK_EX) < 0)
		if (errno != EINTR)
			return err_set(e, errno, "cannot lock '%s': %s", UID_LOCK, strerror(errno));
	uint32_t *used;
	size_t n = uids_in_use(qe, &used);
	for (uint32_t i = 0; i < qe->uid_count; i++) {
		uint32_t u = qe->uid_first + (qe->uid_next - qe->uid_first + i) % qe->uid_count;
		if (n && bsearch(&u, used, n, sizeof(*used), cmp_u32))
			continue;
		qe->uid_next = u + 1;
		free(used);
		*ret = (uid_t)u;
		return 0; /* locked until jail_release() */
	}
	free(used);
	flock(qe->uid_lock, LOCK_UN);
	return err_set(e, EAGAIN, "no free VM uid: all %u of vm_uids %u-%u are in use", qe->uid_count,
		       qe->uid_first, qe->uid_first + qe->uid_count - 1);
}

void jail_release(struct qeng *qe)
{
	if (qe->uid_lock >= 0)
		flock(qe->uid_lock, LOCK_UN);
}

/* In the child, between fork and exec: only system calls. */
int jail_enter(const struct qeng *qe, uid_t uid, bool kvm)
{
	gid_t groups[1] = { qe->kvm_gid };
	size_t ngroups = kvm && qe->kvm_gid != (gid_t)-1 ? 1 : 0;
	if (setgroups(ngroups, groups) < 0 || setresgid(uid, uid, uid) < 0 ||
	    setresuid(uid, uid, uid) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

/* ---- directories root writes into -------------------------------------------------- */

/* Give the entries of the directory dfd back to us: symlinks (which we
 * never make) go, files and sockets become ours, files get file_mode
 * (0: as they are). The directory is ours already: no one can swap an
 * entry between the look and the change. */
static void take_entries(int dfd, const char *path, mode_t file_mode)
{
	int dup_fd = dup(dfd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	struct dirent *de;
	struct stat st;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			log_warn("removing the symlink '%s/%s'", path, de->d_name);
			unlinkat(dfd, de->d_name, 0);
			continue;
		}
		if (!S_ISREG(st.st_mode) && !S_ISSOCK(st.st_mode))
			continue;
		if (st.st_uid != geteuid() &&
		    fchownat(dfd, de->d_name, geteuid(), getegid(), AT_SYMLINK_NOFOLLOW) < 0)
			log_warn("chown '%s/%s': %s", path, de->d_name, strerror(errno));
		if (file_mode && S_ISREG(st.st_mode) && (st.st_mode & 07777) != file_mode &&
		    fchmodat(dfd, de->d_name, file_mode, 0) < 0)
			log_warn("chmod '%s/%s': %s", path, de->d_name, strerror(errno));
	}
	if (d)
		closedir(d);
	else if (dup_fd >= 0)
		close(dup_fd);
}

int jail_dir(const char *path, mode_t file_mode, struct err *e)
{
	struct stat st;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return err_set(e, errno, "cannot create '%s': %s", path, strerror(errno));
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int r = err_set(e, errno, "cannot open the directory '%s': %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	bool foreign = st.st_uid != geteuid() || (st.st_mode & 07777) != 0700;
	if (foreign) {
		if (fchown(fd, geteuid(), getegid()) < 0 || fchmod(fd, 0700) < 0) {
			int r = err_set(e, errno, "cannot take back '%s' (uid %u, mode %04o): %s", path,
					(unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
					strerror(errno));
			close(fd);
			return r;
		}
		log_info("took back '%s' (it was uid %u's, mode %04o)", path, (unsigned)st.st_uid,
			 (unsigned)(st.st_mode & 07777));
	}
	if (foreign || file_mode)
		take_entries(fd, path, file_mode);
	close(fd);
	return 0;
}

/* ---- the tmpfs memory dir ----------------------------------------------------------- */

/* A directory we may keep guest memory in: real, ours, 0700. */
static int hot_verify(int fd, const char *path, struct err *e)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(e, errno, "stat '%s': %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 07777) != 0700)
		return err_set(e, EPERM, "'%s' is uid %u's with mode %04o, not ours with 0700", path,
			       (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* The dir an earlier start recorded, if it is still there and ours. */
static int hot_reuse(struct engine *eng, const char *record, char **ret_path)
{
	char text[4096];
	int fd = open(record, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	text[n > 0 ? n : 0] = '\0';
	text[strcspn(text, "\n")] = '\0';
	size_t plen = strlen(eng->cfg.mem_dir);
	/* mem_dir/bhatti-XXXXXX and nothing else */
	if (strncmp(text, eng->cfg.mem_dir, plen) != 0 || strncmp(text + plen, "/bhatti-", 8) != 0 ||
	    strchr(text + plen + 1, '/') || strstr(text, ".."))
		return -1;
	struct err e = ERR_INIT;
	fd = open(text, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && hot_verify(fd, text, &e) < 0) {
		log_warn("not using the memory dir of the last start: %s", err_str(&e));
		close(fd);
		fd = -1;
	}
	if (fd >= 0)
		*ret_path = xstrdup(text);
	return fd;
}

/* Write path's content through a fresh temporary file (never following a
 * link someone put there) and a rename. */
static int write_record(const char *path, const char *text, struct err *e)
{
	struct buf tmp = BUF_INIT;
	buf_addf(&tmp, "%s.tmp", path);
	unlink(tmp.data);
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int r = 0;
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0 ||
	    rename(tmp.data, path) < 0)
		r = err_set(e, errno, "cannot write '%s': %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp.data);
	buf_release(&tmp);
	return r;
}

int jail_hot_dir(struct engine *eng, struct err *e)
{
	struct qeng *qe = QE(eng);
	char *record = qeng_path(eng, MEM_RECORD, NULL), *path = NULL;
	int fd = hot_reuse(eng, record, &path), r = 0;
	if (fd < 0) {
		struct buf b = BUF_INIT;
		buf_addf(&b, "%s/bhatti-XXXXXX", eng->cfg.mem_dir);
		if (!mkdtemp(b.data)) {
			r = err_set(e, errno, "cannot create a directory in '%s': %s", eng->cfg.mem_dir,
				    strerror(errno));
		} else if ((fd = open(b.data, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
			r = err_set(e, errno, "cannot open '%s': %s", b.data, strerror(errno));
		} else if ((r = hot_verify(fd, b.data, e)) == 0) {
			buf_addf(&b, "\n");
			r = write_record(record, b.data, e);
			b.data[--b.len] = '\0';
		}
		path = buf_detach(&b, NULL);
	}
	free(record);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		free(path);
		return r;
	}
	qe->hot_fd = fd;
	qe->hot_dir = path;
	return 0;
}

const char *hot_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

int hot_create(struct qeng *qe, const char *name, unsigned memory_mb, struct err *e)
{
	unlinkat(qe->hot_fd, name, 0); /* a leftover */
	int fd = openat(qe->hot_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int r = 0;
	if (fd < 0 || ftruncate(fd, (off_t)memory_mb << 20) < 0)
		r = err_set(e, errno, "cannot create '%s/%s': %s", qe->hot_dir, name, strerror(errno));
	if (fd >= 0)
		close(fd);
	return r;
}

int hot_open(struct qeng *qe, const char *name)
{
	return openat(qe->hot_fd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
}

int hot_rename(struct qeng *qe, const char *from, const char *to)
{
	return renameat(qe->hot_fd, from, qe->hot_fd, to) < 0 ? -errno : 0;
}

void hot_unlink(struct qeng *qe, const char *name)
{
	unlinkat(qe->hot_fd, name, 0);
}

void jail_fini(struct qeng *qe)
{
	if (qe->uid_lock >= 0)
		close(qe->uid_lock);
	if (qe->hot_fd >= 0)
		close(qe->hot_fd);
	qe->uid_lock = qe->hot_fd = -1;
}
