/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the CCID device engine as a USB host drives it.
 *
 * Input: a sequence of records [u16 little-endian length][length bytes],
 * each one PC_to_RDR message handed to vccid_ccid_bulk_out() whole (a
 * truncated last record is sent as it is). Lengths 0xFFF0-0xFFFF carry no
 * bytes and are events instead:
 *   FFF0 / FFF1  remove the card of slot 0 / 1, or insert it again;
 *   FFF2 / FFF3  control-pipe ABORT for slot 0 / 1 with bSeq 0;
 *   FFF4         build RDR_to_PC_NotifySlotChange; FFF5 the after-connect one;
 *   others       ignored.
 * The engine has two slots holding fake cards (slot 0: the T=0 CAC ATR,
 * slot 1: a T=1 ATR) and dwMaxCCIDMessageLength 271, so that command and
 * response chaining are reached with small inputs. A fake card answers INS B0
 * with P1P2 bytes plus 90 00, fails INS EE, and answers anything else with
 * its length plus 90 00.
 *
 * Every answer must be a well-formed RDR_to_PC message of the type that
 * matches the command, echo bSlot and bSeq, have a dwLength that matches its
 * size and fit in dwMaxCCIDMessageLength; anything else traps.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ccid/ccid.h"
#include "corelib/error.h"
#include "corelib/slot.h"
#include "fuzz-card.h"
#include "fuzz-log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	FUZZ_MAX_MESSAGE = VCCID_CCID_MIN_MESSAGE,
	EVENT_FIRST = 0xFFF0,
	EVENT_TOGGLE_0 = 0xFFF0,
	EVENT_TOGGLE_1 = 0xFFF1,
	EVENT_ABORT_0 = 0xFFF2,
	EVENT_ABORT_1 = 0xFFF3,
	EVENT_NOTIFY = 0xFFF4,
	EVENT_NOTIFY_ALL = 0xFFF5,
};

/*
 * The answer type of each command (CCID 1.1 §6.2), written here again on
 * purpose: this table is the oracle the engine's own (ccid.c response_type)
 * is checked against, so it must not be shared with it. Keep it independent.
 */
static uint8_t expected_type(uint8_t bMessageType)
{
	switch (bMessageType) {
	case VCCID_PC_to_RDR_IccPowerOn:
	case VCCID_PC_to_RDR_XfrBlock:
	case VCCID_PC_to_RDR_Secure:
		return VCCID_RDR_to_PC_DataBlock;
	case VCCID_PC_to_RDR_SetParameters:
	case VCCID_PC_to_RDR_GetParameters:
	case VCCID_PC_to_RDR_ResetParameters:
		return VCCID_RDR_to_PC_Parameters;
	case VCCID_PC_to_RDR_Escape:
		return VCCID_RDR_to_PC_Escape;
	case VCCID_PC_to_RDR_SetDataRateAndClockFrequency:
		return VCCID_RDR_to_PC_DataRateAndClockFrequency;
	default:
		return VCCID_RDR_to_PC_SlotStatus;
	}
}

static void check_answer(const uint8_t *msg, size_t len, int rv, const uint8_t *out,
			 size_t out_len)
{
	uint32_t dwLength;

	if (len < VCCID_CCID_HEADER_SIZE) {
		if (rv != VCCID_EPROTO || out_len != 0)
			__builtin_trap();
		return;
	}
	if (rv != VCCID_OK || out_len < VCCID_CCID_HEADER_SIZE || out_len > FUZZ_MAX_MESSAGE)
		__builtin_trap();
	dwLength = (uint32_t)out[1] | (uint32_t)out[2] << 8 | (uint32_t)out[3] << 16 |
		   (uint32_t)out[4] << 24;
	if (dwLength != out_len - VCCID_CCID_HEADER_SIZE)
		__builtin_trap();
	if (out[0] != expected_type(msg[0]) || out[5] != msg[5] || out[6] != msg[6])
		__builtin_trap();
	if ((out[7] & 0x3C) != 0 || (out[7] & 0x03) == 0x03 || out[7] >> 6 == 0x03)
		__builtin_trap();
	if (out[7] >> 6 == VCCID_CCID_CMD_FAILED && dwLength != 0)
		__builtin_trap();
	if (msg[5] >= 2 && (out[7] >> 6 != VCCID_CCID_CMD_FAILED ||
			    (out[7] & 0x03) != VCCID_CCID_ICC_ABSENT))
		__builtin_trap();
}

static void check_notify(bool sent, const uint8_t *out, size_t out_len)
{
	if (!sent) {
		if (out_len != 0)
			__builtin_trap();
		return;
	}
	if (out_len != 2 || out[0] != VCCID_RDR_to_PC_NotifySlotChange || (out[1] & 0xF0) != 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fake_card cards[2];
	static uint8_t out[FUZZ_MAX_MESSAGE];
	struct vccid_ccid_params params = { .max_message_length = FUZZ_MAX_MESSAGE };
	vccid_slot *slots[2];
	vccid_ccid *ccid;
	size_t i;

	fuzz_enable_logging();
	fuzz_cards_init(cards);
	for (i = 0; i < 2; i++) {
		slots[i] = vccid_slot_new();
		if (slots[i] == NULL ||
		    fake_card_insert(slots[i], &cards[i], "fuzz") != VCCID_OK)
			abort();
	}
	ccid = vccid_ccid_new(slots, 2, &params);
	if (ccid == NULL)
		abort();

	while (size >= 2) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		size_t out_len = 1;
		bool sent;
		int rv;

		data += 2;
		size -= 2;
		if (len >= EVENT_FIRST) {
			switch (len) {
			case EVENT_TOGGLE_0:
			case EVENT_TOGGLE_1:
				i = len - EVENT_TOGGLE_0;
				if (vccid_slot_remove(slots[i]) == VCCID_ENOCARD)
					(void)fake_card_insert(slots[i], &cards[i], "fuzz");
				break;
			case EVENT_ABORT_0:
			case EVENT_ABORT_1:
				if (vccid_ccid_abort(ccid, (uint8_t)(len - EVENT_ABORT_0), 0) != VCCID_OK)
					__builtin_trap();
				break;
			case EVENT_NOTIFY:
				sent = vccid_ccid_notify_slot_change(ccid, out, sizeof(out), &out_len);
				check_notify(sent, out, out_len);
				break;
			case EVENT_NOTIFY_ALL:
				sent = vccid_ccid_notify_all(ccid, out, sizeof(out), &out_len);
				if (!sent)
					__builtin_trap();
				check_notify(sent, out, out_len);
				break;
			default:
				break;
			}
			continue;
		}
		if (len > size)
			len = size;
		rv = vccid_ccid_bulk_out(ccid, data, len, out, sizeof(out), &out_len);
		check_answer(data, len, rv, out, out_len);
		data += len;
		size -= len;
	}

	vccid_ccid_free(ccid);
	for (i = 0; i < 2; i++)
		vccid_slot_free(slots[i]);
	return 0;
}
