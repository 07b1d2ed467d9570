/* model.c — the sandboxes as the TUI shows them (see model.h). Sits
 * between the answers and events of the API (JSON text, parsed with cJSON)
 * and the views; no I/O. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "model.h"
#include "util.h"

void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	m->filter = xstrdup("");
	m->sel_id = xstrdup("");
	m->sort = SORT_NAME;
}

static void row_release(struct sbx_row *r)
{
	free(r->id), free(r->name), free(r->state), free(r->thermal), free(r->image);
	free(r->ip), free(r->error), free(r->urls), free(r->last_exec);
	for (int i = 0; i < r->nrecent; i++)
		free(r->recent[i]);
	memset(r, 0, sizeof(*r));
}

void model_release(struct model *m)
{
	for (size_t i = 0; i < m->n; i++)
		row_release(&m->rows[i]);
	for (size_t i = 0; i < m->nlog; i++)
		free(m->log[(m->log_first + i) % MODEL_LOG]);
	free(m->rows), free(m->view), free(m->filter), free(m->sel_id);
	memset(m, 0, sizeof(*m));
}

/* ---- JSON helpers ---------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	return s ? s : "";
}

static int jint(const cJSON *o, const char *k, int dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valueint : dflt;
}

/* Set *dst to s when it differs; true when it did. */
static bool set_str(char **dst, const char *s)
{
	if (*dst && strcmp(*dst, s) == 0)
		return false;
	free(*dst);
	*dst = xstrdup(s);
	return true;
}

/* "2026-11-24T21:40:00Z" → unix seconds, 0 when it is not that. */
static int64_t parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return 0;
	return (int64_t)timegm(&tm);
}

/* ---- the view: filter, sort, selection ------------------------------------------ */

static bool row_matches(const struct sbx_row *r, const char *f)
{
	if (!f[0])
		return true;
	return strcasestr(r->name, f) || strcasestr(r->state, f) || strcasestr(r->image, f) ||
	       strcasestr(r->id, f) || strcasestr(r->thermal, f);
}

static int state_rank(const char *s)
{
	static const char *const order[] = { "error", "creating", "starting", "hot", "warm",
					     "cold", "stopping", "stopped" };
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		if (strcmp(s, order[i]) == 0)
			return (int)i;
	return (int)ARRAY_SIZE(order);
}

static const struct model *sort_model;   /* qsort has no context argument */

static int cmp_rows(const void *pa, const void *pb)
{
	const struct sbx_row *a = &sort_model->rows[*(const size_t *)pa];
	const struct sbx_row *b = &sort_model->rows[*(const size_t *)pb];
	int c = 0;
	switch (sort_model->sort) {
	case SORT_STATE: c = state_rank(a->state) - state_rank(b->state); break;
	case SORT_AGE: c = (a->created > b->created) - (a->created < b->created); break;
	case SORT_MEMORY: c = (a->memory_mb > b->memory_mb) - (a->memory_mb < b->memory_mb); break;
	case SORT_NAME: case SORT_N: break;
	}
	if (c == 0)
		c = strcmp(a->name, b->name);
	if (c == 0)
		c = strcmp(a->id, b->id);
	return sort_model->desc ? -c : c;
}

static void rebuild_view(struct model *m)
{
	m->view = xrealloc(m->view, (m->n ? m->n : 1) * sizeof(*m->view));
	m->nview = 0;
	for (size_t i = 0; i < m->n; i++)
		if (row_matches(&m->rows[i], m->filter))
			m->view[m->nview++] = i;
	sort_model = m;
	qsort(m->view, m->nview, sizeof(*m->view), cmp_rows);
	sort_model = NULL;
	/* keep the selection on its sandbox, else the first row */
	bool found = false;
	for (size_t i = 0; i < m->nview && !found; i++)
		found = strcmp(m->rows[m->view[i]].id, m->sel_id) == 0;
	if (!found)
		set_str(&m->sel_id, m->nview ? m->rows[m->view[0]].id : "");
	m->gen++;
}

static struct sbx_row *find_id(struct model *m, const char *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->rows[i].id, id) == 0)
			return &m->rows[i];
	return NULL;
}

const struct sbx_row *model_find(const struct model *m, const char *id_or_name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->rows[i].id, id_or_name) == 0)
			return &m->rows[i];
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->rows[i].name, id_or_name) == 0)
			return &m->rows[i];
	return NULL;
}

