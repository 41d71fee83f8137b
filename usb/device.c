/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The USB CCID reader without I/O: endpoint 0 requests, bulk message assembly, per-slot workers, answer queue. */
#include "device.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"

/* USB 2.0 §9.3, §9.4 */
#define USB_DIR_IN 0x80
#define USB_TYPE_MASK 0x60
#define USB_TYPE_STANDARD 0x00
#define USB_TYPE_CLASS 0x20
#define USB_RECIP_MASK 0x1F
#define USB_RECIP_DEVICE 0x00
#define USB_RECIP_INTERFACE 0x01
#define USB_RECIP_ENDPOINT 0x02
#define USB_REQ_GET_STATUS 0x00
#define USB_REQ_CLEAR_FEATURE 0x01
#define USB_REQ_SET_FEATURE 0x03
#define USB_REQ_GET_DESCRIPTOR 0x06
#define USB_REQ_GET_CONFIGURATION 0x08
#define USB_REQ_SET_CONFIGURATION 0x09
#define USB_REQ_GET_INTERFACE 0x0A
#define USB_REQ_SET_INTERFACE 0x0B
#define USB_DT_DEVICE 0x01
#define USB_DT_CONFIG 0x02
#define USB_DT_STRING 0x03
#define USB_DT_DEVICE_QUALIFIER 0x06
#define USB_DT_OTHER_SPEED_CONFIG 0x07
/* CCID 1.1 §5.3 class requests */
#define VCCID_CCID_REQ_ABORT 0x01
#define VCCID_CCID_REQ_GET_CLOCK_FREQUENCIES 0x02
#define VCCID_CCID_REQ_GET_DATA_RATES 0x03

#define BULK_PACKET_FULL 64
#define BULK_PACKET_HIGH 512

struct answer {
	struct answer *next;
	size_t len;
	size_t sent;
	uint8_t data[];
};

enum worker_state { WORKER_IDLE, WORKER_HAS_MESSAGE, WORKER_BUSY };

struct worker {
	vccid_usbdev *dev;
	unsigned index;
	pthread_t thread;
	enum worker_state state;   /* guarded by dev->lock */
	uint8_t *msg;
	size_t msg_len;
	uint8_t *out;
};

struct watcher {
	vccid_usbdev *dev;
	vccid_slot *slot;
	pthread_t thread;
};

struct vccid_usbdev {
	vccid_ccid *ccid;
	size_t n_slots;
	struct vccid_usb_ids ids;
	enum vccid_usb_speed speed;
	uint8_t class_desc[VCCID_CCID_CLASS_DESC_SIZE];
	size_t max_message;

	pthread_mutex_t lock;
	pthread_cond_t changed;     /* answers, worker states, notifications, cancels */
	bool stopping;
	unsigned configuration;
	struct answer *head, *tail;
	size_t n_answers;           /* in the queue; with busy workers under VCCID_USBDEV_MAX_ANSWERS */
	uint64_t reset_gen;         /* bumps at each reset: a held message belongs to the old host */
	uint64_t notify_gen;        /* bumps when a watcher sees a slot change */
	bool notify_all_pending;    /* report every slot at the next interrupt */
	uint64_t cancel_gen;

	/* Bulk-out assembly; used by the one thread that calls vccid_usbdev_bulk_out. */
	uint8_t *rx;
	size_t rx_len;
	size_t skip;                /* bytes of an oversized message still to drop */
	bool held;                  /* rx holds a whole message that found no room yet */
	uint8_t *inline_out;        /* answers built on the caller's thread */

	struct worker workers[VCCID_CCID_MAX_SLOTS];
	struct watcher watchers[VCCID_CCID_MAX_SLOTS];
};

/* Appends an answer; dev->lock held. */
static int queue_answer(vccid_usbdev *dev, const uint8_t *data, size_t len)
{
	struct answer *a = malloc(sizeof(*a) + len);

	if (a == NULL)
		return VCCID_ENOMEM;
	a->next = NULL;
	a->len = len;
	a->sent = 0;
	memcpy(a->data, data, len);
	if (dev->tail != NULL)
		dev->tail->next = a;
	else
		dev->head = a;
	dev->tail = a;
	dev->n_answers++;
	pthread_cond_broadcast(&dev->changed);
	return VCCID_OK;
}

