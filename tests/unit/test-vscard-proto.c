/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the VSCard codec: headers, Init, Error and the stream framer, including lying lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backends/vscard/proto.h"
#include "corelib/error.h"

/* Bytes vscclient sends as its Init, as captured against QEMU 7.2 (FACTS.md). */
static const uint8_t vscclient_init[] = {
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C,
	0x56, 0x53, 0x43, 0x44, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
};

static void test_type_names(void **state)
{
	static const struct { uint32_t type; const char *name; } names[] = {
		{ 1, "Init" }, { 2, "Error" }, { 3, "ReaderAdd" }, { 4, "ReaderRemove" },
		{ 5, "ATR" }, { 6, "CardRemove" }, { 7, "APDU" }, { 8, "Flush" },
		{ 9, "FlushComplete" }, { 0, "unknown" }, { 10, "unknown" },
		{ 0xFFFFFFFFu, "unknown" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(vccid_vscard_type_name(names[i].type), names[i].name);
}

static void test_header_roundtrip(void **state)
{
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE];
	struct vccid_vscard_header header;
	uint32_t type;

	(void)state;
	for (type = VCCID_VSCARD_INIT; type <= VCCID_VSCARD_FLUSH_COMPLETE; type++) {
		vccid_vscard_header_encode(buf, type, 0x01020304u, 0xA0B0C0D0u);
		assert_int_equal(buf[0], 0);
		assert_int_equal(buf[3], type);                /* big-endian */
		assert_int_equal(buf[4], 0x01);
		assert_int_equal(buf[11], 0xD0);
		vccid_vscard_header_decode(buf, &header);
		assert_int_equal(header.type, type);
		assert_int_equal(header.reader_id, 0x01020304u);
		assert_int_equal(header.length, 0xA0B0C0D0u);
	}
}

static void test_init_encode_matches_vscclient(void **state)
{
	uint8_t buf[64];

	(void)state;
	assert_int_equal(vccid_vscard_init_encode(buf, sizeof(buf), 0, 0), sizeof(vscclient_init));
	assert_memory_equal(buf, vscclient_init, sizeof(vscclient_init));
	/* Too small a buffer: nothing written. */
	assert_int_equal(vccid_vscard_init_encode(buf, sizeof(vscclient_init) - 1, 0, 0), 0);
}

static void test_error_encode(void **state)
{
	static const uint8_t expect[] = { 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0 };
	uint8_t buf[16];
	uint32_t code = 99;

	(void)state;
	assert_int_equal(vccid_vscard_error_encode(buf, sizeof(buf), 0, VCCID_VSCARD_SUCCESS), 16);
	assert_memory_equal(buf, expect, sizeof(expect));
	assert_int_equal(vccid_vscard_error_decode(buf + 12, 4, &code), VCCID_OK);
	assert_int_equal(code, 0);
	assert_int_equal(vccid_vscard_error_encode(buf, sizeof(buf), 0xFFFFFFFFu,
					     VCCID_VSCARD_CANNOT_ADD_MORE_READERS), 16);
	assert_int_equal(buf[4], 0xFF);
	assert_int_equal(buf[15], 2);
	assert_int_equal(vccid_vscard_error_decode(buf + 12, 3, &code), VCCID_EPROTO);
	assert_int_equal(vccid_vscard_error_decode(buf + 12, 5, &code), VCCID_EPROTO);
}

struct init_case {
	const char *name;
	const uint8_t *payload;
	size_t len;
	int rv;
	size_t n_caps;
	uint32_t cap0;
};

static const uint8_t init_one_cap[] = { 'V', 'S', 'C', 'D', 0, 0, 0, 2, 0, 1, 0, 0 };
static const uint8_t init_three_caps[] = { 'V', 'S', 'C', 'D', 0, 0, 0, 2, 0, 0, 0, 5,
					   0, 0, 0, 6, 0, 0, 0, 7 };
static const uint8_t init_bad_magic[] = { 'D', 'C', 'S', 'V', 0, 0, 0, 2, 0, 0, 0, 0 };
static const uint8_t init_swapped_magic[] = { 'D', 'C', 'S', 'V', 2, 0, 0, 0, 0, 0, 0, 0 };
static const uint8_t init_odd[] = { 'V', 'S', 'C', 'D', 0, 0, 0, 2, 0, 0, 0, 0, 1 };

static const struct init_case init_cases[] = {
	{ "one capability", init_one_cap, sizeof(init_one_cap), VCCID_OK, 1, 0x00010000u },
	{ "three capabilities", init_three_caps, sizeof(init_three_caps), VCCID_OK, 3, 5 },
	{ "no capability word", init_one_cap, 8, VCCID_EPROTO, 0, 0 },
	{ "magic only", init_one_cap, 4, VCCID_EPROTO, 0, 0 },
	{ "empty", init_one_cap, 0, VCCID_EPROTO, 0, 0 },
	{ "bad magic", init_bad_magic, sizeof(init_bad_magic), VCCID_EPROTO, 0, 0 },
	{ "byte-swapped magic", init_swapped_magic, sizeof(init_swapped_magic), VCCID_EPROTO, 0, 0 },
	{ "length not a multiple of 4", init_odd, sizeof(init_odd), VCCID_EPROTO, 0, 0 },
};

static void test_init_decode(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(init_cases) / sizeof(init_cases[0]); i++) {
		const struct init_case *c = &init_cases[i];
		struct vccid_vscard_init init;

		print_message("# init: %s\n", c->name);
		assert_int_equal(vccid_vscard_init_decode(c->payload, c->len, &init), c->rv);
		if (c->rv != VCCID_OK)
			continue;
		assert_int_equal(init.version, 2);
		assert_int_equal(init.n_capabilities, c->n_caps);
		assert_int_equal(init.capabilities[0], c->cap0);
	}
}

