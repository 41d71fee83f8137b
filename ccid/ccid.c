/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CCID Rev 1.1 device engine: decodes PC_to_RDR messages, drives the slots, encodes RDR_to_PC answers. */
#include "ccid.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "corelib/atr.h"
#include "corelib/error.h"
#include "corelib/log.h"

/* ------------------------------------------------------------------ wire layout */

/* Bulk message header, PC_to_RDR and RDR_to_PC alike (CCID 1.1 §6.1, §6.2). */
enum {
	OFF_bMessageType = 0,
	OFF_dwLength = 1,
	OFF_bSlot = 5,
	OFF_bSeq = 6,
	/* PC_to_RDR: three message-specific bytes */
	OFF_bPowerSelect = 7,        /* IccPowerOn */
	OFF_bBWI = 7,                /* XfrBlock */
	OFF_wLevelParameter = 8,     /* XfrBlock, Secure */
	OFF_bProtocolNum = 7,        /* SetParameters */
	OFF_bClockCommand = 7,       /* IccClock */
	/* RDR_to_PC */
	OFF_bStatus = 7,
	OFF_bError = 8,
	OFF_bSpecific = 9,           /* bChainParameter, bClockStatus, bProtocolNum, bRFU */
	OFF_abData = 10,
};
_Static_assert(OFF_abData == VCCID_CCID_HEADER_SIZE, "CCID header is 10 bytes");

/* abProtocolDataStructure sizes (§6.1.7). */
enum {
	PROTOCOL_T0 = 0,
	PROTOCOL_T1 = 1,
	PARAMS_T0_SIZE = 5,
	PARAMS_T1_SIZE = 7,
	PARAMS_MAX_SIZE = PARAMS_T1_SIZE,
};
/* Offsets inside abProtocolDataStructure. */
enum {
	P_bmFindexDindex = 0,
	P_bmTCCKS = 1,
	P_bGuardTime = 2,
	P_bWaitingInteger = 3,       /* T=0 bWaitingIntegerT0, T=1 bmWaitingIntegersT1 */
	P_bClockStop = 4,
	P_bIFSC = 5,                 /* T=1 only */
	P_bNadValue = 6,             /* T=1 only */
};

/* Bits of the parameter bytes and their ISO 7816-3 defaults. */
enum {
	FI_DI_DEFAULT = 0x11,        /* Fi=372, Di=1 */
	TCCKS_INVERSE = 0x02,        /* inverse convention (TS = 3F) */
	TCCKS_T1_BASE = 0x10,
	TCCKS_T1_CRC = 0x01,
	WI_DEFAULT = 0x0A,
	BWI_CWI_DEFAULT = 0x4D,
	IFSC_DEFAULT = 0x20,
	CLOCK_STOP_MAX = 3,
};

/* bPowerSelect (§6.1.1): 0 automatic, 1 5 V, 2 3 V, 3 1.8 V. */
enum { POWER_SELECT_MAX = 3 };
/* bClockCommand (§6.1.9). */
enum { CLOCK_RESTART = 0, CLOCK_STOP = 1 };
/* bClockStatus in RDR_to_PC_SlotStatus (§6.2.2): the clock always runs. */
enum { CLOCK_STATUS_RUNNING = 0 };
/* Payload of RDR_to_PC_DataRateAndClockFrequency and its command (§6.1.14, §6.2.5). */
enum { RATE_CLOCK_SIZE = 8 };
/* bVoltageSupport (§5.1): 5 V, 3 V, 1.8 V. */
enum { VOLTAGE_ALL = 0x07 };
/* dwProtocols (§5.1): T=0 and T=1. */
enum { PROTOCOLS_T0_T1 = 0x03 };
/* dwMaxIFSD: the largest IFSD of ISO 7816-3. */
enum { MAX_IFSD = 254 };
/* bClassGetResponse / bClassEnvelope: echo the class of the APDU. */
enum { CLASS_ECHO = 0xFF };

/* ------------------------------------------------------------------ engine state */

enum chain_state {
	CHAIN_NONE,
	CHAIN_COMMAND,    /* receiving a command APDU in blocks */
	CHAIN_RESPONSE,   /* sending a response APDU in blocks */
};

struct ccid_slot {
	vccid_slot *slot;
	/* lock guards busy and the abort fields; the chain and parameter
	 * fields belong to the thread that set busy (or to anyone under lock
	 * while busy is false). */
	pthread_mutex_t lock;
	bool busy;
	uint8_t busy_seq;
	bool abort_pending;       /* control ABORT seen, PC_to_RDR_Abort not yet */
	bool abort_hit;           /* the ABORT named the command in progress */
	bool chain_drop;          /* drop the chain when the command in progress ends */

	enum chain_state chain;
	uint64_t chain_changes;   /* the slot's change counter when the chain began */
	uint8_t *cmd;             /* VCCID_MAX_COMMAND bytes */
	size_t cmd_len;
	uint8_t *rsp;             /* VCCID_MAX_RESPONSE bytes */
	size_t rsp_len;
	size_t rsp_pos;

