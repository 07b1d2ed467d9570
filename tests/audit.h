/* audit.h — what a private daemon (helpers.h: daemon_start) holds, and
 * which of it is a leak: QEMU processes, the directories and files of
 * sandboxes, the pool and templates in the data dir, guest memory on
 * tmpfs (the engine's memory directory), the database's sandbox rows, and
 * the daemon's file descriptors and resident memory. For the soak, fault
 * and load runs (make soak) and any end-to-end test that wants to say
 * "nothing is left".
 *
 * Reads /proc, the data dir, the memory dir and state.db (read-only, as
 * a second SQLite reader beside the daemon: WAL); asks the daemon nothing
 * except, when given a key, GET /sandboxes (one user's view, which must
 * match the rows). Changes nothing.
 *
 * What is not a leak (every other thing found is one, named in `leaks`):
 *   - a row ↔ sandboxes/<id>/ ↔ (when vm.json says running or paused) one
 *     live QEMU with that pid, and <id>.mem in the memory dir;
 *   - pool/<name>/ with its QEMU (its command line names the directory)
 *     and <name>.mem;
 *   - templates/<key>/ (never running) and spare-<key>.mem of an existing
 *     template, one per template;
 *   - in a sandbox directory: vm.json disk.ext4 mem state qmp.sock
 *     agent.sock qemu.log console.log.
 * Transient things (a template being built, *.part, *.tmp, *.stale,
 * *-freed-*.mem, a sandbox in a state between two others) are leaks only
 * if they stay: audit_settle() waits for them to go.
 */
#ifndef BHATTI_TEST_AUDIT_H
#define BHATTI_TEST_AUDIT_H

#include <stdbool.h>

#include "buf.h"
#include "util.h"
#include "helpers.h"

struct audit {
	int rows;             /* sandbox rows in state.db */
	int dirs;             /* sandboxes/<id>/ */
	int running;          /* of which vm.json says running or paused */
	int qemu;             /* QEMU processes naming the data dir */
	int pool;             /* of which pool clones */
	int shm_files;        /* files in the memory dir */
	long long shm_bytes;  /* bytes allocated there */
	int fds;              /* the daemon's open descriptors (-1: no daemon) */
	long rss_kb;          /* its VmRSS */
	struct buf fd_kinds;  /* "socket 12, pipe 4, ..." */
	struct buf leaks;     /* "what: detail\n" per leak (or per thing not
			       * settled yet); empty: none */
};

void audit_init(struct audit *a);
void audit_release(struct audit *a);

/* Look once. key: a user's API key, or NULL (then the API is not asked;
 * with a key every row must be that user's). */
void audit_take(struct daemon_proc *d, const char *key, struct audit *a);

/* Look until nothing is transient and the pool holds `pool` clones (-1:
 * any number), for at most timeout_ms; a's last look stays. True when it
 * settled with no leak. */
bool audit_settle(struct daemon_proc *d, const char *key, int pool, int timeout_ms,
		  struct audit *a);

/* A watchdog for long runs (the API client has no timeout of its own):
 * when watchdog_step() has not been called for `seconds`, it prints the
 * last step, kills d's daemon and every QEMU naming its data dir (the
 * temp dir is kept for a look) and exits 1, so a hang is a failure that
 * says where. One per process; 0 seconds stops it. */
void watchdog_start(struct daemon_proc *d, int seconds);
void watchdog_step(const char *fmt, ...) PRINTF(1, 2);

#endif
