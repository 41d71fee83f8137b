/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the ATR parser: ISO 7816-3 §8.2 structure, TCK, the offered protocols and the parsed fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corelib/atr.h"
#include "corelib/error.h"
#include "corelib/slot.h"
#include "tests/cac-atr.h"
#include "tests/unit/table.h"

struct atr_case {
	const char *name;
	const uint8_t *atr;
	size_t len;
	int rv;
	unsigned protocols;   /* expected mask when rv == 0 */
};

/* B() expands to "pointer, length". */
#define B(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })
#define GOOD(n, bytes, mask) { n, bytes, VCCID_OK, mask }
#define BAD(n, bytes) { n, bytes, VCCID_EPROTO, 0 }

#define CAC_ATR CAC_ATR_BYTES

static const struct atr_case cases[] = {
	/* T0 = 7A: TA1 TB1 TC1, no TD1 (T=0 only, no TCK), 10 historical bytes. */
	GOOD("CAC ATR, T=0", B(CAC_ATR), 1u),
	GOOD("minimal 3B 00", B(0x3B, 0x00), 1u),
	GOOD("minimal inverse convention 3F 00", B(0x3F, 0x00), 1u),
	GOOD("historical bytes only", B(0x3B, 0x02, 0x41, 0x42), 1u),
	/* TD1 = 01: T=1, TCK = 80 ^ 01. */
	GOOD("T=1 only with TCK", B(0x3B, 0x80, 0x01, 0x81), 2u),
	/* TD1 = 80: T=0 and TD2 follows; TD2 = 01: T=1; TCK = 80 ^ 80 ^ 01. */
	GOOD("T=0 and T=1 with TCK", B(0x3B, 0x80, 0x80, 0x01, 0x01), 3u),
	/* A common T=1 card: TA1 TD1, TD1 = 81 (T=1, TD2), TD2 = 31 (TA3 TB3, T=1), 2 hist. */
	GOOD("T=1 with TA3 TB3 and historical bytes",
	     B(0x3B, 0x92, 0x11, 0x81, 0x31, 0xFE, 0x45, 0x80, 0x31,
	       0x3B ^ 0x3B ^ 0x92 ^ 0x11 ^ 0x81 ^ 0x31 ^ 0xFE ^ 0x45 ^ 0x80 ^ 0x31), 2u),
	/* T=0 in TD1 then only global T=15 bytes: TCK needed, protocols T=0. */
	GOOD("T=0 then T=15 with TCK", B(0x3B, 0x80, 0x80, 0x1F, 0x07, 0x80 ^ 0x80 ^ 0x1F ^ 0x07),
	     1u),

	BAD("T=1 with wrong TCK", B(0x3B, 0x80, 0x01, 0x80)),
	BAD("T=0 and T=1 with wrong TCK", B(0x3B, 0x80, 0x80, 0x01, 0x00)),
	BAD("T=1 missing TCK", B(0x3B, 0x80, 0x01)),
	BAD("T=0 only with a TCK-like extra byte", B(0x3B, 0x00, 0x3B)),
	BAD("bad TS 3C", B(0x3C, 0x00)),
	BAD("bad TS 00", B(0x00, 0x00)),
	BAD("bad TS in CAC ATR", B(0x3A, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74, 0x65, 0x20,
				   0x63, 0x64, 0x31, 0x34, 0x34)),
	BAD("1 byte", B(0x3B)),
	{ "empty", (const uint8_t[]){ 0x3B }, 0, VCCID_EPROTO, 0 },
	BAD("truncated: TD1 announced, nothing follows", B(0x3B, 0x80)),
	BAD("truncated: TA1..TD1 announced, nothing follows", B(0x3B, 0xF0)),
	BAD("truncated: TA1 TB1 TC1 announced, one present", B(0x3B, 0x70, 0x11)),
	BAD("truncated: TD2 announced by TD1, missing", B(0x3B, 0x80, 0x81)),
	BAD("historical count 2, one present", B(0x3B, 0x02, 0x41)),
	BAD("historical count 1, two present", B(0x3B, 0x01, 0x41, 0x42)),
	BAD("CAC ATR missing its last historical byte",
	    B(0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74, 0x65, 0x20, 0x63, 0x64, 0x31, 0x34)),
	BAD("CAC ATR with a trailing byte", B(CAC_ATR, 0x00)),
};

