/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* FunctionFS transport: ep0 descriptors and events, and three endpoint threads over a vccid_usbdev. */
#include "ffs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/aio_abi.h>
#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "corelib/error.h"
#include "corelib/log.h"

/* How often blocked waits look at the stop flags. */
#define FFS_POLL_MS 250
/* How long a cancelled endpoint transfer may take to come back (5 s). */
#define FFS_CANCEL_POLLS 20
/* Endpoint files in descriptor order: ep1 bulk-out, ep2 bulk-in, ep3 interrupt-in. */
#define FFS_N_EPS 3
#define FFS_N_DESCS 5           /* interface, CCID class, three endpoints */

_Static_assert(sizeof(struct usb_functionfs_event) == 12, "FunctionFS event size");
_Static_assert(sizeof(struct usb_ctrlrequest) == VCCID_USB_SETUP_SIZE, "SETUP packet size");

enum ep_index { EP_BULK_OUT, EP_BULK_IN, EP_INTERRUPT_IN };
static const char *const ep_names[FFS_N_EPS] = { "ep1", "ep2", "ep3" };

struct ffs_session;

struct ep_thread {
	struct ffs_session *s;
	int fd;
	aio_context_t aio;
	pthread_t thread;
	bool started;
};

/* The endpoint threads of one enable..disable period. */
struct ffs_session {
	vccid_usbdev *dev;
	atomic_bool halt;           /* set by the ep0 thread: the endpoint threads leave */
	size_t bulk_packet;         /* wMaxPacketSize of bulk-in at the connected speed */
	size_t buf_size;            /* bulk buffers: dwMaxCCIDMessageLength + a packet */
	struct ep_thread ep[FFS_N_EPS];
};

struct ffs_ctx {
	vccid_usbdev *dev;
	const char *dir;
	int ep0;
	volatile sig_atomic_t *stop;
	bool enabled;
	struct ffs_session session;
	uint8_t *ctrl_buf;          /* ep0 data stage, up to 65535 bytes */
};

/* ---------------------------------------------------------------- kernel AIO */

/*
 * Endpoint transfers use kernel AIO (as tools/usb/ffs-aio-example does):
 * a submitted transfer can be cancelled (usb_ep_dequeue) when the function
 * stops, where a blocking read() or write() could only be interrupted by a
 * signal. glibc has no wrappers for these system calls.
 */
static long sys_io_setup(unsigned nr, aio_context_t *ctx)
{
	return syscall(SYS_io_setup, nr, ctx);
}

static long sys_io_destroy(aio_context_t ctx)
{
	return syscall(SYS_io_destroy, ctx);
}

static long sys_io_submit(aio_context_t ctx, long n, struct iocb **cbs)
{
	return syscall(SYS_io_submit, ctx, n, cbs);
}

static long sys_io_cancel(aio_context_t ctx, struct iocb *cb, struct io_event *ev)
{
	return syscall(SYS_io_cancel, ctx, cb, ev);
}

static long sys_io_getevents(aio_context_t ctx, long min_nr, long nr, struct io_event *ev,
			     struct timespec *timeout)
{
	return syscall(SYS_io_getevents, ctx, min_nr, nr, ev, timeout);
}

/*
 * One transfer on an endpoint file. Returns the bytes moved or a negative
 * errno: -ESHUTDOWN/-EAGAIN when the host disabled the endpoint, -ECANCELED
 * when the session was halted first. The buffer is the kernel's until this
 * returns (a cancelled read that never came back leaves the context to
 * io_destroy(), which waits for it).
 */
static long long ep_transfer(struct ep_thread *ep, bool in, void *buf, size_t len)
{
	struct iocb cb;
	struct iocb *cbs[1] = { &cb };
	struct io_event ev;
	int polls = 0;
	bool cancelled = false;

	memset(&cb, 0, sizeof(cb));
	cb.aio_fildes = (uint32_t)ep->fd;
	cb.aio_lio_opcode = in ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
	cb.aio_buf = (uint64_t)(uintptr_t)buf;
	cb.aio_nbytes = len;
	if (sys_io_submit(ep->aio, 1, cbs) != 1)
		return -errno;
	for (;;) {
		struct timespec ts = { 0, FFS_POLL_MS * 1000000L };
		long n = sys_io_getevents(ep->aio, 1, 1, &ev, &ts);

		if (n == 1)
			return cancelled && ev.res >= 0 ? -ECANCELED : (long long)ev.res;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (!cancelled && atomic_load(&ep->s->halt)) {
			/* The event still comes through the ring (-EINPROGRESS here). */
			(void)sys_io_cancel(ep->aio, &cb, &ev);
			cancelled = true;
		}
		if (cancelled && ++polls > FFS_CANCEL_POLLS)
			return -ECANCELED;
	}
}

