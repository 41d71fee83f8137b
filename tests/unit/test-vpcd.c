/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vpcd codec and card state machine through the in-memory transport, and a vpcd card in a slot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/vpcd/card.h"
#include "backends/vpcd/proto.h"
#include "corelib/error.h"
#include "corelib/slot.h"
#include "tests/unit/table.h"
#include "tests/unit/vpcd-fakeio.h"

/* vicc's iso7816 ATR, as it answers GET ATR: a length of 11, then the ATR. */
#define ATR_BYTES 0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B
#define ATR_MSG 0x00, 0x0B, ATR_BYTES
static const uint8_t vicc_atr[] = { ATR_BYTES };

/* ------------------------------------------------------------------ codec */

static void test_encode(void **state)
{
	static uint8_t payload[0x10000];
	static uint8_t out[0x10002];
	size_t n = 0;

	(void)state;
	payload[0] = VCCID_VPCD_CTRL_ATR;
	assert_int_equal(vccid_vpcd_encode(payload, 1, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, ((const uint8_t[]){ 0x00, 0x01, 0x04 }), 3);
	assert_int_equal(vccid_vpcd_encode(NULL, 0, out, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0] | out[1], 0);
	assert_int_equal(vccid_vpcd_encode(payload, 0xFFFF, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0x10001);
	assert_int_equal(out[0], 0xFF);
	assert_int_equal(out[1], 0xFF);
	assert_int_equal(vccid_vpcd_encode(payload, 0x10000, out, sizeof(out), &n), VCCID_EINVAL);
	assert_int_equal(vccid_vpcd_encode(payload, 4, out, 5, &n), VCCID_ENOSPC);
}

static void test_framer(void **state)
{
	static const uint8_t stream[] = { 0x00, 0x02, 0x90, 0x00, 0x00, 0x00, 0x00, 0x03, 1, 2, 3 };
	uint8_t buf[8];
	struct vccid_vpcd_framer f;
	const uint8_t *p;
	size_t used, len, i, got = 0;
	int rv;

	(void)state;
	/* Byte by byte: three messages, 2, 0 and 3 bytes long. */
	vccid_vpcd_framer_init(&f, buf, sizeof(buf));
	for (i = 0; i < sizeof(stream); i++) {
		rv = vccid_vpcd_framer_feed(&f, stream + i, 1, &used);
		assert_int_equal(used, 1);
		if (rv == 1) {
			p = vccid_vpcd_framer_payload(&f, &len);
			assert_int_equal(len, got == 0 ? 2 : got == 1 ? 0 : 3);
			if (got == 2)
				assert_memory_equal(p, ((const uint8_t[]){ 1, 2, 3 }), 3);
			got++;
		} else {
			assert_int_equal(rv, 0);
			assert_true(vccid_vpcd_framer_partial(&f));
		}
	}
	assert_int_equal(got, 3);
	/* All at once: one message per call, the rest left. */
	vccid_vpcd_framer_init(&f, buf, sizeof(buf));
	assert_int_equal(vccid_vpcd_framer_feed(&f, stream, sizeof(stream), &used), 1);
	assert_int_equal(used, 4);
	assert_int_equal(vccid_vpcd_framer_feed(&f, stream + 4, sizeof(stream) - 4, &used), 1);
	assert_int_equal(used, 2);
	assert_int_equal(vccid_vpcd_framer_feed(&f, stream + 6, sizeof(stream) - 6, &used), 1);
	assert_int_equal(used, 5);
	assert_false(vccid_vpcd_framer_partial(&f));
	/* A length over the capacity cannot be followed. */
	vccid_vpcd_framer_init(&f, buf, 2);
	assert_int_equal(vccid_vpcd_framer_feed(&f, (const uint8_t[]){ 0x00, 0x03 }, 2, &used),
			 VCCID_EPROTO);
}

/* ------------------------------------------------------------------ card */

struct fixture {
	struct vpcd_fakeio fake;
	vccid_vpcd_card *card;
};

static struct fixture *fixture_new(const uint8_t *in, size_t len)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	vpcd_fakeio_init(&fx->fake, in, len);
	fx->card = vccid_vpcd_card_new(&fx->fake.io, "fake:1", 100);
	assert_non_null(fx->card);
	return fx;
}

static void fixture_free(struct fixture *fx)
{
	vccid_vpcd_card_free(fx->card);
	free(fx);
}

/* A card past its first GET ATR, its input positioned after the first ATR. */
static struct fixture *ready_card(const uint8_t *in, size_t len)
{
	struct fixture *fx = fixture_new(in, len);

	assert_int_equal(vccid_vpcd_card_start(fx->card), 0);
	assert_int_equal(vccid_vpcd_card_serve(fx->card), 1);
	assert_true(vccid_vpcd_card_ready(fx->card));
	fx->fake.out_len = 0;
	fx->fake.sends = 0;
	return fx;
}

static void test_first_atr(void **state)
{
	static const uint8_t in[] = { ATR_MSG };
	struct fixture *fx = fixture_new(in, sizeof(in));
	uint8_t atr[VCCID_MAX_ATR];

	(void)state;
	assert_int_equal(vccid_vpcd_card_start(fx->card), 0);
	assert_int_equal(fx->fake.out_len, 3);
	assert_memory_equal(fx->fake.out, ((const uint8_t[]){ 0x00, 0x01, 0x04 }), 3);
	fx->fake.chunk = 1;   /* the ATR in pieces */
	assert_int_equal(vccid_vpcd_card_serve(fx->card), 0);
	assert_true(vccid_vpcd_card_partial(fx->card));
	while (!vccid_vpcd_card_ready(fx->card))
		assert_true(vccid_vpcd_card_serve(fx->card) >= 0);
	assert_int_equal(vccid_vpcd_card_atr(fx->card, atr), sizeof(vicc_atr));
	assert_memory_equal(atr, vicc_atr, sizeof(vicc_atr));
	assert_false(vccid_vpcd_card_failed(fx->card));
	assert_int_equal(fx->fake.failed_calls, 0);
	/* Idle: nothing there is fine, any byte is unsolicited. */
	assert_int_equal(vccid_vpcd_card_serve(fx->card), 0);
	assert_int_equal(vccid_vpcd_card_input(fx->card, (const uint8_t[]){ 0 }, 1), VCCID_EPROTO);
	assert_true(vccid_vpcd_card_failed(fx->card));
	assert_string_equal(vccid_vpcd_card_why(fx->card), "unsolicited bytes");
	assert_int_equal(fx->fake.failed_calls, 1);
	fixture_free(fx);
}

/* The first answer: what it is, and what the card makes of it. */
struct first_case {
	const char *name;
	uint8_t in[40];
	size_t len;
	bool eof;
	int rv;
	const char *why;
	bool whole;
};

static const struct first_case first_cases[] = {
	{ "empty ATR: no card (virt_cacard after removal)", { 0x00, 0x00 }, 2, false, VCCID_ENOCARD,
	  "card gone (empty ATR)", false },
	{ "ATR with TS 00", { 0x00, 0x02, 0x00, 0x00 }, 4, false, VCCID_EPROTO, "invalid ATR",
	  false },
	{ "ATR of 34 bytes", { 0x00, 0x22, 0x3B }, 36, false, VCCID_EPROTO, "invalid ATR", false },
	{ "ATR then a stray byte", { ATR_MSG, 0x00 }, 14, false, VCCID_EPROTO,
	  "unsolicited bytes after the ATR", true },
	{ "EOF before the ATR", { 0x00 }, 1, true, VCCID_EIO, "connection closed", false },
};

static void test_first_row(void **state)
{
	const struct first_case *c = *state;
	struct fixture *fx = fixture_new(c->in, c->len);
	int rv;

	fx->fake.eof = c->eof;
	fx->fake.whole = c->whole;
	assert_int_equal(vccid_vpcd_card_start(fx->card), 0);
	rv = vccid_vpcd_card_serve(fx->card);
	if (rv == 0)
		rv = vccid_vpcd_card_serve(fx->card);
	assert_int_equal(rv, c->rv);
	assert_false(vccid_vpcd_card_ready(fx->card));
	assert_true(vccid_vpcd_card_failed(fx->card));
	assert_string_equal(vccid_vpcd_card_why(fx->card), c->why);
	assert_int_equal(fx->fake.failed_calls, 1);
	fixture_free(fx);
}

static void test_power_cycle(void **state)
{
	static const uint8_t in[] = { ATR_MSG, ATR_MSG, ATR_MSG };
	static const uint8_t sent[] = { 0x00, 0x01, 0x01, 0x00, 0x01, 0x04,   /* on, GET ATR */
					0x00, 0x01, 0x00,                     /* off */
					0x00, 0x01, 0x02, 0x00, 0x01, 0x04 }; /* reset, GET ATR */
	struct fixture *fx = ready_card(in, sizeof(in));
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);

	(void)state;
	assert_int_equal(vccid_vpcd_card_ops.power(fx->card, VCCID_POWER_UP, atr, &atr_len), 0);
	assert_int_equal(atr_len, sizeof(vicc_atr));
	assert_memory_equal(atr, vicc_atr, sizeof(vicc_atr));
	assert_int_equal(vccid_vpcd_card_ops.power(fx->card, VCCID_POWER_DOWN, NULL, NULL), 0);
	atr_len = sizeof(atr);
	assert_int_equal(vccid_vpcd_card_ops.power(fx->card, VCCID_POWER_RESET, atr, &atr_len), 0);
	assert_int_equal(atr_len, sizeof(vicc_atr));
	assert_int_equal(fx->fake.out_len, sizeof(sent));
	assert_memory_equal(fx->fake.out, sent, sizeof(sent));
	/* Each message went out in one send. */
	assert_int_equal(fx->fake.sends, 5);
	assert_false(vccid_vpcd_card_failed(fx->card));
	fixture_free(fx);
}

