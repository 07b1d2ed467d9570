/* client.c — settings, option parsing and HTTP requests for the CLI (see
 * client.h). One curl easy handle per process. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "conn.h"
#include "util.h"

struct cli CLI;

/* ---- options ---------------------------------------------------------------- */

int cli_parse(int argc, char **argv, const struct cli_opt *opts, size_t nopts,
	      char ***ret_pos, int *ret_dashdash)
{
	char **pos = xcalloc((size_t)argc + 1, sizeof(*pos));
	int np = 0, dd = -1;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (dd >= 0 || a[0] != '-' || strcmp(a, "-") == 0) {
			pos[np++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dd = np;
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			CLI.json = true;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			CLI.help = true;
			continue;
		}
		char *val = NULL, *eq = strchr(a, '=');
		size_t nl = eq ? (size_t)(eq - a) : strlen(a);
		const struct cli_opt *o = NULL;
		static char *url_v, *tok_v;
		static const struct cli_opt common[] = {
			{ "--url", &url_v, NULL, NULL },
			{ "--token", &tok_v, NULL, NULL },
		};
		for (size_t k = 0; k < nopts && !o; k++)
			if (strlen(opts[k].name) == nl && strncmp(opts[k].name, a, nl) == 0)
				o = &opts[k];
		for (size_t k = 0; k < ARRAY_SIZE(common) && !o; k++)
			if (strlen(common[k].name) == nl && strncmp(common[k].name, a, nl) == 0)
				o = &common[k];
		if (!o) {
			fprintf(stderr, "bhatti %s: unknown option '%s'\nhint: bhatti %s --help\n",
				argv[0], a, argv[0]);
			free(pos);
			return -1;
		}
		if (o->flag) {
			*o->flag = true;
			continue;
		}
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			fprintf(stderr, "bhatti %s: option '%s' needs a value\n", argv[0], a);
			free(pos);
			return -1;
		}
		if (o->list) {
			size_t n = strv_len(*o->list);
			*o->list = xrealloc(*o->list, (n + 2) * sizeof(char *));
			(*o->list)[n] = val;
			(*o->list)[n + 1] = NULL;
		} else {
			*o->value = val;
		}
		if (o->value == &url_v)
			CLI.flag_url = val;
		if (o->value == &tok_v)
			CLI.flag_token = val;
	}
	pos[np] = NULL;
	*ret_pos = pos;
	if (ret_dashdash)
		*ret_dashdash = dd;
	return 0;
}

/* ---- settings --------------------------------------------------------------- */

char *cli_config_path(void)
{
	const char *home = getenv("HOME");
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/.bhatti/config.yaml", home && home[0] ? home : ".");
	return buf_detach(&b, NULL);
}

struct file_cfg {
	char *url;
	char *token;
};

static const struct config_key file_keys[] = {
	CONFIG_KEY_STR("url", struct file_cfg, url),
	CONFIG_KEY_STR("token", struct file_cfg, token),
};

void cli_settings(void)
{
	struct file_cfg fc = { 0 };
	char *path = cli_config_path();
	struct err e = ERR_INIT;
	if (access(path, F_OK) == 0 &&
	    config_load_file(path, file_keys, ARRAY_SIZE(file_keys), &fc, &e) < 0)
		fprintf(stderr, "bhatti: warning: ignoring %s: %s\n", path, err_str(&e));
	free(path);
	const char *env_url = getenv("BHATTI_URL"), *env_tok = getenv("BHATTI_TOKEN");
	const char *url = CLI_DEFAULT_URL, *from = "default";
	/* flags > environment > ~/.bhatti/config.yaml > default: the
	 * environment is how one command (or a script) points elsewhere
	 * without touching the saved settings */
	if (CLI.flag_url)
		url = CLI.flag_url, from = "flag";
	else if (env_url && env_url[0])
		url = env_url, from = "env";
	else if (fc.url && fc.url[0])
		url = fc.url, from = "config";
	const char *tok = CLI.flag_token ? CLI.flag_token
			  : env_tok && env_tok[0] ? env_tok
			  : fc.token && fc.token[0] ? fc.token
			  : "";
	free(CLI.url);
	free(CLI.token);
	CLI.url = xstrdup(url);
	size_t n = strlen(CLI.url);
	while (n && CLI.url[n - 1] == '/')
		CLI.url[--n] = '\0';
	CLI.token = xstrdup(tok);
	CLI.url_from = (char *)from;
	config_release(file_keys, ARRAY_SIZE(file_keys), &fc);
}

/* ---- requests ---------------------------------------------------------------- */

void cli_resp_release(struct cli_resp *r)
{
	buf_release(&r->body);
}

struct sink {
	struct cli_resp *r;
	bool (*fn)(const char *p, size_t n, void *arg);
	void *arg;
};

static bool on_body(const char *p, size_t n, void *arg)
{
	struct sink *s = arg;
	if (s->fn && s->r->status >= 200 && s->r->status < 300)
		return s->fn(p, n, s->arg);
	if (s->r->body.len < (16u << 20))
		buf_add(&s->r->body, p, n);
	return true;
}

/* Send the body: from memory, or size bytes from up_fd. */
static int send_body(struct conn *c, const void *body, size_t len, int up_fd, size_t up_size,
		     struct err *e)
{
	if (up_fd < 0)
		return len ? conn_send(c, body, len, e) : 0;
	char tmp[65536];
	size_t left = up_size;
	while (left) {
		ssize_t n = read(up_fd, tmp, MIN(sizeof(tmp), left));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set(e, n < 0 ? errno : EIO, "reading the local file: %s",
				       n < 0 ? strerror(errno) : "it got shorter while being sent");
		if (conn_send(c, tmp, (size_t)n, e) < 0)
			return -1;
		left -= (size_t)n;
	}
	return 0;
}

