/* qemu-qmp.c — a VM's QMP connection in the QEMU backend: connecting to
 * the socket QEMU listens on (retried until the step's deadline), events
 * (QEMU's own shutdown, a guest reset), commands with an optional fd and
 * the next step to run on the answer, and the small argument builders the
 * operations share (migration capabilities, {"k": "v"}).
 *
 * Sits between the backend's steps (engine-qemu.c, qemu-restore.c,
 * qemu-template.c, ...) and qmp.c (the QMP protocol on one socket).
 * Touches only the VM's QMP socket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qemu.h"

/* ---- QMP ---------------------------------------------------------------------------- */

void qemu_on_qmp_event(struct qmp *qm UNUSED, const char *ev, const cJSON *data, void *arg)
{
	struct qvm *q = arg;
	if (strcmp(ev, "MIGRATION") != 0)
		return;
	const char *st = json_get_str(data, "status", "");
	bool ok = strcmp(st, "completed") == 0;
	if (!ok && strcmp(st, "failed") != 0 && strcmp(st, "cancelled") != 0)
		return;
	q->migrated = ok;
	qstep_fn next = q->on_migrated;
	if (!next)
		return; /* came before we asked; the step checks q->migrated */
	q->on_migrated = NULL;
	timer_cancel(&q->timer);
	if (ok)
		next(q);
	else
		step_fail(q, EIO, "migration %s (see %s/qemu.log)", st, q->vm->dir);
}

void qemu_on_qmp_closed(struct qmp *qm UNUSED, const struct err *e, void *arg)
{
	struct qvm *q = arg;
	log_debug("vm '%s': %s", q->vm->id, err_str(e));
}

static void qmp_connect_try(struct qvm *q)
{
	char *path = qvm_path(q->vm, "qmp.sock");
	int fd, r = unix_connect(path, &fd);
	free(path);
	if (r == 0) {
		/* the socket is served by the QEMU we started (it listens) */
		struct ucred cr;
		socklen_t len = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.pid != q->pid) {
			close(fd);
			q->on_qmp = NULL;
			step_fail(q, EPERM, "the control socket is not served by its QEMU (pid %d)",
				  (int)q->pid);
			return;
		}
		qstep_fn next = q->on_qmp;
		q->on_qmp = NULL;
		q->qmp = qmp_new(fd, qemu_on_qmp_event, qemu_on_qmp_closed, q);
		qcon_open(q); /* QEMU is up: its console is listening too */
		next(q);
		return;
	}
	if (q->pid <= 0)
		return; /* QEMU is gone; qemu_exited reports it */
	if (step_past_deadline(q)) {
		q->on_qmp = NULL;
		step_fail(q, ETIMEDOUT, "QEMU did not open its control socket (see %s/qemu.log)",
			  q->vm->dir);
		return;
	}
	step_after(q, RETRY_MS, qmp_connect_try);
}

/* QEMU creates its sockets while it starts: retry until it has. */
void qemu_qmp_connect(struct qvm *q, qstep_fn next)
{
	q->on_qmp = next;
	q->deadline = now_ms() + STEP_TIMEOUT_MS;
	qmp_connect_try(q);
}

/* A QMP command whose failure fails the step; on success `next`. A step
 * that moves on (a destroy) closes QMP first: the replies still pending
 * then fail with -ECONNABORTED, which qcall_reply ignores. */
struct qcall {
	struct qvm *q;
	qstep_fn next;
	const char *what;
};

static void qcall_reply(struct qmp *qm UNUSED, int rc, const cJSON *ret UNUSED,
			const struct err *e, void *arg)
{
	struct qcall *c = arg;
	struct qvm *q = c->q;
	qstep_fn next = c->next;
	const char *what = c->what;
	free(c);
	if (!q)
		return;
	if (rc < 0) {
		if (rc != -ECONNABORTED) /* not our own qmp_free */
			step_fail(q, -rc, "%s: %s", what, err_str(e));
		return;
	}
	if (next)
		next(q);
}

void qemu_cmd(struct qvm *q, const char *cmd, cJSON *args, int fd, qstep_fn next)
{
	struct qcall *c = xcalloc(1, sizeof(*c));
	c->q = q;
	c->next = next;
	c->what = cmd;
	if (!q->qmp || qmp_cmd(q->qmp, cmd, args, fd, qcall_reply, c) < 0) {
		free(c);
		step_fail(q, ECONNRESET, "%s: QEMU's control socket is closed", cmd);
	}
}

cJSON *qemu_migrate_caps(void)
{
	cJSON *caps = cJSON_CreateArray();
	const char *names[] = { "x-ignore-shared", "events" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "capability", names[i]);
		cJSON_AddBoolToObject(c, "state", true);
		cJSON_AddItemToArray(caps, c);
	}
	cJSON *args = cJSON_CreateObject();
	cJSON_AddItemToObject(args, "capabilities", caps);
	return args;
}

/* ---- outgoing migration: the device state into a memfd ---- */

static void migrate_timeout(struct qvm *q)
{
	q->on_migrated = NULL;
	step_fail(q, ETIMEDOUT, "saving the device state timed out");
}

static void migrate_sent(struct qvm *q)
{
	qstep_fn next = q->migrate_next;
	if (q->migrated) { /* the event came before the reply */
		q->migrate_next = NULL;
		next(q);
		return;
	}
	q->on_migrated = next;
	step_after(q, STEP_TIMEOUT_MS, migrate_timeout);
}

static void migrate_getfd_done(struct qvm *q)
{
	qemu_cmd(q, "migrate", qemu_args_str("uri", "fd:snapshot"), -1, migrate_sent);
}

/* QEMU migrates the device state into a memfd, not a file: the daemon
 * writes it to disk (encrypted), or gives it to another QEMU. */
static void migrate_caps_done(struct qvm *q)
{
	q->state_fd = memfd_create("bhatti-state", MFD_CLOEXEC);
	if (q->state_fd < 0)
		step_fail(q, errno, "memfd_create: %s", strerror(errno));
	else
		qemu_cmd(q, "getfd", qemu_args_str("fdname", "snapshot"), q->state_fd,
			 migrate_getfd_done);
}

void qemu_migrate_out(struct qvm *q, qstep_fn next)
{
	q->migrated = false;
	q->migrate_next = next;
	qemu_cmd(q, "migrate-set-capabilities", qemu_migrate_caps(), -1, migrate_caps_done);
}

cJSON *qemu_args_str(const char *k, const char *v)
{
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, k, v);
	return a;
}

void qemu_close_state_fd(struct qvm *q)
{
	if (q->state_fd >= 0)
		close(q->state_fd);
	q->state_fd = -1;
}

void qemu_qmp_close(struct qvm *q)
{
	if (q->qmp) {
		/* pending replies fail with -ECONNABORTED: qcall_reply ignores */
		qmp_free(q->qmp);
		q->qmp = NULL;
	}
	q->on_qmp = NULL;
	q->on_migrated = NULL;
}
