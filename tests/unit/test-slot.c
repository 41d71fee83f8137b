/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the slot model over a fake backend: presence, power, exchanges, waits, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>

#include "corelib/error.h"
#include "corelib/log.h"
#include "corelib/slot.h"
#include "tests/cac-atr.h"
#include "tests/unit/fake-card.h"
#include "tests/unit/sync.h"

static const uint8_t select_apdu[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };
static const uint8_t get_data_256[] = { 0x00, 0xCA, 0x00, 0x00, 0x00 };

/* Log lines, counted: the slot logs malformed APDUs and bad cards. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_log[1200];
static atomic_int log_count;

static void capture_sink(enum vccid_log_level level, const char *line)
{
	(void)level;
	pthread_mutex_lock(&log_lock);
	snprintf(last_log, sizeof(last_log), "%s", line);
	pthread_mutex_unlock(&log_lock);
	atomic_fetch_add(&log_count, 1);
}

struct fixture {
	vccid_slot *slot;
	struct fake_card card;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->slot = vccid_slot_new();
	if (f->slot == NULL)
		return -1;
	fake_card_init(&f->card, FAKE_OK);
	fake_card_reset_totals();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vccid_slot_free(f->slot);
	fake_card_destroy(&f->card);
	free(f);
	assert_int_equal(atomic_load(&fake_card_totals.violations), 0);
	return 0;
}

/* Inserts the fixture's card in @p mode and, when @p power, powers it up. */
static void insert_card(struct fixture *f, enum fake_card_mode mode, bool power)
{
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);

	f->card.mode = mode;
	assert_int_equal(vccid_slot_insert(f->slot, &fake_card_ops, &f->card, "card-1"), VCCID_OK);
	if (power)
		assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_UP, atr, &atr_len),
				 VCCID_OK);
}

/* ------------------------------------------------------------------ presence */

static void test_new_slot_is_empty(void **state)
{
	struct fixture *f = *state;
	struct vccid_slot_status st;

	assert_false(vccid_slot_present(f->slot));
	memset(&st, 0xA5, sizeof(st));
	vccid_slot_get_status(f->slot, &st);
	assert_false(st.present);
	assert_false(st.powered);
	assert_int_equal(st.changes, 0);
	assert_int_equal(st.removals, 0);
	assert_int_equal(st.atr_len, 0);
	assert_string_equal(st.card_name, "");
	assert_string_equal(st.backend, "");
}

static void test_insert_remove(void **state)
{
	struct fixture *f = *state;
	struct vccid_slot_status st;

	assert_int_equal(vccid_slot_insert(f->slot, &fake_card_ops, &f->card, "alice"), VCCID_OK);
	assert_true(vccid_slot_present(f->slot));
	vccid_slot_get_status(f->slot, &st);
	assert_true(st.present);
	assert_false(st.powered);          /* inserted cards start unpowered */
	assert_int_equal(st.atr_len, 0);
	assert_int_equal(st.changes, 1);
	assert_int_equal(st.removals, 0);
	assert_string_equal(st.card_name, "alice");
	assert_string_equal(st.backend, "fake");
	assert_int_equal(f->card.release_calls, 0);

	assert_int_equal(vccid_slot_remove(f->slot), VCCID_OK);
	assert_false(vccid_slot_present(f->slot));
	vccid_slot_get_status(f->slot, &st);
	assert_false(st.present);
	assert_int_equal(st.changes, 2);
	assert_int_equal(st.removals, 1);
	assert_string_equal(st.card_name, "");
	assert_string_equal(st.backend, "");
	assert_int_equal(f->card.release_calls, 1);
	/* The card is gone: the backend is not called for it again. */
	assert_int_equal(vccid_slot_remove(f->slot), VCCID_ENOCARD);
	assert_int_equal(f->card.release_calls, 1);
}