static void test_init_many_capabilities_capped(void **state)
{
	uint8_t payload[8 + 4 * 40];
	struct vccid_vscard_init init;
	size_t i;

	(void)state;
	memcpy(payload, "VSCD\0\0\0\2", 8);
	for (i = 0; i < 40; i++) {
		payload[8 + 4 * i] = 0;
		payload[9 + 4 * i] = 0;
		payload[10 + 4 * i] = 0;
		payload[11 + 4 * i] = (uint8_t)i;
	}
	assert_int_equal(vccid_vscard_init_decode(payload, sizeof(payload), &init), VCCID_OK);
	assert_int_equal(init.n_capabilities, VCCID_VSCARD_INIT_MAX_CAPS);
	assert_int_equal(init.capabilities[VCCID_VSCARD_INIT_MAX_CAPS - 1], VCCID_VSCARD_INIT_MAX_CAPS - 1);
}

static void test_message_encode_limits(void **state)
{
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE + 4];
	static const uint8_t apdu[4] = { 0x00, 0xA4, 0x04, 0x00 };

	(void)state;
	assert_int_equal(vccid_vscard_message_encode(buf, sizeof(buf), VCCID_VSCARD_APDU, 3, apdu, 4), 16);
	assert_memory_equal(buf + 12, apdu, 4);
	assert_int_equal(vccid_vscard_message_encode(buf, sizeof(buf) - 1, VCCID_VSCARD_APDU, 3, apdu, 4), 0);
	assert_int_equal(vccid_vscard_message_encode(buf, 11, VCCID_VSCARD_FLUSH, 0, NULL, 0), 0);
	assert_int_equal(vccid_vscard_message_encode(buf, 12, VCCID_VSCARD_FLUSH, 0, NULL, 0), 12);
}

/* Feeds @p len bytes in chunks of @p chunk; returns messages seen or a negative error. */
static int feed(struct vccid_vscard_framer *framer, const uint8_t *data, size_t len, size_t chunk,
		struct vccid_vscard_header *last, uint8_t *last_payload)
{
	int messages = 0;

