/* thermal — the thermal manager: idle sandboxes cool down by themselves.
 *
 *          idle ≥ warm_after                 warm for cold_after
 *   hot ─────────────────────────► warm ─────────────────────────► cold
 *    ▲  (vCPUs paused, memory kept)   (snapshot on disk, QEMU gone)  │
 *    └────────────── any request that needs the guest (sbx_wake) ────┘
 *
 * Sits between the event loop (one timer) and the sandbox core
 * (sandbox.h: sbx_cool, sbx_wake) + each hot sandbox's agent, which it
 * asks every thermal.check_every for what the host cannot see (LOAD:
 * the CPU time of the guest's user processes, their outbound TCP
 * connections, `lohar hold`, port forwards). What counts as activity,
 * the timers and the wake path are in docs/thermal.md.
 *
 * Ownership: thermal_new()/thermal_free() (serve.c, after sbx_init); the
 * per-sandbox state (struct thermal_sbx) is made on first use and freed
 * with its sandbox (thermal_sbx_free, from sandbox.c).
 */
#ifndef BHATTI_THERMAL_H
#define BHATTI_THERMAL_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct server;
struct sbx;
struct thermal;

/* Start the timer; wake the keep_hot sandboxes that are not hot (after a
 * restart) unless the user stopped them. */
int thermal_new(struct server *srv, struct thermal **ret, struct err *e);
void thermal_free(struct thermal *t);
/* One look at every sandbox now (the timer's work; tests). */
void thermal_check(struct server *srv);

void thermal_sbx_free(struct sbx *sb);

/* What inspect shows of a sandbox's guest (the last LOAD answer). */
struct thermal_info {
	bool known;               /* the guest has answered since it was last hot */
	uint32_t cpu_percent;     /* its user processes, over the last check */
	uint32_t tcp_out, holds, forwards;
	uint64_t hold_ms;
	const char *busy;         /* what kept it hot at the last check, or NULL */
};
void thermal_info(const struct sbx *sb, struct thermal_info *ret);

#endif