static void test_double_insert_is_busy(void **state)
{
	struct fixture *f = *state;
	struct fake_card other;
	struct vccid_slot_status st;

	fake_card_init(&other, FAKE_OK);
	assert_int_equal(vccid_slot_insert(f->slot, &fake_card_ops, &f->card, "first"), VCCID_OK);
	assert_int_equal(vccid_slot_insert(f->slot, &fake_card_ops, &other, "second"), VCCID_EBUSY);
	vccid_slot_get_status(f->slot, &st);
	assert_string_equal(st.card_name, "first");
	assert_int_equal(st.changes, 1);   /* a refused insert is no change */
	assert_int_equal(vccid_slot_remove(f->slot), VCCID_OK);
	/* The refused card was never taken, so never released. */
	assert_int_equal(other.release_calls, 0);
	assert_int_equal(f->card.release_calls, 1);
	fake_card_destroy(&other);
}

static void test_remove_empty(void **state)
{
	struct fixture *f = *state;
	struct vccid_slot_status st;

	assert_int_equal(vccid_slot_remove(f->slot), VCCID_ENOCARD);
	vccid_slot_get_status(f->slot, &st);
	assert_int_equal(st.changes, 0);
	assert_int_equal(st.removals, 0);
}

static void test_insert_bad_arguments(void **state)
{
	struct fixture *f = *state;
	struct vccid_card_ops no_power = fake_card_ops;
	struct vccid_card_ops no_transmit = fake_card_ops;

	no_power.power = NULL;
	no_transmit.transmit = NULL;
	assert_int_equal(vccid_slot_insert(NULL, &fake_card_ops, &f->card, "x"), VCCID_EINVAL);
	assert_int_equal(vccid_slot_insert(f->slot, NULL, &f->card, "x"), VCCID_EINVAL);
	assert_int_equal(vccid_slot_insert(f->slot, &no_power, &f->card, "x"), VCCID_EINVAL);
	assert_int_equal(vccid_slot_insert(f->slot, &no_transmit, &f->card, "x"), VCCID_EINVAL);
	assert_false(vccid_slot_present(f->slot));
	assert_int_equal(vccid_slot_remove(NULL), VCCID_EINVAL);
}

static void test_release_may_be_null(void **state)
{
	struct fixture *f = *state;
	struct vccid_card_ops no_release = fake_card_ops;

	no_release.release = NULL;
	assert_int_equal(vccid_slot_insert(f->slot, &no_release, &f->card, NULL), VCCID_OK);
	assert_int_equal(vccid_slot_remove(f->slot), VCCID_OK);
	assert_int_equal(f->card.release_calls, 0);
}

static void test_long_name_truncated(void **state)
{
	struct fixture *f = *state;
	struct vccid_slot_status st;
	char name[200];

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(vccid_slot_insert(f->slot, &fake_card_ops, &f->card, name), VCCID_OK);
	vccid_slot_get_status(f->slot, &st);
	assert_int_equal(strlen(st.card_name), 63);
	assert_memory_equal(st.card_name, name, 63);
}

/* Freeing a slot with a card releases it exactly once. */
static void test_free_releases(void **state)
{
	struct fake_card *card = fake_card_new(FAKE_OK);
	vccid_slot *slot = vccid_slot_new();

	(void)state;
	assert_non_null(slot);
	assert_int_equal(vccid_slot_insert(slot, &fake_card_ops, card, "x"), VCCID_OK);
	vccid_slot_free(slot);   /* frees card through release */
	assert_int_equal(atomic_load(&fake_card_totals.releases), 1);
	vccid_slot_free(NULL);
}

/* ------------------------------------------------------------------ power */

static void test_power_up_stores_atr(void **state)
{
	struct fixture *f = *state;
	struct vccid_slot_status st;
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);

	insert_card(f, FAKE_OK, false);
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_UP, atr, &atr_len), VCCID_OK);
	assert_int_equal(atr_len, sizeof(cac_atr));
	assert_memory_equal(atr, cac_atr, sizeof(cac_atr));
	vccid_slot_get_status(f->slot, &st);
	assert_true(st.powered);
	assert_int_equal(st.atr_len, sizeof(cac_atr));
	assert_memory_equal(st.atr, cac_atr, sizeof(cac_atr));

	/* Reset keeps power and gives the ATR again. */
	atr_len = sizeof(atr);
	memset(atr, 0, sizeof(atr));
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_RESET, atr, &atr_len), VCCID_OK);
	assert_int_equal(atr_len, sizeof(cac_atr));
	assert_memory_equal(atr, cac_atr, sizeof(cac_atr));
	vccid_slot_get_status(f->slot, &st);
	assert_true(st.powered);

	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_DOWN, NULL, NULL), VCCID_OK);
	vccid_slot_get_status(f->slot, &st);
	assert_true(st.present);
	assert_false(st.powered);
	assert_int_equal(st.atr_len, 0);
	assert_int_equal(f->card.power_calls, 3);
}

