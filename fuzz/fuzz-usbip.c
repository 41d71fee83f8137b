/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the USB/IP server's connection state machine as a client
 * (vhci-hcd) drives it, without sockets, over a real vccid_usbdev.
 *
 * Input: a sequence of records [u16 little-endian length][length bytes]; each
 * record's bytes go to vccid_usbip_conn_input() as one chunk (a truncated
 * last record is sent as it is), so requests arrive in any chunking. The
 * connection starts in the management phase: an OP_REQ_IMPORT of bus id
 * "1-1" leads to the URB phase. Lengths 0xFFF0-0xFFFF carry no bytes and are
 * events instead:
 *   FFF0         complete queued IN URBs (vccid_usbip_conn_pump, 20 ms per endpoint);
 *   FFF1 / FFF2  remove the card of slot 0 / 1, or insert it again;
 *   FFF3         the peer goes away: free the connection, open a new one;
 *   others       ignored.
 * The device has two slots with fake cards (slot 0: the T=0 CAC ATR, slot 1:
 * a T=1 ATR) and dwMaxCCIDMessageLength 271, so that chaining is reached with
 * small inputs. A card answers INS B0 with P1P2 bytes plus 90 00, fails INS
 * EE, and answers anything else with its length plus 90 00.
 *
 * Every output must be a well-formed reply, checked against a second parse of
 * the same input: a DEVLIST or IMPORT reply in the management phase; in the
 * URB phase a RET_SUBMIT for a URB that was submitted and is still
 * outstanding, with actual_length within its transfer_buffer_length and data
 * only for IN URBs, or a RET_UNLINK for an UNLINK with status 0 or
 * -ECONNRESET (the unlinked URB then never completes). Anything else traps.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corelib/error.h"
#include "corelib/slot.h"
#include "fuzz-card.h"
#include "fuzz-log.h"
#include "usb/device.h"
#include "usb/usbip-conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	EVENT_FIRST = 0xFFF0,
	EVENT_PUMP = 0xFFF0,
	EVENT_TOGGLE_0 = 0xFFF1,
	EVENT_TOGGLE_1 = 0xFFF2,
	EVENT_RECONNECT = 0xFFF3,
	MAX_OUTSTANDING = 1024,
	PUMP_MS = 20,
};

/* ---- the shadow: what the client sent, parsed a second time ---- */

struct urb {
	uint32_t seqnum;
	uint32_t length;
	bool in;
	bool unlink;            /* an UNLINK command (waits for RET_UNLINK) */
	uint32_t unlink_seqnum;
};

struct shadow {
	enum { SH_MANAGEMENT, SH_URB, SH_DONE } state;
	uint8_t *buf;
	size_t len, size;
	struct urb out[MAX_OUTSTANDING];   /* outstanding, in submission order */
	size_t n;
	bool expect_op_reply;
	uint16_t op_code;                  /* of the request awaiting its reply */
	bool import_ok;                    /* the IMPORT named our bus id */
};

static struct shadow sh;
static vccid_usbip_conn *conn;
static struct vccid_usbip_device record;

static void shadow_reset(void)
{
	sh.state = SH_MANAGEMENT;
	sh.len = 0;
	sh.n = 0;
	sh.expect_op_reply = false;
}

static void shadow_add(const struct urb *u)
{
	if (sh.n == MAX_OUTSTANDING)
		return;   /* more than any state the server keeps: stop checking these */
	sh.out[sh.n++] = *u;
}

static void shadow_remove(size_t i)
{
	sh.n--;
	memmove(&sh.out[i], &sh.out[i + 1], (sh.n - i) * sizeof(sh.out[0]));
}

