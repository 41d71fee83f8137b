/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the CCID device engine and the USB descriptors over real slots holding fake cards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "ccid/ccid.h"
#include "corelib/error.h"
#include "corelib/slot.h"
#include "ccid/usb-desc.h"
#include "tests/cac-atr.h"
#include "tests/unit/fake-card.h"

/* ------------------------------------------------------------------ fixture */

/* The table row being run, named in failure reports. */
static char current_case[64];

struct fixture {
	vccid_slot *slots[2];
	struct fake_card cards[2];
	vccid_ccid *ccid;        /* default dwMaxCCIDMessageLength */
	vccid_ccid *small;       /* dwMaxCCIDMessageLength 271: chains */
	uint8_t *out;
	size_t out_len;
	uint8_t *msg;
};

enum { SMALL_MAX = VCCID_CCID_MIN_MESSAGE, SMALL_ROOM = SMALL_MAX - VCCID_CCID_HEADER_SIZE };

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vccid_ccid_params small = { .max_message_length = SMALL_MAX };
	size_t i;

	if (f == NULL)
		return -1;
	current_case[0] = '\0';
	for (i = 0; i < 2; i++) {
		f->slots[i] = vccid_slot_new();
		if (f->slots[i] == NULL)
			return -1;
		fake_card_init(&f->cards[i], FAKE_OK);
		f->cards[i].answers = FAKE_ANSWER_LENGTH;
	}
	f->ccid = vccid_ccid_new(f->slots, 2, NULL);
	f->small = vccid_ccid_new(f->slots, 2, &small);
	f->out = malloc(VCCID_CCID_MAX_MESSAGE);
	f->msg = malloc(VCCID_CCID_MAX_MESSAGE + 16);
	if (f->ccid == NULL || f->small == NULL || f->out == NULL || f->msg == NULL)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	size_t i;

	vccid_ccid_free(f->ccid);
	vccid_ccid_free(f->small);
	for (i = 0; i < 2; i++) {
		vccid_slot_free(f->slots[i]);
		fake_card_destroy(&f->cards[i]);
	}
	free(f->out);
	free(f->msg);
	free(f);
	return 0;
}

static void insert(struct fixture *f, size_t i, enum fake_card_mode mode)
{
	f->cards[i].mode = mode;
	assert_int_equal(fake_card_insert(f->slots[i], &f->cards[i], "fake"), VCCID_OK);
}

