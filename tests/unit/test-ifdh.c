/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the IFD handler entry points and the reader registry over the fake backend. */
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
#include <unistd.h>

#include <cmocka.h>

#include <debuglog.h>
#include <ifdhandler.h>
#include <reader.h>

#include "backends/slotset.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "corelib/slot.h"
#include "ifdhandler/control.h"
#include "ifdhandler/registry.h"
#include "tests/cac-atr.h"
#include "tests/unit/fake-cacard.h"
#include "tests/unit/sync.h"


#define LUN(reader, slot) ((DWORD)(((reader) << 16) | (slot)))
#define IOCTL_GET_TLV_PROPERTIES 0x42330012u
#define WINDOWS_GET_FEATURE_REQUEST 0x313520u
#define LONG_NAME "c123456789012345678901234567890123456789012345678901234567890ab"

static uint8_t select_apdu[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };
static uint8_t get_data_256[] = { 0x00, 0xCA, 0x00, 0x00, 0x00 };

/* ------------------------------------------------------------------ pcscd's log_msg */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_text;
static size_t log_size;

void log_msg(const int priority, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&log_lock);
	len = strlen(line) + 16;
	log_text = realloc(log_text, log_size + len);
	if (log_text != NULL)
		log_size += (size_t)snprintf(log_text + log_size, len, "%d %s\n", priority, line);
	pthread_mutex_unlock(&log_lock);
}

static void log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	free(log_text);
	log_text = NULL;
	log_size = 0;
	pthread_mutex_unlock(&log_lock);
}

static bool log_has(const char *needle)
{
	bool found;

	pthread_mutex_lock(&log_lock);
	found = log_text != NULL && strstr(log_text, needle) != NULL;
	pthread_mutex_unlock(&log_lock);
	return found;
}

static void assert_logged(const char *needle)
{
	if (!log_has(needle))
		fail_msg("no pcscd log line contains \"%s\"; log:\n%s", needle,
			 log_text ? log_text : "");
}

/* ------------------------------------------------------------------ helpers */

static const char config_text[] =
	"[vccid]\n"
	"nss-database = sql:/nonexistent/nssdb\n"
	"\n"
	"[reader:second]\n"
	"slots = 2\n"
	"\n"
	"[card:alice]\n"
	"slot = 0\n"
	"certificates = a1;a2;a3\n"
	"\n"
	"[card:bob]\n"
	"slot = 1\n"
	"certificates = b1;b2;b3\n"
	"inserted = false\n"
	"\n"
	"[card:carol]\n"
	"reader = second\n"
	"slot = 0\n"
	"certificates = c1;c2;c3\n"
	"\n"
	"[card:" LONG_NAME "]\n"
	"reader = second\n"
	"slot = 1\n"
	"certificates = d1;d2;d3\n";

struct fixture {
	char path[64];
	char device[128];
	unsigned open[2];    /* slot count opened per reader index */
};

static void write_config(char *path, size_t size, const char *text)
{
	int fd;

	snprintf(path, size, "/tmp/vccid-test-ifdh-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

/* Opens every slot of reader @p index as pcscd does: slot 0 by name, then the others. */
static void open_reader(struct fixture *f, unsigned index, const char *device)
{
	DWORD length = 1;
	UCHAR slots = 0;
	unsigned i;

	assert_int_equal(IFDHCreateChannelByName(LUN(index, 0), (LPSTR)device), IFD_SUCCESS);
	assert_int_equal(IFDHGetCapabilities(LUN(index, 0), TAG_IFD_SLOTS_NUMBER, &length, &slots),
			 IFD_SUCCESS);
	assert_int_equal(length, 1);
	for (i = 1; i < slots; i++)
		assert_int_equal(IFDHCreateChannelByName(LUN(index, i), (LPSTR)device),
				 IFD_SUCCESS);
	f->open[index] = slots;
}

static void close_reader(struct fixture *f, unsigned index)
{
	unsigned i;

	for (i = 0; i < f->open[index]; i++)
		assert_int_equal(IFDHCloseChannel(LUN(index, i)), IFD_SUCCESS);
	f->open[index] = 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	fake_cacard_reset();
	log_clear();
	write_config(f->path, sizeof(f->path), config_text);
	snprintf(f->device, sizeof(f->device), "%s", f->path);
	open_reader(f, 0, f->device);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close_reader(f, 0);
	close_reader(f, 1);
	unlink(f->path);
	/* Every card that went into a slot came out, and every acquire was released. */
	assert_int_equal(fake_cacard_card_releases(), fake_cacard_inserts());
	assert_int_equal(fake_cacard_releases(), fake_cacard_acquires());
	/* The reader is gone. */
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_NO_SUCH_DEVICE);
	free(f);
	return 0;
}

static RESPONSECODE get_cap(DWORD lun, DWORD tag, uint8_t *buf, DWORD *len)
{
	return IFDHGetCapabilities(lun, tag, len, buf);
}

static RESPONSECODE control(DWORD lun, DWORD code, const void *in, DWORD in_len, void *out,
			    DWORD out_size, DWORD *returned)
{
	return IFDHControl(lun, code, (PUCHAR)in, in_len, out, out_size, returned);
}

/* The STATUS control line of @p lun. */
static void status_line(DWORD lun, char *buf, DWORD size)
{
	DWORD returned = 0;

	assert_int_equal(control(lun, VCCID_CTL_STATUS, NULL, 0, buf, size - 1, &returned),
			 IFD_SUCCESS);
	assert_true(returned < size);
	buf[returned] = '\0';
}

static void power_up(DWORD lun)
{
	UCHAR atr[MAX_ATR_SIZE];
	DWORD atr_len = sizeof(atr);

	assert_int_equal(IFDHPowerICC(lun, IFD_POWER_UP, atr, &atr_len), IFD_SUCCESS);
	assert_int_equal(atr_len, sizeof(cac_atr));
}

/* ------------------------------------------------------------------ channels */

static void test_channels(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[8];
	DWORD len = sizeof(buf);

	assert_int_equal(f->open[0], 4);
	assert_int_equal(get_cap(LUN(0, 0), TAG_IFD_SLOTS_NUMBER, buf, &len), IFD_SUCCESS);
	assert_int_equal(buf[0], 4);
	/* Opening a channel twice, or past the slot count, fails. */
	assert_int_equal(IFDHCreateChannelByName(LUN(0, 0), f->device), IFD_COMMUNICATION_ERROR);
	assert_int_equal(IFDHCreateChannelByName(LUN(0, 2), f->device), IFD_COMMUNICATION_ERROR);
	assert_int_equal(IFDHCreateChannelByName(LUN(0, 4), f->device), IFD_COMMUNICATION_ERROR);
	/* A further slot of a reader that does not exist. */
	assert_int_equal(IFDHCreateChannelByName(LUN(3, 1), f->device), IFD_COMMUNICATION_ERROR);
	assert_int_equal(IFDHCreateChannelByName(LUN(16, 0), f->device), IFD_COMMUNICATION_ERROR);
	/* Slots beyond the count do not resolve. */
	assert_int_equal(IFDHICCPresence(LUN(0, 4)), IFD_NO_SUCH_DEVICE);
	assert_int_equal(IFDHICCPresence(LUN(1, 0)), IFD_NO_SUCH_DEVICE);
	/* Closing what is not open. */
	assert_int_equal(IFDHCloseChannel(LUN(1, 0)), IFD_NO_SUCH_DEVICE);
	assert_int_equal(IFDHCloseChannel(LUN(0, 5)), IFD_NO_SUCH_DEVICE);
	/* One acquire for the reader, alice inserted from the start. */
	assert_int_equal(fake_cacard_acquires(), 1);
	assert_int_equal(fake_cacard_inserts(), 1);
}

/* The reader lives until its last slot closes, whatever the order. */
static void test_close_order(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(IFDHCloseChannel(LUN(0, 0)), IFD_SUCCESS);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
	assert_int_equal(IFDHCloseChannel(LUN(0, 0)), IFD_NO_SUCH_DEVICE);
	assert_int_equal(IFDHCloseChannel(LUN(0, 3)), IFD_SUCCESS);
	assert_int_equal(IFDHCloseChannel(LUN(0, 1)), IFD_SUCCESS);
	assert_int_equal(fake_cacard_card_releases(), 0);
	assert_int_equal(fake_cacard_releases(), 0);
	assert_int_equal(IFDHCloseChannel(LUN(0, 2)), IFD_SUCCESS);
	assert_int_equal(fake_cacard_card_releases(), 1);
	assert_int_equal(fake_cacard_releases(), 1);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_NO_SUCH_DEVICE);
	f->open[0] = 0;
	/* The index is free again. */
	open_reader(f, 0, f->device);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
}

