/* fileops — slow file work done off the event loop: copying a VM's memory
 * or disk image (a reflink where the filesystem can, else only the
 * allocated extents), flushing a memory file and dropping it from the page
 * cache, removing a sandbox directory.
 *
 * Sits between the engine and one worker thread. Jobs run in order on the
 * worker; each completion callback runs on the event loop thread (through
 * an eventfd), never on the worker. The worker touches only the paths it
 * is given. fileops_init() once after loop_init(); every function must be
 * called from the loop thread.
 */
#ifndef BHATTI_FILEOPS_H
#define BHATTI_FILEOPS_H

#include <stdint.h>

#include "err.h"

typedef void (*fileop_done_fn)(int rc, const struct err *e, void *arg);

int fileops_init(struct err *e);

/* dst := src, sparse: FICLONE (reflink) when possible, else copy only the
 * data extents (SEEK_DATA/SEEK_HOLE + copy_file_range). dst is written to
 * a temporary name and renamed, so it exists only when complete. */
void fileop_copy(const char *src, const char *dst, fileop_done_fn done, void *arg);
/* Guest memory snapshots relative to a base (the template's memory):
 * save writes to dst only the 4 KiB pages of mem that differ from base
 * (dst is sparse: a hole means "as in base"); load rebuilds mem from base
 * plus the pages in delta. base NULL = no base: save keeps every non-zero
 * page, load is a copy. A clone differs from its template in a few MB out
 * of ~100, so this is what makes cold stop and start cheap. */
void fileop_save_delta(const char *mem, const char *base, const char *dst,
		       fileop_done_fn done, void *arg);
void fileop_load_delta(const char *base, const char *delta, const char *mem,
		       fileop_done_fn done, void *arg);
/* The same, into an existing all-zero file of the right size, in place:
 * the file QEMU has already mapped (its start overlaps the load). delta
 * may be NULL: the base alone (a new clone). */
void fileop_fill_delta(const char *base, const char *delta, const char *mem,
		       fileop_done_fn done, void *arg);
/* Write every page of delta (zero pages too) into mem in place: mem
 * already holds the base (a copy made ahead of a start). */
void fileop_patch_delta(const char *delta, const char *mem, fileop_done_fn done, void *arg);
/* Replace path with text atomically (temporary file + rename); durable:
 * fsync the file and its directory first. Jobs run in order, so a write
 * queued after a flush lands after it. */
void fileop_write(const char *path, const char *text, bool durable, fileop_done_fn done,
		  void *arg);
/* fdatasync, then drop the file's pages from the page cache. */
void fileop_flush_drop(const char *path, fileop_done_fn done, void *arg);
/* rm -rf path (refuses "/" and relative paths). */
void fileop_remove_tree(const char *path, fileop_done_fn done, void *arg);

/* The same, synchronously on the calling thread (start-up, tests). */
int fileop_copy_now(const char *src, const char *dst, struct err *e);
int fileop_remove_tree_now(const char *path, struct err *e);
int fileop_save_delta_now(const char *mem, const char *base, const char *dst, struct err *e);
int fileop_load_delta_now(const char *base, const char *delta, const char *mem, bool in_place,
			  struct err *e);
int fileop_patch_delta_now(const char *delta, const char *mem, struct err *e);

/* Allocated bytes of a file (st_blocks * 512), for reports. */
uint64_t file_allocated(const char *path);

#endif
