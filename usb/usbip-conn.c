/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The USB/IP connection of the vccid USB reader, without sockets: management requests, URBs over vccid_usbdev. */
#include "usbip-conn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corelib/error.h"
#include "corelib/log.h"

/* Linux errno values that travel in RET_SUBMIT (status of the URB). */
#define URB_ENOMEM (-12)

/* USB 2.0 §9.4, §9.6 */
#define USB_DIR_IN 0x80
#define USB_REQ_GET_DESCRIPTOR 0x06
#define USB_DT_DEVICE 0x01
#define USB_DT_CONFIG 0x02
#define USB_DT_INTERFACE 0x04

enum {
	EP_CONTROL = 0,
	EP_BULK_OUT = VCCID_USB_EP_BULK_OUT & 0x0F,
	EP_BULK_IN = VCCID_USB_EP_BULK_IN & 0x0F,
	EP_INTERRUPT_IN = VCCID_USB_EP_INTERRUPT_IN & 0x0F,
};

enum {
	MAX_PENDING = VCCID_USBIP_MAX_IN_PENDING,
	WORKER_WAIT_MS = 200,       /* an IN worker looks at unlinks and stops this often */
	CONTROL_IN_MAX = 4096,      /* every descriptor vccid has fits */
};

struct pending {
	uint32_t seqnum;
	uint32_t length;
};

/* A bulk-OUT URB the device has not taken whole yet: it has answers unread. */
struct out_urb {
	uint32_t seqnum;
	uint32_t length;
	size_t off;                         /* bytes taken by the device */
	uint8_t *data;
};

struct in_ep {
	vccid_usbip_conn *conn;
	unsigned ep;
	struct pending urbs[MAX_PENDING];   /* FIFO in submission order */
	size_t n_urbs;
	uint8_t *buf;                       /* taken from the device, not yet sent */
	size_t buf_size;
	size_t len, off;
	pthread_cond_t wake;                /* a URB was queued, or the connection stops */
	pthread_t thread;
	bool started;
};

enum conn_state { CONN_MANAGEMENT, CONN_IMPORTED, CONN_DEAD };

struct vccid_usbip_conn {
	struct vccid_usbip_conn_params p;
	struct vccid_usbip_device record;
	char peer[64];   /* a peer name (net/net.h's VCCID_NET_PEER_MAX) */
	enum conn_state state;
	uint8_t *in;                /* reassembly of requests */
	size_t in_len, in_size;
	uint8_t *control_in;
	pthread_mutex_t lock;       /* queues, IN buffers, and every send */
	bool stopping;
	bool failed;
	bool was_imported;          /* the device must be reset when this connection goes */
	struct in_ep eps[2];        /* bulk-in, interrupt-in */
	/* Bulk-OUT URBs in order, and every call of vccid_usbdev_bulk_out_timed: out_lock,
	 * taken before conn->lock, never held while waiting. */
	pthread_mutex_t out_lock;
	struct out_urb outs[VCCID_USBIP_MAX_OUT_PENDING];
	size_t n_outs;
};

/* ------------------------------------------------------------------ sending */

/* conn->lock held. */
static int send_locked(vccid_usbip_conn *conn, const struct iovec *iov, int iovcnt)
{
	int rv;

	if (conn->failed)
		return VCCID_EIO;
	rv = conn->p.send(conn->p.opaque, iov, iovcnt);
	if (rv != 0) {
		if (!conn->failed)
			VCCID_LOG(VCCID_LOG_ERROR, "usbip %s: cannot send a reply: connection dropped",
				  conn->peer);
		conn->failed = true;
	}
	return rv;
}

/* RET_SUBMIT with @p len bytes of IN data; @p actual_length differs for OUT URBs. */
static int send_ret_submit(vccid_usbip_conn *conn, uint32_t seqnum, int32_t status,
			   uint32_t actual_length, const uint8_t *data, size_t len)
{
	uint8_t hdr[VCCID_USBIP_HEADER_SIZE];
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)data, .iov_len = len },
	};

	vccid_usbip_ret_submit_encode(hdr, seqnum, status, actual_length, 0);
	return send_locked(conn, iov, len > 0 ? 2 : 1);
}

static int send_bytes(vccid_usbip_conn *conn, const uint8_t *data, size_t len)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	int rv;

	pthread_mutex_lock(&conn->lock);
	rv = send_locked(conn, &iov, 1);
	pthread_mutex_unlock(&conn->lock);
	return rv;
}

