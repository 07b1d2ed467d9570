/* cmd-shell.c — `bhatti shell NAME`: an interactive terminal in a sandbox
 * over the daemon's WebSocket (GET /sandboxes/:id/ws). The local terminal
 * goes raw; keys go to the guest's PTY, its output comes back; window
 * resizes are forwarded. Ctrl+\ detaches (the shell keeps running);
 * `bhatti shell NAME` again reattaches to the one detached session (or
 * --session ID picks one) and the daemon replays its scrollback first.
 *
 * One poll loop over stdin, the socket and a signalfd for SIGWINCH.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "ws.h"

#define DETACH_KEY 0x1c   /* Ctrl+\ */

static struct termios saved;
static bool raw_on;

static void term_restore(void)
{
	if (raw_on)
		tcsetattr(0, TCSAFLUSH, &saved);
	raw_on = false;
}

static void term_raw(void)
{
	if (!isatty(0) || tcgetattr(0, &saved) < 0)
		return;
	struct termios t = saved;
	cfmakeraw(&t);
	tcsetattr(0, TCSAFLUSH, &t);
	raw_on = true;
	atexit(term_restore);
}

static void win_size(unsigned *cols, unsigned *rows)
{
	struct winsize ws;
	*cols = 80, *rows = 24;
	if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row)
		*cols = ws.ws_col, *rows = ws.ws_row;
}

/* The one detached, running session other than "init", if exactly one. */
static char *pick_session(const char *name, bool *ret_unreachable)
{
	char *esc = cli_escape(name);
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/sessions", esc);
	free(esc);
	struct cli_resp r;
	char *id = NULL;
	int found = 0;
	*ret_unreachable = false;
	if (cli_call("GET", path.data, NULL, &r) < 0)
		*ret_unreachable = true;   /* the message is out */
	else if (r.status == 200) {
		cJSON *j = cJSON_ParseWithLength(r.body.data, r.body.len), *s;
		cJSON_ArrayForEach(s, j)
		{
			const char *sid = cJSON_GetStringValue(cJSON_GetObjectItem(s, "id"));
			if (sid && strcmp(sid, "init") != 0 &&
			    cJSON_IsTrue(cJSON_GetObjectItem(s, "running")) &&
			    !cJSON_IsTrue(cJSON_GetObjectItem(s, "attached"))) {
				found++;
				free(id);
				id = xstrdup(sid);
			}
		}
		cJSON_Delete(j);
	}
	cli_resp_release(&r);
	buf_release(&path);
	if (found != 1) {
		free(id);
		return NULL;
	}
	return id;
}

struct shell {
	int fd;
	const char *name;
	struct buf in, partial, msg, out;
	int partial_op;
	char session[128];
	int exit_code;
	bool exited, detached;
	char error[512];
};

static int send_frame(struct shell *s, int op, const void *p, size_t n)
{
	buf_reset(&s->out);
	ws_frame(&s->out, op, p, n);
	return write_all(s->fd, s->out.data, s->out.len);
}

static void send_resize(struct shell *s)
{
	unsigned c, r;
	win_size(&c, &r);
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "{\"type\":\"resize\",\"cols\":%u,\"rows\":%u}", c, r);
	send_frame(s, WS_TEXT, msg, (size_t)n);
}

/* Handle one message from the daemon; false when the session is over. */
static bool on_message(struct shell *s, int op, const struct buf *m)
{
	if (op == WS_BINARY) {
		write_all(1, m->data, m->len);
		return true;
	}
	if (op == WS_PING) {
		send_frame(s, WS_PONG, m->data, m->len);
		return true;
	}
	if (op == WS_CLOSE)
		return false;
	if (op != WS_TEXT)
		return true;
	cJSON *j = cJSON_ParseWithLength(m->data, m->len);
	const char *type = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "type")) : NULL;
	bool go_on = true;
	if (type && strcmp(type, "session") == 0) {
		snprintf(s->session, sizeof(s->session), "%s",
			 cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
	} else if (type && strcmp(type, "exit") == 0) {
		s->exited = true;
		s->exit_code = cJSON_GetObjectItem(j, "exit_code")->valueint;
		go_on = false;
	} else if (type && strcmp(type, "error") == 0) {
		snprintf(s->error, sizeof(s->error), "%s",
			 cJSON_GetStringValue(cJSON_GetObjectItem(j, "error")));
		go_on = false;
	} else if (type && strcmp(type, "detached") == 0) {
		go_on = false;
	}
	cJSON_Delete(j);
	return go_on;
}