/* ---------------------------------------------------------------- endpoint threads */

static size_t round_up(size_t n, size_t packet)
{
	return (n + packet - 1) / packet * packet;
}

/*
 * Bulk-out: the host ends a transfer with a short packet, or not at all when
 * the message is a multiple of wMaxPacketSize. A read asks for one packet
 * until the 10-byte header is known and then for the rest of that message
 * only, so it never waits for bytes the host will not send.
 */
/* Hands bytes to the device; while its answers are unread this waits (the endpoint
 * NAKs), looking at the halt flag between waits. */
static int bulk_out(struct ffs_session *s, const uint8_t *buf, size_t len)
{
	size_t off = 0, used = 0;
	int rv;

	do {
		rv = vccid_usbdev_bulk_out_timed(s->dev, buf + off, len - off, FFS_POLL_MS, &used);
		off += used;
	} while (rv == VCCID_ETIMEDOUT && !atomic_load(&s->halt));
	return rv;
}

static void *bulk_out_loop(void *arg)
{
	struct ep_thread *ep = arg;
	struct ffs_session *s = ep->s;
	uint8_t hdr[VCCID_CCID_HEADER_SIZE];
	size_t hdr_len = 0, msg_size = 0, msg_got = 0;
	size_t packet = s->bulk_packet;
	uint8_t *buf = malloc(s->buf_size);

	if (buf == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "ffs: out of memory for the bulk-out buffer");
		return NULL;
	}
	while (!atomic_load(&s->halt)) {
		size_t want = packet;
		long long n;
		size_t i;

		if (msg_size > msg_got)
			want = round_up(msg_size - msg_got, packet);
		if (want > s->buf_size)
			want = s->buf_size / packet * packet;
		n = ep_transfer(ep, false, buf, want);
		if (n < 0) {
			if (n != -ECANCELED)
				VCCID_LOG(n == -ESHUTDOWN || n == -EAGAIN ? VCCID_LOG_DEBUG
									  : VCCID_LOG_ERROR,
					  "ffs: bulk-out read: %s", strerror((int)-n));
			break;
		}
		VCCID_HEX("bulk-out", buf, (size_t)n);
		if (n > 0 && bulk_out(s, buf, (size_t)n) == VCCID_ENOMEM)
			VCCID_LOG(VCCID_LOG_ERROR, "ffs: bulk-out message dropped (out of memory)");
		/* Follow the message boundaries the device will see. */
		for (i = 0; i < (size_t)n;) {
			size_t take;

			if (msg_size == 0) {
				take = VCCID_CCID_HEADER_SIZE - hdr_len;
				if (take > (size_t)n - i)
					take = (size_t)n - i;
				memcpy(hdr + hdr_len, buf + i, take);
				hdr_len += take;
				msg_got = hdr_len;
				if (hdr_len == VCCID_CCID_HEADER_SIZE)
					msg_size = vccid_ccid_message_size(hdr, hdr_len);
			} else {
				take = msg_size - msg_got;
				if (take > (size_t)n - i)
					take = (size_t)n - i;
				msg_got += take;
			}
			i += take;
			if (msg_size != 0 && msg_got >= msg_size)
				hdr_len = msg_size = msg_got = 0;
		}
		explicit_bzero(buf, (size_t)n);
	}
	explicit_bzero(buf, s->buf_size);
	free(buf);
	return NULL;
}

/*
 * Bulk-in: one write per answer (the buffer holds the largest one), and a
 * zero-length packet after an answer whose length is a multiple of the
 * endpoint's wMaxPacketSize: libccid asks for more than an answer, and
 * without it the transfer would not end (FACTS: "Test answers of exactly 64
 * bytes"). The packet size is the one of the speed the host connected at,
 * read from the endpoint, not the speed the device was created with.
 */