/* Parses what the client sent, as the server will. */
static void shadow_feed(const uint8_t *data, size_t len)
{
	while (sh.state != SH_DONE) {
		size_t n = sh.size - sh.len, used = 0;

		if (n > len)
			n = len;
		memcpy(sh.buf + sh.len, data, n);
		sh.len += n;
		data += n;
		len -= n;
		if (sh.state == SH_MANAGEMENT) {
			struct vccid_usbip_op op;

			if (vccid_usbip_op_parse(sh.buf, sh.len, &op, &used, NULL) != VCCID_OK) {
				sh.state = SH_DONE;
				break;
			}
			if (used > 0) {
				sh.expect_op_reply = true;
				sh.op_code = op.code;
				sh.import_ok = op.code == OP_REQ_IMPORT &&
					       strcmp(op.busid, record.busid) == 0;
				sh.state = sh.import_ok ? SH_URB : SH_DONE;
			}
		} else {
			struct vccid_usbip_cmd cmd;
			struct urb u;

			if (vccid_usbip_cmd_parse(sh.buf, sh.len, VCCID_USBIP_MAX_OUT, &cmd, &used,
						  NULL) != VCCID_OK) {
				sh.state = SH_DONE;
				break;
			}
			if (used > 0) {
				memset(&u, 0, sizeof(u));
				u.seqnum = cmd.seqnum;
				u.length = cmd.transfer_buffer_length;
				u.in = cmd.direction == USBIP_DIR_IN;
				u.unlink = cmd.command == USBIP_CMD_UNLINK;
				u.unlink_seqnum = cmd.unlink_seqnum;
				shadow_add(&u);
			}
		}
		if (used == 0) {
			if (len == 0)
				break;
			continue;
		}
		memmove(sh.buf, sh.buf + used, sh.len - used);
		sh.len -= used;
	}
}

/* ---- the checks ---- */

