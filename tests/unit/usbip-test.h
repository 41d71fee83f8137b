/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the USB/IP unit tests share: a fake card and a CMD_SUBMIT encoder. */
#ifndef VCCID_TEST_USBIP_TEST_H
#define VCCID_TEST_USBIP_TEST_H

#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/slot.h"
#include "usb/usbip-proto.h"

/* A card with the CAC ATR that answers every APDU with its length and 90 00. */
static const uint8_t cac_atr[] = {
	0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74, 0x65, 0x20, 0x63, 0x64, 0x31, 0x34, 0x34
};

static inline int fake_power(void *opaque, enum vccid_power_action action, uint8_t *atr,
			     size_t *atr_len)
{
	(void)opaque;
	if (action != VCCID_POWER_DOWN) {
		memcpy(atr, cac_atr, sizeof(cac_atr));
		*atr_len = sizeof(cac_atr);
	}
	return VCCID_OK;
}

static inline int fake_transmit(void *opaque, const uint8_t *cmd, size_t cmd_len,
				uint8_t *rsp, size_t *rsp_len)
{
	(void)opaque;
	(void)cmd;
	rsp[0] = (uint8_t)(cmd_len >> 8);
	rsp[1] = (uint8_t)cmd_len;
	rsp[2] = 0x90;
	rsp[3] = 0x00;
	*rsp_len = 4;
	return VCCID_OK;
}

static const struct vccid_card_ops fake_ops = {
	.backend = "fake",
	.power = fake_power,
	.transmit = fake_transmit,
	.release = NULL,
};

/* A CMD_SUBMIT of device 1-1 in @p buf, with @p data for an OUT URB; returns its size. */
static inline size_t submit(uint8_t *buf, uint32_t seq, uint32_t dir, uint32_t ep,
			    uint32_t len, const uint8_t *setup, const uint8_t *data)
{
	struct vccid_usbip_cmd c;

	memset(&c, 0, sizeof(c));
	c.seqnum = seq;
	c.devid = 0x10002;
	c.direction = dir;
	c.ep = ep;
	c.transfer_buffer_length = len;
	if (setup != NULL)
		memcpy(c.setup, setup, 8);
	vccid_usbip_cmd_submit_encode(buf, &c);
	if (dir == USBIP_DIR_OUT && len > 0 && data != NULL) {
		memcpy(buf + 48, data, len);
		return 48 + len;
	}
	return 48;
}

#endif
