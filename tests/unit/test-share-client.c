/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of vccid-share's VSCard client state machine, without sockets: host bytes in, messages out. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/vscard/proto.h"
#include "corelib/error.h"
#include "tools/share/client.h"

/* libcacard's CAC ATR (FACTS.md). */
static const uint8_t cac_atr[] = {
	0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74, 0x65, 0x20, 0x63, 0x64, 0x31, 0x34, 0x34,
};

#define SENT_MAX 16

/* Everything the client wrote, and a fake card. */
struct fixture {
	vccid_share_client *client;
	struct {
		struct vccid_vscard_header header;
		uint8_t payload[300];
	} sent[SENT_MAX];
	size_t n_sent;
	bool write_fails;
	uint8_t last_cmd[64];
	size_t last_cmd_len;
	unsigned power_ups, power_downs;
};

static int fake_write(void *io, const uint8_t *buf, size_t len)
{
	struct fixture *f = io;

	if (f->write_fails) {
		errno = EPIPE;
		return VCCID_EIO;
	}
	assert_true(len >= VCCID_VSCARD_HEADER_SIZE);
	assert_true(f->n_sent < SENT_MAX);
	vccid_vscard_header_decode(buf, &f->sent[f->n_sent].header);
	/* One write per whole message: the header's length is the rest. */
	assert_int_equal(f->sent[f->n_sent].header.length, len - VCCID_VSCARD_HEADER_SIZE);
	assert_true(len - VCCID_VSCARD_HEADER_SIZE <= sizeof(f->sent[0].payload));
	memcpy(f->sent[f->n_sent].payload, buf + VCCID_VSCARD_HEADER_SIZE, len - VCCID_VSCARD_HEADER_SIZE);
	f->n_sent++;
	return VCCID_OK;
}

static int fake_power(void *card, enum vccid_power_action action, uint8_t *atr, size_t *atr_len)
{
	struct fixture *f = card;

	if (action == VCCID_POWER_DOWN) {
		f->power_downs++;
		return VCCID_OK;
	}
	f->power_ups++;
	assert_true(*atr_len >= sizeof(cac_atr));
	memcpy(atr, cac_atr, sizeof(cac_atr));
	*atr_len = sizeof(cac_atr);
	return VCCID_OK;
}

/* Answers every command with 61 0D, or fails a command starting with FF. */
static int fake_transmit(void *card, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp,
			 size_t *rsp_len)
{
	struct fixture *f = card;

	assert_true(cmd_len <= sizeof(f->last_cmd));
	memcpy(f->last_cmd, cmd, cmd_len);
	f->last_cmd_len = cmd_len;
	if (cmd_len > 0 && cmd[0] == 0xFF)
		return VCCID_EIO;
	assert_true(*rsp_len >= 2);
	rsp[0] = 0x61;
	rsp[1] = 0x0D;
	*rsp_len = 2;
	return VCCID_OK;
}

static const struct vccid_card_ops fake_ops = {
	.backend = "fake",
	.power = fake_power,
	.transmit = fake_transmit,
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vccid_share_client_io io = { .write = fake_write };

	assert_non_null(f);
	io.io = f;
	f->client = vccid_share_client_new(&io, "test reader");
	assert_non_null(f->client);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vccid_share_client_free(f->client);
	free(f);
	return 0;
}

/* Feeds one host message. */
static int host_sends(struct fixture *f, uint32_t type, uint32_t reader_id, const void *payload,
		      size_t len)
{
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE + 64];
	size_t n = vccid_vscard_message_encode(buf, sizeof(buf), type, reader_id, payload, len);

	assert_int_not_equal(n, 0);
	return vccid_share_client_input(f->client, buf, n);
}

static int host_error(struct fixture *f, uint32_t reader_id, uint32_t code)
{
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE + 4];
	size_t n = vccid_vscard_error_encode(buf, sizeof(buf), reader_id, code);

	return vccid_share_client_input(f->client, buf, n);
}

