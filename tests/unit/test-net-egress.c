/* test-net-egress.c — the egress policy's JSON (daemon/net.c: egress_parse,
 * egress_json) without a network: what the API accepts and refuses, the
 * defaults (lists alone mean deny; nothing means the server's default),
 * host names lowered, and the canonical form that is stored.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json.h"
#include "net.h"
#include "util.h"

static void check(const char *in, bool def_deny, const char *want)
{
	struct egress eg;
	struct err e = ERR_INIT;
	assert_int_equal(egress_parse(in, def_deny, &eg, &e), 0);
	char *out = egress_json(&eg);
	assert_string_equal(out, want);
	free(out);
	egress_release(&eg);
}

static void test_accepted(void **state)
{
	(void)state;
	check("{}", false, "{\"policy\":\"allow\",\"allow_hosts\":[],\"allow_cidrs\":[]}");
	check("{}", true, "{\"policy\":\"deny\",\"allow_hosts\":[],\"allow_cidrs\":[]}");
	check("{\"policy\":\"allow\"}", true,
	      "{\"policy\":\"allow\",\"allow_hosts\":[],\"allow_cidrs\":[]}");
	/* lists without a policy: deny and that list */
	check("{\"allow_hosts\":[\"GitHub.com\",\"*.npmjs.org\"]}", false,
	      "{\"policy\":\"deny\",\"allow_hosts\":[\"github.com\",\"*.npmjs.org\"],"
	      "\"allow_cidrs\":[]}");
	check("{\"allow_cidrs\":[\"192.0.2.0/24\",\"198.51.100.7\"]}", false,
	      "{\"policy\":\"deny\",\"allow_hosts\":[],\"allow_cidrs\":[\"192.0.2.0/24\","
	      "\"198.51.100.7\"]}");
	check("{\"policy\":\"deny\"}", false,
	      "{\"policy\":\"deny\",\"allow_hosts\":[],\"allow_cidrs\":[]}");
}

static void test_refused(void **state)
{
	(void)state;
	static const struct { const char *in, *msg; } cases[] = {
		{ "{\"policy\":\"open\"}", "egress: policy must be allow or deny, not 'open'" },
		{ "{\"allow_hosts\":[\"a..b\"]}", "invalid host 'a..b' (a name such as github.com "
		  "or *.npmjs.org)" },
		{ "{\"allow_hosts\":[\"a b\"]}", "invalid host 'a b' (a name such as github.com "
		  "or *.npmjs.org)" },
		{ "{\"allow_hosts\":[\"x.*.org\"]}", "invalid host 'x.*.org' (a name such as "
		  "github.com or *.npmjs.org)" },
		{ "{\"allow_hosts\":[\"\"]}", "invalid host '' (a name such as github.com or "
		  "*.npmjs.org)" },
		{ "{\"allow_cidrs\":[\"10.0.0.0/33\"]}", "egress: invalid cidr '10.0.0.0/33' "
		  "(a.b.c.d/n)" },
		{ "{\"allow_cidrs\":[\"10.0.0\"]}", "egress: invalid cidr '10.0.0' (a.b.c.d/n)" },
		{ "{\"allow_cidrs\":[\"256.0.0.0/8\"]}", "egress: invalid cidr '256.0.0.0/8' "
		  "(a.b.c.d/n)" },
		{ "{\"allow\":true}", "egress: unknown field 'allow'" },
		{ "{\"allow_hosts\":\"github.com\"}", "egress: field 'allow_hosts' must be an "
		  "array of strings" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct egress eg = { 0 };
		struct err e = ERR_INIT;
		assert_int_equal(egress_parse(cases[i].in, false, &eg, &e), -EINVAL);
		assert_string_equal(e.msg, cases[i].msg);
		assert_null(eg.hosts);
	}
}

static void test_mac(void **state)
{
	(void)state;
	char mac[18];
	net_mac("3f9c2a7d1b04", mac);
	assert_string_equal(mac, "02:3f:9c:2a:7d:1b");
}

int main(void)
{
	json_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_mac),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