static void test_power_on_empty_atr(void **state)
{
	static const uint8_t in[] = { ATR_MSG, 0x00, 0x00 };
	struct fixture *fx = ready_card(in, sizeof(in));
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);

	(void)state;
	assert_int_equal(vccid_vpcd_card_ops.power(fx->card, VCCID_POWER_UP, atr, &atr_len),
			 VCCID_ENOCARD);
	assert_true(vccid_vpcd_card_failed(fx->card));
	/* A failed card refuses further work without touching the transport. */
	fx->fake.out_len = 0;
	atr_len = sizeof(atr);
	assert_int_equal(vccid_vpcd_card_ops.power(fx->card, VCCID_POWER_UP, atr, &atr_len),
			 VCCID_ENOCARD);
	assert_int_equal(fx->fake.out_len, 0);
	fixture_free(fx);
}

/* One transmit after the first ATR: the peer's answer bytes and what comes of them. */
struct xfer_case {
	const char *name;
	uint8_t answer[16];
	size_t len;
	bool eof;
	int rv;
	size_t rsp_len;           /* on success */
	const char *why;          /* NULL: the card stays usable */
	bool whole;
};

static const struct xfer_case xfer_cases[] = {
	{ "answer 90 00", { 0x00, 0x02, 0x90, 0x00 }, 4, false, 0, 2, NULL, false },
	{ "answer with data", { 0x00, 0x04, 0x01, 0x02, 0x90, 0x00 }, 6, false, 0, 4, NULL, false },
	{ "empty answer: card gone", { 0x00, 0x00 }, 2, false, VCCID_ENOCARD, 0,
	  "card gone (empty answer)", false },
	{ "1-byte answer", { 0x00, 0x01, 0x90 }, 3, false, VCCID_EPROTO, 0,
	  "an answer without SW1 SW2", false },
	{ "stall: no answer", { 0 }, 0, false, VCCID_ETIMEDOUT, 0, "stalled: no answer in time",
	  false },
	{ "lying length: 10 announced, 3 sent", { 0x00, 0x0A, 0x90, 0x00, 0x00 }, 5, false,
	  VCCID_ETIMEDOUT, 0, "stalled: no answer in time", false },
	{ "disconnect mid-frame", { 0x00, 0x04, 0x90 }, 3, true, VCCID_EIO, 0,
	  "connection closed", false },
	{ "disconnect mid-header", { 0x00 }, 1, true, VCCID_EIO, 0, "connection closed", false },
	{ "garbage after the answer", { 0x00, 0x02, 0x90, 0x00, 0xFF }, 5, false, VCCID_EPROTO, 0,
	  "unsolicited bytes after an answer", true },
};