static struct sbx_row *add_row(struct model *m, const char *id)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->rows = xrealloc(m->rows, m->cap * sizeof(*m->rows));
	}
	struct sbx_row *r = &m->rows[m->n++];
	memset(r, 0, sizeof(*r));
	r->id = xstrdup(id);
	r->name = xstrdup(id);
	r->state = xstrdup(""), r->thermal = xstrdup(""), r->image = xstrdup("");
	r->ip = xstrdup(""), r->error = xstrdup(""), r->urls = xstrdup("");
	r->last_exec = xstrdup("");
	r->sessions = -1;
	r->last_exit = -1;
	return r;
}

/* Fill r from a sandbox object; true when anything shown changed. */
static bool row_from_json(struct sbx_row *r, const cJSON *o)
{
	bool ch = false;
	ch |= set_str(&r->name, jstr(o, "name"));
	ch |= set_str(&r->state, jstr(o, "state"));
	ch |= set_str(&r->thermal, jstr(o, "thermal"));
	ch |= set_str(&r->image, jstr(o, "image"));
	ch |= set_str(&r->ip, jstr(o, "ip"));
	ch |= set_str(&r->error, jstr(o, "error"));
	int cpus = jint(o, "cpus", 0), mem = jint(o, "memory_mb", 0);
	int64_t created = parse_time(jstr(o, "created_at"));
	ch |= cpus != r->cpus || mem != r->memory_mb || created != r->created;
	r->cpus = cpus, r->memory_mb = mem, r->created = created;
	const cJSON *idle = cJSON_GetObjectItemCaseSensitive(o, "idle_ms");
	if (cJSON_IsNumber(idle)) {
		int64_t active = wall_sec() - (int64_t)(idle->valuedouble / 1000);
		ch |= active / 60 != r->active / 60;
		r->active = active;
	}
	return ch;
}

int model_set_list(struct model *m, const char *json, size_t len, struct err *e)
{
	cJSON *a = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsArray(a)) {
		cJSON_Delete(a);
		return err_set(e, EINVAL, "the sandbox list is not a JSON array");
	}
	const cJSON *o;
	cJSON_ArrayForEach(o, a) {
		if (!cJSON_IsObject(o) || !jstr(o, "id")[0]) {
			cJSON_Delete(a);
			return err_set(e, EINVAL, "the sandbox list holds an entry without an id");
		}
	}
	bool changed = false;
	/* drop the rows that are gone */
	for (size_t i = 0; i < m->n;) {
		bool keep = false;
		cJSON_ArrayForEach(o, a)
			if (strcmp(jstr(o, "id"), m->rows[i].id) == 0)
				keep = true;
		if (keep) {
			i++;
			continue;
		}
		row_release(&m->rows[i]);
		m->rows[i] = m->rows[--m->n];
		changed = true;
	}
	cJSON_ArrayForEach(o, a) {
		struct sbx_row *r = find_id(m, jstr(o, "id"));
		if (!r) {
			r = add_row(m, jstr(o, "id"));
			changed = true;
		}
		changed |= row_from_json(r, o);
	}
	cJSON_Delete(a);
	if (changed)
		rebuild_view(m);
	return 0;
}

void model_set_ports(struct model *m, const char *json, size_t len)
{
	cJSON *j = json ? cJSON_ParseWithLength(json, len) : NULL;
	const cJSON *ports = cJSON_GetObjectItemCaseSensitive(j, "ports");
	bool changed = false;
	for (size_t i = 0; i < m->n; i++) {
		struct sbx_row *r = &m->rows[i];
		struct buf b = BUF_INIT;
		const cJSON *p;
		cJSON_ArrayForEach(p, ports) {
			if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "published")) ||
			    strcmp(jstr(p, "sandbox_id"), r->id) != 0 || !jstr(p, "url")[0])
				continue;
			buf_addf(&b, "%s%s", b.len ? ", " : "", jstr(p, "url"));
		}
		changed |= set_str(&r->urls, b.data);
		buf_release(&b);
	}
	cJSON_Delete(j);
	if (changed)
		m->gen++;
}

/* ---- events ----------------------------------------------------------------------- */