	uint64_t params_changes;  /* parameters below describe this card */
	uint8_t protocol;
	uint8_t params[PARAMS_MAX_SIZE];

	uint64_t notified_changes;   /* under vccid_ccid.notify_lock */
};

struct vccid_ccid {
	size_t n_slots;
	uint32_t max_message;
	pthread_mutex_t notify_lock;
	struct ccid_slot slots[VCCID_CCID_MAX_SLOTS];
};

/* What a handler decides; the header is written from it at the end. */
struct reply {
	uint8_t bMessageType;
	uint8_t bmCommandStatus;
	uint8_t bError;
	uint8_t bSpecific;
	bool icc_absent;          /* force bmICCStatus "absent" (slot does not exist) */
	size_t data_len;          /* bytes already at out + 10 */
};

/* ------------------------------------------------------------------ helpers */

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* The answer type of each command; unknown ones get SlotStatus (§6.2.6). */
static uint8_t response_type(uint8_t bMessageType)
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

/* Commands whose dwLength must be 0 (§6.1.1-§6.1.14). */
static bool takes_no_data(uint8_t bMessageType)
{
	switch (bMessageType) {
	case VCCID_PC_to_RDR_IccPowerOn:
	case VCCID_PC_to_RDR_IccPowerOff:
	case VCCID_PC_to_RDR_GetSlotStatus:
	case VCCID_PC_to_RDR_GetParameters:
	case VCCID_PC_to_RDR_ResetParameters:
	case VCCID_PC_to_RDR_IccClock:
	case VCCID_PC_to_RDR_Abort:
		return true;
	default:
		return false;
	}
}

static uint8_t icc_status(const struct vccid_slot_status *st)
{
	if (!st->present)
		return VCCID_CCID_ICC_ABSENT;
	return st->powered ? VCCID_CCID_ICC_PRESENT_ACTIVE : VCCID_CCID_ICC_PRESENT_INACTIVE;
}

static void fail(struct reply *r, uint8_t bError)
{
	r->bmCommandStatus = VCCID_CCID_CMD_FAILED;
	r->bError = bError;
	r->data_len = 0;
}

/* Maps a slot error to bError (and is the one place that does). */
static uint8_t slot_error(int err)
{
	switch (err) {
	case VCCID_ENOCARD:
	case VCCID_ENOTPOWERED:
	case VCCID_ETIMEDOUT:
		return VCCID_CCID_ERR_ICC_MUTE;
	default:
		return VCCID_CCID_ERR_HW_ERROR;
	}
}

static void wipe(uint8_t *buf, size_t len)
{
	if (len > 0)
		explicit_bzero(buf, len);
}

static void chain_reset(struct ccid_slot *cs)
{
	wipe(cs->cmd, cs->cmd_len);
	wipe(cs->rsp, cs->rsp_len);
	cs->cmd_len = 0;
	cs->rsp_len = 0;
	cs->rsp_pos = 0;
	cs->chain = CHAIN_NONE;
}

/* ------------------------------------------------------------------ protocol parameters */

/* Default parameters for the card's ATR (§6.1.7); T=0 defaults without an ATR. */
static void params_default(struct ccid_slot *cs, const struct vccid_slot_status *st)
{
	struct vccid_atr atr;
	uint8_t tccks;

	/* A slot keeps only checked ATRs; none (card not powered) gives the T=0 defaults. */
	if (vccid_atr_parse(st->atr, st->atr_len, &atr) != VCCID_OK)
		vccid_atr_parse(NULL, 0, &atr);   /* every byte absent */
	memset(cs->params, 0, sizeof(cs->params));
	cs->params_changes = st->changes;
	cs->protocol = atr.first_protocol == PROTOCOL_T1 ? PROTOCOL_T1 : PROTOCOL_T0;
	cs->params[P_bmFindexDindex] = atr.ta[1] >= 0 ? (uint8_t)atr.ta[1] : FI_DI_DEFAULT;
	cs->params[P_bGuardTime] = atr.tc[1] >= 0 ? (uint8_t)atr.tc[1] : 0;
	cs->params[P_bClockStop] = 0;
	tccks = atr.inverse ? TCCKS_INVERSE : 0;
	if (cs->protocol == PROTOCOL_T0) {
		cs->params[P_bmTCCKS] = tccks;
		cs->params[P_bWaitingInteger] = atr.tc[2] >= 0 ? (uint8_t)atr.tc[2] : WI_DEFAULT;
	} else {
		if (atr.t1_edc >= 0 && (atr.t1_edc & 1))
			tccks |= TCCKS_T1_CRC;
		cs->params[P_bmTCCKS] = (uint8_t)(TCCKS_T1_BASE | tccks);
		cs->params[P_bWaitingInteger] = atr.t1_bwi_cwi >= 0 ? (uint8_t)atr.t1_bwi_cwi
								    : BWI_CWI_DEFAULT;
		cs->params[P_bIFSC] = atr.t1_ifsc >= 0 ? (uint8_t)atr.t1_ifsc : IFSC_DEFAULT;
		cs->params[P_bNadValue] = 0;
	}
}

