/* proto — the host ⇄ guest agent protocol: frames, message types, codec.
 *
 * Sits between the byte stream of one VM's agent channel (a virtio-serial
 * port in a VM, a unix socket in tests) and the two peers: lohar (agent/)
 * and the host's agent client (daemon/agent-client.c). docs/protocol.md is
 * the prose version of this file; keep them in step.
 *
 * Frame (12-byte header, little-endian, then the payload):
 *
 *   0      4       5      6        8         12
 *   | len  | magic | type | flags  | stream  | payload (len bytes) ... |
 *
 *   len     payload length, at most PROTO_MAX_FRAME - 12
 *   magic   0xB7; anything else is garbage and closes the connection
 *   flags   PROTO_F_END: the sender's last frame on this stream
 *   stream  0 for the connection itself, else a stream the host opened
 *
 * Every message body except DATA is described by a layout (field list) in
 * proto.c's message table; one generic encoder/decoder walks it. DATA is
 * special-cased on the hot path: one channel byte, then raw bytes.
 */
#ifndef BHATTI_PROTO_H
#define BHATTI_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define PROTO_VERSION     3
#define PROTO_MAGIC       0xB7
#define PROTO_HDR_SIZE    12
#define PROTO_MAX_FRAME   (1u << 20)                 /* header + payload */
#define PROTO_MAX_PAYLOAD (PROTO_MAX_FRAME - PROTO_HDR_SIZE)
#define PROTO_WINDOW      (256u << 10)  /* initial credit per stream and direction */
#define PROTO_DATA_CHUNK  (64u << 10)   /* largest DATA payload a peer sends */
#define PROTO_MAX_STREAMS 256           /* open streams per connection */

#define PROTO_F_END 0x0001u
#define PROTO_F_KNOWN PROTO_F_END

/* Data channels. */
enum {
	PROTO_CH_IN = 0,   /* host → agent: stdin, PTY input, file bytes, forward */
	PROTO_CH_OUT = 1,  /* agent → host: stdout, PTY output, file bytes, forward */
	PROTO_CH_ERR = 2,  /* agent → host: stderr */
};

/* Message types. h→a: host to agent; a→h: agent to host. */
enum proto_type {
	/* connection and stream control */
	PROTO_HELLO = 1,          /* h→a, stream 0, first frame */
	PROTO_HELLO_OK = 2,       /* a→h, stream 0 */
	PROTO_PING = 3,           /* h→a, any stream id not in use */
	PROTO_PONG = 4,           /* a→h, END */
	PROTO_ERROR = 5,          /* a→h; stream 0: fatal, connection closes */
	PROTO_DATA = 6,           /* both: channel byte + raw bytes */
	PROTO_EOF = 7,            /* both: half-close of one channel */
	PROTO_WINDOW_UPDATE = 8,  /* both: more credit for DATA on a stream */
	PROTO_CLOSE = 9,          /* h→a: cancel / detach / abort the stream */
	PROTO_OK = 10,            /* a→h: success (+ END when terminal) */
	/* guest-wide */
	PROTO_CONFIGURE = 20,     /* h→a → OK */
	PROTO_ACTIVITY = 21,      /* h→a → ACTIVITY_INFO */
	PROTO_ACTIVITY_INFO = 22, /* a→h, END */
	PROTO_SYNC = 23,          /* h→a → OK: flush guest filesystems */
	PROTO_LOAD = 24,          /* h→a → LOAD_INFO (the thermal manager's poll) */
	PROTO_LOAD_INFO = 25,     /* a→h, END */
	/* exec */
	PROTO_EXEC = 30,          /* h→a → EXEC_STARTED, DATA/EOF..., EXIT */
	PROTO_EXEC_STARTED = 31,  /* a→h */
	PROTO_EXIT = 32,          /* a→h, END */
	/* PTY sessions */
	PROTO_SESSION_OPEN = 40,   /* h→a → SESSION, DATA..., EXIT */
	PROTO_SESSION_ATTACH = 41, /* h→a → SESSION, scrollback, DATA..., EXIT */
	PROTO_SESSION = 42,        /* a→h: one session record */
	PROTO_RESIZE = 43,         /* h→a, on an attached stream */
	PROTO_SESSION_LIST = 44,   /* h→a → SESSION_LIST_RESULT */
	PROTO_SESSION_INFO = 45,   /* h→a → SESSION_LIST_RESULT with one entry */
	PROTO_SESSION_LIST_RESULT = 46,
	PROTO_SESSION_KILL = 47,   /* h→a → OK */
	/* files */
	PROTO_FILE_READ = 50,      /* h→a → FILE_META, DATA..., EOF, OK */
	PROTO_FILE_WRITE = 51,     /* h→a, DATA..., EOF → OK */
	PROTO_FILE_STAT = 52,      /* h→a → FILE_META (END) */
	PROTO_FILE_META = 53,      /* a→h */
	PROTO_FILE_LS = 54,        /* h→a → LS_RESULT */
	PROTO_LS_RESULT = 55,      /* a→h, END */
	/* port forward */
	PROTO_FORWARD = 60,        /* h→a → OK, DATA/EOF both ways, OK END */
	PROTO_PORTS = 61,          /* h→a → PORTS_RESULT: listening TCP ports */
	PROTO_PORTS_RESULT = 62,   /* a→h, END */
};