static void test_xfer_row(void **state)
{
	const struct xfer_case *c = *state;
	static const uint8_t apdu[] = { 0x00, 0x84, 0x00, 0x00, 0x08 };
	uint8_t in[sizeof(((struct xfer_case *)0)->answer) + 13] = { ATR_MSG };
	struct fixture *fx;
	uint8_t rsp[64];
	size_t rsp_len = sizeof(rsp);
	int rv;

	memcpy(in + 13, c->answer, c->len);
	fx = ready_card(in, 13 + c->len);
	fx->fake.eof = c->eof;
	fx->fake.whole = c->whole;
	rv = vccid_vpcd_card_ops.transmit(fx->card, apdu, sizeof(apdu), rsp, &rsp_len);
	assert_int_equal(rv, c->rv);
	assert_int_equal(fx->fake.out_len, 2 + sizeof(apdu));
	assert_memory_equal(fx->fake.out, ((const uint8_t[]){ 0x00, 0x05 }), 2);
	assert_memory_equal(fx->fake.out + 2, apdu, sizeof(apdu));
	if (c->why == NULL) {
		assert_int_equal(rsp_len, c->rsp_len);
		assert_memory_equal(rsp, c->answer + 2, c->rsp_len);
		assert_false(vccid_vpcd_card_failed(fx->card));
	} else {
		assert_true(vccid_vpcd_card_failed(fx->card));
		assert_string_equal(vccid_vpcd_card_why(fx->card), c->why);
		assert_int_equal(fx->fake.failed_calls, 1);
	}
	fixture_free(fx);
}

