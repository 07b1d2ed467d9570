/* helpers.h — test support shared by the unit and integration tests:
 * temporary directories, starting a real lohar in test mode on a unix
 * socket, connecting the real agent client to it, and small process
 * checks. Include after <cmocka.h>.
 */
#ifndef BHATTI_TEST_HELPERS_H
#define BHATTI_TEST_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Start build/lohar --listen unix:... (and --hold-socket dir/hold.sock) in
 * a new temp dir and wait until it accepts connections. user: "self" or "1000:1000" (NULL = "self"). */
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
/* printf into a new string (caller frees). */
char *test_strf(const char *fmt, ...) PRINTF(1, 2);


/* The VM uids the tests give engines and daemons that run as root
 * (vm_uids: 200000-299999; engines sharing a range pick apart). */
#define TEST_VM_UID_FIRST 200000
#define TEST_VM_UID_COUNT 100000
#define TEST_VM_UIDS "200000-299999"

/* ---- processes and a private daemon (end-to-end tests) ---- */

#include "buf.h"

/* Run argv (NULL-terminated) with extra environment entries ("K=V",
 * NULL-terminated, may be NULL), stdin from stdin_data (NULL = /dev/null),
 * capturing stdout and stderr (either may be NULL). Returns the exit
 * status (128+signal when killed), or -1 when it could not run. Kills it
 * after timeout_ms (0 = 120 s). */
int test_run(char *const *argv, char *const *env, const char *stdin_data, size_t stdin_len,
	     struct buf *out, struct buf *err, int timeout_ms);

/* `bhatti serve` in a temp data dir on a free loopback port, TCG, the
 * images from $BHATTI_IMAGES (default build/images). extra_config: more
 * YAML lines (may be NULL). */
struct daemon_proc {
	pid_t pid;
	char *dir;         /* temp dir: data/, config.yaml, home/, serve.log */
	char *data;
	char *config;
	char *home;        /* HOME for CLI runs (holds .bhatti/config.yaml) */
	char *log;
	char *url;         /* http://127.0.0.1:PORT */
	int port;
};
int daemon_start(struct daemon_proc *d, const char *extra_config);
/* The same listening on host ("127.0.0.1", "[::1]", "" for every
 * interface); d->url names the host (127.0.0.1 for every interface). */
int daemon_start_on(struct daemon_proc *d, const char *host, const char *extra_config);
/* The same with the data dir elsewhere (NULL: in the temp dir), e.g. on a
 * small filesystem; daemon_stop(d, true) removes only the temp dir. */
int daemon_start_at(struct daemon_proc *d, const char *host, const char *data_dir,
		    const char *extra_config);
/* Start again on the same dir and port (after a stop or a kill). */
int daemon_restart(struct daemon_proc *d);
/* SIGKILL (crash) without cleanup of the dir. */
void daemon_kill9(struct daemon_proc *d);
/* SIGTERM + wait; destroy_all: also kill every QEMU under the data dir and
 * remove the dir. Returns 0, or -1 if the daemon did not exit cleanly. */
int daemon_stop(struct daemon_proc *d, bool remove);
/* `bhatti user create --name NAME ...` on d's data dir; returns the key
 * (caller frees) or NULL. */
char *daemon_user(struct daemon_proc *d, const char *name, const char *limits_args);
/* Run `bhatti ARGS...` as a client of d with token (NULL = none); HOME is
 * d->home, BHATTI_URL = d->url. */
int bhatti(struct daemon_proc *d, const char *token, const char *stdin_data, struct buf *out,
	   struct buf *err, const char *arg0, ...);
int bhatti_argv(struct daemon_proc *d, const char *token, const char *stdin_data,
		struct buf *out, struct buf *err, const char *const *args);
/* curl -sS -o BODY -w '%{http_code}' ... : returns the status; body in out.
 * method, path, token (NULL = no header), json body (NULL = none). */
int http_call(struct daemon_proc *d, const char *method, const char *path, const char *token,
	      const char *body, struct buf *out);
/* The same in this process (the client library: no curl process, so a
 * loop of thousands of calls measures the daemon, not process start-up):
 * the status, or -1 when no answer came (then out gets the error). body
 * may be NULL. out (may be NULL) gets the body appended. */
int api_call(struct daemon_proc *d, const char *token, const char *method, const char *path,
	     const void *body, size_t len, struct buf *out);
