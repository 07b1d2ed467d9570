/* load.c — `make soak`: LOAD_CLIENTS (50) concurrent API clients against
 * LOAD_SANDBOXES (10) sandboxes for LOAD_SECONDS (600), every answer
 * checked, p50/p99 per kind of request (docs/security.md keeps them).
 *
 *   build/bench/load            (env: LOAD_SECONDS, LOAD_CLIENTS,
 *                                LOAD_SANDBOXES, LOAD_SEED)
 *
 * Starts its own `bhatti serve` in a temp dir on loopback (tests/helpers.c)
 * with the rate limits raised so they do not dominate (a 429 is counted
 * apart, and is not an error). Each client has at most one request out
 * (bounded) and does, by chance: an exec (`sh -c 'echo $0; echo $1 >&2;
 * exit $2'` with its own tokens, or `cat` with stdin: output, error and
 * exit code must be exactly right), a file written and read back (random
 * bytes, 1 B to 256 KiB: the same bytes must come back), or a shell over
 * the WebSocket (client/shell.c: three `echo X$((a+b))Y` typed, each
 * answered with the sum, then `exit` with code 0). Everything runs on one
 * event loop in this process (client/async.c), so the load is the
 * daemon's and the guests', not process start-up.
 *
 * Exit status 1 when any answer was wrong, any request failed (other than
 * a 429), or the daemon leaked (tests/audit.h) once the clients stopped.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "async.h"
#include "audit.h"
#include "helpers.h"
#include "loop.h"
#include "shell.h"
#include "stats.h"

enum kind { K_EXEC, K_EXEC_STDIN, K_PUT, K_GET, K_SHELL_OPEN, K_SHELL_CMD, K_N };
static const char *const kind_names[] = {
	"exec sh -c (output, exit code)", "exec cat (stdin echoed)", "file PUT (random bytes)",
	"file GET (read back)", "shell open (WebSocket, session)", "shell command (typed → echoed)",
};

/* latencies per kind (ms) */
struct lat {
	double *v;
	size_t n, cap;
};
static struct lat LAT[K_N];
static long ERRORS, WRONG, RATE429;
static struct buf FIRST_ERRORS = BUF_INIT;

static struct daemon_proc D;
static char *KEY;
static struct client *CLIENT;
static bool STOPPING;
static int NSANDBOX;
static uint64_t RNG;

static uint64_t rng(void)
{
	return test_rng(&RNG);
}

static void lat_add(enum kind k, double ms)
{
	struct lat *l = &LAT[k];
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = ms;
}

static void problem(long *counter, const char *fmt, ...) PRINTF(2, 3);
static void problem(long *counter, const char *fmt, ...)
{
	(*counter)++;
	if (ERRORS + WRONG > 20)
		return;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&FIRST_ERRORS, fmt, ap);
	va_end(ap);
	buf_addch(&FIRST_ERRORS, '\n');
}

/* ---- one client ---- */

struct lclient {
	int n;
	char sandbox[16];
	uint64_t t0;
	enum kind kind;
	struct async_req *req;
	struct shell *sh;
	struct timer wake, deadline;
	struct buf expect, expect_err, body, path;
	int expect_code;
	int shell_left;
	struct buf shell_out;
	char shell_want[48];
	unsigned ops;
};

static void next_op(struct lclient *c);

static void op_done(struct lclient *c)
{
	timer_cancel(&c->deadline);
	c->req = NULL;
	c->ops++;
	if (!STOPPING)
		timer_arm(&c->wake, 0);
}

static void deadline_fired(struct timer *t)
{
	struct lclient *c = t->data;
	problem(&ERRORS, "client %d: %s on '%s': no answer in 60 s", c->n, kind_names[c->kind],
		c->sandbox);
	if (c->req)
		async_req_cancel(c->req);
	c->req = NULL;
	if (c->sh)
		shell_free(c->sh);
	c->sh = NULL;
	op_done(c);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	return s ? s : "";
}

/* A request's status: true when it is the one wanted; a 429 is counted
 * and is not an error. */
static bool status_ok(struct lclient *c, struct async_req *r, const struct err *e, int want)
{
	int st = async_req_status(r);
	const struct buf *b = async_req_body(r);
	if (e) {
		problem(&ERRORS, "client %d: %s on '%s': %s", c->n, kind_names[c->kind], c->sandbox,
			err_str(e));
		return false;
	}
	if (st == 429) {
		RATE429++;
		return false;
	}
	if (st != want) {
		problem(&ERRORS, "client %d: %s on '%s': %d: %.200s", c->n, kind_names[c->kind],
			c->sandbox, st, b->data ? b->data : "");
		return false;
	}
	return true;
}