static size_t params_size(uint8_t protocol)
{
	return protocol == PROTOCOL_T0 ? PARAMS_T0_SIZE : PARAMS_T1_SIZE;
}

static void reply_params(struct ccid_slot *cs, struct reply *r, uint8_t *data)
{
	size_t n = params_size(cs->protocol);

	memcpy(data, cs->params, n);
	r->bSpecific = cs->protocol;
	r->data_len = n;
}

/* ------------------------------------------------------------------ command handlers */

static void do_power_on(struct ccid_slot *cs, const uint8_t *msg, struct reply *r, uint8_t *data)
{
	struct vccid_slot_status st;
	size_t atr_len = VCCID_MAX_ATR;
	int rv;

	if (msg[OFF_bPowerSelect] > POWER_SELECT_MAX) {
		fail(r, VCCID_CCID_ERR_BAD_POWER_SELECT);
		return;
	}
	/* Any voltage suits a virtual card. A powered card gets a warm reset,
	 * which is what libccid's IFD_RESET asks for with this command. */
	vccid_slot_get_status(cs->slot, &st);
	chain_reset(cs);
	rv = vccid_slot_power(cs->slot, st.powered ? VCCID_POWER_RESET : VCCID_POWER_UP,
			      data, &atr_len);
	if (rv != VCCID_OK) {
		VCCID_LOG(VCCID_LOG_INFO, "IccPowerOn failed: %s", vccid_strerror(rv));
		fail(r, slot_error(rv));
		return;
	}
	vccid_slot_get_status(cs->slot, &st);
	params_default(cs, &st);
	r->data_len = atr_len;
}

static void do_power_off(struct ccid_slot *cs, struct reply *r)
{
	int rv;

	chain_reset(cs);
	rv = vccid_slot_power(cs->slot, VCCID_POWER_DOWN, NULL, NULL);
	/* An empty slot is off already: that is success (§6.1.2). */
	if (rv != VCCID_OK && rv != VCCID_ENOCARD)
		fail(r, slot_error(rv));
	r->bSpecific = CLOCK_STATUS_RUNNING;
}

static void do_slot_status(struct ccid_slot *cs, struct reply *r)
{
	(void)cs;
	r->bSpecific = CLOCK_STATUS_RUNNING;
}

/* Checks the card is present (and the same card as @p changes when nonzero). */
static bool card_present(struct ccid_slot *cs, struct vccid_slot_status *st, struct reply *r)
{
	vccid_slot_get_status(cs->slot, st);
	if (!st->present) {
		fail(r, VCCID_CCID_ERR_ICC_MUTE);
		return false;
	}
	if (cs->params_changes != st->changes)
		params_default(cs, st);
	return true;
}

static void do_get_parameters(struct ccid_slot *cs, bool reset, struct reply *r, uint8_t *data)
{
	struct vccid_slot_status st;

	if (!card_present(cs, &st, r))
		return;
	if (reset)
		params_default(cs, &st);
	reply_params(cs, r, data);
}

static void do_set_parameters(struct ccid_slot *cs, const uint8_t *msg, size_t data_len,
			      struct reply *r, uint8_t *data)
{
	const uint8_t *p = msg + OFF_abData;
	uint8_t protocol = msg[OFF_bProtocolNum];
	struct vccid_slot_status st;

	if (protocol != PROTOCOL_T0 && protocol != PROTOCOL_T1) {
		fail(r, VCCID_CCID_ERR_BAD_PROTOCOL_NUM);
		return;
	}
	if (data_len != params_size(protocol)) {
		fail(r, VCCID_CCID_ERR_BAD_DWLENGTH);
		return;
	}
	if (protocol == PROTOCOL_T0 && (p[P_bmTCCKS] & (uint8_t)~TCCKS_INVERSE) != 0) {
		fail(r, VCCID_CCID_ERR_BAD_TCCKS);
		return;
	}
	if (protocol == PROTOCOL_T1 &&
	    (p[P_bmTCCKS] & (uint8_t)~(TCCKS_INVERSE | TCCKS_T1_CRC)) != TCCKS_T1_BASE) {
		fail(r, VCCID_CCID_ERR_BAD_TCCKS);
		return;
	}
	if (p[P_bClockStop] > CLOCK_STOP_MAX) {
		fail(r, VCCID_CCID_ERR_BAD_CLOCK_STOP);
		return;
	}
	if (protocol == PROTOCOL_T1 && (p[P_bIFSC] == 0x00 || p[P_bIFSC] == 0xFF)) {
		fail(r, VCCID_CCID_ERR_BAD_IFSC);
		return;
	}
	if (protocol == PROTOCOL_T1 && p[P_bNadValue] != 0) {
		fail(r, VCCID_CCID_ERR_BAD_NAD);   /* no NAD support in dwFeatures */
		return;
	}
	if (!card_present(cs, &st, r))
		return;
	/* APDUs reach the card whatever the parameters: they are recorded and
	 * reported back, as the host expects from GetParameters. */
	cs->protocol = protocol;
	memset(cs->params, 0, sizeof(cs->params));
	memcpy(cs->params, p, data_len);
	reply_params(cs, r, data);
}