/* ------------------------------------------------------------------ capabilities */

static DWORD expected_version(void)
{
	unsigned major = 0, minor = 0, patch = 0;

	assert_int_equal(sscanf(PACKAGE_VERSION, "%u.%u.%u", &major, &minor, &patch), 3);
	return (DWORD)(major << 24 | minor << 16 | patch);
}

static void test_capabilities(void **state)
{
	static const char vendor[] = "vccid";
	static const char ifd_type[] = "vccid virtual reader";
	static const char serial[] = "vccid-default";
	const struct {
		const char *name;
		DWORD lun;
		DWORD tag;
		const void *value;
		DWORD len;
	} rows[] = {
		{ "THREAD_SAFE", LUN(0, 0), TAG_IFD_THREAD_SAFE, "\x01", 1 },
		{ "SLOT_THREAD_SAFE", LUN(0, 0), TAG_IFD_SLOT_THREAD_SAFE, "\x01", 1 },
		{ "SIMULTANEOUS_ACCESS", LUN(0, 0), TAG_IFD_SIMULTANEOUS_ACCESS,
		  (const uint8_t[]){ VCCID_MAX_READERS }, 1 },
		{ "SLOTS_NUMBER", LUN(0, 3), TAG_IFD_SLOTS_NUMBER, "\x04", 1 },
		{ "VENDOR_NAME", LUN(0, 0), SCARD_ATTR_VENDOR_NAME, vendor, sizeof(vendor) },
		{ "IFD_TYPE", LUN(0, 1), SCARD_ATTR_VENDOR_IFD_TYPE, ifd_type, sizeof(ifd_type) },
		{ "IFD_SERIAL_NO", LUN(0, 2), SCARD_ATTR_VENDOR_IFD_SERIAL_NO, serial,
		  sizeof(serial) },
		{ "ICC_PRESENCE present", LUN(0, 0), SCARD_ATTR_ICC_PRESENCE, "\x02", 1 },
		{ "ICC_PRESENCE absent", LUN(0, 2), SCARD_ATTR_ICC_PRESENCE, "\x00", 1 },
		{ "ICC_INTERFACE_STATUS unpowered", LUN(0, 0), SCARD_ATTR_ICC_INTERFACE_STATUS,
		  "\x00", 1 },
		{ "ATR_STRING unpowered is empty", LUN(0, 0), SCARD_ATTR_ATR_STRING, "", 0 },
		{ "TAG_IFD_ATR unpowered is empty", LUN(0, 0), TAG_IFD_ATR, "", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint8_t buf[256];
		DWORD len = sizeof(buf);
		RESPONSECODE rc = get_cap(rows[i].lun, rows[i].tag, buf, &len);

		if (rc != IFD_SUCCESS || len != rows[i].len ||
		    memcmp(buf, rows[i].value, rows[i].len) != 0)
			fail_msg("%s: rc %ld, %lu bytes; expected %lu bytes", rows[i].name,
				 (long)rc,
				 (unsigned long)len, (unsigned long)rows[i].len);
	}
}

static void test_capability_dwords(void **state)
{
	DWORD value = 0;
	DWORD len = sizeof(value);

	(void)state;
	assert_int_equal(get_cap(LUN(0, 0), SCARD_ATTR_VENDOR_IFD_VERSION, (uint8_t *)&value, &len),
			 IFD_SUCCESS);
	assert_int_equal(len, sizeof(DWORD));
	assert_int_equal(value, expected_version());

	len = sizeof(value);
	assert_int_equal(get_cap(LUN(0, 0), SCARD_ATTR_MAXINPUT, (uint8_t *)&value, &len),
			 IFD_SUCCESS);
	assert_int_equal(len, sizeof(DWORD));
	assert_int_equal(value, VCCID_MAX_COMMAND);
	assert_int_equal(value, 4 + 3 + 65535 + 2);

	/* IFDHCreateChannelByName uses the reader index as channel number. */
	len = sizeof(value);
	assert_int_equal(get_cap(LUN(0, 1), SCARD_ATTR_CHANNEL_ID, (uint8_t *)&value, &len),
			 IFD_SUCCESS);
	assert_int_equal(len, sizeof(DWORD));
	assert_int_equal(value, 0x00F0u << 16 | 0);
}

static void test_capability_errors(void **state)
{
	uint8_t buf[64];
	DWORD len;

	(void)state;
	/* Too small: the value is not written. */
	memset(buf, 0xEE, sizeof(buf));
	len = 5;   /* "vccid" needs 6 with its NUL */
	assert_int_equal(get_cap(LUN(0, 0), SCARD_ATTR_VENDOR_NAME, buf, &len),
			 IFD_ERROR_INSUFFICIENT_BUFFER);
	assert_int_equal(buf[0], 0xEE);
	len = 0;
	assert_int_equal(get_cap(LUN(0, 0), TAG_IFD_THREAD_SAFE, buf, &len),
			 IFD_ERROR_INSUFFICIENT_BUFFER);
	len = sizeof(DWORD) - 1;
	assert_int_equal(get_cap(LUN(0, 0), SCARD_ATTR_MAXINPUT, buf, &len),
			 IFD_ERROR_INSUFFICIENT_BUFFER);
	len = sizeof(void *) - 1;
	assert_int_equal(get_cap(LUN(0, 0), TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, buf, &len),
			 IFD_ERROR_INSUFFICIENT_BUFFER);

	len = sizeof(buf);
	assert_int_equal(get_cap(LUN(0, 0), 0x7FFF1234, buf, &len), IFD_ERROR_TAG);
	assert_int_equal(len, 0);
	len = sizeof(buf);
	assert_int_equal(get_cap(LUN(0, 0), TAG_IFD_POLLING_THREAD, buf, &len), IFD_ERROR_TAG);
	assert_int_equal(len, 0);
	len = sizeof(buf);
	assert_int_equal(get_cap(LUN(5, 0), TAG_IFD_THREAD_SAFE, buf, &len),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(len, 0);
	assert_int_equal(IFDHGetCapabilities(LUN(0, 0), TAG_IFD_THREAD_SAFE, NULL, buf),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(IFDHSetCapabilities(LUN(0, 0), TAG_IFD_SLOTNUM, 1, buf),
			 IFD_NOT_SUPPORTED);
}

/* ------------------------------------------------------------------ polling */

typedef RESPONSECODE (*polling_fn)(DWORD, int);
typedef RESPONSECODE (*stop_fn)(DWORD);

static polling_fn get_polling(void)
{
	polling_fn fn = NULL;
	DWORD len = sizeof(fn);

	assert_int_equal(get_cap(LUN(0, 0), TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, (uint8_t *)&fn,
				 &len), IFD_SUCCESS);
	assert_int_equal(len, sizeof(fn));
	assert_non_null(fn);
	return fn;
}

static stop_fn get_stop(void)
{
	stop_fn fn = NULL;
	DWORD len = sizeof(fn);

	assert_int_equal(get_cap(LUN(0, 0), TAG_IFD_STOP_POLLING_THREAD, (uint8_t *)&fn, &len),
			 IFD_SUCCESS);
	assert_int_equal(len, sizeof(fn));
	assert_non_null(fn);
	return fn;
}

struct poll_job {
	polling_fn poll;
	DWORD lun;
	int timeout;
	RESPONSECODE rc;
	long elapsed_ms;
	struct test_thread_mark mark;
};

static void *poll_thread(void *arg)
{
	struct poll_job *job = arg;
	long start = now_ms();

	test_thread_start(&job->mark);
	job->rc = job->poll(job->lun, job->timeout);
	job->elapsed_ms = now_ms() - start;
	return NULL;
}

static void start_poll(struct poll_job *job, pthread_t *tid)
{
	job->mark = (struct test_thread_mark)TEST_THREAD_MARK_INIT;
	assert_int_equal(pthread_create(tid, NULL, poll_thread, job), 0);
	/* Returns once the poll sleeps in its wait, so a change wakes it. */
	assert_true(test_thread_asleep(&job->mark, 5000));
}

static void test_polling_timeout(void **state)
{
	polling_fn poll = get_polling();
	long start;

	(void)state;
	/* pcscd asks presence first, then polls: nothing changes, so the poll times out. */
	assert_int_equal(IFDHICCPresence(LUN(0, 2)), IFD_ICC_NOT_PRESENT);
	start = now_ms();
	assert_int_equal(poll(LUN(0, 2), 150), IFD_SUCCESS);
	assert_true(now_ms() - start >= 140);
	assert_int_equal(poll(LUN(7, 0), 10), IFD_NO_SUCH_DEVICE);
}

static void test_polling_returns_on_insert(void **state)
{
	struct poll_job job = { .poll = get_polling(), .lun = LUN(0, 1), .timeout = 8000 };
	DWORD returned = 99;
	pthread_t tid;

	(void)state;
	assert_int_equal(IFDHICCPresence(LUN(0, 1)), IFD_ICC_NOT_PRESENT);
	start_poll(&job, &tid);
	/* Empty name: bob, the slot's configured card. */
	assert_int_equal(control(LUN(0, 1), VCCID_CTL_INSERT, "", 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(returned, 0);
	pthread_join(tid, NULL);
	assert_int_equal(job.rc, IFD_SUCCESS);
	assert_true(job.elapsed_ms < 4000);
	assert_int_equal(IFDHICCPresence(LUN(0, 1)), IFD_ICC_PRESENT);
}

/* A change made before the poll starts (after the last presence call) is not missed. */
static void test_polling_sees_earlier_change(void **state)
{
	polling_fn poll = get_polling();
	DWORD returned;
	long start;

	(void)state;
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_REMOVE, NULL, 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	start = now_ms();
	assert_int_equal(poll(LUN(0, 0), 5000), IFD_SUCCESS);
	assert_true(now_ms() - start < 1000);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_NOT_PRESENT);
}

static void test_stop_polling(void **state)
{
	struct poll_job job = { .poll = get_polling(), .lun = LUN(0, 2), .timeout = 8000 };
	stop_fn stop = get_stop();
	pthread_t tid;
	long start;

	(void)state;
	assert_int_equal(IFDHICCPresence(LUN(0, 2)), IFD_ICC_NOT_PRESENT);
	start_poll(&job, &tid);
	assert_int_equal(stop(LUN(0, 2)), IFD_SUCCESS);
	pthread_join(tid, NULL);
	assert_int_equal(job.rc, IFD_SUCCESS);
	assert_true(job.elapsed_ms < 4000);
	/* One-shot: pcscd stops the polling thread whenever its last client
	 * disconnects and starts it again, so the next poll waits as usual. */
	start = now_ms();
	assert_int_equal(job.poll(LUN(0, 2), 100), IFD_SUCCESS);
	assert_true(now_ms() - start >= 90);
	/* A stop that comes before the poll starts is not lost. */
	assert_int_equal(stop(LUN(0, 2)), IFD_SUCCESS);
	start = now_ms();
	assert_int_equal(job.poll(LUN(0, 2), 8000), IFD_SUCCESS);
	assert_true(now_ms() - start < 1000);
	/* Other slots keep polling normally. */
	start = now_ms();
	assert_int_equal(job.poll(LUN(0, 3), 100), IFD_SUCCESS);
	assert_true(now_ms() - start >= 90);
	assert_int_equal(stop(LUN(9, 0)), IFD_SUCCESS);
}

/* ------------------------------------------------------------------ power */

static void test_power(void **state)
{
	UCHAR atr[MAX_ATR_SIZE];
	DWORD atr_len = sizeof(atr);
	uint8_t buf[64];
	DWORD len = sizeof(buf);

	(void)state;
	assert_int_equal(IFDHPowerICC(LUN(0, 0), IFD_POWER_UP, atr, &atr_len), IFD_SUCCESS);
	assert_int_equal(atr_len, sizeof(cac_atr));
	assert_memory_equal(atr, cac_atr, sizeof(cac_atr));
	assert_int_equal(get_cap(LUN(0, 0), TAG_IFD_ATR, buf, &len), IFD_SUCCESS);
	assert_int_equal(len, sizeof(cac_atr));
	assert_memory_equal(buf, cac_atr, sizeof(cac_atr));
	len = sizeof(buf);
	assert_int_equal(get_cap(LUN(0, 0), SCARD_ATTR_ATR_STRING, buf, &len), IFD_SUCCESS);
	assert_int_equal(len, sizeof(cac_atr));
	len = sizeof(buf);
	assert_int_equal(get_cap(LUN(0, 0), SCARD_ATTR_ICC_INTERFACE_STATUS, buf, &len),
			 IFD_SUCCESS);
	assert_int_equal(buf[0], 1);
	len = sizeof(cac_atr) - 1;
	assert_int_equal(get_cap(LUN(0, 0), TAG_IFD_ATR, buf, &len),
			 IFD_ERROR_INSUFFICIENT_BUFFER);

	atr_len = sizeof(atr);
	memset(atr, 0, sizeof(atr));
	assert_int_equal(IFDHPowerICC(LUN(0, 0), IFD_RESET, atr, &atr_len), IFD_SUCCESS);
	assert_int_equal(atr_len, sizeof(cac_atr));
	assert_memory_equal(atr, cac_atr, sizeof(cac_atr));

	atr_len = sizeof(atr);
	assert_int_equal(IFDHPowerICC(LUN(0, 0), IFD_POWER_DOWN, atr, &atr_len), IFD_SUCCESS);
	assert_int_equal(atr_len, 0);
	len = sizeof(buf);
	assert_int_equal(get_cap(LUN(0, 0), TAG_IFD_ATR, buf, &len), IFD_SUCCESS);
	assert_int_equal(len, 0);
	/* pcscd may power down without a buffer. */
	assert_int_equal(IFDHPowerICC(LUN(0, 0), IFD_POWER_DOWN, NULL, NULL), IFD_SUCCESS);
}

static void test_power_errors(void **state)
{
	UCHAR atr[MAX_ATR_SIZE];
	DWORD atr_len;

	(void)state;
	atr_len = sizeof(atr);
	assert_int_equal(IFDHPowerICC(LUN(0, 2), IFD_POWER_UP, atr, &atr_len), IFD_ICC_NOT_PRESENT);
	assert_int_equal(atr_len, 0);
	atr_len = sizeof(atr);
	assert_int_equal(IFDHPowerICC(LUN(0, 2), IFD_RESET, atr, &atr_len), IFD_ICC_NOT_PRESENT);
	assert_int_equal(atr_len, 0);
	atr_len = sizeof(atr);
	assert_int_equal(IFDHPowerICC(LUN(0, 2), IFD_POWER_DOWN, atr, &atr_len),
			 IFD_ICC_NOT_PRESENT);
	assert_int_equal(atr_len, 0);
	atr_len = sizeof(atr);
	assert_int_equal(IFDHPowerICC(LUN(0, 0), 12345, atr, &atr_len), IFD_NOT_SUPPORTED);
	assert_int_equal(atr_len, 0);
	atr_len = 4;   /* too small for the ATR */
	assert_int_equal(IFDHPowerICC(LUN(0, 0), IFD_POWER_UP, atr, &atr_len),
			 IFD_ERROR_INSUFFICIENT_BUFFER);
	assert_int_equal(atr_len, 0);
	assert_int_equal(IFDHPowerICC(LUN(0, 0), IFD_POWER_UP, NULL, &atr_len),
			 IFD_COMMUNICATION_ERROR);
	atr_len = sizeof(atr);
	assert_int_equal(IFDHPowerICC(LUN(6, 0), IFD_POWER_UP, atr, &atr_len),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(atr_len, 0);
}

static void test_protocol(void **state)
{
	(void)state;
	/* No ATR yet: nothing is offered. */
	assert_int_equal(IFDHSetProtocolParameters(LUN(0, 0), SCARD_PROTOCOL_T0, 0, 0, 0, 0),
			 IFD_PROTOCOL_NOT_SUPPORTED);
	power_up(LUN(0, 0));
	assert_int_equal(IFDHSetProtocolParameters(LUN(0, 0), SCARD_PROTOCOL_T0, 0, 0, 0, 0),
			 IFD_SUCCESS);
	assert_int_equal(IFDHSetProtocolParameters(LUN(0, 0), SCARD_PROTOCOL_T1, 0, 0, 0, 0),
			 IFD_PROTOCOL_NOT_SUPPORTED);
	assert_int_equal(IFDHSetProtocolParameters(LUN(0, 0), SCARD_PROTOCOL_ANY, 0, 0, 0, 0),
			 IFD_SUCCESS);
	assert_int_equal(IFDHSetProtocolParameters(LUN(0, 2), SCARD_PROTOCOL_T0, 0, 0, 0, 0),
			 IFD_ICC_NOT_PRESENT);
	assert_int_equal(IFDHSetProtocolParameters(LUN(4, 0), SCARD_PROTOCOL_T0, 0, 0, 0, 0),
			 IFD_COMMUNICATION_ERROR);
}

/* ------------------------------------------------------------------ transmit */

static void test_transmit(void **state)
{
	SCARD_IO_HEADER send_pci = { SCARD_PROTOCOL_T0, 0 };
	SCARD_IO_HEADER recv_pci = { 0, 99 };
	uint8_t rsp[300];
	DWORD rsp_len = sizeof(rsp);
	size_t i;

	(void)state;
	power_up(LUN(0, 0));
	assert_int_equal(IFDHTransmitToICC(LUN(0, 0), send_pci, select_apdu, sizeof(select_apdu),
					   rsp, &rsp_len, &recv_pci), IFD_SUCCESS);
	assert_int_equal(rsp_len, 2);
	assert_int_equal(rsp[0], 0x90);
	assert_int_equal(rsp[1], 0x00);
	assert_int_equal(recv_pci.Protocol, SCARD_PROTOCOL_T0);
	assert_int_equal(recv_pci.Length, 0);

	rsp_len = sizeof(rsp);
	assert_int_equal(IFDHTransmitToICC(LUN(0, 0), send_pci, get_data_256, sizeof(get_data_256),
					   rsp, &rsp_len, NULL), IFD_SUCCESS);
	assert_int_equal(rsp_len, 258);
	for (i = 0; i < 256; i++)
		assert_int_equal(rsp[i], (uint8_t)i);
	assert_int_equal(rsp[256], 0x90);
	assert_int_equal(rsp[257], 0x00);
	assert_int_equal(fake_cacard_transmits(), 2);

	/* The response does not fit. */
	rsp_len = 100;
	assert_int_equal(IFDHTransmitToICC(LUN(0, 0), send_pci, get_data_256, sizeof(get_data_256),
					   rsp, &rsp_len, NULL), IFD_ERROR_INSUFFICIENT_BUFFER);
	assert_int_equal(rsp_len, 0);
}

static void test_transmit_malformed(void **state)
{
	SCARD_IO_HEADER pci = { SCARD_PROTOCOL_T0, 0 };
	uint8_t bad[] = { 0x00, 0xA4, 0x04, 0x00, 0x05, 0x3F };   /* Lc 5, one byte */
	uint8_t rsp[16];
	DWORD rsp_len = sizeof(rsp);

	(void)state;
	power_up(LUN(0, 0));
	assert_int_equal(IFDHTransmitToICC(LUN(0, 0), pci, bad, sizeof(bad), rsp, &rsp_len, NULL),
			 IFD_SUCCESS);
	assert_int_equal(rsp_len, 2);
	assert_int_equal(rsp[0], 0x67);
	assert_int_equal(rsp[1], 0x00);
	rsp_len = sizeof(rsp);
	assert_int_equal(IFDHTransmitToICC(LUN(0, 0), pci, bad, 2, rsp, &rsp_len, NULL),
			 IFD_SUCCESS);
	assert_int_equal(rsp[0], 0x67);
	assert_int_equal(fake_cacard_transmits(), 0);
}

static void test_transmit_errors(void **state)
{
	SCARD_IO_HEADER pci = { SCARD_PROTOCOL_T0, 0 };
	uint8_t rsp[16];
	DWORD rsp_len;

	(void)state;
	rsp_len = sizeof(rsp);
	assert_int_equal(IFDHTransmitToICC(LUN(0, 2), pci, select_apdu, sizeof(select_apdu), rsp,
					   &rsp_len, NULL), IFD_ICC_NOT_PRESENT);
	assert_int_equal(rsp_len, 0);
	/* alice is in slot 0 but not powered. */
	rsp_len = sizeof(rsp);
	assert_int_equal(IFDHTransmitToICC(LUN(0, 0), pci, select_apdu, sizeof(select_apdu), rsp,
					   &rsp_len, NULL), IFD_COMMUNICATION_ERROR);
	assert_int_equal(rsp_len, 0);
	rsp_len = 1;
	power_up(LUN(0, 0));
	assert_int_equal(IFDHTransmitToICC(LUN(0, 0), pci, select_apdu, sizeof(select_apdu), rsp,
					   &rsp_len, NULL), IFD_ERROR_INSUFFICIENT_BUFFER);
	assert_int_equal(rsp_len, 0);
	rsp_len = sizeof(rsp);
	assert_int_equal(IFDHTransmitToICC(LUN(8, 0), pci, select_apdu, sizeof(select_apdu), rsp,
					   &rsp_len, NULL), IFD_COMMUNICATION_ERROR);
	assert_int_equal(rsp_len, 0);
	rsp_len = sizeof(rsp);
	assert_int_equal(IFDHTransmitToICC(LUN(0, 0), pci, NULL, 4, rsp, &rsp_len, NULL),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(rsp_len, 0);
	assert_int_equal(fake_cacard_transmits(), 0);
	assert_logged("transmit of 7 bytes failed");
}

/* ------------------------------------------------------------------ control */

static void test_feature_request(void **state)
{
	static const uint8_t expected[] = { FEATURE_GET_TLV_PROPERTIES, 4, 0x42, 0x33, 0x00, 0x12 };
	const DWORD codes[] = { CM_IOCTL_GET_FEATURE_REQUEST, WINDOWS_GET_FEATURE_REQUEST };
	size_t i;

	(void)state;
	assert_int_equal(CM_IOCTL_GET_FEATURE_REQUEST, SCARD_CTL_CODE(3400));
	for (i = 0; i < 2; i++) {
		uint8_t out[64];
		DWORD returned = 0;

		memset(out, 0, sizeof(out));
		assert_int_equal(control(LUN(0, 0), codes[i], NULL, 0, out, sizeof(out), &returned),
				 IFD_SUCCESS);
		assert_int_equal(returned, sizeof(expected));
		assert_memory_equal(out, expected, sizeof(expected));
		/* Also on an empty slot. */
		assert_int_equal(control(LUN(0, 3), codes[i], NULL, 0, out, sizeof(out), &returned),
				 IFD_SUCCESS);
		assert_int_equal(returned, sizeof(expected));
		/* Too small. */
		returned = 77;
		assert_int_equal(control(LUN(0, 0), codes[i], NULL, 0, out, 5, &returned),
				 IFD_ERROR_INSUFFICIENT_BUFFER);
		assert_int_equal(returned, 0);
	}
}

static void test_tlv_properties(void **state)
{
	uint8_t out[256];
	DWORD returned = 0;
	size_t pos;
	bool seen_max = false, seen_firmware = false;

	(void)state;
	assert_int_equal(control(LUN(0, 0), IOCTL_GET_TLV_PROPERTIES, NULL, 0, out, sizeof(out),
				 &returned), IFD_SUCCESS);
	assert_true(returned > 0);
	/* Walk the TLVs: each must fit exactly in what was returned. */
	for (pos = 0; pos < returned; pos += 2 + out[pos + 1]) {
		assert_true(pos + 2 <= returned);
		assert_true(pos + 2 + out[pos + 1] <= returned);
		if (out[pos] == PCSCv2_PART10_PROPERTY_dwMaxAPDUDataSize) {
			static const uint8_t le_65536[] = { 0x00, 0x00, 0x01, 0x00 };

			assert_int_equal(out[pos], 10);
			assert_int_equal(out[pos + 1], 4);
			assert_memory_equal(out + pos + 2, le_65536, 4);
			seen_max = true;
		}
		if (out[pos] == PCSCv2_PART10_PROPERTY_sFirmwareID) {
			assert_true(out[pos + 1] > 0);
			assert_memory_equal(out + pos + 2, "vccid ", 6);
			seen_firmware = true;
		}
	}
	assert_int_equal(pos, returned);
	assert_true(seen_max);
	assert_true(seen_firmware);
	returned = 77;
	assert_int_equal(control(LUN(0, 0), IOCTL_GET_TLV_PROPERTIES, NULL, 0, out, 3, &returned),
			 IFD_ERROR_INSUFFICIENT_BUFFER);
	assert_int_equal(returned, 0);
}

static void test_status_control(void **state)
{
	char line[512];

	(void)state;
	status_line(LUN(0, 0), line, sizeof(line));
	assert_string_equal(line, "reader=default slot=0 state=present powered=0 card=alice "
				  "home=alice backend=fake atr=- remote=- peer=-");
	power_up(LUN(0, 0));
	status_line(LUN(0, 0), line, sizeof(line));
	assert_string_equal(line, "reader=default slot=0 state=present powered=1 card=alice "
				  "home=alice backend=fake atr=" CAC_ATR_HEX " "
				  "remote=- peer=-");
}

static void test_status_empty_and_long_names(void **state)
{
	struct fixture *f = *state;
	char line[512];

	status_line(LUN(0, 2), line, sizeof(line));
	assert_string_equal(line, "reader=default slot=2 state=empty powered=0 card=- home=- "
				  "backend=- atr=- remote=- peer=-");
	status_line(LUN(0, 1), line, sizeof(line));
	assert_string_equal(line, "reader=default slot=1 state=empty powered=0 card=- home=bob "
				  "backend=- atr=- remote=- peer=-");
	/* A long line: a 63-character card name twice, a reader name and an ATR. */
	snprintf(f->device, sizeof(f->device), "%s:second", f->path);
	open_reader(f, 1, f->device);
	power_up(LUN(1, 1));
	status_line(LUN(1, 1), line, sizeof(line));
	assert_string_equal(line, "reader=second slot=1 state=present powered=1 card=" LONG_NAME
				  " home=" LONG_NAME " backend=fake "
				  "atr=" CAC_ATR_HEX " "
				  "remote=- peer=-");
}

static void test_remove_insert(void **state)
{
	DWORD returned = 77;
	char line[512];

	(void)state;
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_REMOVE, NULL, 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(returned, 0);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_NOT_PRESENT);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_NOT_PRESENT);
	status_line(LUN(0, 0), line, sizeof(line));
	assert_string_equal(line, "reader=default slot=0 state=empty powered=0 card=- home=alice "
				  "backend=- atr=- remote=- peer=-");
	assert_int_equal(fake_cacard_card_releases(), 1);
	/* Removing from an empty slot. */
	returned = 77;
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_REMOVE, NULL, 0, NULL, 0, &returned),
			 IFD_ICC_NOT_PRESENT);
	assert_int_equal(returned, 0);

	/* Empty name: the slot's configured card comes back. */
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_INSERT, "", 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
	status_line(LUN(0, 0), line, sizeof(line));
	assert_string_equal(line, "reader=default slot=0 state=present powered=0 card=alice "
				  "home=alice backend=fake atr=- remote=- peer=-");
	/* The slot is occupied; alice is in a slot already. */
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_INSERT, "bob", 3, NULL, 0, &returned),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(control(LUN(0, 3), VCCID_CTL_INSERT, "alice", 5, NULL, 0, &returned),
			 IFD_COMMUNICATION_ERROR);
	/* A named card into another slot; the name needs no NUL. */
	assert_int_equal(control(LUN(0, 3), VCCID_CTL_INSERT, "bobXX", 3, NULL, 0, &returned),
			 IFD_SUCCESS);
	status_line(LUN(0, 3), line, sizeof(line));
	assert_string_equal(line, "reader=default slot=3 state=present powered=0 card=bob home=- "
				  "backend=fake atr=- remote=- peer=-");
	/* Unknown card, no configured card, a name that is too long. */
	assert_int_equal(control(LUN(0, 2), VCCID_CTL_INSERT, "nobody", 6, NULL, 0, &returned),
			 IFD_NO_SUCH_DEVICE);
	assert_int_equal(control(LUN(0, 2), VCCID_CTL_INSERT, NULL, 0, NULL, 0, &returned),
			 IFD_NO_SUCH_DEVICE);
	assert_int_equal(control(LUN(0, 2), VCCID_CTL_INSERT, LONG_NAME "x",
				 (DWORD)strlen(LONG_NAME "x"), NULL, 0, &returned),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(returned, 0);
	assert_int_equal(IFDHICCPresence(LUN(0, 2)), IFD_ICC_NOT_PRESENT);
	assert_logged("insert of card nobody into reader default slot 2");
}

/* A remove and insert between two presence calls: absent once, then present (the latch). */
static void test_presence_latch(void **state)
{
	DWORD returned;

	(void)state;
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_REMOVE, NULL, 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_INSERT, NULL, 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_NOT_PRESENT);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
	/* Two cycles between looks are still one absent report. */
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_REMOVE, NULL, 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_INSERT, NULL, 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_REMOVE, NULL, 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_INSERT, NULL, 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_NOT_PRESENT);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
	/* Slots latch independently. */
	assert_int_equal(IFDHICCPresence(LUN(0, 1)), IFD_ICC_NOT_PRESENT);
}