static void *bulk_in_loop(void *arg)
{
	struct ep_thread *ep = arg;
	struct ffs_session *s = ep->s;
	size_t answer_size = 0, answer_sent = 0;
	uint8_t *buf = malloc(s->buf_size);

	if (buf == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "ffs: out of memory for the bulk-in buffer");
		return NULL;
	}
	while (!atomic_load(&s->halt)) {
		size_t len = 0;
		bool zlp = false, end;
		long long n;
		int rv;

		rv = vccid_usbdev_bulk_in(s->dev, buf, s->buf_size, &len, &zlp, FFS_POLL_MS);
		if (rv == VCCID_ETIMEDOUT || rv == VCCID_ECANCELED)
			continue;
		if (rv != VCCID_OK || len == 0)
			break;
		if (answer_size == 0)
			answer_size = vccid_ccid_message_size(buf, len);
		answer_sent += len;
		end = answer_size == 0 || answer_sent >= answer_size;
		VCCID_HEX("bulk-in", buf, len);
		n = ep_transfer(ep, true, buf, len);
		explicit_bzero(buf, len);
		if (n < 0) {
			if (n != -ECANCELED)
				VCCID_LOG(n == -ESHUTDOWN || n == -EAGAIN ? VCCID_LOG_DEBUG
									  : VCCID_LOG_ERROR,
					  "ffs: bulk-in write of %zu bytes: %s", len,
					  strerror((int)-n));
			break;
		}
		if (end && answer_sent % s->bulk_packet == 0) {
			VCCID_LOG(VCCID_LOG_DEBUG, "ffs: %zu-byte answer: zero-length packet",
				  answer_sent);
			n = ep_transfer(ep, true, buf, 0);
			if (n < 0) {
				if (n != -ECANCELED)
					VCCID_LOG(VCCID_LOG_DEBUG, "ffs: bulk-in zero-length packet: %s",
						  strerror((int)-n));
				break;
			}
		}
		if (end)
			answer_size = answer_sent = 0;
	}
	free(buf);
	return NULL;
}

