/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* USB device, configuration and string descriptors of the vccid CCID device. */
#include "usb-desc.h"

#include <string.h>

#include "corelib/error.h"

/* bDescriptorType values (USB 2.0 Table 9-5). */
enum {
	DT_DEVICE = 0x01,
	DT_CONFIG = 0x02,
	DT_STRING = 0x03,
	DT_INTERFACE = 0x04,
	DT_ENDPOINT = 0x05,
	DT_QUALIFIER = 0x06,
};

enum {
	BCD_USB_2_0 = 0x0200,
	EP0_PACKET = 64,
	CLASS_PER_INTERFACE = 0x00,
	CLASS_CCID = 0x0B,              /* Chip/SmartCard (CCID 1.1 §4.3) */
	SUBCLASS_CCID = 0x00,
	PROTOCOL_CCID = 0x00,           /* bulk-out, bulk-in and interrupt-in */
	CONFIG_VALUE = 1,
	CONFIG_ATTR_BUS_POWERED = 0x80, /* D7 must be set */
	CONFIG_MAX_POWER_2MA = 50,      /* 100 mA */
	EP_BULK = 0x02,
	EP_INTERRUPT = 0x03,
	BULK_PACKET_FS = 64,
	BULK_PACKET_HS = 512,
	INTERRUPT_INTERVAL_FS = 16,     /* ms */
	INTERRUPT_INTERVAL_HS = 8,      /* 2^(8-1) x 125 us = 16 ms */
	LANGID_EN_US = 0x0409,
	DEVICE_DESC_SIZE = 18,
	QUALIFIER_DESC_SIZE = 10,
	CONFIG_HEADER_SIZE = 9,
	INTERFACE_DESC_SIZE = 9,
	ENDPOINT_DESC_SIZE = 7,
};
_Static_assert(DEVICE_DESC_SIZE == VCCID_USB_DEVICE_DESC_SIZE, "device descriptor size");
_Static_assert(QUALIFIER_DESC_SIZE == VCCID_USB_QUALIFIER_DESC_SIZE, "qualifier size");
_Static_assert(INTERFACE_DESC_SIZE + VCCID_CCID_CLASS_DESC_SIZE + 3 * ENDPOINT_DESC_SIZE ==
	       VCCID_USB_INTERFACE_DESCS_SIZE, "interface descriptors size");
_Static_assert(CONFIG_HEADER_SIZE + VCCID_USB_INTERFACE_DESCS_SIZE == VCCID_USB_CONFIG_DESC_SIZE,
	       "configuration descriptor size");
_Static_assert(VCCID_USB_CONFIG_DESC_SIZE <= 0xFFFF, "wTotalLength fits");
_Static_assert(VCCID_USB_STRING_DESC_MAX <= 0xFF, "bLength fits");

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static const char *string_of(const struct vccid_usb_ids *ids, uint8_t index)
{
	switch (index) {
	case VCCID_USB_STR_MANUFACTURER:
		return ids != NULL && ids->manufacturer != NULL ? ids->manufacturer : "vccid";
	case VCCID_USB_STR_PRODUCT:
		return ids != NULL && ids->product != NULL ? ids->product
							   : "vccid virtual CCID reader";
	case VCCID_USB_STR_SERIAL:
		return ids != NULL && ids->serial != NULL && ids->serial[0] != '\0' ? ids->serial
										    : NULL;
	default:
		return NULL;
	}
}

void vccid_usb_device_descriptor(const struct vccid_usb_ids *ids,
				 uint8_t out[VCCID_USB_DEVICE_DESC_SIZE])
{
	uint16_t vid = VCCID_USB_VID, pid = VCCID_USB_PID, bcd = VCCID_USB_BCD_DEVICE;

	if (ids != NULL && ids->idVendor != 0) {
		vid = ids->idVendor;
		pid = ids->idProduct;
	}
	if (ids != NULL && ids->bcdDevice != 0)
		bcd = ids->bcdDevice;
	out[0] = DEVICE_DESC_SIZE;                 /* bLength */
	out[1] = DT_DEVICE;                        /* bDescriptorType */
	put_le16(out + 2, BCD_USB_2_0);            /* bcdUSB */
	out[4] = CLASS_PER_INTERFACE;              /* bDeviceClass */
	out[5] = 0;                                /* bDeviceSubClass */
	out[6] = 0;                                /* bDeviceProtocol */
	out[7] = EP0_PACKET;                       /* bMaxPacketSize0 */
	put_le16(out + 8, vid);                    /* idVendor */
	put_le16(out + 10, pid);                   /* idProduct */
	put_le16(out + 12, bcd);                   /* bcdDevice */
	out[14] = VCCID_USB_STR_MANUFACTURER;      /* iManufacturer */
	out[15] = VCCID_USB_STR_PRODUCT;           /* iProduct */
	out[16] = string_of(ids, VCCID_USB_STR_SERIAL) != NULL ? VCCID_USB_STR_SERIAL : 0;
	out[17] = 1;                               /* bNumConfigurations */
}