static size_t mkmsg(uint8_t *m, uint8_t type, uint8_t slot, uint8_t seq, uint8_t b7, uint8_t b8,
		    uint8_t b9, const uint8_t *data, size_t len)
{
	m[0] = type;
	m[1] = (uint8_t)len;
	m[2] = (uint8_t)(len >> 8);
	m[3] = (uint8_t)(len >> 16);
	m[4] = (uint8_t)(len >> 24);
	m[5] = slot;
	m[6] = seq;
	m[7] = b7;
	m[8] = b8;
	m[9] = b9;
	if (len > 0)
		memcpy(m + 10, data, len);
	return 10 + len;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Runs one message; checks the answer is whole, echoes bSlot and bSeq. */
static const uint8_t *run(struct fixture *f, vccid_ccid *c, const uint8_t *m, size_t len)
{
	assert_int_equal(vccid_ccid_bulk_out(c, m, len, f->out, VCCID_CCID_MAX_MESSAGE,
					     &f->out_len), VCCID_OK);
	assert_true(f->out_len >= 10);
	assert_true(f->out_len <= vccid_ccid_max_message_length(c));
	assert_int_equal(le32(f->out + 1), f->out_len - 10);
	assert_int_equal(f->out[5], m[5]);
	assert_int_equal(f->out[6], m[6]);
	assert_true(f->out[0] >= VCCID_RDR_to_PC_DataBlock &&
		    f->out[0] <= VCCID_RDR_to_PC_DataRateAndClockFrequency);
	return f->out;
}

/* Sends a header-only command. */
static const uint8_t *cmd(struct fixture *f, vccid_ccid *c, uint8_t type, uint8_t slot,
			  uint8_t seq, uint8_t b7)
{
	size_t n = mkmsg(f->msg, type, slot, seq, b7, 0, 0, NULL, 0);

	return run(f, c, f->msg, n);
}

static const uint8_t *xfr(struct fixture *f, vccid_ccid *c, uint8_t slot, uint8_t seq,
			  uint16_t level, const uint8_t *apdu, size_t len)
{
	size_t n = mkmsg(f->msg, VCCID_PC_to_RDR_XfrBlock, slot, seq, 0, (uint8_t)level,
			 (uint8_t)(level >> 8), apdu, len);

	return run(f, c, f->msg, n);
}

#define ICC_ACTIVE VCCID_CCID_ICC_PRESENT_ACTIVE
#define ICC_INACTIVE VCCID_CCID_ICC_PRESENT_INACTIVE
#define ICC_ABSENT VCCID_CCID_ICC_ABSENT

/* Checks an answer's type and bStatus/bError; reports the caller's line on failure. */
#define expect(o, type, icc, status, err) expect_at(o, type, icc, status, err, __LINE__)

static void expect_at(const uint8_t *o, uint8_t type, uint8_t icc, uint8_t status, uint8_t err,
		      int line)
{
	if (o[0] != type || (o[7] & 0x03) != icc || o[7] >> 6 != status ||
	    (status == VCCID_CCID_CMD_FAILED && o[8] != err))
		print_error("line %d%s%s: answer %02X status %02X error %02X\n", line,
			    current_case[0] ? ", case " : "", current_case, o[0], o[7], o[8]);
	assert_int_equal(o[0], type);
	assert_int_equal(o[7] & 0x03, icc);
	assert_int_equal(o[7] >> 6, status);
	assert_int_equal(o[7] & 0x3C, 0);
	if (status == VCCID_CCID_CMD_FAILED) {
		assert_int_equal(o[8], err);
		assert_int_equal(le32(o + 1), 0);
	}
}

static void power_on(struct fixture *f, vccid_ccid *c, uint8_t slot)
{
	const uint8_t *o = cmd(f, c, VCCID_PC_to_RDR_IccPowerOn, slot, 0x11, 0);

	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
}

/* ------------------------------------------------------------------ construction */

static void test_new_bad_args(void **state)
{
	struct fixture *f = *state;
	struct vccid_ccid_params p = { 0 };
	vccid_slot *with_null[2] = { f->slots[0], NULL };
	vccid_slot *nine[9];
	size_t i;

	for (i = 0; i < 9; i++)
		nine[i] = f->slots[i % 2];
	assert_null(vccid_ccid_new(NULL, 1, NULL));
	assert_null(vccid_ccid_new(f->slots, 0, NULL));
	assert_null(vccid_ccid_new(nine, 9, NULL));
	assert_null(vccid_ccid_new(with_null, 2, NULL));
	p.max_message_length = VCCID_CCID_MIN_MESSAGE - 1;
	assert_null(vccid_ccid_new(f->slots, 2, &p));
	p.max_message_length = VCCID_CCID_MAX_MESSAGE + 1;
	assert_null(vccid_ccid_new(f->slots, 2, &p));
	vccid_ccid *eight = vccid_ccid_new(nine, 8, NULL);
	assert_non_null(eight);
	vccid_ccid_free(eight);
	vccid_ccid_free(NULL);
	assert_int_equal(vccid_ccid_max_message_length(f->ccid), 65554);
	assert_int_equal(vccid_ccid_max_message_length(f->small), 271);
}

static void test_message_size(void **state)
{
	static const uint8_t hdr[10] = { VCCID_PC_to_RDR_XfrBlock, 0x05, 0x01, 0, 0, 0, 0, 0, 0, 0 };

	(void)state;
	assert_int_equal(vccid_ccid_message_size(hdr, 9), 0);
	assert_int_equal(vccid_ccid_message_size(NULL, 10), 0);
	assert_int_equal(vccid_ccid_message_size(hdr, 10), 10 + 0x105);
}

/* ------------------------------------------------------------------ framing errors */

static void test_short_message(void **state)
{
	struct fixture *f = *state;
	size_t len;

	mkmsg(f->msg, VCCID_PC_to_RDR_GetSlotStatus, 0, 1, 0, 0, 0, NULL, 0);
	for (len = 0; len < 10; len++) {
		f->out_len = 99;
		assert_int_equal(vccid_ccid_bulk_out(f->ccid, f->msg, len, f->out,
						     VCCID_CCID_MAX_MESSAGE, &f->out_len),
				 VCCID_EPROTO);
		assert_int_equal(f->out_len, 0);
	}
	assert_int_equal(vccid_ccid_bulk_out(f->ccid, f->msg, 10, f->out, 100, &f->out_len),
			 VCCID_ENOSPC);
	assert_int_equal(f->out_len, 0);
	assert_int_equal(vccid_ccid_bulk_out(f->small, f->msg, 10, f->out, SMALL_MAX - 1,
					     &f->out_len), VCCID_ENOSPC);
	assert_int_equal(vccid_ccid_bulk_out(f->small, f->msg, 10, f->out, SMALL_MAX,
					     &f->out_len), VCCID_OK);
	assert_int_equal(vccid_ccid_bulk_out(NULL, f->msg, 10, f->out, SMALL_MAX, &f->out_len),
			 VCCID_EINVAL);
	assert_int_equal(vccid_ccid_bulk_out(f->ccid, NULL, 10, f->out, SMALL_MAX, &f->out_len),
			 VCCID_EINVAL);
	assert_int_equal(vccid_ccid_bulk_out(f->ccid, f->msg, 10, NULL, SMALL_MAX, &f->out_len),
			 VCCID_EINVAL);
	assert_int_equal(vccid_ccid_bulk_out(f->ccid, f->msg, 10, f->out, SMALL_MAX, NULL),
			 VCCID_EINVAL);
}

/* Every command type with a header error: the answer type matches the command. */
static const struct {
	uint8_t type;
	uint8_t answer;
} command_types[] = {
	{ VCCID_PC_to_RDR_IccPowerOn, VCCID_RDR_to_PC_DataBlock },
	{ VCCID_PC_to_RDR_XfrBlock, VCCID_RDR_to_PC_DataBlock },
	{ VCCID_PC_to_RDR_Secure, VCCID_RDR_to_PC_DataBlock },
	{ VCCID_PC_to_RDR_IccPowerOff, VCCID_RDR_to_PC_SlotStatus },
	{ VCCID_PC_to_RDR_GetSlotStatus, VCCID_RDR_to_PC_SlotStatus },
	{ VCCID_PC_to_RDR_IccClock, VCCID_RDR_to_PC_SlotStatus },
	{ VCCID_PC_to_RDR_T0APDU, VCCID_RDR_to_PC_SlotStatus },
	{ VCCID_PC_to_RDR_Mechanical, VCCID_RDR_to_PC_SlotStatus },
	{ VCCID_PC_to_RDR_Abort, VCCID_RDR_to_PC_SlotStatus },
	{ VCCID_PC_to_RDR_SetParameters, VCCID_RDR_to_PC_Parameters },
	{ VCCID_PC_to_RDR_GetParameters, VCCID_RDR_to_PC_Parameters },
	{ VCCID_PC_to_RDR_ResetParameters, VCCID_RDR_to_PC_Parameters },
	{ VCCID_PC_to_RDR_Escape, VCCID_RDR_to_PC_Escape },
	{ VCCID_PC_to_RDR_SetDataRateAndClockFrequency, VCCID_RDR_to_PC_DataRateAndClockFrequency },
	{ 0x00, VCCID_RDR_to_PC_SlotStatus },          /* unknown types */
	{ 0x50, VCCID_RDR_to_PC_SlotStatus },
	{ 0x64, VCCID_RDR_to_PC_SlotStatus },
	{ 0x80, VCCID_RDR_to_PC_SlotStatus },
	{ 0xFF, VCCID_RDR_to_PC_SlotStatus },
};

static void test_header_errors(void **state)
{
	struct fixture *f = *state;
	uint8_t data[8] = { 0 };
	size_t i;

	insert(f, 0, FAKE_OK);
	for (i = 0; i < sizeof(command_types) / sizeof(command_types[0]); i++) {
		uint8_t t = command_types[i].type, a = command_types[i].answer;
		size_t n;

		snprintf(current_case, sizeof(current_case), "type 0x%02X", t);
		/* dwLength says more than was sent */
		n = mkmsg(f->msg, t, 0, (uint8_t)i, 0, 0, 0, data, 4);
		f->msg[1] = 5;
		expect(run(f, f->ccid, f->msg, n), a, ICC_INACTIVE, VCCID_CCID_CMD_FAILED,
		       VCCID_CCID_ERR_BAD_DWLENGTH);
		/* dwLength says less */
		f->msg[1] = 3;
		expect(run(f, f->ccid, f->msg, n), a, ICC_INACTIVE, VCCID_CCID_CMD_FAILED,
		       VCCID_CCID_ERR_BAD_DWLENGTH);
		/* dwLength with the high bytes set */
		f->msg[1] = 4;
		f->msg[4] = 0x80;
		expect(run(f, f->ccid, f->msg, n), a, ICC_INACTIVE, VCCID_CCID_CMD_FAILED,
		       VCCID_CCID_ERR_BAD_DWLENGTH);
		/* bad bSlot: "slot does not exist", bmICCStatus absent */
		n = mkmsg(f->msg, t, 2, (uint8_t)(i + 100), 0, 0, 0, NULL, 0);
		expect(run(f, f->ccid, f->msg, n), a, ICC_ABSENT, VCCID_CCID_CMD_FAILED,
		       VCCID_CCID_ERR_BAD_SLOT);
		f->msg[5] = 0xFF;
		expect(run(f, f->ccid, f->msg, n), a, ICC_ABSENT, VCCID_CCID_CMD_FAILED,
		       VCCID_CCID_ERR_BAD_SLOT);
	}
}

/* Commands that carry no data refuse a nonzero dwLength; over-long messages fail. */
static void test_dwlength_limits(void **state)
{
	static const uint8_t no_data[][2] = {
		{ VCCID_PC_to_RDR_IccPowerOn, VCCID_RDR_to_PC_DataBlock },
		{ VCCID_PC_to_RDR_IccPowerOff, VCCID_RDR_to_PC_SlotStatus },
		{ VCCID_PC_to_RDR_GetSlotStatus, VCCID_RDR_to_PC_SlotStatus },
		{ VCCID_PC_to_RDR_GetParameters, VCCID_RDR_to_PC_Parameters },
		{ VCCID_PC_to_RDR_ResetParameters, VCCID_RDR_to_PC_Parameters },
		{ VCCID_PC_to_RDR_IccClock, VCCID_RDR_to_PC_SlotStatus },
		{ VCCID_PC_to_RDR_Abort, VCCID_RDR_to_PC_SlotStatus },
	};
	struct fixture *f = *state;
	uint8_t data[1] = { 0 };
	size_t i, n;

	for (i = 0; i < sizeof(no_data) / sizeof(no_data[0]); i++) {
		n = mkmsg(f->msg, no_data[i][0], 1, 7, 0, 0, 0, data, 1);
		expect(run(f, f->ccid, f->msg, n), no_data[i][1], ICC_ABSENT, VCCID_CCID_CMD_FAILED,
		       VCCID_CCID_ERR_BAD_DWLENGTH);
	}
	/* One byte over dwMaxCCIDMessageLength */
	insert(f, 0, FAKE_OK);
	power_on(f, f->small, 0);
	memset(f->msg + 10, 0, SMALL_ROOM + 1);
	n = mkmsg(f->msg, VCCID_PC_to_RDR_XfrBlock, 0, 9, 0, 0, 0, f->msg + 10, SMALL_ROOM + 1);
	expect(run(f, f->small, f->msg, n), VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED,
	       VCCID_CCID_ERR_BAD_DWLENGTH);
	assert_int_equal(atomic_load(&f->cards[0].transmit_calls), 0);
}

static void test_unsupported_commands(void **state)
{
	static const struct {
		uint8_t type, answer;
		size_t len;
	} table[] = {
		{ VCCID_PC_to_RDR_Escape, VCCID_RDR_to_PC_Escape, 3 },
		{ VCCID_PC_to_RDR_Escape, VCCID_RDR_to_PC_Escape, 0 },
		{ VCCID_PC_to_RDR_Secure, VCCID_RDR_to_PC_DataBlock, 0 },
		{ VCCID_PC_to_RDR_Secure, VCCID_RDR_to_PC_DataBlock, 20 },
		{ VCCID_PC_to_RDR_T0APDU, VCCID_RDR_to_PC_SlotStatus, 0 },
		{ VCCID_PC_to_RDR_Mechanical, VCCID_RDR_to_PC_SlotStatus, 0 },
		{ 0x00, VCCID_RDR_to_PC_SlotStatus, 0 },
		{ 0x60, VCCID_RDR_to_PC_SlotStatus, 0 },
		{ 0x70, VCCID_RDR_to_PC_SlotStatus, 5 },
		{ 0x81, VCCID_RDR_to_PC_SlotStatus, 0 },
		{ 0xFE, VCCID_RDR_to_PC_SlotStatus, 0 },
	};
	struct fixture *f = *state;
	uint8_t data[20] = { 0 };
	size_t i;

	insert(f, 1, FAKE_OK);
	power_on(f, f->ccid, 1);
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		size_t n = mkmsg(f->msg, table[i].type, 1, (uint8_t)i, 0, 0, 0, data, table[i].len);

		snprintf(current_case, sizeof(current_case), "type 0x%02X", table[i].type);
		expect(run(f, f->ccid, f->msg, n), table[i].answer, ICC_ACTIVE, VCCID_CCID_CMD_FAILED,
		       VCCID_CCID_ERR_CMD_NOT_SUPPORTED);
	}
	assert_int_equal(atomic_load(&f->cards[1].transmit_calls), 0);
}

/* ------------------------------------------------------------------ power and status */

