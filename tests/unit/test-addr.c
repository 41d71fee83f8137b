/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of vccid_addr_parse: the one address syntax of every listener and client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corelib/addr.h"
#include "corelib/error.h"

struct addr_case {
	const char *text;
	uint16_t default_port;
	int rv;
	enum vccid_addr_kind kind;
	const char *host;       /* or the path of a unix address */
	uint16_t port;
	const char *why;        /* a word of the reason, for refusals */
};

#define OK(t, k, h, p) { t, 0, VCCID_OK, k, h, p, NULL }
#define OK_DEF(t, d, k, h, p) { t, d, VCCID_OK, k, h, p, NULL }
#define BAD(t, w) { t, 0, VCCID_EINVAL, VCCID_ADDR_IPV4, NULL, 0, w }

static const struct addr_case cases[] = {
	OK("127.0.0.1:35964", VCCID_ADDR_IPV4, "127.0.0.1", 35964),
	OK("0.0.0.0:1", VCCID_ADDR_IPV4, "0.0.0.0", 1),
	OK("10.0.2.15:65535", VCCID_ADDR_IPV4, "10.0.2.15", 65535),
	OK("[::1]:3240", VCCID_ADDR_IPV6, "::1", 3240),
	OK("[::]:40000", VCCID_ADDR_IPV6, "::", 40000),
	OK("[fe80::1:2]:80", VCCID_ADDR_IPV6, "fe80::1:2", 80),
	OK("[::ffff:1.2.3.4]:9", VCCID_ADDR_IPV6, "::ffff:1.2.3.4", 9),
	OK("localhost:35964", VCCID_ADDR_NAME, "localhost", 35964),
	OK("host-1.example.org:443", VCCID_ADDR_NAME, "host-1.example.org", 443),
	/* Not an IPv4 address but a name by its syntax: the resolver refuses it when used. */
	OK("1.2.3.4.5:80", VCCID_ADDR_NAME, "1.2.3.4.5", 80),
	OK("unix:/run/vccid/vscard.sock", VCCID_ADDR_UNIX, "/run/vccid/vscard.sock", 0),
	OK("unix:relative.sock", VCCID_ADDR_UNIX, "relative.sock", 0),
	OK("unix:/a:b", VCCID_ADDR_UNIX, "/a:b", 0),
	OK_DEF("127.0.0.1", 3240, VCCID_ADDR_IPV4, "127.0.0.1", 3240),
	OK_DEF("[::1]", 3240, VCCID_ADDR_IPV6, "::1", 3240),
	OK_DEF("localhost", 3240, VCCID_ADDR_NAME, "localhost", 3240),
	OK_DEF("127.0.0.1:99", 3240, VCCID_ADDR_IPV4, "127.0.0.1", 99),
	BAD("127.0.0.1:0", "port"),
	BAD("127.0.0.1:65536", "port"),
	BAD("127.0.0.1:99999999999", "port"),
	BAD("127.0.0.1:", "port"),
	BAD("127.0.0.1:-1", "port"),
	BAD("127.0.0.1:+80", "port"),
	BAD("127.0.0.1: 80", "port"),
	BAD("127.0.0.1:80 ", "port"),
	BAD("127.0.0.1:0x50", "port"),
	BAD("127.0.0.1", "port"),
	BAD("localhost", "port"),
	BAD("[::1]", "port"),
	BAD(":35964", "host"),
	BAD("[]:35964", "host"),
	BAD("::1:35964", "brackets"),
	BAD("[::1:35964", "]"),
	BAD("[::1]x:35964", "junk"),
	BAD("[::1]35964", "junk"),
	BAD("[1.2.3.4]:80", "IPv6"),
	BAD("[::g]:80", "IPv6"),
	BAD("[fe80::1%eth0]:80", "IPv6"),
	BAD("host name:80", "host"),
	BAD("-host:80", "host"),
	BAD("host_1:80", "host"),
	BAD("*:80", "host"),
	BAD("unix:", "path"),
	BAD("", "host"),
	BAD("unix:/0123456789012345678901234567890123456789012345678901234567890123456789"
	    "01234567890123456789012345678901234567", "path"),
};

static void test_row(void **state)
{
	const struct addr_case *c = *state;
	struct vccid_addr addr;
	const char *why = NULL;
	int rv = vccid_addr_parse(c->text, c->default_port, &addr, &why);

	assert_int_equal(rv, c->rv);
	if (rv != VCCID_OK) {
		assert_non_null(why);
		assert_non_null(strstr(why, c->why));
		return;
	}
	assert_int_equal(addr.kind, c->kind);
	if (c->kind == VCCID_ADDR_UNIX) {
		assert_string_equal(addr.path, c->host);
		assert_string_equal(addr.host, "");
	} else {
		assert_string_equal(addr.host, c->host);
		assert_string_equal(addr.path, "");
	}
	assert_int_equal(addr.port, c->port);
}

static void test_format_round_trip(void **state)
{
	static const char *const texts[] = { "127.0.0.1:35964", "[::1]:3240", "localhost:1",
					     "unix:/run/x.sock" };
	char out[VCCID_ADDR_TEXT_MAX];
	struct vccid_addr addr;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		assert_int_equal(vccid_addr_parse(texts[i], 0, &addr, NULL), VCCID_OK);
		assert_int_equal(vccid_addr_format(&addr, out, sizeof(out)), VCCID_OK);
		assert_string_equal(out, texts[i]);
	}
	assert_int_equal(vccid_addr_format(&addr, out, 4), VCCID_ENOSPC);
}

static void test_is_any(void **state)
{
	static const struct {
		const char *text;
		bool any;
	} rows[] = {
		{ "0.0.0.0:1", true }, { "[::]:1", true }, { "[0:0::0]:1", true },
		{ "127.0.0.1:1", false }, { "[::1]:1", false }, { "localhost:1", false },
		{ "unix:/x", false },
	};
	struct vccid_addr addr;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(vccid_addr_parse(rows[i].text, 0, &addr, NULL), VCCID_OK);
		assert_int_equal(vccid_addr_is_any(&addr), rows[i].any);
	}
}

static void test_null(void **state)
{
	struct vccid_addr addr;
	const char *why = NULL;

	(void)state;
	assert_int_equal(vccid_addr_parse(NULL, 0, &addr, &why), VCCID_EINVAL);
	assert_non_null(why);
	assert_int_equal(vccid_addr_parse("127.0.0.1:1", 0, NULL, NULL), VCCID_EINVAL);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_is_any),
		cmocka_unit_test(test_null),
	};
	enum {
		N_ROWS = sizeof(cases) / sizeof(cases[0]),
		N_FIXED = sizeof(fixed) / sizeof(fixed[0]),
	};
	struct CMUnitTest tests[N_ROWS + N_FIXED];
	size_t i;

	for (i = 0; i < N_ROWS; i++) {
		memset(&tests[i], 0, sizeof(tests[i]));
		tests[i].name = cases[i].text[0] != '\0' ? cases[i].text : "(empty)";
		tests[i].test_func = test_row;
		tests[i].initial_state = (void *)&cases[i];
	}
	memcpy(tests + N_ROWS, fixed, sizeof(fixed));
	return _cmocka_run_group_tests("addr", tests, N_ROWS + N_FIXED, NULL, NULL);
}