/* The engine's memory directory (tmpfs) for d's data dir; caller frees. */
char *daemon_mem_dir(const struct daemon_proc *d);
/* How many qemu-system processes have dir in their command line. */
int count_qemu_under(const char *dir);
/* The same, and the first max of their pids into pids. */
int qemu_pids(const char *needle, int *pids, int max);
/* An environment variable as a number (strtol base 0), or def. */
long env_long(const char *name, long def);
/* splitmix64: seeded chance that the same seed repeats. */
uint64_t test_rng(uint64_t *state);
/* /proc/<pid>/cmdline with spaces between the arguments (caller frees), or
 * NULL. */
char *proc_cmdline(int pid);
/* The pid of sandbox id's QEMU from its vm.json under data_dir (0 when
 * there is none). A sandbox taken from the pool runs a QEMU whose command
 * line names the pool, so this is how a test finds it. */
int sandbox_qemu_pid(const char *data_dir, const char *id);

/* ---- a canned HTTP server (the client library's tests) ---- */

/* One connection of a canned server: read the request head, then write
 * the pieces (a short pause between them; or let serve() answer), then,
 * with read_rest, read what the client sends until it closes; close. */
struct canned_conn {
	const char *const *pieces;   /* NULL-terminated, or NULL */
	void (*serve)(int fd, const char *request, void *arg);
	void *arg;
	bool read_rest;
	char request[4096];          /* the request head it got */
	struct buf rest;             /* read_rest: the bytes after the head */
};

/* Listens on a free loopback port (url: "http://127.0.0.1:PORT") and
 * serves conns[0..n) one after another in a thread. */
struct canned {
	int lfd;
	char url[64];
	struct canned_conn *conns;
	size_t n;
	pthread_t th;
};
void canned_start(struct canned *c, struct canned_conn *conns, size_t n);
/* Wait for the thread (the connections made are served; one that never
 * came is given up), close the listener. */
void canned_end(struct canned *c);
/* The url of a loopback port nobody listens on. */
void free_port_url(char *url, size_t n);

/* A canned WebSocket peer: as canned_conn.serve (arg: struct canned_ws),
 * it answers the upgrade (101 with the accept value, or a wrong one), after
 * delay_ms, sends `first`, reads until it got wait_frames whole client
 * frames (kept in `got`, unmasked), then sends `then`. */
struct canned_ws {
	void (*accept)(const char *key, char *out);   /* wsc_accept */
	bool bad_accept;
	int delay_ms;
	struct buf first, then;
	int wait_frames;
	struct buf got;          /* the client's bytes read while waiting (masked
				  * frames; the rest is canned_conn.rest) */
	bool early;              /* bytes came before the 101 was sent */
};
void canned_ws_serve(int fd, const char *request, void *arg);
/* A server frame (unmasked). */
void ws_server_frame(struct buf *out, bool fin, int opcode, const void *p, size_t n);
/* Take one masked client frame from the front of in, unmasked into out
 * (appended): 1, or 0 when in holds no whole frame. */
int ws_client_frame(struct buf *in, int *ret_opcode, struct buf *out);

/* grep -r -a for text under dir: 1 is "not found" (what a test wants; 2,
 * an error, proves nothing). A file renamed or deleted under grep is such
 * an error: that alone is retried (twice). found and errs get grep's. */
int test_grep_absent(const char *text, const char *dir, struct buf *found, struct buf *errs);

/* ---- raw WebSockets ---- */

/* Upgrade path to a WebSocket on fd (connected to the daemon) as the user
 * of token: the answer's status (101: upgraded, its accept value checked),
 * -1 when the connection closed first, -2 for a wrong accept value. What
 * came after the answer's head stays in in (frames). */
int test_ws_upgrade(int fd, const char *path, const char *token, struct buf *in);

/* ---- tmux: a real terminal for the CLI and the TUI ---- */

/* tmux -S sock ARGS... (NULL-terminated); its exit status. out may be NULL. */
int tmux_at(const char *sock, struct buf *out, const char *a0, ...);
/* Wait up to ms until target's screen (capture-pane -p) shows needle: the
 * screen (caller frees); else NULL, the screen printed on stderr. */
char *tmux_wait(const char *sock, const char *target, const char *needle, int ms);
/* Wait up to ms until `bhatti ps NAME` (as d's user with key) lists a
 * session running and attached: a shell client is connected and the guest
 * shell has its terminal, so keys typed from now on reach it. No prompt is
 * assumed (a "$" could be anywhere on a screen). false (what ps said is
 * printed on stderr) when none came. */
bool test_wait_attached(struct daemon_proc *d, const char *key, const char *name, int ms);
/* The same for a screen that no longer shows needle. */
char *tmux_wait_gone(const char *sock, const char *target, const char *needle, int ms);

#endif
