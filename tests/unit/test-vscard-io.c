/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The VSCard host's transmit path through the in-memory transport: a transmit
 * reads its own answer (one read), keeps what is not its answer for the
 * transport (the stash), hands reading back, and lingers before the transport
 * watches the connection again. No sockets: each case sets what the client has
 * sent and how many bytes one read returns, and checks what the host did.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>

#include "backends/vscard/host.h"
#include "backends/vscard/proto.h"
#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "tests/unit/vscard-memio.h"

#define TIMEOUT_MS 2000
#define LINGER_MS 10   /* DIRECT_LINGER_MS in host.c */

static const uint8_t cac_atr[] = { 0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74,
				   0x65, 0x20, 0x63, 0x64, 0x31, 0x34, 0x34 };
static const uint8_t select_cmd[] = { 0x00, 0xA4, 0x04, 0x00 };

/* One client connection with one remote reader whose card is in the slot, and a
 * thread that serves the connection as the listener does when the host wakes it. */
struct fixture {
	vccid_slot *slot;
	struct vccid_vscard_memio memio;
	vccid_vscard_conn *conn;
	uint8_t in[4096];          /* what the client sends */
	size_t in_len;
	uint32_t written[32];      /* types of the messages the host wrote */
	unsigned n_written;
	pthread_t server;
	pthread_mutex_t lock;
	pthread_mutex_t serve_lock;  /* the serving thread and the test serve in turn */
	pthread_cond_t wake;
	pthread_cond_t logged;       /* last_error changed */
	unsigned wakes_pending;
	bool stop;
	char last_error[256];      /* the last error line logged */
	uint8_t reply[64];         /* sent by the client when it sees an APDU */
	size_t reply_len;
};

static struct fixture *current;

static void capture_log(enum vccid_log_level level, const char *line)
{
	if (level <= VCCID_LOG_ERROR && current != NULL) {
		pthread_mutex_lock(&current->lock);
		snprintf(current->last_error, sizeof(current->last_error), "%s", line);
		pthread_cond_broadcast(&current->logged);
		pthread_mutex_unlock(&current->lock);
	}
}

/* Waits (2 s at most) for an error line containing @p text: the serving thread
 * may log it just after the transmit returned. */
static bool logged(struct fixture *f, const char *text)
{
	struct timespec deadline;
	bool found;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	pthread_mutex_lock(&f->lock);
	while (!(found = strstr(f->last_error, text) != NULL) &&
	       pthread_cond_timedwait(&f->logged, &f->lock, &deadline) == 0)
		;
	f->last_error[0] = '\0';
	pthread_mutex_unlock(&f->lock);
	return found;
}

static void put(struct fixture *f, uint32_t type, uint32_t id, const uint8_t *data, size_t len)
{
	f->in_len += vccid_vscard_message_encode(f->in + f->in_len, sizeof(f->in) - f->in_len, type, id,
					   data, len);
}

static void on_wake(void *ctx);

static void on_write(const uint8_t *buf, size_t len, void *ctx)
{
	struct fixture *f = ctx;
	struct vccid_vscard_header header;

	assert_true(len >= VCCID_VSCARD_HEADER_SIZE);
	vccid_vscard_header_decode(buf, &header);
	if (f->n_written < sizeof(f->written) / sizeof(f->written[0]))
		f->written[f->n_written++] = header.type;
	if (header.type == VCCID_VSCARD_APDU && f->reply_len > 0) {
		vccid_vscard_memio_feed(&f->memio, f->reply, f->reply_len);
		f->reply_len = 0;
		on_wake(f);   /* as the socket turning readable */
	}
}

static void on_wake(void *ctx)
{
	struct fixture *f = ctx;

	pthread_mutex_lock(&f->lock);
	f->wakes_pending++;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
}