static void free_answer(struct answer *a)
{
	explicit_bzero(a->data, a->len);   /* answers carry card data */
	free(a);
}

static void *worker_loop(void *arg)
{
	struct worker *w = arg;
	vccid_usbdev *dev = w->dev;

	pthread_mutex_lock(&dev->lock);
	for (;;) {
		size_t out_len = 0;
		int rv;

		while (w->state != WORKER_HAS_MESSAGE && !dev->stopping)
			pthread_cond_wait(&dev->changed, &dev->lock);
		if (dev->stopping)
			break;
		w->state = WORKER_BUSY;
		pthread_cond_broadcast(&dev->changed);
		pthread_mutex_unlock(&dev->lock);

		/* The card exchange happens here, outside the device lock. */
		rv = vccid_ccid_bulk_out(dev->ccid, w->msg, w->msg_len, w->out, dev->max_message,
					 &out_len);
		explicit_bzero(w->msg, w->msg_len);

		pthread_mutex_lock(&dev->lock);
		if (rv == VCCID_OK && queue_answer(dev, w->out, out_len) != VCCID_OK)
			VCCID_LOG(VCCID_LOG_ERROR, "out of memory: answer of slot %u dropped", w->index);
		explicit_bzero(w->out, out_len);
		w->state = WORKER_IDLE;
		pthread_cond_broadcast(&dev->changed);
	}
	pthread_mutex_unlock(&dev->lock);
	return NULL;
}

static void *watcher_loop(void *arg)
{
	struct watcher *w = arg;
	vccid_usbdev *dev = w->dev;

	for (;;) {
		struct vccid_slot_status status;
		int rv;

		vccid_slot_get_status(w->slot, &status);
		rv = vccid_slot_wait_change(w->slot, status.changes, -1);
		pthread_mutex_lock(&dev->lock);
		if (dev->stopping) {
			pthread_mutex_unlock(&dev->lock);
			break;
		}
		if (rv == VCCID_OK) {
			dev->notify_gen++;
			pthread_cond_broadcast(&dev->changed);
		}
		pthread_mutex_unlock(&dev->lock);
	}
	return NULL;
}

static size_t bulk_packet(enum vccid_usb_speed speed)
{
	return speed == VCCID_USB_HIGH_SPEED ? BULK_PACKET_HIGH : BULK_PACKET_FULL;
}

static void stop_threads(vccid_usbdev *dev, size_t workers, size_t watchers)
{
	size_t i;

	pthread_mutex_lock(&dev->lock);
	dev->stopping = true;
	pthread_cond_broadcast(&dev->changed);
	pthread_mutex_unlock(&dev->lock);
	for (i = 0; i < workers; i++)
		pthread_join(dev->workers[i].thread, NULL);
	for (i = 0; i < watchers; i++) {
		vccid_slot_cancel_waits(dev->watchers[i].slot);
		pthread_join(dev->watchers[i].thread, NULL);
	}
}