static void test_unknown_control(void **state)
{
	uint8_t out[16];
	DWORD returned = 77;

	(void)state;
	assert_int_equal(control(LUN(0, 0), SCARD_CTL_CODE(3999), NULL, 0, out, sizeof(out),
				 &returned), IFD_ERROR_NOT_SUPPORTED);
	assert_int_equal(returned, 0);
	returned = 77;
	assert_int_equal(control(LUN(0, 0), 0, NULL, 0, out, sizeof(out), &returned),
			 IFD_ERROR_NOT_SUPPORTED);
	assert_int_equal(returned, 0);
	/* Bad arguments. */
	returned = 77;
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_STATUS, NULL, 0, NULL, 16, &returned),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(returned, 0);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_INSERT, NULL, 4, NULL, 0, &returned),
			 IFD_COMMUNICATION_ERROR);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_STATUS, NULL, 0, out, sizeof(out), NULL),
			 IFD_COMMUNICATION_ERROR);
	returned = 77;
	assert_int_equal(control(LUN(9, 0), VCCID_CTL_STATUS, NULL, 0, out, sizeof(out),
				 &returned), IFD_COMMUNICATION_ERROR);
	assert_int_equal(returned, 0);
	/* STATUS into a buffer that is too small. */
	returned = 77;
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_STATUS, NULL, 0, out, sizeof(out),
				 &returned), IFD_ERROR_INSUFFICIENT_BUFFER);
	assert_int_equal(returned, 0);
}