/* ------------------------------------------------------------------ IN endpoints */

/* Completes the oldest URB of @p e with buffered bytes; conn->lock held. */
static int complete_head(struct in_ep *e)
{
	struct pending urb = e->urbs[0];
	size_t n = e->len - e->off;
	int rv;

	if (n > urb.length)
		n = urb.length;
	/* An answer longer than the URB continues in the next one, as on a real bus. */
	rv = send_ret_submit(e->conn, urb.seqnum, 0, (uint32_t)n, e->buf + e->off, n);
	explicit_bzero(e->buf + e->off, n);
	e->off += n;
	if (e->off == e->len)
		e->off = e->len = 0;
	e->n_urbs--;
	memmove(&e->urbs[0], &e->urbs[1], e->n_urbs * sizeof(e->urbs[0]));
	return rv;
}

/*
 * Hands parked bulk-OUT URBs to the device as far as it has room, and
 * completes those it took whole; out_lock held, conn->lock not.
 */
static int flush_outs(vccid_usbip_conn *conn)
{
	int rv = VCCID_OK;

	while (conn->n_outs > 0 && rv == VCCID_OK) {
		struct out_urb *o = &conn->outs[0];
		size_t used = 0;
		int status;

		status = vccid_usbdev_bulk_out_timed(conn->p.dev, o->data + o->off,
						     o->length - o->off, 0, &used);
		o->off += used;
		if (status == VCCID_ETIMEDOUT)
			break;   /* still no room: the URB stays pending */
		pthread_mutex_lock(&conn->lock);
		rv = send_ret_submit(conn, o->seqnum, status == VCCID_OK ? 0 : URB_ENOMEM,
				     status == VCCID_OK ? o->length : 0, NULL, 0);
		pthread_mutex_unlock(&conn->lock);
		explicit_bzero(o->data, o->length);
		free(o->data);
		conn->n_outs--;
		memmove(&conn->outs[0], &conn->outs[1], conn->n_outs * sizeof(conn->outs[0]));
	}
	return rv;
}

/* An answer was taken: bulk-OUT URBs waiting for room may go on. conn->lock not held. */
static void answers_taken(vccid_usbip_conn *conn)
{
	pthread_mutex_lock(&conn->out_lock);
	(void)flush_outs(conn);
	pthread_mutex_unlock(&conn->out_lock);
}

/* Takes the next answer or notification from the device, outside conn->lock. */
static int fetch(struct in_ep *e, int timeout_ms)
{
	vccid_usbdev *dev = e->conn->p.dev;
	size_t n = 0;
	bool zlp;
	int rv;

	/* No zero-length packet in USB/IP: a URB that ends short ends the transfer. */
	if (e->ep == EP_BULK_IN)
		rv = vccid_usbdev_bulk_in(dev, e->buf, e->buf_size, &n, &zlp, timeout_ms);
	else
		rv = vccid_usbdev_interrupt_in(dev, e->buf, e->buf_size, &n, timeout_ms);
	if (rv == VCCID_OK) {
		e->len = n;
		e->off = 0;
	}
	return rv;
}

static void *in_worker(void *arg)
{
	struct in_ep *e = arg;
	vccid_usbip_conn *conn = e->conn;

	pthread_mutex_lock(&conn->lock);
	while (!conn->stopping) {
		if (e->n_urbs == 0) {
			pthread_cond_wait(&e->wake, &conn->lock);
			continue;
		}
		if (e->len > e->off) {
			(void)complete_head(e);
			if (e->ep == EP_BULK_IN && e->len == 0) {
				pthread_mutex_unlock(&conn->lock);
				answers_taken(conn);
				pthread_mutex_lock(&conn->lock);
			}
			continue;
		}
		/* The buffer is empty: only this thread fills it. */
		pthread_mutex_unlock(&conn->lock);
		(void)fetch(e, WORKER_WAIT_MS);
		pthread_mutex_lock(&conn->lock);
	}
	pthread_mutex_unlock(&conn->lock);
	return NULL;
}

