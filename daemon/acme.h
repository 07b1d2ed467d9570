/* acme — certificates from an ACME CA (Let's Encrypt, or Debian's pebble
 * in the tests), obtained and renewed by the daemon itself: one
 * certificate per published alias's host `<alias>.<domain>` and per name
 * of tls.acme.names, served by SNI (acme_sni) on the public proxy and the
 * API, reloaded when (re)issued, without a restart.
 *
 * Sits between the settings (tls.acme.*), the store's published aliases
 * (read, never written), Debian's `uacme` (a child process, one at a
 * time, off the event loop: its output is read on the loop and logged)
 * and the proxy's TLS (proxy.c asks acme_sni for a name's certificate).
 * Touches data_dir/acme/ (uacme's account and certificates in uacme/,
 * the hook it runs, the http-01 answers the proxy serves from http-01/)
 * and nothing else.
 *
 * Each name:
 *
 *   NONE ──due──► RUNNING ──uacme 0──► VALID ──within renew_before──► RUNNING
 *    ▲               │                   ▲                              │
 *    └─ retry at ────┘ uacme failed      └── retry at (backoff) ◄───────┘ failed
 *       (backoff: 15 s, doubling, at most 6 h; the error is kept)
 *
 *   A run is `uacme new EMAIL` (the account: created once, looked up
 *   afterwards) then `uacme -f issue NAME`, the http-01 answers put into
 *   data_dir/acme/http-01/ by the hook. A name no longer wanted (its port
 *   unpublished, its sandbox destroyed) is dropped at the next look: not
 *   served, not renewed; its files stay (a republish of the alias serves
 *   them again at once).
 */
#ifndef BHATTI_ACME_H
#define BHATTI_ACME_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct server;
struct cJSON;

#define ACME_RETRY_FIRST_MS 15000ull
#define ACME_RETRY_MAX_MS (6ull * 3600 * 1000)
#define ACME_RUN_TIMEOUT_MS (10ull * 60 * 1000)   /* one uacme run */
#define ACME_LOOK_MAX_MS (12ull * 3600 * 1000)     /* the longest between looks */
/* The CA bundle Debian's libcurl (uacme's) reads; tls.acme.ca is bound
 * over it in uacme's own mount namespace. */
#define ACME_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

/* Start when tls.acme.email is set (else nothing, 0): load the
 * certificates already in data_dir/acme/uacme/ and get the missing ones
 * in the background. */
int acme_start(struct server *srv, struct err *e);
/* Kill a uacme still running (by its pid) and free everything. */
void acme_stop(void);
/* The published aliases changed: look again at once (a new alias's
 * certificate is asked for now). */
void acme_kick(void);

/* The SNI callback for the proxy's and the API's SSL_CTX: switch to the
 * certificate of the name the client asked for, when there is one; else
 * the context's own (tls.cert) when arg is non-NULL, else fail the
 * handshake with unrecognized_name. */
int acme_sni(SSL *ssl, int *al, void *arg);

/* A context serving cert (a PEM chain) and key: TLS 1.2 and up, HTTP/1.1
 * (cert NULL: without a certificate, for SNI to choose one). */
int acme_tls_ctx(const char *cert, const char *key, SSL_CTX **ret, struct err *e);

/* The certificate state of host as JSON ({"name","state":"valid"|"pending"
 * |"failed","not_after","error","next_try_in_s"}), NULL when ACME does not
 * manage that name. */
struct cJSON *acme_json(const char *host);

/* When a certificate ending at not_after (unix s) is renewed: at
 * not_after - renew_before (ms). For tests of the decision. */
bool acme_due(int64_t not_after, int64_t now, uint64_t renew_before_ms);
/* The wait before retry number fails (1, 2, ...). */
uint64_t acme_backoff_ms(unsigned fails);

#endif