static int host_init(struct fixture *f, uint32_t capabilities)
{
	uint8_t buf[VCCID_VSCARD_HEADER_SIZE + VCCID_VSCARD_INIT_MIN_SIZE];
	size_t n = vccid_vscard_init_encode(buf, sizeof(buf), VCCID_VSCARD_UNDEFINED_READER_ID, capabilities);

	return vccid_share_client_input(f->client, buf, n);
}

static void assert_sent(const struct fixture *f, size_t i, uint32_t type, uint32_t reader_id,
			uint32_t length)
{
	assert_true(i < f->n_sent);
	assert_int_equal(f->sent[i].header.type, type);
	assert_int_equal(f->sent[i].header.reader_id, reader_id);
	assert_int_equal(f->sent[i].header.length, length);
}

/* Connects and completes the handshake; the host gives reader id 5. */
static void handshake(struct fixture *f, bool with_card)
{
	if (with_card)
		assert_int_equal(vccid_share_client_set_card(f->client, &fake_ops, f, true), VCCID_OK);
	assert_int_equal(vccid_share_client_connected(f->client), VCCID_OK);
	assert_int_equal(host_init(f, VCCID_VSCARD_CAP_VCCID_EXTENDED), VCCID_OK);
	assert_int_equal(host_error(f, 0, VCCID_VSCARD_SUCCESS), VCCID_OK);   /* ReaderRemove(0) */
	assert_int_equal(host_error(f, 5, VCCID_VSCARD_SUCCESS), VCCID_OK);   /* ReaderAdd */
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_READY);
	assert_int_equal(vccid_share_client_reader_id(f->client), 5);
}

static void test_handshake(void **state)
{
	static const uint8_t init_payload[] = {
		0x56, 0x53, 0x43, 0x44, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00,
	};
	struct fixture *f = *state;

	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_DISCONNECTED);
	assert_int_equal(vccid_share_client_connected(f->client), VCCID_OK);
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_WAIT_INIT);
	assert_sent(f, 0, VCCID_VSCARD_INIT, 0, sizeof(init_payload));
	assert_memory_equal(f->sent[0].payload, init_payload, sizeof(init_payload));

	assert_int_equal(host_init(f, 0), VCCID_OK);
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_ADDING);
	assert_false(vccid_share_client_host_extended(f->client));
	assert_sent(f, 1, VCCID_VSCARD_READER_REMOVE, 0, 0);
	assert_sent(f, 2, VCCID_VSCARD_READER_ADD, 0, strlen("test reader"));
	assert_memory_equal(f->sent[2].payload, "test reader", strlen("test reader"));
	assert_int_equal(vccid_share_client_pending(f->client), 2);

	/* The first answer is ReaderRemove's, the second ReaderAdd's with our id. */
	assert_int_equal(host_error(f, 0, VCCID_VSCARD_GENERAL_ERROR), VCCID_OK);
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_ADDING);
	assert_int_equal(host_error(f, 7, VCCID_VSCARD_SUCCESS), VCCID_OK);
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_READY);
	assert_int_equal(vccid_share_client_reader_id(f->client), 7);
	assert_int_equal(vccid_share_client_pending(f->client), 0);
	assert_int_equal(f->n_sent, 3);   /* no card: no ATR */
}

static void test_atr_on_insert(void **state)
{
	struct fixture *f = *state;

	handshake(f, false);
	assert_int_equal(f->n_sent, 3);
	assert_int_equal(vccid_share_client_set_card(f->client, &fake_ops, f, false), VCCID_OK);
	assert_int_equal(f->n_sent, 3);   /* a reader without a card */
	assert_int_equal(vccid_share_client_card_present(f->client, true), VCCID_OK);
	assert_sent(f, 3, VCCID_VSCARD_ATR, 5, sizeof(cac_atr));
	assert_memory_equal(f->sent[3].payload, cac_atr, sizeof(cac_atr));
	assert_true(vccid_share_client_card_on_host(f->client));
	assert_int_equal(host_error(f, 5, VCCID_VSCARD_SUCCESS), VCCID_OK);
	assert_int_equal(vccid_share_client_pending(f->client), 0);

	/* The card leaves: CardRemove, and the card is powered off. */
	assert_int_equal(vccid_share_client_card_present(f->client, false), VCCID_OK);
	assert_sent(f, 4, VCCID_VSCARD_CARD_REMOVE, 5, 0);
	assert_false(vccid_share_client_card_on_host(f->client));
	assert_int_equal(f->power_downs, 1);
}

