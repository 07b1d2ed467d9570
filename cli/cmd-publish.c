/* cmd-publish.c — `bhatti publish NAME -p PORT [-a ALIAS]` (prints the
 * public URL), `bhatti unpublish NAME -p PORT`, `bhatti ports NAME`
 * (the guest's listening ports and which are published): POST/DELETE
 * /sandboxes/:id/publish[/:port], GET /sandboxes/:id/ports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "num.h"

static int port_of(struct cli *c, uint32_t *ret)
{
	const char *p = args_get(&c->args, "--port");
	struct err e = ERR_INIT;
	if (!p)
		return cli_usage_error(c, "which port? give -p PORT");
	if (num_parse_u32(p, 1, 65535, ret, "--port", &e) < 0)
		return cli_usage_error(c, "%s", err_str(&e));
	return 0;
}

static int publish(struct cli *c)
{
	uint32_t port;
	int rc = port_of(c, &port);
	if (rc)
		return rc;
	const char *alias = args_get(&c->args, "--alias");
	cJSON *b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "port", port);
	if (alias)
		cJSON_AddStringToObject(b, "alias", alias);
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/publish", c->esc[0]);
	struct client_resp r;
	if (cli_call(c, "POST", path.data, b, &r) < 0) {
		rc = 1;
	} else {
		cJSON *j = NULL;
		if (r.status != 200 && r.status != 201)
			rc = cli_fail(&r);
		else if (!(j = cli_json(&r)))
			rc = 1;
		else if (c->json)
			cli_print_json(j);
		else
			printf("%s\n", cli_jstr(j, "url"));
		cJSON_Delete(j);
		client_resp_release(&r);
	}
	buf_release(&path);
	cJSON_Delete(b);
	return rc;
}

static int unpublish(struct cli *c)
{
	uint32_t port;
	int rc = port_of(c, &port);
	if (rc)
		return rc;
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/publish/%u", c->esc[0], port);
	struct client_resp r;
	if (cli_call(c, "DELETE", path.data, NULL, &r) < 0) {
		rc = 1;
	} else {
		if (r.status != 204)
			rc = cli_fail(&r);
		client_resp_release(&r);
	}
	buf_release(&path);
	return rc;
}

static int ports(struct cli *c)
{
	struct buf path = BUF_INIT;
	cJSON *j;
	buf_addf(&path, "/sandboxes/%s/ports", c->esc[0]);
	int rc = cli_call_json(c, "GET", path.data, &j);
	buf_release(&path);
	if (rc)
		return rc;
	if (c->json) {
		cli_print_json(j);
	} else {
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "ports"), *p;
		printf("%-7s %-10s %s\n", "PORT", "LISTENING", "URL");
		cJSON_ArrayForEach(p, list) {
			const cJSON *l = cJSON_GetObjectItemCaseSensitive(p, "listening");
			const char *url = cli_jstr(p, "url");
			printf("%-7d %-10s %s\n", cli_jint(p, "port"),
			       cJSON_IsTrue(l) ? "yes" : "no", url[0] ? url : "-");
		}
	}
	cJSON_Delete(j);
	return 0;
}

static const struct opt publish_opts[] = {
	{ "--port", "-p", OPT_VALUE }, { "--alias", "-a", OPT_VALUE }, OPT_END,
};

static const struct opt port_opts[] = {
	{ "--port", "-p", OPT_VALUE }, OPT_END,
};

const struct cli_cmd cmd_publish_entry = {
	.name = "publish",
	.summary = "publish a port of a sandbox at a public URL (no key needed)",
	.usage = "NAME -p|--port PORT [-a|--alias ALIAS] [--json]",
	.help = "Prints the URL. ALIAS: 1 to 63 lower-case letters, digits or '-';\n"
		"without one, NAME-<6 hex> is made. Publishing a published port prints its URL.",
	.opts = publish_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CLI_NAME,
	.run = publish,
};

const struct cli_cmd cmd_unpublish_entry = {
	.name = "unpublish",
	.summary = "stop publishing a port (its URL answers 404 at once)",
	.usage = "NAME -p|--port PORT [--json]",
	.opts = port_opts,
	.min_args = 1,
	.max_args = 1,
	.flags = CLI_NAME,
	.run = unpublish,
};

const struct cli_cmd cmd_ports_entry = {
	.name = "ports",
	.summary = "list a sandbox's listening TCP ports and their URLs",
	.usage = "NAME [--json]",
	.min_args = 1,
	.max_args = 1,
	.flags = CLI_NAME,
	.run = ports,
};