/* The largest frames both ways: a 0xFFFF-byte C-APDU and a 0xFFFF-byte R-APDU. */
static void test_max_frames(void **state)
{
	size_t in_len = 13 + 2 + 0xFFFF;
	uint8_t *in = malloc(in_len);
	uint8_t *cmd = malloc(0x10000);
	uint8_t *rsp = malloc(VCCID_MAX_RESPONSE);
	size_t rsp_len = VCCID_MAX_RESPONSE;
	struct fixture *fx;

	(void)state;
	assert_non_null(in);
	assert_non_null(cmd);
	assert_non_null(rsp);
	memcpy(in, (const uint8_t[]){ ATR_MSG }, 13);
	in[13] = 0xFF;
	in[14] = 0xFF;
	memset(in + 15, 0xA5, 0xFFFF);
	memset(cmd, 0x5A, 0x10000);
	fx = ready_card(in, in_len);
	fx->fake.chunk = 1000;   /* as TCP brings it: in pieces */
	assert_int_equal(vccid_vpcd_card_ops.transmit(fx->card, cmd, 0xFFFF, rsp, &rsp_len), 0);
	assert_int_equal(rsp_len, 0xFFFF);
	assert_int_equal(rsp[0], 0xA5);
	assert_int_equal(rsp[0xFFFE], 0xA5);
	assert_int_equal(fx->fake.out_len, 2 + 0xFFFF);
	assert_int_equal(fx->fake.out[0], 0xFF);
	assert_int_equal(fx->fake.out[1], 0xFF);
	assert_int_equal(fx->fake.sends, 1);
	/* One byte more does not fit a frame: refused, the card stays. */
	assert_int_equal(vccid_vpcd_card_ops.transmit(fx->card, cmd, 0x10000, rsp, &rsp_len),
			 VCCID_EINVAL);
	assert_false(vccid_vpcd_card_failed(fx->card));
	assert_true(VCCID_VPCD_MAX_APDU_DATA + 4 + 3 + 2 == 0xFFFF);
	fixture_free(fx);
	free(in);
	free(cmd);
	free(rsp);
}

/* An answer larger than the caller's buffer: refused, the stream stays in step. */
static void test_small_buffer(void **state)
{
	static const uint8_t in[] = { ATR_MSG, 0x00, 0x04, 1, 2, 0x90, 0x00, 0x00, 0x02, 0x90, 0x00 };
	static const uint8_t apdu[] = { 0x00, 0xB0, 0x00, 0x00, 0x02 };
	struct fixture *fx = ready_card(in, sizeof(in));
	uint8_t rsp[4];
	size_t rsp_len = 3;

	(void)state;
	assert_int_equal(vccid_vpcd_card_ops.transmit(fx->card, apdu, sizeof(apdu), rsp, &rsp_len),
			 VCCID_ENOSPC);
	rsp_len = sizeof(rsp);
	assert_int_equal(vccid_vpcd_card_ops.transmit(fx->card, apdu, sizeof(apdu), rsp, &rsp_len),
			 0);
	assert_int_equal(rsp_len, 2);
	fixture_free(fx);
}

static void test_write_failure(void **state)
{
	static const uint8_t in[] = { ATR_MSG };
	static const uint8_t apdu[] = { 0x00, 0x84, 0x00, 0x00, 0x08 };
	struct fixture *fx = ready_card(in, sizeof(in));
	uint8_t rsp[16];
	size_t rsp_len = sizeof(rsp);

	(void)state;
	fx->fake.send_rv = VCCID_ETIMEDOUT;
	assert_int_equal(vccid_vpcd_card_ops.transmit(fx->card, apdu, sizeof(apdu), rsp, &rsp_len),
			 VCCID_ETIMEDOUT);
	assert_string_equal(vccid_vpcd_card_why(fx->card), "stalled: it does not read");
	fixture_free(fx);
}

