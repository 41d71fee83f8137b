/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The USB CCID Rev 1.1 device engine: PC_to_RDR messages in, RDR_to_PC messages out, over vccid slots. */
#ifndef VCCID_CCID_H
#define VCCID_CCID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corelib/slot.h"

/* Every bulk message starts with a 10-byte header (CCID 1.1 §6.1, §6.2). */
#define VCCID_CCID_HEADER_SIZE 10
/* The CCID class descriptor is 54 bytes (CCID 1.1 §5.1, Table 5.1-1). */
#define VCCID_CCID_CLASS_DESC_SIZE 54
#define VCCID_CCID_MAX_SLOTS 8
/*
 * dwMaxCCIDMessageLength limits (CCID 1.1 §5.1): at the extended APDU level
 * between 261 + 10 and 65544 + 10. The default is the maximum, so a whole
 * extended command APDU (4 + 3 + 65535 + 2 = VCCID_MAX_COMMAND bytes) and a
 * whole response (65536 + 2) each travel in one message; smaller values make
 * the host chain (§6.1.4) and make the engine chain its answers.
 */
#define VCCID_CCID_MIN_MESSAGE (261 + VCCID_CCID_HEADER_SIZE)
#define VCCID_CCID_MAX_MESSAGE (VCCID_MAX_COMMAND + VCCID_CCID_HEADER_SIZE)
/* RDR_to_PC_NotifySlotChange for 8 slots: bMessageType + 2 bytes of bmSlotICCState. */
#define VCCID_CCID_NOTIFY_MAX_SIZE 3

/* Command pipe, bulk-out (CCID 1.1 §6.1). */
enum vccid_ccid_pc_to_rdr {
	VCCID_PC_to_RDR_SetParameters = 0x61,
	VCCID_PC_to_RDR_IccPowerOn = 0x62,
	VCCID_PC_to_RDR_IccPowerOff = 0x63,
	VCCID_PC_to_RDR_GetSlotStatus = 0x65,
	VCCID_PC_to_RDR_Secure = 0x69,
	VCCID_PC_to_RDR_T0APDU = 0x6A,
	VCCID_PC_to_RDR_Escape = 0x6B,
	VCCID_PC_to_RDR_GetParameters = 0x6C,
	VCCID_PC_to_RDR_ResetParameters = 0x6D,
	VCCID_PC_to_RDR_IccClock = 0x6E,
	VCCID_PC_to_RDR_XfrBlock = 0x6F,
	VCCID_PC_to_RDR_Mechanical = 0x71,
	VCCID_PC_to_RDR_Abort = 0x72,
	VCCID_PC_to_RDR_SetDataRateAndClockFrequency = 0x73,
};

/* Response pipe, bulk-in (§6.2), and interrupt-in (§6.3). */
enum vccid_ccid_rdr_to_pc {
	VCCID_RDR_to_PC_NotifySlotChange = 0x50,
	VCCID_RDR_to_PC_HardwareError = 0x51,
	VCCID_RDR_to_PC_DataBlock = 0x80,
	VCCID_RDR_to_PC_SlotStatus = 0x81,
	VCCID_RDR_to_PC_Parameters = 0x82,
	VCCID_RDR_to_PC_Escape = 0x83,
	VCCID_RDR_to_PC_DataRateAndClockFrequency = 0x84,
};

/* bStatus = bmICCStatus | bmCommandStatus << 6 (§6.2.6, Table 6.2-3). */
enum vccid_ccid_icc_status {
	VCCID_CCID_ICC_PRESENT_ACTIVE = 0,
	VCCID_CCID_ICC_PRESENT_INACTIVE = 1,
	VCCID_CCID_ICC_ABSENT = 2,
};
enum vccid_ccid_command_status {
	VCCID_CCID_CMD_OK = 0,
	VCCID_CCID_CMD_FAILED = 1,
	VCCID_CCID_CMD_TIME_EXTENSION = 2,
};

