/* qemu-console.c — a QEMU VM's serial console: the engine reads it from
 * QEMU's console socket and appends it to the VM's console.log, which is
 * rotated to console.log.1 when it reaches cfg.console_max. A guest that
 * prints without end (5 MB in 19 s was seen) costs at most twice that on
 * disk; while no engine reads (a daemon restart), QEMU drops the output
 * rather than making the guest wait.
 *
 * Sits between qemu-proc.c (the console opens once QMP is up, closes when
 * QEMU exits) and qemu-adopt.c (reopened for an adopted QEMU), and the
 * VM's directory: console.sock, console.log, console.log.1. Touches
 * nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qemu.h"

static int log_open(struct qvm *q)
{
	char *path = qvm_path(q->vm, "console.log");
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	q->con_size = fd >= 0 && fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	if (fd < 0)
		log_warn("vm '%s': cannot open '%s': %s", q->vm->id, path, strerror(errno));
	free(path);
	return fd;
}

/* console.log → console.log.1 (the older one goes), a new console.log. */
static void rotate(struct qvm *q)
{
	char *path = qvm_path(q->vm, "console.log");
	struct buf old = BUF_INIT;
	buf_addf(&old, "%s.1", path);
	close(q->con_log);
	if (rename(path, old.data) < 0)
		unlink(path);
	q->con_log = log_open(q);
	buf_release(&old);
	free(path);
}

void qcon_on_io(struct watch *w, uint32_t events UNUSED)
{
	struct qvm *q = w->data;
	char chunk[65536];
	uint64_t max = q->vm->eng->cfg.console_max;
	for (int i = 0; i < 4; i++) { /* then let the loop serve others */
		ssize_t n = read(w->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			qcon_close(q);
			return;
		}
		for (ssize_t off = 0; off < n && q->con_log >= 0;) {
			size_t room = q->con_size < max ? (size_t)(max - q->con_size) : 0;
			size_t len = MIN((size_t)(n - off), room);
			if (len && write_all(q->con_log, chunk + off, len) < 0) {
				log_warn("vm '%s': writing console.log: %s", q->vm->id, strerror(errno));
				qcon_close(q);
				return;
			}
			off += (ssize_t)len;
			q->con_size += len;
			if (q->con_size >= max)
				rotate(q);
		}
	}
}

void qcon_open(struct qvm *q)
{
	char *path = qvm_path(q->vm, "console.sock");
	int fd, r;
	qcon_close(q);
	if ((r = unix_connect(path, &fd)) < 0) {
		log_debug("vm '%s': no console: %s", q->vm->id, strerror(-r));
	} else if ((q->con_log = log_open(q)) < 0) {
		close(fd);
	} else if (fd_set_nonblock(fd, true) < 0 || watch_add(&q->con_w, fd, EPOLLIN) < 0) {
		close(fd);
		qcon_close(q);
	}
	free(path);
}

void qcon_close(struct qvm *q)
{
	if (q->con_w.fd >= 0)
		watch_close(&q->con_w);
	if (q->con_log >= 0)
		close(q->con_log);
	q->con_log = -1;
}
