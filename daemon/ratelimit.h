/* ratelimit — per-user token buckets (creates per minute, execs per
 * minute).
 *
 * Sits between the API handlers (which ask before doing the work) and
 * nothing else: pure bookkeeping in memory (limits reset on restart).
 * Each bucket holds up to `per_min` tokens and refills continuously at
 * per_min per minute.
 */
#ifndef BHATTI_RATELIMIT_H
#define BHATTI_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

enum rate_kind { RATE_CREATE, RATE_EXEC, RATE_KINDS };

struct ratelimit;

struct ratelimit *ratelimit_new(const int64_t per_min[RATE_KINDS]);
void ratelimit_free(struct ratelimit *rl);
/* Take one token for user; false when empty, with the seconds until one
 * is back in ret_retry_after (at least 1). now_ms: a monotonic clock. */
bool ratelimit_take(struct ratelimit *rl, int64_t user_id, enum rate_kind k, uint64_t now_ms,
		    unsigned *ret_retry_after);

#endif
