/* num.c — strict number, size and duration parsing (see num.h). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"

/* Parse leading decimal digits; *end gets the first non-digit (also on
 * -ERANGE, so callers can tell "too large" from "not a number"). */
static int parse_digits(const char *s, uint64_t *ret, const char **end)
{
	uint64_t v = 0;
	const char *p = s;
	int r = 0;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			r = -ERANGE;
		else
			v = v * 10 + d;
	}
	*ret = v;
	*end = p;
	return r;
}

int num_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret,
		  const char *what, struct err *e)
{
	uint64_t v;
	const char *end;
	int r;

	if (!s)
		return err_set(e, EINVAL, "%s: missing number", what);
	r = parse_digits(s, &v, &end);
	if (r == -EINVAL || *end)
		return err_set(e, EINVAL, "%s: '%s' is not a whole number", what, s);
	if (r == -ERANGE || v < min || v > max)
		return err_set(e, ERANGE, "%s: %s is out of range (%" PRIu64 "..%" PRIu64 ")",
			       what, s, min, max);
	*ret = v;
	return 0;
}

int num_parse_i64(const char *s, int64_t min, int64_t max, int64_t *ret,
		  const char *what, struct err *e)
{
	uint64_t v;
	const char *end;
	bool neg = false;
	int r;

	if (!s)
		return err_set(e, EINVAL, "%s: missing number", what);
	const char *p = s;
	if (*p == '-') {
		neg = true;
		p++;
	}
	r = parse_digits(p, &v, &end);
	if (r == -EINVAL || *end)
		return err_set(e, EINVAL, "%s: '%s' is not a whole number", what, s);
	if (r == 0 && !neg && v > (uint64_t)INT64_MAX)
		r = -ERANGE;
	if (r == 0 && neg && v > (uint64_t)INT64_MAX + 1)
		r = -ERANGE;
	int64_t sv = 0;
	if (r == 0)
		sv = neg ? (int64_t)(0 - v) : (int64_t)v;
	if (r == -ERANGE || sv < min || sv > max)
		return err_set(e, ERANGE, "%s: %s is out of range (%" PRId64 "..%" PRId64 ")",
			       what, s, min, max);
	*ret = sv;
	return 0;
}

int num_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret,
		  const char *what, struct err *e)
{
	uint64_t v;
	int r = num_parse_u64(s, min, max, &v, what, e);
	if (r == 0)
		*ret = (uint32_t)v;
	return r;
}

int num_parse_int(const char *s, int min, int max, int *ret,
		  const char *what, struct err *e)
{
	int64_t v;
	int r = num_parse_i64(s, min, max, &v, what, e);
	if (r == 0)
		*ret = (int)v;
	return r;
}

struct unit {
	const char *name;
	uint64_t mult;
};

static int parse_with_units(const char *s, const struct unit *units, size_t n,
			    uint64_t *ret, const char *what, const char *kind,
			    struct err *e)
{
	uint64_t v;
	const char *end;

	if (!s)
		return err_set(e, EINVAL, "%s: missing %s", what, kind);
	int r = parse_digits(s, &v, &end);
	if (r == -EINVAL)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(end, units[i].name) == 0) {
			if (r == -ERANGE || v > UINT64_MAX / units[i].mult)
				return err_set(e, ERANGE, "%s: '%s' is too large", what, s);
			*ret = v * units[i].mult;
			return 0;
		}
	}
bad:
	return err_set(e, EINVAL, "%s: '%s' is not a valid %s", what, s, kind);
}

int num_parse_size(const char *s, uint64_t *ret, const char *what, struct err *e)
{
	static const struct unit units[] = {
		{ "", 1 }, { "B", 1 },
		{ "K", 1ull << 10 }, { "KB", 1ull << 10 }, { "KiB", 1ull << 10 }, { "k", 1ull << 10 },
		{ "M", 1ull << 20 }, { "MB", 1ull << 20 }, { "MiB", 1ull << 20 }, { "m", 1ull << 20 },
		{ "G", 1ull << 30 }, { "GB", 1ull << 30 }, { "GiB", 1ull << 30 }, { "g", 1ull << 30 },
		{ "T", 1ull << 40 }, { "TB", 1ull << 40 }, { "TiB", 1ull << 40 }, { "t", 1ull << 40 },
	};
	return parse_with_units(s, units, ARRAY_SIZE(units), ret, what, "size", e);
}

int num_parse_duration_ms(const char *s, uint64_t *ret, const char *what,
			  struct err *e)
{
	static const struct unit units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	return parse_with_units(s, units, ARRAY_SIZE(units), ret, what, "duration", e);
}
