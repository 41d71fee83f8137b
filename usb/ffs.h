/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The FunctionFS transport: serves a vccid_usbdev as the function of a Linux USB gadget (configfs + functionfs). */
#ifndef VCCID_USB_FFS_H
#define VCCID_USB_FFS_H

#include <signal.h>

#include "device.h"

/**
 * Serves @p dev on the FunctionFS instance mounted at @p ffs_dir (e.g.
 * /dev/ffs-ccid, made by tools/vccid-gadget-setup up): writes the
 * full- and high-speed descriptors and the (empty) strings block to ep0,
 * after which the gadget can be bound to a UDC, then answers ep0 events
 * until *@p stop becomes nonzero (checked at least every 250 ms, and at once
 * when a signal interrupts a wait).
 *
 * While the host has the function enabled, three threads move bytes: bulk-out
 * (ep1) into vccid_usbdev_bulk_out(), vccid_usbdev_bulk_in() to bulk-in (ep2,
 * with a zero-length packet after an answer whose length is a multiple of the
 * endpoint's wMaxPacketSize at the speed the host connected at), and
 * vccid_usbdev_interrupt_in() to interrupt-in (ep3). A disable, a bus reset or
 * an unbind stops them, closes the endpoint files and resets the device; the
 * next enable starts over, so hosts may come and go.
 *
 * Closing ep0 on return makes the kernel unbind the gadget from its UDC
 * (unless functionfs was mounted with no_disconnect=1).
 *
 * Returns 0 after a stop, or a negative vccid_error when ep0 cannot be opened
 * or the kernel refuses the descriptors (both are logged).
 */
int vccid_ffs_serve(vccid_usbdev *dev, const char *ffs_dir, volatile sig_atomic_t *stop);

#endif
