/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of vccid_apdu_parse: every ISO 7816-4 §5.1 case and every malformed length form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corelib/apdu.h"
#include "corelib/error.h"
#include "tests/unit/table.h"

/* Expected data offset when the parser must point into the buffer; NO_DATA for NULL. */
#define NO_DATA ((size_t)-1)

struct apdu_case {
	const char *name;
	const uint8_t *buf;
	size_t len;
	int rv;
	enum vccid_apdu_case apdu_case;
	bool extended;
	size_t lc;
	size_t le;
	size_t data_offset;
};

#define B(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

/* B() expands to "pointer, length", filling .buf then .len by position. */
#define GOOD(n, bytes, c, ext, lc_, le_, off) \
	{ n, bytes, VCCID_OK, c, ext, lc_, le_, off }
#define BAD(n, bytes) { n, bytes, VCCID_EPROTO, 0, false, 0, 0, NO_DATA }

static const struct apdu_case cases[] = {
	GOOD("case 1", B(0x00, 0xA4, 0x04, 0x00), VCCID_APDU_CASE_1, false, 0, 0, NO_DATA),
	GOOD("case 2S Le 10", B(0x00, 0xB0, 0x00, 0x00, 0x10), VCCID_APDU_CASE_2, false, 0, 16,
	     NO_DATA),
	GOOD("case 2S Le 00 means 256", B(0x00, 0xCA, 0x00, 0x00, 0x00), VCCID_APDU_CASE_2,
	     false, 0, 256, NO_DATA),
	GOOD("case 2S Le FF", B(0x00, 0xB0, 0x00, 0x00, 0xFF), VCCID_APDU_CASE_2, false, 0, 255,
	     NO_DATA),
	GOOD("case 3S", B(0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00), VCCID_APDU_CASE_3, false,
	     2, 0, 5),
	GOOD("case 3S one byte", B(0x80, 0x20, 0x00, 0x80, 0x01, 0xAA), VCCID_APDU_CASE_3,
	     false, 1, 0, 5),
	GOOD("case 4S", B(0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00, 0x20), VCCID_APDU_CASE_4,
	     false, 2, 0x20, 5),
	GOOD("case 4S Le 00 means 256", B(0x00, 0xA4, 0x04, 0x00, 0x01, 0x3F, 0x00),
	     VCCID_APDU_CASE_4, false, 1, 256, 5),
	GOOD("case 2E Le 000000 means 65536", B(0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00),
	     VCCID_APDU_CASE_2, true, 0, 65536, NO_DATA),
	GOOD("case 2E Le 0102", B(0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x02), VCCID_APDU_CASE_2,
	     true, 0, 0x0102, NO_DATA),
	GOOD("case 3E", B(0x00, 0xD6, 0x00, 0x00, 0x00, 0x00, 0x02, 0xAB, 0xCD),
	     VCCID_APDU_CASE_3, true, 2, 0, 7),
	GOOD("case 3E one byte", B(0x00, 0xD6, 0x00, 0x00, 0x00, 0x00, 0x01, 0xAB),
	     VCCID_APDU_CASE_3, true, 1, 0, 7),
	GOOD("case 4E", B(0x00, 0x2A, 0x9E, 0x9A, 0x00, 0x00, 0x02, 0xAB, 0xCD, 0x01, 0x00),
	     VCCID_APDU_CASE_4, true, 2, 256, 7),
	GOOD("case 4E Le 0000 means 65536",
	     B(0x00, 0x2A, 0x9E, 0x9A, 0x00, 0x00, 0x01, 0xAB, 0x00, 0x00), VCCID_APDU_CASE_4,
	     true, 1, 65536, 7),

	{ "empty", (const uint8_t[]){ 0x00 }, 0, VCCID_EPROTO, 0, false, 0, 0, NO_DATA },
	BAD("1 byte", B(0x00)),
	BAD("2 bytes", B(0x00, 0xA4)),
	BAD("3 bytes", B(0x00, 0xA4, 0x04)),
	BAD("short Lc 2, 1 data byte", B(0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F)),
	BAD("short Lc 5, no data", B(0x00, 0xA4, 0x04, 0x00, 0x05, 0x3F)),
	BAD("short Lc 1, 2 data bytes and Le and more",
	    B(0x00, 0xA4, 0x04, 0x00, 0x01, 0x3F, 0x00, 0x00)),
	BAD("short Lc 1, 3 trailing bytes",
	    B(0x00, 0xA4, 0x04, 0x00, 0x01, 0x3F, 0x00, 0x00, 0x00)),
	BAD("length 6 with 00: header + 00 + x", B(0x00, 0xA4, 0x04, 0x00, 0x00, 0x01)),
	BAD("length 6 with 00 00", B(0x00, 0xA4, 0x04, 0x00, 0x00, 0x00)),
	BAD("extended Lc 0 with Le", B(0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)),
	BAD("extended Lc 0, 1 more byte", B(0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01)),
	GOOD("case 4E Le CD00", B(0x00, 0xD6, 0x00, 0x00, 0x00, 0x00, 0x01, 0xAB, 0xCD, 0x00),
	     VCCID_APDU_CASE_4, true, 1, 0xCD00, 7),
	BAD("extended Lc 3, 2 data bytes", B(0x00, 0xD6, 0x00, 0x00, 0x00, 0x00, 0x03, 0xAB, 0xCD)),
	BAD("extended Lc 1, 2 data bytes (no room for extended Le)",
	    B(0x00, 0xD6, 0x00, 0x00, 0x00, 0x00, 0x01, 0xAB, 0xCD)),
	BAD("extended Lc 1 with a 3-byte Le", B(0x00, 0xD6, 0x00, 0x00, 0x00, 0x00, 0x01, 0xAB,
						0xCD, 0x00, 0x01)),
	BAD("extended case 4 with trailing garbage",
	    B(0x00, 0xD6, 0x00, 0x00, 0x00, 0x00, 0x01, 0xAB, 0x00, 0x00, 0x99)),
	BAD("extended Lc FFFF, 1 data byte", B(0x00, 0xD6, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xAB)),
	BAD("short case 4 with trailing garbage",
	    B(0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00, 0x20, 0x99)),
};