/* A decoded frame; payload points into the decoder's buffer and is valid
 * until the next proto_decoder_* call. */
struct proto_frame {
	uint32_t stream;
	uint8_t type;
	uint16_t flags;
	const uint8_t *payload;
	uint32_t len;
};

/* Incremental decoder. Feed it whatever bytes arrive; take frames out with
 * proto_decoder_next(). It holds at most one partial frame plus the last
 * chunk fed, and checks the header before buffering a payload. */
struct proto_decoder {
	struct buf in;
	size_t off;   /* start of the unparsed bytes in `in` */
	int err;      /* sticky: after an error the decoder yields nothing */
};

void proto_decoder_init(struct proto_decoder *d);
void proto_decoder_release(struct proto_decoder *d);
void proto_decoder_feed(struct proto_decoder *d, const void *p, size_t n);
/* 1: *ret holds a frame; 0: need more bytes; <0: the stream is corrupt
 * (-EPROTO bad magic or flags, -EMSGSIZE oversized); e says why. */
int proto_decoder_next(struct proto_decoder *d, struct proto_frame *ret,
		       struct err *e);
/* After an error: forget it and drop one byte, to hunt for the next frame
 * header in a stream that started mid-frame (see docs/protocol.md). */
void proto_decoder_resync(struct proto_decoder *d);
/* Bytes buffered but not yet returned as a frame (a truncated frame at
 * end of stream leaves this non-zero). */
size_t proto_decoder_pending(const struct proto_decoder *d);

/* ---- message bodies ---------------------------------------------------- */

struct proto_blob {
	uint8_t *data;
	size_t len;
};

struct proto_hello {
	uint32_t version;
	char *token;
	char *client;        /* free text for logs, e.g. "bhatti-daemon 0.1.0" */
};

struct proto_hello_ok {
	uint32_t version;
	char *agent_version;
	uint32_t max_frame;
	uint32_t window;
	uint32_t max_streams;
	char *hostname;
	uint8_t configured;  /* 1 once a CONFIGURE has been applied */
};

struct proto_ping {
	uint64_t nonce;
};

struct proto_error {
	int32_t code;        /* positive errno */
	char *message;
};

struct proto_eof {
	uint8_t channel;
};

struct proto_window {
	uint32_t increment;
};

#define PROTO_OK_TRUNCATED 0x1u

struct proto_ok {
	uint64_t bytes;      /* file read/write: bytes moved; else 0 */
	uint32_t flags;      /* PROTO_OK_TRUNCATED */
};

/* CONFIGURE: `what` says which parts to apply; absent parts are empty. */
enum {
	PROTO_CFG_HOSTNAME = 1u << 0,
	PROTO_CFG_TOKEN = 1u << 1,
	PROTO_CFG_ENV = 1u << 2,
	PROTO_CFG_SECRETS = 1u << 3,
	PROTO_CFG_FILES = 1u << 4,
	PROTO_CFG_INIT = 1u << 5,
	PROTO_CFG_NET = 1u << 6,
	PROTO_CFG_CLOCK = 1u << 7,
	PROTO_CFG_RNG = 1u << 8,
	PROTO_CFG_ALL = (1u << 9) - 1,
};

struct proto_cfg_file {
	char *path;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	struct proto_blob content;
};

