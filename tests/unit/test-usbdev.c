/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the USB device model: endpoint 0, bulk message assembly, answers, ZLP hints, notifications. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "corelib/error.h"
#include "corelib/slot.h"
#include "usb/device.h"
#include "tests/cac-atr.h"
#include "tests/unit/fake-card.h"


struct fixture {
	vccid_slot *slots[2];
	vccid_usbdev *dev;
	struct fake_card cards[2];
};

static int setup(void **state)
{
	static struct fixture f;
	struct vccid_usbdev_params params = { .speed = VCCID_USB_FULL_SPEED };

	memset(&f, 0, sizeof(f));
	for (size_t i = 0; i < 2; i++) {
		fake_card_init(&f.cards[i], FAKE_OK);
		f.cards[i].answers = FAKE_ANSWER_LENGTH;
	}
	f.slots[0] = vccid_slot_new();
	f.slots[1] = vccid_slot_new();
	assert_int_equal(fake_card_insert(f.slots[0], &f.cards[0], "a"), VCCID_OK);
	f.dev = vccid_usbdev_new(f.slots, 2, &params);
	assert_non_null(f.dev);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vccid_usbdev_free(f->dev);
	vccid_slot_free(f->slots[0]);
	vccid_slot_free(f->slots[1]);
	fake_card_destroy(&f->cards[0]);
	fake_card_destroy(&f->cards[1]);
	return 0;
}

static int control(vccid_usbdev *dev, uint8_t type, uint8_t req, uint16_t value, uint16_t index,
		   uint16_t length, uint8_t *in, size_t *in_len)
{
	uint8_t setup[8] = { type, req, (uint8_t)value, (uint8_t)(value >> 8), (uint8_t)index,
			     (uint8_t)(index >> 8), (uint8_t)length, (uint8_t)(length >> 8) };

	return vccid_usbdev_control(dev, setup, NULL, 0, in, 512, in_len);
}

static void test_descriptors(void **state)
{
	struct fixture *f = *state;
	uint8_t in[512];
	size_t len;

	assert_int_equal(control(f->dev, 0x80, 6, 0x0100, 0, 64, in, &len), VCCID_OK);
	assert_int_equal(len, 18);
	assert_int_equal(in[8] | in[9] << 8, 0x1209);     /* idVendor: pid.codes */
	/* wLength shorter than the descriptor truncates it (the host's first look). */
	assert_int_equal(control(f->dev, 0x80, 6, 0x0200, 0, 9, in, &len), VCCID_OK);
	assert_int_equal(len, 9);
	assert_int_equal(in[2] | in[3] << 8, VCCID_USB_CONFIG_DESC_SIZE);   /* wTotalLength */
	assert_int_equal(control(f->dev, 0x80, 6, 0x0200, 0, 512, in, &len), VCCID_OK);
	assert_int_equal(len, VCCID_USB_CONFIG_DESC_SIZE);
	assert_int_equal(in[9 + 5], 0x0B);                /* bInterfaceClass: CCID */
	assert_int_equal(in[18 + 1], 0x21);               /* the CCID class descriptor follows */
	assert_int_equal(in[18 + 4], 1);                  /* bMaxSlotIndex */
	assert_int_equal(control(f->dev, 0x80, 6, 0x0302, 0x0409, 255, in, &len), VCCID_OK);
	assert_int_equal(in[1], 3);
	assert_int_equal(in[2], 'v');
	/* A full-speed-only device has no qualifier and no other-speed configuration. */
	assert_int_equal(control(f->dev, 0x80, 6, 0x0600, 0, 10, in, &len), VCCID_ENOTSUP);
	assert_int_equal(control(f->dev, 0x80, 6, 0x0700, 0, 10, in, &len), VCCID_ENOTSUP);
	assert_int_equal(control(f->dev, 0x80, 6, 0x0900, 0, 10, in, &len), VCCID_ENOTSUP);
	/* Vendor requests stall. */
	assert_int_equal(control(f->dev, 0xC0, 1, 0, 0, 4, in, &len), VCCID_ENOTSUP);
}

