/* thermal.c — the thermal manager (see thermal.h for the states, and
 * docs/thermal.md for what counts as activity).
 *
 * Sits between the event loop (one timer, every second or check_every if
 * shorter) and the sandbox core: sbx_cool() pauses or cold-stops, and the
 * wake is the core's (sbx_wake). It talks to a hot sandbox's agent with
 * one request, LOAD, at most once per check_every, and only while nothing
 * the host sees (an API request within warm_after, an open guest stream:
 * exec, shell, file) already keeps the sandbox hot. It touches nothing but
 * the sandboxes' activity times and its own per-sandbox state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent-client.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "sandbox.h"
#include "server.h"
#include "thermal.h"

#define TICK_MS 1000u
/* A LOAD not answered in this long is a miss; after MAX_MISSES in a row
 * the guest's word is no longer waited for (a hung agent must not keep a
 * sandbox hot forever, nor a slow one be paused on its first miss). */
#define PROBE_TIMEOUT_MS 5000u
#define MAX_MISSES 3

struct thermal {
	struct server *srv;
	struct timer tick;
};

struct thermal_sbx {
	struct sbx *sb;
	struct ac_stream *probe;  /* a LOAD in flight */
	uint64_t probe_sent;      /* monotonic ms */
	uint64_t next_probe;
	unsigned misses;
	bool unsupported;         /* an agent without LOAD (an older lohar) */
	bool have_cpu;            /* a first answer since it was last hot ... */
	bool delta;               /* ... and a later one: cpu_percent is known */
	uint64_t cpu_ms, cpu_at;  /* that answer */
	uint64_t answered;        /* monotonic ms of the last answer (0: none) */
	struct thermal_info info;
};

static struct thermal_sbx *th_of(struct sbx *sb)
{
	if (!sb->th) {
		sb->th = xcalloc(1, sizeof(*sb->th));
		sb->th->sb = sb;
	}
	return sb->th;
}

static void drop_probe(struct thermal_sbx *th)
{
	if (th->probe)
		ac_stream_orphan(th->probe);
	th->probe = NULL;
}

void thermal_sbx_free(struct sbx *sb)
{
	if (!sb->th)
		return;
	drop_probe(sb->th);
	free(sb->th);
	sb->th = NULL;
}

void thermal_info(const struct sbx *sb, struct thermal_info *ret)
{
	*ret = sb->th ? sb->th->info : (struct thermal_info){ 0 };
}

/* ---- the guest's answer ----------------------------------------------------------- */

static void on_load(struct thermal_sbx *th, const struct proto_load_info *li)
{
	const struct settings *cfg = &th->sb->srv->cfg;
	uint64_t now = now_ms();
	struct thermal_info *in = &th->info;
	const char *busy = NULL;
	in->known = true;
	in->cpu_percent = 0;
	if (th->have_cpu && now > th->cpu_at && li->cpu_ms >= th->cpu_ms) {
		uint64_t used = li->cpu_ms - th->cpu_ms, span = now - th->cpu_at;
		in->cpu_percent = (uint32_t)(used * 100 / span);
		if (used > 0 && used * 100 >= (uint64_t)cfg->thermal.cpu_busy_percent * span)
			busy = "cpu";
	}
	th->delta = th->have_cpu;
	th->have_cpu = true;
	th->cpu_ms = li->cpu_ms;
	th->cpu_at = now;
	in->tcp_out = li->tcp_out;
	in->holds = li->holds;
	in->hold_ms = li->hold_ms;
	in->forwards = li->forwards;
	if (li->tcp_out && cfg->thermal.outbound_tcp)
		busy = "tcp";
	if (li->forwards)
		busy = "forward";
	if (li->holds || li->hold_ms)
		busy = "hold";
	in->busy = busy;
	th->answered = now;
	th->misses = 0;
	if (busy)
		sbx_touch(th->sb);
}

static void probe_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct thermal_sbx *th = arg;
	if (f->type == PROTO_ERROR) {
		/* an agent that does not know LOAD: the host's signals decide */
		th->unsupported = true;
		return;
	}
	struct proto_load_info li;
	if (f->type != PROTO_LOAD_INFO || proto_decode(f, &li, NULL) < 0)
		return;
	on_load(th, &li);
	proto_msg_release(PROTO_LOAD_INFO, &li);
}

static void probe_closed(struct ac_stream *s UNUSED, const struct err *e UNUSED, void *arg)
{
	struct thermal_sbx *th = arg;
	th->probe = NULL;
}

static const struct ac_stream_cb probe_cb = { .frame = probe_frame, .closed = probe_closed };

static void ask_guest(struct thermal_sbx *th, uint64_t now)
{
	if (th->probe) {
		if (now - th->probe_sent < PROBE_TIMEOUT_MS)
			return;
		drop_probe(th);
		th->misses++;
		log_debug("sandbox '%s': the guest did not answer LOAD (%u)", th->sb->row.id,
			  th->misses);
	}
	if (th->unsupported || now < th->next_probe)
		return;
	struct ac *ac = sbx_agent(th->sb);
	struct err e = ERR_INIT;
	if (!ac)
		return;
	th->probe = ac_open(ac, PROTO_LOAD, NULL, &probe_cb, th, &e);
	th->probe_sent = now;
	th->next_probe = now + th->sb->srv->cfg.thermal.check_every;
	if (!th->probe)
		th->misses++;
}