/* What vccid_atr_parse() reads: TA1, TC1, the T=1 IFSC, the historical bytes and TCK. */
struct parse_case {
	const char *name;
	const uint8_t *atr;
	size_t len;
	int rv;
	int ta1, tc1, t1_ifsc;   /* -1: absent */
	size_t hist_offset, hist_len;
	bool tck_present, tck_ok;
};

#define PARSED(n, bytes, ta1, tc1, ifsc, hoff, hlen, tck) \
	{ n, bytes, VCCID_OK, ta1, tc1, ifsc, hoff, hlen, tck, tck }
/* On failure the fields say what was read before the fault. */
#define REFUSED(n, bytes, ta1, tc1, ifsc, hoff, hlen, tck, tck_ok) \
	{ n, bytes, VCCID_EPROTO, ta1, tc1, ifsc, hoff, hlen, tck, tck_ok }

static const struct parse_case parse_cases[] = {
	PARSED("parse: CAC ATR, TA1 TB1 TC1", B(CAC_ATR), 0x18, 0x00, -1, 5, 10, false),
	PARSED("parse: minimal 3B 00", B(0x3B, 0x00), -1, -1, -1, 2, 0, false),
	PARSED("parse: TC1 alone", B(0x3B, 0x40, 0xFF), -1, 0xFF, -1, 3, 0, false),
	PARSED("parse: historical bytes only", B(0x3B, 0x02, 0x41, 0x42), -1, -1, -1, 2, 2, false),
	/* TA1 13, TD1 81 (T=1), TD2 31: TA3 FE (IFSC) TB3 15, 8 historical bytes, TCK. */
	PARSED("parse: T=1 card with IFSC FE",
	       B(0x3B, 0xF8, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15,
		 'Y', 'u', 'b', 'i', 'k', 'e', 'y', '4', 0xD4), 0x13, 0x00, 0xFE, 9, 8, true),
	PARSED("parse: T=1 with TA3 TB3 and historical bytes",
	       B(0x3B, 0x92, 0x11, 0x81, 0x31, 0xFE, 0x45, 0x80, 0x31,
		 0x92 ^ 0x11 ^ 0x81 ^ 0x31 ^ 0xFE ^ 0x45 ^ 0x80 ^ 0x31), 0x11, -1, 0xFE, 7, 2, true),
	/* TD1 11: TA2 (specific mode, not IFSC), T=1. */
	PARSED("parse: TA2 after T=1 is no IFSC", B(0x3B, 0x80, 0x11, 0x20, 0x80 ^ 0x11 ^ 0x20),
	       -1, -1, -1, 4, 0, true),
	/* TD1 81 (T=1), TD2 1F: TA3 belongs to T=15 (global), not to T=1. */
	PARSED("parse: TA3 of T=15 is no IFSC",
	       B(0x3B, 0x80, 0x81, 0x1F, 0x20, 0x80 ^ 0x81 ^ 0x1F ^ 0x20), -1, -1, -1, 5, 0, true),
	/* TD2 A1: TB3 TD3 (T=1); TD3 11: TA4 (T=1) is the first TA for T=1 past group 2. */
	PARSED("parse: IFSC in TA4 when group 3 has no TA",
	       B(0x3B, 0x80, 0x81, 0xA1, 0x45, 0x11, 0x20, 0x80 ^ 0x81 ^ 0xA1 ^ 0x45 ^ 0x11 ^ 0x20),
	       -1, -1, 0x20, 7, 0, true),

	REFUSED("parse: bad TS reads nothing", B(0x3C, 0x10, 0x11), -1, -1, -1, 0, 0, false, false),
	REFUSED("parse: truncated, TC1 announced, missing", B(0x3B, 0x50, 0x11), 0x11, -1, -1, 0, 0,
		false, false),
	REFUSED("parse: truncated, TA1 TB1 TC1 announced, one present", B(0x3B, 0x70, 0x11), 0x11,
		-1, -1, 0, 0, false, false),
	REFUSED("parse: truncated, IFSC announced by TD2, missing", B(0x3B, 0x80, 0x81, 0x11), -1,
		-1, -1, 0, 0, false, false),
	REFUSED("parse: historical count 2, one present", B(0x3B, 0x12, 0x11, 0x41), 0x11, -1, -1,
		3, 2, false, false),
	REFUSED("parse: T=1 missing TCK", B(0x3B, 0x80, 0x01), -1, -1, -1, 3, 0, false, false),
	REFUSED("parse: T=1 with wrong TCK", B(0x3B, 0x80, 0x01, 0x80), -1, -1, -1, 3, 0, true,
		false),
	REFUSED("parse: T=1 with TCK and a trailing byte", B(0x3B, 0x80, 0x01, 0x81, 0x00), -1, -1,
		-1, 3, 0, true, true),
	REFUSED("parse: T=0 with a trailing byte", B(0x3B, 0x10, 0x11, 0x00), 0x11, -1, -1, 3, 0,
		false, false),
};