static void test_configuration_and_class_requests(void **state)
{
	struct fixture *f = *state;
	uint8_t in[512];
	size_t len;

	assert_int_equal(vccid_usbdev_configuration(f->dev), 0);
	assert_int_equal(control(f->dev, 0x00, 9, 1, 0, 0, in, &len), VCCID_OK);
	assert_int_equal(vccid_usbdev_configuration(f->dev), 1);
	assert_int_equal(control(f->dev, 0x80, 8, 0, 0, 1, in, &len), VCCID_OK);
	assert_int_equal(in[0], 1);
	assert_int_equal(control(f->dev, 0x00, 9, 2, 0, 0, in, &len), VCCID_EINVAL);
	assert_int_equal(control(f->dev, 0x01, 11, 1, 0, 0, in, &len), VCCID_EINVAL);
	assert_int_equal(control(f->dev, 0x80, 0, 0, 0, 2, in, &len), VCCID_OK);
	assert_int_equal(len, 2);
	assert_int_equal(control(f->dev, 0xA1, 2, 0, 0, 4, in, &len), VCCID_OK);
	assert_int_equal(in[0] | in[1] << 8 | in[2] << 16, VCCID_CCID_CLOCK_KHZ);
	assert_int_equal(control(f->dev, 0xA1, 3, 0, 0, 4, in, &len), VCCID_OK);
	assert_int_equal(len, 4);
	/* ABORT for slot 1, bSeq 7; slot 9 does not exist. */
	assert_int_equal(control(f->dev, 0x21, 1, 0x0701, 0, 0, in, &len), VCCID_OK);
	assert_int_equal(control(f->dev, 0x21, 1, 0x0709, 0, 0, in, &len), VCCID_EINVAL);
}

static void read_answer(vccid_usbdev *dev, uint8_t *buf, size_t size, size_t *len)
{
	bool zlp;

	assert_int_equal(vccid_usbdev_bulk_in(dev, buf, size, len, &zlp, 5000), VCCID_OK);
}

static void test_power_on_in_pieces(void **state)
{
	struct fixture *f = *state;
	static const uint8_t power_on[10] = { 0x62, 0, 0, 0, 0, 0, 0x21, 0, 0, 0 };
	uint8_t buf[512];
	size_t len, i;
	bool zlp;

	/* The message arrives one byte at a time. */
	for (i = 0; i < sizeof(power_on); i++)
		assert_int_equal(vccid_usbdev_bulk_out(f->dev, power_on + i, 1), VCCID_OK);
	read_answer(f->dev, buf, sizeof(buf), &len);
	assert_int_equal(len, 10 + sizeof(cac_atr));
	assert_int_equal(buf[0], 0x80);                 /* RDR_to_PC_DataBlock */
	assert_int_equal(buf[6], 0x21);                 /* bSeq echoed */
	assert_memory_equal(buf + 10, cac_atr, sizeof(cac_atr));
	/* Nothing else is queued. */
	assert_int_equal(vccid_usbdev_bulk_in(f->dev, buf, sizeof(buf), &len, &zlp, 50),
			 VCCID_ETIMEDOUT);
}

/* An XfrBlock whose APDU (READ BINARY to the fake card) asks for @p n answer bytes. */
static void xfr(vccid_usbdev *dev, uint8_t slot, uint8_t seq, uint8_t n)
{
	uint8_t msg[14] = { 0x6F, 4, 0, 0, 0, slot, seq, 0, 0, 0, 0x00, 0xB0, 0x00, n };

	assert_int_equal(vccid_usbdev_bulk_out(dev, msg, sizeof(msg)), VCCID_OK);
}

static void power(vccid_usbdev *dev, uint8_t slot)
{
	uint8_t msg[10] = { 0x62, 0, 0, 0, 0, slot, 1, 0, 0, 0 };
	uint8_t buf[128];
	size_t len;

	assert_int_equal(vccid_usbdev_bulk_out(dev, msg, sizeof(msg)), VCCID_OK);
	read_answer(dev, buf, sizeof(buf), &len);
}