static void test_power_on(void **state)
{
	struct fixture *f = *state;
	const uint8_t *o;
	uint8_t sel;

	/* Empty slot: ICC_MUTE, absent */
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOn, 0, 1, 0);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ABSENT, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_ICC_MUTE);

	insert(f, 0, FAKE_OK);
	for (sel = 0; sel <= 3; sel++) {
		o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOn, 0, (uint8_t)(2 + sel), sel);
		expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
		assert_int_equal(le32(o + 1), sizeof(cac_atr));
		assert_memory_equal(o + 10, cac_atr, sizeof(cac_atr));
		assert_int_equal(o[9], VCCID_CCID_CHAIN_BEGIN_AND_END);
		/* the first powers up, later ones are warm resets */
		assert_int_equal(f->cards[0].last_action, sel == 0 ? VCCID_POWER_UP
								  : VCCID_POWER_RESET);
	}
	/* bPowerSelect 4 is no voltage: offset 7 */
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOn, 0, 9, 4);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_POWER_SELECT);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOn, 0, 9, 0xFF);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, 7);

	/* A card that fails to power: HW_ERROR, inactive */
	insert(f, 1, FAKE_POWER_FAIL);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOn, 1, 10, 0);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_INACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_HW_ERROR);
}

static void test_power_on_bad_atr(void **state)
{
	static const uint8_t bad_atr[] = { 0x3C, 0x00 };
	struct fixture *f = *state;

	f->cards[0].atr = bad_atr;
	f->cards[0].atr_len = sizeof(bad_atr);
	insert(f, 0, FAKE_OK);
	expect(cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOn, 0, 1, 0), VCCID_RDR_to_PC_DataBlock, ICC_INACTIVE,
	       VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_HW_ERROR);
}

static void test_power_off_and_status(void **state)
{
	struct fixture *f = *state;
	const uint8_t *o;

	o = cmd(f, f->ccid, VCCID_PC_to_RDR_GetSlotStatus, 0, 1, 0);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_ABSENT, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(o[9], 0);   /* bClockStatus: running */
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOff, 0, 2, 0);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_ABSENT, VCCID_CCID_CMD_OK, 0);

	insert(f, 0, FAKE_OK);
	expect(cmd(f, f->ccid, VCCID_PC_to_RDR_GetSlotStatus, 0, 3, 0), VCCID_RDR_to_PC_SlotStatus,
	       ICC_INACTIVE, VCCID_CCID_CMD_OK, 0);
	power_on(f, f->ccid, 0);
	expect(cmd(f, f->ccid, VCCID_PC_to_RDR_GetSlotStatus, 0, 4, 0), VCCID_RDR_to_PC_SlotStatus,
	       ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	/* slot 1 is independent */
	expect(cmd(f, f->ccid, VCCID_PC_to_RDR_GetSlotStatus, 1, 5, 0), VCCID_RDR_to_PC_SlotStatus,
	       ICC_ABSENT, VCCID_CCID_CMD_OK, 0);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOff, 0, 6, 0);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_INACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(f->cards[0].last_action, VCCID_POWER_DOWN);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOff, 0, 7, 0);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_INACTIVE, VCCID_CCID_CMD_OK, 0);
	/* removal shows at once */
	power_on(f, f->ccid, 0);
	assert_int_equal(vccid_slot_remove(f->slots[0]), VCCID_OK);
	expect(cmd(f, f->ccid, VCCID_PC_to_RDR_GetSlotStatus, 0, 8, 0), VCCID_RDR_to_PC_SlotStatus,
	       ICC_ABSENT, VCCID_CCID_CMD_OK, 0);
	/* a power-off that fails in the card */
	insert(f, 1, FAKE_POWER_FAIL);
	expect(cmd(f, f->ccid, VCCID_PC_to_RDR_IccPowerOff, 1, 9, 0), VCCID_RDR_to_PC_SlotStatus,
	       ICC_INACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_HW_ERROR);
}

static void test_sequence_numbers(void **state)
{
	struct fixture *f = *state;
	unsigned seq;

	insert(f, 1, FAKE_OK);
	for (seq = 0; seq < 256; seq++) {
		uint8_t slot = (uint8_t)(seq & 1);

		/* run() checks bSeq and bSlot are echoed */
		cmd(f, f->ccid, seq % 3 ? VCCID_PC_to_RDR_GetSlotStatus : VCCID_PC_to_RDR_IccPowerOn, slot,
		    (uint8_t)seq, 0);
	}
}

/* ------------------------------------------------------------------ XfrBlock */

static void test_xfr_block(void **state)
{
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };
	static const uint8_t malformed[] = { 0x00, 0xA4, 0x04, 0x00, 0x05, 0x3F };
	uint8_t read54[] = { 0x00, 0xB0, 0x00, 52, 0x00 };
	struct fixture *f = *state;
	const uint8_t *o;
	size_t i;

	o = xfr(f, f->ccid, 0, 1, 0, select, sizeof(select));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ABSENT, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_ICC_MUTE);
	insert(f, 0, FAKE_OK);
	o = xfr(f, f->ccid, 0, 2, 0, select, sizeof(select));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_INACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_ICC_MUTE);
	assert_int_equal(atomic_load(&f->cards[0].transmit_calls), 0);

	power_on(f, f->ccid, 0);
	o = xfr(f, f->ccid, 0, 3, 0, select, sizeof(select));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(le32(o + 1), 4);
	assert_int_equal(o[9], VCCID_CCID_CHAIN_BEGIN_AND_END);
	assert_int_equal(o[10], 0);
	assert_int_equal(o[11], sizeof(select));
	assert_int_equal(o[12], 0x90);
	assert_int_equal(f->cards[0].last_hash, fake_card_hash(select, sizeof(select)));

	/* bBWI is ignored */
	i = mkmsg(f->msg, VCCID_PC_to_RDR_XfrBlock, 0, 4, 0x05, 0, 0, select, sizeof(select));
	expect(run(f, f->ccid, f->msg, i), VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);

	/* An answer of exactly 64 bytes (one full-speed packet) */
	o = xfr(f, f->ccid, 0, 5, 0, read54, sizeof(read54));
	assert_int_equal(f->out_len, 64);
	for (i = 0; i < 52; i++)
		assert_int_equal(o[10 + i], fake_card_pattern(i));

	/* A malformed APDU never reaches the card: 67 00 */
	i = atomic_load(&f->cards[0].transmit_calls);
	o = xfr(f, f->ccid, 0, 6, 0, malformed, sizeof(malformed));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(le32(o + 1), 2);
	assert_int_equal(o[10], 0x67);
	assert_int_equal(atomic_load(&f->cards[0].transmit_calls), (int)i);
	/* An empty XfrBlock is malformed as well */
	o = xfr(f, f->ccid, 0, 7, 0, NULL, 0);
	assert_int_equal(o[10], 0x67);

	/* The card fails */
	insert(f, 1, FAKE_TRANSMIT_FAIL);
	power_on(f, f->ccid, 1);
	o = xfr(f, f->ccid, 1, 8, 0, select, sizeof(select));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_HW_ERROR);
}

/* Without chaining, the default engine moves a whole extended APDU each way. */
static void test_xfr_block_extended_whole(void **state)
{
	struct fixture *f = *state;
	uint8_t *apdu = malloc(VCCID_MAX_COMMAND);
	uint8_t read_max[] = { 0x00, 0xB0, 0xFF, 0xFF, 0x00, 0x00, 0x00 };
	const uint8_t *o;
	size_t i;

	assert_non_null(apdu);
	insert(f, 0, FAKE_OK);
	power_on(f, f->ccid, 0);
	/* case 4 extended: 4 + 3 + 65535 + 2 = 65544 bytes */
	apdu[0] = 0x00;
	apdu[1] = 0xD6;
	apdu[2] = apdu[3] = 0;
	apdu[4] = 0;
	apdu[5] = apdu[6] = 0xFF;
	for (i = 7; i < VCCID_MAX_COMMAND - 2; i++)
		apdu[i] = (uint8_t)i;
	apdu[VCCID_MAX_COMMAND - 2] = apdu[VCCID_MAX_COMMAND - 1] = 0;
	o = xfr(f, f->ccid, 0, 1, 0, apdu, VCCID_MAX_COMMAND);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(f->cards[0].last_len, VCCID_MAX_COMMAND);
	assert_int_equal(f->cards[0].last_hash, fake_card_hash(apdu, VCCID_MAX_COMMAND));
	free(apdu);

	/* 65535 data bytes + 90 00 in one DataBlock */
	o = xfr(f, f->ccid, 0, 2, 0, read_max, sizeof(read_max));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(le32(o + 1), 65535 + 2);
	assert_int_equal(o[9], VCCID_CCID_CHAIN_BEGIN_AND_END);
	assert_int_equal(o[10 + 65535], 0x90);
}