static void do_icc_clock(const uint8_t *msg, struct reply *r)
{
	r->bSpecific = CLOCK_STATUS_RUNNING;
	if (msg[OFF_bClockCommand] == CLOCK_RESTART)
		return;   /* the clock never stops: nothing to restart */
	if (msg[OFF_bClockCommand] == CLOCK_STOP)
		fail(r, VCCID_CCID_ERR_CMD_NOT_SUPPORTED);   /* no clock stop in dwFeatures */
	else
		fail(r, VCCID_CCID_ERR_BAD_CLOCK_COMMAND);
}

static void do_set_rate(size_t data_len, struct reply *r, uint8_t *data)
{
	if (data_len != RATE_CLOCK_SIZE) {
		fail(r, VCCID_CCID_ERR_BAD_DWLENGTH);
		return;
	}
	/* One clock and one rate (bNumClockSupported = bNumDataRatesSupported
	 * = 0, default = maximum): answer the values in use (§6.2.5). */
	put_le32(data, VCCID_CCID_CLOCK_KHZ);
	put_le32(data + 4, VCCID_CCID_DATA_RATE);
	r->data_len = RATE_CLOCK_SIZE;
}

/* Copies the next block of the buffered response to @p data. */
static void send_response_block(vccid_ccid *ccid, struct ccid_slot *cs, struct reply *r,
				uint8_t *data)
{
	size_t room = ccid->max_message - VCCID_CCID_HEADER_SIZE;
	size_t left = cs->rsp_len - cs->rsp_pos;
	size_t n = left < room ? left : room;
	bool first = cs->rsp_pos == 0;
	bool last = n == left;

	memcpy(data, cs->rsp + cs->rsp_pos, n);
	cs->rsp_pos += n;
	r->data_len = n;
	if (first)
		r->bSpecific = last ? VCCID_CCID_CHAIN_BEGIN_AND_END : VCCID_CCID_CHAIN_BEGIN;
	else
		r->bSpecific = last ? VCCID_CCID_CHAIN_END : VCCID_CCID_CHAIN_CONTINUE;
	if (last)
		chain_reset(cs);
	else
		cs->chain = CHAIN_RESPONSE;
}

static void transmit(vccid_ccid *ccid, struct ccid_slot *cs, const uint8_t *apdu, size_t len,
		     struct reply *r, uint8_t *data)
{
	struct vccid_slot_status st;
	size_t rsp_len = VCCID_MAX_RESPONSE;
	int rv;

	vccid_slot_get_status(cs->slot, &st);
	rv = vccid_slot_transmit(cs->slot, apdu, len, cs->rsp, &rsp_len);
	if (rv != VCCID_OK) {
		VCCID_LOG(VCCID_LOG_INFO, "XfrBlock failed: %s", vccid_strerror(rv));
		explicit_bzero(cs->rsp, VCCID_MAX_RESPONSE);   /* whatever the card left there */
		cs->rsp_len = 0;
		chain_reset(cs);
		fail(r, slot_error(rv));
		return;
	}
	cs->rsp_len = rsp_len;
	cs->rsp_pos = 0;
	cs->chain_changes = st.changes;
	send_response_block(ccid, cs, r, data);
}

/* The chain is still valid: same card, still powered. */
static bool chain_card_ok(struct ccid_slot *cs, struct reply *r)
{
	struct vccid_slot_status st;

	vccid_slot_get_status(cs->slot, &st);
	if (st.present && st.powered && st.changes == cs->chain_changes)
		return true;
	chain_reset(cs);
	fail(r, VCCID_CCID_ERR_ICC_MUTE);
	return false;
}

