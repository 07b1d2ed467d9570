/* ratelimit — per-user token buckets (creates, execs and reads per
 * minute) and counts of what runs at once (execs per user and in all).
 *
 * Sits between the API (the route table names each route's class; the
 * handlers ask for the rest) and nothing else: pure bookkeeping in memory
 * (limits reset on restart). Each bucket holds up to `per_min` tokens and
 * refills continuously at per_min per minute. The classes follow the
 * original system: "exec" is running commands, writing files and opening
 * shells; "read" is every other authenticated request; "create" is
 * creating a sandbox.
 */
#ifndef BHATTI_RATELIMIT_H
#define BHATTI_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

enum rate_kind { RATE_NONE = -1, RATE_CREATE, RATE_EXEC, RATE_READ, RATE_KINDS };

struct ratelimit;

struct ratelimit *ratelimit_new(const int64_t per_min[RATE_KINDS]);
void ratelimit_free(struct ratelimit *rl);
/* Take one token for user; false when empty, with the seconds until one
 * is back in ret_retry_after (at least 1). now_ms: a monotonic clock. */
bool ratelimit_take(struct ratelimit *rl, int64_t user_id, enum rate_kind k, uint64_t now_ms,
		    unsigned *ret_retry_after);

/* One more running thing of user's (an exec): false when the user already
 * has max_user, or everyone together max_all (0 = no limit). Give it back
 * with ratelimit_unhold(). */
bool ratelimit_hold(struct ratelimit *rl, int64_t user_id, int64_t max_user, int64_t max_all);
void ratelimit_unhold(struct ratelimit *rl, int64_t user_id);

#endif
