/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the USB/IP codec (table-driven) and of the connection state machine over a real vccid_usbdev. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corelib/error.h"
#include "corelib/slot.h"
#include "usb/device.h"
#include "usb/usbip-proto.h"
#include "usb/usbip-conn.h"
#include "tests/bytes.h"
#include "tests/cac-atr.h"
#include "tests/unit/fake-card.h"
#include "usbip-test.h"


/* ------------------------------------------------------------------ management requests */

struct op_case {
	const char *name;
	const char *hex;      /* the request bytes */
	int rv;
	size_t used;
	uint16_t code;
};

static size_t unhex(const char *hex, uint8_t *out, size_t size)
{
	size_t n = 0;

	while (hex[0] != '\0' && hex[1] != '\0' && n < size) {
		unsigned v;

		if (hex[0] == ' ') {
			hex++;
			continue;
		}
		sscanf(hex, "%2x", &v);
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

#define BUSID_1_1 "312d31" "0000000000000000000000000000000000000000000000000000000000"
#define BUSID_FULL "3131313131313131313131313131313131313131313131313131313131313131"

static const struct op_case op_cases[] = {
	{ "devlist", "0111 8005 00000000", VCCID_OK, 8, OP_REQ_DEVLIST },
	{ "devlist plus more", "0111 8005 00000000 0111", VCCID_OK, 8, OP_REQ_DEVLIST },
	{ "import", "0111 8003 00000000 " BUSID_1_1, VCCID_OK, 40, OP_REQ_IMPORT },
	{ "empty", "", VCCID_OK, 0, 0 },
	{ "truncated header", "0111 8005 000000", VCCID_OK, 0, 0 },
	{ "truncated import", "0111 8003 00000000 312d3100", VCCID_OK, 0, 0 },
	{ "bad version 0x0106", "0106 8005 00000000", VCCID_EPROTO, 0, 0 },
	{ "bad version 0x1101", "1101 8005 00000000", VCCID_EPROTO, 0, 0 },
	{ "reply code from a client", "0111 0005 00000000", VCCID_EPROTO, 0, 0 },
	{ "unknown code", "0111 8004 00000000", VCCID_EPROTO, 0, 0 },
	{ "nonzero status", "0111 8005 00000001", VCCID_EPROTO, 0, 0 },
	{ "busid without NUL", "0111 8003 00000000 " BUSID_FULL, VCCID_EPROTO, 0, 0 },
};

static void test_op_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(op_cases) / sizeof(op_cases[0]); i++) {
		const struct op_case *c = &op_cases[i];
		uint8_t buf[128];
		size_t len = unhex(c->hex, buf, sizeof(buf));
		struct vccid_usbip_op op;
		const char *why = NULL;
		size_t used = 99;
		int rv;

		rv = vccid_usbip_op_parse(buf, len, &op, &used, &why);
		if (rv != c->rv || used != c->used)
			fail_msg("%s: rv %d used %zu, want %d %zu", c->name, rv, used, c->rv, c->used);
		if (rv != VCCID_OK && why == NULL)
			fail_msg("%s: no reason", c->name);
		if (rv == VCCID_OK && used > 0 && op.code != c->code)
			fail_msg("%s: code %04x", c->name, op.code);
		if (c->code == OP_REQ_IMPORT)
			assert_string_equal(op.busid, "1-1");
	}
}

/* ------------------------------------------------------------------ URB commands */

struct cmd_case {
	const char *name;
	uint32_t command, direction, ep, length, np;
	size_t extra;          /* bytes after the header */
	int rv;
	size_t used;
};