/* A 600-byte command in three blocks (§6.1.4): 01, 03, 02; empty answers with 10h. */
static void test_chain_command(void **state)
{
	struct fixture *f = *state;
	uint8_t apdu[600];
	const uint8_t *o;
	size_t i;

	apdu[0] = 0x00;
	apdu[1] = 0xD6;
	apdu[2] = apdu[3] = 0;
	apdu[4] = 0;
	apdu[5] = (uint8_t)((600 - 7) >> 8);
	apdu[6] = (uint8_t)(600 - 7);
	for (i = 7; i < sizeof(apdu); i++)
		apdu[i] = (uint8_t)(i * 3);
	insert(f, 0, FAKE_OK);
	power_on(f, f->small, 0);

	o = xfr(f, f->small, 0, 1, VCCID_CCID_LEVEL_BEGIN, apdu, SMALL_ROOM);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(le32(o + 1), 0);
	assert_int_equal(o[9], VCCID_CCID_CHAIN_COMMAND_NEXT);
	o = xfr(f, f->small, 0, 2, VCCID_CCID_LEVEL_CONTINUE, apdu + SMALL_ROOM, SMALL_ROOM);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(o[9], VCCID_CCID_CHAIN_COMMAND_NEXT);
	assert_int_equal(atomic_load(&f->cards[0].transmit_calls), 0);
	o = xfr(f, f->small, 0, 3, VCCID_CCID_LEVEL_END, apdu + 2 * SMALL_ROOM,
		sizeof(apdu) - 2 * SMALL_ROOM);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(o[9], VCCID_CCID_CHAIN_BEGIN_AND_END);
	assert_int_equal(atomic_load(&f->cards[0].transmit_calls), 1);
	assert_int_equal(f->cards[0].last_len, sizeof(apdu));
	assert_int_equal(f->cards[0].last_hash, fake_card_hash(apdu, sizeof(apdu)));
	assert_int_equal(o[10], 600 >> 8);
	assert_int_equal(o[11], 600 & 0xFF);

	/* a block may not exceed dwMaxCCIDMessageLength - 10 */
	xfr(f, f->small, 0, 4, VCCID_CCID_LEVEL_BEGIN, apdu, SMALL_ROOM);
	o = xfr(f, f->small, 0, 5, VCCID_CCID_LEVEL_END, apdu + SMALL_ROOM, sizeof(apdu) - SMALL_ROOM);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_DWLENGTH);

	/* the default engine takes chains too: two blocks (01, 02) */
	o = xfr(f, f->ccid, 0, 6, VCCID_CCID_LEVEL_BEGIN, apdu, 300);
	assert_int_equal(o[9], VCCID_CCID_CHAIN_COMMAND_NEXT);
	o = xfr(f, f->ccid, 0, 7, VCCID_CCID_LEVEL_END, apdu + 300, sizeof(apdu) - 300);
	assert_int_equal(f->cards[0].last_hash, fake_card_hash(apdu, sizeof(apdu)));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
}

/* A 600-byte response in three DataBlocks: 01, 03, 02, each after an empty 10h XfrBlock. */
static void test_chain_response(void **state)
{
	struct fixture *f = *state;
	uint8_t read600[] = { 0x00, 0xB0, (600 - 2) >> 8, (600 - 2) & 0xFF, 0x00 };
	static const uint8_t expected_chain[] = { VCCID_CCID_CHAIN_BEGIN, VCCID_CCID_CHAIN_CONTINUE,
						  VCCID_CCID_CHAIN_END };
	uint8_t got[600];
	size_t pos = 0, i;
	const uint8_t *o;

	insert(f, 1, FAKE_OK);
	power_on(f, f->small, 1);
	o = xfr(f, f->small, 1, 1, VCCID_CCID_LEVEL_BEGIN_AND_END, read600, sizeof(read600));
	for (i = 0; i < 3; i++) {
		size_t n = le32(o + 1);

		expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
		assert_int_equal(o[9], expected_chain[i]);
		assert_true(n <= SMALL_ROOM);
		assert_true(pos + n <= sizeof(got));
		memcpy(got + pos, o + 10, n);
		pos += n;
		if (i < 2) {
			/* meanwhile other commands are fine */
			expect(cmd(f, f->small, VCCID_PC_to_RDR_GetSlotStatus, 1, 50, 0),
			       VCCID_RDR_to_PC_SlotStatus, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
			o = xfr(f, f->small, 1, (uint8_t)(2 + i), VCCID_CCID_LEVEL_RESPONSE_NEXT, NULL, 0);
		}
	}
	assert_int_equal(pos, 600);
	for (i = 0; i < 598; i++)
		assert_int_equal(got[i], fake_card_pattern(i));
	assert_int_equal(got[598], 0x90);
	assert_int_equal(atomic_load(&f->cards[1].transmit_calls), 1);
	/* nothing left to send */
	o = xfr(f, f->small, 1, 9, VCCID_CCID_LEVEL_RESPONSE_NEXT, NULL, 0);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER);

	/* exactly one block: 261 bytes, no chaining */
	read600[2] = (SMALL_ROOM - 2) >> 8;
	read600[3] = (SMALL_ROOM - 2) & 0xFF;
	o = xfr(f, f->small, 1, 10, 0, read600, sizeof(read600));
	assert_int_equal(o[9], VCCID_CCID_CHAIN_BEGIN_AND_END);
	assert_int_equal(le32(o + 1), SMALL_ROOM);
	/* one byte more: two blocks, the second of one byte */
	read600[3] = (SMALL_ROOM - 1) & 0xFF;
	o = xfr(f, f->small, 1, 11, 0, read600, sizeof(read600));
	assert_int_equal(o[9], VCCID_CCID_CHAIN_BEGIN);
	o = xfr(f, f->small, 1, 12, VCCID_CCID_LEVEL_RESPONSE_NEXT, NULL, 0);
	assert_int_equal(o[9], VCCID_CCID_CHAIN_END);
	assert_int_equal(le32(o + 1), 1);
	assert_int_equal(o[10], 0x00);
}

/* Both directions at once: a chained command whose answer is chained too. */
static void test_chain_both(void **state)
{
	struct fixture *f = *state;
	uint8_t apdu[400];
	const uint8_t *o;
	size_t i, total = 0;

	memset(apdu, 0x5A, sizeof(apdu));
	apdu[0] = 0x00;
	apdu[1] = 0xB0;
	apdu[2] = 0x01;   /* 0x0190 = 400 bytes back */
	apdu[3] = 0x90;
	apdu[4] = 0;
	apdu[5] = (uint8_t)((400 - 9) >> 8);
	apdu[6] = (uint8_t)(400 - 9);
	apdu[398] = apdu[399] = 0;   /* Le 0000: 65536 */
	insert(f, 0, FAKE_OK);
	power_on(f, f->small, 0);
	xfr(f, f->small, 0, 1, VCCID_CCID_LEVEL_BEGIN, apdu, 200);
	o = xfr(f, f->small, 0, 2, VCCID_CCID_LEVEL_END, apdu + 200, 200);
	assert_int_equal(f->cards[0].last_hash, fake_card_hash(apdu, sizeof(apdu)));
	for (i = 0; ; i++) {
		expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
		total += le32(o + 1);
		if (o[9] == VCCID_CCID_CHAIN_END)
			break;
		assert_true(o[9] == (i == 0 ? VCCID_CCID_CHAIN_BEGIN : VCCID_CCID_CHAIN_CONTINUE));
		o = xfr(f, f->small, 0, (uint8_t)(3 + i), VCCID_CCID_LEVEL_RESPONSE_NEXT, NULL, 0);
	}
	assert_int_equal(total, 402);
}