static size_t pump(vccid_usbip_conn *conn, int timeout_ms)
{
	size_t done = 0;
	size_t i;

	for (i = 0; i < 2; i++) {
		struct in_ep *e = &conn->eps[i];

		pthread_mutex_lock(&conn->lock);
		while (e->n_urbs > 0 && !conn->failed) {
			if (e->len > e->off) {
				(void)complete_head(e);
				done++;
				if (e->ep == EP_BULK_IN && e->len == 0) {
					pthread_mutex_unlock(&conn->lock);
					answers_taken(conn);
					pthread_mutex_lock(&conn->lock);
				}
				continue;
			}
			pthread_mutex_unlock(&conn->lock);
			if (fetch(e, timeout_ms) != VCCID_OK) {
				pthread_mutex_lock(&conn->lock);
				break;
			}
			pthread_mutex_lock(&conn->lock);
		}
		pthread_mutex_unlock(&conn->lock);
	}
	return done;
}

size_t vccid_usbip_conn_pump(vccid_usbip_conn *conn, int timeout_ms)
{
	if (conn->p.threads || conn->state != CONN_IMPORTED)
		return 0;
	return pump(conn, timeout_ms);
}

static void stop_workers(vccid_usbip_conn *conn)
{
	size_t i;

	pthread_mutex_lock(&conn->lock);
	conn->stopping = true;
	for (i = 0; i < 2; i++)
		pthread_cond_broadcast(&conn->eps[i].wake);
	pthread_mutex_unlock(&conn->lock);
	/* Wakes workers waiting in the device (only an importer has any). */
	if (conn->eps[0].started || conn->eps[1].started)
		vccid_usbdev_cancel(conn->p.dev);
	for (i = 0; i < 2; i++) {
		if (conn->eps[i].started)
			pthread_join(conn->eps[i].thread, NULL);
		conn->eps[i].started = false;
	}
}

static int start_workers(vccid_usbip_conn *conn)
{
	size_t i;

	for (i = 0; i < 2; i++) {
		if (pthread_create(&conn->eps[i].thread, NULL, in_worker, &conn->eps[i]) != 0) {
			stop_workers(conn);
			return VCCID_ENOMEM;
		}
		conn->eps[i].started = true;
	}
	return VCCID_OK;
}

/* ------------------------------------------------------------------ connection */

vccid_usbip_conn *vccid_usbip_conn_new(const struct vccid_usbip_conn_params *p)
{
	vccid_usbip_conn *conn;
	size_t i;

	if (p == NULL || p->dev == NULL || p->record == NULL || p->send == NULL)
		return NULL;
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return NULL;
	conn->p = *p;
	conn->record = *p->record;
	conn->p.record = &conn->record;
	snprintf(conn->peer, sizeof(conn->peer), "%s", p->peer != NULL ? p->peer : "?");
	conn->p.peer = conn->peer;
	conn->in_size = VCCID_USBIP_HEADER_SIZE + VCCID_USBIP_MAX_OUT;
	conn->in = malloc(conn->in_size);
	conn->control_in = malloc(CONTROL_IN_MAX);
	pthread_mutex_init(&conn->lock, NULL);
	pthread_mutex_init(&conn->out_lock, NULL);
	for (i = 0; i < 2; i++) {
		struct in_ep *e = &conn->eps[i];

		e->conn = conn;
		e->ep = i == 0 ? EP_BULK_IN : EP_INTERRUPT_IN;
		e->buf_size = i == 0 ? vccid_ccid_max_message_length(vccid_usbdev_ccid(p->dev))
				     : VCCID_USB_INTERRUPT_PACKET;
		e->buf = malloc(e->buf_size);
		pthread_cond_init(&e->wake, NULL);
		if (e->buf == NULL)
			conn->state = CONN_DEAD;
	}
	if (conn->in == NULL || conn->control_in == NULL || conn->state == CONN_DEAD) {
		vccid_usbip_conn_free(conn);
		return NULL;
	}
	return conn;
}