#define OUTMAX VCCID_USBIP_MAX_OUT
static const struct cmd_case cmd_cases[] = {
	{ "bulk-out", USBIP_CMD_SUBMIT, USBIP_DIR_OUT, 1, 10, 0, 10, VCCID_OK, 58 },
	{ "bulk-out, more bytes follow", USBIP_CMD_SUBMIT, USBIP_DIR_OUT, 1, 10, 0, 30, VCCID_OK, 58 },
	{ "bulk-out not all there", USBIP_CMD_SUBMIT, USBIP_DIR_OUT, 1, 10, 0, 9, VCCID_OK, 0 },
	{ "bulk-out empty", USBIP_CMD_SUBMIT, USBIP_DIR_OUT, 1, 0, 0, 0, VCCID_OK, 48 },
	{ "bulk-out at the limit", USBIP_CMD_SUBMIT, USBIP_DIR_OUT, 1, OUTMAX, 0, OUTMAX, VCCID_OK,
	  48 + OUTMAX },
	{ "bulk-out over the limit", USBIP_CMD_SUBMIT, USBIP_DIR_OUT, 1, OUTMAX + 1, 0, 0,
	  VCCID_EPROTO, 0 },
	{ "bulk-out 2^31", USBIP_CMD_SUBMIT, USBIP_DIR_OUT, 1, 0x80000000u, 0, 0, VCCID_EPROTO, 0 },
	{ "bulk-out 2^32-1", USBIP_CMD_SUBMIT, USBIP_DIR_OUT, 1, 0xFFFFFFFFu, 0, 0, VCCID_EPROTO, 0 },
	{ "bulk-in", USBIP_CMD_SUBMIT, USBIP_DIR_IN, 2, 65546, 0, 0, VCCID_OK, 48 },
	{ "bulk-in, not ISO as the spec says", USBIP_CMD_SUBMIT, USBIP_DIR_IN, 2, 64,
	  VCCID_USBIP_NOT_ISO, 0, VCCID_OK, 48 },
	{ "bulk-in INT32_MAX", USBIP_CMD_SUBMIT, USBIP_DIR_IN, 2, 0x7FFFFFFFu, 0, 0, VCCID_OK, 48 },
	{ "bulk-in negative", USBIP_CMD_SUBMIT, USBIP_DIR_IN, 2, 0xFFFFFFFFu, 0, 0, VCCID_EPROTO, 0 },
	{ "truncated header", USBIP_CMD_SUBMIT, USBIP_DIR_IN, 2, 64, 0, 0, VCCID_OK, 0 },
	{ "ISO packets", USBIP_CMD_SUBMIT, USBIP_DIR_IN, 2, 64, 1, 0, VCCID_EPROTO, 0 },
	{ "ISO packets 0x7FFFFFFF", USBIP_CMD_SUBMIT, USBIP_DIR_IN, 2, 64, 0x7FFFFFFF, 0,
	  VCCID_EPROTO, 0 },
	{ "direction 2", USBIP_CMD_SUBMIT, 2, 2, 64, 0, 0, VCCID_EPROTO, 0 },
	{ "endpoint 16", USBIP_CMD_SUBMIT, USBIP_DIR_IN, 16, 64, 0, 0, VCCID_EPROTO, 0 },
	{ "endpoint 15", USBIP_CMD_SUBMIT, USBIP_DIR_IN, 15, 64, 0, 0, VCCID_OK, 48 },
	{ "unlink", USBIP_CMD_UNLINK, 0, 0, 0, 0, 0, VCCID_OK, 48 },
	{ "RET_SUBMIT from a client", USBIP_RET_SUBMIT, 0, 0, 0, 0, 0, VCCID_EPROTO, 0 },
	{ "RET_UNLINK from a client", USBIP_RET_UNLINK, 0, 0, 0, 0, 0, VCCID_EPROTO, 0 },
	{ "command 0", 0, 0, 0, 0, 0, 0, VCCID_EPROTO, 0 },
	{ "command 0x8005 (an op in the URB phase)", 0x01118005, 0, 0, 0, 0, 0, VCCID_EPROTO, 0 },
};