static void test_chain_errors(void **state)
{
	static const uint8_t part[] = { 0x00, 0xD6, 0x00, 0x00, 0x00, 0x01, 0x00 };
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };
	uint8_t read600[] = { 0x00, 0xB0, 0x02, 0x00, 0x00 };
	static const struct {
		const char *name;
		uint16_t first;           /* 0xFFFF: no first block */
		uint16_t second;
		size_t second_len;
		uint8_t error;
	} table[] = {
		{ "END without BEGIN", 0xFFFF, VCCID_CCID_LEVEL_END, 7, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER },
		{ "CONTINUE without BEGIN", 0xFFFF, VCCID_CCID_LEVEL_CONTINUE, 7,
		  VCCID_CCID_ERR_BAD_LEVEL_PARAMETER },
		{ "RESPONSE_NEXT with no response", 0xFFFF, VCCID_CCID_LEVEL_RESPONSE_NEXT, 0,
		  VCCID_CCID_ERR_BAD_LEVEL_PARAMETER },
		{ "unknown level 0x0004", 0xFFFF, 0x0004, 7, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER },
		{ "unknown level 0x0100", 0xFFFF, 0x0100, 7, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER },
		{ "BEGIN_AND_END inside a command chain", VCCID_CCID_LEVEL_BEGIN,
		  VCCID_CCID_LEVEL_BEGIN_AND_END, 7, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER },
		{ "BEGIN inside a command chain", VCCID_CCID_LEVEL_BEGIN, VCCID_CCID_LEVEL_BEGIN, 7,
		  VCCID_CCID_ERR_BAD_LEVEL_PARAMETER },
		{ "RESPONSE_NEXT inside a command chain", VCCID_CCID_LEVEL_BEGIN,
		  VCCID_CCID_LEVEL_RESPONSE_NEXT, 0, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER },
	};
	struct fixture *f = *state;
	uint8_t *big;
	const uint8_t *o;
	size_t i, sent;

	insert(f, 0, FAKE_OK);
	power_on(f, f->small, 0);
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		snprintf(current_case, sizeof(current_case), "%s", table[i].name);
		if (table[i].first != 0xFFFF)
			expect(xfr(f, f->small, 0, 1, table[i].first, part, sizeof(part)),
			       VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
		o = xfr(f, f->small, 0, 2, table[i].second, part, table[i].second_len);
		expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, table[i].error);
		/* the chain is gone: a plain APDU works */
		o = xfr(f, f->small, 0, 3, 0, select, sizeof(select));
		expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	}

	/* a response chain interrupted by a new APDU */
	o = xfr(f, f->small, 0, 4, 0, read600, sizeof(read600));
	assert_int_equal(o[9], VCCID_CCID_CHAIN_BEGIN);
	o = xfr(f, f->small, 0, 5, 0, select, sizeof(select));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER);
	o = xfr(f, f->small, 0, 6, VCCID_CCID_LEVEL_RESPONSE_NEXT, NULL, 0);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER);

	/* RESPONSE_NEXT carrying data */
	o = xfr(f, f->small, 0, 7, 0, read600, sizeof(read600));
	o = xfr(f, f->small, 0, 8, VCCID_CCID_LEVEL_RESPONSE_NEXT, select, 1);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_DWLENGTH);

	/* a command chain longer than the longest APDU */
	big = calloc(1, SMALL_ROOM);
	assert_non_null(big);
	o = xfr(f, f->small, 0, 9, VCCID_CCID_LEVEL_BEGIN, big, SMALL_ROOM);
	for (sent = SMALL_ROOM; sent + SMALL_ROOM <= VCCID_MAX_COMMAND; sent += SMALL_ROOM) {
		o = xfr(f, f->small, 0, 10, VCCID_CCID_LEVEL_CONTINUE, big, SMALL_ROOM);
		expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	}
	o = xfr(f, f->small, 0, 11, VCCID_CCID_LEVEL_END, big, SMALL_ROOM);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_DWLENGTH);
	free(big);

	/* power cycles drop chains */
	xfr(f, f->small, 0, 12, VCCID_CCID_LEVEL_BEGIN, part, sizeof(part));
	power_on(f, f->small, 0);
	o = xfr(f, f->small, 0, 13, VCCID_CCID_LEVEL_END, part, 1);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER);
	o = xfr(f, f->small, 0, 14, 0, read600, sizeof(read600));
	expect(cmd(f, f->small, VCCID_PC_to_RDR_IccPowerOff, 0, 15, 0), VCCID_RDR_to_PC_SlotStatus,
	       ICC_INACTIVE, VCCID_CCID_CMD_OK, 0);
	o = xfr(f, f->small, 0, 16, VCCID_CCID_LEVEL_RESPONSE_NEXT, NULL, 0);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_INACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER);

	/* BEGIN on an unpowered card */
	o = xfr(f, f->small, 0, 17, VCCID_CCID_LEVEL_BEGIN, part, sizeof(part));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_INACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_ICC_MUTE);
}

/* A card removed (and another inserted) mid-chain ends the chain with ICC_MUTE. */
static void test_chain_card_swap(void **state)
{
	static const uint8_t part[] = { 0x00, 0xD6, 0x00, 0x00, 0x00, 0x01, 0x00 };
	uint8_t read600[] = { 0x00, 0xB0, 0x02, 0x00, 0x00 };
	struct fixture *f = *state;
	const uint8_t *o;

	insert(f, 0, FAKE_OK);
	power_on(f, f->small, 0);
	xfr(f, f->small, 0, 1, VCCID_CCID_LEVEL_BEGIN, part, sizeof(part));
	assert_int_equal(vccid_slot_remove(f->slots[0]), VCCID_OK);
	insert(f, 0, FAKE_OK);
	power_on(f, f->small, 0);   /* drops the chain itself */
	xfr(f, f->small, 0, 2, VCCID_CCID_LEVEL_BEGIN, part, sizeof(part));
	assert_int_equal(vccid_slot_remove(f->slots[0]), VCCID_OK);
	insert(f, 0, FAKE_OK);
	/* the new card is not powered: the chain cannot go on */
	o = xfr(f, f->small, 0, 3, VCCID_CCID_LEVEL_END, part, 1);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_INACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_ICC_MUTE);

	/* response chain, card swapped behind the engine's back, new card powered
	 * through the slot directly */
	power_on(f, f->small, 0);
	o = xfr(f, f->small, 0, 4, 0, read600, sizeof(read600));
	assert_int_equal(o[9], VCCID_CCID_CHAIN_BEGIN);
	assert_int_equal(vccid_slot_remove(f->slots[0]), VCCID_OK);
	insert(f, 0, FAKE_OK);
	{
		uint8_t atr[VCCID_MAX_ATR];
		size_t atr_len = sizeof(atr);

		assert_int_equal(vccid_slot_power(f->slots[0], VCCID_POWER_UP, atr, &atr_len),
				 VCCID_OK);
	}
	o = xfr(f, f->small, 0, 5, VCCID_CCID_LEVEL_RESPONSE_NEXT, NULL, 0);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_ICC_MUTE);
}

/* ------------------------------------------------------------------ parameters */

static void test_parameters_t0(void **state)
{
	static const uint8_t cac_params[] = { 0x18, 0x00, 0x00, 0x0A, 0x00 };
	static const uint8_t set_t0[] = { 0x96, 0x02, 0x05, 0x20, 0x03 };
	struct fixture *f = *state;
	const uint8_t *o;
	size_t n;

	o = cmd(f, f->ccid, VCCID_PC_to_RDR_GetParameters, 0, 1, 0);
	expect(o, VCCID_RDR_to_PC_Parameters, ICC_ABSENT, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_ICC_MUTE);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_ResetParameters, 0, 1, 0);
	expect(o, VCCID_RDR_to_PC_Parameters, ICC_ABSENT, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_ICC_MUTE);
	n = mkmsg(f->msg, VCCID_PC_to_RDR_SetParameters, 0, 2, 0, 0, 0, set_t0, sizeof(set_t0));
	expect(run(f, f->ccid, f->msg, n), VCCID_RDR_to_PC_Parameters, ICC_ABSENT, VCCID_CCID_CMD_FAILED,
	       VCCID_CCID_ERR_ICC_MUTE);

	insert(f, 0, FAKE_OK);
	power_on(f, f->ccid, 0);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_GetParameters, 0, 3, 0);
	expect(o, VCCID_RDR_to_PC_Parameters, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(o[9], 0);   /* bProtocolNum T=0 */
	assert_int_equal(le32(o + 1), 5);
	assert_memory_equal(o + 10, cac_params, sizeof(cac_params));

	n = mkmsg(f->msg, VCCID_PC_to_RDR_SetParameters, 0, 2, 0, 0, 0, set_t0, sizeof(set_t0));
	o = run(f, f->ccid, f->msg, n);
	expect(o, VCCID_RDR_to_PC_Parameters, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_memory_equal(o + 10, set_t0, sizeof(set_t0));
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_GetParameters, 0, 4, 0);
	assert_memory_equal(o + 10, set_t0, sizeof(set_t0));
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_ResetParameters, 0, 5, 0);
	expect(o, VCCID_RDR_to_PC_Parameters, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_memory_equal(o + 10, cac_params, sizeof(cac_params));
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_GetParameters, 0, 6, 0);
	assert_memory_equal(o + 10, cac_params, sizeof(cac_params));

	/* a present card that was never powered gets the T=0 defaults */
	insert(f, 1, FAKE_OK);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_GetParameters, 1, 7, 0);
	expect(o, VCCID_RDR_to_PC_Parameters, ICC_INACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(o[10], 0x11);
	assert_int_equal(o[13], 0x0A);
}

static void test_parameters_t1(void **state)
{
	static const uint8_t t1_params[] = { 0x13, 0x10, 0x00, 0x15, 0x00, 0xFE, 0x00 };
	struct fixture *f = *state;
	const uint8_t *o;

	f->cards[0].atr = fake_card_t1_atr;
	f->cards[0].atr_len = sizeof(fake_card_t1_atr);
	insert(f, 0, FAKE_OK);
	power_on(f, f->ccid, 0);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_GetParameters, 0, 1, 0);
	expect(o, VCCID_RDR_to_PC_Parameters, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(o[9], 1);
	assert_int_equal(le32(o + 1), 7);
	assert_memory_equal(o + 10, t1_params, sizeof(t1_params));
}