static void test_card_present_before_connecting(void **state)
{
	struct fixture *f = *state;

	handshake(f, true);
	assert_int_equal(f->power_ups, 1);
	assert_sent(f, 3, VCCID_VSCARD_ATR, 5, sizeof(cac_atr));
}

static void test_apdu_answered(void **state)
{
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x00 };
	struct fixture *f = *state;

	handshake(f, true);
	assert_int_equal(host_sends(f, VCCID_VSCARD_APDU, 5, select, sizeof(select)), VCCID_OK);
	assert_int_equal(f->last_cmd_len, sizeof(select));
	assert_memory_equal(f->last_cmd, select, sizeof(select));
	assert_sent(f, 4, VCCID_VSCARD_APDU, 5, 2);
	assert_int_equal(f->sent[4].payload[0], 0x61);
	assert_int_equal(f->sent[4].payload[1], 0x0D);

	/* Any reader id is answered on that id: one reader per connection. */
	assert_int_equal(host_sends(f, VCCID_VSCARD_APDU, 0, select, sizeof(select)), VCCID_OK);
	assert_sent(f, 5, VCCID_VSCARD_APDU, 0, 2);

	/* A card that fails the APDU: an Error message, the connection stays. */
	assert_int_equal(host_sends(f, VCCID_VSCARD_APDU, 5, "\xFF\x00\x00\x00", 4), VCCID_OK);
	assert_sent(f, 6, VCCID_VSCARD_ERROR, 5, 4);
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_READY);
}

static void test_apdu_without_card(void **state)
{
	struct fixture *f = *state;

	handshake(f, false);
	assert_int_equal(host_sends(f, VCCID_VSCARD_APDU, 5, "\x00\xA4\x04\x00", 4), VCCID_OK);
	assert_sent(f, 3, VCCID_VSCARD_ERROR, 5, 4);
	assert_int_equal(f->sent[3].payload[3], VCCID_VSCARD_GENERAL_ERROR);
	assert_int_equal(f->last_cmd_len, 0);

	/* Removed by the user: the card stays, but is not on the host. */
	assert_int_equal(vccid_share_client_set_card(f->client, &fake_ops, f, true), VCCID_OK);
	assert_sent(f, 4, VCCID_VSCARD_ATR, 5, sizeof(cac_atr));
	assert_int_equal(vccid_share_client_remove(f->client), VCCID_OK);
	assert_sent(f, 5, VCCID_VSCARD_CARD_REMOVE, 5, 0);
	assert_int_equal(host_sends(f, VCCID_VSCARD_APDU, 5, "\x00\xA4\x04\x00", 4), VCCID_OK);
	assert_sent(f, 6, VCCID_VSCARD_ERROR, 5, 4);
	assert_int_equal(vccid_share_client_insert(f->client), VCCID_OK);
	assert_sent(f, 7, VCCID_VSCARD_ATR, 5, sizeof(cac_atr));
}

static void test_flush(void **state)
{
	struct fixture *f = *state;

	handshake(f, false);
	assert_int_equal(host_sends(f, VCCID_VSCARD_FLUSH, 5, NULL, 0), VCCID_OK);
	assert_sent(f, 3, VCCID_VSCARD_FLUSH_COMPLETE, 5, 0);
}