static void test_cmd_parse(void **state)
{
	uint8_t *buf = malloc(48 + OUTMAX + 64);
	size_t i;

	(void)state;
	assert_non_null(buf);
	for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *c = &cmd_cases[i];
		struct vccid_usbip_cmd cmd;
		const char *why = NULL;
		size_t used = 99, len;
		int rv;

		memset(buf, 0, 48 + OUTMAX + 64);
		put32(buf, c->command);
		put32(buf + 4, 0x1234);
		put32(buf + 8, 0x10002);
		put32(buf + 12, c->direction);
		put32(buf + 16, c->ep);
		if (c->command == USBIP_CMD_UNLINK) {
			put32(buf + 20, 0x1233);
		} else {
			put32(buf + 24, c->length);
			put32(buf + 32, c->np);
			buf[40] = 0x80;
			buf[41] = 0x06;
		}
		len = strcmp(c->name, "truncated header") == 0 ? 47 : 48 + c->extra;
		rv = vccid_usbip_cmd_parse(buf, len, OUTMAX, &cmd, &used, &why);
		if (rv != c->rv || used != c->used)
			fail_msg("%s: rv %d used %zu (%s), want %d %zu", c->name, rv, used,
				 why != NULL ? why : "-", c->rv, c->used);
		if (rv != VCCID_OK && why == NULL)
			fail_msg("%s: no reason", c->name);
		if (rv != VCCID_OK || used == 0)
			continue;
		assert_int_equal(cmd.seqnum, 0x1234);
		assert_int_equal(cmd.devid, 0x10002);
		if (c->command == USBIP_CMD_UNLINK) {
			assert_int_equal(cmd.unlink_seqnum, 0x1233);
			continue;
		}
		assert_int_equal(cmd.transfer_buffer_length, c->length);
		assert_int_equal(cmd.setup[0], 0x80);
		assert_int_equal(cmd.setup[1], 0x06);
		if (c->direction == USBIP_DIR_OUT && c->length > 0) {
			assert_ptr_equal(cmd.data, buf + 48);
			assert_int_equal(cmd.data_len, c->length);
		} else {
			assert_null(cmd.data);
			assert_int_equal(cmd.data_len, 0);
		}
	}
	free(buf);
}

/* ------------------------------------------------------------------ replies */

static void sample_device(struct vccid_usbip_device *d)
{
	memset(d, 0, sizeof(*d));
	strcpy(d->path, "/sys/devices/platform/vccid/usb1/1-1");
	strcpy(d->busid, "1-1");
	d->busnum = 1;
	d->devnum = 2;
	d->speed = USBIP_SPEED_FULL;
	d->idVendor = 0x1209;
	d->idProduct = 0x000B;
	d->bcdDevice = 0x0100;
	d->bConfigurationValue = 1;
	d->bNumConfigurations = 1;
	d->bNumInterfaces = 1;
	d->interfaces[0].bInterfaceClass = 0x0B;
}

