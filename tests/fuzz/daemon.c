/* daemon.c — the in-process daemon of the fuzz targets (see daemon.h).
 *
 * Sits between a fuzz target (which writes a client's bytes) and the
 * daemon's real parts: http.c through http_adopt() and http_turn(), the
 * store, the sandbox core on the fake engine backend. Touches its temp
 * dir under /dev/shm (removed at exit) and nothing else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sodium.h>

#include "daemon.h"
#include "fake-backend.h"
#include "fileops.h"
#include "helpers.h"
#include "http.h"
#include "httpc.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "sandbox.h"
#include "wsc.h"

#define IDLE_TURNS 3          /* turns without movement that make "idle" */
#define MAX_TURNS 200000      /* more than this for one input: a livelock */
#define MAX_OUT (4u << 20)    /* what the client keeps of the answers */

static struct server S;
static struct user U;
static char *dir, *key;
static char *box_id, *off_id;   /* the baseline's sandboxes */

struct server *fzd_server(void)
{
	return &S;
}

static void die(const char *what, const struct err *e)
{
	fprintf(stderr, "fuzz daemon: %s: %s\n", what, e ? err_str(e) : strerror(errno));
	abort();
}

/* ---- waiting for the core ------------------------------------------------- */

struct wait {
	bool done;
	int rc;
	struct err e;
};

static void waited(struct sbx *sb UNUSED, int rc, const struct err *e, void *arg)
{
	struct wait *w = arg;
	w->done = true;
	w->rc = rc;
	if (e)
		w->e = *e;
}

static void wait_for(struct wait *w, const char *what)
{
	for (int i = 0; !w->done; i++) {
		if (i > 100000)
			die(what, NULL);
		loop_run_once(1);
	}
	if (w->rc < 0)
		die(what, &w->e);
}

/* ---- the baseline --------------------------------------------------------------- */

static struct sbx *create(const char *name)
{
	struct sbx_create req = { .name = (char *)name };
	struct wait w = { 0 };
	struct err e = ERR_INIT;
	bool existing;
	struct sbx *sb;
	if (sbx_create(&S, &U, &req, waited, &w, &existing, &sb, &e) < 0 || existing)
		die("create", &e);
	wait_for(&w, "create");
	return sb;
}

/* New rate-limit buckets: an input's requests are limited by its own. */
static void fresh_rates(void)
{
	int64_t rates[RATE_KINDS] = { [RATE_CREATE] = S.cfg.limits.creates_per_min,
				      [RATE_EXEC] = S.cfg.limits.execs_per_min,
				      [RATE_READ] = S.cfg.limits.reads_per_min };
	ratelimit_free(S.rl);
	S.rl = ratelimit_new(rates);
}

static void baseline(void)
{
	struct err e = ERR_INIT;
	struct buf ct = BUF_INIT;
	bool created;
	if (age_encrypt(S.age.public, "value", 5, &ct, &e) < 0 ||
	    store_secret_put(S.store, U.id, "TOKEN", ct.data, ct.len, 100, &created, &e) < 0)
		die("secret", &e);
	buf_release(&ct);
	struct sbx *box = create("box"), *off = create("off");
	struct wait w = { 0 };
	if (sbx_stop(off, waited, &w, &e) < 0)
		die("stop", &e);
	wait_for(&w, "stop");
	free(box_id);
	free(off_id);
	box_id = xstrdup(box->row.id);
	off_id = xstrdup(off->row.id);
	fresh_rates();
}

static bool is(const struct sbx *sb, const char *id, const char *name, const char *state)
{
	return strcmp(sb->row.id, id) == 0 && strcmp(sb->row.name, name) == 0 && !sb->busy &&
	       !sb->waiters && strcmp(sbx_state(sb), state) == 0;
}

/* Is everything as baseline() left it? */
static bool at_baseline(void)
{
	struct sbx *a = S.sandboxes, *b = a ? a->next : NULL;
	if (!a || !b || b->next || !is(a, box_id, "box", "hot") || !is(b, off_id, "off", "stopped"))
		return false;
	struct secret_meta *list;
	size_t n;
	struct err e = ERR_INIT;
	if (store_secret_list(S.store, U.id, &list, &n, &e) < 0)
		die("secrets", &e);
	bool same = n == 1 && strcmp(list[0].name, "TOKEN") == 0;
	secret_meta_array_free(list, n);
	return same;
}

