/* ops.c — lohar's one table of request handlers, and the guest-wide ops:
 * PING, ACTIVITY and CONFIGURE (boot-time setup, and reidentify after a
 * clone: new token, hostname, environment, clock and RNG seed). Sits
 * between conn.c's dispatcher and the op-*.c files / init.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "valid.h"

static const struct agent_op agent_ops[] = {
	{ PROTO_PING, op_ping },
	{ PROTO_ACTIVITY, op_activity },
	{ PROTO_CONFIGURE, op_configure },
	{ PROTO_SYNC, op_sync },
	{ PROTO_LOAD, op_load },
	{ PROTO_EXEC, op_exec },
	{ PROTO_SESSION_OPEN, op_session_open },
	{ PROTO_SESSION_ATTACH, op_session_attach },
	{ PROTO_SESSION_LIST, op_session_list },
	{ PROTO_SESSION_INFO, op_session_info },
	{ PROTO_SESSION_KILL, op_session_kill },
	{ PROTO_FILE_READ, op_file_read },
	{ PROTO_FILE_WRITE, op_file_write },
	{ PROTO_FILE_STAT, op_file_stat },
	{ PROTO_FILE_LS, op_file_ls },
	{ PROTO_FORWARD, op_forward },
	{ PROTO_PORTS, op_ports },
};

const struct agent_op *agent_op_find(uint8_t type)
{
	for (size_t i = 0; i < ARRAY_SIZE(agent_ops); i++)
		if (agent_ops[i].type == type)
			return &agent_ops[i];
	return NULL;
}

int op_decode(struct stream *s, const struct proto_frame *f, void *msg)
{
	struct err e = ERR_INIT;
	int r = proto_decode(f, msg, &e);
	if (r < 0)
		stream_end_error(s, e.code, "%s", err_str(&e));
	return r;
}

void op_ping(struct stream *s, const struct proto_frame *f)
{
	struct proto_ping p;
	if (op_decode(s, f, &p) < 0)
		return;
	stream_end(s, PROTO_PONG, &p);
}

void op_activity(struct stream *s, const struct proto_frame *f UNUSED)
{
	uint64_t now = now_ms();
	struct proto_activity_info info = {
		.idle_ms = now - agent.last_activity_ms,
		.execs = agent.execs_running,
		.sessions = session_count_running(),
		.attached = session_count_attached(),
		.forwards = agent.forwards_open,
		.streams = s->conn ? conn_stream_count(s->conn) - 1 : 0,
		.uptime_ms = now - agent.start_ms,
	};
	stream_end(s, PROTO_ACTIVITY_INFO, &info);
}

/* Before a cold snapshot: the disk image should be as current as the
 * guest's page cache, in case it is ever used without the memory. */
void op_sync(struct stream *s, const struct proto_frame *f UNUSED)
{
	struct proto_ok ok = { 0 };
	sync();
	stream_end(s, PROTO_OK, &ok);
}

/* ---- CONFIGURE ---------------------------------------------------------------- */

/* Every "NAME=value" of v; the values may be secrets and are never named. */
static int check_env(char *const *v, struct err *e)
{
	int r = 0;
	for (size_t i = 0; r == 0 && v && v[i]; i++)
		r = valid_env_entry(v[i], e);
	return r;
}

/* <linux/random.h> is not in musl's headers; these are the kernel's values. */
#define LOHAR_RNDADDENTROPY _IOW('R', 0x03, int[2])
#define LOHAR_RNDRESEEDCRNG _IO('R', 0x07)

static int seed_rng(const struct proto_blob *seed, struct err *e)
{
	struct {
		int entropy_count;
		int buf_size;
		uint8_t buf[512];
	} info;
	if (seed->len == 0 || seed->len > sizeof(info.buf))
		return err_set(e, EINVAL, "rng seed must be 1 to %zu bytes", sizeof(info.buf));
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "cannot open /dev/urandom: %s", strerror(errno));
	info.entropy_count = (int)seed->len * 8;
	info.buf_size = (int)seed->len;
	memcpy(info.buf, seed->data, seed->len);
	int r = 0;
	if (ioctl(fd, LOHAR_RNDADDENTROPY, &info) < 0)
		r = err_set(e, errno, "cannot seed the rng: %s", strerror(errno));
	else if (ioctl(fd, LOHAR_RNDRESEEDCRNG) < 0)
		log_debug("RNDRESEEDCRNG: %s", strerror(errno)); /* old kernels */
	close(fd);
	explicit_bzero(info.buf, sizeof(info.buf));
	return r;
}