/* ------------------------------------------------------------------ readers */

static void test_two_readers(void **state)
{
	struct fixture *f = *state;
	char second[128];
	uint8_t buf[64];
	DWORD len = sizeof(buf);
	DWORD value = 0;
	DWORD returned;
	char line[512];

	snprintf(second, sizeof(second), "%s:second", f->path);
	open_reader(f, 1, second);
	assert_int_equal(f->open[1], 2);
	assert_int_equal(fake_cacard_acquires(), 2);
	assert_int_equal(get_cap(LUN(1, 0), SCARD_ATTR_VENDOR_IFD_SERIAL_NO, buf, &len),
			 IFD_SUCCESS);
	assert_string_equal((char *)buf, "vccid-second");
	len = sizeof(value);
	assert_int_equal(get_cap(LUN(1, 1), SCARD_ATTR_CHANNEL_ID, (uint8_t *)&value, &len),
			 IFD_SUCCESS);
	assert_int_equal(value, 0x00F0u << 16 | 1);
	/* Each reader has its own cards. */
	assert_int_equal(IFDHICCPresence(LUN(1, 0)), IFD_ICC_PRESENT);
	assert_int_equal(IFDHICCPresence(LUN(1, 1)), IFD_ICC_PRESENT);
	assert_int_equal(IFDHICCPresence(LUN(0, 0)), IFD_ICC_PRESENT);
	assert_int_equal(IFDHICCPresence(LUN(0, 1)), IFD_ICC_NOT_PRESENT);
	status_line(LUN(1, 0), line, sizeof(line));
	assert_string_equal(line, "reader=second slot=0 state=present powered=0 card=carol "
				  "home=carol backend=fake atr=- remote=- peer=-");
	/* A slot number the second reader does not have. */
	assert_int_equal(IFDHICCPresence(LUN(1, 2)), IFD_NO_SUCH_DEVICE);
	/* A card cannot be in two readers at once. */
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_REMOVE, NULL, 0, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_INSERT, "carol", 5, NULL, 0, &returned),
			 IFD_COMMUNICATION_ERROR);
	/* Closing one reader leaves the other. */
	close_reader(f, 1);
	assert_int_equal(IFDHICCPresence(LUN(1, 0)), IFD_NO_SUCH_DEVICE);
	assert_int_equal(control(LUN(0, 0), VCCID_CTL_INSERT, "carol", 5, NULL, 0, &returned),
			 IFD_SUCCESS);
	assert_int_equal(fake_cacard_releases(), 1);
}

