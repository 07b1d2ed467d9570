/* fileops — slow file work done off the event loop: copying a VM's memory
 * or disk image (a reflink where the filesystem can, else only the
 * allocated extents), saving and loading cold snapshots (memory deltas
 * and device states, encrypted at rest with a key: atrest.h), flushing a
 * file and dropping it from the page cache, removing a sandbox directory.
 *
 * Sits between the engine and one worker thread. Jobs run in order on the
 * worker; each completion callback runs on the event loop thread (through
 * an eventfd), never on the worker. The worker touches only the paths it
 * is given. fileops_init() once after loop_init(); every function must be
 * called from the loop thread.
 */
#ifndef BHATTI_FILEOPS_H
#define BHATTI_FILEOPS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

typedef void (*fileop_done_fn)(int rc, const struct err *e, void *arg);

int fileops_init(struct err *e);

/* dst := src, sparse: FICLONE (reflink) when possible, else copy only the
 * data extents (SEEK_DATA/SEEK_HOLE + copy_file_range). dst is written to
 * a temporary name and renamed, so it exists only when complete. */
void fileop_copy(const char *src, const char *dst, fileop_done_fn done, void *arg);
/* The same, then dst grown to size bytes (when larger) and its ext4
 * filesystem with it (resize2fs, offline: dst must not be in use); on
 * failure dst is removed. */
void fileop_copy_grow(const char *src, const char *dst, uint64_t size, fileop_done_fn done,
		      void *arg);
/* A cold snapshot: the guest's memory saved as a delta against a base
 * (the template's memory), only the 4 KiB pages of mem that differ from
 * base (a sparse file: a hole means "as in base"; base NULL = no base:
 * every non-zero page), and the device state QEMU migrated into state_fd
 * (read from offset 0). Written to dir/mem.part and dir/state.part, then
 * renamed to dir/mem and dir/state; on failure neither is left (nothing
 * half-written to trust later). key (ATREST_KEY_BYTES, or NULL for
 * plaintext): both encrypted and tagged at rest (atrest.h). A clone
 * differs from its template in a few MB out of ~100, so this is what
 * makes cold stop and start cheap. */
void fileop_save_snapshot(const char *mem, const char *base, int state_fd, const char *dir,
			  const uint8_t *key, fileop_done_fn done, void *arg);
/* Load one: mem (an existing file of the guest's size, all zero, or
 * holding base already when base is NULL: a spare) gets base's pages and
 * then every page of delta (zero pages too); the device state file goes
 * into state_fd from offset 0 (pwrite: its file offset stays where QEMU
 * will read). With key the two are decrypted, their tags and their shared
 * nonce checked: -EBADMSG when any does not match (mem and state_fd then
 * hold garbage). */
void fileop_load_snapshot(const char *state, const char *delta, const char *base,
			  const char *mem, int state_fd, const uint8_t *key,
			  fileop_done_fn done, void *arg);
/* base's data pages into mem, an existing all-zero file of the right
 * size, in place: the file QEMU has mapped already (a clone's start
 * overlaps the copy), or a spare. */
void fileop_fill_mem(const char *base, const char *mem, fileop_done_fn done, void *arg);
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
int fileop_copy_grow_now(const char *src, const char *dst, uint64_t size, struct err *e);
int fileop_remove_tree_now(const char *path, struct err *e);
int fileop_save_snapshot_now(const char *mem, const char *base, int state_fd, const char *dir,
			     const uint8_t *key, struct err *e);
int fileop_load_snapshot_now(const char *state, const char *delta, const char *base,
			     const char *mem, int state_fd, const uint8_t *key, struct err *e);
int fileop_fill_mem_now(const char *base, const char *mem, struct err *e);

/* Allocated bytes of a file (st_blocks * 512), for reports. */
uint64_t file_allocated(const char *path);

#endif