static void do_xfr_block(vccid_ccid *ccid, struct ccid_slot *cs, const uint8_t *msg,
			 size_t data_len, struct reply *r, uint8_t *data)
{
	const uint8_t *block = msg + OFF_abData;
	uint16_t level = (uint16_t)(msg[OFF_wLevelParameter] | msg[OFF_wLevelParameter + 1] << 8);
	struct vccid_slot_status st;
	bool expected;

	/* bBWI only stretches a real card's waiting time: nothing to do. */
	switch (cs->chain) {
	case CHAIN_NONE:
		expected = level == VCCID_CCID_LEVEL_BEGIN_AND_END ||
			   level == VCCID_CCID_LEVEL_BEGIN;
		break;
	case CHAIN_COMMAND:
		expected = level == VCCID_CCID_LEVEL_CONTINUE || level == VCCID_CCID_LEVEL_END;
		break;
	case CHAIN_RESPONSE:
	default:
		expected = level == VCCID_CCID_LEVEL_RESPONSE_NEXT;
		break;
	}
	if (!expected) {
		VCCID_LOG(VCCID_LOG_INFO, "XfrBlock wLevelParameter 0x%04X out of sequence", level);
		chain_reset(cs);
		fail(r, VCCID_CCID_ERR_BAD_LEVEL_PARAMETER);
		return;
	}

	switch (level) {
	case VCCID_CCID_LEVEL_BEGIN_AND_END:
		transmit(ccid, cs, block, data_len, r, data);
		return;
	case VCCID_CCID_LEVEL_BEGIN:
		vccid_slot_get_status(cs->slot, &st);
		if (!st.present || !st.powered) {
			fail(r, VCCID_CCID_ERR_ICC_MUTE);
			return;
		}
		cs->chain_changes = st.changes;
		cs->cmd_len = 0;
		/* fall through */
	case VCCID_CCID_LEVEL_CONTINUE:
	case VCCID_CCID_LEVEL_END:
		if (cs->chain == CHAIN_COMMAND && !chain_card_ok(cs, r))
			return;
		if (data_len > VCCID_MAX_COMMAND - cs->cmd_len) {
			VCCID_LOG(VCCID_LOG_INFO, "chained command APDU over %d bytes",
				  VCCID_MAX_COMMAND);
			chain_reset(cs);
			fail(r, VCCID_CCID_ERR_BAD_DWLENGTH);
			return;
		}
		memcpy(cs->cmd + cs->cmd_len, block, data_len);
		cs->cmd_len += data_len;
		if (level != VCCID_CCID_LEVEL_END) {
			cs->chain = CHAIN_COMMAND;
			r->bSpecific = VCCID_CCID_CHAIN_COMMAND_NEXT;
			return;
		}
		cs->chain = CHAIN_NONE;
		transmit(ccid, cs, cs->cmd, cs->cmd_len, r, data);
		wipe(cs->cmd, cs->cmd_len);
		cs->cmd_len = 0;
		return;
	case VCCID_CCID_LEVEL_RESPONSE_NEXT:
	default:
		if (data_len != 0) {
			chain_reset(cs);
			fail(r, VCCID_CCID_ERR_BAD_DWLENGTH);
			return;
		}
		if (!chain_card_ok(cs, r))
			return;
		send_response_block(ccid, cs, r, data);
		return;
	}
}

/* Runs one command on a slot this thread holds busy. */
static void dispatch(vccid_ccid *ccid, struct ccid_slot *cs, const uint8_t *msg, size_t data_len,
		     struct reply *r, uint8_t *data)
{
	switch ((enum vccid_ccid_pc_to_rdr)msg[OFF_bMessageType]) {
	case VCCID_PC_to_RDR_IccPowerOn:
		do_power_on(cs, msg, r, data);
		break;
	case VCCID_PC_to_RDR_IccPowerOff:
		do_power_off(cs, r);
		break;
	case VCCID_PC_to_RDR_GetSlotStatus:
		do_slot_status(cs, r);
		break;
	case VCCID_PC_to_RDR_XfrBlock:
		do_xfr_block(ccid, cs, msg, data_len, r, data);
		break;
	case VCCID_PC_to_RDR_GetParameters:
		do_get_parameters(cs, false, r, data);
		break;
	case VCCID_PC_to_RDR_ResetParameters:
		do_get_parameters(cs, true, r, data);
		break;
	case VCCID_PC_to_RDR_SetParameters:
		do_set_parameters(cs, msg, data_len, r, data);
		break;
	case VCCID_PC_to_RDR_IccClock:
		do_icc_clock(msg, r);
		break;
	case VCCID_PC_to_RDR_SetDataRateAndClockFrequency:
		do_set_rate(data_len, r, data);
		break;
	case VCCID_PC_to_RDR_Escape:      /* no vendor commands */
	case VCCID_PC_to_RDR_Secure:      /* bPINSupport 0: no PIN pad */
	case VCCID_PC_to_RDR_T0APDU:      /* no automatic GET RESPONSE / ENVELOPE to reconfigure */
	case VCCID_PC_to_RDR_Mechanical:  /* dwMechanical 0 */
	case VCCID_PC_to_RDR_Abort:       /* handled before dispatch */
	default:
		fail(r, VCCID_CCID_ERR_CMD_NOT_SUPPORTED);
		break;
	}
}

/* ------------------------------------------------------------------ public API */

