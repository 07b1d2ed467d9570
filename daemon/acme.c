/* acme.c — certificates from ACME, run by the daemon (see acme.h for the
 * states of a name and what a run is).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "acme.h"
#include "buf.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "settings.h"
#include "store.h"
#include "util.h"

extern char **environ;

struct aname {
	struct aname *next;
	char *name;
	bool wanted;            /* at the last look */
	SSL_CTX *ctx;           /* its certificate; NULL: none yet */
	int64_t not_after;      /* unix s, when ctx */
	uint64_t retry_at;      /* monotonic ms; 0: no failure waiting */
	unsigned fails;
	char *error;            /* the last run's failure; NULL: none */
};

enum step { STEP_NONE, STEP_NEW, STEP_ISSUE };

static struct {
	struct server *srv;
	bool on;
	struct aname *names;
	char *dir;              /* data_dir/acme */
	struct timer look;
	/* the run under way */
	enum step step;
	struct aname *for_name;
	pid_t pid;
	struct watch pidw, outw;
	struct buf out;         /* its output not yet logged as lines */
	char *last_line;        /* the last line it wrote */
	struct timer kill;
} A;

static void look(void);

/* ---- decisions --------------------------------------------------------------------- */

bool acme_due(int64_t not_after, int64_t now, uint64_t renew_before_ms)
{
	return now >= not_after - (int64_t)(renew_before_ms / 1000);
}

uint64_t acme_backoff_ms(unsigned fails)
{
	uint64_t ms = ACME_RETRY_FIRST_MS;
	for (unsigned i = 1; i < fails && ms < ACME_RETRY_MAX_MS; i++)
		ms *= 2;
	return ms < ACME_RETRY_MAX_MS ? ms : ACME_RETRY_MAX_MS;
}

static const char *fmt_time(char out[32], int64_t unix_sec)
{
	time_t t = (time_t)unix_sec;
	struct tm tm;
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	return out;
}

/* ---- certificates -------------------------------------------------------------------- */

int acme_tls_ctx(const char *cert, const char *key, SSL_CTX **ret, struct err *e)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return err_set(e, ENOMEM, "cannot make a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			      SSL_MODE_RELEASE_BUFFERS);
	if (!cert) {
		*ret = ctx;
		return 0;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		SSL_CTX_free(ctx);
		return err_set(e, EINVAL, "'%s': cannot load a PEM certificate chain: %s", cert,
			       ERR_reason_error_string(ERR_get_error()));
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		return err_set(e, EINVAL, "'%s': cannot load the key, or it is not the "
			       "certificate's: %s", key, ERR_reason_error_string(ERR_get_error()));
	}
	ERR_clear_error();
	*ret = ctx;
	return 0;
}

/* uacme's files for name: <dir>/uacme/NAME/cert.pem, .../private/NAME/key.pem */
static char *cert_path(const char *name)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/uacme/%s/cert.pem", A.dir, name);
	return buf_detach(&b, NULL);
}

static char *key_path(const char *name)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/uacme/private/%s/key.pem", A.dir, name);
	return buf_detach(&b, NULL);
}

/* Load n's certificate from disk: 0, -ENOENT none there, else -errno. */
static int cert_load(struct aname *n, struct err *e)
{
	char *cp = cert_path(n->name), *kp = key_path(n->name);
	SSL_CTX *ctx = NULL;
	int r = access(cp, F_OK) < 0 ? -ENOENT : acme_tls_ctx(cp, kp, &ctx, e);
	free(cp);
	free(kp);
	if (r < 0)
		return r;
	struct tm tm;
	X509 *x = SSL_CTX_get0_certificate(ctx);
	if (!x || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
		SSL_CTX_free(ctx);
		return err_set(e, EINVAL, "the certificate of '%s' has no end date", n->name);
	}
	SSL_CTX_free(n->ctx);   /* handshakes under way hold their own reference */
	n->ctx = ctx;
	n->not_after = (int64_t)timegm(&tm);
	return 0;
}

static struct aname *find(const char *name)
{
	for (struct aname *n = A.names; n; n = n->next)
		if (strcasecmp(n->name, name) == 0)
			return n;
	return NULL;
}

