/* ratelimit.c — per-user token buckets (see ratelimit.h). A small array
 * searched linearly: one entry per user who made a limited request. */
#include <math.h>
#include <stdlib.h>

#include "ratelimit.h"
#include "util.h"

struct bucket {
	double tokens;
	uint64_t at_ms;      /* when tokens was computed */
};

struct user_buckets {
	int64_t user_id;
	struct bucket b[RATE_KINDS];
	int64_t held;        /* running now (ratelimit_hold) */
};

struct ratelimit {
	int64_t per_min[RATE_KINDS];
	int64_t held;        /* everyone's */
	struct user_buckets *users;
	size_t n, cap;
};

struct ratelimit *ratelimit_new(const int64_t per_min[RATE_KINDS])
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));
	for (int k = 0; k < RATE_KINDS; k++)
		rl->per_min[k] = per_min[k];
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	free(rl->users);
	free(rl);
}

static struct user_buckets *find(struct ratelimit *rl, int64_t user_id, uint64_t now)
{
	for (size_t i = 0; i < rl->n; i++)
		if (rl->users[i].user_id == user_id)
			return &rl->users[i];
	if (rl->n == rl->cap) {
		rl->cap = rl->cap ? rl->cap * 2 : 8;
		rl->users = xrealloc(rl->users, rl->cap * sizeof(*rl->users));
	}
	struct user_buckets *u = &rl->users[rl->n++];
	u->user_id = user_id;
	u->held = 0;
	for (int k = 0; k < RATE_KINDS; k++)
		u->b[k] = (struct bucket){ .tokens = (double)rl->per_min[k], .at_ms = now };
	return u;
}

bool ratelimit_take(struct ratelimit *rl, int64_t user_id, enum rate_kind k, uint64_t now_ms,
		    unsigned *ret_retry_after)
{
	double cap = (double)rl->per_min[k];
	if (cap <= 0)
		return true;   /* no limit */
	struct bucket *b = &find(rl, user_id, now_ms)->b[k];
	double per_ms = cap / 60000.0;
	b->tokens = fmin(cap, b->tokens + (double)(now_ms - b->at_ms) * per_ms);
	b->at_ms = now_ms;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return true;
	}
	double wait_s = (1.0 - b->tokens) / per_ms / 1000.0;
	*ret_retry_after = (unsigned)fmax(1.0, ceil(wait_s));
	return false;
}

bool ratelimit_hold(struct ratelimit *rl, int64_t user_id, int64_t max_user, int64_t max_all)
{
	struct user_buckets *u = find(rl, user_id, 0);
	if ((max_user > 0 && u->held >= max_user) || (max_all > 0 && rl->held >= max_all))
		return false;
	u->held++;
	rl->held++;
	return true;
}

void ratelimit_unhold(struct ratelimit *rl, int64_t user_id)
{
	struct user_buckets *u = find(rl, user_id, 0);
	if (u->held > 0) {
		u->held--;
		rl->held--;
	}
}
