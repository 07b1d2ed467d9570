/* err — the error out-parameter carried next to an `int` return.
 *
 * Functions return 0 or a negative errno; when they fail they also fill a
 * `struct err` (if the caller passed one) with a user-facing message:
 * lower-case, no full stop, names in single quotes.
 *
 *   return err_set(e, EINVAL, "unknown key '%s'", key);   // returns -EINVAL
 */
#ifndef BHATTI_ERR_H
#define BHATTI_ERR_H

#include "util.h"

#define ERR_MSG_MAX 512

struct err {
	int code;               /* positive errno, 0 when unset */
	char msg[ERR_MSG_MAX];
};

#define ERR_INIT { 0, "" }

/* Fill e (may be NULL) and return -code. */
int err_set(struct err *e, int code, const char *fmt, ...) PRINTF(3, 4);

/* Prefix the existing message: "ctx: old message". Returns -e->code. */
int err_prefix(struct err *e, const char *fmt, ...) PRINTF(2, 3);

void err_clear(struct err *e);

/* The message, or strerror(code) when no message was set. */
const char *err_str(const struct err *e);

#endif