static int apply_configure(const struct proto_configure *c, struct err *e)
{
	int r;

	/* Validate everything first so a bad request changes nothing. */
	if ((c->what & PROTO_CFG_HOSTNAME) && (r = valid_hostname(c->hostname, e)) < 0)
		return r;
	if ((c->what & PROTO_CFG_TOKEN) && !c->token[0])
		return err_set(e, EINVAL, "empty token");
	if ((c->what & PROTO_CFG_ENV) && (r = check_env(c->env, e)) < 0)
		return err_prefix(e, "environment");
	if ((c->what & PROTO_CFG_SECRETS) && (r = check_env(c->secrets, e)) < 0)
		return err_prefix(e, "secrets");
	for (size_t i = 0; (c->what & PROTO_CFG_FILES) && i < c->nfiles; i++)
		if (c->files[i].path[0] != '/')
			return err_set(e, EINVAL, "config file path '%s' is not absolute",
				       c->files[i].path);

	if (c->what & PROTO_CFG_HOSTNAME) {
		if (agent.pid1 && (r = init_set_hostname(c->hostname, e)) < 0)
			return r;
		free(agent.hostname);
		agent.hostname = xstrdup(c->hostname);
	}
	if (c->what & PROTO_CFG_CLOCK) {
		struct timespec ts = { .tv_sec = (time_t)(c->clock_ns / 1000000000ull),
				       .tv_nsec = (long)(c->clock_ns % 1000000000ull) };
		if (agent.pid1 && clock_settime(CLOCK_REALTIME, &ts) < 0)
			return err_set(e, errno, "cannot set the clock: %s", strerror(errno));
	}
	if ((c->what & PROTO_CFG_RNG) && agent.pid1 && (r = seed_rng(&c->rng_seed, e)) < 0)
		return r;
	if ((c->what & PROTO_CFG_NET) && agent.pid1 && (r = init_configure_net(c, e)) < 0)
		return r;
	if (c->what & PROTO_CFG_TOKEN) {
		free(agent.token);
		agent.token = xstrdup(c->token);
	}
	if (c->what & PROTO_CFG_ENV) {
		strv_free(agent.env);
		agent.env = strv_dup(c->env);
	}
	if (c->what & PROTO_CFG_SECRETS) {
		strv_free(agent.secrets);
		agent.secrets = strv_dup(c->secrets);
	}
	for (size_t i = 0; (c->what & PROTO_CFG_FILES) && i < c->nfiles; i++) {
		const struct proto_cfg_file *cf = &c->files[i];
		r = op_file_write_atomic(cf->path, cf->content.data, cf->content.len,
				      cf->mode ? cf->mode : 0644, cf->uid, cf->gid, false, e);
		if (r < 0)
			return r;
	}
	agent.configured = true;
	if ((c->what & PROTO_CFG_INIT) && c->init[0] && !agent.init_started) {
		agent.init_started = true;
		if ((r = session_start_init(c->init, e)) < 0)
			return err_prefix(e, "init script");
	}
	return 0;
}

void op_configure(struct stream *s, const struct proto_frame *f)
{
	struct proto_configure req;
	struct err e = ERR_INIT;

	if (op_decode(s, f, &req) < 0)
		return;
	if (apply_configure(&req, &e) < 0) {
		stream_end_error(s, e.code, "%s", err_str(&e));
	} else {
		struct proto_ok ok = { 0 };
		log_info("configured (parts 0x%x%s)", req.what, agent.pid1 ? "" : "; test mode: "
			 "hostname, clock, rng and network are recorded, not applied");
		stream_end(s, PROTO_OK, &ok);
	}
	/* secrets: wipe our copy of the request before freeing it */
	for (size_t i = 0; req.secrets && req.secrets[i]; i++)
		explicit_bzero(req.secrets[i], strlen(req.secrets[i]));
	proto_msg_release(PROTO_CONFIGURE, &req);
}
