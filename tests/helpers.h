/* helpers.h — test support shared by the unit and integration tests:
 * temporary directories, starting a real lohar in test mode on a unix
 * socket, connecting the real agent client to it, and small process
 * checks. Include after <cmocka.h>.
 */
#ifndef BHATTI_TEST_HELPERS_H
#define BHATTI_TEST_HELPERS_H

#include <stdbool.h>
#include <sys/types.h>

#include "agent-client.h"

/* Build directory of the binaries under test ($BUILD, default "build"). */
const char *test_build_dir(void);

/* mkdtemp under $TMPDIR (or /tmp); caller frees. */
char *test_tmpdir(const char *tag);
/* rm -rf (refuses anything outside the temp directory). */
void test_rmtree(const char *dir);

struct lohar_proc {
	pid_t pid;
	char *dir;         /* private temp dir */
	char *sock;        /* dir/agent.sock */
	char *workspace;   /* dir/workspace (mode 0777) */
	char *log;         /* dir/lohar.log */
};

/* Start build/lohar --listen unix:... in a new temp dir and wait until it
 * accepts connections. user: "self" or "1000:1000" (NULL = "self"). */
int lohar_start(struct lohar_proc *p, const char *token, const char *user);
/* SIGTERM, wait, remove the temp dir. 0, or -1 when lohar did not exit
 * cleanly or its log holds a sanitizer report (printed to stderr). */
int lohar_stop(struct lohar_proc *p);
/* Connect the agent client; fails the test on error. */
struct ac *lohar_connect(struct lohar_proc *p, const char *token);

/* The integration tests' group fixture: one lohar (token "tok", running
 * commands as the calling user) and a connected client. `other` is for a
 * second agent a test starts; teardown stops it too if a test failed
 * before it could. Teardown fails when an agent did not exit cleanly. */
struct fixture {
	struct lohar_proc lohar;
	struct ac *ac;
	struct lohar_proc other;
};
int fixture_setup(void **state);
int fixture_teardown(void **state);

/* Convenience exec: argv as a NULL-terminated list, no stdin. */
int test_exec(struct ac *ac, struct ac_exec_result *ret, const char *arg0, ...);

/* Is pid still alive (and not a zombie)? */
bool pid_alive(pid_t pid);
/* Wait up to ms for pid to be gone; true if it is. */
bool pid_wait_gone(pid_t pid, int ms);
/* Count zombie children of ppid. */
int count_zombies(pid_t ppid);
/* Read a whole file; caller frees; NULL if missing. ret_len may be NULL. */
char *host_read_file(const char *path, size_t *ret_len);
char *read_text(const char *path);

#endif