int acme_sni(SSL *ssl, int *al, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	struct aname *n = name ? find(name) : NULL;
	if (n && n->wanted && n->ctx) {
		SSL_set_SSL_CTX(ssl, n->ctx);
		return SSL_TLSEXT_ERR_OK;
	}
	if (arg)
		return SSL_TLSEXT_ERR_OK;   /* tls.cert */
	*al = SSL_AD_UNRECOGNIZED_NAME;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* ---- which names ------------------------------------------------------------------------ */

static void want(const char *name)
{
	struct aname *n = find(name);
	if (!n) {
		n = xcalloc(1, sizeof(*n));
		n->name = xstrdup(name);
		for (char *p = n->name; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		n->next = A.names;
		A.names = n;
		struct err e = ERR_INIT;
		int r = cert_load(n, &e);
		if (r < 0 && r != -ENOENT)
			log_warn("acme: '%s': %s (getting a new one)", n->name, err_str(&e));
	}
	n->wanted = true;
}

static void aname_free(struct aname *n)
{
	SSL_CTX_free(n->ctx);
	free(n->name);
	free(n->error);
	free(n);
}

/* The names wanted now: every published alias under the domain, and
 * tls.acme.names. The others are dropped (not the one a run is for). */
static void sync_names(void)
{
	const struct settings *cfg = &A.srv->cfg;
	for (struct aname *n = A.names; n; n = n->next)
		n->wanted = false;
	for (char **p = cfg->tls.acme.names; p && *p; p++)
		want(*p);
	struct publish_row *v = NULL;
	size_t nv = 0;
	struct err e = ERR_INIT;
	if (cfg->domain && store_publish_list(A.srv->store, -1, &v, &nv, &e) < 0)
		log_warn("acme: the published aliases: %s", err_str(&e));
	for (size_t i = 0; i < nv; i++) {
		struct buf h = BUF_INIT;
		buf_addf(&h, "%s.%s", v[i].alias, cfg->domain);
		want(h.data);
		buf_release(&h);
	}
	publish_row_array_free(v, nv);
	for (struct aname **pp = &A.names; *pp;) {
		struct aname *n = *pp;
		if (!n->wanted && n != A.for_name) {
			if (n->ctx)
				log_info("acme: '%s' is not published any more: its certificate is "
					 "not served or renewed", n->name);
			*pp = n->next;
			aname_free(n);
		} else {
			pp = &n->next;
		}
	}
}

/* ---- a uacme run ------------------------------------------------------------------------- */

/* The child: output to the pipe, no other descriptor of the daemon,
 * its own process group (a timeout kills its hooks too), killed with
 * the daemon; tls.acme.ca in place of the system's CAs, in a mount
 * namespace of its own. Only async-signal-safe calls. */
static void run_child(int out, char **argv, char **envp, const char *ca)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	int nul = open("/dev/null", O_RDONLY);
	dup2(nul, 0);
	dup2(out, 1);
	dup2(out, 2);
	close_range(3, ~0U, 0);
	if (ca && (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		   mount(ca, ACME_SYSTEM_CA, NULL, MS_BIND, NULL) < 0)) {
		static const char m[] = "cannot put tls.acme.ca in place of " ACME_SYSTEM_CA
					" (a mount namespace needs root)\n";
		if (write(2, m, sizeof(m) - 1) < 0)
			_exit(126);
		_exit(126);
	}
	execvpe(argv[0], argv, envp);
	static const char m[] = "cannot run 'uacme': is Debian's uacme installed?\n";
	if (write(2, m, sizeof(m) - 1) < 0)
		_exit(127);
	_exit(127);
}

static void log_lines(bool all)
{
	for (;;) {
		char *nl = memchr(A.out.data, '\n', A.out.len);
		if (!nl && !(all && A.out.len))
			break;
		size_t len = nl ? (size_t)(nl - A.out.data) : A.out.len, skip = 0;
		if (len > 7 && memcmp(A.out.data, "uacme: ", 7) == 0)
			skip = 7;   /* its own prefix: logged as ours */
		if (len > skip) {
			free(A.last_line);
			A.last_line = xstrndup(A.out.data + skip, len - skip);
			log_info("acme: uacme: %s", A.last_line);
		}
		buf_consume(&A.out, nl ? len + 1 : len);
	}
}

static void on_output(struct watch *w, uint32_t events UNUSED)
{
	char b[4096];
	ssize_t k;
	while ((k = read(w->fd, b, sizeof(b))) > 0) {
		buf_add(&A.out, b, (size_t)k);
		if (A.out.len > (64u << 10))
			log_lines(true);   /* a line that long is cut */
	}
	log_lines(false);
	if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
		watch_close(w);
}

static void run_ended(int status);

static void on_exit_(struct watch *w UNUSED, uint32_t events UNUSED)
{
	int st = 0;
	if (waitpid(A.pid, &st, WNOHANG) <= 0)
		return;
	if (A.outw.fd >= 0)
		on_output(&A.outw, EPOLLIN);
	watch_close(&A.outw);
	log_lines(true);
	watch_close(&A.pidw);
	timer_cancel(&A.kill);
	A.pid = 0;
	run_ended(st);
}

static void on_kill(struct timer *t UNUSED)
{
	if (A.pid > 0) {
		log_warn("acme: uacme ran for %llu s: killed",
			 (unsigned long long)(ACME_RUN_TIMEOUT_MS / 1000));
		kill(-A.pid, SIGKILL);
		kill(A.pid, SIGKILL);
	}
}

static int run(enum step step, struct aname *n, struct err *e)
{
	const struct settings *cfg = &A.srv->cfg;
	struct buf conf = BUF_INIT, hook = BUF_INIT, envv = BUF_INIT;
	buf_addf(&conf, "%s/uacme", A.dir);
	buf_addf(&hook, "%s/uacme-hook.sh", A.dir);
	buf_addf(&envv, "BHATTI_ACME_DIR=%s/http-01", A.dir);
	const char *argv[16];
	int k = 0;
	argv[k++] = "uacme";
	argv[k++] = "-a";
	argv[k++] = cfg->tls.acme.directory;
	argv[k++] = "-c";
	argv[k++] = conf.data;
	if (step == STEP_NEW) {
		argv[k++] = "-y";
		argv[k++] = "new";
		argv[k++] = cfg->tls.acme.email;
	} else {
		argv[k++] = "-h";
		argv[k++] = hook.data;
		argv[k++] = "-t";
		argv[k++] = "EC";
		argv[k++] = "-f";
		argv[k++] = "issue";
		argv[k++] = n->name;
	}
	argv[k] = NULL;
	size_t ne = strv_len(environ);
	char **envp = xcalloc(ne + 2, sizeof(*envp));
	memcpy(envp, environ, ne * sizeof(*envp));
	envp[ne] = envv.data;
	int p[2] = { -1, -1 }, r = 0;
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = err_set(e, errno, "pipe: %s", strerror(errno));
		goto out;
	}
	pid_t pid = fork();
	if (pid < 0) {
		r = err_set(e, errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		run_child(p[1], (char **)argv, envp, cfg->tls.acme.ca);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 || watch_add(&A.pidw, pidfd, EPOLLIN) < 0) {
		r = err_set(e, errno, "pidfd: %s", strerror(errno));
		if (pidfd >= 0)
			close(pidfd);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out;
	}
	fd_set_nonblock(p[0], true);
	watch_add(&A.outw, p[0], EPOLLIN);
	p[0] = -1;
	A.pid = pid;
	A.step = step;
	A.for_name = n;
	free(A.last_line);
	A.last_line = NULL;
	timer_arm(&A.kill, ACME_RUN_TIMEOUT_MS);
	if (step == STEP_NEW)
		log_info("acme: uacme new: the account at %s", cfg->tls.acme.directory);
	else
		log_info("acme: uacme issue: a certificate for '%s' from %s", n->name,
			 cfg->tls.acme.directory);
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	free(envp);
	buf_release(&conf);
	buf_release(&hook);
	buf_release(&envv);
	return r;
}

static void failed(struct aname *n, const char *fmt, ...) PRINTF(2, 3);
static void failed(struct aname *n, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	free(n->error);
	n->error = buf_detach(&b, NULL);
	n->fails++;
	uint64_t wait = acme_backoff_ms(n->fails);
	n->retry_at = now_ms() + wait;
	char when[32];
	log_warn("acme: %s for '%s' failed: %s (try %u; the next in %llu s%s%s)",
		 n->ctx ? "renewal" : "certificate", n->name, n->error, n->fails,
		 (unsigned long long)(wait / 1000), n->ctx ? "; the current one ends " : "",
		 n->ctx ? fmt_time(when, n->not_after) : "");
}

/* uacme's account key is there (the account was made once) */
static bool have_account(void)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/uacme/private/key.pem", A.dir);
	bool have = access(b.data, F_OK) == 0;
	buf_release(&b);
	return have;
}