static void test_parse_row(void **state)
{
	const struct parse_case *c = *state;
	/* Exactly len bytes on the heap: an over-read shows under valgrind and ASan. */
	uint8_t *copy = malloc(c->len);
	struct vccid_atr atr;
	int rv;

	assert_non_null(copy);
	memcpy(copy, c->atr, c->len);
	rv = vccid_atr_parse(copy, c->len, &atr);
	assert_int_equal(vccid_atr_check(copy, c->len, NULL), rv);
	free(copy);
	if (rv != c->rv)
		fail_msg("%s: vccid_atr_parse returned %d, expected %d", c->name, rv, c->rv);
	assert_int_equal(atr.len, c->len);
	assert_int_equal(atr.ta[1], c->ta1);
	assert_int_equal(atr.tc[1], c->tc1);
	assert_int_equal(atr.t1_ifsc, c->t1_ifsc);
	assert_int_equal(atr.hist_offset, c->hist_offset);
	assert_int_equal(atr.hist_len, c->hist_len);
	assert_int_equal(atr.tck_present, c->tck_present);
	assert_int_equal(atr.tck_ok, c->tck_ok);
	assert_int_equal(atr.ta[0], -1);   /* index 0 is no group */
}

static void test_row(void **state)
{
	const struct atr_case *c = *state;
	/* Exactly len bytes on the heap: an over-read shows under valgrind. */
	uint8_t *copy = malloc(c->len ? c->len : 1);
	unsigned protocols = 0xDEAD;
	int rv;

	assert_non_null(copy);
	memcpy(copy, c->atr, c->len);
	rv = vccid_atr_check(copy, c->len, &protocols);
	free(copy);
	if (rv != c->rv)
		fail_msg("%s: vccid_atr_check returned %d, expected %d", c->name, rv, c->rv);
	if (c->rv == VCCID_OK && protocols != c->protocols)
		fail_msg("%s: protocols 0x%X, expected 0x%X", c->name, protocols, c->protocols);
	if (c->rv != VCCID_OK && protocols != 0xDEAD)
		fail_msg("%s: protocols written on failure", c->name);
}

/* 33 bytes, the ATR maximum: 15 interface bytes, 15 historical bytes and TCK. */
static size_t make_max_atr(uint8_t *atr)
{
	static const uint8_t head[] = {
		0x3B, 0xFF,                   /* TA1 TB1 TC1 TD1, 15 historical bytes */
		0x11, 0x00, 0x00, 0xF1,       /* TD1: TA2 TB2 TC2 TD2, T=1 */
		0x00, 0x00, 0x00, 0xF1,       /* TD2: TA3 TB3 TC3 TD3, T=1 */
		0xFE, 0x45, 0x00, 0x71,       /* TD3: TA4 TB4 TC4, T=1 */
		0x00, 0x00, 0x00,
	};
	size_t n = sizeof(head);
	uint8_t tck = 0;
	size_t i;

	memcpy(atr, head, n);
	for (i = 0; i < 15; i++)
		atr[n++] = (uint8_t)('A' + i);
	for (i = 1; i < n; i++)
		tck ^= atr[i];
	atr[n++] = tck;
	return n;
}

