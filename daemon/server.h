/* server — what `bhatti serve` holds while it runs: settings, store,
 * engine, the secrets key, rate limits, the sandboxes.
 *
 * Sits between serve.c (which builds it) and the handlers and core modules
 * (which get it through http_req.srv). One per process.
 */
#ifndef BHATTI_SERVER_H
#define BHATTI_SERVER_H

#include "age.h"
#include "ratelimit.h"
#include "settings.h"
#include "store.h"

struct sbx;
struct engine;
struct events;
struct thermal;
struct net;

struct server {
	struct settings cfg;
	struct store *store;
	struct engine *eng;
	struct age_identity age;
	struct ratelimit *rl;
	struct sbx *sandboxes;   /* list of every sandbox of every user */
	struct thermal *thermal; /* thermal.c: idle sandboxes cool down */
	struct events *events;   /* events.c: what happened, for GET /events */
	unsigned cold_wakes;     /* restores of wakes under way (thermal.max_concurrent_wakes) */
	struct net *net;         /* guest networking (net.h); NULL when off */
};

/* The accelerator the engine uses ("kvm" or "tcg"), for /health. */
const char *server_accel(const struct server *srv);

#endif
