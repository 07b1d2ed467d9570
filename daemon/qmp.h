/* qmp — an asynchronous client for QEMU's machine protocol (QMP), on the
 * process event loop (shared/loop.h).
 *
 * Sits between the QEMU engine (engine-qemu.c) and one QEMU's QMP unix
 * socket. JSON lines in both directions: the greeting and
 * `qmp_capabilities` are handled here; commands carry an id and their
 * reply goes to the command's callback; events go to the event callback.
 * A command may carry a file descriptor (SCM_RIGHTS), as `getfd` needs.
 *
 * Ownership: qmp_new() takes the connected fd; qmp_free() closes it and
 * fails every pending command (callbacks run with -ECONNABORTED). Never
 * free a qmp from inside one of its callbacks: use loop_defer_free.
 */
#ifndef BHATTI_QMP_H
#define BHATTI_QMP_H

#include <cjson/cJSON.h>

#include "err.h"

struct qmp;

/* rc 0: `ret` is the "return" value; rc < 0: e says why (QEMU's error
 * description, or the connection failing). */
typedef void (*qmp_reply_fn)(struct qmp *q, int rc, const cJSON *ret,
			     const struct err *e, void *arg);
typedef void (*qmp_event_fn)(struct qmp *q, const char *event, const cJSON *data,
			     void *arg);
/* The connection is gone (QEMU quit or died); called once. */
typedef void (*qmp_closed_fn)(struct qmp *q, const struct err *e, void *arg);

struct qmp *qmp_new(int fd, qmp_event_fn on_event, qmp_closed_fn on_closed, void *arg);
void qmp_free(struct qmp *q);
bool qmp_ready(const struct qmp *q);

/* Queue a command; args (may be NULL) is consumed. send_fd >= 0 is passed
 * along with it (the caller keeps its own copy). Commands sent before the
 * greeting is processed wait for it. Returns 0 or -errno (connection
 * gone: the callback is not called). */
int qmp_cmd(struct qmp *q, const char *cmd, cJSON *args, int send_fd,
	    qmp_reply_fn cb, void *arg);

#endif
