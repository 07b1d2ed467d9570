/* cmd-list.c — `bhatti list` (your sandboxes, a table or --json;
 * --label filters, -o wide adds columns) and `bhatti inspect NAME` (one
 * sandbox; also how `edit` shows the result). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "httpc.h"

/* "3m ago" from an RFC 3339 time. */
static void ago(const char *when, char *out, size_t n)
{
	struct tm tm = { 0 };
	if (!strptime(when, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		snprintf(out, n, "%s", when);
		return;
	}
	long s = (long)(time(NULL) - timegm(&tm));
	if (s < 60)
		snprintf(out, n, "%lds ago", s < 0 ? 0 : s);
	else if (s < 3600)
		snprintf(out, n, "%ldm ago", s / 60);
	else if (s < 86400)
		snprintf(out, n, "%ldh ago", s / 3600);
	else
		snprintf(out, n, "%ldd ago", s / 86400);
}

/* "k=v,k2=v2" of a sandbox's labels ("-" for none). */
static void labels_text(const cJSON *sb, struct buf *out)
{
	const cJSON *l;
	cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(sb, "labels"))
		if (cJSON_IsString(l))
			buf_addf(out, "%s%s=%s", out->len ? "," : "", l->string, l->valuestring);
	if (!out->len)
		buf_adds(out, "-");
}

/* "2m13s" */
static void span(long long ms, char *out, size_t n)
{
	long long s = ms / 1000;
	if (s < 60)
		snprintf(out, n, "%lld.%llds", s, (ms % 1000) / 100);
	else if (s < 3600)
		snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(out, n, "%lldh%02lldm", s / 3600, s / 60 % 60);
}