/* A device name whose suffix contains a '/' is all path. */
static void test_device_name_forms(void **state)
{
	struct fixture *f = *state;
	char device[160];
	uint8_t buf[64];
	DWORD len = sizeof(buf);

	/* "PATH:default" names the default reader explicitly. */
	snprintf(device, sizeof(device), "%s:default", f->path);
	open_reader(f, 1, device);
	assert_int_equal(get_cap(LUN(1, 0), SCARD_ATTR_VENDOR_IFD_SERIAL_NO, buf, &len),
			 IFD_SUCCESS);
	assert_string_equal((char *)buf, "vccid-default");
	/* Both readers load alice: only one of them gets her. */
	assert_int_equal(fake_cacard_inserts(), 1);
	assert_int_equal(IFDHICCPresence(LUN(1, 0)), IFD_ICC_NOT_PRESENT);
	assert_logged("[card:alice]: not inserted");
	close_reader(f, 1);

	/* A reader the file does not define: empty slots, logged. */
	log_clear();
	snprintf(device, sizeof(device), "%s:nosuchreader", f->path);
	open_reader(f, 1, device);
	assert_int_equal(f->open[1], 4);
	assert_int_equal(IFDHICCPresence(LUN(1, 0)), IFD_ICC_NOT_PRESENT);
	assert_logged("no [reader:nosuchreader] group");
	close_reader(f, 1);
}

