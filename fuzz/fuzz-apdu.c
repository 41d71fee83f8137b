/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: APDU and ATR parsing. Input: any bytes, parsed as one APDU and as one ATR. */
#include <stdint.h>
#include <string.h>

#include "corelib/apdu.h"
#include "corelib/atr.h"
#include "fuzz-log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A parsed ATR must account for every byte of the input, and agree with the check. */
static void check_atr(const uint8_t *data, size_t size)
{
	struct vccid_atr atr;
	unsigned protocols = 0;
	int rv = vccid_atr_parse(data, size, &atr);

	if (rv != vccid_atr_check(data, size, &protocols) || atr.len != size)
		__builtin_trap();
	if (rv != 0)
		return;
	if (atr.protocols != protocols || atr.hist_offset < 2 ||
	    atr.hist_offset + atr.hist_len + (atr.tck_present ? 1 : 0) != size ||
	    atr.tck_present != atr.tck_ok || atr.inverse != (data[0] == 0x3F) ||
	    atr.ta[0] != -1 || (atr.t1_ifsc >= 0 && (protocols & 2u) == 0))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vccid_apdu apdu;
	unsigned protocols;

	fuzz_enable_logging();
	if (vccid_apdu_parse(data, size, &apdu) == 0) {
		/* A parsed APDU must describe exactly the input. */
		size_t expect = 4;

		if (apdu.lc > 0)
			expect += (apdu.extended ? 3 : 1) + apdu.lc;
		if (apdu.le > 0)
			expect += apdu.extended ? (apdu.lc > 0 ? 2 : 3) : 1;
		if (expect != size || (apdu.lc > 0 && apdu.data != data + (apdu.extended ? 7 : 5)))
			__builtin_trap();
	}
	if (vccid_atr_check(data, size, &protocols) == 0 && (size > 33 || protocols == 0))
		__builtin_trap();
	check_atr(data, size);
	return 0;
}
