/* valid.c — the rules for names, ids, labels and hostnames (see valid.h).
 * Sits between every caller that takes such a string from outside (API
 * handlers, the store, the settings, the CLI, lohar's CONFIGURE and
 * sessions) and nothing: it touches no state, only the string it is given.
 *
 * Most rules are one shape: a length range and a character class for the
 * first, the middle and the last character. A table of those (rules[])
 * and one checker (check()) cover them; the ids, labels, aliases and
 * environment entries add what does not fit a shape.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "valid.h"

/* ---- character classes and rules ----------------------------------------- */

enum {
	C_LOWER = 1 << 0,
	C_UPPER = 1 << 1,
	C_DIGIT = 1 << 2,
	C_DOT = 1 << 3,
	C_UNDER = 1 << 4,
	C_DASH = 1 << 5,
	C_HEX = 1 << 6,      /* a to f, with C_LOWER */
	C_ALNUM = C_LOWER | C_UPPER | C_DIGIT,
	C_WORD = C_ALNUM | C_UNDER,   /* environment variable names */
	C_NAME = C_ALNUM | C_DOT | C_UNDER | C_DASH,
};

static unsigned class_of(unsigned char c)
{
	if (c >= 'a' && c <= 'z')
		return c <= 'f' ? C_LOWER | C_HEX : C_LOWER;
	if (c >= 'A' && c <= 'Z')
		return C_UPPER;
	if (c >= '0' && c <= '9')
		return C_DIGIT;
	return c == '.' ? C_DOT : c == '_' ? C_UNDER : c == '-' ? C_DASH : 0;
}

struct rule {
	const char *what;       /* "sandbox name", in messages */
	const char *text;       /* the rule in words, after "use " */
	size_t min, max;        /* length in bytes; max 0: no limit */
	unsigned first, rest, last;
};

enum rule_id {
	R_NAME, R_SECRET, R_SANDBOX_ID, R_VM_ID, R_IMAGE, R_ALIAS, R_ENV, R_HOSTNAME, R_LABEL_PART,
	R_LABEL_VALUE, R_SESSION_ID,
};

static const struct rule rules[] = {
	[R_NAME] = { "name", VALID_NAME_RULE, 1, VALID_NAME_MAX, C_ALNUM, C_NAME, C_NAME },
	[R_SECRET] = { "secret name", "1 to 63 letters, digits or '_', not starting with a "
		       "digit (it becomes an environment variable)", 1, VALID_NAME_MAX,
		       C_UPPER | C_LOWER | C_UNDER, C_WORD, C_WORD },
	[R_SANDBOX_ID] = { "sandbox id", "12 lower-case hexadecimal digits",
			   VALID_SANDBOX_ID_LEN, VALID_SANDBOX_ID_LEN, C_DIGIT | C_HEX,
			   C_DIGIT | C_HEX, C_DIGIT | C_HEX },
	[R_VM_ID] = { "VM id", VALID_IMAGE_RULE, 1, VALID_NAME_MAX, C_LOWER | C_DIGIT,
		      C_LOWER | C_DIGIT | C_DASH, C_LOWER | C_DIGIT | C_DASH },
	[R_IMAGE] = { "image name", VALID_IMAGE_RULE, 1, VALID_NAME_MAX, C_LOWER | C_DIGIT,
		      C_LOWER | C_DIGIT | C_DASH, C_LOWER | C_DIGIT | C_DASH },
	[R_ALIAS] = { "alias", "1 to 63 lower-case letters, digits or '-', starting with a "
		      "letter or digit", 1, VALID_NAME_MAX, C_LOWER | C_DIGIT,
		      C_LOWER | C_DIGIT | C_DASH, C_LOWER | C_DIGIT | C_DASH },
	[R_ENV] = { "environment variable name", "letters, digits or '_', not starting with "
		    "a digit", 1, 0, C_UPPER | C_LOWER | C_UNDER, C_WORD, C_WORD },
	[R_HOSTNAME] = { "hostname", "1 to 63 letters, digits or '-', starting and ending "
			 "with a letter or digit", 1, 63, C_ALNUM, C_ALNUM | C_DASH, C_ALNUM },
	[R_LABEL_PART] = { "label key", "[prefix/]name, each part 1 to 63 letters, digits, "
			   "'.', '_' or '-', starting and ending with a letter or digit", 1, 63,
			   C_ALNUM, C_NAME, C_ALNUM },
	[R_LABEL_VALUE] = { "label value", "at most 256 letters, digits, '.', '_' or '-'", 0,
			    VALID_LABEL_VALUE_MAX, C_NAME, C_NAME, C_NAME },
	[R_SESSION_ID] = { "session id", "1 to 63 letters, digits, '.', '_' or '-'", 1,
			   VALID_SESSION_ID_MAX, C_NAME, C_NAME, C_NAME },
};