static void test_set_parameters_errors(void **state)
{
	static const struct {
		const char *name;
		uint8_t protocol;
		uint8_t data[8];
		size_t len;
		uint8_t error;
	} table[] = {
		{ "T=0 ok", 0, { 0x11, 0x00, 0x00, 0x0A, 0x00 }, 5, 0 },
		{ "T=0 inverse ok", 0, { 0x11, 0x02, 0x00, 0x0A, 0x03 }, 5, 0 },
		{ "T=1 ok", 1, { 0x11, 0x11, 0x00, 0x4D, 0x00, 0x20, 0x00 }, 7, 0 },
		{ "T=1 CRC inverse ok", 1, { 0x11, 0x13, 0x00, 0x4D, 0x00, 0xFE, 0x00 }, 7, 0 },
		{ "protocol 2", 2, { 0x11, 0x00, 0x00, 0x0A, 0x00 }, 5, VCCID_CCID_ERR_BAD_PROTOCOL_NUM },
		{ "protocol FF", 0xFF, { 0 }, 0, VCCID_CCID_ERR_BAD_PROTOCOL_NUM },
		{ "T=0 with 7 bytes", 0, { 0x11, 0x00, 0x00, 0x0A, 0x00, 0, 0 }, 7,
		  VCCID_CCID_ERR_BAD_DWLENGTH },
		{ "T=0 with 4 bytes", 0, { 0x11, 0x00, 0x00, 0x0A }, 4, VCCID_CCID_ERR_BAD_DWLENGTH },
		{ "T=1 with 5 bytes", 1, { 0x11, 0x10, 0x00, 0x4D, 0x00 }, 5,
		  VCCID_CCID_ERR_BAD_DWLENGTH },
		{ "T=0 bmTCCKST0 01", 0, { 0x11, 0x01, 0x00, 0x0A, 0x00 }, 5, VCCID_CCID_ERR_BAD_TCCKS },
		{ "T=1 bmTCCKST1 00", 1, { 0x11, 0x00, 0x00, 0x4D, 0x00, 0x20, 0x00 }, 7,
		  VCCID_CCID_ERR_BAD_TCCKS },
		{ "T=0 bClockStop 4", 0, { 0x11, 0x00, 0x00, 0x0A, 0x04 }, 5,
		  VCCID_CCID_ERR_BAD_CLOCK_STOP },
		{ "T=1 bIFSC 00", 1, { 0x11, 0x10, 0x00, 0x4D, 0x00, 0x00, 0x00 }, 7,
		  VCCID_CCID_ERR_BAD_IFSC },
		{ "T=1 bIFSC FF", 1, { 0x11, 0x10, 0x00, 0x4D, 0x00, 0xFF, 0x00 }, 7,
		  VCCID_CCID_ERR_BAD_IFSC },
		{ "T=1 NAD 01", 1, { 0x11, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x01 }, 7,
		  VCCID_CCID_ERR_BAD_NAD },
	};
	struct fixture *f = *state;
	size_t i;

	insert(f, 0, FAKE_OK);
	power_on(f, f->ccid, 0);
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		size_t n = mkmsg(f->msg, VCCID_PC_to_RDR_SetParameters, 0, (uint8_t)i, table[i].protocol,
				 0, 0, table[i].data, table[i].len);
		const uint8_t *o;

		snprintf(current_case, sizeof(current_case), "%s", table[i].name);
		o = run(f, f->ccid, f->msg, n);
		if (table[i].error == 0) {
			expect(o, VCCID_RDR_to_PC_Parameters, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
			assert_int_equal(o[9], table[i].protocol);
			assert_int_equal(le32(o + 1), table[i].len);
			assert_memory_equal(o + 10, table[i].data, table[i].len);
		} else {
			expect(o, VCCID_RDR_to_PC_Parameters, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, table[i].error);
		}
	}
}

static void test_clock_and_rate(void **state)
{
	struct fixture *f = *state;
	uint8_t rate[8] = { 0x10, 0x27, 0, 0, 0x80, 0x25, 0, 0 };
	const uint8_t *o;
	size_t n;

	insert(f, 0, FAKE_OK);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccClock, 0, 1, 0);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_INACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(o[9], 0);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccClock, 0, 2, 1);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_INACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_CMD_NOT_SUPPORTED);
	o = cmd(f, f->ccid, VCCID_PC_to_RDR_IccClock, 0, 3, 2);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_INACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_CLOCK_COMMAND);

	n = mkmsg(f->msg, VCCID_PC_to_RDR_SetDataRateAndClockFrequency, 0, 4, 0, 0, 0, rate, 8);
	o = run(f, f->ccid, f->msg, n);
	expect(o, VCCID_RDR_to_PC_DataRateAndClockFrequency, ICC_INACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(le32(o + 1), 8);
	assert_int_equal(le32(o + 10), VCCID_CCID_CLOCK_KHZ);
	assert_int_equal(le32(o + 14), VCCID_CCID_DATA_RATE);
	n = mkmsg(f->msg, VCCID_PC_to_RDR_SetDataRateAndClockFrequency, 0, 5, 0, 0, 0, rate, 7);
	expect(run(f, f->ccid, f->msg, n), VCCID_RDR_to_PC_DataRateAndClockFrequency, ICC_INACTIVE,
	       VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_DWLENGTH);
}

/* ------------------------------------------------------------------ threads, abort */

struct bg_call {
	struct fixture *f;
	vccid_ccid *ccid;
	uint8_t msg[32];
	size_t len;
	uint8_t out[VCCID_CCID_MIN_MESSAGE + 300];
	size_t out_len;
	int rv;
};

static void *bg_run(void *opaque)
{
	struct bg_call *c = opaque;

	c->rv = vccid_ccid_bulk_out(c->ccid, c->msg, c->len, c->out, sizeof(c->out), &c->out_len);
	return NULL;
}

static const uint8_t select_apdu[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };

static void start_blocked_xfr(struct fixture *f, struct bg_call *c, pthread_t *thread, uint8_t seq)
{
	c->f = f;
	c->ccid = f->small;
	c->len = mkmsg(c->msg, VCCID_PC_to_RDR_XfrBlock, 0, seq, 0, 0, 0, select_apdu,
		       sizeof(select_apdu));
	assert_int_equal(pthread_create(thread, NULL, bg_run, c), 0);
	assert_true(fake_card_wait_entered(&f->cards[0], 10000));
}

static void test_busy_slot(void **state)
{
	struct fixture *f = *state;
	struct bg_call *c = calloc(1, sizeof(*c));
	pthread_t thread;
	const uint8_t *o;
	size_t i;

	assert_non_null(c);
	insert(f, 0, FAKE_BLOCK);
	insert(f, 1, FAKE_OK);
	power_on(f, f->small, 0);
	power_on(f, f->small, 1);
	start_blocked_xfr(f, c, &thread, 0x42);

	/* every command for the busy slot: CMD_SLOT_BUSY, in its own answer type */
	for (i = 0; i < sizeof(command_types) / sizeof(command_types[0]); i++) {
		uint8_t t = command_types[i].type;
		uint8_t data[8] = { 0x11, 0, 0, 0x0A, 0, 0, 0, 0 };
		size_t len = t == VCCID_PC_to_RDR_SetDataRateAndClockFrequency ? 8
			     : t == VCCID_PC_to_RDR_SetParameters ? 5 : 0;
		size_t n;

		if (t == VCCID_PC_to_RDR_Abort)
			continue;   /* never busy: see test_abort_busy */
		n = mkmsg(f->msg, t, 0, (uint8_t)i, 0, 0, 0, data, len);
		o = run(f, f->small, f->msg, n);
		expect(o, command_types[i].answer, ICC_ACTIVE, VCCID_CCID_CMD_FAILED,
		       VCCID_CCID_ERR_CMD_SLOT_BUSY);
	}
	/* the other slot works meanwhile */
	o = xfr(f, f->small, 1, 7, 0, select_apdu, sizeof(select_apdu));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);

	fake_card_open_gate(&f->cards[0]);
	pthread_join(thread, NULL);
	assert_int_equal(c->rv, VCCID_OK);
	expect(c->out, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	assert_int_equal(c->out[6], 0x42);
	assert_int_equal(atomic_load(&f->cards[0].transmit_calls), 1);
	/* and the slot is free again */
	o = cmd(f, f->small, VCCID_PC_to_RDR_GetSlotStatus, 0, 8, 0);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	free(c);
}

static void test_abort(void **state)
{
	uint8_t read600[] = { 0x00, 0xB0, 0x02, 0x00, 0x00 };
	struct fixture *f = *state;
	const uint8_t *o;

	assert_int_equal(vccid_ccid_abort(f->small, 2, 0), VCCID_ENOENT);
	assert_int_equal(vccid_ccid_abort(NULL, 0, 0), VCCID_ENOENT);
	insert(f, 0, FAKE_OK);
	power_on(f, f->small, 0);

	/* control ABORT: commands fail until VCCID_PC_to_RDR_Abort */
	o = xfr(f, f->small, 0, 1, 0, read600, sizeof(read600));
	assert_int_equal(o[9], VCCID_CCID_CHAIN_BEGIN);
	assert_int_equal(vccid_ccid_abort(f->small, 0, 2), VCCID_OK);
	o = cmd(f, f->small, VCCID_PC_to_RDR_GetSlotStatus, 0, 3, 0);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_CMD_ABORTED);
	o = xfr(f, f->small, 0, 3, VCCID_CCID_LEVEL_RESPONSE_NEXT, NULL, 0);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_CMD_ABORTED);
	/* the other slot is not affected */
	expect(cmd(f, f->small, VCCID_PC_to_RDR_GetSlotStatus, 1, 3, 0), VCCID_RDR_to_PC_SlotStatus,
	       ICC_ABSENT, VCCID_CCID_CMD_OK, 0);
	o = cmd(f, f->small, VCCID_PC_to_RDR_Abort, 0, 2, 0);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	/* the response chain was dropped */
	o = xfr(f, f->small, 0, 4, VCCID_CCID_LEVEL_RESPONSE_NEXT, NULL, 0);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER);
	o = xfr(f, f->small, 0, 5, 0, select_apdu, sizeof(select_apdu));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);

	/* VCCID_PC_to_RDR_Abort alone also drops a chain and succeeds */
	xfr(f, f->small, 0, 6, VCCID_CCID_LEVEL_BEGIN, select_apdu, 4);
	expect(cmd(f, f->small, VCCID_PC_to_RDR_Abort, 0, 7, 0), VCCID_RDR_to_PC_SlotStatus, ICC_ACTIVE,
	       VCCID_CCID_CMD_OK, 0);
	o = xfr(f, f->small, 0, 8, VCCID_CCID_LEVEL_END, select_apdu + 4, 3);
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER);
	/* on an empty slot too */
	expect(cmd(f, f->small, VCCID_PC_to_RDR_Abort, 1, 9, 0), VCCID_RDR_to_PC_SlotStatus, ICC_ABSENT,
	       VCCID_CCID_CMD_OK, 0);
}