/* The listener's part: serve the connection whenever the host hands it back. */
static void *serve_loop(void *arg)
{
	struct fixture *f = arg;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		while (f->wakes_pending == 0 && !f->stop)
			pthread_cond_wait(&f->wake, &f->lock);
		if (f->stop)
			break;
		f->wakes_pending--;
		pthread_mutex_unlock(&f->lock);
		pthread_mutex_lock(&f->serve_lock);
		if (vccid_vscard_conn_read_begin(f->conn)) {
			(void)vccid_vscard_conn_serve(f->conn);
			vccid_vscard_conn_read_end(f->conn);
		}
		pthread_mutex_unlock(&f->serve_lock);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* The client has sent its bytes so far in @p chunk-byte reads; the transport serves them. */
static void client_sent(struct fixture *f, size_t chunk)
{
	f->memio.chunk = chunk;
	vccid_vscard_memio_feed(&f->memio, f->in, f->in_len);
	f->in_len = 0;
}

static int setup(void **state, bool transmit_reads)
{
	struct fixture *f = calloc(1, sizeof(*f));
	uint8_t init[VCCID_VSCARD_HEADER_SIZE + VCCID_VSCARD_INIT_MIN_SIZE];
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);
	const char *reason;

	assert_non_null(f);
	current = f;
	vccid_log_set_sink(capture_log);
	vccid_log_set_level(VCCID_LOG_INFO);
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->serve_lock, NULL);
	pthread_cond_init(&f->wake, NULL);
	pthread_cond_init(&f->logged, NULL);
	f->slot = vccid_slot_new();
	assert_non_null(f->slot);
	vccid_vscard_host_offer_slot(f->slot, "test", 0);
	vccid_vscard_memio_init(&f->memio, transmit_reads, 64);
	f->memio.on_write = on_write;
	f->memio.on_wake = on_wake;
	f->memio.ctx = f;
	f->conn = vccid_vscard_conn_new(&f->memio.io, "memio", TIMEOUT_MS);
	assert_non_null(f->conn);

	f->in_len = vccid_vscard_init_encode(init, sizeof(init), 0, 0);
	memcpy(f->in, init, f->in_len);
	put(f, VCCID_VSCARD_READER_ADD, 0, (const uint8_t *)"r", 1);
	put(f, VCCID_VSCARD_ATR, 0, cac_atr, sizeof(cac_atr));
	client_sent(f, 64);
	assert_true(vccid_vscard_conn_read_begin(f->conn));
	reason = vccid_vscard_conn_serve(f->conn);
	vccid_vscard_conn_read_end(f->conn);
	assert_null(reason);
	assert_true(vccid_slot_present(f->slot));
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_UP, atr, &atr_len), VCCID_OK);
	f->n_written = 0;
	f->memio.reads = 0;
	f->memio.wakes = 0;
	assert_int_equal(pthread_create(&f->server, NULL, serve_loop, f), 0);
	*state = f;
	return 0;
}

static int setup_direct(void **state)
{
	return setup(state, true);
}

static int setup_handoff(void **state)
{
	return setup(state, false);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->server, NULL);
	vccid_vscard_conn_close(f->conn, "test done");
	vccid_vscard_host_withdraw_slot(f->slot);
	assert_false(vccid_slot_present(f->slot));
	vccid_slot_free(f->slot);
	pthread_cond_destroy(&f->wake);
	pthread_cond_destroy(&f->logged);
	pthread_mutex_destroy(&f->serve_lock);
	pthread_mutex_destroy(&f->lock);
	current = NULL;
	free(f);
	return 0;
}

static int transmit(struct fixture *f, uint8_t *rsp, size_t *rsp_len)
{
	return vccid_slot_transmit(f->slot, select_cmd, sizeof(select_cmd), rsp, rsp_len);
}

static bool wrote(const struct fixture *f, uint32_t type)
{
	unsigned i;

	for (i = 0; i < f->n_written; i++)
		if (f->written[i] == type)
			return true;
	return false;
}

