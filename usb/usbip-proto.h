/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The USB/IP protocol v1.1.1 (Linux Documentation/usb/usbip_protocol.rst) as a
 * codec without I/O: request parsing that validates every length, reply
 * encoding. All wire fields are big-endian.
 */
#ifndef VCCID_USBIP_PROTO_H
#define VCCID_USBIP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VCCID_USBIP_VERSION 0x0111
#define VCCID_USBIP_DEFAULT_PORT 3240

/* Management phase: an 8-byte op header (version, code, status). */
#define VCCID_USBIP_OP_HEADER_SIZE 8
#define VCCID_USBIP_PATH_SIZE 256
#define VCCID_USBIP_BUSID_SIZE 32
/* struct usbip_usb_device: path, busid, 3 x u32, 3 x u16, 6 x u8. */
#define VCCID_USBIP_DEVICE_SIZE 312
/* struct usbip_usb_interface: class, subclass, protocol, padding. */
#define VCCID_USBIP_INTERFACE_SIZE 4
#define VCCID_USBIP_REQ_IMPORT_SIZE (VCCID_USBIP_OP_HEADER_SIZE + VCCID_USBIP_BUSID_SIZE)
#define VCCID_USBIP_REP_IMPORT_SIZE (VCCID_USBIP_OP_HEADER_SIZE + VCCID_USBIP_DEVICE_SIZE)
#define VCCID_USBIP_MAX_INTERFACES 8

/* URB phase: every command and reply header is 48 bytes. */
#define VCCID_USBIP_HEADER_SIZE 48
#define VCCID_USBIP_SETUP_SIZE 8
/*
 * The largest OUT transfer accepted: one whole CCID message at the largest
 * dwMaxCCIDMessageLength (65544 + 10) with room to spare. An IN transfer
 * carries no bytes in the request, so its length is only checked against
 * INT32_MAX (the kernel's transfer_buffer_length is an int).
 */
#define VCCID_USBIP_MAX_OUT (65554 + 64)

enum vccid_usbip_op_code {
	OP_REQ_IMPORT = 0x8003,
	OP_REQ_DEVLIST = 0x8005,
	OP_REP_IMPORT = 0x0003,
	OP_REP_DEVLIST = 0x0005,
};

/* op_common status (tools/usb/usbip/src/usbip_common.h). */
enum vccid_usbip_op_status {
	USBIP_ST_OK = 0x00,
	USBIP_ST_NA = 0x01,        /* not available */
	USBIP_ST_DEV_BUSY = 0x02,  /* already imported by another host */
	USBIP_ST_DEV_ERR = 0x03,
	USBIP_ST_NODEV = 0x04,     /* no device with that busid */
	USBIP_ST_ERROR = 0x05,
};

enum vccid_usbip_command {
	USBIP_CMD_SUBMIT = 1,
	USBIP_CMD_UNLINK = 2,
	USBIP_RET_SUBMIT = 3,
	USBIP_RET_UNLINK = 4,
};

enum vccid_usbip_dir {
	USBIP_DIR_OUT = 0,
	USBIP_DIR_IN = 1,
};

/* include/uapi/linux/usb/ch9.h enum usb_device_speed */
enum vccid_usbip_speed {
	USBIP_SPEED_UNKNOWN = 0,
	USBIP_SPEED_LOW = 1,
	USBIP_SPEED_FULL = 2,
	USBIP_SPEED_HIGH = 3,
};

/* Linux errno values as they travel in RET_SUBMIT / RET_UNLINK status. */
#define VCCID_USBIP_EPIPE (-32)        /* STALL */
#define VCCID_USBIP_ECONNRESET (-104)  /* unlinked before completion */

/* number_of_packets of a non-ISO transfer: Linux sends 0, the spec says 0xFFFFFFFF. */
#define VCCID_USBIP_NOT_ISO 0xFFFFFFFFu

struct vccid_usbip_op {
	uint16_t version;
	uint16_t code;
	uint32_t status;
	char busid[VCCID_USBIP_BUSID_SIZE];   /* OP_REQ_IMPORT: always NUL-terminated */
};

struct vccid_usbip_interface {
	uint8_t bInterfaceClass;
	uint8_t bInterfaceSubClass;
	uint8_t bInterfaceProtocol;
};

/** An exported device as OP_REP_DEVLIST and OP_REP_IMPORT describe it. */
struct vccid_usbip_device {
	char path[VCCID_USBIP_PATH_SIZE];
	char busid[VCCID_USBIP_BUSID_SIZE];
	uint32_t busnum;
	uint32_t devnum;
	uint32_t speed;                 /* enum vccid_usbip_speed */
	uint16_t idVendor;
	uint16_t idProduct;
	uint16_t bcdDevice;
	uint8_t bDeviceClass;
	uint8_t bDeviceSubClass;
	uint8_t bDeviceProtocol;
	uint8_t bConfigurationValue;
	uint8_t bNumConfigurations;
	uint8_t bNumInterfaces;         /* at most VCCID_USBIP_MAX_INTERFACES are described */
	struct vccid_usbip_interface interfaces[VCCID_USBIP_MAX_INTERFACES];
};

/** A URB-phase command (client to server). */
struct vccid_usbip_cmd {
	uint32_t command;               /* USBIP_CMD_SUBMIT or USBIP_CMD_UNLINK */
	uint32_t seqnum;
	uint32_t devid;
	uint32_t direction;             /* enum vccid_usbip_dir */
	uint32_t ep;                    /* 0-15 */
	/* CMD_SUBMIT */
	uint32_t transfer_flags;
	uint32_t transfer_buffer_length;
	uint32_t start_frame;
	uint32_t number_of_packets;
	uint32_t interval;
	uint8_t setup[VCCID_USBIP_SETUP_SIZE];
	const uint8_t *data;            /* OUT data inside the parsed buffer (NULL if none) */
	size_t data_len;
	/* CMD_UNLINK */
	uint32_t unlink_seqnum;
};