struct sbx *fzd_box(void)
{
	return S.sandboxes;
}

void fzd_reset(void)
{
	if (at_baseline()) {
		fresh_rates();
		return;
	}
	struct err e = ERR_INIT;
	while (S.sandboxes) {
		struct wait w = { 0 };
		struct sbx *sb = S.sandboxes;
		if (sb->destroying) {
			loop_run_once(1);   /* a destroy the input began */
			continue;
		}
		if (sbx_destroy(sb, waited, &w, &e) < 0)
			die("destroy", &e);
		wait_for(&w, "destroy");
		loop_run_once(0);
	}
	struct secret_meta *list;
	size_t n;
	if (store_secret_list(S.store, U.id, &list, &n, &e) < 0)
		die("secrets", &e);
	for (size_t i = 0; i < n; i++)
		if (store_secret_delete(S.store, U.id, list[i].name, &e) < 0)
			die("secret delete", &e);
	secret_meta_array_free(list, n);
	baseline();
}

static void stop_all(void)
{
	http_free();
	engine_free(S.eng);
	sbx_release_all(&S);
	ratelimit_free(S.rl);
	store_free(S.store);
	settings_release(&S.cfg);
	user_release(&U);
	test_rmtree(dir);
	free(dir);
	free(key);
	free(box_id);
	free(off_id);
}

void fzd_start(void)
{
	struct err e = ERR_INIT;
	enum log_level level = LOG_OFF;
	const char *lv = getenv("FUZZ_LOG");
	if (lv)
		log_parse_level(lv, &level);
	log_init("fuzz", level);
	json_init();
	if (sodium_init() < 0 || loop_init() < 0 || fileops_init(&e) < 0)
		die("init", &e);
	setenv("TMPDIR", "/dev/shm", 1);
	dir = test_tmpdir("fuzz");
	if (settings_load_string("fuzz", "", &S.cfg, &e) < 0)
		die("settings", &e);
	free(S.cfg.data_dir); /* everything in the temp dir (named snapshots too) */
	S.cfg.data_dir = xstrdup(dir);
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/state.db", dir);
	if (store_open(b.data, &S.store, &e) < 0 ||
	    store_user_create(S.store, "fuzz", FZD_MAX_SANDBOXES, 4, 4096, &key, NULL, &e) < 0 ||
	    store_user_auth(S.store, key, &U, &e) < 0)
		die("store", &e);
	buf_reset(&b);
	buf_addf(&b, "%s/age.key", dir);
	if (age_identity_load_or_create(b.data, &S.age, &e) < 0)
		die("age", &e);
	buf_release(&b);
	if (strlen(key) != strlen(FZD_KEY))
		die("the key placeholder has the wrong length", NULL);
	fake_reset();
	fake_set_delay(0);
	struct engine_config ec = { .backend = &fake_backend, .data_dir = dir, .images_dir = dir };
	if (engine_new(&ec, NULL, NULL, &S.eng, &e) < 0 || sbx_init(&S, &e) < 0)
		die("engine", &e);
	if (http_start(&S, "127.0.0.1", 0, &e) < 0)
		die("http", &e);
	baseline();
	atexit(stop_all);
}

/* ---- connections ------------------------------------------------------------------ */

void fzd_open(struct fzd_conn *c)
{
	int sv[2];
	struct err e = ERR_INIT;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", NULL);
	c->fd = sv[0];
	buf_init(&c->in);
	buf_init(&c->out);
	c->eof = false;
	if (http_adopt(sv[1], &e) < 0)
		die("adopt", &e);
}

void fzd_write(struct fzd_conn *c, const void *p, size_t n)
{
	size_t at = c->in.len, kl = strlen(FZD_KEY);
	buf_add(&c->in, p, n);
	for (char *k = c->in.data + at; (k = memmem(k, (size_t)(c->in.data + c->in.len - k),
						   FZD_KEY, kl)); k += kl)
		memcpy(k, key, kl);
}

/* Move bytes between the client's end and its buffers: did any move? */
static bool pump(struct fzd_conn *c)
{
	bool moved = false;
	if (c->fd < 0)
		return false;
	while (c->in.len) {
		ssize_t n = send(c->fd, c->in.data, c->in.len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			buf_reset(&c->in);   /* the daemon closed: the rest is lost */
		if (n <= 0)
			break;
		buf_consume(&c->in, (size_t)n);
		moved = true;
	}
	for (;;) {
		char tmp[65536];
		ssize_t n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			moved |= !c->eof;
			c->eof = true;
			break;
		}
		if (n < 0)
			break;
		if (c->out.len < MAX_OUT)
			buf_add(&c->out, tmp, (size_t)n);
		moved = true;
	}
	return moved;
}

