/* client — the CLI's side of the HTTP API (docs/api.md): where the daemon
 * is and which key to use, requests (one connection each, conn.c), errors
 * as one line.
 *
 * Sits between the command files (cli/cmd-*.c) and conn.c. Settings
 * precedence: flag (--url, --token) > environment (BHATTI_URL,
 * BHATTI_TOKEN) > ~/.bhatti/config.yaml (url, token) > http://127.0.0.1:8080.
 *
 * Also the small option parser every command uses.
 */
#ifndef BHATTI_CLI_CLIENT_H
#define BHATTI_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <cjson/cJSON.h>

#include "buf.h"

#define CLI_DEFAULT_URL "http://127.0.0.1:8080"

/* ---- options ---- */

struct cli_opt {
	const char *name;      /* "--cpus" */
	char **value;          /* takes a value (NULL for a flag) */
	bool *flag;
	char ***list;          /* repeatable value: appended (NULL-terminated) */
};

/* Parse argv[1..]: options from the table (plus --url, --token, --json,
 * --help/-h recorded in the client settings), positional arguments into
 * ret_pos (NULL-terminated, pointers into argv). After "--" everything is
 * positional and *ret_dashdash is its index in ret_pos (or -1). Prints a
 * message and returns -1 on an unknown option or a missing value. */
int cli_parse(int argc, char **argv, const struct cli_opt *opts, size_t nopts,
	      char ***ret_pos, int *ret_dashdash);

/* ---- the client ---- */

struct cli {
	char *url;             /* no trailing slash */
	char *token;
	char *url_from;        /* "flag", "config", "env", "default" */
	bool json;             /* --json */
	bool help;
	char *flag_url, *flag_token;
};

extern struct cli CLI;

/* Resolve url and token (call after cli_parse). */
void cli_settings(void);
/* Path of ~/.bhatti/config.yaml (caller frees). */
char *cli_config_path(void);

struct cli_resp {
	long status;
	struct buf body;
	char retry_after[16];
	bool existing;         /* X-Bhatti-Existing: true */
};
void cli_resp_release(struct cli_resp *r);

/* A request with an optional JSON body. Returns 0 when an HTTP answer came
 * back (any status), -1 (message printed) when the daemon is unreachable. */
int cli_call(const char *method, const char *path, const cJSON *body, struct cli_resp *ret);
/* The same with a raw body (may be NULL) and its content type. */
int cli_call_raw(const char *method, const char *path, const void *body, size_t len,
		 const char *ctype, struct cli_resp *ret);

/* Streamed GET/POST: each chunk of the response body goes to fn (return
 * false to stop). A non-2xx answer is collected in ret->body instead. */
int cli_stream(const char *method, const char *path, const cJSON *body, const char *accept,
	       bool (*fn)(const char *p, size_t n, void *arg), void *arg, struct cli_resp *ret);
/* PUT a file's contents streamed from fd (size known). */
int cli_upload(const char *path, int fd, size_t size, struct cli_resp *ret);

/* Print the API error of r ("bhatti: message" + a hint) and return the
 * exit code (1). */
int cli_fail(const struct cli_resp *r);
/* "bhatti: message" and exit code; usage errors return 2. */
int cli_error(int code, const char *fmt, ...) PRINTF(2, 3);

/* URL-encode s for a query value; caller frees. */
char *cli_escape(const char *s);
/* Parse r's body as JSON (prints and returns NULL when it is not). */
cJSON *cli_json(const struct cli_resp *r);
/* Print a JSON value as the --json output. */
void cli_print_json(const cJSON *j);

#endif