/* In a slot: insertion with the first ATR, power and APDUs through the slot, removal. */
static void test_in_slot(void **state)
{
	static const uint8_t in[] = { ATR_MSG, ATR_MSG, 0x00, 0x02, 0x6A, 0x82 };
	static const uint8_t apdu[] = { 0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00 };
	struct fixture *fx = ready_card(in, sizeof(in));
	vccid_slot *slot = vccid_slot_new();
	struct vccid_slot_status status;
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);
	uint8_t rsp[16];
	size_t rsp_len = sizeof(rsp);

	(void)state;
	assert_non_null(slot);
	assert_int_equal(vccid_vpcd_card_insert(fx->card, slot, "vpcd fake"), 0);
	assert_true(vccid_slot_present(slot));
	assert_true(vccid_vpcd_card_in_slot(fx->card));
	assert_int_equal(vccid_vpcd_card_insert(fx->card, slot, "again"), VCCID_EBUSY);
	assert_int_equal(vccid_slot_power(slot, VCCID_POWER_UP, atr, &atr_len), 0);
	assert_int_equal(atr_len, sizeof(vicc_atr));
	assert_int_equal(vccid_slot_transmit(slot, apdu, sizeof(apdu), rsp, &rsp_len), 0);
	assert_int_equal(rsp_len, 2);
	assert_int_equal(rsp[0], 0x6A);
	vccid_slot_get_status(slot, &status);
	assert_string_equal(status.backend, "vpcd");
	/* Removal (vccid-ctl, shutdown) releases the card: the transport is told to drop it. */
	assert_int_equal(vccid_slot_remove(slot), 0);
	assert_true(vccid_vpcd_card_failed(fx->card));
	assert_int_equal(fx->fake.failed_calls, 1);
	vccid_slot_free(slot);
	fixture_free(fx);
}

/*
 * vccid-ctl remove and insert: the card leaves its slot powered off with the
 * connection up, comes back with power on and a fresh ATR, and works again.
 */
static void test_remove_insert(void **state)
{
	static const uint8_t in[] = { ATR_MSG, ATR_MSG, 0x00, 0x02, 0x90, 0x00 };
	static const uint8_t off[] = { 0x00, 0x01, 0x00 };
	static const uint8_t on_atr[] = { 0x00, 0x01, 0x01, 0x00, 0x01, 0x04 };
	static const uint8_t apdu[] = { 0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00 };
	struct fixture *fx = ready_card(in, sizeof(in));
	vccid_slot *slot = vccid_slot_new();
	uint8_t rsp[16];
	size_t rsp_len = sizeof(rsp);

	(void)state;
	assert_non_null(slot);
	/* Not out of a slot: nothing to restart. */
	assert_int_equal(vccid_vpcd_card_insert(fx->card, slot, "vpcd fake"), 0);
	assert_int_equal(vccid_vpcd_card_restart(fx->card), VCCID_EBUSY);
	vccid_vpcd_card_keep(fx->card);
	assert_int_equal(vccid_slot_remove(slot), 0);
	assert_false(vccid_slot_present(slot));
	assert_false(vccid_vpcd_card_failed(fx->card));
	assert_int_equal(fx->fake.failed_calls, 0);
	assert_false(vccid_vpcd_card_in_slot(fx->card));
	assert_true(vccid_vpcd_card_ready(fx->card));
	assert_int_equal(vccid_vpcd_card_atr_asked(fx->card), 0);
	assert_int_equal(fx->fake.out_len, sizeof(off));
	assert_memory_equal(fx->fake.out, off, sizeof(off));
	/* Out of its slot and idle: nothing comes (serve finds nothing), nothing goes. */
	assert_int_equal(vccid_vpcd_card_serve(fx->card), 0);
	fx->fake.out_len = 0;
	assert_int_equal(vccid_vpcd_card_restart(fx->card), 0);
	assert_int_equal(fx->fake.out_len, sizeof(on_atr));
	assert_memory_equal(fx->fake.out, on_atr, sizeof(on_atr));
	assert_false(vccid_vpcd_card_ready(fx->card));
	assert_true(vccid_vpcd_card_atr_asked(fx->card) > 0);
	assert_int_equal(vccid_vpcd_card_insert(fx->card, slot, "early"), VCCID_EBUSY);
	assert_int_equal(vccid_vpcd_card_restart(fx->card), VCCID_EBUSY);
	assert_int_equal(vccid_vpcd_card_serve(fx->card), 1);
	assert_int_equal(vccid_vpcd_card_atr_asked(fx->card), 0);
	assert_int_equal(vccid_vpcd_card_insert(fx->card, slot, "vpcd fake"), 0);
	assert_int_equal(vccid_vpcd_card_ops.transmit(fx->card, apdu, sizeof(apdu), rsp, &rsp_len), 0);
	assert_int_equal(rsp_len, 2);
	/* A removal that is not kept ends the card. */
	assert_int_equal(vccid_slot_remove(slot), 0);
	assert_true(vccid_vpcd_card_failed(fx->card));
	assert_int_equal(vccid_vpcd_card_restart(fx->card), VCCID_EIO);
	vccid_slot_free(slot);
	fixture_free(fx);
}

