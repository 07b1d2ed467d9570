/* labels.c — a sandbox's labels as sorted "KEY=VALUE" lines (labels.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "labels.h"
#include "util.h"
#include "valid.h"

char **labels_split(const char *text)
{
	size_t n = 0, cap = 4;
	char **v = xcalloc(cap, sizeof(*v));
	for (const char *p = text; p && *p;) {
		size_t len = strcspn(p, "\n");
		if (len) {
			if (n + 2 > cap)
				v = xrealloc(v, (cap *= 2) * sizeof(*v));
			v[n++] = xstrndup(p, len);
		}
		p += len + (p[len] == '\n');
	}
	v[n] = NULL;
	return v;
}

static size_t key_len(const char *kv)
{
	return strcspn(kv, "=");
}

static bool same_key(const char *a, const char *b)
{
	size_t la = key_len(a), lb = key_len(b);
	return la == lb && memcmp(a, b, la) == 0;
}

/* Drop v's entry with kv's key, if any (v keeps its order). */
static void drop_key(char **v, const char *kv)
{
	for (size_t i = 0; v[i]; i++) {
		if (!same_key(v[i], kv))
			continue;
		free(v[i]);
		memmove(v + i, v + i + 1, (strv_len(v + i + 1) + 1) * sizeof(*v));
		return;
	}
}

static int by_key(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int labels_edit(const char *cur, char *const *set, char *const *unset, char **ret_text,
		struct err *e)
{
	char **v = labels_split(cur);
	size_t n = strv_len(v), add = strv_len(set);
	int rc = valid_labels(set, e);
	for (char *const *u = unset; rc == 0 && u && *u; u++)
		rc = valid_label_key(*u, e);
	if (rc == 0) {
		for (char *const *u = unset; u && *u; u++)
			drop_key(v, *u);
		v = xrealloc(v, (n + add + 1) * sizeof(*v));
		for (size_t i = 0; i < add; i++) {
			drop_key(v, set[i]);
			n = strv_len(v);
			v[n] = xstrdup(set[i]);
			v[n + 1] = NULL;
		}
		rc = valid_labels(v, e);
	}
	if (rc == 0) {
		n = strv_len(v);
		qsort(v, n, sizeof(*v), by_key);
		struct buf b = BUF_INIT;
		for (size_t i = 0; i < n; i++)
			buf_addf(&b, "%s\n", v[i]);
		*ret_text = buf_detach(&b, NULL);
	}
	strv_free(v);
	return rc;
}

bool labels_match(const char *text, char *const *filter)
{
	char **v = labels_split(text);
	bool all = true;
	for (char *const *f = filter; all && f && *f; f++) {
		bool want_value = strchr(*f, '=') != NULL, found = false;
		for (char **p = v; !found && *p; p++)
			found = same_key(*p, *f) && (!want_value || strcmp(*p, *f) == 0);
		all = found;
	}
	strv_free(v);
	return all;
}