/* ---- messages -------------------------------------------------------------- */

#define SHOW_MAX 64   /* input bytes named in a message */

/* s[0..n) for a message: at most SHOW_MAX bytes, then "..."; bytes that
 * are not printable ASCII as \xNN (so a message never carries control
 * characters into a log or a terminal). */
static void show(char *out, size_t size, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && i < SHOW_MAX && o + 5 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
	}
	if (n > SHOW_MAX && o + 4 < size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

#define SHOW_SIZE (SHOW_MAX * 4 + 4)

/* "invalid <what> '<shown>': <problem>; use <rule>" */
static int refuse(const struct rule *r, const char *what, const char *shown, size_t shown_n,
		  const char *problem, struct err *e)
{
	char sh[SHOW_SIZE];
	show(sh, sizeof(sh), shown, shown_n);
	return err_set(e, EINVAL, "invalid %s '%s': %s; use %s", what ? what : r->what, sh,
		       problem, r->text);
}

/* s[0..n) against rule r; what/shown name the input in messages (the
 * whole of which s may be a part). */
static int check_as(const struct rule *r, const char *what, const char *s, size_t n,
		    const char *shown, size_t shown_n, struct err *e)
{
	char problem[64];

	if (n == 0 && r->min > 0)
		return refuse(r, what, shown, shown_n, "it is empty", e);
	if (r->max && n > r->max) {
		snprintf(problem, sizeof(problem), "it is longer than %zu characters", r->max);
		return refuse(r, what, shown, shown_n, problem, e);
	}
	if (n < r->min) {
		snprintf(problem, sizeof(problem), "it is shorter than %zu characters", r->min);
		return refuse(r, what, shown, shown_n, problem, e);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned cls = class_of(c);
		unsigned want = i == 0 ? r->first : i == n - 1 ? r->last : r->rest;
		if (cls & want)
			continue;
		if (!(cls & (r->first | r->rest | r->last))) {
			if (c >= 0x20 && c < 0x7f)
				snprintf(problem, sizeof(problem), "'%c' is not allowed", c);
			else
				snprintf(problem, sizeof(problem), "byte \\x%02x is not allowed", c);
		} else {
			snprintf(problem, sizeof(problem), "it %s with '%c'",
				 i == 0 ? "starts" : "ends", c);
		}
		return refuse(r, what, shown, shown_n, problem, e);
	}
	return 0;
}

static int check(enum rule_id id, const char *what, const char *s, struct err *e)
{
	if (!s)
		s = "";
	size_t n = strlen(s);
	return check_as(&rules[id], what, s, n, s, n, e);
}

/* ---- the kinds ------------------------------------------------------------------ */

int valid_user_name(const char *s, struct err *e)
{
	return check(R_NAME, "user name", s, e);
}

int valid_sandbox_name(const char *s, struct err *e)
{
	return check(R_NAME, "sandbox name", s, e);
}

int valid_snapshot_name(const char *s, struct err *e)
{
	return check(R_NAME, "snapshot name", s, e);
}

int valid_secret_name(const char *s, struct err *e)
{
	return check(R_SECRET, NULL, s, e);
}

int valid_sandbox_id(const char *s, struct err *e)
{
	return check(R_SANDBOX_ID, NULL, s, e);
}

int valid_vm_id(const char *s, struct err *e)
{
	return check(R_VM_ID, NULL, s, e);
}

int valid_image(const char *s, struct err *e)
{
	return check(R_IMAGE, NULL, s, e);
}

/* Names the original system keeps for itself (DNS and ACME names). */
static const char *const reserved_aliases[] = {
	"www", "mail", "admin", "status", "ns1", "ns2", "api", "app", "_acme-challenge",
};

int valid_alias(const char *s, struct err *e)
{
	if (!s)
		s = "";
	for (size_t i = 0; i < ARRAY_SIZE(reserved_aliases); i++)
		if (strcmp(s, reserved_aliases[i]) == 0)
			return err_set(e, EINVAL, "invalid alias '%s': it is reserved", s);
	return check(R_ALIAS, NULL, s, e);
}

int valid_env_name(const char *s, struct err *e)
{
	return check(R_ENV, NULL, s, e);
}

int valid_env_entry(const char *kv, struct err *e)
{
	if (!kv)
		kv = "";
	const char *eq = strchr(kv, '=');
	if (!eq) {
		char sh[SHOW_SIZE];
		show(sh, sizeof(sh), kv, strlen(kv));
		return err_set(e, EINVAL, "invalid environment entry '%s': want NAME=value", sh);
	}
	size_t n = (size_t)(eq - kv);
	return check_as(&rules[R_ENV], NULL, kv, n, kv, n, e);
}

int valid_hostname(const char *s, struct err *e)
{
	return check(R_HOSTNAME, NULL, s, e);
}

/* The key s[0..n): name, or prefix/name. */
static int label_key(const char *s, size_t n, struct err *e)
{
	const struct rule *r = &rules[R_LABEL_PART];
	const char *slash = memchr(s, '/', n);
	if (!slash)
		return check_as(r, NULL, s, n, s, n, e);
	size_t pn = (size_t)(slash - s);
	int rc = check_as(r, "label key prefix", s, pn, s, n, e);
	if (rc == 0)
		rc = check_as(r, NULL, slash + 1, n - pn - 1, s, n, e);
	if (rc == 0 && pn == strlen(VALID_LABEL_RESERVED) &&
	    memcmp(s, VALID_LABEL_RESERVED, pn) == 0) {
		char sh[SHOW_SIZE];
		show(sh, sizeof(sh), s, n);
		rc = err_set(e, EINVAL, "invalid label key '%s': the prefix '%s/' is reserved",
			     sh, VALID_LABEL_RESERVED);
	}
	return rc;
}

int valid_label_key(const char *s, struct err *e)
{
	if (!s)
		s = "";
	return label_key(s, strlen(s), e);
}

int valid_label_value(const char *s, struct err *e)
{
	return check(R_LABEL_VALUE, NULL, s, e);
}

int valid_labels(char *const *kv, struct err *e)
{
	size_t count = 0;
	for (; kv && kv[count]; count++) {
		const char *eq = strchr(kv[count], '=');
		if (!eq) {
			char sh[SHOW_SIZE];
			show(sh, sizeof(sh), kv[count], strlen(kv[count]));
			return err_set(e, EINVAL, "invalid label '%s': want KEY=VALUE", sh);
		}
		int rc = label_key(kv[count], (size_t)(eq - kv[count]), e);
		if (rc == 0)
			rc = valid_label_value(eq + 1, e);
		if (rc < 0)
			return rc;
	}
	if (count > VALID_LABELS_MAX)
		return err_set(e, EINVAL, "too many labels: %zu, at most %d", count,
			       VALID_LABELS_MAX);
	return 0;
}

int valid_session_id(const char *s, struct err *e)
{
	return check(R_SESSION_ID, NULL, s, e);
}