/* ABORT for the command in progress: its answer becomes CMD_ABORTED. */
static void test_abort_busy(void **state)
{
	struct fixture *f = *state;
	struct bg_call *c = calloc(1, sizeof(*c));
	pthread_t thread;
	const uint8_t *o;

	assert_non_null(c);
	insert(f, 0, FAKE_BLOCK);
	power_on(f, f->small, 0);
	start_blocked_xfr(f, c, &thread, 0x30);
	assert_int_equal(vccid_ccid_abort(f->small, 0, 0x30), VCCID_OK);
	/* VCCID_PC_to_RDR_Abort is answered while the slot is busy */
	o = cmd(f, f->small, VCCID_PC_to_RDR_Abort, 0, 0x30, 0);
	expect(o, VCCID_RDR_to_PC_SlotStatus, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	fake_card_open_gate(&f->cards[0]);
	pthread_join(thread, NULL);
	assert_int_equal(c->rv, VCCID_OK);
	expect(c->out, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_CMD_ABORTED);
	assert_int_equal(c->out[6], 0x30);
	/* the slot works again */
	o = xfr(f, f->small, 0, 0x31, 0, select_apdu, sizeof(select_apdu));
	expect(o, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);

	/* an ABORT for another bSeq leaves the command in progress alone */
	fake_card_close_gate(&f->cards[0]);
	start_blocked_xfr(f, c, &thread, 0x40);
	assert_int_equal(vccid_ccid_abort(f->small, 0, 0x41), VCCID_OK);
	fake_card_open_gate(&f->cards[0]);
	pthread_join(thread, NULL);
	expect(c->out, VCCID_RDR_to_PC_DataBlock, ICC_ACTIVE, VCCID_CCID_CMD_OK, 0);
	expect(cmd(f, f->small, VCCID_PC_to_RDR_GetSlotStatus, 0, 0x42, 0), VCCID_RDR_to_PC_SlotStatus,
	       ICC_ACTIVE, VCCID_CCID_CMD_FAILED, VCCID_CCID_ERR_CMD_ABORTED);
	expect(cmd(f, f->small, VCCID_PC_to_RDR_Abort, 0, 0x41, 0), VCCID_RDR_to_PC_SlotStatus, ICC_ACTIVE,
	       VCCID_CCID_CMD_OK, 0);
	free(c);
}

static void test_time_extension(void **state)
{
	struct fixture *f = *state;
	uint8_t out[16];
	size_t n, out_len = 7;

	insert(f, 1, FAKE_OK);
	n = mkmsg(f->msg, VCCID_PC_to_RDR_XfrBlock, 1, 0x77, 0, 0, 0, select_apdu, sizeof(select_apdu));
	assert_int_equal(vccid_ccid_time_extension(f->ccid, f->msg, n, 3, out, sizeof(out),
						   &out_len), VCCID_OK);
	assert_int_equal(out_len, 10);
	assert_int_equal(out[0], VCCID_RDR_to_PC_DataBlock);
	assert_int_equal(le32(out + 1), 0);
	assert_int_equal(out[5], 1);
	assert_int_equal(out[6], 0x77);
	assert_int_equal(out[7], VCCID_CCID_CMD_TIME_EXTENSION << 6 | ICC_INACTIVE);
	assert_int_equal(out[8], 3);
	assert_int_equal(vccid_ccid_time_extension(f->ccid, f->msg, n, 3, out, 9, &out_len),
			 VCCID_ENOSPC);
	assert_int_equal(out_len, 0);
	assert_int_equal(vccid_ccid_time_extension(f->ccid, f->msg, 9, 3, out, 16, &out_len),
			 VCCID_EPROTO);
	f->msg[0] = VCCID_PC_to_RDR_IccPowerOn;
	assert_int_equal(vccid_ccid_time_extension(f->ccid, f->msg, n, 3, out, 16, &out_len),
			 VCCID_EPROTO);
	f->msg[0] = VCCID_PC_to_RDR_XfrBlock;
	f->msg[5] = 2;
	assert_int_equal(vccid_ccid_time_extension(f->ccid, f->msg, n, 3, out, 16, &out_len),
			 VCCID_EPROTO);
}

/* ------------------------------------------------------------------ interrupt endpoint */

static void test_notify(void **state)
{
	struct fixture *f = *state;
	uint8_t out[8];
	size_t out_len;

	/* nothing yet */
	assert_false(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));
	assert_int_equal(out_len, 0);
	assert_true(vccid_ccid_notify_all(f->ccid, out, sizeof(out), &out_len));
	assert_int_equal(out_len, 2);
	assert_int_equal(out[0], VCCID_RDR_to_PC_NotifySlotChange);
	assert_int_equal(out[1], 0x00);

	insert(f, 1, FAKE_OK);
	assert_true(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));
	assert_int_equal(out_len, 2);
	assert_int_equal(out[1], 0x0C);       /* slot 1: present (bit 2), changed (bit 3) */
	assert_false(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));

	/* power changes are no slot changes */
	power_on(f, f->ccid, 1);
	assert_false(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));

	insert(f, 0, FAKE_OK);
	assert_true(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));
	assert_int_equal(out[1], 0x07);       /* slot 0 present+changed, slot 1 present */

	/* remove and insert between two looks: still "changed" */
	assert_int_equal(vccid_slot_remove(f->slots[1]), VCCID_OK);
	insert(f, 1, FAKE_OK);
	assert_true(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));
	assert_int_equal(out[1], 0x0D);

	/* removal */
	assert_int_equal(vccid_slot_remove(f->slots[0]), VCCID_OK);
	assert_true(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));
	assert_int_equal(out[1], 0x06);       /* slot 0 changed, absent; slot 1 present */
	/* insert and remove between two looks: changed, absent */
	insert(f, 0, FAKE_OK);
	assert_int_equal(vccid_slot_remove(f->slots[0]), VCCID_OK);
	assert_true(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));
	assert_int_equal(out[1], 0x06);
	assert_false(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));

	/* after a reconnect: every present slot reported as changed */
	assert_true(vccid_ccid_notify_all(f->ccid, out, sizeof(out), &out_len));
	assert_int_equal(out[1], 0x0C);
	assert_false(vccid_ccid_notify_slot_change(f->ccid, out, sizeof(out), &out_len));

	/* buffer too small */
	assert_int_equal(vccid_slot_remove(f->slots[1]), VCCID_OK);
	assert_false(vccid_ccid_notify_slot_change(f->ccid, out, 1, &out_len));
	assert_int_equal(out_len, 0);
	assert_false(vccid_ccid_notify_all(f->ccid, out, 1, &out_len));
	assert_true(vccid_ccid_notify_slot_change(f->ccid, out, 2, &out_len));
	assert_int_equal(out[1], 0x08);
}

/* Bits of slots 4-7 go in the second byte. */
static void test_notify_eight_slots(void **state)
{
	struct fixture *f = *state;
	vccid_slot *slots[8];
	struct fake_card cards[8];
	vccid_ccid *ccid;
	uint8_t out[VCCID_CCID_NOTIFY_MAX_SIZE];
	size_t out_len, i;

	(void)f;
	for (i = 0; i < 8; i++) {
		slots[i] = vccid_slot_new();
		assert_non_null(slots[i]);
		fake_card_init(&cards[i], FAKE_OK);
		cards[i].answers = FAKE_ANSWER_LENGTH;
	}
	ccid = vccid_ccid_new(slots, 8, NULL);
	assert_non_null(ccid);
	assert_int_equal(fake_card_insert(slots[5], &cards[5], "x"), VCCID_OK);
	assert_int_equal(fake_card_insert(slots[7], &cards[7], "y"), VCCID_OK);
	assert_true(vccid_ccid_notify_slot_change(ccid, out, sizeof(out), &out_len));
	assert_int_equal(out_len, 3);
	assert_int_equal(out[1], 0x00);
	assert_int_equal(out[2], 0xCC);   /* slot 5 bits 2-3, slot 7 bits 6-7 */
	{
		uint8_t desc[VCCID_CCID_CLASS_DESC_SIZE];

		vccid_ccid_class_descriptor(ccid, desc);
		assert_int_equal(desc[4], 7);
		assert_int_equal(desc[53], 8);
	}
	vccid_ccid_free(ccid);
	for (i = 0; i < 8; i++) {
		vccid_slot_free(slots[i]);
		fake_card_destroy(&cards[i]);
	}
}

