/* snapshot.c — benchmark of what encryption at rest adds to a cold
 * snapshot, without VMs: the file worker's save (the pages that differ
 * from the base, and the device state) and load (base, then the delta),
 * with a key and without, alternately so both see the same machine noise.
 * The guest's memory is 512 MB on tmpfs, its base (the template's memory)
 * 64 MB of random pages; the guest has changed D MB of pages (D = 8: a
 * tiny sandbox's delta after a few commands; 64: a busy one); the
 * snapshot goes to the data disk (TMPDIR). Prints p50/p99 per case
 * (docs/benchmarks.md).
 *
 *   build/bench/snapshot        (BENCH_RUNS: runs per case, default 15)
 */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fileops.h"
#include "helpers.h"
#include "num.h"
#include "stats.h"

#define MEM_MB 512
#define BASE_MB 64
#define STATE_BYTES (300u << 10) /* about QEMU's microvm device state */

static double ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

static void die(const char *what, const struct err *e)
{
	fprintf(stderr, "bench/snapshot: %s: %s\n", what, e ? err_str(e) : "failed");
	exit(1);
}

/* len bytes of random data at off of fd. */
static void fill_random(int fd, off_t off, size_t len)
{
	char *b = xmalloc(1 << 20);
	for (size_t done = 0; done < len; done += 1 << 20) {
		if (getrandom(b, 1 << 20, 0) != 1 << 20 ||
		    write_all_at(fd, b, 1 << 20, off + (off_t)done) < 0)
			die("writing random pages", NULL);
	}
	free(b);
}

static char *path_in(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s", dir, name);
	return buf_detach(&b, NULL);
}

/* A sized, all-zero memory file on tmpfs. */
static int mem_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)MEM_MB << 20) < 0)
		die(path, NULL);
	return fd;
}

static void bench_delta(const char *shm, const char *disk, unsigned delta_mb, int runs)
{
	struct err e = ERR_INIT;
	uint8_t key[32];
	randombytes_buf(key, sizeof(key));
	char *base = path_in(shm, "base.mem"), *mem = path_in(shm, "guest.mem");
	char *target = path_in(shm, "target.mem"), *snap = path_in(disk, "snap");
	char *dmem = path_in(snap, "mem"), *dstate = path_in(snap, "state");
	mkdir(snap, 0700);
	int fd = mem_file(base);
	fill_random(fd, 0, (size_t)BASE_MB << 20);
	close(fd);
	/* the guest: the base, with delta_mb of it (every other MB from the
	 * start, then beyond the base) changed */
	if (fileop_copy_now(base, mem, &e) < 0)
		die("copy", &e);
	fd = open(mem, O_RDWR | O_CLOEXEC);
	for (unsigned i = 0; i < delta_mb; i++)
		fill_random(fd, (off_t)(2 * i) << 20, 1 << 20);
	close(fd);
	int state = memfd_create("state", MFD_CLOEXEC), state_in = memfd_create("in", MFD_CLOEXEC);
	fill_random(state, 0, 1 << 20);
	if (ftruncate(state, STATE_BYTES) < 0)
		die("state", NULL);

	double *save[2], *load[2];
	uint64_t disk_bytes[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		save[k] = calloc((size_t)runs, sizeof(double));
		load[k] = calloc((size_t)runs, sizeof(double));
	}
	for (int i = 0; i < 2 * runs; i++) {
		int k = i % 2;
		const uint8_t *kk = k == 0 ? key : NULL;
		uint64_t t0 = now_ns();
		if (fileop_save_snapshot_now(mem, base, state, snap, kk, &e) < 0)
			die("save", &e);
		save[k][i / 2] = ms_since(t0);
		disk_bytes[k] = file_allocated(dmem);
		/* from the disk, as a start a while after a stop reads it */
		fd = open(dmem, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
			die("flush", NULL);
		close(fd);
		close(mem_file(target));
		if (ftruncate(state_in, 0) < 0)
			die("state", NULL);
		t0 = now_ns();
		if (fileop_load_snapshot_now(dstate, dmem, base, target, state_in, kk, &e) < 0)
			die("load", &e);
		load[k][i / 2] = ms_since(t0);
		unlink(target);
	}
	char name[64];
	snprintf(name, sizeof(name), "save, %u MB delta, encrypted", delta_mb);
	stats_print(name, save[0], (size_t)runs, "ms");
	stats_print("  the same, plaintext", save[1], (size_t)runs, "ms");
	snprintf(name, sizeof(name), "load, %u MB delta, encrypted", delta_mb);
	stats_print(name, load[0], (size_t)runs, "ms");
	stats_print("  the same, plaintext", load[1], (size_t)runs, "ms");
	printf("%-40s %.1f MB on disk encrypted, %.1f MB plaintext\n", "  memory delta",
	       (double)disk_bytes[0] / (1 << 20), (double)disk_bytes[1] / (1 << 20));
	for (int k = 0; k < 2; k++) {
		free(save[k]);
		free(load[k]);
	}
	close(state);
	close(state_in);
	unlink(base);
	unlink(mem);
	free(base); free(mem); free(target); free(snap); free(dmem); free(dstate);
}

int main(void)
{
	int runs = 15;
	if (getenv("BENCH_RUNS"))
		num_parse_int(getenv("BENCH_RUNS"), 3, 10000, &runs, "BENCH_RUNS", NULL);
	if (sodium_init() < 0)
		die("sodium_init", NULL);
	char *disk = test_tmpdir("bench-snapshot");
	char shm[] = "/dev/shm/bhatti-bench-snapshot-XXXXXX";
	if (!mkdtemp(shm))
		die("mkdtemp", NULL);
	printf("bench/snapshot: %u MB guest memory in %s, snapshots in %s\n", MEM_MB, shm, disk);
	bench_delta(shm, disk, 8, runs);
	bench_delta(shm, disk, 64, runs);
	test_rmtree(disk);
	test_rmtree(shm);
	free(disk);
	return 0;
}