static void test_devlist_encode(void **state)
{
	struct vccid_usbip_device d, back;
	uint8_t out[512];
	size_t len;

	(void)state;
	sample_device(&d);
	assert_int_equal(vccid_usbip_devlist_size(&d, 1), 8 + 4 + 312 + 4);
	assert_int_equal(vccid_usbip_devlist_encode(&d, 1, out, 327), 0);   /* does not fit */
	len = vccid_usbip_devlist_encode(&d, 1, out, sizeof(out));
	assert_int_equal(len, 328);
	/* Offsets of Documentation/usb/usbip_protocol.rst. */
	assert_memory_equal(out, "\x01\x11\x00\x05\x00\x00\x00\x00\x00\x00\x00\x01", 12);
	assert_string_equal((const char *)out + 0x0C, d.path);
	assert_string_equal((const char *)out + 0x10C, "1-1");
	assert_int_equal(out[0x10C + 31], 0);
	assert_int_equal(get32(out + 0x12C), 1);
	assert_int_equal(get32(out + 0x130), 2);
	assert_int_equal(get32(out + 0x134), USBIP_SPEED_FULL);
	assert_memory_equal(out + 0x138, "\x12\x09\x00\x0B\x01\x00", 6);
	assert_int_equal(out[0x141], 1);
	assert_int_equal(out[0x143], 1);
	assert_memory_equal(out + 0x144, "\x0B\x00\x00\x00", 4);
	vccid_usbip_device_decode(out + 12, &back);
	assert_string_equal(back.busid, "1-1");
	assert_int_equal(back.idProduct, 0x000B);
	assert_int_equal(back.bNumInterfaces, 1);
	/* Too many interfaces cannot be described. */
	d.bNumInterfaces = VCCID_USBIP_MAX_INTERFACES + 1;
	assert_int_equal(vccid_usbip_devlist_size(&d, 1), 0);
	assert_int_equal(vccid_usbip_devlist_encode(&d, 1, out, sizeof(out)), 0);
	/* No device at all. */
	assert_int_equal(vccid_usbip_devlist_encode(NULL, 0, out, sizeof(out)), 12);
}

static void test_import_encode(void **state)
{
	struct vccid_usbip_device d;
	uint8_t out[400];

	(void)state;
	sample_device(&d);
	assert_int_equal(vccid_usbip_rep_import_encode(USBIP_ST_OK, &d, out, sizeof(out)), 320);
	assert_memory_equal(out, "\x01\x11\x00\x03\x00\x00\x00\x00", 8);
	assert_string_equal((const char *)out + 8 + 0x100, "1-1");
	assert_int_equal(vccid_usbip_rep_import_encode(USBIP_ST_OK, &d, out, 319), 0);
	assert_int_equal(vccid_usbip_rep_import_encode(USBIP_ST_OK, NULL, out, sizeof(out)), 0);
	assert_int_equal(vccid_usbip_rep_import_encode(USBIP_ST_DEV_BUSY, NULL, out, 8), 8);
	assert_memory_equal(out, "\x01\x11\x00\x03\x00\x00\x00\x02", 8);
}

static void test_ret_codec(void **state)
{
	uint8_t h[48];
	struct vccid_usbip_ret r;

	(void)state;
	vccid_usbip_ret_submit_encode(h, 7, VCCID_USBIP_EPIPE, 0, 0);
	assert_int_equal(vccid_usbip_ret_decode(h, &r), VCCID_OK);
	assert_int_equal(r.command, USBIP_RET_SUBMIT);
	assert_int_equal(r.seqnum, 7);
	assert_int_equal(r.status, -32);
	assert_memory_equal(h + 20, "\xff\xff\xff\xe0", 4);
	vccid_usbip_ret_submit_encode(h, 8, 0, 62, 0);
	assert_int_equal(vccid_usbip_ret_decode(h, &r), VCCID_OK);
	assert_int_equal(r.actual_length, 62);
	vccid_usbip_ret_unlink_encode(h, 9, VCCID_USBIP_ECONNRESET);
	assert_int_equal(vccid_usbip_ret_decode(h, &r), VCCID_OK);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.status, -104);
	/* devid, direction and ep of a reply are zero. */
	h[11] = 1;
	assert_int_equal(vccid_usbip_ret_decode(h, &r), VCCID_EPROTO);
	h[11] = 0;
	h[47] = 1;   /* padding */
	assert_int_equal(vccid_usbip_ret_decode(h, &r), VCCID_EPROTO);
	put32(h, USBIP_CMD_SUBMIT);
	h[47] = 0;
	assert_int_equal(vccid_usbip_ret_decode(h, &r), VCCID_EPROTO);
}

