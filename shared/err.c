/* err.c — error messages carried beside negative-errno returns. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (code < 0)
		code = -code;
	if (e) {
		va_list ap;
		e->code = code;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return -code;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	char pre[ERR_MSG_MAX], all[2 * ERR_MSG_MAX + 2];
	va_list ap;
	if (!e)
		return -1;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	snprintf(all, sizeof(all), "%s: %s", pre, err_str(e));
	size_t n = strnlen(all, sizeof(e->msg) - 1);
	memcpy(e->msg, all, n);
	e->msg[n] = '\0';
	return -e->code;
}

void err_clear(struct err *e)
{
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
}

const char *err_str(const struct err *e)
{
	if (!e)
		return "unknown error";
	if (e->msg[0])
		return e->msg;
	return e->code ? strerror(e->code) : "no error";
}
