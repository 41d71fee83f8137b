/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The USB/IP v1.1.1 codec: wire structs pinned by size, big-endian fields decoded into host structs. */
#include "usbip-proto.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "corelib/error.h"

/* Wire layouts (tools/usb/usbip/src/usbip_network.h, drivers/usb/usbip/usbip_common.h). */
struct wire_op {
	uint16_t version;
	uint16_t code;
	uint32_t status;
};

struct wire_device {
	char path[VCCID_USBIP_PATH_SIZE];
	char busid[VCCID_USBIP_BUSID_SIZE];
	uint32_t busnum;
	uint32_t devnum;
	uint32_t speed;
	uint16_t idVendor;
	uint16_t idProduct;
	uint16_t bcdDevice;
	uint8_t bDeviceClass;
	uint8_t bDeviceSubClass;
	uint8_t bDeviceProtocol;
	uint8_t bConfigurationValue;
	uint8_t bNumConfigurations;
	uint8_t bNumInterfaces;
};

struct wire_basic {
	uint32_t command;
	uint32_t seqnum;
	uint32_t devid;
	uint32_t direction;
	uint32_t ep;
};

struct wire_cmd_submit {
	struct wire_basic base;
	uint32_t transfer_flags;
	uint32_t transfer_buffer_length;
	uint32_t start_frame;
	uint32_t number_of_packets;
	uint32_t interval;
	uint8_t setup[VCCID_USBIP_SETUP_SIZE];
};

struct wire_ret_submit {
	struct wire_basic base;
	uint32_t status;
	uint32_t actual_length;
	uint32_t start_frame;
	uint32_t number_of_packets;
	uint32_t error_count;
	uint8_t padding[8];
};

struct wire_unlink {
	struct wire_basic base;
	uint32_t seqnum_or_status;   /* CMD: unlink_seqnum; RET: status */
	uint8_t padding[24];
};

_Static_assert(sizeof(struct wire_op) == VCCID_USBIP_OP_HEADER_SIZE, "op_common is 8 bytes");
_Static_assert(sizeof(struct wire_device) == VCCID_USBIP_DEVICE_SIZE,
	       "usbip_usb_device is 312 bytes");
_Static_assert(sizeof(struct wire_basic) == 20, "usbip_header_basic is 20 bytes");
_Static_assert(sizeof(struct wire_cmd_submit) == VCCID_USBIP_HEADER_SIZE, "CMD_SUBMIT is 48");
_Static_assert(sizeof(struct wire_ret_submit) == VCCID_USBIP_HEADER_SIZE, "RET_SUBMIT is 48");
_Static_assert(sizeof(struct wire_unlink) == VCCID_USBIP_HEADER_SIZE, "(CMD|RET)_UNLINK is 48");
_Static_assert(offsetof(struct wire_device, busnum) == 0x120, "busnum at 0x120 of the record");
_Static_assert(offsetof(struct wire_cmd_submit, setup) == 0x28, "setup at 0x28");
_Static_assert(VCCID_USBIP_MAX_OUT <= INT32_MAX, "OUT limit fits an int");

const char *vccid_usbip_op_name(uint16_t code)
{
	switch (code) {
	case OP_REQ_IMPORT:
		return "OP_REQ_IMPORT";
	case OP_REQ_DEVLIST:
		return "OP_REQ_DEVLIST";
	case OP_REP_IMPORT:
		return "OP_REP_IMPORT";
	case OP_REP_DEVLIST:
		return "OP_REP_DEVLIST";
	default:
		return "unknown";
	}
}

const char *vccid_usbip_command_name(uint32_t command)
{
	switch (command) {
	case USBIP_CMD_SUBMIT:
		return "CMD_SUBMIT";
	case USBIP_CMD_UNLINK:
		return "CMD_UNLINK";
	case USBIP_RET_SUBMIT:
		return "RET_SUBMIT";
	case USBIP_RET_UNLINK:
		return "RET_UNLINK";
	default:
		return "unknown";
	}
}

static void basic_decode(const struct wire_basic *w, uint32_t *command, uint32_t *seqnum,
			 uint32_t *devid, uint32_t *direction, uint32_t *ep)
{
	*command = ntohl(w->command);
	*seqnum = ntohl(w->seqnum);
	*devid = ntohl(w->devid);
	*direction = ntohl(w->direction);
	*ep = ntohl(w->ep);
}

static void basic_encode(struct wire_basic *w, uint32_t command, uint32_t seqnum, uint32_t devid,
			 uint32_t direction, uint32_t ep)
{
	w->command = htonl(command);
	w->seqnum = htonl(seqnum);
	w->devid = htonl(devid);
	w->direction = htonl(direction);
	w->ep = htonl(ep);
}