/* A card out of its slot after remove: any byte from the peer is unsolicited. */
static void test_bytes_while_out(void **state)
{
	static const uint8_t in[] = { ATR_MSG, 0x00, 0x02, 0x90, 0x00 };
	struct fixture *fx = ready_card(in, sizeof(in));
	vccid_slot *slot = vccid_slot_new();

	(void)state;
	fx->fake.whole = true;
	assert_int_equal(vccid_vpcd_card_insert(fx->card, slot, "vpcd fake"), 0);
	vccid_vpcd_card_keep(fx->card);
	assert_int_equal(vccid_slot_remove(slot), 0);
	assert_int_equal(vccid_vpcd_card_serve(fx->card), VCCID_EPROTO);
	assert_string_equal(vccid_vpcd_card_why(fx->card), "unsolicited bytes");
	assert_int_equal(fx->fake.failed_calls, 1);
	vccid_slot_free(slot);
	fixture_free(fx);
}

/*
 * The transport goes while the card is in its slot: the card fails without
 * touching the transport again, and lives until the slot lets it go (the
 * sanitizers check the reference counting).
 */
static void test_detach_in_slot(void **state)
{
	static const uint8_t in[] = { ATR_MSG };
	static const uint8_t apdu[] = { 0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00 };
	struct fixture *fx = ready_card(in, sizeof(in));
	vccid_slot *slot = vccid_slot_new();
	uint8_t rsp[16];
	size_t rsp_len = sizeof(rsp);

	(void)state;
	assert_int_equal(vccid_vpcd_card_insert(fx->card, slot, "vpcd fake"), 0);
	vccid_vpcd_card_keep(fx->card);
	vccid_vpcd_card_detach(fx->card);
	assert_true(vccid_vpcd_card_failed(fx->card));
	assert_string_equal(vccid_vpcd_card_why(fx->card), "connection dropped");
	assert_int_equal(fx->fake.failed_calls, 0);
	assert_int_equal(vccid_vpcd_card_ops.transmit(fx->card, apdu, sizeof(apdu), rsp, &rsp_len),
			 VCCID_ENOCARD);
	vccid_vpcd_card_free(fx->card);     /* the transport's reference */
	fx->card = NULL;
	assert_int_equal(fx->fake.out_len, 0);
	/* A kept removal of a detached card sends nothing either. */
	assert_int_equal(vccid_slot_remove(slot), 0);
	assert_int_equal(fx->fake.out_len, 0);
	assert_int_equal(fx->fake.sends, 0);
	vccid_slot_free(slot);
	fixture_free(fx);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_framer),
		cmocka_unit_test(test_first_atr),
		cmocka_unit_test(test_power_cycle),
		cmocka_unit_test(test_power_on_empty_atr),
		cmocka_unit_test(test_max_frames),
		cmocka_unit_test(test_small_buffer),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_in_slot),
		cmocka_unit_test(test_remove_insert),
		cmocka_unit_test(test_bytes_while_out),
		cmocka_unit_test(test_detach_in_slot),
	};
	const struct table_part parts[] = {
		TABLE_PART(first_cases, test_first_row, NULL),
		TABLE_PART(xfer_cases, test_xfer_row, NULL),
	};

	return table_run("vpcd", parts, 2, fixed, sizeof(fixed) / sizeof(fixed[0]));
}
