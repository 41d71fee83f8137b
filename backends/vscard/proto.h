/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VSCard wire protocol (libcacard's vscard_common.h): message framing and payload codecs. */
#ifndef VCCID_VSCARD_PROTO_H
#define VCCID_VSCARD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VCCID_VSCARD_HEADER_SIZE 12              /* u32 type, reader_id, length; big-endian */
#define VCCID_VSCARD_VERSION 2                   /* MAKE_VERSION(0, 0, 2) */
#define VCCID_VSCARD_UNDEFINED_READER_ID 0xFFFFFFFFu
#define VCCID_VSCARD_INIT_MIN_SIZE 12            /* magic, version, one capability word */
#define VCCID_VSCARD_INIT_MAX_CAPS 16            /* capability words kept; more are ignored */
/* Stock peers (vscclient, spice) read payloads into 270-byte buffers. */
#define VCCID_VSCARD_LEGACY_MAX_APDU 261
/* vccid's own capability bit (first capability word): both sides take
 * extended APDUs up to VCCID_VSCARD_EXT_MAX_APDU bytes. Other peers send 0 and ignore it. */
#define VCCID_VSCARD_CAP_VCCID_EXTENDED 0x00010000u
#define VCCID_VSCARD_EXT_MAX_APDU (4 + 3 + 65535 + 3)

enum vccid_vscard_type {
	VCCID_VSCARD_INIT = 1,
	VCCID_VSCARD_ERROR = 2,
	VCCID_VSCARD_READER_ADD = 3,
	VCCID_VSCARD_READER_REMOVE = 4,
	VCCID_VSCARD_ATR = 5,
	VCCID_VSCARD_CARD_REMOVE = 6,
	VCCID_VSCARD_APDU = 7,
	VCCID_VSCARD_FLUSH = 8,
	VCCID_VSCARD_FLUSH_COMPLETE = 9,
};

enum vccid_vscard_error_code {
	VCCID_VSCARD_SUCCESS = 0,
	VCCID_VSCARD_GENERAL_ERROR = 1,
	VCCID_VSCARD_CANNOT_ADD_MORE_READERS = 2,
	VCCID_VSCARD_CARD_ALREADY_INSERTED = 3,
};

struct vccid_vscard_header {
	uint32_t type;
	uint32_t reader_id;
	uint32_t length;      /* payload bytes after the header */
};

struct vccid_vscard_init {
	uint32_t version;
	uint32_t capabilities[VCCID_VSCARD_INIT_MAX_CAPS];
	size_t n_capabilities;
};

/** Name of a message type for logs ("APDU", "unknown"). */
const char *vccid_vscard_type_name(uint32_t type);

/** Decodes a header from at least VCCID_VSCARD_HEADER_SIZE bytes. */
void vccid_vscard_header_decode(const uint8_t *buf, struct vccid_vscard_header *header);
/** Encodes a header into @p buf (VCCID_VSCARD_HEADER_SIZE bytes). */
void vccid_vscard_header_encode(uint8_t *buf, uint32_t type, uint32_t reader_id, uint32_t length);

/**
 * Builds a whole message (header + payload) into caller-owned @p buf of
 * @p size bytes, so it can go out in one write. Returns its length, or 0
 * when it does not fit.
 */
size_t vccid_vscard_message_encode(uint8_t *buf, size_t size, uint32_t type, uint32_t reader_id,
			     const uint8_t *payload, size_t payload_len);
/** An Init message with @p capabilities as the one capability word. */
size_t vccid_vscard_init_encode(uint8_t *buf, size_t size, uint32_t reader_id, uint32_t capabilities);
/** An Error message (payload big-endian, as a host sends it). */
size_t vccid_vscard_error_encode(uint8_t *buf, size_t size, uint32_t reader_id, uint32_t code);

/**
 * Parses an Init payload: raw magic "VSCD", big-endian version, one or more
 * capability words. Returns 0, or VCCID_EPROTO for a short payload, a length
 * that is not a multiple of 4, or a bad magic.
 */
int vccid_vscard_init_decode(const uint8_t *payload, size_t len, struct vccid_vscard_init *init);
/** Error code of an Error payload sent by a host (big-endian); VCCID_EPROTO if not 4 bytes. */
int vccid_vscard_error_decode(const uint8_t *payload, size_t len, uint32_t *code);

/*
 * Incremental framing of a byte stream. The framer never allocates what the
 * peer claims: a header announcing more than max_payload bytes is an error.
 */
struct vccid_vscard_framer {
	uint8_t *buf;          /* caller-owned, VCCID_VSCARD_HEADER_SIZE + max_payload bytes */
	size_t max_payload;
	size_t used;
	int delivered;         /* the message in buf was handed out; start anew */
};

void vccid_vscard_framer_init(struct vccid_vscard_framer *framer, uint8_t *buf, size_t max_payload);
/**
 * Where the next bytes of the stream go and how many are wanted: read at
 * most *want bytes into the returned pointer, then call vccid_vscard_framer_fill.
 */
uint8_t *vccid_vscard_framer_space(struct vccid_vscard_framer *framer, size_t *want);
/**
 * Accounts @p n bytes just read. Returns 1 when a whole message is ready
 * (header in *header, payload at *payload until the next call), 0 when more
 * bytes are needed, VCCID_EPROTO when the announced length is over the limit.
 */
int vccid_vscard_framer_fill(struct vccid_vscard_framer *framer, size_t n, struct vccid_vscard_header *header,
		       const uint8_t **payload);

#endif
