/* main.c — entry point of lohar, the guest agent. Decides the mode (PID 1
 * in a VM, or test mode on a unix socket), sets up signals as an fd, and
 * runs the one event loop. Sits between the command line / kernel and the
 * rest of agent/.
 *
 *   lohar                          as /init in a VM (PID 1)
 *   lohar --listen unix:PATH       test mode: an ordinary process serving
 *         [--token T] [--workspace DIR] [--user UID:GID|self] [--log LEVEL]
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "num.h"

#define AGENT_PORT_NAME "bhatti.agent"

struct agent agent;

void agent_touch(void)
{
	agent.last_activity_ms = now_ms();
}

static struct watch sig_watch;

static void on_signal(struct watch *w, uint32_t events UNUSED)
{
	struct signalfd_siginfo si;
	while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			child_reap_all();
			break;
		case SIGTERM:
		case SIGINT:
			if (!agent.pid1) {
				log_info("signal %u: shutting down", si.ssi_signo);
				loop_stop();
			}
			break;
		default:
			break;
		}
	}
	/* SIGCHLD coalesces; reaping everything each time is always right */
	child_reap_all();
}

static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	watch_init(&sig_watch, on_signal, NULL);
	return watch_add(&sig_watch, fd, EPOLLIN);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lohar                       (as PID 1 inside a bhatti VM)\n"
		"       lohar --listen unix:PATH [--token TOKEN] [--workspace DIR]\n"
		"             [--user UID:GID|self] [--log debug|info|warn|error]\n"
		"             [--session-keep-ms MS] [--hold-socket PATH]\n"
		"       lohar hold -- COMMAND [ARG]...  (in a sandbox: keep it hot while it runs)\n"
		"       lohar hold --for DURATION\n"
		"       lohar --version\n");
}

static int parse_user(const char *s, struct err *e)
{
	if (strcmp(s, "self") == 0) {
		agent.switch_user = false;
		return 0;
	}
	const char *colon = strchr(s, ':');
	char uid[32];
	if (!colon || (size_t)(colon - s) >= sizeof(uid))
		return err_set(e, EINVAL, "--user wants UID:GID or 'self', not '%s'", s);
	memcpy(uid, s, (size_t)(colon - s));
	uid[colon - s] = '\0';
	uint32_t u, g;
	if (num_parse_u32(uid, 0, 65534, &u, "--user uid", e) < 0 ||
	    num_parse_u32(colon + 1, 0, 65534, &g, "--user gid", e) < 0)
		return -EINVAL;
	agent.uid = u;
	agent.gid = g;
	agent.switch_user = geteuid() == 0;
	return 0;
}

int main(int argc, char **argv)
{
	struct err e = ERR_INIT;
	enum log_level level = LOG_INFO;
	const char *listen_arg = NULL, *token = "", *hold_socket = NULL;

	if (argc >= 2 && strcmp(argv[1], "hold") == 0 && getpid() != 1)
		return hold_main(argc, argv);
	agent.pid1 = getpid() == 1;
	agent.workspace = "/workspace";
	agent.uid = 1000;
	agent.gid = 1000;
	agent.switch_user = geteuid() == 0;
	agent.session_keep_ms = AGENT_SESSION_KEEP_MS;
	log_init("lohar", LOG_INFO);
	level = log_get_level();

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--version") == 0) {
			printf("lohar %s (protocol %d)\n", BHATTI_VERSION, PROTO_VERSION);
			return 0;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (!v) {
			if (agent.pid1)
				continue; /* the kernel passes odd arguments to init */
			fprintf(stderr, "lohar: '%s' needs a value or is unknown\n", a);
			usage(stderr);
			return 2;
		} else if (strcmp(a, "--listen") == 0) {
			listen_arg = v;
		} else if (strcmp(a, "--hold-socket") == 0) {
			hold_socket = v;
		} else if (strcmp(a, "--token") == 0) {
			token = v;
		} else if (strcmp(a, "--workspace") == 0) {
			agent.workspace = v;
		} else if (strcmp(a, "--user") == 0) {
			if (parse_user(v, &e) < 0) {
				fprintf(stderr, "lohar: %s\n", err_str(&e));
				return 2;
			}
		} else if (strcmp(a, "--session-keep-ms") == 0) {
			if (num_parse_u64(v, 0, 86400000, &agent.session_keep_ms,
					  "--session-keep-ms", &e) < 0) {
				fprintf(stderr, "lohar: %s\n", err_str(&e));
				return 2;
			}
		} else if (strcmp(a, "--log") == 0) {
			if (log_parse_level(v, &level) < 0) {
				fprintf(stderr, "lohar: unknown log level '%s'\n", v);
				return 2;
			}
		} else {
			if (agent.pid1)
				continue;
			fprintf(stderr, "lohar: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
		i++;
	}
	log_set_level(level);
	agent.token = xstrdup(token);
	agent.start_ms = now_ms();
	agent_touch();

	if (!agent.pid1 && !listen_arg) {
		usage(stderr);
		return 2;
	}
	if (listen_arg && strncmp(listen_arg, "unix:", 5) != 0) {
		fprintf(stderr, "lohar: --listen wants unix:PATH, not '%s'\n", listen_arg);
		return 2;
	}

	/* Work done for uid 1000 (commands drop to it; file operations take
	 * its file permissions, op-file.c) must not count root's supplementary
	 * groups: lohar keeps none (PID 1 has none anyway). */
	if (agent.switch_user && setgroups(0, NULL) < 0)
		log_warn("cannot drop supplementary groups: %s", strerror(errno));

	if (loop_init() < 0 || setup_signals() < 0) {
		log_error("cannot set up the event loop: %s", strerror(errno));
		return 1;
	}

	if (agent.pid1) {
		/* PID 1 must never exit: log failures and keep serving. */
		if (init_pid1(&e) < 0)
			log_error("boot: %s", err_str(&e));
		char host[65] = "";
		gethostname(host, sizeof(host) - 1);
		agent.hostname = xstrdup(host);
		char port[64];
		int r = -ENOENT;
		for (int tries = 0; tries < 2000 && r < 0; tries++) {
			r = init_find_vport("/sys", AGENT_PORT_NAME, port, sizeof(port), &e);
			if (r < 0)
				usleep(5000);
		}
		if (r < 0 || channel_start(port, &e) < 0)
			log_error("no agent channel: %s", err_str(&e));
		if (load_hold_start(LOHAR_HOLD_SOCKET, &e) < 0)
			log_warn("%s", err_str(&e));
	} else {
		char host[65] = "";
		gethostname(host, sizeof(host) - 1);
		agent.hostname = xstrdup(host);
		prctl(PR_SET_CHILD_SUBREAPER, 1);
		if (listener_start(listen_arg + 5, &e) < 0) {
			log_error("%s", err_str(&e));
			return 1;
		}
		if (hold_socket && load_hold_start(hold_socket, &e) < 0) {
			log_error("%s", err_str(&e));
			return 1;
		}
		log_info("lohar %s listening on %s (pid %d)", BHATTI_VERSION, listen_arg, (int)getpid());
	}

	for (;;) {
		int r = loop_run();
		if (!agent.pid1) {
			if (r < 0)
				log_error("event loop: %s", strerror(-r));
			break;
		}
		log_error("event loop stopped (%s); restarting it", strerror(-r));
		sleep(1);
	}
	if (!agent.pid1) {
		/* test mode: leave nothing running behind us */
		unlink(listen_arg + 5);
		child_kill_all(SIGKILL);
	}
	return 0;
}