/* The answer alone: one read by the transmit, nothing stashed, the socket lingers. */
static void test_direct_answer(void **state)
{
	struct fixture *f = *state;
	static const uint8_t ok[] = { 0x90, 0x00 };
	uint8_t rsp[258];
	size_t rsp_len = sizeof(rsp);
	long long now, recheck = 0;

	put(f, VCCID_VSCARD_APDU, 0, ok, sizeof(ok));
	client_sent(f, 64);
	assert_int_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_int_equal(rsp_len, 2);
	assert_memory_equal(rsp, ok, 2);
	assert_int_equal(f->memio.reads, 1);
	assert_int_equal(f->memio.wakes, 0);
	assert_true(wrote(f, VCCID_VSCARD_APDU));
	assert_false(vccid_vscard_conn_stashed(f->conn));
	/* The transport leaves the connection to transmits for a moment... */
	now = vccid_now_ms();
	assert_false(vccid_vscard_conn_watch(f->conn, now, &recheck));
	assert_true(recheck > now && recheck <= now + LINGER_MS);
	/* ...and watches it again after. */
	assert_true(vccid_vscard_conn_watch(f->conn, now + LINGER_MS + 1, &recheck));
}

/* An answer with a CardRemove glued to it: the rest is stashed, the transport
 * watches at once (no linger) and its serve removes the card. */
static void test_answer_then_card_remove(void **state)
{
	struct fixture *f = *state;
	static const uint8_t ok[] = { 0x90, 0x00 };
	uint8_t rsp[258];
	size_t rsp_len = sizeof(rsp);
	long long recheck = 0;

	put(f, VCCID_VSCARD_APDU, 0, ok, sizeof(ok));
	put(f, VCCID_VSCARD_CARD_REMOVE, 0, NULL, 0);
	client_sent(f, 64);
	assert_int_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_int_equal(rsp_len, 2);
	assert_int_equal(f->memio.reads, 1);
	/* No linger: the transport looks at once (and may already have parsed the stash). */
	assert_true(vccid_vscard_conn_watch(f->conn, vccid_now_ms(), &recheck));
	assert_true(f->memio.wakes >= 1);   /* the transmit asked the transport to look */
	/* The serving thread parses the stash: the card leaves the slot. */
	for (int i = 0; i < 2000 && vccid_slot_present(f->slot); i++) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);   /* polling the observable result, bounded to 2 s */
	}
	assert_false(vccid_slot_present(f->slot));
	assert_false(vccid_vscard_conn_stashed(f->conn));
}

/* Another message in front of the answer: the transmit hands reading back and
 * gets its answer through the transport's thread. */
static void test_message_before_answer(void **state)
{
	struct fixture *f = *state;
	static const uint8_t ok[] = { 0x61, 0x10 };
	uint8_t rsp[258];
	size_t rsp_len = sizeof(rsp);

	put(f, VCCID_VSCARD_FLUSH, 0, NULL, 0);
	put(f, VCCID_VSCARD_APDU, 0, ok, sizeof(ok));
	client_sent(f, 64);
	assert_int_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_int_equal(rsp_len, 2);
	assert_memory_equal(rsp, ok, 2);
	assert_true(f->memio.wakes >= 1);
	assert_true(wrote(f, VCCID_VSCARD_FLUSH_COMPLETE));
}

/* A header split over reads: the part is stashed and the transport completes it. */
static void test_split_header(void **state)
{
	struct fixture *f = *state;
	static const uint8_t ok[] = { 0x90, 0x00 };
	uint8_t rsp[258];
	size_t rsp_len = sizeof(rsp);

	put(f, VCCID_VSCARD_APDU, 0, ok, sizeof(ok));
	client_sent(f, 5);
	assert_int_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_int_equal(rsp_len, 2);
	assert_memory_equal(rsp, ok, 2);
	assert_true(f->memio.wakes >= 1);
}

