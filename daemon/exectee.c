/* exectee.c — execs teed to watchers, with a short history (see
 * exectee.h). */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "exectee.h"
#include "loop.h"
#include "util.h"

struct kept {
	uint64_t exec;
	char **argv;
	int64_t time_ms;
	uint64_t t0;
	struct buf tail;            /* chunks: [u8 ch][u32 n][n bytes] ... */
	bool cut;                   /* older output was dropped */
	bool ended, exited, timed_out;
	int exit_code;
	uint64_t duration_ms;
	char *error;
};

struct exectee_watch {
	struct sbx_tee *t;          /* NULL once the sandbox was forgotten */
	exectee_fn fn;
	void *arg;
	struct exectee_watch *next;
	bool dead;
};

struct sbx_tee {
	char *id;
	uint64_t next_exec;
	struct kept kept[EXECTEE_KEEP];   /* a ring by exec number */
	struct exectee_watch *watches;
	int calling;                      /* inside a round of callbacks */
	struct sbx_tee *next;
};

static struct sbx_tee *tees;
static size_t kept_bytes;

static struct sbx_tee *find(const char *id, bool make)
{
	for (struct sbx_tee *t = tees; t; t = t->next)
		if (strcmp(t->id, id) == 0)
			return t;
	if (!make)
		return NULL;
	struct sbx_tee *t = xcalloc(1, sizeof(*t));
	t->id = xstrdup(id);
	t->next = tees;
	tees = t;
	return t;
}

static void kept_release(struct kept *k)
{
	kept_bytes -= k->tail.len;
	strv_free(k->argv);
	buf_release(&k->tail);
	free(k->error);
	memset(k, 0, sizeof(*k));
}

static struct kept *kept_of(struct sbx_tee *t, uint64_t exec)
{
	struct kept *k = &t->kept[exec % EXECTEE_KEEP];
	return k->exec == exec ? k : NULL;
}

/* Drop watches marked dead (not while callbacks run). */
static void sweep(struct sbx_tee *t)
{
	if (t->calling)
		return;
	for (struct exectee_watch **p = &t->watches; *p;) {
		struct exectee_watch *w = *p;
		if (w->dead) {
			*p = w->next;
			free(w);
		} else {
			p = &w->next;
		}
	}
}

static void tell(struct sbx_tee *t, const struct exectee_ev *ev)
{
	t->calling++;
	for (struct exectee_watch *w = t->watches; w; w = w->next)
		if (!w->dead)
			w->fn(ev, w->arg);
	t->calling--;
	sweep(t);
}

uint64_t exectee_start(const char *sbx_id, char *const *argv)
{
	struct sbx_tee *t = find(sbx_id, true);
	uint64_t exec = ++t->next_exec;
	struct kept *k = &t->kept[exec % EXECTEE_KEEP];
	kept_release(k);
	k->exec = exec;
	k->argv = strv_dup(argv);
	k->time_ms = wall_sec() * 1000;
	k->t0 = now_ms();
	buf_init(&k->tail);
	struct exectee_ev ev = { .type = EXECTEE_START, .exec = exec, .argv = k->argv,
				 .time_ms = k->time_ms };
	tell(t, &ev);
	return exec;
}

/* Keep the chunk at the end of the tail, dropping the oldest whole chunks
 * beyond EXECTEE_TAIL. */
static void keep(struct kept *k, int ch, const uint8_t *p, size_t n)
{
	if (n > EXECTEE_TAIL) {
		p += n - EXECTEE_TAIL;
		n = EXECTEE_TAIL;
		k->cut = true;
	}
	size_t before = k->tail.len;
	uint8_t c = (uint8_t)ch;
	uint32_t len = (uint32_t)n;
	buf_add(&k->tail, &c, 1);
	buf_add(&k->tail, &len, sizeof(len));
	buf_add(&k->tail, p, n);
	size_t drop = 0;
	while (k->tail.len - drop > EXECTEE_TAIL + 5) {
		uint32_t l;
		memcpy(&l, k->tail.data + drop + 1, sizeof(l));
		drop += 5 + l;
		k->cut = true;
	}
	buf_consume(&k->tail, drop);
	kept_bytes += k->tail.len;
	kept_bytes -= before;
}