/* Start c's request: method on c->path, body (may be NULL), done. */
static void send_req(struct lclient *c, const char *method, const struct buf *body,
		     const struct async_req_cb *cb)
{
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = method;
	rq.path = c->path.data;
	rq.body = body ? body->data : NULL;
	rq.len = body ? body->len : 0;
	c->t0 = now_ns();
	c->req = async_request(CLIENT, &rq, cb, c);
}

static void exec_done(struct async_req *r, const struct err *e, void *arg)
{
	struct lclient *c = arg;
	double ms = (double)(now_ns() - c->t0) / 1e6;
	if (status_ok(c, r, e, 200)) {
		lat_add(c->kind, ms);
		const struct buf *b = async_req_body(r);
		cJSON *j = cJSON_ParseWithLength(b->data, b->len);
		cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "exit_code");
		if (!j || strcmp(jstr(j, "stdout"), c->expect.data) != 0 ||
		    strcmp(jstr(j, "stderr"), c->expect_err.data) != 0 || !cJSON_IsNumber(code) ||
		    (int)code->valuedouble != c->expect_code)
			problem(&WRONG, "client %d: exec on '%s' wanted stdout '%s' stderr '%s' code %d, "
					"got %.300s", c->n, c->sandbox, c->expect.data, c->expect_err.data,
				c->expect_code, b->data);
		cJSON_Delete(j);
	}
	op_done(c);
}

static void start_exec(struct lclient *c)
{
	char tok[32], etok[32];
	snprintf(tok, sizeof(tok), "o%d-%u-%llu", c->n, c->ops, (unsigned long long)(rng() % 100000));
	snprintf(etok, sizeof(etok), "e%d-%u", c->n, c->ops);
	buf_reset(&c->body);
	buf_reset(&c->expect);
	buf_reset(&c->expect_err);
	if (rng() % 3) {
		c->kind = K_EXEC;
		c->expect_code = (int)(rng() % 5);
		buf_addf(&c->body, "{\"cmd\":[\"sh\",\"-c\",\"echo $0; echo $1 >&2; exit $2\",\"%s\",\"%s\",\"%d\"]}",
			 tok, etok, c->expect_code);
		buf_addf(&c->expect, "%s\n", tok);
		buf_addf(&c->expect_err, "%s\n", etok);
	} else {
		c->kind = K_EXEC_STDIN;
		c->expect_code = 0;
		buf_addf(&c->expect, "line one %s\nline two\n", tok);
		buf_addf(&c->body, "{\"cmd\":[\"cat\"],\"stdin\":\"line one %s\\nline two\\n\"}", tok);
		buf_adds(&c->expect_err, "");
	}
	buf_reset(&c->path);
	buf_addf(&c->path, "/sandboxes/%s/exec", c->sandbox);
	static const struct async_req_cb cb = { .done = exec_done };
	send_req(c, "POST", &c->body, &cb);
}

static void get_done(struct async_req *r, const struct err *e, void *arg)
{
	struct lclient *c = arg;
	double ms = (double)(now_ns() - c->t0) / 1e6;
	if (status_ok(c, r, e, 200)) {
		lat_add(K_GET, ms);
		const struct buf *b = async_req_body(r);
		if (b->len != c->expect.len || memcmp(b->data, c->expect.data, b->len) != 0)
			problem(&WRONG, "client %d: '%s' %s read back %zu bytes, wrote %zu (or other bytes)",
				c->n, c->sandbox, c->path.data, b->len, c->expect.len);
	}
	op_done(c);
}

static void put_done(struct async_req *r, const struct err *e, void *arg)
{
	struct lclient *c = arg;
	double ms = (double)(now_ns() - c->t0) / 1e6;
	if (!status_ok(c, r, e, 201)) {
		op_done(c);
		return;
	}
	lat_add(K_PUT, ms);
	const struct buf *b = async_req_body(r);
	cJSON *j = cJSON_ParseWithLength(b->data, b->len);
	cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size");
	if (!cJSON_IsNumber(size) || (size_t)size->valuedouble != c->expect.len)
		problem(&WRONG, "client %d: PUT of %zu bytes answered %.200s", c->n, c->expect.len, b->data);
	cJSON_Delete(j);
	c->kind = K_GET;
	static const struct async_req_cb cb = { .done = get_done };
	send_req(c, "GET", NULL, &cb);
}

static void start_file(struct lclient *c)
{
	c->kind = K_PUT;
	size_t n = 1 + (size_t)(rng() % (256 << 10));
	buf_reset(&c->expect);
	buf_grow(&c->expect, n);
	randombytes_buf(c->expect.data, n);
	buf_setlen(&c->expect, n);
	buf_reset(&c->path);
	buf_addf(&c->path, "/sandboxes/%s/files?path=/tmp/load-%d", c->sandbox, c->n);
	static const struct async_req_cb cb = { .done = put_done };
	send_req(c, "PUT", &c->expect, &cb);
}