static void check_case(const struct apdu_case *c, const uint8_t *buf, size_t len)
{
	struct vccid_apdu apdu;
	int rv;

	memset(&apdu, 0xA5, sizeof(apdu));
	rv = vccid_apdu_parse(buf, len, &apdu);
	if (rv != c->rv)
		fail_msg("%s: vccid_apdu_parse returned %d, expected %d", c->name, rv, c->rv);
	if (c->rv != VCCID_OK)
		return;
	assert_int_equal(apdu.cla, buf[0]);
	assert_int_equal(apdu.ins, buf[1]);
	assert_int_equal(apdu.p1, buf[2]);
	assert_int_equal(apdu.p2, buf[3]);
	if (apdu.apdu_case != c->apdu_case || apdu.extended != c->extended || apdu.lc != c->lc ||
	    apdu.le != c->le)
		fail_msg("%s: case %d ext %d lc %zu le %zu; expected case %d ext %d lc %zu le %zu",
			 c->name, (int)apdu.apdu_case, (int)apdu.extended, apdu.lc, apdu.le,
			 (int)c->apdu_case, (int)c->extended, c->lc, c->le);
	if (c->data_offset == NO_DATA)
		assert_null(apdu.data);
	else
		assert_ptr_equal(apdu.data, buf + c->data_offset);
}

/* One cmocka test per table row; the row comes in as the initial state. */
static void test_row(void **state)
{
	const struct apdu_case *c = *state;
	/* A private copy of exactly len bytes, so a read past the end shows under valgrind. */
	uint8_t *copy = malloc(c->len ? c->len : 1);

	assert_non_null(copy);
	memcpy(copy, c->buf, c->len);
	check_case(c, copy, c->len);
	free(copy);
}

static void test_null_arguments(void **state)
{
	static const uint8_t apdu_bytes[] = { 0x00, 0xA4, 0x04, 0x00 };
	struct vccid_apdu apdu;

	(void)state;
	assert_int_equal(vccid_apdu_parse(NULL, 4, &apdu), VCCID_EPROTO);
	assert_int_equal(vccid_apdu_parse(apdu_bytes, sizeof(apdu_bytes), NULL), VCCID_EPROTO);
}

