/* tls.c — TLS for the client library's https:// calls (see tls.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "util.h"

struct ctls {
	SSL_CTX *ctx;
	SSL *ssl;
	const char *host;     /* for messages (the caller's) */
	bool has_ca;
	bool wants_write;
};

static const char *ssl_reason(void)
{
	unsigned long code = ERR_get_error();
	const char *r = code ? ERR_reason_error_string(code) : NULL;
	return r ? r : "unknown error";
}

int ctls_start(int fd, const char *host, const char *ca_file, struct ctls **ret, struct err *e)
{
	struct ctls *t = xcalloc(1, sizeof(*t));
	t->host = host;
	t->has_ca = ca_file != NULL;
	/* OpenSSL writes with write(2): a daemon that closed must not kill
	 * the process with SIGPIPE (plain calls use MSG_NOSIGNAL) */
	signal(SIGPIPE, SIG_IGN);
	ERR_clear_error();
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx) {
		free(t);
		return err_set(e, ENOMEM, "TLS: cannot make a context");
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	int ok = ca_file ? SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL)
			 : SSL_CTX_set_default_verify_paths(t->ctx);
	if (ok != 1) {
		int r = err_set(e, EINVAL, "TLS: cannot load the CA certificates%s%s%s: %s",
				ca_file ? " of '" : "", ca_file ? ca_file : "", ca_file ? "'" : "",
				ssl_reason());
		ctls_free(t);
		return r;
	}
	t->ssl = SSL_new(t->ctx);
	SSL_set_fd(t->ssl, fd);
	/* the name the certificate must carry: an IP address or a DNS name */
	unsigned char addr[16];
	bool is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
	if (is_ip) {
		X509_VERIFY_PARAM_set1_ip_asc(vp, host);
	} else {
		SSL_set_tlsext_host_name(t->ssl, host);
		X509_VERIFY_PARAM_set1_host(vp, host, 0);
	}
	SSL_set_connect_state(t->ssl);
	*ret = t;
	return 0;
}

/* Why a handshake failed: the certificate, or anything else. */
static int handshake_error(struct ctls *t, struct err *e)
{
	long v = SSL_get_verify_result(t->ssl);
	if (v != X509_V_OK)
		return err_set(e, EPROTO, "TLS: the daemon's certificate is not trusted for '%s': %s%s",
			       t->host, X509_verify_cert_error_string(v),
			       t->has_ca ? "" : " (for a self-signed one, give its CA with --ca FILE)");
	return err_set(e, EPROTO, "TLS handshake with '%s' failed: %s", t->host, ssl_reason());
}

int ctls_handshake(struct ctls *t, struct err *e)
{
	ERR_clear_error();
	int k = SSL_do_handshake(t->ssl);
	if (k == 1) {
		t->wants_write = false;
		return 0;
	}
	int code = SSL_get_error(t->ssl, k);
	if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
		t->wants_write = code == SSL_ERROR_WANT_WRITE;
		return -EAGAIN;
	}
	return handshake_error(t, e);
}

int ctls_open(int fd, const char *host, const char *ca_file, struct ctls **ret, struct err *e)
{
	struct ctls *t;
	int r = ctls_start(fd, host, ca_file, &t, e);
	if (r < 0)
		return r;
	ERR_clear_error();
	if (SSL_connect(t->ssl) != 1) {
		r = handshake_error(t, e);
		ctls_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

static ssize_t result(struct ctls *t, int k, const char *what, struct err *e)
{
	if (k > 0)
		return k;
	int code = SSL_get_error(t->ssl, k);
	if (code == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (code == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		return errno ? err_set(e, errno, "%s the daemon: %s", what, strerror(errno))
			     : 0;   /* closed without close_notify: the end */
	return err_set(e, EPROTO, "%s the daemon: TLS: %s", what, ssl_reason());
}

ssize_t ctls_read(struct ctls *t, void *p, size_t n, struct err *e)
{
	ERR_clear_error();
	errno = 0;
	int k = SSL_read(t->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	ssize_t r = result(t, k, "reading from", e);
	return r < 0 ? -1 : r;
}

ssize_t ctls_write(struct ctls *t, const void *p, size_t n, struct err *e)
{
	ERR_clear_error();
	errno = 0;
	int k = SSL_write(t->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	ssize_t r = result(t, k, "writing to", e);
	return r <= 0 ? -1 : r;
}

/* Non-blocking: -EAGAIN (wants_write says for what), else as result(). */
static ssize_t nb_result(struct ctls *t, int k, const char *what, struct err *e)
{
	if (k > 0) {
		t->wants_write = false;
		return k;
	}
	int code = SSL_get_error(t->ssl, k);
	if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
		t->wants_write = code == SSL_ERROR_WANT_WRITE;
		return -EAGAIN;
	}
	if (code == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EINTR))
		return -EAGAIN;
	ssize_t r = result(t, k, what, e);
	return r < 0 ? -(e && e->code ? e->code : EIO) : r;
}

ssize_t ctls_recv(struct ctls *t, void *p, size_t n, struct err *e)
{
	ERR_clear_error();
	errno = 0;
	return nb_result(t, SSL_read(t->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n), "reading from",
			 e);
}

ssize_t ctls_send(struct ctls *t, const void *p, size_t n, struct err *e)
{
	ERR_clear_error();
	errno = 0;
	ssize_t r = nb_result(t, SSL_write(t->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n),
			      "writing to", e);
	return r == 0 ? -EPIPE : r;
}

bool ctls_wants_write(const struct ctls *t)
{
	return t->wants_write;
}

void ctls_free(struct ctls *t)
{
	if (!t)
		return;
	if (t->ssl && SSL_is_init_finished(t->ssl))
		SSL_shutdown(t->ssl);
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	free(t);
}
