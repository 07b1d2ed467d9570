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

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
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
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strnlen(line, sizeof(line) - 2);
	line[len++] = '\n';
	/* one write() so lines from several processes do not interleave */
	if (write(STDERR_FILENO, line, len) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}