	while (len > 0) {
		size_t want;
		uint8_t *space = vccid_vscard_framer_space(framer, &want);
		size_t n = want < chunk ? want : chunk;
		const uint8_t *payload;
		int rv;

		if (n > len)
			n = len;
		memcpy(space, data, n);
		data += n;
		len -= n;
		rv = vccid_vscard_framer_fill(framer, n, last, &payload);
		if (rv < 0)
			return rv;
		if (rv == 1) {
			messages++;
			memcpy(last_payload, payload, last->length);
		}
	}
	return messages;
}

static void test_framer_chunks(void **state)
{
	uint8_t stream[200];
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE + 64];
	uint8_t payload[64];
	static const uint8_t atr[] = { 0x3B, 0x02, 0x14, 0x50 };
	struct vccid_vscard_framer framer;
	struct vccid_vscard_header header;
	size_t len = 0;
	size_t chunk;

	(void)state;
	len += vccid_vscard_init_encode(stream + len, sizeof(stream) - len, 0, 0);
	len += vccid_vscard_message_encode(stream + len, sizeof(stream) - len, VCCID_VSCARD_FLUSH, 0, NULL, 0);
	len += vccid_vscard_message_encode(stream + len, sizeof(stream) - len, VCCID_VSCARD_ATR, 7, atr, 4);
	for (chunk = 1; chunk <= len; chunk++) {
		vccid_vscard_framer_init(&framer, buf, 64);
		assert_int_equal(feed(&framer, stream, len, chunk, &header, payload), 3);
		assert_int_equal(header.type, VCCID_VSCARD_ATR);
		assert_int_equal(header.reader_id, 7);
		assert_int_equal(header.length, 4);
		assert_memory_equal(payload, atr, 4);
	}
}

struct lie_case {
	const char *name;
	uint32_t length;
	int rv;
};

static const struct lie_case lie_cases[] = {
	{ "length at the limit", 64, 0 },           /* waits for more bytes */
	{ "one over the limit", 65, VCCID_EPROTO },
	{ "huge length", 0xFFFFFFF0u, VCCID_EPROTO },
	{ "all ones", 0xFFFFFFFFu, VCCID_EPROTO },
};

static void test_framer_lying_lengths(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lie_cases) / sizeof(lie_cases[0]); i++) {
		uint8_t buf[VCCID_VSCARD_HEADER_SIZE + 64];
		uint8_t header_bytes[VCCID_VSCARD_HEADER_SIZE];
		uint8_t payload[64];
		struct vccid_vscard_framer framer;
		struct vccid_vscard_header header;

		print_message("# framer: %s\n", lie_cases[i].name);
		vccid_vscard_framer_init(&framer, buf, 64);
		vccid_vscard_header_encode(header_bytes, VCCID_VSCARD_APDU, 0, lie_cases[i].length);
		assert_int_equal(feed(&framer, header_bytes, sizeof(header_bytes), 5, &header,
				      payload), lie_cases[i].rv);
	}
}

static void test_framer_truncated_header(void **state)
{
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE + 64];
	uint8_t payload[64];
	struct vccid_vscard_framer framer;
	struct vccid_vscard_header header;
	size_t want;

	(void)state;
	vccid_vscard_framer_init(&framer, buf, 64);
	/* 11 of 12 header bytes: no message yet, and it asks for exactly one more. */
	assert_int_equal(feed(&framer, vscclient_init, 11, 11, &header, payload), 0);
	(void)vccid_vscard_framer_space(&framer, &want);
	assert_int_equal(want, 1);
	/* The rest of the Init completes it. */
	assert_int_equal(feed(&framer, vscclient_init + 11, sizeof(vscclient_init) - 11, 3,
			      &header, payload), 1);
	assert_int_equal(header.type, VCCID_VSCARD_INIT);
	assert_int_equal(header.length, 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_init_encode_matches_vscclient),
		cmocka_unit_test(test_error_encode),
		cmocka_unit_test(test_init_decode),
		cmocka_unit_test(test_init_many_capabilities_capped),
		cmocka_unit_test(test_message_encode_limits),
		cmocka_unit_test(test_framer_chunks),
		cmocka_unit_test(test_framer_lying_lengths),
		cmocka_unit_test(test_framer_truncated_header),
	};

	return cmocka_run_group_tests_name("vscard-proto", tests, NULL, NULL);
}