void fzd_serve(struct fzd_conn *const *conns, size_t n)
{
	for (int idle = 0, turns = 0; idle < IDLE_TURNS; turns++) {
		if (turns > MAX_TURNS) {
			fprintf(stderr, "fuzz daemon: still busy after %d turns (a livelock?)\n", turns);
			abort();
		}
		bool moved = loop_pending();
		if (http_turn(false) < 0)
			die("lws", NULL);
		for (size_t i = 0; i < n; i++)
			moved |= pump(conns[i]);
		idle = moved ? 0 : idle + 1;
	}
}

void fzd_close(struct fzd_conn *const *conns, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		shutdown(conns[i]->fd, SHUT_WR);
		buf_reset(&conns[i]->in);
	}
	fzd_serve(conns, n);
	for (size_t i = 0; i < n; i++) {
		close(conns[i]->fd);
		conns[i]->fd = -1;
		buf_release(&conns[i]->in);
		buf_release(&conns[i]->out);
	}
	for (int i = 0; http_connections() > 0; i++) {
		if (i > MAX_TURNS) {
			fprintf(stderr, "fuzz daemon: %u connection%s never closed\n",
				http_connections(), http_connections() == 1 ? "" : "s");
			abort();
		}
		if (http_turn(false) < 0)
			die("lws", NULL);
	}
	fzd_serve(NULL, 0);   /* what the closes set going */
}

/* ---- what the daemon answered ------------------------------------------------------- */

/* One answer as the parser hands it over. */
struct answer {
	struct buf body;
};

static bool take_head(void *arg UNUSED, const struct httpc_head *h UNUSED)
{
	return true;
}

static bool take_body(void *arg, const char *p, size_t n)
{
	struct answer *a = arg;
	buf_add(&a->body, p, n);
	return true;
}

static void bad_answer(const struct buf *out, size_t at, const char *what, const char *why)
{
	fprintf(stderr, "fuzz daemon: %s at byte %zu of the answers: %s\n---\n%.*s\n---\n", what,
		at, why, (int)MIN(out->len, (size_t)4096), out->data);
	abort();
}

static bool is_json(const char *p, size_t n)
{
	cJSON *j = cJSON_ParseWithLength(p, n);
	cJSON_Delete(j);
	return j != NULL;
}

/* The head at out[off..) says Content-Type t. */
static bool head_says(const struct buf *out, size_t off, const char *t)
{
	const char *h = out->data + off;
	const char *end = memmem(h, out->len - off, "\r\n\r\n", 4);
	char line[128];
	snprintf(line, sizeof(line), "\r\ncontent-type: %s\r\n", t);
	for (const char *p = h; end && p < end; p++)
		if (strncasecmp(p, line, strlen(line)) == 0)
			return true;
	return false;
}

void fzd_check_answers(const struct buf *out, bool head_requests)
{
	static const struct httpc_sink sink = { .head = take_head, .body = take_body };
	if (getenv("FUZZ_SHOW"))
		fprintf(stderr, "---- the daemon wrote %zu bytes:\n%.*s\n----\n", out->len,
			(int)MIN(out->len, (size_t)65536), out->data);
	if (out->len >= MAX_OUT || head_requests)
		return;   /* (not all of it was kept; no body after a HEAD's head) */
	size_t off = 0;
	while (off < out->len) {
		struct httpc p;
		struct err e = ERR_INIT;
		struct answer a = { BUF_INIT };
		size_t used;
		httpc_init(&p, false);
		int rc = httpc_feed(&p, out->data + off, out->len - off, &sink, &a, &used, &e);
		int status = p.head.status;
		httpc_release(&p);
		if (rc < 0)
			bad_answer(out, off, "a malformed HTTP answer", err_str(&e));
		bool json = head_says(out, off, "application/json");
		bool ndjson = head_says(out, off, "application/x-ndjson");
		if (rc == HTTPC_DONE && json && !is_json(a.body.data, a.body.len))
			bad_answer(out, off, "an answer that is not JSON", a.body.data);
		for (size_t at = 0; ndjson && at < a.body.len;) {
			const char *nl = memchr(a.body.data + at, '\n', a.body.len - at);
			if (!nl)
				break;   /* a line still coming */
			if (!is_json(a.body.data + at, (size_t)(nl - a.body.data) - at))
				bad_answer(out, off, "an ndjson line that is not JSON", a.body.data + at);
			at = (size_t)(nl - a.body.data) + 1;
		}
		buf_release(&a.body);
		if (rc != HTTPC_DONE)
			return;   /* cut short by a close, or a stream still going */
		off += used;
		if (status != 101)
			continue;
		/* the rest are WebSocket frames from the server; text ones JSON */
		struct wsc w;
		struct buf in = BUF_INIT;
		int op;
		wsc_init(&w);
		buf_add(&in, out->data + off, out->len - off);
		while ((rc = wsc_take(&w, &in, &op)) == 1)
			if (op == WSC_TEXT && !is_json(w.msg.data, w.msg.len))
				bad_answer(out, out->len - in.len, "a text message that is not JSON",
					   w.msg.data);
		if (rc < 0)
			bad_answer(out, out->len - in.len, "a malformed WebSocket frame",
				   strerror(-rc));
		wsc_release(&w);
		buf_release(&in);
		return;
	}
}