/*
 * bError when bmCommandStatus is "failed" (§6.2.6, Table 6.2-2). Values 1 to
 * 0x7F are the offset of the offending field in the command; these name the
 * ones the engine reports.
 */
enum vccid_ccid_error {
	VCCID_CCID_ERR_CMD_NOT_SUPPORTED = 0x00,
	VCCID_CCID_ERR_BAD_DWLENGTH = 0x01,        /* offset of dwLength */
	VCCID_CCID_ERR_BAD_SLOT = 0x05,            /* offset of bSlot: slot does not exist */
	VCCID_CCID_ERR_BAD_POWER_SELECT = 0x07,    /* offset of bPowerSelect */
	VCCID_CCID_ERR_BAD_PROTOCOL_NUM = 0x07,    /* offset of bProtocolNum */
	VCCID_CCID_ERR_BAD_CLOCK_COMMAND = 0x07,   /* offset of bClockCommand */
	VCCID_CCID_ERR_BAD_LEVEL_PARAMETER = 0x08, /* offset of wLevelParameter */
	VCCID_CCID_ERR_BAD_TCCKS = 0x0B,           /* offset of bmTCCKST0/bmTCCKST1 */
	VCCID_CCID_ERR_BAD_CLOCK_STOP = 0x0E,      /* offset of bClockStop */
	VCCID_CCID_ERR_BAD_IFSC = 0x0F,            /* offset of bIFSC */
	VCCID_CCID_ERR_BAD_NAD = 0x10,             /* offset of bNadValue */
	VCCID_CCID_ERR_CMD_SLOT_BUSY = 0xE0,
	VCCID_CCID_ERR_PIN_CANCELLED = 0xEF,
	VCCID_CCID_ERR_PIN_TIMEOUT = 0xF0,
	VCCID_CCID_ERR_BUSY_WITH_AUTO_SEQUENCE = 0xF2,
	VCCID_CCID_ERR_DEACTIVATED_PROTOCOL = 0xF3,
	VCCID_CCID_ERR_PROCEDURE_BYTE_CONFLICT = 0xF4,
	VCCID_CCID_ERR_ICC_CLASS_NOT_SUPPORTED = 0xF5,
	VCCID_CCID_ERR_ICC_PROTOCOL_NOT_SUPPORTED = 0xF6,
	VCCID_CCID_ERR_BAD_ATR_TCK = 0xF7,
	VCCID_CCID_ERR_BAD_ATR_TS = 0xF8,
	VCCID_CCID_ERR_HW_ERROR = 0xFB,
	VCCID_CCID_ERR_XFR_OVERRUN = 0xFC,
	VCCID_CCID_ERR_XFR_PARITY_ERROR = 0xFD,
	VCCID_CCID_ERR_ICC_MUTE = 0xFE,
	VCCID_CCID_ERR_CMD_ABORTED = 0xFF,
};

/* wLevelParameter of PC_to_RDR_XfrBlock at the extended APDU level (§6.1.4). */
enum vccid_ccid_level {
	VCCID_CCID_LEVEL_BEGIN_AND_END = 0x0000,  /* the command APDU begins and ends here */
	VCCID_CCID_LEVEL_BEGIN = 0x0001,          /* begins here, continues in the next XfrBlock */
	VCCID_CCID_LEVEL_END = 0x0002,            /* continues a command APDU and ends it */
	VCCID_CCID_LEVEL_CONTINUE = 0x0003,       /* continues a command APDU, more follow */
	VCCID_CCID_LEVEL_RESPONSE_NEXT = 0x0010,  /* empty: send the next block of the response */
};

/* bChainParameter of RDR_to_PC_DataBlock (§6.2.1). */
enum vccid_ccid_chain {
	VCCID_CCID_CHAIN_BEGIN_AND_END = 0x00,
	VCCID_CCID_CHAIN_BEGIN = 0x01,
	VCCID_CCID_CHAIN_END = 0x02,
	VCCID_CCID_CHAIN_CONTINUE = 0x03,
	VCCID_CCID_CHAIN_COMMAND_NEXT = 0x10,     /* empty: send the next block of the command */
};

