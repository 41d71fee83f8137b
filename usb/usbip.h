/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The USB/IP transport of the vccid USB CCID reader: a TCP server that lists
 * and exports one vccid_usbdev to a Linux vhci-hcd host ("usbip attach"). It
 * runs one socket-free state machine per connection (usbip-conn.h) over the
 * sockets of net/.
 */
#ifndef VCCID_USBIP_H
#define VCCID_USBIP_H

#include <signal.h>

#include "usb/device.h"

#define VCCID_USBIP_DEFAULT_LISTEN "127.0.0.1:3240"
#define VCCID_USBIP_DEFAULT_BUSID "1-1"

/* Limits that bound a misbehaving peer (README, "Security and limits"). */
#define VCCID_USBIP_MAX_CONNECTIONS 8        /* at once, the importer included */
#define VCCID_USBIP_REQUEST_TIMEOUT_MS 5000  /* a management request must come within this */
#define VCCID_USBIP_EVICT_GRACE_MS 500       /* then, when full, a newcomer may close it */

/**
 * Serves @p dev over USB/IP on TCP address @p listen_addr (corelib/addr.h:
 * "HOST:PORT", "[V6]:PORT", or "HOST" for port 3240; NULL for
 * VCCID_USBIP_DEFAULT_LISTEN) under bus id @p busid (NULL for
 * "1-1") until *stop becomes nonzero (checked at least every 200 ms).
 * Answers OP_REQ_DEVLIST and OP_REQ_IMPORT; one host imports at a time (a
 * second gets ST_DEV_BUSY), other connections still get the device list.
 * A malformed request closes its connection; when the importer goes away the
 * device is reset for the next one. Each connection has its own thread; this
 * one only accepts, so no peer can hold up another. When all
 * VCCID_USBIP_MAX_CONNECTIONS places are taken, a newcomer closes the oldest
 * connection that has not imported for VCCID_USBIP_EVICT_GRACE_MS, of the peer
 * holding the most such (vccid_net_pick_eviction), or is refused (logged once
 * a second with a count). USB/IP has no authentication: listening
 * on all interfaces (0.0.0.0, ::) is allowed only when asked for, with a
 * warning. Returns 0 after a stop, VCCID_EINVAL (bad address or bus id) or
 * VCCID_EIO (cannot listen).
 */
int vccid_usbip_serve(vccid_usbdev *dev, const char *listen_addr, const char *busid,
		      volatile sig_atomic_t *stop);

#endif