/* vsmartcard's DEVICENAME forms, as vpcd reads them, beside vccid's own CONFIG[:READER]. */
static void test_vpcd_device_names(void **state)
{
	static const struct {
		const char *device;
		int rv;
		bool connect;
		const char *host;
		unsigned port;
	} rows[] = {
		{ "/dev/null:0x8C7B", VCCID_OK, false, "", 35963 },
		{ "/dev/null:35965", VCCID_OK, false, "", 35965 },
		{ "127.0.0.1:0x8C7B", VCCID_OK, true, "127.0.0.1", 35963 },
		{ "192.168.0.4:35963", VCCID_OK, true, "192.168.0.4", 35963 },
		{ "localhost:40000", VCCID_OK, true, "localhost", 40000 },
		{ "phone.lan:0X8c7b", VCCID_OK, true, "phone.lan", 35963 },
		{ "[::1]:35963", VCCID_OK, true, "[::1]", 35963 },
		{ "/etc/vccid/vccid.conf", VCCID_ENOENT, false, "", 0 },
		{ "/etc/vccid/vccid.conf:default", VCCID_ENOENT, false, "", 0 },
		{ "/etc/vccid/vccid.conf:2", VCCID_ENOENT, false, "", 0 },   /* a path has a '/' */
		{ "vccid.conf:default", VCCID_ENOENT, false, "", 0 },
		{ "/dev/null:0x", VCCID_EINVAL, false, "", 0 },
		{ "/dev/null:80", VCCID_EINVAL, false, "", 0 },
		{ "/dev/null:65535", VCCID_EINVAL, false, "", 0 },   /* slot 1 would pass 65535 */
		{ "/dev/null:-1", VCCID_EINVAL, false, "", 0 },
		{ "127.0.0.1:80", VCCID_EINVAL, false, "", 0 },
		{ "127.0.0.1:99999999999999999999", VCCID_EINVAL, false, "", 0 },
		{ "bad_host:35963", VCCID_EINVAL, false, "", 0 },
		{ "::1:35963", VCCID_EINVAL, false, "", 0 },         /* IPv6 needs brackets */
		{ ":35963", VCCID_ENOENT, false, "", 0 },
		{ "host:", VCCID_ENOENT, false, "", 0 },
	};
	struct vccid_vpcd_device dev;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int rv = vccid_slotset_vpcd_device(rows[i].device, &dev);

		if (rv != rows[i].rv)
			fail_msg("%s: %d, expected %d", rows[i].device, rv, rows[i].rv);
		if (rv != VCCID_OK)
			continue;
		assert_int_equal(dev.connect, rows[i].connect);
		assert_int_equal(dev.port, rows[i].port);
		assert_string_equal(dev.host, rows[i].host);
	}
}