void exectee_data(const char *sbx_id, uint64_t exec, int ch, const uint8_t *p, size_t n)
{
	struct sbx_tee *t = find(sbx_id, false);
	if (!t)
		return;
	struct kept *k = kept_of(t, exec);
	if (k)
		keep(k, ch, p, n);
	struct exectee_ev ev = { .type = EXECTEE_DATA, .exec = exec, .ch = ch, .p = p, .n = n };
	tell(t, &ev);
}

void exectee_end(const char *sbx_id, uint64_t exec, bool exited, int exit_code, bool timed_out,
		 const char *error)
{
	struct sbx_tee *t = find(sbx_id, false);
	if (!t)
		return;
	struct exectee_ev ev = { .type = EXECTEE_END, .exec = exec, .exited = exited,
				 .exit_code = exit_code, .timed_out = timed_out,
				 .error = error ? error : "" };
	struct kept *k = kept_of(t, exec);
	if (k) {
		k->ended = true;
		k->exited = exited;
		k->exit_code = exit_code;
		k->timed_out = timed_out;
		k->duration_ms = now_ms() - k->t0;
		k->error = xstrdup(ev.error);
		ev.duration_ms = k->duration_ms;
	}
	tell(t, &ev);
}

struct exectee_watch *exectee_watch(const char *sbx_id, exectee_fn fn, void *arg)
{
	struct sbx_tee *t = find(sbx_id, true);
	struct exectee_watch *w = xcalloc(1, sizeof(*w));
	w->t = t, w->fn = fn, w->arg = arg;
	/* the history first, oldest first */
	uint64_t first = t->next_exec >= EXECTEE_KEEP ? t->next_exec - EXECTEE_KEEP + 1 : 1;
	t->calling++;
	for (uint64_t e = first; e <= t->next_exec && !w->dead; e++) {
		struct kept *k = kept_of(t, e);
		if (!k)
			continue;
		struct exectee_ev ev = { .type = EXECTEE_START, .exec = e, .replay = true,
					 .argv = k->argv, .time_ms = k->time_ms };
		fn(&ev, arg);
		bool cut = k->cut;
		for (size_t off = 0; off < k->tail.len && !w->dead;) {
			uint32_t l;
			memcpy(&l, k->tail.data + off + 1, sizeof(l));
			struct exectee_ev d = {
				.type = EXECTEE_DATA, .exec = e, .replay = true,
				.ch = (uint8_t)k->tail.data[off],
				.p = (const uint8_t *)k->tail.data + off + 5, .n = l, .cut = cut,
			};
			fn(&d, arg);
			cut = false;
			off += 5 + l;
		}
		if (k->ended && !w->dead) {
			struct exectee_ev end = {
				.type = EXECTEE_END, .exec = e, .replay = true, .exited = k->exited,
				.exit_code = k->exit_code, .timed_out = k->timed_out,
				.duration_ms = k->duration_ms, .error = k->error ? k->error : "",
			};
			fn(&end, arg);
		}
	}
	t->calling--;
	w->next = t->watches;
	t->watches = w;
	sweep(t);
	return w;
}

void exectee_unwatch(struct exectee_watch *w)
{
	if (!w)
		return;
	if (!w->t) {
		free(w);   /* its sandbox went before */
		return;
	}
	w->dead = true;
	sweep(w->t);
}

void exectee_forget(const char *sbx_id)
{
	for (struct sbx_tee **p = &tees; *p; p = &(*p)->next) {
		struct sbx_tee *t = *p;
		if (strcmp(t->id, sbx_id) != 0)
			continue;
		*p = t->next;
		for (struct exectee_watch *w = t->watches, *next; w; w = next) {
			next = w->next;
			if (w->dead) {
				free(w);
			} else {
				w->t = NULL;   /* its owner frees it (unwatch) */
				w->next = NULL;
			}
		}
		for (int i = 0; i < EXECTEE_KEEP; i++)
			kept_release(&t->kept[i]);
		free(t->id);
		free(t);
		return;
	}
}

size_t exectee_kept_bytes(void)
{
	return kept_bytes;
}