static void test_power_invalid_atr(void **state)
{
	struct fixture *f = *state;
	struct vccid_slot_status st;
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);
	int before = atomic_load(&log_count);

	insert_card(f, FAKE_OK, true);
	f->card.mode = FAKE_BAD_ATR;
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_RESET, atr, &atr_len),
			 VCCID_EPROTO);
	vccid_slot_get_status(f->slot, &st);
	assert_false(st.powered);          /* a bad reset leaves the card unpowered */
	assert_int_equal(st.atr_len, 0);
	assert_true(atomic_load(&log_count) > before);
	pthread_mutex_lock(&log_lock);
	assert_non_null(strstr(last_log, "card-1 gave an invalid ATR"));
	pthread_mutex_unlock(&log_lock);

	f->card.mode = FAKE_LONG_ATR;
	atr_len = sizeof(atr);
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_UP, atr, &atr_len), VCCID_EPROTO);
	vccid_slot_get_status(f->slot, &st);
	assert_false(st.powered);
}

static void test_power_failures(void **state)
{
	struct fixture *f = *state;
	struct vccid_slot_status st;
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);

	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_UP, atr, &atr_len), VCCID_ENOCARD);
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_DOWN, NULL, NULL), VCCID_ENOCARD);
	insert_card(f, FAKE_POWER_FAIL, false);
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_UP, atr, &atr_len), VCCID_EIO);
	vccid_slot_get_status(f->slot, &st);
	assert_false(st.powered);
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_UP, NULL, &atr_len), VCCID_EINVAL);
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_UP, atr, NULL), VCCID_EINVAL);
	assert_int_equal(vccid_slot_power(NULL, VCCID_POWER_DOWN, NULL, NULL), VCCID_EINVAL);

	/* The caller's ATR buffer too small: not powered. */
	f->card.mode = FAKE_OK;
	atr_len = sizeof(cac_atr) - 1;
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_UP, atr, &atr_len), VCCID_ENOSPC);
	vccid_slot_get_status(f->slot, &st);
	assert_false(st.powered);
}

/* Removal unpowers; a new card starts unpowered even if the old one was on. */
static void test_remove_unpowers(void **state)
{
	struct fixture *f = *state;
	struct fake_card other;
	struct vccid_slot_status st;

	fake_card_init(&other, FAKE_OK);
	insert_card(f, FAKE_OK, true);
	assert_int_equal(vccid_slot_remove(f->slot), VCCID_OK);
	vccid_slot_get_status(f->slot, &st);
	assert_false(st.powered);
	assert_int_equal(st.atr_len, 0);
	assert_int_equal(vccid_slot_insert(f->slot, &fake_card_ops, &other, "other"), VCCID_OK);
	vccid_slot_get_status(f->slot, &st);
	assert_false(st.powered);
	assert_int_equal(vccid_slot_remove(f->slot), VCCID_OK);
	fake_card_destroy(&other);
}

/* ------------------------------------------------------------------ transmit */

static void test_transmit_ok(void **state)
{
	struct fixture *f = *state;
	uint8_t rsp[VCCID_MAX_RESPONSE];
	size_t rsp_len = sizeof(rsp);
	size_t i;

	insert_card(f, FAKE_OK, true);
	assert_int_equal(vccid_slot_transmit(f->slot, select_apdu, sizeof(select_apdu), rsp,
					     &rsp_len), VCCID_OK);
	assert_int_equal(rsp_len, 2);
	assert_int_equal(rsp[0], 0x90);
	assert_int_equal(rsp[1], 0x00);

	rsp_len = 258;   /* exactly enough */
	assert_int_equal(vccid_slot_transmit(f->slot, get_data_256, sizeof(get_data_256), rsp,
					     &rsp_len), VCCID_OK);
	assert_int_equal(rsp_len, 258);
	for (i = 0; i < 256; i++)
		assert_int_equal(rsp[i], (uint8_t)i);
	assert_int_equal(rsp[256], 0x90);
	assert_int_equal(f->card.transmit_calls, 2);
}