static void run_ended(int st)
{
	struct aname *n = A.for_name;
	enum step step = A.step;
	A.for_name = NULL;
	A.step = STEP_NONE;
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	const char *why = A.last_line ? A.last_line : "no output";
	struct err e = ERR_INIT;
	if (step == STEP_NEW) {
		/* an account that exists makes `new` fail ("Account already
		 * exists at URL"): then the issue goes on */
		if (!have_account() || (code != 0 && !strstr(why, "already exists")))
			failed(n, "uacme new (the account) exited %d: %s", code, why);
		else if (n->wanted && run(STEP_ISSUE, n, &e) == 0)
			return;
		else if (n->wanted)
			failed(n, "%s", err_str(&e));
	} else if (code != 0) {
		failed(n, "uacme issue exited %d: %s", code, why);
	} else if (cert_load(n, &e) < 0) {
		failed(n, "the new certificate: %s", err_str(&e));
	} else if (acme_due(n->not_after, wall_sec(), A.srv->cfg.tls.acme.renew_before)) {
		failed(n, "the new certificate ends within tls.acme.renew_before");
	} else {
		char when[32];
		log_info("acme: certificate for '%s' issued, valid until %s (served from now on)",
			 n->name, fmt_time(when, n->not_after));
		free(n->error);
		n->error = NULL;
		n->fails = 0;
		n->retry_at = 0;
	}
	look();
}