/* A long answer in small pieces: the transmit reads the rest itself. */
static void test_answer_in_pieces(void **state)
{
	struct fixture *f = *state;
	uint8_t answer[258];
	uint8_t rsp[258];
	size_t rsp_len = sizeof(rsp);

	for (size_t i = 0; i < sizeof(answer); i++)
		answer[i] = (uint8_t)i;
	answer[256] = 0x90;
	answer[257] = 0x00;
	put(f, VCCID_VSCARD_APDU, 0, answer, sizeof(answer));
	client_sent(f, 16);
	assert_int_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_int_equal(rsp_len, sizeof(answer));
	assert_memory_equal(rsp, answer, sizeof(answer));
	assert_int_equal(f->memio.reads, (VCCID_VSCARD_HEADER_SIZE + sizeof(answer) + 15) / 16);
	assert_int_equal(f->memio.wakes, 0);
	assert_false(vccid_vscard_conn_stashed(f->conn));
}

/* The client never answers: the transmit times out and the connection is failed. */
static void test_stall(void **state)
{
	struct fixture *f = *state;
	uint8_t rsp[258];
	size_t rsp_len = sizeof(rsp);
	long long start = vccid_now_ms();

	client_sent(f, 64);
	assert_int_not_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_true(vccid_now_ms() - start >= TIMEOUT_MS - 50);
	assert_true(vccid_vscard_conn_dead(f->conn));
	assert_true(logged(f, "no answer to an APDU in time"));
}

/* The client closes in the middle of its answer: the transmit fails, the connection too. */
static void test_eof_inside_answer(void **state)
{
	struct fixture *f = *state;
	uint8_t answer[100] = { 0 };
	uint8_t rsp[258];
	size_t rsp_len = sizeof(rsp);

	put(f, VCCID_VSCARD_APDU, 0, answer, sizeof(answer));
	f->in_len -= 40;
	f->memio.eof_at_end = true;
	client_sent(f, 32);
	assert_int_not_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_true(vccid_vscard_conn_dead(f->conn));
	assert_true(logged(f, "broke inside an answer"));
}

/* Answers that cannot be a response fail the transmit, each with a log line. */
static void test_malformed_answers(void **state)
{
	struct fixture *f = *state;
	static const uint8_t one[] = { 0x90 };
	uint8_t big[300] = { 0 };
	uint8_t rsp[258];
	size_t rsp_len;

	put(f, VCCID_VSCARD_APDU, 0, NULL, 0);
	client_sent(f, 64);
	rsp_len = sizeof(rsp);
	assert_int_not_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_int_equal(rsp_len, 0);
	assert_true(logged(f, "answered with 0 byte(s)"));

	put(f, VCCID_VSCARD_APDU, 0, one, sizeof(one));
	client_sent(f, 64);
	rsp_len = sizeof(rsp);
	assert_int_not_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_true(logged(f, "answered with 1 byte(s)"));

	put(f, VCCID_VSCARD_APDU, 0, big, sizeof(big));
	client_sent(f, 64);
	rsp_len = sizeof(rsp);
	assert_int_not_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_true(logged(f, "answered with 300 bytes, more than the 258"));
	assert_false(vccid_vscard_conn_dead(f->conn));   /* the client may go on */
}

static void serve(struct fixture *f)
{
	pthread_mutex_lock(&f->serve_lock);
	assert_true(vccid_vscard_conn_read_begin(f->conn));
	(void)vccid_vscard_conn_serve(f->conn);
	vccid_vscard_conn_read_end(f->conn);
	pthread_mutex_unlock(&f->serve_lock);
}

/* A client that does not read: answers wait in the outbox, never the transport's
 * thread, and go out when the client reads again. */
