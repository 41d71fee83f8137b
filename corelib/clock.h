/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Monotonic time helpers shared by the modules that wait with a timeout. */
#ifndef VCCID_CLOCK_H
#define VCCID_CLOCK_H

#include <time.h>

/** Sets @p ts to CLOCK_MONOTONIC now plus @p timeout_ms (for condition waits on that clock). */
void vccid_deadline_after(struct timespec *ts, unsigned timeout_ms);
/** CLOCK_MONOTONIC in milliseconds. */
long long vccid_now_ms(void);

#endif