/** A URB-phase reply header (server to client). */
struct vccid_usbip_ret {
	uint32_t command;               /* USBIP_RET_SUBMIT or USBIP_RET_UNLINK */
	uint32_t seqnum;
	uint32_t devid;
	uint32_t direction;
	uint32_t ep;
	int32_t status;
	uint32_t actual_length;         /* RET_SUBMIT */
	uint32_t start_frame;
	uint32_t number_of_packets;
	uint32_t error_count;
};

/** Name of an op code or a URB command for logs ("OP_REQ_IMPORT", "unknown"). */
const char *vccid_usbip_op_name(uint16_t code);
const char *vccid_usbip_command_name(uint32_t command);

/**
 * Parses one management request (OP_REQ_DEVLIST or OP_REQ_IMPORT) from the
 * first @p len bytes of @p buf. Returns 0 with *used the request's size when a
 * whole one was decoded into @p op, 0 with *used 0 while more bytes are
 * needed, or VCCID_EPROTO with a static reason in *why (bad version, unknown
 * code, nonzero status, busid without its NUL).
 */
int vccid_usbip_op_parse(const uint8_t *buf, size_t len, struct vccid_usbip_op *op,
			 size_t *used, const char **why);

/**
 * Parses one URB-phase command (CMD_SUBMIT with its OUT data, or CMD_UNLINK)
 * from the first @p len bytes of @p buf. OUT data is not copied: cmd->data
 * points into @p buf. Returns 0 with *used its size (0 while more bytes are
 * needed), or VCCID_EPROTO with a static reason in *why: unknown command,
 * direction not 0/1, ep over 15, an ISO transfer (number_of_packets neither
 * 0 nor 0xFFFFFFFF), an OUT length over @p max_out, an IN length over
 * INT32_MAX. Known from the header alone, so a lying length is refused before
 * its bytes arrive.
 */
int vccid_usbip_cmd_parse(const uint8_t *buf, size_t len, size_t max_out,
			  struct vccid_usbip_cmd *cmd, size_t *used, const char **why);

/** Writes an 8-byte op header. */
void vccid_usbip_op_encode(uint8_t out[VCCID_USBIP_OP_HEADER_SIZE], uint16_t code,
			   uint32_t status);
/** Writes the 312-byte device record (no interfaces). */
void vccid_usbip_device_encode(const struct vccid_usbip_device *dev,
			       uint8_t out[VCCID_USBIP_DEVICE_SIZE]);
/** Reads a 312-byte device record; bNumInterfaces is kept, interfaces[] untouched. */
void vccid_usbip_device_decode(const uint8_t in[VCCID_USBIP_DEVICE_SIZE],
			       struct vccid_usbip_device *dev);
/** Size of OP_REP_DEVLIST for @p n_devs devices, or 0 if a device has over VCCID_USBIP_MAX_INTERFACES. */
size_t vccid_usbip_devlist_size(const struct vccid_usbip_device *devs, size_t n_devs);
/**
 * Writes OP_REP_DEVLIST (header, count, each device with its interfaces) into
 * caller-owned @p out. Returns its length, or 0 when it does not fit.
 */
size_t vccid_usbip_devlist_encode(const struct vccid_usbip_device *devs, size_t n_devs,
				  uint8_t *out, size_t out_size);
/**
 * Writes OP_REP_IMPORT: the header with @p status, followed by the device
 * record only when @p status is USBIP_ST_OK (@p dev may be NULL otherwise).
 * Returns its length, or 0 when it does not fit.
 */
size_t vccid_usbip_rep_import_encode(uint32_t status, const struct vccid_usbip_device *dev,
				     uint8_t *out, size_t out_size);

/**
 * Writes a RET_SUBMIT header (devid, direction and ep 0 as the spec asks) for
 * @p seqnum; @p actual_length data bytes follow it when the URB was IN.
 */
void vccid_usbip_ret_submit_encode(uint8_t out[VCCID_USBIP_HEADER_SIZE], uint32_t seqnum,
				   int32_t status, uint32_t actual_length,
				   uint32_t number_of_packets);
/** Writes a RET_UNLINK header: @p status is VCCID_USBIP_ECONNRESET or 0. */
void vccid_usbip_ret_unlink_encode(uint8_t out[VCCID_USBIP_HEADER_SIZE], uint32_t seqnum,
				   int32_t status);
/** Writes a CMD_SUBMIT header (clients, tests). */
void vccid_usbip_cmd_submit_encode(uint8_t out[VCCID_USBIP_HEADER_SIZE],
				   const struct vccid_usbip_cmd *cmd);
/** Writes a CMD_UNLINK header (clients, tests). */
void vccid_usbip_cmd_unlink_encode(uint8_t out[VCCID_USBIP_HEADER_SIZE], uint32_t seqnum,
				   uint32_t devid, uint32_t unlink_seqnum);
/**
 * Decodes a reply header. Returns 0, or VCCID_EPROTO when the command is not
 * RET_SUBMIT/RET_UNLINK or a field the server must zero is not zero.
 */
int vccid_usbip_ret_decode(const uint8_t in[VCCID_USBIP_HEADER_SIZE],
			   struct vccid_usbip_ret *ret);

#endif
