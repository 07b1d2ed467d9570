/* log.c — leveled, timestamped logging to stderr (see log.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_prog = "bhatti";
static enum log_level log_level = LOG_INFO;
static const char *const log_names[] = { "debug", "info", "warn", "error", "off" };

void log_init(const char *prog, enum log_level level)
{
	const char *env = getenv("BHATTI_LOG");
	enum log_level from_env;
	log_prog = prog;
	log_level = level;
	if (env && log_parse_level(env, &from_env) == 0)
		log_level = from_env;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

int log_parse_level(const char *s, enum log_level *ret_level)
{
	for (size_t i = 0; i < ARRAY_SIZE(log_names); i++) {
		if (strcmp(s, log_names[i]) == 0) {
			*ret_level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Copy msg into out (room bytes) with control characters escaped, so text
 * from a guest, QEMU or a client cannot forge log lines or drive a
 * terminal. Returns the length written. */
static size_t escape_into(char *out, size_t room, const char *msg)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)msg; *p && o + 5 < room; p++) {
		unsigned char c = *p;
		if (c >= 0x20 && c != 0x7f) {
			out[o++] = (char)c;
			continue;
		}
		out[o++] = '\\';
		if (c == '\n' || c == '\r' || c == '\t') {
			out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else {
			static const char hex[] = "0123456789abcdef";
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return o;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048], msg[1024];
	struct timespec ts;
	struct tm tm;
	int n;
	va_list ap;

	if (level < log_level || level >= LOG_OFF)
		return;
	int saved = errno;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_prog,
		     log_names[level]);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t len = n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0;
	len += escape_into(line + len, sizeof(line) - len - 1, msg);
	line[len++] = '\n';
	/* one write() so lines from several processes do not interleave */
	if (write(STDERR_FILENO, line, len) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}
