/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An in-memory vpcd transport for the unit tests and the fuzzer: scripted peer bytes in, sent bytes recorded. */
#ifndef VCCID_TESTS_VPCD_FAKEIO_H
#define VCCID_TESTS_VPCD_FAKEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/vpcd/card.h"

#define VPCD_FAKEIO_OUT_MAX (2 * 65537 + 64)

struct vpcd_fakeio {
	struct vccid_vpcd_io io;        /* points at this fake */
	const uint8_t *in;              /* what the peer sends, in order */
	size_t in_len, in_pos;
	/* As a peer answers: each GET ATR and APDU the card sends makes the next
	 * frame of the input readable (by its length bytes), unless whole is set:
	 * then all of it is readable at once (for unsolicited bytes). */
	bool whole;
	size_t limit;
	size_t chunk;                   /* most bytes one recv gives (0: all there is) */
	bool eof;                       /* after the input: end of stream (else a stall) */
	int send_rv;                    /* 0, or what every send fails with */
	uint8_t out[VPCD_FAKEIO_OUT_MAX];   /* what the card sent (the rest is only counted) */
	size_t out_len;
	unsigned sends;
	unsigned failed_calls;
};

/** Sets @p f up with @p len bytes of peer input @p in (not copied). */
void vpcd_fakeio_init(struct vpcd_fakeio *f, const uint8_t *in, size_t len);

#endif