static void test_transmit_not_powered(void **state)
{
	struct fixture *f = *state;
	uint8_t rsp[16];
	size_t rsp_len = sizeof(rsp);

	insert_card(f, FAKE_OK, false);
	assert_int_equal(vccid_slot_transmit(f->slot, select_apdu, sizeof(select_apdu), rsp,
					     &rsp_len), VCCID_ENOTPOWERED);
	assert_int_equal(rsp_len, 0);
	assert_int_equal(f->card.transmit_calls, 0);
}

static void test_transmit_after_power_down(void **state)
{
	struct fixture *f = *state;
	uint8_t rsp[16];
	size_t rsp_len = sizeof(rsp);

	insert_card(f, FAKE_OK, true);
	assert_int_equal(vccid_slot_power(f->slot, VCCID_POWER_DOWN, NULL, NULL), VCCID_OK);
	assert_int_equal(vccid_slot_transmit(f->slot, select_apdu, sizeof(select_apdu), rsp,
					     &rsp_len), VCCID_ENOTPOWERED);
	assert_int_equal(rsp_len, 0);
	assert_int_equal(f->card.transmit_calls, 0);
}

static void test_transmit_empty(void **state)
{
	struct fixture *f = *state;
	uint8_t rsp[16];
	size_t rsp_len = sizeof(rsp);

	assert_int_equal(vccid_slot_transmit(f->slot, select_apdu, sizeof(select_apdu), rsp,
					     &rsp_len), VCCID_ENOCARD);
	assert_int_equal(rsp_len, 0);
	rsp_len = sizeof(rsp);
	assert_int_equal(vccid_slot_transmit(NULL, select_apdu, sizeof(select_apdu), rsp,
					     &rsp_len), VCCID_EINVAL);
	assert_int_equal(vccid_slot_transmit(f->slot, NULL, 4, rsp, &rsp_len), VCCID_EINVAL);
	assert_int_equal(vccid_slot_transmit(f->slot, select_apdu, 4, NULL, &rsp_len),
			 VCCID_EINVAL);
	assert_int_equal(vccid_slot_transmit(f->slot, select_apdu, 4, rsp, NULL), VCCID_EINVAL);
}

static void test_transmit_malformed(void **state)
{
	static const struct {
		const char *name;
		uint8_t bytes[8];
		size_t len;
	} bad[] = {
		{ "3 bytes", { 0x00, 0xA4, 0x04 }, 3 },
		{ "Lc 2, 1 byte", { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F }, 6 },
		{ "header + 00 + x", { 0x00, 0xA4, 0x04, 0x00, 0x00, 0x01 }, 6 },
		{ "extended Lc 0", { 0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00 }, 8 },
	};
	struct fixture *f = *state;
	size_t i;

	insert_card(f, FAKE_OK, true);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t rsp[16] = { 0 };
		size_t rsp_len = sizeof(rsp);
		int rv = vccid_slot_transmit(f->slot, bad[i].bytes, bad[i].len, rsp, &rsp_len);

		if (rv != VCCID_OK || rsp_len != 2 || rsp[0] != 0x67 || rsp[1] != 0x00)
			fail_msg("%s: rv %d, %zu bytes %02X %02X", bad[i].name, rv, rsp_len, rsp[0],
				 rsp[1]);
	}
	assert_int_equal(f->card.transmit_calls, 0);   /* never reached the backend */
}

static void test_transmit_bad_responses(void **state)
{
	static const struct {
		enum fake_card_mode mode;
		size_t capacity;
		const uint8_t *cmd;
		size_t cmd_len;
		int rv;
	} rows[] = {
		{ FAKE_RSP_TOO_BIG, 16, select_apdu, sizeof(select_apdu), VCCID_EIO },
		{ FAKE_RSP_TOO_SHORT, 16, select_apdu, sizeof(select_apdu), VCCID_EIO },
		{ FAKE_TRANSMIT_FAIL, 16, select_apdu, sizeof(select_apdu), VCCID_EIO },
		/* A response that does not fit: the backend's ENOSPC passes through. */
		{ FAKE_OK, 257, get_data_256, sizeof(get_data_256), VCCID_ENOSPC },
	};
	struct fixture *f = *state;
	size_t i;

	insert_card(f, FAKE_OK, true);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint8_t rsp[512];
		size_t rsp_len = rows[i].capacity;
		int rv;

		f->card.mode = rows[i].mode;
		rv = vccid_slot_transmit(f->slot, rows[i].cmd, rows[i].cmd_len, rsp, &rsp_len);
		if (rv != rows[i].rv || rsp_len != 0)
			fail_msg("row %zu: rv %d, rsp_len %zu; expected %d and 0", i, rv, rsp_len,
				 rows[i].rv);
	}
}