vccid_ccid *vccid_ccid_new(vccid_slot *const *slots, size_t n_slots,
			   const struct vccid_ccid_params *params)
{
	vccid_ccid *ccid;
	uint32_t max_message = VCCID_CCID_MAX_MESSAGE;
	size_t i;

	if (slots == NULL || n_slots == 0 || n_slots > VCCID_CCID_MAX_SLOTS)
		return NULL;
	if (params != NULL && params->max_message_length != 0) {
		max_message = params->max_message_length;
		if (max_message < VCCID_CCID_MIN_MESSAGE || max_message > VCCID_CCID_MAX_MESSAGE)
			return NULL;
	}
	for (i = 0; i < n_slots; i++)
		if (slots[i] == NULL)
			return NULL;
	ccid = calloc(1, sizeof(*ccid));
	if (ccid == NULL)
		return NULL;
	ccid->n_slots = n_slots;
	ccid->max_message = max_message;
	pthread_mutex_init(&ccid->notify_lock, NULL);
	for (i = 0; i < n_slots; i++) {
		struct ccid_slot *cs = &ccid->slots[i];
		struct vccid_slot_status st;

		cs->slot = slots[i];
		pthread_mutex_init(&cs->lock, NULL);
		cs->cmd = malloc(VCCID_MAX_COMMAND);
		cs->rsp = malloc(VCCID_MAX_RESPONSE);
		if (cs->cmd == NULL || cs->rsp == NULL) {
			ccid->n_slots = i + 1;
			vccid_ccid_free(ccid);
			return NULL;
		}
		vccid_slot_get_status(cs->slot, &st);
		params_default(cs, &st);
		cs->notified_changes = st.changes;
	}
	return ccid;
}

void vccid_ccid_free(vccid_ccid *ccid)
{
	size_t i;

	if (ccid == NULL)
		return;
	for (i = 0; i < ccid->n_slots; i++) {
		struct ccid_slot *cs = &ccid->slots[i];

		if (cs->cmd != NULL && cs->rsp != NULL)
			chain_reset(cs);
		free(cs->cmd);
		free(cs->rsp);
		pthread_mutex_destroy(&cs->lock);
	}
	pthread_mutex_destroy(&ccid->notify_lock);
	free(ccid);
}

uint32_t vccid_ccid_max_message_length(const vccid_ccid *ccid)
{
	return ccid->max_message;
}

size_t vccid_ccid_message_size(const uint8_t *hdr, size_t len)
{
	if (hdr == NULL || len < VCCID_CCID_HEADER_SIZE)
		return 0;
	return VCCID_CCID_HEADER_SIZE + (size_t)get_le32(hdr + OFF_dwLength);
}

static void write_header(uint8_t *out, const uint8_t *msg, const struct reply *r, uint8_t icc)
{
	out[OFF_bMessageType] = r->bMessageType;
	put_le32(out + OFF_dwLength, (uint32_t)r->data_len);
	out[OFF_bSlot] = msg[OFF_bSlot];
	out[OFF_bSeq] = msg[OFF_bSeq];
	out[OFF_bStatus] = (uint8_t)(icc | r->bmCommandStatus << 6);
	out[OFF_bError] = r->bError;
	out[OFF_bSpecific] = r->bSpecific;
}

int vccid_ccid_bulk_out(vccid_ccid *ccid, const uint8_t *msg, size_t len,
			uint8_t *out, size_t out_size, size_t *out_len)
{
	struct reply r = { 0 };
	struct ccid_slot *cs = NULL;
	struct vccid_slot_status st;
	uint8_t *data;
	uint32_t dwLength;
	bool ran = false;

	if (out_len != NULL)
		*out_len = 0;
	if (ccid == NULL || msg == NULL || out == NULL || out_len == NULL)
		return VCCID_EINVAL;
	if (len < VCCID_CCID_HEADER_SIZE)
		return VCCID_EPROTO;
	if (out_size < ccid->max_message)
		return VCCID_ENOSPC;
	data = out + OFF_abData;
	r.bMessageType = response_type(msg[OFF_bMessageType]);
	dwLength = get_le32(msg + OFF_dwLength);
	VCCID_LOG(VCCID_LOG_DEBUG, "PC_to_RDR 0x%02X slot %u seq %u dwLength %u",
		  msg[OFF_bMessageType], msg[OFF_bSlot], msg[OFF_bSeq], (unsigned)dwLength);

	/* Header checks, in field order (§6.2.6: bError is the field's offset). */
	if ((size_t)dwLength != len - VCCID_CCID_HEADER_SIZE ||
	    dwLength > ccid->max_message - VCCID_CCID_HEADER_SIZE ||
	    (dwLength != 0 && takes_no_data(msg[OFF_bMessageType]))) {
		fail(&r, VCCID_CCID_ERR_BAD_DWLENGTH);
		if (msg[OFF_bSlot] >= ccid->n_slots)
			r.icc_absent = true;
		goto answer;
	}
	if (msg[OFF_bSlot] >= ccid->n_slots) {
		fail(&r, VCCID_CCID_ERR_BAD_SLOT);
		r.icc_absent = true;
		goto answer;
	}
	cs = &ccid->slots[msg[OFF_bSlot]];

	pthread_mutex_lock(&cs->lock);
	if (msg[OFF_bMessageType] == VCCID_PC_to_RDR_Abort) {
		/* Ends an abort (§5.3.1); never waits for the slot. */
		cs->abort_pending = false;
		if (cs->busy)
			cs->chain_drop = true;
		else
			chain_reset(cs);
		r.bSpecific = CLOCK_STATUS_RUNNING;
		pthread_mutex_unlock(&cs->lock);
		goto answer;
	}
	if (cs->abort_pending) {
		pthread_mutex_unlock(&cs->lock);
		fail(&r, VCCID_CCID_ERR_CMD_ABORTED);
		goto answer;
	}
	if (cs->busy) {
		pthread_mutex_unlock(&cs->lock);
		fail(&r, VCCID_CCID_ERR_CMD_SLOT_BUSY);
		goto answer;
	}
	cs->busy = true;
	cs->busy_seq = msg[OFF_bSeq];
	pthread_mutex_unlock(&cs->lock);

	dispatch(ccid, cs, msg, dwLength, &r, data);
	ran = true;

	pthread_mutex_lock(&cs->lock);
	if (cs->chain_drop) {
		chain_reset(cs);
		cs->chain_drop = false;
	}
	if (cs->abort_hit) {
		cs->abort_hit = false;
		fail(&r, VCCID_CCID_ERR_CMD_ABORTED);
		r.bSpecific = 0;
	}
	cs->busy = false;
	pthread_mutex_unlock(&cs->lock);

answer:
	/* bmICCStatus as it is after the command. */
	if (r.icc_absent) {
		write_header(out, msg, &r, VCCID_CCID_ICC_ABSENT);
	} else {
		vccid_slot_get_status(ccid->slots[msg[OFF_bSlot]].slot, &st);
		write_header(out, msg, &r, icc_status(&st));
	}
	if (r.bmCommandStatus != VCCID_CCID_CMD_OK)
		VCCID_LOG(VCCID_LOG_INFO, "PC_to_RDR 0x%02X slot %u seq %u failed: bError 0x%02X%s",
			  msg[OFF_bMessageType], msg[OFF_bSlot], msg[OFF_bSeq], r.bError,
			  ran ? "" : " (not run)");
	*out_len = VCCID_CCID_HEADER_SIZE + r.data_len;
	return VCCID_OK;
}

