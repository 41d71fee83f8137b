/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VSCard message framing and payload codecs; every length is checked before a payload is touched. */
#include "proto.h"

#include <string.h>

#include "corelib/error.h"

static const uint8_t vccid_vscard_magic[4] = { 'V', 'S', 'C', 'D' };  /* sent raw, not swapped */

_Static_assert(VCCID_VSCARD_HEADER_SIZE == 3 * sizeof(uint32_t), "VSCard header is three u32");

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

const char *vccid_vscard_type_name(uint32_t type)
{
	switch (type) {
	case VCCID_VSCARD_INIT: return "Init";
	case VCCID_VSCARD_ERROR: return "Error";
	case VCCID_VSCARD_READER_ADD: return "ReaderAdd";
	case VCCID_VSCARD_READER_REMOVE: return "ReaderRemove";
	case VCCID_VSCARD_ATR: return "ATR";
	case VCCID_VSCARD_CARD_REMOVE: return "CardRemove";
	case VCCID_VSCARD_APDU: return "APDU";
	case VCCID_VSCARD_FLUSH: return "Flush";
	case VCCID_VSCARD_FLUSH_COMPLETE: return "FlushComplete";
	default: return "unknown";
	}
}

void vccid_vscard_header_decode(const uint8_t *buf, struct vccid_vscard_header *header)
{
	header->type = get_be32(buf);
	header->reader_id = get_be32(buf + 4);
	header->length = get_be32(buf + 8);
}

void vccid_vscard_header_encode(uint8_t *buf, uint32_t type, uint32_t reader_id, uint32_t length)
{
	put_be32(buf, type);
	put_be32(buf + 4, reader_id);
	put_be32(buf + 8, length);
}

size_t vccid_vscard_message_encode(uint8_t *buf, size_t size, uint32_t type, uint32_t reader_id,
			     const uint8_t *payload, size_t payload_len)
{
	if (payload_len > UINT32_MAX || size < VCCID_VSCARD_HEADER_SIZE ||
	    size - VCCID_VSCARD_HEADER_SIZE < payload_len)
		return 0;
	vccid_vscard_header_encode(buf, type, reader_id, (uint32_t)payload_len);
	if (payload_len > 0)
		memcpy(buf + VCCID_VSCARD_HEADER_SIZE, payload, payload_len);
	return VCCID_VSCARD_HEADER_SIZE + payload_len;
}

size_t vccid_vscard_init_encode(uint8_t *buf, size_t size, uint32_t reader_id, uint32_t capabilities)
{
	uint8_t payload[VCCID_VSCARD_INIT_MIN_SIZE];

	memcpy(payload, vccid_vscard_magic, sizeof(vccid_vscard_magic));
	put_be32(payload + 4, VCCID_VSCARD_VERSION);
	put_be32(payload + 8, capabilities);
	return vccid_vscard_message_encode(buf, size, VCCID_VSCARD_INIT, reader_id, payload, sizeof(payload));
}

size_t vccid_vscard_error_encode(uint8_t *buf, size_t size, uint32_t reader_id, uint32_t code)
{
	uint8_t payload[4];

	put_be32(payload, code);
	return vccid_vscard_message_encode(buf, size, VCCID_VSCARD_ERROR, reader_id, payload, sizeof(payload));
}

int vccid_vscard_init_decode(const uint8_t *payload, size_t len, struct vccid_vscard_init *init)
{
	size_t i;

	memset(init, 0, sizeof(*init));
	if (len < VCCID_VSCARD_INIT_MIN_SIZE || len % 4 != 0 ||
	    memcmp(payload, vccid_vscard_magic, sizeof(vccid_vscard_magic)) != 0)
		return VCCID_EPROTO;
	init->version = get_be32(payload + 4);
	for (i = 8; i + 4 <= len && init->n_capabilities < VCCID_VSCARD_INIT_MAX_CAPS; i += 4)
		init->capabilities[init->n_capabilities++] = get_be32(payload + i);
	return VCCID_OK;
}

int vccid_vscard_error_decode(const uint8_t *payload, size_t len, uint32_t *code)
{
	if (len != 4)
		return VCCID_EPROTO;
	*code = get_be32(payload);
	return VCCID_OK;
}

void vccid_vscard_framer_init(struct vccid_vscard_framer *framer, uint8_t *buf, size_t max_payload)
{
	framer->buf = buf;
	framer->max_payload = max_payload;
	framer->used = 0;
	framer->delivered = 0;
}

static void framer_restart_if_delivered(struct vccid_vscard_framer *framer)
{
	if (framer->delivered) {
		framer->used = 0;
		framer->delivered = 0;
	}
}

/* Bytes the current message needs in all, as far as known. */
static size_t framer_target(const struct vccid_vscard_framer *framer)
{
	if (framer->used < VCCID_VSCARD_HEADER_SIZE)
		return VCCID_VSCARD_HEADER_SIZE;
	return VCCID_VSCARD_HEADER_SIZE + get_be32(framer->buf + 8);
}

uint8_t *vccid_vscard_framer_space(struct vccid_vscard_framer *framer, size_t *want)
{
	framer_restart_if_delivered(framer);
	*want = framer_target(framer) - framer->used;
	return framer->buf + framer->used;
}

int vccid_vscard_framer_fill(struct vccid_vscard_framer *framer, size_t n, struct vccid_vscard_header *header,
		       const uint8_t **payload)
{
	framer_restart_if_delivered(framer);
	framer->used += n;
	if (framer->used < VCCID_VSCARD_HEADER_SIZE)
		return 0;
	if (get_be32(framer->buf + 8) > framer->max_payload)
		return VCCID_EPROTO;
	if (framer->used < framer_target(framer))
		return 0;
	vccid_vscard_header_decode(framer->buf, header);
	*payload = framer->buf + VCCID_VSCARD_HEADER_SIZE;
	framer->delivered = 1;
	return 1;
}
