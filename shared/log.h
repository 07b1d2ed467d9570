/* log — leveled logging to stderr, one line per message:
 *
 *   2026-11-24T18:09:30.123Z lohar info: listening on unix:/tmp/a.sock
 *
 * log_init() once from main(); the level can also come from BHATTI_LOG
 * (debug|info|warn|error). Messages follow the err.h style. Control
 * characters in a message are written escaped (\n, \t, \x1b, ...): much
 * of what is logged comes from guests, QEMU and clients, and must not
 * forge a line or drive the terminal of whoever reads the log.
 */
#ifndef BHATTI_LOG_H
#define BHATTI_LOG_H

#include "util.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "debug", "info", "warn", "error", "off"; returns -EINVAL if unknown. */
int log_parse_level(const char *s, enum log_level *ret_level);

void log_msg(enum log_level level, const char *fmt, ...) PRINTF(2, 3);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