/* One request on a fresh connection (Connection: close). */
static int perform(const char *method, const char *path, const void *body, size_t len,
		   int up_fd, size_t up_size, const char *ctype, const char *accept,
		   bool (*fn)(const char *, size_t, void *), void *arg, struct cli_resp *ret)
{
	if (!CLI.url)
		cli_settings();
	memset(ret, 0, sizeof(*ret));
	buf_init(&ret->body);
	struct err e = ERR_INIT;
	struct conn c;
	if (conn_open(&c, CLI.url, &e) < 0) {
		fprintf(stderr, "bhatti: %s\n", err_str(&e));
		if (e.code != EINVAL)
			fprintf(stderr, "hint: is 'bhatti serve' running? Set the URL with "
					"'bhatti setup', --url or BHATTI_URL\n");
		conn_close(&c);
		return -1;
	}
	struct buf h = BUF_INIT;
	if (CLI.token[0])
		buf_addf(&h, "Authorization: Bearer %s\r\n", CLI.token);
	if (ctype)
		buf_addf(&h, "Content-Type: %s\r\n", ctype);
	if (accept)
		buf_addf(&h, "Accept: %s\r\n", accept);
	buf_addf(&h, "Connection: close\r\n");
	bool has_body = up_fd >= 0 || body || strcmp(method, "PUT") == 0 ||
			strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0;
	long long blen = !has_body ? -1 : up_fd >= 0 ? (long long)up_size : (long long)len;
	int rc = conn_send_head(&c, method, path, h.data, blen, &e);
	memset(h.data, 0, h.len);
	buf_release(&h);
	/* a failed send may still have an answer (the daemon refused the
	 * body early): read it before reporting the send error */
	struct err send_e = ERR_INIT;
	if (rc == 0 && has_body)
		send_body(&c, body, len, up_fd, up_size, &send_e);
	struct conn_head hd;
	struct sink s = { .r = ret, .fn = fn, .arg = arg };
	if (rc == 0)
		rc = conn_read_head(&c, &hd, &e);
	if (rc == 0) {
		ret->status = hd.status;
		snprintf(ret->retry_after, sizeof(ret->retry_after), "%s", hd.retry_after);
		ret->existing = hd.existing;
		rc = conn_read_body(&c, &hd, strcmp(method, "HEAD") == 0, on_body, &s, &e);
		if (rc > 0)
			rc = 0;   /* the consumer stopped */
	}
	if (rc < 0) {
		fprintf(stderr, "bhatti: %s %s: %s\n", method, path,
			err_str(send_e.code ? &send_e : &e));
		rc = -1;
	}
	conn_close(&c);
	return rc;
}

int cli_call_raw(const char *method, const char *path, const void *body, size_t len,
		 const char *ctype, struct cli_resp *ret)
{
	return perform(method, path, body, len, -1, 0, ctype, NULL, NULL, NULL, ret);
}

int cli_call(const char *method, const char *path, const cJSON *body, struct cli_resp *ret)
{
	char *s = body ? cJSON_PrintUnformatted(body) : NULL;
	int rc = cli_call_raw(method, path, s, s ? strlen(s) : 0, s ? "application/json" : NULL, ret);
	free(s);
	return rc;
}

int cli_stream(const char *method, const char *path, const cJSON *body, const char *accept,
	       bool (*fn)(const char *p, size_t n, void *arg), void *arg, struct cli_resp *ret)
{
	char *s = body ? cJSON_PrintUnformatted(body) : NULL;
	int rc = perform(method, path, s, s ? strlen(s) : 0, -1, 0, s ? "application/json" : NULL,
			 accept, fn, arg, ret);
	free(s);
	return rc;
}

int cli_upload(const char *path, int fd, size_t size, struct cli_resp *ret)
{
	return perform("PUT", path, NULL, 0, fd, size, "application/octet-stream", NULL, NULL,
		       NULL, ret);
}

/* ---- errors and output ----------------------------------------------------------- */

int cli_error(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("bhatti: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int cli_fail(const struct cli_resp *r)
{
	cJSON *j = cJSON_ParseWithLength(r->body.data, r->body.len);
	cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
	if (cJSON_IsString(m))
		fprintf(stderr, "bhatti: %s\n", m->valuestring);
	else
		fprintf(stderr, "bhatti: the daemon answered %ld%s%.*s\n", r->status,
			r->body.len ? ": " : "", (int)MIN(r->body.len, 200), r->body.data);
	if (r->status == 401)
		fprintf(stderr, "hint: check your API key ('bhatti setup', --token or BHATTI_TOKEN)\n");
	else if (r->status == 429 && r->retry_after[0])
		fprintf(stderr, "hint: try again in %s s\n", r->retry_after);
	else if (r->status == 404 && m && strstr(m->valuestring, "no sandbox"))
		fprintf(stderr, "hint: 'bhatti list' shows your sandboxes\n");
	cJSON_Delete(j);
	return 1;
}

char *cli_escape(const char *s)
{
	struct buf b = BUF_INIT;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~/", *p))
			buf_addch(&b, (char)*p);
		else
			buf_addf(&b, "%%%02X", *p);
	}
	return buf_detach(&b, NULL);
}

cJSON *cli_json(const struct cli_resp *r)
{
	cJSON *j = cJSON_ParseWithLength(r->body.data, r->body.len);
	if (!j)
		fprintf(stderr, "bhatti: the daemon sent something that is not JSON\n");
	return j;
}

void cli_print_json(const cJSON *j)
{
	char *s = cJSON_Print(j);
	if (s)
		puts(s);
	free(s);
}