static void test_cmd_encode_roundtrip(void **state)
{
	struct vccid_usbip_cmd c, back;
	uint8_t h[48];
	size_t used;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.seqnum = 5;
	c.devid = 0x10002;
	c.direction = USBIP_DIR_IN;
	c.ep = 3;
	c.transfer_buffer_length = 8;
	c.interval = 16;
	vccid_usbip_cmd_submit_encode(h, &c);
	assert_int_equal(vccid_usbip_cmd_parse(h, 48, OUTMAX, &back, &used, NULL), VCCID_OK);
	assert_int_equal(used, 48);
	assert_int_equal(back.ep, 3);
	assert_int_equal(back.interval, 16);
	vccid_usbip_cmd_unlink_encode(h, 6, 0x10002, 5);
	assert_int_equal(vccid_usbip_cmd_parse(h, 48, OUTMAX, &back, &used, NULL), VCCID_OK);
	assert_int_equal(back.command, USBIP_CMD_UNLINK);
	assert_int_equal(back.unlink_seqnum, 5);
	assert_string_equal(vccid_usbip_command_name(USBIP_CMD_UNLINK), "CMD_UNLINK");
	assert_string_equal(vccid_usbip_op_name(OP_REQ_IMPORT), "OP_REQ_IMPORT");
	assert_string_equal(vccid_usbip_op_name(0x1234), "unknown");
}

/* ------------------------------------------------------------------ connection */

struct conn_fixture {
	vccid_slot *slots[2];
	vccid_usbdev *dev;
	struct vccid_usbip_device record;
	vccid_usbip_conn *conn;
	struct fake_card card;
	uint8_t out[70000];      /* everything the connection sent */
	size_t out_len;
	bool claim_ok;
};

static int capture(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct conn_fixture *f = opaque;
	int i;

	for (i = 0; i < iovcnt; i++) {
		assert_true(f->out_len + iov[i].iov_len <= sizeof(f->out));
		memcpy(f->out + f->out_len, iov[i].iov_base, iov[i].iov_len);
		f->out_len += iov[i].iov_len;
	}
	return 0;
}

static bool claim(void *opaque, vccid_usbip_conn *conn)
{
	(void)conn;
	return ((struct conn_fixture *)opaque)->claim_ok;
}

static vccid_usbip_conn *new_conn(struct conn_fixture *f)
{
	struct vccid_usbip_conn_params p = {
		.dev = f->dev, .record = &f->record, .peer = "test", .send = capture,
		.claim = claim, .opaque = f, .threads = false,
	};

	return vccid_usbip_conn_new(&p);
}

static int conn_setup(void **state)
{
	struct conn_fixture *f = calloc(1, sizeof(*f));
	size_t i;

	if (f == NULL)
		return -1;
	for (i = 0; i < 2; i++)
		f->slots[i] = vccid_slot_new();
	fake_card_init(&f->card, FAKE_OK);
	f->card.answers = FAKE_ANSWER_LENGTH;
	if (fake_card_insert(f->slots[0], &f->card, "card0") != VCCID_OK)
		return -1;
	f->dev = vccid_usbdev_new(f->slots, 2, NULL);
	if (f->dev == NULL || vccid_usbip_device_record(f->dev, "1-1", &f->record) != VCCID_OK)
		return -1;
	f->claim_ok = true;
	f->conn = new_conn(f);
	*state = f;
	return f->conn == NULL ? -1 : 0;
}

static int conn_teardown(void **state)
{
	struct conn_fixture *f = *state;

	vccid_usbip_conn_free(f->conn);
	vccid_usbdev_free(f->dev);
	vccid_slot_free(f->slots[0]);
	vccid_slot_free(f->slots[1]);
	fake_card_destroy(&f->card);
	free(f);
	return 0;
}

static int feed(struct conn_fixture *f, const uint8_t *data, size_t len)
{
	f->out_len = 0;
	return vccid_usbip_conn_input(f->conn, data, len);
}