static void test_max_length(void **state)
{
	uint8_t atr[40];
	unsigned protocols = 0;
	size_t len = make_max_atr(atr);

	(void)state;
	assert_int_equal(len, VCCID_MAX_ATR);
	assert_int_equal(vccid_atr_check(atr, len, &protocols), VCCID_OK);
	assert_int_equal(protocols, 2u);
	/* Too long: 34 bytes are refused before anything else is looked at. */
	atr[len] = 0x00;
	assert_int_equal(vccid_atr_check(atr, len + 1, &protocols), VCCID_EPROTO);
	/* Breaking the checksum of the 33-byte ATR is caught. */
	atr[len - 1] ^= 0x01;
	assert_int_equal(vccid_atr_check(atr, len, &protocols), VCCID_EPROTO);
}

static void test_34_bytes(void **state)
{
	uint8_t atr[34];

	(void)state;
	memset(atr, 0, sizeof(atr));
	atr[0] = 0x3B;
	atr[1] = 0x00;
	assert_int_equal(vccid_atr_check(atr, sizeof(atr), NULL), VCCID_EPROTO);
}

/* The 33-byte ATR by index, and the 34-byte one refused before any byte is read. */
static void test_parse_max_length(void **state)
{
	uint8_t atr[40];
	struct vccid_atr parsed;
	size_t len = make_max_atr(atr);

	(void)state;
	assert_int_equal(vccid_atr_parse(atr, len, &parsed), VCCID_OK);
	assert_int_equal(parsed.ta[1], 0x11);
	assert_int_equal(parsed.td[1], 0xF1);
	assert_int_equal(parsed.td[3], 0x71);
	assert_int_equal(parsed.td[4], -1);
	assert_int_equal(parsed.tc[4], 0x00);
	assert_int_equal(parsed.first_protocol, 1);
	assert_int_equal(parsed.t1_ifsc, 0xFE);
	assert_int_equal(parsed.t1_bwi_cwi, 0x45);
	assert_int_equal(parsed.t1_edc, 0x00);
	assert_int_equal(parsed.hist_offset, 17);
	assert_int_equal(parsed.hist_len, 15);
	assert_true(parsed.tck_present);
	assert_true(parsed.tck_ok);
	assert_false(parsed.inverse);
	atr[len] = 0x00;
	assert_int_equal(vccid_atr_parse(atr, len + 1, &parsed), VCCID_EPROTO);
	assert_int_equal(parsed.len, len + 1);
	assert_int_equal(parsed.ta[1], -1);
	assert_int_equal(parsed.hist_offset, 0);
	assert_false(parsed.tck_present);
	/* out may be NULL. */
	assert_int_equal(vccid_atr_parse(atr, len, NULL), VCCID_OK);
}

static void test_parse_inverse(void **state)
{
	static const uint8_t atr[] = { 0x3F, 0x00 };
	struct vccid_atr parsed;

	(void)state;
	assert_int_equal(vccid_atr_parse(atr, sizeof(atr), &parsed), VCCID_OK);
	assert_true(parsed.inverse);
	assert_int_equal(parsed.protocols, 1u);
	assert_int_equal(parsed.first_protocol, 0);
}

static void test_null(void **state)
{
	static const uint8_t cac[] = { CAC_ATR };

	(void)state;
	assert_int_equal(vccid_atr_check(NULL, 2, NULL), VCCID_EPROTO);
	/* protocols may be NULL. */
	assert_int_equal(vccid_atr_check(cac, sizeof(cac), NULL), VCCID_OK);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_max_length),
		cmocka_unit_test(test_34_bytes),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_parse_max_length),
		cmocka_unit_test(test_parse_inverse),
	};
	const struct table_part tables[] = {
		TABLE_PART(cases, test_row, NULL),
		TABLE_PART(parse_cases, test_parse_row, NULL),
	};

	return table_run("atr", tables, 2, fixed, sizeof(fixed) / sizeof(fixed[0]));
}
