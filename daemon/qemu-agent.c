/* qemu-agent.c — the agent channel of a QEMU VM: connecting to the guest
 * agent through the unix socket behind its virtio-serial port (agent.sock),
 * waiting for HELLO, reconnecting when the channel drops while the VM runs,
 * one request at a time for the backend's own steps (exec, SYNC), and
 * CONFIGURE (a new identity, or just the clock).
 *
 * Sits between the backend's steps and agent-client.c (the protocol). The
 * connected client is vm->agent, which the engine's users reach through
 * vm_agent(). Touches no file but the socket.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qemu.h"

/* ---- agent connection ----------------------------------------------------------- */

static void agent_client_free(void *p)
{
	ac_free(p);
}

/* Drop the agent connection. The engine's own pending request is orphaned
 * (its continuation is the caller's business); every other stream on the
 * connection (an exec, a shell, a file of the API) is told it ended, so no
 * owner keeps a pointer to it. The client itself is freed after this loop
 * turn, as we may be inside one of its calls. */
void qagent_close(struct qvm *q)
{
	struct ac *ac = q->vm->agent;
	if (ac) {
		if (q->agent_req)
			ac_stream_orphan(q->agent_req);
		ac_set_notify(ac, NULL, NULL);
		watch_del(&q->agent_w);
		task_cancel(&q->agent_flush);
		q->vm->agent = NULL;
		ac_close(ac, ECONNABORTED, "sandbox '%s' is %s", q->vm->id,
			 q->vm->op == OP_STOP ? "stopping" : q->vm->op == OP_DESTROY ? "being destroyed"
			 : "no longer running");
		loop_defer_free(agent_client_free, ac);
	}
	q->agent_req = NULL;
	q->on_req = NULL;
	q->on_hello = NULL;
}

static void agent_update(struct qvm *q)
{
	struct ac *ac = q->vm->agent;
	if (ac && !ac_dead(ac))
		watch_set(&q->agent_w, EPOLLIN | (ac_want_write(ac) ? EPOLLOUT : 0));
}

void qagent_flush_task(struct task *t)
{
	struct qvm *q = t->data;
	if (q->vm->agent && !ac_dead(q->vm->agent))
		ac_flush(q->vm->agent, NULL);
	agent_update(q);
}

static void agent_notify(void *arg)
{
	struct qvm *q = arg;
	task_post(&q->agent_flush);
}

static void agent_lost(struct qvm *q, const struct err *e);

void qagent_on_io(struct watch *w, uint32_t events)
{
	struct qvm *q = w->data;
	struct ac *ac = q->vm->agent;
	struct err e = ERR_INIT;
	int r = 0;
	if (!ac)
		return;
	if (events & EPOLLOUT)
		r = ac_flush(ac, &e);
	if (r == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		r = ac_on_readable(ac, &e);
	if (r < 0) {
		agent_lost(q, &e);
		return;
	}
	agent_update(q);
	if (q->on_hello && ac_ready(ac)) {
		qstep_fn next = q->on_hello;
		q->on_hello = NULL;
		timer_cancel(&q->timer);
		next(q);
	}
}

static void agent_retry(struct qvm *q);

/* The agent connection died by itself. A step waiting for HELLO fails
 * (a pending request already got its `closed` callback); otherwise a
 * RUNNING VM whose QEMU lives reconnects: the guest's lohar resets. */
static void agent_lost(struct qvm *q, const struct err *e)
{
	struct vm *vm = q->vm;
	bool waiting = q->on_hello != NULL;
	if (q->role == QVM_PROBE)
		log_debug("vm '%s': agent connection lost: %s", vm->id, err_str(e));
	else
		log_warn("vm '%s': agent connection lost: %s", vm->id, err_str(e));
	qagent_close(q);
	if (waiting) {
		step_fail(q, EIO, "agent connection lost: %s", err_str(e));
		return;
	}
	if (vm->op == OP_NONE && vm->state == VM_RUNNING && q->pid > 0) {
		q->deadline = now_ms() + 10000;
		step_after(q, 100, agent_retry);
	}
}

int qagent_open(struct qvm *q, const char *token, struct err *e)
{
	char *path = qvm_path(q->vm, "agent.sock");
	int fd, r = unix_connect(path, &fd);
	free(path);
	if (r < 0)
		return err_set(e, -r, "cannot connect to the agent channel: %s", strerror(-r));
	struct ac *ac = ac_new(fd, token, "bhatti-engine");
	q->vm->agent = ac;
	watch_add(&q->agent_w, fd, EPOLLIN | EPOLLOUT);
	ac_set_notify(ac, agent_notify, q);
	return 0;
}

void qagent_reconnected(struct qvm *q)
{
	log_info("vm '%s': agent reconnected", q->vm->id);
}

static void agent_retry(struct qvm *q)
{
	struct err e = ERR_INIT;
	if (q->vm->state != VM_RUNNING || q->vm->op != OP_NONE || q->vm->agent)
		return;
	if (step_past_deadline(q)) {
		vm_fail(q->vm, "the agent in the sandbox stopped answering");
		meta_write(q->vm);
		return;
	}
	if (qagent_open(q, q->token, &e) < 0)
		step_after(q, 200, agent_retry);
	else
		q->on_hello = qagent_reconnected;
}

static void agent_hello_timeout(struct qvm *q)
{
	q->on_hello = NULL;
	step_fail(q, ETIMEDOUT, "the agent did not answer (see %s/console.log)", q->vm->dir);
}

/* Connect and wait for HELLO_OK, then `next`; fail after timeout_ms. */
void qagent_connect(struct qvm *q, const char *token, uint64_t timeout_ms, qstep_fn next)
{
	struct err e = ERR_INIT;
	if (qagent_open(q, token, &e) < 0) {
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
	q->on_hello = next;
	step_after(q, timeout_ms, agent_hello_timeout);
}

/* One request to the agent; q->on_req runs when it ends, with q->agent_rc
 * (and q->agent_err) saying how. */
static void req_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct qvm *q = arg;
	if (!(f->flags & PROTO_F_END))
		return;
	if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		if (proto_decode(f, &pe, NULL) == 0) {
			q->agent_rc = err_set(&q->agent_err, pe.code ? pe.code : EIO, "%s", pe.message);
			proto_msg_release(PROTO_ERROR, &pe);
		} else {
			q->agent_rc = err_set(&q->agent_err, EPROTO, "malformed error from the agent");
		}
	} else {
		q->agent_rc = 0;
	}
}