static void test_zlp_hint(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[1024];
	size_t len;
	bool zlp;

	power(f->dev, 0);
	/* 10-byte header + 52 data + SW = 64 bytes: a full packet, so a ZLP ends it. */
	xfr(f->dev, 0, 2, 52);
	assert_int_equal(vccid_usbdev_bulk_in(f->dev, buf, sizeof(buf), &len, &zlp, 5000), VCCID_OK);
	assert_int_equal(len, 64);
	assert_true(zlp);
	/* The same answer read with exactly 64 bytes asked ends the transfer itself. */
	xfr(f->dev, 0, 3, 52);
	assert_int_equal(vccid_usbdev_bulk_in(f->dev, buf, 64, &len, &zlp, 5000), VCCID_OK);
	assert_false(zlp);
	/* 65 bytes: a short last packet, no ZLP. */
	xfr(f->dev, 0, 4, 53);
	assert_int_equal(vccid_usbdev_bulk_in(f->dev, buf, sizeof(buf), &len, &zlp, 5000), VCCID_OK);
	assert_int_equal(len, 65);
	assert_false(zlp);
	/* An answer read in two transfers: 40 bytes, then the rest. */
	xfr(f->dev, 0, 5, 100);
	assert_int_equal(vccid_usbdev_bulk_in(f->dev, buf, 40, &len, &zlp, 5000), VCCID_OK);
	assert_int_equal(len, 40);
	assert_int_equal(vccid_usbdev_bulk_in(f->dev, buf, sizeof(buf), &len, &zlp, 5000), VCCID_OK);
	assert_int_equal(len, 10 + 102 - 40);
}

/*
 * Answers nobody reads are bounded: past VCCID_USBDEV_MAX_ANSWERS the device
 * takes no command (it waits, then holds the whole message), a read makes
 * room, and a reset drops what was held.
 */
static void test_unread_answers_bounded(void **state)
{
	struct fixture *f = *state;
	uint8_t msgs[2 * 10] = { 0x65, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x65, 0, 0, 0, 0, 1, 0, 0, 0, 0 };
	uint8_t buf[64];
	size_t used = 0;
	size_t i;
	bool zlp;

	for (i = 0; i < VCCID_USBDEV_MAX_ANSWERS; i++) {
		assert_int_equal(vccid_usbdev_bulk_out_timed(f->dev, msgs, 10, 0, &used), VCCID_OK);
		assert_int_equal(used, 10);
	}
	/* The next whole message is held: nothing more is taken. */
	assert_int_equal(vccid_usbdev_bulk_out_timed(f->dev, msgs, sizeof(msgs), 50, &used),
			 VCCID_ETIMEDOUT);
	assert_int_equal(used, 10);
	assert_int_equal(vccid_usbdev_bulk_out_timed(f->dev, NULL, 0, 0, &used), VCCID_ETIMEDOUT);
	assert_int_equal(vccid_usbdev_bulk_in(f->dev, buf, sizeof(buf), &used, &zlp, 2000),
			 VCCID_OK);
	/* A read made room for the held one, and only for it. */
	assert_int_equal(vccid_usbdev_bulk_out_timed(f->dev, NULL, 0, 0, &used), VCCID_OK);
	assert_int_equal(vccid_usbdev_bulk_out_timed(f->dev, msgs + 10, 10, 0, &used),
			 VCCID_ETIMEDOUT);
	vccid_usbdev_reset(f->dev);
	/* The held message went with the reset: the device takes commands again. */
	assert_int_equal(vccid_usbdev_bulk_out_timed(f->dev, msgs + 10, 10, 0, &used), VCCID_OK);
	assert_int_equal(vccid_usbdev_bulk_in(f->dev, buf, sizeof(buf), &used, &zlp, 2000),
			 VCCID_OK);
	assert_int_equal(buf[5], 1);   /* bSlot of the second message, not the dropped first */
}