/* ---- looking: which name is due ----------------------------------------------------------- */

static void look(void)
{
	if (!A.on || A.pid > 0)
		return;
	sync_names();
	uint64_t now = now_ms(), next = now + ACME_LOOK_MAX_MS;
	int64_t wall = wall_sec();
	const uint64_t before = A.srv->cfg.tls.acme.renew_before;
	struct aname *due = NULL;
	for (struct aname *n = A.names; n; n = n->next) {
		uint64_t at;   /* monotonic ms when n is due */
		if (!n->ctx || acme_due(n->not_after, wall, before))
			at = now;
		else
			at = now + (uint64_t)(n->not_after - (int64_t)(before / 1000) - wall) * 1000;
		if (n->retry_at > at)
			at = n->retry_at;
		if (at <= now && !due)
			due = n;
		else if (at < next)
			next = at;
	}
	if (due) {
		/* the account first when there is none, or after a failure (a
		 * CA that forgot it, as pebble does when restarted) */
		struct err e = ERR_INIT;
		if (run(due->fails || !have_account() ? STEP_NEW : STEP_ISSUE, due, &e) == 0)
			return;
		failed(due, "%s", err_str(&e));
		look();
		return;
	}
	timer_arm(&A.look, next > now ? next - now : 0);
}

static void on_look(struct timer *t UNUSED)
{
	look();
}

void acme_kick(void)
{
	if (!A.on)
		return;
	sync_names();   /* (acme_json sees a new alias at once) */
	timer_arm(&A.look, 0);   /* a run starts on the next turn, not inside a handler */
}

/* ---- start and stop ------------------------------------------------------------------------- */

/* The hook uacme runs (`uacme -h`): METHOD TYPE IDENT TOKEN AUTH; it
 * puts the http-01 answer where the proxy serves it (and takes it down). */