static void test_transmit_capacity_below_2(void **state)
{
	struct fixture *f = *state;
	uint8_t rsp[2];
	size_t cap;

	insert_card(f, FAKE_OK, true);
	for (cap = 0; cap < 2; cap++) {
		size_t rsp_len = cap;

		assert_int_equal(vccid_slot_transmit(f->slot, select_apdu, sizeof(select_apdu), rsp,
						     &rsp_len), VCCID_ENOSPC);
		assert_int_equal(rsp_len, 0);
	}
	assert_int_equal(f->card.transmit_calls, 0);
	/* Exactly 2 is enough for 90 00, and for a malformed APDU's 67 00. */
	cap = 2;
	assert_int_equal(vccid_slot_transmit(f->slot, select_apdu, sizeof(select_apdu), rsp, &cap),
			 VCCID_OK);
	assert_int_equal(cap, 2);
	cap = 2;
	assert_int_equal(vccid_slot_transmit(f->slot, select_apdu, 3, rsp, &cap), VCCID_OK);
	assert_int_equal(rsp[0], 0x67);
}

/* ------------------------------------------------------------------ threads */

struct transmit_job {
	vccid_slot *slot;
	int rv;
	uint8_t rsp[16];
	size_t rsp_len;
};

static void *transmit_thread(void *arg)
{
	struct transmit_job *job = arg;

	job->rsp_len = sizeof(job->rsp);
	job->rv = vccid_slot_transmit(job->slot, select_apdu, sizeof(select_apdu), job->rsp,
				      &job->rsp_len);
	return NULL;
}

struct remove_job {
	vccid_slot *slot;
	int rv;
	atomic_bool done;
	struct test_thread_mark mark;
};

static void *remove_thread(void *arg)
{
	struct remove_job *job = arg;

	test_thread_start(&job->mark);
	job->rv = vccid_slot_remove(job->slot);
	atomic_store(&job->done, true);
	return NULL;
}

/* Remove during an exchange: presence drops at once, release waits for the exchange. */
static void test_release_after_inflight_transmit(void **state)
{
	struct fixture *f = *state;
	struct transmit_job tjob = { .slot = f->slot };
	struct remove_job rjob = { .slot = f->slot, .mark = TEST_THREAD_MARK_INIT };
	pthread_t t1, t2;

	insert_card(f, FAKE_BLOCK, true);
	assert_int_equal(pthread_create(&t1, NULL, transmit_thread, &tjob), 0);
	assert_true(fake_card_wait_entered(&f->card, 5000));

	assert_int_equal(pthread_create(&t2, NULL, remove_thread, &rjob), 0);
	assert_true(test_thread_asleep(&rjob.mark, 5000));   /* remove waits for the exchange */
	assert_false(vccid_slot_present(f->slot));   /* presence never waits for I/O */
	assert_false(atomic_load(&rjob.done));
	assert_int_equal(atomic_load(&f->card.release_calls), 0);

	fake_card_open_gate(&f->card);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(tjob.rv, VCCID_OK);         /* the exchange in flight completes */
	assert_int_equal(tjob.rsp_len, 2);
	assert_int_equal(rjob.rv, VCCID_OK);
	assert_int_equal(atomic_load(&f->card.release_calls), 1);
	assert_true(atomic_load(&f->card.transmit_done));
	assert_false(atomic_load(&f->card.release_early));
}

static void test_wait_timeout(void **state)
{
	struct fixture *f = *state;
	struct vccid_slot_status st;
	long start;

	vccid_slot_get_status(f->slot, &st);
	start = now_ms();
	assert_int_equal(vccid_slot_wait_change(f->slot, st.changes, 100), VCCID_ETIMEDOUT);
	assert_true(now_ms() - start >= 99);
	start = now_ms();
	assert_int_equal(vccid_slot_wait_change(f->slot, st.changes, 0), VCCID_ETIMEDOUT);
	assert_true(now_ms() - start < 1000);
}

