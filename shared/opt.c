/* opt.c — the command-line option parser of the host binary (see opt.h).
 * Sits between argv and a command's option table; memory only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "opt.h"

static size_t count(const struct opt *const *tables, size_t ntables)
{
	size_t n = 0;
	for (size_t t = 0; t < ntables; t++)
		for (const struct opt *o = tables[t]; o && o->name; o++)
			n++;
	return n;
}

/* The slot whose option is spelled s[0..len) (its name or its alias). */
static struct args_slot *find(struct args *a, const char *s, size_t len)
{
	for (size_t i = 0; i < a->nslots; i++) {
		const struct opt *o = a->slots[i].o;
		if ((strlen(o->name) == len && strncmp(o->name, s, len) == 0) ||
		    (o->alias && strlen(o->alias) == len && strncmp(o->alias, s, len) == 0))
			return &a->slots[i];
	}
	return NULL;
}

static void give(struct args_slot *s, char *val)
{
	s->set = true;
	if (s->o->kind == OPT_VALUE) {
		s->value = val;
	} else if (s->o->kind == OPT_LIST) {
		s->list = xrealloc(s->list, (s->nlist + 2) * sizeof(*s->list));
		s->list[s->nlist++] = val;
		s->list[s->nlist] = NULL;
	}
}

int args_parse(struct args *a, const struct opt *const *tables, size_t ntables, int argc,
	       char **argv, struct err *e)
{
	memset(a, 0, sizeof(*a));
	a->dashdash = -1;
	a->nslots = count(tables, ntables);
	a->slots = xcalloc(a->nslots ? a->nslots : 1, sizeof(*a->slots));
	size_t k = 0;
	for (size_t t = 0; t < ntables; t++)
		for (const struct opt *o = tables[t]; o && o->name; o++)
			a->slots[k++].o = o;
	a->pos = xcalloc((size_t)(argc > 0 ? argc : 1), sizeof(*a->pos));
	for (int i = 1; i < argc; i++) {
		char *arg = argv[i];
		if (a->dashdash >= 0 || arg[0] != '-' || strcmp(arg, "-") == 0) {
			a->pos[a->npos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			a->dashdash = (int)a->npos;
			continue;
		}
		char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
		size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
		struct args_slot *s = find(a, arg, len);
		if (!s && !eq && (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)) {
			a->help = true;
			continue;
		}
		int rc = 0;
		if (!s)
			rc = err_set(e, EINVAL, "unknown option '%.*s'", (int)len, arg);
		else if (s->o->kind == OPT_FLAG && eq)
			rc = err_set(e, EINVAL, "option '%s' takes no value", s->o->name);
		else if (s->o->kind == OPT_FLAG)
			give(s, NULL);
		else if (eq)
			give(s, eq + 1);
		else if (i + 1 < argc)
			give(s, argv[++i]);
		else
			rc = err_set(e, EINVAL, "option '%s' needs a value", arg);
		if (rc < 0) {
			args_release(a);
			return rc;
		}
	}
	a->pos[a->npos] = NULL;
	return 0;
}

void args_release(struct args *a)
{
	for (size_t i = 0; i < a->nslots; i++)
		free(a->slots[i].list);
	free(a->slots);
	free(a->pos);
	memset(a, 0, sizeof(*a));
	a->dashdash = -1;
}

static const struct args_slot *slot(const struct args *a, const char *name)
{
	for (size_t i = 0; i < a->nslots; i++)
		if (strcmp(a->slots[i].o->name, name) == 0)
			return &a->slots[i];
	return NULL;
}

bool args_has(const struct args *a, const char *name)
{
	const struct args_slot *s = slot(a, name);
	return s && s->set;
}

const char *args_get(const struct args *a, const char *name)
{
	const struct args_slot *s = slot(a, name);
	return s ? s->value : NULL;
}

char *const *args_list(const struct args *a, const char *name)
{
	const struct args_slot *s = slot(a, name);
	return s ? s->list : NULL;
}
