/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VSCard listener inside the driver: remote clients bring their cards into vccid's free slots. */
#ifndef VCCID_VSCARD_LISTENER_H
#define VCCID_VSCARD_LISTENER_H

#include "corelib/config.h"

/**
 * Starts the listener from the [vscard] group of @p config, or counts one
 * more user of the running one. Sockets are opened by the first call; a
 * later configuration with other [vscard] settings is logged and ignored.
 * Returns 0 or a negative vccid_error (logged).
 */
int vccid_vscard_acquire(const struct vccid_config *config);
/** Drops one user; the last one stops the listener and drops its clients. */
void vccid_vscard_release(void);

#endif