static void test_missing_config(void **state)
{
	struct fixture *f = *state;
	UCHAR atr[MAX_ATR_SIZE];
	DWORD atr_len = sizeof(atr);
	uint8_t buf[8];
	DWORD len = sizeof(buf);
	unsigned i;
	int acquires = fake_cacard_acquires();

	log_clear();
	open_reader(f, 1, "/nonexistent/vccid/vccid.conf");
	assert_int_equal(f->open[1], 4);
	for (i = 0; i < 4; i++) {
		len = sizeof(buf);
		assert_int_equal(IFDHICCPresence(LUN(1, i)), IFD_ICC_NOT_PRESENT);
		assert_int_equal(get_cap(LUN(1, i), SCARD_ATTR_ICC_PRESENCE, buf, &len),
				 IFD_SUCCESS);
		assert_int_equal(buf[0], 0);
	}
	assert_int_equal(IFDHPowerICC(LUN(1, 0), IFD_POWER_UP, atr, &atr_len), IFD_ICC_NOT_PRESENT);
	/* No cards configured: the backend is not even acquired. */
	assert_int_equal(fake_cacard_acquires(), acquires);
	assert_logged("/nonexistent/vccid/vccid.conf: cannot be read");
	/* The problem is reported to pcscd at error priority. */
	assert_logged("2 vccid config.c:");
	close_reader(f, 1);
}