static void test_error_answers(void **state)
{
	struct fixture *f = *state;

	handshake(f, true);
	/* The ATR is rejected: the card is not on the host any more. */
	assert_int_equal(host_error(f, 5, VCCID_VSCARD_GENERAL_ERROR), VCCID_OK);
	assert_false(vccid_share_client_card_on_host(f->client));
	/* An Error nothing asked for is logged and ignored. */
	assert_int_equal(host_error(f, 5, VCCID_VSCARD_SUCCESS), VCCID_OK);
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_READY);
	/* A malformed one ends the connection. */
	assert_int_equal(host_sends(f, VCCID_VSCARD_ERROR, 5, "\x00\x00\x00", 3), VCCID_EPROTO);
	assert_non_null(strstr(vccid_share_client_why(f->client), "malformed Error"));
	assert_false(vccid_share_client_fatal(f->client));
}

static void test_reader_refused(void **state)
{
	static const struct {
		uint32_t code;
		int rv;
		bool fatal;
		const char *why;
	} cases[] = {
		{ VCCID_VSCARD_GENERAL_ERROR, VCCID_EPROTO, false, "refused the reader (error 1)" },
		{ VCCID_VSCARD_CANNOT_ADD_MORE_READERS, VCCID_EBUSY, true, "cannot add more readers" },
		{ VCCID_VSCARD_CARD_ALREADY_INSERTED, VCCID_EPROTO, false, "refused the reader (error 3)" },
	};
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vccid_share_client_disconnected(f->client);
		assert_int_equal(vccid_share_client_connected(f->client), VCCID_OK);
		assert_int_equal(host_init(f, 0), VCCID_OK);
		assert_int_equal(host_error(f, 0, VCCID_VSCARD_SUCCESS), VCCID_OK);
		assert_int_equal(host_error(f, 0, cases[i].code), cases[i].rv);
		assert_int_equal(vccid_share_client_fatal(f->client), cases[i].fatal);
		assert_non_null(strstr(vccid_share_client_why(f->client), cases[i].why));
	}
}

/* What only a client sends, or nothing at all: a host sending it is dropped. */
static void test_host_sends_client_message(void **state)
{
	static const uint32_t types[] = {
		VCCID_VSCARD_READER_ADD, VCCID_VSCARD_READER_REMOVE, VCCID_VSCARD_ATR, VCCID_VSCARD_CARD_REMOVE,
		VCCID_VSCARD_FLUSH_COMPLETE, 0, 10, 0xFFFFFFFFu,
	};
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		vccid_share_client_disconnected(f->client);
		f->n_sent = 0;
		handshake(f, false);
		assert_int_equal(host_sends(f, types[i], 5, NULL, 0), VCCID_EPROTO);
		assert_non_null(strstr(vccid_share_client_why(f->client), "unexpected"));
		assert_int_equal(f->n_sent, 3);   /* nothing answered */
	}
}

static void test_before_init(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(vccid_share_client_connected(f->client), VCCID_OK);
	assert_int_equal(host_sends(f, VCCID_VSCARD_APDU, 0, "\x00\xA4\x04\x00", 4), VCCID_EPROTO);
	assert_non_null(strstr(vccid_share_client_why(f->client), "before its Init"));
	assert_int_equal(f->n_sent, 1);

	/* A malformed Init (bad magic). */
	vccid_share_client_disconnected(f->client);
	assert_int_equal(vccid_share_client_connected(f->client), VCCID_OK);
	assert_int_equal(host_sends(f, VCCID_VSCARD_INIT, 0, "VSCX\0\0\0\2\0\0\0\0", 12), VCCID_EPROTO);
	assert_non_null(strstr(vccid_share_client_why(f->client), "Init is malformed"));
}

static void test_oversized_payload(void **state)
{
	struct fixture *f = *state;
	uint8_t header[VCCID_VSCARD_HEADER_SIZE];

	handshake(f, false);
	vccid_vscard_header_encode(header, VCCID_VSCARD_APDU, 5, 70000);
	assert_int_equal(vccid_share_client_input(f->client, header, sizeof(header)), VCCID_EPROTO);
	assert_non_null(strstr(vccid_share_client_why(f->client),
			       "70000-byte APDU payload, over our limit"));
}

