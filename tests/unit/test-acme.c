/* test-acme.c — the decisions of daemon/acme.c that need no CA: when a
 * certificate is renewed (the clock given, not read), the backoff of
 * retries, the SNI answer for a name without a certificate, and loading
 * a certificate and key. The runs of uacme against Debian's pebble are
 * in tests/integration/test-proxy.c (test_acme_daemon).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "acme.h"
#include "helpers.h"

#define DAY 86400

static void test_due(void **state UNUSED)
{
	const int64_t end = 1800000000;   /* a certificate's notAfter */
	const uint64_t month = 30ull * DAY * 1000;
	assert_false(acme_due(end, end - 31 * DAY, month));
	assert_false(acme_due(end, end - 30 * DAY - 1, month));
	assert_true(acme_due(end, end - 30 * DAY, month));
	assert_true(acme_due(end, end - DAY, month));
	assert_true(acme_due(end, end + DAY, month));   /* ended */
	/* seconds: a 60 s certificate renewed 40 s before its end */
	assert_false(acme_due(end, end - 41, 40000));
	assert_true(acme_due(end, end - 40, 40000));
}

static void test_backoff(void **state UNUSED)
{
	assert_int_equal(acme_backoff_ms(1), 15000);
	assert_int_equal(acme_backoff_ms(2), 30000);
	assert_int_equal(acme_backoff_ms(3), 60000);
	assert_int_equal(acme_backoff_ms(11), 15000ull << 10);
	assert_int_equal(acme_backoff_ms(12), ACME_RETRY_MAX_MS);
	assert_int_equal(acme_backoff_ms(1000), ACME_RETRY_MAX_MS);
}

/* No certificate for the name (acme not started: none at all): the
 * context's own when there is one (tls.cert), else the handshake fails
 * with unrecognized_name. */
static void test_sni_without_certificate(void **state UNUSED)
{
	SSL_CTX *ctx;
	struct err e = ERR_INIT;
	assert_int_equal(acme_tls_ctx(NULL, NULL, &ctx, &e), 0);
	SSL *ssl = SSL_new(ctx);
	int al = 0;
	assert_int_equal(acme_sni(ssl, &al, ctx), SSL_TLSEXT_ERR_OK);
	assert_int_equal(acme_sni(ssl, &al, NULL), SSL_TLSEXT_ERR_ALERT_FATAL);
	assert_int_equal(al, SSL_AD_UNRECOGNIZED_NAME);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

static void test_tls_ctx(void **state UNUSED)
{
	char *dir = test_tmpdir("acme");
	char *cmd = test_strf("cd %s && openssl req -x509 -newkey ec -pkeyopt "
			      "ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=a.example.com "
			      "-keyout a.key -out a.pem 2>/dev/null && openssl req -x509 -newkey ec "
			      "-pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=b -keyout "
			      "b.key -out b.pem 2>/dev/null", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	char *a = test_strf("%s/a.pem", dir), *ak = test_strf("%s/a.key", dir);
	char *bk = test_strf("%s/b.key", dir), *none = test_strf("%s/none.pem", dir);
	SSL_CTX *ctx;
	struct err e = ERR_INIT;
	assert_int_equal(acme_tls_ctx(a, ak, &ctx, &e), 0);
	assert_non_null(SSL_CTX_get0_certificate(ctx));
	SSL_CTX_free(ctx);
	assert_int_equal(acme_tls_ctx(none, ak, &ctx, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "cannot load a PEM certificate chain"));
	assert_int_equal(acme_tls_ctx(a, bk, &ctx, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not the certificate's"));
	cmd = test_strf("rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(a);
	free(ak);
	free(bk);
	free(none);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_sni_without_certificate),
		cmocka_unit_test(test_tls_ctx),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