struct proto_configure {
	uint32_t what;
	char *hostname;
	char *token;
	char **env;          /* "KEY=VALUE" for every exec and session */
	char **secrets;      /* "KEY=VALUE" likewise, never logged */
	struct proto_cfg_file *files;
	size_t nfiles;
	char *init;          /* shell script run once as session "init" */
	char *net_ifname;    /* e.g. "eth0" */
	char *net_address;   /* CIDR, e.g. "10.44.0.2/24" */
	char *net_gateway;
	char **net_dns;
	uint32_t net_mtu;
	uint64_t clock_ns;   /* CLOCK_REALTIME to set, ns since the epoch */
	struct proto_blob rng_seed;
	char *net_mac;       /* NET: the NIC's new MAC ("" = keep); a clone announces
			      * its address (gratuitous ARP) */
};

struct proto_activity_info {
	uint64_t idle_ms;    /* since the last byte of user-visible activity */
	uint32_t execs;      /* running execs (attached or detached) */
	uint32_t sessions;   /* running PTY sessions */
	uint32_t attached;   /* sessions with a host attached */
	uint32_t forwards;   /* open port forwards */
	uint32_t streams;    /* open streams on this connection */
	uint64_t uptime_ms;
};

/* What keeps a guest busy that the host cannot see (docs/thermal.md). */
struct proto_load_info {
	uint64_t cpu_ms;     /* CPU time of the guest's user processes since boot
			      * (every process but lohar and kernel threads, plus
			      * what lohar's reaped children used) */
	uint32_t tcp_out;    /* established outbound TCP connections they hold */
	uint32_t holds;      /* `lohar hold -- CMD` running */
	uint64_t hold_ms;    /* `lohar hold --for`: how long it still holds */
	uint32_t forwards;   /* open port forwards */
};

enum {
	PROTO_EXEC_ROOT = 1u << 0,    /* run as root instead of uid 1000 */
	PROTO_EXEC_STDIN = 1u << 1,   /* host streams stdin; else /dev/null */
	PROTO_EXEC_DETACH = 1u << 2,  /* output to output_path; survives the host */
};

struct proto_exec {
	char **argv;
	char **env;          /* "KEY=VALUE" added to the configured environment */
	char *cwd;           /* "" = the workspace */
	uint32_t flags;
	uint32_t timeout_ms; /* 0 = none; SIGKILL to the process group */
	char *output_path;   /* DETACH only; "" = /tmp/bhatti-exec-<pid>.log */
};

struct proto_exec_started {
	uint32_t pid;
	char *output_path;   /* DETACH: where the output goes */
};

enum {
	PROTO_EXIT_TIMEOUT = 1u << 0,   /* killed by timeout_ms */
	PROTO_EXIT_CANCELLED = 1u << 1, /* killed by CLOSE */
};

struct proto_exit {
	int32_t exit_code;   /* 0..255; 128+signal when killed by a signal */
	int32_t signal;      /* the signal, or 0 */
	uint32_t flags;      /* PROTO_EXIT_* */
};

enum {
	PROTO_SESSION_ROOT = 1u << 0,
};

struct proto_session_open {
	char *id;            /* "" = generated */
	char **argv;         /* empty = login shell */
	char **env;
	char *cwd;           /* "" = the workspace */
	uint16_t rows, cols;
	uint32_t flags;
	uint32_t idle_timeout_sec; /* after detach; 0 = default (1 h) */
};

struct proto_session_attach {
	char *id;
	uint16_t rows, cols; /* 0 = keep the current size */
};

struct proto_resize {
	uint16_t rows, cols;
};

struct proto_session_ref {
	char *id;
	uint32_t signal;     /* SESSION_KILL: 0 = SIGTERM */
};

struct proto_session {
	char *id;
	char **argv;
	char *tty;
	uint32_t pid;
	uint8_t running;
	uint8_t attached;
	int32_t exit_code;   /* valid when !running */
	int64_t created;     /* unix seconds */
	uint64_t output_bytes; /* total output ever produced */
	uint16_t rows, cols;
};

struct proto_session_list {
	struct proto_session *sessions;
	size_t count;
};

/* The flags of every file request (FILE_READ, FILE_WRITE, FILE_STAT,
 * FILE_LS): the agent works with uid/gid 1000's file permissions, and what
 * a write creates is owned by 1000, unless PROTO_FILE_ROOT. */
enum {
	PROTO_FILE_ROOT = 1u << 0,  /* root's permissions; a write's new file owned by root */
};

