/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: APDU and ATR parsing. Input: any bytes, parsed as one APDU and as one ATR. */
#include <stdint.h>
#include <string.h>

#include "core/apdu.h"
#include "core/atr.h"
#include "fuzz-log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	return 0;
}