static size_t flatten(const struct iovec *iov, int iovcnt, uint8_t *out, size_t size)
{
	size_t n = 0;
	int i;

	for (i = 0; i < iovcnt; i++) {
		if (n + iov[i].iov_len > size)
			__builtin_trap();
		memcpy(out + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	return n;
}

static void check_op_reply(const uint8_t *m, size_t len)
{
	uint32_t status;

	if (!sh.expect_op_reply || len < VCCID_USBIP_OP_HEADER_SIZE)
		__builtin_trap();
	sh.expect_op_reply = false;
	if (m[0] != 0x01 || m[1] != 0x11)
		__builtin_trap();
	status = (uint32_t)m[4] << 24 | (uint32_t)m[5] << 16 | (uint32_t)m[6] << 8 | m[7];
	if (sh.op_code == OP_REQ_DEVLIST) {
		if (m[2] != 0x00 || m[3] != 0x05 || status != 0 ||
		    len != vccid_usbip_devlist_size(&record, 1))
			__builtin_trap();
		return;
	}
	if (m[2] != 0x00 || m[3] != 0x03)
		__builtin_trap();
	if (sh.import_ok != (status == USBIP_ST_OK))
		__builtin_trap();
	if (len != (status == USBIP_ST_OK ? VCCID_USBIP_REP_IMPORT_SIZE : VCCID_USBIP_OP_HEADER_SIZE))
		__builtin_trap();
}

static void check_ret(const uint8_t *m, size_t len)
{
	struct vccid_usbip_ret r;
	size_t i;

	if (len < VCCID_USBIP_HEADER_SIZE || vccid_usbip_ret_decode(m, &r) != VCCID_OK)
		__builtin_trap();
	for (i = 0; i < sh.n; i++) {
		struct urb *u = &sh.out[i];

		if (u->seqnum != r.seqnum || u->unlink != (r.command == USBIP_RET_UNLINK))
			continue;
		if (r.command == USBIP_RET_SUBMIT) {
			if (r.actual_length > u->length || r.error_count != 0 || r.start_frame != 0)
				__builtin_trap();
			if (len != VCCID_USBIP_HEADER_SIZE + (u->in ? r.actual_length : 0))
				__builtin_trap();
			if (r.status != 0 && r.actual_length != 0)
				__builtin_trap();
			if (r.status != 0 && r.status != VCCID_USBIP_EPIPE && r.status != -12)
				__builtin_trap();
		} else {
			size_t j;

			if (len != VCCID_USBIP_HEADER_SIZE)
				__builtin_trap();
			if (r.status == VCCID_USBIP_ECONNRESET) {
				/* The unlinked URB (an IN one, or a bulk-OUT one waiting for
				 * room) was outstanding; it must never complete now. */
				for (j = 0; j < sh.n; j++)
					if (!sh.out[j].unlink &&
					    sh.out[j].seqnum == u->unlink_seqnum)
						break;
				if (j == sh.n)
					__builtin_trap();
				shadow_remove(j);
				if (j < i)
					i--;
			} else if (r.status != 0) {
				__builtin_trap();
			}
		}
		shadow_remove(i);
		return;
	}
	if (sh.n < MAX_OUTSTANDING)
		__builtin_trap();   /* a reply to nothing the client asked */
}

static int check_send(void *opaque, const struct iovec *iov, int iovcnt)
{
	static uint8_t m[VCCID_USBIP_HEADER_SIZE + VCCID_CCID_MAX_MESSAGE + 512];
	size_t len = flatten(iov, iovcnt, m, sizeof(m));

	(void)opaque;
	if (sh.expect_op_reply)
		check_op_reply(m, len);
	else
		check_ret(m, len);
	return 0;
}

static vccid_usbip_conn *open_conn(vccid_usbdev *dev)
{
	struct vccid_usbip_conn_params p = {
		.dev = dev, .record = &record, .peer = "fuzz", .send = check_send,
		.claim = NULL, .opaque = NULL, .threads = false,
	};
	vccid_usbip_conn *c = vccid_usbip_conn_new(&p);

	if (c == NULL)
		abort();
	shadow_reset();
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fake_card cards[2];
	static vccid_slot *slots[2];
	static vccid_usbdev *dev;
	bool dead = false;
	size_t i;

	fuzz_enable_logging();
	fuzz_cards_init(cards);
	if (dev == NULL) {
		/* Device threads are costly: one device for every input, reset in between. */
		struct vccid_usbdev_params params = { .max_message_length = VCCID_CCID_MIN_MESSAGE };

		for (i = 0; i < 2; i++)
			slots[i] = vccid_slot_new();
		dev = vccid_usbdev_new(slots, 2, &params);
		sh.size = VCCID_USBIP_HEADER_SIZE + VCCID_USBIP_MAX_OUT;
		sh.buf = malloc(sh.size);
		if (dev == NULL || sh.buf == NULL ||
		    vccid_usbip_device_record(dev, "1-1", &record) != VCCID_OK)
			abort();
	}
	for (i = 0; i < 2; i++)
		if (!vccid_slot_present(slots[i]))
			(void)fake_card_insert(slots[i], &cards[i], "fuzz");
	conn = open_conn(dev);

	while (size >= 2) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		int rv;

		data += 2;
		size -= 2;
		if (len >= EVENT_FIRST) {
			switch (len) {
			case EVENT_PUMP:
				if (!dead)
					(void)vccid_usbip_conn_pump(conn, PUMP_MS);
				break;
			case EVENT_TOGGLE_0:
			case EVENT_TOGGLE_1:
				i = len - EVENT_TOGGLE_0;
				if (vccid_slot_remove(slots[i]) == VCCID_ENOCARD)
					(void)fake_card_insert(slots[i], &cards[i], "fuzz");
				break;
			case EVENT_RECONNECT:
				vccid_usbip_conn_free(conn);
				conn = open_conn(dev);
				dead = false;
				break;
			default:
				break;
			}
			continue;
		}
		if (len > size)
			len = size;
		if (!dead) {
			shadow_feed(data, len);
			rv = vccid_usbip_conn_input(conn, data, len);
			if (rv != VCCID_OK) {
				/* Closed: malformed, or the management exchange is over. */
				if (rv != VCCID_EPROTO && rv != VCCID_USBIP_DONE)
					__builtin_trap();
				dead = true;
				sh.state = SH_DONE;
			}
		}
		data += len;
		size -= len;
	}
	if (!dead)
		(void)vccid_usbip_conn_pump(conn, 0);
	vccid_usbip_conn_free(conn);
	conn = NULL;
	return 0;
}