struct proto_file_read {
	char *path;
	uint64_t offset;     /* lines to skip */
	uint64_t limit;      /* lines to send; 0 = all */
	uint64_t max_bytes;  /* 0 = no cap */
	uint32_t flags;      /* PROTO_FILE_ROOT */
};

enum {
	PROTO_FT_FILE = 1,
	PROTO_FT_DIR = 2,
	PROTO_FT_LINK = 3,
	PROTO_FT_OTHER = 4,
};

struct proto_file_meta {
	uint8_t type;
	uint32_t mode;       /* permission bits */
	uint64_t size;
	int64_t mtime;
	uint32_t uid, gid;
	char *link_target;
};

#define PROTO_FILE_SIZE_UNKNOWN UINT64_MAX

struct proto_file_write {
	char *path;
	uint32_t mode;       /* 0 = 0644 */
	uint64_t size;       /* announced size or PROTO_FILE_SIZE_UNKNOWN */
	uint32_t flags;      /* PROTO_FILE_ROOT */
};

/* FILE_STAT's request. */
struct proto_path {
	char *path;
	uint32_t flags;      /* PROTO_FILE_ROOT */
};

struct proto_file_ls {
	char *path;
	uint32_t max_entries; /* 0 = default (1000) */
	uint32_t flags;      /* PROTO_FILE_ROOT */
};

struct proto_dirent {
	char *name;
	uint8_t type;
	uint32_t mode;
	uint64_t size;
	int64_t mtime;
};

struct proto_ls_result {
	struct proto_dirent *entries;
	size_t count;
	uint32_t total;      /* entries in the directory */
	uint8_t truncated;
};

struct proto_forward {
	uint16_t port;
};

/* PORTS_RESULT: the guest's listening TCP ports (IPv4 and IPv6 together),
 * ascending, each once. */
enum {
	PROTO_PORT_V4 = 1u << 0,        /* some IPv4 socket listens on it */
	PROTO_PORT_V6 = 1u << 1,        /* some IPv6 socket listens on it */
	PROTO_PORT_LOOPBACK = 1u << 2,  /* every socket on it is bound to loopback */
};

struct proto_port {
	uint16_t port;
	uint8_t flags;       /* PROTO_PORT_* */
};

struct proto_ports_result {
	struct proto_port *ports;
	size_t count;
};

/* ---- codec ------------------------------------------------------------- */

/* Name of a type for logs and errors ("EXEC"), or NULL when unknown. */
const char *proto_type_name(uint8_t type);
/* Does this type carry a layout-described body (everything but DATA)? */
bool proto_type_known(uint8_t type);

/* Append a frame with a raw payload. */
void proto_put_frame(struct buf *out, uint32_t stream, uint8_t type,
		     uint16_t flags, const void *payload, size_t len);
/* Append a frame whose body is `msg` (the struct for `type`, or NULL for
 * an empty body where the type has no fields). -EMSGSIZE when the body
 * would exceed PROTO_MAX_PAYLOAD (out is left as it was). */
int proto_put_msg(struct buf *out, uint32_t stream, uint8_t type,
		  uint16_t flags, const void *msg);
/* Append DATA; n must be <= PROTO_DATA_CHUNK. */
#define PROTO_DATA_HDR (PROTO_HDR_SIZE + 1)
/* Write the PROTO_DATA_HDR bytes that precede n bytes of DATA (for
 * readers that read() straight into an output queue). */
void proto_data_header(uint8_t *h, uint32_t stream, uint8_t channel, size_t n);
void proto_put_data(struct buf *out, uint32_t stream, uint8_t channel,
		    const void *p, size_t n);
/* Convenience for the common small messages. */
void proto_put_error(struct buf *out, uint32_t stream, int code,
		     const char *fmt, ...) PRINTF(4, 5);

/* Decode f's body into *ret_msg, the struct for f->type (zeroed first).
 * Strict: short, long or malformed bodies fail with -EPROTO. On success
 * the caller owns the allocations: proto_msg_release(). */
int proto_decode(const struct proto_frame *f, void *ret_msg, struct err *e);
void proto_msg_release(uint8_t type, void *msg);

struct proto_data {
	uint8_t channel;
	const uint8_t *data;  /* points into the frame */
	size_t len;
};
int proto_decode_data(const struct proto_frame *f, struct proto_data *ret,
		      struct err *e);

#endif
