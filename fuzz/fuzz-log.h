/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging on, to nowhere: under the fuzzer, the code that formats log lines runs too. */
#ifndef VCCID_FUZZ_LOG_H
#define VCCID_FUZZ_LOG_H

#include "corelib/log.h"

static inline void fuzz_discard_log(enum vccid_log_level level, const char *line)
{
	(void)level;
	(void)line;
}

static inline void fuzz_enable_logging(void)
{
	vccid_log_set_sink(fuzz_discard_log);
	vccid_log_set_level(VCCID_LOG_APDU);
}

#endif
