/* client — the host side of the HTTP API (docs/api.md) for the CLI and the
 * TUI: where the daemon is and which key to use (the settings, resolved
 * once by the caller and passed in), the client object, dialing, and
 * synchronous calls (request and answer, an answer streamed to a
 * callback, an upload from an fd). The asynchronous calls on shared/loop
 * are in async.h, the shell sessions in shell.h.
 *
 * Sits between its callers (cli/, later tui/) and a TCP socket; HTTP
 * framing is httpc.c. Nothing here prints or exits: errors come back as
 * struct err. Plain http:// only: for a daemon on another machine, use an
 * SSH tunnel (ssh -L 8080:127.0.0.1:8080 host) or a private network.
 *
 * It is our own small client rather than libcurl on purpose: every
 * `bhatti` command is a fresh process, and mapping libcurl's ~30 shared
 * libraries cost more (≈ 8 ms on these machines) than the whole rest of a
 * `bhatti exec` (docs/architecture.md).
 */
#ifndef BHATTI_CLIENT_H
#define BHATTI_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

struct addrinfo;

#define CLIENT_DEFAULT_URL "http://127.0.0.1:8080"
#define CLIENT_CONNECT_TIMEOUT_MS 10000
#define CLIENT_MAX_ERROR_BODY (16u << 20)   /* a non-2xx body kept in memory */

/* ---- settings ---- */

struct client_settings {
	char *url;                /* no trailing slash */
	char *token;              /* "" when there is none */
	const char *url_from;     /* "flag", "env", "config" or "default" */
	int connect_timeout_ms;
	char *theme;              /* `bhatti tui`'s theme: BHATTI_THEME > theme: of the
				   * config; NULL when neither (the TUI's --theme is
				   * above both) */
	char *file_theme;         /* theme: of ~/.bhatti/config.yaml or NULL (what
				   * `bhatti setup` keeps when it rewrites the file) */
	char *ca;                 /* https: a CA file (BHATTI_CA, `ca:`), or NULL:
				   * the system's; the CLI's --ca replaces it */
};

/* Resolve the settings, highest first: the flags (may be NULL), the
 * environment (BHATTI_URL, BHATTI_TOKEN, BHATTI_THEME), ~/.bhatti/config.yaml
 * (url, token, theme), the default URL. A config file that exists but cannot be read
 * is skipped: then *warning says why (warning->code set); the rest still
 * resolve. Release with client_settings_release(). */
void client_settings_resolve(struct client_settings *s, const char *flag_url,
			     const char *flag_token, struct err *warning);
void client_settings_release(struct client_settings *s);
/* ~/.bhatti/config.yaml; caller frees. */
char *client_config_path(void);

/* ---- the client ---- */

struct client {
	char *url;                /* as configured, for messages */
	char *token;
	int connect_timeout_ms;
	char host[256];           /* the Host: value ("127.0.0.1:8080") */
	char prefix[256];         /* the URL's path ("" or "/bhatti") */
	char name[256];           /* host name or address to resolve */
	char port[8];
	bool tls;                 /* https:// */
	char *ca;                 /* its CA file, or NULL: the system's */
	struct err url_err;       /* set when the URL is unusable: every call fails so */
};

/* A client for these settings (copied). Never fails: a bad URL is
 * reported (EINVAL) by each call. */
struct client *client_new(const struct client_settings *s);
void client_free(struct client *c);

/* Is e an error of reaching the daemon (resolve, refused, timed out)
 * rather than of the answer? The CLI then hints at 'bhatti serve'. */
bool client_unreachable(const struct err *e);

/* ---- building blocks shared with async.c ---- */

/* The daemon's addresses (getaddrinfo: blocks only for a host name that is
 * not an address or in /etc/hosts). Free with freeaddrinfo(). */
int client_resolve(const struct client *c, struct addrinfo **ret, struct err *e);
/* Start a non-blocking connect to ai: 0 connected, -EINPROGRESS (wait for
 * the fd to be writable, then client_connect_result()), or -errno. */
int client_connect_start(const struct addrinfo *ai, int *ret_fd);
/* 0 or -errno: how the connect of fd ended. */
int client_connect_result(int fd);
/* The "cannot reach the daemon" error for code. */
int client_connect_error(const struct client *c, int code, struct err *e);
/* A request head with the Authorization of the client and the extra
 * lines. Scrub it (it holds the key) with client_scrub(). */
void client_head(const struct client *c, struct buf *out, const char *method, const char *path,
		 const char *extra, long long body_len);
void client_scrub(struct buf *b);

/* ---- synchronous calls (blocking; the CLI) ---- */

struct client_req {
	const char *method;
	const char *path;         /* after the URL's prefix, with its query */
	const void *body;         /* a body in memory (may be NULL) ... */
	size_t len;
	int body_fd;              /* ... or len bytes read from this fd (>= 0) */
	const char *ctype;        /* Content-Type of the body, or NULL */
	const char *accept;       /* Accept, or NULL */
	/* A 2xx body goes piece by piece to on_body (return false to stop
	 * reading: not an error); without it, and for any other status, the
	 * body is kept in the answer. */
	bool (*on_body)(const char *p, size_t n, void *arg);
	void *arg;
};

#define CLIENT_REQ_INIT { .body_fd = -1 }

struct client_resp {
	int status;
	struct buf body;
	char retry_after[16];
	bool existing;            /* X-Bhatti-Existing: true */
	int api;                  /* X-Bhatti-API (0: none) */
	char server_version[32];  /* X-Bhatti-Version ("": none) */
	/* where the time went (--timing), microseconds from the call's start:
	 * connected, request sent, answer's head read, answer read */
	uint64_t t_connect, t_sent, t_head, t_done;
};

/* One request on a fresh connection (Connection: close). 0 when an
 * answer came back (any status); else -errno, e says what (prefixed with
 * the method and path once connected) and ret is left empty. */
int client_call(struct client *c, const struct client_req *rq, struct client_resp *ret,
		struct err *e);
void client_resp_release(struct client_resp *r);

#endif