static const char hook_text[] =
	"#!/bin/sh\n"
	"# written by bhatti serve (daemon/acme.c): uacme's http-01 hook\n"
	"set -eu\n"
	"[ \"$2\" = http-01 ] || exit 1\n"
	"case $4 in *[!A-Za-z0-9_-]* | \"\") exit 1 ;; esac\n"
	"case $1 in\n"
	"begin) printf '%s' \"$5\" > \"$BHATTI_ACME_DIR/$4.tmp\"; "
	"mv \"$BHATTI_ACME_DIR/$4.tmp\" \"$BHATTI_ACME_DIR/$4\" ;;\n"
	"done | failed) rm -f \"$BHATTI_ACME_DIR/$4\" ;;\n"
	"*) exit 1 ;;\n"
	"esac\n";

int acme_start(struct server *srv, struct err *e)
{
	const struct settings *cfg = &srv->cfg;
	if (!cfg->tls.acme.email)
		return 0;
	if (!cfg->public_proxy_listen || !cfg->tls.http_listen)
		return err_set(e, EINVAL, "tls.acme needs public_proxy_listen and tls.http_listen "
			       "(the CA asks for its http-01 answers on port 80 over plain HTTP)");
	if (!cfg->domain && !cfg->tls.acme.names)
		return err_set(e, EINVAL, "tls.acme needs a domain (certificates for "
			       "<alias>.<domain>) or tls.acme.names");
	A.srv = srv;
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/acme/http-01", cfg->data_dir);
	int r = mkdir_p(b.data, 0755);
	buf_reset(&b);
	buf_addf(&b, "%s/acme/uacme-hook.sh", cfg->data_dir);
	int fd = r < 0 ? -1 : open(b.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0700);
	if (fd < 0 || write_all(fd, hook_text, sizeof(hook_text) - 1) < 0 || fchmod(fd, 0700) < 0)
		r = err_set(e, errno, "'%s': %s", b.data, strerror(errno));
	if (fd >= 0)
		close(fd);
	buf_release(&b);
	if (r < 0)
		return r;
	buf_addf(&b, "%s/acme", cfg->data_dir);
	A.dir = buf_detach(&b, NULL);
	watch_init(&A.pidw, on_exit_, NULL);
	watch_init(&A.outw, on_output, NULL);
	timer_init(&A.look, on_look, NULL);
	timer_init(&A.kill, on_kill, NULL);
	A.on = true;
	sync_names();
	unsigned have = 0, all = 0;
	for (struct aname *n = A.names; n; n = n->next, all++)
		have += n->ctx != NULL;
	log_info("acme: %u of %u names have a certificate (from %s)", have, all,
		 cfg->tls.acme.directory);
	acme_kick();
	return 0;
}

void acme_stop(void)
{
	if (!A.on)
		return;
	if (A.pid > 0) {
		kill(-A.pid, SIGKILL);   /* with its hook */
		kill(A.pid, SIGKILL);    /* (before it made its group) */
		waitpid(A.pid, NULL, 0);
	}
	watch_close(&A.pidw);
	watch_close(&A.outw);
	timer_cancel(&A.look);
	timer_cancel(&A.kill);
	while (A.names) {
		struct aname *n = A.names;
		A.names = n->next;
		aname_free(n);
	}
	buf_release(&A.out);
	free(A.last_line);
	free(A.dir);
	memset(&A, 0, sizeof(A));
}

/* ---- status ------------------------------------------------------------------------------ */

cJSON *acme_json(const char *host)
{
	struct aname *n = A.on ? find(host) : NULL;
	if (!n)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", n->name);
	cJSON_AddStringToObject(o, "state", n->ctx ? "valid" : n->error ? "failed" : "pending");
	if (n->ctx) {
		char when[32];
		cJSON_AddStringToObject(o, "not_after", fmt_time(when, n->not_after));
	}
	if (n->error) {
		cJSON_AddStringToObject(o, "error", n->error);
		uint64_t now = now_ms();
		bool running = A.for_name == n;
		cJSON_AddNumberToObject(o, "next_try_in_s", running || n->retry_at <= now ? 0 :
					(double)((n->retry_at - now + 999) / 1000));
	}
	return o;
}