static void import(struct conn_fixture *f)
{
	uint8_t req[40] = { 0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0, '1', '-', '1' };

	assert_int_equal(feed(f, req, sizeof(req)), VCCID_OK);
	assert_int_equal(f->out_len, 320);
	assert_memory_equal(f->out, "\x01\x11\x00\x03\x00\x00\x00\x00", 8);
	assert_true(vccid_usbip_conn_imported(f->conn));
}

/* Checks that f->out holds exactly one RET_SUBMIT and returns it. */
static struct vccid_usbip_ret one_ret(struct conn_fixture *f, size_t data_len)
{
	struct vccid_usbip_ret r;

	assert_int_equal(f->out_len, 48 + data_len);
	assert_int_equal(vccid_usbip_ret_decode(f->out, &r), VCCID_OK);
	return r;
}

static void test_conn_devlist(void **state)
{
	struct conn_fixture *f = *state;
	static const uint8_t req[] = { 0x01, 0x11, 0x80, 0x05, 0, 0, 0, 0 };

	/* One byte at a time. */
	assert_int_equal(feed(f, req, 7), VCCID_OK);
	assert_int_equal(f->out_len, 0);
	assert_int_equal(feed(f, req + 7, 1), VCCID_USBIP_DONE);
	assert_int_equal(f->out_len, 328);
	assert_int_equal(get32(f->out + 8), 1);
	assert_memory_equal(f->out + 0x138, "\x12\x09\x00\x0B", 4);
	assert_int_equal(f->out[0x144], 0x0B);
	assert_false(vccid_usbip_conn_imported(f->conn));
}

static void test_conn_import_refused(void **state)
{
	struct conn_fixture *f = *state;
	uint8_t req[40] = { 0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0, '2', '-', '1' };

	assert_int_equal(feed(f, req, sizeof(req)), VCCID_USBIP_DONE);
	assert_int_equal(f->out_len, 8);
	assert_int_equal(get32(f->out + 4), USBIP_ST_NODEV);
	vccid_usbip_conn_free(f->conn);
	f->conn = new_conn(f);
	f->claim_ok = false;
	req[8] = '1';
	assert_int_equal(feed(f, req, sizeof(req)), VCCID_USBIP_DONE);
	assert_int_equal(f->out_len, 8);
	assert_int_equal(get32(f->out + 4), USBIP_ST_DEV_BUSY);
	assert_false(vccid_usbip_conn_imported(f->conn));
}