static int refuse(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return VCCID_EPROTO;
}

int vccid_usbip_op_parse(const uint8_t *buf, size_t len, struct vccid_usbip_op *op,
			 size_t *used, const char **why)
{
	struct wire_op w;
	size_t need;

	*used = 0;
	if (len < sizeof(w))
		return VCCID_OK;
	memcpy(&w, buf, sizeof(w));
	memset(op, 0, sizeof(*op));
	op->version = ntohs(w.version);
	op->code = ntohs(w.code);
	op->status = ntohl(w.status);
	if (op->version != VCCID_USBIP_VERSION)
		return refuse(why, "unsupported protocol version (not 0x0111)");
	switch (op->code) {
	case OP_REQ_DEVLIST:
		need = VCCID_USBIP_OP_HEADER_SIZE;
		break;
	case OP_REQ_IMPORT:
		need = VCCID_USBIP_REQ_IMPORT_SIZE;
		break;
	default:
		return refuse(why, "unknown management request");
	}
	if (op->status != 0)
		return refuse(why, "nonzero status in a request");
	if (len < need)
		return VCCID_OK;
	if (op->code == OP_REQ_IMPORT) {
		const uint8_t *busid = buf + VCCID_USBIP_OP_HEADER_SIZE;

		if (memchr(busid, '\0', VCCID_USBIP_BUSID_SIZE) == NULL)
			return refuse(why, "busid without its terminating NUL");
		memcpy(op->busid, busid, VCCID_USBIP_BUSID_SIZE);
	}
	*used = need;
	return VCCID_OK;
}

int vccid_usbip_cmd_parse(const uint8_t *buf, size_t len, size_t max_out,
			  struct vccid_usbip_cmd *cmd, size_t *used, const char **why)
{
	struct wire_cmd_submit s;
	struct wire_unlink u;
	size_t need;

	*used = 0;
	if (len < VCCID_USBIP_HEADER_SIZE)
		return VCCID_OK;
	memset(cmd, 0, sizeof(*cmd));
	memcpy(&s, buf, sizeof(s));
	basic_decode(&s.base, &cmd->command, &cmd->seqnum, &cmd->devid, &cmd->direction, &cmd->ep);
	switch (cmd->command) {
	case USBIP_CMD_SUBMIT:
		break;
	case USBIP_CMD_UNLINK:
		memcpy(&u, buf, sizeof(u));
		cmd->unlink_seqnum = ntohl(u.seqnum_or_status);
		*used = VCCID_USBIP_HEADER_SIZE;
		return VCCID_OK;
	default:
		return refuse(why, "unknown command");
	}
	cmd->transfer_flags = ntohl(s.transfer_flags);
	cmd->transfer_buffer_length = ntohl(s.transfer_buffer_length);
	cmd->start_frame = ntohl(s.start_frame);
	cmd->number_of_packets = ntohl(s.number_of_packets);
	cmd->interval = ntohl(s.interval);
	memcpy(cmd->setup, s.setup, sizeof(cmd->setup));
	if (cmd->direction != USBIP_DIR_OUT && cmd->direction != USBIP_DIR_IN)
		return refuse(why, "direction is neither IN nor OUT");
	if (cmd->ep > 15)
		return refuse(why, "endpoint number over 15");
	if (cmd->number_of_packets != 0 && cmd->number_of_packets != VCCID_USBIP_NOT_ISO)
		return refuse(why, "isochronous transfer (the device has no ISO endpoint)");
	if (cmd->transfer_buffer_length > INT32_MAX)
		return refuse(why, "negative transfer_buffer_length");
	if (cmd->direction == USBIP_DIR_OUT) {
		if (cmd->transfer_buffer_length > max_out)
			return refuse(why, "OUT transfer_buffer_length over the limit");
		need = VCCID_USBIP_HEADER_SIZE + cmd->transfer_buffer_length;
		if (len < need)
			return VCCID_OK;
		cmd->data_len = cmd->transfer_buffer_length;
		cmd->data = cmd->data_len > 0 ? buf + VCCID_USBIP_HEADER_SIZE : NULL;
	} else {
		need = VCCID_USBIP_HEADER_SIZE;
	}
	*used = need;
	return VCCID_OK;
}

void vccid_usbip_op_encode(uint8_t out[VCCID_USBIP_OP_HEADER_SIZE], uint16_t code,
			   uint32_t status)
{
	struct wire_op w = {
		.version = htons(VCCID_USBIP_VERSION),
		.code = htons(code),
		.status = htonl(status),
	};

	memcpy(out, &w, sizeof(w));
}

