/* guest — the daemon's I/O with the agent inside a sandbox: commands
 * (exec), PTY sessions (open, attach, list), files (read, write, stat,
 * list), the listening TCP ports and a byte stream to one of them
 * (forward), each one operation on one agent stream.
 *
 * Sits between the callers that translate HTTP, JSON and WebSocket
 * (daemon/api-*.c; later the publish proxy and the events stream) and the
 * sandbox's agent client (agent-client.h, proto.h), which only this module
 * and the engine see. An operation wakes its sandbox first (sbx_wake: a
 * warm one resumes, a cold one restores), then opens its stream, moves the
 * bytes both ways with flow control, and reports through a small callback
 * table:
 *
 *   started  the command runs (pid) / the session is attached (its id) /
 *            a file being read exists (its metadata) / a forward is
 *            connected to the guest's port
 *   data     bytes from the guest: stdout, stderr, PTY output, file bytes,
 *            a forwarded connection's bytes (only after started: an
 *            agent's bytes before it are dropped)
 *   eof      forward: the guest program finished sending (it may still
 *            read: half-close)
 *   room     bytes given to guest_write() went out (guest_write_queued fell)
 *   done     exactly once, last: how it ended (exit status, listing, or an
 *            error: rc < 0 with a message)
 *
 *   guest_*() ──wake──► opening ──stream──► running ──END / lost──► done
 *        │                 │                   │
 *        └─────────────────┴─ guest_op_free ───┴──► no callback any more;
 *                                                   the agent is told
 *                                                   (CLOSE: an exec's
 *                                                   process group is
 *                                                   killed, a shell is
 *                                                   detached, a write is
 *                                                   abandoned)
 *
 * Ownership: guest_*() return an operation the caller owns and ends with
 * guest_op_free() — at any time, also from inside one of its callbacks,
 * before or after `done`. No callback runs after guest_op_free(), so an
 * owner frees its own context right after it (the rule that keeps agent
 * streams off freed memory). `done` may come during a later loop turn
 * only: never from inside guest_*() itself.
 */
#ifndef BHATTI_GUEST_H
#define BHATTI_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct sbx;
struct guest_op;

enum guest_ch { GUEST_OUT = 1, GUEST_ERR = 2 };

enum guest_ftype { GUEST_FILE = 1, GUEST_DIR, GUEST_LINK, GUEST_OTHER };

#define GUEST_SIZE_UNKNOWN UINT64_MAX

struct guest_meta {
	enum guest_ftype type;
	uint32_t mode;            /* permission bits */
	uint64_t size;            /* GUEST_SIZE_UNKNOWN for pipes and devices */
	int64_t mtime;            /* unix seconds */
};

struct guest_entry {
	const char *name;
	enum guest_ftype type;
	uint32_t mode;
	uint64_t size;
	int64_t mtime;
};

struct guest_listing {
	const struct guest_entry *entries;
	size_t count;
	uint64_t total;           /* entries in the directory */
	bool truncated;
};

struct guest_session {
	const char *id;
	char *const *argv;
	const char *tty;
	bool running, attached;
	int exit_code;            /* when !running */
	int64_t created;          /* unix seconds */
};

struct guest_sessions {
	const struct guest_session *list;
	size_t count;
};

struct guest_port {
	uint16_t port;
	bool v4, v6;              /* which families listen on it */
	bool loopback;            /* every socket on it is bound to loopback */
};

struct guest_ports {
	const struct guest_port *list;   /* ascending, each port once */
	size_t count;
};

/* What `started` says (the fields of the operation's kind). */
struct guest_start {
	uint32_t pid;                     /* exec */
	const char *output_path;          /* exec, detached: where its output goes */
	const char *session;              /* shell: the session's id */
	bool session_new;                 /* shell: opened, not attached */
	const struct guest_meta *meta;    /* file read */
};