int vccid_ccid_time_extension(vccid_ccid *ccid, const uint8_t *msg, size_t len, uint8_t bwi,
			      uint8_t *out, size_t out_size, size_t *out_len)
{
	struct reply r = { 0 };
	struct vccid_slot_status st;

	if (out_len != NULL)
		*out_len = 0;
	if (ccid == NULL || msg == NULL || out == NULL || out_len == NULL)
		return VCCID_EINVAL;
	if (len < VCCID_CCID_HEADER_SIZE || msg[OFF_bMessageType] != VCCID_PC_to_RDR_XfrBlock ||
	    msg[OFF_bSlot] >= ccid->n_slots)
		return VCCID_EPROTO;
	if (out_size < VCCID_CCID_HEADER_SIZE)
		return VCCID_ENOSPC;
	r.bMessageType = VCCID_RDR_to_PC_DataBlock;
	r.bmCommandStatus = VCCID_CCID_CMD_TIME_EXTENSION;
	r.bError = bwi;
	vccid_slot_get_status(ccid->slots[msg[OFF_bSlot]].slot, &st);
	write_header(out, msg, &r, icc_status(&st));
	*out_len = VCCID_CCID_HEADER_SIZE;
	return VCCID_OK;
}

/* CCID class descriptor fields (§5.1, Table 5.1-1). */
enum {
	D_bLength = 0,
	D_bDescriptorType = 1,
	D_bcdCCID = 2,
	D_bMaxSlotIndex = 4,
	D_bVoltageSupport = 5,
	D_dwProtocols = 6,
	D_dwDefaultClock = 10,
	D_dwMaximumClock = 14,
	D_bNumClockSupported = 18,
	D_dwDataRate = 19,
	D_dwMaxDataRate = 23,
	D_bNumDataRatesSupported = 27,
	D_dwMaxIFSD = 28,
	D_dwSynchProtocols = 32,
	D_dwMechanical = 36,
	D_dwFeatures = 40,
	D_dwMaxCCIDMessageLength = 44,
	D_bClassGetResponse = 48,
	D_bClassEnvelope = 49,
	D_wLcdLayout = 50,
	D_bPINSupport = 52,
	D_bMaxCCIDBusySlots = 53,
	D_END = 54,
	CCID_DESCRIPTOR_TYPE = 0x21,
	BCD_CCID_1_1 = 0x0110,
};
_Static_assert(D_END == VCCID_CCID_CLASS_DESC_SIZE, "CCID class descriptor is 54 bytes");

