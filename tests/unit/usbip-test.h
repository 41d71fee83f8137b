/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the USB/IP unit tests share: a CMD_SUBMIT encoder (their card is the one fake card). */
#ifndef VCCID_TEST_USBIP_TEST_H
#define VCCID_TEST_USBIP_TEST_H

#include <stdint.h>
#include <string.h>

#include "usb/usbip-proto.h"

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