void vccid_usbip_device_encode(const struct vccid_usbip_device *dev,
			       uint8_t out[VCCID_USBIP_DEVICE_SIZE])
{
	struct wire_device w;

	memset(&w, 0, sizeof(w));
	/* Unused bytes stay zero, and so does the last one. */
	memcpy(w.path, dev->path, strnlen(dev->path, sizeof(w.path) - 1));
	memcpy(w.busid, dev->busid, strnlen(dev->busid, sizeof(w.busid) - 1));
	w.busnum = htonl(dev->busnum);
	w.devnum = htonl(dev->devnum);
	w.speed = htonl(dev->speed);
	w.idVendor = htons(dev->idVendor);
	w.idProduct = htons(dev->idProduct);
	w.bcdDevice = htons(dev->bcdDevice);
	w.bDeviceClass = dev->bDeviceClass;
	w.bDeviceSubClass = dev->bDeviceSubClass;
	w.bDeviceProtocol = dev->bDeviceProtocol;
	w.bConfigurationValue = dev->bConfigurationValue;
	w.bNumConfigurations = dev->bNumConfigurations;
	w.bNumInterfaces = dev->bNumInterfaces;
	memcpy(out, &w, sizeof(w));
}

void vccid_usbip_device_decode(const uint8_t in[VCCID_USBIP_DEVICE_SIZE],
			       struct vccid_usbip_device *dev)
{
	struct wire_device w;

	memcpy(&w, in, sizeof(w));
	memcpy(dev->path, w.path, sizeof(dev->path));
	dev->path[sizeof(dev->path) - 1] = '\0';
	memcpy(dev->busid, w.busid, sizeof(dev->busid));
	dev->busid[sizeof(dev->busid) - 1] = '\0';
	dev->busnum = ntohl(w.busnum);
	dev->devnum = ntohl(w.devnum);
	dev->speed = ntohl(w.speed);
	dev->idVendor = ntohs(w.idVendor);
	dev->idProduct = ntohs(w.idProduct);
	dev->bcdDevice = ntohs(w.bcdDevice);
	dev->bDeviceClass = w.bDeviceClass;
	dev->bDeviceSubClass = w.bDeviceSubClass;
	dev->bDeviceProtocol = w.bDeviceProtocol;
	dev->bConfigurationValue = w.bConfigurationValue;
	dev->bNumConfigurations = w.bNumConfigurations;
	dev->bNumInterfaces = w.bNumInterfaces;
}

size_t vccid_usbip_devlist_size(const struct vccid_usbip_device *devs, size_t n_devs)
{
	size_t size = VCCID_USBIP_OP_HEADER_SIZE + 4;
	size_t i;

	for (i = 0; i < n_devs; i++) {
		if (devs[i].bNumInterfaces > VCCID_USBIP_MAX_INTERFACES)
			return 0;
		size += VCCID_USBIP_DEVICE_SIZE +
			(size_t)devs[i].bNumInterfaces * VCCID_USBIP_INTERFACE_SIZE;
	}
	return size;
}

size_t vccid_usbip_devlist_encode(const struct vccid_usbip_device *devs, size_t n_devs,
				  uint8_t *out, size_t out_size)
{
	size_t size = vccid_usbip_devlist_size(devs, n_devs);
	size_t off, i, j;
	uint32_t n;

	if (size == 0 || size > out_size || n_devs > UINT32_MAX)
		return 0;
	vccid_usbip_op_encode(out, OP_REP_DEVLIST, USBIP_ST_OK);
	n = htonl((uint32_t)n_devs);
	memcpy(out + VCCID_USBIP_OP_HEADER_SIZE, &n, sizeof(n));
	off = VCCID_USBIP_OP_HEADER_SIZE + 4;
	for (i = 0; i < n_devs; i++) {
		vccid_usbip_device_encode(&devs[i], out + off);
		off += VCCID_USBIP_DEVICE_SIZE;
		for (j = 0; j < devs[i].bNumInterfaces; j++) {
			out[off] = devs[i].interfaces[j].bInterfaceClass;
			out[off + 1] = devs[i].interfaces[j].bInterfaceSubClass;
			out[off + 2] = devs[i].interfaces[j].bInterfaceProtocol;
			out[off + 3] = 0;
			off += VCCID_USBIP_INTERFACE_SIZE;
		}
	}
	return off;
}

