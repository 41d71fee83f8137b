/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test stand-in for the vccid-usb daemon's FunctionFS mode, for usb-ffs.test while
 * tools/vccid-usb is not built: ffs-serve [-v] [-s full|high] --ffs DIR CONFIG[:READER]
 * builds the reader from vccid.conf and serves it with vccid_ffs_serve() until
 * SIGINT/SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/slotset.h"
#include "ccid-core/error.h"
#include "ccid-core/log.h"
#include "usb/device.h"
#include "usb/ffs.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void log_stderr(enum vccid_log_level level, const char *line)
{
	(void)level;
	fprintf(stderr, "ffs-serve: %s\n", line);
}

int main(int argc, char **argv)
{
	struct vccid_usbdev_params params;
	const char *dir = NULL, *device = NULL;
	char *path = NULL, *reader = NULL;
	struct sigaction sa;
	vccid_slotset *set;
	vccid_usbdev *dev;
	unsigned n;
	int i, rv;

	memset(&params, 0, sizeof(params));
	params.speed = VCCID_USB_HIGH_SPEED;
	vccid_log_set_sink(log_stderr);
	vccid_log_set_level(VCCID_LOG_ERROR);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0)
			vccid_log_set_level(vccid_log_get_level() + 1);
		else if (strcmp(argv[i], "--ffs") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			params.speed = strcmp(argv[++i], "full") == 0 ? VCCID_USB_FULL_SPEED
								      : VCCID_USB_HIGH_SPEED;
		else if (argv[i][0] != '-' && device == NULL)
			device = argv[i];
		else
			device = NULL, dir = NULL, i = argc;
	}
	if (dir == NULL || device == NULL) {
		fprintf(stderr, "usage: ffs-serve [-v]... [-s full|high] --ffs DIR CONFIG[:READER]\n");
		return 2;
	}
	if (vccid_slotset_split_device(device, &path, &reader) != VCCID_OK)
		return 1;
	set = vccid_slotset_open(path, reader, VCCID_CCID_MAX_SLOTS);
	if (set == NULL)
		return 1;
	n = vccid_slotset_count(set);
	dev = vccid_usbdev_new(vccid_slotset_slots(set), n, &params);
	if (dev == NULL) {
		fprintf(stderr, "ffs-serve: cannot create the USB device (%u slots)\n", n);
		vccid_slotset_close(set);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;   /* no SA_RESTART: waits end early */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "ffs-serve: reader %s with %u slots on %s\n", reader, n, dir);
	rv = vccid_ffs_serve(dev, dir, &stop_flag);
	fprintf(stderr, "ffs-serve: stopped: %s\n", rv == 0 ? "ok" : vccid_strerror(rv));
	vccid_usbdev_free(dev);
	vccid_slotset_close(set);
	free(path);
	free(reader);
	return rv == 0 ? 0 : 1;
}