static void test_conn_urbs(void **state)
{
	struct conn_fixture *f = *state;
	static const uint8_t get_dev[8] = { 0x80, 0x06, 0x00, 0x01, 0, 0, 18, 0 };
	static const uint8_t bad_desc[8] = { 0x80, 0x06, 0x00, 0x09, 0, 0, 18, 0 };
	static const uint8_t set_conf[8] = { 0x00, 0x09, 0x01, 0x00, 0, 0, 0, 0 };
	static const uint8_t power_on[10] = { VCCID_PC_to_RDR_IccPowerOn, 0, 0, 0, 0, 0, 0x11, 0, 0, 0 };
	uint8_t buf[256];
	struct vccid_usbip_ret r;
	size_t n;

	import(f);
	/* GET_DESCRIPTOR(device) on ep0 */
	n = submit(buf, 1, USBIP_DIR_IN, 0, 18, get_dev, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	r = one_ret(f, 18);
	assert_int_equal(r.seqnum, 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.actual_length, 18);
	assert_memory_equal(f->out + 48 + 8, "\x09\x12\x0B\x00", 4);
	/* An unknown descriptor stalls. */
	n = submit(buf, 2, USBIP_DIR_IN, 0, 18, bad_desc, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	r = one_ret(f, 0);
	assert_int_equal(r.status, VCCID_USBIP_EPIPE);
	/* A setup whose direction disagrees with the URB stalls too. */
	n = submit(buf, 3, USBIP_DIR_OUT, 0, 0, get_dev, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	assert_int_equal(one_ret(f, 0).status, VCCID_USBIP_EPIPE);
	n = submit(buf, 4, USBIP_DIR_OUT, 0, 0, set_conf, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	assert_int_equal(one_ret(f, 0).status, 0);
	assert_int_equal(vccid_usbdev_configuration(f->dev), 1);

	/* Interrupt-in: the first notification reports every slot. */
	n = submit(buf, 5, USBIP_DIR_IN, 3, 8, NULL, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	assert_int_equal(f->out_len, 0);              /* queued */
	f->out_len = 0;
	assert_int_equal(vccid_usbip_conn_pump(f->conn, 1000), 1);
	r = one_ret(f, 2);
	assert_int_equal(r.seqnum, 5);
	assert_memory_equal(f->out + 48, "\x50\x03", 2);

	/* Bulk-in waits; bulk-out IccPowerOn; the answer completes the bulk-in URB. */
	n = submit(buf, 6, USBIP_DIR_IN, 2, 65546, NULL, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	f->out_len = 0;
	assert_int_equal(vccid_usbip_conn_pump(f->conn, 0), 0);
	n = submit(buf, 7, USBIP_DIR_OUT, 1, sizeof(power_on), NULL, power_on);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	r = one_ret(f, 0);
	assert_int_equal(r.seqnum, 7);
	assert_int_equal(r.actual_length, sizeof(power_on));
	f->out_len = 0;
	assert_int_equal(vccid_usbip_conn_pump(f->conn, 2000), 1);
	r = one_ret(f, 10 + sizeof(cac_atr));
	assert_int_equal(r.seqnum, 6);
	assert_int_equal(f->out[48], VCCID_RDR_to_PC_DataBlock);
	assert_int_equal(f->out[48 + 6], 0x11);
	assert_memory_equal(f->out + 58, cac_atr, sizeof(cac_atr));

	/* Unlink of a pending URB: -ECONNRESET, and it never completes. */
	n = submit(buf, 8, USBIP_DIR_IN, 3, 8, NULL, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	vccid_usbip_cmd_unlink_encode(buf, 9, 0x10002, 8);
	assert_int_equal(feed(f, buf, 48), VCCID_OK);
	r = one_ret(f, 0);
	assert_int_equal(r.command, USBIP_RET_UNLINK);
	assert_int_equal(r.seqnum, 9);
	assert_int_equal(r.status, VCCID_USBIP_ECONNRESET);
	/* Unlink of a completed URB: status 0. */
	vccid_usbip_cmd_unlink_encode(buf, 10, 0x10002, 6);
	assert_int_equal(feed(f, buf, 48), VCCID_OK);
	assert_int_equal(one_ret(f, 0).status, 0);
	/* A URB for an endpoint the device lacks stalls. */
	n = submit(buf, 11, USBIP_DIR_IN, 5, 64, NULL, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	assert_int_equal(one_ret(f, 0).status, VCCID_USBIP_EPIPE);
	/* Two commands in one chunk are both answered, in order. */
	n = submit(buf, 12, USBIP_DIR_IN, 0, 18, get_dev, NULL);
	n += submit(buf + n, 13, USBIP_DIR_IN, 0, 18, get_dev, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	assert_int_equal(f->out_len, 2 * (48 + 18));
	assert_int_equal(get32(f->out + 4), 12);
	assert_int_equal(get32(f->out + 66 + 4), 13);
}

static void test_conn_answer_split(void **state)
{
	struct conn_fixture *f = *state;
	static const uint8_t power_on[10] = { VCCID_PC_to_RDR_IccPowerOn, 0, 0, 0, 0, 0, 0x01, 0, 0, 0 };
	uint8_t buf[128];
	size_t n;

	import(f);
	n = submit(buf, 1, USBIP_DIR_OUT, 1, sizeof(power_on), NULL, power_on);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	/* An answer longer than the URB continues in the next URB. */
	n = submit(buf, 2, USBIP_DIR_IN, 2, 16, NULL, NULL);
	n += submit(buf + n, 3, USBIP_DIR_IN, 2, 64, NULL, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_OK);
	f->out_len = 0;
	assert_int_equal(vccid_usbip_conn_pump(f->conn, 2000), 2);
	assert_int_equal(f->out_len, 48 + 16 + 48 + 9);
	assert_int_equal(get32(f->out + 4), 2);
	assert_int_equal(get32(f->out + 24), 16);
	assert_int_equal(get32(f->out + 64 + 4), 3);
	assert_int_equal(get32(f->out + 64 + 24), 9);
	/* A duplicate seqnum of a pending URB is a protocol error. */
	n = submit(buf, 4, USBIP_DIR_IN, 2, 16, NULL, NULL);
	n += submit(buf + n, 4, USBIP_DIR_IN, 2, 16, NULL, NULL);
	assert_int_equal(feed(f, buf, n), VCCID_EPROTO);
	assert_int_equal(vccid_usbip_conn_input(f->conn, buf, 1), VCCID_EPROTO);
}

static void test_conn_malformed(void **state)
{
	struct conn_fixture *f = *state;
	uint8_t buf[64];

	import(f);
	memset(buf, 0, sizeof(buf));
	put32(buf, 7);   /* unknown command */
	assert_int_equal(feed(f, buf, 48), VCCID_EPROTO);
	assert_int_equal(f->out_len, 0);
	vccid_usbip_conn_free(f->conn);
	/* The device was reset: unconfigured for the next importer. */
	assert_int_equal(vccid_usbdev_configuration(f->dev), 0);
	f->conn = new_conn(f);
	/* A lying OUT length is refused from the header alone. */
	import(f);
	submit(buf, 1, USBIP_DIR_OUT, 1, VCCID_USBIP_MAX_OUT + 1, NULL, NULL);
	assert_int_equal(feed(f, buf, 48), VCCID_EPROTO);
	vccid_usbip_conn_free(f->conn);
	f->conn = new_conn(f);
	/* Garbage instead of a management request. */
	memset(buf, 0xFF, 8);
	assert_int_equal(feed(f, buf, 8), VCCID_EPROTO);
}

static void test_device_record(void **state)
{
	struct conn_fixture *f = *state;
	struct vccid_usbip_device rec;

	assert_int_equal(vccid_usbip_device_record(f->dev, "3-2", &rec), VCCID_OK);
	assert_int_equal(rec.busnum, 3);
	assert_int_equal(rec.idVendor, 0x1209);
	assert_int_equal(rec.idProduct, 0x000B);
	assert_int_equal(rec.speed, USBIP_SPEED_FULL);
	assert_int_equal(rec.bNumInterfaces, 1);
	assert_int_equal(rec.interfaces[0].bInterfaceClass, 0x0B);
	assert_int_equal(vccid_usbip_device_record(f->dev, "", &rec), VCCID_EINVAL);
	assert_int_equal(vccid_usbip_device_record(f->dev, "x-1", &rec), VCCID_EINVAL);
	assert_int_equal(vccid_usbip_device_record(f->dev, "1", &rec), VCCID_EINVAL);
	assert_int_equal(vccid_usbip_device_record(f->dev, "1-", &rec), VCCID_EINVAL);
	assert_int_equal(vccid_usbip_device_record(f->dev, "1-1234567890123456789012345678901",
						   &rec), VCCID_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_op_parse),
		cmocka_unit_test(test_cmd_parse),
		cmocka_unit_test(test_devlist_encode),
		cmocka_unit_test(test_import_encode),
		cmocka_unit_test(test_ret_codec),
		cmocka_unit_test(test_cmd_encode_roundtrip),
		cmocka_unit_test_setup_teardown(test_conn_devlist, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_import_refused, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_urbs, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_answer_split, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_conn_malformed, conn_setup, conn_teardown),
		cmocka_unit_test_setup_teardown(test_device_record, conn_setup, conn_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