static void test_wait_already_changed(void **state)
{
	struct fixture *f = *state;
	long start;

	insert_card(f, FAKE_OK, false);
	start = now_ms();
	/* Changes is 1 now; a caller that saw 0 returns at once, even without a timeout. */
	assert_int_equal(vccid_slot_wait_change(f->slot, 0, 5000), VCCID_OK);
	assert_int_equal(vccid_slot_wait_change(f->slot, 0, -1), VCCID_OK);
	assert_true(now_ms() - start < 1000);
}

struct wait_job {
	vccid_slot *slot;
	uint64_t seen;
	int timeout_ms;
	int rv;
	long elapsed_ms;
	struct test_thread_mark mark;
};

static void *wait_thread(void *arg)
{
	struct wait_job *job = arg;
	long start = now_ms();

	test_thread_start(&job->mark);
	job->rv = vccid_slot_wait_change(job->slot, job->seen, job->timeout_ms);
	job->elapsed_ms = now_ms() - start;
	return NULL;
}

/* Returns once the waiter sleeps in vccid_slot_wait_change, so a change wakes it. */
static void await_waiting(struct wait_job *job)
{
	assert_true(test_thread_asleep(&job->mark, 5000));
}

static void test_wait_woken_by_insert(void **state)
{
	struct fixture *f = *state;
	struct wait_job job = { .slot = f->slot, .seen = 0, .timeout_ms = 8000,
				 .mark = TEST_THREAD_MARK_INIT };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, wait_thread, &job), 0);
	await_waiting(&job);
	insert_card(f, FAKE_OK, false);
	pthread_join(t, NULL);
	assert_int_equal(job.rv, VCCID_OK);
	assert_true(job.elapsed_ms < 4000);
}

static void test_wait_woken_by_remove(void **state)
{
	struct fixture *f = *state;
	struct wait_job job = { .slot = f->slot, .seen = 1, .timeout_ms = 8000,
				 .mark = TEST_THREAD_MARK_INIT };
	pthread_t t;

	insert_card(f, FAKE_OK, false);
	assert_int_equal(pthread_create(&t, NULL, wait_thread, &job), 0);
	await_waiting(&job);
	assert_int_equal(vccid_slot_remove(f->slot), VCCID_OK);
	pthread_join(t, NULL);
	assert_int_equal(job.rv, VCCID_OK);
	assert_true(job.elapsed_ms < 4000);
}

static void test_cancel_waits(void **state)
{
	struct fixture *f = *state;
	struct wait_job job = { .slot = f->slot, .seen = 0, .timeout_ms = 8000,
				 .mark = TEST_THREAD_MARK_INIT };
	pthread_t t;
	long start;

	assert_int_equal(pthread_create(&t, NULL, wait_thread, &job), 0);
	await_waiting(&job);
	vccid_slot_cancel_waits(f->slot);
	pthread_join(t, NULL);
	assert_int_equal(job.rv, VCCID_ECANCELED);
	assert_true(job.elapsed_ms < 4000);

	/* One-shot: the cancel was taken by the waiter, so a later wait waits
	 * again (pcscd restarts its polling thread after stopping it). */
	start = now_ms();
	assert_int_equal(vccid_slot_wait_change(f->slot, 0, 100), VCCID_ETIMEDOUT);
	assert_true(now_ms() - start >= 90);
}

/* Cancel before any wait began: the first wait must not block. */
static void test_cancel_before_wait(void **state)
{
	struct fixture *f = *state;
	long start = now_ms();

	vccid_slot_cancel_waits(f->slot);
	assert_int_equal(vccid_slot_wait_change(f->slot, 0, 8000), VCCID_ECANCELED);
	assert_true(now_ms() - start < 1000);
	/* ... and only that one. */
	assert_int_equal(vccid_slot_wait_change(f->slot, 0, 100), VCCID_ETIMEDOUT);
}