static void test_answers_wait_for_room(void **state)
{
	struct fixture *f = *state;

	f->memio.write_room = 0;
	for (int i = 0; i < 3; i++)
		put(f, VCCID_VSCARD_FLUSH, 0, NULL, 0);
	client_sent(f, 64);
	serve(f);
	assert_int_equal(f->n_written, 0);
	assert_true(vccid_vscard_conn_wants_write(f->conn));
	assert_false(vccid_vscard_conn_dead(f->conn));
	f->memio.write_room = 20;   /* one answer and part of the next */
	vccid_vscard_conn_writable(f->conn);
	assert_int_equal(f->n_written, 1);
	assert_true(vccid_vscard_conn_wants_write(f->conn));
	f->memio.write_room = SIZE_MAX;
	vccid_vscard_conn_writable(f->conn);
	assert_int_equal(f->n_written, 3);
	assert_int_equal(f->written[2], VCCID_VSCARD_FLUSH_COMPLETE);
	assert_false(vccid_vscard_conn_wants_write(f->conn));
}

/* A client that never reads while it keeps asking is dropped when its outbox is full. */
static void test_outbox_full(void **state)
{
	struct fixture *f = *state;
	static uint8_t flood[2000 * VCCID_VSCARD_HEADER_SIZE];
	size_t i;

	f->memio.write_room = 0;
	for (i = 0; i < 2000; i++)
		vccid_vscard_header_encode(flood + i * VCCID_VSCARD_HEADER_SIZE, VCCID_VSCARD_FLUSH, 0, 0);
	vccid_vscard_memio_feed(&f->memio, flood, sizeof(flood));
	f->memio.chunk = sizeof(flood);
	for (i = 0; i < 50 && !vccid_vscard_conn_dead(f->conn); i++)
		serve(f);
	assert_true(vccid_vscard_conn_dead(f->conn));
	assert_true(logged(f, "outbox full"));
}

/* Answers that waited go out before the next APDU, whole. */
static void test_apdu_after_waiting_answers(void **state)
{
	struct fixture *f = *state;
	static const uint8_t ok[] = { 0x90, 0x00 };
	uint8_t rsp[258];
	size_t rsp_len = sizeof(rsp);

	f->memio.write_room = 5;   /* part of the FlushComplete */
	put(f, VCCID_VSCARD_FLUSH, 0, NULL, 0);
	client_sent(f, 64);
	serve(f);
	assert_int_equal(f->n_written, 0);
	f->memio.write_room = SIZE_MAX;
	put(f, VCCID_VSCARD_APDU, 0, ok, sizeof(ok));
	client_sent(f, 64);
	assert_int_equal(transmit(f, rsp, &rsp_len), VCCID_OK);
	assert_int_equal(f->n_written, 2);
	assert_int_equal(f->written[0], VCCID_VSCARD_FLUSH_COMPLETE);
	assert_int_equal(f->written[1], VCCID_VSCARD_APDU);
	assert_false(vccid_vscard_conn_wants_write(f->conn));
}

/* A transport whose transmits never read: every answer comes through its thread. */
static void test_handoff_only(void **state)
{
	struct fixture *f = *state;
	static const uint8_t ok[] = { 0x90, 0x00 };
	uint8_t rsp[258];
	size_t rsp_len = sizeof(rsp);
	long long recheck = 0;
	int rv;

	/* The client answers when it sees the APDU; only a serve can deliver it. */
	f->reply_len = vccid_vscard_message_encode(f->reply, sizeof(f->reply), VCCID_VSCARD_APDU, 0, ok,
					     sizeof(ok));
	rv = transmit(f, rsp, &rsp_len);
	assert_int_equal(rv, VCCID_OK);
	assert_int_equal(rsp_len, 2);
	assert_true(f->memio.reads >= 1);   /* all by the serving thread */
	assert_true(vccid_vscard_conn_watch(f->conn, vccid_now_ms(), &recheck));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_direct_answer, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_answer_then_card_remove, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_message_before_answer, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_split_header, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_answer_in_pieces, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_stall, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_eof_inside_answer, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_answers, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_answers_wait_for_room, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_full, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_apdu_after_waiting_answers, setup_direct,
						teardown),
		cmocka_unit_test_setup_teardown(test_handoff_only, setup_handoff, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