/* dwFeatures bits (§5.1). */
enum vccid_ccid_feature {
	VCCID_CCID_FEAT_AUTO_CONF_ATR = 0x00000002,
	VCCID_CCID_FEAT_AUTO_ACTIVATION = 0x00000004,
	VCCID_CCID_FEAT_AUTO_VOLTAGE = 0x00000008,
	VCCID_CCID_FEAT_AUTO_CLOCK = 0x00000010,
	VCCID_CCID_FEAT_AUTO_BAUD = 0x00000020,
	VCCID_CCID_FEAT_AUTO_PPS_PROP = 0x00000040,
	VCCID_CCID_FEAT_AUTO_PPS_CUR = 0x00000080,
	VCCID_CCID_FEAT_CLOCK_STOP = 0x00000100,
	VCCID_CCID_FEAT_NAD_OTHER_THAN_00 = 0x00000200,
	VCCID_CCID_FEAT_AUTO_IFSD = 0x00000400,
	VCCID_CCID_FEAT_TPDU = 0x00010000,
	VCCID_CCID_FEAT_SHORT_APDU = 0x00020000,
	VCCID_CCID_FEAT_EXTENDED_APDU = 0x00040000,
};

/*
 * What the engine claims in dwFeatures, every bit true of it:
 * - AUTO_CONF_ATR, AUTO_VOLTAGE, AUTO_CLOCK, AUTO_BAUD: a virtual card needs
 *   no electrical set-up; with AUTO_VOLTAGE libccid sends bPowerSelect 0
 *   (commands.c CmdPowerOn).
 * - AUTO_PPS_PROP, AUTO_PPS_CUR: libccid then sends neither a PPS nor
 *   PC_to_RDR_SetParameters (ifdhandler.c IFDHSetProtocolParameters).
 * - EXTENDED_APDU: whole short and extended APDUs, chained per §6.1.4 when
 *   longer than dwMaxCCIDMessageLength - 10; libccid uses
 *   CmdXfrBlockAPDU_extended and reports dwMaxAPDUDataSize 0x10000.
 * Not claimed: AUTO_ACTIVATION (a card is powered only by IccPowerOn), clock
 * stop, NAD, IFSD (T=1 blocks never cross the wire).
 */
#define VCCID_CCID_FEATURES (VCCID_CCID_FEAT_AUTO_CONF_ATR | VCCID_CCID_FEAT_AUTO_VOLTAGE | \
			     VCCID_CCID_FEAT_AUTO_CLOCK | VCCID_CCID_FEAT_AUTO_BAUD | \
			     VCCID_CCID_FEAT_AUTO_PPS_PROP | VCCID_CCID_FEAT_AUTO_PPS_CUR | \
			     VCCID_CCID_FEAT_EXTENDED_APDU)

/* The fixed clock and data rate a virtual card "runs" at: 3.58 MHz, F=372, D=1. */
#define VCCID_CCID_CLOCK_KHZ 3580u
#define VCCID_CCID_DATA_RATE 9624u   /* 3 580 000 / 372 bits per second */

struct vccid_ccid_params {
	/** dwMaxCCIDMessageLength; 0 selects VCCID_CCID_MAX_MESSAGE. Must lie in
	 *  [VCCID_CCID_MIN_MESSAGE, VCCID_CCID_MAX_MESSAGE]. */
	uint32_t max_message_length;
};

typedef struct vccid_ccid vccid_ccid;

/**
 * Creates an engine for @p n_slots (1 to 8) slots: slot i answers bSlot i,
 * bMaxSlotIndex is n_slots - 1. The slots stay owned by the caller and must
 * outlive the engine. @p params may be NULL for the defaults.
 * Returns NULL on a bad argument or allocation failure.
 */
vccid_ccid *vccid_ccid_new(vccid_slot *const *slots, size_t n_slots,
			   const struct vccid_ccid_params *params);
/** Frees the engine (wiping buffered APDUs); no call may be in progress. NULL is fine. */
void vccid_ccid_free(vccid_ccid *ccid);

