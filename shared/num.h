/* num — strict number parsing: the whole string must be a number in range,
 * no sign surprises, no trailing junk. Returns 0 or -EINVAL / -ERANGE and
 * fills e with a message naming `what` (e.g. "cpus").
 */
#ifndef BHATTI_NUM_H
#define BHATTI_NUM_H

#include <stdint.h>

#include "err.h"

int num_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret,
		  const char *what, struct err *e);
int num_parse_i64(const char *s, int64_t min, int64_t max, int64_t *ret,
		  const char *what, struct err *e);
int num_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret,
		  const char *what, struct err *e);
int num_parse_int(const char *s, int min, int max, int *ret,
		  const char *what, struct err *e);

/* Sizes: "512", "512K", "64M", "2G", "1T" (binary units, optional "iB"/"B"),
 * in bytes. */
int num_parse_size(const char *s, uint64_t *ret, const char *what, struct err *e);

/* Durations: "250ms", "30s", "5m", "2h", or plain seconds; in milliseconds. */
int num_parse_duration_ms(const char *s, uint64_t *ret, const char *what,
			  struct err *e);

#endif