/* "12:00:01 [name ]type detail=…" for an event (caller frees). */
static char *event_line(const cJSON *o, const char *type, const char *name)
{
	const cJSON *tv = cJSON_GetObjectItemCaseSensitive(o, "time");
	time_t secs = cJSON_IsNumber(tv) ? (time_t)(tv->valuedouble / 1000) : 0;
	struct tm tm;
	char when[16] = "";
	if (secs && gmtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s%s%s%s%s", when, when[0] ? " " : "", name ? name : "", name ? " " : "",
		 type);
	static const char *const detail[] = { "from", "to", "thermal", "reason", "wake_ms",
					      "image", "origin", "session", "exit_code",
					      "duration_ms", "error" };
	for (size_t i = 0; i < ARRAY_SIZE(detail); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, detail[i]);
		if (cJSON_IsString(v))
			buf_addf(&b, " %s=%s", detail[i], v->valuestring);
		else if (cJSON_IsNumber(v))
			buf_addf(&b, " %s=%.0f", detail[i], v->valuedouble);
	}
	const cJSON *argv = cJSON_GetObjectItemCaseSensitive(o, "argv"), *a;
	if (cJSON_IsArray(argv)) {
		buf_adds(&b, " $");
		cJSON_ArrayForEach(a, argv)
			if (cJSON_IsString(a))
				buf_addf(&b, " %s", a->valuestring);
	}
	return buf_detach(&b, NULL);
}

static void log_event(struct model *m, const cJSON *o, const char *type)
{
	const char *name = jstr(o, "sandbox");
	char *line = event_line(o, type, name[0] ? name : NULL);
	if (m->nlog == MODEL_LOG) {
		free(m->log[m->log_first]);
		m->log_first = (m->log_first + 1) % MODEL_LOG;
		m->nlog--;
	}
	m->log[(m->log_first + m->nlog++) % MODEL_LOG] = line;
	m->log_total++;
}

const char *model_log_line(const struct model *m, size_t i)
{
	return i < m->nlog ? m->log[(m->log_first + i) % MODEL_LOG] : NULL;
}

int model_apply_event(struct model *m, const char *json, size_t len, enum model_need *ret_need,
		      struct err *e)
{
	cJSON *o = cJSON_ParseWithLength(json, len);
	const char *type = jstr(o, "type");
	if (!cJSON_IsObject(o) || !type[0]) {
		cJSON_Delete(o);
		return err_set(e, EINVAL, "an event that is not an object with a type");
	}
	enum model_need need = MODEL_OK;
	m->event_sandbox[0] = m->event_type[0] = '\0';
	const cJSON *seqv = cJSON_GetObjectItemCaseSensitive(o, "seq");
	if (strcmp(type, "resync") == 0) {
		log_event(m, o, type);
		need = MODEL_BEHIND;
		goto out;
	}
	/* seq is the daemon's, across all its users: the gaps are other
	 * users' events, not something missed (that comes as resync) */
	if (cJSON_IsNumber(seqv)) {
		uint64_t seq = (uint64_t)seqv->valuedouble;
		if (m->seq && seq <= m->seq)
			goto out;   /* seen already (a reconnect with ?since) */
		m->seq = seq;
	}
	log_event(m, o, type);
	const char *id = jstr(o, "sandbox_id");
	snprintf(m->event_sandbox, sizeof(m->event_sandbox), "%s", id);
	snprintf(m->event_type, sizeof(m->event_type), "%s", type);
	struct sbx_row *r = id[0] ? find_id(m, id) : NULL;
	if (strcmp(type, "sandbox.created") == 0) {
		if (!r) {
			r = add_row(m, id);
			set_str(&r->name, jstr(o, "sandbox"));
			set_str(&r->state, "creating");
			rebuild_view(m);
		}
		need = MODEL_RESYNC;   /* its shape (cpus, memory, image) comes with the list */
		goto out;
	}
	if (!r) {
		if (strncmp(type, "sandbox.", 8) == 0 || strncmp(type, "session.", 8) == 0 ||
		    strncmp(type, "exec.", 5) == 0)
			need = strcmp(type, "sandbox.destroyed") == 0 ? need : MODEL_RESYNC;
		goto out;
	}
	/* the row's recent events: "12:00:01 sandbox.state state=warm" */
	{
		char *line = event_line(o, type, NULL);
		if (r->nrecent == MODEL_RECENT) {
			free(r->recent[0]);
			memmove(r->recent, r->recent + 1, (MODEL_RECENT - 1) * sizeof(char *));
			r->nrecent--;
		}
		r->recent[r->nrecent++] = line;
	}
	/* what the thermal manager counts as activity resets IDLE */
	const cJSON *tv = cJSON_GetObjectItemCaseSensitive(o, "time");
	if (cJSON_IsNumber(tv) && (strncmp(type, "exec.", 5) == 0 ||
				   strncmp(type, "session.", 8) == 0 ||
				   (strcmp(type, "sandbox.state") == 0 &&
				    strcmp(jstr(o, "to"), "hot") == 0))) {
		int64_t at = (int64_t)(tv->valuedouble / 1000);
		if (at > r->active) {
			r->active = at;
			m->gen++;
		}
	}
	if (strcmp(type, "sandbox.destroyed") == 0) {
		row_release(r);
		*r = m->rows[--m->n];
		rebuild_view(m);
	} else if (strcmp(type, "sandbox.renamed") == 0) {
		if (jstr(o, "to")[0] && set_str(&r->name, jstr(o, "to")))
			rebuild_view(m);
	} else if (strcmp(type, "sandbox.state") == 0) {
		bool ch = false;
		if (jstr(o, "to")[0])
			ch |= set_str(&r->state, jstr(o, "to"));
		if (jstr(o, "thermal")[0])
			ch |= set_str(&r->thermal, jstr(o, "thermal"));
		if (ch)
			rebuild_view(m);
	} else if (strcmp(type, "session.opened") == 0 || strcmp(type, "session.exited") == 0) {
		int d = type[8] == 'o' ? 1 : -1;
		r->sessions = MAX(0, (r->sessions < 0 ? 0 : r->sessions) + d);
		m->gen++;
	} else if (strcmp(type, "exec.started") == 0) {
		struct buf b = BUF_INIT;
		const cJSON *a;
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(o, "argv"))
			if (cJSON_IsString(a))
				buf_addf(&b, "%s%s", b.len ? " " : "", a->valuestring);
		set_str(&r->last_exec, b.data);
		buf_release(&b);
		r->execs++;
		r->last_exit = -1;
		m->gen++;
	} else if (strcmp(type, "exec.finished") == 0) {
		r->execs = MAX(0, r->execs - 1);
		r->last_exit = jint(o, "exit_code", -1);
		m->gen++;
	}