void vccid_usb_device_qualifier(uint8_t out[VCCID_USB_QUALIFIER_DESC_SIZE])
{
	out[0] = QUALIFIER_DESC_SIZE;              /* bLength */
	out[1] = DT_QUALIFIER;                     /* bDescriptorType */
	put_le16(out + 2, BCD_USB_2_0);            /* bcdUSB */
	out[4] = CLASS_PER_INTERFACE;              /* bDeviceClass */
	out[5] = 0;                                /* bDeviceSubClass */
	out[6] = 0;                                /* bDeviceProtocol */
	out[7] = EP0_PACKET;                       /* bMaxPacketSize0 */
	out[8] = 1;                                /* bNumConfigurations */
	out[9] = 0;                                /* bReserved */
}

static uint8_t *put_endpoint(uint8_t *p, uint8_t address, uint8_t type, uint16_t packet,
			     uint8_t interval)
{
	p[0] = ENDPOINT_DESC_SIZE;                 /* bLength */
	p[1] = DT_ENDPOINT;                        /* bDescriptorType */
	p[2] = address;                            /* bEndpointAddress */
	p[3] = type;                               /* bmAttributes */
	put_le16(p + 4, packet);                   /* wMaxPacketSize */
	p[6] = interval;                           /* bInterval */
	return p + ENDPOINT_DESC_SIZE;
}

void vccid_usb_interface_descriptors(const uint8_t class_desc[VCCID_CCID_CLASS_DESC_SIZE],
				     enum vccid_usb_speed speed,
				     uint8_t out[VCCID_USB_INTERFACE_DESCS_SIZE])
{
	bool high = speed == VCCID_USB_HIGH_SPEED;
	uint16_t bulk = high ? BULK_PACKET_HS : BULK_PACKET_FS;
	uint8_t *p = out;

	p[0] = INTERFACE_DESC_SIZE;                /* bLength */
	p[1] = DT_INTERFACE;                       /* bDescriptorType */
	p[2] = 0;                                  /* bInterfaceNumber */
	p[3] = 0;                                  /* bAlternateSetting */
	p[4] = 3;                                  /* bNumEndpoints */
	p[5] = CLASS_CCID;                         /* bInterfaceClass */
	p[6] = SUBCLASS_CCID;                      /* bInterfaceSubClass */
	p[7] = PROTOCOL_CCID;                      /* bInterfaceProtocol */
	p[8] = 0;                                  /* iInterface */
	p += INTERFACE_DESC_SIZE;
	/* libccid reads the class descriptor as the interface's "extra" bytes
	 * (ccid_usb.c get_ccid_device_descriptor): it comes right here. */
	memcpy(p, class_desc, VCCID_CCID_CLASS_DESC_SIZE);
	p += VCCID_CCID_CLASS_DESC_SIZE;
	p = put_endpoint(p, VCCID_USB_EP_BULK_OUT, EP_BULK, bulk, 0);
	p = put_endpoint(p, VCCID_USB_EP_BULK_IN, EP_BULK, bulk, 0);
	(void)put_endpoint(p, VCCID_USB_EP_INTERRUPT_IN, EP_INTERRUPT, VCCID_USB_INTERRUPT_PACKET,
			   high ? INTERRUPT_INTERVAL_HS : INTERRUPT_INTERVAL_FS);
}

void vccid_usb_config_descriptor(const uint8_t class_desc[VCCID_CCID_CLASS_DESC_SIZE],
				 enum vccid_usb_speed speed,
				 uint8_t out[VCCID_USB_CONFIG_DESC_SIZE])
{
	out[0] = CONFIG_HEADER_SIZE;               /* bLength */
	out[1] = DT_CONFIG;                        /* bDescriptorType */
	put_le16(out + 2, VCCID_USB_CONFIG_DESC_SIZE); /* wTotalLength */
	out[4] = 1;                                /* bNumInterfaces */
	out[5] = CONFIG_VALUE;                     /* bConfigurationValue */
	out[6] = 0;                                /* iConfiguration */
	out[7] = CONFIG_ATTR_BUS_POWERED;          /* bmAttributes */
	out[8] = CONFIG_MAX_POWER_2MA;             /* bMaxPower */
	vccid_usb_interface_descriptors(class_desc, speed, out + CONFIG_HEADER_SIZE);
}

int vccid_usb_string_descriptor(const struct vccid_usb_ids *ids, uint8_t index,
				uint8_t *out, size_t out_size, size_t *out_len)
{
	const char *s;
	size_t n, i;

	if (out_len != NULL)
		*out_len = 0;
	if (out == NULL || out_len == NULL)
		return VCCID_EINVAL;
	if (index == VCCID_USB_STR_LANGIDS) {
		if (out_size < 4)
			return VCCID_ENOSPC;
		out[0] = 4;
		out[1] = DT_STRING;
		put_le16(out + 2, LANGID_EN_US);
		*out_len = 4;
		return VCCID_OK;
	}
	s = string_of(ids, index);
	if (s == NULL)
		return VCCID_ENOENT;
	n = strlen(s);
	if (n > VCCID_USB_STRING_MAX_CHARS)
		n = VCCID_USB_STRING_MAX_CHARS;
	if (out_size < 2 + 2 * n)
		return VCCID_ENOSPC;
	out[0] = (uint8_t)(2 + 2 * n);
	out[1] = DT_STRING;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		put_le16(out + 2 + 2 * i, c < 0x80 ? c : '?');
	}
	*out_len = 2 + 2 * n;
	return VCCID_OK;
}