/* A remove and insert between two looks is still seen. */
static void test_remove_insert_between_looks(void **state)
{
	struct fixture *f = *state;
	struct fake_card other;
	struct vccid_slot_status before, after;

	fake_card_init(&other, FAKE_OK);
	insert_card(f, FAKE_OK, true);
	vccid_slot_get_status(f->slot, &before);
	assert_int_equal(vccid_slot_remove(f->slot), VCCID_OK);
	assert_int_equal(vccid_slot_insert(f->slot, &fake_card_ops, &other, "other"), VCCID_OK);
	vccid_slot_get_status(f->slot, &after);
	assert_true(after.present);
	assert_int_equal(after.changes, before.changes + 2);
	assert_int_equal(after.removals, before.removals + 1);
	assert_false(after.powered);
	assert_int_equal(vccid_slot_wait_change(f->slot, before.changes, 0), VCCID_OK);
	assert_int_equal(vccid_slot_remove(f->slot), VCCID_OK);
	fake_card_destroy(&other);
}

/* ------------------------------------------------------------------ stress */

enum { STRESS_THREADS = 8, STRESS_ITERATIONS = 10000 };

struct stress_ctx {
	vccid_slot *slot;
	atomic_int inserts;
	atomic_int bad_status;
	atomic_int bad_rv;
};

struct stress_thread {
	struct stress_ctx *ctx;
	unsigned seed;
};

static void *stress_thread(void *arg)
{
	struct stress_thread *me = arg;
	struct stress_ctx *ctx = me->ctx;
	uint64_t last_changes = 0;
	int i;

	for (i = 0; i < STRESS_ITERATIONS; i++) {
		struct vccid_slot_status st;
		uint8_t buf[300];
		size_t len = sizeof(buf);
		int rv = VCCID_OK;

		switch (rand_r(&me->seed) % 9) {
		case 0: {
			struct fake_card *card = fake_card_new(FAKE_OK);

			rv = vccid_slot_insert(ctx->slot, &fake_card_ops, card, "stress");
			if (rv == VCCID_OK) {
				atomic_fetch_add(&ctx->inserts, 1);
			} else {
				fake_card_destroy(card);
				free(card);
				if (rv != VCCID_EBUSY)
					atomic_fetch_add(&ctx->bad_rv, 1);
			}
			break;
		}
		case 1:
			rv = vccid_slot_remove(ctx->slot);
			if (rv != VCCID_OK && rv != VCCID_ENOCARD)
				atomic_fetch_add(&ctx->bad_rv, 1);
			break;
		case 2:
			rv = vccid_slot_power(ctx->slot, VCCID_POWER_UP, buf, &len);
			if (rv == VCCID_OK && (len != sizeof(cac_atr) ||
					       memcmp(buf, cac_atr, len) != 0))
				atomic_fetch_add(&ctx->bad_status, 1);
			if (rv != VCCID_OK && rv != VCCID_ENOCARD)
				atomic_fetch_add(&ctx->bad_rv, 1);
			break;
		case 3:
			rv = vccid_slot_power(ctx->slot, VCCID_POWER_DOWN, NULL, NULL);
			if (rv != VCCID_OK && rv != VCCID_ENOCARD)
				atomic_fetch_add(&ctx->bad_rv, 1);
			break;
		case 4:
		case 5:
			rv = vccid_slot_transmit(ctx->slot, (i & 1) ? get_data_256 : select_apdu,
						 (i & 1) ? sizeof(get_data_256)
							 : sizeof(select_apdu),
						 buf, &len);
			if (rv == VCCID_OK && (len < 2 || buf[len - 2] != 0x90))
				atomic_fetch_add(&ctx->bad_status, 1);
			if (rv != VCCID_OK && len != 0)
				atomic_fetch_add(&ctx->bad_status, 1);
			if (rv != VCCID_OK && rv != VCCID_ENOCARD && rv != VCCID_ENOTPOWERED)
				atomic_fetch_add(&ctx->bad_rv, 1);
			break;
		case 6:
			rv = vccid_slot_wait_change(ctx->slot, last_changes, 1);
			if (rv != VCCID_OK && rv != VCCID_ETIMEDOUT)
				atomic_fetch_add(&ctx->bad_rv, 1);
			break;
		case 7:
			/* Malformed: answered by the slot itself, logged with the card name. */
			rv = vccid_slot_transmit(ctx->slot, select_apdu, 3, buf, &len);
			if (rv == VCCID_OK && (len != 2 || buf[0] != 0x67 || buf[1] != 0x00))
				atomic_fetch_add(&ctx->bad_status, 1);
			if (rv != VCCID_OK && rv != VCCID_ENOCARD && rv != VCCID_ENOTPOWERED)
				atomic_fetch_add(&ctx->bad_rv, 1);
			break;
		default:
			break;
		}
		vccid_slot_get_status(ctx->slot, &st);
		if (st.changes < last_changes || st.removals > st.changes ||
		    (!st.present && (st.powered || st.atr_len != 0 || st.card_name[0] != '\0')) ||
		    (st.powered && (st.atr_len != sizeof(cac_atr) || !st.present)) ||
		    (st.present && strcmp(st.card_name, "stress") != 0))
			atomic_fetch_add(&ctx->bad_status, 1);
		last_changes = st.changes;
	}
	return NULL;
}