static void req_end(struct qvm *q)
{
	qstep_fn next = q->on_req;
	q->on_req = NULL;
	q->agent_req = NULL;
	timer_cancel(&q->timer);
	if (next)
		next(q);
}

static void req_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct qvm *q = arg;
	if (e) {
		q->agent_rc = -e->code;
		q->agent_err = *e;
	}
	req_end(q);
}

static const struct ac_stream_cb req_cb = { .frame = req_frame, .closed = req_closed };

static void req_timeout(struct qvm *q)
{
	qstep_fn next = q->on_req;
	q->agent_rc = err_set(&q->agent_err, ETIMEDOUT, "the agent did not answer in time");
	if (q->agent_req)
		ac_send_close(q->agent_req);
	/* drop the connection: the next one starts a clean session */
	qagent_close(q);
	if (next)
		next(q);
}

void qagent_request(struct qvm *q, uint8_t type, const void *msg, uint64_t timeout_ms,
		    qstep_fn next)
{
	struct err e = ERR_INIT;
	q->agent_rc = -EIO;
	err_clear(&q->agent_err);
	q->agent_req = q->vm->agent ? ac_open(q->vm->agent, type, msg, &req_cb, q, &e) : NULL;
	if (!q->agent_req) {
		q->agent_rc = err_set(&q->agent_err, e.code ? e.code : ENOTCONN, "%s",
				      e.code ? err_str(&e) : "no agent connection");
		next(q);
		return;
	}
	q->on_req = next;
	q->on_timer = NULL;
	step_after(q, timeout_ms, req_timeout);
}

/* ---- configure ---------------------------------------------------------------------- */

/* Its place on its owner's network into c: a clone still has its
 * template's MAC and no address, a copy (snapshot, fork) its source's.
 * dns: room for the resolver list c points at. */
static void add_net(const struct vm *vm, struct proto_configure *c, char *dns[2])
{
	if (!vm->eng->cfg.net || !vm->spec.net.address[0])
		return;
	dns[0] = (char *)vm->spec.net.gateway;
	dns[1] = NULL;
	c->what |= PROTO_CFG_NET;
	c->net_ifname = (char *)"eth0";
	c->net_address = (char *)vm->spec.net.address;
	c->net_gateway = (char *)vm->spec.net.gateway;
	c->net_dns = dns;
	c->net_mac = (char *)vm->spec.net.mac;
}

/* identity: the whole setup (first boot, or a clone taking its own
 * identity: new token, RNG seed, ...); otherwise just the clock (a start
 * restores the same VM: its RNG state is its own, no other copy has it). */
void qagent_configure(struct qvm *q, bool identity, qstep_fn next)
{
	struct vm *vm = q->vm;
	uint8_t seed[64];
	struct timespec ts;
	struct proto_configure c = {
		.what = PROTO_CFG_CLOCK,
		.hostname = (char *)"", .token = (char *)"", .init = (char *)"",
		.net_ifname = (char *)"", .net_address = (char *)"", .net_gateway = (char *)"",
		.rng_seed = { seed, sizeof(seed) },
	};
	randombytes_buf(seed, sizeof(seed));
	clock_gettime(CLOCK_REALTIME, &ts);
	c.clock_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (identity) {
		c.what |= PROTO_CFG_HOSTNAME | PROTO_CFG_TOKEN | PROTO_CFG_ENV | PROTO_CFG_SECRETS |
			  PROTO_CFG_FILES | PROTO_CFG_INIT | PROTO_CFG_RNG;
		c.hostname = (char *)vm->spec.hostname;
		c.token = q->token;
		c.env = vm->spec.env;
		c.secrets = vm->spec.secrets;
		c.files = vm->spec.files;
		c.nfiles = vm->spec.nfiles;
		c.init = (char *)(vm->spec.init ? vm->spec.init : "");
	}
	char *dns[2];
	if (identity)
		add_net(vm, &c, dns);
	qagent_request(q, PROTO_CONFIGURE, &c, STEP_TIMEOUT_MS, next);
	sodium_memzero(seed, sizeof(seed));
}

void qagent_reidentify(struct qvm *q, qstep_fn next)
{
	uint8_t seed[64];
	struct timespec ts;
	struct proto_configure c = {
		.what = PROTO_CFG_CLOCK | PROTO_CFG_HOSTNAME | PROTO_CFG_TOKEN | PROTO_CFG_RNG,
		.hostname = (char *)q->vm->spec.hostname, .token = q->token, .init = (char *)"",
		.net_ifname = (char *)"", .net_address = (char *)"", .net_gateway = (char *)"",
		.rng_seed = { seed, sizeof(seed) },
	};
	randombytes_buf(seed, sizeof(seed));
	clock_gettime(CLOCK_REALTIME, &ts);
	c.clock_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	char *dns[2];
	add_net(q->vm, &c, dns);
	qagent_request(q, PROTO_CONFIGURE, &c, STEP_TIMEOUT_MS, next);
	sodium_memzero(seed, sizeof(seed));
}
