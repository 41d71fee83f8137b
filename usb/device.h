/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The vccid USB CCID reader as a device without USB I/O: control requests,
 * a bulk-out byte stream, bulk-in answers and interrupt notifications over the
 * CCID engine. Transports (USB/IP, FunctionFS) move bytes to and from it.
 */
#ifndef VCCID_USB_DEVICE_H
#define VCCID_USB_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ccid/ccid.h"
#include "corelib/slot.h"
#include "ccid/usb-desc.h"

#define VCCID_USB_SETUP_SIZE 8

typedef struct vccid_usbdev vccid_usbdev;

struct vccid_usbdev_params {
	struct vccid_usb_ids ids;           /* zeros/NULLs for the defaults */
	enum vccid_usb_speed speed;         /* what the descriptors announce */
	uint32_t max_message_length;        /* 0: the engine's default (65554) */
};

/**
 * Creates the device for @p n_slots slots (1-8; the slots stay the caller's
 * and must outlive the device). Starts one worker thread per slot, so
 * commands for different slots run in parallel as bMaxCCIDBusySlots says.
 * NULL on a bad argument or allocation failure.
 */
vccid_usbdev *vccid_usbdev_new(vccid_slot *const *slots, size_t n_slots,
			       const struct vccid_usbdev_params *params);
/** Stops the workers and frees the device; no other call may be in progress. */
void vccid_usbdev_free(vccid_usbdev *dev);

/** The engine (for descriptors and limits). */
vccid_ccid *vccid_usbdev_ccid(vccid_usbdev *dev);
/** The identities the descriptors carry (defaults filled in). */
const struct vccid_usb_ids *vccid_usbdev_ids(const vccid_usbdev *dev);
enum vccid_usb_speed vccid_usbdev_speed(const vccid_usbdev *dev);
/** wMaxPacketSize of the bulk endpoints for the announced speed (64 or 512). */
size_t vccid_usbdev_bulk_packet_size(const vccid_usbdev *dev);

/**
 * A control transfer on endpoint 0: standard requests (GET_DESCRIPTOR,
 * SET/GET_CONFIGURATION, SET/GET_INTERFACE, GET_STATUS, CLEAR/SET_FEATURE) and
 * the CCID class requests ABORT, GET_CLOCK_FREQUENCIES and GET_DATA_RATES
 * (CCID §5.3). @p out holds the OUT data stage (wLength bytes); IN data goes to
 * caller-owned @p in of capacity @p in_size, at most wLength bytes.
 * Returns 0, or VCCID_ENOTSUP / VCCID_EINVAL when the request must be
 * answered with a STALL.
 */
int vccid_usbdev_control(vccid_usbdev *dev, const uint8_t setup[VCCID_USB_SETUP_SIZE],
			 const uint8_t *out, size_t out_len, uint8_t *in, size_t in_size,
			 size_t *in_len);
/** The configuration selected by SET_CONFIGURATION (0 = not configured). */
unsigned vccid_usbdev_configuration(const vccid_usbdev *dev);

/* Answers queued or being made at once, at most: then bulk-out waits (a real
 * reader NAKs), so a host that never reads bulk-in cannot grow the queue. */
#define VCCID_USBDEV_MAX_ANSWERS (2 * VCCID_CCID_MAX_SLOTS)

/**
 * Bytes the host sent on bulk-out, in any chunking. Whole PC_to_RDR
 * messages (10 + dwLength bytes) go to the slot's worker, or are answered at
 * once (CMD_SLOT_BUSY for a slot still busy, CCID §6.1); answers appear on
 * bulk-in in the order they complete. A message announcing more than
 * dwMaxCCIDMessageLength is answered with a dwLength error and its bytes are
 * skipped. A whole message is taken only while fewer than
 * VCCID_USBDEV_MAX_ANSWERS answers are unread (queued or being made); else the
 * call waits for bulk-in to take one, up to @p timeout_ms (< 0: without
 * limit). *used (may be NULL) gets the bytes taken: on VCCID_ETIMEDOUT the last
 * whole message is held and goes first at the next call (which may pass no
 * bytes). Returns 0, VCCID_ETIMEDOUT, VCCID_ECANCELED (vccid_usbdev_cancel()
 * or a reset during the wait: the message is dropped) or VCCID_ENOMEM. Only
 * one thread may call it (or vccid_usbdev_bulk_out) at a time.
 */
int vccid_usbdev_bulk_out_timed(vccid_usbdev *dev, const uint8_t *data, size_t len,
				int timeout_ms, size_t *used);
/** vccid_usbdev_bulk_out_timed() without limit: returns 0 (also after a cancel) or VCCID_ENOMEM. */
int vccid_usbdev_bulk_out(vccid_usbdev *dev, const uint8_t *data, size_t len);

/**
 * Takes up to @p size bytes of the next bulk-in answer into caller-owned
 * @p buf, waiting up to @p timeout_ms (< 0: without limit) for one. An answer
 * longer than @p size continues in the next call, as a USB transfer would.
 * *zlp is set when this chunk ends an answer whose length is a multiple of
 * the bulk packet size of the announced speed while @p size was larger: a
 * USB transport must then send a zero-length packet to end the transfer (a
 * transport that learns another connected speed decides for itself).
 * Returns 0, VCCID_ETIMEDOUT, or VCCID_ECANCELED after vccid_usbdev_cancel().
 */
int vccid_usbdev_bulk_in(vccid_usbdev *dev, uint8_t *buf, size_t size, size_t *len, bool *zlp,
			 int timeout_ms);

/**
 * Waits up to @p timeout_ms for a slot change and writes
 * RDR_to_PC_NotifySlotChange into @p buf (at least VCCID_USB_INTERRUPT_PACKET
 * bytes). The first call after a (re)configuration reports every slot.
 * Returns 0, VCCID_ETIMEDOUT or VCCID_ECANCELED.
 */
int vccid_usbdev_interrupt_in(vccid_usbdev *dev, uint8_t *buf, size_t size, size_t *len,
			      int timeout_ms);

/** Makes the bulk-in and interrupt waits in progress return VCCID_ECANCELED (a
 *  transport stops). A wait that starts after the call is not affected:
 *  transports wait with finite timeouts and check their own stop flag. */
void vccid_usbdev_cancel(vccid_usbdev *dev);
/**
 * A bus reset or a new host: drops queued answers, half-received messages
 * and chained APDUs, waits for commands in progress (as long as the card
 * takes: a VSCard card is bounded by its timeout), unconfigures the device
 * and makes the next interrupt report every slot.
 */
void vccid_usbdev_reset(vccid_usbdev *dev);

#endif