static void test_create_channel_by_number(void **state)
{
	struct fixture *f = *state;
	DWORD value = 0;
	DWORD len = sizeof(value);
	uint8_t n = 0;
	unsigned i;

	/* IFDHCreateChannel reads the default configuration file (VCCID_CONFIG
	 * overrides it, keeping the test away from an installed one), present or not. */
	setenv("VCCID_CONFIG", "/nonexistent/vccid-test.conf", 1);
	assert_int_equal(IFDHCreateChannel(LUN(1, 0), 7), IFD_SUCCESS);
	unsetenv("VCCID_CONFIG");
	assert_int_equal(get_cap(LUN(1, 0), SCARD_ATTR_CHANNEL_ID, (uint8_t *)&value, &len),
			 IFD_SUCCESS);
	assert_int_equal(value, 0x00F0u << 16 | 7);
	len = 1;
	assert_int_equal(get_cap(LUN(1, 0), TAG_IFD_SLOTS_NUMBER, &n, &len), IFD_SUCCESS);
	assert_int_equal(n, 4);   /* the implicit [reader:default] */
	for (i = 1; i < n; i++)
		assert_int_equal(IFDHCreateChannel(LUN(1, i), 7), IFD_SUCCESS);
	f->open[1] = n;
	close_reader(f, 1);
}

/* ------------------------------------------------------------------ threads */

enum { WORKERS = 4, WORKER_ITERATIONS = 400 };

struct worker {
	DWORD lun;
	unsigned seed;
	atomic_int *errors;
};

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	SCARD_IO_HEADER pci = { SCARD_PROTOCOL_T0, 0 };
	int i;

	for (i = 0; i < WORKER_ITERATIONS; i++) {
		UCHAR atr[MAX_ATR_SIZE];
		DWORD atr_len = sizeof(atr);
		uint8_t rsp[300];
		DWORD rsp_len = sizeof(rsp);
		DWORD returned;
		char line[512];
		RESPONSECODE rc;

		switch (rand_r(&w->seed) % 6) {
		case 0:
			rc = control(w->lun, VCCID_CTL_REMOVE, NULL, 0, NULL, 0, &returned);
			if (rc != IFD_SUCCESS && rc != IFD_ICC_NOT_PRESENT)
				atomic_fetch_add(w->errors, 1);
			break;
		case 1:
			rc = control(w->lun, VCCID_CTL_INSERT, "", 0, NULL, 0, &returned);
			/* Busy when the card is in; slots 2 and 3 have no configured card. */
			if (VCCID_LUN_SLOT(w->lun) >= 2 ? rc != IFD_NO_SUCH_DEVICE
			    : rc != IFD_SUCCESS && rc != IFD_COMMUNICATION_ERROR)
				atomic_fetch_add(w->errors, 1);
			break;
		case 2:
			rc = IFDHPowerICC(w->lun, IFD_POWER_UP, atr, &atr_len);
			if (rc == IFD_SUCCESS && atr_len != sizeof(cac_atr))
				atomic_fetch_add(w->errors, 1);
			break;
		case 3:
			rc = IFDHTransmitToICC(w->lun, pci, get_data_256, sizeof(get_data_256), rsp,
					       &rsp_len, NULL);
			if (rc == IFD_SUCCESS && rsp_len != 258)
				atomic_fetch_add(w->errors, 1);
			if (rc != IFD_SUCCESS && rsp_len != 0)
				atomic_fetch_add(w->errors, 1);
			break;
		case 4:
			rc = IFDHICCPresence(w->lun);
			if (rc != IFD_ICC_PRESENT && rc != IFD_ICC_NOT_PRESENT)
				atomic_fetch_add(w->errors, 1);
			break;
		default:
			rc = control(w->lun, VCCID_CTL_STATUS, NULL, 0, line, sizeof(line) - 1,
				     &returned);
			if (rc != IFD_SUCCESS || strncmp(line, "reader=default", 14) != 0)
				atomic_fetch_add(w->errors, 1);
			break;
		}
	}
	return NULL;
}

/* Each slot has its own thread, as pcscd runs them, plus pollers on every slot. */
static void test_threads(void **state)
{
	struct worker workers[WORKERS];
	pthread_t tids[WORKERS];
	struct poll_job polls[WORKERS];
	pthread_t poll_tids[WORKERS];
	stop_fn stop = get_stop();
	atomic_int errors = 0;
	int i;

	(void)state;
	for (i = 0; i < WORKERS; i++) {
		memset(&polls[i], 0, sizeof(polls[i]));
		polls[i].poll = get_polling();
		polls[i].lun = LUN(0, (DWORD)i);
		polls[i].timeout = 8000;
		assert_int_equal(pthread_create(&poll_tids[i], NULL, poll_thread, &polls[i]), 0);
	}
	for (i = 0; i < WORKERS; i++) {
		/* Slots 0 and 1 have a configured card; 2 and 3 stay mostly empty. */
		workers[i].lun = LUN(0, (DWORD)i);
		workers[i].seed = 42u + (unsigned)i;
		workers[i].errors = &errors;
		assert_int_equal(pthread_create(&tids[i], NULL, worker_thread, &workers[i]), 0);
	}
	for (i = 0; i < WORKERS; i++)
		pthread_join(tids[i], NULL);
	for (i = 0; i < WORKERS; i++) {
		assert_int_equal(stop(LUN(0, (DWORD)i)), IFD_SUCCESS);
		pthread_join(poll_tids[i], NULL);
		assert_int_equal(polls[i].rc, IFD_SUCCESS);
	}
	assert_int_equal(atomic_load(&errors), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_channels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capabilities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capability_dwords, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capability_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_polling_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_polling_returns_on_insert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_polling_sees_earlier_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_polling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transmit_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_feature_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tlv_properties, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_control, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_empty_and_long_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_insert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_presence_latch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_control, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_name_forms, setup, teardown),
		cmocka_unit_test(test_vpcd_device_names),
		cmocka_unit_test_setup_teardown(test_missing_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_channel_by_number, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};
	int failed;

	/* The driver's constructor routed the core's log to log_msg above. */
	unsetenv("VCCID_LOG_LEVEL");
	vccid_log_set_level(VCCID_LOG_APDU);
	failed = cmocka_run_group_tests_name("ifdh", tests, NULL, NULL);
	log_clear();
	return failed;
}
