/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vpcd wire format (vsmartcard doc/api.txt): 2-byte big-endian length and payload; no I/O. */
#ifndef VCCID_VPCD_PROTO_H
#define VCCID_VPCD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VCCID_VPCD_HEADER 2
#define VCCID_VPCD_MAX_PAYLOAD 0xFFFFu
#define VCCID_VPCD_MAX_MESSAGE (VCCID_VPCD_HEADER + VCCID_VPCD_MAX_PAYLOAD)

/* Reader-to-card 1-byte payloads (vpcd.h VPCD_CTRL_*); longer ones are C-APDUs. */
enum vccid_vpcd_ctrl {
	VCCID_VPCD_CTRL_OFF = 0x00,     /* power off, not answered */
	VCCID_VPCD_CTRL_ON = 0x01,      /* power on, not answered */
	VCCID_VPCD_CTRL_RESET = 0x02,   /* reset, not answered */
	VCCID_VPCD_CTRL_ATR = 0x04,     /* get ATR: answered with the ATR, empty = no card */
};

/**
 * Writes the message carrying @p len bytes of @p payload into caller-owned
 * @p out of @p size bytes; *out_len gets its length. Returns 0, VCCID_EINVAL
 * (payload over VCCID_VPCD_MAX_PAYLOAD) or VCCID_ENOSPC.
 */
int vccid_vpcd_encode(const uint8_t *payload, size_t len, uint8_t *out, size_t size,
		      size_t *out_len);

/**
 * Reassembles messages from a byte stream into a caller-owned buffer. The
 * struct is the caller's (no allocation); its fields are private to proto.c.
 */
struct vccid_vpcd_framer {
	uint8_t *buf;       /* payload buffer, capacity cap */
	size_t cap;
	uint8_t header[VCCID_VPCD_HEADER];
	size_t header_got;
	size_t len;         /* announced payload length, valid once header_got == 2 */
	size_t got;         /* payload bytes received */
};

/** Starts an empty framer over @p buf of @p cap bytes (the largest payload taken). */
void vccid_vpcd_framer_init(struct vccid_vpcd_framer *f, uint8_t *buf, size_t cap);
/**
 * Takes bytes from @p data (@p len) up to the end of one message: *used gets
 * how many were taken. Returns 1 when a whole message is in the buffer (read
 * it with vccid_vpcd_framer_payload(), then call it again for the next), 0
 * when more bytes are needed, VCCID_EPROTO when the announced length exceeds
 * the capacity (the stream cannot be followed further).
 */
int vccid_vpcd_framer_feed(struct vccid_vpcd_framer *f, const uint8_t *data, size_t len,
			   size_t *used);
/** The whole message's payload and its length (after a feed returned 1). */
const uint8_t *vccid_vpcd_framer_payload(const struct vccid_vpcd_framer *f, size_t *len);
/** True while a message is partly received. */
bool vccid_vpcd_framer_partial(const struct vccid_vpcd_framer *f);
/** Forgets a finished or partial message. */
void vccid_vpcd_framer_reset(struct vccid_vpcd_framer *f);

#endif
