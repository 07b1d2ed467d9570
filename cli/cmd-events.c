/* cmd-events.c — `bhatti events [--follow] [--since SEQ] [--json] [NAME]`:
 * what happened to your sandboxes (GET /events as ndjson): the events
 * kept (7 days) and, with --follow, new ones as they come. One line per
 * event: time, sandbox, type and what it says; --json prints the events
 * as the daemon sends them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "num.h"

struct events_out {
	struct buf line;
	bool json;
};

/* "from=hot to=warm wake_ms=12" from the fields beside the common ones. */
static void details(const cJSON *o, struct buf *b)
{
	static const char *const common[] = { "seq", "time", "type", "sandbox", "sandbox_id" };
	const cJSON *f;
	cJSON_ArrayForEach(f, o)
	{
		bool skip = false;
		for (size_t i = 0; i < ARRAY_SIZE(common) && !skip; i++)
			skip = strcmp(f->string, common[i]) == 0;
		if (skip)
			continue;
		buf_addf(b, " %s=", f->string);
		if (cJSON_IsString(f)) {
			buf_adds(b, f->valuestring);
		} else {
			char *s = cJSON_PrintUnformatted(f);
			buf_adds(b, s);
			free(s);
		}
	}
}

static void print_event(const char *line, bool json)
{
	if (json) {
		puts(line);
		return;
	}
	cJSON *o = cJSON_Parse(line);
	if (!o)
		return;
	double ms = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "time"));
	char when[32] = "";
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms > 0 && localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	struct buf b = BUF_INIT;
	details(o, &b);
	printf("%s.%03d %-16s %-18s%s\n", when, (int)((long long)ms % 1000), cli_jstr(o, "sandbox"),
	       cli_jstr(o, "type"), b.len ? b.data : "");
	fflush(stdout);
	buf_release(&b);
	cJSON_Delete(o);
}

static bool on_chunk(const char *p, size_t n, void *arg)
{
	struct events_out *x = arg;
	buf_add(&x->line, p, n);
	char *nl;
	while (x->line.len && (nl = memchr(x->line.data, '\n', x->line.len))) {
		*nl = '\0';
		if (strcmp(x->line.data, "{\"type\":\"resync\"}") == 0)
			fprintf(stderr, "bhatti: events were missed (too slow); run again with --since\n");
		else
			print_event(x->line.data, x->json);
		size_t used = (size_t)(nl - x->line.data) + 1;
		memmove(x->line.data, nl + 1, x->line.len - used);
		buf_setlen(&x->line, x->line.len - used);
	}
	return true;
}

static int run(struct cli *c)
{
	const struct args *a = &c->args;
	const char *since = args_get(a, "--since");
	bool follow = args_has(a, "--follow");
	int64_t seq = 0;
	struct err e = ERR_INIT;
	if (since && num_parse_i64(since, 0, INT64_MAX, &seq, "--since", &e) < 0)
		return cli_usage_error(c, "%s", err_str(&e));
	struct buf path = BUF_INIT;
	buf_addf(&path, "/events?");
	if (since || !follow)
		buf_addf(&path, "since=%lld&", (long long)seq);
	if (!follow)
		buf_adds(&path, "follow=false&");
	if (a->npos)
		buf_addf(&path, "sandbox=%s", c->esc[0]);
	struct events_out x = { .json = c->json };
	buf_init(&x.line);
	struct client_resp r;
	int rc = cli_stream(c, "GET", path.data, NULL, "application/x-ndjson", on_chunk, &x, &r);
	buf_release(&path);
	buf_release(&x.line);
	if (rc < 0)
		return 1;
	rc = r.status == 200 ? 0 : cli_fail(&r);
	client_resp_release(&r);
	return rc;
}

static const struct opt opts[] = {
	{ "--follow", "-f", OPT_FLAG },
	{ "--since", NULL, OPT_VALUE },
	OPT_END,
};

const struct cli_cmd cmd_events_entry = {
	.name = "events",
	.summary = "what happened to your sandboxes (--follow: as it happens)",
	.usage = "[NAME] [-f|--follow] [--since SEQ] [--json]",
	.help = "without --follow: the events kept (7 days), or those after --since SEQ",
	.opts = opts,
	.max_args = 1,
	.flags = CLI_NAME,
	.run = run,
};