static void test_bad_slot_and_oversized(void **state)
{
	struct fixture *f = *state;
	uint8_t msg[10] = { 0x65, 0, 0, 0, 0, 5, 9, 0, 0, 0 };   /* GetSlotStatus, bSlot 5 */
	uint8_t huge[12] = { 0x6F, 0xFF, 0xFF, 0xFF, 0x00, 0, 10, 0, 0, 0, 0xAA, 0xBB };
	uint8_t buf[128];
	size_t len;

	assert_int_equal(vccid_usbdev_bulk_out(f->dev, msg, sizeof(msg)), VCCID_OK);
	read_answer(f->dev, buf, sizeof(buf), &len);
	assert_int_equal(buf[0], 0x81);
	assert_int_equal(buf[6], 9);
	assert_int_equal(buf[7] & 0x40, 0x40);   /* bmCommandStatus: failed */
	assert_int_equal(buf[8], 5);             /* bError: offset of bSlot */
	/* dwLength 16 MiB: answered with a dwLength error, its bytes skipped... */
	assert_int_equal(vccid_usbdev_bulk_out(f->dev, huge, sizeof(huge)), VCCID_OK);
	read_answer(f->dev, buf, sizeof(buf), &len);
	assert_int_equal(buf[6], 10);
	assert_int_equal(buf[7] & 0x40, 0x40);
	/* ...and after a reset the next message is understood again. */
	vccid_usbdev_reset(f->dev);
	msg[5] = 0;
	msg[6] = 11;
	assert_int_equal(vccid_usbdev_bulk_out(f->dev, msg, sizeof(msg)), VCCID_OK);
	read_answer(f->dev, buf, sizeof(buf), &len);
	assert_int_equal(buf[6], 11);
	assert_int_equal(buf[7] & 0x43, 0x01);   /* present, inactive, no error */
}

static void test_notifications(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[8];
	size_t len;

	/* The first interrupt reports every slot: slot 0 present and changed. */
	assert_int_equal(vccid_usbdev_interrupt_in(f->dev, buf, sizeof(buf), &len, 1000), VCCID_OK);
	assert_int_equal(len, 2);
	assert_int_equal(buf[0], 0x50);
	assert_int_equal(buf[1], 0x03);
	assert_int_equal(vccid_usbdev_interrupt_in(f->dev, buf, sizeof(buf), &len, 50),
			 VCCID_ETIMEDOUT);
	/* A card arriving in slot 1 wakes the waiter. */
	assert_int_equal(fake_card_insert(f->slots[1], &f->cards[1], "b"), VCCID_OK);
	assert_int_equal(vccid_usbdev_interrupt_in(f->dev, buf, sizeof(buf), &len, 1000), VCCID_OK);
	assert_int_equal(buf[1], 0x0C | 0x01);   /* slot 1 present+changed, slot 0 present */
	/* SET_CONFIGURATION makes the next interrupt report every slot again. */
	assert_int_equal(control(f->dev, 0x00, 9, 1, 0, 0, buf, &len), VCCID_OK);
	assert_int_equal(vccid_usbdev_interrupt_in(f->dev, buf, sizeof(buf), &len, 1000), VCCID_OK);
	assert_int_equal(buf[1], 0x0F);
	/* A cancel ends only the waits in progress: a later wait waits as usual. */
	vccid_usbdev_cancel(f->dev);
	assert_int_equal(vccid_usbdev_interrupt_in(f->dev, buf, sizeof(buf), &len, 50),
			 VCCID_ETIMEDOUT);
}

static void test_new_rejects(void **state)
{
	vccid_slot *slots[9] = { NULL };

	(void)state;
	assert_null(vccid_usbdev_new(slots, 0, NULL));
	assert_null(vccid_usbdev_new(slots, 9, NULL));
	assert_null(vccid_usbdev_new(NULL, 1, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configuration_and_class_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_on_in_pieces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zlp_hint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_slot_and_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unread_answers_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notifications, setup, teardown),
		cmocka_unit_test(test_new_rejects),
	};

	return cmocka_run_group_tests_name("usbdev", tests, NULL, NULL);
}