/* inspect's thermal part: the state, activity, timers, wakes. */
static void print_thermal(cJSON *j)
{
	if (!cJSON_GetObjectItem(j, "warm_after")) /* (not a whole inspect answer) */
		return;
	char idle[32], when[32] = "-";
	span((long long)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "idle_ms")), idle, sizeof(idle));
	double last = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "last_activity"));
	if (last > 0) {
		time_t t = (time_t)(last / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	printf("%-10s %s%s\n", "thermal", cli_jstr(j, "thermal"),
	       cJSON_IsTrue(cJSON_GetObjectItem(j, "keep_hot")) ? " (keep_hot)" : "");
	printf("%-10s %s (idle for %s)\n", "activity", when, idle);
	printf("%-10s warm after %s, cold after %s\n", "timers", cli_jstr(j, "warm_after"),
	       cli_jstr(j, "cold_after"));
	printf("%-10s %d (last took %d ms)\n", "wakes", cli_jint(j, "wake_count"),
	       cli_jint(j, "last_wake_ms"));
	const cJSON *a = cJSON_GetObjectItem(j, "activity");
	const char *busy = a ? cli_jstr(a, "busy") : "";
	if (busy[0])
		printf("%-10s %s\n", "busy", busy);
}

/* "egress     deny (hosts: a, b; cidrs: c)" */
static void print_egress(const cJSON *eg)
{
	if (!cJSON_IsObject(eg))
		return;
	printf("%-10s %s", "egress", cli_jstr(eg, "policy"));
	const char *names[] = { "allow_hosts", "allow_cidrs" }, *label[] = { "hosts", "cidrs" };
	const char *open = " (";
	for (size_t i = 0; i < 2; i++) {
		const cJSON *v, *arr = cJSON_GetObjectItemCaseSensitive(eg, names[i]);
		const char *sep = ": ";
		if (cJSON_GetArraySize(arr) == 0)
			continue;
		printf("%s%s", open, label[i]);
		cJSON_ArrayForEach(v, arr)
		{
			printf("%s%s", sep, cJSON_IsString(v) ? v->valuestring : "?");
			sep = ", ";
		}
		open = "; ";
	}
	printf("%s\n", strcmp(open, "; ") == 0 ? ")" : "");
}

static int list(struct cli *c)
{
	const char *o = args_get(&c->args, "-o");
	if (o && strcmp(o, "wide") != 0)
		return cli_usage_error(c, "-o wants 'wide', not '%s'", o);
	bool wide = o != NULL;
	struct buf path = BUF_INIT;
	buf_adds(&path, "/sandboxes");
	char *const *labels = args_list(&c->args, "--label");
	for (char *const *l = labels; l && *l; l++) {
		char *esc = httpc_escape(*l);
		buf_addf(&path, "%clabel=%s", l == labels ? '?' : '&', esc);
		free(esc);
	}
	cJSON *j;
	int rc = cli_call_json(c, "GET", path.data, &j);
	buf_release(&path);
	if (rc)
		return rc;
	if (c->json)
		cli_print_json(j);
	else if (cJSON_GetArraySize(j) == 0)
		puts(labels ? "no sandbox has those labels"
			    : "no sandboxes yet: bhatti create --name NAME");
	else {
		printf("%-20s %-12s %-9s %-7s %4s %7s %-8s %-15s %-9s%s\n", "NAME", "ID", "STATE",
		       "THERMAL", "CPUS", "MEMORY", "IMAGE", "IP", "CREATED", wide ? " LABELS" : "");
		cJSON *s;
		cJSON_ArrayForEach(s, j)
		{
			char when[32];
			struct buf lt = BUF_INIT;
			ago(cli_jstr(s, "created_at"), when, sizeof(when));
			if (wide)
				labels_text(s, &lt);
			const char *ip = cli_jstr(s, "ip");
			printf("%-20s %-12s %-9s %-7s %4d %5dMB %-8s %-15s %-9s%s%s\n",
			       cli_jstr(s, "name"), cli_jstr(s, "id"), cli_jstr(s, "state"),
			       cli_jstr(s, "thermal"), cli_jint(s, "cpus"), cli_jint(s, "memory_mb"),
			       cli_jstr(s, "image"), ip[0] ? ip : "-", when, wide ? " " : "",
			       wide ? lt.data : "");
			buf_release(&lt);
		}
	}
	cJSON_Delete(j);
	return 0;
}

static int print_sandbox(struct cli *c, const struct client_resp *r)
{
	cJSON *j = cli_json(r);
	if (!j)
		return 1;
	if (c->json) {
		cli_print_json(j);
	} else {
		static const char *const keys[] = { "name", "id", "state", "image", "origin",
						    "created_at", "error", "ip", "mac" };
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
			if (cli_jstr(j, keys[i])[0])
				printf("%-10s %s\n", keys[i], cli_jstr(j, keys[i]));
		printf("%-10s %d\n%-10s %d MB\n", "cpus", cli_jint(j, "cpus"), "memory",
		       cli_jint(j, "memory_mb"));
		struct buf lt = BUF_INIT;
		labels_text(j, &lt);
		printf("%-10s %s\n", "labels", lt.data);
		buf_release(&lt);
		print_thermal(j);
		print_egress(cJSON_GetObjectItemCaseSensitive(j, "egress"));
	}
	cJSON_Delete(j);
	return 0;
}

int cli_sandbox_call(struct cli *c, const char *method, const cJSON *body)
{
	struct buf path = BUF_INIT;
	struct client_resp r;
	buf_addf(&path, "/sandboxes/%s", c->esc[0]);
	int rc = 0;
	if (cli_call(c, method, path.data, body, &r) < 0)
		rc = 1;
	else if (r.status != 200)
		rc = cli_fail(&r);
	else
		rc = print_sandbox(c, &r);
	client_resp_release(&r);
	buf_release(&path);
	return rc;
}

static int inspect(struct cli *c)
{
	return cli_sandbox_call(c, "GET", NULL);
}

static const struct opt list_opts[] = {
	{ "--label", NULL, OPT_LIST }, { "-o", NULL, OPT_VALUE }, OPT_END,
};

const struct cli_cmd cmd_list_entry = {
	.name = "list",
	.alias = "ls",
	.summary = "list your sandboxes",
	.usage = "[--label K=V]... [-o wide] [--json]",
	.help = "--label K=V (or K: any value) shows only the sandboxes with all those\n"
		"labels; -o wide adds a LABELS column.",
	.opts = list_opts,
	.run = list,
};

const struct cli_cmd cmd_inspect_entry = {
	.name = "inspect",
	.alias = "info",
	.summary = "show one sandbox",
	.usage = "NAME [--json]",
	.min_args = 1,
	.max_args = 1,
	.flags = CLI_NAME,
	.run = inspect,
};
