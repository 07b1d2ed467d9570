/* agent.h — lohar's shared types: the agent's global state, connections,
 * streams and the ops table. Sits between main.c/conn.c (the protocol side)
 * and the op-*.c files (exec, sessions, files, forward, configure).
 *
 * Ownership:
 *   struct conn   — one host connection (unix socket client, or the VM's
 *                   virtio-serial port). Owns its streams. Freed with
 *                   loop_defer_free once closed.
 *   struct stream — one request in flight on a connection; `op` points at
 *                   the op's own state (struct exec, file transfer, ...).
 *                   A stream ends when lohar sends a frame with PROTO_F_END
 *                   (stream_end) or when the connection goes away
 *                   (ops->lost). Ops that outlive their stream (a killed
 *                   exec waiting to be reaped, a detached PTY session) drop
 *                   their stream pointer in ->lost and carry on.
 *   struct session — a PTY session; global (outlives connections).
 */
#ifndef LOHAR_AGENT_H
#define LOHAR_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"
#include "loop.h"
#include "proto.h"

#define AGENT_MAX_SESSIONS       20
#define AGENT_SCROLLBACK         (64u << 10)
#define AGENT_SESSION_IDLE_SEC   3600     /* kill a detached session after */
#define AGENT_SESSION_KEEP_MS    30000    /* keep an exited session's status */
#define AGENT_MAX_WRITE          (100ull << 20)
#define AGENT_LS_DEFAULT         1000
#define AGENT_LS_MAX             3000
#define AGENT_OUT_HIGH           (1u << 20)  /* stop reading sources above */
#define AGENT_OUT_LOW            (256u << 10) /* ... and resume below */
#define AGENT_EXIT_DRAIN_MS      1000     /* read output after the leader exits */

/* Options and state that live as long as the process. */
struct agent {
	/* from the command line */
	bool pid1;             /* running as init inside a VM */
	const char *workspace; /* default cwd for execs and sessions */
	bool switch_user;      /* drop to uid/gid for non-root work */
	uid_t uid;
	gid_t gid;
	uint64_t session_keep_ms; /* keep an exited session's status this long */

	/* configured over the protocol (CONFIGURE) */
	char *token;           /* "" until set */
	char *hostname;
	char **env;            /* "K=V" for every exec/session */
	char **secrets;        /* "K=V", never logged */
	bool configured;
	bool init_started;

	/* activity, for the thermal manager */
	uint64_t start_ms;
	uint64_t last_activity_ms;
	unsigned execs_running;
	unsigned forwards_open;
};

extern struct agent agent;

void agent_touch(void);   /* record user-visible activity now */

/* ---- connections and streams -------------------------------------------- */

struct stream;

/* What an op does with the frames of its stream. Every callback may be
 * NULL. `lost` is called once when the stream dies without lohar ending it
 * (connection lost: disconnect = true; or CLOSE from the host: false); the
 * op must stop using the stream pointer, and end it itself on CLOSE. */
struct stream_ops {
	void (*data)(struct stream *s, uint8_t channel, const uint8_t *p, size_t n);
	void (*eof)(struct stream *s, uint8_t channel);
	void (*window)(struct stream *s);      /* room to send grew */
	void (*frame)(struct stream *s, const struct proto_frame *f); /* e.g. RESIZE */
	void (*close)(struct stream *s);       /* CLOSE from the host */
	void (*lost)(struct stream *s);        /* connection gone */
};

struct conn;

struct stream {
	struct conn *conn;
	uint32_t id;
	uint8_t type;              /* the request that opened it */
	const struct stream_ops *ops;
	void *op;
	uint32_t send_window;      /* credit for our DATA */
	uint32_t recv_window;      /* credit we granted and the host may use */
	uint32_t recv_consumed;    /* consumed but not yet granted back */
	bool ended;
};

/* Room for DATA on s now: min(window, chunk), 0 while the connection's
 * output queue is over its high-water mark or the stream has ended. */
size_t stream_room(const struct stream *s);
/* Send n bytes of DATA (n <= stream_room). */
void stream_data(struct stream *s, uint8_t channel, const void *p, size_t n);
/* read(fd) straight into a DATA frame: > 0 bytes sent, 0 EOF, -EAGAIN,
 * or -errno. Reads at most stream_room(s) (callers check it is > 0). */
ssize_t stream_read_fd(struct stream *s, uint8_t channel, int fd);
/* Send a control message on the stream (not ending it). */
void stream_msg(struct stream *s, uint8_t type, const void *msg);
/* Send the last message and forget the stream (it is freed later). */
void stream_end(struct stream *s, uint8_t type, const void *msg);
void stream_end_error(struct stream *s, int code, const char *fmt, ...) PRINTF(3, 4);
/* Give back n bytes of receive credit once consumed (batched). */
void stream_consumed(struct stream *s, size_t n);
/* The op's state is gone: stop calling ops on this stream. */
void stream_detach_op(struct stream *s);

/* ---- the ops table (ops.c) ----------------------------------------------- */

/* A request handler: decode f's body and start the op on s. On failure it
 * ends the stream with an ERROR. */