void vccid_usbip_conn_free(vccid_usbip_conn *conn)
{
	size_t i;

	if (conn == NULL)
		return;
	stop_workers(conn);
	if (conn->was_imported) {
		/* The next importer gets a fresh, unconfigured device. */
		vccid_usbdev_reset(conn->p.dev);
		VCCID_LOG(VCCID_LOG_INFO, "usbip %s: released %s; device reset", conn->peer,
			  conn->record.busid);
	}
	for (i = 0; i < 2; i++) {
		if (conn->eps[i].buf != NULL) {
			explicit_bzero(conn->eps[i].buf, conn->eps[i].buf_size);
			free(conn->eps[i].buf);
		}
		pthread_cond_destroy(&conn->eps[i].wake);
	}
	if (conn->in != NULL) {
		explicit_bzero(conn->in, conn->in_size);
		free(conn->in);
	}
	free(conn->control_in);
	for (i = 0; i < conn->n_outs; i++) {
		explicit_bzero(conn->outs[i].data, conn->outs[i].length);
		free(conn->outs[i].data);
	}
	pthread_mutex_destroy(&conn->out_lock);
	pthread_mutex_destroy(&conn->lock);
	free(conn);
}

bool vccid_usbip_conn_imported(const vccid_usbip_conn *conn)
{
	return conn->state == CONN_IMPORTED;
}

bool vccid_usbip_conn_failed(const vccid_usbip_conn *conn)
{
	vccid_usbip_conn *c = (vccid_usbip_conn *)conn;
	bool failed;

	pthread_mutex_lock(&c->lock);
	failed = c->failed;
	pthread_mutex_unlock(&c->lock);
	return failed;
}

static int malformed(vccid_usbip_conn *conn, const char *why)
{
	VCCID_LOG(VCCID_LOG_ERROR, "usbip %s: malformed request (%s): connection closed",
		  conn->peer, why);
	conn->state = CONN_DEAD;
	return VCCID_EPROTO;
}

static int handle_op(vccid_usbip_conn *conn, const struct vccid_usbip_op *op)
{
	uint8_t *reply;
	size_t len;
	uint32_t status;
	int rv;

	conn->record.bConfigurationValue = (uint8_t)vccid_usbdev_configuration(conn->p.dev);
	if (op->code == OP_REQ_DEVLIST) {
		len = vccid_usbip_devlist_size(&conn->record, 1);
		reply = malloc(len);
		if (reply == NULL)
			return VCCID_ENOMEM;
		len = vccid_usbip_devlist_encode(&conn->record, 1, reply, len);
		rv = send_bytes(conn, reply, len);
		free(reply);
		VCCID_LOG(VCCID_LOG_DEBUG, "usbip %s: device list sent", conn->peer);
		return rv != 0 ? rv : VCCID_USBIP_DONE;
	}
	/* OP_REQ_IMPORT */
	if (strcmp(op->busid, conn->record.busid) != 0)
		status = USBIP_ST_NODEV;
	else if (conn->p.claim != NULL && !conn->p.claim(conn->p.opaque, conn))
		status = USBIP_ST_DEV_BUSY;
	else
		status = USBIP_ST_OK;
	if (status == USBIP_ST_OK) {
		/* Whatever the last host left behind is gone before this one speaks. */
		vccid_usbdev_reset(conn->p.dev);
		conn->record.bConfigurationValue = 0;
		conn->state = CONN_IMPORTED;
		conn->was_imported = true;
		if (conn->p.threads && start_workers(conn) != VCCID_OK) {
			conn->state = CONN_DEAD;
			status = USBIP_ST_ERROR;
		}
	}
	{
		uint8_t buf[VCCID_USBIP_REP_IMPORT_SIZE];

		len = vccid_usbip_rep_import_encode(status, &conn->record, buf, sizeof(buf));
		rv = send_bytes(conn, buf, len);
	}
	if (status == USBIP_ST_OK) {
		VCCID_LOG(VCCID_LOG_INFO, "usbip %s: imported %s", conn->peer, conn->record.busid);
		return rv;
	}
	VCCID_LOG(VCCID_LOG_INFO, "usbip %s: import of \"%s\" refused (%s)", conn->peer, op->busid,
		  status == USBIP_ST_NODEV ? "no such bus id"
		  : status == USBIP_ST_DEV_BUSY ? "imported by another host" : "error");
	return rv != 0 ? rv : VCCID_USBIP_DONE;
}

/* out_lock and conn->lock held. */
static bool seqnum_pending(vccid_usbip_conn *conn, uint32_t seqnum)
{
	size_t i, j;

	for (i = 0; i < conn->n_outs; i++)
		if (conn->outs[i].seqnum == seqnum)
			return true;
	for (i = 0; i < 2; i++)
		for (j = 0; j < conn->eps[i].n_urbs; j++)
			if (conn->eps[i].urbs[j].seqnum == seqnum)
				return true;
	return false;
}

