/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid-usb: vccid's slots as a USB CCID reader, exported over USB/IP or as a FunctionFS gadget. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/slotset.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "usb/device.h"
#include "usb/ffs.h"
#include "usb/usbip.h"

static const char usage[] =
	"Usage: vccid-usb [OPTIONS] (--usbip [ADDR:]PORT | --ffs DIR) CONFIG[:READER]\n"
	"\n"
	"Presents the slots of one vccid reader (CONFIG is a vccid.conf, READER a\n"
	"[reader:READER] group, default \"default\") as a USB CCID smart card reader\n"
	"that any stock CCID driver drives. Cards are the configured libcacard cards\n"
	"and, with a [vscard] group, remote VSCard clients. A USB reader has at most 8\n"
	"slots.\n"
	"\n"
	"Transports (one of):\n"
	"  --usbip [ADDR:]PORT  a USB/IP server; a Linux host attaches the reader with\n"
	"                       \"usbip --tcp-port PORT attach -r HOST -b BUSID\".\n"
	"                       ADDR defaults to 127.0.0.1: USB/IP has no\n"
	"                       authentication, give 0.0.0.0 only on a trusted network\n"
	"  --busid ID           the USB/IP bus id to export (default 1-1)\n"
	"  --ffs DIR            a FunctionFS instance mounted at DIR (see\n"
	"                       vccid-gadget-setup: set up, start vccid-usb, then bind)\n"
	"\n"
	"Options:\n"
	"  --high-speed         announce a high-speed device (512-byte bulk packets);\n"
	"                       default full speed (64)\n"
	"  --vid HEX --pid HEX  USB ids (default 1209:000B, a pid.codes test id that\n"
	"                       triggers no vendor quirk in libccid)\n"
	"  --serial TEXT        USB serial number string\n"
	"  -v, --verbose        more log output (repeat for debug and APDU dumps)\n"
	"  -h, --help           this text\n"
	"\n"
	"Logs go to standard error. SIGINT or SIGTERM stop it cleanly.\n"
	"Exit status: 0 after a clean stop, 1 on a runtime failure, 2 for bad usage.\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void stderr_sink(enum vccid_log_level level, const char *line)
{
	static const char *const names[] = { "critical", "error", "info", "debug", "apdu" };
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(stderr, "%lld.%03ld %s: %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
		names[level], line);
}

static int parse_hex16(const char *text, uint16_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 16);
	if (errno != 0 || end == text || *end != '\0' || v == 0 || v > 0xFFFF)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "usbip", required_argument, NULL, 'u' },
		{ "busid", required_argument, NULL, 'b' },
		{ "ffs", required_argument, NULL, 'f' },
		{ "high-speed", no_argument, NULL, 'H' },
		{ "vid", required_argument, NULL, 'V' },
		{ "pid", required_argument, NULL, 'P' },
		{ "serial", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vccid_usbdev_params params;
	const char *usbip = NULL, *ffs = NULL, *busid = "1-1";
	char usbip_addr[300];
	char *path = NULL, *reader = NULL;
	vccid_slotset *set = NULL;
	vccid_usbdev *dev = NULL;
	int verbose = 0;
	int status = 1;
	int opt;

	memset(&params, 0, sizeof(params));
	params.speed = VCCID_USB_FULL_SPEED;
	while ((opt = getopt_long(argc, argv, "vh", options, NULL)) != -1) {
		switch (opt) {
		case 'u': usbip = optarg; break;
		case 'b': busid = optarg; break;
		case 'f': ffs = optarg; break;
		case 'H': params.speed = VCCID_USB_HIGH_SPEED; break;
		case 's': params.ids.serial = optarg; break;
		case 'v': verbose++; break;
		case 'V':
			if (parse_hex16(optarg, &params.ids.idVendor) != 0) {
				fprintf(stderr, "vccid-usb: --vid wants 4 hex digits, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'P':
			if (parse_hex16(optarg, &params.ids.idProduct) != 0) {
				fprintf(stderr, "vccid-usb: --pid wants 4 hex digits, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs("vccid-usb: try --help\n", stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || (usbip == NULL) == (ffs == NULL)) {
		fprintf(stderr, "vccid-usb: give one configuration file and exactly one of --usbip "
			"and --ffs (try --help)\n");
		return 2;
	}
	if ((params.ids.idVendor == 0) != (params.ids.idProduct == 0)) {
		fprintf(stderr, "vccid-usb: give --vid and --pid together\n");
		return 2;
	}
	if (usbip != NULL) {
		/* A bare port listens on loopback. */
		if (strchr(usbip, ':') == NULL)
			snprintf(usbip_addr, sizeof(usbip_addr), "127.0.0.1:%s", usbip);
		else
			snprintf(usbip_addr, sizeof(usbip_addr), "%s", usbip);
	}

	vccid_log_set_sink(stderr_sink);
	vccid_log_set_level(VCCID_LOG_INFO);
	if (verbose > 0) {
		/* Passed on as the environment override the configuration loader honours. */
		setenv("VCCID_LOG_LEVEL", verbose > 1 ? "apdu" : "debug", 1);
	}
	install_signals();

	if (vccid_slotset_split_device(argv[optind], &path, &reader) != VCCID_OK) {
		fprintf(stderr, "vccid-usb: out of memory\n");
		return 1;
	}
	set = vccid_slotset_open(path, reader, VCCID_CCID_MAX_SLOTS);
	if (set == NULL) {
		fprintf(stderr, "vccid-usb: out of memory\n");
		goto out;
	}
	dev = vccid_usbdev_new(vccid_slotset_slots(set), vccid_slotset_count(set), &params);
	if (dev == NULL) {
		fprintf(stderr, "vccid-usb: cannot create the USB device\n");
		goto out;
	}
	VCCID_LOG(VCCID_LOG_INFO, "reader %s of %s: %u slots as a USB CCID reader over %s %s",
		  reader, path, vccid_slotset_count(set), usbip ? "USB/IP on" : "FunctionFS at",
		  usbip ? usbip_addr : ffs);
	if (usbip != NULL)
		status = vccid_usbip_serve(dev, usbip_addr, busid, &stop_requested) == VCCID_OK ? 0 : 1;
	else
		status = vccid_ffs_serve(dev, ffs, &stop_requested) == VCCID_OK ? 0 : 1;
	VCCID_LOG(VCCID_LOG_INFO, "stopping (%s)", status == 0 ? "clean" : "after an error");
out:
	vccid_usbdev_free(dev);
	vccid_slotset_close(set);
	free(path);
	free(reader);
	return status;
}
