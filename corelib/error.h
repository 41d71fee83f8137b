/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid core error codes: 0 is success, every failure is a negative code. */
#ifndef VCCID_ERROR_H
#define VCCID_ERROR_H

enum vccid_error {
	VCCID_OK = 0,
	VCCID_EINVAL = -1,     /* bad argument */
	VCCID_ENOMEM = -2,     /* allocation failed */
	VCCID_ENOCARD = -3,    /* no card in the slot */
	VCCID_EBUSY = -4,      /* slot already holds a card / resource busy */
	VCCID_ETIMEDOUT = -5,  /* wait or peer timed out */
	VCCID_EIO = -6,        /* backend failed to exchange with the card */
	VCCID_ENOSPC = -7,     /* caller's buffer too small */
	VCCID_EPROTO = -8,     /* malformed message or APDU */
	VCCID_ECANCELED = -9,  /* wait interrupted by vccid_slot_cancel_waits() */
	VCCID_ECONFIG = -10,   /* configuration error */
	VCCID_ENOTSUP = -11,   /* operation not supported */
	VCCID_ENOENT = -12,    /* no such slot, card or reader */
	VCCID_ENOTPOWERED = -13, /* card present but not powered */
};

/** Returns a static English description of @p err (never NULL). */
const char *vccid_strerror(int err);

#endif