static void *interrupt_loop(void *arg)
{
	struct ep_thread *ep = arg;
	struct ffs_session *s = ep->s;
	uint8_t buf[VCCID_USB_INTERRUPT_PACKET];

	while (!atomic_load(&s->halt)) {
		size_t len = 0;
		long long n;
		int rv = vccid_usbdev_interrupt_in(s->dev, buf, sizeof(buf), &len, FFS_POLL_MS);

		if (rv == VCCID_ETIMEDOUT || rv == VCCID_ECANCELED)
			continue;
		if (rv != VCCID_OK)
			break;
		VCCID_HEX("interrupt-in", buf, len);
		n = ep_transfer(ep, true, buf, len);
		if (n < 0) {
			if (n != -ECANCELED)
				VCCID_LOG(n == -ESHUTDOWN || n == -EAGAIN ? VCCID_LOG_DEBUG
									  : VCCID_LOG_ERROR,
					  "ffs: interrupt-in write: %s", strerror((int)-n));
			break;
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------- enable / disable */

/* Stops the endpoint threads, closes the files and resets the device. */
static void session_stop(struct ffs_ctx *c)
{
	struct ffs_session *s = &c->session;
	size_t i;

	if (!c->enabled)
		return;
	atomic_store(&s->halt, true);
	vccid_usbdev_cancel(c->dev);
	for (i = 0; i < FFS_N_EPS; i++) {
		struct ep_thread *ep = &s->ep[i];

		if (ep->started)
			pthread_join(ep->thread, NULL);
		ep->started = false;
		if (ep->aio != 0)
			(void)sys_io_destroy(ep->aio);   /* waits for any transfer left */
		ep->aio = 0;
		if (ep->fd >= 0)
			close(ep->fd);
		ep->fd = -1;
	}
	vccid_usbdev_reset(c->dev);
	c->enabled = false;
	VCCID_LOG(VCCID_LOG_INFO, "ffs: function disabled");
}

static int open_ep(struct ffs_ctx *c, size_t i)
{
	struct ep_thread *ep = &c->session.ep[i];
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", c->dir, ep_names[i]) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	/* O_NONBLOCK: a transfer on a disabled endpoint fails instead of waiting. */
	ep->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (ep->fd < 0) {
		int e = errno;

		VCCID_LOG(VCCID_LOG_ERROR, "ffs: cannot open %s: %s", path, strerror(e));
		return -e;
	}
	if (sys_io_setup(2, &ep->aio) < 0) {
		int e = errno;

		ep->aio = 0;
		VCCID_LOG(VCCID_LOG_ERROR, "ffs: io_setup: %s", strerror(e));
		return -e;
	}
	return 0;
}

static void session_start(struct ffs_ctx *c)
{
	static void *(*const loops[FFS_N_EPS])(void *) = { bulk_out_loop, bulk_in_loop,
							   interrupt_loop };
	struct ffs_session *s = &c->session;
	struct usb_endpoint_descriptor desc;
	/* SET_CONFIGURATION(1): composite handled it, the device learns it here. */
	static const uint8_t set_config[VCCID_USB_SETUP_SIZE] = { 0x00, USB_REQ_SET_CONFIGURATION,
								  1, 0, 0, 0, 0, 0 };
	size_t in_len, i;

	session_stop(c);
	vccid_usbdev_reset(c->dev);
	(void)vccid_usbdev_control(c->dev, set_config, NULL, 0, NULL, 0, &in_len);
	atomic_store(&s->halt, false);
	s->dev = c->dev;
	c->enabled = true;
	for (i = 0; i < FFS_N_EPS; i++) {
		s->ep[i].s = s;
		s->ep[i].fd = -1;
		s->ep[i].aio = 0;
		s->ep[i].started = false;
	}
	for (i = 0; i < FFS_N_EPS; i++)
		if (open_ep(c, i) != 0)
			goto fail;
	/* The descriptor of the speed the host connected at. */
	memset(&desc, 0, sizeof(desc));
	if (ioctl(s->ep[EP_BULK_IN].fd, FUNCTIONFS_ENDPOINT_DESC, &desc) != 0) {
		VCCID_LOG(VCCID_LOG_ERROR, "ffs: FUNCTIONFS_ENDPOINT_DESC: %s", strerror(errno));
		goto fail;
	}
	s->bulk_packet = desc.wMaxPacketSize & 0x7FF;   /* le16 on a little-endian host */
	if (s->bulk_packet == 0)
		s->bulk_packet = vccid_usbdev_bulk_packet_size(c->dev);
	s->buf_size = round_up(vccid_ccid_max_message_length(vccid_usbdev_ccid(c->dev)) +
				       s->bulk_packet, s->bulk_packet);
	if (s->bulk_packet != vccid_usbdev_bulk_packet_size(c->dev))
		VCCID_LOG(VCCID_LOG_DEBUG, "ffs: host connected with %zu-byte bulk packets, the "
			  "device was made for %zu", s->bulk_packet,
			  vccid_usbdev_bulk_packet_size(c->dev));
	for (i = 0; i < FFS_N_EPS; i++) {
		if (pthread_create(&s->ep[i].thread, NULL, loops[i], &s->ep[i]) != 0) {
			VCCID_LOG(VCCID_LOG_ERROR, "ffs: cannot start the %s thread", ep_names[i]);
			goto fail;
		}
		s->ep[i].started = true;
	}
	VCCID_LOG(VCCID_LOG_INFO, "ffs: function enabled (%s speed, bulk packets of %zu bytes)",
		  s->bulk_packet >= 512 ? "high" : "full", s->bulk_packet);
	return;
fail:
	/* The host sees a mute device until it resets it (the next enable retries). */
	session_stop(c);
}

/* ---------------------------------------------------------------- ep0 */

/* Writes the descriptors and strings: after that the gadget can be bound. */
static int write_descriptors(struct ffs_ctx *c)
{
	uint8_t class_desc[VCCID_CCID_CLASS_DESC_SIZE];
	uint8_t fs[VCCID_USB_INTERFACE_DESCS_SIZE], hs[VCCID_USB_INTERFACE_DESCS_SIZE];
	struct {
		struct usb_functionfs_descs_head_v2 head;
		uint32_t fs_count;
		uint32_t hs_count;
		uint8_t fs[VCCID_USB_INTERFACE_DESCS_SIZE];
		uint8_t hs[VCCID_USB_INTERFACE_DESCS_SIZE];
	} __attribute__((packed)) descs;
	/* No strings: the interface has no iInterface, and the product name the
	 * host shows comes from the gadget's own strings (configfs). */
	struct usb_functionfs_strings_head strings = {
		.magic = FUNCTIONFS_STRINGS_MAGIC,
		.length = sizeof(strings),
		.str_count = 0,
		.lang_count = 0,
	};

	vccid_ccid_class_descriptor(vccid_usbdev_ccid(c->dev), class_desc);
	vccid_usb_interface_descriptors(class_desc, VCCID_USB_FULL_SPEED, fs);
	vccid_usb_interface_descriptors(class_desc, VCCID_USB_HIGH_SPEED, hs);
	/* FunctionFS names the endpoint files ep1.. in descriptor order. */
	if (fs[9 + VCCID_CCID_CLASS_DESC_SIZE + 2] != VCCID_USB_EP_BULK_OUT ||
	    fs[9 + VCCID_CCID_CLASS_DESC_SIZE + 9] != VCCID_USB_EP_BULK_IN ||
	    fs[9 + VCCID_CCID_CLASS_DESC_SIZE + 16] != VCCID_USB_EP_INTERRUPT_IN) {
		VCCID_LOG(VCCID_LOG_CRITICAL, "ffs: unexpected endpoint order in the descriptors");
		return VCCID_EINVAL;
	}
	memset(&descs, 0, sizeof(descs));
	descs.head.magic = FUNCTIONFS_DESCRIPTORS_MAGIC_V2;   /* all fields LE32: x86/arm LE */
	descs.head.length = sizeof(descs);
	descs.head.flags = FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC;
	descs.fs_count = FFS_N_DESCS;
	descs.hs_count = FFS_N_DESCS;
	memcpy(descs.fs, fs, sizeof(fs));
	memcpy(descs.hs, hs, sizeof(hs));
	if (write(c->ep0, &descs, sizeof(descs)) != (ssize_t)sizeof(descs)) {
		VCCID_LOG(VCCID_LOG_ERROR, "ffs: the kernel refused the descriptors: %s "
			  "(is %s a fresh functionfs mount no other process uses?)", strerror(errno),
			  c->dir);
		return VCCID_EIO;
	}
	if (write(c->ep0, &strings, sizeof(strings)) != (ssize_t)sizeof(strings)) {
		VCCID_LOG(VCCID_LOG_ERROR, "ffs: the kernel refused the strings: %s",
			  strerror(errno));
		return VCCID_EIO;
	}
	return VCCID_OK;
}

/* A read or write of 0 bytes in the direction opposite to the data stage stalls (functionfs.rst). */
static void ep0_stall(struct ffs_ctx *c, bool in)
{
	ssize_t r = in ? read(c->ep0, NULL, 0) : write(c->ep0, NULL, 0);

	if (r < 0 && errno != EL2HLT)
		VCCID_LOG(VCCID_LOG_DEBUG, "ffs: ep0 stall: %s", strerror(errno));
}

static void handle_setup(struct ffs_ctx *c, const struct usb_ctrlrequest *req)
{
	uint8_t setup[VCCID_USB_SETUP_SIZE];
	bool in = (req->bRequestType & USB_DIR_IN) != 0;
	size_t w_length = req->wLength;   /* __le16, little-endian host */
	size_t in_len = 0;
	ssize_t r = 0;
	int rv;

	memcpy(setup, req, sizeof(setup));
	VCCID_LOG(VCCID_LOG_DEBUG, "ffs: SETUP %02X %02X wValue %04X wIndex %04X wLength %zu",
		  req->bRequestType, req->bRequest, req->wValue, req->wIndex, w_length);
	if (in) {
		rv = vccid_usbdev_control(c->dev, setup, NULL, 0, c->ctrl_buf, w_length, &in_len);
		if (rv != VCCID_OK) {
			ep0_stall(c, true);
			return;
		}
		r = write(c->ep0, c->ctrl_buf, in_len);
	} else if (w_length > 0) {
		/* No CCID request carries OUT data; the data stage is taken, then judged
		 * (FunctionFS gives no way to stall after the data stage). */
		r = read(c->ep0, c->ctrl_buf, w_length);
		if (r >= 0)
			(void)vccid_usbdev_control(c->dev, setup, c->ctrl_buf, (size_t)r, NULL, 0,
						   &in_len);
	} else {
		rv = vccid_usbdev_control(c->dev, setup, NULL, 0, NULL, 0, &in_len);
		if (rv != VCCID_OK) {
			ep0_stall(c, false);
			return;
		}
		r = read(c->ep0, NULL, 0);   /* the status stage */
	}
	if (r < 0)
		VCCID_LOG(errno == EIDRM ? VCCID_LOG_DEBUG : VCCID_LOG_ERROR,
			  "ffs: control transfer %02X %02X: %s", req->bRequestType, req->bRequest,
			  errno == EIDRM ? "cancelled by the host" : strerror(errno));
}

static void handle_event(struct ffs_ctx *c, const struct usb_functionfs_event *ev)
{
	switch ((enum usb_functionfs_event_type)ev->type) {
	case FUNCTIONFS_BIND:
		VCCID_LOG(VCCID_LOG_INFO, "ffs: bound to a UDC");
		break;
	case FUNCTIONFS_UNBIND:
		session_stop(c);
		VCCID_LOG(VCCID_LOG_INFO, "ffs: unbound from the UDC");
		break;
	case FUNCTIONFS_ENABLE:
		session_start(c);
		break;
	case FUNCTIONFS_DISABLE:
		session_stop(c);
		break;
	case FUNCTIONFS_SETUP:
		handle_setup(c, &ev->u.setup);
		break;
	case FUNCTIONFS_SUSPEND:
		VCCID_LOG(VCCID_LOG_DEBUG, "ffs: suspend");
		break;
	case FUNCTIONFS_RESUME:
		VCCID_LOG(VCCID_LOG_DEBUG, "ffs: resume");
		break;
	default:
		VCCID_LOG(VCCID_LOG_DEBUG, "ffs: unknown ep0 event %u", ev->type);
		break;
	}
}

int vccid_ffs_serve(vccid_usbdev *dev, const char *ffs_dir, volatile sig_atomic_t *stop)
{
	struct ffs_ctx c;
	char path[PATH_MAX];
	int rv = VCCID_OK;

	if (dev == NULL || ffs_dir == NULL || stop == NULL)
		return VCCID_EINVAL;
	memset(&c, 0, sizeof(c));
	c.dev = dev;
	c.dir = ffs_dir;
	c.stop = stop;
	if (snprintf(path, sizeof(path), "%s/ep0", ffs_dir) >= (int)sizeof(path))
		return VCCID_EINVAL;
	c.ctrl_buf = malloc(UINT16_MAX);
	if (c.ctrl_buf == NULL)
		return VCCID_ENOMEM;
	c.ep0 = open(path, O_RDWR | O_CLOEXEC);
	if (c.ep0 < 0) {
		VCCID_LOG(VCCID_LOG_ERROR, "ffs: cannot open %s: %s", path, strerror(errno));
		free(c.ctrl_buf);
		return VCCID_EIO;
	}
	rv = write_descriptors(&c);
	if (rv == VCCID_OK)
		VCCID_LOG(VCCID_LOG_INFO, "ffs: descriptors written to %s: the gadget can be bound",
			  path);
	while (rv == VCCID_OK && !*stop) {
		struct usb_functionfs_event ev[4];
		struct pollfd pfd = { .fd = c.ep0, .events = POLLIN };
		ssize_t n;
		size_t i;

		if (poll(&pfd, 1, FFS_POLL_MS) <= 0)
			continue;   /* timeout, or EINTR: look at *stop */
		n = read(c.ep0, ev, sizeof(ev));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EIDRM)
				continue;
			VCCID_LOG(VCCID_LOG_ERROR, "ffs: reading ep0 events: %s", strerror(errno));
			rv = VCCID_EIO;
			break;
		}
		for (i = 0; i < (size_t)n / sizeof(ev[0]); i++)
			handle_event(&c, &ev[i]);
	}
	session_stop(&c);
	close(c.ep0);
	free(c.ctrl_buf);
	return rv;
}
