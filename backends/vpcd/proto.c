/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vpcd framing codec: encoding into caller buffers and a framer with a length limit. */
#include "proto.h"

#include <string.h>

#include "corelib/error.h"

_Static_assert(VCCID_VPCD_MAX_MESSAGE == 65537, "2-byte length and at most 0xFFFF bytes");

int vccid_vpcd_encode(const uint8_t *payload, size_t len, uint8_t *out, size_t size,
		      size_t *out_len)
{
	if (len > VCCID_VPCD_MAX_PAYLOAD || (len > 0 && payload == NULL))
		return VCCID_EINVAL;
	if (size < VCCID_VPCD_HEADER + len)
		return VCCID_ENOSPC;
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)(len & 0xFF);
	if (len > 0)
		memcpy(out + VCCID_VPCD_HEADER, payload, len);
	*out_len = VCCID_VPCD_HEADER + len;
	return VCCID_OK;
}

void vccid_vpcd_framer_init(struct vccid_vpcd_framer *f, uint8_t *buf, size_t cap)
{
	memset(f, 0, sizeof(*f));
	f->buf = buf;
	f->cap = cap;
}

void vccid_vpcd_framer_reset(struct vccid_vpcd_framer *f)
{
	f->header_got = 0;
	f->len = 0;
	f->got = 0;
}

static bool framer_complete(const struct vccid_vpcd_framer *f)
{
	return f->header_got == VCCID_VPCD_HEADER && f->got == f->len;
}

int vccid_vpcd_framer_feed(struct vccid_vpcd_framer *f, const uint8_t *data, size_t len,
			   size_t *used)
{
	size_t n = 0;

	if (framer_complete(f))
		vccid_vpcd_framer_reset(f);   /* the previous message was taken */
	while (f->header_got < VCCID_VPCD_HEADER && n < len)
		f->header[f->header_got++] = data[n++];
	*used = n;
	if (f->header_got < VCCID_VPCD_HEADER)
		return 0;
	f->len = (size_t)f->header[0] << 8 | f->header[1];
	if (f->len > f->cap)
		return VCCID_EPROTO;
	if (f->got < f->len && n < len) {
		size_t take = f->len - f->got < len - n ? f->len - f->got : len - n;

		memcpy(f->buf + f->got, data + n, take);
		f->got += take;
		n += take;
	}
	*used = n;
	return f->got == f->len ? 1 : 0;
}

const uint8_t *vccid_vpcd_framer_payload(const struct vccid_vpcd_framer *f, size_t *len)
{
	*len = f->got;
	return f->buf;
}

bool vccid_vpcd_framer_partial(const struct vccid_vpcd_framer *f)
{
	return (f->header_got > 0 || f->got > 0) && !framer_complete(f);
}