/** dwMaxCCIDMessageLength: the largest message either way. */
uint32_t vccid_ccid_max_message_length(const vccid_ccid *ccid);

/**
 * Framing help for a transport: given the first @p len bytes of a bulk-out
 * transfer, returns the whole message's size (10 + dwLength), or 0 while
 * fewer than 10 bytes are known. Does not validate the message.
 */
size_t vccid_ccid_message_size(const uint8_t *hdr, size_t len);

/**
 * Handles ONE complete PC_to_RDR message and writes its RDR_to_PC answer to
 * caller-owned @p out (capacity @p out_size, at least
 * vccid_ccid_max_message_length()). Exchanges with the card happen inside
 * this call, so it blocks as long as the card takes. Calls for different
 * slots may run in parallel on different threads; a second call for a busy
 * slot is answered at once with VCCID_CCID_ERR_CMD_SLOT_BUSY.
 *
 * Returns 0 when an answer was written (also for failed commands: see its
 * bStatus/bError), VCCID_EPROTO when @p len < 10 (nothing to answer: no
 * bSeq), VCCID_ENOSPC when @p out_size is too small, VCCID_EINVAL on NULL
 * arguments. *out_len is 0 unless 0 is returned.
 */
int vccid_ccid_bulk_out(vccid_ccid *ccid, const uint8_t *msg, size_t len,
			uint8_t *out, size_t out_size, size_t *out_len);

/**
 * Builds the time extension answer (bmCommandStatus 2, bError = BWI
 * multiplier @p bwi) for the command in @p msg still being processed by
 * vccid_ccid_bulk_out() on another thread; a transport sends it on bulk-in
 * to keep the host waiting for a slow card. Only for PC_to_RDR_XfrBlock:
 * libccid honours time extensions in CCID_Receive() only. Returns 0,
 * VCCID_EPROTO (short message or not an XfrBlock) or VCCID_ENOSPC (< 10).
 */
int vccid_ccid_time_extension(vccid_ccid *ccid, const uint8_t *msg, size_t len, uint8_t bwi,
			      uint8_t *out, size_t out_size, size_t *out_len);

/** Writes the 54-byte CCID class descriptor (§5.1) that matches this engine. */
void vccid_ccid_class_descriptor(const vccid_ccid *ccid, uint8_t out[VCCID_CCID_CLASS_DESC_SIZE]);

/**
 * Builds RDR_to_PC_NotifySlotChange (§6.3.1): per slot n, bit 2n = ICC present,
 * bit 2n+1 = changed since the last notification. A slot counts as changed
 * when its change counter moved, so a remove and insert between two calls is
 * reported as changed (and present). Returns true, with the message in @p out,
 * when any slot changed, and then treats those changes as reported; returns
 * false (and *out_len 0) when nothing changed or @p out_size <
 * 1 + ceil(2 * n_slots / 8).
 */
bool vccid_ccid_notify_slot_change(vccid_ccid *ccid, uint8_t *out, size_t out_size,
				   size_t *out_len);
/**
 * The first notification after the host (re)configures the device: every
 * slot's presence, with the changed bit set for each present one, and the
 * current state taken as reported. Returns false only when @p out_size is too
 * small.
 */
bool vccid_ccid_notify_all(vccid_ccid *ccid, uint8_t *out, size_t out_size, size_t *out_len);

/**
 * A new host: drops every slot's chained command or response and pending
 * ABORT, so the next host starts clean (a chain in progress is dropped when
 * its command ends).
 */
void vccid_ccid_reset(vccid_ccid *ccid);

/**
 * The control-pipe ABORT request (§5.3.1) for @p slot and @p seq: drops any
 * chained command or response of the slot and fails the command of that
 * bSeq still in progress with CMD_ABORTED; until the matching
 * PC_to_RDR_Abort arrives, other commands for the slot fail with
 * CMD_ABORTED. Returns 0 or VCCID_ENOENT (no such slot).
 */
int vccid_ccid_abort(vccid_ccid *ccid, uint8_t slot, uint8_t seq);

#endif