/* A host without the extension may send 4096 bytes, not more. */
static void test_legacy_limit(void **state)
{
	struct fixture *f = *state;
	uint8_t header[VCCID_VSCARD_HEADER_SIZE];

	assert_int_equal(vccid_share_client_connected(f->client), VCCID_OK);
	assert_int_equal(host_init(f, 0), VCCID_OK);
	vccid_vscard_header_encode(header, VCCID_VSCARD_APDU, 5, VCCID_SHARE_LEGACY_MAX_PAYLOAD + 1);
	assert_int_equal(vccid_share_client_input(f->client, header, sizeof(header)), VCCID_EPROTO);
}

/* The same handshake, one byte at a time. */
static void test_split_input(void **state)
{
	struct fixture *f = *state;
	uint8_t stream[3 * (VCCID_VSCARD_HEADER_SIZE + 12)];
	size_t n, i;

	assert_int_equal(vccid_share_client_set_card(f->client, &fake_ops, f, true), VCCID_OK);
	assert_int_equal(vccid_share_client_connected(f->client), VCCID_OK);
	n = vccid_vscard_init_encode(stream, sizeof(stream), VCCID_VSCARD_UNDEFINED_READER_ID, 0);
	n += vccid_vscard_error_encode(stream + n, sizeof(stream) - n, 0, VCCID_VSCARD_SUCCESS);
	n += vccid_vscard_error_encode(stream + n, sizeof(stream) - n, 3, VCCID_VSCARD_SUCCESS);
	for (i = 0; i < n; i++)
		assert_int_equal(vccid_share_client_input(f->client, stream + i, 1), VCCID_OK);
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_READY);
	assert_sent(f, 3, VCCID_VSCARD_ATR, 3, sizeof(cac_atr));
}

static void test_goodbye(void **state)
{
	struct fixture *f = *state;

	handshake(f, true);
	assert_int_equal(host_error(f, 5, VCCID_VSCARD_SUCCESS), VCCID_OK);   /* the ATR */
	assert_int_equal(vccid_share_client_goodbye(f->client), VCCID_OK);
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_CLOSING);
	assert_sent(f, 4, VCCID_VSCARD_CARD_REMOVE, 5, 0);
	assert_sent(f, 5, VCCID_VSCARD_READER_REMOVE, 5, 0);
	assert_int_equal(vccid_share_client_pending(f->client), 2);
	assert_int_equal(host_error(f, 5, VCCID_VSCARD_SUCCESS), VCCID_OK);
	assert_int_equal(host_error(f, 5, VCCID_VSCARD_SUCCESS), VCCID_OK);
	assert_int_equal(vccid_share_client_pending(f->client), 0);
	vccid_share_client_disconnected(f->client);
	assert_int_equal(vccid_share_client_state(f->client), VCCID_SHARE_DISCONNECTED);

	/* Not connected: nothing to say. */
	assert_int_equal(vccid_share_client_goodbye(f->client), VCCID_OK);
	assert_int_equal(f->n_sent, 6);
}

static void test_write_failure(void **state)
{
	struct fixture *f = *state;

	handshake(f, false);
	f->write_fails = true;
	assert_int_equal(host_sends(f, VCCID_VSCARD_FLUSH, 5, NULL, 0), VCCID_EIO);
	assert_string_equal(vccid_share_client_why(f->client),
			    "cannot send FlushComplete to the host: Broken pipe");
}

static void test_long_name(void **state)
{
	char name[VCCID_SHARE_NAME_MAX + 2];
	struct vccid_share_client_io io = { .write = fake_write };

	(void)state;
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_null(vccid_share_client_new(&io, name));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atr_on_insert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_card_present_before_connecting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apdu_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apdu_without_card, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_sends_client_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_before_init, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_goodbye, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
		cmocka_unit_test(test_long_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