/* ---- shells ---- */

static void shell_type(struct lclient *c)
{
	unsigned a = (unsigned)(rng() % 10000), b = (unsigned)(rng() % 10000);
	char line[64];
	snprintf(c->shell_want, sizeof(c->shell_want), "X%uY", a + b);
	snprintf(line, sizeof(line), "echo X$((%u+%u))Y\n", a, b);
	buf_reset(&c->shell_out);
	c->kind = K_SHELL_CMD;
	c->t0 = now_ns();
	shell_input(c->sh, line, strlen(line));
}

static void sh_session(struct shell *s UNUSED, const char *id UNUSED, bool is_new, void *arg)
{
	struct lclient *c = arg;
	if (!is_new)
		problem(&WRONG, "client %d: a new shell on '%s' reattached a session", c->n, c->sandbox);
	lat_add(K_SHELL_OPEN, (double)(now_ns() - c->t0) / 1e6);
	timer_arm(&c->deadline, 60000);
	shell_type(c);
}

static void sh_output(struct shell *s UNUSED, const char *p, size_t n, void *arg)
{
	struct lclient *c = arg;
	if (c->kind != K_SHELL_CMD || !c->shell_want[0])
		return;
	buf_add(&c->shell_out, p, n);
	if (!strstr(c->shell_out.data, c->shell_want))
		return;
	lat_add(K_SHELL_CMD, (double)(now_ns() - c->t0) / 1e6);
	c->shell_want[0] = '\0';
	timer_arm(&c->deadline, 60000);
	if (--c->shell_left > 0)
		shell_type(c);
	else
		shell_input(c->sh, "exit\n", 5);
}

static void sh_end(struct lclient *c)
{
	shell_free(c->sh);
	c->sh = NULL;
	op_done(c);
}

static void sh_exit(struct shell *s UNUSED, int code, void *arg)
{
	struct lclient *c = arg;
	if (code != 0 || c->shell_left > 0)
		problem(&WRONG, "client %d: the shell on '%s' exited %d with %d commands left", c->n,
			c->sandbox, code, c->shell_left);
	sh_end(c);
}

static void sh_error(struct shell *s UNUSED, const struct err *e, void *arg)
{
	struct lclient *c = arg;
	if (strstr(err_str(e), "rate limit") || strstr(err_str(e), "429"))
		RATE429++;
	else
		problem(&ERRORS, "client %d: shell on '%s': %s", c->n, c->sandbox, err_str(e));
	sh_end(c);
}

static void sh_detached(struct shell *s UNUSED, bool asked UNUSED, void *arg)
{
	struct lclient *c = arg;
	problem(&ERRORS, "client %d: shell on '%s' detached by the daemon", c->n, c->sandbox);
	sh_end(c);
}

static void start_shell(struct lclient *c)
{
	static const struct shell_cb cb = { .session = sh_session, .output = sh_output,
					    .exit = sh_exit, .error = sh_error,
					    .detached = sh_detached };
	struct shell_opts o = { .name = c->sandbox, .cols = 200, .rows = 50 };
	c->kind = K_SHELL_OPEN;
	c->shell_left = 3;
	c->shell_want[0] = '\0';
	c->t0 = now_ns();
	c->sh = shell_open(CLIENT, &o, &cb, c);
}

static void next_op(struct lclient *c)
{
	if (STOPPING)
		return;
	snprintf(c->sandbox, sizeof(c->sandbox), "l%d", (int)(rng() % (uint64_t)NSANDBOX));
	timer_arm(&c->deadline, 60000);
	unsigned pick = (unsigned)(rng() % 100);
	if (pick < 50)
		start_exec(c);
	else if (pick < 88)
		start_file(c);
	else
		start_shell(c);
}

static void wake_fired(struct timer *t)
{
	next_op(t->data);
}

/* ---- main ---- */

static void die(const char *what)
{
	fprintf(stderr, "load: %s\n", what);
	daemon_stop(&D, true);
	exit(1);
}

static void stop_fired(struct timer *t UNUSED)
{
	STOPPING = true;
}