static int loop(struct shell *s)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	bool stdin_open = true;
	for (;;) {
		/* messages already received (the handshake may carry some) */
		int op, r;
		while ((r = ws_take(&s->in, &s->partial, &s->partial_op, &op, &s->msg)) == 1)
			if (!on_message(s, op, &s->msg))
				goto done;
		if (r < 0) {
			snprintf(s->error, sizeof(s->error), "bad data from the daemon");
			goto done;
		}
		struct pollfd pf[3] = { { s->fd, POLLIN, 0 },
					{ stdin_open ? 0 : -1, POLLIN, 0 },
					{ sfd, POLLIN, 0 } };
		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[2].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			send_resize(s);
		}
		if (pf[1].revents) {
			char tmp[4096];
			ssize_t n = read(0, tmp, sizeof(tmp));
			if (n <= 0) {
				stdin_open = false;   /* keep showing output until the end */
				continue;
			}
			char *k = raw_on ? memchr(tmp, DETACH_KEY, (size_t)n) : NULL;
			size_t upto = k ? (size_t)(k - tmp) : (size_t)n;
			if (upto)
				send_frame(s, WS_BINARY, tmp, upto);
			if (k) {
				s->detached = true;
				send_frame(s, WS_CLOSE, "\x03\xe8", 2);
				goto done;
			}
		}
		if (pf[0].revents) {
			char tmp[65536];
			ssize_t n = read(s->fd, tmp, sizeof(tmp));
			if (n <= 0) {
				if (!s->exited && !s->error[0])
					snprintf(s->error, sizeof(s->error),
						 "the connection to the daemon was lost");
				goto done;
			}
			buf_add(&s->in, tmp, (size_t)n);
		}
	}
done:
	if (sfd >= 0)
		close(sfd);
	return 0;
}

int cmd_shell(int argc, char **argv)
{
	char *session = NULL, **pos;
	const struct cli_opt opts[] = { { "--session", &session, NULL, NULL } };
	if (cli_parse(argc, argv, opts, ARRAY_SIZE(opts), &pos, NULL) < 0)
		return 2;
	if (CLI.help || !pos[0] || pos[1]) {
		free(pos);
		fputs("usage: bhatti shell NAME [--session ID]\n"
		      "Ctrl+\\ detaches; 'bhatti shell NAME' reattaches (scrollback first).\n",
		      CLI.help ? stdout : stderr);
		return CLI.help ? 0 : 2;
	}
	cli_settings();
	struct shell s = { .fd = -1, .name = pos[0], .partial_op = -1, .in = BUF_INIT,
			   .partial = BUF_INIT, .msg = BUF_INIT, .out = BUF_INIT };
	bool unreachable = false;
	char *pick = session ? NULL : pick_session(pos[0], &unreachable);
	if (unreachable) {
		free(pos);
		return 1;
	}
	const char *sess = session ? session : pick;
	unsigned cols, rows;
	win_size(&cols, &rows);
	char *esc = cli_escape(pos[0]), *sesc = sess ? cli_escape(sess) : NULL;
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/ws?cols=%u&rows=%u%s%s", esc, cols, rows,
		 sesc ? "&session=" : "", sesc ? sesc : "");
	free(esc);
	free(sesc);
	struct err e = ERR_INIT;
	int rc = ws_connect(CLI.url, path.data, CLI.token, &s.fd, &s.in, &e);
	buf_release(&path);
	if (rc < 0) {
		free(pick);
		free(pos);
		return cli_error(1, "%s", err_str(&e));
	}
	if (pick)
		fprintf(stderr, "[reattaching to session %s]\r\n", pick);
	term_raw();
	loop(&s);
	term_restore();
	close(s.fd);
	if (s.detached)
		fprintf(stderr, "\n[detached from session %s; reattach with: bhatti shell %s "
				"(or --session %s)]\n",
			s.session, pos[0], s.session);
	else if (s.error[0])
		rc = cli_error(1, "%s", s.error);
	else if (s.exited)
		rc = s.exit_code;
	free(pick);
	free(pos);
	buf_release(&s.in);
	buf_release(&s.partial);
	buf_release(&s.msg);
	buf_release(&s.out);
	return rc;
}