out:
	cJSON_Delete(o);
	*ret_need = need;
	return 0;
}

/* ---- the rest ------------------------------------------------------------------------ */

void model_set_filter(struct model *m, const char *filter)
{
	if (set_str(&m->filter, filter))
		rebuild_view(m);
}

void model_set_sort(struct model *m, enum model_sort key)
{
	if (m->sort == key)
		m->desc = !m->desc;
	else
		m->sort = key, m->desc = false;
	rebuild_view(m);
}

const char *model_sort_name(enum model_sort key)
{
	static const char *const names[] = { "name", "state", "age", "memory" };
	return key < SORT_N ? names[key] : "?";
}

const struct sbx_row *model_selected(const struct model *m, size_t *ret_at)
{
	for (size_t i = 0; i < m->nview; i++)
		if (strcmp(m->rows[m->view[i]].id, m->sel_id) == 0) {
			if (ret_at)
				*ret_at = i;
			return &m->rows[m->view[i]];
		}
	return NULL;
}

void model_move(struct model *m, int delta)
{
	if (!m->nview)
		return;
	size_t at = 0;
	model_selected(m, &at);
	long to = (long)at + delta;
	if (to < 0)
		to = 0;
	if (to >= (long)m->nview)
		to = (long)m->nview - 1;
	if (set_str(&m->sel_id, m->rows[m->view[to]].id))
		m->gen++;
}

void model_counts(const struct model *m, struct model_counts *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < m->n; i++) {
		const char *s = m->rows[i].state;
		c->total++;
		if (strcmp(s, "hot") == 0)
			c->hot++;
		else if (strcmp(s, "warm") == 0)
			c->warm++;
		else if (strcmp(s, "cold") == 0)
			c->cold++;
		else if (strcmp(s, "stopped") == 0)
			c->stopped++;
		else if (strcmp(s, "error") == 0)
			c->error++;
		else
			c->other++;
	}
}

void model_age(int64_t secs, char *out, size_t size)
{
	if (secs < 0)
		snprintf(out, size, "-");
	else if (secs < 60)
		snprintf(out, size, "<1m");
	else if (secs < 3600)
		snprintf(out, size, "%lldm", (long long)(secs / 60));
	else if (secs < 86400)
		snprintf(out, size, "%lldh", (long long)(secs / 3600));
	else
		snprintf(out, size, "%lldd", (long long)(secs / 86400));
}