/* Stops the threads that were started and frees everything; works on a half-built device. */
static void destroy(vccid_usbdev *dev, size_t workers, size_t watchers)
{
	size_t i;

	stop_threads(dev, workers, watchers);
	while (dev->head != NULL) {
		struct answer *a = dev->head;

		dev->head = a->next;
		free_answer(a);
	}
	for (i = 0; i < dev->n_slots; i++) {
		free(dev->workers[i].msg);
		free(dev->workers[i].out);
	}
	if (dev->rx != NULL)
		explicit_bzero(dev->rx, dev->max_message);
	free(dev->rx);
	free(dev->inline_out);
	vccid_ccid_free(dev->ccid);
	pthread_cond_destroy(&dev->changed);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

void vccid_usbdev_free(vccid_usbdev *dev)
{
	if (dev != NULL)
		destroy(dev, dev->n_slots, dev->n_slots);
}

vccid_usbdev *vccid_usbdev_new(vccid_slot *const *slots, size_t n_slots,
			       const struct vccid_usbdev_params *params)
{
	struct vccid_ccid_params ccid_params = { 0 };
	vccid_usbdev *dev;
	pthread_condattr_t attr;
	size_t started_workers = 0, started_watchers = 0;
	size_t i;

	if (slots == NULL || n_slots == 0 || n_slots > VCCID_CCID_MAX_SLOTS)
		return NULL;
	dev = calloc(1, sizeof(*dev));
	if (dev == NULL)
		return NULL;
	if (params != NULL) {
		dev->ids = params->ids;
		dev->speed = params->speed;
		ccid_params.max_message_length = params->max_message_length;
	}
	dev->n_slots = n_slots;
	pthread_mutex_init(&dev->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&dev->changed, &attr);
	pthread_condattr_destroy(&attr);
	dev->notify_all_pending = true;
	dev->ccid = vccid_ccid_new(slots, n_slots, &ccid_params);
	if (dev->ccid == NULL)
		goto fail;
	dev->max_message = vccid_ccid_max_message_length(dev->ccid);
	vccid_ccid_class_descriptor(dev->ccid, dev->class_desc);
	dev->rx = malloc(dev->max_message);
	dev->inline_out = malloc(dev->max_message);
	if (dev->rx == NULL || dev->inline_out == NULL)
		goto fail;
	for (i = 0; i < n_slots; i++) {
		struct worker *w = &dev->workers[i];

		w->dev = dev;
		w->index = (unsigned)i;
		w->msg = malloc(dev->max_message);
		w->out = malloc(dev->max_message);
		if (w->msg == NULL || w->out == NULL)
			goto fail;
	}
	for (i = 0; i < n_slots; i++, started_workers++)
		if (pthread_create(&dev->workers[i].thread, NULL, worker_loop, &dev->workers[i]) != 0)
			goto fail;
	for (i = 0; i < n_slots; i++, started_watchers++) {
		dev->watchers[i].dev = dev;
		dev->watchers[i].slot = slots[i];
		if (pthread_create(&dev->watchers[i].thread, NULL, watcher_loop,
				   &dev->watchers[i]) != 0)
			goto fail;
	}
	return dev;
fail:
	destroy(dev, started_workers, started_watchers);
	return NULL;
}

vccid_ccid *vccid_usbdev_ccid(vccid_usbdev *dev)
{
	return dev->ccid;
}

const struct vccid_usb_ids *vccid_usbdev_ids(const vccid_usbdev *dev)
{
	return &dev->ids;
}

enum vccid_usb_speed vccid_usbdev_speed(const vccid_usbdev *dev)
{
	return dev->speed;
}

size_t vccid_usbdev_bulk_packet_size(const vccid_usbdev *dev)
{
	return bulk_packet(dev->speed);
}

unsigned vccid_usbdev_configuration(const vccid_usbdev *dev)
{
	/* Any transport thread may ask (a USB/IP device list while a host configures). */
	vccid_usbdev *d = (vccid_usbdev *)dev;
	unsigned configuration;

	pthread_mutex_lock(&d->lock);
	configuration = d->configuration;
	pthread_mutex_unlock(&d->lock);
	return configuration;
}

/* ---- endpoint 0 ---- */

static int reply(const void *data, size_t len, size_t w_length, uint8_t *in, size_t in_size,
		 size_t *in_len)
{
	size_t n = len < w_length ? len : w_length;

	if (n > in_size)
		return VCCID_ENOSPC;
	if (n > 0)
		memcpy(in, data, n);
	*in_len = n;
	return VCCID_OK;
}

static int get_descriptor(vccid_usbdev *dev, uint8_t type, uint8_t index, size_t w_length,
			  uint8_t *in, size_t in_size, size_t *in_len)
{
	uint8_t buf[VCCID_USB_CONFIG_DESC_SIZE > VCCID_USB_STRING_DESC_MAX
			    ? VCCID_USB_CONFIG_DESC_SIZE
			    : VCCID_USB_STRING_DESC_MAX];
	size_t len = 0;

	switch (type) {
	case USB_DT_DEVICE:
		vccid_usb_device_descriptor(&dev->ids, buf);
		len = VCCID_USB_DEVICE_DESC_SIZE;
		break;
	case USB_DT_CONFIG:
		vccid_usb_config_descriptor(dev->class_desc, dev->speed, buf);
		len = VCCID_USB_CONFIG_DESC_SIZE;
		break;
	case USB_DT_OTHER_SPEED_CONFIG:
		if (dev->speed != VCCID_USB_HIGH_SPEED)
			return VCCID_ENOTSUP;
		vccid_usb_config_descriptor(dev->class_desc, VCCID_USB_FULL_SPEED, buf);
		buf[1] = USB_DT_OTHER_SPEED_CONFIG;
		len = VCCID_USB_CONFIG_DESC_SIZE;
		break;
	case USB_DT_DEVICE_QUALIFIER:
		/* Only a high-speed capable device has one (USB 2.0 §9.6.2). */
		if (dev->speed != VCCID_USB_HIGH_SPEED)
			return VCCID_ENOTSUP;
		vccid_usb_device_qualifier(buf);
		len = VCCID_USB_QUALIFIER_DESC_SIZE;
		break;
	case USB_DT_STRING:
		if (vccid_usb_string_descriptor(&dev->ids, index, buf, sizeof(buf), &len) != 0)
			return VCCID_ENOTSUP;
		break;
	default:
		return VCCID_ENOTSUP;
	}
	return reply(buf, len, w_length, in, in_size, in_len);
}

static int standard_request(vccid_usbdev *dev, const uint8_t *setup, uint8_t *in,
			    size_t in_size, size_t *in_len)
{
	uint8_t request_type = setup[0];
	uint16_t value = (uint16_t)(setup[2] | setup[3] << 8);
	uint16_t length = (uint16_t)(setup[6] | setup[7] << 8);
	static const uint8_t zero2[2] = { 0, 0 };
	uint8_t one;

	bool dir_in = (request_type & USB_DIR_IN) != 0;

	switch (setup[1]) {
	case USB_REQ_GET_DESCRIPTOR:
		if (request_type != (USB_DIR_IN | USB_RECIP_DEVICE))
			return VCCID_ENOTSUP;
		return get_descriptor(dev, (uint8_t)(value >> 8), (uint8_t)value, length, in, in_size,
				      in_len);
	case USB_REQ_GET_CONFIGURATION:
		if (!dir_in)
			return VCCID_ENOTSUP;
		one = (uint8_t)vccid_usbdev_configuration(dev);
		return reply(&one, 1, length, in, in_size, in_len);
	case USB_REQ_SET_CONFIGURATION:
		if (dir_in || value > 1)
			return VCCID_EINVAL;
		pthread_mutex_lock(&dev->lock);
		dev->configuration = value;
		if (value == 1)
			dev->notify_all_pending = true;   /* the host learns every slot anew */
		pthread_cond_broadcast(&dev->changed);
		pthread_mutex_unlock(&dev->lock);
		return VCCID_OK;
	case USB_REQ_GET_STATUS:
		if (!dir_in)
			return VCCID_ENOTSUP;
		return reply(zero2, sizeof(zero2), length, in, in_size, in_len);
	case USB_REQ_CLEAR_FEATURE:
	case USB_REQ_SET_FEATURE:
		/* ENDPOINT_HALT and DEVICE_REMOTE_WAKEUP: nothing to keep. */
		return VCCID_OK;
	case USB_REQ_GET_INTERFACE:
		if (!dir_in)
			return VCCID_ENOTSUP;
		one = 0;
		return reply(&one, 1, length, in, in_size, in_len);
	case USB_REQ_SET_INTERFACE:
		return !dir_in && value == 0 ? VCCID_OK : VCCID_EINVAL;   /* one alternate setting */
	default:
		return VCCID_ENOTSUP;
	}
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static int class_request(vccid_usbdev *dev, const uint8_t *setup, uint8_t *in, size_t in_size,
			 size_t *in_len)
{
	uint16_t value = (uint16_t)(setup[2] | setup[3] << 8);
	uint16_t length = (uint16_t)(setup[6] | setup[7] << 8);
	uint8_t word[4];

	if ((setup[0] & USB_RECIP_MASK) != USB_RECIP_INTERFACE)
		return VCCID_ENOTSUP;
	switch (setup[1]) {
	case VCCID_CCID_REQ_ABORT:
		/* wValue: bSeq in the high byte, bSlot in the low byte (CCID §5.3.1). */
		if (setup[0] & USB_DIR_IN)
			return VCCID_ENOTSUP;
		return vccid_ccid_abort(dev->ccid, (uint8_t)value, (uint8_t)(value >> 8)) == VCCID_OK
			       ? VCCID_OK
			       : VCCID_EINVAL;
	case VCCID_CCID_REQ_GET_CLOCK_FREQUENCIES:
		put_le32(word, VCCID_CCID_CLOCK_KHZ);
		return reply(word, sizeof(word), length, in, in_size, in_len);
	case VCCID_CCID_REQ_GET_DATA_RATES:
		put_le32(word, VCCID_CCID_DATA_RATE);
		return reply(word, sizeof(word), length, in, in_size, in_len);
	default:
		return VCCID_ENOTSUP;
	}
}

int vccid_usbdev_control(vccid_usbdev *dev, const uint8_t setup[VCCID_USB_SETUP_SIZE],
			 const uint8_t *out, size_t out_len, uint8_t *in, size_t in_size,
			 size_t *in_len)
{
	int rv;

	(void)out;
	(void)out_len;   /* no request vccid takes carries OUT data */
	if (dev == NULL || setup == NULL || in_len == NULL)
		return VCCID_EINVAL;
	*in_len = 0;
	switch (setup[0] & USB_TYPE_MASK) {
	case USB_TYPE_STANDARD:
		rv = standard_request(dev, setup, in, in_size, in_len);
		break;
	case USB_TYPE_CLASS:
		rv = class_request(dev, setup, in, in_size, in_len);
		break;
	default:
		rv = VCCID_ENOTSUP;
		break;
	}
	if (rv != VCCID_OK)
		VCCID_LOG(VCCID_LOG_DEBUG, "control %02X %02X %02X%02X: stalled", setup[0], setup[1],
			  setup[3], setup[2]);
	return rv;
}

/* ---- bulk-out ---- */

/* Answers queued or being made: what the host has not read yet; dev->lock held. */
static size_t outstanding(const vccid_usbdev *dev)
{
	size_t n = dev->n_answers;
	size_t i;

	for (i = 0; i < dev->n_slots; i++)
		n += dev->workers[i].state != WORKER_IDLE;
	return n;
}

/* Waits on dev->changed until @p deadline; dev->lock held. False on timeout. */
static bool wait_until(vccid_usbdev *dev, const struct timespec *deadline)
{
	if (deadline == NULL) {
		pthread_cond_wait(&dev->changed, &dev->lock);
		return true;
	}
	return pthread_cond_timedwait(&dev->changed, &dev->lock, deadline) == 0;
}

/*
 * Hands a whole message to its slot's worker, or answers it here, once fewer
 * than VCCID_USBDEV_MAX_ANSWERS answers are unread: a reader whose answers are
 * not collected stops taking commands (its bulk-out endpoint NAKs), so a host
 * cannot make it queue answers without bound. Returns 0, VCCID_ETIMEDOUT
 * (nothing done), VCCID_ECANCELED (a cancel or a reset came: the message is the
 * old host's) or VCCID_ENOMEM.
 */
static int dispatch(vccid_usbdev *dev, const uint8_t *msg, size_t len,
		    const struct timespec *deadline)
{
	unsigned slot = msg[5];   /* bSlot */
	size_t out_len = 0;
	uint64_t cancel_gen, reset_gen;
	int rv = VCCID_OK;

	pthread_mutex_lock(&dev->lock);
	cancel_gen = dev->cancel_gen;
	reset_gen = dev->reset_gen;
	while (outstanding(dev) >= VCCID_USBDEV_MAX_ANSWERS && rv == VCCID_OK) {
		if (dev->cancel_gen != cancel_gen || dev->reset_gen != reset_gen || dev->stopping)
			rv = VCCID_ECANCELED;
		else if (!wait_until(dev, deadline) &&
			 outstanding(dev) >= VCCID_USBDEV_MAX_ANSWERS)
			rv = VCCID_ETIMEDOUT;
	}
	if (rv != VCCID_OK) {
		pthread_mutex_unlock(&dev->lock);
		return rv;
	}
	if (slot < dev->n_slots) {
		struct worker *w = &dev->workers[slot];

		/* A message not yet taken by the worker is in progress too. */
		while (w->state == WORKER_HAS_MESSAGE && !dev->stopping)
			pthread_cond_wait(&dev->changed, &dev->lock);
		if (w->state == WORKER_IDLE) {
			memcpy(w->msg, msg, len);
			w->msg_len = len;
			w->state = WORKER_HAS_MESSAGE;
			pthread_cond_broadcast(&dev->changed);
			pthread_mutex_unlock(&dev->lock);
			return VCCID_OK;
		}
	}
	pthread_mutex_unlock(&dev->lock);
	/* A bad bSlot, or a slot still busy: the engine answers at once (CMD_SLOT_BUSY
	 * for a busy slot, CCID §6.1). Only this thread adds such answers, so the room
	 * seen above is still there. */
	if (vccid_ccid_bulk_out(dev->ccid, msg, len, dev->inline_out, dev->max_message,
				&out_len) == VCCID_OK) {
		pthread_mutex_lock(&dev->lock);
		rv = queue_answer(dev, dev->inline_out, out_len);
		pthread_mutex_unlock(&dev->lock);
		explicit_bzero(dev->inline_out, out_len);
	}
	return rv;
}

/* Dispatches the message in rx (held until there is room). */
static int dispatch_rx(vccid_usbdev *dev, const struct timespec *deadline)
{
	int rv = dispatch(dev, dev->rx, dev->rx_len, deadline);

	if (rv == VCCID_ETIMEDOUT) {
		dev->held = true;
		return rv;
	}
	dev->held = false;
	explicit_bzero(dev->rx, dev->rx_len);
	dev->rx_len = 0;
	return rv;
}

int vccid_usbdev_bulk_out_timed(vccid_usbdev *dev, const uint8_t *data, size_t len,
				int timeout_ms, size_t *used)
{
	struct timespec deadline;
	const struct timespec *dl = NULL;
	size_t taken = 0;
	int rv = VCCID_OK;

	if (timeout_ms >= 0) {
		vccid_deadline_after(&deadline, (unsigned)timeout_ms);
		dl = &deadline;
	}
	if (dev->held)
		rv = dispatch_rx(dev, dl);
	while (len > taken && rv == VCCID_OK) {
		size_t need;
		size_t n;

		if (dev->skip > 0) {   /* the rest of an oversized message */
			n = len - taken < dev->skip ? len - taken : dev->skip;
			dev->skip -= n;
			taken += n;
			continue;
		}
		need = dev->rx_len < VCCID_CCID_HEADER_SIZE
			       ? VCCID_CCID_HEADER_SIZE
			       : vccid_ccid_message_size(dev->rx, dev->rx_len);
		if (need > dev->max_message) {
			/* Answer from the header alone (a dwLength error) and drop the rest. */
			VCCID_LOG(VCCID_LOG_ERROR, "bulk-out message of %zu bytes is over "
				  "dwMaxCCIDMessageLength %zu: skipped", need, dev->max_message);
			dev->skip = need - dev->rx_len;
			rv = dispatch_rx(dev, dl);
			continue;
		}
		n = need - dev->rx_len;
		if (n > len - taken)
			n = len - taken;
		memcpy(dev->rx + dev->rx_len, data + taken, n);
		dev->rx_len += n;
		taken += n;
		if (dev->rx_len >= VCCID_CCID_HEADER_SIZE &&
		    dev->rx_len == vccid_ccid_message_size(dev->rx, dev->rx_len))
			rv = dispatch_rx(dev, dl);
	}
	if (used != NULL)
		*used = taken;
	return rv;
}

int vccid_usbdev_bulk_out(vccid_usbdev *dev, const uint8_t *data, size_t len)
{
	int rv = vccid_usbdev_bulk_out_timed(dev, data, len, -1, NULL);

	return rv == VCCID_ENOMEM ? rv : VCCID_OK;
}

/* ---- bulk-in and interrupt-in ---- */

int vccid_usbdev_bulk_in(vccid_usbdev *dev, uint8_t *buf, size_t size, size_t *len, bool *zlp,
			 int timeout_ms)
{
	struct timespec deadline;
	uint64_t cancel_gen;
	int rv = VCCID_OK;

	*len = 0;
	*zlp = false;
	if (size == 0)
		return VCCID_EINVAL;
	if (timeout_ms >= 0)
		vccid_deadline_after(&deadline, (unsigned)timeout_ms);
	pthread_mutex_lock(&dev->lock);
	cancel_gen = dev->cancel_gen;
	while (dev->head == NULL && rv == VCCID_OK) {
		if (dev->cancel_gen != cancel_gen || dev->stopping)
			rv = VCCID_ECANCELED;
		else if (!wait_until(dev, timeout_ms >= 0 ? &deadline : NULL) && dev->head == NULL)
			rv = VCCID_ETIMEDOUT;
	}
	if (rv == VCCID_OK) {
		struct answer *a = dev->head;
		size_t n = a->len - a->sent;

		if (n > size)
			n = size;
		memcpy(buf, a->data + a->sent, n);
		a->sent += n;
		*len = n;
		if (a->sent == a->len) {
			/* A transfer that ends on a packet boundary short of what the host
			 * asked for needs a zero-length packet (USB 2.0 §5.8.3). */
			*zlp = n < size && n % bulk_packet(dev->speed) == 0;
			dev->head = a->next;
			if (dev->head == NULL)
				dev->tail = NULL;
			dev->n_answers--;
			free_answer(a);
			pthread_cond_broadcast(&dev->changed);   /* room for bulk-out */
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return rv;
}

int vccid_usbdev_interrupt_in(vccid_usbdev *dev, uint8_t *buf, size_t size, size_t *len,
			      int timeout_ms)
{
	struct timespec deadline;
	uint64_t cancel_gen;
	int rv = VCCID_ETIMEDOUT;

	*len = 0;
	if (timeout_ms >= 0)
		vccid_deadline_after(&deadline, (unsigned)timeout_ms);
	pthread_mutex_lock(&dev->lock);
	cancel_gen = dev->cancel_gen;
	for (;;) {
		if (dev->cancel_gen != cancel_gen || dev->stopping) {
			rv = VCCID_ECANCELED;
			break;
		}
		if (dev->notify_all_pending) {
			if (vccid_ccid_notify_all(dev->ccid, buf, size, len)) {
				dev->notify_all_pending = false;
				rv = VCCID_OK;
			} else {
				rv = VCCID_ENOSPC;
			}
			break;
		}
		if (vccid_ccid_notify_slot_change(dev->ccid, buf, size, len)) {
			rv = VCCID_OK;
			break;
		}
		if (!wait_until(dev, timeout_ms >= 0 ? &deadline : NULL)) {
			/* One last look: a change may have come with the timeout. */
			rv = vccid_ccid_notify_slot_change(dev->ccid, buf, size, len) ? VCCID_OK
										    : VCCID_ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return rv;
}

void vccid_usbdev_cancel(vccid_usbdev *dev)
{
	pthread_mutex_lock(&dev->lock);
	dev->cancel_gen++;
	pthread_cond_broadcast(&dev->changed);
	pthread_mutex_unlock(&dev->lock);
}

void vccid_usbdev_reset(vccid_usbdev *dev)
{
	size_t i;

	pthread_mutex_lock(&dev->lock);
	/* Let commands in progress finish: their answers belong to the old host. */
	for (i = 0; i < dev->n_slots; i++)
		while (dev->workers[i].state != WORKER_IDLE && !dev->stopping)
			pthread_cond_wait(&dev->changed, &dev->lock);
	while (dev->head != NULL) {
		struct answer *a = dev->head;

		dev->head = a->next;
		free_answer(a);
	}
	dev->tail = NULL;
	dev->n_answers = 0;
	dev->reset_gen++;
	vccid_ccid_reset(dev->ccid);
	explicit_bzero(dev->rx, dev->max_message);
	dev->rx_len = 0;
	dev->skip = 0;
	dev->held = false;
	dev->configuration = 0;
	dev->notify_all_pending = true;
	pthread_cond_broadcast(&dev->changed);
	pthread_mutex_unlock(&dev->lock);
}