/* ---- an agent for "box" -------------------------------------------------------------- *
 *
 * What the QEMU backend does with a running VM's channel (qemu-agent.c:
 * qagent_open, qagent_on_io, agent_notify, qagent_close), here on a
 * socketpair whose other end the target plays. */

static void agent_lose(struct fzd_agent *a, const struct err *e)
{
	struct ac *ac = a->ac;
	if (!ac)
		return;
	ac_set_notify(ac, NULL, NULL);
	watch_del(&a->w);
	task_cancel(&a->flush);
	if (a->vm->agent == ac)
		a->vm->agent = NULL;
	ac_close(ac, ECONNABORTED, "sandbox 'box': %s", e ? err_str(e) : "agent detached");
	loop_defer_free((void (*)(void *))ac_free, ac);
	a->ac = NULL;
}

static void agent_update(struct fzd_agent *a)
{
	if (a->ac && !ac_dead(a->ac))
		watch_set(&a->w, EPOLLIN | (ac_want_write(a->ac) ? EPOLLOUT : 0));
}

static void agent_flush(struct task *t)
{
	struct fzd_agent *a = t->data;
	if (a->ac && !ac_dead(a->ac))
		ac_flush(a->ac, NULL);
	agent_update(a);
}

static void agent_notify(void *arg)
{
	struct fzd_agent *a = arg;
	task_post(&a->flush);
}

static void agent_io(struct watch *w, uint32_t events)
{
	struct fzd_agent *a = w->data;
	struct err e = ERR_INIT;
	int r = 0;
	if (!a->ac)
		return;
	if (events & EPOLLOUT)
		r = ac_flush(a->ac, &e);
	if (r == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		r = ac_on_readable(a->ac, &e);
	if (r < 0) {
		a->lost = true;
		agent_lose(a, &e);
		return;
	}
	agent_update(a);
}

void fzd_agent_attach(struct fzd_agent *a, struct sbx *sb, const void *hello_ok, size_t n)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", NULL);
	memset(a, 0, sizeof(*a));
	a->vm = sb->vm;
	a->c.fd = sv[0];
	buf_init(&a->c.in);
	buf_init(&a->c.out);
	a->ac = ac_new(sv[1], "token", "bhatti-engine");
	a->vm->agent = a->ac;
	watch_init(&a->w, agent_io, a);
	task_init(&a->flush, agent_flush, a);
	watch_add(&a->w, sv[1], EPOLLIN | EPOLLOUT);
	ac_set_notify(a->ac, agent_notify, a);
	fzd_write(&a->c, hello_ok, n);
	struct fzd_conn *one[] = { &a->c };
	fzd_serve(one, 1);
	if (!a->ac || !ac_ready(a->ac))
		die("the agent client did not take HELLO_OK", NULL);
}

void fzd_agent_hangup(struct fzd_agent *a)
{
	if (a->c.fd >= 0)
		close(a->c.fd);
	a->c.fd = -1;
}

void fzd_agent_detach(struct fzd_agent *a)
{
	agent_lose(a, NULL);
	fzd_agent_hangup(a);
	buf_release(&a->c.in);
	buf_release(&a->c.out);
	fzd_serve(NULL, 0);
}