size_t vccid_usbip_rep_import_encode(uint32_t status, const struct vccid_usbip_device *dev,
				     uint8_t *out, size_t out_size)
{
	size_t size = status == USBIP_ST_OK ? VCCID_USBIP_REP_IMPORT_SIZE
					    : VCCID_USBIP_OP_HEADER_SIZE;

	if (out_size < size || (status == USBIP_ST_OK && dev == NULL))
		return 0;
	vccid_usbip_op_encode(out, OP_REP_IMPORT, status);
	if (status == USBIP_ST_OK)
		vccid_usbip_device_encode(dev, out + VCCID_USBIP_OP_HEADER_SIZE);
	return size;
}

void vccid_usbip_ret_submit_encode(uint8_t out[VCCID_USBIP_HEADER_SIZE], uint32_t seqnum,
				   int32_t status, uint32_t actual_length,
				   uint32_t number_of_packets)
{
	struct wire_ret_submit w;

	memset(&w, 0, sizeof(w));
	basic_encode(&w.base, USBIP_RET_SUBMIT, seqnum, 0, 0, 0);
	w.status = htonl((uint32_t)status);
	w.actual_length = htonl(actual_length);
	w.number_of_packets = htonl(number_of_packets);
	memcpy(out, &w, sizeof(w));
}

void vccid_usbip_ret_unlink_encode(uint8_t out[VCCID_USBIP_HEADER_SIZE], uint32_t seqnum,
				   int32_t status)
{
	struct wire_unlink w;

	memset(&w, 0, sizeof(w));
	basic_encode(&w.base, USBIP_RET_UNLINK, seqnum, 0, 0, 0);
	w.seqnum_or_status = htonl((uint32_t)status);
	memcpy(out, &w, sizeof(w));
}

void vccid_usbip_cmd_submit_encode(uint8_t out[VCCID_USBIP_HEADER_SIZE],
				   const struct vccid_usbip_cmd *cmd)
{
	struct wire_cmd_submit w;

	memset(&w, 0, sizeof(w));
	basic_encode(&w.base, USBIP_CMD_SUBMIT, cmd->seqnum, cmd->devid, cmd->direction, cmd->ep);
	w.transfer_flags = htonl(cmd->transfer_flags);
	w.transfer_buffer_length = htonl(cmd->transfer_buffer_length);
	w.start_frame = htonl(cmd->start_frame);
	w.number_of_packets = htonl(cmd->number_of_packets);
	w.interval = htonl(cmd->interval);
	memcpy(w.setup, cmd->setup, sizeof(w.setup));
	memcpy(out, &w, sizeof(w));
}

void vccid_usbip_cmd_unlink_encode(uint8_t out[VCCID_USBIP_HEADER_SIZE], uint32_t seqnum,
				   uint32_t devid, uint32_t unlink_seqnum)
{
	struct wire_unlink w;

	memset(&w, 0, sizeof(w));
	basic_encode(&w.base, USBIP_CMD_UNLINK, seqnum, devid, 0, 0);
	w.seqnum_or_status = htonl(unlink_seqnum);
	memcpy(out, &w, sizeof(w));
}

int vccid_usbip_ret_decode(const uint8_t in[VCCID_USBIP_HEADER_SIZE],
			   struct vccid_usbip_ret *ret)
{
	struct wire_ret_submit s;
	struct wire_unlink u;
	static const uint8_t zeros[24];

	memset(ret, 0, sizeof(*ret));
	memcpy(&s, in, sizeof(s));
	basic_decode(&s.base, &ret->command, &ret->seqnum, &ret->devid, &ret->direction, &ret->ep);
	if (ret->devid != 0 || ret->direction != 0 || ret->ep != 0)
		return VCCID_EPROTO;
	switch (ret->command) {
	case USBIP_RET_SUBMIT:
		ret->status = (int32_t)ntohl(s.status);
		ret->actual_length = ntohl(s.actual_length);
		ret->start_frame = ntohl(s.start_frame);
		ret->number_of_packets = ntohl(s.number_of_packets);
		ret->error_count = ntohl(s.error_count);
		if (memcmp(s.padding, zeros, sizeof(s.padding)) != 0)
			return VCCID_EPROTO;
		return VCCID_OK;
	case USBIP_RET_UNLINK:
		memcpy(&u, in, sizeof(u));
		ret->status = (int32_t)ntohl(u.seqnum_or_status);
		if (memcmp(u.padding, zeros, sizeof(u.padding)) != 0)
			return VCCID_EPROTO;
		return VCCID_OK;
	default:
		return VCCID_EPROTO;
	}
}
