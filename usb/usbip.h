/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The USB/IP transport of the vccid USB CCID reader: a TCP server that lists
 * and exports one vccid_usbdev to a Linux vhci-hcd host ("usbip attach"), and
 * the per-connection state machine it runs (bytes in, replies out), which
 * tests and fuzzers drive without sockets.
 */
#ifndef VCCID_USBIP_H
#define VCCID_USBIP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "usb/device.h"
#include "usb/usbip-proto.h"

#define VCCID_USBIP_DEFAULT_LISTEN "127.0.0.1:3240"
#define VCCID_USBIP_DEFAULT_BUSID "1-1"

/**
 * Serves @p dev over USB/IP on @p listen_addr ("HOST:PORT", "[V6]:PORT" or
 * "HOST"; NULL for VCCID_USBIP_DEFAULT_LISTEN) under bus id @p busid (NULL for
 * "1-1") until *stop becomes nonzero (checked at least every 200 ms).
 * Answers OP_REQ_DEVLIST and OP_REQ_IMPORT; one host imports at a time (a
 * second gets ST_DEV_BUSY), other connections still get the device list.
 * A malformed request closes its connection; when the importer goes away the
 * device is reset for the next one. USB/IP has no authentication: listening
 * on all interfaces (0.0.0.0, ::) is allowed only when asked for, with a
 * warning. Returns 0 after a stop, VCCID_EINVAL (bad address or bus id) or
 * VCCID_EIO (cannot listen).
 */
int vccid_usbip_serve(vccid_usbdev *dev, const char *listen_addr, const char *busid,
		      volatile sig_atomic_t *stop);

/**
 * Fills @p rec, the device record of DEVLIST and IMPORT replies, from
 * @p dev's descriptors (read through endpoint 0) and @p busid ("B-P": busnum B).
 * Returns 0 or VCCID_EINVAL.
 */
int vccid_usbip_device_record(vccid_usbdev *dev, const char *busid,
			      struct vccid_usbip_device *rec);

/* ---- the connection state machine ---- */

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
 * Returns 0 (more may come), VCCID_USBIP_DONE (DEVLIST answered or IMPORT
 * refused), VCCID_EPROTO (malformed: logged with the peer and the reason) or
 * the send function's error. After a nonzero result only conn_free is allowed.
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