static int handle_control(vccid_usbip_conn *conn, const struct vccid_usbip_cmd *cmd)
{
	bool in = cmd->direction == USBIP_DIR_IN;
	size_t in_size = cmd->transfer_buffer_length;
	size_t in_len = 0;
	int32_t status = 0;
	int rv;

	if (in_size > CONTROL_IN_MAX)
		in_size = CONTROL_IN_MAX;
	/* The data stage direction lives in bmRequestType as well: they must agree. */
	if (((cmd->setup[0] & USB_DIR_IN) != 0) != in) {
		status = VCCID_USBIP_EPIPE;
	} else {
		/* An OUT request has no room for IN data (in_size 0), but a buffer all the same. */
		rv = vccid_usbdev_control(conn->p.dev, cmd->setup, cmd->data, cmd->data_len,
					  conn->control_in, in ? in_size : 0, &in_len);
		if (rv != VCCID_OK)
			status = VCCID_USBIP_EPIPE;   /* STALL */
	}
	if (status != 0)
		in_len = 0;
	pthread_mutex_lock(&conn->lock);
	if (in)
		rv = send_ret_submit(conn, cmd->seqnum, status, (uint32_t)in_len, conn->control_in,
				     in_len);
	else
		rv = send_ret_submit(conn, cmd->seqnum, status,
				     status == 0 ? (uint32_t)cmd->data_len : 0, NULL, 0);
	pthread_mutex_unlock(&conn->lock);
	return rv;
}

/*
 * A bulk-OUT URB completes only once the device took every command in it.
 * While VCCID_USBDEV_MAX_ANSWERS answers are unread the device takes none:
 * the URB stays pending (a real reader NAKs) and later ones wait behind it,
 * while IN URBs, unlinks and control requests still go on; when an IN URB
 * takes an answer they continue. A host that never collects answers cannot
 * make the daemon queue them: past VCCID_USBIP_MAX_OUT_PENDING URBs it is
 * malformed.
 */
static int submit_out(vccid_usbip_conn *conn, const struct vccid_usbip_cmd *cmd)
{
	struct out_urb *o;
	int rv;

	pthread_mutex_lock(&conn->out_lock);
	rv = flush_outs(conn);
	if (rv != VCCID_OK || conn->n_outs == VCCID_USBIP_MAX_OUT_PENDING) {
		pthread_mutex_unlock(&conn->out_lock);
		return rv != VCCID_OK ? rv : malformed(conn, "too many bulk-OUT URBs pending");
	}
	o = &conn->outs[conn->n_outs];
	o->seqnum = cmd->seqnum;
	o->length = (uint32_t)cmd->data_len;
	o->off = 0;
	o->data = malloc(cmd->data_len > 0 ? cmd->data_len : 1);
	if (o->data == NULL) {
		pthread_mutex_unlock(&conn->out_lock);
		return VCCID_ENOMEM;
	}
	if (cmd->data_len > 0)   /* a zero-length OUT URB has no data pointer */
		memcpy(o->data, cmd->data, cmd->data_len);
	conn->n_outs++;
	rv = flush_outs(conn);
	pthread_mutex_unlock(&conn->out_lock);
	return rv;
}