typedef void (*op_start_fn)(struct stream *s, const struct proto_frame *f);

struct agent_op {
	uint8_t type;
	op_start_fn start;
};

const struct agent_op *agent_op_find(uint8_t type);

/* Decode f into msg or end s with ERROR; returns 0 or -errno. */
int op_decode(struct stream *s, const struct proto_frame *f, void *msg);

/* op entry points */
void op_ping(struct stream *s, const struct proto_frame *f);
void op_activity(struct stream *s, const struct proto_frame *f);
void op_configure(struct stream *s, const struct proto_frame *f);
void op_sync(struct stream *s, const struct proto_frame *f);
void op_load(struct stream *s, const struct proto_frame *f);

/* load.c: the hold socket (`lohar hold`) and the command itself. */
#define LOHAR_HOLD_SOCKET "/run/lohar/hold.sock"
#define LOHAR_RUN_DIR "/run/lohar"
int load_hold_start(const char *path, struct err *e);
int hold_main(int argc, char **argv);
void op_exec(struct stream *s, const struct proto_frame *f);
/* The detached commands as session records (borrowing their strings),
 * at most max; how many there are. */
size_t exec_bg_records(struct proto_session *r, size_t max);
size_t exec_bg_count(void);
void op_session_open(struct stream *s, const struct proto_frame *f);
void op_session_attach(struct stream *s, const struct proto_frame *f);
void op_session_list(struct stream *s, const struct proto_frame *f);
void op_session_info(struct stream *s, const struct proto_frame *f);
void op_session_kill(struct stream *s, const struct proto_frame *f);
void op_file_read(struct stream *s, const struct proto_frame *f);
void op_file_write(struct stream *s, const struct proto_frame *f);
void op_file_stat(struct stream *s, const struct proto_frame *f);
void op_file_ls(struct stream *s, const struct proto_frame *f);
void op_forward(struct stream *s, const struct proto_frame *f);
void op_ports(struct stream *s, const struct proto_frame *f);

/* ---- connections (conn.c) ------------------------------------------------ */

/* Start serving a connected fd. `persistent`: the VM channel, which is
 * reset (not freed) when the host side goes away. */
struct conn *conn_new(int fd, bool persistent);
unsigned conn_stream_count(const struct conn *c);

/* Test mode: accept connections on a unix socket. */
int listener_start(const char *path, struct err *e);
/* VM mode: serve the virtio-serial port at path, reconnecting forever. */
int channel_start(const char *path, struct err *e);

/* ---- children (child.c) ------------------------------------------------- */

struct child;
typedef void (*child_exit_fn)(struct child *c, int status);

/* A process lohar started and will reap. */
struct child {
	pid_t pid;
	child_exit_fn on_exit;
	void *data;
	struct child *next;
};

struct spawn {
	char **argv;
	char **env;            /* full environment */
	const char *cwd;
	bool as_root;
	int stdin_fd, stdout_fd, stderr_fd; /* dup'ed to 0,1,2 in the child */
	bool pty;              /* new session with stdin as controlling tty */
};

/* Fork and exec; waits until exec succeeded or failed so errors are
 * reported here ("cannot run 'x': no such file"). Registers c for reaping. */
int child_spawn(struct child *c, const struct spawn *sp, struct err *e);
void child_forget(struct child *c);
/* Reap everything that exited (SIGCHLD); orphans are reaped silently. */
void child_reap_all(void);
/* Kill a process group (pid is the group leader). */
void child_kill_group(pid_t pid, int sig);
/* Kill the group of every child still tracked (test-mode shutdown). */
void child_kill_all(int sig);

/* Build the environment for a process: defaults for the user, then the
 * configured env and secrets, then `extra` ("K=V", later wins). */
char **agent_build_env(bool as_root, char *const *extra, const char *term);
/* Resolve a guest path: relative paths are under the workspace. */
char *agent_resolve_path(const char *path);

/* ---- PID 1 (init.c) ------------------------------------------------------ */

int init_pid1(struct err *e);
/* Find the virtio-serial port named `name` under sysroot (normally
 * "/sys"); writes "/dev/vportNpM" into ret_path. */
int init_find_vport(const char *sysroot, const char *name, char *ret_path,
		    size_t size, struct err *e);
int init_set_hostname(const char *name, struct err *e);
int init_configure_net(const struct proto_configure *cfg, struct err *e);

/* ---- sessions (op-session.c) --------------------------------------------- */

/* Start the init script as session "init" (once). */
int session_start_init(const char *script, struct err *e);
unsigned session_count_running(void);
unsigned session_count_attached(void);

/* ---- files (op-file.c) --------------------------------------------------- */

/* Write a whole file atomically (CONFIGURE files, /etc/hosts). durable:
 * also fsync it (FILE_WRITE does); configuration written at boot is made
 * durable by the SYNC before a cold snapshot instead, because a guest
 * fsync is a host fdatasync of the disk image. */
int op_file_write_atomic(const char *path, const void *data, size_t len,
		      uint32_t mode, uid_t uid, gid_t gid, bool durable, struct err *e);

#endif