/* Builds header + extended Lc + @p lc data bytes [+ 2-byte Le]; returns the length. */
static uint8_t *build_extended(size_t lc, bool with_le, uint16_t le, size_t *len)
{
	uint8_t *buf;
	size_t i;

	*len = 4 + 3 + lc + (with_le ? 2 : 0);
	buf = malloc(*len);
	assert_non_null(buf);
	buf[0] = 0x00;
	buf[1] = 0xD6;
	buf[2] = 0x00;
	buf[3] = 0x00;
	buf[4] = 0x00;
	buf[5] = (uint8_t)(lc >> 8);
	buf[6] = (uint8_t)lc;
	for (i = 0; i < lc; i++)
		buf[7 + i] = (uint8_t)i;
	if (with_le) {
		buf[7 + lc] = (uint8_t)(le >> 8);
		buf[8 + lc] = (uint8_t)le;
	}
	return buf;
}

static void test_extended_65535_case3(void **state)
{
	struct vccid_apdu apdu;
	size_t len;
	uint8_t *buf = build_extended(65535, false, 0, &len);

	(void)state;
	assert_int_equal(vccid_apdu_parse(buf, len, &apdu), VCCID_OK);
	assert_int_equal(apdu.apdu_case, VCCID_APDU_CASE_3);
	assert_true(apdu.extended);
	assert_int_equal(apdu.lc, 65535);
	assert_int_equal(apdu.le, 0);
	assert_ptr_equal(apdu.data, buf + 7);
	/* One byte short and one byte over are both malformed. */
	assert_int_equal(vccid_apdu_parse(buf, len - 1, &apdu), VCCID_EPROTO);
	free(buf);
}

static void test_extended_65535_case4(void **state)
{
	struct vccid_apdu apdu;
	size_t len;
	uint8_t *buf = build_extended(65535, true, 0x0000, &len);

	(void)state;
	assert_int_equal(len, 4 + 3 + 65535 + 2);
	assert_int_equal(vccid_apdu_parse(buf, len, &apdu), VCCID_OK);
	assert_int_equal(apdu.apdu_case, VCCID_APDU_CASE_4);
	assert_true(apdu.extended);
	assert_int_equal(apdu.lc, 65535);
	assert_int_equal(apdu.le, 65536);
	assert_ptr_equal(apdu.data, buf + 7);
	free(buf);

	buf = build_extended(65535, true, 0x1234, &len);
	assert_int_equal(vccid_apdu_parse(buf, len, &apdu), VCCID_OK);
	assert_int_equal(apdu.le, 0x1234);
	/* Dropping the last byte leaves 1 byte after the data: no valid form. */
	assert_int_equal(vccid_apdu_parse(buf, len - 1, &apdu), VCCID_EPROTO);
	free(buf);
}

static void test_short_255(void **state)
{
	uint8_t buf[4 + 1 + 255 + 1];
	struct vccid_apdu apdu;

	(void)state;
	memset(buf, 0x5A, sizeof(buf));
	buf[4] = 0xFF;
	assert_int_equal(vccid_apdu_parse(buf, 4 + 1 + 255, &apdu), VCCID_OK);
	assert_int_equal(apdu.apdu_case, VCCID_APDU_CASE_3);
	assert_false(apdu.extended);
	assert_int_equal(apdu.lc, 255);
	buf[4 + 1 + 255] = 0x00;
	assert_int_equal(vccid_apdu_parse(buf, sizeof(buf), &apdu), VCCID_OK);
	assert_int_equal(apdu.apdu_case, VCCID_APDU_CASE_4);
	assert_int_equal(apdu.le, 256);
	assert_int_equal(vccid_apdu_parse(buf, 4 + 1 + 254, &apdu), VCCID_EPROTO);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_null_arguments),
		cmocka_unit_test(test_extended_65535_case3),
		cmocka_unit_test(test_extended_65535_case4),
		cmocka_unit_test(test_short_255),
	};

	return TABLE_RUN("apdu", cases, test_row, NULL, fixed);
}