static int handle_submit(vccid_usbip_conn *conn, const struct vccid_usbip_cmd *cmd)
{
	struct in_ep *e = NULL;
	bool duplicate;
	int rv;

	/* A seqnum names one URB until it completes: vhci-hcd never reuses a pending one. */
	pthread_mutex_lock(&conn->out_lock);
	pthread_mutex_lock(&conn->lock);
	duplicate = seqnum_pending(conn, cmd->seqnum);
	pthread_mutex_unlock(&conn->lock);
	pthread_mutex_unlock(&conn->out_lock);
	if (duplicate)
		return malformed(conn, "seqnum of a URB still pending");
	if (cmd->ep == EP_CONTROL)
		return handle_control(conn, cmd);
	if (cmd->ep == EP_BULK_OUT && cmd->direction == USBIP_DIR_OUT) {
		return submit_out(conn, cmd);
	}
	if (cmd->direction == USBIP_DIR_IN && cmd->ep == EP_BULK_IN)
		e = &conn->eps[0];
	else if (cmd->direction == USBIP_DIR_IN && cmd->ep == EP_INTERRUPT_IN)
		e = &conn->eps[1];
	pthread_mutex_lock(&conn->lock);
	if (e == NULL) {
		/* No such endpoint: what a host controller reports for a stalled pipe. */
		rv = send_ret_submit(conn, cmd->seqnum, VCCID_USBIP_EPIPE, 0, NULL, 0);
	} else if (e->n_urbs == MAX_PENDING) {
		pthread_mutex_unlock(&conn->lock);
		return malformed(conn, "too many IN URBs pending");
	} else if (cmd->transfer_buffer_length == 0) {
		rv = send_ret_submit(conn, cmd->seqnum, 0, 0, NULL, 0);
	} else {
		e->urbs[e->n_urbs].seqnum = cmd->seqnum;
		e->urbs[e->n_urbs].length = cmd->transfer_buffer_length;
		e->n_urbs++;
		pthread_cond_broadcast(&e->wake);
		rv = VCCID_OK;
	}
	pthread_mutex_unlock(&conn->lock);
	return rv;
}

static int handle_unlink(vccid_usbip_conn *conn, const struct vccid_usbip_cmd *cmd)
{
	uint8_t hdr[VCCID_USBIP_HEADER_SIZE];
	struct iovec iov = { .iov_base = hdr, .iov_len = sizeof(hdr) };
	int32_t status = 0;
	size_t i, j;
	int rv;

	pthread_mutex_lock(&conn->out_lock);
	pthread_mutex_lock(&conn->lock);
	/* A bulk-OUT URB still waiting, none of it taken by the device, can go. */
	for (i = 0; i < conn->n_outs; i++) {
		struct out_urb *o = &conn->outs[i];

		if (o->seqnum != cmd->unlink_seqnum || o->off > 0)
			continue;
		explicit_bzero(o->data, o->length);
		free(o->data);
		conn->n_outs--;
		memmove(o, o + 1, (conn->n_outs - i) * sizeof(*o));
		status = VCCID_USBIP_ECONNRESET;
		break;
	}
	for (i = 0; i < 2 && status == 0; i++) {
		struct in_ep *e = &conn->eps[i];

		for (j = 0; j < e->n_urbs; j++) {
			if (e->urbs[j].seqnum != cmd->unlink_seqnum)
				continue;
			/* Dropped before completion: no RET_SUBMIT will follow. Bytes
			 * already taken from the device stay for the next URB. */
			e->n_urbs--;
			memmove(&e->urbs[j], &e->urbs[j + 1], (e->n_urbs - j) * sizeof(e->urbs[0]));
			status = VCCID_USBIP_ECONNRESET;
			break;
		}
	}
	vccid_usbip_ret_unlink_encode(hdr, cmd->seqnum, status);
	rv = send_locked(conn, &iov, 1);
	pthread_mutex_unlock(&conn->lock);
	pthread_mutex_unlock(&conn->out_lock);
	return rv;
}

int vccid_usbip_conn_input(vccid_usbip_conn *conn, const uint8_t *data, size_t len)
{
	int rv = VCCID_OK;

	if (conn->state == CONN_DEAD)
		return VCCID_EPROTO;
	for (;;) {
		const char *why = "?";
		size_t used = 0;
		size_t n = conn->in_size - conn->in_len;

		if (n > len)
			n = len;
		memcpy(conn->in + conn->in_len, data, n);
		conn->in_len += n;
		data += n;
		len -= n;
		if (conn->state == CONN_MANAGEMENT) {
			struct vccid_usbip_op op;

			if (vccid_usbip_op_parse(conn->in, conn->in_len, &op, &used, &why) != VCCID_OK)
				return malformed(conn, why);
			if (used > 0)
				rv = handle_op(conn, &op);
		} else {
			struct vccid_usbip_cmd cmd;

			if (vccid_usbip_cmd_parse(conn->in, conn->in_len, VCCID_USBIP_MAX_OUT, &cmd,
						  &used, &why) != VCCID_OK)
				return malformed(conn, why);
			if (used > 0) {
				VCCID_LOG(VCCID_LOG_DEBUG, "usbip %s: %s seq %u ep %u%s len %u",
					  conn->peer, vccid_usbip_command_name(cmd.command),
					  cmd.seqnum, cmd.ep, cmd.direction ? " in" : " out",
					  cmd.command == USBIP_CMD_SUBMIT ? cmd.transfer_buffer_length
									  : cmd.unlink_seqnum);
				rv = cmd.command == USBIP_CMD_SUBMIT ? handle_submit(conn, &cmd)
								    : handle_unlink(conn, &cmd);
			}
		}
		if (used == 0) {
			if (len == 0)
				break;
			continue;   /* the buffer holds a partial request: take more bytes */
		}
		explicit_bzero(conn->in, used);
		memmove(conn->in, conn->in + used, conn->in_len - used);
		conn->in_len -= used;
		if (rv != VCCID_OK) {
			if (conn->state != CONN_IMPORTED || rv < 0)
				conn->state = CONN_DEAD;
			return rv;
		}
		if (conn->state == CONN_DEAD)
			return VCCID_EPROTO;
	}
	return rv;
}