static void test_stress(void **state)
{
	struct stress_ctx ctx;
	struct stress_thread threads[STRESS_THREADS];
	pthread_t tids[STRESS_THREADS];
	struct vccid_slot_status st;
	int i;

	(void)state;
	memset(&ctx, 0, sizeof(ctx));
	ctx.slot = vccid_slot_new();
	assert_non_null(ctx.slot);
	for (i = 0; i < STRESS_THREADS; i++) {
		threads[i].ctx = &ctx;
		threads[i].seed = 0x5EED0000u + (unsigned)i;
		assert_int_equal(pthread_create(&tids[i], NULL, stress_thread, &threads[i]), 0);
	}
	for (i = 0; i < STRESS_THREADS; i++)
		pthread_join(tids[i], NULL);
	vccid_slot_get_status(ctx.slot, &st);
	/* Every insert and every remove bumped changes exactly once. */
	assert_int_equal(st.changes, (uint64_t)atomic_load(&ctx.inserts) + st.removals);
	vccid_slot_free(ctx.slot);
	assert_true(atomic_load(&ctx.inserts) > 0);
	assert_int_equal(atomic_load(&fake_card_totals.releases), atomic_load(&ctx.inserts));
	assert_int_equal(atomic_load(&ctx.bad_status), 0);
	assert_int_equal(atomic_load(&ctx.bad_rv), 0);
	assert_int_equal(atomic_load(&fake_card_totals.violations), 0);
}

/* One cancel wakes every waiter, even those without a timeout. */
static void test_cancel_wakes_all_waiters(void **state)
{
	struct fixture *f = *state;
	struct wait_job jobs[4];
	pthread_t tids[4];
	int i;

	insert_card(f, FAKE_OK, false);
	assert_int_equal(vccid_slot_remove(f->slot), VCCID_OK);
	for (i = 0; i < 4; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].mark = (struct test_thread_mark)TEST_THREAD_MARK_INIT;
		jobs[i].slot = f->slot;
		jobs[i].seen = 2;          /* the current value: these block */
		jobs[i].timeout_ms = i == 0 ? -1 : 8000;
		assert_int_equal(pthread_create(&tids[i], NULL, wait_thread, &jobs[i]), 0);
	}
	for (i = 0; i < 4; i++)
		await_waiting(&jobs[i]);
	vccid_slot_cancel_waits(f->slot);
	for (i = 0; i < 4; i++) {
		pthread_join(tids[i], NULL);
		assert_int_equal(jobs[i].rv, VCCID_ECANCELED);
		assert_true(jobs[i].elapsed_ms < 4000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_slot_is_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_insert_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_double_insert_is_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_insert_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_may_be_null, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_name_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_releases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_up_stores_atr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_invalid_atr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_unpowers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_not_powered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_after_power_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_bad_responses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_capacity_below_2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_after_inflight_transmit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wait_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_already_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_woken_by_insert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_woken_by_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_before_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_insert_between_looks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_wakes_all_waiters, setup, teardown),
	};
	int failed;

	vccid_log_set_sink(capture_sink);
	vccid_log_set_level(VCCID_LOG_APDU);
	failed = cmocka_run_group_tests_name("slot", tests, NULL, NULL);
	vccid_log_set_sink(NULL);
	return failed;
}
