/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One USB/IP connection of the vccid USB CCID reader, without sockets: the
 * management phase (device list, import), then the URBs of an importing
 * vhci-hcd host over a vccid_usbdev. Bytes in (vccid_usbip_conn_input),
 * replies out through a send function; the server (usbip.c), the tests and
 * the fuzzer drive it.
 */
#ifndef VCCID_USBIP_CONN_H
#define VCCID_USBIP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb/device.h"
#include "usb/usbip-proto.h"

/**
 * Fills @p rec, the device record of DEVLIST and IMPORT replies, from
 * @p dev's descriptors (read through endpoint 0) and @p busid ("B-P": busnum B).
 * Returns 0 or VCCID_EINVAL.
 */
int vccid_usbip_device_record(vccid_usbdev *dev, const char *busid,
			      struct vccid_usbip_device *rec);

typedef struct vccid_usbip_conn vccid_usbip_conn;

/**
 * Sends one whole reply (header and data, in order). Called with the
 * connection's lock held, from the thread that fed the input or from an IN
 * endpoint worker. Returns 0, or a negative code: the connection is then dead.
 */
typedef int (*vccid_usbip_send_fn)(void *opaque, const struct iovec *iov, int iovcnt);
/**
 * Asked before an IMPORT is accepted: true makes @p conn the importer. The
 * owner releases the claim itself when it frees the connection.
 */
typedef bool (*vccid_usbip_claim_fn)(void *opaque, vccid_usbip_conn *conn);

struct vccid_usbip_conn_params {
	vccid_usbdev *dev;
	const struct vccid_usbip_device *record;  /* the only device; its busid is matched */
	const char *peer;                         /* for log lines ("10.0.2.15:40000") */
	vccid_usbip_send_fn send;
	vccid_usbip_claim_fn claim;               /* NULL: every import is accepted */
	void *opaque;
	/* true: one thread per IN endpoint completes IN URBs as answers come;
	 * false: only vccid_usbip_conn_pump() does (deterministic, for fuzzing). */
	bool threads;
};

/* Per connection: URBs pending at once (beyond them the host is malformed). */
#define VCCID_USBIP_MAX_IN_PENDING 256    /* per IN endpoint */
#define VCCID_USBIP_MAX_OUT_PENDING 8     /* bulk-OUT URBs waiting for the device */

/* vccid_usbip_conn_input(): the exchange is over, close the connection politely. */
#define VCCID_USBIP_DONE 1

/** A connection in the management phase; @p p is copied (record and peer too). NULL on failure. */
vccid_usbip_conn *vccid_usbip_conn_new(const struct vccid_usbip_conn_params *p);
/**
 * Frees @p conn: pending IN URBs are dropped, the IN workers stop and, if it
 * had imported the device, the device is reset (vccid_usbdev_reset).
 */
void vccid_usbip_conn_free(vccid_usbip_conn *conn);
/**
 * Bytes received from the peer, in any chunking. Handles every whole request:
 * management requests, then after a successful import the URB commands.
 * A bulk-OUT URB completes only when the device took its commands: while
 * VCCID_USBDEV_MAX_ANSWERS answers are unread it stays pending (a real
 * reader NAKs) and goes on when IN URBs take answers; at most
 * VCCID_USBIP_MAX_OUT_PENDING such URBs, more is malformed.
 * Returns 0 (more may come), VCCID_USBIP_DONE (DEVLIST answered or IMPORT
 * refused), VCCID_EPROTO (malformed: logged with the peer and the reason)
 * or the send function's error. After a
 * nonzero result only conn_free is allowed.
 */
int vccid_usbip_conn_input(vccid_usbip_conn *conn, const uint8_t *data, size_t len);
/** True once the peer imported the device. */
bool vccid_usbip_conn_imported(const vccid_usbip_conn *conn);
/** True when a reply could not be sent (from any thread): close the connection. */
bool vccid_usbip_conn_failed(const vccid_usbip_conn *conn);
/**
 * Without threads: completes queued IN URBs with what the device has,
 * waiting up to @p timeout_ms for each endpoint that has a URB queued.
 * Returns the number of URBs completed.
 */
size_t vccid_usbip_conn_pump(vccid_usbip_conn *conn, int timeout_ms);

#endif