/* ------------------------------------------------------------------ descriptors */

static void test_class_descriptor(void **state)
{
	struct fixture *f = *state;
	uint8_t d[VCCID_CCID_CLASS_DESC_SIZE];
	uint32_t features;

	vccid_ccid_class_descriptor(f->ccid, d);
	assert_int_equal(d[0], 0x36);
	assert_int_equal(d[1], 0x21);
	assert_int_equal(d[2] | d[3] << 8, 0x0110);
	assert_int_equal(d[4], 1);                      /* bMaxSlotIndex: two slots */
	assert_int_equal(d[5], 0x07);                   /* 5 V, 3 V, 1.8 V: any bPowerSelect */
	assert_int_equal(le32(d + 6), 0x03);            /* T=0 and T=1 */
	assert_int_equal(le32(d + 10), VCCID_CCID_CLOCK_KHZ);
	assert_int_equal(le32(d + 14), VCCID_CCID_CLOCK_KHZ);
	assert_int_equal(d[18], 0);
	assert_int_equal(le32(d + 19), VCCID_CCID_DATA_RATE);
	assert_int_equal(le32(d + 23), VCCID_CCID_DATA_RATE);
	assert_int_equal(d[27], 0);                     /* no GET_DATA_RATES */
	assert_int_equal(le32(d + 28), 254);
	assert_int_equal(le32(d + 32), 0);
	assert_int_equal(le32(d + 36), 0);
	features = le32(d + 40);
	assert_int_equal(features & 0x00070000, VCCID_CCID_FEAT_EXTENDED_APDU);
	assert_true(features & VCCID_CCID_FEAT_AUTO_PPS_PROP);    /* libccid: no SetParameters */
	assert_true(features & VCCID_CCID_FEAT_AUTO_VOLTAGE);     /* libccid: bPowerSelect 0 */
	assert_false(features & VCCID_CCID_FEAT_AUTO_ACTIVATION); /* IccPowerOn powers */
	assert_false(features & VCCID_CCID_FEAT_CLOCK_STOP);      /* IccClock stop fails */
	assert_false(features & VCCID_CCID_FEAT_NAD_OTHER_THAN_00);
	assert_int_equal(le32(d + 44), vccid_ccid_max_message_length(f->ccid));
	assert_int_equal(le32(d + 44), 65554);
	assert_int_equal(d[48], 0xFF);
	assert_int_equal(d[49], 0xFF);
	assert_int_equal(d[50] | d[51] << 8, 0);
	assert_int_equal(d[52], 0);                     /* no PIN pad: Secure fails */
	assert_int_equal(d[53], 2);                     /* both slots at once: test_busy_slot */
	vccid_ccid_class_descriptor(f->small, d);
	assert_int_equal(le32(d + 44), 271);
}

static void test_usb_descriptors(void **state)
{
	struct fixture *f = *state;
	uint8_t class_desc[VCCID_CCID_CLASS_DESC_SIZE];
	uint8_t dev[VCCID_USB_DEVICE_DESC_SIZE], q[VCCID_USB_QUALIFIER_DESC_SIZE];
	uint8_t cfg[VCCID_USB_CONFIG_DESC_SIZE];
	uint8_t str[VCCID_USB_STRING_DESC_MAX];
	struct vccid_usb_ids ids = { .idVendor = 0x1234, .idProduct = 0x5678, .bcdDevice = 0x0203,
				     .serial = "SN-1" };
	char long_name[200];
	size_t len;
	int hs;

	vccid_usb_device_descriptor(NULL, dev);
	assert_int_equal(dev[0], 18);
	assert_int_equal(dev[1], 1);
	assert_int_equal(dev[2] | dev[3] << 8, 0x0200);
	assert_int_equal(dev[4], 0);                    /* class at interface level */
	assert_int_equal(dev[7], 64);
	assert_int_equal(dev[8] | dev[9] << 8, 0x1209);
	assert_int_equal(dev[10] | dev[11] << 8, VCCID_USB_PID);
	assert_int_equal(dev[12] | dev[13] << 8, 0x0100);
	assert_int_equal(dev[14], 1);
	assert_int_equal(dev[15], 2);
	assert_int_equal(dev[16], 0);                   /* no serial */
	assert_int_equal(dev[17], 1);
	vccid_usb_device_descriptor(&ids, dev);
	assert_int_equal(dev[8] | dev[9] << 8, 0x1234);
	assert_int_equal(dev[10] | dev[11] << 8, 0x5678);
	assert_int_equal(dev[12] | dev[13] << 8, 0x0203);
	assert_int_equal(dev[16], 3);
	vccid_usb_device_qualifier(q);
	assert_int_equal(q[0], 10);
	assert_int_equal(q[1], 6);

	vccid_ccid_class_descriptor(f->ccid, class_desc);
	for (hs = 0; hs < 2; hs++) {
		uint16_t bulk = hs ? 512 : 64;

		vccid_usb_config_descriptor(class_desc, hs ? VCCID_USB_HIGH_SPEED
							   : VCCID_USB_FULL_SPEED, cfg);
		assert_int_equal(cfg[0], 9);
		assert_int_equal(cfg[1], 2);
		assert_int_equal(cfg[2] | cfg[3] << 8, 93);
		assert_int_equal(cfg[4], 1);
		assert_int_equal(cfg[5], 1);
		/* interface */
		assert_int_equal(cfg[9], 9);
		assert_int_equal(cfg[10], 4);
		assert_int_equal(cfg[13], 3);
		assert_int_equal(cfg[14], 0x0B);
		assert_int_equal(cfg[15], 0);
		assert_int_equal(cfg[16], 0);
		/* class descriptor right after the interface: libccid's "extra" */
		assert_memory_equal(cfg + 18, class_desc, 54);
		/* endpoints */
		assert_int_equal(cfg[72], 7);
		assert_int_equal(cfg[73], 5);
		assert_int_equal(cfg[74], 0x01);
		assert_int_equal(cfg[75], 2);
		assert_int_equal(cfg[76] | cfg[77] << 8, bulk);
		assert_int_equal(cfg[81], 0x82);
		assert_int_equal(cfg[82], 2);
		assert_int_equal(cfg[83] | cfg[84] << 8, bulk);
		assert_int_equal(cfg[88], 0x83);
		assert_int_equal(cfg[89], 3);
		assert_int_equal(cfg[90] | cfg[91] << 8, 8);
		assert_true(cfg[92] > 0);
	}

	assert_int_equal(vccid_usb_string_descriptor(NULL, 0, str, sizeof(str), &len), VCCID_OK);
	assert_int_equal(len, 4);
	assert_int_equal(str[2] | str[3] << 8, 0x0409);
	assert_int_equal(vccid_usb_string_descriptor(NULL, 1, str, sizeof(str), &len), VCCID_OK);
	assert_int_equal(len, 2 + 2 * 5);
	assert_int_equal(str[0], len);
	assert_int_equal(str[1], 3);
	assert_int_equal(str[2], 'v');
	assert_int_equal(str[3], 0);
	assert_int_equal(vccid_usb_string_descriptor(NULL, 2, str, sizeof(str), &len), VCCID_OK);
	assert_int_equal(len, 2 + 2 * strlen("vccid virtual CCID reader"));
	assert_int_equal(vccid_usb_string_descriptor(NULL, 3, str, sizeof(str), &len),
			 VCCID_ENOENT);
	assert_int_equal(vccid_usb_string_descriptor(NULL, 4, str, sizeof(str), &len),
			 VCCID_ENOENT);
	assert_int_equal(vccid_usb_string_descriptor(&ids, 3, str, sizeof(str), &len), VCCID_OK);
	assert_int_equal(len, 10);
	assert_int_equal(str[8], '1');
	assert_int_equal(vccid_usb_string_descriptor(&ids, 3, str, 9, &len), VCCID_ENOSPC);
	assert_int_equal(len, 0);
	assert_int_equal(vccid_usb_string_descriptor(&ids, 3, NULL, 9, &len), VCCID_EINVAL);
	memset(long_name, 0xC3, sizeof(long_name) - 1);   /* not ASCII: '?' */
	long_name[sizeof(long_name) - 1] = '\0';
	ids.product = long_name;
	assert_int_equal(vccid_usb_string_descriptor(&ids, 2, str, sizeof(str), &len), VCCID_OK);
	assert_int_equal(len, 254);
	assert_int_equal(str[0], 254);
	assert_int_equal(str[2], '?');
	assert_int_equal(str[253], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_bad_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dwlength_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_on_bad_atr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_off_and_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xfr_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xfr_block_extended_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_response, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_both, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_card_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parameters_t0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parameters_t1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_parameters_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock_and_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_extension, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_eight_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_class_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usb_descriptors, setup, teardown),
	};

	return cmocka_run_group_tests_name("ccid", tests, NULL, NULL);
}