int main(void)
{
	long seconds = env_long("LOAD_SECONDS", 600);
	int nclients = (int)env_long("LOAD_CLIENTS", 50);
	NSANDBOX = (int)env_long("LOAD_SANDBOXES", 10);
	RNG = (uint64_t)env_long("LOAD_SEED", 0);
	if (!RNG)
		RNG = now_ns();
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0 || loop_init() < 0)
		die("init");
	if (daemon_start(&D, "pool_size: 1\nlimits:\n  creates_per_min: 0\n  execs_per_min: 1000000\n"
			     "  reads_per_min: 1000000\n  max_execs_per_user: 256\n  max_execs: 512\n"
			     "  max_conns_per_ip: 512\n") < 0)
		die("daemon did not start");
	KEY = daemon_user(&D, "load", "--max-sandboxes 50");
	if (!KEY)
		die("user");
	for (int i = 0; i < NSANDBOX; i++) {
		char body[64];
		snprintf(body, sizeof(body), "{\"name\":\"l%d\"}", i);
		if (api_call(&D, KEY, "POST", "/sandboxes", body, strlen(body), NULL) != 201)
			die("create");
	}
	struct audit a0;
	audit_init(&a0);
	audit_settle(&D, KEY, 1, 30000, &a0);
	struct client_settings cs = { .url = D.url, .token = KEY };
	CLIENT = client_new(&cs);
	printf("load: %d clients, %d sandboxes, %ld s, LOAD_SEED=%llu; daemon before: RSS %ld kB, "
	       "%d fds\n", nclients, NSANDBOX, seconds, (unsigned long long)RNG, a0.rss_kb, a0.fds);
	fflush(stdout);
	struct lclient *cl = xcalloc((size_t)nclients, sizeof(*cl));
	for (int i = 0; i < nclients; i++) {
		cl[i].n = i;
		timer_init(&cl[i].wake, wake_fired, &cl[i]);
		timer_init(&cl[i].deadline, deadline_fired, &cl[i]);
		buf_init(&cl[i].expect);
		buf_init(&cl[i].expect_err);
		buf_init(&cl[i].body);
		buf_init(&cl[i].path);
		buf_init(&cl[i].shell_out);
		timer_arm(&cl[i].wake, (uint64_t)i * 20);
	}
	struct timer stop;
	timer_init(&stop, stop_fired, NULL);
	timer_arm(&stop, (uint64_t)seconds * 1000);
	uint64_t t0 = now_ms(), last = t0;
	long peak_rss = 0;
	for (;;) {
		loop_run_once(1000);
		bool busy = false;
		for (int i = 0; i < nclients; i++)
			busy |= cl[i].req || cl[i].sh;
		if (STOPPING && !busy)
			break;
		if (now_ms() - last >= 30000) {
			last = now_ms();
			struct audit a;
			audit_init(&a);
			audit_take(&D, NULL, &a);
			if (a.rss_kb > peak_rss)
				peak_rss = a.rss_kb;
			long n = 0;
			for (int k = 0; k < K_N; k++)
				n += (long)LAT[k].n;
			printf("  %4.0f s: %ld answers, %ld errors, %ld wrong, %ld 429; daemon RSS %ld kB, "
			       "%d fds\n", (double)(now_ms() - t0) / 1000, n, ERRORS, WRONG, RATE429,
			       a.rss_kb, a.fds);
			fflush(stdout);
			audit_release(&a);
		}
	}
	double secs = (double)(now_ms() - t0) / 1000;
	long total = 0;
	for (int k = 0; k < K_N; k++)
		total += (long)LAT[k].n;
	printf("load: %ld answers checked in %.0f s (%.1f/s); %ld errors, %ld wrong answers, %ld "
	       "rate-limited (429)\n", total, secs, (double)total / secs, ERRORS, WRONG, RATE429);
	for (int k = 0; k < K_N; k++)
		if (LAT[k].n)
			stats_print(kind_names[k], LAT[k].v, LAT[k].n, "ms");
	if (FIRST_ERRORS.len)
		printf("load: the first problems:\n%s", FIRST_ERRORS.data);
	/* nothing left behind by the load: the same sandboxes, no leak */
	struct audit a;
	audit_init(&a);
	bool clean = audit_settle(&D, KEY, 1, 60000, &a);
	printf("load: daemon after: RSS %ld kB (peak seen %ld), %d fds (before: %d: %s; after: %s)\n",
	       a.rss_kb, peak_rss, a.fds, a0.fds, a0.fd_kinds.data, a.fd_kinds.data);
	if (!clean)
		printf("load: leaked:\n%s", a.leaks.data);
	bool fds_ok = a.fds == a0.fds;
	if (!fds_ok)
		printf("load: the daemon holds %d descriptors, %d before the load\n", a.fds, a0.fds);
	for (int i = 0; i < nclients; i++) {
		buf_release(&cl[i].expect);
		buf_release(&cl[i].expect_err);
		buf_release(&cl[i].body);
		buf_release(&cl[i].path);
		buf_release(&cl[i].shell_out);
	}
	free(cl);
	client_free(CLIENT);
	int rc = daemon_stop(&D, true);
	bool ok = ERRORS == 0 && WRONG == 0 && clean && fds_ok && rc == 0 && total > 0;
	printf("load: %s\n", ok ? "ok" : "FAILED");
	audit_release(&a);
	audit_release(&a0);
	free(KEY);
	return ok ? 0 : 1;
}