/* What `done` says. */
struct guest_end {
	int rc;                   /* 0, or -errno: it failed, err says why */
	const struct err *err;
	bool started;             /* `started` came before (a failure mid-way) */
	bool agent_error;         /* the agent itself refused or failed it */
	bool lost;                /* the agent connection went away */
	bool exited;              /* exec, shell: the process ended ... */
	int exit_code, signal;    /* ... so */
	bool timed_out;           /* exec: its timeout killed it */
	bool detached;            /* shell: detached (it runs on); exec: started
				   * in the background */
	uint64_t bytes;           /* file write: bytes written */
	bool truncated;           /* file read: max_bytes cut it */
	const struct guest_meta *meta;          /* file stat */
	const struct guest_listing *listing;    /* file ls */
	const struct guest_sessions *sessions;  /* session list */
	const struct guest_ports *ports;        /* ports */
};

struct guest_cb {
	void (*started)(struct guest_op *op, const struct guest_start *st, void *arg);
	void (*data)(struct guest_op *op, enum guest_ch ch, const uint8_t *p, size_t n, void *arg);
	void (*room)(struct guest_op *op, void *arg);
	void (*eof)(struct guest_op *op, void *arg);   /* optional */
	void (*done)(struct guest_op *op, const struct guest_end *end, void *arg);
};

struct guest_exec_req {
	char *const *argv;
	char *const *env;         /* "K=V"; may be NULL */
	const char *cwd;          /* NULL: the workspace */
	bool as_root;
	bool stdin_open;          /* guest_write() feeds stdin; else /dev/null */
	bool detach;              /* in the background, output to a file in the
				   * guest: `started` (pid, output_path), then
				   * `done` with detached */
	uint32_t timeout_ms;      /* 0: none */
};

struct guest_shell_req {
	const char *session;      /* attach to this one; NULL: a new login shell */
	uint16_t rows, cols;
};

struct guest_file_req {
	const char *path;
	bool as_root;             /* root's permissions (a new file owned by root);
				   * else uid 1000's, as a command runs */
	uint64_t offset, limit;   /* read: in lines; 0 = from the start, all */
	uint64_t max_bytes;       /* read: 0 = no cap */
	uint32_t mode;            /* write: 0 = 0644 */
	uint64_t size;            /* write: announced size or GUEST_SIZE_UNKNOWN */
};

/* Each copies what it needs of req. */
struct guest_op *guest_exec(struct sbx *sb, const struct guest_exec_req *req,
			    const struct guest_cb *cb, void *arg);
struct guest_op *guest_shell(struct sbx *sb, const struct guest_shell_req *req,
			     const struct guest_cb *cb, void *arg);
struct guest_op *guest_sessions(struct sbx *sb, const struct guest_cb *cb, void *arg);
struct guest_op *guest_file_read(struct sbx *sb, const struct guest_file_req *req,
				 const struct guest_cb *cb, void *arg);
struct guest_op *guest_file_write(struct sbx *sb, const struct guest_file_req *req,
				  const struct guest_cb *cb, void *arg);
struct guest_op *guest_file_stat(struct sbx *sb, const struct guest_file_req *req,
				 const struct guest_cb *cb, void *arg);
struct guest_op *guest_file_ls(struct sbx *sb, const struct guest_file_req *req,
			       const struct guest_cb *cb, void *arg);
/* The guest's listening TCP ports (done: end->ports). */
struct guest_op *guest_ports(struct sbx *sb, const struct guest_cb *cb, void *arg);
/* A TCP connection to 127.0.0.1:port in the guest: started when it is
 * connected, then bytes both ways (guest_write, guest_write_eof; data,
 * eof), done when both directions are closed or it failed ("nothing is
 * listening on port N in the sandbox": rc -ECONNREFUSED). Freeing it
 * early resets the guest's connection. */
struct guest_op *guest_forward(struct sbx *sb, uint16_t port, const struct guest_cb *cb,
			       void *arg);

/* Bytes to the guest (stdin, PTY keys, file contents), queued until the
 * stream is open and its credit allows; then EOF. The caller bounds what
 * it queues (guest_write_queued; `room` says when it fell). */
void guest_write(struct guest_op *op, const void *p, size_t n);
void guest_write_eof(struct guest_op *op);
size_t guest_write_queued(const struct guest_op *op);
/* A shell's window size. */
void guest_resize(struct guest_op *op, uint16_t rows, uint16_t cols);
/* The caller's consumer is slow: stop the guest's output (true) until it
 * caught up (false). The guest program then blocks on its pipe or PTY. */
void guest_hold(struct guest_op *op, bool hold);

void guest_op_free(struct guest_op *op);

#endif