/* Has the guest said, recently enough, that nothing in it is busy? (Or is
 * its word not to be had: an older agent, or one that stopped answering.) */
static bool guest_quiet(const struct thermal_sbx *th, uint64_t now)
{
	if (th->unsupported || th->misses >= MAX_MISSES)
		return true;
	uint64_t fresh = 2 * th->sb->srv->cfg.thermal.check_every + TICK_MS;
	return th->delta && th->answered && now - th->answered <= fresh && !th->info.busy;
}

/* ---- the timer ---------------------------------------------------------------------- */

static void cooled(struct sbx *sb, int rc, const struct err *e, void *arg UNUSED)
{
	if (rc < 0)
		log_warn("sandbox '%s': cooling down failed: %s", sb->row.id, err_str(e));
}

static void cool(struct sbx *sb, bool cold)
{
	struct err e = ERR_INIT;
	thermal_sbx_free(sb);   /* a new baseline when it is hot again */
	log_info("sandbox '%s': idle: going %s", sb->row.id, cold ? "cold" : "warm");
	if (sbx_cool(sb, cold, cooled, NULL, &e) < 0)
		log_warn("sandbox '%s': %s", sb->row.id, err_str(&e));
}

static void woke(struct sbx *sb, int rc, const struct err *e, void *arg UNUSED)
{
	if (rc < 0)
		log_warn("sandbox '%s': keep_hot: cannot wake it: %s", sb->row.id, err_str(e));
}

/* A hot sandbox idle (as the host sees it) for `limit`: ask its guest
 * during the last two checks before the limit (a first answer is the CPU
 * baseline, the next one the use since), and cool it when the guest too
 * says nothing is busy. */
static void check_hot(struct sbx *sb, uint64_t now)
{
	const struct settings *cfg = &sb->srv->cfg;
	uint64_t warm_after = cfg->thermal.warm_after, cold_after = cfg->thermal.cold_after;
	uint64_t every = cfg->thermal.check_every;
	if (sb->guest_ops) {
		sbx_touch(sb);
		return;
	}
	bool to_cold = warm_after == CONFIG_NEVER;
	uint64_t limit = to_cold ? cold_after : warm_after;
	if (limit == CONFIG_NEVER)
		return;
	uint64_t idle = sbx_idle_ms(sb);
	if (idle + 2 * every + TICK_MS < limit)
		return;
	struct thermal_sbx *th = th_of(sb);
	if (th->cpu_at && now - th->cpu_at > 3 * every + TICK_MS)
		th->have_cpu = th->delta = false;   /* a stale baseline */
	ask_guest(th, now);
	if (idle >= limit && guest_quiet(th, now))
		cool(sb, to_cold);
}

static void check_one(struct sbx *sb, uint64_t now)
{
	if (sb->busy || sb->destroying || !sb->vm)
		return;
	switch (vm_state(sb->vm)) {
	case VM_RUNNING:
		if (!sb->row.keep_hot)
			check_hot(sb, now);
		return;
	case VM_PAUSED: {
		if (sb->row.keep_hot) {
			if (!sb->row.thermal.wake_error)   /* (retried by start --force) */
				sbx_wake(sb, woke, NULL);
			return;
		}
		uint64_t cold_after = sb->srv->cfg.thermal.cold_after;
		int64_t since = sb->row.thermal.warm_since;
		if (cold_after != CONFIG_NEVER && since && !sb->row.thermal.wake_error &&
		    wall_ms() - since >= (int64_t)cold_after)
			cool(sb, true);
		return;
	}
	default:
		return;
	}
}

void thermal_check(struct server *srv)
{
	uint64_t now = now_ms();
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next)
		check_one(sb, now);
}

static void on_tick(struct timer *t)
{
	struct thermal *th = t->data;
	thermal_check(th->srv);
	uint64_t every = th->srv->cfg.thermal.check_every;
	timer_arm(&th->tick, every < TICK_MS ? every : TICK_MS);
}

int thermal_new(struct server *srv, struct thermal **ret, struct err *e UNUSED)
{
	struct thermal *t = xcalloc(1, sizeof(*t));
	t->srv = srv;
	timer_init(&t->tick, on_tick, t);
	timer_arm(&t->tick, TICK_MS);
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next) {
		if (!sb->row.keep_hot || sb->row.stopped || sb->destroying || !sb->vm)
			continue;
		enum vm_state s = vm_state(sb->vm);
		if (s != VM_PAUSED && s != VM_STOPPED)
			continue;
		log_info("sandbox '%s': keep_hot: waking it", sb->row.id);
		sbx_wake(sb, woke, NULL);
	}
	*ret = t;
	return 0;
}

void thermal_free(struct thermal *t)
{
	if (!t)
		return;
	timer_cancel(&t->tick);
	for (struct sbx *sb = t->srv->sandboxes; sb; sb = sb->next)
		thermal_sbx_free(sb);
	free(t);
}
