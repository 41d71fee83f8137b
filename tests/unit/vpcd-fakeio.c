/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The in-memory vpcd transport: a stall is a recv that finds nothing (no waiting). */
#include "vpcd-fakeio.h"

#include <string.h>
#include <sys/types.h>

#include "corelib/error.h"

static int fake_send(void *io, const uint8_t *buf, size_t len, long long deadline_ms)
{
	struct vpcd_fakeio *f = io;
	size_t room = VPCD_FAKEIO_OUT_MAX - f->out_len;

	(void)deadline_ms;
	if (f->send_rv != 0)
		return f->send_rv;
	memcpy(f->out + f->out_len, buf, len < room ? len : room);
	f->out_len += len < room ? len : room;
	f->sends++;
	/* A control other than GET ATR gets no answer. */
	if (len < 3 || (len == 3 && buf[2] != 0x04))
		return VCCID_OK;
	if (f->limit + 2 <= f->in_len)
		f->limit += 2 + ((size_t)f->in[f->limit] << 8 | f->in[f->limit + 1]);
	else
		f->limit = f->in_len;
	if (f->limit > f->in_len)
		f->limit = f->in_len;
	return VCCID_OK;
}

static ssize_t fake_recv(void *io, uint8_t *buf, size_t len, long long deadline_ms)
{
	struct vpcd_fakeio *f = io;
	size_t n = (f->whole ? f->in_len : f->limit) - f->in_pos;

	(void)deadline_ms;
	if (n == 0)
		return f->eof && f->in_pos == f->in_len ? 0 : VCCID_ETIMEDOUT;
	if (f->chunk != 0 && n > f->chunk)
		n = f->chunk;
	if (n > len)
		n = len;
	memcpy(buf, f->in + f->in_pos, n);
	f->in_pos += n;
	return (ssize_t)n;
}

static void fake_failed(void *io)
{
	struct vpcd_fakeio *f = io;

	f->failed_calls++;
}

void vpcd_fakeio_init(struct vpcd_fakeio *f, const uint8_t *in, size_t len)
{
	memset(f, 0, sizeof(*f));
	f->io = (struct vccid_vpcd_io){ .send = fake_send, .recv = fake_recv,
					.failed = fake_failed, .io = f };
	f->in = in;
	f->in_len = len;
}
