/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* USB descriptors of the vccid CCID device (USB 2.0 §9.6, CCID 1.1 §5); builds bytes, does no USB I/O. */
#ifndef VCCID_USB_DESC_H
#define VCCID_USB_DESC_H

#include <stddef.h>
#include <stdint.h>

#include "ccid.h"

/* pid.codes (VID 0x1209) reserves low PIDs for testing: ours is one of them. */
#define VCCID_USB_VID 0x1209
#define VCCID_USB_PID 0x000B
#define VCCID_USB_BCD_DEVICE 0x0100

#define VCCID_USB_DEVICE_DESC_SIZE 18
#define VCCID_USB_QUALIFIER_DESC_SIZE 10
/* Interface (9) + CCID class descriptor (54) + three endpoints (3 x 7). */
#define VCCID_USB_INTERFACE_DESCS_SIZE (9 + VCCID_CCID_CLASS_DESC_SIZE + 3 * 7)
/* Configuration (9) + the above. */
#define VCCID_USB_CONFIG_DESC_SIZE (9 + VCCID_USB_INTERFACE_DESCS_SIZE)
/* A string descriptor holds at most 126 UTF-16 code units. */
#define VCCID_USB_STRING_MAX_CHARS 126
#define VCCID_USB_STRING_DESC_MAX (2 + 2 * VCCID_USB_STRING_MAX_CHARS)

/* Endpoint addresses: bulk-out 1, bulk-in 2, interrupt-in 3. */
#define VCCID_USB_EP_BULK_OUT 0x01
#define VCCID_USB_EP_BULK_IN 0x82
#define VCCID_USB_EP_INTERRUPT_IN 0x83
/* RDR_to_PC_NotifySlotChange for 8 slots is 3 bytes; libccid reads 8 (CCID_INTERRUPT_SIZE). */
#define VCCID_USB_INTERRUPT_PACKET 8

/* String descriptor indexes. */
enum vccid_usb_string {
	VCCID_USB_STR_LANGIDS = 0,
	VCCID_USB_STR_MANUFACTURER = 1,
	VCCID_USB_STR_PRODUCT = 2,
	VCCID_USB_STR_SERIAL = 3,
};

enum vccid_usb_speed {
	VCCID_USB_FULL_SPEED,   /* bulk wMaxPacketSize 64, interrupt every 16 ms */
	VCCID_USB_HIGH_SPEED,   /* bulk wMaxPacketSize 512, interrupt every 2^(8-1) microframes */
};

struct vccid_usb_ids {
	uint16_t idVendor;      /* 0 selects VCCID_USB_VID */
	uint16_t idProduct;     /* 0 selects VCCID_USB_PID (only with idVendor 0) */
	uint16_t bcdDevice;     /* 0 selects VCCID_USB_BCD_DEVICE */
	const char *manufacturer;  /* NULL selects "vccid" */
	const char *product;       /* NULL selects "vccid virtual CCID reader" */
	const char *serial;        /* NULL or "" means no serial number string */
};

/** Writes the 18-byte device descriptor; @p ids may be NULL for the defaults. */
void vccid_usb_device_descriptor(const struct vccid_usb_ids *ids,
				 uint8_t out[VCCID_USB_DEVICE_DESC_SIZE]);
/** Writes the 10-byte device qualifier (the other speed) of a high-speed capable device. */
void vccid_usb_device_qualifier(uint8_t out[VCCID_USB_QUALIFIER_DESC_SIZE]);
/**
 * Writes the interface descriptor (class 0x0B, subclass 0, protocol 0), the
 * CCID class descriptor @p class_desc (from vccid_ccid_class_descriptor())
 * and the three endpoint descriptors: what FunctionFS takes per speed.
 */
void vccid_usb_interface_descriptors(const uint8_t class_desc[VCCID_CCID_CLASS_DESC_SIZE],
				     enum vccid_usb_speed speed,
				     uint8_t out[VCCID_USB_INTERFACE_DESCS_SIZE]);
/** The whole configuration descriptor: configuration 1 followed by the above. */
void vccid_usb_config_descriptor(const uint8_t class_desc[VCCID_CCID_CLASS_DESC_SIZE],
				 enum vccid_usb_speed speed,
				 uint8_t out[VCCID_USB_CONFIG_DESC_SIZE]);
/**
 * Writes string descriptor @p index (0 = language IDs: US English) to
 * caller-owned @p out. Strings are sent as UTF-16LE; bytes outside ASCII
 * become '?', and strings are cut at 126 characters. Returns 0,
 * VCCID_ENOENT for an index the device does not have, VCCID_ENOSPC when
 * @p out_size is too small, VCCID_EINVAL on NULL arguments.
 */
int vccid_usb_string_descriptor(const struct vccid_usb_ids *ids, uint8_t index,
				uint8_t *out, size_t out_size, size_t *out_len);

#endif