/* ------------------------------------------------------------------ device record */

static int control_in(vccid_usbdev *dev, uint8_t type, uint8_t *buf, size_t size, size_t *len)
{
	uint8_t setup[VCCID_USB_SETUP_SIZE] = {
		USB_DIR_IN, USB_REQ_GET_DESCRIPTOR, 0, type, 0, 0,
		(uint8_t)size, (uint8_t)(size >> 8),
	};

	return vccid_usbdev_control(dev, setup, NULL, 0, buf, size, len);
}

int vccid_usbip_device_record(vccid_usbdev *dev, const char *busid,
			      struct vccid_usbip_device *rec)
{
	uint8_t desc[512];
	size_t len = 0, off;
	unsigned long busnum;
	char *end;

	if (dev == NULL || busid == NULL || rec == NULL || busid[0] == '\0' ||
	    strlen(busid) >= VCCID_USBIP_BUSID_SIZE)
		return VCCID_EINVAL;
	busnum = strtoul(busid, &end, 10);
	if (end == busid || *end != '-' || end[1] == '\0' || busnum == 0 || busnum > 0xFFFF)
		return VCCID_EINVAL;
	memset(rec, 0, sizeof(*rec));
	snprintf(rec->busid, sizeof(rec->busid), "%s", busid);
	snprintf(rec->path, sizeof(rec->path), "/sys/devices/platform/vccid/usb%lu/%s", busnum,
		 busid);
	rec->busnum = (uint32_t)busnum;
	rec->devnum = 2;   /* address 1 is the root hub's */
	rec->speed = vccid_usbdev_bulk_packet_size(dev) == 512 ? USBIP_SPEED_HIGH : USBIP_SPEED_FULL;
	if (control_in(dev, USB_DT_DEVICE, desc, VCCID_USB_DEVICE_DESC_SIZE, &len) != VCCID_OK ||
	    len != VCCID_USB_DEVICE_DESC_SIZE)
		return VCCID_EINVAL;
	rec->bDeviceClass = desc[4];
	rec->bDeviceSubClass = desc[5];
	rec->bDeviceProtocol = desc[6];
	rec->idVendor = (uint16_t)(desc[8] | desc[9] << 8);
	rec->idProduct = (uint16_t)(desc[10] | desc[11] << 8);
	rec->bcdDevice = (uint16_t)(desc[12] | desc[13] << 8);
	rec->bNumConfigurations = desc[17];
	rec->bConfigurationValue = (uint8_t)vccid_usbdev_configuration(dev);
	if (control_in(dev, USB_DT_CONFIG, desc, sizeof(desc), &len) != VCCID_OK || len < 9)
		return VCCID_EINVAL;
	/* The interfaces (alternate setting 0) in the configuration descriptor. */
	for (off = 0; off + 2 <= len && desc[off] >= 2; off += desc[off]) {
		if (desc[off + 1] == USB_DT_INTERFACE && off + 9 <= len && desc[off + 3] == 0 &&
		    rec->bNumInterfaces < VCCID_USBIP_MAX_INTERFACES) {
			struct vccid_usbip_interface *i = &rec->interfaces[rec->bNumInterfaces++];

			i->bInterfaceClass = desc[off + 5];
			i->bInterfaceSubClass = desc[off + 6];
			i->bInterfaceProtocol = desc[off + 7];
		}
	}
	return rec->bNumInterfaces == desc[4] ? VCCID_OK : VCCID_EINVAL;
}