void vccid_ccid_class_descriptor(const vccid_ccid *ccid, uint8_t out[VCCID_CCID_CLASS_DESC_SIZE])
{
	memset(out, 0, VCCID_CCID_CLASS_DESC_SIZE);
	out[D_bLength] = VCCID_CCID_CLASS_DESC_SIZE;
	out[D_bDescriptorType] = CCID_DESCRIPTOR_TYPE;
	put_le16(out + D_bcdCCID, BCD_CCID_1_1);
	out[D_bMaxSlotIndex] = (uint8_t)(ccid->n_slots - 1);
	out[D_bVoltageSupport] = VOLTAGE_ALL;
	/* The engine forwards APDUs whatever the protocol, and backends bring
	 * T=0 and T=1 ATRs: libccid refuses a protocol missing here
	 * (IFDHSetProtocolParameters), so both are claimed. */
	put_le32(out + D_dwProtocols, PROTOCOLS_T0_T1);
	put_le32(out + D_dwDefaultClock, VCCID_CCID_CLOCK_KHZ);
	put_le32(out + D_dwMaximumClock, VCCID_CCID_CLOCK_KHZ);
	out[D_bNumClockSupported] = 0;       /* no GET_CLOCK_FREQUENCIES list */
	put_le32(out + D_dwDataRate, VCCID_CCID_DATA_RATE);
	put_le32(out + D_dwMaxDataRate, VCCID_CCID_DATA_RATE);
	out[D_bNumDataRatesSupported] = 0;   /* libccid skips GET_DATA_RATES on 0 */
	put_le32(out + D_dwMaxIFSD, MAX_IFSD);
	put_le32(out + D_dwSynchProtocols, 0);
	put_le32(out + D_dwMechanical, 0);
	put_le32(out + D_dwFeatures, VCCID_CCID_FEATURES);
	put_le32(out + D_dwMaxCCIDMessageLength, ccid->max_message);
	out[D_bClassGetResponse] = CLASS_ECHO;
	out[D_bClassEnvelope] = CLASS_ECHO;
	put_le16(out + D_wLcdLayout, 0);
	out[D_bPINSupport] = 0;
	/* Each slot has its own lock: every slot can run a command at once. */
	out[D_bMaxCCIDBusySlots] = (uint8_t)ccid->n_slots;
}

static size_t notify_size(const vccid_ccid *ccid)
{
	return 1 + (2 * ccid->n_slots + 7) / 8;
}

static bool notify_build(vccid_ccid *ccid, bool all, uint8_t *out, size_t out_size,
			 size_t *out_len)
{
	size_t size = notify_size(ccid);
	bool changed = false;
	size_t i;

	if (out_len != NULL)
		*out_len = 0;
	if (ccid == NULL || out == NULL || out_len == NULL || out_size < size)
		return false;
	memset(out, 0, size);
	out[0] = VCCID_RDR_to_PC_NotifySlotChange;
	pthread_mutex_lock(&ccid->notify_lock);
	for (i = 0; i < ccid->n_slots; i++) {
		struct ccid_slot *cs = &ccid->slots[i];
		struct vccid_slot_status st;
		bool slot_changed;

		vccid_slot_get_status(cs->slot, &st);
		/* Any insert or remove moves the counter: a remove and insert
		 * between two looks still shows as changed. */
		slot_changed = all ? st.present : st.changes != cs->notified_changes;
		cs->notified_changes = st.changes;
		if (st.present)
			out[1 + i / 4] |= (uint8_t)(1u << (2 * (i % 4)));
		if (slot_changed) {
			out[1 + i / 4] |= (uint8_t)(2u << (2 * (i % 4)));
			changed = true;
		}
	}
	pthread_mutex_unlock(&ccid->notify_lock);
	if (!changed && !all)
		return false;
	*out_len = size;
	return true;
}

bool vccid_ccid_notify_slot_change(vccid_ccid *ccid, uint8_t *out, size_t out_size,
				   size_t *out_len)
{
	return notify_build(ccid, false, out, out_size, out_len);
}

bool vccid_ccid_notify_all(vccid_ccid *ccid, uint8_t *out, size_t out_size, size_t *out_len)
{
	return notify_build(ccid, true, out, out_size, out_len);
}

void vccid_ccid_reset(vccid_ccid *ccid)
{
	size_t i;

	for (i = 0; i < ccid->n_slots; i++) {
		struct ccid_slot *cs = &ccid->slots[i];

		pthread_mutex_lock(&cs->lock);
		cs->abort_pending = false;
		cs->abort_hit = false;
		if (cs->busy)
			cs->chain_drop = true;   /* the command in progress drops it when it ends */
		else
			chain_reset(cs);
		pthread_mutex_unlock(&cs->lock);
	}
}

int vccid_ccid_abort(vccid_ccid *ccid, uint8_t slot, uint8_t seq)
{
	struct ccid_slot *cs;

	if (ccid == NULL || slot >= ccid->n_slots)
		return VCCID_ENOENT;
	cs = &ccid->slots[slot];
	pthread_mutex_lock(&cs->lock);
	cs->abort_pending = true;
	if (cs->busy) {
		/* A card exchange cannot be interrupted: its answer is
		 * replaced when it ends. */
		cs->chain_drop = true;
		if (cs->busy_seq == seq)
			cs->abort_hit = true;
	} else {
		chain_reset(cs);
	}
	pthread_mutex_unlock(&cs->lock);
	VCCID_LOG(VCCID_LOG_INFO, "ABORT slot %u seq %u", slot, seq);
	return VCCID_OK;
}
